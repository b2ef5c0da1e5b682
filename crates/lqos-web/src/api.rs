//! `/api/v1` handlers. Each one turns into bus commands; none touches the kernel.

use std::cmp::Ordering;
use std::convert::Infallible;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use lqos_bus::{CircuitStat, Command, DaemonStatus, NodeStat, ReloadMode, ReloadReport, Response};
use serde::{Deserialize, Serialize};

use super::auth::{Admin, ClientAddr, Session, cookie_value};
use super::front::Peer;
use super::{ApiError, WebState};

pub(crate) fn routes() -> Router<WebState> {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/openapi.json", get(openapi))
        .route("/session", get(session))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/setup/status", get(setup_status))
        .route("/setup", post(setup))
        .route("/status", get(status))
        .route("/circuits", get(circuits))
        .route("/circuits/{id}", get(circuit))
        .route("/circuits/{id}/flows", get(circuit_flows))
        .route("/top", get(top))
        .route("/nodes", get(nodes))
        .route("/nodes/{name}", get(node))
        .route("/scheduler", get(scheduler))
        .route("/reload", post(reload))
        .route("/dry-run", post(dry_run))
        .route("/events", get(events))
        .merge(super::editor::routes())
        .merge(super::history::routes())
        .merge(super::insight::routes())
        .merge(super::circuit::routes())
}

/// Unwraps a JSON body or turns the rejection into a 400 with its message.
pub(crate) fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v).map_err(|e| ApiError::bad(e.body_text()))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| ApiError::bad(e.body_text()))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("openapi.json"))
}

async fn session(s: Session) -> Json<Session> {
    Json(s)
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

fn with_cookie(cookie: String, body: impl IntoResponse) -> HttpResponse {
    let mut resp = body.into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn login(
    State(state): State<WebState>,
    ClientAddr(client): ClientAddr,
    peer: Peer,
    b: Result<Json<LoginBody>, JsonRejection>,
) -> Result<HttpResponse, ApiError> {
    let b = body(b)?;
    if state.auth().no_users() && state.auth().setup_token().is_some() {
        return Err(ApiError::Conflict {
            message: "no users yet: use the setup link from lqos_web's log".into(),
        });
    }
    let Some(user) = state.auth().login(&client, &b.username, &b.password).await? else {
        // Never the typed username: it is often a password typed into the wrong field.
        tracing::info!(%client, "failed login");
        return Err(ApiError::Unauthorized);
    };
    tracing::info!(username = %user.username, %client, "login");
    let (value, session) = state.auth().issue(&user);
    Ok(with_cookie(state.auth().cookie(&value, peer.secure), Json(session)))
}

async fn logout(
    State(state): State<WebState>,
    _s: Session,
    peer: Peer,
    headers: HeaderMap,
) -> HttpResponse {
    if let Some(value) = cookie_value(&headers, peer.secure) {
        state.auth().revoke(value);
    }
    with_cookie(state.auth().clear_cookie(peer.secure), Json(serde_json::json!({"ok": true})))
}

async fn setup_status(State(state): State<WebState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "setup_required": state.auth().setup_token().is_some() }))
}

#[derive(Deserialize)]
struct SetupBody {
    token: String,
    username: String,
    password: String,
}

async fn setup(
    State(state): State<WebState>,
    ClientAddr(client): ClientAddr,
    peer: Peer,
    b: Result<Json<SetupBody>, JsonRejection>,
) -> Result<HttpResponse, ApiError> {
    let b = body(b)?;
    let user = state.auth().first_admin(&client, &b.token, &b.username, &b.password).await?;
    tracing::info!(username = %user.username, "first admin created");
    let (value, session) = state.auth().issue(&user);
    Ok(with_cookie(state.auth().cookie(&value, peer.secure), Json(session)))
}

pub(crate) async fn fetch_status(state: &WebState) -> Result<DaemonStatus, ApiError> {
    match state.backend().request(Command::Status).await {
        Response::Status(s) => Ok(*s),
        other => Err(ApiError::from_response(other)),
    }
}

