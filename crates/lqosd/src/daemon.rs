//! Start-up and shutdown of the daemon: configuration, preflight, host tuning, data plane,
//! restore of the applied plan, the bus and the apply task.
//!
//! Order matters: programs are loaded (verified) before anything is attached; the stored plan
//! is reconciled with the kernel (no rebuild when the tree is intact, so a restart causes no
//! shaping gap); SIGTERM/SIGINT stop the bus, then the apply task drops the
//! data plane, which detaches the programs. The queue tree and pinned maps stay for the next
//! start. After SIGKILL the kernel closes the program links, so the bridge forwards unshaped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lqos_bpf::{Dataplane, InterfaceRole, LoadOptions};
use lqos_config::{Config, InterfaceMode};
use lqos_tc::TcHandle;
use tokio::sync::mpsc;

use crate::engine::{Engine, error_chain, store_for};
use crate::real::RealKernel;
use crate::service::Service;

/// Why lqosd stopped; each maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// lqos.conf is missing or invalid (exit 1).
    #[error("configuration problem: {0}")]
    Config(String),
    /// A preflight check failed (exit 2).
    #[error("preflight failed: {count} problem(s), see the lines above")]
    Preflight {
        /// How many.
        count: usize,
    },
    /// Anything else at run time (exit 2).
    #[error("{0}")]
    Runtime(String),
}

impl DaemonError {
    /// The documented exit code: 1 invalid input, 2 runtime failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Config(_) => 1,
            _ => 2,
        }
    }
}

/// Arguments of `lqosd`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "lqosd",
    version,
    about = "lqos daemon: eBPF data plane, queue tree, stats and the local bus"
)]
pub struct Args {
    /// lqos.conf (default: $LQOS_CONFIG, else /etc/lqos.conf).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Run every start-up check (config, capabilities, interfaces, bpffs, kernel, BPF, qdiscs,
    /// directories) without changing anything, print PASS/WARN/FAIL lines with the fix for each
    /// and exit: 0 all passed, 1 something failed.
    #[arg(long)]
    pub check: bool,
    /// Logging options (`--log-format text|json`).
    #[command(flatten)]
    pub log: lqos_log::LogArgs,
}

fn load(path: &Path) -> Result<Config, DaemonError> {
    lqos_config::load_config_logged(path).map_err(DaemonError::Config)
}

/// Turns XPS off on every TX queue so `skb->queue_mapping` set by the tc program is kept.
fn disable_xps(ifname: &str) {
    let dir = Path::new("/sys/class/net").join(ifname).join("queues");
    let Ok(rd) = std::fs::read_dir(&dir) else { return };
    for e in rd.filter_map(Result::ok) {
        if e.file_name().to_string_lossy().starts_with("tx-") {
            let f = e.path().join("xps_cpus");
            if f.exists()
                && let Err(err) = std::fs::write(&f, "0")
            {
                tracing::debug!(file = %f.display(), error = %err, "cannot disable XPS");
            }
        }
    }
}

fn runtime(context: &str, e: &dyn std::error::Error) -> DaemonError {
    DaemonError::Runtime(format!("{context}: {}", error_chain(e)))
}

