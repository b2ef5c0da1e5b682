//! The typed commands lqosd accepts and its answers. Every caller (libreqos, lqos_scheduler,
//! lqtop, the web API) sends one of these; lqosd's single apply task answers.

use lqos_config::{Diagnostic, Quarantined};
use serde::{Deserialize, Serialize};

/// Version of the message set. A peer with another version is refused with a clear error.
pub const PROTOCOL_VERSION: u16 = 1;

/// How much a reload may rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ReloadMode {
    /// Apply only the differences against the applied plan (the normal case).
    Incremental,
    /// Tear the managed tree down and build it again (the scheduler's start-up setup and
    /// `libreqos --full`). Still never applies an invalid plan.
    Full,
}

/// Everything that may be asked of lqosd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "command")]
pub enum Command {
    /// Liveness check.
    Ping,
    /// Read the inputs, validate, plan, diff against the applied plan and apply.
    Reload {
        /// Incremental or full.
        mode: ReloadMode,
    },
    /// Like Reload but apply nothing: the ChangeSet summary that Reload would apply.
    DryRun,
    /// Validate the inputs on disk.
    Validate,
    /// Daemon state: interfaces, queues, counts, last apply, scheduler state, warnings.
    Status,
    /// The IP → class mappings in force.
    ListMappings,
    /// Current per-circuit rates and counters; `None` = all circuits.
    CircuitStats {
        /// One circuit, or all.
        circuit: Option<String>,
    },
    /// The `n` busiest circuits by current rate.
    TopCircuits {
        /// How many.
        n: usize,
    },
    /// Per-node (site/AP) rates.
    NodeStats,
    /// Remove the managed queue tree and all mappings (traffic passes unshaped).
    ClearTree,
    /// The scheduler reports its state (shown by Status and the GUI).
    SchedulerReport(SchedulerState),
    /// The busiest flows of one circuit (TCP and UDP, by bytes), answered with `Flows`.
    CircuitFlows {
        /// Circuit ID.
        circuit: String,
    },
    /// Stored history of one circuit or node over a range, answered with `History`.
    History {
        /// Circuit or node.
        kind: HistoryKind,
        /// Circuit ID or node name.
        id: String,
        /// How far back.
        range: HistoryRange,
    },
    /// Circuits or nodes ranked worst first by p90 access RTT or retransmit ratio over a
    /// window, answered with `Worst`.
    Worst {
        /// Circuits or nodes.
        kind: WorstKind,
        /// What "worst" means.
        by: WorstBy,
        /// Over which window.
        window: QoeWindow,
        /// How many entries at most (lqosd caps it at [`WORST_LIMIT_MAX`]).
        limit: usize,
    },
    /// How the circuits spread over p90 access RTT (60 s window), answered with
    /// `Distribution`.
    QoeDistribution,
    /// The busiest unmapped addresses lqosd saw recently, answered with `Unknown`.
    UnknownAddresses {
        /// How many at most (lqosd caps it at [`UNKNOWN_LIMIT_MAX`]).
        limit: usize,
    },
    /// Queue statistics of one circuit (its HTB classes and leaf qdiscs, both directions),
    /// read from the kernel on request and reused for about a second; answered with `Queue`.
    CircuitQueue {
        /// Circuit ID.
        circuit: String,
    },
    /// Set common settings of lqos.conf (`lqos_config::COMMON_SETTINGS`: name, value as text)
    /// and write the file; only those values change. Sent by lqos_web when its sandbox or the
    /// file's owner keep it from writing the file itself. Answered with `ConfigSaved`, or
    /// `InvalidInput` (one diagnostic per refused setting, `field` = its name) with nothing
    /// written.
    EditConfig {
        /// (setting, value).
        settings: Vec<(String, String)>,
    },
}

/// Most entries one `Worst` answer carries.
pub const WORST_LIMIT_MAX: usize = 500;
/// Most entries one `UnknownAddresses` answer carries.
pub const UNKNOWN_LIMIT_MAX: usize = 100;

