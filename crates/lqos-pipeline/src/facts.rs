//! Host facts for the planner: CPUs and TX queues of the shaping interfaces, read from sysfs
//! (the only I/O besides the input files and the state store).

use std::path::Path;

use lqos_config::{Config, InterfaceMode};
use lqos_plan::HostFacts;

/// Why the facts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    /// No `[bridge]` or `[single_interface]` section.
    #[error(
        "lqos.conf has neither [bridge] nor [single_interface]: add one (see packaging/lqos.example.conf)"
    )]
    NoInterfaces,
    /// The interface does not exist.
    #[error("interface {name} does not exist (ip link show {name})")]
    Missing {
        /// The interface named in lqos.conf.
        name: String,
    },
}

/// CPUs this host can shape on: the online CPU count.
pub fn cpu_count() -> u32 {
    std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1)
}

/// The CPU count to shape on. With `exclude_efficiency_cores` on a hybrid CPU (Linux lists
/// the performance cores in `<devices>/cpu_core/cpus` and the efficiency cores in
/// `<devices>/cpu_atom/cpus`), only the performance cores count, so no queue lands on an
/// E-core (LibreQoS's rule). Without the option, on a CPU that is not hybrid, or when the
/// list cannot be read, all `online` CPUs count. `devices` is `/sys/devices` on a host.
pub fn shaping_cpu_count(devices: &Path, online: u32, exclude_efficiency_cores: bool) -> u32 {
    if !exclude_efficiency_cores || !devices.join("cpu_atom").exists() {
        return online;
    }
    let performance = std::fs::read_to_string(devices.join("cpu_core").join("cpus"))
        .ok()
        .map_or(0, |list| cpu_list_len(&list));
    match performance {
        0 => online,
        n => n.min(online.max(1)),
    }
}

/// Number of CPUs in a sysfs CPU list such as `0-7,16,18-19` (0 when it does not parse).
fn cpu_list_len(list: &str) -> u32 {
    let mut n: u32 = 0;
    for part in list.trim().split(',').filter(|p| !p.trim().is_empty()) {
        let (a, b) = match part.trim().split_once('-') {
            Some((a, b)) => (a.trim().parse::<u32>(), b.trim().parse::<u32>()),
            None => (part.trim().parse::<u32>(), part.trim().parse::<u32>()),
        };
        match (a, b) {
            (Ok(a), Ok(b)) if a <= b => n = n.saturating_add((b - a).saturating_add(1)),
            _ => return 0,
        }
    }
    n
}

/// Number of `tx-*` queues of `ifname` (0 when it has no queue directory).
pub fn tx_queues(sys_class_net: &Path, ifname: &str) -> Result<u32, FactsError> {
    let dev = sys_class_net.join(ifname);
    if !dev.exists() {
        return Err(FactsError::Missing { name: ifname.to_owned() });
    }
    let count = std::fs::read_dir(dev.join("queues"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("tx-"))
                .count() as u32
        })
        .unwrap_or(0);
    Ok(count)
}

/// Facts for `config`'s interfaces on this host.
pub fn host_facts(config: &Config) -> Result<HostFacts, FactsError> {
    let sys = Path::new("/sys/class/net");
    let mode = config.interfaces.as_ref().ok_or(FactsError::NoInterfaces)?;
    let (down, up) = match mode {
        InterfaceMode::Bridge { to_internet, to_network, .. } => {
            (tx_queues(sys, &to_network.0)?, tx_queues(sys, &to_internet.0)?)
        }
        InterfaceMode::Stick { interface, .. } => {
            let q = tx_queues(sys, &interface.0)?;
            (q, q)
        }
    };
    let cpus =
        shaping_cpu_count(Path::new("/sys/devices"), cpu_count(), config.exclude_efficiency_cores);
    Ok(HostFacts { cpus, download_tx_queues: down, upload_tx_queues: up })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sysfs(core: Option<&str>, atom: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, list) in [("cpu_core", core), ("cpu_atom", atom)] {
            if let Some(list) = list {
                std::fs::create_dir_all(dir.path().join(name)).expect("mkdir");
                std::fs::write(dir.path().join(name).join("cpus"), format!("{list}\n"))
                    .expect("write");
            }
        }
        dir
    }

    #[test]
    fn efficiency_cores_are_left_out_only_when_asked_and_present() {
        // An i9-13900: 8 P-cores with SMT (0-15), 16 E-cores (16-31).
        let hybrid = fake_sysfs(Some("0-15"), Some("16-31"));
        assert_eq!(shaping_cpu_count(hybrid.path(), 32, true), 16);
        assert_eq!(shaping_cpu_count(hybrid.path(), 32, false), 32);
        // Not hybrid: nothing to exclude.
        let plain = fake_sysfs(None, None);
        assert_eq!(shaping_cpu_count(plain.path(), 8, true), 8);
        // Split lists, and a list that does not parse falls back to every CPU.
        let split = fake_sysfs(Some("0-3,8,10-11"), Some("4-7,9"));
        assert_eq!(shaping_cpu_count(split.path(), 12, true), 7);
        let junk = fake_sysfs(Some("zero-three"), Some("4-7"));
        assert_eq!(shaping_cpu_count(junk.path(), 8, true), 8);
        let reversed = fake_sysfs(Some("7-0"), Some("8"));
        assert_eq!(shaping_cpu_count(reversed.path(), 9, true), 9);
        // Never more than the CPUs online (offline P-cores).
        let big = fake_sysfs(Some("0-4294967295"), Some("1"));
        assert_eq!(shaping_cpu_count(big.path(), 4, true), 4);
    }
}
