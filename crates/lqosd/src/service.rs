//! The apply task: owns the [`Engine`] (and through it the kernel handles) and answers every
//! [`Command`], one at a time, from the bus, the web API and the scheduler alike. Between
//! commands it ticks the statistics once per second.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lqos_bus::server::Request;
use lqos_bus::{
    Command, CommandError, DaemonStatus, MappingEntry, ReloadMode, Response, SchedulerState,
};
use lqos_config::{Config, ConfigError, InterfaceMode};
use lqos_plan::HostFacts;
use tokio::sync::mpsc;

use crate::engine::{Engine, error_chain};
use crate::kernel::Kernel;
use crate::stats::StatsTracker;

/// Most flows answered per circuit.
pub const FLOWS_PER_CIRCUIT: usize = 50;

/// The apply task's state.
#[derive(Debug)]
pub struct Service<K: Kernel> {
    engine: Engine<K>,
    config_path: PathBuf,
    config: Config,
    facts: HostFacts,
    stats: StatsTracker,
    started: Instant,
    scheduler: Option<SchedulerState>,
    /// Last stats command: HTB class counters are read while it is recent.
    stats_interest: Option<Instant>,
    /// `LQOS_STATS_EAGER=1`: read the class counters every tick (the old behaviour; the idle
    /// benchmark's baseline).
    stats_eager: bool,
    tick_every: Duration,
    slot_buf: Vec<crate::kernel::SlotCounters>,
    hist_buf: Vec<crate::kernel::RttHistogram>,
    flows: crate::flows::FlowView,
    /// Recent `CircuitQueue` answers and the kernel-read budget.
    queues: crate::queue::QueueView,
    /// The history store's feed (`None` = history off).
    history: Option<crate::history::HistoryFeed>,
    /// Worst-first rankings' cache and the unknown addresses.
    insight: crate::insight::Insight,
    /// Warnings shown by Status (interface down, …).
    pub warnings: Vec<String>,
    /// The data plane's counters, read with every flow sweep.
    dataplane: Option<lqos_bus::DataplaneHealth>,
    /// Set while the flow table is small for the applied plan (shown with the warnings).
    flow_table_warning: Option<String>,
}

impl<K: Kernel> Service<K> {
    /// A service over `engine`, planning for `facts`.
    pub fn new(engine: Engine<K>, config: Config, facts: HostFacts) -> Self {
        let mut s = Service {
            engine,
            config_path: config.path.clone(),
            config,
            facts,
            stats: StatsTracker::default(),
            started: Instant::now(),
            scheduler: None,
            stats_interest: None,
            stats_eager: std::env::var("LQOS_STATS_EAGER").is_ok_and(|v| v == "1"),
            tick_every: Duration::from_secs(1),
            slot_buf: Vec::new(),
            hist_buf: Vec::new(),
            flows: crate::flows::FlowView::default(),
            queues: crate::queue::QueueView::default(),
            history: None,
            insight: crate::insight::Insight::default(),
            warnings: Vec::new(),
            dataplane: None,
            flow_table_warning: None,
        };
        s.refresh_mapped();
        s
    }

    /// Records history from now on (each tick hands a batch to the store's writer).
    pub fn set_history(&mut self, feed: crate::history::HistoryFeed) {
        self.history = Some(feed);
    }

    /// The history feed, if history is on.
    pub fn history(&self) -> Option<&crate::history::HistoryFeed> {
        self.history.as_ref()
    }

    /// The engine (tests).
    pub fn engine(&self) -> &Engine<K> {
        &self.engine
    }

    fn refresh_mapped(&mut self) {
        self.stats.set_plan(self.engine.applied(), self.engine.slots());
    }

    /// Re-reads lqos.conf (reloads pick up edited rates and SQM; interface changes need a
    /// restart).
    fn reread_config(&mut self) -> Result<(), CommandError> {
        match lqos_config::load_config(&self.config_path) {
            Ok((config, _warnings)) => {
                if config.interfaces != self.config.interfaces {
                    tracing::warn!(
                        "interface settings changed in lqos.conf; restart lqosd to use them"
                    );
                    let mut c = config;
                    c.interfaces = self.config.interfaces.clone();
                    self.config = c;
                } else {
                    self.config = config;
                }
                Ok(())
            }
            Err(ConfigError::Invalid { diagnostics, .. }) => {
                Err(CommandError::InvalidInput { diagnostics })
            }
            Err(e) => Err(CommandError::Internal { message: error_chain(&e) }),
        }
    }

