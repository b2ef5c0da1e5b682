//! Planner rules: the worked example (reference §4.11) under lqos's fixed rules, stick layout,
//! generated parents, virtual nodes, depth, rates, errors, observe mode, rendering.

use std::net::Ipv4Addr;

use lqos_config::{LeafQdisc, QueueMode, RateKbit, SqmKind, SqmOverride};
use lqos_plan::testkit::*;
use lqos_plan::*;

use crate::support::{fresh, run};

fn class<'a>(p: &'a Plan, iface: &str, owner: &Owner, dir: Direction) -> &'a HtbClass {
    p.interface(iface)
        .and_then(|i| i.classes.iter().find(|c| &c.owner == owner && c.direction == dir))
        .unwrap_or_else(|| panic!("no {dir:?} class for {owner} on {iface}"))
}

fn node(k: &str) -> Owner {
    Owner::Node(k.into())
}

fn circ(k: &str) -> Owner {
    Owner::Circuit(lqos_config::CircuitId(k.into()))
}

fn example() -> (lqos_config::Config, lqos_config::Network, Vec<lqos_config::Circuit>) {
    let config = config_bridge(1000, 1000);
    let net = network(vec![
        site("Site_A", 1000, 1000, vec![site("AP_1", 300, 100, vec![])]),
        site("Site_B", 200, 200, vec![]),
    ]);
    let circuits = vec![
        circuit("c1", "Alice", Some("AP_1"), 100, 20, Ipv4Addr::new(100, 64, 0, 1)),
        circuit("c2", "Bob", Some("AP_1"), 50, 10, Ipv4Addr::new(100, 64, 0, 2)),
        circuit("c3", "Carol", Some("Site_B"), 100, 100, Ipv4Addr::new(100, 64, 0, 3)),
        circuit("c4", "Dave", None, 25, 1, Ipv4Addr::new(100, 64, 0, 4)),
    ];
    (config, net, circuits)
}

