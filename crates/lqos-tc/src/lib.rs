//! lqos-tc owns the kernel's queue tree: the root `mq 7fff:`, one HTB qdisc per queue, HTB
//! classes and leaf qdiscs (pfifo, bfifo, fq_codel, cake), spoken over `NETLINK_ROUTE` without
//! running `tc`. It does not plan (lqos-plan does), does not touch eBPF maps (lqos-bpf does) and
//! never prints.
//!
//! Brief overview:
//! - [`ops::TcOp`] is one operation as data (`verb` + object + interface); it renders to the
//!   netlink message ([`ops::TcOp::encode`]) and to the equivalent `tc` line.
//! - [`render`] turns a [`ChangeSet`] into ordered [`ops::TcOp`]s, without a socket.
//! - [`transport::Transport`] is the one door to the kernel (`send_batch`, `query`,
//!   `probe_qdisc`); [`transport::NetlinkTransport`] is the real socket, `fake::FakeTransport`
//!   (feature `fake`) a recording in-memory kernel, [`batch::TcBatchTransport`] the `tc -batch`
//!   baseline for benchmarks.
//! - [`Tc`] ties them: [`Tc::apply`], [`Tc::build_full`], [`Tc::teardown`], [`Tc::dump`],
//!   [`Tc::class_stats`], [`Tc::interface_facts`], [`Tc::check_plan_supported`].
//! - [`reconcile()`] (pure) compares an applied [`Plan`] with [`dump::LiveTree`]s.
//!
//! A netlink socket stays bound to the network namespace of the thread that opened it: create
//! [`Tc`] after `setns`.
#![doc = include_str!("../docs/kernel.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod batch;
pub mod dump;
pub mod error;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod ops;
pub mod reconcile;
pub mod synth;
pub mod transport;
pub mod wire;
pub mod xstats;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use lqos_config::LeafQdisc;
use lqos_plan::{ChangeSet, ClassId, MQ_MAJOR, OnInterface, Plan};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

pub use dump::{LiveClass, LiveQdisc, LiveTree, Stats, XStats};
pub use error::{KernelError, TcError};
pub use ops::{TcObject, TcOp, Verb};
pub use reconcile::reconcile;
pub use transport::{NetlinkTransport, Query, Request, Transport};

/// Which phase of a change an operation belongs to; decides which kernel answers count as
/// "already done" (so re-applying a change set is harmless).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Phase {
    /// `qdisc del … parent <class>`: gone already is fine.
    LeafDel,
    /// `class del`: gone already is fine.
    ClassDel,
    /// `qdisc del` of an HTB: gone already is fine.
    HtbDel,
    /// `qdisc replace … root handle 7fff: mq`.
    MqAdd,
    /// `qdisc add … htb`: present already is fine.
    HtbAdd,
    /// `class replace`.
    ClassAdd,
    /// `qdisc replace` of a leaf.
    LeafAdd,
    /// `class change`.
    ClassChange,
    /// `qdisc change` of a leaf.
    LeafChange,
}

impl Phase {
    /// True when this kernel answer means the phase's goal already holds.
    pub fn tolerates(self, e: &KernelError) -> bool {
        const ENOENT: i32 = 2;
        const EEXIST: i32 = 17;
        const EINVAL: i32 = 22;
        match self {
            Phase::LeafDel | Phase::HtbDel => {
                e.errno == ENOENT
                    || (e.errno == EINVAL && e.extack.as_deref() == Some("Invalid handle"))
            }
            Phase::ClassDel => e.errno == ENOENT,
            Phase::HtbAdd => e.errno == EEXIST,
            _ => false,
        }
    }
}

/// One rendered operation with its phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhasedOp {
    /// Phase.
    pub phase: Phase,
    /// Operation.
    pub op: TcOp,
}

