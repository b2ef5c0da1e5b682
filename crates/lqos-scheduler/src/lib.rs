//! lqos_scheduler keeps lqosd's inputs in step with the CRM. It waits for lqosd, runs the
//! enabled integration (lqos-integrations: pull → import → guarded publish of `network.json`
//! and `ShapedDevices.csv`), then asks lqosd for a Reload over the bus: a full one at start-up,
//! incremental ones every `queue_refresh_interval_mins` and whenever an operator edits the two
//! files (mtime + content-hash poll every 2 s, debounced: the change must be stable for one
//! more poll). It reports its phase, last run, next run and last error to lqosd.
//!
//! It never changes kernel state and never parses the inputs itself beyond what publish needs;
//! lqosd validates and applies. Main types: [`Args`], [`Scheduler`], [`Bus`] (the seam for
//! tests), [`SocketBus`], [`SchedulerError`], [`InputWatcher`].
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![cfg_attr(test, allow(clippy::unwrap_used, reason = "tests unwrap known-good inputs"))]

mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lqos_bus::{
    BusClient, BusError, Command, CommandError, ReloadMode, ReloadReport, Response, SchedulerState,
};
use lqos_config::{Config, ConfigError, config_path_from_env, load_config};
use lqos_integrations::{
    Crm, HttpOptions, ImportError, PublishOptions, PublishReport, error_chain,
};
use tracing::{debug, error, info, warn};

pub use watch::InputWatcher;

/// How long to wait for lqosd at start-up unless `--wait-lqosd-secs` says otherwise.
pub const DEFAULT_WAIT_LQOSD_SECS: u64 = 60;
/// Deadline of one integration run unless `--import-timeout-secs` says otherwise.
pub const DEFAULT_IMPORT_TIMEOUT_SECS: u64 = 600;
/// How often the input files are polled for manual edits.
pub const WATCH_POLL: Duration = Duration::from_secs(2);
/// The state is re-sent at least this often (lqosd treats a silent scheduler as stale).
pub const HEARTBEAT: Duration = Duration::from_secs(60);

/// Command-line arguments.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "lqos_scheduler",
    version,
    about = "Runs the CRM integration and asks lqosd to reload"
)]
pub struct Args {
    /// lqos.conf (default: $LQOS_CONFIG, else /etc/lqos.conf).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// lqosd's bus socket (default: $LQOS_BUS, else /run/lqos/bus).
    #[arg(long)]
    pub bus: Option<PathBuf>,
    /// Run one cycle (integration → Reload) in the foreground and exit (non-zero on failure).
    #[arg(long)]
    pub once: bool,
    /// With --once: publish even if the import is empty or removes more than max_shrink_ratio.
    #[arg(long, requires = "once")]
    pub force: bool,
    /// With --once: publish the files but do not ask lqosd to reload (no lqosd needed).
    #[arg(long, requires = "once")]
    pub no_reload: bool,
    /// Log every step (requests, counts, the ChangeSet summary).
    #[arg(long)]
    pub debug: bool,
    /// How long to wait for lqosd to answer Ping at start-up.
    #[arg(long, default_value_t = DEFAULT_WAIT_LQOSD_SECS)]
    pub wait_lqosd_secs: u64,
    /// Deadline of one integration run.
    #[arg(long, default_value_t = DEFAULT_IMPORT_TIMEOUT_SECS)]
    pub import_timeout_secs: u64,
    /// Refresh interval in seconds, overriding queue_refresh_interval_mins (tests, lab).
    #[arg(long)]
    pub interval_secs: Option<u64>,
    /// Logging options (`--log-format text|json`).
    #[command(flatten)]
    pub log: lqos_log::LogArgs,
}

