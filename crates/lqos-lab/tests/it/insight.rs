//! Issue 12 "worst first" and issue 11's unknown addresses against the real data plane: a
//! subscriber on a 10 Mbit/s plan downloads (its RTT rises with its queue), one on a
//! 200 Mbit/s plan downloads briefly, and an address missing from ShapedDevices.csv gets
//! traffic. lqosd must rank the slow circuit and its AP first, count it in the latency
//! distribution and list the unmapped address with its bytes.

use std::time::{Duration, Instant};

use lqos_bus::{Command, QoeWindow, Response, WorstBy, WorstKind, WorstList};
use lqos_lab::lab::Lab;
use lqos_lab::traffic::{Way, iperf};

use crate::e2e::{lab, lock, sub};

fn worst(lab: &Lab, kind: WorstKind) -> WorstList {
    let mut bus = lab.bus().expect("bus");
    let cmd = Command::Worst { kind, by: WorstBy::Rtt, window: QoeWindow::Secs60, limit: 10 };
    match bus.request(&cmd).expect("worst") {
        Response::Worst(w) => *w,
        other => panic!("worst: {other:?}\n{}", lab.lqosd_log_tail(30)),
    }
}

#[test]
fn slow_circuit_ranks_first_and_unmapped_traffic_is_listed() {
    let _g = lock();
    let subs =
        vec![sub(0, 10.0, 5.0, true), sub(1, 200.0, 100.0, true), sub(2, 100.0, 50.0, false)];
    let Some(lab) = lab("lqwst", subs) else { return };
    iperf(&lab, 0, Way::Download, 6, false, 5411).expect("iperf3 to the 10 Mbit/s circuit");
    iperf(&lab, 1, Way::Download, 3, false, 5412).expect("iperf3 to the 200 Mbit/s circuit");
    iperf(&lab, 2, Way::Download, 2, false, 5413).expect("iperf3 to the unmapped address");
    // Let the last RTT period close (histograms are read every 2 s).
    std::thread::sleep(Duration::from_millis(2500));

    let c = worst(&lab, WorstKind::Circuits);
    eprintln!(
        "worst circuits: {:?}",
        c.entries.iter().map(|e| (&e.id, e.rtt_access_p90_ms, e.rtt_samples)).collect::<Vec<_>>()
    );
    assert_eq!(c.entries.first().map(|e| e.id.as_str()), Some("c1"), "{c:?}");
    assert!(c.entries.iter().all(|e| e.rtt_samples >= c.min_samples));
    assert!(c.entries.iter().all(|e| e.id != "c3"), "an unmapped address is no circuit");
    let n = worst(&lab, WorstKind::Nodes);
    assert_eq!(n.entries.first().map(|e| e.id.as_str()), Some("AP_A1"), "{n:?}");

    let mut bus = lab.bus().expect("bus");
    let Response::Distribution(d) = bus.request(&Command::QoeDistribution).expect("dist") else {
        panic!("distribution")
    };
    assert!(d.circuits_measured >= 1 && d.circuits_total == 2, "{d:?}");

    // The unknown table is read every 10 s.
    let target = lab.spec.subscribers[2].ipv4.to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let Response::Unknown(u) =
            bus.request(&Command::UnknownAddresses { limit: 100 }).expect("unknown")
        else {
            panic!("unknown")
        };
        if let Some(e) = u.entries.iter().find(|e| e.address == target) {
            eprintln!("unknown {target}: {:?}", e);
            assert!(e.bytes.down > 100_000, "{e:?}");
            assert!(e.last_seen_unix > 0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{target} not among the unknown addresses: {u:?}\n{}",
            lab.lqosd_log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
