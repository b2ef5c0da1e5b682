//! lqos-tc against the real kernel, checked with `tc` itself.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::Duration;

use lqos_config::{CakeParams, CircuitId, LeafQdisc, RateKbit};
use lqos_plan::{ClassId, ClassParent, HtbClass, LeafPlan, Owner, Plan};
use lqos_tc::synth::{SynthSpec, circuit_class, synth_plan};
use lqos_tc::{LiveTree, Tc, TcError, reconcile};

use crate::netns::{Netns, is_root_or_skip, kernel_lock};

/// One class as `tc -s class show` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TcClass {
    parent: String,
    rate_kbit: u64,
    ceil_kbit: u64,
    bytes: u64,
}

fn rate_kbit(s: &str) -> u64 {
    for (suffix, mult) in
        [("Tbit", 1_000_000_000u64), ("Gbit", 1_000_000), ("Mbit", 1000), ("Kbit", 1)]
    {
        if let Some(n) = s.strip_suffix(suffix) {
            return n.parse::<u64>().unwrap_or_else(|_| panic!("rate {s}")) * mult;
        }
    }
    s.strip_suffix("bit")
        .and_then(|n| n.parse::<u64>().ok())
        .map(|b| b / 1000)
        .unwrap_or_else(|| panic!("rate {s}"))
}

/// HTB classes of v0, read with `tc -s class show` (iproute2 6.1 has no JSON for classes).
fn tc_classes(ns: &Netns) -> BTreeMap<String, TcClass> {
    let text = ns.exec(&["tc", "-s", "class", "show", "dev", "v0"]);
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.first() == Some(&"class") {
            current = None;
            if t.get(1) != Some(&"htb") {
                continue;
            }
            let handle = t[2].to_string();
            let parent = if t[3] == "root" { "root".to_string() } else { t[4].to_string() };
            let at = |k: &str| {
                t.iter()
                    .position(|x| *x == k)
                    .map(|i| rate_kbit(t[i + 1]))
                    .unwrap_or_else(|| panic!("{k} in {line}"))
            };
            out.insert(
                handle.clone(),
                TcClass { parent, rate_kbit: at("rate"), ceil_kbit: at("ceil"), bytes: 0 },
            );
            current = Some(handle);
        } else if t.first() == Some(&"Sent")
            && let Some(c) = current.as_ref().and_then(|h| out.get_mut(h))
        {
            c.bytes = t[1].parse().unwrap_or(0);
        }
    }
    out
}

/// The root qdisc of v0 as `kind handle`, from `tc -j qdisc show`.
fn root_qdisc(ns: &Netns) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&ns.exec(&["tc", "-j", "qdisc", "show", "dev", "v0"]))
            .expect("tc json");
    let root =
        v.as_array().and_then(|a| a.iter().find(|q| q["root"] == true)).expect("a root qdisc");
    format!("{} {}", root["kind"].as_str().unwrap_or("?"), root["handle"].as_str().unwrap_or("?"))
}

fn leaf_count(ns: &Netns, kind: &str) -> usize {
    ns.exec(&["tc", "qdisc", "show", "dev", "v0"])
        .lines()
        .filter(|l| l.starts_with(&format!("qdisc {kind} ")))
        .count()
}

fn parent_text(p: ClassParent) -> String {
    match p {
        ClassParent::Qdisc(_) => "root".into(),
        ClassParent::Class(c) => c.to_string(),
    }
}

fn assert_matches_plan(ns: &Netns, plan: &Plan) -> BTreeMap<String, TcClass> {
    let live = tc_classes(ns);
    let ifp = &plan.interfaces[0];
    assert_eq!(live.len(), ifp.classes.len(), "htb class count");
    for c in &ifp.classes {
        let l = live.get(&c.id.to_string()).unwrap_or_else(|| panic!("class {} missing", c.id));
        assert_eq!(l.parent, parent_text(c.parent), "parent of {}", c.id);
        assert_eq!((l.rate_kbit, l.ceil_kbit), (c.rate.0, c.ceil.0), "rate/ceil of {}", c.id);
    }
    live
}

fn spec(circuits: u32, leaf: Option<LeafQdisc>) -> SynthSpec {
    SynthSpec { interface: "v0".into(), queues: 4, sites_per_queue: 4, circuits, leaf }
}

fn pfifo() -> Option<LeafQdisc> {
    Some(LeafQdisc::Pfifo { limit: Some(100) })
}

