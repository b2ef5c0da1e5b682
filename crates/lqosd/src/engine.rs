//! The apply engine: the only place where lqosd decides what to do to the kernel.
//!
//! Reload = read the inputs, validate, plan with the stored identities, diff against the
//! applied plan, then apply in a safe order:
//! 1. unmap the addresses that go away or move (their traffic passes unshaped, never dropped);
//! 2. change the queue tree (deletions, then additions parents-first, then in-place changes),
//!    circuits in stages of a few hundred, each stage's addresses mapped as soon as its classes
//!    exist (see [`crate::stages`]), so a big first build shapes subscribers progressively;
//! 3. store the plan (and the circuits' counter slots) as applied.
//!
//! Invalid inputs change nothing. A failed kernel step keeps the previous plan on disk and
//! latches `needs_reconcile`, so the next reload compares the wanted plan with what the kernel
//! really holds instead of trusting a diff.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use lqos_bus::{CommandError, ObjectCounts, ReloadMode, ReloadReport};
use lqos_config::{Config, Diagnostic, has_errors};
use lqos_plan::{ChangeSet, HostFacts, Identities, Plan, PlanInput};

use crate::kernel::{Kernel, KernelError};

/// File (in `state_directory`) holding the applied plan and its identities.
pub const APPLIED_PLAN_FILE: &str = "applied_plan.json";

/// Reads and writes the applied plan.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

/// Failure to read or write the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading failed.
    #[error("cannot read applied plan {}", path.display())]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a plan (written by another version?).
    #[error("applied plan {} is unreadable; it will be rebuilt from the inputs", path.display())]
    Decode {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
    /// Writing failed.
    #[error("cannot store applied plan in {}", path.display())]
    Write {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: lqos_config::ConfigError,
    },
}

impl StateStore {
    /// A store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateStore { dir: dir.into() }
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The applied-plan file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(APPLIED_PLAN_FILE)
    }

    /// Loads the applied plan, `Ok(None)` when there is none yet.
    pub fn load(&self) -> Result<Option<Plan>, StateError> {
        let path = self.path();
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Read { path, source }),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|source| StateError::Decode { path, source })
    }

    /// Stores `plan` atomically.
    pub fn save(&self, plan: &Plan) -> Result<(), StateError> {
        let path = self.path();
        std::fs::create_dir_all(&self.dir).map_err(|e| StateError::Write {
            path: path.clone(),
            source: lqos_config::ConfigError::Write { path: self.dir.clone(), source: e },
        })?;
        let bytes = serde_json::to_vec(plan).map_err(|e| StateError::Write {
            path: path.clone(),
            source: lqos_config::ConfigError::Write {
                path: path.clone(),
                source: std::io::Error::other(e),
            },
        })?;
        lqos_config::write_atomic(&path, &bytes)
            .map_err(|source| StateError::Write { path: path.clone(), source })
    }

    /// Removes the stored plan (after `ClearTree`).
    pub fn remove(&self) -> Result<(), StateError> {
        let path = self.path();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Read { path, source }),
        }
    }
}

/// Inputs read, validated and planned, not yet applied.
#[derive(Debug)]
pub struct Prepared {
    /// The plan (only when the inputs are valid).
    pub plan: Plan,
    /// Every diagnostic (warnings only, since errors refuse).
    pub diagnostics: Vec<Diagnostic>,
    /// Milliseconds reading and validating.
    pub validate_ms: u64,
    /// Milliseconds planning.
    pub plan_ms: u64,
}