#[test]
fn worked_example_with_fixed_rules() {
    let (config, net, circuits) = example();
    let p = fresh(&config, &net, &circuits, facts(2));
    assert_eq!((p.queues, p.stick_offset), (2, 0));
    // Download on to_network (eth1), upload on to_internet (eth0).
    assert_eq!(p.interfaces.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["eth1", "eth0"]);

    // Queues: generated PN k pinned to queue k; real top-level nodes round-robin in file order.
    // Minors: lowest free per queue, nodes in tree order then circuits in input order.
    let gpn1 = generated_pn_key(1);
    let c = |o: &Owner| class(&p, "eth1", o, Direction::Download).id;
    assert_eq!(c(&node(&gpn1)), ClassId::new(1, 3));
    assert_eq!(c(&node(&generated_pn_key(2))), ClassId::new(2, 3));
    assert_eq!(c(&node("Site_A")), ClassId::new(1, 4));
    assert_eq!(c(&node("Site_A/AP_1")), ClassId::new(1, 5));
    assert_eq!(c(&node("Site_B")), ClassId::new(2, 4));
    assert_eq!(c(&circ("c1")), ClassId::new(1, 6));
    assert_eq!(c(&circ("c2")), ClassId::new(1, 7));
    assert_eq!(c(&circ("c3")), ClassId::new(2, 5));
    assert_eq!(c(&circ("c4")), ClassId::new(1, 8)); // under Generated_PN_1

    // Top-level nodes hang under k:1 (capacity enforced), not under the qdisc.
    let site_a = class(&p, "eth1", &node("Site_A"), Direction::Download);
    assert_eq!(site_a.parent, ClassParent::Class(ClassId::new(1, 1)));
    let root = class(&p, "eth1", &Owner::QueueRoot(1), Direction::Download);
    assert_eq!(
        (root.rate, root.ceil, root.parent),
        (mbps(1000), mbps(1000), ClassParent::Qdisc(1))
    );
    let def = class(&p, "eth1", &Owner::QueueDefault(1), Direction::Download);
    assert_eq!((def.rate, def.ceil, def.prio), (mbps(250), mbps(1000), 5));

    // Rates: a node is guaranteed what its subtree needs (Σ of the minimums beneath, capped by
    // its ceil): Site_A holds c1 and c2 (1 Mbps each) → 2 Mbps; the empty-ish GPN1 (c4, 1
    // Mbps) takes 1 Mbps, not half of the queue.
    assert_eq!(
        (site_a.rate, site_a.ceil, site_a.prio, site_a.quantum),
        (mbps(2), mbps(1000), 3, 59_980)
    );
    let ap_up = class(&p, "eth0", &node("Site_A/AP_1"), Direction::Upload);
    assert_eq!((ap_up.rate, ap_up.ceil), (mbps(2), mbps(100)));
    // Queue 2: the empty GPN2 needs the 10 kbit floor and no longer halves Site_B's share;
    // Site_B needs c3's 1 Mbps.
    let site_b = class(&p, "eth1", &node("Site_B"), Direction::Download);
    assert_eq!((site_b.rate, site_b.ceil), (mbps(1), mbps(200)));
    let gpn2 = class(&p, "eth1", &node(&generated_pn_key(2)), Direction::Download);
    assert_eq!(gpn2.rate, RateKbit(10));
    let c1 = class(&p, "eth1", &circ("c1"), Direction::Download);
    assert_eq!(
        (c1.rate, c1.ceil, c1.quantum, c1.parent),
        (mbps(1), mbps(100), 5998, ClassParent::Class(ClassId::new(1, 5)))
    );
    let c1_up = class(&p, "eth0", &circ("c1"), Direction::Upload);
    assert_eq!(
        (c1_up.id, c1_up.rate, c1_up.ceil, c1_up.quantum),
        (ClassId::new(1, 6), mbps(1), mbps(20), 1522)
    );

    // Leaves: cake diffserv4 both ways; c4's 1 Mbps upload gets rtt 300 ms.
    let leaf = |iface: &str, id: ClassId| {
        p.interface(iface).and_then(|i| i.leaves.iter().find(|l| l.parent == id)).cloned()
    };
    let l = leaf("eth1", ClassId::new(1, 6)).expect("c1 download leaf");
    assert!(matches!(&l.qdisc, LeafQdisc::Cake(c) if c.rtt_us.is_none()));
    let l = leaf("eth0", ClassId::new(1, 8)).expect("c4 upload leaf");
    assert!(matches!(&l.qdisc, LeafQdisc::Cake(c) if c.rtt_us == Some(300_000)));

    // Mappings.
    let m: Vec<_> = p
        .mappings
        .iter()
        .map(|m| (m.net.to_string(), m.cpu, m.class, m.circuit.0.as_str()))
        .collect();
    assert_eq!(
        m,
        [
            ("100.64.0.1/32".to_string(), 0, ClassId::new(1, 6), "c1"),
            ("100.64.0.2/32".to_string(), 0, ClassId::new(1, 7), "c2"),
            ("100.64.0.3/32".to_string(), 1, ClassId::new(2, 5), "c3"),
            ("100.64.0.4/32".to_string(), 0, ClassId::new(1, 8), "c4"),
        ]
    );
    assert_eq!(p.mappings[0].circuit_hash, circuit_hash("c1"));
    assert_eq!(p.mappings[0].device_hash, device_hash("c1-d"));

    // Identities persisted for the next run.
    assert_eq!(p.identities.circuits["c1"].queue, 1);
    assert_eq!(p.identities.circuits["c1"].minor, 6);
    assert!(p.identities.circuits["c1"].down_leaf.is_some_and(|h| h >= 0x100));
    assert_eq!(p.identities.nodes["Site_A/AP_1"].minor, 5);

    let s = PlanSummary::of(&p);
    assert_eq!((s.queues, s.circuits, s.nodes), (2, 4, 5));
    assert_eq!(s.per_queue[0].circuits, 3);
    assert_eq!(s.per_queue[1].download_max_kbit, 100_000);
}

