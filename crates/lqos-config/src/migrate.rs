//! `libreqos --migrate-config OLD NEW`: turns a LibreQoS 1.4 `/etc/lqos.conf` (and the
//! `ispConfig.py` that held the rest of a 1.4 configuration, when one is found) into a
//! LibreQoS 1.5 file that lqos reads.
//!
//! What moves where (LibreQoS's own 1.4 → 1.5 migration rules):
//! * `version = "1.5"` is added; `[usage_stats]` and `[bridge] interface_mapping` /
//!   `vlan_mapping` (1.4 only) are dropped; every other key is kept as written.
//! * Interfaces come from `ispConfig.py` (`interfaceA`, `interfaceB`, `OnAStick`,
//!   `StickVlanA`, `StickVlanB`) or else from the first `interface_mapping` entry (`name` =
//!   A, `redirect_to` = B) and the first `vlan_mapping` entry. A bridge gets
//!   `to_internet = B`, `to_network = A`; a stick (A = B) gets `[single_interface]` with
//!   `internet_vlan = StickVlanA`, `network_vlan = StickVlanB`.
//! * `[queues]` and `[ip_ranges]` come from `ispConfig.py` when it is there.
//!
//! The result is checked with [`crate::parse_config_str`] before it is returned; the file is
//! written atomically and an existing NEW is replaced only with `force`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use toml_edit::{Array, DocumentMut, Item, Table, value};

use crate::diag::has_errors;

/// Why a migration did not produce a file.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// OLD could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The old configuration file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// OLD is not TOML.
    #[error("{path} is not a TOML file: {message}")]
    Syntax {
        /// The old configuration file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// OLD already is a 1.5 file.
    #[error(
        "{path} already is a LibreQoS 1.5 file (it has a version and its interfaces); nothing to migrate"
    )]
    AlreadyCurrent {
        /// The old configuration file.
        path: PathBuf,
    },
    /// Neither OLD nor ispConfig.py names the interfaces.
    #[error(
        "{path} does not name the shaping interfaces (no [bridge] interface_mapping and no \
         ispConfig.py beside it or in lqos_directory); add [bridge] with to_internet and \
         to_network to a copy of the file by hand"
    )]
    NoInterfaces {
        /// The old configuration file.
        path: PathBuf,
    },
    /// The migrated text does not validate (the messages are included).
    #[error("the migrated configuration does not validate: {messages}")]
    Invalid {
        /// Every error, one per line.
        messages: String,
    },
    /// NEW exists and `--force` was not given.
    #[error("{path} exists; not overwriting it without --force")]
    Exists {
        /// The target file.
        path: PathBuf,
    },
    /// Writing NEW failed.
    #[error("cannot write {path}")]
    Write {
        /// The target file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// A migrated file: its text and what the operator should check.
#[derive(Debug, Clone, PartialEq)]
pub struct Migration {
    /// The LibreQoS 1.5 lqos.conf text.
    pub text: String,
    /// Notes for the operator (e.g. which interface was taken as facing the internet).
    pub notes: Vec<String>,
}

/// One value of a Python assignment in ispConfig.py.
#[derive(Debug, Clone, PartialEq)]
enum Py {
    Str(String),
    Num(f64),
    Bool(bool),
    List(Vec<String>),
}

/// Reads the simple `name = value` assignments of ispConfig.py (strings, numbers,
/// True/False, lists of strings); anything else is skipped.
fn python_assignments(text: &str) -> Vec<(String, Py)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((name, v)) = line.split_once('=') else { continue };
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let v = v.trim();
        let unquote = |s: &str| -> Option<String> {
            let s = s.trim();
            let q = s.chars().next()?;
            (s.len() >= 2 && (q == '\'' || q == '"') && s.ends_with(q))
                .then(|| s[1..s.len() - 1].to_string())
        };
        let parsed = if let Some(s) = unquote(v) {
            Py::Str(s)
        } else if v == "True" || v == "False" {
            Py::Bool(v == "True")
        } else if let Ok(n) = v.parse::<f64>() {
            Py::Num(n)
        } else if let Some(inner) = v.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            Py::List(inner.split(',').filter_map(unquote).collect())
        } else {
            continue;
        };
        out.push((name.to_string(), parsed));
    }
    out
}

fn py_get<'a>(py: &'a [(String, Py)], name: &str) -> Option<&'a Py> {
    py.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
}

