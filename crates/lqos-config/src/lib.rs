//! lqos-config owns the operator's inputs: `/etc/lqos.conf` (LibreQoS 1.5 TOML schema),
//! `ShapedDevices.csv` and `network.json`. It parses them, validates them (reporting every
//! problem at once with file, line and field) and writes them back atomically. Its only I/O is
//! loading and writing files; all parsing is on strings so tests need no disk. It never
//! plans, never touches the kernel and never prints.
//!
//! Main types: [`Config`], [`Network`], [`Circuit`], [`Diagnostic`], [`ConfigError`].
//! Main functions: [`load_config`] / [`parse_config_str`], [`load_inputs`] (both input files
//! plus [`validate_inputs_with_rejected`]), [`parse_network_str`], [`parse_shaped_devices`] /
//! [`parse_shaped_devices_str`], [`validate_inputs`], and the
//! writers [`write_network`] / [`write_shaped_devices`] / [`write_atomic`] (temp file, fsync,
//! rename, mode of the replaced file kept). [`edit_config_str`] changes single values of
//! lqos.conf text and keeps comments, key order and unknown sections. [`keys`] is the one
//! table of every lqos.conf key with what lqos does with it; [`migrate`] turns a LibreQoS 1.4
//! configuration into a 1.5 file; [`decode_text`] reads UTF-8, UTF-16 or Windows-1252 bytes.
//!
//! ```
//! use lqos_config::{parse_network_str, parse_shaped_devices_str, validate_inputs, has_errors};
//!
//! let (net, d1) = parse_network_str(r#"{"Tower": {"downloadBandwidthMbps": 500}}"#, "network.json");
//! let csv = "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,MAC,IPv4,IPv6,\
//!            Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment\n\
//!            c1,Alice,d1,Router,Tower,,100.64.0.1,,10,2,100,20,\n";
//! let (circuits, d2) = parse_shaped_devices_str(csv, "ShapedDevices.csv");
//! let d3 = validate_inputs(&net, &circuits, "network.json", "ShapedDevices.csv");
//! assert!(!has_errors(&d1) && !has_errors(&d2) && !has_errors(&d3));
//! assert_eq!(circuits[0].download_max.0, 100_000); // kbit/s
//!
//! // Problems come back with file, line and field:
//! let (_, d) = parse_shaped_devices_str(&csv.replace("100,20", "12x,20"), "ShapedDevices.csv");
//! assert_eq!(d[0].to_string(),
//!     "ShapedDevices.csv:2: Download Max Mbps: '12x' is not a number (hint: rates are Mbps, at least 0.01)");
//! ```
//!
//! # Validation rules
#![doc = include_str!("../docs/validation.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, reason = "tests unwrap known-good inputs"))]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod conf;
pub mod diag;
pub mod edit;
pub mod error;
mod json;
pub mod keys;
pub mod lock;
pub mod migrate;
pub mod model;
pub mod network;
mod pos;
pub mod settings;
pub mod shaped;
pub mod sqm;
pub mod validate;

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use conf::{
    CONFIG_ENV, DEFAULT_CONFIG_PATH, DIRECTORY_ENV, default_state_directory, parse_config_str,
};
pub use diag::{Diagnostic, Severity, has_errors, has_quarantine};
pub use edit::{ConfEdit, ConfValue, EditError, edit_config_str};
pub use error::ConfigError;
pub use lock::{INPUTS_LOCK_FILE, InputsLock, lock_inputs};
pub use model::*;
pub use network::{MAX_SITE_DEPTH, network_to_string, parse_network_str};
pub use settings::{
    COMMON_SETTINGS, SettingError, SettingKind, SettingsEditError, edit_common_settings,
};
pub use shaped::{
    CSV_HEADER, Col as ShapedColumn, MIN_RATE_KBIT, ShapedDevices, header_column,
    parse_shaped_devices, parse_shaped_devices_str, shaped_devices_to_string,
};
pub use sqm::{format_sqm_override, parse_sqm_override, parse_sqm_tokens};
pub use validate::{
    MAX_RATE_KBIT, ParentIndex, ParentLookup, QuarantineAction, Quarantined, Triage, triage,
    validate_inputs, validate_inputs_with_rejected,
};

/// The configuration path: `--config` if given, else `$LQOS_CONFIG`, else `/etc/lqos.conf`.
pub fn config_path_from_env(cli: Option<&Path>) -> PathBuf {
    if let Some(p) = cli {
        return p.to_path_buf();
    }
    match std::env::var_os(CONFIG_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_CONFIG_PATH),
    }
}

