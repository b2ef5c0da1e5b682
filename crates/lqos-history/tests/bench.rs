//! Benchmark (ignored; run by `bench/history_bench.sh`): the history writer's CPU cost per
//! simulated second at N circuits, against the same loop without the writer, and the disk use
//! it leaves. Time is simulated (one tick = one second of unix time, no sleeping), so each tick
//! does exactly the work one real second does: build the batch, fold it into the tiers, a
//! write every 10 ticks and a retention pass every 60. CPU is this thread's (getrusage
//! RUSAGE_THREAD), so the numbers are the writer's own, not the machine's.
#![expect(clippy::print_stderr, reason = "a benchmark prints its numbers")]

use std::sync::Arc;
use std::time::Duration;

use lqos_bus::HistoryKind;
use lqos_history::{Batch, Sample, Store, series_key};
use nix::sys::resource::{UsageWho, getrusage};

fn thread_cpu() -> Duration {
    match getrusage(UsageWho::RUSAGE_THREAD) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| {
                Duration::new(tv.tv_sec().max(0) as u64, (tv.tv_usec().max(0) as u32) * 1000)
            };
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A batch like lqosd's tick builds: one sample per circuit, a quarter of them with RTT.
fn batch(keys: &[Arc<str>], ts: u64) -> Batch {
    Batch {
        ts,
        rows: keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let busy = (i as u64 + ts).is_multiple_of(4);
                (
                    k.clone(),
                    Sample {
                        down_bps: (i as u64 * 7919 + ts * 104_729) % 100_000_000,
                        up_bps: (i as u64 * 31 + ts) % 10_000_000,
                        rtt_access: busy.then_some([3.0, 9.0, 20.0]),
                        rtt_upstream: busy.then_some([12.0, 14.0, 30.0]),
                        retransmits: [u64::from(busy), 0],
                        drops: 0,
                        tcp_packets: [u64::from(busy) * 900, u64::from(busy) * 300],
                    },
                )
            })
            .collect(),
    }
}

const T0: u64 = 1_800_000_000 - 1_800_000_000 % 86_400;

#[test]
#[ignore = "benchmark: bench/history_bench.sh"]
fn writer_cpu_and_disk() {
    let circuits = env_u64("HISTORY_BENCH_CIRCUITS", 10_000);
    let secs = env_u64("HISTORY_BENCH_SECS", 1_800);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.redb");
    let store = Store::open(&path, 2048 << 20).expect("open");
    let keys: Vec<Arc<str>> = (0..circuits)
        .map(|i| Arc::from(series_key(HistoryKind::Circuit, &format!("circuit-{i:06}")).as_str()))
        .collect();

    // Baseline: the same loop (build each tick's batch) without the writer.
    let c0 = thread_cpu();
    let mut sink = 0usize;
    for t in 0..secs {
        let b = batch(&keys, T0 + t);
        sink = sink.wrapping_add(b.rows.len());
        drop(std::hint::black_box(b));
    }
    let base = thread_cpu().saturating_sub(c0);

    // With the writer: what its thread does per tick.
    let c0 = thread_cpu();
    let mut written = 0usize;
    for t in 0..secs {
        let ts = T0 + t;
        let b = batch(&keys, ts);
        store.record(ts, &b.rows);
        if t % lqos_history::FLUSH_EVERY_SECS == lqos_history::FLUSH_EVERY_SECS - 1 {
            written += store.flush().expect("flush");
        }
        if t % lqos_history::PRUNE_EVERY_SECS == lqos_history::PRUNE_EVERY_SECS - 1 {
            store.prune(ts).expect("prune");
        }
    }
    written += store.flush().expect("flush");
    let with = thread_cpu().saturating_sub(c0);
    let writer = with.saturating_sub(base);
    let pct = |d: Duration| d.as_secs_f64() / secs as f64 * 100.0;
    let bytes = store.disk_bytes();
    eprintln!("history bench: {circuits} circuits, {secs} simulated 1 s ticks ({sink} rows built)");
    eprintln!(
        "  baseline loop (build batches only): {:8.3} s CPU = {:6.3} % of a core",
        base.as_secs_f64(),
        pct(base)
    );
    eprintln!(
        "  same loop + writer:                 {:8.3} s CPU = {:6.3} % of a core",
        with.as_secs_f64(),
        pct(with)
    );
    eprintln!(
        "  writer alone (difference):          {:8.3} s CPU = {:6.3} % of a core (target <= 2 %); ratio with/base {:.2}",
        writer.as_secs_f64(),
        pct(writer),
        with.as_secs_f64() / base.as_secs_f64().max(1e-9)
    );
    // Disk: points on disk now, per tier, and the file's bytes per point.
    let one_s = secs.min(600 + 60) * circuits;
    let one_m = (secs / 60) * circuits;
    let quarter = (secs / 900) * circuits;
    let points = one_s + one_m + quarter;
    let per_point = bytes as f64 / points as f64;
    eprintln!(
        "  disk: {bytes} B after the run ({written} points written; ~{points} kept) = {per_point:.1} B per kept point"
    );
    // Per 1,000 circuits, from the measured bytes per point: the 1 s tier is a fixed 10 min
    // window (600 points), the 1 min tier fills for 48 h (1440 points a day), the 15 min tier
    // grows by 96 points a day for 90 days.
    let mb = |pts: f64| pts * per_point * 1000.0 / 1e6;
    eprintln!(
        "  per 1,000 circuits: day 1 {:.1} MB (600 x 1 s + 1440 x 1 min + 96 x 15 min points); then +{:.1} MB/day on day 2, +{:.2} MB/day after 48 h; {:.0} MB at 90 days (steady state)",
        mb(600.0 + 1440.0 + 96.0),
        mb(1440.0 + 96.0),
        mb(96.0),
        mb(600.0 + 2880.0 + 96.0 * 90.0)
    );
    assert!(written > 0);
}

