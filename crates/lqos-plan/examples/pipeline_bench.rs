//! The whole `libreqos --dry-run` pipeline on generated inputs: parse + validate both files,
//! plan, re-plan with the stored identities after a 1% rate edit, diff. One size per run so the
//! peak memory (VmHWM) belongs to that size alone; `bench/pipeline_bench.sh` runs 1k/10k/100k.
//!
//! Usage: `pipeline_bench <circuits> <sites>`
#![expect(clippy::print_stdout, reason = "a benchmark prints its numbers")]
#![expect(clippy::unwrap_used, reason = "generated inputs; a failure is a bug in the bench")]

use std::time::Instant;

use lqos_config::{LeafQdisc, network_to_string, parse_network_str, parse_shaped_devices_str};
use lqos_plan::testkit::{config_bridge, facts, random_circuits, random_network};
use lqos_plan::{Identities, PlanInput, diff, plan};

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn vm_hwm_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let circuits: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let sites: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    // Inputs as an operator would have them on disk (text), generated once.
    let net = random_network(7, sites, 3);
    let mut cs = random_circuits(7, &net, 0, circuits);
    for c in &mut cs {
        // Operators' rates: at least 1 Mbps guaranteed.
        c.download_min.0 = c.download_min.0.max(1000).min(c.download_max.0);
        c.upload_min.0 = c.upload_min.0.max(1000).min(c.upload_max.0);
    }
    let net_text = network_to_string(&net);
    let csv_text = lqos_config::shaped_devices_to_string(&cs);
    let edited: Vec<_> = cs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut c = c.clone();
            if i % 100 == 0 {
                c.download_max.0 += 1000;
            }
            c
        })
        .collect();
    let csv_edited = lqos_config::shaped_devices_to_string(&edited);
    drop((net, cs, edited));

    let mut config = config_bridge(100_000, 100_000);
    // 100k leaf qdiscs do not fit in 16-bit handles on one interface; CAKE/fq_codel leaves
    // are planned for sizes where they fit.
    if circuits > 60_000 {
        config.queues.default_sqm = lqos_config::parse_sqm_tokens("none").unwrap();
    } else {
        config.queues.default_sqm.leaf = Some(LeafQdisc::Pfifo { limit: None });
    }
    let facts = facts(16);

    let t = Instant::now();
    let (network, nd) = parse_network_str(&net_text, "network.json");
    let (circuits_parsed, cd) = parse_shaped_devices_str(&csv_text, "ShapedDevices.csv");
    let parse_ms = ms(t);
    let t = Instant::now();
    let vd = lqos_config::validate_inputs(
        &network,
        &circuits_parsed,
        "network.json",
        "ShapedDevices.csv",
    );
    let validate_ms = ms(t);
    let errors = nd.iter().chain(&cd).chain(&vd).filter(|d| d.is_error()).count();
    if errors > 0 {
        for d in nd.iter().chain(&cd).chain(&vd).filter(|d| d.is_error()).take(5) {
            println!("{d}");
        }
        panic!("generated inputs must be valid ({errors} errors)");
    }

    let t = Instant::now();
    let none = Identities::default();
    let p1 = plan(&PlanInput {
        config: &config,
        network: &network,
        circuits: &circuits_parsed,
        facts,
        previous: &none,
    })
    .unwrap();
    let plan_ms = ms(t);

    let (circuits_edited, _) = parse_shaped_devices_str(&csv_edited, "ShapedDevices.csv");
    let t = Instant::now();
    let p2 = plan(&PlanInput {
        config: &config,
        network: &network,
        circuits: &circuits_edited,
        facts,
        previous: &p1.identities,
    })
    .unwrap();
    let replan_ms = ms(t);
    let t = Instant::now();
    let cs = diff(&p1, &p2);
    let diff_ms = ms(t);

    println!(
        "{:>7} circuits {:>5} sites | parse {:>8.1} ms | validate {:>7.1} ms | plan {:>7.1} ms | re-plan {:>7.1} ms | diff(1% edit) {:>7.1} ms -> {} class changes | total {:>8.1} ms | peak RSS {:>6.1} MiB",
        circuits,
        sites,
        parse_ms,
        validate_ms,
        plan_ms,
        replan_ms,
        diff_ms,
        cs.class_change.len(),
        parse_ms + validate_ms + plan_ms + replan_ms + diff_ms,
        vm_hwm_mib()
    );
}
