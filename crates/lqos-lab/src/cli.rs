//! The `lqos-lab` command line.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::lab::{Lab, LabSpec, SHAPER_TO_INTERNET, SHAPER_TO_NETWORK, down_by_prefix};
use crate::traffic::{Way, iperf};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "lqos-lab",
    version,
    about = "A network-namespace lab with subscribers shaped by lqosd"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
    /// Namespace name prefix.
    #[arg(long, global = true, default_value = "lqlab")]
    pub prefix: String,
    /// Directory for the lab's inputs, state, bus socket and lqosd log.
    #[arg(long, global = true, default_value = "/run/lqos-lab")]
    pub dir: PathBuf,
    /// Logging options (`--log-format text|json`).
    #[command(flatten)]
    pub log: lqos_log::LogArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Build the lab, start lqosd in the shaper namespace, apply the lab inputs and start
    /// lqos_web there as an unprivileged user.
    Up {
        /// Number of subscribers (each gets an IPv4 and an IPv6 address).
        #[arg(long, default_value_t = 4)]
        subscribers: usize,
        /// Print the lab description as JSON.
        #[arg(long)]
        json: bool,
        /// lqosd binary (default: next to lqos-lab, else $PATH).
        #[arg(long)]
        lqosd: Option<PathBuf>,
        /// lqos_web binary (default: next to lqos-lab, else $PATH).
        #[arg(long)]
        web: Option<PathBuf>,
        /// `shape` (HTB classes per circuit) or `observe` (measure only, nothing shaped).
        #[arg(long, value_enum, default_value_t = QueueMode::Shape)]
        queue_mode: QueueMode,
        /// The circuits' leaf qdisc (`[queues] default_sqm`), e.g. "pfifo limit 100"; the lab
        /// kernel has no cake or fq_codel. Default: none (the kernel's default FIFO).
        #[arg(long)]
        sqm: Option<String>,
    },
    /// Remove everything `up` created.
    Down,
    /// `up`, forward the GUI to this host's port 9123, generate traffic, stay until Ctrl-C.
    Run {
        /// Number of subscribers.
        #[arg(long, default_value_t = 8)]
        subscribers: usize,
        /// lqosd binary.
        #[arg(long)]
        lqosd: Option<PathBuf>,
        /// lqos_web binary.
        #[arg(long)]
        web: Option<PathBuf>,
        /// Host address for the GUI.
        #[arg(long, default_value = "0.0.0.0:9123")]
        gui: SocketAddr,
        /// Stop by itself after this many seconds (0 = until Ctrl-C).
        #[arg(long, default_value_t = 0)]
        duration: u64,
        /// `shape` or `observe`.
        #[arg(long, value_enum, default_value_t = QueueMode::Shape)]
        queue_mode: QueueMode,
    },
}

/// lqosd's `[queues] queue_mode` for the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueMode {
    /// Every circuit gets its HTB class and leaf qdisc.
    Shape,
    /// Count and measure (throughput, RTT, retransmits) without shaping.
    Observe,
}

