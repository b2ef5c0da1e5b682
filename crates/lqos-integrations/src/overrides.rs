//! Operator overrides, applied after every import (any CRM, UISP included) so that a CRM
//! refresh never loses what the operator set by hand. All files live in `lqos_directory`:
//!
//! - `integrationUISPbandwidths.csv` (UISP imports) and `integrationSplynxBandwidths.csv`
//!   (Splynx imports): a header line, then `site or AP name,download Mbps,upload Mbps`.
//! - `appendToShapedDevices.csv`: ShapedDevices rows (with or without the header line)
//!   appended to every import; a row whose Circuit ID the import already has joins that
//!   circuit.
//! - `lqos_overrides.json` in LibreQoS's format: `persistent_devices` (replace a device by
//!   its id, or add it), `circuit_adjustments` (`circuit_adjust_speed`, `device_adjust_speed`,
//!   `device_adjust_sqm`, `remove_circuit`, `remove_device`, `reparent_circuit`, applied in
//!   file order) and `network_adjustments` (`adjust_site_speed` by `node_id`, else by
//!   `site_name`). Other keys (`rtt_excluded_circuits`, `uisp`) and the runtime kinds
//!   `set_node_virtual` / `topology_parent_override` are accepted and not applied.
//!
//! Order: bandwidth CSV, `adjust_site_speed` (so the JSON wins), children re-clamped to their
//! parents; then appended rows; then persistent devices; then circuit adjustments.
//!
//! Failure rule: a file that cannot be read or parsed, or an entry with a wrong value, is an
//! error with `file:line: field` and the whole import is refused ([`ImportError::Overrides`]),
//! so the last good files, which carry the overrides, stay. An entry naming a circuit,
//! device or site the import does not have is only a warning. lqos reads these files and
//! never rewrites them (LibreQoS migrates the CSVs into `lqos_overrides.json` once).

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use lqos_config::{
    Circuit, CircuitId, Config, Device, Diagnostic, Network, RateKbit, has_errors,
    parse_shaped_devices_str, parse_sqm_override,
};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::Import;
use crate::common::normalize_display_name;
use crate::error::{Crm, ImportError};

/// LibreQoS's operator overrides file.
pub const LQOS_OVERRIDES: &str = "lqos_overrides.json";
/// UISP site/AP bandwidth overrides.
pub const UISP_BANDWIDTHS: &str = "integrationUISPbandwidths.csv";
/// Splynx site/AP bandwidth overrides.
pub const SPLYNX_BANDWIDTHS: &str = "integrationSplynxBandwidths.csv";
/// Rows appended to every import.
pub const APPEND_SHAPED_DEVICES: &str = "appendToShapedDevices.csv";

/// Where an entry came from: file and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// File name (as in diagnostics).
    pub file: &'static str,
    /// 1-based line.
    pub line: usize,
}

/// One site/AP bandwidth override (a CSV row or an `adjust_site_speed`).
#[derive(Debug, Clone, PartialEq)]
pub struct SiteSpeed {
    /// Where it was written.
    pub place: Place,
    /// `node_id` (matched alone when set).
    pub node_id: Option<String>,
    /// Site or AP name.
    pub site_name: String,
    /// New download capacity.
    pub download: Option<RateKbit>,
    /// New upload capacity.
    pub upload: Option<RateKbit>,
}

/// Rates an adjustment sets (each optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rates {
    /// `min_download_bandwidth`.
    pub download_min: Option<RateKbit>,
    /// `max_download_bandwidth`.
    pub download_max: Option<RateKbit>,
    /// `min_upload_bandwidth`.
    pub upload_min: Option<RateKbit>,
    /// `max_upload_bandwidth`.
    pub upload_max: Option<RateKbit>,
}

/// One `circuit_adjustments` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum CircuitAdjustment {
    /// `circuit_adjust_speed`.
    CircuitSpeed {
        /// Target circuit.
        circuit_id: String,
        /// New rates.
        rates: Rates,
    },
    /// `device_adjust_speed`: lqos rates are per circuit, so the device's circuit changes.
    DeviceSpeed {
        /// Target device.
        device_id: String,
        /// New rates.
        rates: Rates,
    },
    /// `device_adjust_sqm`: sets the SQM of the device's circuit (`None` clears it).
    DeviceSqm {
        /// Target device.
        device_id: String,
        /// The token as written (`cake`, `fq_codel/none`, …), `None` to clear.
        sqm: Option<String>,
    },
    /// `remove_circuit`.
    RemoveCircuit {
        /// Target circuit.
        circuit_id: String,
    },
    /// `remove_device`.
    RemoveDevice {
        /// Target device.
        device_id: String,
    },
    /// `reparent_circuit` (empty `parent_node` = unparented).
    Reparent {
        /// Target circuit.
        circuit_id: String,
        /// New parent node name.
        parent_node: String,
    },
}

/// Everything read from the override files.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Bandwidth CSV rows of the CRM being imported.
    pub csv_site_speeds: Vec<SiteSpeed>,
    /// `adjust_site_speed` entries.
    pub json_site_speeds: Vec<SiteSpeed>,
    /// Circuits from `appendToShapedDevices.csv`.
    pub append: Vec<Circuit>,
    /// `persistent_devices`, each as a one-device circuit.
    pub persistent: Vec<(Place, Circuit)>,
    /// `circuit_adjustments` in file order.
    pub adjustments: Vec<(Place, CircuitAdjustment)>,
}

impl Overrides {
    /// True when no file contributed anything.
    pub fn is_empty(&self) -> bool {
        self.csv_site_speeds.is_empty()
            && self.json_site_speeds.is_empty()
            && self.append.is_empty()
            && self.persistent.is_empty()
            && self.adjustments.is_empty()
    }
}

