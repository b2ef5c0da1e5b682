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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderName, header};
use axum::response::IntoResponse;
use axum::routing::get;
use lqos_bus::ReloadReport;
use lqos_config::{
    CSV_HEADER, Circuit, Config, Diagnostic, Network, SettingsEditError, format_sqm_override,
    parse_config_str, parse_network_str, validate_inputs_with_rejected,
};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

use super::auth::{Admin, Session};
use super::csvedit::{RawCsv, SpliceError};
use super::{ApiError, FieldError, WebState};

pub(crate) fn routes() -> super::openapi::ApiRoutes {
    super::openapi::ApiRoutes::new()
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
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, utoipa::ToSchema)]
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
    pub(crate) fn records(&self) -> Vec<[&str; 16]> {
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
    pub(crate) fn precheck(&self) -> Vec<FieldError> {
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

/// The input files as read from disk, parsed once per change of either file.
pub(crate) struct Snapshot {
    /// ShapedDevices.csv's text (`None`: no file yet).
    text: Option<String>,
    /// Its entity tag (a content hash, quoted as HTTP wants it).
    etag: String,
    /// Its circuits (rows with errors left out, which is why writes check `diags` first).
    circuits: Vec<Circuit>,
    /// Parse and validation problems of the file as it is.
    diags: Vec<Diagnostic>,
    network: Network,
}

/// What identifies a version of a file without reading it.
type Fingerprint = Option<(std::time::SystemTime, u64, u64, i64, i64)>;

fn fingerprint(path: &Path) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path).ok()?;
    Some((md.modified().ok()?, md.len(), md.ino(), md.ctime(), md.ctime_nsec()))
}

type CacheEntry = (Fingerprint, Fingerprint, Arc<Snapshot>);

/// Parsed files by CSV path, reused while neither file changed (mtime, size, inode, ctime).
static CACHE: LazyLock<Mutex<HashMap<PathBuf, CacheEntry>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The quoted entity tag of `text` (the first 128 bits of its SHA-256).
pub(crate) fn etag_of(text: Option<&str>) -> String {
    match text {
        Some(t) => format!("\"{}\"", hex::encode(&Sha256::digest(t.as_bytes())[..16])),
        None => "\"absent\"".to_owned(),
    }
}

/// Reads and parses both files (blocking).
fn read_snapshot(csv: &Path, net: &Path) -> Result<Snapshot, ApiError> {
    let text = read_optional(csv)?;
    let network = match read_optional(net)? {
        Some(t) => parse_network_str(&t, NET_LABEL).0,
        None => Network::default(),
    };
    let (circuits, mut diags) = match &text {
        Some(t) => {
            let parsed = lqos_config::parse_shaped_devices(t, CSV_LABEL);
            let mut d = parsed.diagnostics;
            d.extend(validate_inputs_with_rejected(
                &network,
                &parsed.circuits,
                &parsed.rejected,
                NET_LABEL,
                CSV_LABEL,
            ));
            (parsed.circuits, d)
        }
        None => (Vec::new(), Vec::new()),
    };
    diags.dedup();
    Ok(Snapshot { etag: etag_of(text.as_deref()), text, circuits, diags, network })
}

/// The current files, from the cache when neither changed (blocking).
fn cached_snapshot(csv: &Path, net: &Path) -> Result<Arc<Snapshot>, ApiError> {
    let (fc, fnet) = (fingerprint(csv), fingerprint(net));
    if let Ok(cache) = CACHE.lock()
        && let Some((c, n, snap)) = cache.get(csv)
        && *c == fc
        && *n == fnet
        && fc.is_some()
    {
        return Ok(snap.clone());
    }
    let snap = Arc::new(read_snapshot(csv, net)?);
    if let Ok(mut cache) = CACHE.lock() {
        if cache.len() > 64 {
            cache.clear();
        }
        cache.insert(csv.to_owned(), (fc, fnet, snap.clone()));
    }
    Ok(snap)
}