/// Renders a change set into operations, per interface, in the order they must run:
/// leaf deletes, class deletes (children first), HTB deletes, root mq, HTB adds, class adds
/// (parents first), leaf adds, class changes, leaf changes. Adds use `replace` (and HTB `add`
/// tolerating EEXIST) so that applying the same set twice is harmless. Pure: `ifindex` maps an
/// interface name to its index.
pub fn render(
    cs: &ChangeSet,
    ifindex: &dyn Fn(&str) -> Option<u32>,
) -> Result<BTreeMap<String, Vec<PhasedOp>>, TcError> {
    let mut out: BTreeMap<String, Vec<PhasedOp>> = BTreeMap::new();
    let mut push =
        |phase: Phase, verb: Verb, iface: &str, object: TcObject| -> Result<(), TcError> {
            let idx = ifindex(iface)
                .ok_or_else(|| TcError::NoSuchInterface { name: iface.to_string() })?;
            out.entry(iface.to_string())
                .or_default()
                .push(PhasedOp { phase, op: TcOp::new(verb, iface, idx, object) });
            Ok(())
        };
    fn each<T: Clone>(
        list: &[OnInterface<T>],
        f: &mut dyn FnMut(&str, T) -> Result<(), TcError>,
    ) -> Result<(), TcError> {
        list.iter().try_for_each(|o| f(&o.interface, o.item.clone()))
    }
    each(&cs.leaf_del, &mut |i, l| push(Phase::LeafDel, Verb::Del, i, TcObject::Leaf(l)))?;
    each(&cs.class_del, &mut |i, c| push(Phase::ClassDel, Verb::Del, i, TcObject::Class(c)))?;
    each(&cs.htb_del, &mut |i, h| push(Phase::HtbDel, Verb::Del, i, TcObject::Htb(h)))?;
    for i in &cs.mq_add {
        push(Phase::MqAdd, Verb::Replace, i, TcObject::RootMq)?;
    }
    each(&cs.htb_add, &mut |i, h| push(Phase::HtbAdd, Verb::Add, i, TcObject::Htb(h)))?;
    each(&cs.class_add, &mut |i, c| push(Phase::ClassAdd, Verb::Replace, i, TcObject::Class(c)))?;
    each(&cs.leaf_add, &mut |i, l| push(Phase::LeafAdd, Verb::Replace, i, TcObject::Leaf(l)))?;
    each(&cs.class_change, &mut |i, c| {
        push(Phase::ClassChange, Verb::Change, i, TcObject::Class(c))
    })?;
    each(&cs.leaf_change, &mut |i, l| push(Phase::LeafChange, Verb::Change, i, TcObject::Leaf(l)))?;
    Ok(out)
}

/// What one apply did on one interface.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InterfaceReport {
    /// Interface name.
    pub interface: String,
    /// Objects added (or replaced by an identical one).
    pub added: usize,
    /// Objects changed in place.
    pub changed: usize,
    /// Objects deleted.
    pub deleted: usize,
    /// Operations whose goal already held (re-applied adds/deletes).
    pub already: usize,
    /// Time spent talking to the kernel for this interface.
    pub duration: Duration,
}

/// What one apply did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApplyReport {
    /// Per interface, in name order.
    pub interfaces: Vec<InterfaceReport>,
    /// Messages sent.
    pub messages: usize,
    /// Wall time of the whole apply (including support checks).
    pub total: Duration,
}

/// Operational state (`IFLA_OPERSTATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperState {
    /// Unknown (many virtual devices).
    Unknown,
    /// Not present.
    NotPresent,
    /// Down.
    Down,
    /// Lower layer down.
    LowerLayerDown,
    /// Testing.
    Testing,
    /// Dormant.
    Dormant,
    /// Up.
    Up,
}

impl OperState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => OperState::NotPresent,
            2 => OperState::Down,
            3 => OperState::LowerLayerDown,
            4 => OperState::Testing,
            5 => OperState::Dormant,
            6 => OperState::Up,
            _ => OperState::Unknown,
        }
    }
}

/// Facts about one interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceFacts {
    /// Name.
    pub name: String,
    /// Index.
    pub ifindex: u32,
    /// Operational state.
    pub operstate: OperState,
    /// MTU.
    pub mtu: u32,
    /// TX queues.
    pub tx_queues: u32,
    /// RX queues.
    pub rx_queues: u32,
    /// `txqueuelen`.
    pub tx_queue_len: u32,
}

/// The queue engine: a transport plus small caches (interface indexes, probed qdisc kinds).
#[derive(Debug)]
pub struct Tc<T: Transport = NetlinkTransport> {
    transport: T,
    ifindex: HashMap<String, u32>,
    support: HashMap<&'static str, bool>,
}

/// The usual name.
pub type TcHandle = Tc<NetlinkTransport>;

impl Tc<NetlinkTransport> {
    /// Opens a netlink socket in the calling thread's network namespace.
    pub fn new() -> Result<Self, TcError> {
        Ok(Self::with_transport(NetlinkTransport::open()?))
    }
}

fn kernel_err(op: &TcOp, e: KernelError, more_failures: usize) -> TcError {
    TcError::Kernel {
        op: op.to_string(),
        owner: op.owner().cloned(),
        errno: e.errno,
        source: e.io(),
        extack: e.extack,
        more_failures,
    }
}

