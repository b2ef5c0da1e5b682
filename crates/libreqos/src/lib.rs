//! `libreqos`, the one-shot queue builder: reads `network.json` and `ShapedDevices.csv`, checks
//! them, shows what lqos would build, and asks lqosd (the only process that changes the
//! kernel) to apply them. `--validate` and `--dry-run` never change anything and work without
//! lqosd.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use lqos_bus::{BusClient, Command, CommandError, ReloadMode, ReloadReport, Response};
use lqos_config::{
    Config, ConfigError, Diagnostic, QuarantineAction, Quarantined, Severity, has_errors,
};
use lqos_pipeline::PipelineError;
use lqos_plan::{HostFacts, Plan};
use serde::Serialize;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "libreqos",
    version,
    about = "Build the subscriber queue tree from network.json and ShapedDevices.csv",
    long_about = "Reads network.json and ShapedDevices.csv from lqos_directory (see /etc/lqos.conf), \
checks them and plans the queue tree (mq -> HTB per CPU queue -> sites -> circuits -> leaf SQM).\n\n\
Without flags it asks lqosd to apply the inputs; lqosd changes only what differs from what is \
applied. --validate and --dry-run change nothing and do not need lqosd.\n\n\
Validation rules (every problem is reported at once as file:line: field: message). Each is a \
REFUSAL (nothing is applied, the running shaping stays), a QUARANTINE (that circuit is set \
aside, everything else is applied) or a WARNING (reported only):\n\
  refusal: unreadable file; lqos.conf errors; ShapedDevices.csv header or a row whose field \
count matches neither layout; network.json that does not parse, duplicate node names or ids, \
bad node rates, min > max; more quarantined circuits than [queues] max_quarantine_ratio \
(default 0.05) of the applied circuits (one is always accepted unless the ratio is 0).\n\
  quarantine, left unshaped: empty Circuit ID; a rate that is not a number, below 0.01 Mbps or \
above 1 Tbit/s; min > max; an invalid address or prefix; a bad sqm; rows of one circuit naming \
different parents; an address or prefix (same length) already owned by an earlier row's \
circuit (the later row is quarantined).\n\
  quarantine, shaped under a generated parent: a Parent Node / Parent Node ID that matches no \
node (Parent Node may be a node's key, its name or its active_attachment_name; Parent Node ID \
matches its id).\n\
  warning: overlapping prefixes of different lengths in two circuits (longest prefix wins, once \
per pair); overlaps inside one circuit; rows of one circuit with different rates (first wins); \
parent names on a flat network; unknown columns or keys. IPv4 and ::ffff:a.b.c.d are different \
keys and never conflict.\n\
  Full list: crates/lqos-config/docs/validation.md.\n\n\
--validate exits 1 when anything is quarantined or refused. --dry-run prints the plan of the \
circuits that are not quarantined and lists the quarantined ones (--json: one document with \
circuits, quarantined, warnings and the change summary).\n\n\
Exit codes: 0 ok / valid, 1 invalid inputs, 2 cannot run (unreadable files, lqosd not running, \
kernel failure)."
)]
pub struct Args {
    /// lqos.conf to use (default: $LQOS_CONFIG, else /etc/lqos.conf).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Check the inputs and print every problem; exit 0 valid, 1 invalid, 2 cannot read.
    #[arg(long, conflicts_with_all = ["dry_run", "clear"])]
    pub validate: bool,
    /// Plan without applying: queues, nodes and circuits per queue, warnings, and what would
    /// change against the plan lqosd applied last.
    #[arg(long, conflicts_with = "clear")]
    pub dry_run: bool,
    /// With --dry-run: print the `tc -batch` lines of the change on stdout.
    #[arg(long, requires = "dry_run")]
    pub show_tc: bool,
    /// Machine-readable output (JSON on stdout).
    #[arg(long)]
    pub json: bool,
    /// Log every step to stderr.
    #[arg(long)]
    pub debug: bool,
    /// Ask lqosd to remove the queue tree and all mappings (traffic passes unshaped).
    #[arg(long)]
    pub clear: bool,
    /// Ask lqosd to compare with the live kernel instead of its stored plan (repairs hand
    /// edits; rebuilds only what is wrong).
    #[arg(long, conflicts_with_all = ["validate", "dry_run", "clear"])]
    pub full: bool,
    /// Write a LibreQoS 1.5 lqos.conf NEW from a LibreQoS 1.4 one OLD (and the ispConfig.py
    /// beside it); atomic, and an existing NEW is kept unless --force.
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"], conflicts_with_all = ["validate", "dry_run", "clear", "full"])]
    pub migrate_config: Option<Vec<PathBuf>>,
    /// With --migrate-config: replace NEW if it exists.
    #[arg(long, requires = "migrate_config")]
    pub force: bool,
    /// Logging options (`--log-format text|json`).
    #[command(flatten)]
    pub log: lqos_log::LogArgs,
}

/// Exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Success / valid.
    Ok = 0,
    /// Invalid inputs.
    Invalid = 1,
    /// Could not run.
    CannotRun = 2,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> Self {
        ExitCode::from(o as u8)
    }
}

/// Runs the command, writing results to `out`.
pub fn run(args: &Args, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    if let Some([old, new]) = args.migrate_config.as_deref() {
        let m = lqos_config::migrate::migrate_file(old, new, args.force)?;
        for note in &m.notes {
            writeln!(out, "note: {note}")?;
        }
        writeln!(out, "wrote {}", new.display())?;
        return Ok(Outcome::Ok);
    }
    if args.clear {
        return clear(out);
    }
    let path = lqos_config::config_path_from_env(args.config.as_deref());
    tracing::debug!(path = %path.display(), "loading configuration");
    let (config, conf_warnings) = match lqos_config::load_config(&path) {
        Ok(loaded) => loaded,
        Err(ConfigError::Invalid { diagnostics, .. }) => {
            if args.json {
                let doc = Refusal { refused: true, diagnostics, quarantined: Vec::new() };
                write_json(out, &doc)?;
            } else {
                print_diagnostics(out, &diagnostics)?;
            }
            return Ok(Outcome::Invalid);
        }
        Err(e) => return Err(e).context("cannot load the configuration"),
    };
    if !args.json {
        print_diagnostics(out, &conf_warnings)?;
    }
    if args.validate {
        return validate(&config, conf_warnings, args, out);
    }
    if args.dry_run {
        return dry_run(&config, conf_warnings, args, out);
    }
    reload(if args.full { ReloadMode::Full } else { ReloadMode::Incremental }, args, out)
}

/// What `--json` prints when the inputs are refused (and `--validate --json` in any case).
#[derive(Debug, Serialize)]
pub struct Refusal {
    /// True when nothing would be applied.
    pub refused: bool,
    /// Every problem, with file, line, field and severity.
    pub diagnostics: Vec<Diagnostic>,
    /// The circuits that are (or would be) quarantined.
    pub quarantined: Vec<Quarantined>,
}

fn write_json(out: &mut dyn Write, doc: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, doc)?;
    writeln!(out)?;
    Ok(())
}

/// The applied plan lqosd stored, if it can be read (an unreadable one is ignored).
fn applied_plan(config: &Config) -> Option<Plan> {
    match lqos_pipeline::store_for(config).load() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %lqos_pipeline::error_chain(&e), "ignoring stored plan");
            None
        }
    }
}

/// One line per quarantined circuit, after the diagnostics that explain it.
fn print_quarantine(out: &mut dyn Write, quarantined: &[Quarantined]) -> anyhow::Result<()> {
    for q in quarantined {
        let who = if q.circuit_id.is_empty() {
            "the row without Circuit ID".to_owned()
        } else {
            format!("circuit '{}'", q.circuit_id)
        };
        let what = match q.action {
            QuarantineAction::Unshaped => "left unshaped",
            QuarantineAction::GeneratedParent => "shaped under a generated parent node",
        };
        writeln!(out, "quarantined: {who} ({}:{}): {what}", q.file, q.line)?;
    }
    Ok(())
}

fn spinner(msg: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.enable_steady_tick(Duration::from_millis(100));
    pb.set_message(msg.to_owned());
    Some(pb)
}