/// Why the scheduler (or one cycle) failed.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// lqos.conf could not be loaded.
    #[error("cannot load the configuration")]
    Config {
        /// Cause.
        #[source]
        source: ConfigError,
    },
    /// lqosd did not answer Ping in time.
    #[error(
        "lqosd did not answer on the bus at {} within {waited_secs} s (is it running? systemctl status lqosd; set LQOS_BUS or --bus for another socket)",
        path.display()
    )]
    LqosdUnreachable {
        /// The socket.
        path: PathBuf,
        /// How long we waited.
        waited_secs: u64,
        /// The last failure.
        #[source]
        source: BusError,
    },
    /// The integration failed; the last good files are kept.
    #[error("integration failed")]
    Import {
        /// Cause (names the CRM, URL, status).
        #[source]
        source: ImportError,
    },
    /// lqosd refused or failed the Reload.
    #[error("lqosd refused the reload: {source}")]
    ReloadRefused {
        /// lqosd's answer.
        #[source]
        source: CommandError,
    },
    /// A bus request failed.
    #[error("bus request {what} failed")]
    Bus {
        /// Which request.
        what: &'static str,
        /// Cause.
        #[source]
        source: BusError,
    },
    /// lqosd answered something unexpected.
    #[error("lqosd answered {what} with an unexpected {answer}")]
    Unexpected {
        /// Which request.
        what: &'static str,
        /// The answer, debug-printed.
        answer: String,
    },
    /// The async runtime could not be started.
    #[error("cannot start the async runtime")]
    Runtime {
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl SchedulerError {
    /// The documented exit code: 1 for invalid input (configuration, refused import or
    /// reload), 2 for runtime failures (CRM or lqosd unreachable, I/O).
    pub fn exit_code(&self) -> u8 {
        match self {
            SchedulerError::Config { .. } => 1,
            SchedulerError::Import { source } if source.is_input_error() => 1,
            SchedulerError::ReloadRefused { source: CommandError::InvalidInput { .. } } => 1,
            _ => 2,
        }
    }
}

/// The seam between the scheduler and lqosd: send a command, get the answer.
pub trait Bus {
    /// Sends one command.
    fn request(&mut self, command: &Command) -> Result<Response, BusError>;
    /// Where the bus is, for messages.
    fn describe(&self) -> PathBuf;
}

/// The real bus: a [`BusClient`] on the Unix socket, reconnected after failures.
#[derive(Debug)]
pub struct SocketBus {
    path: PathBuf,
    client: Option<BusClient>,
}

impl SocketBus {
    /// A bus at `path` (connected lazily).
    pub fn new(path: PathBuf) -> Self {
        SocketBus { path, client: None }
    }
}

impl Bus for SocketBus {
    fn request(&mut self, command: &Command) -> Result<Response, BusError> {
        let client = match &mut self.client {
            Some(c) => c,
            None => self.client.insert(BusClient::connect(&self.path)?),
        };
        let r = client.request(command);
        if r.is_err() {
            self.client = None;
        }
        r
    }
    fn describe(&self) -> PathBuf {
        self.path.clone()
    }
}

/// Knobs of a [`Scheduler`], from [`Args`] or set by tests.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// lqos.conf.
    pub config_path: PathBuf,
    /// Skip the sanity guard.
    pub force: bool,
    /// Ask lqosd to reload after a publish.
    pub reload: bool,
    /// Deadline of one integration run.
    pub import_timeout: Duration,
    /// Overrides `queue_refresh_interval_mins`.
    pub interval: Option<Duration>,
    /// Start-up wait for lqosd.
    pub wait_lqosd: Duration,
    /// HTTP settings for the CRM.
    pub http: HttpOptions,
    /// File poll period.
    pub poll: Duration,
}

impl SchedulerOptions {
    /// From the command line.
    pub fn from_args(args: &Args) -> Self {
        SchedulerOptions {
            config_path: config_path_from_env(args.config.as_deref()),
            force: args.force,
            reload: !args.no_reload,
            import_timeout: Duration::from_secs(args.import_timeout_secs.max(1)),
            interval: args.interval_secs.map(|s| Duration::from_secs(s.max(1))),
            wait_lqosd: Duration::from_secs(args.wait_lqosd_secs),
            http: HttpOptions::default(),
            poll: WATCH_POLL,
        }
    }
}

