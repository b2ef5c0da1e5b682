//! Property tests over random networks and circuits (built with the testkit from a seed).

use std::collections::{HashMap, HashSet};

use lqos_plan::testkit::*;
use lqos_plan::*;
use proptest::prelude::*;

use crate::support::{fresh, run};

/// Depth of the deepest class, counting `k:1` as level 1.
pub fn max_depth(p: &Plan) -> usize {
    let mut worst = 0;
    for i in &p.interfaces {
        let parent: HashMap<ClassId, ClassParent> =
            i.classes.iter().map(|c| (c.id, c.parent)).collect();
        for c in &i.classes {
            let (mut d, mut cur) = (1, c.parent);
            while let ClassParent::Class(p) = cur {
                d += 1;
                cur = parent.get(&p).copied().unwrap_or(ClassParent::Qdisc(0));
                assert!(d < 64, "cycle");
            }
            worst = worst.max(d);
        }
    }
    worst
}

#[derive(Debug, Clone)]
struct Case {
    seed: u64,
    sites: usize,
    circuits: u32,
    queues: u32,
    stick: bool,
    binpack: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (any::<u64>(), 0usize..40, 0u32..150, 1u32..6, any::<bool>(), any::<bool>()).prop_map(
        |(seed, sites, circuits, queues, stick, binpack)| Case {
            seed,
            sites,
            circuits,
            queues,
            stick,
            binpack,
        },
    )
}

fn build(
    c: &Case,
) -> (lqos_config::Config, lqos_config::Network, Vec<lqos_config::Circuit>, HostFacts) {
    let mut config = if c.stick { config_stick(1000, 500) } else { config_bridge(1000, 500) };
    config.queues.use_binpacking = c.binpack;
    let net = random_network(c.seed, c.sites, 9);
    let circuits = random_circuits(c.seed, &net, 0, c.circuits);
    let q = if c.stick { c.queues * 2 } else { c.queues };
    (config, net, circuits, facts(q))
}

