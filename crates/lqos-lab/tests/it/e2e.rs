//! Subscribers shaped end to end: real lqosd, real XDP/tc/HTB, bounded iperf3 runs between the
//! lab's own namespaces.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lqos_bus::{Command, ReloadMode, Response};
use lqos_lab::lab::{Lab, LabSpec, SHAPER_TO_INTERNET, SHAPER_TO_NETWORK, Subscriber};
use lqos_lab::traffic::{Way, iperf, ping_from_internet};

static KERNEL: Mutex<()> = Mutex::new(());

pub fn lock() -> std::sync::MutexGuard<'static, ()> {
    KERNEL.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn sub(i: usize, down: f64, up: f64, shaped: bool) -> Subscriber {
    Subscriber::numbered(i, down, up, shaped)
}

/// Builds a lab with `subs`, starts lqosd and applies the inputs. `None` when not root.
pub fn lab(prefix: &str, subs: Vec<Subscriber>) -> Option<Lab> {
    if !lqos_lab::is_root() {
        eprintln!("skipped: needs root");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("lqos-e2e-{prefix}"));
    let _ = std::fs::remove_dir_all(&dir);
    let spec =
        LabSpec { prefix: prefix.into(), subscribers: subs, dir, web_listen: "127.0.0.1:0".into() };
    let mut lab = Lab::up(spec).expect("build lab namespaces");
    lab.start_lqosd(&lqos_lab::find_binary("lqosd")).expect("start lqosd in the shaper namespace");
    let r = reload(&lab, ReloadMode::Full);
    assert!(r.applied, "initial apply: {r:?}");
    Some(lab)
}

fn reload(lab: &Lab, mode: ReloadMode) -> lqos_bus::ReloadReport {
    let mut bus = lab.bus().expect("bus");
    match bus.request(&Command::Reload { mode }).expect("reload request") {
        Response::Reload(r) => *r,
        other => panic!("reload refused: {other:?}\nlqosd log:\n{}", lab.lqosd_log_tail(40)),
    }
}

/// `(handle string "1:3", bytes)` for every HTB class on `dev`, read from `tc -s class show`
/// (this iproute2 ignores `-j` for class statistics).
fn class_bytes(lab: &Lab, dev: &str) -> Vec<(String, u64)> {
    let out =
        lab.shaper.exec_stdout("tc", &["-s", "class", "show", "dev", dev]).expect("tc class show");
    let mut result = Vec::new();
    let mut current: Option<String> = None;
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"class") {
            current = (words.get(1) == Some(&"htb"))
                .then(|| words.get(2).map(|h| (*h).to_owned()))
                .flatten();
        } else if words.first() == Some(&"Sent")
            && let (Some(h), Some(bytes)) =
                (current.take(), words.get(1).and_then(|b| b.parse().ok()))
        {
            result.push((h, bytes));
        }
    }
    result
}

fn class_of(lab: &Lab, circuit: &str) -> String {
    let mut bus = lab.bus().expect("bus");
    let Response::Mappings(m) = bus.request(&Command::ListMappings).expect("mappings") else {
        panic!("no mappings")
    };
    m.into_iter().find(|e| e.circuit == circuit).map(|e| e.class).expect("circuit mapped")
}

fn bytes_of(lab: &Lab, dev: &str, class: &str) -> u64 {
    class_bytes(lab, dev).into_iter().find(|(h, _)| h == class).map(|(_, b)| b).unwrap_or(0)
}