fn read_optional(dir: &Path, file: &'static str, diags: &mut Vec<Diagnostic>) -> Option<String> {
    let path = dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            diags.push(
                Diagnostic::error(file, format!("cannot read {}: {e}", path.display()))
                    .hint("fix the file's permissions or remove it"),
            );
            None
        }
    }
}

/// Reads the override files that apply to an import from `crm` out of `config.lqos_directory`.
/// Returns what parsed and every diagnostic; any error means the import must be refused.
pub fn load(config: &Config, crm: Crm) -> (Overrides, Vec<Diagnostic>) {
    let dir = config.lqos_directory.as_path();
    let mut diags = Vec::new();
    let mut out = Overrides::default();
    let csv_file = match crm {
        Crm::Uisp => Some(UISP_BANDWIDTHS),
        Crm::Splynx => Some(SPLYNX_BANDWIDTHS),
        Crm::Netzur => None,
    };
    if let Some(file) = csv_file
        && let Some(text) = read_optional(dir, file, &mut diags)
    {
        out.csv_site_speeds = parse_bandwidth_csv(&text, file, &mut diags);
    }
    if let Some(text) = read_optional(dir, APPEND_SHAPED_DEVICES, &mut diags)
        && text.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    {
        let (circuits, d) = parse_shaped_devices_str(&text, APPEND_SHAPED_DEVICES);
        diags.extend(d);
        out.append = circuits;
    }
    if let Some(text) = read_optional(dir, LQOS_OVERRIDES, &mut diags) {
        parse_overrides_json(&text, &mut out, &mut diags);
    }
    (out, diags)
}

/// Parses a bandwidth CSV: first line is a header (skipped, as LibreQoS does), `#` comments,
/// then `name,download,upload` in Mbps.
pub fn parse_bandwidth_csv(
    text: &str,
    file: &'static str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<SiteSpeed> {
    let mut out = Vec::new();
    let mut header_seen = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim().trim_start_matches('\u{feff}');
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if !header_seen {
            header_seen = true;
            continue;
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .trim(csv::Trim::All)
            .from_reader(l.as_bytes());
        let rec = match reader.records().next() {
            Some(Ok(r)) => r,
            _ => {
                diags.push(Diagnostic::error(file, "cannot parse this row").at_line(line));
                continue;
            }
        };
        if rec.len() != 3 {
            diags.push(
                Diagnostic::error(file, format!("{} fields, expected 3", rec.len()))
                    .at_line(line)
                    .hint("write: site or AP name,download Mbps,upload Mbps"),
            );
            continue;
        }
        let name = rec.get(0).unwrap_or_default().to_string();
        if name.is_empty() {
            diags.push(
                Diagnostic::error(file, "the site name is empty").at_line(line).field("name"),
            );
            continue;
        }
        let mut rate_of = |idx: usize, field: &str| -> Option<RateKbit> {
            let t = rec.get(idx).unwrap_or_default();
            match t.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 && v <= MAX_MBPS => Some(RateKbit::from_mbps(v)),
                _ => {
                    diags.push(
                        Diagnostic::error(file, format!("'{t}' is not a rate in Mbps"))
                            .at_line(line)
                            .field(field)
                            .hint("a number of Mbps above 0"),
                    );
                    None
                }
            }
        };
        let download = rate_of(1, "download");
        let upload = rate_of(2, "upload");
        if let (Some(d), Some(u)) = (download, upload) {
            out.push(SiteSpeed {
                place: Place { file, line },
                node_id: None,
                site_name: name,
                download: Some(d),
                upload: Some(u),
            });
        }
    }
    out
}

/// Largest rate accepted in an override (100 Tbit/s): anything above is a typo.
pub const MAX_MBPS: f64 = 100_000_000.0;

#[derive(Deserialize)]
struct RawFile<'a> {
    #[serde(default, borrow, alias = "devices_to_append")]
    persistent_devices: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    circuit_adjustments: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    network_adjustments: Vec<&'a RawValue>,
}

/// One JSON entry with its place, for `file:line: field` diagnostics.
struct Entry<'a> {
    /// Offsets of every `\n` in the file, for offset → line.
    newlines: &'a [usize],
    raw: &'a str,
    offset: usize,
    value: Value,
    section: &'static str,
    index: usize,
}

fn line_of(newlines: &[usize], offset: usize) -> usize {
    newlines.partition_point(|&p| p < offset) + 1
}

impl Entry<'_> {
    fn line(&self) -> usize {
        line_of(self.newlines, self.offset)
    }
    /// Line of `"key"` inside the entry, else the entry's line.
    fn key_line(&self, key: &str) -> usize {
        match self.raw.find(&format!("\"{key}\"")) {
            Some(o) => line_of(self.newlines, self.offset + o),
            None => self.line(),
        }
    }
    fn field(&self, key: &str) -> String {
        format!("{}[{}].{key}", self.section, self.index)
    }
    fn error(&self, key: &str, msg: impl Into<String>) -> Diagnostic {
        Diagnostic::error(LQOS_OVERRIDES, msg).at_line(self.key_line(key)).field(self.field(key))
    }
    fn place(&self) -> Place {
        Place { file: LQOS_OVERRIDES, line: self.line() }
    }
    /// A required non-empty string.
    fn id(&self, key: &str, diags: &mut Vec<Diagnostic>) -> Option<String> {
        match self.value.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(Value::Number(n)) => Some(n.to_string()),
            None => {
                diags.push(self.error(key, "is missing"));
                None
            }
            Some(other) => {
                diags.push(self.error(key, format!("{other} is not a non-empty string")));
                None
            }
        }
    }
    /// An optional rate in Mbps (`null` or absent = unchanged).
    fn rate(&self, key: &str, diags: &mut Vec<Diagnostic>) -> Result<Option<RateKbit>, ()> {
        match self.value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(v) if v.is_finite() && v > 0.0 && v <= MAX_MBPS => {
                    Ok(Some(RateKbit::from_mbps(v)))
                }
                _ => {
                    diags.push(
                        self.error(key, format!("{n} is not a rate")).hint("Mbps above 0, or null"),
                    );
                    Err(())
                }
            },
            Some(other) => {
                diags.push(
                    self.error(key, format!("{other} is not a number")).hint("Mbps, or null"),
                );
                Err(())
            }
        }
    }
    fn rates(&self, diags: &mut Vec<Diagnostic>) -> Result<Rates, ()> {
        let dmin = self.rate("min_download_bandwidth", diags);
        let dmax = self.rate("max_download_bandwidth", diags);
        let umin = self.rate("min_upload_bandwidth", diags);
        let umax = self.rate("max_upload_bandwidth", diags);
        Ok(Rates { download_min: dmin?, download_max: dmax?, upload_min: umin?, upload_max: umax? })
    }
}

