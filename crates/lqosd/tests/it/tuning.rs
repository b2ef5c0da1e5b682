//! Kernel test for `[tuning]`: the planned ethtool steps run on a veth pair inside a private
//! network namespace (commands prefixed with `ip netns exec`), then `ethtool -k` must show
//! gso/tso/gro off. Sysctl, governor and irqbalance steps are host-wide and are not run here.
#![expect(clippy::print_stdout, reason = "the test reports skips and the summary on stdout")]

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use lqosd::tuning::{Action, CommandOutput, Runner, SystemRunner, apply, plan_tuning};

/// Kernel tests run one at a time.
static KERNEL: Mutex<()> = Mutex::new(());

fn sh(program: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(program).args(args).output().expect("spawn");
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// A network namespace deleted on drop (also on panic).
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("lqos-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh("ip", &["netns", "add", &name]);
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// Runs commands inside a namespace; refuses file writes (they would hit the host).
struct NetnsRunner<'a>(&'a str);

impl Runner for NetnsRunner<'_> {
    fn write_file(&self, path: &Path, _value: &str) -> std::io::Result<()> {
        Err(std::io::Error::other(format!("{} is host-wide", path.display())))
    }
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        Err(std::io::Error::other(format!("{} is host-wide", dir.display())))
    }
    fn run(&self, program: &str, args: &[String]) -> std::io::Result<CommandOutput> {
        let mut full = vec!["netns".to_owned(), "exec".into(), self.0.to_owned(), program.into()];
        full.extend(args.iter().cloned());
        SystemRunner.run("ip", &full)
    }
}

fn ethtool_k(ns: &str) -> String {
    let out = sh("ip", &["netns", "exec", ns, "ethtool", "-k", "tv0"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

#[test]
fn ethtool_steps_turn_offloads_off_on_veth() {
    if !is_root() {
        println!("skipped: needs root");
        return;
    }
    let _serial = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Netns::new("tune");
    sh("ip", &["-n", &ns.0, "link", "add", "tv0", "type", "veth", "peer", "name", "tv1"]);
    let tuning = lqos_config::Tuning {
        set_cpu_governor_performance: false,
        stop_irq_balance: false,
        netdev_budget_usecs: 8000,
        netdev_budget_packets: 300,
        rx_usecs: 8,
        tx_usecs: 8,
        disable_rxvlan: true,
        disable_txvlan: true,
        disable_offload: ["gso", "tso", "lro", "sg", "gro"].map(String::from).to_vec(),
    };
    let steps: Vec<_> = plan_tuning(&tuning, &["tv0".to_owned()])
        .into_iter()
        .filter(|s| matches!(&s.action, Action::Command { program, .. } if program == "ethtool"))
        .collect();
    assert_eq!(steps.len(), 9, "7 offloads + 2 coalescing");
    let before = ethtool_k(&ns.0);
    assert!(
        before.contains("generic-segmentation-offload: on"),
        "veth starts with gso on:\n{before}"
    );
    let report = apply(&steps, &NetnsRunner(&ns.0));
    println!("{}", report.summary());
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(report.missing_programs.is_empty(), "ethtool is installed: {report:?}");
    assert_eq!(report.applied + report.not_supported.len(), 9, "{report:?}");
    assert!(
        report.not_supported.iter().all(|s| s == "tv0: rx-usecs" || s == "tv0: tx-usecs"),
        "only coalescing may be unsupported on veth: {report:?}"
    );
    let k = ethtool_k(&ns.0);
    for feature in [
        "generic-segmentation-offload",
        "tcp-segmentation-offload",
        "generic-receive-offload",
        "scatter-gather",
        "rx-vlan-offload",
        "tx-vlan-offload",
    ] {
        let line = k
            .lines()
            .find(|l| l.starts_with(&format!("{feature}:")))
            .unwrap_or_else(|| panic!("{feature} missing from ethtool -k:\n{k}"));
        assert!(line.contains(": off"), "{line}");
    }
}
