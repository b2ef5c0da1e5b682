//! lqos_web in the lab: its own unprivileged process in the shaper namespace, reaching lqosd
//! only over the bus.

use std::time::Duration;

use lqos_lab::lab::{LabSpec, WEB_GID, WEB_UID};

use super::e2e::{lock, sub};

/// `Uid:`/`Gid:`/`CapEff:`/`Groups:` lines of /proc/<pid>/status.
fn proc_status(pid: u32, key: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")).map(|v| v.trim().to_owned()))
        .unwrap_or_default()
}

#[test]
fn lqos_web_runs_unprivileged_and_reaches_lqosd_over_the_bus() {
    let _g = lock();
    if !lqos_lab::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = std::env::temp_dir().join("lqos-e2e-lqweb");
    let _ = std::fs::remove_dir_all(&dir);
    let spec = LabSpec {
        prefix: "lqweb".into(),
        subscribers: vec![sub(0, 10.0, 5.0, true), sub(1, 25.0, 5.0, true)],
        dir,
        web_listen: "127.0.0.1:9123".into(),
    };
    let mut lab = lqos_lab::Lab::up(spec).expect("build lab namespaces");
    lab.start_lqosd(&lqos_lab::find_binary("lqosd")).expect("start lqosd");
    let mut bus = lab.bus().expect("bus");
    let answer = bus
        .request(&lqos_bus::Command::Reload { mode: lqos_bus::ReloadMode::Full })
        .expect("reload");
    assert!(matches!(answer, lqos_bus::Response::Reload(_)), "{answer:?}");
    lab.start_web(&lqos_lab::find_binary("lqos_web")).expect("start lqos_web");
    let pid = lab.web_pid().expect("pid");
    // nsenter and setpriv exec in place: the pid is lqos_web's own.
    let uid = proc_status(pid, "Uid");
    assert!(uid.split_whitespace().all(|u| u == WEB_UID.to_string()), "Uid: {uid}");
    let gid = proc_status(pid, "Gid");
    assert!(gid.split_whitespace().all(|g| g == WEB_GID.to_string()), "Gid: {gid}");
    assert_eq!(proc_status(pid, "CapEff"), "0000000000000000");
    assert_eq!(proc_status(pid, "Groups"), "");
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");

    // /metrics from inside the namespace (loopback): lqos_up 1 and the plan's circuits are
    // only known to lqosd, so they crossed the bus.
    let mut text = String::new();
    for _ in 0..20 {
        text = lab
            .shaper
            .exec_stdout("curl", &["-sk", "--max-time", "5", "http://127.0.0.1:9123/metrics"])
            .unwrap_or_default();
        if text.contains("lqos_up 1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(text.contains("lqos_up 1"), "metrics:\n{text}");
    assert!(text.contains("lqos_circuits 2"), "metrics:\n{text}");
}