/// What a worst-first ranking ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WorstKind {
    /// Circuits (subscribers).
    Circuits,
    /// Nodes (sites, APs); a node's numbers merge every circuit below it.
    Nodes,
}

/// The measure a worst-first ranking sorts by (highest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WorstBy {
    /// p90 of the access-path RTT (shaper → subscriber → shaper).
    Rtt,
    /// Retransmit ratio, both directions combined: (retransmits down + up) / (TCP packets
    /// down + up).
    Retransmits,
}

/// The window a ranking covers: the live 10 s and 60 s windows of lqosd's RTT tracker, or
/// the history store's last hour (1 min points) and last 24 hours (15 min points).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum QoeWindow {
    /// Live, last 10 seconds.
    #[serde(rename = "10s")]
    Secs10,
    /// Live, last 60 seconds.
    #[serde(rename = "60s")]
    Secs60,
    /// History, last hour.
    #[serde(rename = "1h")]
    Hour1,
    /// History, last 24 hours.
    #[serde(rename = "24h")]
    Hours24,
}

impl QoeWindow {
    /// Every window, shortest first.
    pub const ALL: [QoeWindow; 4] =
        [QoeWindow::Secs10, QoeWindow::Secs60, QoeWindow::Hour1, QoeWindow::Hours24];

    /// The API spelling (`10s`, `60s`, `1h`, `24h`).
    pub fn as_str(self) -> &'static str {
        match self {
            QoeWindow::Secs10 => "10s",
            QoeWindow::Secs60 => "60s",
            QoeWindow::Hour1 => "1h",
            QoeWindow::Hours24 => "24h",
        }
    }

    /// Parses the API spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<QoeWindow> {
        QoeWindow::ALL.into_iter().find(|w| w.as_str() == s)
    }

    /// The window's length in seconds.
    pub fn secs(self) -> u64 {
        match self {
            QoeWindow::Secs10 => 10,
            QoeWindow::Secs60 => 60,
            QoeWindow::Hour1 => 3_600,
            QoeWindow::Hours24 => 86_400,
        }
    }

    /// True for the windows answered from the history store.
    pub fn from_history(self) -> bool {
        matches!(self, QoeWindow::Hour1 | QoeWindow::Hours24)
    }
}

/// One ranked circuit or node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorstEntry {
    /// Circuit ID, or the node's name.
    pub id: String,
    /// Circuit Name, or the node's name.
    pub name: String,
    /// Parent node name (`None` for a top-level node).
    pub parent: Option<String>,
    /// Access-path RTT p50 over the window, ms (`None` = no sample). From the history store
    /// it is the mean of the stored points' p50.
    pub rtt_access_p50_ms: Option<f64>,
    /// Access-path RTT p90 over the window, ms (`None` = no sample). From the history store
    /// it is the mean of the stored points' p90 (each point holds the p90 of its own
    /// interval).
    pub rtt_access_p90_ms: Option<f64>,
    /// What the RTT figures rest on: RTT samples (live windows) or stored points with an RTT
    /// (history windows); see [`WorstList::sample_unit`].
    pub rtt_samples: u64,
    /// TCP retransmits in the window.
    pub retransmits: PerDirection,
    /// TCP packets in the window.
    pub tcp_packets: PerDirection,
    /// Retransmits / TCP packets per direction, `None` without packets.
    pub retransmit_ratio_down: Option<f64>,
    /// Same, upload.
    pub retransmit_ratio_up: Option<f64>,
    /// Both directions combined (the `retransmits` ranking key).
    pub retransmit_ratio: Option<f64>,
    /// Current download rate, bits/s (for context: latency under load).
    pub download_bps: u64,
    /// Current upload rate, bits/s.
    pub upload_bps: u64,
    /// Plan / configured download ceil, kbit/s.
    pub download_max_kbit: u64,
    /// Plan / configured upload ceil, kbit/s.
    pub upload_max_kbit: u64,
}