#[test]
fn full_build_of_2000_circuits_matches_tc_class_show() {
    if !is_root_or_skip() {
        return;
    }
    let _g = kernel_lock();
    let ns = Netns::new();
    let plan = synth_plan(&spec(2000, pfifo()));
    let (report, live) = ns.enter(|| {
        let mut tc = Tc::new().expect("netlink socket");
        let report = tc.build_full(&plan).expect("build 2000 circuits");
        (report, tc.dump("v0").expect("dump v0"))
    });
    let ifp = &plan.interfaces[0];
    assert_eq!(
        report.interfaces[0].added,
        1 + ifp.htbs.len() + ifp.classes.len() + ifp.leaves.len()
    );
    assert_eq!(root_qdisc(&ns), "mq 7fff:");
    assert_matches_plan(&ns, &plan);
    assert_eq!(leaf_count(&ns, "pfifo"), 2000);
    assert_eq!(leaf_count(&ns, "htb"), 4);
    assert!(reconcile(&plan, &[live]).is_empty(), "a fresh build reconciles to nothing");
}

/// Pins the calling thread to CPU 0 and sends a few UDP packets per class with
/// `SO_PRIORITY` = class handle; XPS maps CPU 0 to TX queue 0, i.e. HTB major 1.
fn send_into_classes(classes: &[ClassId]) {
    let mut cpus = nix::sched::CpuSet::new();
    cpus.set(0).expect("cpu 0");
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus).expect("pin to cpu 0");
    for c in classes {
        let s = UdpSocket::bind("198.18.0.1:0").expect("udp bind");
        nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::Priority, &(c.as_u32() as i32))
            .expect("SO_PRIORITY");
        for _ in 0..3 {
            s.send_to(&[0u8; 200], "198.18.0.2:9").expect("send");
        }
    }
}

fn new_circuit(ifp_classes: &[HtbClass], minor: u16, i: u32) -> (HtbClass, LeafPlan) {
    let template = ifp_classes.last().cloned().expect("a circuit");
    let id = ClassId::new(1, minor);
    let owner = Owner::Circuit(CircuitId(format!("new{i}")));
    let parent = ClassParent::Class(ClassId::new(1, 3));
    let class = HtbClass { id, parent, owner: owner.clone(), ..template };
    let leaf = LeafPlan {
        parent: id,
        handle: 0x6000 + i as u16,
        qdisc: LeafQdisc::Pfifo { limit: Some(50) },
        owner,
    };
    (class, leaf)
}

