//! "Who is suffering, and is it my AP, my backhaul or the Internet?": the answers to `Worst`,
//! `QoeDistribution` and `UnknownAddresses`.
//!
//! - **Worst first.** Circuits or nodes ranked by p90 access RTT or by retransmit ratio
//!   (retransmits / TCP packets, both directions combined), highest first. The live windows
//!   (10 s, 60 s) come from the RTT tracker ([`crate::qoe`]): a circuit's window is its slot's,
//!   a node's merges the histograms and counts of every circuit below it, so its p90 is the
//!   p90 of all their samples. The long windows (1 h from 1 min points, 24 h from 15 min
//!   points) come from the history store in one range scan ([`lqos_history::Store::summarize`])
//!   whose result is cached for [`HISTORY_CACHE`]: a point's p90 is its interval's, and a
//!   window's p90 is the mean over the points that had one. Nodes use their own stored series.
//!   Entries with too few samples are left out ([`MIN_RTT_SAMPLES`], [`MIN_TCP_PACKETS`],
//!   [`MIN_RTT_POINTS`], [`MIN_TCP_PACKETS_HISTORY`]); the answer states the bound it used.
//! - **Distribution.** Circuits by p90 access RTT over the last 60 s, in doubling buckets
//!   from 1 ms ([`DIST_EDGES_MS`]), circuits under [`MIN_RTT_SAMPLES`] left out.
//! - **Unknown addresses.** Every [`UNKNOWN_PERIOD`] the data plane's sampled table of
//!   unmapped addresses is read and emptied; rates are that period's bytes over its length.
//!   lqosd keeps at most [`UNKNOWN_KEEP`] addresses, forgets one idle for [`UNKNOWN_FORGET`],
//!   and answers at most [`lqos_bus::UNKNOWN_LIMIT_MAX`], busiest first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lqos_bpf::abi::PATH_ACCESS;
use lqos_bus::{
    CommandError, DistributionBucket, PerDirection, QoeDistribution, QoeWindow, Response,
    UNKNOWN_LIMIT_MAX, UnknownEntry, UnknownList, WORST_LIMIT_MAX, WorstBy, WorstEntry,
    WorstKind, WorstList,
};
use lqos_history::WindowSummary;
use lqos_history::store::{TIER_1M, TIER_15M};
use lqos_plan::Plan;

use crate::history::HistoryFeed;
use crate::kernel::UnknownAddress;
use crate::qoe::{WINDOW_LONG, WINDOW_SHORT, Window};
use crate::stats::StatsTracker;