/// Parses `lqos_overrides.json` text into `out`, with diagnostics.
pub fn parse_overrides_json(text: &str, out: &mut Overrides, diags: &mut Vec<Diagnostic>) {
    if text.trim().is_empty() {
        // LibreQoS refuses an empty file; an empty file overrides nothing, so lqos accepts it.
        return;
    }
    let newlines: Vec<usize> =
        text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i).collect();
    let raw: RawFile<'_> = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            diags.push(
                Diagnostic::error(LQOS_OVERRIDES, format!("not a valid overrides file: {e}"))
                    .at_line(e.line().max(1))
                    .at_column(e.column().max(1))
                    .hint("an object with persistent_devices, circuit_adjustments and network_adjustments lists"),
            );
            return;
        }
    };
    for e in entries(text, &newlines, &raw.persistent_devices, "persistent_devices", diags) {
        if let Some(c) = persistent_device(&e, diags) {
            out.persistent.push((e.place(), c));
        }
    }
    for e in entries(text, &newlines, &raw.circuit_adjustments, "circuit_adjustments", diags) {
        if let Some(a) = circuit_adjustment(&e, diags) {
            out.adjustments.push((e.place(), a));
        }
    }
    for e in entries(text, &newlines, &raw.network_adjustments, "network_adjustments", diags) {
        match e.value.get("type").and_then(Value::as_str) {
            Some("adjust_site_speed") => {
                let site_name = match e.value.get("site_name") {
                    Some(Value::String(s)) => s.clone(),
                    None | Some(Value::Null) => String::new(),
                    Some(other) => {
                        diags.push(e.error("site_name", format!("{other} is not a string")));
                        continue;
                    }
                };
                let node_id = e.value.get("node_id").and_then(Value::as_str).map(str::to_string);
                if site_name.is_empty() && node_id.as_deref().is_none_or(str::is_empty) {
                    diags.push(e.error("site_name", "is missing (and there is no node_id)"));
                    continue;
                }
                let (Ok(download), Ok(upload)) = (
                    e.rate("download_bandwidth_mbps", diags),
                    e.rate("upload_bandwidth_mbps", diags),
                ) else {
                    continue;
                };
                out.json_site_speeds.push(SiteSpeed {
                    place: e.place(),
                    node_id: node_id.filter(|s| !s.is_empty()),
                    site_name,
                    download,
                    upload,
                });
            }
            Some(kind @ ("set_node_virtual" | "topology_parent_override")) => {
                diags.push(
                    Diagnostic::warning(
                        LQOS_OVERRIDES,
                        format!("'{kind}' is a LibreQoS runtime setting that lqos does not apply; ignored"),
                    )
                    .at_line(e.key_line("type"))
                    .field(e.field("type")),
                );
            }
            Some(other) => diags.push(e.error("type", format!("unknown network adjustment '{other}'")).hint(
                "adjust_site_speed (set_node_virtual and topology_parent_override are accepted and ignored)",
            )),
            None => diags.push(e.error("type", "is missing")),
        }
    }
}