/// Runs iperf3 for `secs` in the background and measures the HTB class rate (bits/s) between
/// 2 s (TCP past slow start) and secs-1 s. Returns (class rate, iperf3 payload rate).
fn measure(lab: &Lab, idx: usize, way: Way, v6: bool, secs: u32, port: u16) -> (f64, f64) {
    let circuit = lab.spec.subscribers[idx].circuit_id.clone();
    let class = class_of(lab, &circuit);
    let dev = match way {
        Way::Download => SHAPER_TO_NETWORK,
        Way::Upload => SHAPER_TO_INTERNET,
    };
    std::thread::scope(|s| {
        let h = s.spawn(|| iperf(lab, idx, way, secs, v6, port));
        std::thread::sleep(Duration::from_millis(2000));
        let (b1, t1) = (bytes_of(lab, dev, &class), Instant::now());
        std::thread::sleep(Duration::from_secs(u64::from(secs) - 3));
        let (b2, t2) = (bytes_of(lab, dev, &class), Instant::now());
        let iperf_result = h.join().expect("iperf thread").expect("iperf3 run");
        let class_bps = (b2 - b1) as f64 * 8.0 / t2.duration_since(t1).as_secs_f64();
        (class_bps, iperf_result.received_bps)
    })
}

fn assert_shaped(what: &str, plan_mbps: f64, class_bps: f64, payload_bps: f64) {
    let plan = plan_mbps * 1e6;
    let c = class_bps / plan - 1.0;
    let p = payload_bps / plan - 1.0;
    eprintln!(
        "{what}: plan {plan_mbps} Mbit/s, HTB {:.2} Mbit/s ({:+.1}%), iperf3 {:.2} Mbit/s ({:+.1}%)",
        class_bps / 1e6,
        c * 100.0,
        payload_bps / 1e6,
        p * 100.0
    );
    assert!(c.abs() <= 0.05, "{what}: HTB class rate off by {:+.1}%", c * 100.0);
    assert!((-0.08..=0.02).contains(&p), "{what}: iperf3 payload off by {:+.1}%", p * 100.0);
}

#[test]
fn two_subscribers_are_shaped_to_their_plans_in_both_directions() {
    let _g = lock();
    let Some(lab) = lab("lqe2a", vec![sub(0, 10.0, 5.0, true), sub(1, 25.0, 5.0, true)]) else {
        return;
    };
    let (c, p) = measure(&lab, 0, Way::Download, false, 7, 5301);
    assert_shaped("subscriber 1 download", 10.0, c, p);
    let (c, p) = measure(&lab, 1, Way::Download, false, 7, 5302);
    assert_shaped("subscriber 2 download", 25.0, c, p);
    let (c, p) = measure(&lab, 0, Way::Upload, false, 7, 5303);
    assert_shaped("subscriber 1 upload", 5.0, c, p);
    let (c, p) = measure(&lab, 1, Way::Upload, false, 7, 5304);
    assert_shaped("subscriber 2 upload", 5.0, c, p);
}

#[test]
fn ipv6_subscriber_is_shaped_and_unmapped_host_passes_unshaped() {
    let _g = lock();
    let Some(lab) = lab("lqe2b", vec![sub(0, 10.0, 5.0, true), sub(1, 25.0, 5.0, false)]) else {
        return;
    };
    let (c, p) = measure(&lab, 0, Way::Download, true, 7, 5311);
    assert_shaped("IPv6 subscriber download", 10.0, c, p);
    // Subscriber 2 is not in ShapedDevices.csv: no class limits it.
    let r = iperf(&lab, 1, Way::Download, 3, false, 5312).expect("iperf3 to the unmapped host");
    eprintln!("unmapped host: {:.1} Mbit/s", r.received_bps / 1e6);
    assert!(
        r.received_bps > 100e6,
        "unmapped host looks shaped: {:.1} Mbit/s",
        r.received_bps / 1e6
    );
}