/// Reads `network.json` and `ShapedDevices.csv` from `config.lqos_directory`, validates them,
/// and plans. Any input error refuses with every diagnostic.
pub fn prepare(
    config: &Config,
    facts: HostFacts,
    previous: &Identities,
) -> Result<Prepared, CommandError> {
    let t0 = Instant::now();
    let inputs = lqos_config::load_inputs(config)
        .map_err(|e| CommandError::Internal { message: error_chain(&e) })?;
    let validate_ms = t0.elapsed().as_millis() as u64;
    if has_errors(&inputs.diagnostics) {
        return Err(CommandError::InvalidInput { diagnostics: inputs.diagnostics });
    }
    let t1 = Instant::now();
    // Observe mode is planned as shaping (placement, identities, mappings, slots), then the
    // queue tree is dropped: see [`crate::observe`].
    let shaped = crate::observe::as_shaping(config);
    let plan = lqos_plan::plan(&PlanInput {
        config: shaped.as_ref().unwrap_or(config),
        network: &inputs.network,
        circuits: &inputs.circuits,
        facts,
        previous,
    })
    .map(|p| if shaped.is_some() { crate::observe::without_tree(p) } else { p })
    .map_err(|e| CommandError::InvalidInput {
        diagnostics: vec![
            Diagnostic::error(config.path.display().to_string(), error_chain(&e))
                .hint("the plan cannot be built from these inputs; nothing was changed"),
        ],
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

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The engine: owns the kernel handle and the applied plan.
#[derive(Debug)]
pub struct Engine<K: Kernel> {
    kernel: K,
    store: StateStore,
    applied: Option<Plan>,
    /// Circuit → counter slot, stored beside the applied plan.
    slots: crate::slots::SlotTable,
    needs_reconcile: bool,
    /// Unix time of the last successful apply.
    pub last_apply_unix: Option<u64>,
    /// One line about the last reload attempt.
    pub last_reload: Option<String>,
}

impl<K: Kernel> Engine<K> {
    /// A new engine; loads the stored plan (an unreadable one is logged and ignored, so the
    /// next reload reconciles with the kernel).
    pub fn new(kernel: K, store: StateStore) -> Self {
        let (applied, needs_reconcile) = match store.load() {
            Ok(p) => (p, true),
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "ignoring stored plan");
                (None, true)
            }
        };
        let slots = crate::slots::load(store.dir()).unwrap_or_else(|e| {
            tracing::warn!(error = %error_chain(&e), "ignoring stored slot table; circuits get new slots");
            crate::slots::SlotTable::default()
        });
        Engine {
            kernel,
            store,
            applied,
            slots,
            needs_reconcile,
            last_apply_unix: None,
            last_reload: None,
        }
    }

    /// Circuit → counter slot of the applied plan.
    pub fn slots(&self) -> &crate::slots::SlotTable {
        &self.slots
    }

    /// The plan in force.
    pub fn applied(&self) -> Option<&Plan> {
        self.applied.as_ref()
    }

    /// The kernel handle (for stats reads).
    pub fn kernel_mut(&mut self) -> &mut K {
        &mut self.kernel
    }

    /// The stored identities (empty before the first apply).
    pub fn identities(&self) -> Identities {
        self.applied.as_ref().map(|p| p.identities.clone()).unwrap_or_default()
    }

    /// After a restart: make the kernel hold the stored plan again without rebuilding what is
    /// already right. Returns the number of kernel objects that had to be repaired.
    pub fn restore(&mut self) -> Result<Option<ReloadReport>, CommandError> {
        let Some(plan) = self.applied.clone() else { return Ok(None) };
        let t0 = Instant::now();
        let cs = self.kernel.reconcile(&plan).map_err(apply_failed)?;
        let report = self.apply_changeset(&plan, cs)?;
        tracing::info!(
            added = report.counts.added,
            changed = report.counts.changed,
            deleted = report.counts.deleted,
            mappings = report.counts.mappings_added,
            ms = t0.elapsed().as_millis() as u64,
            "restored the stored plan"
        );
        Ok(Some(report))
    }

    /// Validates, plans and applies the inputs. `Full` compares with the live kernel instead
    /// of the stored plan (a repair that rebuilds only what is wrong).
    pub fn reload(
        &mut self,
        config: &Config,
        facts: HostFacts,
        mode: ReloadMode,
    ) -> Result<ReloadReport, CommandError> {
        let result = self.reload_inner(config, facts, mode);
        self.last_reload = Some(match &result {
            Ok(r) => format!(
                "ok: {} added, {} changed, {} deleted",
                r.counts.added, r.counts.changed, r.counts.deleted
            ),
            Err(e) => format!("failed: {e}"),
        });
        result
    }

    fn reload_inner(
        &mut self,
        config: &Config,
        facts: HostFacts,
        mode: ReloadMode,
    ) -> Result<ReloadReport, CommandError> {
        let prepared = prepare(config, facts, &self.identities())?;
        let t_plan = Instant::now();
        let reconcile = mode == ReloadMode::Full || self.needs_reconcile || self.applied.is_none();
        let cs = if reconcile {
            self.kernel.reconcile(&prepared.plan).map_err(apply_failed)?
        } else if let Some(old) = &self.applied {
            lqos_plan::diff(old, &prepared.plan)
        } else {
            ChangeSet::default()
        };
        let diff_ms = t_plan.elapsed().as_millis() as u64;
        let mut report = self.apply_changeset(&prepared.plan, cs)?;
        report.full_rebuild = reconcile;
        report.validate_ms = prepared.validate_ms;
        report.plan_ms = prepared.plan_ms + diff_ms;
        report.diagnostics = prepared.diagnostics;
        Ok(report)
    }

    /// What a reload would do, without doing it.
    pub fn dry_run(&self, config: &Config, facts: HostFacts) -> Result<ReloadReport, CommandError> {
        let prepared = prepare(config, facts, &self.identities())?;
        let cs = match &self.applied {
            Some(old) => lqos_plan::diff(old, &prepared.plan),
            None => lqos_plan::diff(&Plan::empty(), &prepared.plan),
        };
        let mut report = report_for(&prepared.plan, &cs);
        report.validate_ms = prepared.validate_ms;
        report.plan_ms = prepared.plan_ms;
        report.diagnostics = prepared.diagnostics;
        report.tc_lines = Some(lqos_plan::render_changeset_tc(&cs));
        Ok(report)
    }

    fn apply_changeset(
        &mut self,
        plan: &Plan,
        cs: ChangeSet,
    ) -> Result<ReloadReport, CommandError> {
        let mut report = report_for(plan, &cs);
        // Filled with what the kernel really did, stage by stage.
        (report.counts.added, report.counts.changed, report.counts.deleted) = (0, 0, 0);
        let t0 = Instant::now();
        if cs.is_empty() {
            tracing::info!("reload: nothing to change");
        }
        // Mark dirty until the whole sequence has succeeded.
        self.needs_reconcile = true;
        let assigned = self
            .slots
            .assign(plan.circuits.iter().map(|c| c.id.0.as_str()), self.kernel.slot_capacity());
        if assigned.without_slot > 0 {
            tracing::warn!(
                circuits = assigned.without_slot,
                capacity = self.kernel.slot_capacity(),
                "more circuits than counter slots; these are counted as unshaped"
            );
        }
        // Slots given to a circuit that did not hold them start from zero (a reused slot must
        // not carry its previous circuit's counters).
        let fresh: Vec<u32> = assigned
            .table
            .iter()
            .filter(|(c, s)| self.slots.get(c) != Some(*s))
            .map(|(_, s)| s)
            .collect();
        if !fresh.is_empty() {
            self.kernel.reset_slots(&fresh).map_err(apply_failed)?;
        }
        self.kernel.set_slots(&assigned.table);
        self.kernel.set_observe(plan.observe_only).map_err(apply_failed)?;
        let parts = crate::stages::stages(cs, crate::stages::CIRCUITS_PER_STAGE);
        let staged = parts.len();
        let (mut tc_ms, mut map_ms, mut mapped) = (0u64, 0u64, 0usize);
        for (i, part) in parts.into_iter().enumerate() {
            if !part.map_del.is_empty() {
                let t = Instant::now();
                self.kernel.unmap(&part.map_del).map_err(apply_failed)?;
                map_ms += t.elapsed().as_millis() as u64;
            }
            // Stage 0 always goes to lqos-tc (a no-op refresh is one empty apply).
            if i == 0 || crate::stages::has_tc(&part) {
                let t = Instant::now();
                let counts = self.kernel.apply_tc(&part).map_err(apply_failed)?;
                tc_ms += t.elapsed().as_millis() as u64;
                report.counts.added += counts.added;
                report.counts.changed += counts.changed;
                report.counts.deleted += counts.deleted;
            }
            if !part.map_add.is_empty() {
                let t = Instant::now();
                self.kernel.map(&part.map_add).map_err(apply_failed)?;
                map_ms += t.elapsed().as_millis() as u64;
                mapped += part.map_add.len();
                if staged > 2 {
                    tracing::debug!(stage = i, mapped, "stage applied; its circuits are shaped");
                }
            }
        }
        let t_save = Instant::now();
        self.store.save(plan).map_err(|e| CommandError::Internal { message: error_chain(&e) })?;
        if let Err(e) = crate::slots::save(self.store.dir(), &assigned.table) {
            // The kernel holds the new plan; only the stability of slots across a restart
            // is at risk, so this is not a failed apply.
            tracing::warn!(error = %error_chain(&e), "slot table not stored");
        }
        let save_ms = t_save.elapsed().as_millis() as u64;
        self.slots = assigned.table;
        self.applied = Some(plan.clone());
        self.needs_reconcile = false;
        self.last_apply_unix = Some(now_unix());
        report.applied = true;
        report.apply_ms = t0.elapsed().as_millis() as u64;
        tracing::info!(stages = staged, tc_ms, map_ms, save_ms, mapped, "apply phases");
        Ok(report)
    }

    /// Removes the managed tree and every mapping.
    pub fn clear(&mut self) -> Result<(), CommandError> {
        if let Some(plan) = self.applied.clone() {
            self.kernel.clear(&plan).map_err(apply_failed)?;
        }
        self.store.remove().map_err(|e| CommandError::Internal { message: error_chain(&e) })?;
        self.applied = None;
        self.needs_reconcile = true;
        Ok(())
    }
}

fn apply_failed(e: KernelError) -> CommandError {
    tracing::error!(error = %e, "kernel apply failed; the next reload reconciles with the kernel");
    CommandError::ApplyFailed { message: e.to_string() }
}

/// Counts a ChangeSet into a report.
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

/// The state directory's store for `config`.
pub fn store_for(config: &Config) -> StateStore {
    StateStore::new(Path::new(&config.state_directory))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::fake::{Call, FakeKernel};

    use crate::testutil::{FACTS, HEADER, TWO, setup};

    #[test]
    fn first_reload_reconciles_maps_and_stores_the_plan() {
        let (_dir, config) = setup(TWO);
        let mut e = Engine::new(FakeKernel::default(), store_for(&config));
        let r = e.reload(&config, FACTS, ReloadMode::Incremental).expect("reload");
        assert!(r.applied && r.full_rebuild);
        assert_eq!(r.circuits, 2);
        assert_eq!(e.kernel.calls.first(), Some(&Call::Reconcile));
        assert!(store_for(&config).load().expect("load").is_some());
    }

    #[test]
    fn unchanged_inputs_send_nothing_to_the_kernel() {
        let (_dir, config) = setup(TWO);
        let mut e = Engine::new(FakeKernel::default(), store_for(&config));
        // First apply: the fake's reconcile says "nothing to do", so use the real diff from an
        // empty plan to get the kernel into the planned state.
        e.reload(&config, FACTS, ReloadMode::Incremental).expect("first");
        e.kernel.calls.clear();
        let r = e.reload(&config, FACTS, ReloadMode::Incremental).expect("second");
        assert!(r.applied && !r.full_rebuild);
        assert_eq!(r.counts, lqos_bus::ObjectCounts::default());
        assert_eq!(e.kernel.calls, vec![Call::ApplyTc { adds: 0, changes: 0, deletes: 0 }]);
    }

    #[test]
    fn a_rate_edit_is_an_in_place_change_and_nothing_else() {
        let (dir, config) = setup(TWO);
        let mut e = Engine::new(FakeKernel::default(), store_for(&config));
        e.reload(&config, FACTS, ReloadMode::Incremental).expect("first");
        let edited = TWO.replace(",1,1,50,10,", ",1,1,60,10,");
        std::fs::write(dir.path().join("ShapedDevices.csv"), format!("{HEADER}{edited}"))
            .expect("write");
        e.kernel.calls.clear();
        let r = e.reload(&config, FACTS, ReloadMode::Incremental).expect("edit");
        assert_eq!(r.counts.added, 0);
        assert_eq!(r.counts.deleted, 0);
        assert!(r.counts.changed >= 1, "{:?}", r.counts);
        assert_eq!(r.counts.mappings_added + r.counts.mappings_removed, 0);
    }

    #[test]
    fn invalid_inputs_touch_nothing_and_keep_the_applied_plan() {
        let (dir, config) = setup(TWO);
        let mut e = Engine::new(FakeKernel::default(), store_for(&config));
        e.reload(&config, FACTS, ReloadMode::Incremental).expect("first");
        let before = e.applied().cloned();
        e.kernel.calls.clear();
        std::fs::write(
            dir.path().join("ShapedDevices.csv"),
            format!("{HEADER}c3,Carol,d3,r3,Nowhere,,,,100.64.0.3,,1,1,x,10,\n"),
        )
        .expect("write");
        let err = e.reload(&config, FACTS, ReloadMode::Incremental).expect_err("invalid");
        let CommandError::InvalidInput { diagnostics } = err else {
            panic!("wrong error: {err:?}")
        };
        assert!(diagnostics.iter().any(|d| d.line == Some(2)), "{diagnostics:?}");
        assert!(e.kernel.calls.is_empty(), "{:?}", e.kernel.calls);
        assert_eq!(e.applied().cloned(), before);
    }

    #[test]
    fn failed_tc_apply_keeps_the_old_plan_and_latches_reconcile() {
        let (dir, config) = setup(TWO);
        let mut e = Engine::new(FakeKernel::default(), store_for(&config));
        e.reload(&config, FACTS, ReloadMode::Incremental).expect("first");
        let before = e.applied().cloned();
        std::fs::write(
            dir.path().join("ShapedDevices.csv"),
            format!("{HEADER}{}", TWO.replace(",50,10,", ",70,10,")),
        )
        .expect("write");
        e.kernel.fail_next_tc = Some("add class 1:3 on eth1: File exists".into());
        e.kernel.calls.clear();
        let err = e.reload(&config, FACTS, ReloadMode::Incremental).expect_err("tc fails");
        assert!(matches!(err, CommandError::ApplyFailed { .. }));
        assert_eq!(e.applied().cloned(), before);
        assert_eq!(store_for(&config).load().expect("load"), before);
        e.kernel.calls.clear();
        e.reload(&config, FACTS, ReloadMode::Incremental).expect("retry");
        assert_eq!(e.kernel.calls.first(), Some(&Call::Reconcile));
    }

    #[test]
    fn restart_restores_by_reconciling_not_rebuilding() {
        let (_dir, config) = setup(TWO);
        let mut e = Engine::new(FakeKernel::default(), store_for(&config));
        e.reload(&config, FACTS, ReloadMode::Incremental).expect("first");
        let mut e2 = Engine::new(FakeKernel::default(), store_for(&config));
        assert!(e2.applied().is_some());
        e2.restore().expect("restore");
        assert_eq!(
            e2.kernel.calls,
            vec![Call::Reconcile, Call::ApplyTc { adds: 0, changes: 0, deletes: 0 }]
        );
    }

    #[test]
    fn a_big_first_build_maps_each_stage_as_soon_as_its_classes_exist() {
        let rows: String = (0..1200)
            .map(|i| {
                format!(
                    "c{i},S{i},d{i},r{i},AP_1,,,,100.64.{}.{},,1,1,50,10,\n",
                    i / 200,
                    i % 200 + 1
                )
            })
            .collect();
        let (_dir, config) = setup(&rows);
        let plan = prepare(&config, FACTS, &Identities::default()).expect("prepare").plan;
        let kernel = FakeKernel {
            reconcile_answer: lqos_plan::diff(&Plan::empty(), &plan),
            ..Default::default()
        };
        let mut e = Engine::new(kernel, store_for(&config));
        e.reload(&config, FACTS, ReloadMode::Incremental).expect("reload");
        let calls = &e.kernel.calls;
        // Reconcile, stage 0 (tree skeleton), then 3 stages of <= 500 circuits, each a tc
        // batch followed at once by its mappings.
        let maps: Vec<usize> = calls
            .iter()
            .filter_map(|c| if let Call::Map(n) = c { Some(*n) } else { None })
            .collect();
        assert_eq!(maps, vec![500, 500, 200], "{calls:?}");
        for (i, c) in calls.iter().enumerate() {
            if matches!(c, Call::Map(_)) {
                assert!(
                    matches!(calls[i - 1], Call::ApplyTc { adds, .. } if adds > 0),
                    "{calls:?}"
                );
            }
        }
        // Every circuit got a distinct slot, stored with the plan.
        assert_eq!(e.slots().len(), 1200);
        assert_eq!(crate::slots::load(&config.state_directory).expect("slots"), *e.slots());
        let before = e.slots().clone();
        let mut e2 = Engine::new(FakeKernel::default(), store_for(&config));
        e2.reload(&config, FACTS, ReloadMode::Incremental).expect("reload again");
        assert_eq!(*e2.slots(), before, "slots moved across a restart");
    }
}
