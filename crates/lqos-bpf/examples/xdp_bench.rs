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
//!   IPv4, TCP over IPv6), at most 262 144; nothing ages flows during the bench. lqos creates
//!   a TCP flow from the subscriber's side only, so before each TCP row the full program sees
//!   the subscriber's ACK of the connection once per walked address (as a download's ACKs
//!   would open it); unmapped addresses get no flow.
//! * Two variants: `classify+steer+count` (`track_flows = false`) and the full program (flows,
//!   TCP retransmits, RTT sampling).
//! * Every `BPF_PROG_TEST_RUN` call gets a fresh output buffer; the program keeps its metadata
//!   at exactly 8 bytes when the kernel reruns it on the same buffer.
//!
//! * Internet-scan rows (TCP SYNs): 100k subscribers spread over 2^20 addresses, a walk over
//!   131 072 of them ("pool": about 9 in 10 unassigned, each a cache miss and a long walk of
//!   the trie before the prefix hash) and over 131 072 addresses outside every prefix
//!   ("dark": IPv4 100.64.0.0/15, where the trie gives up after a few nodes).
//!
//! Each row: one warm-up run of each program, then 5 rounds of (empty, classify+steer+count,
//! full) runs of 500 000 repeats each, interleaved so that the programs of one round see the
//! same machine state. Right before each timed run, the program gets an untimed run over its
//! walk (4 × addresses × train packets, at most the repeat count): a deployed box runs one of
//! the two programs, so neither is timed on caches the other one's tables just flushed (the
//! full program's 48 MiB flow table empties the 32 MiB L3 of the lean program's lines, which
//! cost the lean program of the 32 768 row ~10 to 40 ns per packet). Printed: the median ns of each program, the ratio of the medians and
//! the median of the per-round ratios ("paired"), and per packet the classification-cache
//! misses and the LPM trie walks left after the prefix hash. Needs root.
//! Before each configuration and at the end it prints (stderr) what a dependent load costs
//! over 1, 4 and 16 MiB right then: the 100k rows move with it.
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

/// ns per dependent load over a random cycle through `kib` KiB (one load per 64-byte line,
/// pages as the allocator gives them): what one cold line of a table costs on this machine
/// right now. The 100k rows follow it: their tables do not fit the caches, and a guest shares
/// the L3 with the host's other guests.
fn memory_latency(kib: usize) -> f64 {
    const WORDS: usize = 8; // one 64-byte line
    let lines = (kib * 1024 / 64).max(2);
    // A random cycle over the lines (Sattolo's shuffle, xorshift): no stride to prefetch.
    let mut order: Vec<usize> = (0..lines).collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..lines).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = usize::try_from(x % i as u64).unwrap_or(0);
        order.swap(i, j);
    }
    let mut next = vec![0usize; lines * WORDS];
    for w in 0..lines {
        next[order[w] * WORDS] = order[(w + 1) % lines] * WORDS;
    }
    let mut p = 0;
    for _ in 0..lines {
        p = next[p];
    }
    let loads = 2_000_000u32;
    let t = Instant::now();
    for _ in 0..loads {
        p = next[p];
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(loads);
    std::hint::black_box(p);
    ns
}

fn print_memory_latency(when: &str) {
    eprintln!(
        "memory latency {when}: a dependent load costs {:.1} ns over 1 MiB, {:.1} ns over 4 MiB, {:.1} ns over 16 MiB",
        memory_latency(1024),
        memory_latency(4096),
        memory_latency(16384)
    );
}

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
    /// TCP: the subscriber's ACK of the same connection. lqos creates a TCP flow from the
    /// subscriber's side only, so the full program gets one of these per walked address
    /// before the row, as a real download's ACKs would open it.
    opener: Option<Vec<u8>>,
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
    let ack = TcpSpec { sport: 50_000, dport: 443, ts: None, payload: 0, ..data };
    let f = |src, dst, vlans: &'static [u16], l4| {
        frames::build(&FrameSpec { src, dst, vlans, pppoe: false, l4 })
    };
    let tcp = |name, inet, sub, vlans: &'static [u16], down| {
        Some(Kind {
            name,
            frame: f(inet, sub, vlans, L4::Tcp(down))?,
            opener: Some(f(sub, inet, vlans, L4::Tcp(ack))?),
        })
    };
    Some(vec![
        tcp("TCP+TS IPv4", inet4, sub4, &[], data)?,
        tcp("TCP no TS IPv4", inet4, sub4, &[], no_ts)?,
        Kind {
            name: "UDP IPv4",
            frame: f(inet4, sub4, &[], L4::Udp { sport: 443, dport: 50_000, payload: 1200 })?,
            opener: None,
        },
        tcp("TCP+TS IPv6", inet6, sub6, &[], data)?,
        tcp("TCP+TS VLAN", inet4, sub4, &[42], data)?,
    ])
}