async fn status(State(state): State<WebState>) -> Result<Json<DaemonStatus>, ApiError> {
    fetch_status(&state).await.map(Json)
}

/// Sort keys of the circuit list.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum SortKey {
    Id,
    #[default]
    Name,
    Parent,
    DownloadBps,
    UploadBps,
    DownloadMax,
    UploadMax,
    Drops,
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Order {
    #[default]
    Asc,
    Desc,
}

#[derive(Debug, Deserialize)]
struct CircuitQuery {
    #[serde(default)]
    search: String,
    #[serde(default)]
    sort: SortKey,
    #[serde(default)]
    order: Order,
    #[serde(default = "one")]
    page: usize,
    #[serde(default = "fifty")]
    per_page: usize,
}

fn one() -> usize {
    1
}
fn fifty() -> usize {
    50
}

/// Largest page size.
const MAX_PER_PAGE: usize = 500;

#[derive(Serialize)]
struct Page<'a> {
    total: usize,
    page: usize,
    per_page: usize,
    pages: usize,
    items: Vec<&'a CircuitStat>,
}

fn compare(idx: &super::CircuitIndex, i: usize, j: usize, key: SortKey) -> Ordering {
    let (a, b) = (&idx.list[i], &idx.list[j]);
    let primary = match key {
        SortKey::Id => a.id.cmp(&b.id),
        SortKey::Name => idx.name_lower[i].cmp(&idx.name_lower[j]),
        SortKey::Parent => a.parent.cmp(&b.parent),
        SortKey::DownloadBps => a.download_bps.cmp(&b.download_bps),
        SortKey::UploadBps => a.upload_bps.cmp(&b.upload_bps),
        SortKey::DownloadMax => a.download_max_kbit.cmp(&b.download_max_kbit),
        SortKey::UploadMax => a.upload_max_kbit.cmp(&b.upload_max_kbit),
        SortKey::Drops => a.drops.cmp(&b.drops),
    };
    primary.then_with(|| a.id.cmp(&b.id))
}

async fn circuits(
    State(state): State<WebState>,
    q: Result<Query<CircuitQuery>, QueryRejection>,
) -> Result<HttpResponse, ApiError> {
    let q = query(q)?;
    if q.page == 0 {
        return Err(ApiError::bad("page starts at 1"));
    }
    if q.per_page == 0 || q.per_page > MAX_PER_PAGE {
        return Err(ApiError::bad(format!("per_page must be 1..={MAX_PER_PAGE}")));
    }
    if q.search.len() > 200 {
        return Err(ApiError::bad("search is longer than 200 characters"));
    }
    let idx = state.circuit_index().await?;
    let needle = q.search.trim().to_lowercase();
    let mut hits: Vec<usize> = (0..idx.list.len())
        .filter(|&i| needle.is_empty() || idx.haystack[i].contains(&needle))
        .collect();
    hits.sort_unstable_by(|&a, &b| {
        let o = compare(&idx, a, b, q.sort);
        if q.order == Order::Desc { o.reverse() } else { o }
    });
    let total = hits.len();
    let start = (q.page - 1).saturating_mul(q.per_page).min(total);
    let end = start.saturating_add(q.per_page).min(total);
    let page = Page {
        total,
        page: q.page,
        per_page: q.per_page,
        pages: total.div_ceil(q.per_page),
        items: hits[start..end].iter().map(|&i| &idx.list[i]).collect(),
    };
    Ok(Json(page).into_response())
}

async fn circuit(
    State(state): State<WebState>,
    Path(id): Path<String>,
) -> Result<Json<CircuitStat>, ApiError> {
    match state.backend().request(Command::CircuitStats { circuit: Some(id.clone()) }).await {
        Response::Circuits(list) => list
            .into_iter()
            .find(|c| c.id == id)
            .map(Json)
            .ok_or(ApiError::NotFound { what: format!("circuit {id:?}") }),
        other => Err(ApiError::from_response(other)),
    }
}