/// `lqosd --check`: the report of [`crate::check::run`] against this host.
pub fn check(args: &Args) -> crate::check::Report {
    let path = lqos_config::config_path_from_env(args.config.as_deref());
    crate::check::run(&path, &crate::check::Host::default(), &crate::check::KernelProbes)
}

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(args: Args) -> Result<(), DaemonError> {
    let path = lqos_config::config_path_from_env(args.config.as_deref());
    let config = load(&path)?;
    tracing::info!(config = %path.display(), "lqosd starting");

    let failures = crate::preflight::run_checks(
        &config,
        Path::new("/sys/class/net"),
        nix::unistd::Uid::effective().is_root(),
    );
    for f in &failures {
        tracing::error!(cause = %f.cause, fix = %f.fix, "preflight");
    }
    if !failures.is_empty() {
        tracing::error!("run `lqosd --check` for every start-up check with its fix");
        return Err(DaemonError::Preflight { count: failures.len() });
    }
    let facts = crate::facts::host_facts(&config).map_err(|e| runtime("host facts", &e))?;
    let Some(mode) = config.interfaces.clone() else {
        return Err(DaemonError::Preflight { count: 1 });
    };
    // Host tuning (sysctls, NIC offloads, coalescing, governor, irqbalance) before anything is
    // attached: XDP must see unsegmented packets with their VLAN tags. Never fatal.
    crate::tuning::apply_at_startup(&config.tuning, &crate::tuning::shaping_interfaces(&mode));
    let mut tc = TcHandle::new().map_err(|e| runtime("open netlink", &e))?;
    // The probe needs a scratch network namespace. Under the hardened unit (no CAP_SYS_ADMIN,
    // RestrictNamespaces) it cannot make one: that is not a reason to refuse to shape. Warn and
    // go on; a missing module is then named by the first apply that adds such a leaf.
    let supported = match &config.queues.default_sqm.leaf {
        None => true,
        Some(leaf) => tc.probe_qdisc_support(leaf).unwrap_or_else(|e| {
            tracing::warn!(
                kind = leaf.kind(),
                error = %error_chain(&e),
                "cannot probe qdisc support here (no scratch namespace); assuming the kernel has it"
            );
            true
        }),
    };
    if let Some(leaf) = &config.queues.default_sqm.leaf
        && !supported
    {
        let e = lqos_tc::TcError::UnsupportedQdisc {
            kind: leaf.kind().to_owned(),
            module: lqos_tc::error::module_for(leaf.kind()),
            hint: lqos_tc::error::hint_for(leaf.kind()),
        };
        tracing::error!(error = %error_chain(&e), "preflight");
        return Err(DaemonError::Preflight { count: 1 });
    }

    match lqos_bpf::ensure_bpffs() {
        Ok(true) => tracing::info!("mounted bpffs on /sys/fs/bpf"),
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %error_chain(&e), fix = "mount -t bpf bpf /sys/fs/bpf", "preflight: bpffs");
            return Err(DaemonError::Preflight { count: 1 });
        }
    }
    let stored = stored_circuits(&config);
    let mut dp = Dataplane::load(&LoadOptions {
        pin_dir: Some(pin_dir()),
        cpumap_queue_size: 2048,
        max_slots: max_slots(stored),
        max_flows: max_flows(stored),
        ..LoadOptions::default()
    })
    .map_err(|e| runtime("load eBPF programs", &e))?;
    let roles: Vec<(String, InterfaceRole)> = match &mode {
        InterfaceMode::Bridge { to_internet, to_network, .. } => vec![
            (to_internet.0.clone(), InterfaceRole::ToInternet),
            (to_network.0.clone(), InterfaceRole::ToNetwork),
        ],
        InterfaceMode::Stick { interface, internet_vlan, network_vlan, .. } => {
            let (_, offset) = lqos_plan::queue_count(&mode, &config, facts)
                .map_err(|e| runtime("queue count", &e))?;
            vec![(
                interface.0.clone(),
                InterfaceRole::Stick {
                    internet_vlan: *internet_vlan,
                    network_vlan: *network_vlan,
                    stick_offset: u32::from(offset),
                },
            )]
        }
    };
    for (ifname, role) in &roles {
        disable_xps(ifname);
        let xdp_mode = dp
            .attach_xdp(ifname, *role)
            .map_err(|e| runtime(&format!("attach XDP to {ifname}"), &e))?;
        dp.attach_tc_egress(ifname, *role)
            .map_err(|e| runtime(&format!("attach tc egress to {ifname}"), &e))?;
        tracing::info!(interface = %ifname, ?xdp_mode, "data plane attached");
    }

    let kernel = RealKernel::new(tc, dp);
    let mut engine = Engine::new(kernel, store_for(&config));
    let restored = if config.queues.dry_run {
        tracing::warn!(
            "dry_run = true in lqos.conf: the stored plan is not restored and reloads change \
             nothing in the kernel; they log and report what they would apply"
        );
        Ok(None)
    } else {
        engine.restore()
    };
    match restored {
        Ok(Some(r)) => tracing::info!(
            circuits = r.circuits,
            repaired = r.counts.added + r.counts.changed + r.counts.deleted,
            "applied plan restored"
        ),
        Ok(None) => {
            tracing::info!("no applied plan yet; waiting for a Reload (libreqos or lqos_scheduler)")
        }
        Err(e) => {
            tracing::error!(error = %e, "could not restore the applied plan; the next Reload will retry")
        }
    }
    let tick = Duration::from_millis(config.queue_check_period_ms.clamp(250, 10_000));
    let mut service = Service::new(engine, config.clone(), facts);
    if config.history.enabled {
        let path = config.state_directory.join(lqos_history::FILE_NAME);
        match crate::history::HistoryFeed::open(&path, config.history.max_disk_mb) {
            Ok(feed) => {
                tracing::info!(path = %path.display(), max_disk_mb = config.history.max_disk_mb, "history store open");
                service.set_history(feed);
            }
            Err(e) => {
                tracing::warn!(error = %e, "history store unavailable; running without history")
            }
        }
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| runtime("start tokio", &e))?;
    let (tx, rx) = mpsc::channel(64);
    // History questions are answered beside the apply task, straight from the store.
    let history = service.history().map(crate::history::HistoryFeed::shared);
    let apply_thread = std::thread::Builder::new()
        .name("apply".into())
        .spawn(move || service.run(rx, tick))
        .map_err(|e| runtime("spawn the apply task", &e))?;
    let bus_path = lqos_bus::bus_path();
    let result = rt.block_on(async move {
        // Peers are checked by credentials: root and group lqos-admin may change state,
        // group lqos may read, others are refused (lqos_bus::server).
        // LQOS_BUS_ADMIN_GIDS (comma-separated gids) adds admin groups, e.g. for the lab.
        let extra_admin: Vec<u32> = std::env::var("LQOS_BUS_ADMIN_GIDS")
            .unwrap_or_default()
            .split(',')
            .filter_map(|g| g.trim().parse().ok())
            .collect();
        let policy = std::sync::Arc::new(
            lqos_bus::server::PeerPolicy::system().with_admin_gids(extra_admin),
        );
        let listener = lqos_bus::server::bind_with_group(&bus_path, policy.socket_gid())
            .map_err(|e| runtime("bind the bus", &e))?;
        tracing::info!(path = %bus_path.display(), access = %policy.describe(), "bus listening");
        let (bus_tx, bus_rx) = mpsc::channel(64);
        let router = tokio::spawn(crate::history::route(bus_rx, tx.clone(), history));
        let bus = tokio::spawn(lqos_bus::server::serve_with(
            listener,
            bus_tx,
            policy,
            lqos_bus::server::Limits::default(),
        ));
        drop(tx);
        wait_for_signal().await;
        tracing::info!(
            "stopping: detaching the data plane (the queue tree stays for the next start)"
        );
        bus.abort();
        router.abort();
        let _ = std::fs::remove_file(&bus_path);
        Ok::<(), DaemonError>(())
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    let _ = apply_thread.join();
    result
}

/// Circuits of the plan lqosd applied last (0 when none is stored).
fn stored_circuits(config: &Config) -> usize {
    store_for(config).load().ok().flatten().map_or(0, |p| p.circuits.len())
}

/// A power of two with room for the stored circuits and a quarter more.
fn circuit_room(stored: usize) -> u32 {
    let want = stored.saturating_add(stored / 4).saturating_add(1);
    want.checked_next_power_of_two().and_then(|n| u32::try_from(n).ok()).unwrap_or(1 << 31)
}

/// Counter slots to allocate: `LQOS_MAX_SLOTS` when set, else room for the stored plan's
/// circuits plus a quarter (a power of two, at least lqos-bpf's default). The per-CPU counter
/// arrays are preallocated, so this is not simply "as many as possible"; a change of size
/// recreates the counter maps (one warning) at the next start.
fn max_slots(stored: usize) -> u32 {
    if let Some(n) = std::env::var("LQOS_MAX_SLOTS").ok().and_then(|v| v.parse::<u32>().ok())
        && n >= 2
    {
        return n;
    }
    circuit_room(stored).max(lqos_bpf::DEFAULT_MAX_SLOTS)
}

/// Flow-table entries: 8 per circuit (with a quarter more circuits of room: the flows a
/// subscriber has going at once, and room for the table's 4-way sets to stay under half
/// full), at least lqos-bpf's default (65 536, 12 MiB) and at most 2^20 (192 MiB).
/// `LQOS_MAX_FLOWS` (a power of two ≥ 4) overrides. Before, every box had 65 536 entries:
/// from a few thousand busy subscribers on, new flows found the table full and their
/// circuits had no RTT samples. Read at start: a plan that grows a lot gets its bigger table
/// at the next restart.
fn max_flows(stored: usize) -> u32 {
    if let Some(n) = std::env::var("LQOS_MAX_FLOWS").ok().and_then(|v| v.parse::<u32>().ok())
        && n >= lqos_bpf::abi::FLOW_WAYS
        && n.is_power_of_two()
    {
        return n;
    }
    flows_for_circuits(stored)
}

fn flows_for_circuits(stored: usize) -> u32 {
    circuit_room(stored).saturating_mul(8).clamp(lqos_bpf::DEFAULT_MAX_FLOWS, 1 << 20)
}

/// Where the maps are pinned: `LQOS_PIN_DIR` (the lab gives each lqosd its own), else
/// `/sys/fs/bpf/lqos`.
pub fn pin_dir() -> PathBuf {
    std::env::var_os("LQOS_PIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(lqos_bpf::DEFAULT_PIN_DIR))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        // Without signal handlers, run until killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

#[cfg(test)]
mod tests {
    use super::{circuit_room, flows_for_circuits};

    #[test]
    fn the_flow_table_grows_with_the_circuits_within_bounds() {
        assert_eq!(flows_for_circuits(0), lqos_bpf::DEFAULT_MAX_FLOWS);
        assert_eq!(flows_for_circuits(8), lqos_bpf::DEFAULT_MAX_FLOWS); // the lab: 12 MiB
        assert_eq!(flows_for_circuits(10_000), 131_072); // 12 501 → 16 384 × 8
        assert_eq!(flows_for_circuits(100_000), 1 << 20);
        assert_eq!(flows_for_circuits(usize::MAX), 1 << 20);
        assert_eq!(circuit_room(0), 1);
        assert_eq!(circuit_room(100_000), 131_072);
        assert_eq!(circuit_room(usize::MAX), 1 << 31);
    }
}
