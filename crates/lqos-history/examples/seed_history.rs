//! Seeds a history store with realistic-looking data for benchmarks and demos: for each given
//! circuit and node, 1 s points for the last 10 minutes, 1 min points for the last 48 hours
//! and 15 min points for the last `--days` days (each tier ending now), written through
//! [`Store::import`] in a few large transactions. Values are deterministic per series and
//! time (a diurnal rate curve plus noise, RTT on three out of four points).
//!
//! `cargo run --release -p lqos-history --example seed_history -- --file STATE/history.redb \
//!   --circuits 1000 [--circuit-prefix c] [--nodes Site_1,AP_1_1] [--days 90] [--budget-mb 2048]`
//!
//! Run it before lqosd opens the file (redb allows one process at a time).
#![expect(clippy::print_stdout, reason = "an example prints what it wrote")]

use std::sync::Arc;
use std::time::Instant;

use lqos_bus::HistoryKind;
use lqos_history::Sample;
use lqos_history::{SeriesPoints, Store, TIERS, series_key, unix_now};

struct Args {
    file: std::path::PathBuf,
    circuits: u64,
    circuit_prefix: String,
    nodes: Vec<String>,
    days: u64,
    budget_mb: u64,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        file: "history.redb".into(),
        circuits: 1000,
        circuit_prefix: "c".into(),
        nodes: Vec::new(),
        days: 90,
        budget_mb: 2048,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = || value.parse::<u64>().map_err(|e| format!("{flag} {value:?}: {e}"));
        match flag.as_str() {
            "--file" => a.file = value.clone().into(),
            "--circuits" => a.circuits = num()?,
            "--circuit-prefix" => a.circuit_prefix = value.clone(),
            "--nodes" => {
                a.nodes = value.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
            }
            "--days" => a.days = num()?.clamp(1, 90),
            "--budget-mb" => a.budget_mb = num()?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

/// A cheap deterministic hash (splitmix64) of a series number and a time.
fn mix(series: u64, t: u64) -> u64 {
    let mut z = series.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ t.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn sample(series: u64, t: u64, scale: u64) -> Sample {
    let h = mix(series, t);
    // Busy in the evening, quiet at night (UTC, good enough for a benchmark).
    let hour = (t / 3600) % 24;
    let load =
        [1, 1, 1, 1, 1, 1, 2, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 7, 9, 10, 10, 8, 5, 2][hour as usize];
    let down = scale * load * (50 + h % 100) / 100;
    let rtt = !(h >> 8).is_multiple_of(4);
    let base = 2.0 + ((h >> 16) % 300) as f64 / 10.0;
    Sample {
        down_bps: down,
        up_bps: down / 8,
        rtt_access: rtt.then_some([base, base * 1.8, base * 3.5]),
        rtt_upstream: rtt.then_some([base + 12.0, base + 18.0, base + 40.0]),
        retransmits: [(h >> 24) % 5, (h >> 28) % 2],
        drops: (h >> 32) % 3,
        // About one 1,500-byte packet per 12 kbit each second.
        tcp_packets: [down / 12_000 + 1, down / 96_000 + 1],
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    let started = Instant::now();
    let store = Store::open(&args.file, args.budget_mb.saturating_mul(1 << 20))?;
    let now = unix_now();
    // (key, typical rate, series number)
    let mut series: Vec<(Arc<str>, u64)> = (0..args.circuits)
        .map(|i| {
            let id = format!("{}{i}", args.circuit_prefix);
            (Arc::from(series_key(HistoryKind::Circuit, &id).as_str()), 10_000_000)
        })
        .collect();
    series.extend(
        args.nodes
            .iter()
            .map(|n| (Arc::from(series_key(HistoryKind::Node, n).as_str()), 1_000_000_000)),
    );
    let series: Vec<(Arc<str>, u64, u64)> =
        series.into_iter().enumerate().map(|(i, (k, r))| (k, r, i as u64)).collect();
    let mut total = 0usize;
    for tier in TIERS {
        let keep = if tier.step == TIERS[2].step { args.days * 86_400 } else { tier.keep };
        // Complete points only: the open bucket of each tier is lqosd's to write.
        let last = (now - now % tier.step).saturating_sub(tier.step);
        let first = last.saturating_sub(keep - tier.step);
        // Transactions of about a million points keep memory modest.
        let per_tx = (1_000_000 / ((last - first) / tier.step + 1)).max(1) as usize;
        for chunk in series.chunks(per_tx) {
            let rows: Vec<SeriesPoints> = chunk
                .iter()
                .map(|(key, scale, n)| {
                    let points = (first..=last)
                        .step_by(tier.step as usize)
                        .map(|t| (t, sample(*n, t, *scale)))
                        .collect();
                    (key.clone(), points)
                })
                .collect();
            total += store.import(tier.step, &rows)?;
        }
        println!(
            "tier {:>4} s: {} series x {} points",
            tier.step,
            series.len(),
            (last - first) / tier.step + 1
        );
    }
    println!(
        "seeded {} points into {} ({:.0} MiB) in {:.1} s",
        total,
        args.file.display(),
        store.disk_bytes() as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
