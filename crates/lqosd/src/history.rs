//! Feeds the history store ([`lqos_history`]) from the stats tick and answers `History`.
//!
//! Each tick builds one [`Batch`] (a sample per circuit and per node: rates, RTT percentiles
//! of the 10 s window per path, retransmits, TCP packets and drops since the previous tick)
//! and hands it to the store's writer thread through a bounded channel: the apply task never
//! waits for a disk write. Series keys are built once per applied plan.
//!
//! `History` questions never reach the apply task: [`route`] sits between the bus and the
//! apply queue and answers them from the store on blocking threads (at most
//! [`QUERY_THREADS`] at once), so a 90-day chart neither waits behind live-stats questions
//! and ticks nor delays them (under 200 concurrent web clients it did both).

use std::path::Path;
use std::sync::Arc;

use lqos_bus::server::Request;
use lqos_bus::{Command, CommandError, HistoryKind, HistoryRange, Response, RttPaths, RttSummary};
use lqos_history::{Batch, History, Sample, series_key};
use lqos_plan::Plan;
use tokio::sync::mpsc;

use crate::stats::{HistoryRow, StatsTracker};

/// The feed: the store handle plus what turns cumulative counters into per-tick deltas.
#[derive(Debug)]
pub struct HistoryFeed {
    history: Arc<History>,
    /// Keys of the plan's circuits, then its nodes (rebuilt when the plan changes).
    keys: Vec<Arc<str>>,
    /// The plan the keys belong to (circuit and node count plus a fingerprint of the ids).
    plan_mark: (usize, usize, u64),
    /// Previous cumulative retransmits, drops and TCP packets per circuit, then per node.
    prev: Vec<([u64; 2], u64, [u64; 2])>,
    rows: Vec<HistoryRow>,
}

fn triple(s: Option<RttSummary>) -> Option<[f64; 3]> {
    s.filter(|s| s.samples > 0).map(|s| [s.p50, s.p90, s.p99])
}

fn rtt(p: &RttPaths) -> (Option<[f64; 3]>, Option<[f64; 3]>) {
    (triple(p.access), triple(p.upstream))
}

fn mark(plan: &Plan) -> (usize, usize, u64) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for c in &plan.circuits {
        c.id.0.hash(&mut h);
    }
    for n in &plan.nodes {
        n.name.hash(&mut h);
    }
    (plan.circuits.len(), plan.nodes.len(), h.finish())
}

impl HistoryFeed {
    /// Opens the store at `path` with a budget of `max_disk_mb` MiB and starts its writer.
    pub fn open(path: &Path, max_disk_mb: u64) -> Result<HistoryFeed, lqos_history::HistoryError> {
        let h = History::start(path, max_disk_mb.saturating_mul(1 << 20))?;
        Ok(HistoryFeed::new(Arc::new(h)))
    }