/// The answer to `Worst`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorstList {
    /// Circuits or nodes.
    pub kind: WorstKind,
    /// The ranking key.
    pub by: WorstBy,
    /// The window.
    pub window: QoeWindow,
    /// Entries below this many samples (see `sample_unit`) are not ranked: too little to mean
    /// anything.
    pub min_samples: u64,
    /// What `min_samples` counts: `rtt samples`, `tcp packets`, `points with rtt` (history,
    /// one point per minute for 1h and per 15 minutes for 24h).
    pub sample_unit: String,
    /// Circuits or nodes that had enough samples (the ranking's length before `limit`).
    pub ranked: usize,
    /// Circuits or nodes in the applied plan.
    pub total: usize,
    /// Unix time the numbers were computed (history answers are cached for a while).
    pub computed_unix: u64,
    /// Worst first.
    pub entries: Vec<WorstEntry>,
}

/// One bucket of the latency distribution: circuits whose p90 is in `[lower_ms, upper_ms)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DistributionBucket {
    /// Inclusive lower edge, ms.
    pub lower_ms: f64,
    /// Exclusive upper edge, ms (`None` for the last, open bucket).
    pub upper_ms: Option<f64>,
    /// Circuits in the bucket.
    pub circuits: u64,
}

/// The answer to `QoeDistribution`: circuits by their current p90 access RTT (60 s window),
/// in log-scale (doubling) buckets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QoeDistribution {
    /// Always `p90`.
    pub percentile: String,
    /// Always `access`.
    pub path: String,
    /// Always `60s`.
    pub window: String,
    /// Circuits with fewer RTT samples in the window are left out.
    pub min_samples: u64,
    /// Buckets, lowest first.
    pub buckets: Vec<DistributionBucket>,
    /// Circuits counted in the buckets.
    pub circuits_measured: u64,
    /// Circuits in the applied plan.
    pub circuits_total: u64,
    /// Median of the measured circuits' p90, ms.
    pub median_p90_ms: Option<f64>,
}

/// One unmapped address (an address on the subscriber side that matches no circuit). Byte
/// and packet counts are estimates: the data plane samples one in N unmapped packets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnknownEntry {
    /// The address.
    pub address: String,
    /// Estimated bytes since lqosd first saw it (or since it started).
    pub bytes: PerDirection,
    /// Estimated packets.
    pub packets: PerDirection,
    /// Estimated rate over the last read window, bits/s (0 when idle in that window).
    pub rate_bps: PerDirection,
    /// Unix time of the last read window in which it had traffic.
    pub last_seen_unix: u64,
}

/// The answer to `UnknownAddresses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnknownList {
    /// Seconds between reads of the data plane's table (rates are over this window).
    pub window_secs: u64,
    /// Unix time of the last read (`None` = not read yet).
    pub read_unix: Option<u64>,
    /// Addresses lqosd is tracking (before `limit`).
    pub tracked: usize,
    /// Busiest first (by current rate, then bytes).
    pub entries: Vec<UnknownEntry>,
}

/// What a history series belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HistoryKind {
    /// A circuit, by Circuit ID.
    Circuit,
    /// A node (site/AP), by name.
    Node,
}

/// How far back a history query reaches. The store answers 10 min from 1 s samples, 1 h and
/// 24 h from 1 min samples, 7, 30 and 90 days from 15 min samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HistoryRange {
    /// Last 10 minutes.
    #[serde(rename = "10m")]
    Minutes10,
    /// Last hour.
    #[serde(rename = "1h")]
    Hour1,
    /// Last 24 hours.
    #[serde(rename = "24h")]
    Hours24,
    /// Last 7 days.
    #[serde(rename = "7d")]
    Days7,
    /// Last 30 days.
    #[serde(rename = "30d")]
    Days30,
    /// Last 90 days.
    #[serde(rename = "90d")]
    Days90,
}

impl HistoryRange {
    /// Every range, shortest first.
    pub const ALL: [HistoryRange; 6] = [
        HistoryRange::Minutes10,
        HistoryRange::Hour1,
        HistoryRange::Hours24,
        HistoryRange::Days7,
        HistoryRange::Days30,
        HistoryRange::Days90,
    ];