#[test]
fn worked_example_renders_tc_batch() {
    let (config, net, circuits) = example();
    let p = fresh(&config, &net, &circuits, facts(2));
    let tc = render_plan_tc(&p);
    let lines: Vec<&str> = tc.lines().collect();
    assert_eq!(lines[0], "qdisc add dev eth1 root handle 7fff: mq");
    assert_eq!(lines[1], "qdisc add dev eth0 root handle 7fff: mq");
    assert!(lines.contains(&"qdisc add dev eth1 parent 7fff:1 handle 1: htb default 2 r2q 2084"));
    assert!(lines.contains(&"class add dev eth1 parent 1: classid 1:1 htb rate 1000000kbit ceil 1000000kbit prio 0 quantum 59980"));
    assert!(lines.contains(&"class add dev eth1 parent 1:5 classid 1:6 htb rate 1000kbit ceil 100000kbit prio 3 quantum 5998"));
    assert!(lines.iter().any(|l| l.starts_with("qdisc add dev eth1 parent 1:6 handle ")
        && l.ends_with(": cake diffserv4")));
    // Parents are created before children.
    let pos = |needle: &str| lines.iter().position(|l| l.contains(needle)).expect(needle);
    assert!(pos("classid 1:5 ") < pos("classid 1:6 "));
    assert!(pos("classid 1:1 ") < pos("classid 1:4 "));
}

#[test]
fn stick_halves_queues_offsets_upload_majors_and_shapes_upload_leaves() {
    let (mut config, net, circuits) = example();
    config.interfaces = config_stick(1000, 1000).interfaces;
    let p = fresh(&config, &net, &circuits, facts(4));
    assert_eq!((p.queues, p.stick_offset), (2, 2));
    assert_eq!(p.interfaces.len(), 1);
    let i = &p.interfaces[0];
    assert_eq!(i.name, "eth0");
    assert_eq!(
        i.htbs.iter().map(|h| (h.mq_slot, h.major)).collect::<Vec<_>>(),
        [(1, 1), (2, 2), (3, 3), (4, 4)]
    );
    assert_eq!(class(&p, "eth0", &node("Site_A"), Direction::Download).id, ClassId::new(1, 4));
    assert_eq!(class(&p, "eth0", &node("Site_A"), Direction::Upload).id, ClassId::new(3, 4));
    assert_eq!(
        class(&p, "eth0", &node("Site_A"), Direction::Upload).parent,
        ClassParent::Class(ClassId::new(3, 1))
    );
    let c1 = p.circuits.iter().find(|c| c.id.0 == "c1").expect("c1");
    assert_eq!((c1.class, c1.up_class), (ClassId::new(1, 6), ClassId::new(3, 6)));
    // The mapping is stored once (download); upload is derived with the offset.
    assert_eq!(p.mappings.len(), 4);
    assert_eq!(p.mappings[0].class, ClassId::new(1, 6));
    // Both directions get a leaf (original bug §8.11), with distinct handles on the one NIC.
    let leaves: Vec<_> = i.leaves.iter().filter(|l| l.owner == circ("c1")).collect();
    assert_eq!(leaves.len(), 2);
    assert_ne!(leaves[0].handle, leaves[1].handle);
    let mut handles: Vec<u16> = i.leaves.iter().map(|l| l.handle).collect();
    handles.sort();
    handles.dedup();
    assert_eq!(handles.len(), i.leaves.len());
    assert!(handles.iter().all(|h| *h > 4 && *h != MQ_MAJOR));
}