fn validate(
    config: &Config,
    mut diagnostics: Vec<Diagnostic>,
    args: &Args,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    // run() has printed lqos.conf's warnings already (they stay in the JSON and the counts).
    let printed = diagnostics.len();
    let pb = spinner("reading and validating inputs");
    let applied = applied_plan(config);
    let loaded = lqos_pipeline::load(config, applied.as_ref());
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let (inputs, refused) = match loaded {
        Ok(inputs) => (Some(inputs), false),
        Err(PipelineError::Read { source }) => {
            return Err(source).context("cannot read the inputs");
        }
        Err(PipelineError::Refused { diagnostics: d }) => {
            diagnostics.extend(d);
            (None, true)
        }
        Err(e @ PipelineError::TooManyQuarantined { .. }) => {
            let CommandError::InvalidInput { diagnostics: d } = CommandError::from(e) else {
                bail!("unexpected refusal");
            };
            diagnostics.extend(d);
            (None, true)
        }
        Err(e) => bail!("{e}"),
    };
    let quarantined = match &inputs {
        Some(i) => {
            diagnostics.extend(i.diagnostics.iter().cloned());
            i.quarantined.clone()
        }
        None => Vec::new(),
    };
    let invalid = refused || !quarantined.is_empty() || has_errors(&diagnostics);
    if args.json {
        write_json(out, &Refusal { refused, diagnostics, quarantined })?;
        return Ok(if invalid { Outcome::Invalid } else { Outcome::Ok });
    }
    print_diagnostics(out, diagnostics.get(printed..).unwrap_or_default())?;
    print_quarantine(out, &quarantined)?;
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.iter().filter(|d| d.severity == Severity::Warning).count();
    match &inputs {
        None => writeln!(
            out,
            "invalid: {errors} error(s), {warnings} warning(s); nothing would be applied"
        )?,
        Some(_) if !quarantined.is_empty() => writeln!(
            out,
            "invalid: {} circuit(s) quarantined, {warnings} warning(s); the other circuits would \
             be applied",
            quarantined.len()
        )?,
        Some(i) => writeln!(
            out,
            "valid: {} node(s), {} circuit(s), {} device(s), {warnings} warning(s)",
            i.network.nodes.len(),
            i.circuits.len(),
            i.circuits.iter().map(|c| c.devices.len()).sum::<usize>()
        )?,
    }
    Ok(if invalid { Outcome::Invalid } else { Outcome::Ok })
}

/// Host facts, or a stand-in when the interfaces are not on this machine (planning on a
/// laptop): every queue count = CPUs (or `override_available_queues`).
fn facts_or_standin(config: &Config, out: &mut dyn Write, json: bool) -> anyhow::Result<HostFacts> {
    match lqos_pipeline::host_facts(config) {
        Ok(f) => Ok(f),
        Err(e) => {
            let cpus = lqos_pipeline::cpu_count();
            let q = config.queues.override_available_queues.filter(|q| *q > 0).unwrap_or(cpus);
            let _ = (out, json);
            tracing::warn!("{e}; planning as if each interface had {q} TX queues");
            Ok(HostFacts { cpus: cpus.max(q), download_tx_queues: q, upload_tx_queues: q })
        }
    }
}

/// Per-queue summary of a plan.
#[derive(Debug, Serialize)]
pub struct QueueSummary {
    /// Queue (1-based).
    pub queue: u16,
    /// Nodes on it.
    pub nodes: usize,
    /// Circuits on it.
    pub circuits: usize,
    /// Sum of circuit download ceilings, Mbps.
    pub download_max_mbps: f64,
}

/// One planned circuit in `--dry-run --json`.
#[derive(Debug, Serialize)]
pub struct CircuitSummary {
    /// Circuit ID.
    pub circuit_id: String,
    /// Circuit Name.
    pub name: String,
    /// Parent node's identity key (`libreqos:generated:pn:<k>` for a generated parent).
    pub parent: String,
    /// Queue (1-based).
    pub queue: u16,
    /// Download class, tc notation (`1:1f`).
    pub class: String,
    /// Effective download ceil, kbit/s.
    pub download_max_kbit: u64,
    /// Effective upload ceil, kbit/s.
    pub upload_max_kbit: u64,
}

