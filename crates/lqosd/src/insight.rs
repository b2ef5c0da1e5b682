//! "Who is suffering, and is it my AP, my backhaul or the Internet?": the answers to `Worst`,
//! `QoeDistribution` and `UnknownAddresses`.
//!
//! - **Worst first.** Circuits or nodes ranked by p90 access RTT or by retransmit ratio
//!   (retransmits / TCP packets, both directions combined), highest first. The live windows
//!   (10 s, 60 s) come from the RTT tracker ([`crate::qoe`]): a circuit's window is its slot's,
//!   a node's merges the histograms and counts of every circuit below it, so its p90 is the
//!   p90 of all their samples. The long windows (1 h from 1 min points, 24 h from 15 min
//!   points) come from the history store in one range scan ([`lqos_history::Store::summarize`])
//!   whose result is cached ([`HISTORY_CACHE_1H`], [`HISTORY_CACHE_24H`]; the scan of 10,000
//!   circuits takes ~85 ms for 1 h and ~230 ms for 24 h, see `bench/history_bench.sh worst`;
//!   a stale summary is answered while a background thread scans again, and a first query
//!   waits for its scan at most [`FIRST_SCAN_WAIT`], then is told to ask again, so the apply
//!   task never scans itself): a point's p90 is its interval's, and a
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
    UNKNOWN_LIMIT_MAX, UnknownEntry, UnknownList, WORST_LIMIT_MAX, WorstBy, WorstEntry, WorstKind,
    WorstList,
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
/// How long the 1 h summary is reused (its 1 min points change once a minute).
pub const HISTORY_CACHE_1H: Duration = Duration::from_secs(30);
/// How long the 24 h summary is reused (its 15 min points change every quarter hour; five
/// minutes of a day-long window is noise, the scan is not).
pub const HISTORY_CACHE_24H: Duration = Duration::from_secs(300);
/// A summary older than its lifetime but younger than this many lifetimes is answered while a
/// background scan replaces it.
pub const STALE_FACTOR: u32 = 4;
/// How long a query with no usable summary waits for the scan before it is answered
/// Unavailable ("ask again"): the apply task stalls at most this long for a history window.
pub const FIRST_SCAN_WAIT: Duration = Duration::from_millis(1500);
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

/// Per-series sums of one history window.
type Summary = Arc<HashMap<String, WindowSummary>>;
/// A history-window summary and when it was made (monotonic, unix).
type Cached = (Instant, u64, Summary);
/// Where a background scan delivers its summary.
type Pending = std::sync::mpsc::Receiver<Result<Cached, String>>;

/// The state behind the answers: the history summaries' cache and the unknown addresses.
#[derive(Debug, Default)]
pub struct Insight {
    cache: HashMap<QoeWindow, Cached>,
    /// Background scans under way, per window.
    refreshing: HashMap<QoeWindow, Pending>,
    /// Unmapped addresses seen recently.
    pub unknown: UnknownTracker,
}

fn unix_now() -> u64 {
    lqos_history::unix_now()
}

/// Scans the store for `window` ending now: 1 h from 1 min points, 24 h from 15 min points.
fn scan(
    history: &lqos_history::History,
    window: QoeWindow,
) -> Result<(u64, Summary), lqos_history::HistoryError> {
    let tier = if window == QoeWindow::Hours24 { TIER_15M } else { TIER_1M };
    let unix = unix_now();
    let started = Instant::now();
    let s = history.store().summarize(tier, unix.saturating_sub(window.secs()), unix)?;
    tracing::debug!(
        window = window.as_str(),
        series = s.len(),
        ms = started.elapsed().as_millis() as u64,
        "history window summarized"
    );
    Ok((unix, Arc::new(s)))
}

impl Insight {
    /// Forgets cached history summaries. (A new plan needs no new scan: summaries are keyed
    /// by circuit ID and node name and joined with the plan on every query.)
    pub fn forget_cache(&mut self) {
        self.cache.clear();
    }