/// What one cycle did.
#[derive(Debug, Clone, Default)]
pub struct CycleReport {
    /// The integration that ran (`None`: no integration enabled, files are managed by hand).
    pub crm: Option<Crm>,
    /// The publish, when the import succeeded.
    pub publish: Option<PublishReport>,
    /// lqosd's answer to the Reload.
    pub reload: Option<ReloadReport>,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The scheduler: one integration + reload cycle at a time, never overlapping.
pub struct Scheduler<B: Bus> {
    opts: SchedulerOptions,
    bus: B,
    rt: tokio::runtime::Runtime,
    config: Config,
    state: SchedulerState,
    watcher: InputWatcher,
    last_sent: Option<(SchedulerState, Instant)>,
}

impl<B: Bus> Scheduler<B> {
    /// Loads the configuration and prepares the runtime; does not touch the bus yet.
    pub fn new(opts: SchedulerOptions, bus: B) -> Result<Self, SchedulerError> {
        let (config, warnings) =
            load_config(&opts.config_path).map_err(|source| SchedulerError::Config { source })?;
        for w in warnings {
            warn!(diagnostic = %w, "configuration warning");
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|source| SchedulerError::Runtime { source })?;
        let (crm, _) = lqos_integrations::enabled_crm(&config);
        let watcher =
            InputWatcher::new(vec![config.network_json_path(), config.shaped_devices_path()]);
        let state = SchedulerState {
            phase: "starting".into(),
            integration: crm.map_or("none", Crm::key).into(),
            ..Default::default()
        };
        Ok(Scheduler { opts, bus, rt, config, state, watcher, last_sent: None })
    }

