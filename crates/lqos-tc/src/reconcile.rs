//! `reconcile(plan, live) → ChangeSet`: what to do so the kernel matches the plan, touching
//! only what is wrong. Pure.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use lqos_config::LeafQdisc;
use lqos_plan::{
    ChangeSet, ClassId, ClassParent, HtbClass, HtbQdisc, InterfacePlan, LeafPlan, MQ_MAJOR,
    OnInterface, Owner, Plan,
};

use crate::dump::{LiveClass, LiveTree};
use crate::ops::leaf_matches;

fn on<T>(interface: &str, item: T) -> OnInterface<T> {
    OnInterface { interface: interface.to_string(), item }
}

/// Compares the applied plan with live dumps and returns the changes that bring the kernel
/// back to the plan:
/// - root not lqos's `mq 7fff:` → `mq_add` and everything below it;
/// - an HTB qdisc missing or wrong (kind, slot, default) → deleted if present, re-added with
///   its whole tree. A different `r2q` alone is not wrong: the kernel cannot change it in place,
///   and it only derives the quantum of classes created without one, while every planned class
///   carries its own (a link capacity change is in-place class changes, see lqos-plan's diff);
/// - a class missing → added; under a different parent (or its parent is re-created) → its live
///   subtree is deleted (leaves first, children before parents) and re-added; rate, ceil,
///   quantum or prio differ → `class_change` (counters kept);
/// - a leaf missing → added; same handle and kind with other parameters → `leaf_change`; other
///   kind or handle → deleted and re-added;
/// - HTB classes and leaf qdiscs under lqos's HTB majors that the plan does not have → deleted.
///
/// IP mappings are not the kernel tree's business and are left empty.
pub fn reconcile(plan: &Plan, live: &[LiveTree]) -> ChangeSet {
    let mut cs = ChangeSet::default();
    let empty = LiveTree::default();
    for ifp in &plan.interfaces {
        let lt = live.iter().find(|t| t.interface == ifp.name).unwrap_or(&empty);
        reconcile_interface(ifp, lt, &mut cs);
    }
    cs
}

fn class_owner(ifp: &InterfacePlan, id: ClassId) -> Owner {
    ifp.classes
        .iter()
        .find(|c| c.id == id)
        .map(|c| c.owner.clone())
        .unwrap_or_else(|| Owner::Node(format!("unplanned class {id}")))
}

fn live_as_class(ifp: &InterfacePlan, lc: &LiveClass) -> HtbClass {
    let planned = ifp.classes.iter().find(|c| c.id == lc.id);
    HtbClass {
        id: lc.id,
        parent: lc.parent,
        rate: lc.rate,
        ceil: lc.ceil,
        prio: lc.prio,
        quantum: lc.quantum,
        owner: class_owner(ifp, lc.id),
        direction: planned.map(|c| c.direction).unwrap_or(lqos_plan::Direction::Download),
    }
}

fn depth(live: &BTreeMap<ClassId, LiveClass>, id: ClassId) -> usize {
    let mut d = 0;
    let mut cur = live.get(&id).map(|c| c.parent);
    while let Some(ClassParent::Class(p)) = cur {
        d += 1;
        if d > 64 {
            break;
        }
        cur = live.get(&p).map(|c| c.parent);
    }
    d
}

