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
//! Invalid inputs change nothing. A circuit with a problem of its own is quarantined (left
//! unshaped, or shaped under a generated parent when only its parent is unknown) and the rest
//! is applied; too many quarantined circuits (`max_quarantine_ratio`) refuse the whole input.
//! With `dry_run = true` in lqos.conf a reload plans, logs and reports the ChangeSet and
//! changes nothing. A failed kernel step keeps the previous plan on disk and latches
//! `needs_reconcile`, so the next reload compares the wanted plan with what the kernel really
//! holds instead of trusting a diff.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use lqos_bus::{CommandError, ReloadMode, ReloadReport};
use lqos_config::{Config, Quarantined};
use lqos_plan::{ChangeSet, HostFacts, Identities, Plan};

pub use lqos_pipeline::{
    APPLIED_PLAN_FILE, Prepared, StateError, StateStore, error_chain, report_for, store_for,
};

use crate::kernel::{Kernel, KernelError};

/// Reads, validates and plans the inputs with the identities of `applied` (see
/// [`lqos_pipeline::prepare`]); refusals become the bus's [`CommandError`].
pub fn prepare(
    config: &Config,
    facts: HostFacts,
    applied: Option<&Plan>,
) -> Result<Prepared, CommandError> {
    // Observe mode is planned as shaping (placement, identities, mappings, slots), then the
    // queue tree is dropped: see [`crate::observe`].
    let shaped = crate::observe::as_shaping(config);
    let mut prepared = lqos_pipeline::prepare(shaped.as_ref().unwrap_or(config), facts, applied)
        .map_err(CommandError::from)?;
    if shaped.is_some() {
        prepared.plan = crate::observe::without_tree(prepared.plan);
    }
    Ok(prepared)
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
    /// Circuits quarantined by the last reload that was planned (applied or dry run).
    pub quarantined: Vec<Quarantined>,
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
            quarantined: Vec::new(),
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

    /// The kernel handle and the plan in force together (a read that needs both).
    pub fn kernel_and_plan(&mut self) -> (&mut K, Option<&Plan>) {
        (&mut self.kernel, self.applied.as_ref())
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
                "{}: {} added, {} changed, {} deleted{}",
                if r.dry_run {
                    "dry run (dry_run = true), kernel unchanged; would apply"
                } else {
                    "ok"
                },
                r.counts.added,
                r.counts.changed,
                r.counts.deleted,
                if r.quarantined.is_empty() {
                    String::new()
                } else {
                    format!("; {} circuit(s) quarantined", r.quarantined.len())
                }
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
        let prepared = prepare(config, facts, self.applied.as_ref())?;
        if config.queues.dry_run {
            let mut report = self.report_without_applying(prepared);
            report.dry_run = true;
            log_dry_run(&report);
            self.quarantined = report.quarantined.clone();
            return Ok(report);
        }
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
        report.quarantined = prepared.quarantined;
        self.quarantined = report.quarantined.clone();
        Ok(report)
    }

    /// What a reload would do, without doing it.
    pub fn dry_run(&self, config: &Config, facts: HostFacts) -> Result<ReloadReport, CommandError> {
        let prepared = prepare(config, facts, self.applied.as_ref())?;
        Ok(self.report_without_applying(prepared))
    }

    /// The report of `prepared` diffed against the applied plan (or built from nothing), with
    /// its `tc -batch` lines; the kernel is neither read nor changed.
    fn report_without_applying(&self, prepared: Prepared) -> ReloadReport {
        let cs = match &self.applied {
            Some(old) => lqos_plan::diff(old, &prepared.plan),
            None => lqos_plan::diff(&Plan::empty(), &prepared.plan),
        };
        let mut report = report_for(&prepared.plan, &cs);
        report.validate_ms = prepared.validate_ms;
        report.plan_ms = prepared.plan_ms;
        report.diagnostics = prepared.diagnostics;
        report.quarantined = prepared.quarantined;
        report.tc_lines = Some(lqos_plan::render_changeset_tc(&cs));
        report
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

/// Most `tc -batch` lines a dry-run reload writes to the journal (the report has them all).
const DRY_RUN_LOG_LINES: usize = 200;

fn log_dry_run(report: &ReloadReport) {
    tracing::warn!(
        added = report.counts.added,
        changed = report.counts.changed,
        deleted = report.counts.deleted,
        mappings_added = report.counts.mappings_added,
        mappings_removed = report.counts.mappings_removed,
        quarantined = report.quarantined.len(),
        "dry_run = true in lqos.conf: the kernel was not changed; this is what a reload would apply"
    );
    let lines = report.tc_lines.as_deref().unwrap_or("");
    let total = lines.lines().count();
    for line in lines.lines().take(DRY_RUN_LOG_LINES) {
        tracing::info!(tc = line, "dry run: would run");
    }
    if total > DRY_RUN_LOG_LINES {
        tracing::info!(more = total - DRY_RUN_LOG_LINES, "dry run: more tc lines in the report");
    }
}

fn apply_failed(e: KernelError) -> CommandError {
    tracing::error!(error = %e, "kernel apply failed; the next reload reconciles with the kernel");
    CommandError::ApplyFailed { message: e.to_string() }
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
        // A row with the wrong number of fields: the layout is not trusted, the input refused.
        std::fs::write(
            dir.path().join("ShapedDevices.csv"),
            format!("{HEADER}{TWO}c3,Carol,d3,r3,AP_1,,,,100.64.0.3,,1,1,10\n"),
        )
        .expect("write");
        let err = e.reload(&config, FACTS, ReloadMode::Incremental).expect_err("invalid");
        let CommandError::InvalidInput { diagnostics } = err else {
            panic!("wrong error: {err:?}")
        };
        assert!(diagnostics.iter().any(|d| d.line == Some(4) && d.is_error()), "{diagnostics:?}");
        assert!(e.kernel.calls.is_empty(), "{:?}", e.kernel.calls);
        assert_eq!(e.applied().cloned(), before);
    }

    fn write_csv(dir: &tempfile::TempDir, rows: &str) {
        std::fs::write(dir.path().join("ShapedDevices.csv"), format!("{HEADER}{rows}"))
            .expect("write");
    }

    /// Twenty good circuits c1..c20 under AP_1, addresses 100.64.1.1..20.
    fn twenty() -> String {
        (1..=20)
            .map(|i| format!("c{i},C{i},d{i},r{i},AP_1,,,,100.64.1.{i},,1,1,10,10,\n"))
            .collect()
    }

    #[test]
    fn a_bad_row_is_quarantined_and_everything_else_is_applied() {
        let (dir, mut config) = setup(&twenty());
        config.queues.max_quarantine_ratio = 0.1; // 2 of 20
        let mut e = Engine::new(FakeKernel::default(), store_for(&config));
        e.reload(&config, FACTS, ReloadMode::Incremental).expect("first");
        // c5 gets a bad rate, c21 is new and fine, c22 duplicates c1's address (later row).
        let rows = twenty().replace(
            "c5,C5,d5,r5,AP_1,,,,100.64.1.5,,1,1,10,10,",
            "c5,C5,d5,r5,AP_1,,,,100.64.1.5,,1,1,1e,10,",
        ) + "c21,C21,d21,r21,AP_1,,,,100.64.1.21,,1,1,10,10,\n"
            + "c22,C22,d22,r22,AP_1,,,,100.64.1.1,,1,1,10,10,\n";
        write_csv(&dir, &rows);
        let r = e.reload(&config, FACTS, ReloadMode::Incremental).expect("applied despite c5");
        assert!(r.applied);
        let q: Vec<(&str, usize)> =
            r.quarantined.iter().map(|q| (q.circuit_id.as_str(), q.line)).collect();
        assert_eq!(q, [("c5", 6), ("c22", 23)]);
        assert!(
            r.quarantined[0].reason.starts_with("Download Max Mbps: '1e'"),
            "{:?}",
            r.quarantined
        );
        let plan = e.applied().expect("applied");
        let ids: Vec<&str> = plan.circuits.iter().map(|c| c.id.0.as_str()).collect();
        assert!(ids.contains(&"c21") && !ids.contains(&"c5") && !ids.contains(&"c22"), "{ids:?}");
        // c5's address is unmapped (its traffic passes unshaped); c1 keeps its address.
        assert!(!plan.mappings.iter().any(|m| m.circuit.0 == "c5"));
        let owner = plan.mappings.iter().find(|m| m.net.to_string() == "100.64.1.1/32");
        assert_eq!(owner.map(|m| m.circuit.0.as_str()), Some("c1"));
        assert_eq!(r.counts.mappings_removed, 1, "{:?}", r.counts);
        assert_eq!(e.quarantined, r.quarantined);
    }

    #[test]
    fn an_unknown_parent_is_shaped_under_a_generated_parent() {
        let (dir, config) = setup(TWO);
        let mut e = Engine::new(FakeKernel::default(), store_for(&config));
        write_csv(&dir, &format!("{TWO}c3,Carol,d3,r3,AP_9,,,,100.64.0.3,,1,1,10,10,\n"));
        let r = e.reload(&config, FACTS, ReloadMode::Incremental).expect("reload");
        assert_eq!(r.quarantined.len(), 1);
        assert_eq!(r.quarantined[0].action, lqos_config::QuarantineAction::GeneratedParent);
        let plan = e.applied().expect("applied");
        let c3 = plan.circuits.iter().find(|c| c.id.0 == "c3").expect("c3 planned");
        assert!(c3.parent.starts_with("libreqos:generated:pn:"), "{}", c3.parent);
        assert_eq!(c3.download_max.0, 10_000);
    }

    #[test]
    fn quarantining_more_than_the_ratio_refuses_and_keeps_the_applied_plan() {
        let (dir, config) = setup(&twenty());
        let mut e = Engine::new(FakeKernel::default(), store_for(&config));
        e.reload(&config, FACTS, ReloadMode::Incremental).expect("first");
        let before = e.applied().cloned();
        // 2 of 20 = 10 % > 5 %: a renamed site looks like this.
        let rows = twenty().replacen(",AP_1,", ",AP_X,", 2);
        write_csv(&dir, &rows);
        e.kernel.calls.clear();
        let err = e.reload(&config, FACTS, ReloadMode::Incremental).expect_err("refused");
        let CommandError::InvalidInput { diagnostics } = err else { panic!("{err:?}") };
        let last = diagnostics.last().expect("the refusal");
        assert!(last.is_error());
        assert!(
            last.message.starts_with(
                "2 of 20 circuits would be quarantined, more than max_quarantine_ratio = 0.05"
            ),
            "{last}"
        );
        assert!(e.kernel.calls.is_empty(), "{:?}", e.kernel.calls);
        assert_eq!(e.applied().cloned(), before);
        // Raising the ratio lets the same input through.
        let mut config = config;
        config.queues.max_quarantine_ratio = 0.1;
        let r = e.reload(&config, FACTS, ReloadMode::Incremental).expect("within the ratio");
        assert_eq!(r.quarantined.len(), 2);
    }

    #[test]
    fn dry_run_in_lqos_conf_reports_the_changeset_and_changes_nothing() {
        let (_dir, mut config) = setup(TWO);
        config.queues.dry_run = true;
        let mut e = Engine::new(FakeKernel::default(), store_for(&config));
        let r = e.reload(&config, FACTS, ReloadMode::Full).expect("dry run");
        assert!(r.dry_run && !r.applied);
        assert!(r.counts.added > 0 && r.counts.mappings_added == 2, "{:?}", r.counts);
        assert!(r.tc_lines.as_deref().is_some_and(|t| t.contains("class add")));
        assert!(e.kernel.calls.is_empty(), "{:?}", e.kernel.calls);
        assert!(e.applied().is_none());
        assert!(store_for(&config).load().expect("load").is_none());
        assert!(e.last_reload.as_deref().is_some_and(|l| l.starts_with("dry run")));
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
        let plan = prepare(&config, FACTS, None).expect("prepare").plan;
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
