//! Synthetic plans for tests and benchmarks (the planner lives in lqos-plan; this only builds
//! the shape lqos-tc consumes): root `mq`, one HTB per queue with `k:1`/`k:2`, a few site
//! classes per queue, circuits dealt round-robin over the queues and sites.

use lqos_config::{CircuitId, LeafQdisc, RateKbit};
use lqos_plan::{
    ClassId, ClassParent, Direction, HtbClass, HtbQdisc, Identities, InterfacePlan, LeafPlan,
    Owner, Plan, QUEUE_DEFAULT_MINOR, QUEUE_ROOT_MINOR,
};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSpec {
    /// Interface name.
    pub interface: String,
    /// Queues (HTB qdiscs), 1..=255.
    pub queues: u16,
    /// Site classes under each `k:1`, at least 1.
    pub sites_per_queue: u16,
    /// Circuits over all queues.
    pub circuits: u32,
    /// Leaf qdisc for every circuit (`None` = no leaf).
    pub leaf: Option<LeafQdisc>,
}

/// First leaf qdisc handle; circuit `i` gets `LEAF_HANDLE_BASE + i`.
pub const LEAF_HANDLE_BASE: u16 = 0x100;

/// Circuit `i`'s class ID in a plan made by [`synth_plan`].
pub fn circuit_class(spec: &SynthSpec, i: u32) -> ClassId {
    let q = spec.queues.max(1);
    let major = (i % u32::from(q)) as u16 + 1;
    let minor = 3 + spec.sites_per_queue.max(1) + (i / u32::from(q)) as u16;
    ClassId::new(major, minor)
}

/// Builds the plan. Circuit `i` has rate `1000 + 10·(i mod 100)` kbit and twice that as ceil.
pub fn synth_plan(spec: &SynthSpec) -> Plan {
    let queues = spec.queues.clamp(1, 255);
    let sites = spec.sites_per_queue.max(1);
    let mut ifp = InterfacePlan {
        name: spec.interface.clone(),
        htbs: Vec::new(),
        classes: Vec::new(),
        leaves: Vec::new(),
    };
    let class = |id, parent, rate: u64, ceil: u64, prio, owner| HtbClass {
        id,
        parent,
        rate: RateKbit(rate),
        ceil: RateKbit(ceil),
        prio,
        quantum: 1514,
        owner,
        direction: Direction::Download,
    };
    for k in 1..=queues {
        ifp.htbs.push(HtbQdisc {
            mq_slot: k,
            major: k,
            default_minor: QUEUE_DEFAULT_MINOR,
            r2q: 10,
        });
        let root = ClassId::new(k, QUEUE_ROOT_MINOR);
        ifp.classes.push(class(
            root,
            ClassParent::Qdisc(k),
            10_000_000,
            10_000_000,
            3,
            Owner::QueueRoot(k),
        ));
        ifp.classes.push(class(
            ClassId::new(k, QUEUE_DEFAULT_MINOR),
            ClassParent::Class(root),
            10_000,
            10_000_000,
            5,
            Owner::QueueDefault(k),
        ));
        for s in 0..sites {
            ifp.classes.push(class(
                ClassId::new(k, 3 + s),
                ClassParent::Class(root),
                1_000_000,
                5_000_000,
                3,
                Owner::Node(format!("site-{k}-{s}")),
            ));
        }
    }
    for i in 0..spec.circuits {
        let id = circuit_class(spec, i);
        let site = (i / u32::from(queues)) % u32::from(sites);
        let parent = ClassParent::Class(ClassId::new(id.major, 3 + site as u16));
        let rate = 1000 + 10 * u64::from(i % 100);
        let owner = Owner::Circuit(CircuitId(format!("c{i}")));
        ifp.classes.push(class(id, parent, rate, rate * 2, 3, owner.clone()));
        if let Some(leaf) = &spec.leaf {
            ifp.leaves.push(LeafPlan {
                parent: id,
                handle: LEAF_HANDLE_BASE.saturating_add(i as u16),
                qdisc: leaf.clone(),
                owner,
            });
        }
    }
    Plan {
        queues,
        stick_offset: 0,
        observe_only: false,
        interfaces: vec![ifp],
        mappings: Vec::new(),
        nodes: Vec::new(),
        circuits: Vec::new(),
        identities: Identities::default(),
        warnings: Vec::new(),
    }
}