/// Live windows: fewer access RTT samples than this give no RTT rank.
pub const MIN_RTT_SAMPLES: u64 = 20;
/// Live windows: fewer TCP packets (both directions) than this give no retransmit rank.
pub const MIN_TCP_PACKETS: u64 = 200;
/// History windows: fewer stored points with an access RTT than this give no RTT rank
/// (minutes for 1 h, quarter hours for 24 h).
pub const MIN_RTT_POINTS: u64 = 3;
/// History windows: fewer TCP packets than this give no retransmit rank.
pub const MIN_TCP_PACKETS_HISTORY: u64 = 1_000;
/// How long a history-window summary is reused (its 1 min points change once a minute).
pub const HISTORY_CACHE: Duration = Duration::from_secs(30);
/// Upper edges of the distribution's buckets, ms (the last bucket is open).
pub const DIST_EDGES_MS: [f64; 11] =
    [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
/// How often the unknown-address table is read and emptied.
pub const UNKNOWN_PERIOD: Duration = Duration::from_secs(10);
/// Most unknown addresses lqosd tracks.
pub const UNKNOWN_KEEP: usize = 1_000;
/// An unknown address idle this long is forgotten.
pub const UNKNOWN_FORGET: Duration = Duration::from_secs(600);

/// What ranks one circuit or node.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Measure {
    p50: Option<f64>,
    p90: Option<f64>,
    rtt_samples: u64,
    retransmits: [u64; 2],
    tcp_packets: [u64; 2],
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

impl Measure {
    fn from_window(w: &Window) -> Measure {
        let samples = w.hist.count(PATH_ACCESS);
        let q = |p| w.hist.quantile_us(PATH_ACCESS, p).map(|us| us / 1000.0);
        Measure {
            p50: if samples > 0 { q(0.5) } else { None },
            p90: if samples > 0 { q(0.9) } else { None },
            rtt_samples: samples,
            retransmits: w.retransmits,
            tcp_packets: w.tcp_packets,
        }
    }

    fn from_summary(s: &WindowSummary) -> Measure {
        Measure {
            p50: s.access_p50_ms(),
            p90: s.access_p90_ms(),
            rtt_samples: u64::from(s.rtt_points),
            retransmits: s.retransmits,
            tcp_packets: s.tcp_packets,
        }
    }

    fn tcp(&self) -> u64 {
        self.tcp_packets[0].saturating_add(self.tcp_packets[1])
    }

    fn retransmit_ratio(&self) -> Option<f64> {
        ratio(self.retransmits[0].saturating_add(self.retransmits[1]), self.tcp())
    }

    /// The ranking key, `None` when there is too little to rank on.
    fn key(&self, by: WorstBy, min: u64) -> Option<f64> {
        match by {
            WorstBy::Rtt => self.p90.filter(|_| self.rtt_samples >= min),
            WorstBy::Retransmits => self.retransmit_ratio().filter(|_| self.tcp() >= min),
        }
    }
}

/// The minimum sample count and its unit for a ranking.
pub fn min_samples(by: WorstBy, window: QoeWindow) -> (u64, &'static str) {
    match (by, window.from_history()) {
        (WorstBy::Rtt, false) => (MIN_RTT_SAMPLES, "rtt samples"),
        (WorstBy::Retransmits, false) => (MIN_TCP_PACKETS, "tcp packets"),
        (WorstBy::Rtt, true) => (MIN_RTT_POINTS, "points with rtt"),
        (WorstBy::Retransmits, true) => (MIN_TCP_PACKETS_HISTORY, "tcp packets"),
    }
}

/// What `Worst` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorstQuery {
    /// Circuits or nodes.
    pub kind: WorstKind,
    /// The ranking key.
    pub by: WorstBy,
    /// The window.
    pub window: QoeWindow,
    /// Most entries (capped at [`WORST_LIMIT_MAX`]).
    pub limit: usize,
}

/// A history-window summary and when it was made.
type Cached = (Instant, u64, Arc<HashMap<String, WindowSummary>>);

/// The state behind the answers: the history summaries' cache and the unknown addresses.
#[derive(Debug, Default)]
pub struct Insight {
    cache: HashMap<QoeWindow, Cached>,
    /// Unmapped addresses seen recently.
    pub unknown: UnknownTracker,
}

fn unix_now() -> u64 {
    lqos_history::unix_now()
}

impl Insight {
    /// Forgets cached history summaries (a new plan: other circuits, other names).
    pub fn forget_cache(&mut self) {
        self.cache.clear();
    }

    /// The summary of a history window, from the cache when it is fresh enough.
    fn summary(
        &mut self,
        feed: &HistoryFeed,
        window: QoeWindow,
        now: Instant,
    ) -> Result<(u64, Arc<HashMap<String, WindowSummary>>), CommandError> {
        if let Some((at, unix, s)) = self.cache.get(&window)
            && now.saturating_duration_since(*at) < HISTORY_CACHE
        {
            return Ok((*unix, s.clone()));
        }
        let tier = if window == QoeWindow::Hours24 { TIER_15M } else { TIER_1M };
        let unix = unix_now();
        let from = unix.saturating_sub(window.secs());
        let started = Instant::now();
        let s = feed
            .history()
            .store()
            .summarize(tier, from, unix)
            .map_err(|e| CommandError::Internal { message: e.to_string() })?;
        tracing::debug!(
            window = window.as_str(),
            series = s.len(),
            ms = started.elapsed().as_millis() as u64,
            "history window summarized"
        );
        let s = Arc::new(s);
        self.cache.insert(window, (now, unix, s.clone()));
        Ok((unix, s))
    }