    /// The range's length in seconds.
    pub fn secs(self) -> u64 {
        match self {
            HistoryRange::Minutes10 => 600,
            HistoryRange::Hour1 => 3_600,
            HistoryRange::Hours24 => 86_400,
            HistoryRange::Days7 => 7 * 86_400,
            HistoryRange::Days30 => 30 * 86_400,
            HistoryRange::Days90 => 90 * 86_400,
        }
    }

    /// The spelling used by the API (`10m`, `1h`, `24h`, `7d`, `30d`, `90d`).
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryRange::Minutes10 => "10m",
            HistoryRange::Hour1 => "1h",
            HistoryRange::Hours24 => "24h",
            HistoryRange::Days7 => "7d",
            HistoryRange::Days30 => "30d",
            HistoryRange::Days90 => "90d",
        }
    }

    /// Parses the API spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<HistoryRange> {
        HistoryRange::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// RTT percentiles of one sample, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RttPercentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// One point of a history series. For downsampled points (1 min, 15 min) rates and p50/p90
/// are means over the interval, p99 its maximum, retransmits and drops its sum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryPoint {
    /// Unix time (seconds) of the start of the interval.
    pub t: u64,
    /// Download rate, bits/s.
    pub down_bps: u64,
    /// Upload rate, bits/s.
    pub up_bps: u64,
    /// Access-path RTT (`None` = no TCP sample).
    pub rtt_access_ms: Option<RttPercentiles>,
    /// Upstream-path RTT.
    pub rtt_upstream_ms: Option<RttPercentiles>,
    /// TCP retransmits in the interval.
    pub retransmits: PerDirection,
    /// TCP packets in the interval (the denominator of a retransmit ratio; 0 in points
    /// stored before lqos recorded it).
    #[serde(default)]
    pub tcp_packets: PerDirection,
    /// Queue drops in the interval (counted while the HTB counters are read).
    pub drops: u64,
}

/// The answer to `History`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistorySeries {
    /// Circuit or node.
    pub kind: HistoryKind,
    /// Circuit ID or node name.
    pub id: String,
    /// The range asked for.
    pub range: HistoryRange,
    /// Seconds between points (1, 60 or 900).
    pub step_secs: u64,
    /// Unix time the series ends at.
    pub now: u64,
    /// Points, oldest first (empty when nothing was stored in the range).
    pub points: Vec<HistoryPoint>,
}

/// RTT percentiles of one path over a window, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RttSummary {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// RTT samples in the window.
    pub samples: u64,
    /// Sum of the samples, milliseconds (for a Prometheus summary's `_sum`).
    #[serde(default)]
    pub sum_ms: f64,
}

/// RTT per path: `access` = shaper → subscriber → shaper (includes lqos's own queueing),
/// `upstream` = shaper → Internet host → shaper. `None` when the window has no sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RttPaths {
    /// Subscriber side.
    pub access: Option<RttSummary>,
    /// Internet side.
    pub upstream: Option<RttSummary>,
}

/// A count per direction: `down` towards the subscriber, `up` from the subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PerDirection {
    /// Towards the subscriber.
    pub down: u64,
    /// From the subscriber.
    pub up: u64,
}

/// TCP quality of a circuit or node, from TCP timestamps and sequence numbers seen by XDP.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Qoe {
    /// RTT over the last 60 seconds.
    pub rtt_ms: RttPaths,
    /// RTT over the last 10 seconds.
    pub rtt_ms_10s: RttPaths,
    /// TCP retransmits, total since the circuit got its counter slot.
    pub retransmits: PerDirection,
    /// TCP packets, total (the denominator of a retransmit ratio).
    pub tcp_packets: PerDirection,
    /// TCP retransmits in the last 60 seconds.
    pub retransmits_60s: PerDirection,
    /// TCP packets in the last 60 seconds.
    pub tcp_packets_60s: PerDirection,
    /// RTT samples and their sum since the circuit got its counter slot (monotonic; the
    /// `_count` and `_sum` of the `/metrics` summary).
    #[serde(default)]
    pub rtt_total: RttTotals,
}