    /// Answers one command.
    pub fn handle(&mut self, command: Command) -> Response {
        let span = tracing::info_span!("command", kind = command_name(&command));
        let _g = span.enter();
        if matches!(
            command,
            Command::Status
                | Command::CircuitStats { .. }
                | Command::TopCircuits { .. }
                | Command::NodeStats
                | Command::CircuitFlows { .. }
                | Command::Worst { .. }
        ) {
            self.stats_wanted(Instant::now());
        }
        match command {
            Command::Ping => Response::Pong,
            Command::Reload { mode } => {
                if let Err(e) = self.reread_config() {
                    return Response::Error(e);
                }
                let r = self.engine.reload(&self.config, self.facts, mode);
                self.refresh_mapped();
                match r {
                    Ok(report) if report.dry_run => {
                        log_quarantine(&report.quarantined);
                        Response::Reload(Box::new(report))
                    }
                    Ok(report) => {
                        log_quarantine(&report.quarantined);
                        tracing::info!(
                            circuits = report.circuits,
                            added = report.counts.added,
                            changed = report.counts.changed,
                            deleted = report.counts.deleted,
                            mappings_added = report.counts.mappings_added,
                            mappings_removed = report.counts.mappings_removed,
                            quarantined = report.quarantined.len(),
                            apply_ms = report.apply_ms,
                            "reload applied"
                        );
                        Response::Reload(Box::new(report))
                    }
                    Err(e) => {
                        log_refusal(&e);
                        Response::Error(e)
                    }
                }
            }
            Command::DryRun => {
                if let Err(e) = self.reread_config() {
                    return Response::Error(e);
                }
                match self.engine.dry_run(&self.config, self.facts) {
                    Ok(r) => Response::Reload(Box::new(r)),
                    Err(e) => Response::Error(e),
                }
            }
            Command::Validate => match lqos_config::load_inputs(&self.config) {
                Ok(inputs) => Response::Validation(inputs.diagnostics),
                Err(e) => Response::Error(CommandError::Internal { message: error_chain(&e) }),
            },
            Command::Status => Response::Status(Box::new(self.status())),
            Command::ListMappings => Response::Mappings(
                self.engine
                    .applied()
                    .map(|p| {
                        p.mappings
                            .iter()
                            .map(|m| MappingEntry {
                                net: m.net.to_string(),
                                cpu: m.cpu,
                                class: m.class.to_string(),
                                circuit: m.circuit.0.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            Command::CircuitStats { circuit } => {
                let Some(plan) = self.engine.applied() else {
                    return Response::Circuits(Vec::new());
                };
                match circuit {
                    None => Response::Circuits(self.stats.circuits(plan)),
                    Some(id) => {
                        let at: Vec<usize> =
                            plan.circuits.iter().position(|c| c.id.0 == id).into_iter().collect();
                        Response::Circuits(self.stats.circuits_at(plan, Some(&at)))
                    }
                }
            }
            Command::TopCircuits { n } => {
                let Some(plan) = self.engine.applied() else {
                    return Response::Circuits(Vec::new());
                };
                let top = self.stats.busiest(plan, n);
                Response::Circuits(self.stats.circuits_at(plan, Some(&top)))
            }
            Command::NodeStats => Response::Nodes(
                self.engine.applied().map(|p| self.stats.nodes(p)).unwrap_or_default(),
            ),
            Command::CircuitFlows { circuit } => match self.engine.slots().get(&circuit) {
                Some(slot) => Response::Flows(self.flows.of_slot(slot, FLOWS_PER_CIRCUIT)),
                None => Response::Error(CommandError::Unavailable {
                    message: format!("circuit {circuit:?} is not in the applied plan"),
                }),
            },
            Command::ClearTree => match self.engine.clear() {
                Ok(()) => {
                    self.refresh_mapped();
                    tracing::info!("queue tree and mappings removed on request");
                    Response::Ack
                }
                Err(e) => Response::Error(e),
            },
            Command::History { kind, id, range } => {
                crate::history::answer(self.history.as_ref(), kind, &id, range)
            }
            Command::Worst { kind, by, window, limit } => self.insight.worst(
                &self.stats,
                self.engine.applied(),
                self.history.as_ref(),
                crate::insight::WorstQuery { kind, by, window, limit },
            ),
            Command::QoeDistribution => Response::Distribution(Box::new(
                crate::insight::distribution(&self.stats, self.engine.applied()),
            )),
            Command::UnknownAddresses { limit } => {
                Response::Unknown(Box::new(self.insight.unknown.list(limit)))
            }
            Command::CircuitQueue { circuit } => {
                let (kernel, plan) = self.engine.kernel_and_plan();
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                self.queues.answer(kernel, plan, &circuit, Instant::now(), now_ms)
            }
            Command::EditConfig { settings } => self.edit_config(&settings),
            Command::SchedulerReport(state) => {
                if self.scheduler.as_ref().map(|s| (&s.phase, &s.last_error))
                    != Some((&state.phase, &state.last_error))
                {
                    tracing::info!(phase = %state.phase, error = ?state.last_error, "scheduler state");
                }
                self.scheduler = Some(state);
                Response::Ack
            }
        }
    }

    /// Sets common settings of lqos.conf for lqos_web (see `Command::EditConfig`): the file
    /// on disk, edited and validated, written in place when its directory is read-only to
    /// lqosd (the unit binds just `/etc/lqos.conf` writable). The running configuration is not
    /// changed here: the next Reload re-reads the file, as after an edit by hand.
    fn edit_config(&mut self, settings: &[(String, String)]) -> Response {
        let path = self.config_path.clone();
        let label = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                return Response::Error(CommandError::Internal {
                    message: format!("read {label}: {e}"),
                });
            }
        };
        let (new_text, warnings) = match lqos_config::edit_common_settings(&text, &path, settings) {
            Ok(done) => done,
            Err(lqos_config::SettingsEditError::Fields { errors, diagnostics }) => {
                let mut d: Vec<lqos_config::Diagnostic> = errors
                    .into_iter()
                    .map(|e| lqos_config::Diagnostic::error(&label, e.message).field(e.setting))
                    .collect();
                d.extend(diagnostics.into_iter().filter(|x| x.is_error()));
                return Response::Error(CommandError::InvalidInput { diagnostics: d });
            }
            Err(e) => {
                return Response::Error(CommandError::InvalidInput {
                    diagnostics: vec![lqos_config::Diagnostic::error(&label, e.to_string())],
                });
            }
        };
        match lqos_config::write_replacing(&path, new_text.as_bytes()) {
            Ok(()) => {
                let names: Vec<&str> = settings.iter().map(|(k, _)| k.as_str()).collect();
                tracing::info!(file = %label, settings = ?names, "lqos.conf common settings written on request");
                Response::ConfigSaved(warnings)
            }
            Err(e) => Response::Error(CommandError::Internal { message: error_chain(&e) }),
        }
    }

    /// A stats command arrived at `now`: class counters are read from now on for
    /// [`crate::stats::CLASS_INTEREST`], and right away when the last read is older than a tick.
    fn stats_wanted(&mut self, now: Instant) {
        self.stats_interest = Some(now);
        let stale = self
            .stats
            .classes_read_at()
            .is_none_or(|t| now.saturating_duration_since(t) > self.tick_every);
        if stale {
            self.read_classes(now);
        }
    }

    fn classes_wanted(&self, now: Instant) -> bool {
        self.stats_eager
            || self
                .stats_interest
                .is_some_and(|t| now.saturating_duration_since(t) <= crate::stats::CLASS_INTEREST)
    }

    fn read_classes(&mut self, now: Instant) {
        let Some(plan) = self.engine.applied() else { return };
        let names: Vec<String> = plan.interfaces.iter().map(|i| i.name.clone()).collect();
        let kernel = self.engine.kernel_mut();
        let mut classes = Vec::with_capacity(names.len());
        for name in names {
            match kernel.class_counters(&name) {
                Ok(c) => classes.push((name, c)),
                Err(e) => tracing::debug!(interface = %name, error = %e, "class counters"),
            }
        }
        self.stats.update_classes(&classes, now);
    }

    /// Reads counters and updates rates: the data plane's every tick, the HTB classes only
    /// while somebody looks (see [`crate::stats`]).
    pub fn tick(&mut self) {
        if self.engine.applied().is_none() {
            return;
        }
        let now = Instant::now();
        if self.classes_wanted(now) {
            self.read_classes(now);
        }
        let max_slot = self.stats.max_slot();
        let kernel = self.engine.kernel_mut();
        match kernel.slot_counters(0..max_slot.saturating_add(1), &mut self.slot_buf) {
            Ok(()) => self.stats.update_slots(&self.slot_buf, now),
            Err(e) => tracing::debug!(error = %e, "slot counters"),
        }
        if let Some(range) = self.stats.qoe.due(max_slot, now) {
            let start = range.start;
            match kernel.rtt_histograms(range, &mut self.hist_buf) {
                Ok(()) => self.stats.qoe.feed(start, &self.hist_buf, now),
                Err(e) => tracing::debug!(error = %e, "rtt histograms"),
            }
        }
        let swept = self.flows.due(now);
        if swept {
            let live = match kernel.sweep_flows() {
                Ok(f) => {
                    let n = f.len() as u64;
                    self.flows.update(f, now);
                    Some(n)
                }
                Err(e) => {
                    tracing::debug!(error = %e, "flow table");
                    None
                }
            };
            let prev_live = self.dataplane.map_or(0, |d| d.flows_live);
            match kernel.dataplane_health() {
                Ok(h) => {
                    self.dataplane = h.map(|mut h| {
                        h.flows_live = live.unwrap_or(prev_live);
                        h
                    })
                }
                Err(e) => tracing::debug!(error = %e, "data-plane counters"),
            }
        }
        if self.insight.unknown.due(now) {
            match kernel.take_unknown() {
                Ok(u) => self.insight.unknown.feed(&u, now, lqos_history::unix_now()),
                Err(e) => tracing::debug!(error = %e, "unknown-address table"),
            }
        }
        if let (Some(feed), Some(plan)) = (self.history.as_mut(), self.engine.applied())
            && !feed.tick(&self.stats, plan, lqos_history::unix_now())
        {
            tracing::debug!("history writer behind; a tick was dropped");
        }
        if swept {
            self.check_flow_table();
        }
    }

    /// The flow table is sized when lqosd starts (8 entries per circuit of the stored plan, at
    /// most 2^20): a plan that grew past it since gets a warning until the next restart.
    fn check_flow_table(&mut self) {
        let circuits = self.engine.applied().map_or(0, |p| p.circuits.len()) as u64;
        let warning = self.dataplane.and_then(|d| {
            let small = d.flow_capacity < 1 << 20 && circuits.saturating_mul(8) > d.flow_capacity;
            small.then(|| {
                format!(
                    "flow table: {} entries for {circuits} circuits (sized when lqosd started; \
                     8 per circuit wanted): restart lqosd to size it for this plan, or set \
                     LQOS_MAX_FLOWS; until then flows that find no room get no RTT samples",
                    d.flow_capacity
                )
            })
        });
        if warning.is_some() && self.flow_table_warning.is_none() {
            tracing::warn!(
                circuits,
                capacity = self.dataplane.map_or(0, |d| d.flow_capacity),
                "flow table small for the applied plan: restart lqosd to resize it"
            );
        }
        self.flow_table_warning = warning;
    }

    /// The Status answer.
    pub fn status(&self) -> DaemonStatus {
        let plan = self.engine.applied();
        let (mode, interfaces) = match &self.config.interfaces {
            Some(InterfaceMode::Bridge { to_internet, to_network, .. }) => {
                ("bridge".to_owned(), vec![to_internet.0.clone(), to_network.0.clone()])
            }
            Some(InterfaceMode::Stick { interface, .. }) => {
                ("stick".to_owned(), vec![interface.0.clone()])
            }
            None => ("none".to_owned(), Vec::new()),
        };
        DaemonStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_secs: self.started.elapsed().as_secs(),
            mode,
            interfaces,
            queues: plan.map(|p| p.queues).unwrap_or(0),
            circuits: plan.map(|p| p.circuits.len()).unwrap_or(0),
            nodes: plan.map(|p| p.nodes.len()).unwrap_or(0),
            mappings: plan.map(|p| p.mappings.len()).unwrap_or(0),
            last_apply_unix: self.engine.last_apply_unix,
            last_reload: self.engine.last_reload.clone(),
            download_bps: self.stats.total_bps.0,
            upload_bps: self.stats.total_bps.1,
            shaped_download_bps: self.stats.shaped_bps.0,
            shaped_upload_bps: self.stats.shaped_bps.1,
            drops: self.stats.total_drops,
            scheduler: self.scheduler.clone(),
            warnings: self.warnings.iter().chain(&self.flow_table_warning).cloned().collect(),
            quarantined: self.engine.quarantined.clone(),
            history_bytes: self.history.as_ref().map(|h| h.history().disk_bytes()),
            dataplane: self.dataplane,
        }
    }

    /// Runs the apply task until the queue closes: commands as they come, a stats tick every
    /// `tick`. Blocking kernel work happens on this thread only.
    pub fn run(mut self, mut queue: mpsc::Receiver<Request>, tick: Duration) {
        self.tick_every = tick;
        let rt = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the apply task");
                return;
            }
        };
        rt.block_on(async move {
            let mut ticker = tokio::time::interval(tick);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    req = queue.recv() => {
                        let Some(req) = req else { break };
                        let answer = self.handle(req.command);
                        let _ = req.reply.send(answer);
                    }
                    _ = ticker.tick() => self.tick(),
                }
            }
        });
    }
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Ping => "ping",
        Command::Reload { mode: ReloadMode::Full } => "reload-full",
        Command::Reload { .. } => "reload",
        Command::DryRun => "dry-run",
        Command::Validate => "validate",
        Command::Status => "status",
        Command::ListMappings => "list-mappings",
        Command::CircuitStats { .. } => "circuit-stats",
        Command::TopCircuits { .. } => "top-circuits",
        Command::NodeStats => "node-stats",
        Command::ClearTree => "clear-tree",
        Command::SchedulerReport(_) => "scheduler-report",
        Command::CircuitFlows { .. } => "circuit-flows",
        Command::History { .. } => "history",
        Command::Worst { .. } => "worst",
        Command::QoeDistribution => "qoe-distribution",
        Command::UnknownAddresses { .. } => "unknown-addresses",
        Command::CircuitQueue { .. } => "circuit-queue",
        Command::EditConfig { .. } => "edit-config",
    }
}

