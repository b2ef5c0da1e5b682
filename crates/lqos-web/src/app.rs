//! What the `lqos_web` binary does: read lqos.conf, build the [`WebOptions`] from it, connect
//! the [`BusBackend`] to lqosd's bus and serve until SIGTERM/SIGINT.
//!
//! Exit codes: 0 stopped cleanly (or `disable_webserver = true`), 1 invalid configuration,
//! 2 runtime failure (cannot listen, cannot read the users file).

use std::path::PathBuf;
use std::sync::Arc;

use lqos_config::Config;

use crate::bus::BusBackend;
use crate::{WebOptions, WebState};

/// Arguments of `lqos_web`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "lqos_web",
    version,
    about = "lqos web server: GUI, REST API and /metrics; unprivileged, talks to lqosd over the bus"
)]
pub struct Args {
    /// lqos.conf (default: $LQOS_CONFIG, else /etc/lqos.conf).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// lqosd's bus socket (default: $LQOS_BUS, else /run/lqos/bus).
    #[arg(long, value_name = "PATH")]
    pub bus: Option<PathBuf>,
    /// Logging options (`--log-format text|json`).
    #[command(flatten)]
    pub log: lqos_log::LogArgs,
}

/// Why `lqos_web` stopped.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// lqos.conf is missing or invalid (exit 1).
    #[error("configuration problem: {0}")]
    Config(String),
    /// Anything else at run time (exit 2).
    #[error("{0}")]
    Runtime(String),
}

impl AppError {
    /// The documented exit code: 1 invalid input, 2 runtime failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_) => 1,
            AppError::Runtime(_) => 2,
        }
    }
}

/// The whole error chain of `e`, `: `-separated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

fn load(path: &std::path::Path) -> Result<Config, AppError> {
    lqos_config::load_config_logged(path).map_err(AppError::Config)
}

/// This machine's host name (`/proc/sys/kernel/hostname`), lowercase, if known.
pub fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

/// The web options for `config`, with the environment read through `env` (see
/// [`crate::metrics::settings`]) and `host` (this machine's name) added to the allowed hosts.
pub fn options_from_config(
    config: &Config,
    env: impl Fn(&str) -> Option<String>,
    host: Option<String>,
) -> WebOptions {
    let mut opts = WebOptions::new(config.lqos_directory.clone());
    opts.config_path = Some(config.path.clone());
    (opts.metrics_enabled, opts.metrics_token) = crate::metrics::settings(&config.metrics, env);
    opts.metrics_public = config.metrics.public;
    opts.tls = config.web.tls;
    opts.trusted_proxies = config.web.trusted_proxies.clone();
    opts.allowed_hosts = config.web.allowed_hosts.clone();
    opts.allowed_hosts.extend(host);
    opts
}

/// The HTTPS configuration for `config` (`None` when `[web] tls = "off"`), logging the
/// certificate's fingerprint.
pub fn tls_for(
    config: &Config,
    host: Option<&str>,
) -> Result<Option<Arc<rustls::ServerConfig>>, AppError> {
    if !config.web.tls {
        tracing::warn!(
            "[web] tls = \"off\": serving plain HTTP; only do this behind a reverse proxy that \
             terminates HTTPS (list it in [web] trusted_proxies)"
        );
        return Ok(None);
    }
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    names.extend(host.map(str::to_owned));
    names.extend(config.web.allowed_hosts.iter().filter(|h| *h != "*").cloned());
    let setup = crate::tls::load_or_generate(
        config.web.tls_cert.as_deref(),
        config.web.tls_key.as_deref(),
        &config.state_directory,
        &names,
    )
    .map_err(|e| AppError::Runtime(format!("HTTPS set-up: {}", error_chain(&e))))?;
    if setup.generated {
        tracing::info!(cert = %setup.cert_path.display(), "generated a self-signed certificate");
    }
    tracing::info!(
        cert = %setup.cert_path.display(),
        sha256 = %setup.fingerprint,
        "HTTPS certificate (compare this fingerprint with the one your browser shows)"
    );
    Ok(Some(setup.config))
}

/// Runs the web server until SIGTERM/SIGINT.
pub fn run(args: Args) -> Result<(), AppError> {
    let path = lqos_config::config_path_from_env(args.config.as_deref());
    let config = load(&path)?;
    if config.disable_webserver {
        tracing::info!(config = %path.display(), "web server disabled (disable_webserver = true)");
        return Ok(());
    }
    let bus_path = args.bus.unwrap_or_else(lqos_bus::bus_path);
    let host = hostname();
    let opts = options_from_config(&config, |name| std::env::var(name).ok(), host.clone());
    let tls = tls_for(&config, host.as_deref())?;
    let backend = BusBackend::new(&bus_path);
    let state = WebState::new(Arc::new(backend), opts).map_err(|e| {
        AppError::Runtime(format!("cannot read the users file: {}", error_chain(&e)))
    })?;
    tracing::info!(config = %path.display(), bus = %bus_path.display(), "lqos_web starting");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| AppError::Runtime(format!("start tokio: {e}")))?;
    let listen = config.webserver_listen.clone();
    rt.block_on(async move {
        let listener = crate::server::bind(&listen).await?;
        crate::server::serve_with(
            listener,
            state,
            tls,
            crate::server::Limits::default(),
            wait_for_signal(),
        )
        .await
    })
    .map_err(|e| AppError::Runtime(error_chain(&e)))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("stopping the web server");
}