    /// The summary of a history window: from the cache while it is fresh; a stale one (up to
    /// [`STALE_FACTOR`] times its lifetime) is answered at once while a background thread
    /// scans again; with no usable summary (the first query, or one after a long quiet time)
    /// the apply task waits for the scan at most [`FIRST_SCAN_WAIT`].
    fn summary(
        &mut self,
        feed: &HistoryFeed,
        window: QoeWindow,
        now: Instant,
    ) -> Result<(u64, Summary), CommandError> {
        self.collect(window);
        let keep = if window == QoeWindow::Hours24 { HISTORY_CACHE_24H } else { HISTORY_CACHE_1H };
        if let Some((at, unix, s)) = self.cache.get(&window) {
            let age = now.saturating_duration_since(*at);
            if age < keep {
                return Ok((*unix, s.clone()));
            }
            if age < keep.saturating_mul(STALE_FACTOR) {
                let answer = (*unix, s.clone());
                self.refresh_in_background(feed, window);
                return Ok(answer);
            }
        }
        // No usable summary: scan on a background thread and wait for it a moment. A scan
        // that takes longer (a 24 h window over ~100k busy circuits takes seconds) does not
        // hold up the apply task, its ticks and reloads: the asker is told to ask again.
        self.refresh_in_background(feed, window);
        let Some(rx) = self.refreshing.get(&window) else {
            return Err(CommandError::Internal {
                message: "cannot start a history scan thread".into(),
            });
        };
        match rx.recv_timeout(FIRST_SCAN_WAIT) {
            Ok(Ok((at, unix, s))) => {
                self.refreshing.remove(&window);
                self.cache.insert(window, (at, unix, s.clone()));
                Ok((unix, s))
            }
            Ok(Err(message)) => {
                self.refreshing.remove(&window);
                Err(CommandError::Internal { message })
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(CommandError::Unavailable {
                message: format!(
                    "the {} summary of the history store is still being computed; ask again in a few seconds",
                    window.as_str()
                ),
            }),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                self.refreshing.remove(&window);
                Err(CommandError::Internal { message: "history scan thread ended".into() })
            }
        }
    }