/// Reads a text file and decodes it with [`decode_text`].
fn read_text(
    path: &Path,
    label: &str,
    warnings: &mut Vec<Diagnostic>,
) -> Result<String, ConfigError> {
    let bytes = fs::read(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => ConfigError::NotFound { path: path.to_path_buf() },
        _ => ConfigError::Read { path: path.to_path_buf(), source },
    })?;
    let (text, warning) = decode_text(&bytes, label);
    warnings.extend(warning);
    Ok(text)
}

/// Decodes an input file's bytes the way LibreQoS reads them: UTF-8 (a BOM is dropped),
/// UTF-16 with a BOM, and otherwise Windows-1252 (what spreadsheet programs on Windows save
/// as "CSV"), with one warning naming the encoding used. Never fails: every byte sequence
/// decodes to some text.
pub fn decode_text(bytes: &[u8], label: &str) -> (String, Option<Diagnostic>) {
    if let Some((enc, bom_len)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, _) = enc.decode_without_bom_handling(bytes.get(bom_len..).unwrap_or_default());
        return (text.into_owned(), None);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), None),
        Err(_) => {
            let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes);
            let d = Diagnostic::warning(label, "file is not UTF-8; read as Windows-1252")
                .hint("save the file as UTF-8 to be sure names and comments read as intended");
            (text.into_owned(), Some(d))
        }
    }
}

/// [`load_config`] for a daemon's start: each warning is logged as a `warn` event and each
/// error as an `error` event (one line each, with file and line), and the failure comes back
/// as one message (`<path> is invalid`, or the read error with its causes) for the caller's
/// own error type.
pub fn load_config_logged(path: &Path) -> Result<Config, String> {
    match load_config(path) {
        Ok((config, warnings)) => {
            for w in &warnings {
                tracing::warn!(problem = %w, "configuration");
            }
            Ok(config)
        }
        Err(ConfigError::Invalid { diagnostics, .. }) => {
            for d in diagnostics.iter().filter(|d| d.is_error()) {
                tracing::error!(problem = %d, "configuration");
            }
            Err(format!("{} is invalid", path.display()))
        }
        Err(e) => {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(c) = source {
                msg.push_str(": ");
                msg.push_str(&c.to_string());
                source = c.source();
            }
            Err(msg)
        }
    }
}

/// Loads and validates lqos.conf. `$LQOS_DIRECTORY`, when set, replaces `lqos_directory`
/// (and the state directory derived from it, unless `state_directory` is set).
/// Ok carries the warnings; any error gives [`ConfigError::Invalid`] with every diagnostic.
pub fn load_config(path: &Path) -> Result<(Config, Vec<Diagnostic>), ConfigError> {
    let mut diags = Vec::new();
    let label = path.display().to_string();
    let text = read_text(path, &label, &mut diags)?;
    let dir_override = std::env::var_os(DIRECTORY_ENV).filter(|v| !v.is_empty()).map(PathBuf::from);
    let (config, more) = conf::parse_config_with(&text, path, dir_override);
    diags.extend(more);
    match config {
        Some(c) if !has_errors(&diags) => Ok((c, diags)),
        _ => Err(ConfigError::Invalid { path: path.to_path_buf(), diagnostics: diags }),
    }
}

/// network.json and ShapedDevices.csv, parsed and validated together.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    /// The network tree (empty = flat).
    pub network: Network,
    /// Circuits to plan: those without problems, and those whose only problem is an unknown
    /// parent (moved under a generated parent, see [`validate::triage`]).
    pub circuits: Vec<Circuit>,
    /// Circuits set aside because of a problem of their own, by line.
    pub quarantined: Vec<Quarantined>,
    /// Every diagnostic from both files and the cross-file checks; circuit-confined errors
    /// have [`Severity::Quarantine`], the remaining errors refuse the whole input.
    pub diagnostics: Vec<Diagnostic>,
}

impl Inputs {
    /// True if any diagnostic is an error (then the inputs must not be applied).
    pub fn has_errors(&self) -> bool {
        has_errors(&self.diagnostics)
    }

    /// True if any circuit is quarantined.
    pub fn has_quarantine(&self) -> bool {
        !self.quarantined.is_empty()
    }
}