/// The current files, read and parsed off the async workers.
async fn snapshot(state: &WebState) -> Result<Arc<Snapshot>, ApiError> {
    let (csv, net) = paths(state);
    tokio::task::spawn_blocking(move || cached_snapshot(&csv, &net))
        .await
        .map_err(|e| ApiError::Internal { message: format!("editor read task: {e}") })?
}

fn with_etag<T>(etag: &str, body: T) -> ([(HeaderName, String); 1], T) {
    ([(header::ETAG, etag.to_owned())], body)
}

/// Search and page of the editor list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Case-insensitive substring of ID, name, parent or an address.
    #[serde(default)]
    search: String,
    /// Page, from 1.
    #[serde(default = "one_")]
    #[param(minimum = 1, default = 1)]
    page: usize,
    /// Circuits per page, 1..=500.
    #[serde(default = "fifty")]
    #[param(minimum = 1, maximum = 500, default = 50)]
    per_page: usize,
}
fn one_() -> usize {
    1
}
fn fifty() -> usize {
    50
}

/// One page of ShapedDevices.csv circuits (the answer's `ETag` goes into `If-Match` of edits).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ListPage {
    total: usize,
    page: usize,
    per_page: usize,
    pages: usize,
    items: Vec<CircuitForm>,
    /// Problems in the file as it is now.
    diagnostics: Vec<Diagnostic>,
    /// Why the editor is read-only right now (an integration owns the file), if it is.
    read_only: Option<String>,
}

/// ShapedDevices.csv as circuits, one page, with the file's problems.
#[utoipa::path(get, path = "/shaped-devices", tag = "editor", params(ListQuery),
    responses((status = 200, description = "One page; header `ETag`", body = ListPage),
        (status = 404, description = "No ShapedDevices.csv", body = super::error::ErrorBody)))]
pub(crate) async fn list(
    State(state): State<WebState>,
    _s: Session,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad(e.body_text()))?;
    if q.page == 0 || q.per_page == 0 || q.per_page > 500 {
        return Err(ApiError::bad("page starts at 1 and per_page must be 1..=500"));
    }
    let snap = snapshot(&state).await?;
    if snap.text.is_none() {
        let (csv, _) = paths(&state);
        return Err(ApiError::NotFound { what: csv.display().to_string() });
    }
    let needle = q.search.trim().to_lowercase();
    let hits: Vec<&Circuit> = snap
        .circuits
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
    let read_only = match state.opts().config_path.clone() {
        Some(path) => tokio::task::spawn_blocking(move || owner(&path).0).await.ok().flatten(),
        None => None,
    };
    Ok(with_etag(
        &snap.etag,
        Json(ListPage {
            total,
            page: q.page,
            per_page: q.per_page,
            pages: total.div_ceil(q.per_page),
            items: hits[start..end].iter().map(|c| CircuitForm::from(*c)).collect(),
            diagnostics: snap.diags.clone(),
            read_only,
        }),
    ))
}

/// One circuit of ShapedDevices.csv with its devices.
#[utoipa::path(get, path = "/shaped-devices/{id}", tag = "editor",
    params(("id" = String, Path, description = "Circuit ID")),
    responses((status = 200, description = "The circuit; header `ETag`", body = CircuitForm),
        (status = 404, description = "No such circuit", body = super::error::ErrorBody)))]
pub(crate) async fn one(
    State(state): State<WebState>,
    _s: Session,
    UrlPath(id): UrlPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let snap = snapshot(&state).await?;
    snap.circuits
        .iter()
        .find(|c| c.id.0 == id)
        .map(|c| with_etag(&snap.etag, Json(CircuitForm::from(c))))
        .ok_or(ApiError::NotFound { what: format!("circuit {id:?}") })
}

/// The result of a write.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Saved {
    saved: bool,
    reload: Option<ReloadReport>,
    reload_error: Option<String>,
    warnings: Vec<Diagnostic>,
}

