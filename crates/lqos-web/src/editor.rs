//! The shaped devices editor (admin) and the configuration view.
//!
//! Edits are checked the way lqosd checks its inputs: the edited circuit is written as CSV rows
//! in place of the old ones, the whole file is parsed with lqos-config and validated against
//! network.json. Errors on the edited rows come back per field (CSV column header, or
//! `devices[i].<column>` for device columns); nothing is written unless the result is
//! error-free. Then the file is written atomically and lqosd is asked to Reload.
//!
//! Configuration edits change only the edited values of lqos.conf (through
//! [`lqos_config::edit_config_str`]): the operator's comments, key order and sections lqos does
//! not know stay as written. The result is parsed with lqos-config before it is written; a
//! file with errors is never written (422 with field errors instead).

use std::path::{Path, PathBuf};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use lqos_bus::ReloadReport;
use lqos_config::{
    CSV_HEADER, Circuit, ConfEdit, ConfValue, Config, Diagnostic, EditError, Network,
    edit_config_str, format_sqm_override, parse_config_str, parse_network_str,
    parse_shaped_devices_str, shaped_devices_to_string, validate_inputs,
};
use serde::{Deserialize, Deserializer, Serialize};

use super::auth::{Admin, Session};
use super::{ApiError, FieldError, WebState};

pub(crate) fn routes() -> Router<WebState> {
    Router::new()
        .route("/shaped-devices", get(list).post(create))
        .route("/shaped-devices/{id}", get(one).put(update).delete(remove))
        .route("/config", get(config_view).put(config_update))
}

const CSV_LABEL: &str = "ShapedDevices.csv";
const NET_LABEL: &str = "network.json";
const DEVICE_COLUMNS: [&str; 6] = ["Device ID", "Device Name", "MAC", "IPv4", "IPv6", "Comment"];

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum T {
        S(String),
        N(serde_json::Number),
        Null,
    }
    Ok(match Option::<T>::deserialize(d)? {
        Some(T::S(s)) => s,
        Some(T::N(n)) => n.to_string(),
        Some(T::Null) | None => String::new(),
    })
}

/// One device as the form shows it.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct DeviceForm {
    #[serde(default, deserialize_with = "text")]
    device_id: String,
    #[serde(default, deserialize_with = "text")]
    device_name: String,
    #[serde(default, deserialize_with = "text")]
    mac: String,
    /// Comma-separated.
    #[serde(default, deserialize_with = "text")]
    ipv4: String,
    /// Comma-separated.
    #[serde(default, deserialize_with = "text")]
    ipv6: String,
    #[serde(default, deserialize_with = "text")]
    comment: String,
}

/// One circuit as the form shows it (all text, as typed).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct CircuitForm {
    #[serde(default, deserialize_with = "text")]
    circuit_id: String,
    #[serde(default, deserialize_with = "text")]
    circuit_name: String,
    #[serde(default, deserialize_with = "text")]
    parent_node: String,
    #[serde(default, deserialize_with = "text")]
    parent_node_id: String,
    #[serde(default, deserialize_with = "text")]
    anchor_node_id: String,
    #[serde(default, deserialize_with = "text")]
    download_min_mbps: String,
    #[serde(default, deserialize_with = "text")]
    upload_min_mbps: String,
    #[serde(default, deserialize_with = "text")]
    download_max_mbps: String,
    #[serde(default, deserialize_with = "text")]
    upload_max_mbps: String,
    #[serde(default, deserialize_with = "text")]
    sqm: String,
    #[serde(default)]
    devices: Vec<DeviceForm>,
}

