//! A recording, in-memory kernel behind [`Transport`], for tests without root (here and in
//! lqosd's apply engine). It keeps the encoded messages of the objects it holds and answers
//! dumps with them, applies tc's rules that matter for ordering (parent must exist, no delete
//! of a class with children, EEXIST/ENOENT) and can be told to refuse an operation.

use std::collections::{BTreeMap, BTreeSet};

use lqos_config::LeafQdisc;
use lqos_plan::{ClassParent, MQ_MAJOR};

use crate::error::{KernelError, TcError};
use crate::ops::{TcObject, TcOp, Verb, parent_handle};
use crate::transport::{Ack, Query, Request, Transport};
use crate::wire::*;

/// An interface the fake kernel knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeLink {
    /// Index.
    pub ifindex: u32,
    /// TX queues.
    pub tx_queues: u32,
    /// MTU.
    pub mtu: u32,
}

/// The fake transport.
#[derive(Debug, Default)]
pub struct FakeTransport {
    /// Every operation received, in order.
    pub sent: Vec<TcOp>,
    /// Number of `send_batch` calls.
    pub batches: usize,
    /// Known interfaces.
    pub links: BTreeMap<String, FakeLink>,
    /// Leaf kinds this "kernel" lacks (`cake`, `fq_codel`).
    pub unsupported: BTreeSet<String>,
    /// Refuse operations whose display (`add class 1:5 (parent 1:3) on v0`) contains this text,
    /// with this errno.
    pub fail_on: Option<(String, i32)>,
    /// Number of single-object gets answered ([`Query::LeafOf`], [`Query::ClassOf`]).
    pub leaf_gets: usize,
    qdiscs: BTreeMap<(u32, u32), (u32, Vec<u8>)>,
    classes: BTreeMap<(u32, u32), (u32, Vec<u8>)>,
}

const ENOENT: i32 = 2;
const EBUSY: i32 = 16;
const EEXIST: i32 = 17;
const ENODEV: i32 = 19;

fn refuse(errno: i32, msg: &str) -> Ack {
    Err(KernelError { errno, extack: Some(msg.to_string()) })
}

impl FakeTransport {
    /// An empty kernel.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an interface.
    pub fn with_link(mut self, name: &str, tx_queues: u32) -> Self {
        let ifindex = self.links.len() as u32 + 2;
        self.links.insert(name.to_string(), FakeLink { ifindex, tx_queues, mtu: 1500 });
        self
    }

    /// Marks a leaf kind as missing from this kernel.
    pub fn without_kind(mut self, kind: &str) -> Self {
        self.unsupported.insert(kind.to_string());
        self
    }

    /// Number of qdiscs and classes held.
    pub fn object_count(&self) -> usize {
        self.qdiscs.len() + self.classes.len()
    }

    /// Forgets the recorded operations (keeps the kernel state).
    pub fn clear_log(&mut self) {
        self.sent.clear();
        self.batches = 0;
    }

    /// Removes a class (and its leaf) behind lqos's back, like a hand-run `tc class del`.
    pub fn remove_class_by_hand(&mut self, ifindex: u32, id: u32) {
        self.classes.remove(&(ifindex, id));
        self.qdiscs.retain(|(i, _), (p, _)| !(*i == ifindex && *p == id));
    }

    fn wipe_if(&mut self, ifx: u32) {
        self.qdiscs.retain(|(i, _), _| *i != ifx);
        self.classes.retain(|(i, _), _| *i != ifx);
    }

