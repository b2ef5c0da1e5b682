//! The crate's error type: only I/O and "the file is invalid" are errors; every individual
//! problem inside a file is a [`Diagnostic`].

use std::io;
use std::path::PathBuf;

use crate::diag::Diagnostic;

/// Why a file could not be loaded or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file does not exist.
    #[error(
        "no lqos configuration at {path} (copy packaging/lqos.example.conf to /etc/lqos.conf \
         and edit it, or point --config or the LQOS_CONFIG environment variable at your file)"
    )]
    NotFound {
        /// Where we looked.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file was read but holds errors; `diagnostics` lists every problem (warnings too).
    #[error("invalid {path}: {}", summarize(diagnostics))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// All problems found, errors and warnings.
        diagnostics: Vec<Diagnostic>,
    },
    /// Writing (temp file, fsync or rename) failed.
    #[error("write {path}")]
    Write {
        /// The destination file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

fn summarize(diags: &[Diagnostic]) -> String {
    let errors: Vec<&Diagnostic> = diags.iter().filter(|d| d.is_error()).collect();
    match errors.first() {
        None => "no errors".to_string(),
        Some(first) if errors.len() == 1 => format!("1 error: {first}"),
        Some(first) => format!("{} errors, first: {first}", errors.len()),
    }
}
