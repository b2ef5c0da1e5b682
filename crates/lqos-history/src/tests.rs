//! Store behaviour: downsampling, retention, ranges, restarts, the disk bound.

use std::sync::Arc;

use lqos_bus::{HistoryKind, HistoryRange};

use crate::{Batch, History, Sample, Store, series_key};

/// A day boundary (so every tier's buckets start here).
const T0: u64 = 1_800_000_000 - 1_800_000_000 % 86_400;

fn key(id: &str) -> Arc<str> {
    Arc::from(series_key(HistoryKind::Circuit, id).as_str())
}

fn sample(down: u64) -> Sample {
    Sample {
        down_bps: down * 1000,
        up_bps: 2000,
        rtt_access: Some([1.0, 2.0, down as f64 / 10.0]),
        rtt_upstream: None,
        retransmits: [1, 0],
        drops: 0,
        tcp_packets: [100, 10],
    }
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Store::open(&dir.path().join("h.redb"), 1 << 30).expect("open");
    (dir, s)
}

/// Records `secs` one-second ticks from `T0` for circuit `c1` (down rate = second index).
fn fill(s: &Store, from: u64, secs: u64) {
    let k = key("c1");
    for i in from..from + secs {
        s.record(T0 + i, &[(k.clone(), sample(i))]);
        if i % 10 == 9 {
            s.flush().expect("flush");
        }
    }
}

#[test]
fn one_second_points_downsample_into_minutes_and_quarter_hours() {
    let (_d, s) = store();
    fill(&s, 0, 1900);
    let now = T0 + 1899;
    let ten = s.query(HistoryKind::Circuit, "c1", HistoryRange::Minutes10, now).expect("10m");
    assert_eq!(ten.len(), 601, "10 minutes of 1 s points, both ends included");
    assert_eq!(ten[0].t, now - 600);
    assert_eq!(ten.last().map(|p| p.down_bps), Some(1899 * 1000));

    let hour = s.query(HistoryKind::Circuit, "c1", HistoryRange::Hour1, now).expect("1h");
    // Minutes 0..=30 are complete (the 31st is still open).
    assert_eq!(hour.len(), 31);
    assert_eq!(hour[0].t, T0);
    // Rates are stored in kbit/s, rounded up.
    assert_eq!(
        hour[0].down_bps,
        ((0..60).sum::<u64>() * 1000 / 60).div_ceil(1000) * 1000,
        "mean rate"
    );
    assert_eq!(hour[0].retransmits.down, 60, "summed retransmits");
    let rtt = hour[1].rtt_access_ms.expect("rtt");
    assert_eq!((rtt.p50, rtt.p90), (1.0, 2.0), "mean p50/p90");
    assert!((rtt.p99 - 11.9).abs() < 1e-9, "max p99, got {}", rtt.p99);

    let week = s.query(HistoryKind::Circuit, "c1", HistoryRange::Days7, now).expect("7d");
    assert_eq!(week.len(), 2, "two complete quarter hours");
    assert_eq!(week[1].t, T0 + 900);
    assert_eq!(week[1].down_bps, ((900..1800).sum::<u64>() * 1000 / 900).div_ceil(1000) * 1000);
    assert_eq!(week[1].retransmits.down, 900);
}

#[test]
fn every_range_answers_only_its_window_and_unknown_series_are_empty() {
    let (_d, s) = store();
    fill(&s, 0, 3 * 3600);
    let now = T0 + 3 * 3600 - 1;
    for range in HistoryRange::ALL {
        let pts = s.query(HistoryKind::Circuit, "c1", range, now).expect("query");
        assert!(!pts.is_empty(), "{range:?}");
        assert!(pts.iter().all(|p| p.t + range.secs() >= now && p.t <= now), "{range:?}");
        assert!(pts.windows(2).all(|w| w[0].t < w[1].t), "sorted {range:?}");
        let none = s.query(HistoryKind::Circuit, "nobody", range, now).expect("query");
        assert!(none.is_empty());
        let node = s.query(HistoryKind::Node, "c1", range, now).expect("query");
        assert!(node.is_empty(), "a node does not see a circuit's series");
    }
    // A window entirely before any data is empty, not an error.
    let before = s.query(HistoryKind::Circuit, "c1", HistoryRange::Hour1, T0 - 7200).expect("q");
    assert!(before.is_empty());
    // The whole 24 h range from 1 min points: 180 complete minutes.
    let day = s.query(HistoryKind::Circuit, "c1", HistoryRange::Hours24, now).expect("24h");
    assert_eq!(day.len(), 179, "the last minute is still open");
}

