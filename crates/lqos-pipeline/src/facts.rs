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
    Ok(HostFacts { cpus: cpu_count(), download_tx_queues: down, upload_tx_queues: up })
}
