//! XDP benchmark: ns per packet from `BPF_PROG_TEST_RUN` for mapped IPv4, mapped IPv6 and
//! unmapped frames, with 10 and 100 000 trie entries, beside the empty XDP program
//! (`return XDP_PASS`) loaded in the same run. Median of 5 runs of 1 000 000 repeats each.
//! Needs root. Run through `bench/xdp_bench.sh`.
#![expect(clippy::print_stdout, clippy::print_stderr, reason = "a benchmark prints its table")]

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Instant,
};

use ipnet::IpNet;
use lqos_bpf::{Dataplane, InterfaceRole, IpMapping, LoadOptions, frames};

const LO: u32 = 1;
const REPEAT: u32 = 1_000_000;
const RUNS: usize = 5;

fn median_ns(mut f: impl FnMut() -> f64) -> f64 {
    let mut v: Vec<f64> = (0..RUNS).map(|_| f()).collect();
    v.sort_by(f64::total_cmp);
    v[RUNS / 2]
}

fn mapping(i: u32) -> IpMapping {
    IpMapping {
        cpu: i % 2,
        class_handle: 0x0001_0000 | (i % 0xfff0 + 3),
        circuit_hash: u64::from(i),
        device_hash: u64::from(i),
    }
}

/// `n` entries: 90 % IPv4 /32 packed into 198.18.0.0/15, 10 % IPv6 /64 under 2001:db8::/32.
/// The benchmark's mapped addresses are always among them.
fn entries(n: u32) -> Vec<(IpNet, IpMapping)> {
    let mut out = Vec::with_capacity(n as usize);
    let v6 = n / 10;
    for i in 0..n - v6 {
        let a = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i * 131_071 / (n - v6).max(1);
        out.push((IpNet::new(IpAddr::V4(Ipv4Addr::from(a)), 32).unwrap_or_default(), mapping(i)));
    }
    for i in 0..v6 {
        let hi = (0x2001_0db8u128 << 96) | (u128::from(i * 7) << 64);
        out.push((IpNet::new(IpAddr::V6(Ipv6Addr::from(hi)), 64).unwrap_or_default(), mapping(i)));
    }
    let probe_v4 = IpNet::new(IpAddr::V4(Ipv4Addr::new(198, 18, 200, 7)), 32).unwrap_or_default();
    let probe_v6 =
        IpNet::new("2001:db8:ffff:1::".parse().unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)), 64)
            .unwrap_or_default();
    out.push((probe_v4, mapping(7)));
    out.push((probe_v6, mapping(8)));
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("xdp_bench: needs root (BPF_PROG_TEST_RUN)");
        std::process::exit(2);
    }
    let mut dp = Dataplane::load(&LoadOptions::default())?;
    dp.set_interface_index(LO, InterfaceRole::ToInternet)?;
    let inet4: IpAddr = "198.19.0.1".parse()?;
    let inet6: IpAddr = "2001:db8:eeee::1".parse()?;
    let cases = [
        ("mapped IPv4", frames::udp_frame(inet4, "198.18.200.7".parse()?, &[], 18), true),
        ("mapped IPv6", frames::udp_frame(inet6, "2001:db8:ffff:1::5".parse()?, &[], 18), true),
        ("unmapped IPv4", frames::udp_frame(inet4, "198.19.250.250".parse()?, &[], 18), false),
    ];
    println!("| case | trie entries | lqos_xdp ns/pkt | empty XDP ns/pkt | ratio | action |");
    println!("|---|---:|---:|---:|---:|---|");
    for n in [10u32, 100_000] {
        dp.ip_map().clear()?;
        let list = entries(n);
        let t = Instant::now();
        dp.ip_map().insert_batch(&list)?;
        eprintln!("inserted {} entries in {:.3} s", list.len(), t.elapsed().as_secs_f64());
        for (name, frame, mapped) in &cases {
            let frame = frame.clone().ok_or("frame")?;
            let mut action = 0;
            let full = median_ns(|| {
                let r = dp.test_run_xdp(&frame, LO, REPEAT);
                r.map(|r| {
                    action = r.action;
                    r.duration.as_nanos() as f64
                })
                .unwrap_or(f64::NAN)
            });
            let empty = median_ns(|| {
                dp.test_run_xdp_pass(&frame, LO, REPEAT)
                    .map(|r| r.duration.as_nanos() as f64)
                    .unwrap_or(f64::NAN)
            });
            let expect = if *mapped { lqos_bpf::XDP_REDIRECT } else { lqos_bpf::XDP_PASS };
            let act = match action {
                lqos_bpf::XDP_REDIRECT => "REDIRECT",
                lqos_bpf::XDP_PASS => "PASS",
                _ => "other",
            };
            let ok = if action == expect { "" } else { " (UNEXPECTED)" };
            println!(
                "| {name} | {} | {full:.1} | {empty:.1} | {:.2}× | {act}{ok} |",
                list.len(),
                full / empty
            );
        }
    }
    Ok(())
}