/// Reads `network.json` and `ShapedDevices.csv` from `config.lqos_directory`, parses and
/// validates both. Rows of ShapedDevices.csv left out for field errors still take part in the
/// cross-file checks (unknown parent, addresses shared with another circuit), so one run
/// reports every problem (see [`parse_shaped_devices`]). Err only when a file cannot be read; every problem in the contents is a
/// diagnostic in [`Inputs::diagnostics`].
pub fn load_inputs(config: &Config) -> Result<Inputs, ConfigError> {
    let net_path = config.network_json_path();
    let csv_path = config.shaped_devices_path();
    let net_label = net_path.display().to_string();
    let csv_label = csv_path.display().to_string();
    let mut diagnostics = Vec::new();
    let net_text = read_text(&net_path, &net_label, &mut diagnostics)?;
    let csv_text = read_text(&csv_path, &csv_label, &mut diagnostics)?;
    let (network, d) = parse_network_str(&net_text, &net_label);
    diagnostics.extend(d);
    let shaped = parse_shaped_devices(&csv_text, &csv_label);
    diagnostics.extend(shaped.diagnostics);
    // Rejected rows join the cross-file checks so one run reports every problem.
    diagnostics.extend(validate_inputs_with_rejected(
        &network,
        &shaped.circuits,
        &shaped.rejected,
        &net_label,
        &csv_label,
    ));
    // Circuit-confined errors quarantine their circuit; the rest refuse the input.
    let t = triage(&network, shaped.circuits, &shaped.rejected, diagnostics, &csv_label);
    Ok(Inputs {
        network,
        circuits: t.circuits,
        quarantined: t.quarantined,
        diagnostics: t.diagnostics,
    })
}

/// Mode of a file [`write_atomic`] creates where none existed (`rw-r--r--`).
pub const NEW_FILE_MODE: u32 = 0o644;

/// Writes `contents` to `path` atomically: a temporary file in the same directory, fsync,
/// rename over `path`, then fsync of the directory. Readers see the old or the new file,
/// never a partial one. The new file keeps the permission bits (the `0o777` part of the
/// mode) of the file it replaces, so an lqos.conf at 0600 stays 0600; a new file gets
/// [`NEW_FILE_MODE`]. Owner and group are those of the file it replaces when the process may
/// set them (root: an lqos.conf at root:lqos 0640 stays readable by group lqos), else those of
/// the writing process.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), ConfigError> {
    let werr = |source: io::Error| ConfigError::Write { path: path.to_path_buf(), source };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| {
        werr(io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))
    })?;
    // Unique per call, so two writers in one process never share (or delete) a temp file.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{}.tmp.{}.{seq}", name.to_string_lossy(), std::process::id()));
    let (mode, owner) = match fs::metadata(path) {
        Ok(m) => (m.permissions().mode() & 0o777, Some((m.uid(), m.gid()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (NEW_FILE_MODE, None),
        Err(e) => return Err(werr(e)),
    };
    let result = (|| {
        // Created 0600 so the contents are never readable more widely than intended; the
        // final mode is set before the rename.
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(contents)?;
        if let Some((uid, gid)) = owner {
            // Best effort: only root may give a file away; others keep their own.
            let _ = std::os::unix::fs::fchown(&f, Some(uid), Some(gid));
        }
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // Persist the rename; not all filesystems allow fsync on a directory.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(werr)
}

/// Writes `contents` to the existing file `path`: atomically ([`write_atomic`]) when its
/// directory takes a temporary file and a rename, else (a read-only directory with the file
/// itself writable, as `/etc/lqos.conf` is for lqosd under its systemd sandbox, where the unit
/// binds just that file writable) by rewriting the file in place: truncate, write, fsync. A
/// reader may then see a partial file for the moment of the write; lqosd and the tools refuse a
/// config that does not parse and keep what they applied. Owner and mode stay the file's.
pub fn write_replacing(path: &Path, contents: &[u8]) -> Result<(), ConfigError> {
    let err = match write_atomic(path, contents) {
        Ok(()) => return Ok(()),
        Err(ConfigError::Write { source, .. }) => source,
        Err(e) => return Err(e),
    };
    let dir_refused = matches!(
        err.kind(),
        io::ErrorKind::ReadOnlyFilesystem
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::ResourceBusy
            | io::ErrorKind::CrossesDevices
    );
    if !dir_refused {
        return Err(ConfigError::Write { path: path.to_path_buf(), source: err });
    }
    let werr = |source: io::Error| ConfigError::Write { path: path.to_path_buf(), source };
    // Only an existing file is rewritten (never created here), and not through a symlink
    // swapped in meanwhile.
    let mut f =
        fs::OpenOptions::new().write(true).custom_flags(libc::O_NOFOLLOW).open(path).map_err(
            |e| {
                // Report the first refusal (why the atomic way failed) beside this one.
                werr(io::Error::new(e.kind(), format!("{e}; atomic replace failed too: {err}")))
            },
        )?;
    f.set_len(0).map_err(werr)?;
    f.write_all(contents).map_err(werr)?;
    f.sync_all().map_err(werr)
}

/// Writes network.json atomically (see [`network_to_string`]).
pub fn write_network(path: &Path, network: &Network) -> Result<(), ConfigError> {
    write_atomic(path, network_to_string(network).as_bytes())
}

/// Writes ShapedDevices.csv atomically (see [`shaped_devices_to_string`]).
pub fn write_shaped_devices(path: &Path, circuits: &[Circuit]) -> Result<(), ConfigError> {
    write_atomic(path, shaped_devices_to_string(circuits).as_bytes())
}
