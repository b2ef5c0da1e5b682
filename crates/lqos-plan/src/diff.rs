//! `diff()`: two plans → the [`ChangeSet`] that turns the kernel state of one into the other,
//! and [`apply`], the same transition simulated on plans (used by tests and fakes).
//!
//! Matching: HTB qdiscs by (interface, major); classes by (interface, direction, owner); leaves
//! by (interface, direction of their class, owner); mappings by prefix.
//! * An HTB qdisc whose `mq_slot`/`default_minor` differ is deleted and re-added; deleting
//!   an HTB qdisc removes its classes and leaves in the kernel, so those are **not** listed in
//!   `class_del`/`leaf_del` (they are re-listed in the add lists). A different `r2q` alone (the
//!   link capacity changed) is **not** a rebuild: the kernel cannot change an HTB qdisc in
//!   place (`tc qdisc change … htb` is refused), and r2q only derives the quantum of classes
//!   created without one, while every planned class carries its own `quantum`, so the new
//!   quanta and rates arrive as in-place `class_change`s. The kernel keeps the old r2q.
//! * A class whose id or parent changed, or whose parent class is re-created, is deleted (with
//!   its whole old subtree, children first, each leaf listed in `leaf_del`) and re-added; the
//!   owners whose own id/parent changed (not merely an ancestor's) are recorded in `rebuilt`. A class kept in place with a
//!   different rate/ceil/quantum/prio goes to `class_change`.
//! * A leaf is deleted and re-added when its class is re-created, its kind or handle changed, or
//!   a parameter would go back to the kernel default (tc cannot express "unset"); otherwise
//!   differing parameters give `leaf_change`.
//! * A mapping that disappears goes to `map_del`; a new or different one to `map_add`.

use std::collections::{HashMap, HashSet};

use lqos_config::LeafQdisc;

use crate::model::*;

type ClassKey<'a> = (Direction, &'a Owner);

struct IfView<'a> {
    htbs: HashMap<u16, &'a HtbQdisc>,
    classes: HashMap<ClassKey<'a>, &'a HtbClass>,
    by_id: HashMap<ClassId, &'a HtbClass>,
    leaves: HashMap<ClassKey<'a>, &'a LeafPlan>,
}

fn view(i: &InterfacePlan) -> IfView<'_> {
    let by_id: HashMap<ClassId, &HtbClass> = i.classes.iter().map(|c| (c.id, c)).collect();
    let leaves = i
        .leaves
        .iter()
        .filter_map(|l| by_id.get(&l.parent).map(|c| ((c.direction, &l.owner), l)))
        .collect();
    IfView {
        htbs: i.htbs.iter().map(|h| (h.major, h)).collect(),
        classes: i.classes.iter().map(|c| ((c.direction, &c.owner), c)).collect(),
        by_id,
        leaves,
    }
}

fn on<T: Clone>(interface: &str, item: &T) -> OnInterface<T> {
    OnInterface { interface: interface.to_string(), item: item.clone() }
}

