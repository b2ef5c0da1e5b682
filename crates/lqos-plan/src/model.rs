//! The plan's data types: what the kernel should hold, and how to get there from what it holds.
//! These are the contract between lqos-plan (producer) and lqos-tc / lqos-bpf / lqosd
//! (consumers).

use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;
use lqos_config::{CircuitId, LeafQdisc, RateKbit};
use serde::{Deserialize, Serialize};

/// The root `mq` qdisc's major on every shaping interface (`7FFF:`).
pub const MQ_MAJOR: u16 = 0x7FFF;
/// Minor of each queue's capacity class (`k:1`).
pub const QUEUE_ROOT_MINOR: u16 = 1;
/// Minor of each queue's default class (`k:2`).
pub const QUEUE_DEFAULT_MINOR: u16 = 2;
/// First minor handed to sites and circuits.
pub const FIRST_FREE_MINOR: u16 = 3;
/// Largest usable minor (0xFFFF is reserved by the kernel).
pub const MAX_MINOR: u16 = 0xFFFE;

/// A tc handle `major:minor`. For classes both parts are set; a qdisc handle has minor 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClassId {
    /// Major (the HTB qdisc of one queue: 1..=N, or N/2+k for upload on a stick).
    pub major: u16,
    /// Minor within that HTB.
    pub minor: u16,
}

impl ClassId {
    /// New handle.
    pub const fn new(major: u16, minor: u16) -> Self {
        ClassId { major, minor }
    }
    /// The 32-bit kernel handle, `major << 16 | minor`.
    pub const fn as_u32(self) -> u32 {
        ((self.major as u32) << 16) | self.minor as u32
    }
    /// From a 32-bit kernel handle.
    pub const fn from_u32(h: u32) -> Self {
        ClassId { major: (h >> 16) as u16, minor: (h & 0xFFFF) as u16 }
    }
}

impl fmt::Display for ClassId {
    /// tc's notation, hex without `0x`: `1:1f`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}:{:x}", self.major, self.minor)
    }
}

/// Which direction a planned object shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Internet → subscriber, on the egress of `to_network`.
    Download,
    /// Subscriber → Internet, on the egress of `to_internet` (or the stick's upper majors).
    Upload,
}

/// What a class or leaf stands for. Used as the diff key and to map kernel errors back to the
/// input object that caused them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "key")]
pub enum Owner {
    /// `k:1`, the capacity class of queue k (1-based).
    QueueRoot(u16),
    /// `k:2`, the default class of queue k.
    QueueDefault(u16),
    /// A network.json node (or a generated parent), by its identity key (`id`, else path).
    Node(String),
    /// A circuit.
    Circuit(CircuitId),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::QueueRoot(k) => write!(f, "queue {k} capacity class"),
            Owner::QueueDefault(k) => write!(f, "queue {k} default class"),
            Owner::Node(n) => write!(f, "node {n:?}"),
            Owner::Circuit(c) => write!(f, "circuit {:?}", c.0),
        }
    }
}

/// Parent of an HTB class: the HTB qdisc itself (`k:`) or another class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassParent {
    /// Directly under HTB qdisc `major:`.
    Qdisc(u16),
    /// Under a class.
    Class(ClassId),
}

/// One HTB class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HtbClass {
    /// `classid`.
    pub id: ClassId,
    /// `parent`.
    pub parent: ClassParent,
    /// Guaranteed rate.
    pub rate: RateKbit,
    /// Ceiling.
    pub ceil: RateKbit,
    /// `prio` (3 for sites and circuits, 5 for the default class).
    pub prio: u32,
    /// `quantum` in bytes (from r2q, see the planner docs).
    pub quantum: u32,
    /// What this class stands for.
    pub owner: Owner,
    /// Which direction it shapes.
    pub direction: Direction,
}

/// A leaf qdisc under a class (`qdisc add … parent <class> handle <handle>: <sqm>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafPlan {
    /// The class it hangs under.
    pub parent: ClassId,
    /// Its own qdisc major (`handle X:`), unique on the interface and stable across runs.
    pub handle: u16,
    /// Kind and parameters.
    pub qdisc: LeafQdisc,
    /// The class owner it belongs to.
    pub owner: Owner,
}