async fn circuit_flows(
    State(state): State<WebState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<lqos_bus::FlowEntry>>, ApiError> {
    match state.backend().request(Command::CircuitFlows { circuit: id.clone() }).await {
        Response::Flows(list) => Ok(Json(list)),
        Response::Error(lqos_bus::CommandError::Unavailable { .. }) => {
            Err(ApiError::NotFound { what: format!("circuit {id:?}") })
        }
        other => Err(ApiError::from_response(other)),
    }
}

#[derive(Deserialize)]
struct TopQuery {
    #[serde(default = "ten")]
    n: usize,
}
fn ten() -> usize {
    10
}

pub(crate) async fn fetch_top(state: &WebState, n: usize) -> Result<Vec<CircuitStat>, ApiError> {
    match state.backend().request(Command::TopCircuits { n }).await {
        Response::Circuits(list) => Ok(list),
        other => Err(ApiError::from_response(other)),
    }
}

async fn top(
    State(state): State<WebState>,
    q: Result<Query<TopQuery>, QueryRejection>,
) -> Result<Json<Vec<CircuitStat>>, ApiError> {
    let q = query(q)?;
    if q.n == 0 || q.n > 100 {
        return Err(ApiError::bad("n must be 1..=100"));
    }
    fetch_top(&state, q.n).await.map(Json)
}

/// A node with its children and utilization, for the tree page.
#[derive(Serialize)]
struct TreeNode {
    #[serde(flatten)]
    stat: NodeStat,
    children: Vec<String>,
    /// Current download rate / configured download ceil, 0..1+ (None without a ceil).
    utilization_down: Option<f64>,
    /// Same for upload.
    utilization_up: Option<f64>,
}

fn util(bps: u64, max_kbit: u64) -> Option<f64> {
    (max_kbit > 0).then(|| bps as f64 / (max_kbit as f64 * 1000.0))
}

pub(crate) async fn fetch_nodes(state: &WebState) -> Result<Vec<NodeStat>, ApiError> {
    match state.backend().request(Command::NodeStats).await {
        Response::Nodes(list) => Ok(list),
        other => Err(ApiError::from_response(other)),
    }
}

fn tree(nodes: Vec<NodeStat>) -> Vec<TreeNode> {
    let mut out: Vec<TreeNode> = nodes
        .into_iter()
        .map(|stat| TreeNode {
            utilization_down: util(stat.download_bps, stat.download_max_kbit),
            utilization_up: util(stat.upload_bps, stat.upload_max_kbit),
            stat,
            children: Vec::new(),
        })
        .collect();
    let pairs: Vec<(String, String)> = out
        .iter()
        .filter_map(|n| n.stat.parent.clone().map(|p| (p, n.stat.name.clone())))
        .collect();
    let index: std::collections::HashMap<String, usize> =
        out.iter().enumerate().map(|(i, n)| (n.stat.name.clone(), i)).collect();
    for (parent, child) in pairs {
        if let Some(&i) = index.get(&parent) {
            out[i].children.push(child);
        }
    }
    out
}

async fn nodes(State(state): State<WebState>) -> Result<Json<Vec<TreeNode>>, ApiError> {
    Ok(Json(tree(fetch_nodes(&state).await?)))
}

#[derive(Serialize)]
struct NodeDetail {
    node: TreeNode,
    path: Vec<String>,
    children: Vec<TreeNode>,
    circuits: Vec<CircuitStat>,
}

async fn node(
    State(state): State<WebState>,
    Path(name): Path<String>,
) -> Result<Json<NodeDetail>, ApiError> {
    let all = tree(fetch_nodes(&state).await?);
    let Some(me) = all.iter().position(|n| n.stat.name == name) else {
        return Err(ApiError::NotFound { what: format!("node {name:?}") });
    };
    let mut path = vec![name.clone()];
    let mut cur = all[me].stat.parent.clone();
    while let Some(p) = cur {
        if path.len() > 64 || path.contains(&p) {
            break;
        }
        cur = all.iter().find(|n| n.stat.name == p).and_then(|n| n.stat.parent.clone());
        path.push(p);
    }
    path.reverse();
    let circuits: Vec<CircuitStat> =
        state.circuits().await?.list.iter().filter(|c| c.parent == name).cloned().collect();
    let mut children = Vec::new();
    let mut node = None;
    for n in all {
        if n.stat.name == name {
            node = Some(n);
        } else if n.stat.parent.as_deref() == Some(name.as_str()) {
            children.push(n);
        }
    }
    let node = node.ok_or(ApiError::NotFound { what: format!("node {name:?}") })?;
    Ok(Json(NodeDetail { node, path, children, circuits }))
}

#[derive(Serialize)]
struct SchedulerView {
    scheduler: Option<lqos_bus::SchedulerState>,
    last_reload: Option<String>,
    last_apply_unix: Option<u64>,
    last_report: Option<ReloadReport>,
    warnings: Vec<String>,
}

async fn scheduler(State(state): State<WebState>) -> Result<Json<SchedulerView>, ApiError> {
    let s = fetch_status(&state).await?;
    Ok(Json(SchedulerView {
        scheduler: s.scheduler,
        last_reload: s.last_reload,
        last_apply_unix: s.last_apply_unix,
        last_report: state.last_reload(),
        warnings: s.warnings,
    }))
}

#[derive(Deserialize, Default)]
struct ReloadBody {
    #[serde(default)]
    full: bool,
}

/// Sends Reload and remembers the report.
pub(crate) async fn do_reload(state: &WebState, full: bool) -> Result<ReloadReport, ApiError> {
    let mode = if full { ReloadMode::Full } else { ReloadMode::Incremental };
    let answer = state.backend().request(Command::Reload { mode }).await;
    state.forget_circuits().await;
    match answer {
        Response::Reload(report) => {
            state.set_last_reload((*report).clone());
            Ok(*report)
        }
        other => Err(ApiError::from_response(other)),
    }
}

async fn reload(
    State(state): State<WebState>,
    Admin(who): Admin,
    b: Option<Json<ReloadBody>>,
) -> Result<Json<ReloadReport>, ApiError> {
    let full = b.map(|Json(b)| b.full).unwrap_or(false);
    tracing::info!(user = %who.username, full, "reload requested from the web");
    do_reload(&state, full).await.map(Json)
}

async fn dry_run(
    State(state): State<WebState>,
    Admin(_): Admin,
) -> Result<Json<ReloadReport>, ApiError> {
    match state.backend().request(Command::DryRun).await {
        Response::Reload(report) => Ok(Json(*report)),
        other => Err(ApiError::from_response(other)),
    }
}

/// The SSE stream: the shared tick (see `events`) once a second while the session stays
/// valid. The session is checked again before every tick (logout, password change or user
/// deletion end the stream). At most `max_streams_per_session` per session (429 beyond).
async fn events(
    State(state): State<WebState>,
    s: Session,
    peer: Peer,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let max = state.opts().max_streams_per_session;
    let Some(slot) = state.events().open(&s.id, max) else {
        return Err(ApiError::TooMany {
            message: format!("at most {max} live streams per session; close another tab"),
        });
    };
    let cookie = cookie_value(&headers, peer.secure).unwrap_or_default().to_owned();
    let rx = state.events().subscribe(&state);
    let seed = (state, cookie, s.username, rx, slot);
    let stream = stream::unfold(seed, |(state, cookie, user, mut rx, slot)| async move {
        rx.changed().await.ok()?;
        if state.auth().verify(&cookie).is_none() {
            tracing::info!(username = %user, "session ended: closing the event stream");
            return None;
        }
        let latest = rx.borrow_and_update().clone();
        let event = match latest {
            Some(json) => Event::default().event("tick").data(&*json),
            None => Event::default().comment("no tick yet"),
        };
        Some((Ok(event), (state, cookie, user, rx, slot)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