#[test]
fn rate_edit_changes_the_class_in_place_and_the_other_subscriber_loses_nothing() {
    let _g = lock();
    let Some(lab) = lab("lqe2c", vec![sub(0, 10.0, 5.0, true), sub(1, 25.0, 5.0, true)]) else {
        return;
    };
    let class1 = class_of(&lab, "c1");
    let class2 = class_of(&lab, "c2");
    // Traffic through subscriber 1's class so its counters are non-zero before the edit.
    iperf(&lab, 0, Way::Download, 2, false, 5321).expect("warm-up");
    let before1 = bytes_of(&lab, SHAPER_TO_NETWORK, &class1);
    assert!(before1 > 0);
    std::thread::scope(|s| {
        // A flow on subscriber 2 runs across the reload.
        let h = s.spawn(|| iperf(&lab, 1, Way::Download, 6, false, 5322));
        std::thread::sleep(Duration::from_secs(2));
        let before2 = bytes_of(&lab, SHAPER_TO_NETWORK, &class2);
        let csv = lab.spec.dir.join("ShapedDevices.csv");
        let text = std::fs::read_to_string(&csv).expect("read csv");
        let edited = text.replacen(",10,5,lab", ",20,5,lab", 1);
        assert_ne!(text, edited, "edit applied to the csv");
        std::fs::write(&csv, edited).expect("write csv");
        let r = reload(&lab, ReloadMode::Incremental);
        assert_eq!(
            (r.counts.added, r.counts.deleted),
            (0, 0),
            "an edit must not add or delete: {r:?}"
        );
        assert!(r.counts.changed >= 1);
        let after2 = bytes_of(&lab, SHAPER_TO_NETWORK, &class2);
        assert!(after2 >= before2, "subscriber 2's class was recreated (counters went back)");
        let res = h.join().expect("join").expect("subscriber 2 flow survives the reload");
        eprintln!("subscriber 2 during reload: {:.2} Mbit/s", res.received_bps / 1e6);
        assert!(
            res.received_bps > 25e6 * 0.9,
            "subscriber 2 lost throughput: {:.2}",
            res.received_bps / 1e6
        );
    });
    let after1 = bytes_of(&lab, SHAPER_TO_NETWORK, &class1);
    assert!(after1 >= before1, "subscriber 1's class was recreated instead of changed in place");
    let (c, p) = measure(&lab, 0, Way::Download, false, 7, 5323);
    assert_shaped("subscriber 1 after the edit", 20.0, c, p);
}

#[test]
fn invalid_inputs_leave_the_running_shaping_untouched() {
    let _g = lock();
    let Some(lab) = lab("lqe2d", vec![sub(0, 10.0, 5.0, true)]) else { return };
    let csv = lab.spec.dir.join("ShapedDevices.csv");
    let good = std::fs::read_to_string(&csv).expect("read");
    let mut bus = lab.bus().expect("bus");
    // A bad row of its own is quarantined (issue 9): the reload applies, c9 is reported and
    // left out, and the running subscriber keeps its plan.
    std::fs::write(&csv, format!("{good}c9,Bad,d9,bad,Nowhere,,,,not-an-ip,,1,1,abc,5,lab\n"))
        .expect("write");
    match bus.request(&Command::Reload { mode: ReloadMode::Incremental }).expect("request") {
        Response::Reload(r) => {
            assert!(r.applied, "{r:?}");
            let ids: Vec<&str> = r.quarantined.iter().map(|q| q.circuit_id.as_str()).collect();
            assert_eq!(ids, ["c9"], "{r:?}");
        }
        other => panic!("a single bad row should be quarantined, got {other:?}"),
    }
    // A file that cannot be trusted as a whole (wrong header) is refused and changes nothing.
    std::fs::write(&csv, "this,is,not,a,ShapedDevices,header\nc1,x,y,z,,,\n").expect("write");
    match bus.request(&Command::Reload { mode: ReloadMode::Incremental }).expect("request") {
        Response::Error(lqos_bus::CommandError::InvalidInput { diagnostics }) => {
            assert!(diagnostics.iter().any(|d| d.is_error()));
        }
        other => panic!("invalid inputs were accepted: {other:?}"),
    }
    let (c, p) = measure(&lab, 0, Way::Download, false, 7, 5331);
    assert_shaped("subscriber 1 after the refused reload", 10.0, c, p);
}