fn py_str(py: &[(String, Py)], name: &str) -> Option<String> {
    match py_get(py, name)? {
        Py::Str(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

fn py_num(py: &[(String, Py)], name: &str) -> Option<f64> {
    match py_get(py, name)? {
        Py::Num(n) if n.is_finite() => Some(*n),
        _ => None,
    }
}

fn py_bool(py: &[(String, Py)], name: &str) -> Option<bool> {
    match py_get(py, name)? {
        Py::Bool(b) => Some(*b),
        _ => None,
    }
}

fn num_item(n: f64) -> Item {
    if n.fract() == 0.0 && n.abs() < 9.0e15 { value(n as i64) } else { value(n) }
}

/// Interfaces of the old file: (A, B, stick VLANs).
struct Ifaces {
    a: String,
    b: String,
    vlans: Option<(i64, i64)>,
}

fn ifaces_from_mapping(doc: &DocumentMut) -> Option<Ifaces> {
    let bridge = doc.get("bridge")?.as_table_like()?;
    let first = |key: &str| -> Option<toml_edit::InlineTable> {
        let item = bridge.get(key)?;
        if let Some(a) = item.as_array() {
            return a.iter().find_map(|v| v.as_inline_table().cloned());
        }
        item.as_array_of_tables()?.iter().next().map(|t| t.clone().into_inline_table())
    };
    let m = first("interface_mapping")?;
    let a = m.get("name")?.as_str()?.to_string();
    let b = m.get("redirect_to")?.as_str()?.to_string();
    let vlans = first("vlan_mapping")
        .and_then(|v| Some((v.get("tag")?.as_integer()?, v.get("redirect_to")?.as_integer()?)));
    Some(Ifaces { a, b, vlans })
}

/// Migrates lqos.conf text. `isp_config` is the text of ispConfig.py, if one was found.
pub fn migrate_str(
    old: &str,
    isp_config: Option<&str>,
    path: &Path,
) -> Result<Migration, MigrateError> {
    let old = old.strip_prefix('\u{feff}').unwrap_or(old);
    let mut doc: DocumentMut = old.parse().map_err(|e: toml_edit::TomlError| {
        MigrateError::Syntax { path: path.to_path_buf(), message: e.message().trim().to_string() }
    })?;
    let has_ifaces = doc.get("single_interface").is_some()
        || doc.get("bridge").and_then(|b| b.get("to_internet")).is_some();
    if doc.get("version").is_some() && has_ifaces {
        return Err(MigrateError::AlreadyCurrent { path: path.to_path_buf() });
    }
    let py = isp_config.map(python_assignments).unwrap_or_default();
    let mut notes = Vec::new();

    let ifaces = match (py_str(&py, "interfaceA"), py_str(&py, "interfaceB")) {
        (Some(a), Some(b)) => {
            let stick = py_bool(&py, "OnAStick").unwrap_or(false);
            let vlans = stick.then(|| {
                (
                    py_num(&py, "StickVlanA").unwrap_or(0.0) as i64,
                    py_num(&py, "StickVlanB").unwrap_or(0.0) as i64,
                )
            });
            Some(Ifaces { a, b: if stick { String::new() } else { b }, vlans })
        }
        _ => ifaces_from_mapping(&doc),
    };
    doc.remove("usage_stats");
    doc.insert("version", value("1.5"));
    if has_ifaces {
        // A 1.5 file without its version line: keep its interface sections as they are.
        if let Some(b) = doc.get_mut("bridge").and_then(Item::as_table_like_mut) {
            b.remove("interface_mapping");
            b.remove("vlan_mapping");
        }
    } else {
        let Some(ifaces) = ifaces else {
            return Err(MigrateError::NoInterfaces { path: path.to_path_buf() });
        };
        let keep_xdp = doc.get("bridge").and_then(|b| b.get("use_xdp_bridge")).cloned();
        doc.remove("bridge");
        doc.remove("single_interface");
        if ifaces.b.is_empty() || ifaces.a == ifaces.b {
            let mut t = Table::new();
            t.insert("interface", value(ifaces.a.clone()));
            let (iv, nv) = ifaces.vlans.unwrap_or((0, 0));
            t.insert("internet_vlan", value(iv));
            t.insert("network_vlan", value(nv));
            doc.insert("single_interface", Item::Table(t));
            notes.push(format!(
                "[single_interface] on {} with internet_vlan {iv} and network_vlan {nv}; \
                 check the VLANs",
                ifaces.a
            ));
        } else {
            let mut t = Table::new();
            t.insert("use_xdp_bridge", keep_xdp.unwrap_or_else(|| value(true)));
            t.insert("to_internet", value(ifaces.b.clone()));
            t.insert("to_network", value(ifaces.a.clone()));
            doc.insert("bridge", Item::Table(t));
            notes.push(format!(
                "[bridge] to_internet = \"{}\" (LibreQoS interface B), to_network = \"{}\" \
                 (interface A); check that to_internet faces the core router",
                ifaces.b, ifaces.a
            ));
        }
    }

    if !py.is_empty() && doc.get("queues").is_none() {
        let mut q = Table::new();
        if let Some(s) = py_str(&py, "sqm") {
            q.insert("default_sqm", value(s));
        }
        for (from, to) in [
            ("upstreamBandwidthCapacityDownloadMbps", "downlink_bandwidth_mbps"),
            ("upstreamBandwidthCapacityUploadMbps", "uplink_bandwidth_mbps"),
            ("generatedPNDownloadMbps", "generated_pn_download_mbps"),
            ("generatedPNUploadMbps", "generated_pn_upload_mbps"),
        ] {
            if let Some(n) = py_num(&py, from) {
                q.insert(to, num_item(n));
            }
        }
        if let Some(n) = py_num(&py, "queuesAvailableOverride").filter(|n| *n > 0.0) {
            q.insert("override_available_queues", num_item(n));
        }
        if let Some(b) = py_bool(&py, "useBinPackingToBalanceCPU") {
            q.insert("use_binpacking", value(b));
        }
        if let Some(b) = py_bool(&py, "monitorOnlyMode") {
            q.insert("monitor_only", value(b));
        }
        if let Some(b) = py_bool(&py, "enableActualShellCommands") {
            q.insert("dry_run", value(!b));
        }
        doc.insert("queues", Item::Table(q));
    }
    if !py.is_empty() && doc.get("ip_ranges").is_none() {
        let list = |name: &str| match py_get(&py, name) {
            Some(Py::List(l)) => Some(l.iter().map(String::as_str).collect::<Array>()),
            _ => None,
        };
        let mut t = Table::new();
        if let Some(a) = list("allowedSubnets") {
            t.insert("allow_subnets", value(a));
        }
        if let Some(a) = list("ignoreSubnets") {
            t.insert("ignore_subnets", value(a));
        }
        if !t.is_empty() {
            doc.insert("ip_ranges", Item::Table(t));
        }
    }
    // Top-level keys first, then the tables, so `version` reads at the top.
    doc.sort_values_by(|k1, v1, k2, v2| {
        let rank = |k: &toml_edit::Key, v: &Item| (v.is_table_like() as u8, k.get() != "version");
        rank(k1, v1).cmp(&rank(k2, v2))
    });
    let text = doc.to_string();
    let (_, diags) = crate::parse_config_str(&text, path);
    if has_errors(&diags) {
        let messages =
            diags.iter().filter(|d| d.is_error()).map(ToString::to_string).collect::<Vec<_>>();
        return Err(MigrateError::Invalid { messages: messages.join("\n") });
    }
    Ok(Migration { text, notes })
}

/// Reads OLD (and `ispConfig.py` from its `lqos_directory` or from OLD's directory),
/// migrates it and writes NEW atomically. Without `force` an existing NEW is never
/// replaced, even if it appears while the migration runs.
pub fn migrate_file(old: &Path, new: &Path, force: bool) -> Result<Migration, MigrateError> {
    let text = fs::read_to_string(old)
        .map_err(|source| MigrateError::Read { path: old.to_path_buf(), source })?;
    if !force && new.exists() {
        return Err(MigrateError::Exists { path: new.to_path_buf() });
    }
    let lqos_dir = text
        .parse::<DocumentMut>()
        .ok()
        .and_then(|d| d.get("lqos_directory").and_then(Item::as_str).map(PathBuf::from));
    let candidates =
        [lqos_dir.map(|d| d.join("ispConfig.py")), old.parent().map(|d| d.join("ispConfig.py"))];
    let isp = candidates.iter().flatten().find_map(|p| fs::read_to_string(p).ok());
    let m = migrate_str(&text, isp.as_deref(), old)?;
    let werr = |source: io::Error| MigrateError::Write { path: new.to_path_buf(), source };
    if force {
        crate::write_atomic(new, m.text.as_bytes()).map_err(|e| match e {
            crate::ConfigError::Write { source, .. } => werr(source),
            other => werr(io::Error::other(other.to_string())),
        })?;
    } else {
        // Write a temporary file, then link it into place: link(2) fails if NEW exists.
        let name = new.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = new.with_file_name(format!(".{name}.migrate.{}", std::process::id()));
        crate::write_atomic(&tmp, m.text.as_bytes()).map_err(|e| match e {
            crate::ConfigError::Write { source, .. } => werr(source),
            other => werr(io::Error::other(other.to_string())),
        })?;
        let linked = fs::hard_link(&tmp, new);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(MigrateError::Exists { path: new.to_path_buf() });
            }
            Err(e) => return Err(werr(e)),
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_assignments_read_strings_numbers_bools_and_lists() {
        let py = python_assignments(
            "interfaceA = 'eth1' # core\ninterfaceB=\"eth2\"\nOnAStick = False\n\
             upstreamBandwidthCapacityDownloadMbps = 1000\nallowedSubnets = ['10.0.0.0/8', \"100.64.0.0/10\"]\n\
             def f(): pass\n",
        );
        assert_eq!(py_str(&py, "interfaceA").as_deref(), Some("eth1"));
        assert_eq!(py_str(&py, "interfaceB").as_deref(), Some("eth2"));
        assert_eq!(py_bool(&py, "OnAStick"), Some(false));
        assert_eq!(py_num(&py, "upstreamBandwidthCapacityDownloadMbps"), Some(1000.0));
        assert_eq!(
            py_get(&py, "allowedSubnets"),
            Some(&Py::List(vec!["10.0.0.0/8".into(), "100.64.0.0/10".into()]))
        );
    }
}
