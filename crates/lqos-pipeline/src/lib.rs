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
use lqos_config::{Config, Diagnostic, has_errors};
use lqos_plan::{ChangeSet, HostFacts, Plan, PlanInput};

pub use facts::{FactsError, cpu_count, host_facts};
pub use store::{APPLIED_PLAN_FILE, StateError, StateStore, store_for};

/// Inputs read, validated and planned, not yet applied.
#[derive(Debug)]
pub struct Prepared {
    /// The plan of every circuit that is not quarantined.
    pub plan: Plan,
    /// Every diagnostic (warnings; errors refuse instead).
    pub diagnostics: Vec<Diagnostic>,
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
            PipelineError::Plan { source, config_path } => CommandError::InvalidInput {
                diagnostics: vec![
                    Diagnostic::error(config_path, error_chain(&source))
                        .hint("the plan cannot be built from these inputs; nothing was changed"),
                ],
            },
        }
    }
}

/// Reads `network.json` and `ShapedDevices.csv` from `config.lqos_directory`, validates them,
/// and plans with the identities of `applied` (the plan in force, if any).
pub fn prepare(
    config: &Config,
    facts: HostFacts,
    applied: Option<&Plan>,
) -> Result<Prepared, PipelineError> {
    let t0 = Instant::now();
    let inputs =
        lqos_config::load_inputs(config).map_err(|source| PipelineError::Read { source })?;
    let validate_ms = t0.elapsed().as_millis() as u64;
    if has_errors(&inputs.diagnostics) {
        return Err(PipelineError::Refused { diagnostics: inputs.diagnostics });
    }
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
        validate_ms,
        plan_ms: t1.elapsed().as_millis() as u64,
    })
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
    }
}