/// What `--dry-run --json` prints: one document.
#[derive(Debug, Serialize)]
pub struct DryRunOutput {
    /// Queues per direction.
    pub queues: u16,
    /// Stick offset (0 on a bridge).
    pub stick_offset: u16,
    /// Per queue.
    pub per_queue: Vec<QueueSummary>,
    /// Every planned circuit.
    pub circuits: Vec<CircuitSummary>,
    /// Circuits set aside for a problem of their own (with `line` and `reason`).
    pub quarantined: Vec<Quarantined>,
    /// lqos.conf and input warnings, quarantine diagnostics and planner warnings, one line each.
    pub warnings: Vec<String>,
    /// The ChangeSet summary: what would change against the applied plan.
    pub change: ReloadReport,
    /// Whether a previously applied plan was found.
    pub compared_with_applied: bool,
}

fn summarize(plan: &Plan) -> Vec<QueueSummary> {
    let mut per: BTreeMap<u16, QueueSummary> = BTreeMap::new();
    for n in &plan.nodes {
        per.entry(n.queue)
            .or_insert(QueueSummary {
                queue: n.queue,
                nodes: 0,
                circuits: 0,
                download_max_mbps: 0.0,
            })
            .nodes += 1;
    }
    for c in &plan.circuits {
        let e = per.entry(c.queue).or_insert(QueueSummary {
            queue: c.queue,
            nodes: 0,
            circuits: 0,
            download_max_mbps: 0.0,
        });
        e.circuits += 1;
        e.download_max_mbps += c.download_max.as_mbps_f64();
    }
    per.into_values().collect()
}

fn dry_run(
    config: &Config,
    conf_warnings: Vec<Diagnostic>,
    args: &Args,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let facts = facts_or_standin(config, out, args.json)?;
    tracing::debug!(?facts, "host facts");
    let applied = applied_plan(config);
    let pb = spinner("reading, validating and planning");
    let prepared = lqos_pipeline::prepare(config, facts, applied.as_ref());
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let prepared = match prepared {
        Ok(p) => p,
        Err(PipelineError::Read { source }) => {
            return Err(source).context("cannot read the inputs");
        }
        Err(e) => {
            let quarantined = match &e {
                PipelineError::TooManyQuarantined { quarantined, .. } => quarantined.clone(),
                _ => Vec::new(),
            };
            match CommandError::from(e) {
                CommandError::InvalidInput { diagnostics } => {
                    let mut all = conf_warnings;
                    all.extend(diagnostics);
                    if args.json {
                        write_json(out, &Refusal { refused: true, diagnostics: all, quarantined })?;
                    } else {
                        print_diagnostics(out, &all)?;
                        print_quarantine(out, &quarantined)?;
                        writeln!(out, "invalid inputs: nothing planned")?;
                    }
                    return Ok(Outcome::Invalid);
                }
                e => bail!("{e}"),
            }
        }
    };
    tracing::debug!(validate_ms = prepared.validate_ms, plan_ms = prepared.plan_ms, "planned");
    let base = applied.clone().unwrap_or_else(Plan::empty);
    let cs = lqos_plan::diff(&base, &prepared.plan);
    tracing::debug!(empty = cs.is_empty(), "diffed against the applied plan");
    let mut change = lqos_pipeline::report_for(&prepared.plan, &cs);
    change.validate_ms = prepared.validate_ms;
    change.plan_ms = prepared.plan_ms;
    change.quarantined = prepared.quarantined.clone();
    let mut warnings: Vec<String> =
        if args.json { conf_warnings.iter().map(|d| d.to_string()).collect() } else { Vec::new() };
    warnings.extend(
        prepared
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .map(|d| d.to_string()),
    );
    let quarantine_diags: Vec<Diagnostic> = prepared
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Quarantine)
        .cloned()
        .collect();
    warnings.extend(change.warnings.iter().cloned());
    let output = DryRunOutput {
        queues: prepared.plan.queues,
        stick_offset: prepared.plan.stick_offset,
        per_queue: summarize(&prepared.plan),
        circuits: prepared
            .plan
            .circuits
            .iter()
            .map(|c| CircuitSummary {
                circuit_id: c.id.0.clone(),
                name: c.name.clone(),
                parent: c.parent.clone(),
                queue: c.queue,
                class: c.class.to_string(),
                download_max_kbit: c.download_max.0,
                upload_max_kbit: c.upload_max.0,
            })
            .collect(),
        quarantined: prepared.quarantined,
        warnings,
        change,
        compared_with_applied: applied.is_some(),
    };
    if args.show_tc {
        out.write_all(lqos_plan::render_changeset_tc(&cs).as_bytes())?;
        return Ok(Outcome::Ok);
    }
    if args.json {
        write_json(out, &output)?;
        return Ok(Outcome::Ok);
    }
    writeln!(
        out,
        "plan: {} queue(s) per direction{}, {} node(s), {} circuit(s), {} mapping(s)",
        output.queues,
        if output.stick_offset > 0 { " (on a stick)" } else { "" },
        prepared.plan.nodes.len(),
        prepared.plan.circuits.len(),
        prepared.plan.mappings.len()
    )?;
    writeln!(out, "{:>6} {:>7} {:>9} {:>14}", "queue", "nodes", "circuits", "sum max Mbps")?;
    for q in &output.per_queue {
        writeln!(
            out,
            "{:>6} {:>7} {:>9} {:>14.1}",
            q.queue, q.nodes, q.circuits, q.download_max_mbps
        )?;
    }
    for w in &output.warnings {
        writeln!(out, "warning: {w}")?;
    }
    print_diagnostics(out, &quarantine_diags)?;
    print_quarantine(out, &output.quarantined)?;
    let c = &output.change.counts;
    writeln!(
        out,
        "{}: {} to add, {} to change in place, {} to delete, {} mapping(s) to add, {} to remove",
        if output.compared_with_applied {
            "change against the applied plan"
        } else {
            "no applied plan found; full build"
        },
        c.added,
        c.changed,
        c.deleted,
        c.mappings_added,
        c.mappings_removed
    )?;
    Ok(Outcome::Ok)
}

