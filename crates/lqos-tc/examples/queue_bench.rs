//! What one circuit's queue statistics cost (lqosd's `CircuitQueue`): one class get plus one
//! leaf-qdisc get addressed by the parent class, against the baseline a dump-based reader pays
//! (`tc -s qdisc show dev X parent P`: dump every qdisc of the interface, keep one), on the
//! same tree in the same run. Private network namespace, 4-queue veth, N circuits with pfifo
//! leaves. Needs root. Prints numbers and ratios; never fails on time.
//!
//! `cargo run -p lqos-tc --example queue_bench [-- N]` (default 10000).
#![expect(clippy::print_stdout, clippy::print_stderr, reason = "benchmark output")]

use std::fs::File;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use lqos_config::LeafQdisc;
use lqos_tc::synth::{SynthSpec, circuit_class, synth_plan};
use lqos_tc::{Query, Tc, Transport};
use nix::sched::{CloneFlags, setns};

struct Ns(String);

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sh(args: &[&str]) -> Result<(), String> {
    let st = Command::new("ip").args(args).status().map_err(|e| format!("ip: {e}"))?;
    if st.success() { Ok(()) } else { Err(format!("ip {} failed", args.join(" "))) }
}

fn run(n: u32) -> Result<(), String> {
    let ns = Ns(format!("lqtc-qbench-{}", std::process::id()));
    sh(&["netns", "add", &ns.0])?;
    sh(&[
        "-n",
        &ns.0,
        "link",
        "add",
        "v0",
        "numtxqueues",
        "4",
        "type",
        "veth",
        "peer",
        "name",
        "v1",
    ])?;
    sh(&["-n", &ns.0, "link", "set", "v0", "up"])?;
    let path = format!("/run/netns/{}", ns.0);
    std::thread::spawn(move || -> Result<(), String> {
        let fd = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        setns(&fd, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns: {e}"))?;
        let spec = SynthSpec {
            interface: "v0".into(),
            queues: 4,
            sites_per_queue: 4,
            circuits: n,
            leaf: Some(LeafQdisc::Pfifo { limit: Some(100) }),
        };
        let plan = synth_plan(&spec);
        let mut tc = Tc::new().map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        tc.build_full(&plan).map_err(|e| e.to_string())?;
        println!("built {n} circuits (class + pfifo) in {:.1} s", t0.elapsed().as_secs_f64());
        let ifindex = tc.interface_facts("v0").map_err(|e| e.to_string())?.ifindex;

        // lqosd's read: class get + leaf get, for circuits spread over the whole tree.
        let reads = 2000.min(n);
        let t0 = Instant::now();
        let mut found = 0;
        for k in 0..reads {
            let class = circuit_class(&spec, k * (n / reads).max(1));
            let c = tc.class_get("v0", class).map_err(|e| e.to_string())?;
            let q = tc.leaf_qdisc("v0", class).map_err(|e| e.to_string())?;
            found += usize::from(c.is_some() && q.is_some());
        }
        let get = t0.elapsed() / reads;
        if found != reads as usize {
            return Err(format!("only {found} of {reads} circuits answered"));
        }

        // Baseline: one qdisc dump of the interface per request, filtered by parent.
        let dumps = 20;
        let t0 = Instant::now();
        let mut seen = 0usize;
        for k in 0..dumps {
            let parent = circuit_class(&spec, k * 97 % n).as_u32();
            let mut hit = false;
            tc.transport_mut()
                .query(&Query::Qdiscs { ifindex }, &mut |m| {
                    seen += 1;
                    if let Some((_, q)) = lqos_tc::dump::parse_qdisc(m) {
                        hit |= q.parent == parent;
                    }
                })
                .map_err(|e| e.to_string())?;
            if !hit {
                return Err(format!("dump missed parent {parent:x}"));
            }
        }
        let dump = t0.elapsed() / dumps;
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!("{:<46} {:>12}", "per request (one direction)", "µs");
        println!("{:<46} {:>12.1}", "class get + leaf get (lqosd)", us(get));
        println!(
            "{:<46} {:>12.1}   ({} qdisc messages each)",
            "qdisc dump filtered by parent (baseline)",
            us(dump),
            seen / dumps as usize
        );
        println!("ratio dump / get: {:.0}x", dump.as_secs_f64() / get.as_secs_f64().max(1e-9));
        Ok(())
    })
    .join()
    .map_err(|_| "benchmark thread panicked".to_string())?
}

fn main() -> ExitCode {
    let n = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000u32).max(1);
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root");
        return ExitCode::SUCCESS;
    }
    match run(n) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("queue_bench: {e}");
            ExitCode::from(2)
        }
    }
}