fn check_invariants(p: &Plan, circuits: &[lqos_config::Circuit]) {
    let planned: HashSet<&str> = p.circuits.iter().map(|c| c.id.0.as_str()).collect();
    for i in &p.interfaces {
        // Class IDs are unique per major per interface (so within every HTB).
        let mut ids = HashSet::new();
        for c in &i.classes {
            assert!(ids.insert(c.id), "duplicate class {} on {}", c.id, i.name);
            // rate ≤ ceil, both positive.
            assert!(c.rate <= c.ceil && c.rate.0 > 0, "{} rate {} ceil {}", c.id, c.rate, c.ceil);
        }
        // A child's ceil never exceeds its parent's ceil; parents exist.
        let by_id: HashMap<ClassId, &HtbClass> = i.classes.iter().map(|c| (c.id, c)).collect();
        for c in &i.classes {
            if let ClassParent::Class(pid) = c.parent {
                let parent = by_id.get(&pid).unwrap_or_else(|| panic!("missing parent {pid}"));
                assert!(
                    c.ceil <= parent.ceil,
                    "{} ceil {} > parent {} ceil {}",
                    c.id,
                    c.ceil,
                    pid,
                    parent.ceil
                );
                assert_eq!(pid.major, c.id.major);
            }
        }
        // Leaf handles are unique on the interface and never an HTB major or the mq root.
        let majors: HashSet<u16> = i.htbs.iter().map(|h| h.major).collect();
        let mut handles = HashSet::new();
        for l in &i.leaves {
            assert!(
                handles.insert(l.handle) && !majors.contains(&l.handle) && l.handle != MQ_MAJOR
            );
            assert!(by_id.contains_key(&l.parent));
        }
    }
    // Every planned circuit has exactly one class per direction.
    for c in &p.circuits {
        for dir in [Direction::Download, Direction::Upload] {
            let n: usize = p
                .interfaces
                .iter()
                .map(|i| {
                    i.classes
                        .iter()
                        .filter(|k| k.direction == dir && k.owner == Owner::Circuit(c.id.clone()))
                        .count()
                })
                .sum();
            assert_eq!(n, 1, "{} {dir:?}", c.id);
        }
    }
    // Every parented (or unparented, flat) circuit whose parent resolves is planned.
    for c in circuits {
        let unknown = p
            .warnings
            .iter()
            .any(|w| w.owner == Owner::Circuit(c.id.clone()) && w.message.contains("not found"));
        assert_eq!(planned.contains(c.id.0.as_str()), !unknown, "{}", c.id);
    }
    // Every address maps to its own circuit's download class, on CPU queue-1.
    let by_circuit: HashMap<&str, &PlannedCircuit> =
        p.circuits.iter().map(|c| (c.id.0.as_str(), c)).collect();
    for c in circuits {
        for (net, _) in c.networks() {
            if let Some(pc) = by_circuit.get(c.id.0.as_str()) {
                let m = p.mappings.iter().find(|m| m.net == net.trunc()).expect("mapping");
                assert_eq!(
                    (&m.circuit, m.class, m.cpu),
                    (&c.id, pc.class, u32::from(pc.queue) - 1)
                );
            }
        }
    }
    // HTB depth ≤ 8.
    assert!(max_depth(p) <= 8);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    // Structural invariants of any plan (see check_invariants), and determinism: the same input
    // gives the same plan.
    #[test]
    fn plans_are_well_formed_and_deterministic(c in case()) {
        let (config, net, circuits, f) = build(&c);
        let p = fresh(&config, &net, &circuits, f);
        check_invariants(&p, &circuits);
        prop_assert_eq!(&p, &fresh(&config, &net, &circuits, f));
        // Re-planning with its own identities changes nothing.
        let again = run(&config, &net, &circuits, f, &p.identities).expect("plan");
        prop_assert!(diff(&p, &again).is_empty());
    }

    // diff(p, p) is empty.
    #[test]
    fn diff_of_a_plan_with_itself_is_empty(c in case()) {
        let (config, net, circuits, f) = build(&c);
        let p = fresh(&config, &net, &circuits, f);
        prop_assert!(diff(&p, &p).is_empty());
    }

    // Applying diff(a, b) to a gives b's kernel state, for unrelated a and b (new network,
    // circuits, queue count), for b planned from a's identities, and for the full build.
    #[test]
    fn applying_the_diff_reaches_the_target(a in case(), b in case()) {
        let (config, net, circuits, f) = build(&a);
        let pa = fresh(&config, &net, &circuits, f);
        let (config_b, net_b, circuits_b, fb) = build(&Case { stick: a.stick, ..b });
        let pb = run(&config_b, &net_b, &circuits_b, fb, &pa.identities).expect("plan");
        check_invariants(&pb, &circuits_b);
        prop_assert_eq!(KernelView::of(&apply(&pa, &diff(&pa, &pb))), KernelView::of(&pb));
        prop_assert_eq!(KernelView::of(&apply(&Plan::empty(), &diff(&Plan::empty(), &pb))), KernelView::of(&pb));
    }

    // Adding one circuit yields a ChangeSet holding exactly that circuit's classes, leaves and
    // mappings, plus in-place rate changes of its ancestors (round-robin mode, minimums small
    // enough that nobody is squashed).
    #[test]
    fn adding_one_circuit_touches_only_that_circuit(c in case(), pick in any::<u64>()) {
        let c = Case { binpack: false, ..c };
        let (config, net, mut circuits, f) = build(&c);
        for x in circuits.iter_mut() { x.download_min = lqos_config::RateKbit(0); x.upload_min = lqos_config::RateKbit(0); }
        let a = fresh(&config, &net, &circuits, f);
        let mut extra = random_circuits(pick, &net, 10_000, 1);
        extra[0].download_min = lqos_config::RateKbit(0);
        extra[0].upload_min = lqos_config::RateKbit(0);
        let owner = Owner::Circuit(extra[0].id.clone());
        circuits.extend(extra);
        let b = run(&config, &net, &circuits, f, &a.identities).expect("plan");
        let cs = diff(&a, &b);
        prop_assert_eq!(cs.class_add.len(), 2);
        prop_assert!(cs.class_add.iter().all(|x| x.item.owner == owner));
        prop_assert!(cs.leaf_add.iter().all(|x| x.item.owner == owner));
        prop_assert!(cs.map_add.iter().all(|m| Owner::Circuit(m.circuit.clone()) == owner));
        prop_assert!(!cs.map_add.is_empty());
        prop_assert!(cs.class_del.is_empty() && cs.leaf_del.is_empty() && cs.map_del.is_empty());
        prop_assert!(cs.leaf_change.is_empty() && cs.htb_add.is_empty());
        // A node's guaranteed rate is what its subtree needs, so the new circuit's ancestors
        // may change their rate in place (and nothing else about them).
        for ch in &cs.class_change {
            prop_assert!(matches!(ch.item.owner, Owner::Node(_)), "{:?}", ch.item.owner);
            let before = a.interface(&ch.interface).and_then(|i| i.classes.iter().find(|x| x.id == ch.item.id));
            let before = before.expect("changed class existed");
            prop_assert_eq!((before.ceil, before.quantum, before.prio, before.parent), (ch.item.ceil, ch.item.quantum, ch.item.prio, ch.item.parent));
        }
        prop_assert_eq!(KernelView::of(&apply(&a, &cs)), KernelView::of(&b));
    }

    // Removing a site (and the circuits beneath) renumbers nothing else: in round-robin mode
    // every remaining node and circuit keeps its queue and minor. With bin-packing the removal
    // may trigger the hysteresis, which moves at most max(1, top-level nodes/100) top-level
    // subtrees; everything that stays on its queue keeps its minor.
    #[test]
    fn removing_a_site_renumbers_nothing_else(c in case(), pick in any::<u64>()) {
        let c = Case { sites: c.sites.max(2), ..c };
        let (config, net, circuits, f) = build(&c);
        let a = fresh(&config, &net, &circuits, f);
        let victim = (pick % net.nodes.len() as u64) as usize;
        let victim_name = net.nodes[victim].name.clone();
        let net2 = remove_subtree(&net, victim);
        let names: HashSet<&str> = net2.nodes.iter().map(|n| n.name.as_str()).collect();
        let circuits2: Vec<_> = circuits.iter().filter(|x| x.parent_node.as_deref().is_none_or(|p| names.contains(p))).cloned().collect();
        let b = run(&config, &net2, &circuits2, f, &a.identities).expect("plan");
        let mut moved_top = 0;
        for n in &b.nodes {
            if let Some(old) = a.identities.nodes.get(&n.key) {
                if old.queue == n.queue {
                    prop_assert_eq!(old.minor, n.class.minor, "node {} after removing {}", n.key, victim_name);
                } else {
                    prop_assert!(c.binpack, "node {} moved queue after removing {}", n.key, victim_name);
                    moved_top += usize::from(n.parent.is_none());
                }
            }
        }
        let tops = b.nodes.iter().filter(|n| n.parent.is_none() && !n.generated).count();
        prop_assert!(moved_top <= (tops / 100).max(1));
        for (k, id) in &b.identities.circuits {
            if let Some(old) = a.identities.circuits.get(k)
                && (old.queue == id.queue || !c.binpack)
            {
                prop_assert_eq!(old, id, "circuit {} after removing {}", k, victim_name);
            }
        }
    }

    // A circuit keeps its minor while it stays on its queue, whatever else changes (rates,
    // other circuits added or removed).
    #[test]
    fn a_circuit_keeps_its_minor_while_on_its_queue(c in case(), drop_every in 2usize..5, seed2 in any::<u64>()) {
        let (config, net, circuits, f) = build(&c);
        let a = fresh(&config, &net, &circuits, f);
        let mut next: Vec<_> = circuits.iter().enumerate().filter(|(i, _)| i % drop_every != 0).map(|(_, x)| x.clone()).collect();
        for x in next.iter_mut().step_by(3) { x.download_max = lqos_config::RateKbit(x.download_max.0 / 2 + 10); }
        next.extend(random_circuits(seed2, &net, 20_000, 30));
        let b = run(&config, &net, &next, f, &a.identities).expect("plan");
        for x in &b.circuits {
            if let Some(old) = a.identities.circuits.get(&x.id.0)
                && old.queue == x.queue
            {
                prop_assert_eq!(old.minor, x.class.minor, "{}", x.id);
            }
        }
    }
}