#[test]
fn retention_drops_each_tier_after_its_time() {
    let (_d, s) = store();
    fill(&s, 0, 1200);
    // Twelve minutes later: the 1 s tier is empty, the minutes are still there.
    let later = T0 + 1200 + 720;
    s.record(later, &[]);
    s.flush().expect("flush");
    s.prune(later).expect("prune");
    let ten = s.query(HistoryKind::Circuit, "c1", HistoryRange::Minutes10, later).expect("q");
    assert!(ten.is_empty(), "{} 1 s points outlived 10 min", ten.len());
    let day = s.query(HistoryKind::Circuit, "c1", HistoryRange::Hours24, later).expect("q");
    assert_eq!(day.len(), 20, "the 20 minutes (the 20th closed by the later tick)");
    // 49 hours later the minutes are gone, the quarter hours stay.
    let much_later = T0 + 49 * 3600;
    s.prune(much_later).expect("prune");
    assert!(
        s.query(HistoryKind::Circuit, "c1", HistoryRange::Hours24, much_later)
            .expect("q")
            .is_empty()
    );
    let q = s.query(HistoryKind::Circuit, "c1", HistoryRange::Days7, much_later).expect("q");
    assert_eq!(q.len(), 2);
    // 91 days later nothing is left.
    let gone = T0 + 91 * 86_400;
    s.prune(gone).expect("prune");
    assert!(s.query(HistoryKind::Circuit, "c1", HistoryRange::Days90, gone).expect("q").is_empty());
}

#[test]
fn history_survives_a_restart_and_a_bad_file_is_moved_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.redb");
    {
        let h = History::start(&path, 1 << 30).expect("start");
        for i in 0..125u64 {
            let batch = Batch { ts: T0 + i, rows: vec![(key("c1"), sample(i))] };
            // The writer may lag: retry instead of losing ticks in the test.
            let mut tries = 0;
            while !h.offer(batch.clone()) && tries < 1000 {
                std::thread::sleep(std::time::Duration::from_millis(1));
                tries += 1;
            }
        }
        h.shutdown();
    }
    let h = History::start(&path, 1 << 30).expect("reopen");
    let now = T0 + 124;
    let s = h.query(HistoryKind::Circuit, "c1", HistoryRange::Minutes10, now).expect("q");
    assert_eq!(s.points.len(), 125, "every 1 s point written at shutdown");
    assert_eq!(s.step_secs, 1);
    let m = h.query(HistoryKind::Circuit, "c1", HistoryRange::Hour1, now).expect("q");
    assert_eq!(m.points.len(), 2, "two closed minutes");
    assert_eq!(m.step_secs, 60);
    h.shutdown();
    drop(h);

    std::fs::write(&path, b"not a database at all").expect("write");
    let h = History::start(&path, 1 << 30).expect("a bad file does not stop lqosd");
    assert!(
        h.query(HistoryKind::Circuit, "c1", HistoryRange::Minutes10, now)
            .expect("q")
            .points
            .is_empty()
    );
    assert!(path.with_extension("redb.old").exists());
}

#[test]
fn disk_use_stays_within_the_budget_and_keeps_the_newest_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("h.redb");
    let budget = 4 << 20;
    let s = Store::open(&path, budget).expect("open");
    let keys: Vec<Arc<str>> = (0..300).map(|i| key(&format!("c{i}"))).collect();
    let mut peak = 0;
    for t in 0..900u64 {
        let rows: Vec<_> = keys.iter().map(|k| (k.clone(), sample(t))).collect();
        s.record(T0 + t, &rows);
        if t % 10 == 9 {
            s.flush().expect("flush");
        }
        if t % 60 == 59 {
            peak = peak.max(s.prune(T0 + t).expect("prune"));
        }
    }
    let size = s.prune(T0 + 900).expect("prune");
    assert!(size <= budget, "{size} bytes on disk over a budget of {budget}");
    let keep = s.retention();
    assert!(peak > budget, "the test must go over the budget to test it ({peak} B)");
    // The coarse tiers give first (down to their floors), then the 1 s tier.
    assert_eq!(keep[2], 86_400, "{keep:?}");
    assert_eq!(keep[1], 3_600, "{keep:?}");
    assert!(keep[0] < 600, "{keep:?}");
    let now = T0 + 899;
    let ten = s.query(HistoryKind::Circuit, "c7", HistoryRange::Minutes10, now).expect("q");
    assert!(!ten.is_empty() && ten.last().map(|p| p.t) == Some(now), "newest point kept");
}