    fn exec(&mut self, r: &Request) -> Ack {
        let op = &r.op;
        if let Some((pat, errno)) = &self.fail_on
            && op.to_string().contains(pat.as_str())
        {
            return refuse(*errno, "refused by the fake");
        }
        let ifx = op.ifindex;
        let mq = u32::from(MQ_MAJOR) << 16;
        match (&op.object, op.verb) {
            (TcObject::RootMq, Verb::Del) => {
                if !self.qdiscs.contains_key(&(ifx, mq)) {
                    return refuse(ENOENT, "Cannot find specified qdisc on specified device");
                }
                self.wipe_if(ifx);
            }
            (TcObject::RootMq, _) => {
                if !self.qdiscs.contains_key(&(ifx, mq)) {
                    self.wipe_if(ifx);
                    self.qdiscs.insert((ifx, mq), (TC_H_ROOT, r.msg.clone()));
                }
            }
            (TcObject::Htb(h), verb) => {
                let handle = u32::from(h.major) << 16;
                if verb == Verb::Del {
                    if self.qdiscs.remove(&(ifx, handle)).is_none() {
                        return refuse(ENOENT, "Invalid handle");
                    }
                    self.classes.retain(|(i, c), _| !(*i == ifx && c >> 16 == u32::from(h.major)));
                    self.qdiscs
                        .retain(|(i, _), (p, _)| !(*i == ifx && *p >> 16 == u32::from(h.major)));
                } else {
                    if self.qdiscs.contains_key(&(ifx, handle)) {
                        return refuse(EEXIST, "Exclusivity flag on, cannot modify");
                    }
                    if !self.qdiscs.contains_key(&(ifx, mq)) {
                        return refuse(ENOENT, "Failed to find specified qdisc");
                    }
                    let parent = mq | u32::from(h.mq_slot);
                    self.qdiscs.insert((ifx, handle), (parent, r.msg.clone()));
                }
            }
            (TcObject::Class(c), verb) => {
                let id = c.id.as_u32();
                let exists = self.classes.contains_key(&(ifx, id));
                match verb {
                    Verb::Del => {
                        if !exists {
                            return refuse(ENOENT, "Specified class not found");
                        }
                        if self.classes.values().any(|(p, _)| *p == id) {
                            return refuse(EBUSY, "Class has children");
                        }
                        self.classes.remove(&(ifx, id));
                        self.qdiscs.retain(|(i, _), (p, _)| !(*i == ifx && *p == id));
                    }
                    Verb::Change if !exists => return refuse(ENOENT, "Specified class not found"),
                    Verb::Add if exists => return refuse(EEXIST, "Class already exists"),
                    _ => {
                        let parent_ok = match c.parent {
                            ClassParent::Qdisc(m) => {
                                self.qdiscs.contains_key(&(ifx, u32::from(m) << 16))
                            }
                            ClassParent::Class(p) => self.classes.contains_key(&(ifx, p.as_u32())),
                        };
                        if !parent_ok && !exists {
                            return refuse(ENOENT, "Failed to find parent");
                        }
                        let parent = self
                            .classes
                            .get(&(ifx, id))
                            .map(|(p, _)| *p)
                            .unwrap_or_else(|| parent_handle(c.parent));
                        self.classes.insert((ifx, id), (parent, r.msg.clone()));
                    }
                }
            }
            (TcObject::Leaf(l), verb) => {
                let handle = u32::from(l.handle) << 16;
                let parent = l.parent.as_u32();
                match verb {
                    Verb::Del => {
                        if self.qdiscs.remove(&(ifx, handle)).is_none() {
                            return refuse(ENOENT, "Invalid handle");
                        }
                    }
                    _ => {
                        if self.unsupported.contains(l.qdisc.kind()) {
                            return refuse(ENOENT, "Specified qdisc kind is unknown");
                        }
                        if !self.classes.contains_key(&(ifx, parent)) {
                            return refuse(ENOENT, "Failed to find specified qdisc");
                        }
                        let exists = self.qdiscs.contains_key(&(ifx, handle));
                        if verb == Verb::Change && !exists {
                            return refuse(ENOENT, "Qdisc not found");
                        }
                        self.qdiscs
                            .retain(|(i, h), (p, _)| !(*i == ifx && *p == parent && *h != handle));
                        self.qdiscs.insert((ifx, handle), (parent, r.msg.clone()));
                    }
                }
            }
        }
        Ok(())
    }
}

fn as_reply(msg: &[u8], seq: u32) -> Vec<u8> {
    let mut m = msg.to_vec();
    if let Some(f) = m.get_mut(6..8) {
        f.copy_from_slice(&NLM_F_MULTI.to_ne_bytes());
    }
    set_seq(&mut m, seq);
    m
}

impl Transport for FakeTransport {
    fn send_batch(&mut self, batch: &[Request]) -> Result<Vec<Ack>, TcError> {
        self.batches += 1;
        Ok(batch
            .iter()
            .map(|r| {
                self.sent.push(r.op.clone());
                self.exec(r)
            })
            .collect())
    }

