//! Issue 11, item 8b: lqos's TCP quality numbers against iperf3's own. A subscriber with a
//! 10 Mbit/s plan behind a short FIFO (`pfifo limit 30`, so the queue overflows and TCP
//! retransmits) downloads from the lab's Internet host for 12 s; then the circuit's `qoe`
//! (RTT over the last 60 s, which covers the whole run, and the retransmit total) is compared
//! with the iperf3 sender's TCP_INFO over the whole run (`-O 0`: slow start, where most
//! losses happen, stays in iperf3's totals): the RTT mean within 20 %, retransmits within 50 %
//! when iperf3 counted at least 10.

use std::time::Duration;

use lqos_bus::{Command, ReloadMode, Response};
use lqos_lab::lab::{Lab, LabSpec};
use lqos_lab::traffic::{Way, iperf_omitting};

use crate::e2e::{lock, sub};

fn circuit_qoe(lab: &Lab, id: &str) -> Option<lqos_bus::Qoe> {
    let mut bus = lab.bus().expect("bus");
    match bus.request(&Command::CircuitStats { circuit: Some(id.to_owned()) }).expect("stats") {
        Response::Circuits(list) => list.into_iter().find(|c| c.id == id).and_then(|c| c.qoe),
        other => panic!("circuit stats: {other:?}"),
    }
}

#[test]
fn rtt_and_retransmits_agree_with_iperf3() {
    let _g = lock();
    if !lqos_lab::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = std::env::temp_dir().join("lqos-e2e-lqqoe");
    let _ = std::fs::remove_dir_all(&dir);
    let spec = LabSpec {
        prefix: "lqqoe".into(),
        subscribers: vec![sub(0, 10.0, 5.0, true)],
        dir,
        web_listen: "127.0.0.1:0".into(),
    };
    let mut lab = Lab::up(spec).expect("build lab namespaces");
    let conf = lab.spec.config_path();
    let text = std::fs::read_to_string(&conf).expect("read lqos.conf");
    std::fs::write(
        &conf,
        text.replace("default_sqm = \"none\"", "default_sqm = \"pfifo limit 30\""),
    )
    .expect("write lqos.conf");
    lab.start_lqosd(&lqos_lab::find_binary("lqosd")).expect("start lqosd");
    let mut bus = lab.bus().expect("bus");
    match bus.request(&Command::Reload { mode: ReloadMode::Full }).expect("reload") {
        Response::Reload(r) => assert!(r.applied, "{r:?}"),
        other => panic!("reload: {other:?}\n{}", lab.lqosd_log_tail(30)),
    }
    let id = lab.spec.subscribers[0].circuit_id.clone();

    let r = iperf_omitting(&lab, 0, Way::Download, 12, false, 5401, 0).expect("iperf3 download");
    // Let the last RTT period close (histograms are read every 2 s).
    std::thread::sleep(Duration::from_millis(2500));
    let q = circuit_qoe(&lab, &id).unwrap_or_else(|| {
        panic!("no qoe for {id} after a TCP download\n{}", lab.lqosd_log_tail(30))
    });
    let w = q.rtt_ms;
    let mean = |s: Option<lqos_bus::RttSummary>| {
        s.filter(|s| s.samples > 0).map(|s| s.sum_ms / s.samples as f64).unwrap_or(0.0)
    };
    let access = w.access.expect("access-path RTT samples in the last 60 s");
    let lqos_rtt_ms = mean(w.access) + mean(w.upstream);
    let iperf_rtt_ms = r.sender_mean_rtt_us.expect("iperf3 reports mean_rtt") / 1000.0;
    let iperf_retx = r.sender_retransmits.expect("iperf3 reports retransmits");
    eprintln!(
        "RTT: lqos access p50 {:.2} / p90 {:.2} / p99 {:.2} ms ({} samples), upstream {:?}; \
         lqos mean access+upstream {lqos_rtt_ms:.2} ms vs iperf3 sender mean_rtt {iperf_rtt_ms:.2} ms \
         ({:+.1} %)",
        access.p50,
        access.p90,
        access.p99,
        access.samples,
        w.upstream.map(|u| (u.p50, u.samples)),
        (lqos_rtt_ms / iperf_rtt_ms - 1.0) * 100.0
    );
    eprintln!(
        "retransmits: lqos down {} (of {} TCP packets) vs iperf3 sender {iperf_retx}; \
         throughput {:.2} Mbit/s",
        q.retransmits.down,
        q.tcp_packets.down,
        r.received_bps / 1e6
    );
    assert!(
        (lqos_rtt_ms - iperf_rtt_ms).abs() <= 0.2 * iperf_rtt_ms,
        "RTT differs by more than 20 %: lqos {lqos_rtt_ms:.2} ms, iperf3 {iperf_rtt_ms:.2} ms"
    );
    if iperf_retx >= 10 {
        let d = (q.retransmits.down as f64 - iperf_retx as f64).abs();
        assert!(
            d <= 0.5 * iperf_retx as f64,
            "retransmits differ by more than 50 %: lqos {}, iperf3 {iperf_retx}",
            q.retransmits.down
        );
    } else {
        eprintln!(
            "iperf3 counted {iperf_retx} retransmits (< 10): retransmit comparison not applicable"
        );
    }
    circuit_queue_shows_the_overflowing_fifo(&lab, &id, iperf_retx);
    lab.down();
}

/// The circuit's queue statistics (`CircuitQueue`, read from the kernel on request) after the
/// download: both directions, the download leaf is the `pfifo limit 30` that overflowed, and
/// its drops agree with the class's.
fn circuit_queue_shows_the_overflowing_fifo(lab: &Lab, id: &str, iperf_retx: u64) {
    let mut bus = lab.bus().expect("bus");
    let q = match bus.request(&Command::CircuitQueue { circuit: id.to_owned() }).expect("queue") {
        Response::Queue(q) => q,
        other => panic!("circuit queue: {other:?}\n{}", lab.lqosd_log_tail(30)),
    };
    eprintln!("queue statistics: {q:?}");
    assert!(!q.throttled);
    let dirs: Vec<&str> = q.directions.iter().map(|d| d.direction.as_str()).collect();
    assert_eq!(dirs, ["download", "upload"]);
    let down = &q.directions[0];
    let class = down.class_stats.expect("download class counters");
    let leaf = down.leaf.as_ref().expect("the pfifo leaf");
    assert_eq!(leaf.kind, "pfifo");
    assert!(leaf.counters.packets > 1000, "a 12 s download went through the leaf: {leaf:?}");
    assert_eq!(class.drops, leaf.counters.drops, "HTB counts the leaf's drops on the class");
    if iperf_retx >= 10 {
        assert!(leaf.counters.drops > 0, "retransmits without a drop in the FIFO: {leaf:?}");
    }
    match bus.request(&Command::CircuitQueue { circuit: "no-such-circuit".into() }) {
        Ok(Response::Error(lqos_bus::CommandError::Unavailable { .. })) => {}
        other => panic!("unknown circuit: {other:?}"),
    }
}
