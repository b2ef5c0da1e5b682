//! Progressive apply: a ChangeSet cut into stages so that subscribers become shaped while a
//! big build is still running, instead of all at the end.
//!
//! Order (each stage is applied as one tc batch, then its mappings):
//! 1. stage 0: unmapping, every deletion, the root `mq`, the HTB qdiscs, the classes and leaves
//!    that are not circuits' (queue classes, sites, APs), and the mappings of circuits whose
//!    class is not being added (it exists already);
//! 2. stages 1..: [`CIRCUITS_PER_STAGE`] circuits at a time, their classes and leaves on every
//!    interface, then their mappings; a mapping is written only once its circuit's classes
//!    exist on all interfaces;
//! 3. last stage: in-place changes (class and leaf parameters).
//!
//! Stage 0 is always present (an empty ChangeSet gives one empty stage), so the engine's rule
//! "a no-op refresh is one empty tc apply" still holds.

use std::collections::HashMap;

use lqos_plan::{ChangeSet, Owner};

/// Circuits per progressive stage: large enough that the per-batch overhead (support checks,
/// one hot-cache epoch bump) is noise, small enough that the first subscribers are shaped
/// within a second or two of a 10k-circuit build.
pub const CIRCUITS_PER_STAGE: usize = 500;

fn circuit_of(owner: &Owner) -> Option<&str> {
    match owner {
        Owner::Circuit(c) => Some(c.0.as_str()),
        _ => None,
    }
}

/// Cuts `cs` into stages (see the module doc). Applying the stages in order does exactly what
/// applying `cs` does: every object and mapping appears in exactly one stage.
pub fn stages(cs: ChangeSet, per_stage: usize) -> Vec<ChangeSet> {
    let per_stage = per_stage.max(1);
    let ChangeSet {
        map_del,
        leaf_del,
        class_del,
        htb_del,
        mq_add,
        htb_add,
        class_add,
        leaf_add,
        class_change,
        leaf_change,
        map_add,
        rebuilt,
    } = cs;
    let mut first = ChangeSet {
        map_del,
        leaf_del,
        class_del,
        htb_del,
        mq_add,
        htb_add,
        rebuilt,
        ..Default::default()
    };
    // Circuits with classes to add, in the order their first class appears.
    let mut order: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<ChangeSet> = Vec::new();
    for c in class_add {
        match circuit_of(&c.item.owner) {
            Some(id) => {
                let next = order.len();
                let i = *order.entry(id.to_owned()).or_insert(next);
                let g = i / per_stage;
                if groups.len() <= g {
                    groups.resize_with(g + 1, ChangeSet::default);
                }
                groups[g].class_add.push(c);
            }
            None => first.class_add.push(c),
        }
    }
    for l in leaf_add {
        match circuit_of(&l.item.owner).and_then(|id| order.get(id)) {
            Some(i) => groups[i / per_stage].leaf_add.push(l),
            None => first.leaf_add.push(l),
        }
    }
    for m in map_add {
        match order.get(m.circuit.0.as_str()) {
            Some(i) => groups[i / per_stage].map_add.push(m),
            None => first.map_add.push(m),
        }
    }
    let last = ChangeSet { class_change, leaf_change, ..Default::default() };
    let mut out = Vec::with_capacity(groups.len() + 2);
    out.push(first);
    out.extend(groups);
    if !last.is_empty() {
        out.push(last);
    }
    out
}

/// True when the stage has something for lqos-tc (mappings aside).
pub fn has_tc(cs: &ChangeSet) -> bool {
    !(cs.leaf_del.is_empty()
        && cs.class_del.is_empty()
        && cs.htb_del.is_empty()
        && cs.mq_add.is_empty()
        && cs.htb_add.is_empty()
        && cs.class_add.is_empty()
        && cs.leaf_add.is_empty()
        && cs.class_change.is_empty()
        && cs.leaf_change.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{FACTS, setup};
    use lqos_plan::Plan;

    fn plan_of(rows: &str) -> Plan {
        let (_dir, config) = setup(rows);
        crate::engine::prepare(&config, FACTS, &Default::default()).expect("prepare").plan
    }

    fn rows(n: usize) -> String {
        (0..n)
            .map(|i| {
                format!(
                    "c{i},Sub {i},d{i},r{i},AP_1,,,,100.64.{}.{},,1,1,50,10,\n",
                    i / 200,
                    i % 200 + 1
                )
            })
            .collect()
    }

    #[test]
    fn every_object_lands_in_exactly_one_stage_and_maps_follow_their_classes() {
        let plan = plan_of(&rows(23));
        let full = lqos_plan::diff(&Plan::empty(), &plan);
        let parts = stages(full.clone(), 5);
        // 23 circuits in stages of 5: stage 0 + 5 circuit stages, no change stage.
        assert_eq!(parts.len(), 6, "{}", parts.len());
        let count = |f: &dyn Fn(&ChangeSet) -> usize| parts.iter().map(f).sum::<usize>();
        assert_eq!(count(&|c| c.class_add.len()), full.class_add.len());
        assert_eq!(count(&|c| c.leaf_add.len()), full.leaf_add.len());
        assert_eq!(count(&|c| c.map_add.len()), full.map_add.len());
        assert_eq!(count(&|c| c.htb_add.len()), full.htb_add.len());
        assert_eq!(parts[0].mq_add, full.mq_add);
        // Stage 0 holds no circuit class; each later stage maps only circuits whose classes
        // (download and upload) it adds.
        assert!(parts[0].class_add.iter().all(|c| circuit_of(&c.item.owner).is_none()));
        assert!(parts[0].map_add.is_empty());
        for p in &parts[1..] {
            for m in &p.map_add {
                let classes = p
                    .class_add
                    .iter()
                    .filter(|c| circuit_of(&c.item.owner) == Some(m.circuit.0.as_str()))
                    .count();
                assert_eq!(classes, 2, "circuit {} mapped without both classes", m.circuit.0);
            }
            let circuits: std::collections::HashSet<_> =
                p.class_add.iter().filter_map(|c| circuit_of(&c.item.owner)).collect();
            assert!(circuits.len() <= 5);
        }
    }

    #[test]
    fn an_empty_change_is_one_empty_stage_and_changes_come_last() {
        assert_eq!(stages(ChangeSet::default(), 10), vec![ChangeSet::default()]);
        let a = plan_of(&rows(3));
        let b = plan_of(&rows(3).replace(",50,10,", ",60,10,"));
        let cs = lqos_plan::diff(&a, &b);
        assert!(!cs.class_change.is_empty());
        let parts = stages(cs.clone(), 10);
        let last = parts.last().expect("stages");
        assert_eq!(last.class_change, cs.class_change);
        assert!(!has_tc(&parts[0]));
    }
}