/// One run of `repeat` packets: ns per packet and the last action (NaN if it failed).
/// Scan frames: into the subscriber pools (IPv4 from 198.18.0.0, IPv6 /64s under
/// 2001:db8::/32) and into space no prefix covers (IPv4 100.64.0.0/15).
fn scan_kinds() -> Option<Vec<Kind>> {
    let inet4: IpAddr = "203.0.113.9".parse().ok()?;
    let inet6: IpAddr = "2001:db8:ffff::9".parse().ok()?;
    let pool4: IpAddr = "198.18.0.0".parse().ok()?;
    let pool6: IpAddr = "2001:db8::1".parse().ok()?;
    let dark4: IpAddr = "100.64.0.0".parse().ok()?;
    let syn = TcpSpec::syn(40_000, 22);
    let f = |src, dst, l4| frames::build(&FrameSpec { src, dst, vlans: &[], pppoe: false, l4 });
    Some(vec![
        Kind { name: "scan SYN IPv4 pool", frame: f(inet4, pool4, L4::Tcp(syn))?, opener: None },
        Kind { name: "scan SYN IPv6 pool", frame: f(inet6, pool6, L4::Tcp(syn))?, opener: None },
        Kind { name: "scan SYN IPv4 dark", frame: f(inet4, dark4, L4::Tcp(syn))?, opener: None },
    ])
}

fn run_once(dp: &Dataplane, frame: &[u8], empty: bool, repeat: u32) -> (f64, u32) {
    let r = if empty {
        dp.test_run_xdp_pass(frame, LO, repeat)
    } else {
        dp.test_run_xdp(frame, LO, repeat)
    };
    match r {
        Ok(r) => (r.duration.as_nanos() as f64, r.action),
        Err(e) => {
            eprintln!("test run failed: {e}");
            (f64::NAN, 0)
        }
    }
}

/// Per-run results of one row.
#[derive(Default)]
struct Row {
    empty: Vec<f64>,
    lean: Vec<f64>,
    full: Vec<f64>,
    action: u32,
}

impl Row {
    fn ratios(a: &[f64], e: &[f64]) -> f64 {
        if a.is_empty() {
            return f64::NAN;
        }
        median(a.iter().zip(e).map(|(a, e)| a / e).collect())
    }
}