/// Most quarantined circuits named one by one in the journal per reload.
const QUARANTINE_LOG_LINES: usize = 50;

fn log_quarantine(quarantined: &[lqos_config::Quarantined]) {
    for q in quarantined.iter().take(QUARANTINE_LOG_LINES) {
        tracing::warn!(
            circuit = %q.circuit_id,
            file = %q.file,
            line = q.line,
            action = ?q.action,
            reason = %q.reason,
            "circuit quarantined; the rest of the input is applied"
        );
    }
    if quarantined.len() > QUARANTINE_LOG_LINES {
        tracing::warn!(
            more = quarantined.len() - QUARANTINE_LOG_LINES,
            "more circuits quarantined (see libreqos --validate)"
        );
    }
}

fn log_refusal(e: &CommandError) {
    match e {
        CommandError::InvalidInput { diagnostics } => {
            let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
            for d in errors.iter().take(20) {
                tracing::error!(problem = %d, "input rejected");
            }
            tracing::error!(
                errors = errors.len(),
                "reload refused: inputs invalid; the running shaping is unchanged"
            );
        }
        other => tracing::error!(error = %other, "reload failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::store_for;
    use crate::kernel::fake::FakeKernel;
    use crate::testutil::{FACTS, TWO, setup};

    fn service(rows: &str) -> (tempfile::TempDir, Service<FakeKernel>) {
        let (dir, config) = setup(rows);
        let engine = Engine::new(FakeKernel::default(), store_for(&config));
        let mut s = Service::new(engine, config, FACTS);
        // The test config does not exist on disk; reload uses the in-memory one.
        s.config_path = dir.path().join("missing.conf");
        (dir, s)
    }

    #[test]
    fn edit_config_writes_only_common_settings_and_refuses_the_rest_with_nothing_written() {
        let (dir, mut s) = service(TWO);
        let conf = dir.path().join("lqos.conf");
        let text = format!(
            "# operator's comment\nnode_name = \"edge\"\nlqos_directory = \"{}\"\n[queues]\ndownlink_bandwidth_mbps = 1000\nuplink_bandwidth_mbps = 1000\n[bridge]\nuse_xdp_bridge = false\nto_internet = \"eth0\"\nto_network = \"eth1\"\n",
            dir.path().display()
        );
        std::fs::write(&conf, &text).expect("write");
        s.config_path = conf.clone();
        let set = |pairs: &[(&str, &str)]| Command::EditConfig {
            settings: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        };
        let r = s.handle(set(&[("downlink_bandwidth_mbps", "2500"), ("node_name", "edge-2")]));
        assert!(matches!(r, Response::ConfigSaved(_)), "{r:?}");
        let now = std::fs::read_to_string(&conf).expect("read");
        assert!(now.starts_with("# operator's comment\n"), "{now}");
        assert!(now.contains("downlink_bandwidth_mbps = 2500") && now.contains("\"edge-2\""));
        // Interfaces, unknown settings and bad values: refused by name, file untouched.
        for bad in [
            set(&[("to_internet", "eth9")]),
            set(&[("node_name", "ok"), ("uplink_bandwidth_mbps", "fast")]),
            set(&[("default_sqm", "bogus")]),
        ] {
            let Response::Error(CommandError::InvalidInput { diagnostics }) = s.handle(bad.clone())
            else {
                panic!("{bad:?} not refused")
            };
            assert!(diagnostics.iter().any(|d| d.field.is_some()), "{diagnostics:?}");
            assert_eq!(std::fs::read_to_string(&conf).expect("read"), now, "{bad:?} wrote");
        }
        assert_eq!(
            set(&[]).required_access(),
            lqos_bus::Access::Admin,
            "only admins may edit the config"
        );
        // A missing file is reported, not created.
        s.config_path = dir.path().join("none.conf");
        assert!(matches!(
            s.handle(set(&[("node_name", "x")])),
            Response::Error(CommandError::Internal { .. })
        ));
        assert!(!dir.path().join("none.conf").exists());
    }

    #[test]
    fn validate_answers_every_problem_and_dry_run_changes_nothing() {
        let (_d, mut s) = service("c1,Alice,d1,r1,AP_9,,,,100.64.0.1,,1,1,abc,10,\n");
        let Response::Validation(diags) = s.handle(Command::Validate) else { panic!("validation") };
        assert!(diags.iter().any(|d| d.field.as_deref() == Some("Download Max Mbps")), "{diags:?}");
        assert!(diags.iter().any(|d| d.message.contains("AP_9")), "{diags:?}");

        let (_d, mut s) = service(TWO);
        let engine = &mut s.engine;
        let Ok(report) = engine.dry_run(&s.config, FACTS) else { panic!("dry run") };
        assert!(!report.applied && report.counts.added > 0);
        assert!(report.tc_lines.as_deref().is_some_and(|t| t.contains("class add")));
        assert!(s.engine.applied().is_none(), "dry run applied something");
        assert!(s.engine.kernel_mut().calls.is_empty());
    }

    #[test]
    fn status_and_the_reload_report_show_the_quarantine() {
        let (_d, mut s) = service(&format!("{TWO}c3,Carol,d3,r3,AP_1,,,,100.64.0.3,,1,1,x,10,\n"));
        let config = s.config.clone(); // in memory only: reload through the engine
        let r = s.engine.reload(&config, FACTS, ReloadMode::Incremental).expect("reload");
        assert!(r.applied);
        assert_eq!(r.circuits, 2);
        assert_eq!(r.quarantined.len(), 1);
        assert_eq!((r.quarantined[0].circuit_id.as_str(), r.quarantined[0].line), ("c3", 4));
        let Response::Status(st) = s.handle(Command::Status) else { panic!("status") };
        assert_eq!(st.quarantined, r.quarantined);
        assert!(st.last_reload.as_deref().is_some_and(|l| l.ends_with("1 circuit(s) quarantined")));
        // Fixed: the next reload clears it.
        std::fs::write(
            _d.path().join("ShapedDevices.csv"),
            format!("{}{TWO}", crate::testutil::HEADER),
        )
        .expect("write");
        let config = s.config.clone(); // in memory only: reload through the engine
        let r = s.engine.reload(&config, FACTS, ReloadMode::Incremental).expect("reload");
        assert!(r.quarantined.is_empty());
        let Response::Status(st) = s.handle(Command::Status) else { panic!("status") };
        assert!(st.quarantined.is_empty());
    }

    #[test]
    fn top_circuits_come_busiest_first_and_status_shows_the_scheduler() {
        let (_d, mut s) = service(TWO);
        s.engine.reload(&s.config.clone(), FACTS, ReloadMode::Incremental).expect("reload");
        s.refresh_mapped();
        // Rates come from the circuits' slot counters.
        let slot = |id: &str| s.engine.slots().get(id).expect("slot") as usize;
        let (c1, c2) = (slot("c1"), slot("c2"));
        let mut k = vec![crate::kernel::SlotCounters::default(); c1.max(c2) + 1];
        let t0 = std::time::Instant::now();
        s.stats.update(&[], &k, t0);
        k[c1].bytes[0] = 1_000;
        k[c2].bytes[0] = 500_000;
        s.stats.update(&[], &k, t0 + Duration::from_secs(1));
        let Response::Circuits(top) = s.handle(Command::TopCircuits { n: 1 }) else {
            panic!("top")
        };
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].id, "c2");
        assert_eq!(top[0].download_bps, 4_000_000);

        let state = SchedulerState {
            phase: "idle".into(),
            integration: "netzur".into(),
            ..Default::default()
        };
        assert_eq!(s.handle(Command::SchedulerReport(state.clone())), Response::Ack);
        let Response::Status(st) = s.handle(Command::Status) else { panic!("status") };
        assert_eq!(st.scheduler, Some(state));
        assert_eq!(st.circuits, 2);
    }

    #[test]
    fn status_carries_the_data_plane_counters_read_with_the_flow_sweep() {
        let (_d, mut s) = service(TWO);
        s.engine.reload(&s.config.clone(), FACTS, ReloadMode::Incremental).expect("reload");
        s.refresh_mapped();
        let Response::Status(st) = s.handle(Command::Status) else { panic!("status") };
        assert_eq!(st.dataplane, None, "nothing read yet");
        let health = lqos_bus::DataplaneHealth {
            flow_capacity: 131_072,
            flows_created: 10,
            untracked_packets: 3,
            ..Default::default()
        };
        let k = s.engine.kernel_mut();
        k.health = Some(health);
        k.flows = vec![crate::flows::tests::flow(1, 1, 10), crate::flows::tests::flow(1, 2, 10)];
        s.tick(); // the first tick sweeps
        let Response::Status(st) = s.handle(Command::Status) else { panic!("status") };
        assert_eq!(st.dataplane, Some(lqos_bus::DataplaneHealth { flows_live: 2, ..health }));
        assert!(st.warnings.is_empty(), "{:?}", st.warnings);
        // Between sweeps the last reading stands.
        s.engine.kernel_mut().health = None;
        s.tick();
        let Response::Status(st) = s.handle(Command::Status) else { panic!("status") };
        assert_eq!(st.dataplane.map(|d| d.untracked_packets), Some(3));
        // A table too small for the plan (2 circuits want 16 entries) is a warning until a
        // reading says otherwise.
        s.engine.kernel_mut().health =
            Some(lqos_bus::DataplaneHealth { flow_capacity: 8, ..health });
        s.flows = crate::flows::FlowView::default(); // the next tick sweeps
        s.tick();
        let Response::Status(st) = s.handle(Command::Status) else { panic!("status") };
        assert_eq!(st.warnings.len(), 1, "{:?}", st.warnings);
        assert!(
            st.warnings[0].starts_with("flow table: 8 entries for 2 circuits"),
            "{:?}",
            st.warnings
        );
        s.engine.kernel_mut().health = Some(health);
        s.flows = crate::flows::FlowView::default();
        s.tick();
        let Response::Status(st) = s.handle(Command::Status) else { panic!("status") };
        assert!(st.warnings.is_empty(), "{:?}", st.warnings);
    }

    #[test]
    fn class_counters_are_read_only_while_somebody_looks() {
        let (_d, mut s) = service(TWO);
        s.stats_eager = false;
        s.engine.reload(&s.config.clone(), FACTS, ReloadMode::Incremental).expect("reload");
        s.refresh_mapped();
        let reads = |s: &mut Service<FakeKernel>| s.engine.kernel_mut().class_reads;
        for _ in 0..5 {
            s.tick();
        }
        assert_eq!(reads(&mut s), 0, "idle ticks dumped the classes");
        // A stats command reads them at once (both interfaces), then every tick while recent.
        s.handle(Command::NodeStats);
        assert_eq!(reads(&mut s), 2);
        s.handle(Command::CircuitStats { circuit: None });
        assert_eq!(reads(&mut s), 2, "a second command within a tick reads again");
        s.tick();
        assert_eq!(reads(&mut s), 4);
        // Interest runs out.
        s.stats_interest =
            Some(Instant::now() - crate::stats::CLASS_INTEREST - Duration::from_secs(1));
        s.tick();
        assert_eq!(reads(&mut s), 4);
        // Commands that show no stats do not count.
        s.handle(Command::Ping);
        s.handle(Command::ListMappings);
        s.tick();
        assert_eq!(reads(&mut s), 4);
    }

    #[test]
    fn circuit_queue_is_answered_on_request_without_dumping_classes() {
        let (_d, mut s) = service(TWO);
        s.stats_eager = false;
        s.engine.reload(&s.config.clone(), FACTS, ReloadMode::Incremental).expect("reload");
        s.refresh_mapped();
        for _ in 0..3 {
            s.tick();
        }
        assert_eq!(s.engine.kernel_mut().queue_reads, 0, "ticks never read queues");
        let Response::Queue(q) = s.handle(Command::CircuitQueue { circuit: "c1".into() }) else {
            panic!("queue answer")
        };
        assert_eq!(q.circuit, "c1");
        assert_eq!(q.directions.len(), 2);
        assert_eq!(s.engine.kernel_mut().queue_reads, 2);
        assert_eq!(s.engine.kernel_mut().class_reads, 0, "no class dump for one circuit");
        assert!(matches!(
            s.handle(Command::CircuitQueue { circuit: "c9".into() }),
            Response::Error(CommandError::Unavailable { .. })
        ));
    }

    fn wait_for_points(
        s: &mut Service<FakeKernel>,
        kind: lqos_bus::HistoryKind,
        id: &str,
    ) -> usize {
        for _ in 0..200 {
            let range = lqos_bus::HistoryRange::Minutes10;
            match s.handle(Command::History { kind, id: id.into(), range }) {
                Response::History(series) if !series.points.is_empty() => {
                    assert_eq!(series.step_secs, 1);
                    assert_eq!(series.id, id);
                    return series.points.len();
                }
                Response::History(_) => std::thread::sleep(Duration::from_millis(10)),
                other => panic!("unexpected answer {other:?}"),
            }
        }
        0
    }

    #[test]
    fn ticks_feed_the_history_store_and_history_answers_for_circuits_and_nodes() {
        use lqos_bus::{HistoryKind, HistoryRange};
        let (dir, mut s) = service(TWO);
        let ask = |kind, id: &str, range| Command::History { kind, id: id.into(), range };
        assert!(
            matches!(
                s.handle(ask(HistoryKind::Circuit, "c1", HistoryRange::Hour1)),
                Response::Error(CommandError::Unavailable { .. })
            ),
            "history off answers Unavailable"
        );
        let feed = crate::history::HistoryFeed::open(&dir.path().join("state/history.redb"), 16)
            .expect("open");
        s.set_history(feed);
        s.engine.reload(&s.config.clone(), FACTS, ReloadMode::Incremental).expect("reload");
        s.refresh_mapped();
        s.tick();
        assert!(wait_for_points(&mut s, HistoryKind::Circuit, "c1") >= 1);
        assert!(wait_for_points(&mut s, HistoryKind::Node, "AP_1") >= 1);
        let Response::History(empty) =
            s.handle(ask(HistoryKind::Circuit, "nobody", HistoryRange::Days90))
        else {
            panic!("history")
        };
        assert!(empty.points.is_empty());
        assert_eq!(empty.step_secs, 900);
        assert!(s.status().history_bytes.is_some_and(|b| b > 0));
    }
}

