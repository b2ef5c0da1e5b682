//! Preflight: everything that must hold before lqosd touches the kernel. Each failure is one
//! log line naming the cause and the fix; any failure stops lqosd with a non-zero exit so
//! `systemctl status lqosd` shows it failed.

use std::fmt;
use std::path::Path;

use lqos_config::{Config, InterfaceMode};

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What is wrong.
    pub cause: String,
    /// What to do.
    pub fix: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (fix: {})", self.cause, self.fix)
    }
}

fn fail(cause: impl Into<String>, fix: impl Into<String>) -> Failure {
    Failure { cause: cause.into(), fix: fix.into() }
}

/// Reads a small sysfs file, trimmed.
fn read_trim(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// Number of `<prefix>*` entries (`rx-`, `tx-`) under `dev/queues`.
pub fn count_queues(dev: &Path, prefix: &str) -> usize {
    std::fs::read_dir(dev.join("queues"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .count()
        })
        .unwrap_or(0)
}

/// Checks one shaping interface under `sys_class_net`.
pub fn check_interface(sys_class_net: &Path, name: &str, role: &str, out: &mut Vec<Failure>) {
    if name.starts_with(crate::check::PLACEHOLDER_PREFIX) {
        out.push(fail(
            format!("{role} is not configured yet (the packaged placeholder '{name}')"),
            format!("set {role} in /etc/lqos.conf to a NIC name from `ip link show`, then run `lqosd --check`"),
        ));
        return;
    }
    let dev = sys_class_net.join(name);
    if !dev.exists() {
        out.push(fail(
            format!("interface {name} ({role}) does not exist"),
            format!("check the name in /etc/lqos.conf ({role}); `ip link show` lists interfaces"),
        ));
        return;
    }
    let oper = read_trim(&dev.join("operstate")).unwrap_or_default();
    if oper == "down" {
        out.push(fail(
            format!("interface {name} ({role}) is down"),
            format!("bring it up: ip link set {name} up (and check the cable/peer)"),
        ));
    }
    let (rx, tx) = (count_queues(&dev, "rx-"), count_queues(&dev, "tx-"));
    if rx < 2 || tx < 2 {
        out.push(fail(
            format!("interface {name} ({role}) has {rx} RX and {tx} TX queue(s); lqos needs at least 2 of each to spread shaping over CPUs"),
            "use a multi-queue NIC (ethtool -l shows channels; ethtool -L to raise them)",
        ));
    }
}

/// Consistency of the interface mode itself (no host access): two different NICs on a bridge,
/// two different VLANs on a stick.
pub fn mode_checks(config: &Config) -> Vec<Failure> {
    let mut out = Vec::new();
    match &config.interfaces {
        Some(InterfaceMode::Bridge { to_internet, to_network, .. })
            if to_internet == to_network =>
        {
            out.push(fail(
                format!("[bridge] to_internet and to_network are both {to_internet}"),
                "use two different NICs, or [single_interface] for one NIC with VLANs",
            ));
        }
        Some(InterfaceMode::Stick { internet_vlan, network_vlan, .. })
            if internet_vlan == network_vlan =>
        {
            out.push(fail(
                format!(
                    "[single_interface] internet_vlan and network_vlan are both {internet_vlan}"
                ),
                "give the Internet side and the subscriber side different VLAN IDs",
            ));
        }
        _ => {}
    }
    out
}

/// All checks for `config` against the host. Empty = fine.
pub fn run_checks(config: &Config, sys_class_net: &Path, is_root: bool) -> Vec<Failure> {
    let mut out = Vec::new();
    if !is_root {
        out.push(fail("lqosd is not running as root", "run it as root (the systemd unit does)"));
    }
    if config.interfaces.is_none() {
        out.push(fail(
            format!("{} has neither [bridge] nor [single_interface]", config.path.display()),
            "add one of the two sections (see packaging/lqos.example.conf)",
        ));
    }
    out.extend(mode_checks(config));
    match &config.interfaces {
        None => {}
        Some(InterfaceMode::Bridge { to_internet, to_network, .. }) => {
            check_interface(sys_class_net, &to_internet.0, "to_internet", &mut out);
            check_interface(sys_class_net, &to_network.0, "to_network", &mut out);
        }
        Some(InterfaceMode::Stick { interface, .. }) => {
            check_interface(sys_class_net, &interface.0, "single_interface", &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_dev(root: &Path, name: &str, oper: &str, rx: usize, tx: usize) {
        let dev = root.join(name);
        std::fs::create_dir_all(dev.join("queues")).expect("mkdir");
        std::fs::write(dev.join("operstate"), format!("{oper}\n")).expect("write");
        for i in 0..rx {
            std::fs::create_dir_all(dev.join(format!("queues/rx-{i}"))).expect("mkdir");
        }
        for i in 0..tx {
            std::fs::create_dir_all(dev.join(format!("queues/tx-{i}"))).expect("mkdir");
        }
    }

    #[test]
    fn missing_down_and_single_queue_interfaces_are_each_named_with_a_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        fake_dev(dir.path(), "eth1", "down", 4, 4);
        fake_dev(dir.path(), "eth2", "up", 1, 1);
        let mut out = Vec::new();
        check_interface(dir.path(), "eth0", "to_internet", &mut out);
        check_interface(dir.path(), "eth1", "to_network", &mut out);
        check_interface(dir.path(), "eth2", "to_network", &mut out);
        let text: Vec<String> = out.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:#?}");
        assert!(text[0].contains("eth0") && text[0].contains("does not exist"));
        assert!(
            text[1].contains("eth1")
                && text[1].contains("down")
                && text[1].contains("ip link set eth1 up")
        );
        assert!(text[2].contains("eth2") && text[2].contains("1 RX and 1 TX"));
    }

    #[test]
    fn healthy_multiqueue_interface_passes() {
        let dir = tempfile::tempdir().expect("tempdir");
        fake_dev(dir.path(), "eth0", "up", 4, 4);
        let mut out = Vec::new();
        check_interface(dir.path(), "eth0", "to_internet", &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