#[test]
fn summarize_sums_every_series_over_exactly_its_window_from_disk_and_memory() {
    use crate::store::{TIER_1M, TIER_1S};
    let (_d, s) = store();
    let (k1, k2, n1): (Arc<str>, Arc<str>, Arc<str>) = (key("c1"), key("c2"), Arc::from("n:AP 1"));
    // Two hours: c1 has 10 ms p90 and 1 retransmit in 100 packets every second, c2 30 ms
    // p90 only in the second hour, the node no RTT at all.
    for i in 0..7200u64 {
        let c2_rtt = (i >= 3600).then_some([20.0, 30.0, 40.0]);
        s.record(
            T0 + i,
            &[
                (k1.clone(), Sample { rtt_access: Some([5.0, 10.0, 20.0]), ..sample(1) }),
                (k2.clone(), Sample { rtt_access: c2_rtt, retransmits: [0, 0], ..sample(1) }),
                (n1.clone(), Sample { rtt_access: None, ..sample(1) }),
            ],
        );
        // The last 95 s stay in memory.
        if i % 10 == 9 && i < 7100 {
            s.flush().expect("flush");
        }
    }
    let now = T0 + 7199;
    let hour = s.summarize(TIER_1M, now - 3660, now).expect("summarize");
    assert_eq!(hour.len(), 3, "{:?}", hour.keys());
    let c1 = hour["c:c1"];
    // Minutes T0+3540..=T0+7080: 60 closed minutes in the window (T0+7140 is still open).
    assert_eq!(c1.points, 60);
    assert_eq!(c1.rtt_points, 60);
    assert_eq!(c1.access_p90_ms(), Some(10.0));
    assert_eq!(c1.access_p50_ms(), Some(5.0));
    assert_eq!(c1.retransmits, [3600, 0], "60 points x 60 s x 1");
    assert_eq!(c1.tcp_packets, [360_000, 36_000]);
    let c2 = hour["c:c2"];
    assert_eq!(c2.rtt_points, 59, "the minute before the second hour had no RTT");
    assert_eq!(c2.access_p90_ms(), Some(30.0));
    assert_eq!(c2.retransmits, [0, 0]);
    let node = hour["n:AP 1"];
    assert_eq!((node.points, node.rtt_points, node.access_p90_ms()), (60, 0, None));
    // The same from the 1 s tier's memory part alone: only the unflushed seconds.
    let recent = s.summarize(TIER_1S, now - 50, now).expect("1 s");
    assert_eq!(recent["c:c1"].points, 51);
    // Flushing changes nothing: a point is never counted twice.
    let before = s.summarize(TIER_1M, now - 3660, now).expect("before");
    s.flush().expect("flush");
    assert_eq!(s.summarize(TIER_1M, now - 3660, now).expect("after"), before);
    // An empty store or a window before any data: nothing.
    let (_d2, empty) = store();
    assert!(empty.summarize(TIER_1M, now - 3600, now).expect("empty").is_empty());
    assert!(s.summarize(TIER_1M, T0 - 7200, T0 - 1).expect("before data").is_empty());
}