/// Cumulative RTT samples and sums per path.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RttTotals {
    /// Access-path samples.
    pub access_samples: u64,
    /// Sum of the access-path samples, milliseconds.
    pub access_sum_ms: f64,
    /// Upstream-path samples.
    pub upstream_samples: u64,
    /// Sum of the upstream-path samples, milliseconds.
    pub upstream_sum_ms: f64,
}

/// One flow of a circuit (subscriber side first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowEntry {
    /// `tcp`, `udp` or the IP protocol number.
    pub protocol: String,
    /// Subscriber address.
    pub subscriber: String,
    /// Subscriber port.
    pub subscriber_port: u16,
    /// Remote address.
    pub remote: String,
    /// Remote port.
    pub remote_port: u16,
    /// Bytes, `down` towards the subscriber.
    pub bytes: PerDirection,
    /// Packets.
    pub packets: PerDirection,
    /// Current rate over the last flow sweep, bits/s.
    pub rate_bps: PerDirection,
    /// TCP retransmits.
    pub retransmits: PerDirection,
    /// Last RTT sample per path, milliseconds (`None` = no sample).
    pub rtt_access_ms: Option<f64>,
    /// Last upstream RTT sample, milliseconds.
    pub rtt_upstream_ms: Option<f64>,
    /// Seconds since the flow was first seen.
    pub age_secs: u64,
}

/// What the scheduler is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SchedulerState {
    /// `starting`, `importing`, `reloading`, `idle`, `failed`…
    pub phase: String,
    /// The integration in use (`uisp`, `splynx`, `netzur`, or `none`).
    pub integration: String,
    /// Unix time of the last finished cycle.
    pub last_run_unix: Option<u64>,
    /// `ok` or a one-line failure summary of the last cycle.
    pub last_result: Option<String>,
    /// Unix time of the next planned cycle.
    pub next_run_unix: Option<u64>,
    /// The last error with the integration's own message.
    pub last_error: Option<String>,
}

/// Counts of kernel objects touched by an apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ObjectCounts {
    /// Classes and qdiscs added.
    pub added: usize,
    /// Changed in place.
    pub changed: usize,
    /// Deleted.
    pub deleted: usize,
    /// IP mappings added or updated.
    pub mappings_added: usize,
    /// IP mappings removed.
    pub mappings_removed: usize,
}

/// The answer to Reload / DryRun.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReloadReport {
    /// True when the new plan is now in force (false for DryRun and for refused input).
    pub applied: bool,
    /// Incremental or full, as actually done.
    pub full_rebuild: bool,
    /// Circuits and nodes in the new plan.
    pub circuits: usize,
    /// Nodes in the new plan.
    pub nodes: usize,
    /// Shaping queues.
    pub queues: u16,
    /// What changed (or would change).
    pub counts: ObjectCounts,
    /// Owners rebuilt because they moved.
    pub rebuilt: Vec<String>,
    /// Milliseconds spent reading and validating the inputs.
    pub validate_ms: u64,
    /// Milliseconds spent planning and diffing.
    pub plan_ms: u64,
    /// Milliseconds spent changing the kernel.
    pub apply_ms: u64,
    /// Every input problem (errors block the reload) and planner warning.
    pub diagnostics: Vec<Diagnostic>,
    /// Planner warnings, one line each.
    pub warnings: Vec<String>,
    /// `tc -batch` lines of the change (DryRun only, when asked).
    pub tc_lines: Option<String>,
    /// Circuits set aside for a problem of their own (left unshaped, or shaped under a
    /// generated parent), by line. The rest of the input was planned (and applied).
    #[serde(default)]
    pub quarantined: Vec<Quarantined>,
    /// True when lqos.conf `dry_run = true` kept lqosd from changing the kernel: the counts
    /// are what it would have done.
    #[serde(default)]
    pub dry_run: bool,
}

/// One mapping in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MappingEntry {
    /// Host or prefix.
    pub net: String,
    /// CPU.
    pub cpu: u32,
    /// Class `major:minor` (hex).
    pub class: String,
    /// Circuit ID.
    pub circuit: String,
}