#[test]
fn incremental_changes_keep_untouched_counters_and_reapply_is_harmless() {
    if !is_root_or_skip() {
        return;
    }
    let _g = kernel_lock();
    let ns = Netns::new();
    for (q, mask) in [(0, "1"), (1, "2"), (2, "0"), (3, "0")] {
        ns.exec(&["sh", "-c", &format!("echo {mask} > /sys/class/net/v0/queues/tx-{q}/xps_cpus")]);
    }
    let mac = ns.exec(&["cat", "/sys/class/net/v1/address"]);
    ns.ip(&[
        "neigh",
        "replace",
        "198.18.0.2",
        "lladdr",
        mac.trim(),
        "dev",
        "v0",
        "nud",
        "permanent",
    ]);

    let sp = spec(2000, pfifo());
    let old = synth_plan(&sp);
    // Circuits on queue 1 (i % 4 == 0): 0..40 get traffic; of those, 0..20 keep everything,
    // 20..30 change rate, 30..32 move. Others: 1% rate changes, removals, moves.
    let traffic: Vec<u32> = (0..40).map(|k| 4 * k).collect();
    let untouched: Vec<u32> = traffic[..20].to_vec();
    let rate_changed_with_traffic: Vec<u32> = traffic[20..30].to_vec();
    let moved_with_traffic: Vec<u32> = traffic[30..32].to_vec();
    let mut rate_changed: Vec<u32> = rate_changed_with_traffic.clone();
    rate_changed.extend((1000..1010).map(|k| k + 1)); // 20 = 1 % of 2000
    let removed: Vec<u32> = (1500..1510).collect();
    let moved: Vec<u32> = moved_with_traffic.iter().copied().chain([1601, 1602, 1603]).collect();

    let mut new = old.clone();
    {
        let ifp = &mut new.interfaces[0];
        for &i in &rate_changed {
            let id = circuit_class(&sp, i);
            let c = ifp.classes.iter_mut().find(|c| c.id == id).expect("circuit class");
            c.rate = RateKbit(c.rate.0 + 7);
            c.ceil = RateKbit(c.ceil.0 + 70);
        }
        for &i in &moved {
            let id = circuit_class(&sp, i);
            let c = ifp.classes.iter_mut().find(|c| c.id == id).expect("circuit class");
            let ClassParent::Class(site) = c.parent else { panic!("circuit under a site") };
            let other = if site.minor == 3 { 4 } else { 3 };
            c.parent = ClassParent::Class(ClassId::new(site.major, other));
        }
        let gone: Vec<ClassId> = removed.iter().map(|&i| circuit_class(&sp, i)).collect();
        ifp.classes.retain(|c| !gone.contains(&c.id));
        ifp.leaves.retain(|l| !gone.contains(&l.parent));
        for k in 0..10u32 {
            let (c, l) = new_circuit(&ifp.classes, 0x4000 + k as u16, k);
            ifp.classes.push(c);
            ifp.leaves.push(l);
        }
    }
    let cs = reconcile(&new, &[LiveTree::from_plan(&old.interfaces[0], 0)]);
    assert_eq!(cs.class_change.len(), 20);
    assert_eq!(cs.class_del.len(), removed.len() + moved.len());
    assert_eq!(cs.class_add.len(), 10 + moved.len());

    let traffic_ids: Vec<ClassId> = traffic.iter().map(|&i| circuit_class(&sp, i)).collect();
    let full = ns.enter(|| {
        let mut tc = Tc::new().expect("netlink socket");
        let full = tc.build_full(&old).expect("build");
        send_into_classes(&traffic_ids);
        full
    });
    // Wait (bounded) until every sampled class has counted its packets.
    let mut before = tc_classes(&ns);
    for _ in 0..50 {
        if traffic_ids.iter().all(|id| before[&id.to_string()].bytes > 0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        before = tc_classes(&ns);
    }
    for id in &traffic_ids {
        assert!(before[&id.to_string()].bytes > 0, "class {id} got no traffic");
    }

    let report = ns.enter(|| Tc::new().expect("socket").apply(&cs).expect("incremental apply"));
    let after = assert_matches_plan(&ns, &new);
    for &i in untouched.iter().chain(&rate_changed_with_traffic) {
        let h = circuit_class(&sp, i).to_string();
        assert_eq!(
            after[&h].bytes, before[&h].bytes,
            "class {h} kept its counters (not recreated)"
        );
    }
    for &i in &moved_with_traffic {
        let h = circuit_class(&sp, i).to_string();
        assert_eq!(after[&h].bytes, 0, "moved class {h} was re-created");
    }
    for &i in &removed {
        assert!(!after.contains_key(&circuit_class(&sp, i).to_string()));
    }
    assert_eq!(leaf_count(&ns, "pfifo"), 2000);
    assert_eq!(report.interfaces[0].changed, 20);
    assert_eq!(full.interfaces[0].changed, 0);

    // Re-applying the same change set: same tree, untouched counters unchanged.
    ns.enter(|| Tc::new().expect("socket").apply(&cs).expect("re-apply"));
    let again = assert_matches_plan(&ns, &new);
    for &i in untouched.iter().chain(&rate_changed_with_traffic) {
        let h = circuit_class(&sp, i).to_string();
        assert_eq!(again[&h].bytes, after[&h].bytes, "re-apply left {h} alone");
    }
    assert_eq!(leaf_count(&ns, "pfifo"), 2000);
}

#[test]
fn reconcile_after_hand_deleted_class_restores_exactly_that_class() {
    if !is_root_or_skip() {
        return;
    }
    let _g = kernel_lock();
    let ns = Netns::new();
    let sp = spec(200, pfifo());
    let plan = synth_plan(&sp);
    ns.enter(|| Tc::new().expect("socket").build_full(&plan).expect("build"));
    let victim = circuit_class(&sp, 77);
    ns.exec(&["tc", "class", "del", "dev", "v0", "classid", &victim.to_string()]);
    assert!(!tc_classes(&ns).contains_key(&victim.to_string()));
    let cs = ns.enter(|| {
        let mut tc = Tc::new().expect("socket");
        let cs = tc.reconcile_live(&plan).expect("reconcile");
        tc.apply(&cs).expect("apply reconcile");
        assert!(tc.reconcile_live(&plan).expect("reconcile again").is_empty());
        cs
    });
    assert_eq!(cs.class_add.iter().map(|c| c.item.id).collect::<Vec<_>>(), vec![victim]);
    assert_eq!(cs.leaf_add.iter().map(|l| l.item.parent).collect::<Vec<_>>(), vec![victim]);
    assert!(cs.class_del.is_empty() && cs.leaf_del.is_empty() && cs.class_change.is_empty());
    assert!(cs.mq_add.is_empty() && cs.htb_add.is_empty());
    assert_matches_plan(&ns, &plan);
    assert_eq!(leaf_count(&ns, "pfifo"), 200);
}

#[test]
fn cake_plan_fails_clearly_before_touching_the_kernel() {
    if !is_root_or_skip() {
        return;
    }
    let _g = kernel_lock();
    let ns = Netns::new();
    let original = root_qdisc(&ns);
    let plan = synth_plan(&spec(10, Some(LeafQdisc::Cake(CakeParams::default()))));
    let res = ns.enter(|| {
        let mut tc = Tc::new().expect("socket");
        let supported =
            tc.probe_qdisc_support(&LeafQdisc::Cake(CakeParams::default())).expect("probe");
        (supported, tc.build_full(&plan))
    });
    match res {
        (false, Err(TcError::UnsupportedQdisc { kind, module, hint })) => {
            assert_eq!((kind.as_str(), module.as_str()), ("cake", "sch_cake"));
            assert!(hint.contains("default_sqm") && hint.contains("/etc/lqos.conf"), "{hint}");
            assert_eq!(root_qdisc(&ns), original, "nothing was touched");
        }
        (true, Ok(_)) => println!("this kernel has sch_cake; the plan was built"),
        (s, other) => panic!("probe said {s}, build gave {other:?}"),
    }
}

#[test]
fn teardown_restores_the_original_root_and_spares_foreign_roots() {
    if !is_root_or_skip() {
        return;
    }
    let _g = kernel_lock();
    let ns = Netns::new();
    let original = root_qdisc(&ns);
    let plan = synth_plan(&spec(100, pfifo()));
    let rep = ns.enter(|| {
        let mut tc = Tc::new().expect("socket");
        tc.build_full(&plan).expect("build");
        tc.teardown(&plan).expect("teardown")
    });
    assert_eq!(rep.messages, 1);
    assert_eq!(root_qdisc(&ns), original);
    assert!(tc_classes(&ns).is_empty());

    ns.exec(&["tc", "qdisc", "replace", "dev", "v0", "root", "handle", "5:", "pfifo"]);
    let rep = ns.enter(|| Tc::new().expect("socket").teardown(&plan).expect("teardown"));
    assert_eq!(rep.messages, 0);
    assert_eq!(root_qdisc(&ns), "pfifo 5:");
}

#[test]
fn interface_facts_report_queues_and_missing_devices() {
    if !is_root_or_skip() {
        return;
    }
    let _g = kernel_lock();
    let ns = Netns::new();
    ns.enter(|| {
        let mut tc = Tc::new().expect("socket");
        let f = tc.interface_facts("v0").expect("facts of v0");
        assert_eq!((f.tx_queues, f.rx_queues, f.mtu), (4, 4, 1500));
        assert_eq!(f.operstate, lqos_tc::OperState::Up);
        assert!(matches!(tc.interface_facts("nosuch0"), Err(TcError::NoSuchInterface { .. })));
        assert!(tc.probe_qdisc_support(&LeafQdisc::Pfifo { limit: None }).expect("pfifo"));
    });
}

/// `tc -s -j qdisc show dev v0 parent P` (iproute2 filters a dump in user space).
fn tc_leaf_json(ns: &Netns, parent: ClassId) -> serde_json::Value {
    let text =
        ns.exec(&["tc", "-s", "-j", "qdisc", "show", "dev", "v0", "parent", &parent.to_string()]);
    let v: serde_json::Value = serde_json::from_str(&text).expect("tc json");
    v.as_array().and_then(|a| a.first()).cloned().unwrap_or_else(|| panic!("no qdisc: {text}"))
}

#[test]
fn leaf_qdisc_reads_the_generic_stats_of_a_real_leaf_after_traffic() {
    if !is_root_or_skip() {
        return;
    }
    let _g = kernel_lock();
    let ns = Netns::new();
    for (q, mask) in [(0, "1"), (1, "2"), (2, "0"), (3, "0")] {
        ns.exec(&["sh", "-c", &format!("echo {mask} > /sys/class/net/v0/queues/tx-{q}/xps_cpus")]);
    }
    let mac = ns.exec(&["cat", "/sys/class/net/v1/address"]);
    ns.ip(&[
        "neigh",
        "replace",
        "198.18.0.2",
        "lladdr",
        mac.trim(),
        "dev",
        "v0",
        "nud",
        "permanent",
    ]);
    let sp = spec(40, pfifo());
    let mut plan = synth_plan(&sp);
    // Circuit 0 (queue 1): 8 kbit and a 5-packet pfifo, so a burst queues and overflows.
    // Circuit 4 (queue 1): no leaf of ours, the kernel's default pfifo.
    let (slow, bare) = (circuit_class(&sp, 0), circuit_class(&sp, 4));
    {
        let ifp = &mut plan.interfaces[0];
        let c = ifp.classes.iter_mut().find(|c| c.id == slow).expect("class of circuit 0");
        (c.rate, c.ceil) = (RateKbit(8), RateKbit(8));
        let l = ifp.leaves.iter_mut().find(|l| l.parent == slow).expect("leaf of circuit 0");
        l.qdisc = LeafQdisc::Pfifo { limit: Some(5) };
        ifp.leaves.retain(|l| l.parent != bare);
    }
    let slow_handle = plan.interfaces[0]
        .leaves
        .iter()
        .find(|l| l.parent == slow)
        .map(|l| u32::from(l.handle) << 16)
        .expect("slow leaf");
    let (slow_q, slow_c, bare_q, bare_c, none) = ns.enter(|| {
        let mut tc = Tc::new().expect("netlink socket");
        tc.build_full(&plan).expect("build");
        // 20 packets into the slow class (a burst), 3 into the bare one.
        let mut cpus = nix::sched::CpuSet::new();
        cpus.set(0).expect("cpu 0");
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus).expect("pin");
        for (class, n) in [(slow, 20), (bare, 3)] {
            let s = UdpSocket::bind("198.18.0.1:0").expect("udp bind");
            nix::sys::socket::setsockopt(
                &s,
                nix::sys::socket::sockopt::Priority,
                &(class.as_u32() as i32),
            )
            .expect("SO_PRIORITY");
            for _ in 0..n {
                // Drops surface as ENOBUFS on some kernels; the count is what matters.
                let _ = s.send_to(&[0u8; 200], "198.18.0.2:9");
            }
        }
        std::thread::sleep(Duration::from_millis(50));
        let slow_q = tc.leaf_qdisc("v0", slow).expect("get slow").expect("slow leaf");
        let slow_c = tc.class_get("v0", slow).expect("get class").expect("slow class");
        let bare_q = tc.leaf_qdisc("v0", bare).expect("get bare");
        let bare_c = tc.class_get("v0", bare).expect("get class").expect("bare class");
        let gone = ClassId::new(1, 0xFFF0);
        let none = (
            tc.leaf_qdisc("v0", gone).expect("missing class"),
            tc.class_get("v0", gone).expect("missing class"),
        );
        (slow_q, slow_c, bare_q, bare_c, none)
    });
    assert_eq!(none, (None, None), "a class that does not exist has no leaf");
    assert_eq!(
        (slow_q.kind.as_str(), slow_q.handle, slow_q.parent),
        ("pfifo", slow_handle, slow.as_u32())
    );
    let s = slow_q.stats;
    // HTB's burst lets a few through; the 5-packet pfifo holds 5; the rest are dropped.
    assert!(s.drops >= 5, "a 5-packet pfifo at 8 kbit drops part of a 20-packet burst: {s:?}");
    assert!(s.qlen >= 1 && s.backlog >= 200, "packets wait at 8 kbit: {s:?}");
    assert_eq!(u64::from(s.drops) + u64::from(s.qlen) + s.packets, 20, "{s:?}");
    // The same numbers as tc's own view (taken after ours: the queue only drains).
    let j = tc_leaf_json(&ns, slow);
    assert_eq!(j["kind"], "pfifo");
    assert_eq!(j["drops"].as_u64(), Some(u64::from(s.drops)), "{j}");
    assert!(j["packets"].as_u64().expect("packets") >= s.packets, "{j}");
    // The class counts the same drops (HTB counts a refused enqueue on the class).
    assert_eq!(slow_c.stats.drops, s.drops, "{:?}", slow_c.stats);
    assert!(slow_c.stats.overlimits > 0, "8 kbit throttles the class: {:?}", slow_c.stats);
    // The kernel's default pfifo under a class without a leaf is invisible to a get; the
    // class holds the counters.
    assert_eq!(bare_q, None);
    assert_eq!((bare_c.stats.packets, bare_c.stats.drops), (3, 0), "{:?}", bare_c.stats);
    assert!(bare_c.stats.bytes >= 3 * 200, "{:?}", bare_c.stats);
}