/// Warm-up (creates flows, fills caches), then `runs` interleaved rounds.
fn measure_row(
    empty_dp: &Dataplane,
    lean: Option<&Dataplane>,
    full: Option<&Dataplane>,
    frame: &[u8],
    warm: u32,
    args: &Args,
) -> Row {
    let _ = run_once(empty_dp, frame, true, args.repeat);
    for dp in [lean, full].into_iter().flatten() {
        let _ = run_once(dp, frame, false, args.repeat);
    }
    let warm = warm.min(args.repeat);
    let mut row = Row::default();
    for _ in 0..args.runs {
        row.empty.push(run_once(empty_dp, frame, true, args.repeat).0);
        if let Some(dp) = lean {
            let _ = run_once(dp, frame, false, warm);
            row.lean.push(run_once(dp, frame, false, args.repeat).0);
        }
        if let Some(dp) = full {
            let _ = run_once(dp, frame, false, warm);
            let (ns, action) = run_once(dp, frame, false, args.repeat);
            row.full.push(ns);
            row.action = action;
        }
    }
    row
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
        "memory: classification cache {:.1} MiB per CPU ({} entries), slot counters {:.1} MiB per CPU, flow table {:.1} MiB ({} entries), prefix hash {:.1} MiB",
        f64::from(opts.cache_entries) * 32.0 / 1048576.0,
        opts.cache_entries,
        f64::from(opts.max_slots) * 64.0 / 1048576.0,
        f64::from(opts.max_flows) * 192.0 / 1048576.0,
        opts.max_flows,
        f64::from(opts.max_mappings.next_power_of_two()) * 64.0 / 1048576.0
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
    if n > 1000 && track_flows {
        let t = Instant::now();
        let listed = dp.ip_map().list()?.len();
        eprintln!(
            "listing the trie ({listed} prefixes, as a load that reuses a pinned trie does): {:.3} s",
            t.elapsed().as_secs_f64()
        );
    }
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
    let keep = |k: &Kind| args.kind.as_ref().is_none_or(|p| k.name.starts_with(p.as_str()));
    let kinds: Vec<Kind> = kinds().ok_or("frame construction")?.into_iter().filter(keep).collect();
    let scans: Vec<Kind> =
        scan_kinds().ok_or("frame construction")?.into_iter().filter(keep).collect();
    println!(
        "| frame | subscribers | addresses walked | packets in a row | empty XDP ns | classify+steer+count ns | ratio | paired | + flows, RTT, retransmits ns | ratio | paired | cache misses/pkt | trie walks/pkt |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    // (subscribers, addresses walked, train, scan): 12 in cache; 100k with a hot set of 8 192;
    // 100k with a realistic active set of 32 768; 100k walking the whole space (cold
    // classification on every packet); the realistic set again in trains of 8 packets per
    // address; last an Internet scan of 131 072 unassigned addresses.
    let configs = [
        (12u32, 16u32, 1u32, false),
        (100_000, 8192, 1, false),
        (100_000, 32_768, 1, false),
        (100_000, 131_072, 1, false),
        (100_000, 32_768, 8, false),
        (100_000, 131_072, 1, true),
    ];
    for (n, walk, train, scan) in
        configs.into_iter().filter(|c| args.only.is_none_or(|o| o == (c.0, c.1, c.2)))
    {
        let row_kinds = if scan { &scans } else { &kinds };
        if row_kinds.is_empty() {
            continue;
        }
        // The scan rows spread the subscribers over 2^20 addresses, so 9 in 10 walked
        // addresses are unassigned addresses of the subscriber pools.
        let space = if scan { 1 << 20 } else { n.next_power_of_two() };
        print_memory_latency(&format!("before {n}/{walk}/{train}"));
        let lean = if args.lean { Some(load(n, space, walk, train, false)?) } else { None };
        let mut full = if args.full { Some(load(n, space, walk, train, true)?) } else { None };
        if full.is_none() && lean.is_none() {
            continue;
        }
        let warm = walk.saturating_mul(train).saturating_mul(4).min(args.repeat);
        for k in row_kinds {
            if let (Some(dp), Some(opener)) = (full.as_mut(), k.opener.as_ref()) {
                // Each walked address once from the subscriber's side (a whole walk).
                dp.set_interface_index(LO, InterfaceRole::ToNetwork)?;
                dp.test_run_xdp(opener, LO, walk.saturating_mul(train))?;
                dp.set_interface_index(LO, InterfaceRole::ToInternet)?;
            }
            let Some(any) = full.as_ref().or(lean.as_ref()) else { continue };
            let before = any.stats()?;
            let row = measure_row(any, lean.as_ref(), full.as_ref(), &k.frame, warm, &args);
            let after = any.stats()?;
            let per_pkt = |a: u64, b: u64| {
                // `any`'s packets: a warm-up run, then per round an untimed and a timed run.
                let packets = f64::from(args.repeat) * (args.runs as f64 + 1.0)
                    + f64::from(warm) * args.runs as f64;
                a.saturating_sub(b) as f64 / packets
            };
            let misses = per_pkt(after.cache_misses, before.cache_misses);
            let tries = per_pkt(after.trie_lookups, before.trie_lookups);
            let act = match row.action {
                lqos_bpf::XDP_REDIRECT | 0 => "",
                lqos_bpf::XDP_PASS => " (last: PASS)",
                _ => " (last: other)",
            };
            let med = |v: &[f64]| if v.is_empty() { f64::NAN } else { median(v.to_vec()) };
            let (e, l, f) = (med(&row.empty), med(&row.lean), med(&row.full));
            println!(
                "| {} | {n} | {walk} | {train} | {e:.1} | {l:.1} | {:.2}× | {:.2}× | {f:.1} | {:.2}× | {:.2}× | {misses:.2}{act} | {tries:.2} |",
                k.name,
                l / e,
                Row::ratios(&row.lean, &row.empty),
                f / e,
                Row::ratios(&row.full, &row.empty),
            );
        }
        let Some(any) = full.as_ref().or(lean.as_ref()) else { continue };
        let s = any.stats()?;
        eprintln!(
            "{n}/{walk}/{train}{}: flows created {}, dropped {}, rtt samples {}, no metadata {}",
            if scan { " scan" } else { "" },
            s.flows_created,
            s.flows_dropped,
            s.rtt_samples,
            s.no_metadata
        );
    }
    print_memory_latency("at the end");
    Ok(())
}
