//! The apply engine: the only place where lqosd decides what to do to the kernel.
//!
//! Reload = read the inputs, validate, plan with the stored identities, diff against the
//! applied plan, then apply in a safe order:
//! 1. unmap the addresses that go away or move (their traffic passes unshaped, never dropped);
//! 2. change the queue tree (deletions, then additions parents-first, then in-place changes);
//! 3. map the new addresses (their classes exist by now);
//! 4. store the plan as applied.
//!
//! Invalid inputs change nothing. A failed kernel step keeps the previous plan on disk and
//! latches `needs_reconcile`, so the next reload compares the wanted plan with what the kernel
//! really holds instead of trusting a diff.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use lqos_bus::{CommandError, ReloadMode, ReloadReport};
use lqos_config::Config;
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
    lqos_pipeline::prepare(config, facts, applied).map_err(CommandError::from)
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
        Engine { kernel, store, applied, needs_reconcile, last_apply_unix: None, last_reload: None }
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
        let prepared = prepare(config, facts, self.applied.as_ref())?;
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
        let prepared = prepare(config, facts, self.applied.as_ref())?;
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
        let t0 = Instant::now();
        if cs.is_empty() {
            tracing::info!("reload: nothing to change");
        }
        // Mark dirty until the whole sequence has succeeded.
        self.needs_reconcile = true;
        if !cs.map_del.is_empty() {
            self.kernel.unmap(&cs.map_del).map_err(apply_failed)?;
        }
        let counts = self.kernel.apply_tc(&cs).map_err(apply_failed)?;
        if !cs.map_add.is_empty() {
            self.kernel.map(&cs.map_add).map_err(apply_failed)?;
        }
        self.store.save(plan).map_err(|e| CommandError::Internal { message: error_chain(&e) })?;
        self.applied = Some(plan.clone());
        self.needs_reconcile = false;
        self.last_apply_unix = Some(now_unix());
        report.applied = true;
        report.counts.added = counts.added;
        report.counts.changed = counts.changed;
        report.counts.deleted = counts.deleted;
        report.apply_ms = t0.elapsed().as_millis() as u64;
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
}