fn reconcile_interface(ifp: &InterfacePlan, lt: &LiveTree, cs: &mut ChangeSet) {
    let name = ifp.name.as_str();
    let root_ok = lt.has_lqos_root();
    if !root_ok {
        cs.mq_add.push(ifp.name.clone());
    }
    let planned_majors: BTreeSet<u16> = ifp.htbs.iter().map(|h| h.major).collect();

    // HTB qdiscs.
    let mut fresh: BTreeSet<u16> = BTreeSet::new();
    for h in &ifp.htbs {
        if !root_ok {
            fresh.insert(h.major);
            cs.htb_add.push(on(name, h.clone()));
            continue;
        }
        let slot_parent = (u32::from(MQ_MAJOR) << 16) | u32::from(h.mq_slot);
        let want_handle = u32::from(h.major) << 16;
        let at_slot = lt.qdisc_under(slot_parent);
        let ok = at_slot.is_some_and(|q| {
            q.handle == want_handle
                && q.kind == "htb"
                && q.htb.is_some_and(|i| i.default_minor == u32::from(h.default_minor))
        });
        if ok {
            continue;
        }
        if let Some(q) = at_slot {
            cs.htb_del.push(on(
                name,
                HtbQdisc { mq_slot: h.mq_slot, major: q.major(), default_minor: 0, r2q: 0 },
            ));
        }
        // The same major elsewhere would collide with the new one.
        if let Some(q) = lt.qdisc(h.major).filter(|q| q.parent != slot_parent) {
            let slot = (q.parent & 0xFFFF) as u16;
            if q.parent >> 16 == u32::from(MQ_MAJOR) {
                cs.htb_del.push(on(
                    name,
                    HtbQdisc { mq_slot: slot, major: h.major, default_minor: 0, r2q: 0 },
                ));
            }
        }
        fresh.insert(h.major);
        cs.htb_add.push(on(name, h.clone()));
    }

    // Classes.
    let live_classes: &BTreeMap<ClassId, LiveClass> =
        if root_ok { &lt.classes } else { &BTreeMap::new() };
    let planned: HashMap<ClassId, &HtbClass> = ifp.classes.iter().map(|c| (c.id, c)).collect();
    let mut recreate: BTreeSet<ClassId> = BTreeSet::new();
    let mut to_delete: BTreeSet<ClassId> = BTreeSet::new();
    for c in &ifp.classes {
        if fresh.contains(&c.id.major) {
            recreate.insert(c.id);
            cs.class_add.push(on(name, c.clone()));
            continue;
        }
        let parent_recreated = matches!(c.parent, ClassParent::Class(p) if recreate.contains(&p));
        match live_classes.get(&c.id) {
            None => {
                recreate.insert(c.id);
                cs.class_add.push(on(name, c.clone()));
            }
            Some(lc) if parent_recreated || lc.parent != c.parent => {
                to_delete.insert(c.id);
                recreate.insert(c.id);
                cs.class_add.push(on(name, c.clone()));
            }
            Some(lc) => {
                if (lc.rate, lc.ceil, lc.quantum, lc.prio) != (c.rate, c.ceil, c.quantum, c.prio) {
                    cs.class_change.push(on(name, c.clone()));
                }
            }
        }
    }
    // Unplanned classes under lqos's HTBs (not those being re-created with their HTB).
    for id in live_classes.keys() {
        if planned_majors.contains(&id.major)
            && !fresh.contains(&id.major)
            && !planned.contains_key(id)
        {
            to_delete.insert(*id);
        }
    }
    // Live descendants of deleted classes go too (HTB refuses to delete a class with children).
    loop {
        let more: Vec<ClassId> = live_classes
            .values()
            .filter(|lc| !to_delete.contains(&lc.id))
            .filter(|lc| matches!(lc.parent, ClassParent::Class(p) if to_delete.contains(&p)))
            .map(|lc| lc.id)
            .collect();
        if more.is_empty() {
            break;
        }
        to_delete.extend(more);
    }
    let mut del_order: Vec<ClassId> = to_delete.iter().copied().collect();
    del_order.sort_by_key(|id| std::cmp::Reverse(depth(live_classes, *id)));
    for id in &del_order {
        if let Some(q) = lt.qdisc_under(id.as_u32()) {
            cs.leaf_del.push(on(
                name,
                LeafPlan {
                    parent: *id,
                    handle: q.major(),
                    qdisc: q.leaf.clone().unwrap_or(LeafQdisc::Pfifo { limit: None }),
                    owner: class_owner(ifp, *id),
                },
            ));
        }
        if let Some(lc) = live_classes.get(id) {
            cs.class_del.push(on(name, live_as_class(ifp, lc)));
        }
    }

    // Leaves.
    let mut planned_leaf_parents: BTreeSet<ClassId> = BTreeSet::new();
    for l in &ifp.leaves {
        planned_leaf_parents.insert(l.parent);
        if !root_ok || recreate.contains(&l.parent) {
            cs.leaf_add.push(on(name, l.clone()));
            continue;
        }
        match lt.qdisc_under(l.parent.as_u32()) {
            None => cs.leaf_add.push(on(name, l.clone())),
            Some(q) if q.major() == l.handle && q.kind == l.qdisc.kind() => {
                if !q.leaf.as_ref().is_some_and(|have| leaf_matches(&l.qdisc, have)) {
                    cs.leaf_change.push(on(name, l.clone()));
                }
            }
            Some(q) => {
                cs.leaf_del.push(on(
                    name,
                    LeafPlan {
                        parent: l.parent,
                        handle: q.major(),
                        qdisc: q.leaf.clone().unwrap_or(LeafQdisc::Pfifo { limit: None }),
                        owner: l.owner.clone(),
                    },
                ));
                cs.leaf_add.push(on(name, l.clone()));
            }
        }
    }
    // Leaves the plan does not have, under planned classes that stay.
    if root_ok {
        for q in &lt.qdiscs {
            let parent = ClassId::from_u32(q.parent);
            if q.handle == 0
                || q.parent == crate::wire::TC_H_ROOT
                || !planned.contains_key(&parent)
                || planned_leaf_parents.contains(&parent)
                || recreate.contains(&parent)
            {
                continue;
            }
            cs.leaf_del.push(on(
                name,
                LeafPlan {
                    parent,
                    handle: q.major(),
                    qdisc: q.leaf.clone().unwrap_or(LeafQdisc::Pfifo { limit: None }),
                    owner: class_owner(ifp, parent),
                },
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{SynthSpec, synth_plan};
    use lqos_config::RateKbit;

    fn spec() -> SynthSpec {
        SynthSpec {
            interface: "v0".into(),
            queues: 2,
            sites_per_queue: 2,
            circuits: 20,
            leaf: Some(LeafQdisc::Pfifo { limit: Some(100) }),
        }
    }

    fn live_of(plan: &Plan) -> Vec<LiveTree> {
        plan.interfaces.iter().map(|i| LiveTree::from_plan(i, 2)).collect()
    }

    #[test]
    fn reconcile_of_matching_tree_is_empty() {
        let p = synth_plan(&spec());
        assert!(reconcile(&p, &live_of(&p)).is_empty());
    }

    #[test]
    fn a_different_r2q_alone_rebuilds_nothing() {
        let p = synth_plan(&spec());
        let mut faster = p.clone();
        for h in &mut faster.interfaces[0].htbs {
            h.r2q = 2396; // the link went from 1000 to 1150 Mbps
        }
        assert!(reconcile(&faster, &live_of(&p)).is_empty());
    }

    #[test]
    fn empty_kernel_gets_everything() {
        let p = synth_plan(&spec());
        let cs = reconcile(&p, &[]);
        assert_eq!(cs.mq_add, vec!["v0".to_string()]);
        assert_eq!(cs.htb_add.len(), 2);
        assert_eq!(cs.class_add.len(), p.interfaces[0].classes.len());
        assert_eq!(cs.leaf_add.len(), 20);
        assert!(cs.class_del.is_empty() && cs.class_change.is_empty());
    }

    #[test]
    fn one_missing_class_restores_exactly_it_and_its_leaf() {
        let p = synth_plan(&spec());
        let mut live = live_of(&p);
        let victim = p.interfaces[0].leaves[3].clone();
        live[0].classes.remove(&victim.parent);
        live[0].qdiscs.retain(|q| q.parent != victim.parent.as_u32());
        let cs = reconcile(&p, &live);
        assert_eq!(cs.class_add.len(), 1);
        assert_eq!(cs.class_add[0].item.id, victim.parent);
        assert_eq!(cs.leaf_add.len(), 1);
        assert_eq!(cs.leaf_add[0].item, victim);
        assert!(cs.class_change.is_empty() && cs.class_del.is_empty() && cs.leaf_del.is_empty());
    }

    #[test]
    fn rate_change_is_in_place_and_move_rebuilds_only_the_moved_class() {
        let old = synth_plan(&spec());
        let mut new = old.clone();
        let ifp = &mut new.interfaces[0];
        let n = ifp.classes.len();
        ifp.classes[n - 1].rate = RateKbit(ifp.classes[n - 1].rate.0 + 1);
        // Move circuit class n-2 to the other site of its queue.
        let moved = ifp.classes[n - 2].clone();
        let other_site = ifp
            .classes
            .iter()
            .find(|c| {
                matches!(c.owner, Owner::Node(_))
                    && c.id.major == moved.id.major
                    && ClassParent::Class(c.id) != moved.parent
            })
            .map(|c| c.id)
            .expect("another site");
        ifp.classes[n - 2].parent = ClassParent::Class(other_site);
        let cs = reconcile(&new, &live_of(&old));
        assert_eq!(cs.class_change.len(), 1);
        assert_eq!(cs.class_del.len(), 1);
        assert_eq!(cs.class_del[0].item.id, moved.id);
        assert_eq!(cs.class_add.len(), 1);
        assert_eq!(cs.leaf_del.len(), 1);
        assert_eq!(cs.leaf_add.len(), 1);
    }

    #[test]
    fn unplanned_children_are_deleted_children_first() {
        let old = synth_plan(&spec());
        let mut new = old.clone();
        // Drop one site and all its circuits from the plan.
        let ifp = &mut new.interfaces[0];
        let site = ifp
            .classes
            .iter()
            .find(|c| matches!(c.owner, Owner::Node(_)))
            .map(|c| c.id)
            .expect("site");
        ifp.classes.retain(|c| c.id != site && c.parent != ClassParent::Class(site));
        let kept: BTreeSet<ClassId> = ifp.classes.iter().map(|c| c.id).collect();
        ifp.leaves.retain(|l| kept.contains(&l.parent));
        let cs = reconcile(&new, &live_of(&old));
        assert!(cs.class_del.len() > 1);
        assert_eq!(cs.class_del.last().map(|c| c.item.id), Some(site), "parent goes last");
        assert_eq!(cs.leaf_del.len(), cs.class_del.len() - 1);
        assert!(cs.class_add.is_empty());
    }
}