#[test]
fn queue_count_rules() {
    let (mut config, net, circuits) = example();
    let f = HostFacts { cpus: 8, download_tx_queues: 16, upload_tx_queues: 4 };
    assert_eq!(fresh(&config, &net, &circuits, f).queues, 4);
    config.queues.override_available_queues = Some(3);
    assert_eq!(fresh(&config, &net, &circuits, f).queues, 3);
    config.queues.override_available_queues = Some(64); // still capped by the CPUs
    assert_eq!(fresh(&config, &net, &circuits, f).queues, 8);
    config.queues.override_available_queues = Some(0); // 0 = auto
    assert_eq!(fresh(&config, &net, &circuits, f).queues, 4);
    config.interfaces = config_stick(1000, 1000).interfaces;
    let e = run(&config, &net, &circuits, facts(1), &Identities::default()).expect_err("must fail");
    assert!(matches!(e, PlanError::TooFewQueues { queues: 0, stick: true, .. }), "{e}");
    config.interfaces = None;
    assert_eq!(
        run(&config, &net, &circuits, facts(4), &Identities::default()).expect_err("must fail"),
        PlanError::NoInterfaces
    );
}

#[test]
fn generated_parents_are_pinned_to_their_own_queue() {
    let config = config_bridge(10_000, 10_000);
    let net = network(vec![]); // flat
    let circuits: Vec<_> = (0..24)
        .map(|i| circuit(&format!("c{i}"), "x", Some("ignored in flat mode"), 10, 10, nth_ipv4(i)))
        .collect();
    let p = fresh(&config, &net, &circuits, facts(12));
    for k in 1..=12u16 {
        let n = p.nodes.iter().find(|n| n.key == generated_pn_key(k)).expect("pn");
        assert_eq!((n.queue, n.name.clone(), n.generated), (k, format!("Generated_PN_{k}"), true));
    }
    // Round-robin over the PNs in input order: circuit i → PN (i mod 12) + 1.
    for (i, c) in p.circuits.iter().enumerate() {
        assert_eq!(c.queue as usize, i % 12 + 1, "{}", c.id);
        assert_eq!(c.parent, generated_pn_key(c.queue));
    }
}

#[test]
fn virtual_nodes_promote_children_and_circuits() {
    let config = config_bridge(1000, 1000);
    let net = network(vec![
        site(
            "Site_1",
            1000,
            1000,
            vec![virtual_node("Town", vec![site("AP_9", 120, 120, vec![])])],
        ),
        virtual_node("Region", vec![site("Site_2", 100, 100, vec![])]),
    ]);
    let circuits = vec![
        circuit("a", "a", Some("Town"), 10, 10, nth_ipv4(1)),
        circuit("b", "b", Some("AP_9"), 10, 10, nth_ipv4(2)),
        circuit("c", "c", Some("Region"), 10, 10, nth_ipv4(3)),
        circuit("d", "d", Some("Nowhere"), 10, 10, nth_ipv4(4)),
    ];
    let p = fresh(&config, &net, &circuits, facts(2));
    let keys: Vec<_> = p
        .nodes
        .iter()
        .filter(|n| !n.generated)
        .map(|n| (n.key.as_str(), n.parent.as_deref()))
        .collect();
    // Keys are declared paths (virtual names included); classes skip the virtual nodes.
    assert_eq!(
        keys,
        [("Site_1", None), ("Site_1/Town/AP_9", Some("Site_1")), ("Region/Site_2", None)]
    );
    let parent_of = |id: &str| p.circuits.iter().find(|c| c.id.0 == id).map(|c| c.parent.clone());
    assert_eq!(parent_of("a").as_deref(), Some("Site_1"));
    assert_eq!(parent_of("b").as_deref(), Some("Site_1/Town/AP_9"));
    assert!(parent_of("c").is_some_and(|k| k.starts_with("libreqos:generated:pn:")));
    assert_eq!(parent_of("d"), None); // unknown parent: unshaped, warned
    assert!(p.warnings.iter().any(|w| w.owner == circ("d")));
    assert!(p.mappings.iter().all(|m| m.circuit.0 != "d"));
}

#[test]
fn deep_trees_are_merged_to_keep_htb_depth_at_most_8() {
    let mut spec = site("L8", 10, 10, vec![]);
    for l in (1..8).rev() {
        spec = site(&format!("L{l}"), 10, 10, vec![spec]);
    }
    let net = network(vec![spec]);
    let circuits = vec![circuit("deep", "x", Some("L8"), 5, 5, nth_ipv4(1))];
    let p = fresh(&config_bridge(1000, 1000), &net, &circuits, facts(1));
    assert_eq!(p.nodes.iter().filter(|n| !n.generated).count(), 6);
    assert_eq!(p.warnings.iter().filter(|w| w.message.contains("deeper than")).count(), 2);
    let c = p.circuits.iter().find(|c| c.id.0 == "deep").expect("deep");
    assert_eq!(c.parent, "L1/L2/L3/L4/L5/L6");
    assert_eq!(crate::properties::max_depth(&p), 8);
}

