//! Benchmark: parse + validate a generated 100k-circuit ShapedDevices.csv and a 1,000-node
//! network.json, and time the writers. Run with
//! `cargo run --release -p lqos-config --example parse_bench [circuits]`.
#![expect(clippy::print_stdout, reason = "a benchmark prints its numbers")]

use std::fmt::Write;
use std::time::Instant;

use lqos_config::{
    network_to_string, parse_network_str, parse_shaped_devices_str, shaped_devices_to_string,
    validate_inputs,
};

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let sites = 50;
    let aps_per_site = 20;
    let mut net = String::from("{");
    for s in 0..sites {
        let _ = write!(
            net,
            "{}\"Site{s}\": {{\"downloadBandwidthMbps\": 10000, \"uploadBandwidthMbps\": 10000, \"children\": {{",
            if s > 0 { "," } else { "" }
        );
        for a in 0..aps_per_site {
            let _ = write!(
                net,
                "{}\"AP{s}_{a}\": {{\"downloadBandwidthMbps\": 1000, \"uploadBandwidthMbps\": 1000}}",
                if a > 0 { "," } else { "" }
            );
        }
        net.push_str("}}");
    }
    net.push('}');
    let mut csv = String::from(
        "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,Parent Node ID,Anchor Node ID,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment,sqm\n",
    );
    for i in 0..n {
        let ap = format!("AP{}_{}", i % sites, (i / sites) % aps_per_site);
        let _ = writeln!(
            csv,
            "{i},Subscriber {i},dev{i},Router {i},{ap},,,00:11:22:33:44:55,\"100.{}.{}.{}\",\"2001:db8:{:x}:{:x}00::/56\",10,2,100.5,20,,",
            64 + (i >> 16) % 64,
            (i >> 8) & 255,
            i & 255,
            i >> 8,
            i & 255
        );
    }
    // Best of 5: the machine may be shared, the minimum is the least disturbed run.
    let mut best = [f64::MAX; 4];
    let mut result = None;
    for _ in 0..5 {
        let t0 = Instant::now();
        let (network, d1) = parse_network_str(&net, "network.json");
        let t1 = Instant::now();
        let (circuits, d2) = parse_shaped_devices_str(&csv, "ShapedDevices.csv");
        let t2 = Instant::now();
        let d3 = validate_inputs(&network, &circuits, "network.json", "ShapedDevices.csv");
        let t3 = Instant::now();
        let csv_out = shaped_devices_to_string(&circuits);
        let net_out = network_to_string(&network);
        let t4 = Instant::now();
        for (b, t) in best.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3]) {
            *b = b.min(t.as_secs_f64() * 1e3);
        }
        result =
            Some((network, circuits, d1.len() + d2.len() + d3.len(), csv_out.len(), net_out.len()));
    }
    let Some((network, circuits, ndiag, csv_len, net_len)) = result else { return };
    println!(
        "nodes={} circuits={} diagnostics={ndiag} csv_bytes={} (best of 5 runs)",
        network.nodes.len(),
        circuits.len(),
        csv.len()
    );
    println!("parse network.json   {:>8.1} ms", best[0]);
    println!("parse ShapedDevices  {:>8.1} ms", best[1]);
    println!("validate_inputs      {:>8.1} ms", best[2]);
    println!("parse + validate     {:>8.1} ms", best[0] + best[1] + best[2]);
    println!("write both           {:>8.1} ms ({csv_len} + {net_len} bytes)", best[3]);
}