/// Who owns the input files according to lqos.conf at `path`: the enabled integration's
/// read-only reason (if any) and `max_shrink_ratio`.
fn owner(path: &Path) -> (Option<String>, f64) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (None, lqos_config::conf::DEFAULT_MAX_SHRINK_RATIO);
    };
    let (Some(config), _) = parse_config_str(&text, path) else {
        return (None, lqos_config::conf::DEFAULT_MAX_SHRINK_RATIO);
    };
    let ratio = config.integration_common.max_shrink_ratio;
    let crm = if config.uisp.as_ref().is_some_and(|c| c.enabled) {
        Some(("UISP", "uisp_integration", "enable_uisp"))
    } else if config.splynx.as_ref().is_some_and(|c| c.enabled) {
        Some(("Splynx", "splynx_integration", "enable_splynx"))
    } else if config.netzur.as_ref().is_some_and(|c| c.enabled) {
        Some(("Netzur", "netzur_integration", "enable_netzur"))
    } else {
        None
    };
    let reason = crm.map(|(name, section, key)| {
        format!(
            "ShapedDevices.csv is generated by the {name} integration (lqos_scheduler rewrites it \
             every {} min), so edits here would be lost; change the circuit in {name}, or set \
             {key} = false in [{section}] of {} to edit by hand",
            config.integration_common.queue_refresh_interval_mins,
            path.display()
        )
    });
    (reason, ratio)
}

/// The checks a parser cannot make: the form's shape, and ids that would become comments.
fn precheck(form: &CircuitForm) -> Vec<FieldError> {
    let mut errs = form.precheck();
    if form.circuit_id.trim_start().starts_with('#') {
        errs.push(FieldError::new(
            "Circuit ID",
            "must not start with '#' (the line would be read as a comment)",
        ));
    }
    if form.circuit_id.trim().is_empty() {
        errs.push(FieldError::new("Circuit ID", "is required"));
    }
    errs
}

/// Builds the new file with `form` replacing the rows of `original` (or appended, or
/// `None` = delete) at the text level, validates it, and returns the new text plus warnings.
/// Refuses when the file on disk has errors outside the edited circuit (an edit would carry
/// them on unnoticed) and says which lines.
pub(crate) fn edit(
    snap: &Snapshot,
    original: Option<&str>,
    form: Option<&CircuitForm>,
) -> Result<(String, Vec<Diagnostic>), ApiError> {
    let base = match &snap.text {
        Some(t) => t.clone(),
        None if original.is_none() => format!("{}\n", CSV_HEADER.join(",")),
        None => return Err(ApiError::NotFound { what: CSV_LABEL.into() }),
    };
    let raw = RawCsv::parse(&base).map_err(|e| match e {
        SpliceError::NotFound { .. } => ApiError::NotFound { what: e.to_string() },
        other => ApiError::FileHasErrors { message: other.to_string(), diagnostics: vec![] },
    })?;
    let own_lines = original.map(|id| raw.lines_of(id)).unwrap_or_default();
    if let Some(id) = original
        && own_lines.is_empty()
    {
        return Err(ApiError::NotFound { what: format!("circuit {id:?}") });
    }
    let blocking: Vec<Diagnostic> = snap
        .diags
        .iter()
        .filter(|d| d.is_error() && d.line.is_none_or(|l| !own_lines.contains(&l)))
        .cloned()
        .collect();
    if !blocking.is_empty() {
        let mut lines: Vec<String> =
            blocking.iter().filter_map(|d| d.line).map(|l| l.to_string()).collect();
        lines.dedup();
        let where_ = if lines.is_empty() {
            "the file as a whole".to_owned()
        } else {
            format!("line {}", lines.join(", "))
        };
        return Err(ApiError::FileHasErrors {
            message: format!(
                "ShapedDevices.csv has errors on {where_} that the editor would carry on \
                 unnoticed; fix them first (libreqos --validate shows them), then edit"
            ),
            diagnostics: blocking,
        });
    }
    if let Some(form) = form {
        let pre = precheck(form);
        if !pre.is_empty() {
            return Err(ApiError::Validation { errors: pre, diagnostics: vec![] });
        }
        let new_id = form.circuit_id.trim();
        if original != Some(new_id) && !raw.lines_of(new_id).is_empty() {
            return Err(ApiError::Validation {
                errors: vec![FieldError::new(
                    "Circuit ID",
                    format!("circuit {new_id:?} already exists"),
                )],
                diagnostics: vec![],
            });
        }
    }
    let (text, first_line, rows) = raw.splice(original, form).map_err(|e| match e {
        SpliceError::NotFound { .. } => ApiError::NotFound { what: e.to_string() },
        other => ApiError::FileHasErrors { message: other.to_string(), diagnostics: vec![] },
    })?;

    let parsed = lqos_config::parse_shaped_devices(&text, CSV_LABEL);
    let mut diags = parsed.diagnostics;
    diags.extend(validate_inputs_with_rejected(
        &snap.network,
        &parsed.circuits,
        &parsed.rejected,
        NET_LABEL,
        CSV_LABEL,
    ));
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
                "this edit conflicts with other rows of ShapedDevices.csv (see diagnostics)",
            ));
        }
        errors.dedup();
        return Err(ApiError::Validation { errors, diagnostics: elsewhere });
    }
    Ok((text, warnings))
}