/// The entries of one list with their places; non-objects are errors.
fn entries<'a>(
    text: &'a str,
    newlines: &'a [usize],
    list: &[&'a RawValue],
    section: &'static str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Entry<'a>> {
    let base = text.as_ptr() as usize;
    let mut v = Vec::new();
    for (index, r) in list.iter().enumerate() {
        let raw = r.get();
        // The raw value borrows from `text`, so its address gives its offset in the file.
        let offset = (raw.as_ptr() as usize).saturating_sub(base);
        let value: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
        let e = Entry { newlines, raw, offset, value, section, index };
        if !e.value.is_object() {
            diags.push(
                Diagnostic::error(LQOS_OVERRIDES, "is not an object")
                    .at_line(e.line())
                    .field(format!("{section}[{index}]")),
            );
            continue;
        }
        v.push(e);
    }
    v
}

fn circuit_adjustment(e: &Entry<'_>, diags: &mut Vec<Diagnostic>) -> Option<CircuitAdjustment> {
    let kind = match e.value.get("type").and_then(Value::as_str) {
        Some(k) => k,
        None => {
            diags.push(e.error("type", "is missing"));
            return None;
        }
    };
    Some(match kind {
        "circuit_adjust_speed" => {
            let circuit_id = e.id("circuit_id", diags);
            let rates = e.rates(diags).ok()?;
            CircuitAdjustment::CircuitSpeed { circuit_id: circuit_id?, rates }
        }
        "device_adjust_speed" => {
            let device_id = e.id("device_id", diags);
            let rates = e.rates(diags).ok()?;
            CircuitAdjustment::DeviceSpeed { device_id: device_id?, rates }
        }
        "device_adjust_sqm" => {
            let device_id = e.id("device_id", diags);
            let sqm = match e.value.get("sqm_override") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.trim().is_empty() => None,
                Some(Value::String(s)) => match parse_sqm_override(s) {
                    Ok(_) => Some(s.trim().to_string()),
                    Err(msg) => {
                        diags.push(e.error("sqm_override", msg));
                        return None;
                    }
                },
                Some(other) => {
                    diags.push(e.error("sqm_override", format!("{other} is not a string")));
                    return None;
                }
            };
            CircuitAdjustment::DeviceSqm { device_id: device_id?, sqm }
        }
        "remove_circuit" => {
            CircuitAdjustment::RemoveCircuit { circuit_id: e.id("circuit_id", diags)? }
        }
        "remove_device" => CircuitAdjustment::RemoveDevice { device_id: e.id("device_id", diags)? },
        "reparent_circuit" => {
            let circuit_id = e.id("circuit_id", diags);
            let parent_node = match e.value.get("parent_node") {
                Some(Value::String(s)) => s.trim().to_string(),
                None => {
                    diags.push(e.error("parent_node", "is missing").hint("\"\" for unparented"));
                    return None;
                }
                Some(other) => {
                    diags.push(e.error("parent_node", format!("{other} is not a string")));
                    return None;
                }
            };
            CircuitAdjustment::Reparent { circuit_id: circuit_id?, parent_node }
        }
        other => {
            diags.push(e.error("type", format!("unknown circuit adjustment '{other}'")).hint(
                "circuit_adjust_speed, device_adjust_speed, device_adjust_sqm, remove_circuit, remove_device or reparent_circuit",
            ));
            return None;
        }
    })
}

fn str_field(e: &Entry<'_>, key: &str, diags: &mut Vec<Diagnostic>) -> Option<String> {
    match e.value.get(key) {
        None | Some(Value::Null) => Some(String::new()),
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(other) => {
            diags.push(e.error(key, format!("{other} is not a string")));
            None
        }
    }
}

/// LibreQoS serialises addresses as `[["100.64.0.1", 32], …]`; `"100.64.0.0/29"` strings are
/// accepted too.
fn addresses(
    e: &Entry<'_>,
    key: &str,
    v6: bool,
    diags: &mut Vec<Diagnostic>,
) -> Option<Vec<IpNet>> {
    let list = match e.value.get(key) {
        None | Some(Value::Null) => return Some(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(other) => {
            diags.push(e.error(key, format!("{other} is not a list of addresses")));
            return None;
        }
    };
    let mut out = Vec::new();
    for item in list {
        let text = match item {
            Value::Array(pair) => match pair.as_slice() {
                [Value::String(a), Value::Number(p)] => format!("{a}/{p}"),
                _ => String::new(),
            },
            Value::String(s) => s.trim().to_string(),
            _ => String::new(),
        };
        let parsed: Option<IpNet> = if text.contains('/') {
            text.parse().ok()
        } else {
            text.parse::<std::net::IpAddr>().ok().map(IpNet::from)
        };
        match parsed {
            Some(n) if n.trunc() == n && matches!(n, IpNet::V6(_)) == v6 => out.push(n),
            Some(n) if n.trunc() != n => {
                diags.push(
                    e.error(key, format!("'{text}' has host bits set"))
                        .hint(format!("use {} or the host alone", n.trunc())),
                );
                return None;
            }
            _ => {
                diags.push(
                    e.error(key, format!("{item} is not an IPv{} address", if v6 { 6 } else { 4 })),
                );
                return None;
            }
        }
    }
    Some(out)
}

fn persistent_device(e: &Entry<'_>, diags: &mut Vec<Diagnostic>) -> Option<Circuit> {
    let circuit_id = e.id("circuit_id", diags);
    let device_id = e.id("device_id", diags);
    let circuit_name = str_field(e, "circuit_name", diags);
    let device_name = str_field(e, "device_name", diags);
    let parent_node = str_field(e, "parent_node", diags);
    let parent_node_id = str_field(e, "parent_node_id", diags);
    let anchor_node_id = str_field(e, "anchor_node_id", diags);
    let mac = str_field(e, "mac", diags);
    let comment = str_field(e, "comment", diags);
    let v4 = addresses(e, "ipv4", false, diags);
    let v6 = addresses(e, "ipv6", true, diags);
    let mut rate = |key: &str| -> Option<RateKbit> {
        match e.rate(key, diags) {
            Ok(Some(r)) => Some(r),
            Ok(None) => {
                diags.push(e.error(key, "is missing"));
                None
            }
            Err(()) => None,
        }
    };
    let rates = (
        rate("download_min_mbps"),
        rate("upload_min_mbps"),
        rate("download_max_mbps"),
        rate("upload_max_mbps"),
    );
    let sqm = match e.value.get("sqm_override") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_sqm_override(s).map_err(|m| {
            diags.push(e.error("sqm_override", m));
        }),
        Some(other) => {
            diags.push(e.error("sqm_override", format!("{other} is not a string")));
            Err(())
        }
    };
    let (Some(dmin), Some(umin), Some(dmax), Some(umax)) = rates else { return None };
    let (v4, v6) = (v4?, v6?);
    if v4.is_empty() && v6.is_empty() {
        diags.push(
            e.error("ipv4", "the device has no address").hint("give it an IPv4 or IPv6 address"),
        );
        return None;
    }
    let opt = |s: String| (!s.is_empty()).then_some(s);
    let circuit_id = circuit_id?;
    let device_id = device_id?;
    Some(Circuit {
        id: CircuitId(circuit_id.clone()),
        name: opt(circuit_name?).unwrap_or_else(|| circuit_id.clone()),
        parent_node: opt(parent_node?),
        parent_node_id: opt(parent_node_id?),
        anchor_node_id: opt(anchor_node_id?),
        download_min: dmin.min(dmax),
        upload_min: umin.min(umax),
        download_max: dmax,
        upload_max: umax,
        sqm: sqm.ok()?,
        devices: vec![Device {
            name: opt(device_name?).unwrap_or_else(|| device_id.clone()),
            id: device_id,
            mac: mac?,
            ipv4: v4
                .iter()
                .filter_map(|n| if let IpNet::V4(x) = n { Some(*x) } else { None })
                .collect::<Vec<Ipv4Net>>(),
            ipv6: v6
                .iter()
                .filter_map(|n| if let IpNet::V6(x) = n { Some(*x) } else { None })
                .collect::<Vec<Ipv6Net>>(),
            comment: comment?,
            line: e.line(),
        }],
        line: e.line(),
    })
}