/// `net` without node `victim` and its subtree, re-indexed.
fn remove_subtree(net: &lqos_config::Network, victim: usize) -> lqos_config::Network {
    fn spec(net: &lqos_config::Network, i: usize, victim: usize) -> Option<NodeSpec> {
        if i == victim {
            return None;
        }
        let n = &net.nodes[i];
        Some(NodeSpec {
            name: n.name.clone(),
            id: n.id.clone(),
            down: n.download,
            up: n.upload,
            down_min: n.download_min,
            up_min: n.upload_min,
            is_virtual: n.is_virtual,
            children: n.children.iter().filter_map(|c| spec(net, *c, victim)).collect(),
        })
    }
    network(net.roots.iter().filter_map(|r| spec(net, *r, victim)).collect())
}

/// Any u64 rate, including 0, u64::MAX and what 1e300 Mbps becomes.
fn any_rate() -> impl Strategy<Value = lqos_config::RateKbit> {
    prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        Just(lqos_config::RateKbit::from_mbps(1e300).0),
        any::<u64>(),
        0u64..10_000_000,
    ]
    .prop_map(lqos_config::RateKbit)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    // No input makes the planner panic or wrap (issue 9): arbitrary link capacities, node
    // rates and minimums, circuit rates (min > max included), random trees and both queue
    // modes. Any result is fine; Ok plans keep rate ≤ ceil ≤ 1 Tbit/s.
    #[test]
    fn arbitrary_rates_and_trees_never_panic(
        c in case(),
        links in (any_rate(), any_rate(), any_rate(), any_rate()),
        node_rates in proptest::collection::vec((any_rate(), any_rate(), proptest::option::of(any_rate())), 0..40),
        circuit_rates in proptest::collection::vec((any_rate(), any_rate(), any_rate(), any_rate()), 0..150),
    ) {
        let (mut config, mut net, mut circuits, f) = build(&c);
        config.queues.downlink = links.0;
        config.queues.uplink = links.1;
        config.queues.generated_pn_download = links.2;
        config.queues.generated_pn_upload = links.3;
        for (n, (d, u, m)) in net.nodes.iter_mut().zip(node_rates) {
            n.download = Some(d);
            n.upload = Some(u);
            n.download_min = m;
        }
        for (x, (dmin, umin, dmax, umax)) in circuits.iter_mut().zip(circuit_rates) {
            x.download_min = dmin;
            x.upload_min = umin;
            x.download_max = dmax;
            x.upload_max = umax;
        }
        if let Ok(p) = run(&config, &net, &circuits, f, &Identities::default()) {
            for i in &p.interfaces {
                for cl in &i.classes {
                    prop_assert!(cl.rate <= cl.ceil && cl.ceil.0 <= lqos_config::MAX_RATE_KBIT);
                }
            }
            let again = run(&config, &net, &circuits, f, &p.identities).expect("re-plan");
            prop_assert!(diff(&p, &again).is_empty());
        }
    }
}