    /// Takes the result of a finished background scan of `window`, if any.
    fn collect(&mut self, window: QoeWindow) {
        let Some(rx) = self.refreshing.get(&window) else { return };
        match rx.try_recv() {
            Ok(Ok(done)) => {
                self.cache.insert(window, done);
            }
            Ok(Err(message)) => {
                tracing::warn!(window = window.as_str(), error = %message, "history scan failed");
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => return,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {}
        }
        self.refreshing.remove(&window);
    }

    /// Starts one background scan of `window` unless one is under way.
    fn refresh_in_background(&mut self, feed: &HistoryFeed, window: QoeWindow) {
        if self.refreshing.contains_key(&window) {
            return;
        }
        let history = feed.shared();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new().name("lqos-insight".into()).spawn(move || {
            let r = scan(&history, window)
                .map(|(unix, s)| (Instant::now(), unix, s))
                .map_err(|e| e.to_string());
            let _ = tx.send(r);
        });
        match spawned {
            Ok(_) => {
                self.refreshing.insert(window, rx);
            }
            Err(e) => tracing::warn!(error = %e, "cannot start a history scan thread"),
        }
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
    let parent: Vec<Option<usize>> =
        plan.nodes.iter().map(|n| n.parent.as_deref().and_then(|p| pos.get(p).copied())).collect();
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

/// False for addresses no subscriber can have (unspecified, loopback, multicast, broadcast,
/// link-local): neighbour discovery and DHCP chatter would otherwise fill the view that is
/// there to find subscribers missing from ShapedDevices.csv.
fn could_be_subscriber(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_link_local())
        }
        IpAddr::V6(a) => {
            let mapped = a.to_ipv4_mapped();
            if let Some(v4) = mapped {
                return could_be_subscriber(&IpAddr::V4(v4));
            }
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.is_unicast_link_local())
        }
    }
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
            if (u.bytes == [0, 0] && u.packets == [0, 0]) || !could_be_subscriber(&u.addr) {
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
            all.sort_by_key(|a| std::cmp::Reverse(busiest(&a.1)));
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
    (t.rate[0].saturating_add(t.rate[1]), t.last_seen_unix, t.bytes[0].saturating_add(t.bytes[1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{RttHistogram, SlotCounters};
    use crate::slots::SlotTable;
    use crate::testutil::{FACTS, setup};
    use lqos_bpf::abi::RTT_BUCKET_UPPER_US;
    use lqos_bus::HistoryKind;
    use lqos_history::{Sample, series_key};

    /// c1 (AP_1): 80 ms, plenty of samples. c2 (Site_A): 5 ms. c3 (AP_1): 300 ms but only 5
    /// samples. c4 (AP_1): 10 ms, many retransmits.
    const FOUR: &str = "c1,Alice,d1,r1,AP_1,,,,100.64.0.1,,1,1,50,10,
c2,Bob,d2,r2,Site_A,,,,100.64.0.2,,1,1,20,5,
c3,Carol,d3,r3,AP_1,,,,100.64.0.3,,1,1,20,5,
c4,Dave,d4,r4,AP_1,,,,100.64.0.4,,1,1,20,5,
";

    fn hist(us: u32, n: u32) -> RttHistogram {
        let mut h = RttHistogram::default();
        let b = RTT_BUCKET_UPPER_US.iter().position(|u| us <= *u).unwrap_or(31);
        h.buckets[PATH_ACCESS][b] = n;
        h.sum_us[PATH_ACCESS] = u64::from(us) * u64::from(n);
        h
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        plan: Plan,
        table: SlotTable,
        stats: StatsTracker,
        /// Cumulative kernel histograms by slot.
        kernel: Vec<RttHistogram>,
    }

    fn fixture() -> Fixture {
        let (dir, config) = setup(FOUR);
        let plan = crate::engine::prepare(&config, FACTS, None).expect("plan").plan;
        let table =
            SlotTable::default().assign(plan.circuits.iter().map(|c| c.id.0.as_str()), 100).table;
        let mut stats = StatsTracker::default();
        stats.set_plan(Some(&plan), &table);
        let kernel = vec![RttHistogram::default(); table.max_slot() as usize + 1];
        // The baseline read, long ago enough to be outside every window.
        let long_ago = Instant::now().checked_sub(Duration::from_secs(300)).expect("uptime");
        stats.qoe.feed(0, &kernel, long_ago);
        Fixture { _dir: dir, plan, table, stats, kernel }
    }

    impl Fixture {
        fn slot(&self, id: &str) -> u32 {
            self.table.get(id).expect("slot")
        }
        /// One period ending `ago` before now: RTT samples, TCP packets and retransmits
        /// (download) per circuit.
        fn period(&mut self, ago: Duration, per: &[(&str, u32, u32, u64, u64)]) {
            for &(id, us, n, tcp, retx) in per {
                let s = self.slot(id);
                self.kernel[s as usize].merge(&hist(us, n));
                self.stats.qoe.note(
                    s,
                    &SlotCounters {
                        tcp_packets: [tcp, 0],
                        retransmits: [retx, 0],
                        ..Default::default()
                    },
                );
            }
            let at = Instant::now().checked_sub(ago).expect("uptime");
            self.stats.qoe.feed(0, &self.kernel, at);
        }
        fn worst(&self, kind: WorstKind, by: WorstBy, window: QoeWindow) -> WorstList {
            let q = WorstQuery { kind, by, window, limit: 10 };
            match Insight::default().worst(&self.stats, Some(&self.plan), None, q) {
                Response::Worst(w) => *w,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn ids(w: &WorstList) -> Vec<&str> {
        w.entries.iter().map(|e| e.id.as_str()).collect()
    }

    fn busy(f: &mut Fixture, ago: Duration) {
        f.period(
            ago,
            &[
                ("c1", 80_000, 100, 1_000, 1),
                ("c2", 5_000, 100, 1_000, 0),
                ("c3", 300_000, 5, 1_000, 0),
                ("c4", 10_000, 100, 1_000, 100),
            ],
        );
    }

    #[test]
    fn circuits_rank_worst_first_and_too_few_samples_are_left_out() {
        let mut f = fixture();
        busy(&mut f, Duration::from_secs(1));
        let w = f.worst(WorstKind::Circuits, WorstBy::Rtt, QoeWindow::Secs10);
        assert_eq!(ids(&w), ["c1", "c4", "c2"], "c3 has only 5 samples");
        assert_eq!((w.min_samples, w.sample_unit.as_str()), (MIN_RTT_SAMPLES, "rtt samples"));
        assert_eq!((w.ranked, w.total), (3, 4));
        let c1 = &w.entries[0];
        let p90 = c1.rtt_access_p90_ms.expect("p90");
        assert!((50.0..=100.0).contains(&p90), "p90 {p90}");
        assert_eq!((c1.name.as_str(), c1.parent.as_deref()), ("Alice", Some("AP_1")));
        assert_eq!((c1.rtt_samples, c1.download_max_kbit), (100, 50_000));

        let w = f.worst(WorstKind::Circuits, WorstBy::Retransmits, QoeWindow::Secs10);
        assert_eq!(ids(&w)[..2], ["c4", "c1"]);
        assert_eq!(w.entries[0].retransmit_ratio, Some(0.1));
        assert_eq!(w.entries[0].retransmit_ratio_down, Some(0.1));
        assert_eq!(w.entries[0].retransmit_ratio_up, None, "no upload packets");
        assert_eq!(w.ranked, 4, "every circuit sent 1000 TCP packets");
        assert_eq!(w.min_samples, MIN_TCP_PACKETS);
        // The limit is bounded.
        let q = WorstQuery {
            kind: WorstKind::Circuits,
            by: WorstBy::Rtt,
            window: QoeWindow::Secs10,
            limit: 1,
        };
        let Response::Worst(one) = Insight::default().worst(&f.stats, Some(&f.plan), None, q)
        else {
            panic!("worst")
        };
        assert_eq!((ids(&one), one.ranked), (vec!["c1"], 3));
    }

    #[test]
    fn the_short_window_forgets_what_the_long_one_still_holds() {
        let mut f = fixture();
        // 30 s ago c2 was terrible; in the last seconds c1 is bad.
        f.period(Duration::from_secs(30), &[("c2", 400_000, 50, 500, 0)]);
        f.period(Duration::from_secs(1), &[("c1", 40_000, 50, 500, 0)]);
        let short = f.worst(WorstKind::Circuits, WorstBy::Rtt, QoeWindow::Secs10);
        assert_eq!(ids(&short), ["c1"]);
        let long = f.worst(WorstKind::Circuits, WorstBy::Rtt, QoeWindow::Secs60);
        assert_eq!(ids(&long), ["c2", "c1"]);
    }

    #[test]
    fn nodes_merge_every_circuit_below_them() {
        let mut f = fixture();
        busy(&mut f, Duration::from_secs(1));
        let w = f.worst(WorstKind::Nodes, WorstBy::Rtt, QoeWindow::Secs60);
        assert_eq!(ids(&w), ["AP_1", "Site_A"]);
        let ap = &w.entries[0];
        assert_eq!(ap.rtt_samples, 205, "c1 + c3 + c4");
        assert_eq!(ap.parent.as_deref(), Some("Site_A"));
        let site = &w.entries[1];
        assert_eq!(site.rtt_samples, 305, "AP_1's circuits and c2");
        assert_eq!(site.parent, None);
        assert!(site.rtt_access_p90_ms <= ap.rtt_access_p90_ms);
        let w = f.worst(WorstKind::Nodes, WorstBy::Retransmits, QoeWindow::Secs60);
        assert_eq!(ids(&w), ["AP_1", "Site_A"]);
        assert_eq!(w.entries[0].retransmits.down, 101);
        assert_eq!(w.entries[0].tcp_packets.down, 3_000);
        assert_eq!(w.entries[1].tcp_packets.down, 4_000);
    }

    #[test]
    fn no_plan_or_no_traffic_ranks_nothing() {
        let f = fixture();
        for by in [WorstBy::Rtt, WorstBy::Retransmits] {
            let w = f.worst(WorstKind::Circuits, by, QoeWindow::Secs60);
            assert!(w.entries.is_empty() && w.ranked == 0 && w.total == 4, "{w:?}");
        }
        let q = WorstQuery {
            kind: WorstKind::Nodes,
            by: WorstBy::Rtt,
            window: QoeWindow::Secs10,
            limit: 10,
        };
        let Response::Worst(w) = Insight::default().worst(&f.stats, None, None, q) else {
            panic!("worst")
        };
        assert_eq!((w.total, w.entries.len()), (0, 0));
        let d = distribution(&f.stats, Some(&f.plan));
        assert_eq!((d.circuits_measured, d.circuits_total, d.median_p90_ms), (0, 4, None));
    }

    #[test]
    fn history_windows_need_the_store_rank_from_it_and_are_cached() {
        let f = fixture();
        let q =
            |window| WorstQuery { kind: WorstKind::Circuits, by: WorstBy::Rtt, window, limit: 10 };
        let mut insight = Insight::default();
        let Response::Error(CommandError::Unavailable { message }) =
            insight.worst(&f.stats, Some(&f.plan), None, q(QoeWindow::Hour1))
        else {
            panic!("history off must be Unavailable")
        };
        assert!(message.contains("history"), "{message}");

        let feed =
            HistoryFeed::open(&f._dir.path().join("state/history.redb"), 64).expect("open store");
        // An empty store ranks nothing, for both long windows.
        for w in [QoeWindow::Hour1, QoeWindow::Hours24] {
            let Response::Worst(l) = insight.worst(&f.stats, Some(&f.plan), Some(&feed), q(w))
            else {
                panic!("worst")
            };
            assert!(l.entries.is_empty() && l.total == 4, "{l:?}");
            assert_eq!(
                (l.min_samples, l.sample_unit.as_str()),
                (MIN_RTT_POINTS, "points with rtt")
            );
        }
        insight.forget_cache();
        // 20 minutes of points: c2 at 50 ms, c1 at 20 ms, c3 with only 2 minutes of RTT.
        let now = lqos_history::unix_now();
        let store = feed.history().store();
        let key =
            |id: &str| -> Arc<str> { Arc::from(series_key(HistoryKind::Circuit, id).as_str()) };
        for m in 0..20u64 {
            let ts = now - 1200 + m * 60;
            let s = |p90: f64| Sample {
                rtt_access: Some([p90 / 2.0, p90, p90 * 2.0]),
                tcp_packets: [5_000, 100],
                retransmits: [5, 0],
                ..Sample::default()
            };
            let mut rows = vec![(key("c1"), s(20.0)), (key("c2"), s(50.0))];
            if m < 2 {
                rows.push((key("c3"), s(500.0)));
            }
            store.record(ts, &rows);
        }
        store.flush().expect("flush");
        let Response::Worst(l) =
            insight.worst(&f.stats, Some(&f.plan), Some(&feed), q(QoeWindow::Hour1))
        else {
            panic!("worst")
        };
        assert_eq!(ids(&l), ["c2", "c1"], "c3 has too few points");
        assert_eq!(l.entries[0].rtt_access_p90_ms, Some(50.0));
        assert!(l.entries[0].rtt_samples >= 18, "{}", l.entries[0].rtt_samples);
        // Retransmits over the hour: 5 / 5100 for both, ranked by name on the tie.
        let by_retx = WorstQuery { by: WorstBy::Retransmits, ..q(QoeWindow::Hour1) };
        let Response::Worst(r) = insight.worst(&f.stats, Some(&f.plan), Some(&feed), by_retx)
        else {
            panic!("worst")
        };
        assert!(r.entries.iter().all(|e| e.tcp_packets.down >= MIN_TCP_PACKETS_HISTORY));
        assert_eq!(ids(&r)[..2], ["c1", "c2"]);
        // Cached: a new worst circuit shows only once the cache is dropped (or expires).
        for m in 0..10u64 {
            let ts = now - 1200 + m * 60;
            let s = Sample { rtt_access: Some([400.0, 900.0, 990.0]), ..Sample::default() };
            store.record(ts + 1, &[(key("c4"), s)]);
        }
        store.flush().expect("flush");
        let Response::Worst(again) =
            insight.worst(&f.stats, Some(&f.plan), Some(&feed), q(QoeWindow::Hour1))
        else {
            panic!("worst")
        };
        assert_eq!(ids(&again), ids(&l), "answered from the cache");
        assert_eq!(again.computed_unix, l.computed_unix);
        insight.forget_cache();
        let Response::Worst(fresh) =
            insight.worst(&f.stats, Some(&f.plan), Some(&feed), q(QoeWindow::Hour1))
        else {
            panic!("worst")
        };
        assert_eq!(ids(&fresh)[0], "c4");
    }

    #[test]
    fn a_stale_summary_is_answered_while_a_background_scan_replaces_it() {
        let f = fixture();
        let feed =
            HistoryFeed::open(&f._dir.path().join("state/history.redb"), 64).expect("open store");
        let store = feed.history().store();
        let now = lqos_history::unix_now();
        let key =
            |id: &str| -> Arc<str> { Arc::from(series_key(HistoryKind::Circuit, id).as_str()) };
        let put = |id: &str, p90: f64| {
            for m in 0..10u64 {
                let s = Sample { rtt_access: Some([p90 / 2.0, p90, p90]), ..Sample::default() };
                store.record(now - 1200 + m * 60, &[(key(id), s)]);
            }
            store.flush().expect("flush");
        };
        let mut insight = Insight::default();
        let ask = |insight: &mut Insight| {
            let q = WorstQuery {
                kind: WorstKind::Circuits,
                by: WorstBy::Rtt,
                window: QoeWindow::Hour1,
                limit: 10,
            };
            match insight.worst(&f.stats, Some(&f.plan), Some(&feed), q) {
                Response::Worst(w) => ids(&w).into_iter().map(str::to_owned).collect::<Vec<_>>(),
                other => panic!("unexpected {other:?}"),
            }
        };
        put("c1", 20.0);
        assert_eq!(ask(&mut insight), ["c1"], "the first query scans at once");
        put("c2", 90.0);
        let age = |insight: &mut Insight, by: Duration| {
            let e = insight.cache.get_mut(&QoeWindow::Hour1).expect("cached");
            e.0 = Instant::now().checked_sub(by).expect("uptime");
        };
        // Stale: answered as it was, while a scan runs in the background.
        age(&mut insight, HISTORY_CACHE_1H + Duration::from_secs(1));
        assert_eq!(ask(&mut insight), ["c1"]);
        assert!(insight.refreshing.contains_key(&QoeWindow::Hour1));
        let mut fresh = Vec::new();
        for _ in 0..500 {
            fresh = ask(&mut insight);
            if fresh.first().map(String::as_str) == Some("c2") {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(fresh, ["c2", "c1"], "the background scan replaced the summary");
        assert!(insight.refreshing.is_empty());
        // Too old to show: scanned again before answering.
        put("c3", 400.0);
        age(&mut insight, HISTORY_CACHE_1H * STALE_FACTOR + Duration::from_secs(1));
        assert_eq!(ask(&mut insight), ["c3", "c2", "c1"]);
    }

    #[test]
    fn distribution_counts_circuits_by_p90_in_doubling_buckets() {
        let mut f = fixture();
        busy(&mut f, Duration::from_secs(1));
        let d = distribution(&f.stats, Some(&f.plan));
        assert_eq!(
            (d.percentile.as_str(), d.path.as_str(), d.window.as_str()),
            ("p90", "access", "60s")
        );
        assert_eq!((d.circuits_measured, d.circuits_total), (3, 4), "c3 under the minimum");
        assert_eq!(d.buckets.len(), DIST_EDGES_MS.len() + 1);
        assert_eq!(d.buckets[0].lower_ms, 0.0);
        assert_eq!(d.buckets.last().and_then(|b| b.upper_ms), None);
        let at = |ms: f64| {
            d.buckets
                .iter()
                .find(|b| b.lower_ms <= ms && b.upper_ms.is_none_or(|u| ms < u))
                .map(|b| b.circuits)
        };
        // c2 ~5 ms in [4, 8), c4 ~10 ms in [8, 16), c1 ~80 ms in [64, 128).
        assert_eq!((at(5.0), at(10.0), at(80.0)), (Some(1), Some(1), Some(1)));
        assert_eq!(d.buckets.iter().map(|b| b.circuits).sum::<u64>(), 3);
        assert!(d.median_p90_ms.is_some_and(|m| (8.0..16.0).contains(&m)), "{:?}", d.median_p90_ms);
    }

    fn unknown(addr: &str, down: u64, up: u64) -> UnknownAddress {
        UnknownAddress {
            addr: addr.parse().expect("ip"),
            bytes: [down, up],
            packets: [down / 1000, up / 1000],
        }
    }

    #[test]
    fn unknown_view_skips_addresses_no_subscriber_can_have() {
        let mut u = UnknownTracker::default();
        let now = Instant::now();
        let read: Vec<UnknownAddress> = [
            "ff02::16",
            "::",
            "fe80::1",
            "::1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.251",
            "169.254.1.1",
            "127.0.0.1",
            "::ffff:224.0.0.1",
            "100.64.1.2",
            "2001:db8::7",
        ]
        .iter()
        .map(|a| unknown(a, 1000, 1000))
        .collect();
        u.feed(&read, now, 1_000);
        let mut shown: Vec<String> = u.list(100).entries.into_iter().map(|e| e.address).collect();
        shown.sort();
        assert_eq!(shown, ["100.64.1.2", "2001:db8::7"]);
    }

    #[test]
    fn unknown_addresses_get_rates_totals_and_age_out() {
        let mut u = UnknownTracker::default();
        let t0 = Instant::now();
        assert!(u.due(t0));
        assert_eq!(u.list(10).read_unix, None);
        u.feed(
            &[unknown("198.51.100.7", 125_000, 0), unknown("2001:db8::9", 0, 12_500)],
            t0,
            1_000,
        );
        assert!(!u.due(t0 + Duration::from_secs(1)));
        assert!(u.due(t0 + UNKNOWN_PERIOD));
        let l = u.list(10);
        assert_eq!((l.tracked, l.read_unix, l.window_secs), (2, Some(1_000), 10));
        assert_eq!(l.entries[0].address, "198.51.100.7");
        assert_eq!(l.entries[0].rate_bps.down, 100_000, "125 kB over the 10 s period");
        assert_eq!(l.entries[1].address, "2001:db8::9");
        // Next window: the v6 address is busy, the v4 one idle (rate 0, totals kept).
        let t1 = t0 + Duration::from_secs(20);
        u.feed(&[unknown("2001:db8::9", 500_000, 0)], t1, 1_020);
        let l = u.list(10);
        assert_eq!(l.entries[0].address, "2001:db8::9");
        assert_eq!(l.entries[0].rate_bps.down, 200_000, "500 kB over 20 s");
        assert_eq!(l.entries[0].bytes, PerDirection { down: 500_000, up: 12_500 });
        assert_eq!(l.entries[0].last_seen_unix, 1_020);
        assert_eq!((l.entries[1].rate_bps.down, l.entries[1].last_seen_unix), (0, 1_000));
        assert_eq!(l.entries[1].bytes.down, 125_000);
        // Idle for longer than UNKNOWN_FORGET: gone.
        u.feed(&[], t0 + UNKNOWN_FORGET + Duration::from_secs(5), 1_700);
        assert_eq!(u.list(10).tracked, 1);
        // The limit is capped and the tracker is bounded.
        let many: Vec<UnknownAddress> = (0..(UNKNOWN_KEEP as u32 + 500))
            .map(|i| UnknownAddress {
                addr: IpAddr::from(std::net::Ipv4Addr::from(0x0A00_0000 + i)),
                bytes: [u64::from(i) + 1, 0],
                packets: [1, 0],
            })
            .collect();
        u.feed(&many, t0 + UNKNOWN_FORGET + Duration::from_secs(15), 1_710);
        let l = u.list(usize::MAX);
        assert_eq!(l.tracked, UNKNOWN_KEEP);
        assert_eq!(l.entries.len(), UNKNOWN_LIMIT_MAX);
        assert_eq!(l.entries[0].address, "10.0.5.219", "the busiest of them first");
    }
}