// ---------------------------------------------------------------------------------------------
// Applying
// ---------------------------------------------------------------------------------------------

fn warn_at(place: &Place, msg: String) -> Diagnostic {
    Diagnostic::warning(place.file, msg).at_line(place.line)
}

/// The last `:`-separated part of a node id (`splynx:ap:1122` → `1122`).
fn id_tail(id: &str) -> &str {
    id.rsplit(':').next().unwrap_or(id)
}

/// True when `node` is the one `s` names: by `node_id` when given, else by name as written,
/// whitespace-collapsed, or with the importer's ` (<id>)` duplicate suffix (LibreQoS matches
/// the original Splynx name of a disambiguated node the same way).
fn site_matches(net: &Network, i: usize, s: &SiteSpeed) -> bool {
    let Some(n) = net.nodes.get(i) else { return false };
    if let Some(id) = &s.node_id {
        return n.id.as_deref() == Some(id.as_str());
    }
    if n.name == s.site_name {
        return true;
    }
    let norm = normalize_display_name(Some(&s.site_name), &s.site_name);
    n.name == norm
        || n.id.as_deref().is_some_and(|id| n.name == format!("{norm} ({})", id_tail(id)))
}

fn apply_site_speeds(
    net: &mut Network,
    speeds: &[SiteSpeed],
    top: (RateKbit, RateKbit),
    warnings: &mut Vec<Diagnostic>,
) {
    for s in speeds {
        let hits: Vec<usize> = (0..net.nodes.len()).filter(|&i| site_matches(net, i, s)).collect();
        if hits.is_empty() {
            let what = s
                .node_id
                .as_deref()
                .map_or_else(|| format!("site '{}'", s.site_name), |id| format!("node id '{id}'"));
            warnings.push(warn_at(
                &s.place,
                format!("{what} is not in this import; bandwidth override not applied"),
            ));
        }
        for i in hits {
            if let Some(n) = net.nodes.get_mut(i) {
                if s.download.is_some() {
                    n.download = s.download;
                }
                if s.upload.is_some() {
                    n.upload = s.upload;
                }
            }
        }
    }
    // Parents come before children in the arena: clamp each node to its parent (top level to
    // the uplink), as the importers do when they build the tree.
    for i in 0..net.nodes.len() {
        let (pd, pu) = match net.nodes[i].parent.and_then(|p| net.nodes.get(p)) {
            Some(p) => (p.download.unwrap_or(top.0), p.upload.unwrap_or(top.1)),
            None => top,
        };
        let n = &mut net.nodes[i];
        n.download = n.download.map(|d| d.min(pd));
        n.upload = n.upload.map(|u| u.min(pu));
    }
}

fn set_rates(c: &mut Circuit, r: &Rates, place: &Place, warnings: &mut Vec<Diagnostic>) {
    if let Some(v) = r.download_min {
        c.download_min = v;
    }
    if let Some(v) = r.download_max {
        c.download_max = v;
    }
    if let Some(v) = r.upload_min {
        c.upload_min = v;
    }
    if let Some(v) = r.upload_max {
        c.upload_max = v;
    }
    if c.download_min > c.download_max || c.upload_min > c.upload_max {
        warnings.push(warn_at(place, format!("circuit '{}': a minimum above its maximum after the adjustment; the minimum is lowered to the maximum", c.id)));
        c.download_min = c.download_min.min(c.download_max);
        c.upload_min = c.upload_min.min(c.upload_max);
    }
}

/// A network as (family, first address, prefix length, family bits) for the index.
fn net_key(n: &IpNet) -> (u8, u128, u8, u8) {
    match n {
        IpNet::V4(v) => (4, u128::from(u32::from(v.network())), v.prefix_len(), 32),
        IpNet::V6(v) => (6, u128::from(v.network()), v.prefix_len(), 128),
    }
}

/// `start` with only its first `len` of `bits` bits kept.
fn truncate(start: u128, len: u8, bits: u8) -> u128 {
    let host = u32::from(bits.saturating_sub(len));
    if host >= 128 { 0 } else { start & !((1u128 << host) - 1) }
}

/// The last address of a network.
fn last_address(start: u128, len: u8, bits: u8) -> u128 {
    let host = u32::from(bits.saturating_sub(len));
    if host >= 128 { u128::MAX } else { start | ((1u128 << host) - 1) }
}

/// (family, first address) → (prefix length, circuit, device) of every address.
type NetIndex = std::collections::BTreeMap<(u8, u128), Vec<(u8, usize, usize)>>;

