//! lqosd is the daemon and the only process that changes kernel state: it loads and attaches
//! the eBPF programs (lqos-bpf), owns the tc queue tree (lqos-tc), applies plans (lqos-plan)
//! built from the validated inputs (lqos-config), collects live statistics, and serves the
//! local bus and the web GUI. Everything that changes the kernel goes through one apply task
//! ([`service::Service`]) that answers [`lqos_bus::Command`]s one at a time.
//!
//! Main types: [`engine::Engine`] (validate → plan → diff → apply, with the applied plan kept
//! in `state_directory`), [`kernel::Kernel`] (the kernel door, with a recording fake),
//! [`service::Service`] (the apply task), [`stats::StatsTracker`], [`tuning::plan_tuning`]
//! (host tuning from `[tuning]`, applied once at start-up).
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod daemon;
pub mod engine;
pub mod facts;
pub mod flows;
pub mod kernel;
pub mod observe;
pub mod preflight;
pub mod qoe;
pub mod real;
pub mod service;
pub mod slots;
pub mod stages;
pub mod stats;
#[cfg(test)]
mod testutil;
pub mod tuning;
pub mod web;

/// The web layer's door to the apply task: every API call becomes a bus command on the same
/// queue as the bus and the scheduler use.
struct QueueBackend(tokio::sync::mpsc::Sender<lqos_bus::server::Request>);

impl web::Backend for QueueBackend {
    fn request(
        &self,
        cmd: lqos_bus::Command,
    ) -> futures_util::future::BoxFuture<'_, lqos_bus::Response> {
        Box::pin(lqos_bus::server::dispatch(&self.0, cmd))
    }
}

/// Starts the web server unless `disable_webserver` is set, feeding its requests to the apply
/// task through `queue`. `/metrics` follows lqos.conf `[metrics]` (`enabled`, `token`: when a
/// token is set it wants `Authorization: Bearer <token>`). The environment wins over the file:
/// `LQOS_METRICS=off` disables the endpoint (any other non-empty value enables it) and a
/// non-empty `LQOS_METRICS_TOKEN` replaces the token (see [`web::metrics::settings`]).
pub fn web_task(
    config: &lqos_config::Config,
    queue: tokio::sync::mpsc::Sender<lqos_bus::server::Request>,
) -> Option<tokio::task::JoinHandle<()>> {
    if config.disable_webserver {
        tracing::info!("web server disabled (disable_webserver = true)");
        return None;
    }
    let mut opts = web::WebOptions::new(config.lqos_directory.clone());
    opts.config_path = Some(config.path.clone());
    (opts.metrics_enabled, opts.metrics_token) =
        web::metrics::settings(&config.metrics, |name| std::env::var(name).ok());
    let state = match web::WebState::new(std::sync::Arc::new(QueueBackend(queue)), opts) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %engine::error_chain(&e), "web server not started: cannot read the users file");
            return None;
        }
    };
    let listen = config.webserver_listen.clone();
    Some(tokio::spawn(async move {
        if let Err(e) = web::serve(&listen, state, std::future::pending()).await {
            tracing::error!(listen = %listen, error = %engine::error_chain(&e), "web server stopped");
        }
    }))
}