    /// The answer to `Worst`.
    pub fn worst(
        &mut self,
        stats: &StatsTracker,
        plan: Option<&Plan>,
        feed: Option<&HistoryFeed>,
        q: WorstQuery,
    ) -> Response {
        let WorstQuery { kind, by, window, limit } = q;
        let limit = limit.min(WORST_LIMIT_MAX);
        let (min, unit) = min_samples(by, window);
        let Some(plan) = plan else {
            return Response::Worst(Box::new(WorstList {
                kind,
                by,
                window,
                min_samples: min,
                sample_unit: unit.into(),
                ranked: 0,
                total: 0,
                computed_unix: unix_now(),
                entries: Vec::new(),
            }));
        };
        let now = Instant::now();
        let (computed_unix, measures) = if window.from_history() {
            let Some(feed) = feed else {
                return Response::Error(CommandError::Unavailable {
                    message: format!(
                        "the {} window comes from the history store, which is off ([history] enabled = false, or the store could not open)",
                        window.as_str()
                    ),
                });
            };
            let (unix, summary) = match self.summary(feed, window, now) {
                Ok(s) => s,
                Err(e) => return Response::Error(e),
            };
            let prefix = if kind == WorstKind::Circuits { "c:" } else { "n:" };
            let mut key = String::new();
            let mut get = |id: &str| {
                key.clear();
                key.push_str(prefix);
                key.push_str(id);
                summary.get(key.as_str()).map(Measure::from_summary).unwrap_or_default()
            };
            let m: Vec<Measure> = match kind {
                WorstKind::Circuits => plan.circuits.iter().map(|c| get(&c.id.0)).collect(),
                WorstKind::Nodes => plan.nodes.iter().map(|n| get(&n.name)).collect(),
            };
            (unix, m)
        } else {
            let span = if window == QoeWindow::Secs10 { WINDOW_SHORT } else { WINDOW_LONG };
            let circuits = stats.circuit_windows(plan, span);
            let m = match kind {
                WorstKind::Circuits => circuits
                    .iter()
                    .map(|w| w.as_ref().map(Measure::from_window).unwrap_or_default())
                    .collect(),
                WorstKind::Nodes => node_windows(plan, &circuits)
                    .iter()
                    .map(|w| w.as_ref().map(Measure::from_window).unwrap_or_default())
                    .collect(),
            };
            (unix_now(), m)
        };
        let mut ranked: Vec<(usize, f64)> = measures
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.key(by, min).map(|k| (i, k)))
            .collect();
        let total = measures.len();
        let name_of = |i: usize| -> &str {
            match kind {
                WorstKind::Circuits => plan.circuits.get(i).map_or("", |c| c.id.0.as_str()),
                WorstKind::Nodes => plan.nodes.get(i).map_or("", |n| n.name.as_str()),
            }
        };
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| name_of(a.0).cmp(name_of(b.0))));
        let n_ranked = ranked.len();
        ranked.truncate(limit);
        let node_names: HashMap<&str, &str> =
            plan.nodes.iter().map(|n| (n.key.as_str(), n.name.as_str())).collect();
        let entries = ranked
            .into_iter()
            .filter_map(|(i, _)| {
                let m = measures.get(i)?;
                let mut e = WorstEntry {
                    rtt_access_p50_ms: m.p50,
                    rtt_access_p90_ms: m.p90,
                    rtt_samples: m.rtt_samples,
                    retransmits: PerDirection { down: m.retransmits[0], up: m.retransmits[1] },
                    tcp_packets: PerDirection { down: m.tcp_packets[0], up: m.tcp_packets[1] },
                    retransmit_ratio_down: ratio(m.retransmits[0], m.tcp_packets[0]),
                    retransmit_ratio_up: ratio(m.retransmits[1], m.tcp_packets[1]),
                    retransmit_ratio: m.retransmit_ratio(),
                    ..WorstEntry::default()
                };
                match kind {
                    WorstKind::Circuits => {
                        let c = plan.circuits.get(i)?;
                        let r = stats.owner_rates(i);
                        e.id = c.id.0.clone();
                        e.name = c.name.clone();
                        e.parent = Some(
                            node_names.get(c.parent.as_str()).copied().unwrap_or(&c.parent).into(),
                        );
                        (e.download_bps, e.upload_bps) = (r[0], r[1]);
                        (e.download_max_kbit, e.upload_max_kbit) =
                            (c.download_max.0, c.upload_max.0);
                    }
                    WorstKind::Nodes => {
                        let n = plan.nodes.get(i)?;
                        let r = stats.owner_rates(plan.circuits.len() + i);
                        e.id = n.name.clone();
                        e.name = n.name.clone();
                        e.parent = n
                            .parent
                            .as_deref()
                            .map(|p| node_names.get(p).copied().unwrap_or(p).to_owned());
                        (e.download_bps, e.upload_bps) = (r[0], r[1]);
                        (e.download_max_kbit, e.upload_max_kbit) = (n.download.0, n.upload.0);
                    }
                }
                Some(e)
            })
            .collect();
        Response::Worst(Box::new(WorstList {
            kind,
            by,
            window,
            min_samples: min,
            sample_unit: unit.into(),
            ranked: n_ranked,
            total,
            computed_unix,
            entries,
        }))
    }
}

