//! XDP benchmark (`BPF_PROG_TEST_RUN`): ns per packet of the lqos XDP program beside the empty
//! XDP program (`return XDP_PASS`) measured in the same run, for a mix of frame kinds, with 12
//! and 100 000 subscribers.
//!
//! * Subscribers are spread over a dense space (IPv4 in 198.18.0.0/15, IPv6 /64s under
//!   2001:db8::/32), each with its own slot; every entry exists for both families.
//! * The program is loaded with `bench_spread`, so each repeat of the one test frame is aimed
//!   at the next address of a walk (odd-multiplier permutation) over the first 16 / 8 192 /
//!   32 768 / 131 072 addresses of the space. Every packet goes to another subscriber (no
//!   bursts), the harshest order for every cache. 32 768 is the realistic active set (about a
//!   third of 100k subscribers busy at once); 131 072 is the whole space, a cyclic walk that
//!   misses any cache smaller than itself on every packet, so it times the LPM trie cold. About
//!   1 in 4 probed addresses has no mapping (slot 0 + unknown table), as in a dense but not
//!   full address plan.
//! * One more row set walks the realistic 32 768 in trains of 8 packets per address (the
//!   bursts a TCP sender's TSO/GRO puts on the wire; real trains are often longer): the same
//!   addresses and per-packet work, with the locality real traffic has.
//! * The flow table gets 8 entries per walked address (3 flows per address: TCP and UDP over
//!   IPv4, TCP over IPv6), at most 262 144; nothing ages flows during the bench.
//! * Two variants: `classify+steer+count` (`track_flows = false`) and the full program (flows,
//!   TCP retransmits, RTT sampling).
//! * Every `BPF_PROG_TEST_RUN` call gets a fresh output buffer; the program keeps its metadata
//!   at exactly 8 bytes when the kernel reruns it on the same buffer.
//!
//! Median of 5 runs of 500 000 repeats each, after one warm-up run. Needs root.
//! Run through `bench/xdp_bench.sh`. Options (for profiling one case under `perf`):
//! `--only SUBSCRIBERS:WALK[:TRAIN]` runs one configuration, `--kind NAME` one frame kind (prefix
//! match), `--repeat N` and `--runs N` change the counts, `--lean` / `--full` one variant.
#![expect(clippy::print_stdout, clippy::print_stderr, reason = "a benchmark prints its table")]

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Instant,
};

use ipnet::IpNet;
use lqos_bpf::{
    Dataplane, InterfaceRole, IpMapping, LoadOptions, frames,
    frames::{FrameSpec, L4, TcpSpec},
};

const LO: u32 = 1;

/// Command line (see the module doc).
#[derive(Debug, Clone)]
struct Args {
    only: Option<(u32, u32, u32)>,
    kind: Option<String>,
    repeat: u32,
    runs: usize,
    lean: bool,
    full: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args { only: None, kind: None, repeat: 500_000, runs: 5, lean: true, full: true };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--only" => {
                let v = value("--only")?;
                let mut parts = v.split(':').map(|p| p.parse::<u32>());
                let (Some(Ok(n)), Some(Ok(w))) = (parts.next(), parts.next()) else {
                    return Err(format!("--only {v}: wants SUBSCRIBERS:WALK[:TRAIN]"));
                };
                let t = match parts.next() {
                    None => 1,
                    Some(Ok(t)) => t,
                    Some(Err(e)) => return Err(format!("--only {v}: {e}")),
                };
                if !w.is_power_of_two() || !t.is_power_of_two() {
                    return Err(format!("--only {v}: WALK and TRAIN must be powers of two"));
                }
                a.only = Some((n, w, t));
            }
            "--kind" => a.kind = Some(value("--kind")?),
            "--repeat" => {
                a.repeat = value("--repeat")?.parse().map_err(|e| format!("--repeat: {e}"))?
            }
            "--runs" => {
                a.runs = value("--runs")?.parse().map_err(|e| format!("--runs: {e}"))?;
                a.runs = a.runs.max(1);
            }
            "--lean" => a.full = false,
            "--full" => a.lean = false,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `n` subscribers spread over `space` (a power of two) offsets, IPv4 and IPv6 each.