/// The same guard as CRM imports (`[integration_common] max_shrink_ratio`): refuses a write
/// that leaves no circuit or removes more than that share of them.
fn shrink_guard(before: usize, after: usize, max_ratio: f64) -> Result<(), ApiError> {
    if max_ratio >= 1.0 || before == 0 || after >= before {
        return Ok(());
    }
    let removed = before - after;
    if after == 0 || removed as f64 / before as f64 > max_ratio {
        return Err(ApiError::Conflict {
            message: format!(
                "this edit would remove {removed} of {before} circuits, more than \
                 max_shrink_ratio = {max_ratio} allows (the guard CRM imports use); edit the file \
                 by hand or raise max_shrink_ratio in [integration_common]"
            ),
        });
    }
    Ok(())
}

/// Copies `path`'s current content to `<path>.bak`, then replaces `path` with `text`.
fn write_with_backup(path: &Path, old: Option<&str>, text: &str) -> Result<(), ApiError> {
    if let Some(old) = old {
        let mut bak = path.as_os_str().to_owned();
        bak.push(".bak");
        lqos_config::write_atomic(Path::new(&bak), old.as_bytes())
            .map_err(|e| ApiError::Internal { message: format!("write backup: {e}") })?;
    }
    lqos_config::write_atomic(path, text.as_bytes()).map_err(|e| ApiError::Internal {
        message: format!("{e}: {:?}", std::error::Error::source(&e)),
    })
}

/// The whole write, under the inputs lock (blocking): owner check, fresh read, If-Match,
/// edit, shrink guard, `.bak`, atomic write. Returns the warnings and the new entity tag.
fn save_blocking(
    lqos_directory: &Path,
    config_path: Option<&Path>,
    if_match: &str,
    original: Option<&str>,
    form: Option<&CircuitForm>,
) -> Result<(Vec<Diagnostic>, String), ApiError> {
    let (read_only, max_ratio) =
        config_path.map_or((None, lqos_config::conf::DEFAULT_MAX_SHRINK_RATIO), owner);
    if let Some(message) = read_only {
        return Err(ApiError::Conflict { message });
    }
    let _lock = lqos_config::lock_inputs(lqos_directory, INPUTS_LOCK_WAIT).map_err(|e| {
        ApiError::Conflict { message: format!("the input files are being written: {e}; try again") }
    })?;
    let (csv, net) = (lqos_directory.join(CSV_LABEL), lqos_directory.join(NET_LABEL));
    let snap = read_snapshot(&csv, &net)?;
    let matches = if_match.split(',').map(str::trim).any(|t| {
        t == snap.etag
            || t.strip_prefix("W/") == Some(snap.etag.as_str())
            || (t == "*" && snap.text.is_some())
    });
    if !matches {
        return Err(ApiError::Stale { etag: snap.etag });
    }
    let (text, warnings) = edit(&snap, original, form)?;
    let after = lqos_config::parse_shaped_devices(&text, CSV_LABEL).circuits.len();
    shrink_guard(snap.circuits.len(), after, max_ratio)?;
    write_with_backup(&csv, snap.text.as_deref(), &text)?;
    Ok((warnings, etag_of(Some(&text))))
}