/// Each plan node's window: the merge of every circuit below it (by node position).
fn node_windows(plan: &Plan, circuits: &[Option<Window>]) -> Vec<Option<Window>> {
    let pos: HashMap<&str, usize> =
        plan.nodes.iter().enumerate().map(|(i, n)| (n.key.as_str(), i)).collect();
    let parent: Vec<Option<usize>> = plan
        .nodes
        .iter()
        .map(|n| n.parent.as_deref().and_then(|p| pos.get(p).copied()))
        .collect();
    let mut out: Vec<Option<Window>> = vec![None; plan.nodes.len()];
    for (c, w) in plan.circuits.iter().zip(circuits) {
        let Some(w) = w else { continue };
        let mut node = pos.get(c.parent.as_str()).copied();
        // Bounded by the node count: a malformed cycle cannot loop forever.
        for _ in 0..=plan.nodes.len() {
            let Some(i) = node else { break };
            if let Some(slot) = out.get_mut(i) {
                slot.get_or_insert_with(Window::default).merge(w);
            }
            node = parent.get(i).copied().flatten();
        }
    }
    out
}

/// The answer to `QoeDistribution`.
pub fn distribution(stats: &StatsTracker, plan: Option<&Plan>) -> QoeDistribution {
    let mut buckets: Vec<DistributionBucket> = Vec::with_capacity(DIST_EDGES_MS.len() + 1);
    let mut lower = 0.0;
    for upper in DIST_EDGES_MS {
        buckets.push(DistributionBucket { lower_ms: lower, upper_ms: Some(upper), circuits: 0 });
        lower = upper;
    }
    buckets.push(DistributionBucket { lower_ms: lower, upper_ms: None, circuits: 0 });
    let mut p90s: Vec<f64> = Vec::new();
    let total = plan.map_or(0, |p| p.circuits.len());
    if let Some(plan) = plan {
        for w in stats.circuit_windows(plan, WINDOW_LONG).into_iter().flatten() {
            let m = Measure::from_window(&w);
            if let Some(p90) = m.key(WorstBy::Rtt, MIN_RTT_SAMPLES) {
                p90s.push(p90);
                let b = DIST_EDGES_MS.iter().position(|e| p90 < *e).unwrap_or(DIST_EDGES_MS.len());
                if let Some(b) = buckets.get_mut(b) {
                    b.circuits += 1;
                }
            }
        }
    }
    p90s.sort_by(f64::total_cmp);
    QoeDistribution {
        percentile: "p90".into(),
        path: "access".into(),
        window: "60s".into(),
        min_samples: MIN_RTT_SAMPLES,
        buckets,
        circuits_measured: p90s.len() as u64,
        circuits_total: total as u64,
        median_p90_ms: p90s.get(p90s.len() / 2).copied(),
    }
}

