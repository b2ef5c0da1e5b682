//! lqos-log installs the one `tracing` subscriber every lqos binary uses, so that all of them
//! log the same way: to stderr (journald under systemd), filtered by `RUST_LOG` (else the
//! binary's default), as text or as one JSON object per line.
//!
//! * Text gets ANSI colour only when stderr is a terminal and `NO_COLOR` is unset: journald
//!   and files never see raw escape codes.
//! * `--log-format json` (or `LQOS_LOG_FORMAT=json`) writes JSON lines with `timestamp`,
//!   `level`, `target`, `fields` (the message is `fields.message`) and the current spans,
//!   for log shippers.
//!
//! Libraries never call this; binaries flatten [`LogArgs`] into their arguments and call
//! [`init`] first thing.
//!
//! ```no_run
//! #[derive(clap::Parser)]
//! struct Args {
//!     #[command(flatten)]
//!     log: lqos_log::LogArgs,
//! }
//! let args = <Args as clap::Parser>::parse();
//! lqos_log::init(&args.log, "info");
//! tracing::info!(interface = "eth1", "attached");
//! ```
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::io::IsTerminal;

pub use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal only).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The logging options every lqos binary accepts.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LogArgs {
    /// Log format on stderr: `text` or `json`.
    #[arg(long, value_enum, env = "LQOS_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: LogFormat,
}

/// True when colour codes may be written: stderr is a terminal and `NO_COLOR` is not set.
pub fn stderr_wants_colour() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// The filter: `RUST_LOG` when it is set and valid, else `default` (e.g. `info`).
pub fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}

/// Installs the subscriber on stderr with filter [`filter`]`(default_filter)`. A second call
/// does nothing.
pub fn init(args: &LogArgs, default_filter: &str) {
    init_with_filter(args, filter(default_filter));
}

/// Like [`init`] with a ready filter (for binaries whose `--debug` picks the filter).
pub fn init_with_filter(args: &LogArgs, filter: EnvFilter) {
    install(args.log_format, filter, std::io::stderr, stderr_wants_colour());
}

/// Installs [`subscriber`]`(format, filter, writer, ansi)` as the global default (and the
/// `log` crate bridge). A second call does nothing.
pub fn install<W>(format: LogFormat, filter: EnvFilter, writer: W, ansi: bool)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = subscriber(format, filter, writer, ansi).try_init();
}

/// The subscriber every lqos binary uses, writing to `writer`; `ansi` allows colour codes in
/// text lines (JSON never has them).
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder.json().with_ansi(false).with_current_span(true).flatten_event(false).finish(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn capture(format: LogFormat, ansi: bool) -> String {
        let buf = Buf::default();
        let sub = subscriber(format, EnvFilter::new("info"), buf.clone(), ansi);
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("apply", queue = 3);
            let _e = span.enter();
            tracing::warn!(interface = "eth1", line = 42, "interface down");
            tracing::debug!("filtered out");
        });
        let bytes = buf.0.lock().expect("buf").clone();
        String::from_utf8(bytes).expect("utf8")
    }

    #[test]
    fn text_without_a_terminal_has_no_escape_codes() {
        let plain = capture(LogFormat::Text, false);
        assert!(
            plain.contains("interface down") && plain.contains("interface=\"eth1\""),
            "{plain}"
        );
        assert!(!plain.contains('\u{1b}'), "raw escape codes: {plain:?}");
        // The same line on a terminal is coloured, so the switch is what removes them.
        assert!(capture(LogFormat::Text, true).contains('\u{1b}'));
    }

    #[test]
    fn json_lines_parse_and_carry_fields_and_span() {
        let out = capture(LogFormat::Json, false);
        let line = out.lines().next().expect("one line");
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["fields"]["message"], "interface down");
        assert_eq!(v["fields"]["interface"], "eth1");
        assert_eq!(v["fields"]["line"], 42);
        assert_eq!(v["span"]["name"], "apply");
        assert!(!out.contains('\u{1b}'));
        assert!(!out.contains("filtered out"), "the filter applies: {out}");
    }

    #[test]
    fn log_format_comes_from_the_flag() {
        #[derive(clap::Parser)]
        struct A {
            #[command(flatten)]
            log: LogArgs,
        }
        let a = <A as clap::Parser>::try_parse_from(["x", "--log-format", "json"]).expect("parse");
        assert_eq!(a.log.log_format, LogFormat::Json);
        assert!(<A as clap::Parser>::try_parse_from(["x", "--log-format", "xml"]).is_err());
    }
}
