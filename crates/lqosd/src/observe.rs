//! `queue_mode = "observe"` (LibreQoS's monitor mode): every circuit is mapped, counted and
//! measured, nothing is shaped. lqosd plans the inputs exactly as for shaping (so circuits keep
//! their placement, class identities and counter slots when the operator switches modes), then
//! keeps only the root `mq` of each interface: no HTB qdiscs, classes or leaves. The mappings
//! stay, and the data plane's observe switch ([`crate::kernel::Kernel::set_observe`], set on
//! every apply) makes XDP and the tc program count and measure without redirecting or setting a
//! class.

use lqos_config::{Config, QueueMode};
use lqos_plan::Plan;

/// A copy of `config` in shaping mode when it asks for observe mode, else `None`.
pub fn as_shaping(config: &Config) -> Option<Config> {
    (config.queues.queue_mode == QueueMode::Observe).then(|| {
        let mut c = config.clone();
        c.queues.queue_mode = QueueMode::Shape;
        c
    })
}

/// `plan` without its queue tree, marked observe-only; circuits, nodes, mappings and
/// identities stay.
pub fn without_tree(mut plan: Plan) -> Plan {
    plan.observe_only = true;
    for i in &mut plan.interfaces {
        i.htbs.clear();
        i.classes.clear();
        i.leaves.clear();
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, store_for};
    use crate::kernel::fake::{Call, FakeKernel};
    use crate::testutil::{FACTS, TWO, setup};
    use lqos_bus::ReloadMode;

    #[test]
    fn observe_maps_and_counts_every_circuit_without_a_tree() {
        let (_dir, mut config) = setup(TWO);
        config.queues.queue_mode = QueueMode::Observe;
        let plan = crate::engine::prepare(&config, FACTS, &Default::default()).expect("plan").plan;
        assert!(plan.observe_only);
        assert_eq!(plan.circuits.len(), 2);
        assert_eq!(plan.mappings.len(), 2);
        assert!(plan.interfaces.iter().all(|i| i.classes.is_empty() && i.htbs.is_empty()));
        let full = lqos_plan::diff(&Plan::empty(), &plan);
        assert!(full.class_add.is_empty() && full.htb_add.is_empty() && full.leaf_add.is_empty());
        assert_eq!(full.map_add.len(), 2);

        // The engine switches the data plane to observe and gives both circuits a slot.
        let mut e = Engine::new(
            FakeKernel { reconcile_answer: full, ..Default::default() },
            store_for(&config),
        );
        e.reload(&config, FACTS, ReloadMode::Incremental).expect("reload");
        assert!(e.kernel_mut().calls.contains(&Call::Observe(true)), "{:?}", e.kernel_mut().calls);
        assert!(e.kernel_mut().calls.contains(&Call::Map(2)));
        assert_eq!(e.slots().len(), 2);

        // Back to shaping: the same circuits keep their classes' identities and slots, and the
        // switch goes off.
        let slots = e.slots().clone();
        config.queues.queue_mode = QueueMode::Shape;
        e.reload(&config, FACTS, ReloadMode::Incremental).expect("shape again");
        assert!(e.kernel_mut().calls.contains(&Call::Observe(false)));
        assert_eq!(*e.slots(), slots);
        let shaped = e.applied().expect("applied");
        assert!(!shaped.observe_only && shaped.interfaces.iter().any(|i| !i.classes.is_empty()));
    }
}