#[cfg(test)]
mod insight_tests {
    use super::*;
    use crate::engine::store_for;
    use crate::kernel::fake::FakeKernel;
    use crate::kernel::{RttHistogram, SlotCounters, UnknownAddress};
    use crate::testutil::{FACTS, TWO, setup};
    use lqos_bpf::abi::{PATH_ACCESS, RTT_BUCKET_UPPER_US};
    use lqos_bus::{QoeWindow, WorstBy, WorstKind};

    /// Observe mode (`queue_mode = "observe"`) answers the same insight queries as shaping:
    /// circuits are mapped and measured, only the queue tree is missing.
    #[test]
    fn observe_mode_answers_worst_distribution_and_unknown_addresses() {
        let (dir, mut config) = setup(TWO);
        config.queues.queue_mode = lqos_config::QueueMode::Observe;
        let engine = Engine::new(FakeKernel::default(), store_for(&config));
        let mut s = Service::new(engine, config, FACTS);
        s.config_path = dir.path().join("missing.conf");
        let cfg = s.config.clone();
        s.engine.reload(&cfg, FACTS, ReloadMode::Incremental).expect("reload");
        s.refresh_mapped();
        assert!(s.engine.applied().is_some_and(|p| p.observe_only));
        let slot = s.engine.slots().get("c1").expect("slot");
        let n = slot as usize + 1;
        // The first tick is the baseline; the data plane then sees TCP with 30 ms RTT for c1
        // and an unmapped address.
        s.engine.kernel_mut().slots = vec![SlotCounters::default(); n];
        s.engine.kernel_mut().hists = vec![RttHistogram::default(); n];
        s.tick();
        let b = RTT_BUCKET_UPPER_US.iter().position(|u| *u >= 30_000).unwrap_or(31);
        let k = s.engine.kernel_mut();
        k.slots[slot as usize].tcp_packets = [400, 100];
        k.slots[slot as usize].retransmits = [4, 0];
        k.hists[slot as usize].buckets[PATH_ACCESS][b] = 50;
        k.unknown = vec![UnknownAddress {
            addr: "198.51.100.20".parse().expect("ip"),
            bytes: [50_000, 1_000],
            packets: [40, 10],
        }];
        s.tick();
        // RTT histograms are read once per period: read them now as the next period would.
        let now = Instant::now();
        let hists = s.engine.kernel_mut().hists.clone();
        s.stats.qoe.feed(0, &hists, now);
        // The unknown table is read every period; force this tick's read.
        s.insight.unknown = crate::insight::UnknownTracker::default();
        s.tick();

        let Response::Worst(w) = s.handle(Command::Worst {
            kind: WorstKind::Circuits,
            by: WorstBy::Rtt,
            window: QoeWindow::Secs10,
            limit: 10,
        }) else {
            panic!("worst")
        };
        assert_eq!(w.entries.len(), 1, "{w:?}");
        assert_eq!(w.entries[0].id, "c1");
        assert!(w.entries[0].rtt_access_p90_ms.is_some_and(|p| (20.0..=30.0).contains(&p)));
        let Response::Worst(w) = s.handle(Command::Worst {
            kind: WorstKind::Nodes,
            by: WorstBy::Retransmits,
            window: QoeWindow::Secs60,
            limit: 10,
        }) else {
            panic!("worst")
        };
        assert_eq!(w.entries.first().map(|e| e.id.as_str()), Some("AP_1"), "{w:?}");
        assert_eq!(w.entries[0].retransmit_ratio, Some(4.0 / 500.0));
        let Response::Distribution(d) = s.handle(Command::QoeDistribution) else {
            panic!("distribution")
        };
        assert_eq!((d.circuits_measured, d.circuits_total), (1, 2));
        let Response::Unknown(u) = s.handle(Command::UnknownAddresses { limit: 5 }) else {
            panic!("unknown")
        };
        assert_eq!(u.entries.len(), 1);
        assert_eq!(u.entries[0].address, "198.51.100.20");
        assert_eq!(u.entries[0].bytes.down, 50_000);
        assert!(s.engine.kernel_mut().unknown.is_empty(), "the table is emptied after a read");
        // History windows with history off: a clear Unavailable, not an empty ranking.
        assert!(matches!(
            s.handle(Command::Worst {
                kind: WorstKind::Circuits,
                by: WorstBy::Rtt,
                window: QoeWindow::Hours24,
                limit: 10,
            }),
            Response::Error(CommandError::Unavailable { .. })
        ));
    }
}