fn mbps(r: lqos_config::RateKbit) -> String {
    let s = format!("{:.3}", r.as_mbps_f64());
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn join<T: ToString>(v: &[T]) -> String {
    v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

impl From<&Circuit> for CircuitForm {
    fn from(c: &Circuit) -> Self {
        CircuitForm {
            circuit_id: c.id.0.clone(),
            circuit_name: c.name.clone(),
            parent_node: c.parent_node.clone().unwrap_or_default(),
            parent_node_id: c.parent_node_id.clone().unwrap_or_default(),
            anchor_node_id: c.anchor_node_id.clone().unwrap_or_default(),
            download_min_mbps: mbps(c.download_min),
            upload_min_mbps: mbps(c.upload_min),
            download_max_mbps: mbps(c.download_max),
            upload_max_mbps: mbps(c.upload_max),
            sqm: format_sqm_override(c.sqm.as_ref()),
            devices: c
                .devices
                .iter()
                .map(|d| DeviceForm {
                    device_id: d.id.clone(),
                    device_name: d.name.clone(),
                    mac: d.mac.clone(),
                    ipv4: join(&d.ipv4),
                    ipv6: join(&d.ipv6),
                    comment: d.comment.clone(),
                })
                .collect(),
        }
    }
}

impl CircuitForm {
    /// CSV records, one per device, in [`CSV_HEADER`] order.
    fn records(&self) -> Vec<[&str; 16]> {
        self.devices
            .iter()
            .map(|d| {
                [
                    self.circuit_id.as_str(),
                    &self.circuit_name,
                    &d.device_id,
                    &d.device_name,
                    &self.parent_node,
                    &self.parent_node_id,
                    &self.anchor_node_id,
                    &d.mac,
                    &d.ipv4,
                    &d.ipv6,
                    &self.download_min_mbps,
                    &self.upload_min_mbps,
                    &self.download_max_mbps,
                    &self.upload_max_mbps,
                    &d.comment,
                    &self.sqm,
                ]
            })
            .collect()
    }

    /// Checks a parser cannot make on its own (shape of the form).
    fn precheck(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if self.devices.is_empty() {
            errs.push(FieldError::new("devices", "a circuit needs at least one device"));
        }
        if self.devices.len() > 1000 {
            errs.push(FieldError::new("devices", "more than 1000 devices"));
        }
        for (i, rec) in self.records().iter().enumerate() {
            for (col, cell) in CSV_HEADER.iter().zip(rec.iter()) {
                if cell.contains(['\n', '\r']) {
                    errs.push(FieldError::new(field_name(col, i), "must be a single line"));
                }
                if cell.len() > 4096 {
                    errs.push(FieldError::new(field_name(col, i), "longer than 4096 characters"));
                }
            }
        }
        errs.dedup();
        errs
    }
}

fn field_name(col: &str, device: usize) -> String {
    if DEVICE_COLUMNS.contains(&col) { format!("devices[{device}].{col}") } else { col.to_owned() }
}

fn paths(state: &WebState) -> (PathBuf, PathBuf) {
    let dir = &state.opts().lqos_directory;
    (dir.join(CSV_LABEL), dir.join(NET_LABEL))
}

fn read_optional(path: &Path) -> Result<Option<String>, ApiError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ApiError::Internal { message: format!("read {}: {e}", path.display()) }),
    }
}

/// The circuits on disk (rows with errors are left out) and the network.
fn load(state: &WebState) -> Result<(Vec<Circuit>, Vec<Diagnostic>, Network), ApiError> {
    let (csv, net) = paths(state);
    let csv_text =
        read_optional(&csv)?.ok_or(ApiError::NotFound { what: csv.display().to_string() })?;
    let (circuits, diags) = parse_shaped_devices_str(&csv_text, CSV_LABEL);
    let network = match read_optional(&net)? {
        Some(t) => parse_network_str(&t, NET_LABEL).0,
        None => Network::default(),
    };
    Ok((circuits, diags, network))
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    search: String,
    #[serde(default = "one_")]
    page: usize,
    #[serde(default = "fifty")]
    per_page: usize,
}
fn one_() -> usize {
    1
}
fn fifty() -> usize {
    50
}

#[derive(Serialize)]
struct ListPage {
    total: usize,
    page: usize,
    per_page: usize,
    pages: usize,
    items: Vec<CircuitForm>,
    /// Problems in the file as it is now.
    diagnostics: Vec<Diagnostic>,
}