/// Computes what to do to go from `old` to `new`. `diff(p, p)` is empty;
/// `diff(&Plan::empty(), p)` is the full build of `p`.
pub fn diff(old: &Plan, new: &Plan) -> ChangeSet {
    let mut cs = ChangeSet::default();
    let mut rebuilt: HashSet<&Owner> = HashSet::new();
    let mut rebuilt_order: Vec<Owner> = Vec::new();
    let empty = InterfacePlan {
        name: String::new(),
        htbs: Vec::new(),
        classes: Vec::new(),
        leaves: Vec::new(),
    };

    // Interfaces that disappear: drop their HTBs (the root mq stays, as on a drain).
    for oi in &old.interfaces {
        if new.interface(&oi.name).is_none() {
            for h in &oi.htbs {
                cs.htb_del.push(on(&oi.name, h));
            }
        }
    }
    for ni in &new.interfaces {
        let name = ni.name.as_str();
        let oi = match old.interface(name) {
            Some(o) => o,
            None => {
                cs.mq_add.push(ni.name.clone());
                &empty
            }
        };
        let ov = view(oi);
        let nv = view(ni);

        // HTB qdiscs.
        let mut htb_gone: HashSet<u16> = HashSet::new(); // majors whose old HTB is deleted
        let mut htb_new: HashSet<u16> = HashSet::new(); // majors whose HTB is (re)created
        for h in &oi.htbs {
            match nv.htbs.get(&h.major) {
                Some(nh) if same_htb(nh, h) => {}
                _ => {
                    cs.htb_del.push(on(name, h));
                    htb_gone.insert(h.major);
                }
            }
        }
        for h in &ni.htbs {
            match ov.htbs.get(&h.major) {
                Some(oh) if same_htb(oh, h) => {}
                _ => {
                    cs.htb_add.push(on(name, h));
                    htb_new.insert(h.major);
                }
            }
        }

        // Old classes to delete (parents first while deciding; emitted children first).
        let mut del_ids: HashSet<ClassId> = HashSet::new();
        let new_owner_of: HashMap<ClassId, ClassKey<'_>> =
            ni.classes.iter().map(|c| (c.id, (c.direction, &c.owner))).collect();
        let mut class_del = Vec::new();
        for c in &oi.classes {
            let key = (c.direction, &c.owner);
            let own_change = match nv.classes.get(&key) {
                Some(n) => n.id != c.id || n.parent != c.parent,
                None => true,
            };
            let id_taken = new_owner_of.get(&c.id).is_some_and(|k| *k != key);
            let parent_gone = matches!(c.parent, ClassParent::Class(p) if del_ids.contains(&p));
            if htb_gone.contains(&c.id.major) {
                del_ids.insert(c.id); // implicit, with its qdisc
            } else if own_change || id_taken || parent_gone {
                del_ids.insert(c.id);
                class_del.push(c);
                if own_change
                    && !parent_gone
                    && nv.classes.contains_key(&key)
                    && rebuilt.insert(&c.owner)
                {
                    rebuilt_order.push(c.owner.clone());
                }
            }
        }
        // New classes to add, parents first.
        let mut add_ids: HashSet<ClassId> = HashSet::new();
        for c in &ni.classes {
            let key = (c.direction, &c.owner);
            let add = match ov.classes.get(&key) {
                None => true,
                Some(o) => {
                    del_ids.contains(&o.id)
                        || o.id != c.id
                        || o.parent != c.parent
                        || htb_new.contains(&c.id.major)
                        || matches!(c.parent, ClassParent::Class(p) if add_ids.contains(&p))
                }
            };
            if add {
                add_ids.insert(c.id);
                cs.class_add.push(on(name, c));
            } else if let Some(o) = ov.classes.get(&key)
                && (o.rate != c.rate
                    || o.ceil != c.ceil
                    || o.quantum != c.quantum
                    || o.prio != c.prio)
            {
                cs.class_change.push(on(name, c));
            }
        }

        // Leaves.
        let mut leaf_del_parents: HashSet<ClassId> = HashSet::new();
        for l in &oi.leaves {
            let Some(oc) = ov.by_id.get(&l.parent) else { continue };
            if htb_gone.contains(&l.parent.major) {
                leaf_del_parents.insert(l.parent);
                continue;
            }
            let key = (oc.direction, &l.owner);
            let keep = !del_ids.contains(&l.parent)
                && nv.leaves.get(&key).is_some_and(|n| {
                    n.parent == l.parent && n.handle == l.handle && changeable(&l.qdisc, &n.qdisc)
                });
            if !keep {
                leaf_del_parents.insert(l.parent);
                cs.leaf_del.push(on(name, l));
            }
        }
        for l in &ni.leaves {
            let Some(nc) = nv.by_id.get(&l.parent) else { continue };
            let key = (nc.direction, &l.owner);
            match ov.leaves.get(&key) {
                Some(o)
                    if !add_ids.contains(&l.parent) && !leaf_del_parents.contains(&o.parent) =>
                {
                    if o.qdisc != l.qdisc {
                        cs.leaf_change.push(on(name, l));
                    }
                }
                _ => cs.leaf_add.push(on(name, l)),
            }
        }
        class_del.reverse();
        cs.class_del.extend(class_del.into_iter().map(|c| on(name, c)));
    }

    // Mappings.
    let old_maps: HashMap<&ipnet::IpNet, &IpMapping> =
        old.mappings.iter().map(|m| (&m.net, m)).collect();
    let new_maps: HashMap<&ipnet::IpNet, &IpMapping> =
        new.mappings.iter().map(|m| (&m.net, m)).collect();
    cs.map_del = old.mappings.iter().filter(|m| !new_maps.contains_key(&m.net)).cloned().collect();
    cs.map_add = new.mappings.iter().filter(|m| old_maps.get(&m.net) != Some(m)).cloned().collect();
    cs.rebuilt = rebuilt_order;
    cs
}