fn leaf_kinds(cs: &ChangeSet) -> Vec<&LeafQdisc> {
    let mut seen: Vec<&LeafQdisc> = Vec::new();
    for l in cs.leaf_add.iter().chain(&cs.leaf_change) {
        if !seen.iter().any(|s| s.kind() == l.item.qdisc.kind()) {
            seen.push(&l.item.qdisc);
        }
    }
    seen
}

impl<T: Transport> Tc<T> {
    /// Wraps a transport (the fake, or the `tc -batch` baseline).
    pub fn with_transport(transport: T) -> Self {
        Tc { transport, ifindex: HashMap::new(), support: HashMap::new() }
    }

    /// The transport (tests inspect the fake through it).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, mutably.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Facts about `name` (`ip -d link show dev NAME`). A missing interface is
    /// [`TcError::NoSuchInterface`].
    pub fn interface_facts(&mut self, name: &str) -> Result<InterfaceFacts, TcError> {
        let mut facts = None;
        let res = self.transport.query(&Query::Link { name: name.to_string() }, &mut |m| {
            if m.msg_type != wire::RTM_NEWLINK {
                return;
            }
            let Some(idx) = wire::u32_at(m.payload, 4) else { return };
            let a = m.payload.get(wire::IFINFOMSG_LEN..).unwrap_or_default();
            let u = |t| wire::find_attr(a, t).and_then(|p| wire::u32_at(p, 0)).unwrap_or(0);
            facts = Some(InterfaceFacts {
                name: name.to_string(),
                ifindex: idx,
                operstate: OperState::from_u8(
                    wire::find_attr(a, wire::IFLA_OPERSTATE)
                        .and_then(|p| p.first().copied())
                        .unwrap_or(0),
                ),
                mtu: u(wire::IFLA_MTU),
                tx_queues: u(wire::IFLA_NUM_TX_QUEUES),
                rx_queues: u(wire::IFLA_NUM_RX_QUEUES),
                tx_queue_len: u(wire::IFLA_TXQLEN),
            });
        });
        match res {
            Err(TcError::Kernel { errno: 19, .. }) => {
                return Err(TcError::NoSuchInterface { name: name.to_string() });
            }
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        let f = facts.ok_or_else(|| TcError::NoSuchInterface { name: name.to_string() })?;
        self.ifindex.insert(name.to_string(), f.ifindex);
        Ok(f)
    }

    /// True when `name` exists.
    pub fn interface_exists(&mut self, name: &str) -> Result<bool, TcError> {
        match self.interface_facts(name) {
            Ok(_) => Ok(true),
            Err(TcError::NoSuchInterface { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn resolve(&mut self, name: &str) -> Result<u32, TcError> {
        if let Some(i) = self.ifindex.get(name) {
            return Ok(*i);
        }
        Ok(self.interface_facts(name)?.ifindex)
    }

    /// Whether this kernel can create `leaf`'s kind (probed once per kind, in a scratch
    /// namespace; pfifo and bfifo are always built in).
    pub fn probe_qdisc_support(&mut self, leaf: &LeafQdisc) -> Result<bool, TcError> {
        if matches!(leaf, LeafQdisc::Pfifo { .. } | LeafQdisc::Bfifo { .. }) {
            return Ok(true);
        }
        if let Some(s) = self.support.get(leaf.kind()) {
            return Ok(*s);
        }
        let ok = self.transport.probe_qdisc(leaf)?;
        debug!(kind = leaf.kind(), supported = ok, "probed qdisc kind");
        self.support.insert(leaf.kind(), ok);
        Ok(ok)
    }

    fn check_kinds(&mut self, kinds: &[&LeafQdisc]) -> Result<(), TcError> {
        for k in kinds {
            if !self.probe_qdisc_support(k)? {
                return Err(error::unsupported(k.kind()));
            }
        }
        Ok(())
    }

    /// Fails with [`TcError::UnsupportedQdisc`] (naming the module and the config key) when the
    /// plan needs a leaf kind this kernel lacks.
    pub fn check_plan_supported(&mut self, plan: &Plan) -> Result<(), TcError> {
        let mut kinds: Vec<&LeafQdisc> = Vec::new();
        for l in plan.interfaces.iter().flat_map(|i| &i.leaves) {
            if !kinds.iter().any(|k| k.kind() == l.qdisc.kind()) {
                kinds.push(&l.qdisc);
            }
        }
        self.check_kinds(&kinds)
    }

    /// Applies a change set: checks leaf support and interfaces first (nothing is touched if
    /// either fails), then per interface sends every operation in phase order, many per
    /// `sendmsg`, and reads every ACK. The first refusal that is not "already done" becomes
    /// [`TcError::Kernel`] naming the operation and its plan owner. IP mappings are ignored
    /// (lqos-bpf's job).
    pub fn apply(&mut self, cs: &ChangeSet) -> Result<ApplyReport, TcError> {
        let start = Instant::now();
        self.check_kinds(&leaf_kinds(cs))?;
        let mut names: Vec<String> = cs
            .mq_add
            .iter()
            .cloned()
            .chain(cs.leaf_del.iter().map(|o| o.interface.clone()))
            .chain(cs.class_del.iter().map(|o| o.interface.clone()))
            .chain(cs.htb_del.iter().map(|o| o.interface.clone()))
            .chain(cs.htb_add.iter().map(|o| o.interface.clone()))
            .chain(cs.class_add.iter().map(|o| o.interface.clone()))
            .chain(cs.leaf_add.iter().map(|o| o.interface.clone()))
            .chain(cs.class_change.iter().map(|o| o.interface.clone()))
            .chain(cs.leaf_change.iter().map(|o| o.interface.clone()))
            .collect();
        names.sort();
        names.dedup();
        for n in &names {
            self.resolve(n)?;
        }
        let idx = self.ifindex.clone();
        let rendered = render(cs, &|n| idx.get(n).copied())?;
        let mut report = ApplyReport::default();
        for (iface, ops) in rendered {
            let r = self.send_ops(&iface, ops)?;
            report.messages += r.added + r.changed + r.deleted + r.already;
            report.interfaces.push(r);
        }
        report.total = start.elapsed();
        info!(
            messages = report.messages,
            total_ms = report.total.as_millis() as u64,
            "applied change set"
        );
        Ok(report)
    }

    fn send_ops(&mut self, iface: &str, ops: Vec<PhasedOp>) -> Result<InterfaceReport, TcError> {
        let mut rep = InterfaceReport { interface: iface.to_string(), ..Default::default() };
        let phases: Vec<Phase> = ops.iter().map(|p| p.phase).collect();
        let reqs: Vec<Request> = ops.into_iter().map(|p| Request::new(p.op)).collect();
        let t0 = Instant::now();
        let acks = self.transport.send_batch(&reqs)?;
        rep.duration = t0.elapsed();
        let mut first: Option<(usize, KernelError)> = None;
        let mut failures = 0usize;
        for (i, ((req, phase), ack)) in reqs.iter().zip(&phases).zip(acks).enumerate() {
            match ack {
                Ok(()) => match req.op.verb {
                    Verb::Add | Verb::Replace => rep.added += 1,
                    Verb::Change => rep.changed += 1,
                    Verb::Del => rep.deleted += 1,
                },
                Err(e) if phase.tolerates(&e) => rep.already += 1,
                Err(e) => {
                    failures += 1;
                    if first.is_none() {
                        first = Some((i, e));
                    }
                }
            }
        }
        if let Some((i, e)) = first {
            let op = &reqs[i].op;
            if let TcObject::Leaf(l) = &op.object
                && transport::is_unknown_kind(&e)
            {
                return Err(error::unsupported(l.qdisc.kind()));
            }
            return Err(kernel_err(op, e, failures - 1));
        }
        Ok(rep)
    }

    /// Builds a whole plan from scratch (`mq`, HTBs, classes, leaves); objects already there
    /// with the same parameters are kept (adds are replaces).
    pub fn build_full(&mut self, plan: &Plan) -> Result<ApplyReport, TcError> {
        self.check_plan_supported(plan)?;
        let mut cs = ChangeSet::default();
        for ifp in &plan.interfaces {
            cs.mq_add.push(ifp.name.clone());
            if plan.observe_only {
                continue;
            }
            let on = |item| OnInterface { interface: ifp.name.clone(), item };
            cs.htb_add.extend(ifp.htbs.iter().cloned().map(on));
            let on = |item| OnInterface { interface: ifp.name.clone(), item };
            cs.class_add.extend(ifp.classes.iter().cloned().map(on));
            let on = |item| OnInterface { interface: ifp.name.clone(), item };
            cs.leaf_add.extend(ifp.leaves.iter().cloned().map(on));
        }
        self.apply(&cs)
    }

    /// Removes what lqos built on the plan's interfaces: deletes the root qdisc only when it is
    /// lqos's `mq 7fff:` (`tc qdisc del dev X root handle 7fff:`), so the kernel puts the
    /// interface's default root qdisc back. Anything else is left alone.
    pub fn teardown(&mut self, plan: &Plan) -> Result<ApplyReport, TcError> {
        let start = Instant::now();
        let mut report = ApplyReport::default();
        for ifp in &plan.interfaces {
            let ifindex = self.resolve(&ifp.name)?;
            let mut ours = false;
            self.transport.query(&Query::Qdiscs { ifindex }, &mut |m| {
                if let Some((ifx, q)) = dump::parse_qdisc(m)
                    && ifx == ifindex
                    && q.parent == wire::TC_H_ROOT
                {
                    ours = q.kind == "mq" && q.major() == MQ_MAJOR;
                }
            })?;
            let mut rep = InterfaceReport { interface: ifp.name.clone(), ..Default::default() };
            if ours {
                let op = TcOp::new(Verb::Del, &ifp.name, ifindex, TcObject::RootMq);
                let t0 = Instant::now();
                let acks = self.transport.send_batch(&[Request::new(op.clone())])?;
                rep.duration = t0.elapsed();
                if let Some(Err(e)) = acks.into_iter().next() {
                    return Err(kernel_err(&op, e, 0));
                }
                rep.deleted = 1 + ifp.htbs.len() + ifp.classes.len() + ifp.leaves.len();
                report.messages += 1;
            }
            report.interfaces.push(rep);
        }
        report.total = start.elapsed();
        Ok(report)
    }

    /// Dumps an interface's qdiscs and classes with their counters (one qdisc dump and one
    /// class dump; `tc -s qdisc show dev X; tc -s class show dev X`).
    pub fn dump(&mut self, ifname: &str) -> Result<LiveTree, TcError> {
        let ifindex = self.resolve(ifname)?;
        let mut tree = LiveTree { interface: ifname.to_string(), ifindex, ..Default::default() };
        self.transport.query(&Query::Qdiscs { ifindex }, &mut |m| {
            if let Some((ifx, q)) = dump::parse_qdisc(m)
                && ifx == ifindex
            {
                tree.qdiscs.push(q);
            }
        })?;
        self.transport.query(&Query::Classes { ifindex }, &mut |m| {
            if let Some(c) = dump::parse_class(m) {
                tree.classes.insert(c.id, c);
            }
        })?;
        Ok(tree)
    }

    /// Counters of every HTB class of an interface: one class dump, no option decoding. Meant
    /// for the once-a-second stats loop.
    pub fn class_stats(&mut self, ifname: &str) -> Result<Vec<(ClassId, Stats)>, TcError> {
        let ifindex = self.resolve(ifname)?;
        let mut out = Vec::new();
        self.transport.query(&Query::Classes { ifindex }, &mut |m| {
            if let Some(s) = dump::parse_class_stats(m) {
                out.push(s);
            }
        })?;
        Ok(out)
    }

    /// The qdisc under class `parent` of `ifname` with its counters and extended statistics
    /// (`tc -s qdisc show dev X parent P`), fetched with one netlink get addressed by the
    /// parent, never a dump of the interface. `Ok(None)` when the class does not exist.
    pub fn leaf_qdisc(
        &mut self,
        ifname: &str,
        parent: ClassId,
    ) -> Result<Option<LiveQdisc>, TcError> {
        let ifindex = self.resolve(ifname)?;
        let mut found = None;
        let q = Query::LeafOf { ifindex, parent: parent.as_u32() };
        let res = self.transport.query(&q, &mut |m| {
            if found.is_none()
                && let Some((ifx, q)) = dump::parse_qdisc(m)
                && ifx == ifindex
            {
                found = Some(q);
            }
        });
        match res {
            Ok(()) => Ok(found),
            // ENOENT: no such class (or HTB) on this interface.
            Err(TcError::Kernel { errno: 2, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One HTB class of `ifname` with its counters (`tc -s class show dev X classid C`),
    /// fetched with one netlink get. `Ok(None)` when the class does not exist.
    pub fn class_get(&mut self, ifname: &str, id: ClassId) -> Result<Option<LiveClass>, TcError> {
        let ifindex = self.resolve(ifname)?;
        let mut found = None;
        let res =
            self.transport.query(&Query::ClassOf { ifindex, handle: id.as_u32() }, &mut |m| {
                if found.is_none() {
                    found = dump::parse_class(m);
                }
            });
        match res {
            Ok(()) => Ok(found),
            Err(TcError::Kernel { errno: 2, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Dumps every interface of `plan` and reconciles (see [`reconcile()`]).
    pub fn reconcile_live(&mut self, plan: &Plan) -> Result<ChangeSet, TcError> {
        let mut live = Vec::new();
        for ifp in &plan.interfaces {
            live.push(self.dump(&ifp.name)?);
        }
        Ok(reconcile(plan, &live))
    }
}