    fn query(&mut self, q: &Query, sink: &mut dyn FnMut(&NlMsg<'_>)) -> Result<(), TcError> {
        let msgs: Vec<Vec<u8>> = match q {
            Query::Link { name } => {
                let Some(l) = self.links.get(name) else {
                    return Err(TcError::Kernel {
                        op: format!("get link {name}"),
                        owner: None,
                        errno: ENODEV,
                        extack: None,
                        more_failures: 0,
                        source: std::io::Error::from_raw_os_error(ENODEV),
                    });
                };
                vec![
                    MsgBuilder::new(RTM_NEWLINK, 0)
                        .ifinfomsg(l.ifindex)
                        .attr_str(IFLA_IFNAME, name)
                        .attr_u32(IFLA_MTU, l.mtu)
                        .attr(IFLA_OPERSTATE, &[6])
                        .attr_u32(IFLA_NUM_TX_QUEUES, l.tx_queues)
                        .attr_u32(IFLA_NUM_RX_QUEUES, l.tx_queues)
                        .finish(),
                ]
            }
            Query::Qdiscs { ifindex } => self
                .qdiscs
                .iter()
                .filter(|((i, _), _)| i == ifindex)
                .map(|(_, (_, m))| as_reply(m, 0))
                .collect(),
            Query::Classes { ifindex } => self
                .classes
                .iter()
                .filter(|((i, _), _)| i == ifindex)
                .map(|(_, (_, m))| as_reply(m, 0))
                .collect(),
            Query::LeafOf { ifindex, parent } => {
                self.leaf_gets += 1;
                let leaf = self.qdiscs.iter().find(|((i, _), (p, _))| i == ifindex && p == parent);
                match leaf {
                    Some((_, (_, m))) => vec![as_reply(m, 0)],
                    // The kernel's default pfifo is invisible: the ACK comes alone.
                    None if self.classes.contains_key(&(*ifindex, *parent)) => Vec::new(),
                    None => {
                        return Err(TcError::Kernel {
                            op: format!("get qdisc parent {parent:x}"),
                            owner: None,
                            errno: ENOENT,
                            extack: Some("Cannot find qdisc with specified handle".into()),
                            more_failures: 0,
                            source: std::io::Error::from_raw_os_error(ENOENT),
                        });
                    }
                }
            }
            Query::ClassOf { ifindex, handle } => {
                self.leaf_gets += 1;
                match self.classes.get(&(*ifindex, *handle)) {
                    Some((_, m)) => vec![as_reply(m, 0)],
                    None => {
                        return Err(TcError::Kernel {
                            op: format!("get class {handle:x}"),
                            owner: None,
                            errno: ENOENT,
                            extack: None,
                            more_failures: 0,
                            source: std::io::Error::from_raw_os_error(ENOENT),
                        });
                    }
                }
            }
        };
        for m in &msgs {
            for nl in messages(m) {
                sink(&nl);
            }
        }
        Ok(())
    }

    fn probe_qdisc(&mut self, leaf: &LeafQdisc) -> Result<bool, TcError> {
        Ok(!self.unsupported.contains(leaf.kind()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{SynthSpec, synth_plan};
    use crate::{Tc, reconcile};
    use lqos_config::{CakeParams, RateKbit};

    fn spec(leaf: Option<LeafQdisc>) -> SynthSpec {
        SynthSpec { interface: "v0".into(), queues: 2, sites_per_queue: 2, circuits: 30, leaf }
    }

    fn tc() -> Tc<FakeTransport> {
        Tc::with_transport(FakeTransport::new().with_link("v0", 4).without_kind("cake"))
    }

    #[test]
    fn full_build_then_reconcile_is_a_no_op() {
        let mut tc = tc();
        let plan = synth_plan(&spec(Some(LeafQdisc::Pfifo { limit: Some(100) })));
        let rep = tc.build_full(&plan).expect("build");
        let ifp = &plan.interfaces[0];
        assert_eq!(
            rep.interfaces[0].added,
            1 + ifp.htbs.len() + ifp.classes.len() + ifp.leaves.len()
        );
        let cs = tc.reconcile_live(&plan).expect("reconcile");
        assert!(cs.is_empty(), "{cs:?}");
        tc.transport_mut().clear_log();
        let rep = tc.apply(&cs).expect("empty apply");
        assert_eq!(rep.messages, 0);
        assert!(tc.transport().sent.is_empty(), "a no-op sends zero messages");
    }

    #[test]
    fn reapplying_a_build_is_harmless() {
        let mut tc = tc();
        let plan = synth_plan(&spec(None));
        tc.build_full(&plan).expect("build");
        let before = tc.transport().object_count();
        let rep = tc.build_full(&plan).expect("rebuild");
        assert_eq!(tc.transport().object_count(), before);
        assert_eq!(rep.interfaces[0].already, plan.interfaces[0].htbs.len());
    }

    #[test]
    fn cake_on_a_kernel_without_it_fails_before_sending_anything() {
        let mut tc = tc();
        let plan = synth_plan(&spec(Some(LeafQdisc::Cake(CakeParams::default()))));
        let err = tc.build_full(&plan).expect_err("cake unsupported");
        let text = err.to_string();
        assert!(text.contains("sch_cake") && text.contains("default_sqm"), "{text}");
        assert!(tc.transport().sent.is_empty());
    }

    #[test]
    fn kernel_refusal_names_the_circuit() {
        let mut tc = tc();
        let plan = synth_plan(&spec(None));
        let c = plan.interfaces[0].classes.last().cloned().expect("a class");
        tc.transport_mut().fail_on = Some((format!("class {} ", c.id), 22));
        let err = tc.build_full(&plan).expect_err("refused");
        match &err {
            TcError::Kernel { owner, errno, .. } => {
                assert_eq!(owner.as_ref(), Some(&c.owner));
                assert_eq!(*errno, 22);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains(&format!("class {}", c.id)));
    }

    #[test]
    fn hand_deleted_class_is_restored_alone() {
        let mut tc = tc();
        let plan = synth_plan(&spec(Some(LeafQdisc::Pfifo { limit: None })));
        tc.build_full(&plan).expect("build");
        let victim = plan.interfaces[0].leaves[5].parent;
        tc.transport_mut().remove_class_by_hand(2, victim.as_u32());
        let cs = tc.reconcile_live(&plan).expect("reconcile");
        assert_eq!(cs.class_add.iter().map(|c| c.item.id).collect::<Vec<_>>(), vec![victim]);
        assert_eq!(cs.leaf_add.len(), 1);
        tc.apply(&cs).expect("restore");
        assert!(tc.reconcile_live(&plan).expect("again").is_empty());
    }

    #[test]
    fn incremental_change_sends_only_the_change() {
        let mut tc = tc();
        let old = synth_plan(&spec(None));
        tc.build_full(&old).expect("build");
        let mut new = old.clone();
        let last = new.interfaces[0].classes.len() - 1;
        new.interfaces[0].classes[last].ceil = RateKbit(123_456);
        let cs = reconcile(&new, &[tc.dump("v0").expect("dump")]);
        tc.transport_mut().clear_log();
        let rep = tc.apply(&cs).expect("apply");
        assert_eq!(rep.interfaces[0].changed, 1);
        assert_eq!(tc.transport().sent.len(), 1);
        assert_eq!(tc.transport().sent[0].verb, Verb::Change);
        let live = tc.dump("v0").expect("dump");
        assert_eq!(live.classes[&new.interfaces[0].classes[last].id].ceil, RateKbit(123_456));
    }

    #[test]
    fn teardown_removes_only_lqos_root() {
        let mut tc = tc();
        let plan = synth_plan(&spec(None));
        let rep = tc.teardown(&plan).expect("nothing to remove");
        assert_eq!(rep.messages, 0);
        tc.build_full(&plan).expect("build");
        let rep = tc.teardown(&plan).expect("teardown");
        assert_eq!(rep.messages, 1);
        assert_eq!(tc.transport().object_count(), 0);
    }

    #[test]
    fn leaf_qdisc_is_one_get_by_parent_and_a_missing_class_is_none() {
        let mut tc = tc();
        let plan = synth_plan(&spec(Some(LeafQdisc::Pfifo { limit: Some(100) })));
        tc.build_full(&plan).expect("build");
        let leaf = plan.interfaces[0].leaves[3].clone();
        let q = tc.leaf_qdisc("v0", leaf.parent).expect("get").expect("a leaf");
        assert_eq!((q.kind.as_str(), q.parent), ("pfifo", leaf.parent.as_u32()));
        assert_eq!(q.handle, u32::from(leaf.handle) << 16);
        assert_eq!(tc.transport().leaf_gets, 1, "one get, no dump");
        let class = tc.class_get("v0", leaf.parent).expect("get").expect("the class");
        assert_eq!(class.id, leaf.parent);
        assert_eq!(tc.transport().leaf_gets, 2);
        let gone = lqos_plan::ClassId::new(1, 0xFFF0);
        assert_eq!(tc.leaf_qdisc("v0", gone).expect("no error"), None);
        assert_eq!(tc.class_get("v0", gone).expect("no error"), None);
        assert!(matches!(tc.leaf_qdisc("nope", gone), Err(TcError::NoSuchInterface { .. })));
    }

    #[test]
    fn interface_facts_and_missing_interface() {
        let mut tc = tc();
        let f = tc.interface_facts("v0").expect("facts");
        assert_eq!((f.tx_queues, f.mtu, f.operstate), (4, 1500, crate::OperState::Up));
        assert!(matches!(tc.interface_facts("nope"), Err(TcError::NoSuchInterface { .. })));
        assert!(!tc.interface_exists("nope").expect("no error"));
    }
}