/// How long a write waits for the inputs lock (lqos_scheduler may be publishing).
const INPUTS_LOCK_WAIT: Duration = Duration::from_secs(10);

async fn save(
    state: &WebState,
    who: &str,
    headers: &HeaderMap,
    original: Option<&str>,
    form: Option<CircuitForm>,
) -> Result<impl IntoResponse + use<>, ApiError> {
    let Some(if_match) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return Err(ApiError::PreconditionRequired);
    };
    let _guard = state.editor_lock().lock().await;
    let dir = state.opts().lqos_directory.clone();
    let config_path = state.opts().config_path.clone();
    let (if_match, orig, f) = (if_match.to_owned(), original.map(str::to_owned), form.clone());
    let (warnings, etag) = tokio::task::spawn_blocking(move || {
        save_blocking(&dir, config_path.as_deref(), &if_match, orig.as_deref(), f.as_ref())
    })
    .await
    .map_err(|e| ApiError::Internal { message: format!("editor write task: {e}") })??;
    tracing::info!(user = %who, circuit = ?original.or(form.as_ref().map(|f| f.circuit_id.as_str())), "ShapedDevices.csv edited");
    let (reload, reload_error) = match super::api::do_reload(state, false).await {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(with_etag(&etag, Json(Saved { saved: true, reload, reload_error, warnings })))
}

/// Adds a circuit (admin), then reloads.
#[utoipa::path(post, path = "/shaped-devices", tag = "editor", request_body = CircuitForm,
    params(("If-Match" = String, Header, description = "The ETag of the file as read; 409 `stale` when it changed since")),
    responses((status = 200, description = "Written and reloaded; header `ETag`", body = Saved),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody),
        (status = 409, description = "The file changed since it was read (`stale`), or has errors elsewhere", body = super::error::ErrorBody),
        (status = 422, description = "Field errors; nothing written", body = super::error::ErrorBody),
        (status = 428, description = "If-Match missing", body = super::error::ErrorBody)))]
pub(crate) async fn create(
    State(state): State<WebState>,
    Admin(who): Admin,
    headers: HeaderMap,
    b: Result<Json<CircuitForm>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let form = super::api::body(b)?;
    save(&state, &who.username, &headers, None, Some(form)).await
}

/// Replaces a circuit and its devices (admin), then reloads.
#[utoipa::path(put, path = "/shaped-devices/{id}", tag = "editor", request_body = CircuitForm,
    params(("id" = String, Path, description = "Circuit ID"), ("If-Match" = String, Header, description = "The ETag of the file as read; 409 `stale` when it changed since")),
    responses((status = 200, description = "Written and reloaded; header `ETag`", body = Saved),
        (status = 404, description = "No such circuit", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody),
        (status = 409, description = "The file changed since it was read (`stale`), or has errors elsewhere", body = super::error::ErrorBody),
        (status = 422, description = "Field errors; nothing written", body = super::error::ErrorBody),
        (status = 428, description = "If-Match missing", body = super::error::ErrorBody)))]
pub(crate) async fn update(
    State(state): State<WebState>,
    Admin(who): Admin,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    b: Result<Json<CircuitForm>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let form = super::api::body(b)?;
    save(&state, &who.username, &headers, Some(&id), Some(form)).await
}

/// Deletes a circuit and its devices (admin), then reloads.
#[utoipa::path(delete, path = "/shaped-devices/{id}", tag = "editor",
    params(("id" = String, Path, description = "Circuit ID"), ("If-Match" = String, Header, description = "The ETag of the file as read; 409 `stale` when it changed since")),
    responses((status = 200, description = "Written and reloaded; header `ETag`", body = Saved),
        (status = 404, description = "No such circuit", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody),
        (status = 409, description = "The file changed since it was read (`stale`), or has errors elsewhere", body = super::error::ErrorBody),
        (status = 422, description = "Field errors; nothing written", body = super::error::ErrorBody),
        (status = 428, description = "If-Match missing", body = super::error::ErrorBody)))]