#[test]
fn rates_inherit_clamp_and_squash() {
    let config = config_bridge(1000, 500);
    let mut ap = site("AP", 0, 0, vec![]); // missing rates inherit
    ap.down = None;
    ap.up = None;
    let net = network(vec![site("Big", 2000, 100, vec![ap]), site("Small", 10, 10, vec![])]);
    let mut circuits: Vec<_> =
        (0..20).map(|i| circuit(&format!("s{i}"), "x", Some("Small"), 5, 5, nth_ipv4(i))).collect();
    circuits.push(circuit("huge", "x", Some("AP"), 5000, 50, nth_ipv4(99)));
    let p = fresh(&config, &net, &circuits, facts(2));
    let big = class(&p, "eth1", &node("Big"), Direction::Download);
    assert_eq!(big.ceil, mbps(1000)); // clamped to the link
    assert!(p.warnings.iter().any(|w| w.owner == node("Big")));
    let ap_c = class(&p, "eth0", &node("Big/AP"), Direction::Upload);
    assert_eq!(ap_c.ceil, mbps(100)); // inherited from Big
    let huge = class(&p, "eth1", &circ("huge"), Direction::Download);
    assert_eq!(huge.ceil, mbps(1000)); // capped to the parent's ceil
    assert!(p.warnings.iter().any(|w| w.owner == circ("huge")));
    // Small needs its 20 × 1 Mbps minimums, capped by its 10 Mbps ceil; the empty
    // Generated_PN_2 on the same queue needs only the 10 kbit floor, so Small gets all 10.
    let small = class(&p, "eth1", &node("Small"), Direction::Download);
    assert_eq!((small.rate, small.ceil), (mbps(10), mbps(10)));
    let gpn2 = class(&p, "eth1", &node(&generated_pn_key(2)), Direction::Download);
    assert_eq!(gpn2.rate, RateKbit(10));
    // 20 × 1 Mbps minimums under it: scaled to 500 kbit each, warned.
    let s0 = class(&p, "eth1", &circ("s0"), Direction::Download);
    assert_eq!((s0.rate, s0.ceil), (RateKbit(500), mbps(5)));
    assert!(p.warnings.iter().any(|w| w.owner == node("Small") && w.message.contains("scaled")));
    // Messages speak Mbps and name the direction.
    let said =
        |o: &Owner, text: &str| p.warnings.iter().any(|w| &w.owner == o && w.message == text);
    assert!(said(
        &node("Big"),
        "Download rate 2000 Mbps exceeds its parent's ceil 1000 Mbps; capped"
    ));
    assert!(said(
        &circ("huge"),
        "Download max 5000 Mbps exceeds parent \"AP\"'s ceil 1000 Mbps; capped"
    ));
    assert!(said(
        &node("Small"),
        "Download: sum of guaranteed rates beneath (20 Mbps, circuits 20 Mbps) exceeds the \
         node's rate 10 Mbps; scaled down proportionally"
    ));
    assert!(p.warnings.iter().all(|w| !w.message.contains("kbit")), "{:?}", p.warnings);
}

#[test]
fn plan_error_rates_are_mbps() {
    let e = PlanError::CapacityTooLow { direction: Direction::Upload, kbit: 5, min: 10 };
    assert_eq!(e.to_string(), "Upload link capacity 0.005 Mbps is below the minimum of 0.01 Mbps");
}

