//! The one error type of this crate.

use std::fmt;
use std::path::PathBuf;

use lqos_config::Diagnostic;

/// Which CRM an import talks to. Displayed as the operator knows it (`UISP`, `Splynx`, `Netzur`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Crm {
    /// Ubiquiti UISP (NMS API v2.1).
    Uisp,
    /// Splynx (API 2.0).
    Splynx,
    /// Netzur (one JSON document).
    Netzur,
}

impl Crm {
    /// Lower-case key used in logs and in the scheduler state (`uisp`, `splynx`, `netzur`).
    pub fn key(self) -> &'static str {
        match self {
            Crm::Uisp => "uisp",
            Crm::Splynx => "splynx",
            Crm::Netzur => "netzur",
        }
    }

    /// What the CRM authenticates with, for "rejected the …" messages.
    pub fn credential(self) -> &'static str {
        match self {
            Crm::Uisp => "token",
            Crm::Splynx => "API key and secret",
            Crm::Netzur => "API key",
        }
    }

    /// The lqos.conf section holding this CRM's settings.
    pub fn section(self) -> &'static str {
        match self {
            Crm::Uisp => "[uisp_integration]",
            Crm::Splynx => "[splynx_integration]",
            Crm::Netzur => "[netzur_integration]",
        }
    }
}

impl fmt::Display for Crm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Crm::Uisp => "UISP",
            Crm::Splynx => "Splynx",
            Crm::Netzur => "Netzur",
        })
    }
}

