//! lqos-pipeline is the one road from the operator's files to a [`Plan`], shared by lqosd
//! (which then applies it) and `libreqos` (which shows it): read `network.json` and
//! `ShapedDevices.csv`, validate them, set aside the circuits that cannot be shaped
//! (quarantine), and plan the rest with the identities of the applied plan. It also reads
//! the host facts the planner needs ([`facts`]) and keeps the applied plan on disk
//! ([`store`]). It never touches the kernel and never prints; binaries above it (lqosd,
//! libreqos) must not depend on each other.
//!
//! Main items: [`prepare`] → [`Prepared`] or [`PipelineError`]; [`report_for`] (a ChangeSet
//! summary as the bus reports it); [`StateStore`]; [`facts::host_facts`].
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod facts;
pub mod store;

use std::time::Instant;

use lqos_bus::{CommandError, ObjectCounts, ReloadReport};
use lqos_config::{Config, Diagnostic, Inputs, QuarantineAction, Quarantined, has_errors};
use lqos_plan::{ChangeSet, HostFacts, Plan, PlanInput};

pub use facts::{FactsError, cpu_count, host_facts};
pub use store::{APPLIED_PLAN_FILE, StateError, StateStore, store_for};

/// Inputs read, validated and planned, not yet applied.
#[derive(Debug)]
pub struct Prepared {
    /// The plan of every circuit that is not quarantined.
    pub plan: Plan,
    /// Every diagnostic: warnings and quarantines (errors refuse instead).
    pub diagnostics: Vec<Diagnostic>,
    /// Circuits set aside, by line ([`QuarantineAction::GeneratedParent`] ones are in the
    /// plan, under a generated parent node).
    pub quarantined: Vec<Quarantined>,
    /// Milliseconds reading and validating.
    pub validate_ms: u64,
    /// Milliseconds planning.
    pub plan_ms: u64,
}

/// Why the inputs were not planned. Every variant leaves the applied state in force.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// network.json or ShapedDevices.csv cannot be read at all.
    #[error("cannot read the inputs")]
    Read {
        /// The read error, naming the file.
        #[source]
        source: lqos_config::ConfigError,
    },
    /// A problem with the whole input (layout, unparsable file, …): nothing is planned.
    #[error("inputs are invalid ({} problems); nothing was changed", diagnostics.len())]
    Refused {
        /// Every diagnostic, errors included.
        diagnostics: Vec<Diagnostic>,
    },
    /// More circuits would be quarantined than `[queues] max_quarantine_ratio` allows: the
    /// input is probably broken as a whole (a renamed site, a truncated export).
    #[error(
        "{} of {base} circuits would be quarantined, more than max_quarantine_ratio = {ratio}; nothing was changed",
        quarantined.len()
    )]
    TooManyQuarantined {
        /// The circuits that would be quarantined.
        quarantined: Vec<Quarantined>,
        /// The circuits the ratio is taken of (applied, else in the input).
        base: usize,
        /// `[queues] max_quarantine_ratio`.
        ratio: f64,
        /// Every diagnostic of the input.
        diagnostics: Vec<Diagnostic>,
        /// ShapedDevices.csv, named in the refusal.
        csv_path: String,
    },
    /// The planner cannot build a plan from valid inputs (too many objects, no interfaces…).
    #[error("the plan cannot be built from these inputs")]
    Plan {
        /// The planner's reason.
        #[source]
        source: lqos_plan::PlanError,
        /// lqos.conf, named in the diagnostic.
        config_path: String,
    },
}

impl From<PipelineError> for CommandError {
    /// Refusals become `InvalidInput` with every diagnostic; unreadable files `Internal`.
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Read { ref source } => {
                CommandError::Internal { message: format!("{e}: {}", error_chain(source)) }
            }
            PipelineError::Refused { diagnostics } => CommandError::InvalidInput { diagnostics },
            PipelineError::TooManyQuarantined { .. } => {
                let message = e.to_string();
                let PipelineError::TooManyQuarantined { mut diagnostics, csv_path, .. } = e else {
                    return CommandError::Internal { message };
                };
                diagnostics.push(Diagnostic::error(csv_path, message).hint(
                    "fix the quarantined rows listed above, or raise [queues] \
                     max_quarantine_ratio in lqos.conf (1 disables the check)",
                ));
                CommandError::InvalidInput { diagnostics }
            }
            PipelineError::Plan { source, config_path } => CommandError::InvalidInput {
                diagnostics: vec![
                    Diagnostic::error(config_path, error_chain(&source))
                        .hint("the plan cannot be built from these inputs; nothing was changed"),
                ],
            },
        }
    }
}

