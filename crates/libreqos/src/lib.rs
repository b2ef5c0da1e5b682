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
use lqos_config::{Config, ConfigError, Diagnostic, has_errors};
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
Validation rules (every problem is reported at once as file:line: field: message):\n\
  ShapedDevices.csv: field count must match the header; Circuit ID must not be empty; IPv4/IPv6 \
must be valid hosts or prefixes; an address or overlapping prefix may belong to one circuit only; \
rates must be numbers >= 0.01 Mbps with min <= max; Parent Node must exist in network.json; rows \
of one circuit must agree on the parent; sqm must be cake, fq_codel, none or down/up.\n\
  network.json: valid JSON object; node names unique across the whole tree; rates numbers >= 0 \
(missing or 0 inherits the parent's); at most 6 site levels (HTB depth 8).\n\n\
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
    if args.clear {
        return clear(out);
    }
    let path = lqos_config::config_path_from_env(args.config.as_deref());
    tracing::debug!(path = %path.display(), "loading configuration");
    let config = match lqos_config::load_config(&path) {
        Ok((config, warnings)) => {
            print_diagnostics(out, &warnings, args.json)?;
            config
        }
        Err(ConfigError::Invalid { diagnostics, .. }) => {
            print_diagnostics(out, &diagnostics, args.json)?;
            return Ok(Outcome::Invalid);
        }
        Err(e) => return Err(e).context("cannot load the configuration"),
    };
    if args.validate {
        return validate(&config, args, out);
    }
    if args.dry_run {
        return dry_run(&config, args, out);
    }
    reload(if args.full { ReloadMode::Full } else { ReloadMode::Incremental }, args, out)
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

fn validate(config: &Config, args: &Args, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let pb = spinner("reading and validating inputs");
    let inputs = lqos_config::load_inputs(config).context("cannot read the inputs")?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    tracing::debug!(
        nodes = inputs.network.nodes.len(),
        circuits = inputs.circuits.len(),
        diagnostics = inputs.diagnostics.len(),
        "inputs read"
    );
    print_diagnostics(out, &inputs.diagnostics, args.json)?;
    let invalid = has_errors(&inputs.diagnostics);
    if !args.json {
        let errors = inputs.diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = inputs.diagnostics.len() - errors;
        if invalid {
            writeln!(
                out,
                "invalid: {errors} error(s), {warnings} warning(s); nothing was changed"
            )?;
        } else {
            writeln!(
                out,
                "valid: {} node(s), {} circuit(s), {} device(s), {warnings} warning(s)",
                inputs.network.nodes.len(),
                inputs.circuits.len(),
                inputs.circuits.iter().map(|c| c.devices.len()).sum::<usize>()
            )?;
        }
    }
    Ok(if invalid { Outcome::Invalid } else { Outcome::Ok })
}

/// Host facts, or a stand-in when the interfaces are not on this machine (planning on a
/// laptop): every queue count = CPUs (or `override_available_queues`).
fn facts_or_standin(config: &Config, out: &mut dyn Write, json: bool) -> anyhow::Result<HostFacts> {
    match lqosd::facts::host_facts(config) {
        Ok(f) => Ok(f),
        Err(e) => {
            let cpus = lqosd::facts::cpu_count();
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

/// What `--dry-run --json` prints.
#[derive(Debug, Serialize)]
pub struct DryRunOutput {
    /// Queues per direction.
    pub queues: u16,
    /// Stick offset (0 on a bridge).
    pub stick_offset: u16,
    /// Per queue.
    pub per_queue: Vec<QueueSummary>,
    /// Input warnings and planner warnings.
    pub warnings: Vec<String>,
    /// What would change against the applied plan.
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

fn dry_run(config: &Config, args: &Args, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let facts = facts_or_standin(config, out, args.json)?;
    tracing::debug!(?facts, "host facts");
    let store = lqosd::engine::store_for(config);
    let applied = match store.load() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %lqosd::engine::error_chain(&e), "ignoring stored plan");
            None
        }
    };
    let previous = applied.as_ref().map(|p| p.identities.clone()).unwrap_or_default();
    let pb = spinner("reading, validating and planning");
    let prepared = lqosd::engine::prepare(config, facts, &previous);
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let prepared = match prepared {
        Ok(p) => p,
        Err(CommandError::InvalidInput { diagnostics }) => {
            print_diagnostics(out, &diagnostics, args.json)?;
            if !args.json {
                writeln!(out, "invalid inputs: nothing planned")?;
            }
            return Ok(Outcome::Invalid);
        }
        Err(e) => bail!("{e}"),
    };
    tracing::debug!(validate_ms = prepared.validate_ms, plan_ms = prepared.plan_ms, "planned");
    let base = applied.clone().unwrap_or_else(Plan::empty);
    let cs = lqos_plan::diff(&base, &prepared.plan);
    tracing::debug!(empty = cs.is_empty(), "diffed against the applied plan");
    let mut change = lqosd::engine::report_for(&prepared.plan, &cs);
    change.validate_ms = prepared.validate_ms;
    change.plan_ms = prepared.plan_ms;
    let mut warnings: Vec<String> = prepared.diagnostics.iter().map(|d| d.to_string()).collect();
    warnings.extend(change.warnings.iter().cloned());
    let output = DryRunOutput {
        queues: prepared.plan.queues,
        stick_offset: prepared.plan.stick_offset,
        per_queue: summarize(&prepared.plan),
        warnings,
        change,
        compared_with_applied: applied.is_some(),
    };
    if args.show_tc {
        out.write_all(lqos_plan::render_changeset_tc(&cs).as_bytes())?;
        return Ok(Outcome::Ok);
    }
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &output)?;
        writeln!(out)?;
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
                print_diagnostics(out, &report.diagnostics, false)?;
                for w in &report.warnings {
                    writeln!(out, "warning: {w}")?;
                }
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
            print_diagnostics(out, &diagnostics, args.json)?;
            if !args.json {
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

fn print_diagnostics(out: &mut dyn Write, diags: &[Diagnostic], json: bool) -> anyhow::Result<()> {
    if json {
        if !diags.is_empty() {
            serde_json::to_writer(&mut *out, diags)?;
            writeln!(out)?;
        }
        return Ok(());
    }
    for d in diags {
        writeln!(out, "{d}")?;
    }
    Ok(())
}