fn connect() -> anyhow::Result<BusClient> {
    let path = lqos_bus::bus_path();
    BusClient::connect(&path).context("applying needs lqosd (start it: systemctl start lqosd)")
}

fn reload(mode: ReloadMode, args: &Args, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let mut bus = connect()?;
    let pb = spinner("lqosd is applying the inputs");
    let answer = bus.request(&Command::Reload { mode });
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    match answer? {
        Response::Reload(report) => {
            if args.json {
                serde_json::to_writer_pretty(&mut *out, &report)?;
                writeln!(out)?;
            } else {
                print_diagnostics(out, &report.diagnostics)?;
                for w in &report.warnings {
                    writeln!(out, "warning: {w}")?;
                }
                print_quarantine(out, &report.quarantined)?;
                let c = &report.counts;
                writeln!(
                    out,
                    "applied{}: {} circuit(s) on {} queue(s); {} added, {} changed in place, {} deleted; \
mappings +{} -{}; validate {} ms, plan {} ms, apply {} ms",
                    if report.full_rebuild { " (checked against the kernel)" } else { "" },
                    report.circuits,
                    report.queues,
                    c.added,
                    c.changed,
                    c.deleted,
                    c.mappings_added,
                    c.mappings_removed,
                    report.validate_ms,
                    report.plan_ms,
                    report.apply_ms
                )?;
            }
            Ok(Outcome::Ok)
        }
        Response::Error(CommandError::InvalidInput { diagnostics }) => {
            if args.json {
                write_json(out, &Refusal { refused: true, diagnostics, quarantined: Vec::new() })?;
            } else {
                print_diagnostics(out, &diagnostics)?;
                writeln!(out, "invalid inputs: lqosd changed nothing; the running shaping stays")?;
            }
            Ok(Outcome::Invalid)
        }
        Response::Error(e) => bail!("lqosd: {e}"),
        other => bail!("unexpected answer from lqosd: {other:?}"),
    }
}

fn clear(out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let mut bus = connect()?;
    match bus.request(&Command::ClearTree)? {
        Response::Ack => {
            writeln!(out, "queue tree and mappings removed; traffic passes unshaped")?;
            Ok(Outcome::Ok)
        }
        Response::Error(e) => bail!("lqosd: {e}"),
        other => bail!("unexpected answer from lqosd: {other:?}"),
    }
}

fn print_diagnostics(out: &mut dyn Write, diags: &[Diagnostic]) -> anyhow::Result<()> {
    for d in diags {
        writeln!(out, "{d}")?;
    }
    Ok(())
}