/// True when quarantining `quarantined` circuits is acceptable for `base` circuits: nothing
/// quarantined; or `ratio` > 0 and either a single circuit (one bad row never blocks a whole
/// network, however small) or at most `ratio × base` circuits. `ratio` 0 refuses any
/// quarantine; 1 accepts every one.
pub fn quarantine_allowed(quarantined: usize, base: usize, ratio: f64) -> bool {
    quarantined == 0
        || (ratio > 0.0 && (quarantined == 1 || quarantined as f64 <= ratio * base as f64))
}

/// Reads `network.json` and `ShapedDevices.csv` from `config.lqos_directory`, validates them,
/// quarantines the circuits with problems of their own, and plans the rest with the
/// identities of `applied` (the plan in force, if any).
///
/// Refuses ([`PipelineError`]) when a file cannot be read, when an error concerns the whole
/// input, or when more circuits would be quarantined than `[queues] max_quarantine_ratio`
/// allows of the circuits in `applied` (of the circuits in the input when nothing is applied
/// yet; see [`quarantine_allowed`]).
pub fn prepare(
    config: &Config,
    facts: HostFacts,
    applied: Option<&Plan>,
) -> Result<Prepared, PipelineError> {
    let t0 = Instant::now();
    let inputs = load(config, applied)?;
    let validate_ms = t0.elapsed().as_millis() as u64;
    let previous = applied.map(|p| p.identities.clone()).unwrap_or_default();
    let t1 = Instant::now();
    let plan = lqos_plan::plan(&PlanInput {
        config,
        network: &inputs.network,
        circuits: &inputs.circuits,
        facts,
        previous: &previous,
    })
    .map_err(|source| PipelineError::Plan {
        source,
        config_path: config.path.display().to_string(),
    })?;
    Ok(Prepared {
        plan,
        diagnostics: inputs.diagnostics,
        quarantined: inputs.quarantined,
        validate_ms,
        plan_ms: t1.elapsed().as_millis() as u64,
    })
}

/// The first half of [`prepare`]: reads and validates the inputs, quarantines, and applies
/// the refusal rules (whole-input errors, `max_quarantine_ratio` against `applied`), without
/// planning. `libreqos --validate` stops here.
pub fn load(config: &Config, applied: Option<&Plan>) -> Result<Inputs, PipelineError> {
    let inputs =
        lqos_config::load_inputs(config).map_err(|source| PipelineError::Read { source })?;
    if has_errors(&inputs.diagnostics) {
        return Err(PipelineError::Refused { diagnostics: inputs.diagnostics });
    }
    let unshaped =
        inputs.quarantined.iter().filter(|q| q.action == QuarantineAction::Unshaped).count();
    let base = match applied {
        Some(p) if !p.circuits.is_empty() => p.circuits.len(),
        _ => inputs.circuits.len() + unshaped,
    };
    let ratio = config.queues.max_quarantine_ratio;
    if !quarantine_allowed(inputs.quarantined.len(), base, ratio) {
        return Err(PipelineError::TooManyQuarantined {
            quarantined: inputs.quarantined,
            base,
            ratio,
            diagnostics: inputs.diagnostics,
            csv_path: config.shaped_devices_path().display().to_string(),
        });
    }
    Ok(inputs)
}

/// Formats an error with its whole source chain (`a: b: c`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Counts a ChangeSet into a report (not applied; the caller fills in timings and outcome).
pub fn report_for(plan: &Plan, cs: &ChangeSet) -> ReloadReport {
    ReloadReport {
        applied: false,
        full_rebuild: false,
        circuits: plan.circuits.len(),
        nodes: plan.nodes.len(),
        queues: plan.queues,
        counts: ObjectCounts {
            added: cs.mq_add.len() + cs.htb_add.len() + cs.class_add.len() + cs.leaf_add.len(),
            changed: cs.class_change.len() + cs.leaf_change.len(),
            deleted: cs.leaf_del.len() + cs.class_del.len() + cs.htb_del.len(),
            mappings_added: cs.map_add.len(),
            mappings_removed: cs.map_del.len(),
        },
        rebuilt: cs.rebuilt.iter().map(|o| o.to_string()).collect(),
        validate_ms: 0,
        plan_ms: 0,
        apply_ms: 0,
        diagnostics: Vec::new(),
        warnings: plan.warnings.iter().map(|w| format!("{}: {}", w.owner, w.message)).collect(),
        tc_lines: None,
        quarantined: Vec::new(),
        dry_run: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_quarantined_circuit_is_always_allowed_unless_the_ratio_is_zero() {
        assert!(quarantine_allowed(0, 0, 0.0));
        assert!(quarantine_allowed(1, 3, 0.05));
        assert!(!quarantine_allowed(1, 3, 0.0));
        assert!(quarantine_allowed(5, 100, 0.05));
        assert!(!quarantine_allowed(6, 100, 0.05));
        assert!(quarantine_allowed(100, 100, 1.0));
    }
}
