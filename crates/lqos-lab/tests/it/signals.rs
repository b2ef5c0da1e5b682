//! `lqos-lab run` removes its namespaces and pins on SIGTERM and SIGHUP as it does on Ctrl-C
//! (`timeout` or a closed terminal must not leave a lab behind).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Kills the lab process and removes whatever it left, also when the test fails.
struct RunGuard {
    child: Child,
    prefix: String,
    dir: std::path::PathBuf,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        lqos_lab::lab::down_by_prefix(&self.prefix, &self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn leftovers(prefix: &str) -> Vec<String> {
    let mut left: Vec<String> = ["inet", "shaper", "sub"]
        .iter()
        .map(|s| format!("/run/netns/{prefix}-{s}"))
        .filter(|p| Path::new(p).exists())
        .collect();
    let pins = format!("/sys/fs/bpf/lqos-lab-{prefix}");
    if Path::new(&pins).exists() {
        left.push(pins);
    }
    left
}

fn signal_removes_the_lab(signal: Signal, prefix: &str, gui_port: u16) {
    let _g = super::e2e::lock();
    if !lqos_lab::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = std::env::temp_dir().join(format!("lqos-sig-{prefix}"));
    let child = Command::new(env!("CARGO_BIN_EXE_lqos-lab"))
        .args(["--prefix", prefix, "--dir"])
        .arg(&dir)
        .args(["run", "--subscribers", "1", "--duration", "120", "--gui"])
        .arg(format!("127.0.0.1:{gui_port}"))
        .arg("--lqosd")
        .arg(lqos_lab::find_binary("lqosd"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn lqos-lab run");
    let mut guard = RunGuard { child, prefix: prefix.to_owned(), dir };
    let stdout = guard.child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("generating traffic") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(120)).expect("lab came up and started its traffic loop");
    assert!(leftovers(prefix).len() >= 3, "lab namespaces exist while it runs");
    let pid = Pid::from_raw(i32::try_from(guard.child.id()).expect("pid fits i32"));
    kill(pid, signal).expect("send the signal");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = guard.child.try_wait().expect("wait for lqos-lab") {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "lqos-lab did not exit after {signal}");
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("{signal}: lqos-lab exited ({status}) after {:?}", start.elapsed());
    assert_eq!(leftovers(prefix), Vec::<String>::new(), "{signal} left the lab behind");
}

#[test]
fn sigterm_removes_the_lab_namespaces_and_pins() {
    signal_removes_the_lab(Signal::SIGTERM, "lqsigt", 19131);
}

#[test]
fn sighup_removes_the_lab_namespaces_and_pins() {
    signal_removes_the_lab(Signal::SIGHUP, "lqsigh", 19132);
}