#[test]
fn sqm_overrides_reach_the_leaves() {
    let config = config_bridge(10_000, 10_000);
    let net = network(vec![]);
    let mut fast = circuit("fast", "x", None, 2000, 2000, nth_ipv4(1));
    fast.sqm = Some(SqmOverride::kinds(Some(SqmKind::Cake), None));
    let mut bare = circuit("bare", "x", None, 50, 50, nth_ipv4(2));
    bare.sqm = Some(SqmOverride::kinds(Some(SqmKind::None), Some(SqmKind::None)));
    let p = fresh(&config, &net, &[fast, bare], facts(1));
    let leaves = |o: &Owner, iface: &str| {
        p.interface(iface).map(|i| {
            i.leaves.iter().filter(|l| &l.owner == o).map(|l| l.qdisc.kind()).collect::<Vec<_>>()
        })
    };
    assert_eq!(leaves(&circ("fast"), "eth1"), Some(vec!["cake"]));
    assert_eq!(leaves(&circ("fast"), "eth0"), Some(vec!["fq_codel"]));
    assert_eq!(leaves(&circ("bare"), "eth1"), Some(vec![]));
    assert_eq!(p.identities.circuits["bare"].down_leaf, None);
}

#[test]
fn minor_overflow_names_the_queue() {
    let mut config = config_bridge(100_000, 100_000);
    config.queues.default_sqm = lqos_config::DefaultSqm { tokens: "none".into(), leaf: None };
    let circuits: Vec<_> =
        (0..65_533).map(|i| circuit(&format!("c{i}"), "x", None, 1, 1, nth_ipv4(i))).collect();
    let e = run(&config, &network(vec![]), &circuits, facts(1), &Identities::default())
        .expect_err("must fail");
    // 65,533 circuits + Generated_PN_1 on queue 1; minors 3..=0xFFFE hold 65,532.
    assert_eq!(e, PlanError::MinorOverflow { queue: 1, count: 65_534, max: 65_532 });
    assert!(e.to_string().contains("queue 1"));
}

#[test]
fn leaf_handle_overflow_is_an_error_not_a_collision() {
    let config = config_bridge(100_000, 100_000);
    let circuits: Vec<_> =
        (0..66_000).map(|i| circuit(&format!("c{i}"), "x", None, 1, 1, nth_ipv4(i))).collect();
    let e = run(&config, &network(vec![]), &circuits, facts(2), &Identities::default())
        .expect_err("must fail");
    assert!(
        matches!(&e, PlanError::LeafHandleOverflow { interface, count: 66_000, .. } if interface == "eth1"),
        "{e}"
    );
}

#[test]
fn observe_mode_keeps_only_the_roots_and_the_identities() {
    let (mut config, net, circuits) = example();
    let shaped = fresh(&config, &net, &circuits, facts(2));
    config.queues.queue_mode = QueueMode::Observe;
    let p = run(&config, &net, &circuits, facts(2), &shaped.identities).expect("plan");
    assert!(p.observe_only);
    assert!(
        p.interfaces
            .iter()
            .all(|i| i.htbs.is_empty() && i.classes.is_empty() && i.leaves.is_empty())
    );
    assert!(p.mappings.is_empty());
    assert_eq!(p.identities, shaped.identities);
    assert_eq!(
        render_plan_tc(&p),
        "qdisc add dev eth1 root handle 7fff: mq\nqdisc add dev eth0 root handle 7fff: mq\n"
    );
    // Observe → shape adds everything below the kept roots; shape → observe removes the HTBs.
    let back = diff(&p, &shaped);
    assert!(back.mq_add.is_empty() && back.htb_add.len() == 4 && back.map_add.len() == 4);
    let away = diff(&shaped, &p);
    assert_eq!((away.htb_del.len(), away.class_del.len(), away.map_del.len()), (4, 0, 4));
}