/// One per-queue HTB qdisc: `qdisc add dev X parent 7fff:<queue> handle <major>: htb default 2 r2q R`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HtbQdisc {
    /// The mq child slot (1-based TX queue).
    pub mq_slot: u16,
    /// The HTB major.
    pub major: u16,
    /// `default` minor (2).
    pub default_minor: u16,
    /// `r2q`.
    pub r2q: u32,
}

/// Everything planned for one interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfacePlan {
    /// Interface name.
    pub name: String,
    /// HTB qdiscs under the root `mq 7FFF:`, by slot.
    pub htbs: Vec<HtbQdisc>,
    /// All classes, parents before children.
    pub classes: Vec<HtbClass>,
    /// All leaf qdiscs.
    pub leaves: Vec<LeafPlan>,
}

/// An address or prefix steered to a circuit's class on a CPU.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IpMapping {
    /// Host or prefix.
    pub net: IpNet,
    /// Logical CPU (queue - 1) for the download class.
    pub cpu: u32,
    /// Download class handle. Upload uses the same minor; its major is the same on a bridge and
    /// `major + stick_offset` on a stick (the data plane derives it).
    pub class: ClassId,
    /// The circuit.
    pub circuit: CircuitId,
    /// Stable 64-bit hash of the circuit ID (for counters in the data plane).
    pub circuit_hash: u64,
    /// Stable 64-bit hash of the device ID.
    pub device_hash: u64,
}

/// Host facts the planner needs; lqosd reads them from the kernel, tests make them up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// CPUs available for shaping.
    pub cpus: u32,
    /// TX queues of the download interface.
    pub download_tx_queues: u32,
    /// TX queues of the upload interface (same as download on a stick).
    pub upload_tx_queues: u32,
}

/// A persisted identity: queue and minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Queue (1-based) = download HTB major.
    pub queue: u16,
    /// Minor, shared by both directions.
    pub minor: u16,
    /// Leaf qdisc handle on the download interface, if any was allocated.
    pub down_leaf: Option<u16>,
    /// Leaf qdisc handle on the upload interface, if any was allocated.
    pub up_leaf: Option<u16>,
}

/// Stable class-ID assignments, persisted by lqosd in `state_directory` between runs.
/// Keys: node identity key (its `id`, else its path `A/B/C`) and Circuit ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Identities {
    /// Nodes (sites, APs, generated parents).
    pub nodes: BTreeMap<String, Identity>,
    /// Circuits.
    pub circuits: BTreeMap<String, Identity>,
}

/// Where a node sits in the plan (for summaries, stats and the GUI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedNode {
    /// Identity key.
    pub key: String,
    /// Display name (network.json key or `Generated_PN_k`).
    pub name: String,
    /// Parent's identity key (`None` at the top level).
    pub parent: Option<String>,
    /// Queue (1-based).
    pub queue: u16,
    /// Class (download side).
    pub class: ClassId,
    /// Effective download ceil.
    pub download: RateKbit,
    /// Effective upload ceil.
    pub upload: RateKbit,
    /// Generated by the planner (Generated_PN_k).
    pub generated: bool,
}

/// Where a circuit sits in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedCircuit {
    /// Circuit ID.
    pub id: CircuitId,
    /// Circuit Name.
    pub name: String,
    /// Parent node's identity key.
    pub parent: String,
    /// Queue (1-based).
    pub queue: u16,
    /// Download class.
    pub class: ClassId,
    /// Upload class.
    pub up_class: ClassId,
    /// Effective download rate / ceil.
    pub download_min: RateKbit,
    /// Effective download ceil.
    pub download_max: RateKbit,
    /// Effective upload rate.
    pub upload_min: RateKbit,
    /// Effective upload ceil.
    pub upload_max: RateKbit,
}

/// A warning produced while planning (capped rates, squashed minimums, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanWarning {
    /// The object concerned.
    pub owner: Owner,
    /// What happened.
    pub message: String,
}

