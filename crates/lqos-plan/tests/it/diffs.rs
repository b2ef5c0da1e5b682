//! diff(): what each kind of edit produces.

use std::net::Ipv4Addr;

use lqos_config::{SqmKind, SqmOverride};
use lqos_plan::testkit::*;
use lqos_plan::*;

use crate::support::{fresh, run};

fn base() -> (lqos_config::Config, lqos_config::Network, Vec<lqos_config::Circuit>) {
    let net = network(vec![
        site("S1", 1000, 1000, vec![site("AP", 500, 500, vec![])]),
        site("S2", 800, 800, vec![]),
    ]);
    let circuits = (0..10u32)
        .map(|i| {
            circuit(
                &format!("c{i}"),
                "x",
                Some(if i % 2 == 0 { "AP" } else { "S2" }),
                50,
                10,
                nth_ipv4(i),
            )
        })
        .collect();
    (config_bridge(1000, 1000), net, circuits)
}

#[test]
fn rate_change_is_an_in_place_class_change() {
    let (config, net, mut circuits) = base();
    let a = fresh(&config, &net, &circuits, facts(2));
    circuits[3].download_max = mbps(75);
    let b = run(&config, &net, &circuits, facts(2), &a.identities).expect("plan");
    let cs = diff(&a, &b);
    assert_eq!(cs.class_change.len(), 1);
    assert_eq!(cs.class_change[0].item.owner, Owner::Circuit(circuits[3].id.clone()));
    assert!(
        cs.class_add.is_empty()
            && cs.class_del.is_empty()
            && cs.leaf_add.is_empty()
            && cs.map_add.is_empty()
    );
    let tc = render_changeset_tc(&cs);
    assert!(tc.starts_with("class change dev eth1 parent 2:4 classid 2:"), "{tc}");
}

#[test]
fn moving_a_circuit_rebuilds_only_it() {
    let (config, net, mut circuits) = base();
    let a = fresh(&config, &net, &circuits, facts(2));
    circuits[2].parent_node = Some("S1".into()); // same queue as AP: keeps its minor, new parent
    let b = run(&config, &net, &circuits, facts(2), &a.identities).expect("plan");
    let cs = diff(&a, &b);
    let owner = Owner::Circuit(circuits[2].id.clone());
    assert_eq!(cs.rebuilt, std::slice::from_ref(&owner));
    assert_eq!(cs.class_del.len(), 2);
    assert_eq!(cs.class_add.len(), 2);
    assert_eq!(cs.leaf_del.len(), 2);
    assert_eq!(cs.leaf_add.len(), 2);
    assert!(cs.class_add.iter().all(|c| c.item.owner == owner));
    assert!(cs.map_add.is_empty(), "same class id, mapping unchanged");
    assert_eq!(KernelView::of(&apply(&a, &cs)), KernelView::of(&b));
}

#[test]
fn sqm_kind_change_replaces_the_leaf_and_param_change_changes_it() {
    let (config, net, mut circuits) = base();
    let a = fresh(&config, &net, &circuits, facts(2));
    circuits[0].sqm = Some(SqmOverride::kinds(Some(SqmKind::FqCodel), None));
    let b = run(&config, &net, &circuits, facts(2), &a.identities).expect("plan");
    let cs = diff(&a, &b);
    assert_eq!((cs.leaf_del.len(), cs.leaf_add.len(), cs.leaf_change.len()), (1, 1, 0));
    assert_eq!(cs.leaf_add[0].item.qdisc.kind(), "fq_codel");
    assert!(cs.class_add.is_empty() && cs.class_del.is_empty());
    // 10 → 3 Mbps upload: the CAKE leaf gains rtt 140 ms (a parameter set, so `change`).
    circuits[1].upload_max = mbps(3);
    let c = run(&config, &net, &circuits, facts(2), &b.identities).expect("plan");
    let cs = diff(&b, &c);
    assert_eq!(
        (cs.leaf_del.len(), cs.leaf_add.len(), cs.leaf_change.len(), cs.class_change.len()),
        (0, 0, 1, 1)
    );
    assert!(render_changeset_tc(&cs).contains("cake diffserv4 rtt 140000us"));
    // And back: the rtt would have to be unset, which tc cannot say → delete + add.
    let cs = diff(&c, &b);
    assert_eq!((cs.leaf_del.len(), cs.leaf_add.len(), cs.leaf_change.len()), (1, 1, 0));
}

#[test]
fn changing_an_address_touches_only_the_mapping() {
    let (config, net, mut circuits) = base();
    let a = fresh(&config, &net, &circuits, facts(2));
    circuits[4].devices[0].ipv4 = vec![ipnet::Ipv4Net::from(Ipv4Addr::new(198, 18, 0, 1))];
    let b = run(&config, &net, &circuits, facts(2), &a.identities).expect("plan");
    let cs = diff(&a, &b);
    assert_eq!((cs.map_del.len(), cs.map_add.len()), (1, 1));
    assert!(cs.class_add.is_empty() && cs.class_change.is_empty() && cs.leaf_add.is_empty());
    assert_eq!(render_changeset_tc(&cs), "");
}

#[test]
fn first_build_is_diff_from_empty() {
    let (config, net, circuits) = base();
    let p = fresh(&config, &net, &circuits, facts(2));
    let cs = diff(&Plan::empty(), &p);
    assert_eq!(cs.mq_add, ["eth1", "eth0"]);
    assert_eq!(cs.class_add.len(), p.interfaces.iter().map(|i| i.classes.len()).sum::<usize>());
    assert_eq!(KernelView::of(&apply(&Plan::empty(), &cs)), KernelView::of(&p));
}

/// Issue 9: changing `uplink/downlink_bandwidth_mbps` changes classes in place; no HTB qdisc
/// is deleted and rebuilt (the kernel cannot change an HTB's r2q, and every class carries its
/// own quantum, so the new quanta are in-place changes).
#[test]
fn changing_the_link_capacity_changes_classes_in_place() {
    let (config, net, circuits) = base();
    let a = fresh(&config, &net, &circuits, facts(2));
    let faster = config_bridge(1150, 2000);
    let b = run(&faster, &net, &circuits, facts(2), &a.identities).expect("plan");
    assert_ne!(a.interfaces[0].htbs[0].r2q, b.interfaces[0].htbs[0].r2q, "r2q follows the link");
    let cs = diff(&a, &b);
    assert!(cs.htb_del.is_empty() && cs.htb_add.is_empty(), "{:?}", cs.htb_del);
    assert!(cs.class_del.is_empty() && cs.class_add.is_empty());
    assert!(cs.leaf_del.is_empty() && cs.leaf_add.is_empty());
    assert!(cs.map_del.is_empty() && cs.map_add.is_empty());
    let root = |p: &Plan| {
        p.interfaces[0]
            .classes
            .iter()
            .find(|c| c.owner == Owner::QueueRoot(1))
            .map(|c| (c.rate, c.quantum))
            .expect("k:1")
    };
    assert!(cs.class_change.iter().any(|c| c.item.owner == Owner::QueueRoot(1)));
    assert_eq!(root(&b), (mbps(1150), 59_995));
    assert_eq!(b.identities, a.identities, "no renumbering");
    assert_eq!(KernelView::of(&apply(&a, &cs)), KernelView::of(&b));
}
