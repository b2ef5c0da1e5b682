//! Real-kernel test: client ─ veth ─ [s0 br0 s1] shaper ─ veth ─ internet, all in namespaces.
//! XDP on s0/s1, tc egress on both, mq + one HTB per TX queue (4) on s0. UDP from the
//! internet side to the mapped client must be counted and land in HTB class 3:10 (TX queue 2).

use std::{
    fs::File,
    net::UdpSocket,
    os::fd::AsFd,
    process::{Command, Output},
    time::Duration,
};

use lqos_bpf::{Dataplane, InterfaceRole, IpMapping, LoadOptions, MappingBatch};
use nix::sched::{CloneFlags, setns};

use crate::kernel_test;

fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("run {args:?}: {e}"));
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn in_ns(ns: &str, cmd: &str) -> Output {
    let mut args = vec!["ip", "netns", "exec", ns, "sh", "-c", cmd];
    let out = Command::new(args.remove(0))
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("run in {ns}: {cmd}: {e}"));
    assert!(out.status.success(), "in {ns}: {cmd}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Deletes the namespaces (and with them every veth and program attachment) on drop, and
/// moves the current thread back to its original network namespace.
struct NetnsGuard {
    names: Vec<String>,
    home: Option<File>,
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Some(home) = &self.home {
            let _ = setns(home.as_fd(), CloneFlags::CLONE_NEWNET);
        }
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

#[test]
fn veth_udp_is_counted_and_lands_in_mapped_htb_class() {
    let Some(_k) = kernel_test() else { return };
    let pid = std::process::id();
    let (c, s, i) = (format!("lqb-c-{pid}"), format!("lqb-s-{pid}"), format!("lqb-i-{pid}"));
    let mut guard = NetnsGuard { names: vec![], home: None };
    for n in [&c, &s, &i] {
        run(&["ip", "netns", "add", n]);
        guard.names.push(n.clone());
    }
    // client c0 <-> s0 (to_network), s1 (to_internet) <-> i0; 4 TX/RX queues on the shaper side
    // (veth starts with 1 real queue: `ethtool -L` makes all 4 usable).
    run(&[
        "ip",
        "link",
        "add",
        "c0",
        "netns",
        &c,
        "type",
        "veth",
        "peer",
        "name",
        "s0",
        "netns",
        &s,
        "numtxqueues",
        "4",
        "numrxqueues",
        "4",
    ]);
    run(&[
        "ip",
        "link",
        "add",
        "i0",
        "netns",
        &i,
        "type",
        "veth",
        "peer",
        "name",
        "s1",
        "netns",
        &s,
        "numtxqueues",
        "4",
        "numrxqueues",
        "4",
    ]);
    // Lab hygiene: checksum offload on veth breaks frames redirected through the cpumap.
    in_ns(
        &c,
        "ethtool -K c0 tx off tso off gso off gro off >/dev/null && ip link set lo up && ip link set c0 up && ip addr add 198.18.0.1/24 dev c0",
    );
    in_ns(
        &i,
        "ethtool -K i0 tx off tso off gso off gro off >/dev/null && ip link set lo up && ip link set i0 up && ip addr add 198.18.0.2/24 dev i0",
    );
    in_ns(
        &s,
        "ethtool -K s0 tx off tso off gso off gro off >/dev/null && ethtool -K s1 tx off tso off gso off gro off >/dev/null \
         && ethtool -L s0 tx 4 rx 4 && ethtool -L s1 tx 4 rx 4 \
         && ip link add br0 type bridge && ip link set s0 master br0 && ip link set s1 master br0 \
         && ip link set s0 up && ip link set s1 up && ip link set br0 up \
         && for q in /sys/class/net/s0/queues/tx-* /sys/class/net/s1/queues/tx-*; do echo 0 > $q/xps_cpus; done \
         && tc qdisc add dev s0 root handle 7fff: mq \
         && for k in 1 2 3 4; do tc qdisc add dev s0 parent 7fff:$k handle $k: htb default 2 \
            && tc class add dev s0 parent $k: classid $k:1 htb rate 1gbit \
            && tc class add dev s0 parent $k:1 classid $k:2 htb rate 100mbit ceil 1gbit \
            && tc class add dev s0 parent $k:1 classid $k:10 htb rate 100mbit ceil 1gbit; done",
    );

    let mut dp = Dataplane::load(&LoadOptions::default()).expect("load data plane");
    dp.ip_map()
        .apply(&MappingBatch {
            upsert: vec![(
                "198.18.0.1/32".parse().expect("net"),
                IpMapping {
                    cpu: 0,
                    class_handle: 0x0003_0010,
                    slot: 7,
                    circuit_hash: 1,
                    device_hash: 2,
                },
            )],
            delete: vec![],
        })
        .expect("map client");

    // Attach from inside the shaper namespace (this thread only), then go home.
    guard.home = Some(File::open("/proc/thread-self/ns/net").expect("own netns"));
    let ns_file = File::open(format!("/run/netns/{s}")).expect("open shaper netns");
    setns(ns_file.as_fd(), CloneFlags::CLONE_NEWNET).expect("enter shaper netns");
    let mode0 = dp.attach_xdp("s0", InterfaceRole::ToNetwork).expect("attach xdp to s0");
    let mode1 = dp.attach_xdp("s1", InterfaceRole::ToInternet).expect("attach xdp to s1");
    dp.attach_tc_egress("s0", InterfaceRole::ToNetwork).expect("attach tc to s0");
    dp.attach_tc_egress("s1", InterfaceRole::ToInternet).expect("attach tc to s1");
    if let Some(home) = &guard.home {
        setns(home.as_fd(), CloneFlags::CLONE_NEWNET).expect("back home");
    }
    println!("xdp modes: s0 {mode0:?}, s1 {mode1:?}");

    let n: u64 = 20;
    let rx_c = udp_in(&c, "198.18.0.1:9999");
    let tx_i = udp_in(&i, "198.18.0.2:9999");
    // Warm up (ARP, bridge learning): up to 20 tries, 0.5 s each, both ways.
    let warm = (0..20).any(|_| {
        let _ = tx_i.send_to(b"warm", "198.18.0.1:9999");
        let _ = rx_c.send_to(b"warm", "198.18.0.2:9999");
        receive(&rx_c, 1) == 1 && receive(&tx_i, 1) == 1
    });
    assert!(warm, "no connectivity through the shaper namespace");
    while receive(&rx_c, 1) == 1 || receive(&tx_i, 1) == 1 {}
    let before = class_packets(&s, "3:10");
    for k in 0..n {
        tx_i.send_to(&k.to_be_bytes(), "198.18.0.1:9999").expect("send download");
    }
    let got = receive(&rx_c, n);
    if got != n {
        let diag = in_ns(
            &s,
            "tc -s class show dev s0; tc -s qdisc show dev s0; ip -s link show s0; ip -s link show s1",
        );
        let mut counters = Vec::new();
        let _ = dp.slot_counters().read(0..8, &mut counters);
        panic!(
            "download datagrams lost: got {got} of {n}\n{}\ncounters {counters:?}",
            String::from_utf8_lossy(&diag.stdout)
        );
    }
    for k in 0..n {
        rx_c.send_to(&k.to_be_bytes(), "198.18.0.2:9999").expect("send upload");
    }
    assert_eq!(receive(&tx_i, n), n, "upload datagrams lost");

    let after = class_packets(&s, "3:10");
    if after - before < n {
        let diag = in_ns(&s, "tc -s qdisc show dev s0; tc -s class show dev s0");
        let mut counters = Vec::new();
        let _ = dp.slot_counters().read(0..8, &mut counters);
        println!("{}\ncounters {counters:?}", String::from_utf8_lossy(&diag.stdout));
    }
    assert!(after - before >= n, "HTB 3:10 got {} packets, expected ≥ {n}", after - before);
    println!("3:10 packets {}, default 3:2 {}", after - before, class_packets(&s, "3:2"));

    let mut counters = Vec::new();
    dp.slot_counters().read(7..8, &mut counters).expect("counters");
    let c = counters[0];
    assert!(c.packets[0] >= n, "download packets {:?}", c.packets);
    assert!(c.packets[1] >= n, "upload packets {:?}", c.packets);
    let flows = dp.flows().read_all().expect("flows");
    assert!(
        flows.iter().any(|f| f.slot == 7 && f.packets[0] >= n && f.packets[1] >= n),
        "the UDP flow is tracked both ways: {flows:?}"
    );

    dp.detach().expect("detach");
    let out = in_ns(&s, "ip -d link show s0");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("prog/xdp"),
        "xdp still attached after detach"
    );
}

/// Packets sent by one HTB class, from `tc -s class show` (tc 6.1 prints no JSON for classes).
fn class_packets(ns: &str, classid: &str) -> u64 {
    let out = in_ns(ns, "tc -s class show dev s0");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.split_whitespace().nth(2) == Some(classid) {
            // Next line: " Sent <bytes> bytes <packets> pkt ..."
            let sent = lines.next().unwrap_or_default();
            let words: Vec<&str> = sent.split_whitespace().collect();
            return words.get(3).and_then(|w| w.parse().ok()).unwrap_or(0);
        }
    }
    panic!("class {classid} not found in: {text}");
}

/// A UDP socket bound inside namespace `ns` (created on a helper thread that entered it; the
/// socket stays in that namespace).
fn udp_in(ns: &str, addr: &str) -> UdpSocket {
    let path = format!("/run/netns/{ns}");
    let addr = addr.to_string();
    std::thread::spawn(move || {
        let f = File::open(&path).expect("open netns");
        setns(f.as_fd(), CloneFlags::CLONE_NEWNET).expect("enter netns");
        let sock = UdpSocket::bind(&addr).expect("bind udp");
        sock.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
        sock
    })
    .join()
    .expect("netns thread")
}

/// Receives up to `n` datagrams (bounded by the socket's read timeout).
fn receive(sock: &UdpSocket, n: u64) -> u64 {
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < n && sock.recv_from(&mut buf).is_ok() {
        got += 1;
    }
    got
}