/// True when the kernel's HTB qdisc `a` can stay for `b`: same slot and default class (`r2q`
/// is ignored, see the module docs).
fn same_htb(a: &HtbQdisc, b: &HtbQdisc) -> bool {
    a.major == b.major && a.mq_slot == b.mq_slot && a.default_minor == b.default_minor
}

/// True when `tc qdisc change` can turn `old` into `new`: same kind, and no parameter that was
/// set would go back to "kernel default" (tc has no syntax to unset), and fq_codel's `flows`
/// (fixed at creation) is unchanged.
fn changeable(old: &LeafQdisc, new: &LeafQdisc) -> bool {
    fn keeps<T>(o: &Option<T>, n: &Option<T>) -> bool {
        o.is_none() || n.is_some()
    }
    match (old, new) {
        (LeafQdisc::Cake(o), LeafQdisc::Cake(n)) => {
            keeps(&o.bandwidth_kbit, &n.bandwidth_kbit)
                && keeps(&o.autorate_ingress, &n.autorate_ingress)
                && keeps(&o.diffserv, &n.diffserv)
                && keeps(&o.flow_mode, &n.flow_mode)
                && keeps(&o.rtt_us, &n.rtt_us)
                && keeps(&o.ack_filter, &n.ack_filter)
                && keeps(&o.nat, &n.nat)
                && keeps(&o.wash, &n.wash)
                && keeps(&o.split_gso, &n.split_gso)
                && keeps(&o.ingress, &n.ingress)
                && keeps(&o.atm, &n.atm)
                && keeps(&o.overhead, &n.overhead)
                && (!o.raw || n.raw)
                && keeps(&o.mpu, &n.mpu)
                && keeps(&o.memlimit, &n.memlimit)
                && keeps(&o.fwmark, &n.fwmark)
        }
        (LeafQdisc::FqCodel(o), LeafQdisc::FqCodel(n)) => {
            o.flows == n.flows
                && keeps(&o.limit, &n.limit)
                && keeps(&o.target_us, &n.target_us)
                && keeps(&o.interval_us, &n.interval_us)
                && keeps(&o.quantum, &n.quantum)
                && keeps(&o.ecn, &n.ecn)
                && keeps(&o.ce_threshold_us, &n.ce_threshold_us)
                && keeps(&o.memory_limit, &n.memory_limit)
                && keeps(&o.drop_batch, &n.drop_batch)
        }
        (LeafQdisc::Pfifo { limit: o }, LeafQdisc::Pfifo { limit: n })
        | (LeafQdisc::Bfifo { limit: o }, LeafQdisc::Bfifo { limit: n }) => keeps(o, n),
        _ => false,
    }
}

