//! The planner's error type.

use crate::model::Direction;
use crate::rates::mbps_text;

/// Why a plan could not be made. Any error leaves the last applied plan in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Neither `[bridge]` nor `[single_interface]` is configured.
    #[error(
        "no shaping interfaces configured: add a [bridge] or [single_interface] section to lqos.conf"
    )]
    NoInterfaces,
    /// Fewer than one shaping queue per direction.
    #[error(
        "too few queues: {queues} usable queue(s) from {tx_queues} tx queue(s) and {cpus} cpu(s){}; need at least 1 per direction",
        if *stick { " on a stick (halved)" } else { "" }
    )]
    TooFewQueues {
        /// Queues per direction after the rules.
        queues: u32,
        /// TX queues considered (or the override).
        tx_queues: u32,
        /// CPUs.
        cpus: u32,
        /// Single-interface mode.
        stick: bool,
    },
    /// The link capacity of a direction is below the smallest HTB rate.
    #[error(
        "{direction:?} link capacity {} is below the minimum of {}",
        mbps_text(*kbit),
        mbps_text(*min)
    )]
    CapacityTooLow {
        /// Direction.
        direction: Direction,
        /// Configured capacity.
        kbit: u64,
        /// Minimum accepted.
        min: u64,
    },
    /// More objects on one queue than there are minors.
    #[error(
        "minor class id overflow on queue {queue}: {count} objects need a minor, at most {max} fit"
    )]
    MinorOverflow {
        /// Queue (1-based).
        queue: u16,
        /// Objects (nodes and circuits) on that queue.
        count: usize,
        /// Minors available per queue.
        max: usize,
    },
    /// More leaf qdiscs on one interface than there are qdisc handles.
    #[error(
        "leaf qdisc handle overflow on interface {interface}: {count} leaf qdiscs, at most {max} fit"
    )]
    LeafHandleOverflow {
        /// Interface.
        interface: String,
        /// Leaves wanted.
        count: usize,
        /// Handles available.
        max: usize,
    },
    /// Two network nodes share one identity key (`id`, else path).
    #[error("two network.json nodes share the identity key {key:?} (node ids must be unique)")]
    DuplicateNodeKey {
        /// The key.
        key: String,
    },
}