#[test]
fn binpacking_spreads_weight_and_keeps_previous_queues_within_hysteresis() {
    let mut config = config_bridge(10_000, 10_000);
    config.queues.use_binpacking = true;
    let net = network(vec![
        site("A", 5000, 5000, vec![]),
        site("B", 5000, 5000, vec![]),
        site("C", 5000, 5000, vec![]),
        site("D", 5000, 5000, vec![]),
    ]);
    let mut circuits = Vec::new();
    for (s, n) in [("A", 40), ("B", 30), ("C", 20), ("D", 10)] {
        for i in 0..n {
            circuits.push(circuit(
                &format!("{s}{i}"),
                "x",
                Some(s),
                100,
                10,
                nth_ipv4(circuits.len() as u32),
            ));
        }
    }
    let p = fresh(&config, &net, &circuits, facts(2));
    let q = |p: &Plan, k: &str| p.nodes.iter().find(|n| n.key == k).map(|n| n.queue);
    // Heaviest first onto the lightest queue: A→1, B→2, C→2, D→1 (loads 50/50).
    assert_eq!(
        [q(&p, "A"), q(&p, "B"), q(&p, "C"), q(&p, "D")],
        [Some(1), Some(2), Some(2), Some(1)]
    );
    // Growing C a little stays within the hysteresis: nobody moves.
    for i in 0..5 {
        circuits.push(circuit(&format!("Cx{i}"), "x", Some("C"), 100, 10, nth_ipv4(500 + i)));
    }
    let p2 = run(&config, &net, &circuits, facts(2), &p.identities).expect("plan");
    assert_eq!(
        [q(&p2, "A"), q(&p2, "B"), q(&p2, "C"), q(&p2, "D")],
        [Some(1), Some(2), Some(2), Some(1)]
    );
    // Making queue 2 far heavier than the mean moves one node to queue 1.
    for i in 0..80 {
        circuits.push(circuit(&format!("By{i}"), "x", Some("B"), 100, 10, nth_ipv4(600 + i)));
    }
    let p3 = run(&config, &net, &circuits, facts(2), &p2.identities).expect("plan");
    assert_eq!(
        [q(&p3, "A"), q(&p3, "B"), q(&p3, "C"), q(&p3, "D")],
        [Some(1), Some(2), Some(1), Some(1)]
    );
    let cs = diff(&p2, &p3);
    assert_eq!(cs.rebuilt, [node("C")]);
}

/// Issue 9: LibreQoS's example circuit 10011 hangs next to child nodes (AP_A, Site_3) under
/// Site_1. A node is guaranteed what its subtree needs, so 10011 keeps its 1 Mbps minimum
/// instead of being squashed to 499 kbit by siblings that "wanted" their whole ceilings.
#[test]
fn circuit_next_to_child_nodes_keeps_its_minimum() {
    let net = network(vec![
        site(
            "Site_1",
            1000,
            1000,
            vec![
                site("AP_A", 500, 500, vec![]),
                site("Site_3", 500, 500, vec![site("PoP_5", 200, 200, vec![])]),
            ],
        ),
        site("Site_2", 500, 500, vec![site("AP_1", 150, 150, vec![])]),
    ]);
    let mut circuits = vec![
        circuit("10001", "a", Some("AP_A"), 155, 20, nth_ipv4(1)),
        circuit("10003", "b", Some("PoP_5"), 10, 5, nth_ipv4(2)),
        circuit("10011", "c", Some("Site_1"), 105, 18, nth_ipv4(3)),
        circuit("10007", "d", Some("AP_1"), 25, 10, nth_ipv4(4)),
    ];
    circuits[1].download_min = RateKbit(1250);
    let p = fresh(&config_bridge(1000, 1000), &net, &circuits, facts(1));
    let c = class(&p, "eth1", &circ("10011"), Direction::Download);
    assert_eq!(c.rate, mbps(1), "10011 keeps its CSV minimum");
    // Site_1 needs 1 (10001) + 1.25 (10003) + 1 (10011) Mbps; the one empty generated PN on
    // the queue needs 10 kbit and halves nobody.
    let s1 = class(&p, "eth1", &node("Site_1"), Direction::Download);
    assert_eq!(s1.rate, RateKbit(3250));
    let gpn = class(&p, "eth1", &node(&generated_pn_key(1)), Direction::Download);
    assert_eq!(gpn.rate, RateKbit(10));
    assert!(p.warnings.iter().all(|w| !w.message.contains("scaled")), "{:?}", p.warnings);
}