fn entries(n: u32, space: u32) -> Vec<(IpNet, IpMapping)> {
    let mut out = Vec::with_capacity(2 * n as usize);
    let base4 = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    for k in 0..n {
        let off = (u64::from(k) * u64::from(space) / u64::from(n)) as u32;
        let m = IpMapping {
            cpu: k % 2,
            class_handle: 0x0001_0000 | (k % 0xfff0 + 3),
            slot: k + 1,
            circuit_hash: u64::from(k),
            device_hash: u64::from(k),
        };
        let v4 = IpAddr::V4(Ipv4Addr::from(base4 + off));
        let v6 = IpAddr::V6(Ipv6Addr::from((0x2001_0db8u128 << 96) | (u128::from(off) << 64)));
        if let (Ok(a), Ok(b)) = (IpNet::new(v4, 32), IpNet::new(v6, 64)) {
            out.push((a, m));
            out.push((b, m));
        }
    }
    out
}

struct Kind {
    name: &'static str,
    frame: Vec<u8>,
}

fn kinds() -> Option<Vec<Kind>> {
    let inet4: IpAddr = "198.19.0.1".parse().ok()?;
    let inet6: IpAddr = "2001:db8:ffff::1".parse().ok()?;
    let sub4: IpAddr = "198.18.0.0".parse().ok()?;
    let sub6: IpAddr = "2001:db8::1".parse().ok()?;
    let data = TcpSpec {
        sport: 443,
        dport: 50_000,
        seq: 1,
        ack: 1,
        flags: 0x10,
        ts: Some((1000, 2000)),
        syn_layout: false,
        payload: 1200,
    };
    let no_ts = TcpSpec { ts: None, ..data };
    let f = |src, dst, vlans: &'static [u16], l4| {
        frames::build(&FrameSpec { src, dst, vlans, pppoe: false, l4 })
    };
    Some(vec![
        Kind { name: "TCP+TS IPv4", frame: f(inet4, sub4, &[], L4::Tcp(data))? },
        Kind { name: "TCP no TS IPv4", frame: f(inet4, sub4, &[], L4::Tcp(no_ts))? },
        Kind {
            name: "UDP IPv4",
            frame: f(inet4, sub4, &[], L4::Udp { sport: 443, dport: 50_000, payload: 1200 })?,
        },
        Kind { name: "TCP+TS IPv6", frame: f(inet6, sub6, &[], L4::Tcp(data))? },
        Kind { name: "TCP+TS VLAN", frame: f(inet4, sub4, &[42], L4::Tcp(data))? },
    ])
}

fn measure(dp: &Dataplane, frame: &[u8], empty: bool, args: &Args) -> (f64, u32) {
    let run = |repeat| {
        if empty {
            dp.test_run_xdp_pass(frame, LO, repeat)
        } else {
            dp.test_run_xdp(frame, LO, repeat)
        }
        .map_err(|e| e.to_string())
    };
    let mut action = 0;
    let _ = run(args.repeat); // warm-up: creates flows, fills caches
    let v = (0..args.runs)
        .map(|_| match run(args.repeat) {
            Ok(r) => {
                action = r.action;
                r.duration.as_nanos() as f64
            }
            Err(e) => {
                eprintln!("test run failed: {e}");
                f64::NAN
            }
        })
        .collect();
    (median(v), action)
}