#[test]
fn kill_9_fails_open_and_restart_restores_shaping_without_recreating_classes() {
    let _g = lock();
    let Some(mut lab) = lab("lqe2e", vec![sub(0, 10.0, 5.0, true)]) else { return };
    let class = class_of(&lab, "c1");
    iperf(&lab, 0, Way::Download, 2, false, 5341).expect("warm-up");
    let before = bytes_of(&lab, SHAPER_TO_NETWORK, &class);
    assert!(before > 0);
    lab.stop_lqosd(nix::sys::signal::Signal::SIGKILL);
    let target = lab.spec.subscribers[0].ipv4.to_string();
    let answered = ping_from_internet(&lab, &target, 10);
    assert!(answered >= 9, "bridge stopped forwarding after kill -9: {answered}/10 pings answered");
    lab.start_lqosd(&lqos_lab::find_binary("lqosd")).expect("restart lqosd");
    let after = bytes_of(&lab, SHAPER_TO_NETWORK, &class);
    assert!(after >= before, "class was recreated on restart (counters reset)");
    let (c, p) = measure(&lab, 0, Way::Download, false, 7, 5342);
    assert_shaped("subscriber 1 after restart", 10.0, c, p);
}

#[test]
fn sigterm_detaches_cleanly_keeping_the_tree_and_clear_removes_it() {
    let _g = lock();
    let Some(mut lab) = lab("lqe2f", vec![sub(0, 10.0, 5.0, true)]) else { return };
    let status = lab.stop_lqosd(nix::sys::signal::Signal::SIGTERM).expect("lqosd was running");
    assert!(status.success(), "lqosd exit after SIGTERM: {status}\n{}", lab.lqosd_log_tail(20));
    let link =
        lab.shaper.exec_stdout("ip", &["link", "show", "dev", SHAPER_TO_NETWORK]).expect("ip link");
    assert!(!link.contains("xdp"), "XDP still attached after SIGTERM:\n{link}");
    let qdiscs = lab
        .shaper
        .exec_stdout("tc", &["qdisc", "show", "dev", SHAPER_TO_NETWORK])
        .expect("tc qdisc");
    assert!(
        qdiscs.contains("qdisc mq 7fff: root"),
        "the queue tree must stay for the next start:\n{qdiscs}"
    );
    let target = lab.spec.subscribers[0].ipv4.to_string();
    assert!(ping_from_internet(&lab, &target, 5) >= 4, "bridge must forward with lqosd stopped");

    lab.start_lqosd(&lqos_lab::find_binary("lqosd")).expect("start again");
    let mut bus = lab.bus().expect("bus");
    assert_eq!(bus.request(&Command::ClearTree).expect("clear"), Response::Ack);
    let qdiscs = lab
        .shaper
        .exec_stdout("tc", &["qdisc", "show", "dev", SHAPER_TO_NETWORK])
        .expect("tc qdisc");
    assert!(!qdiscs.contains("7fff:"), "ClearTree left the tree behind:\n{qdiscs}");
    let Response::Mappings(m) = bus.request(&Command::ListMappings).expect("mappings") else {
        panic!("mappings")
    };
    assert!(m.is_empty(), "ClearTree left mappings: {m:?}");
    assert!(ping_from_internet(&lab, &target, 5) >= 4, "traffic passes unshaped after ClearTree");
    let pins = lab.spec.pin_dir();
    assert!(
        pins.join("lqos_ip_map").exists()
            || std::fs::read_dir(&pins).is_ok_and(|mut d| d.next().is_some()),
        "lqosd pins its maps in the lab's own directory {}",
        pins.display()
    );
    drop(lab);
    assert!(!pins.exists(), "the lab left its pinned maps behind in {}", pins.display());
}

/// Packets counted by every HTB class on `dev`: `(handle, packets)`.
fn class_packets(lab: &Lab, dev: &str) -> Vec<(String, u64)> {
    let out =
        lab.shaper.exec_stdout("tc", &["-s", "class", "show", "dev", dev]).expect("tc class show");
    let mut result = Vec::new();
    let mut current: Option<String> = None;
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"class") {
            current = (words.get(1) == Some(&"htb"))
                .then(|| words.get(2).map(|h| (*h).to_owned()))
                .flatten();
        } else if words.first() == Some(&"Sent")
            && let (Some(h), Some(pkts)) =
                (current.take(), words.get(3).and_then(|b| b.parse().ok()))
        {
            result.push((h, pkts));
        }
    }
    result
}