    /// A feed over an open store.
    pub fn new(history: Arc<History>) -> HistoryFeed {
        HistoryFeed {
            history,
            keys: Vec::new(),
            plan_mark: (0, 0, 0),
            prev: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// A shared handle on the store (for [`route`] and the insight scans on other threads).
    pub fn shared(&self) -> Arc<History> {
        Arc::clone(&self.history)
    }

    /// The store.
    pub fn history(&self) -> &History {
        &self.history
    }

    fn rekey(&mut self, plan: &Plan) {
        let m = mark(plan);
        if m == self.plan_mark && !self.keys.is_empty() {
            return;
        }
        self.plan_mark = m;
        self.keys = plan
            .circuits
            .iter()
            .map(|c| Arc::from(series_key(HistoryKind::Circuit, &c.id.0).as_str()))
            .chain(
                plan.nodes
                    .iter()
                    .map(|n| Arc::from(series_key(HistoryKind::Node, &n.name).as_str())),
            )
            .collect();
        // The plan's series answer zero points for their quiet ticks (which are not stored).
        self.history.store().set_known(self.keys.iter().cloned());
        // New positions: the first tick gives no delta (previous = current).
        self.prev.clear();
    }

    /// Builds this tick's batch (unix time `ts`) and offers it to the writer; returns false
    /// when the writer was behind and the tick was dropped.
    pub fn tick(&mut self, stats: &StatsTracker, plan: &Plan, ts: u64) -> bool {
        self.rekey(plan);
        stats.history_rows(plan, &mut self.rows);
        let nodes = stats.nodes(plan);
        let fresh = self.prev.is_empty();
        if fresh {
            self.prev = self
                .rows
                .iter()
                .map(|r| (r.retransmits, r.drops, r.tcp_packets))
                .chain(nodes.iter().map(|n| {
                    let q = n.qoe.unwrap_or_default();
                    (
                        [q.retransmits.down, q.retransmits.up],
                        n.drops,
                        [q.tcp_packets.down, q.tcp_packets.up],
                    )
                }))
                .collect();
        }
        let mut batch = Batch { ts, rows: Vec::with_capacity(self.keys.len()) };
        let delta = |now: u64, before: u64| now.saturating_sub(before);
        for (i, r) in self.rows.iter().enumerate() {
            let (Some(key), Some(prev)) = (self.keys.get(i), self.prev.get_mut(i)) else { break };
            let (access, upstream) = rtt(&r.rtt);
            let sample = Sample {
                down_bps: r.bps[0],
                up_bps: r.bps[1],
                rtt_access: access,
                rtt_upstream: upstream,
                retransmits: [
                    delta(r.retransmits[0], prev.0[0]),
                    delta(r.retransmits[1], prev.0[1]),
                ],
                drops: delta(r.drops, prev.1),
                tcp_packets: [
                    delta(r.tcp_packets[0], prev.2[0]),
                    delta(r.tcp_packets[1], prev.2[1]),
                ],
            };
            // Quiet rows are not stored (the store answers zeros for them): not even sent.
            if !sample.is_quiet() {
                batch.rows.push((key.clone(), sample));
            }
            *prev = (r.retransmits, r.drops, r.tcp_packets);
        }
        let base = self.rows.len();
        for (j, n) in nodes.iter().enumerate() {
            let (Some(key), Some(prev)) = (self.keys.get(base + j), self.prev.get_mut(base + j))
            else {
                break;
            };
            let q = n.qoe.unwrap_or_default();
            let (access, upstream) = rtt(&q.rtt_ms_10s);
            let retx = [q.retransmits.down, q.retransmits.up];
            let tcp = [q.tcp_packets.down, q.tcp_packets.up];
            let sample = Sample {
                down_bps: n.download_bps,
                up_bps: n.upload_bps,
                rtt_access: access,
                rtt_upstream: upstream,
                retransmits: [delta(retx[0], prev.0[0]), delta(retx[1], prev.0[1])],
                drops: delta(n.drops, prev.1),
                tcp_packets: [delta(tcp[0], prev.2[0]), delta(tcp[1], prev.2[1])],
            };
            if !sample.is_quiet() {
                batch.rows.push((key.clone(), sample));
            }
            *prev = (retx, n.drops, tcp);
        }
        self.history.offer(batch)
    }
}

/// The answer to `History` from `feed` (Unavailable when history is off). A circuit or node
/// that is not in the store (unknown, or nothing recorded in the range) is an empty series:
/// a removed circuit keeps its history until retention drops it.
pub fn answer(
    feed: Option<&HistoryFeed>,
    kind: HistoryKind,
    id: &str,
    range: HistoryRange,
) -> Response {
    let Some(feed) = feed else {
        return Response::Error(CommandError::Unavailable {
            message: "history is off ([history] enabled = false, or the store could not open)"
                .into(),
        });
    };
    answer_from(&feed.history, kind, id, range)
}

/// The answer to `History` from an open store.
pub fn answer_from(
    history: &History,
    kind: HistoryKind,
    id: &str,
    range: HistoryRange,
) -> Response {
    match history.query(kind, id, range, lqos_history::unix_now()) {
        Ok(series) => Response::History(Box::new(series)),
        Err(e) => Response::Error(CommandError::Internal { message: e.to_string() }),
    }
}

/// `History` questions answered at once by [`route`] (each on a blocking thread); more wait.
pub const QUERY_THREADS: usize = 2;

/// Passes bus requests on to the apply task (`apply`), except `History`, which it answers
/// itself from `history` on blocking threads, at most [`QUERY_THREADS`] at a time. Without a
/// store every request goes to the apply task (which answers `History` with Unavailable).
/// Ends when the bus side closes or the apply task is gone.
pub async fn route(
    mut bus: mpsc::Receiver<Request>,
    apply: mpsc::Sender<Request>,
    history: Option<Arc<History>>,
) {
    let turns = Arc::new(tokio::sync::Semaphore::new(QUERY_THREADS));
    while let Some(req) = bus.recv().await {
        let Some(h) = history.as_ref().filter(|_| matches!(req.command, Command::History { .. }))
        else {
            // Forwarded from its own task so that a full apply queue holds up only the
            // requests waiting for the apply task, never the history answers.
            if apply.is_closed() {
                break;
            }
            let apply = apply.clone();
            tokio::spawn(async move {
                // A refused send drops the request; the bus answers "lqosd dropped the request".
                let _ = apply.send(req).await;
            });
            continue;
        };
        let (h, turns) = (Arc::clone(h), Arc::clone(&turns));
        tokio::spawn(async move {
            let Ok(_turn) = turns.acquire_owned().await else { return };
            let answered = tokio::task::spawn_blocking(move || {
                if let Command::History { kind, id, range } = req.command {
                    let _ = req.reply.send(answer_from(&h, kind, &id, range));
                }
            })
            .await;
            if let Err(e) = answered {
                tracing::warn!(error = %e, "history query task failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    //! The `History` answer from a real store: every range's step and window, oldest first,
    //! empty answers, and history kept across a restart of the store (as when lqosd restarts).

    use std::sync::Arc;

    use lqos_bus::{HistoryKind, HistoryRange, Response};
    use lqos_history::{Sample, series_key};

    use super::{HistoryFeed, answer};

    fn sample(i: u64) -> Sample {
        Sample {
            down_bps: 1000 * (i % 1000 + 1),
            up_bps: 1000,
            rtt_access: Some([5.0, 9.0, 20.0]),
            rtt_upstream: None,
            retransmits: [i % 3, 0],
            drops: 0,
            tcp_packets: [100, 10],
        }
    }

    /// Every tier filled through `import` for circuit c1 and node AP_1, ending `now - 1 step`
    /// (complete points only), and a few 1 s points offered the way lqosd's tick does.
    fn seed(feed: &HistoryFeed, now: u64) {
        for (step, keep) in [(1u64, 600u64), (60, 48 * 3600), (900, 90 * 86_400)] {
            let last = now - now % step - step;
            let points: Vec<(u64, Sample)> =
                (0..keep / step).map(|i| (last - i * step, sample(i))).collect();
            let rows = [HistoryKind::Circuit, HistoryKind::Node].map(|k| {
                let id = if k == HistoryKind::Circuit { "c1" } else { "AP_1" };
                (Arc::from(series_key(k, id).as_str()), points.clone())
            });
            feed.history().store().import(step, &rows).expect("import");
        }
    }

    fn series(
        feed: &HistoryFeed,
        kind: HistoryKind,
        id: &str,
        range: HistoryRange,
    ) -> lqos_bus::HistorySeries {
        match answer(Some(feed), kind, id, range) {
            Response::History(s) => *s,
            other => panic!("{kind:?} {id} {range:?}: {other:?}"),
        }
    }

    #[test]
    fn every_range_answers_its_step_within_its_window_oldest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let feed = HistoryFeed::open(&dir.path().join("history.redb"), 64).expect("open");
        let now = lqos_history::unix_now();
        seed(&feed, now);
        let expected_step = [1, 60, 60, 900, 900, 900];
        for (range, step) in HistoryRange::ALL.into_iter().zip(expected_step) {
            for (kind, id) in [(HistoryKind::Circuit, "c1"), (HistoryKind::Node, "AP_1")] {
                let s = series(&feed, kind, id, range);
                assert_eq!(s.step_secs, step, "{range:?}");
                assert_eq!((s.kind, s.id.as_str(), s.range), (kind, id, range));
                assert!(s.now >= now, "{range:?}");
                let from = s.now - range.secs();
                assert!(!s.points.is_empty(), "{range:?} {id}");
                assert!(
                    s.points.iter().all(|p| p.t >= from && p.t <= s.now),
                    "{range:?} {id}: a point outside [{from}, {}]",
                    s.now
                );
                assert!(s.points.windows(2).all(|w| w[0].t < w[1].t), "{range:?}: oldest first");
                assert!(
                    s.points.windows(2).all(|w| (w[1].t - w[0].t) % step == 0),
                    "{range:?}: points on the step"
                );
                // The window is full: one point per step, give or take the ends.
                let want = range.secs() / step;
                let got = s.points.len() as u64;
                assert!(
                    got + 2 >= want && got <= want + 1,
                    "{range:?} {id}: {got} points, want ~{want}"
                );
            }
        }
    }

    #[test]
    fn unknown_series_and_ranges_without_points_are_empty_lists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let feed = HistoryFeed::open(&dir.path().join("history.redb"), 64).expect("open");
        let now = lqos_history::unix_now();
        // Only 1 s points: the minute and quarter-hour tiers have nothing yet.
        let points: Vec<(u64, Sample)> = (0..30).map(|i| (now - 30 + i, sample(i))).collect();
        let rows = [(Arc::from(series_key(HistoryKind::Circuit, "c1").as_str()), points)];
        feed.history().store().import(1, &rows).expect("import");
        assert_eq!(
            series(&feed, HistoryKind::Circuit, "c1", HistoryRange::Minutes10).points.len(),
            30
        );
        for range in HistoryRange::ALL.into_iter().skip(1) {
            let s = series(&feed, HistoryKind::Circuit, "c1", range);
            assert!(s.points.is_empty(), "{range:?}: {} points", s.points.len());
        }
        for range in HistoryRange::ALL {
            assert!(series(&feed, HistoryKind::Circuit, "nobody", range).points.is_empty());
            assert!(series(&feed, HistoryKind::Node, "c1", range).points.is_empty(), "kinds apart");
        }
        // History off is an answer too (503 in the API), not a panic.
        assert!(matches!(
            answer(None, HistoryKind::Circuit, "c1", HistoryRange::Hour1),
            Response::Error(lqos_bus::CommandError::Unavailable { .. })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn history_is_answered_beside_a_busy_apply_task_and_the_rest_goes_to_it() {
        use lqos_bus::Command;
        use lqos_bus::server::{Request, dispatch};
        use tokio::sync::mpsc;

        let dir = tempfile::tempdir().expect("tempdir");
        let feed = HistoryFeed::open(&dir.path().join("history.redb"), 64).expect("open");
        seed(&feed, lqos_history::unix_now());
        let (bus_tx, bus_rx) = mpsc::channel::<Request>(8);
        // The apply task is busy: nobody reads its queue until the end of the test.
        let (apply_tx, mut apply_rx) = mpsc::channel::<Request>(1);
        let router = tokio::spawn(super::route(bus_rx, apply_tx, Some(feed.shared())));
        let ping = {
            let bus_tx = bus_tx.clone();
            tokio::spawn(async move { dispatch(&bus_tx, Command::Ping).await })
        };
        let ask =
            |id: &str, range| Command::History { kind: HistoryKind::Circuit, id: id.into(), range };
        for r in HistoryRange::ALL {
            match dispatch(&bus_tx, ask("c1", r)).await {
                Response::History(s) => assert!(!s.points.is_empty(), "{r:?}"),
                other => panic!("{r:?}: {other:?}"),
            }
        }
        // The ping waits for the apply task, which gets it.
        assert!(!ping.is_finished());
        let req = apply_rx.recv().await.expect("the ping reached the apply task");
        assert_eq!(req.command, Command::Ping);
        let _ = req.reply.send(Response::Pong);
        assert_eq!(ping.await.expect("ping"), Response::Pong);
        // Without a store, History goes to the apply task like everything else.
        let (bus2_tx, bus2_rx) = mpsc::channel::<Request>(8);
        let (apply2_tx, mut apply2_rx) = mpsc::channel::<Request>(8);
        let router2 = tokio::spawn(super::route(bus2_rx, apply2_tx, None));
        let q =
            tokio::spawn(async move { dispatch(&bus2_tx, ask("c1", HistoryRange::Hour1)).await });
        let req = apply2_rx.recv().await.expect("forwarded");
        assert!(matches!(req.command, Command::History { .. }));
        let _ = req.reply.send(Response::Ack);
        assert_eq!(q.await.expect("answer"), Response::Ack);
        router.abort();
        router2.abort();
    }

    #[test]
    fn history_written_before_a_restart_is_answered_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state").join("history.redb");
        let now = lqos_history::unix_now();
        let before: Vec<(HistoryRange, usize)> = {
            let feed = HistoryFeed::open(&path, 64).expect("open");
            seed(&feed, now);
            // And 1 s points the way the tick hands them over (the writer thread, not import).
            for i in 0..5 {
                let batch = lqos_history::Batch {
                    ts: now - 5 + i,
                    rows: vec![(
                        Arc::from(series_key(HistoryKind::Circuit, "c2").as_str()),
                        sample(i),
                    )],
                };
                assert!(feed.history().offer(batch), "the writer takes a tick");
            }
            let counts = HistoryRange::ALL
                .into_iter()
                .map(|r| (r, series(&feed, HistoryKind::Circuit, "c1", r).points.len()))
                .collect();
            // lqosd's shutdown: the feed (and with it the writer) goes away.
            drop(feed);
            counts
        };
        let feed = HistoryFeed::open(&path, 64).expect("reopen");
        for (range, n) in before {
            let after = series(&feed, HistoryKind::Circuit, "c1", range).points.len();
            // A second may have passed: the 1 s window can lose its oldest point.
            assert!(after + 1 >= n && after > 0, "{range:?}: {n} points before, {after} after");
        }
        let c2 = series(&feed, HistoryKind::Circuit, "c2", HistoryRange::Minutes10);
        assert_eq!(c2.points.len(), 5, "the writer's unflushed ticks were written at shutdown");
    }
}