pub(crate) async fn remove(
    State(state): State<WebState>,
    Admin(who): Admin,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    save(&state, &who.username, &headers, Some(&id), None).await
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

/// lqos.conf as JSON with secrets masked (`********`), the editable common settings and the
/// file's diagnostics.
#[utoipa::path(get, path = "/config", tag = "editor",
    responses((status = 200, description = "`{path, config, common, diagnostics}`", body = Object),
        (status = 404, description = "No configuration file", body = super::error::ErrorBody)))]
pub(crate) async fn config_view(
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

/// Changes common settings of lqos.conf (admin); comments, order and unknown sections stay.
/// Body: `{setting: value}` for `node_name`, `downlink_bandwidth_mbps`,
/// `uplink_bandwidth_mbps`, `generated_pn_download_mbps`, `generated_pn_upload_mbps`,
/// `default_sqm`, `queue_refresh_interval_mins`.
#[utoipa::path(put, path = "/config", tag = "editor", request_body = Object,
    responses((status = 200, description = "Written", body = Object),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody),
        (status = 422, description = "Field errors; nothing written", body = super::error::ErrorBody)))]
pub(crate) async fn config_update(
    State(state): State<WebState>,
    Admin(who): Admin,
    b: Result<Json<serde_json::Map<String, serde_json::Value>>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = super::api::body(b)?;
    let path = config_path(&state)?;
    let _guard = state.editor_lock().lock().await;
    let text =
        read_optional(&path)?.ok_or(ApiError::NotFound { what: path.display().to_string() })?;
    let mut settings = Vec::with_capacity(body.len());
    let mut errors = Vec::new();
    for (key, value) in &body {
        match value {
            serde_json::Value::String(s) => settings.push((key.clone(), s.clone())),
            serde_json::Value::Number(n) => settings.push((key.clone(), n.to_string())),
            _ => errors.push(FieldError::new(key.clone(), "must be a string or a number")),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation { errors, diagnostics: vec![] });
    }
    // Only the edited values change; comments, key order and unknown sections stay as written.
    let (new_text, diagnostics) = lqos_config::edit_common_settings(&text, &path, &settings)
        .map_err(|e| match e {
            SettingsEditError::Fields { errors, diagnostics } => ApiError::Validation {
                errors: errors.into_iter().map(|e| FieldError::new(e.setting, e.message)).collect(),
                diagnostics,
            },
            e @ SettingsEditError::Syntax { .. } => ApiError::Conflict { message: e.to_string() },
        })?;
    let diagnostics = match lqos_config::write_atomic(&path, new_text.as_bytes()) {
        Ok(()) => diagnostics,
        // The web server may not write lqos.conf (root:lqos 0640, and /etc read-only in its
        // sandbox): lqosd, which may, sets the same values, checked again against the file.
        Err(lqos_config::ConfigError::Write { source, .. })
            if matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            tracing::debug!(error = %source, "lqos.conf not writable here; asking lqosd to write it");
            match state.backend().request(lqos_bus::Command::EditConfig { settings }).await {
                lqos_bus::Response::ConfigSaved(d) => d,
                lqos_bus::Response::Error(lqos_bus::CommandError::InvalidInput { diagnostics }) => {
                    let errors = diagnostics
                        .iter()
                        .filter(|d| d.is_error())
                        .map(|d| {
                            FieldError::new(d.field.clone().unwrap_or_default(), d.message.clone())
                        })
                        .collect();
                    return Err(ApiError::Validation { errors, diagnostics });
                }
                other => return Err(ApiError::from_response(other)),
            }
        }
        Err(e) => return Err(ApiError::Internal { message: e.to_string() }),
    };
    tracing::info!(user = %who.username, "lqos.conf common settings edited");
    Ok(Json(serde_json::json!({ "saved": true, "diagnostics": diagnostics })))
}