/// Benchmark (ignored; `bench/history_bench.sh worst`): the cost of a worst-first ranking over
/// the history store's long windows at N circuits (default 10,000) plus N/40 nodes: one
/// `Store::summarize` scan (what lqosd does, then caches for 30 s) plus the ranking on top
/// (key lookups and a sort), against the naive baseline in the same run, one `query` per
/// series. The store holds 25 hours: 15 min points for the day, 1 min points for the last hour.
#[test]
#[ignore = "benchmark: bench/history_bench.sh worst"]
fn worst_ranking_over_history_windows() {
    use lqos_bus::HistoryRange;
    use lqos_history::store::{TIER_1M, TIER_15M};
    use std::time::Instant;
    let circuits = env_u64("HISTORY_BENCH_CIRCUITS", 10_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("history.redb"), 4096 << 20).expect("open");
    let ids: Vec<String> = (0..circuits).map(|i| format!("circuit-{i:06}")).collect();
    let keys: Vec<Arc<str>> = ids
        .iter()
        .map(|id| Arc::from(series_key(HistoryKind::Circuit, id).as_str()))
        .chain(
            (0..circuits / 40)
                .map(|i| Arc::from(series_key(HistoryKind::Node, &format!("AP-{i}")).as_str())),
        )
        .collect();
    let fill = Instant::now();
    // A day of quarter hours (one tick each), then an hour of minutes.
    let mut ts = T0;
    for _ in 0..96 {
        store.record(ts, &batch(&keys, ts).rows);
        store.flush().expect("flush");
        store.prune(ts).expect("prune");
        ts += 900;
    }
    for _ in 0..61 {
        store.record(ts, &batch(&keys, ts).rows);
        store.flush().expect("flush");
        ts += 60;
    }
    store.prune(ts).expect("prune");
    let now = ts - 60;
    eprintln!(
        "worst bench: {circuits} circuits + {} nodes, store filled in {:.1} s, {} B on disk",
        keys.len() as u64 - circuits,
        fill.elapsed().as_secs_f64(),
        store.disk_bytes()
    );
    let rank = |summary: &std::collections::HashMap<String, lqos_history::WindowSummary>| {
        let mut key = String::new();
        let mut ranked: Vec<(usize, f64)> = ids
            .iter()
            .enumerate()
            .filter_map(|(i, id)| {
                key.clear();
                key.push_str("c:");
                key.push_str(id);
                let s = summary.get(key.as_str())?;
                (s.rtt_points >= 3).then(|| (i, s.access_p90_ms().unwrap_or(0.0)))
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(20);
        ranked.len()
    };
    for (label, tier, secs, range) in [
        ("1h (1 min points)", TIER_1M, 3_600u64, HistoryRange::Hour1),
        ("24h (15 min points)", TIER_15M, 86_400, HistoryRange::Hours24),
    ] {
        // Baseline: one query per circuit (what a ranking without a scan would do).
        let t = Instant::now();
        let mut points = 0usize;
        for id in &ids {
            points += store.query(HistoryKind::Circuit, id, range, now).expect("query").len();
        }
        let naive = t.elapsed();
        let mut best = std::time::Duration::MAX;
        let mut series = 0;
        let mut top = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let summary = store.summarize(tier, now - secs, now).expect("summarize");
            top = rank(&summary);
            series = summary.len();
            best = best.min(t.elapsed());
        }
        eprintln!(
            "  {label}: scan + rank {:8.1} ms ({series} series, top {top}); baseline {circuits} queries {:8.1} ms ({points} points); ratio scan/baseline {:.2}",
            best.as_secs_f64() * 1e3,
            naive.as_secs_f64() * 1e3,
            best.as_secs_f64() / naive.as_secs_f64().max(1e-9)
        );
    }
}
