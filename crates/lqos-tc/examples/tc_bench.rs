//! Full-build and incremental benchmark: lqos-tc (netlink) against `tc -batch`, in a private
//! network namespace with a 4-queue veth. Needs root. Prints one table; never fails on time.
//!
//! `cargo run --release -p lqos-tc --example tc_bench [-- SIZES…]` (default 1000 5000 10000).
#![expect(clippy::print_stdout, clippy::print_stderr, reason = "benchmark output")]

use std::fs::File;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use lqos_config::{LeafQdisc, RateKbit};
use lqos_tc::batch::TcBatchTransport;
use lqos_tc::synth::{SynthSpec, synth_plan};
use lqos_tc::{LiveTree, Tc, Transport, reconcile};
use nix::sched::{CloneFlags, setns};

struct Ns(String);

impl Ns {
    fn new() -> Result<Self, String> {
        let name = format!("lqtc-bench-{}", std::process::id());
        sh("ip", &["netns", "add", &name])?;
        let ns = Ns(name);
        sh(
            "ip",
            &[
                "-n",
                &ns.0,
                "link",
                "add",
                "v0",
                "numtxqueues",
                "4",
                "numrxqueues",
                "4",
                "type",
                "veth",
                "peer",
                "name",
                "v1",
                "numtxqueues",
                "4",
                "numrxqueues",
                "4",
            ],
        )?;
        sh("ip", &["-n", &ns.0, "link", "set", "v0", "up"])?;
        sh("ip", &["-n", &ns.0, "link", "set", "v1", "up"])?;
        Ok(ns)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sh(cmd: &str, args: &[&str]) -> Result<(), String> {
    let st = Command::new(cmd).args(args).status().map_err(|e| format!("{cmd}: {e}"))?;
    if st.success() { Ok(()) } else { Err(format!("{cmd} {} failed", args.join(" "))) }
}

fn spec(circuits: u32) -> SynthSpec {
    SynthSpec {
        interface: "v0".into(),
        queues: 4,
        sites_per_queue: 4,
        circuits,
        leaf: Some(LeafQdisc::Pfifo { limit: Some(100) }),
    }
}

fn timed_build<T: Transport>(tc: &mut Tc<T>, n: u32) -> Result<Duration, String> {
    let plan = synth_plan(&spec(n));
    let t0 = Instant::now();
    tc.build_full(&plan).map_err(|e| format!("build {n}: {e}"))?;
    let d = t0.elapsed();
    tc.teardown(&plan).map_err(|e| format!("teardown {n}: {e}"))?;
    Ok(d)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn run(sizes: &[u32]) -> Result<(), String> {
    let ns = Ns::new()?;
    let path = format!("/run/netns/{}", ns.0);
    let sizes = sizes.to_vec();
    std::thread::spawn(move || -> Result<(), String> {
        let fd = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        setns(&fd, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns: {e}"))?;
        let mut nl = Tc::new().map_err(|e| e.to_string())?;
        // LQOS_TC_CHUNK_BYTES=1 sends one message per sendmsg (to separate batching from
        // message size in the comparison).
        if let Some(b) = std::env::var("LQOS_TC_CHUNK_BYTES").ok().and_then(|v| v.parse().ok()) {
            nl.transport_mut().set_chunk_bytes(b);
            println!("chunk: {b} bytes per sendmsg");
        }
        let mut tcb = Tc::with_transport(TcBatchTransport::open().map_err(|e| e.to_string())?);
        println!("full build: mq + 4 HTB + (4 + 4·4) queue/site classes + N circuits (class + pfifo)");
        println!("{:>7} {:>12} {:>12} {:>9}   (best of 2 runs each, alternating)", "N", "lqos-tc s", "tc -batch s", "tc/lqos");
        let mut full_10k = None;
        for &n in &sizes {
            let mut best_nl = Duration::MAX;
            let mut best_tc = Duration::MAX;
            for _ in 0..2 {
                best_nl = best_nl.min(timed_build(&mut nl, n)?);
                best_tc = best_tc.min(timed_build(&mut tcb, n)?);
            }
            println!(
                "{n:>7} {:>12.3} {:>12.3} {:>9.2}",
                secs(best_nl),
                secs(best_tc),
                secs(best_tc) / secs(best_nl)
            );
            full_10k = Some((n, best_nl));
        }
        // Incremental: 1 % of circuits change rate on the largest size.
        let (n, full) = full_10k.ok_or("no sizes")?;
        let old = synth_plan(&spec(n));
        nl.build_full(&old).map_err(|e| e.to_string())?;
        let mut new = old.clone();
        let ifp = &mut new.interfaces[0];
        let first_circuit = ifp.classes.len() - n as usize;
        let step = 100;
        let mut changed = 0;
        for c in ifp.classes[first_circuit..].iter_mut().step_by(step) {
            c.rate = RateKbit(c.rate.0 + 3);
            c.ceil = RateKbit(c.ceil.0 + 30);
            changed += 1;
        }
        let cs = reconcile(&new, &[LiveTree::from_plan(&old.interfaces[0], 0)]);
        let t0 = Instant::now();
        let rep = nl.apply(&cs).map_err(|e| e.to_string())?;
        let incr = t0.elapsed();
        let t0 = Instant::now();
        let live = nl.dump("v0").map_err(|e| e.to_string())?;
        let dump = t0.elapsed();
        let t0 = Instant::now();
        let stats = nl.class_stats("v0").map_err(|e| e.to_string())?;
        let stats_t = t0.elapsed();
        println!(
            "incremental: {changed} of {n} circuits ({}%) changed in {:.2} ms = {:.3}% of the full build ({} messages)",
            changed * 100 / n as usize,
            incr.as_secs_f64() * 1e3,
            100.0 * secs(incr) / secs(full),
            rep.messages
        );
        println!(
            "dump v0 (qdiscs + {} classes): {:.1} ms; class_stats ({} classes): {:.1} ms",
            live.classes.len(),
            dump.as_secs_f64() * 1e3,
            stats.len(),
            stats_t.as_secs_f64() * 1e3
        );
        nl.teardown(&new).map_err(|e| e.to_string())?;
        Ok(())
    })
    .join()
    .map_err(|_| "benchmark thread panicked".to_string())?
}

fn main() -> ExitCode {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("tc_bench needs root (it creates a network namespace)");
        return ExitCode::from(2);
    }
    let sizes: Vec<u32> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![1000, 5000, 10000] } else { sizes };
    match run(&sizes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tc_bench: {e}");
            ExitCode::from(2)
        }
    }
}