/// Live numbers for one circuit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CircuitStat {
    /// Circuit ID.
    pub id: String,
    /// Circuit Name.
    pub name: String,
    /// Parent node name.
    pub parent: String,
    /// Plan download ceil, kbit/s.
    pub download_max_kbit: u64,
    /// Plan upload ceil, kbit/s.
    pub upload_max_kbit: u64,
    /// Current download rate, bits/s.
    pub download_bps: u64,
    /// Current upload rate, bits/s.
    pub upload_bps: u64,
    /// Total download bytes.
    pub download_bytes: u64,
    /// Total upload bytes.
    pub upload_bytes: u64,
    /// Total download packets.
    pub download_packets: u64,
    /// Total upload packets.
    pub upload_packets: u64,
    /// Queue drops (both directions).
    pub drops: u64,
    /// Queue backlog in bytes (both directions).
    pub backlog_bytes: u64,
    /// Download class `major:minor`.
    pub class: String,
    /// Addresses.
    pub addresses: Vec<String>,
    /// TCP quality (RTT, retransmits); absent when the data plane gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qoe: Option<Qoe>,
}

/// Live numbers for one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeStat {
    /// Node name.
    pub name: String,
    /// Parent node name.
    pub parent: Option<String>,
    /// Configured download ceil, kbit/s.
    pub download_max_kbit: u64,
    /// Configured upload ceil, kbit/s.
    pub upload_max_kbit: u64,
    /// Current download rate, bits/s.
    pub download_bps: u64,
    /// Current upload rate, bits/s.
    pub upload_bps: u64,
    /// Drops.
    pub drops: u64,
    /// Circuits directly under it.
    pub circuits: usize,
    /// TCP quality of every circuit below it (RTT merged, retransmits summed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qoe: Option<Qoe>,
}

/// lqosd's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DaemonStatus {
    /// lqosd version.
    pub version: String,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// `bridge` or `stick`.
    pub mode: String,
    /// Shaping interfaces.
    pub interfaces: Vec<String>,
    /// Shaping queues per direction.
    pub queues: u16,
    /// Circuits in the applied plan.
    pub circuits: usize,
    /// Nodes in the applied plan.
    pub nodes: usize,
    /// Mappings in force.
    pub mappings: usize,
    /// Unix time of the last successful apply.
    pub last_apply_unix: Option<u64>,
    /// One-line result of the last reload attempt.
    pub last_reload: Option<String>,
    /// Total current download rate, bits/s (shaped + unshaped).
    pub download_bps: u64,
    /// Total current upload rate, bits/s.
    pub upload_bps: u64,
    /// Part of the download rate that belongs to mapped circuits.
    pub shaped_download_bps: u64,
    /// Part of the upload rate that belongs to mapped circuits.
    pub shaped_upload_bps: u64,
    /// Queue drops across all classes.
    pub drops: u64,
    /// Scheduler state, if it reported.
    pub scheduler: Option<SchedulerState>,
    /// Current warnings (interface down, unsupported qdisc…).
    pub warnings: Vec<String>,
    /// Circuits quarantined by the last reload that was applied (or planned, with
    /// `dry_run = true`), by line.
    #[serde(default)]
    pub quarantined: Vec<Quarantined>,
    /// Bytes on disk of the history store (`None` = history off or not started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_bytes: Option<u64>,
    /// The data plane's own counters (`None` before the first read, or without a data plane).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane: Option<DataplaneHealth>,
}

/// The data plane's health: table sizes and the XDP/tc programs' own counters, cumulative
/// since the programs were loaded (summed over CPUs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DataplaneHealth {
    /// Entries of the flow table.
    pub flow_capacity: u64,
    /// Flows with a packet in the last few sweeps (the last sweep's count).
    pub flows_live: u64,
    /// Flows the programs created.
    pub flows_created: u64,
    /// Packets of flows that found no room in the flow table (their circuits lose RTT and
    /// retransmit samples; a growing count calls for a bigger table: `LQOS_MAX_FLOWS`).
    pub untracked_packets: u64,
    /// New flows refused because their circuit had opened its share of the table (1/16 of it)
    /// in the current sweep interval: a flood from or against one subscriber.
    #[serde(default)]
    pub flows_over_budget: u64,
    /// RTT samples taken.
    pub rtt_samples: u64,
    /// Classification-cache misses.
    pub cache_misses: u64,
    /// Cache misses answered by the LPM trie (the prefix hash could not).
    pub trie_lookups: u64,
    /// Samples of unmapped addresses lost because their table was full.
    pub unknown_samples_lost: u64,
    /// Frames that reached tc without XDP metadata (tc classified them itself).
    pub no_metadata: u64,
}