/// The import's circuits with indexes by circuit id, device id and address, so that each
/// override costs O(1) lookups (O(prefix length) for the address check) whatever the size of
/// the import. Removals are marks, applied by [`Work::finish`].
struct Work {
    circuits: Vec<Circuit>,
    gone: Vec<bool>,
    gone_devices: HashSet<(usize, usize)>,
    by_circuit: HashMap<String, usize>,
    by_device: HashMap<String, (usize, usize)>,
    nets: NetIndex,
}

impl Work {
    fn new(circuits: Vec<Circuit>) -> Self {
        let mut w = Work {
            gone: Vec::with_capacity(circuits.len()),
            circuits: Vec::with_capacity(circuits.len()),
            gone_devices: HashSet::new(),
            by_circuit: HashMap::new(),
            by_device: HashMap::new(),
            nets: NetIndex::new(),
        };
        for c in circuits {
            w.push_circuit(c);
        }
        w
    }

    fn index_device(&mut self, ci: usize, di: usize) {
        let Some(d) = self.circuits.get(ci).and_then(|c| c.devices.get(di)) else { return };
        self.by_device.entry(d.id.clone()).or_insert((ci, di));
        let nets: Vec<IpNet> = d
            .ipv4
            .iter()
            .map(|n| IpNet::V4(*n))
            .chain(d.ipv6.iter().map(|n| IpNet::V6(*n)))
            .collect();
        for n in nets {
            let (fam, start, len, _) = net_key(&n);
            self.nets.entry((fam, start)).or_default().push((len, ci, di));
        }
    }

    fn push_circuit(&mut self, c: Circuit) {
        let ci = self.circuits.len();
        self.by_circuit.entry(c.id.0.clone()).or_insert(ci);
        let n = c.devices.len();
        self.circuits.push(c);
        self.gone.push(false);
        for di in 0..n {
            self.index_device(ci, di);
        }
    }

    fn push_device(&mut self, ci: usize, d: Device) {
        let Some(c) = self.circuits.get_mut(ci) else { return };
        c.devices.push(d);
        let di = c.devices.len() - 1;
        self.index_device(ci, di);
    }

    fn circuit(&self, id: &str) -> Option<usize> {
        self.by_circuit.get(id).copied().filter(|&ci| !self.gone[ci])
    }

    fn device(&self, id: &str) -> Option<(usize, usize)> {
        self.by_device
            .get(id)
            .copied()
            .filter(|&(ci, di)| !self.gone[ci] && !self.gone_devices.contains(&(ci, di)))
    }

    fn live(&self, ci: usize, di: usize) -> bool {
        !self.gone.get(ci).copied().unwrap_or(true) && !self.gone_devices.contains(&(ci, di))
    }

    /// Another live circuit's address overlapping `net`, skipping circuit `own` and device
    /// `own_device`.
    fn overlap(&self, net: &IpNet, own: &CircuitId, own_device: &str) -> Option<(usize, IpNet)> {
        let (fam, start, len, bits) = net_key(net);
        let other = |ci: usize, di: usize| -> Option<IpNet> {
            let c = self.circuits.get(ci)?;
            let d = c.devices.get(di)?;
            if c.id == *own || d.id == own_device || !self.live(ci, di) {
                return None;
            }
            d.ipv4
                .iter()
                .map(|n| IpNet::V4(*n))
                .chain(d.ipv6.iter().map(|n| IpNet::V6(*n)))
                .find(|n| n.contains(net) || net.contains(n))
        };
        // Prefixes containing `net`: one candidate start per shorter length.
        for p in 0..=len {
            if let Some(v) = self.nets.get(&(fam, truncate(start, p, bits))) {
                for &(l, ci, di) in v {
                    if l == p
                        && let Some(n) = other(ci, di)
                    {
                        return Some((ci, n));
                    }
                }
            }
        }
        // Prefixes inside `net`: their first address lies in its range.
        for (_, v) in self.nets.range((fam, start)..=(fam, last_address(start, len, bits))) {
            for &(l, ci, di) in v {
                if l >= len
                    && let Some(n) = other(ci, di)
                {
                    return Some((ci, n));
                }
            }
        }
        None
    }

    /// Errors for addresses of `device` (added by an override at `place`) that overlap an
    /// address of another circuit: lqos gives an address to one circuit only, and the
    /// import would otherwise fail validation with less helpful places.
    fn conflicts(&self, circuit_id: &CircuitId, device: &Device, place: &Place) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let mine = device
            .ipv4
            .iter()
            .map(|n| (IpNet::V4(*n), "ipv4"))
            .chain(device.ipv6.iter().map(|n| (IpNet::V6(*n), "ipv6")));
        for (net, field) in mine {
            let Some((ci, n)) = self.overlap(&net, circuit_id, &device.id) else { continue };
            let Some(c) = self.circuits.get(ci) else { continue };
            let field = match (place.file == APPEND_SHAPED_DEVICES, field) {
                (true, "ipv4") => "IPv4",
                (true, _) => "IPv6",
                (false, f) => f,
            };
            out.push(
                Diagnostic::error(
                    place.file,
                    format!(
                        "{net} of device '{}' overlaps {n} of circuit '{}' ({})",
                        device.id, c.id, c.name
                    ),
                )
                .at_line(place.line)
                .field(field)
                .hint("an address may belong to one circuit only; narrow or remove one of them"),
            );
        }
        out
    }

    /// A persistent device: replaces the device with its id (taking the circuit's fields when
    /// it was the circuit's first row), or joins its circuit, or makes a new circuit.
    fn upsert(&mut self, template: &Circuit) {
        let Some(device) = template.devices.first() else { return };
        let mut replaced_first = false;
        if let Some((ci, di)) = self.device(&device.id) {
            if self.circuits[ci].id == template.id {
                self.circuits[ci].devices[di] = device.clone();
                self.index_device(ci, di);
                replaced_first = di == 0;
            } else {
                self.gone_devices.insert((ci, di));
            }
        }
        match self.circuit(&template.id.0) {
            Some(ci) => {
                if replaced_first {
                    let c = &mut self.circuits[ci];
                    let devices = std::mem::take(&mut c.devices);
                    *c = Circuit { devices, ..template.clone() };
                } else if self.device(&device.id).is_none_or(|(dci, _)| dci != ci) {
                    self.push_device(ci, device.clone());
                    if let Some(di) = self.circuits[ci].devices.len().checked_sub(1) {
                        self.by_device.insert(device.id.clone(), (ci, di));
                    }
                }
            }
            None => {
                self.push_circuit(template.clone());
                if let Some(ci) = self.circuits.len().checked_sub(1) {
                    self.by_circuit.insert(template.id.0.clone(), ci);
                    self.by_device.insert(device.id.clone(), (ci, 0));
                }
            }
        }
    }

    /// The circuits without the removed ones and removed devices; a circuit left without
    /// devices goes too.
    fn finish(self) -> Vec<Circuit> {
        let Work { circuits, gone, gone_devices, .. } = self;
        circuits
            .into_iter()
            .enumerate()
            .filter(|(ci, _)| !gone.get(*ci).copied().unwrap_or(true))
            .filter_map(|(ci, mut c)| {
                let mut di = 0;
                c.devices.retain(|_| {
                    let keep = !gone_devices.contains(&(ci, di));
                    di += 1;
                    keep
                });
                (!c.devices.is_empty()).then_some(c)
            })
            .collect()
    }
}