fn load(
    n: u32,
    space: u32,
    walk: u32,
    train: u32,
    track_flows: bool,
) -> Result<Dataplane, Box<dyn std::error::Error>> {
    let opts = LoadOptions {
        max_slots: (n + 1).next_power_of_two(),
        max_flows: (8 * walk).clamp(1024, 262_144),
        track_flows,
        bench_spread: walk,
        bench_train: train,
        ..LoadOptions::default()
    };
    eprintln!(
        "memory: classification cache {:.1} MiB per CPU ({} entries), slot counters {:.1} MiB per CPU, flow table {:.1} MiB ({} entries)",
        f64::from(opts.cache_entries) * 32.0 / 1048576.0,
        opts.cache_entries,
        f64::from(opts.max_slots) * 64.0 / 1048576.0,
        f64::from(opts.max_flows) * 192.0 / 1048576.0,
        opts.max_flows
    );
    let mut dp = Dataplane::load(&opts)?;
    dp.set_interface_index(LO, InterfaceRole::ToInternet)?;
    let list = entries(n, space);
    let t = Instant::now();
    dp.ip_map().insert_batch(&list)?;
    eprintln!(
        "{n} subscribers ({} prefixes, flows {}): inserted in {:.3} s",
        list.len(),
        if track_flows { "on" } else { "off" },
        t.elapsed().as_secs_f64()
    );
    Ok(dp)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("xdp_bench: needs root (BPF_PROG_TEST_RUN)");
        std::process::exit(2);
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("xdp_bench: {e}");
            std::process::exit(2);
        }
    };
    let kinds: Vec<Kind> = kinds()
        .ok_or("frame construction")?
        .into_iter()
        .filter(|k| args.kind.as_ref().is_none_or(|p| k.name.starts_with(p.as_str())))
        .collect();
    println!(
        "| frame | subscribers | addresses walked | packets in a row | empty XDP ns | classify+steer+count ns | ratio | + flows, RTT, retransmits ns | ratio | cache misses/pkt |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    // (subscribers, addresses walked): 12 in cache; 100k with a hot set of 8 192; 100k with a
    // realistic active set of 32 768; 100k walking the whole space (cold LPM on every packet).
    // Last: the realistic set again, in trains of 8 packets per address.
    let configs = [
        (12u32, 16u32, 1u32),
        (100_000, 8192, 1),
        (100_000, 32_768, 1),
        (100_000, 131_072, 1),
        (100_000, 32_768, 8),
    ];
    for (n, walk, train) in configs.into_iter().filter(|c| args.only.is_none_or(|o| o == *c)) {
        let space = n.next_power_of_two();
        let lean = if args.lean { Some(load(n, space, walk, train, false)?) } else { None };
        let full = if args.full { Some(load(n, space, walk, train, true)?) } else { None };
        let Some(any) = full.as_ref().or(lean.as_ref()) else { continue };
        for k in &kinds {
            let (empty, _) = measure(any, &k.frame, true, &args);
            let l = lean.as_ref().map_or(f64::NAN, |dp| measure(dp, &k.frame, false, &args).0);
            let before = any.stats()?.cache_misses;
            let (f, action) =
                full.as_ref().map_or((f64::NAN, 0), |dp| measure(dp, &k.frame, false, &args));
            if full.is_none() {
                let _ = measure(any, &k.frame, false, &args);
            }
            let misses = any.stats()?.cache_misses.saturating_sub(before) as f64
                / (f64::from(args.repeat) * (args.runs as f64 + 1.0));
            let act = match action {
                lqos_bpf::XDP_REDIRECT | 0 => "",
                lqos_bpf::XDP_PASS => " (last: PASS)",
                _ => " (last: other)",
            };
            println!(
                "| {} | {n} | {walk} | {train} | {empty:.1} | {l:.1} | {:.2}× | {f:.1} | {:.2}× | {misses:.2}{act} |",
                k.name,
                l / empty,
                f / empty
            );
        }
        let s = any.stats()?;
        eprintln!(
            "{n}/{walk}/{train}: flows created {}, dropped {}, rtt samples {}, no metadata {}",
            s.flows_created, s.flows_dropped, s.rtt_samples, s.no_metadata
        );
    }
    Ok(())
}