/// A plan made from scratch is balanced in one run (nodes placed by the run move freely), so
/// planning the same inputs again changes nothing; nodes that kept their queue from the last
/// plan still move at most `max(1, nodes/100)` per run. (Found by the property test: one
/// capped move per run made every re-plan of an unbalanced new tree move another node.)
#[test]
fn binpacking_balances_a_new_tree_in_one_run_and_replanning_moves_nothing() {
    let mut config = config_bridge(10_000, 10_000);
    config.queues.use_binpacking = true;
    // Twelve sites of 100 Mbps each spread 6/6; then an unparented 1 Gbps circuit lands on
    // queue 1 (1.6 vs 0.6 Gbps of weight): three sites must move to get within 25 % of the
    // mean, more than the one move per run allowed for nodes that kept their queue.
    let sites: Vec<_> = (0..12).map(|i| site(&format!("S{i:02}"), 5000, 5000, vec![])).collect();
    let net = network(sites);
    let mut circuits: Vec<_> = (0..12u32)
        .map(|i| circuit(&format!("c{i}"), "x", Some(&format!("S{i:02}")), 100, 10, nth_ipv4(i)))
        .collect();
    circuits.push(circuit("big", "x", None, 1000, 10, nth_ipv4(99)));
    let p = fresh(&config, &net, &circuits, facts(2));
    let on = |p: &Plan, q: u16| {
        p.nodes.iter().filter(|n| n.key.starts_with('S') && n.queue == q).count()
    };
    assert_eq!((on(&p, 1), on(&p, 2)), (3, 9), "balanced in the first run");
    let again = run(&config, &net, &circuits, facts(2), &p.identities).expect("re-plan");
    assert!(diff(&p, &again).is_empty(), "re-planning moved {:?}", diff(&p, &again).rebuilt);
    // An existing tree that became unbalanced moves one kept node per run.
    circuits.push(circuit("bigger", "x", None, 1000, 10, nth_ipv4(98)));
    let p2 = run(&config, &net, &circuits, facts(2), &p.identities).expect("plan");
    let moved =
        p2.nodes.iter().filter(|n| p.nodes.iter().any(|o| o.key == n.key && o.queue != n.queue));
    assert!(moved.count() <= 1, "at most one kept node moves per run");
}

/// Issue 9: absurd rates (1e300 Mbps saturates to u64::MAX kbit) never panic or wrap: every
/// rate is capped at 1 Tbit/s.
#[test]
fn absurd_rates_are_capped_not_overflowed() {
    let mut config = config_bridge(1000, 1000);
    config.queues.downlink = RateKbit(u64::MAX);
    config.queues.uplink = RateKbit::from_mbps(1e300);
    config.queues.use_binpacking = true;
    let mut big = site("Big", 1, 1, vec![]);
    big.down = Some(RateKbit(u64::MAX));
    let net = network(vec![big, site("Other", 10, 10, vec![])]);
    let mut circuits: Vec<_> =
        (0..5).map(|i| circuit(&format!("c{i}"), "x", Some("Big"), 1, 1, nth_ipv4(i))).collect();
    for c in &mut circuits {
        c.download_max = RateKbit::from_mbps(1e300);
        c.download_min = RateKbit(u64::MAX);
        c.upload_max = RateKbit(u64::MAX);
    }
    circuits.push(circuit("free", "x", None, 1, 1, nth_ipv4(9)));
    circuits[5].download_max = RateKbit(u64::MAX);
    let p = fresh(&config, &net, &circuits, facts(2));
    let root = class(&p, "eth1", &Owner::QueueRoot(1), Direction::Download);
    assert_eq!(root.ceil, RateKbit(lqos_config::MAX_RATE_KBIT));
    for i in &p.interfaces {
        for c in &i.classes {
            assert!(c.ceil.0 <= lqos_config::MAX_RATE_KBIT && c.rate <= c.ceil, "{c:?}");
        }
    }
}