/// Simulates applying `cs` to the kernel state described by `plan`, with the kernel's semantics
/// (deleting an HTB qdisc drops its classes and leaves; deleting a class drops its leaf). The
/// result carries `plan`'s metadata (nodes, circuits, identities, warnings) unchanged; compare
/// kernel state with [`KernelView`].
pub fn apply(plan: &Plan, cs: &ChangeSet) -> Plan {
    let mut p = plan.clone();
    let dels: HashSet<&ipnet::IpNet> = cs.map_del.iter().map(|m| &m.net).collect();
    p.mappings.retain(|m| !dels.contains(&m.net));
    let iface = |p: &mut Plan, name: &str| -> usize {
        if let Some(i) = p.interfaces.iter().position(|i| i.name == name) {
            i
        } else {
            p.interfaces.push(InterfacePlan {
                name: name.to_string(),
                htbs: Vec::new(),
                classes: Vec::new(),
                leaves: Vec::new(),
            });
            p.interfaces.len() - 1
        }
    };
    for l in &cs.leaf_del {
        let i = iface(&mut p, &l.interface);
        p.interfaces[i].leaves.retain(|x| x.parent != l.item.parent);
    }
    for c in &cs.class_del {
        let i = iface(&mut p, &c.interface);
        let ip = &mut p.interfaces[i];
        ip.classes.retain(|x| x.id != c.item.id);
        ip.leaves.retain(|x| x.parent != c.item.id);
    }
    for h in &cs.htb_del {
        let i = iface(&mut p, &h.interface);
        let ip = &mut p.interfaces[i];
        ip.htbs.retain(|x| x.major != h.item.major);
        ip.classes.retain(|x| x.id.major != h.item.major);
        ip.leaves.retain(|x| x.parent.major != h.item.major);
    }
    for m in &cs.mq_add {
        iface(&mut p, m);
    }
    for h in &cs.htb_add {
        let i = iface(&mut p, &h.interface);
        p.interfaces[i].htbs.push(h.item.clone());
    }
    for c in &cs.class_add {
        let i = iface(&mut p, &c.interface);
        p.interfaces[i].classes.push(c.item.clone());
    }
    for l in &cs.leaf_add {
        let i = iface(&mut p, &l.interface);
        p.interfaces[i].leaves.push(l.item.clone());
    }
    for c in &cs.class_change {
        let i = iface(&mut p, &c.interface);
        if let Some(x) = p.interfaces[i].classes.iter_mut().find(|x| x.id == c.item.id) {
            *x = c.item.clone();
        }
    }
    for l in &cs.leaf_change {
        let i = iface(&mut p, &l.interface);
        if let Some(x) = p.interfaces[i].leaves.iter_mut().find(|x| x.parent == l.item.parent) {
            *x = l.item.clone();
        }
    }
    for m in &cs.map_add {
        p.mappings.retain(|x| x.net != m.net);
        p.mappings.push(m.clone());
    }
    p.mappings.sort();
    p
}

/// One interface of a [`KernelView`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceView {
    /// Interface name.
    pub name: String,
    /// HTB qdiscs sorted by major, `r2q` left out (0): it has no effect on classes that
    /// carry their own quantum, and the kernel cannot change it in place.
    pub htbs: Vec<HtbQdisc>,
    /// Classes sorted by id.
    pub classes: Vec<HtbClass>,
    /// Leaves sorted by parent class.
    pub leaves: Vec<LeafPlan>,
}

/// Order-independent view of the kernel state a plan describes: per interface (that has a
/// root mq) its HTB qdiscs, classes and leaves, sorted; and the mappings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelView {
    /// Interfaces sorted by name.
    pub interfaces: Vec<InterfaceView>,
    /// Mappings, sorted.
    pub mappings: Vec<IpMapping>,
}

impl KernelView {
    /// The view of `plan`.
    pub fn of(plan: &Plan) -> Self {
        let mut interfaces: Vec<_> = plan
            .interfaces
            .iter()
            .map(|i| {
                let mut h: Vec<HtbQdisc> =
                    i.htbs.iter().map(|x| HtbQdisc { r2q: 0, ..x.clone() }).collect();
                h.sort_by_key(|x| x.major);
                let mut c = i.classes.clone();
                c.sort_by_key(|x| x.id);
                let mut l = i.leaves.clone();
                l.sort_by_key(|x| x.parent);
                InterfaceView { name: i.name.clone(), htbs: h, classes: c, leaves: l }
            })
            .collect();
        interfaces.sort_by(|a, b| a.name.cmp(&b.name));
        let mut mappings = plan.mappings.clone();
        mappings.sort();
        KernelView { interfaces, mappings }
    }
}