#[test]
fn imported_points_answer_their_ranges_and_merge_with_recorded_ones() {
    let (_d, s) = store();
    let now = T0 + 2 * 86_400;
    // Two days of quarter hours and of minutes, ending before `now`.
    let quarters: Vec<(u64, Sample)> = (0..192).map(|i| (T0 + i * 900, sample(i))).collect();
    let minutes: Vec<(u64, Sample)> = (0..2880).map(|i| (T0 + i * 60, sample(i % 1000))).collect();
    assert_eq!(s.import(900, &[(key("c1"), quarters)]).expect("import"), 192);
    assert_eq!(s.import(60, &[(key("c1"), minutes), (key("c2"), vec![])]).expect("import"), 2880);
    let week = s.query(HistoryKind::Circuit, "c1", HistoryRange::Days7, now).expect("7d");
    assert_eq!(week.len(), 192);
    assert_eq!(week[5].down_bps, 5000, "the imported sample at its time");
    let day = s.query(HistoryKind::Circuit, "c1", HistoryRange::Hours24, now).expect("24h");
    assert_eq!(day.len(), 1440, "the last 24 h of minutes");
    assert!(day.windows(2).all(|w| w[1].t == w[0].t + 60), "oldest first, one a minute");
    // Recorded points land beside imported ones; the imported ones stay.
    s.record(now, &[(key("c1"), sample(7))]);
    s.flush().expect("flush");
    let ten = s.query(HistoryKind::Circuit, "c1", HistoryRange::Minutes10, now).expect("10m");
    assert_eq!(ten.len(), 1);
    assert_eq!(
        s.query(HistoryKind::Circuit, "c1", HistoryRange::Days7, now).expect("q").len(),
        192
    );
    // Only the three tiers' steps exist.
    let err = s.import(30, &[(key("c1"), vec![(T0, sample(1))])]).expect_err("no 30 s tier");
    assert!(err.to_string().contains("no tier has a step of 30 s"), "{err}");
}

#[test]
fn quiet_ticks_store_nothing_answer_zeros_and_count_in_the_coarse_means() {
    let (_d, s) = store();
    let (busy, idle, gone) = (key("busy"), key("idle"), key("gone"));
    s.set_known([busy.clone(), idle.clone()]);
    let quiet = Sample::default();
    // Minute 0: `busy` moves 6 Mbit/s for its first 10 s, then nothing; `idle` and `gone`
    // never move. Minute 1: lqosd is down for its first 30 s, then everything is quiet.
    for i in (0..60).chain(90..120) {
        let b = if i < 10 {
            Sample { down_bps: 6_000_000, tcp_packets: [50, 5], ..Sample::default() }
        } else {
            quiet
        };
        s.record(T0 + i, &[(busy.clone(), b), (idle.clone(), quiet), (gone.clone(), quiet)]);
    }
    s.flush().expect("flush");
    let now = T0 + 119;
    let q = |id: &str, r| s.query(HistoryKind::Circuit, id, r, now).expect("query");
    let ten = q("busy", HistoryRange::Minutes10);
    assert_eq!(ten.len(), 90, "a point per recorded tick, none while lqosd was down");
    assert!(ten.iter().all(|p| !(T0 + 60..T0 + 90).contains(&p.t)), "no points in the gap");
    assert_eq!(ten.iter().filter(|p| p.down_bps > 0).count(), 10);
    assert!(ten[10..].iter().all(|p| p.down_bps == 0 && p.rtt_access_ms.is_none()));
    assert_eq!(q("idle", HistoryRange::Minutes10).len(), 90, "known: zeros, not a gap");
    assert!(q("gone", HistoryRange::Minutes10).is_empty(), "unknown and quiet: nothing");
    // The minute's mean is over its 60 ticks, not over the 10 busy ones.
    let hour = q("busy", HistoryRange::Hour1);
    assert_eq!(hour.len(), 1, "minute 1 is still open");
    assert_eq!(hour[0].down_bps, 1_000_000);
    assert_eq!(hour[0].tcp_packets.down, 500);
    assert_eq!(q("idle", HistoryRange::Hour1).len(), 1);
    assert_eq!(q("idle", HistoryRange::Hour1)[0].down_bps, 0);
    // Quiet series cost no block on disk and are not in summaries; the ticks are neither.
    let sum = s.summarize(crate::store::TIER_1S, T0, now).expect("summarize");
    assert_eq!(sum.keys().collect::<Vec<_>>(), vec!["c:busy"]);
    assert_eq!(sum["c:busy"].points, 10);
    // Once a series leaves the known set, its quiet ticks are no longer answered.
    s.set_known([busy.clone()]);
    assert!(q("idle", HistoryRange::Minutes10).is_empty());
    assert_eq!(q("busy", HistoryRange::Minutes10).len(), 90, "has points: still filled");
}