    /// The state last computed (what lqosd is told).
    pub fn state(&self) -> &SchedulerState {
        &self.state
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The refresh interval: the override, else `queue_refresh_interval_mins`.
    pub fn interval(&self) -> Duration {
        self.opts.interval.unwrap_or_else(|| {
            Duration::from_secs(
                u64::from(self.config.integration_common.queue_refresh_interval_mins.max(1)) * 60,
            )
        })
    }

    /// Pings lqosd until it answers or `wait_lqosd` has passed.
    pub fn wait_for_lqosd(&mut self) -> Result<(), SchedulerError> {
        let start = Instant::now();
        let path = self.bus.describe();
        info!(bus = %path.display(), wait_secs = self.opts.wait_lqosd.as_secs(), "waiting for lqosd");
        let mut logged = false;
        loop {
            match self.bus.request(&Command::Ping) {
                Ok(Response::Pong) => {
                    info!(bus = %path.display(), "lqosd is up");
                    return Ok(());
                }
                Ok(other) => {
                    return Err(SchedulerError::Unexpected {
                        what: "Ping",
                        answer: format!("{other:?}"),
                    });
                }
                Err(source) => {
                    if start.elapsed() >= self.opts.wait_lqosd {
                        return Err(SchedulerError::LqosdUnreachable {
                            path,
                            waited_secs: self.opts.wait_lqosd.as_secs(),
                            source,
                        });
                    }
                    if !logged {
                        info!(bus = %path.display(), error = %error_chain(&source), "lqosd not answering yet; retrying every second");
                        logged = true;
                    }
                    std::thread::sleep(Duration::from_millis(500).min(self.opts.wait_lqosd));
                }
            }
        }
    }

    fn set_phase(&mut self, phase: &str) {
        self.state.phase = phase.to_string();
        info!(phase, integration = %self.state.integration, "phase");
        self.report(false);
    }

    /// Sends the state to lqosd when it changed or the heartbeat is due. Failures are logged
    /// once per state.
    pub fn report(&mut self, force: bool) {
        let due = match &self.last_sent {
            Some((s, at)) => *s != self.state || at.elapsed() >= HEARTBEAT,
            None => true,
        };
        if !(due || force) || !self.opts.reload {
            return;
        }
        match self.bus.request(&Command::SchedulerReport(self.state.clone())) {
            Ok(_) => {}
            Err(e) => debug!(error = %error_chain(&e), "cannot report the scheduler state"),
        }
        self.last_sent = Some((self.state.clone(), Instant::now()));
    }

    fn reload_config(&mut self) -> Result<(), SchedulerError> {
        let (config, warnings) = load_config(&self.opts.config_path)
            .map_err(|source| SchedulerError::Config { source })?;
        for w in warnings {
            debug!(diagnostic = %w, "configuration warning");
        }
        let paths = vec![config.network_json_path(), config.shaped_devices_path()];
        if paths != self.watcher.paths() {
            self.watcher = InputWatcher::new(paths);
        }
        self.config = config;
        Ok(())
    }

    fn import_and_publish(
        &mut self,
    ) -> Result<(Option<Crm>, Option<PublishReport>), SchedulerError> {
        self.reload_config()?;
        let (crm, several) = lqos_integrations::enabled_crm(&self.config);
        if let Some(w) = several {
            warn!("{w}");
        }
        self.state.integration = crm.map_or("none", Crm::key).into();
        let Some(crm) = crm else {
            debug!(
                "no integration enabled; network.json and ShapedDevices.csv are managed by hand"
            );
            return Ok((None, None));
        };
        self.set_phase("importing");
        let started = Instant::now();
        let timeout = self.opts.import_timeout;
        let fut = lqos_integrations::pull_and_import(crm, &self.config, &self.opts.http);
        let imported = self
            .rt
            .block_on(async { tokio::time::timeout(timeout, fut).await })
            .unwrap_or(Err(ImportError::RunTimeout { crm, timeout_secs: timeout.as_secs() }))
            .map_err(|source| SchedulerError::Import { source })?;
        for w in &imported.warnings {
            debug!(crm = crm.key(), warning = %w, "import warning");
        }
        info!(
            crm = crm.key(),
            circuits = imported.circuits.len(),
            nodes = imported.network.nodes.len(),
            warnings = imported.warnings.len(),
            ms = started.elapsed().as_millis() as u64,
            "import done"
        );
        self.set_phase("publishing");
        let report = lqos_integrations::publish(
            &self.config,
            &imported,
            PublishOptions { force: self.opts.force },
        )
        .map_err(|source| SchedulerError::Import { source })?;
        // Our own writes are not operator edits.
        self.watcher.rebaseline();
        Ok((Some(crm), Some(report)))
    }

    /// Asks lqosd to reload.
    pub fn reload(&mut self, mode: ReloadMode) -> Result<ReloadReport, SchedulerError> {
        self.set_phase("reloading");
        let answer = self
            .bus
            .request(&Command::Reload { mode })
            .map_err(|source| SchedulerError::Bus { what: "Reload", source })?;
        match answer {
            Response::Reload(report) => {
                let c = report.counts;
                info!(
                    ?mode,
                    applied = report.applied,
                    full_rebuild = report.full_rebuild,
                    circuits = report.circuits,
                    nodes = report.nodes,
                    added = c.added,
                    changed = c.changed,
                    deleted = c.deleted,
                    mappings_added = c.mappings_added,
                    mappings_removed = c.mappings_removed,
                    apply_ms = report.apply_ms,
                    "reload done"
                );
                debug!(rebuilt = ?report.rebuilt, warnings = ?report.warnings, "reload details");
                for d in &report.diagnostics {
                    debug!(diagnostic = %d, "input diagnostic");
                }
                Ok(*report)
            }
            Response::Error(source) => Err(SchedulerError::ReloadRefused { source }),
            other => {
                Err(SchedulerError::Unexpected { what: "Reload", answer: format!("{other:?}") })
            }
        }
    }

    /// One cycle: integration → publish → Reload(`mode`). With `reload_after_import_failure`
    /// (start-up) lqosd still gets its Reload of the last good files when the import fails;
    /// the import error is returned either way.
    pub fn run_cycle(
        &mut self,
        mode: ReloadMode,
        reload_after_import_failure: bool,
    ) -> Result<CycleReport, SchedulerError> {
        let result = self.cycle_inner(mode, reload_after_import_failure);
        self.state.last_run_unix = Some(unix_now());
        match &result {
            Ok(r) => {
                let mut summary = String::from("ok");
                if let Some(p) = &r.publish {
                    summary.push_str(&format!(
                        ": {} circuits, {} nodes{}",
                        p.circuits,
                        p.nodes,
                        if p.changed() { "" } else { ", unchanged" }
                    ));
                }
                if let Some(rl) = &r.reload {
                    summary.push_str(&format!(
                        "; reload +{} ~{} -{}",
                        rl.counts.added, rl.counts.changed, rl.counts.deleted
                    ));
                }
                self.state.last_result = Some(summary);
                self.state.last_error = None;
                self.state.phase = "idle".into();
            }
            Err(e) => {
                let chain = error_chain(e);
                error!(error = %chain, "cycle failed");
                self.state.last_result = Some(format!("failed: {chain}"));
                self.state.last_error = Some(chain);
                self.state.phase = "failed".into();
            }
        }
        self.report(false);
        result
    }

    fn cycle_inner(
        &mut self,
        mode: ReloadMode,
        reload_after_import_failure: bool,
    ) -> Result<CycleReport, SchedulerError> {
        let (crm, publish) = match self.import_and_publish() {
            Ok(x) => x,
            Err(e) if reload_after_import_failure && self.opts.reload => {
                error!(error = %error_chain(&e), "integration failed; reloading the last good files");
                let _ = self.reload(mode);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let reload = if self.opts.reload { Some(self.reload(mode)?) } else { None };
        Ok(CycleReport { crm, publish, reload })
    }

    /// Runs until `stop` is set: a full cycle at start, a cycle every [`Self::interval`]
    /// (measured from the end of the previous one), and an incremental Reload when the input
    /// files change by hand.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), SchedulerError> {
        self.wait_for_lqosd()?;
        let _ = self.run_cycle(ReloadMode::Full, true);
        let mut next = Instant::now() + self.interval();
        self.state.next_run_unix = Some(unix_now() + self.interval().as_secs());
        self.report(true);
        let mut last_poll = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            if last_poll.elapsed() >= self.opts.poll {
                last_poll = Instant::now();
                if let Some(changed) = self.watcher.poll() {
                    info!(file = %changed.display(), "input file edited; reloading");
                    match self.reload(ReloadMode::Incremental) {
                        Ok(_) => {
                            self.state.phase = "idle".into();
                            self.state.last_error = None;
                        }
                        Err(e) => {
                            let chain = error_chain(&e);
                            error!(error = %chain, "reload after edit failed");
                            self.state.phase = "failed".into();
                            self.state.last_error = Some(chain);
                        }
                    }
                    self.report(false);
                }
            }
            if Instant::now() >= next {
                let _ = self.run_cycle(ReloadMode::Incremental, false);
                next = Instant::now() + self.interval();
                self.state.next_run_unix = Some(unix_now() + self.interval().as_secs());
                self.report(false);
            }
            self.report(false);
        }
        info!("stopping");
        self.state.phase = "stopped".into();
        self.state.next_run_unix = None;
        self.report(true);
        Ok(())
    }

    /// The runtime, for installing signal handlers.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.rt
    }
}

/// Installs SIGINT/SIGTERM handlers that set `stop`.
pub fn stop_on_signals(rt: &tokio::runtime::Runtime, stop: Arc<AtomicBool>) {
    rt.spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            if let (Ok(mut term), Ok(mut int)) =
                (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
            {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                stop.store(true, Ordering::Relaxed);
            }
        }
    });
}

/// The whole program after argument parsing: `--once` runs one cycle, otherwise the daemon.
pub fn run(args: &Args) -> Result<(), SchedulerError> {
    let opts = SchedulerOptions::from_args(args);
    let bus_path = args.bus.clone().unwrap_or_else(lqos_bus::bus_path);
    info!(config = %opts.config_path.display(), bus = %bus_path.display(), "lqos_scheduler starting");
    let mut s = Scheduler::new(opts, SocketBus::new(bus_path))?;
    if args.once {
        if !args.no_reload {
            s.wait_for_lqosd()?;
        }
        let report = s.run_cycle(ReloadMode::Incremental, false)?;
        info!(
            crm = report.crm.map_or("none", Crm::key),
            circuits = report.publish.as_ref().map(|p| p.circuits),
            "cycle finished"
        );
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signals(s.runtime(), stop.clone());
    s.run(&stop)
}

#[cfg(test)]
mod tests;
