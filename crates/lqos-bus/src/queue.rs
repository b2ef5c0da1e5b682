//! The answer to [`crate::Command::CircuitQueue`]: the statistics of one circuit's queues, both
//! directions, read from the kernel when asked (nothing is polled while nobody looks).
//!
//! Per direction there are two sources: the circuit's HTB class (always there while the circuit
//! is shaped: drops, overlimits, requeues, backlog) and its leaf qdisc when one is visible
//! (`pfifo`/`bfifo`, or CAKE and fq_codel with their own statistics). A circuit planned with
//! leaf `none` has only the kernel's invisible default pfifo, so only the class is shown.

use serde::{Deserialize, Serialize};

/// Statistics of one circuit's queues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CircuitQueue {
    /// Circuit ID.
    pub circuit: String,
    /// Unix time, milliseconds, of the kernel read (answers are reused for about a second).
    pub read_unix_ms: u64,
    /// True when lqosd declined to read the kernel now (too many queue queries in the last
    /// second); `directions` is then empty: ask again a second later.
    #[serde(default)]
    pub throttled: bool,
    /// Download first, then upload; empty in observe mode (no queues are built).
    pub directions: Vec<QueueDirection>,
    /// Why there is nothing to show, when that is the case (observe mode, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One direction of a circuit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueDirection {
    /// `download` (towards the subscriber) or `upload`.
    pub direction: String,
    /// Interface the class lives on.
    pub interface: String,
    /// The circuit's HTB class, `major:minor` in hex.
    pub class: String,
    /// The class's counters (`None` when the kernel no longer has the class).
    pub class_stats: Option<QueueCounters>,
    /// The leaf qdisc under the class, when a visible one exists.
    pub leaf: Option<LeafQueue>,
}

/// Generic counters of a class or qdisc (`tc -s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueCounters {
    /// Bytes sent.
    pub bytes: u64,
    /// Packets sent.
    pub packets: u64,
    /// Packets dropped.
    pub drops: u64,
    /// Times the rate limit held a packet back (HTB) or the queue was over its limit.
    pub overlimits: u64,
    /// Packets put back by the driver.
    pub requeues: u64,
    /// Bytes queued now.
    pub backlog_bytes: u64,
    /// Packets queued now.
    pub backlog_packets: u64,
}

/// A leaf qdisc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeafQueue {
    /// `cake`, `fq_codel`, `pfifo`, `bfifo`, …
    pub kind: String,
    /// Its handle, `major:` in hex.
    pub handle: String,
    /// Generic counters.
    pub counters: QueueCounters,
    /// CAKE's own statistics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cake: Option<CakeQueue>,
    /// fq_codel's own statistics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fq_codel: Option<FqCodelQueue>,
}

/// CAKE's statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CakeQueue {
    /// Capacity estimate, bits/s.
    pub capacity_estimate_bps: u64,
    /// Memory in use, bytes.
    pub memory_used: u64,
    /// Memory limit, bytes.
    pub memory_limit: u64,
    /// Every tin in order (one for besteffort, four for diffserv4, …).
    pub tins: Vec<CakeTinQueue>,
    /// The tins together: counters summed, delays the worst tin's.
    pub total: CakeTinQueue,
}

/// One CAKE tin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CakeTinQueue {
    /// Packets sent.
    pub sent_packets: u64,
    /// Bytes sent.
    pub sent_bytes: u64,
    /// Packets dropped.
    pub dropped_packets: u64,
    /// Packets ECN-marked.
    pub ecn_marked_packets: u64,
    /// ACKs dropped by the ACK filter.
    pub ack_drops: u64,
    /// Bytes queued now.
    pub backlog_bytes: u64,
    /// Packets queued now.
    pub backlog_packets: u64,
    /// Threshold rate, bits/s.
    pub threshold_rate_bps: u64,
    /// AQM target, µs.
    pub target_us: u64,
    /// AQM interval, µs.
    pub interval_us: u64,
    /// Peak queueing delay, µs.
    pub peak_delay_us: u64,
    /// Average queueing delay, µs.
    pub avg_delay_us: u64,
    /// Base queueing delay, µs.
    pub base_delay_us: u64,
    /// Sparse flows now.
    pub sparse_flows: u64,
    /// Bulk flows now.
    pub bulk_flows: u64,
    /// Unresponsive flows now.
    pub unresponsive_flows: u64,
}

/// fq_codel's statistics (`None` = this kernel does not report it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FqCodelQueue {
    /// Largest packet seen, bytes.
    pub maxpacket: u64,
    /// Drops because the qdisc limit was hit.
    pub drop_overlimit: u64,
    /// Packets ECN-marked.
    pub ecn_mark: u64,
    /// Times a packet started a new flow.
    pub new_flow_count: u64,
    /// Flows in the new list now.
    pub new_flows_len: u64,
    /// Flows in the old list now.
    pub old_flows_len: u64,
    /// Packets marked above `ce_threshold`.
    pub ce_mark: Option<u64>,
    /// Memory in use, bytes.
    pub memory_usage: Option<u64>,
    /// Drops because of the memory limit.
    pub drop_overmemory: Option<u64>,
}

#[cfg(test)]
mod tests {
    use crate::{Access, CircuitQueue, Command, LeafQueue, QueueDirection, Response};

    #[test]
    fn circuit_queue_travels_as_json_and_needs_only_read_access() {
        let cmd = Command::CircuitQueue { circuit: "c 1/ü".into() };
        assert_eq!(cmd.name(), "circuit_queue");
        assert_eq!(cmd.required_access(), Access::Read);
        let text = serde_json::to_string(&cmd).expect("encode");
        assert_eq!(serde_json::from_str::<Command>(&text).expect("decode"), cmd);
        let answer = Response::Queue(Box::new(CircuitQueue {
            circuit: "c1".into(),
            read_unix_ms: 5,
            directions: vec![QueueDirection {
                direction: "download".into(),
                leaf: Some(LeafQueue { kind: "cake".into(), ..Default::default() }),
                ..Default::default()
            }],
            ..Default::default()
        }));
        let text = serde_json::to_string(&answer).expect("encode");
        assert!(text.contains("\"response\":\"queue\""), "{text}");
        assert!(!text.contains("fq_codel") && !text.contains("note"), "absent parts are left out");
        assert_eq!(serde_json::from_str::<Response>(&text).expect("decode"), answer);
    }
}