/// lqosd's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "response", content = "body")]
pub enum Response {
    /// Answer to Ping.
    Pong,
    /// Done, nothing to report.
    Ack,
    /// Answer to Reload and DryRun.
    Reload(Box<ReloadReport>),
    /// Answer to Validate: every problem (empty = valid).
    Validation(Vec<Diagnostic>),
    /// Answer to Status.
    Status(Box<DaemonStatus>),
    /// Answer to ListMappings.
    Mappings(Vec<MappingEntry>),
    /// Answer to CircuitStats and TopCircuits.
    Circuits(Vec<CircuitStat>),
    /// Answer to NodeStats.
    Nodes(Vec<NodeStat>),
    /// Answer to CircuitFlows: busiest first.
    Flows(Vec<FlowEntry>),
    /// Answer to History.
    History(Box<HistorySeries>),
    /// Answer to Worst.
    Worst(Box<WorstList>),
    /// Answer to QoeDistribution.
    Distribution(Box<QoeDistribution>),
    /// Answer to UnknownAddresses.
    Unknown(Box<UnknownList>),
    /// Answer to CircuitQueue.
    Queue(Box<crate::CircuitQueue>),
    /// Answer to EditConfig: written; the new file's warnings.
    ConfigSaved(Vec<Diagnostic>),
    /// The command failed.
    Error(CommandError),
}

/// Why a command failed, as shown to the operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CommandError {
    /// The inputs are invalid; nothing was changed.
    #[error("inputs are invalid ({} problems); nothing was changed", diagnostics.len())]
    InvalidInput {
        /// Every problem.
        diagnostics: Vec<Diagnostic>,
    },
    /// The kernel refused a change; the previous state is kept where possible.
    #[error("kernel apply failed: {message}")]
    ApplyFailed {
        /// The error chain.
        message: String,
    },
    /// Something else went wrong.
    #[error("{message}")]
    Internal {
        /// The error chain.
        message: String,
    },
    /// The command is not available in this state (e.g. observe mode).
    #[error("not available: {message}")]
    Unavailable {
        /// Why.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_their_api_spelling_and_commands_keep_their_wire_names() {
        for w in QoeWindow::ALL {
            assert_eq!(QoeWindow::parse(w.as_str()), Some(w));
            assert_eq!(serde_json::to_value(w).expect("json"), w.as_str());
        }
        assert_eq!(QoeWindow::parse("2h"), None);
        assert!(QoeWindow::Hour1.from_history() && !QoeWindow::Secs60.from_history());
        let c = Command::Worst {
            kind: WorstKind::Circuits,
            by: WorstBy::Retransmits,
            window: QoeWindow::Secs10,
            limit: 5,
        };
        let v = serde_json::to_value(&c).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"command": "worst", "kind": "circuits", "by": "retransmits",
                "window": "10s", "limit": 5})
        );
        assert_eq!(serde_json::from_value::<Command>(v).expect("back"), c);
        assert_eq!(Command::QoeDistribution.name(), "qoe_distribution");
        assert_eq!(Command::UnknownAddresses { limit: 3 }.name(), "unknown_addresses");
        // A history point stored before tcp_packets existed still parses.
        let old = serde_json::json!({"t": 1, "down_bps": 0, "up_bps": 0, "rtt_access_ms": null,
            "rtt_upstream_ms": null, "retransmits": {"down": 1, "up": 0}, "drops": 0});
        let p: HistoryPoint = serde_json::from_value(old).expect("old point");
        assert_eq!(p.tcp_packets, PerDirection::default());
    }
}
