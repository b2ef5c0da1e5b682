//! Feeds the history store ([`lqos_history`]) from the stats tick and answers `History`.
//!
//! Each tick builds one [`Batch`] (a sample per circuit and per node: rates, RTT percentiles
//! of the 10 s window per path, retransmits, TCP packets and drops since the previous tick)
//! and hands it to the store's writer thread through a bounded channel: the apply task never
//! waits for a disk write. Series keys are built once per applied plan.

use std::path::Path;
use std::sync::Arc;

use lqos_bus::{CommandError, HistoryKind, HistoryRange, Response, RttPaths, RttSummary};
use lqos_history::{Batch, History, Sample, series_key};
use lqos_plan::Plan;

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

    /// The store.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The store, shared (for a reader on another thread).
    pub fn shared(&self) -> Arc<History> {
        self.history.clone()
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
            batch.rows.push((
                key.clone(),
                Sample {
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
                },
            ));
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
            batch.rows.push((
                key.clone(),
                Sample {
                    down_bps: n.download_bps,
                    up_bps: n.upload_bps,
                    rtt_access: access,
                    rtt_upstream: upstream,
                    retransmits: [delta(retx[0], prev.0[0]), delta(retx[1], prev.0[1])],
                    drops: delta(n.drops, prev.1),
                    tcp_packets: [delta(tcp[0], prev.2[0]), delta(tcp[1], prev.2[1])],
                },
            ));
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
    match feed.history.query(kind, id, range, lqos_history::unix_now()) {
        Ok(series) => Response::History(Box::new(series)),
        Err(e) => Response::Error(CommandError::Internal { message: e.to_string() }),
    }
}