/// One tracked unknown address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tracked {
    bytes: [u64; 2],
    packets: [u64; 2],
    rate: [u64; 2],
    last_seen: Option<Instant>,
    last_seen_unix: u64,
}

/// The unmapped addresses of the last [`UNKNOWN_FORGET`], fed every [`UNKNOWN_PERIOD`].
#[derive(Debug, Default)]
pub struct UnknownTracker {
    seen: HashMap<IpAddr, Tracked>,
    last_read: Option<Instant>,
    last_read_unix: Option<u64>,
}

impl UnknownTracker {
    /// True when the table should be read at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.last_read.is_none_or(|t| now.saturating_duration_since(t) >= UNKNOWN_PERIOD)
    }

    /// Feeds one read of the data plane's table at `now` (unix `unix`): what each address did
    /// since the previous read.
    pub fn feed(&mut self, read: &[UnknownAddress], now: Instant, unix: u64) {
        // The first read covers an unknown stretch (since start or the last clear): its rates
        // are over one period, the best guess.
        let secs = self
            .last_read
            .map(|t| now.saturating_duration_since(t))
            .filter(|d| !d.is_zero())
            .unwrap_or(UNKNOWN_PERIOD)
            .as_secs_f64();
        self.last_read = Some(now);
        self.last_read_unix = Some(unix);
        for t in self.seen.values_mut() {
            t.rate = [0, 0];
        }
        for u in read {
            if u.bytes == [0, 0] && u.packets == [0, 0] {
                continue;
            }
            let t = self.seen.entry(u.addr).or_default();
            for d in 0..2 {
                t.bytes[d] = t.bytes[d].saturating_add(u.bytes[d]);
                t.packets[d] = t.packets[d].saturating_add(u.packets[d]);
                t.rate[d] = (u.bytes[d] as f64 * 8.0 / secs) as u64;
            }
            t.last_seen = Some(now);
            t.last_seen_unix = unix;
        }
        self.seen.retain(|_, t| {
            t.last_seen.is_some_and(|s| now.saturating_duration_since(s) < UNKNOWN_FORGET)
        });
        if self.seen.len() > UNKNOWN_KEEP {
            // Keep the busiest now, then the most recently seen, then the biggest.
            let mut all: Vec<(IpAddr, Tracked)> = self.seen.drain().collect();
            all.sort_by(|a, b| busiest(&b.1).cmp(&busiest(&a.1)));
            all.truncate(UNKNOWN_KEEP);
            self.seen = all.into_iter().collect();
        }
    }

    /// The answer to `UnknownAddresses`: at most `limit` (capped at
    /// [`UNKNOWN_LIMIT_MAX`]), busiest first.
    pub fn list(&self, limit: usize) -> UnknownList {
        let mut all: Vec<(&IpAddr, &Tracked)> = self.seen.iter().collect();
        all.sort_by(|a, b| busiest(b.1).cmp(&busiest(a.1)).then_with(|| a.0.cmp(b.0)));
        let per = |v: [u64; 2]| PerDirection { down: v[0], up: v[1] };
        UnknownList {
            window_secs: UNKNOWN_PERIOD.as_secs(),
            read_unix: self.last_read_unix,
            tracked: all.len(),
            entries: all
                .into_iter()
                .take(limit.min(UNKNOWN_LIMIT_MAX))
                .map(|(a, t)| UnknownEntry {
                    address: a.to_string(),
                    bytes: per(t.bytes),
                    packets: per(t.packets),
                    rate_bps: per(t.rate),
                    last_seen_unix: t.last_seen_unix,
                })
                .collect(),
        }
    }
}

/// Sort key: current rate, then last seen, then bytes.
fn busiest(t: &Tracked) -> (u64, u64, u64) {
    (
        t.rate[0].saturating_add(t.rate[1]),
        t.last_seen_unix,
        t.bytes[0].saturating_add(t.bytes[1]),
    )
}