/// The lab's lqos.conf text with `sqm` as `[queues] default_sqm` (a TOML string).
pub fn conf_with_sqm(text: &str, sqm: &str) -> String {
    let quoted = toml_string(sqm);
    text.replace("default_sqm = \"none\"", &format!("default_sqm = {quoted}"))
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The lab's lqos.conf text with `mode` in force (the lab writes shape mode; observe replaces
/// its `monitor_only = false` line with `queue_mode = "observe"`).
pub fn conf_with_queue_mode(text: &str, mode: QueueMode) -> String {
    match mode {
        QueueMode::Shape => text.to_owned(),
        QueueMode::Observe => text.replace("monitor_only = false", "queue_mode = \"observe\""),
    }
}

#[derive(Debug, Serialize)]
struct Description<'a> {
    namespaces: [String; 3],
    shaper_interfaces: [&'a str; 2],
    lqos_conf: PathBuf,
    bus: PathBuf,
    lqosd_log: PathBuf,
    web_log: PathBuf,
    subscribers: &'a [crate::Subscriber],
}

fn bring_up(
    cli: &Cli,
    subscribers: usize,
    lqosd: &Option<PathBuf>,
    web: &Option<PathBuf>,
    mode: QueueMode,
    sqm: Option<&str>,
) -> anyhow::Result<Lab> {
    if !crate::is_root() {
        bail!("lqos-lab needs root (network namespaces, XDP, tc)");
    }
    down_by_prefix(&cli.prefix, &cli.dir);
    let _ = std::fs::remove_dir_all(&cli.dir);
    let spec = LabSpec::demo(&cli.prefix, subscribers, cli.dir.clone());
    let mut lab = Lab::up(spec).context("build the lab namespaces")?;
    if mode != QueueMode::Shape || sqm.is_some() {
        let conf = lab.spec.config_path();
        let mut text =
            std::fs::read_to_string(&conf).with_context(|| format!("read {}", conf.display()))?;
        text = conf_with_queue_mode(&text, mode);
        if let Some(sqm) = sqm {
            text = conf_with_sqm(&text, sqm);
        }
        std::fs::write(&conf, text).with_context(|| format!("write {}", conf.display()))?;
    }
    let bin = lqosd.clone().unwrap_or_else(|| crate::find_binary("lqosd"));
    lab.start_lqosd(&bin).with_context(|| format!("start {}", bin.display()))?;
    let mut bus = lab.bus().context("connect to the lab's lqosd")?;
    match bus.request(&lqos_bus::Command::Reload { mode: lqos_bus::ReloadMode::Full })? {
        lqos_bus::Response::Reload(r) => tracing::info!(
            circuits = r.circuits,
            added = r.counts.added,
            mappings = r.counts.mappings_added,
            apply_ms = r.apply_ms,
            "lab inputs applied"
        ),
        other => bail!("lqosd refused the lab inputs: {other:?}"),
    }
    let web = web.clone().unwrap_or_else(|| crate::find_binary("lqos_web"));
    lab.start_web(&web).with_context(|| format!("start {}", web.display()))?;
    Ok(lab)
}

fn describe(lab: &Lab, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let (a, b, c) = lab.spec.ns_names();
    let d = Description {
        namespaces: [a, b, c],
        shaper_interfaces: [SHAPER_TO_INTERNET, SHAPER_TO_NETWORK],
        lqos_conf: lab.spec.config_path(),
        bus: lab.spec.bus_path(),
        lqosd_log: lab.spec.dir.join("lqosd.log"),
        web_log: lab.spec.dir.join("lqos_web.log"),
        subscribers: &lab.spec.subscribers,
    };
    if json {
        serde_json::to_writer_pretty(&mut *out, &d)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "namespaces: internet {} | shaper {} | subscribers {}",
        d.namespaces[0], d.namespaces[1], d.namespaces[2]
    )?;
    writeln!(
        out,
        "shaper: bridge br0 over {SHAPER_TO_INTERNET} (to_internet) and {SHAPER_TO_NETWORK} (to_network), 4 queues each"
    )?;
    writeln!(
        out,
        "config: {}   bus: {}   logs: {} {}",
        d.lqos_conf.display(),
        d.bus.display(),
        d.lqosd_log.display(),
        d.web_log.display()
    )?;
    writeln!(
        out,
        "{:<6} {:<16} {:<22} {:>9} {:>7}  parent",
        "id", "ipv4", "ipv6", "down Mbps", "up Mbps"
    )?;
    for s in d.subscribers {
        writeln!(
            out,
            "{:<6} {:<16} {:<22} {:>9} {:>7}  {}",
            s.circuit_id, s.ipv4, s.ipv6, s.download_mbps, s.upload_mbps, s.parent
        )?;
    }
    Ok(())
}

/// Runs the command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    match &cli.command {
        Cmd::Up { subscribers, json, lqosd, web, queue_mode, sqm } => {
            let lab = bring_up(&cli, *subscribers, lqosd, web, *queue_mode, sqm.as_deref())?;
            describe(&lab, *json, &mut out)?;
            let _ = lab.detach();
            Ok(())
        }
        Cmd::Down => {
            down_by_prefix(&cli.prefix, &cli.dir);
            let _ = std::fs::remove_dir_all(&cli.dir);
            writeln!(out, "lab {} removed", cli.prefix)?;
            Ok(())
        }
        Cmd::Run { subscribers, lqosd, web, gui, duration, queue_mode } => {
            let stop = Arc::new(AtomicBool::new(false));
            let s2 = stop.clone();
            // SIGINT, SIGTERM and SIGHUP (the `termination` feature) all end the run the same
            // way: the loop stops and the lab is removed, also when the terminal is gone.
            ctrlc::set_handler(move || s2.store(true, Ordering::SeqCst))
                .context("install the SIGINT/SIGTERM/SIGHUP handler")?;
            let lab = bring_up(&cli, *subscribers, lqosd, web, *queue_mode, None)?;
            describe(&lab, false, &mut out)?;
            crate::forward::forward_into_netns(*gui, &lab.shaper.path(), "127.0.0.1:9123".parse()?)
                .context("forward the GUI port")?;
            let log =
                std::fs::read_to_string(lab.spec.dir.join("lqos_web.log")).unwrap_or_default();
            let token = log.split("setup?token=").nth(1).map(|rest| {
                rest.chars().take_while(char::is_ascii_alphanumeric).collect::<String>()
            });
            match token {
                Some(t) => writeln!(
                    out,
                    "GUI: https://<this host>:{port}/ (self-signed certificate, fingerprint in the log)  first admin (one-time link): https://<this host>:{port}/setup?token={t}",
                    port = gui.port()
                )?,
                None => writeln!(out, "GUI: https://<this host>:{}/", gui.port())?,
            }
            writeln!(out, "generating traffic; Ctrl-C to stop and remove the lab")?;
            let start = Instant::now();
            let mut round = 0usize;
            while !stop.load(Ordering::SeqCst)
                && (*duration == 0 || start.elapsed() < Duration::from_secs(*duration))
            {
                let n = lab.spec.subscribers.len().max(1);
                let idx = round % n;
                let way = if round % 3 == 2 { Way::Upload } else { Way::Download };
                match iperf(&lab, idx, way, 5, round % 4 == 3, 5201 + (round % 50) as u16) {
                    Ok(r) => tracing::info!(
                        subscriber = idx + 1,
                        ?way,
                        mbps = r.received_bps / 1e6,
                        "traffic"
                    ),
                    Err(e) => {
                        tracing::warn!(subscriber = idx + 1, error = %e, "traffic run failed")
                    }
                }
                round += 1;
                for _ in 0..20 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            // The terminal may be gone (SIGHUP): a failed write must not skip the clean-up.
            let _ = writeln!(out, "stopping; removing the lab");
            lab.down();
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observe_mode_is_written_into_the_lab_config_and_parses() {
        let spec = LabSpec::demo("lqt", 2, PathBuf::from("/tmp/lqos-lab-conf-test"));
        let text = spec.config_text();
        assert_eq!(conf_with_queue_mode(&text, QueueMode::Shape), text);
        let observe = conf_with_queue_mode(&text, QueueMode::Observe);
        assert!(observe.contains("queue_mode = \"observe\""), "{observe}");
        assert!(!observe.contains("monitor_only"));
        let lqos_conf = std::path::Path::new("lqos.conf");
        let (config, diags) = lqos_config::parse_config_str(&observe, lqos_conf);
        let config = config.unwrap_or_else(|| panic!("the observe config parses: {diags:?}"));
        assert_eq!(config.queues.queue_mode, lqos_config::QueueMode::Observe);
        let shaped = lqos_config::parse_config_str(&text, lqos_conf).0.expect("parses");
        assert_eq!(shaped.queues.queue_mode, lqos_config::QueueMode::Shape);
        let fifo = conf_with_sqm(&text, "pfifo limit 100");
        let (config, diags) = lqos_config::parse_config_str(&fifo, lqos_conf);
        assert!(config.is_some() && !lqos_config::has_errors(&diags), "{diags:?}");
        assert!(fifo.contains("default_sqm = \"pfifo limit 100\""), "{fifo}");
        // A quote cannot end the TOML string early.
        let odd = conf_with_sqm(&text, "x\" = 1");
        assert!(odd.contains(r#"default_sqm = "x\" = 1""#), "{odd}");
    }
}