/// Applies `ov` to `imp`: site speeds, appended rows, persistent devices, circuit adjustments
/// (see the module doc for the order). Problems with targets become warnings in
/// `imp.warnings`; the returned errors (an added device whose addresses another circuit
/// already has) mean the import must be refused.
pub fn apply(imp: &mut Import, ov: &Overrides, top: (RateKbit, RateKbit)) -> Vec<Diagnostic> {
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    let speeds: Vec<SiteSpeed> =
        ov.csv_site_speeds.iter().chain(ov.json_site_speeds.iter()).cloned().collect();
    if !speeds.is_empty() {
        apply_site_speeds(&mut imp.network, &speeds, top, &mut warnings);
    }
    let mut w = Work::new(std::mem::take(&mut imp.circuits));
    for c in &ov.append {
        for d in &c.devices {
            let place = Place { file: APPEND_SHAPED_DEVICES, line: d.line };
            errors.extend(w.conflicts(&c.id, d, &place));
        }
        match w.circuit(&c.id.0) {
            Some(ci) => {
                for d in &c.devices {
                    if w.device(&d.id).is_some_and(|(dci, _)| dci == ci) {
                        warnings.push(
                            Diagnostic::warning(APPEND_SHAPED_DEVICES, format!("device '{}' of circuit '{}' is already in the import; the appended row is ignored", d.id, c.id))
                                .at_line(d.line),
                        );
                    } else {
                        w.push_device(ci, d.clone());
                    }
                }
            }
            None => w.push_circuit(c.clone()),
        }
    }
    for (place, c) in &ov.persistent {
        for d in &c.devices {
            errors.extend(w.conflicts(&c.id, d, place));
        }
        w.upsert(c);
    }
    for (place, a) in &ov.adjustments {
        let missing = |what: &str, id: &str| {
            warn_at(place, format!("{what} '{id}' is not in this import; adjustment not applied"))
        };
        match a {
            CircuitAdjustment::CircuitSpeed { circuit_id, rates } => match w.circuit(circuit_id) {
                Some(ci) => set_rates(&mut w.circuits[ci], rates, place, &mut warnings),
                None => warnings.push(missing("circuit", circuit_id)),
            },
            CircuitAdjustment::DeviceSpeed { device_id, rates } => match w.device(device_id) {
                Some((ci, _)) => set_rates(&mut w.circuits[ci], rates, place, &mut warnings),
                None => warnings.push(missing("device", device_id)),
            },
            CircuitAdjustment::DeviceSqm { device_id, sqm } => match w.device(device_id) {
                Some((ci, _)) => {
                    w.circuits[ci].sqm =
                        sqm.as_deref().and_then(|s| parse_sqm_override(s).ok().flatten());
                }
                None => warnings.push(missing("device", device_id)),
            },
            CircuitAdjustment::RemoveCircuit { circuit_id } => match w.circuit(circuit_id) {
                Some(ci) => w.gone[ci] = true,
                None => warnings.push(missing("circuit", circuit_id)),
            },
            CircuitAdjustment::RemoveDevice { device_id } => match w.device(device_id) {
                Some(at) => {
                    w.gone_devices.insert(at);
                }
                None => warnings.push(missing("device", device_id)),
            },
            CircuitAdjustment::Reparent { circuit_id, parent_node } => {
                let known =
                    parent_node.is_empty() || imp.network.find_by_name(parent_node).is_some();
                match w.circuit(circuit_id) {
                    Some(ci) => {
                        if !known {
                            warnings.push(warn_at(place, format!("parent node '{parent_node}' of circuit '{circuit_id}' is not in network.json")));
                        }
                        let c = &mut w.circuits[ci];
                        c.parent_node = (!parent_node.is_empty()).then(|| parent_node.clone());
                        c.parent_node_id = None;
                        c.anchor_node_id = None;
                    }
                    None => warnings.push(missing("circuit", circuit_id)),
                }
            }
        }
    }
    imp.circuits = w.finish();
    imp.warnings.extend(warnings);
    errors
}