/// Packets in the queues' default classes (`k:2`): what HTB sends without a class from the
/// tc program, i.e. unshaped.
fn default_class_packets(lab: &Lab, dev: &str) -> u64 {
    class_packets(lab, dev).into_iter().filter(|(h, _)| h.ends_with(":2")).map(|(_, p)| p).sum()
}

/// Measurement (prints, asserts only forwarding and that shaping resumes): how long a
/// subscriber goes unshaped while lqosd restarts with SIGTERM, as the package's upgrade does
/// (`systemctl try-restart lqosd`). A 1 kHz ping from the Internet host to the subscriber runs
/// across the restart; pings that reach the subscriber through a default class (`k:2`) instead
/// of its circuit class were unshaped, so unshaped time ≈ those packets × 1 ms.
#[test]
fn upgrade_restart_unshaped_gap_is_measured() {
    let _g = lock();
    let Some(mut lab) = lab("lqe2g", vec![sub(0, 10.0, 5.0, true)]) else { return };
    let class = class_of(&lab, "c1");
    let target = lab.spec.subscribers[0].ipv4.to_string();
    let circuit_pkts = |lab: &Lab| {
        class_packets(lab, SHAPER_TO_NETWORK)
            .into_iter()
            .find(|(h, _)| *h == class)
            .map(|(_, p)| p)
            .unwrap_or(0)
    };
    let (d0, c0) = (default_class_packets(&lab, SHAPER_TO_NETWORK), circuit_pkts(&lab));
    let count = 6000u32;
    // LQOS_TEST_LQOSD=target/release/lqosd measures the release build.
    let lqosd_bin = std::env::var_os("LQOS_TEST_LQOSD")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| lqos_lab::find_binary("lqosd"));
    let pinger = lab
        .inet
        .command("ping")
        .args(["-q", "-c", &count.to_string(), "-i", "0.001", "-W", "1", &target])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start ping");
    std::thread::sleep(Duration::from_millis(1500));
    let t = Instant::now();
    let status = lab.stop_lqosd(nix::sys::signal::Signal::SIGTERM);
    let stop_ms = t.elapsed().as_secs_f64() * 1e3;
    assert!(status.is_some_and(|s| s.success()), "{}", lab.lqosd_log_tail(20));
    let t = Instant::now();
    lab.start_lqosd(&lqosd_bin).expect("restart lqosd");
    let start_ms = t.elapsed().as_secs_f64() * 1e3;
    let out = pinger.wait_with_output().expect("ping runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let answered: u32 = text
        .lines()
        .find(|l| l.contains("received"))
        .and_then(|l| l.split(',').nth(1))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // ping's own duration ("..., time 6123ms"): the real send rate on a loaded machine.
    let ping_ms: f64 = text
        .lines()
        .find(|l| l.contains("received"))
        .and_then(|l| l.rsplit("time ").next())
        .and_then(|t| t.trim_end_matches("ms").trim().parse().ok())
        .unwrap_or(f64::from(count));
    let (d1, c1) = (default_class_packets(&lab, SHAPER_TO_NETWORK), circuit_pkts(&lab));
    let unshaped = d1 - d0;
    let per_ms = f64::from(count) / ping_ms.max(1.0);
    eprintln!(
        "upgrade restart ({}): {count} pings in {ping_ms:.0} ms ({per_ms:.2}/ms), {answered} \
         answered; circuit class {}, default classes (unshaped) {unshaped} => unshaped for \
         ~{:.0} ms; SIGTERM->exit {stop_ms:.0} ms, start->bus answers {start_ms:.0} ms",
        lqosd_bin.display(),
        c1 - c0,
        unshaped as f64 / per_ms
    );
    assert!(
        answered >= count * 95 / 100,
        "the bridge dropped pings across the restart: {answered}/{count}"
    );
    assert!(c1 > c0, "no packet went through the circuit class");
    // Shaping is back after the restart.
    let before = circuit_pkts(&lab);
    assert!(ping_from_internet(&lab, &target, 3) >= 2);
    assert!(circuit_pkts(&lab) > before, "circuit class not used after the restart");
}