async fn list(
    State(state): State<WebState>,
    _s: Session,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ListPage>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad(e.body_text()))?;
    if q.page == 0 || q.per_page == 0 || q.per_page > 500 {
        return Err(ApiError::bad("page starts at 1 and per_page must be 1..=500"));
    }
    let (circuits, diagnostics, _) = load(&state)?;
    let needle = q.search.trim().to_lowercase();
    let hits: Vec<&Circuit> = circuits
        .iter()
        .filter(|c| {
            needle.is_empty()
                || c.id.0.to_lowercase().contains(&needle)
                || c.name.to_lowercase().contains(&needle)
                || c.parent_node.as_deref().is_some_and(|p| p.to_lowercase().contains(&needle))
                || c.networks().any(|(n, _)| n.to_string().contains(&needle))
        })
        .collect();
    let total = hits.len();
    let start = (q.page - 1).saturating_mul(q.per_page).min(total);
    let end = start.saturating_add(q.per_page).min(total);
    Ok(Json(ListPage {
        total,
        page: q.page,
        per_page: q.per_page,
        pages: total.div_ceil(q.per_page),
        items: hits[start..end].iter().map(|c| CircuitForm::from(*c)).collect(),
        diagnostics,
    }))
}

async fn one(
    State(state): State<WebState>,
    _s: Session,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<CircuitForm>, ApiError> {
    let (circuits, _, _) = load(&state)?;
    circuits
        .iter()
        .find(|c| c.id.0 == id)
        .map(|c| Json(CircuitForm::from(c)))
        .ok_or(ApiError::NotFound { what: format!("circuit {id:?}") })
}

/// The result of a write.
#[derive(Serialize)]
struct Saved {
    saved: bool,
    reload: Option<ReloadReport>,
    reload_error: Option<String>,
    warnings: Vec<Diagnostic>,
}

/// Builds the new file with `form` replacing `original` (or appended, or `None` = delete),
/// validates it, and returns the circuits to write plus warnings.
pub(crate) fn edit(
    circuits: &[Circuit],
    network: &Network,
    original: Option<&str>,
    form: Option<&CircuitForm>,
) -> Result<(Vec<Circuit>, Vec<Diagnostic>), ApiError> {
    let pos = match original {
        Some(id) => Some(
            circuits
                .iter()
                .position(|c| c.id.0 == id)
                .ok_or(ApiError::NotFound { what: format!("circuit {id:?}") })?,
        ),
        None => None,
    };
    let (before, after): (&[Circuit], &[Circuit]) = match pos {
        Some(i) => (&circuits[..i], &circuits[i + 1..]),
        None => (circuits, &[]),
    };
    let mut text = shaped_devices_to_string(before);
    let first_line = text.matches('\n').count() + 1;
    let mut rows = 0;
    if let Some(form) = form {
        let pre = form.precheck();
        if !pre.is_empty() {
            return Err(ApiError::Validation { errors: pre, diagnostics: vec![] });
        }
        let new_id = form.circuit_id.trim();
        if original != Some(new_id) && circuits.iter().any(|c| c.id.0 == new_id) {
            return Err(ApiError::Validation {
                errors: vec![FieldError::new(
                    "Circuit ID",
                    format!("circuit {new_id:?} already exists"),
                )],
                diagnostics: vec![],
            });
        }
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        for rec in form.records() {
            w.write_record(rec).map_err(|e| ApiError::Internal { message: e.to_string() })?;
            rows += 1;
        }
        let bytes = w.into_inner().map_err(|e| ApiError::Internal { message: e.to_string() })?;
        text.push_str(&String::from_utf8_lossy(&bytes));
    }
    let rest = shaped_devices_to_string(after);
    text.push_str(rest.split_once('\n').map(|(_, r)| r).unwrap_or(""));

    let (parsed, mut diags) = parse_shaped_devices_str(&text, CSV_LABEL);
    diags.extend(validate_inputs(network, &parsed, NET_LABEL, CSV_LABEL));
    let mut errors = Vec::new();
    let mut elsewhere = Vec::new();
    let mut warnings = Vec::new();
    for d in diags {
        if !d.is_error() {
            warnings.push(d);
            continue;
        }
        match d.line {
            Some(l) if rows > 0 && l >= first_line && l < first_line + rows => {
                let col = d.field.clone().unwrap_or_else(|| "Circuit ID".into());
                errors.push(FieldError::new(field_name(&col, l - first_line), d.message.clone()));
            }
            _ => elsewhere.push(d),
        }
    }
    if !errors.is_empty() || !elsewhere.is_empty() {
        if errors.is_empty() {
            errors.push(FieldError::new(
                "ShapedDevices.csv",
                "other rows of ShapedDevices.csv have errors; fix them first (see diagnostics)",
            ));
        }
        return Err(ApiError::Validation { errors, diagnostics: elsewhere });
    }
    Ok((parsed, warnings))
}

async fn save(
    state: &WebState,
    who: &str,
    original: Option<&str>,
    form: Option<CircuitForm>,
) -> Result<Json<Saved>, ApiError> {
    let _guard = state.editor_lock().lock().await;
    let (circuits, _, network) = match load(state) {
        Ok(x) => x,
        Err(ApiError::NotFound { .. }) if original.is_none() => {
            (Vec::new(), Vec::new(), Network::default())
        }
        Err(e) => return Err(e),
    };
    let (new_list, warnings) = edit(&circuits, &network, original, form.as_ref())?;
    let (csv, _) = paths(state);
    lqos_config::write_shaped_devices(&csv, &new_list).map_err(|e| ApiError::Internal {
        message: format!("{e}: {:?}", std::error::Error::source(&e)),
    })?;
    tracing::info!(user = %who, circuit = ?original.or(form.as_ref().map(|f| f.circuit_id.as_str())), "ShapedDevices.csv edited");
    let (reload, reload_error) = match super::api::do_reload(state, false).await {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(Json(Saved { saved: true, reload, reload_error, warnings }))
}

async fn create(
    State(state): State<WebState>,
    Admin(who): Admin,
    b: Result<Json<CircuitForm>, JsonRejection>,
) -> Result<Json<Saved>, ApiError> {
    let form = super::api::body(b)?;
    save(&state, &who.username, None, Some(form)).await
}

async fn update(
    State(state): State<WebState>,
    Admin(who): Admin,
    UrlPath(id): UrlPath<String>,
    b: Result<Json<CircuitForm>, JsonRejection>,
) -> Result<Json<Saved>, ApiError> {
    let form = super::api::body(b)?;
    save(&state, &who.username, Some(&id), Some(form)).await
}

async fn remove(
    State(state): State<WebState>,
    Admin(who): Admin,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Saved>, ApiError> {
    save(&state, &who.username, Some(&id), None).await
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

const MASK: &str = "********";

/// The config as JSON with every secret replaced by `********` (empty stays empty).
pub(crate) fn masked(config: &Config) -> serde_json::Value {
    let mut c = config.clone();
    let mask = |s: &mut String| {
        if !s.is_empty() {
            *s = MASK.into();
        }
    };
    if let Some(u) = c.uisp.as_mut() {
        mask(&mut u.token);
    }
    if let Some(s) = c.splynx.as_mut() {
        mask(&mut s.api_key);
        mask(&mut s.api_secret);
    }
    if let Some(n) = c.netzur.as_mut() {
        mask(&mut n.api_key);
    }
    if let Some(t) = c.metrics.token.as_mut() {
        mask(t);
    }
    serde_json::to_value(&c).unwrap_or(serde_json::Value::Null)
}

/// The settings the GUI edits: (form key, TOML table or "" for top level, TOML key, kind).
const COMMON: [(&str, &str, &str, Kind); 7] = [
    ("node_name", "", "node_name", Kind::Text),
    ("downlink_bandwidth_mbps", "queues", "downlink_bandwidth_mbps", Kind::Number),
    ("uplink_bandwidth_mbps", "queues", "uplink_bandwidth_mbps", Kind::Number),
    ("generated_pn_download_mbps", "queues", "generated_pn_download_mbps", Kind::Number),
    ("generated_pn_upload_mbps", "queues", "generated_pn_upload_mbps", Kind::Number),
    ("default_sqm", "queues", "default_sqm", Kind::Text),
    (
        "queue_refresh_interval_mins",
        "integration_common",
        "queue_refresh_interval_mins",
        Kind::Integer,
    ),
];

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Number,
    Integer,
}

fn common_of(config: &Config) -> serde_json::Value {
    serde_json::json!({
        "node_name": config.node_name,
        "downlink_bandwidth_mbps": mbps(config.queues.downlink),
        "uplink_bandwidth_mbps": mbps(config.queues.uplink),
        "generated_pn_download_mbps": mbps(config.queues.generated_pn_download),
        "generated_pn_upload_mbps": mbps(config.queues.generated_pn_upload),
        "default_sqm": config.queues.default_sqm.tokens,
        "queue_refresh_interval_mins": config.integration_common.queue_refresh_interval_mins,
    })
}

fn config_path(state: &WebState) -> Result<PathBuf, ApiError> {
    state
        .opts()
        .config_path
        .clone()
        .ok_or(ApiError::NotFound { what: "configuration view (no config path)".into() })
}

async fn config_view(
    State(state): State<WebState>,
    _s: Session,
) -> Result<Json<serde_json::Value>, ApiError> {
    let path = config_path(&state)?;
    let text =
        read_optional(&path)?.ok_or(ApiError::NotFound { what: path.display().to_string() })?;
    let (config, diagnostics) = parse_config_str(&text, &path);
    let Some(config) = config else {
        return Err(ApiError::Validation { errors: vec![], diagnostics });
    };
    Ok(Json(serde_json::json!({
        "path": path.display().to_string(),
        "config": masked(&config),
        "common": common_of(&config),
        "diagnostics": diagnostics,
    })))
}

async fn config_update(
    State(state): State<WebState>,
    Admin(who): Admin,
    b: Result<Json<serde_json::Map<String, serde_json::Value>>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = super::api::body(b)?;
    let path = config_path(&state)?;
    let _guard = state.editor_lock().lock().await;
    let text =
        read_optional(&path)?.ok_or(ApiError::NotFound { what: path.display().to_string() })?;
    let mut edits = Vec::new();
    let mut errors = Vec::new();
    for (key, value) in &body {
        let Some((_, section, toml_key, kind)) = COMMON.iter().find(|(k, ..)| k == key) else {
            errors.push(FieldError::new(key.clone(), "not an editable setting"));
            continue;
        };
        let raw = match value {
            serde_json::Value::String(s) => s.trim().to_owned(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => {
                errors.push(FieldError::new(key.clone(), "must be a string or a number"));
                continue;
            }
        };
        let v = match kind {
            Kind::Text => ConfValue::Text(raw),
            Kind::Integer => match raw.parse::<i64>() {
                Ok(n) if n >= 0 => ConfValue::Integer(n),
                _ => {
                    errors.push(FieldError::new(
                        key.clone(),
                        format!("{raw:?} is not a whole number"),
                    ));
                    continue;
                }
            },
            Kind::Number => match raw.parse::<f64>() {
                Ok(n) if n.is_finite() && n >= 0.0 => {
                    if n.fract() == 0.0 && n < 9.0e15 {
                        ConfValue::Integer(n as i64)
                    } else {
                        ConfValue::Float(n)
                    }
                }
                _ => {
                    errors.push(FieldError::new(key.clone(), format!("{raw:?} is not a number")));
                    continue;
                }
            },
        };
        edits.push((key.clone(), ConfEdit::new(section, toml_key, v)));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation { errors, diagnostics: vec![] });
    }
    // Only the edited values change; comments, key order and unknown sections stay as written.
    let plain: Vec<ConfEdit> = edits.iter().map(|(_, e)| e.clone()).collect();
    let new_text = edit_config_str(&text, &plain).map_err(|e| match e {
        EditError::Syntax { source } => {
            ApiError::Conflict { message: format!("lqos.conf does not parse: {source}") }
        }
        EditError::NotATable { ref table, ref key }
        | EditError::NotAValue { ref table, ref key } => {
            let form_key = edits
                .iter()
                .find(|(_, ed)| &ed.table == table && &ed.key == key)
                .map_or_else(|| key.clone(), |(k, _)| k.clone());
            ApiError::Validation {
                errors: vec![FieldError::new(form_key, e.to_string())],
                diagnostics: vec![],
            }
        }
    })?;
    let (parsed, diagnostics) = parse_config_str(&new_text, &path);
    let errs: Vec<FieldError> = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| {
            let f = d.field.clone().unwrap_or_default();
            let key = COMMON
                .iter()
                .find(|(_, _, k, _)| f.ends_with(k))
                .map(|(k, ..)| k.to_string())
                .unwrap_or(f);
            FieldError::new(key, d.message.clone())
        })
        .collect();
    if parsed.is_none() || !errs.is_empty() {
        return Err(ApiError::Validation { errors: errs, diagnostics });
    }
    lqos_config::write_atomic(&path, new_text.as_bytes())
        .map_err(|e| ApiError::Internal { message: e.to_string() })?;
    tracing::info!(user = %who.username, "lqos.conf common settings edited");
    Ok(Json(serde_json::json!({ "saved": true, "diagnostics": diagnostics })))
}