/// Loads the override files for `imp`'s CRM and applies them. Refuses the import when a file
/// has errors (the last good files stay).
pub fn load_and_apply(config: &Config, imp: &mut Import) -> Result<(), ImportError> {
    let (ov, diags) = load(config, imp.crm);
    if has_errors(&diags) {
        return Err(ImportError::Overrides { diagnostics: diags });
    }
    imp.warnings.extend(diags);
    if !ov.is_empty() {
        let errors = apply(imp, &ov, (config.queues.downlink, config.queues.uplink));
        if !errors.is_empty() {
            return Err(ImportError::Overrides { diagnostics: errors });
        }
        let counts: HashMap<&str, usize> = HashMap::from([
            ("site_speeds", ov.csv_site_speeds.len() + ov.json_site_speeds.len()),
            ("appended", ov.append.len()),
            ("persistent", ov.persistent.len()),
            ("adjustments", ov.adjustments.len()),
        ]);
        tracing::info!(crm = imp.crm.key(), ?counts, "operator overrides applied");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn circuit(id: &str, dev: &str, nets: &[&str]) -> Circuit {
        let nets: Vec<IpNet> = nets.iter().map(|n| n.parse().unwrap()).collect();
        Circuit {
            id: CircuitId(id.into()),
            name: id.into(),
            parent_node: None,
            parent_node_id: None,
            anchor_node_id: None,
            download_min: RateKbit(1000),
            upload_min: RateKbit(1000),
            download_max: RateKbit(1000),
            upload_max: RateKbit(1000),
            sqm: None,
            devices: vec![Device {
                id: dev.into(),
                name: dev.into(),
                mac: String::new(),
                ipv4: nets
                    .iter()
                    .filter_map(|n| if let IpNet::V4(x) = n { Some(*x) } else { None })
                    .collect(),
                ipv6: nets
                    .iter()
                    .filter_map(|n| if let IpNet::V6(x) = n { Some(*x) } else { None })
                    .collect(),
                comment: String::new(),
                line: 1,
            }],
            line: 1,
        }
    }

    /// The address index finds a containing prefix, a contained one and an equal one, in
    /// either family, and skips the device's own circuit, the device itself and removed ones.
    #[test]
    fn overlap_index_finds_supersets_subsets_and_skips_own_and_removed() {
        let mut w = Work::new(vec![
            circuit("a", "da", &["100.64.0.0/24"]),
            circuit("b", "db", &["100.64.1.7/32", "2001:db8:1::/48"]),
            circuit("c", "dc", &["10.0.0.0/8"]),
        ]);
        let own = CircuitId("x".into());
        let hit = |w: &Work, n: &str| {
            w.overlap(&n.parse().unwrap(), &own, "dx")
                .map(|(ci, n)| (w.circuits[ci].id.0.clone(), n.to_string()))
        };
        assert_eq!(hit(&w, "100.64.0.9/32"), Some(("a".into(), "100.64.0.0/24".into())));
        assert_eq!(hit(&w, "100.64.0.0/16"), Some(("a".into(), "100.64.0.0/24".into())));
        assert_eq!(hit(&w, "100.64.1.7/32"), Some(("b".into(), "100.64.1.7/32".into())));
        assert_eq!(hit(&w, "2001:db8:1:5::/64"), Some(("b".into(), "2001:db8:1::/48".into())));
        assert!(hit(&w, "0.0.0.0/0").is_some());
        assert_eq!(hit(&w, "100.65.0.0/16"), None);
        assert_eq!(hit(&w, "2001:db8:2::/48"), None);
        // The own circuit and the device being replaced are not conflicts.
        assert!(
            w.overlap(&"100.64.0.9/32".parse().unwrap(), &CircuitId("a".into()), "dx").is_none()
        );
        assert!(w.overlap(&"100.64.0.9/32".parse().unwrap(), &own, "da").is_none());
        // A removed circuit no longer owns its addresses.
        w.gone[0] = true;
        assert_eq!(hit(&w, "100.64.0.9/32"), None);
        assert_eq!(w.finish().len(), 2);
    }

    proptest! {
        /// The override parsers never panic, whatever text they are given, and every
        /// diagnostic they report names its file.
        #[test]
        fn parsers_never_panic(text in "\\PC{0,400}") {
            let mut diags = Vec::new();
            let mut out = Overrides::default();
            parse_overrides_json(&text, &mut out, &mut diags);
            let _ = parse_bandwidth_csv(&text, SPLYNX_BANDWIDTHS, &mut diags);
            prop_assert!(diags.iter().all(|d| !d.file.is_empty()));
        }

        /// JSON-shaped input (lists of entries with arbitrary values) never panics either.
        #[test]
        fn json_shaped_input_never_panics(
            kind in prop::sample::select(vec![
                "circuit_adjust_speed", "device_adjust_speed", "device_adjust_sqm",
                "remove_circuit", "remove_device", "reparent_circuit", "adjust_site_speed", "x",
            ]),
            value in prop::sample::select(vec![
                "null", "1", "-1", "1e308", "\"a\"", "[]", "{}", "[[\"1.2.3.4\", 40]]", "true",
            ]),
            key in prop::sample::select(vec![
                "circuit_id", "device_id", "max_download_bandwidth", "sqm_override",
                "parent_node", "site_name", "node_id", "ipv4", "download_min_mbps",
            ]),
        ) {
            let entry = format!("{{\"type\": \"{kind}\", \"{key}\": {value}}}");
            let text = format!(
                "{{\"persistent_devices\": [{entry}], \"circuit_adjustments\": [{entry}], \"network_adjustments\": [{entry}]}}"
            );
            let mut diags = Vec::new();
            let mut out = Overrides::default();
            parse_overrides_json(&text, &mut out, &mut diags);
            prop_assert!(diags.iter().all(|d| d.line == Some(1)));
        }
    }
}
