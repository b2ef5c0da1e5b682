//! A short, serializable summary of a plan (for `libreqos --dry-run`).

use serde::Serialize;

use crate::model::Plan;

/// One queue's share of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueSummary {
    /// Queue (1-based); CPU = queue - 1.
    pub queue: u16,
    /// Nodes (sites, APs, generated parents) on this queue.
    pub nodes: usize,
    /// Circuits on this queue.
    pub circuits: usize,
    /// Sum of the circuits' effective download ceils, kbit.
    pub download_max_kbit: u64,
    /// Sum of the circuits' effective upload ceils, kbit.
    pub upload_max_kbit: u64,
}

/// Totals and per-queue figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    /// Queues per direction.
    pub queues: u16,
    /// Stick offset (0 on a bridge).
    pub stick_offset: u16,
    /// Observe mode.
    pub observe_only: bool,
    /// Nodes planned.
    pub nodes: usize,
    /// Circuits planned.
    pub circuits: usize,
    /// HTB classes over all interfaces.
    pub classes: usize,
    /// Leaf qdiscs over all interfaces.
    pub leaves: usize,
    /// IP mappings.
    pub mappings: usize,
    /// Planner warnings.
    pub warnings: usize,
    /// Per queue.
    pub per_queue: Vec<QueueSummary>,
}

impl PlanSummary {
    /// Summarises `plan`.
    pub fn of(plan: &Plan) -> Self {
        let mut per_queue: Vec<QueueSummary> = (1..=plan.queues)
            .map(|queue| QueueSummary {
                queue,
                nodes: 0,
                circuits: 0,
                download_max_kbit: 0,
                upload_max_kbit: 0,
            })
            .collect();
        for n in &plan.nodes {
            if let Some(q) = per_queue.get_mut(usize::from(n.queue).wrapping_sub(1)) {
                q.nodes += 1;
            }
        }
        for c in &plan.circuits {
            if let Some(q) = per_queue.get_mut(usize::from(c.queue).wrapping_sub(1)) {
                q.circuits += 1;
                q.download_max_kbit += c.download_max.0;
                q.upload_max_kbit += c.upload_max.0;
            }
        }
        PlanSummary {
            queues: plan.queues,
            stick_offset: plan.stick_offset,
            observe_only: plan.observe_only,
            nodes: plan.nodes.len(),
            circuits: plan.circuits.len(),
            classes: plan.interfaces.iter().map(|i| i.classes.len()).sum(),
            leaves: plan.interfaces.iter().map(|i| i.leaves.len()).sum(),
            mappings: plan.mappings.len(),
            warnings: plan.warnings.len(),
            per_queue,
        }
    }
}