/// The whole desired state. Serializable; lqosd stores the applied one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Shaping queues per direction (N).
    pub queues: u16,
    /// 0 on a bridge; N on a stick (upload majors are `k + stick_offset`).
    pub stick_offset: u16,
    /// `queue_mode = observe`: only the root mq, no classes, no mappings.
    pub observe_only: bool,
    /// One entry per shaping interface (two on a bridge, one on a stick).
    pub interfaces: Vec<InterfacePlan>,
    /// IP → class mappings, sorted.
    pub mappings: Vec<IpMapping>,
    /// Nodes as placed.
    pub nodes: Vec<PlannedNode>,
    /// Circuits as placed.
    pub circuits: Vec<PlannedCircuit>,
    /// The identities used (to be persisted once the plan is applied).
    pub identities: Identities,
    /// Planner warnings.
    pub warnings: Vec<PlanWarning>,
}

/// A class or leaf on a named interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnInterface<T> {
    /// Interface name.
    pub interface: String,
    /// The object.
    pub item: T,
}

/// What to do to the kernel to go from one plan to another. Each list is already in a safe
/// order for its phase; lqos-tc applies the phases in the order of the fields:
/// deletions (leaves, then classes children-first, then HTB qdiscs), then additions (HTB
/// qdiscs, classes parents-first, leaves), then in-place changes.
/// IP mappings: `map_add` after the classes exist, `map_del` before classes go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ChangeSet {
    /// IP mappings to remove (done first, before their classes go).
    pub map_del: Vec<IpMapping>,
    /// Leaf qdiscs to delete (`qdisc del dev X parent <class>`).
    pub leaf_del: Vec<OnInterface<LeafPlan>>,
    /// Classes to delete, children before parents.
    pub class_del: Vec<OnInterface<HtbClass>>,
    /// Per-queue HTB qdiscs to delete (queue count shrank).
    pub htb_del: Vec<OnInterface<HtbQdisc>>,
    /// Create the root `mq 7FFF:` on these interfaces (first build).
    pub mq_add: Vec<String>,
    /// Per-queue HTB qdiscs to add.
    pub htb_add: Vec<OnInterface<HtbQdisc>>,
    /// Classes to add, parents before children.
    pub class_add: Vec<OnInterface<HtbClass>>,
    /// Leaf qdiscs to add.
    pub leaf_add: Vec<OnInterface<LeafPlan>>,
    /// Classes whose rate/ceil/quantum/prio change in place (`tc class change`).
    pub class_change: Vec<OnInterface<HtbClass>>,
    /// Leaf qdiscs whose parameters change in place (`tc qdisc change`); same kind.
    pub leaf_change: Vec<OnInterface<LeafPlan>>,
    /// IP mappings to add or overwrite (after the classes exist).
    pub map_add: Vec<IpMapping>,
    /// Owners whose subtree is rebuilt (moved between parents or queues), for reports.
    pub rebuilt: Vec<Owner>,
}

impl ChangeSet {
    /// True when nothing needs to change.
    pub fn is_empty(&self) -> bool {
        self.map_del.is_empty()
            && self.leaf_del.is_empty()
            && self.class_del.is_empty()
            && self.htb_del.is_empty()
            && self.mq_add.is_empty()
            && self.htb_add.is_empty()
            && self.class_add.is_empty()
            && self.leaf_add.is_empty()
            && self.class_change.is_empty()
            && self.leaf_change.is_empty()
            && self.map_add.is_empty()
    }
}

impl Plan {
    /// The plan of a host where nothing is built yet (no root `mq`, no classes, no mappings).
    /// `diff(&Plan::empty(), &p)` is the full build of `p`.
    pub fn empty() -> Plan {
        Plan {
            queues: 0,
            stick_offset: 0,
            observe_only: false,
            interfaces: Vec::new(),
            mappings: Vec::new(),
            nodes: Vec::new(),
            circuits: Vec::new(),
            identities: Identities::default(),
            warnings: Vec::new(),
        }
    }

    /// The interface plan named `name`, if any.
    pub fn interface(&self, name: &str) -> Option<&InterfacePlan> {
        self.interfaces.iter().find(|i| i.name == name)
    }
}