/// Why an import was not published. Every variant names the CRM; HTTP variants also name the
/// URL and the status or cause. When an import fails nothing is written: the last good
/// `network.json` and `ShapedDevices.csv` stay in force.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The CRM section is missing or incomplete.
    #[error("{crm} is not configured: {cause} (set it in {section} of lqos.conf)", section = crm.section())]
    NotConfigured {
        /// CRM.
        crm: Crm,
        /// What is missing.
        cause: String,
    },
    /// HTTP 401/403.
    #[error("{crm} rejected the {credential} (HTTP {status}) at {url}", credential = crm.credential())]
    Rejected {
        /// CRM.
        crm: Crm,
        /// Requested URL.
        url: String,
        /// HTTP status.
        status: u16,
    },
    /// Any other non-success status (after retries for 429 and 5xx).
    #[error("{crm} answered HTTP {status} at {url}: {cause}")]
    Status {
        /// CRM.
        crm: Crm,
        /// Requested URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Start of the answer body (or "after N attempts").
        cause: String,
    },
    /// No answer within the request timeout (after retries).
    #[error("{crm} did not answer within {timeout_secs} s at {url}")]
    Timeout {
        /// CRM.
        crm: Crm,
        /// Requested URL.
        url: String,
        /// The per-request timeout.
        timeout_secs: u64,
    },
    /// Connection, TLS or protocol failure (after retries).
    #[error("cannot reach {crm} at {url}")]
    Connect {
        /// CRM.
        crm: Crm,
        /// Requested URL.
        url: String,
        /// Cause.
        #[source]
        source: reqwest::Error,
    },
    /// The answer is larger than [`crate::http::HttpOptions::max_answer_bytes`].
    #[error(
        "{crm} sent more than {} at {url}; refused, the last good files are kept",
        human_bytes(*limit_bytes)
    )]
    TooLarge {
        /// CRM.
        crm: Crm,
        /// Requested URL.
        url: String,
        /// The limit.
        limit_bytes: usize,
    },
    /// The answer is not JSON.
    #[error("{crm} sent malformed JSON at {url}")]
    Malformed {
        /// CRM.
        crm: Crm,
        /// Requested URL.
        url: String,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
    /// The answer is JSON but not the expected document (e.g. an object where a list belongs).
    #[error("{crm} sent an unexpected document at {url}: {cause}")]
    Shape {
        /// CRM.
        crm: Crm,
        /// Requested URL (or endpoint).
        url: String,
        /// What is wrong.
        cause: String,
    },
    /// The data cannot be turned into a hierarchy (e.g. no root site for `full`).
    #[error("{crm} data cannot be imported: {cause}")]
    Data {
        /// CRM.
        crm: Crm,
        /// Why.
        cause: String,
    },
    /// The import has no circuits.
    #[error(
        "{crm} import is empty (0 circuits); nothing was published and the last good files are kept \
         (if this is intended, run `lqos_scheduler --once --force` or set max_shrink_ratio = 1.0 in [integration_common])"
    )]
    Empty {
        /// CRM.
        crm: Crm,
    },
    /// The import would remove too many circuits.
    #[error(
        "{crm} import would remove {removed} of {before} circuits ({pct:.0}%), more than max_shrink_ratio = {max_ratio}; \
         nothing was published and the last good files are kept (if this is intended, run \
         `lqos_scheduler --once --force` or set max_shrink_ratio = 1.0 in [integration_common])",
        pct = *removed as f64 * 100.0 / (*before).max(1) as f64
    )]
    Shrink {
        /// CRM.
        crm: Crm,
        /// Circuits in the current ShapedDevices.csv.
        before: usize,
        /// Circuits of the current file missing from the import.
        removed: usize,
        /// The configured limit.
        max_ratio: f64,
    },
    /// The generated files fail lqos-config's validation; nothing was published.
    #[error(
        "{crm} import fails validation ({} errors, first: {}); nothing was published",
        diagnostics.iter().filter(|d| d.is_error()).count(),
        diagnostics.iter().find(|d| d.is_error()).map(ToString::to_string).unwrap_or_default()
    )]
    Invalid {
        /// CRM.
        crm: Crm,
        /// Every diagnostic.
        diagnostics: Vec<Diagnostic>,
    },
    /// An operator override file (`lqos_overrides.json`, a bandwidth CSV,
    /// `appendToShapedDevices.csv`) has errors; publishing without it would drop the
    /// operator's settings, so nothing was published.
    #[error(
        "operator overrides have {} error(s), first: {}; nothing was published and the last good files are kept",
        diagnostics.iter().filter(|d| d.is_error()).count(),
        diagnostics.iter().find(|d| d.is_error()).map(ToString::to_string).unwrap_or_default()
    )]
    Overrides {
        /// Every diagnostic, errors and warnings.
        diagnostics: Vec<Diagnostic>,
    },
    /// Reading the current file (for the shrink guard or the backup) failed.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing an output file failed.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: lqos_config::ConfigError,
    },
    /// The whole run exceeded its deadline.
    #[error("{crm} import did not finish within {timeout_secs} s; the last good files are kept")]
    RunTimeout {
        /// CRM.
        crm: Crm,
        /// The deadline.
        timeout_secs: u64,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for {crm}")]
    Client {
        /// CRM.
        crm: Crm,
        /// Cause.
        #[source]
        source: reqwest::Error,
    },
}

impl ImportError {
    /// The CRM this error is about, if any.
    pub fn crm(&self) -> Option<Crm> {
        match self {
            ImportError::NotConfigured { crm, .. }
            | ImportError::Rejected { crm, .. }
            | ImportError::Status { crm, .. }
            | ImportError::Timeout { crm, .. }
            | ImportError::Connect { crm, .. }
            | ImportError::Malformed { crm, .. }
            | ImportError::TooLarge { crm, .. }
            | ImportError::Shape { crm, .. }
            | ImportError::Data { crm, .. }
            | ImportError::Empty { crm }
            | ImportError::Shrink { crm, .. }
            | ImportError::Invalid { crm, .. }
            | ImportError::RunTimeout { crm, .. }
            | ImportError::Client { crm, .. } => Some(*crm),
            ImportError::Read { .. }
            | ImportError::Write { .. }
            | ImportError::Overrides { .. } => None,
        }
    }

    /// True when the operator input is at fault (exit code 1), false for runtime failures.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            ImportError::NotConfigured { .. }
                | ImportError::Invalid { .. }
                | ImportError::Overrides { .. }
                | ImportError::Empty { .. }
                | ImportError::Shrink { .. }
                | ImportError::Data { .. }
        )
    }
}

/// `256 MiB`, `64 KiB`, `512 bytes`.
pub fn human_bytes(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// The error and all its causes on one line, `outer: cause: cause`.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}
