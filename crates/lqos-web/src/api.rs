//! `/api/v1` handlers. Each one turns into bus commands; none touches the kernel.

use std::cmp::Ordering;
use std::convert::Infallible;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use futures_util::stream::{self, Stream};
use lqos_bus::{CircuitStat, Command, DaemonStatus, NodeStat, ReloadMode, ReloadReport, Response};
use serde::{Deserialize, Serialize};

use super::auth::{Admin, ClientAddr, Session, cookie_value};
use super::error::ErrorBody;
use super::front::Peer;
use super::openapi::ApiRoutes;
use super::{ApiError, WebState};

/// Every `/api/v1` route. Add new modules' [`ApiRoutes`] here and their handlers to the
/// `paths(...)` list of [`super::openapi::ApiDoc`].
pub(crate) fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi_json))
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
        .merge(super::useradmin::routes())
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

/// Liveness of lqos_web itself (not of lqosd: see `/status`).
#[utoipa::path(get, path = "/health", tag = "meta",
    responses((status = 200, description = "lqos_web answers", body = String, content_type = "text/plain")))]
pub(crate) async fn health() -> &'static str {
    "ok"
}

/// This document, generated from the handlers.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub(crate) async fn openapi_json() -> impl IntoResponse {
    super::openapi::json()
}

/// The logged-in user, role and CSRF token.
#[utoipa::path(get, path = "/session", tag = "session",
    responses((status = 200, description = "The session", body = Session)))]
pub(crate) async fn session(s: Session) -> Json<Session> {
    Json(s)
}

/// Credentials.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct LoginBody {
    username: String,
    #[schema(format = Password)]
    password: String,
}

fn with_cookie(cookie: String, body: impl IntoResponse) -> HttpResponse {
    let mut resp = body.into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// Logs in: sets the session cookie (`HttpOnly; SameSite=Strict`) and answers the session.
/// Attempts are throttled per client and per username (429 with `Retry-After`).
#[utoipa::path(post, path = "/login", tag = "session", request_body = LoginBody,
    responses((status = 200, description = "Logged in; `Set-Cookie` carries the session", body = Session),
        (status = 401, description = "Wrong username or password", body = ErrorBody),
        (status = 409, description = "No users yet: use the setup link", body = ErrorBody),
        (status = 429, description = "Too many attempts", body = ErrorBody)))]
pub(crate) async fn login(
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

/// Ends this session (server-side too) and clears the cookie.
#[utoipa::path(post, path = "/logout", tag = "session",
    responses((status = 200, description = "Logged out", body = Object)))]
pub(crate) async fn logout(
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

/// Whether first-run setup (creating the first admin with the logged token) is open.
#[utoipa::path(get, path = "/setup/status", tag = "session",
    responses((status = 200, description = "`{\"setup_required\": bool}`", body = Object)))]
pub(crate) async fn setup_status(State(state): State<WebState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "setup_required": state.auth().setup_token().is_some() }))
}

/// The first admin.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct SetupBody {
    /// The one-time token from lqos_web's log.
    token: String,
    username: String,
    #[schema(format = Password)]
    password: String,
}

/// Creates the first admin with the one-time setup token and logs them in.
#[utoipa::path(post, path = "/setup", tag = "session", request_body = SetupBody,
    responses((status = 200, description = "Admin created and logged in", body = Session),
        (status = 403, description = "Wrong, used or expired token", body = ErrorBody),
        (status = 409, description = "Setup already done", body = ErrorBody),
        (status = 422, description = "Username or password breaks the rules", body = ErrorBody)))]
pub(crate) async fn setup(
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

/// lqosd's state: interfaces, queues, counts, rates, scheduler, warnings.
#[utoipa::path(get, path = "/status", tag = "live",
    responses((status = 200, description = "Daemon status", body = DaemonStatus),
        (status = 503, description = "lqosd is not running", body = ErrorBody)))]
pub(crate) async fn status(State(state): State<WebState>) -> Result<Json<DaemonStatus>, ApiError> {
    fetch_status(&state).await.map(Json)
}

/// Sort keys of the circuit list.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SortKey {
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

/// Sort order.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Order {
    #[default]
    Asc,
    Desc,
}

/// Search, sort and page of the circuit list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CircuitQuery {
    /// Case-insensitive substring of ID, name, parent or an address (at most 200 characters).
    #[serde(default)]
    search: String,
    /// Sort key (default `name`).
    #[serde(default)]
    sort: SortKey,
    /// `asc` (default) or `desc`.
    #[serde(default)]
    order: Order,
    /// Page, from 1.
    #[serde(default = "one")]
    #[param(minimum = 1, default = 1)]
    page: usize,
    /// Circuits per page, 1..=500.
    #[serde(default = "fifty")]
    #[param(minimum = 1, maximum = 500, default = 50)]
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

/// One page of circuits.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CircuitPage)]
struct Page<'a> {
    /// Circuits matching the search.
    total: usize,
    page: usize,
    per_page: usize,
    pages: usize,
    #[schema(value_type = Vec<CircuitStat>)]
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

/// Circuits with live numbers: search, sort, pages.
#[utoipa::path(get, path = "/circuits", tag = "live", params(CircuitQuery),
    responses((status = 200, description = "One page", body = Page)))]
pub(crate) async fn circuits(
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

/// One circuit's live numbers and TCP quality.
#[utoipa::path(get, path = "/circuits/{id}", tag = "live",
    params(("id" = String, Path, description = "Circuit ID")),
    responses((status = 200, description = "The circuit", body = CircuitStat),
        (status = 404, description = "No such circuit", body = ErrorBody)))]
pub(crate) async fn circuit(
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

/// The busiest flows of one circuit (by bytes).
#[utoipa::path(get, path = "/circuits/{id}/flows", tag = "live",
    params(("id" = String, Path, description = "Circuit ID")),
    responses((status = 200, description = "Flows, busiest first", body = [lqos_bus::FlowEntry]),
        (status = 404, description = "No such circuit", body = ErrorBody)))]
pub(crate) async fn circuit_flows(
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

/// How many circuits.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TopQuery {
    /// 1..=100 (default 10).
    #[serde(default = "ten")]
    #[param(minimum = 1, maximum = 100, default = 10)]
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

/// The busiest circuits by current rate.
#[utoipa::path(get, path = "/top", tag = "live", params(TopQuery),
    responses((status = 200, description = "Busiest first", body = [CircuitStat])))]
pub(crate) async fn top(
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
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TreeNode {
    #[serde(flatten)]
    stat: NodeStat,
    /// Names of the child nodes.
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

/// Every node (site/AP) with live rates, utilization and children.
#[utoipa::path(get, path = "/nodes", tag = "live",
    responses((status = 200, description = "All nodes", body = [TreeNode])))]
pub(crate) async fn nodes(State(state): State<WebState>) -> Result<Json<Vec<TreeNode>>, ApiError> {
    Ok(Json(tree(fetch_nodes(&state).await?)))
}

/// One node with its path from the root, child nodes and attached circuits.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct NodeDetail {
    node: TreeNode,
    /// Names from the top-level node down to this one.
    path: Vec<String>,
    children: Vec<TreeNode>,
    /// Circuits directly under this node.
    circuits: Vec<CircuitStat>,
}

/// One node.
#[utoipa::path(get, path = "/nodes/{name}", tag = "live",
    params(("name" = String, Path, description = "Node name")),
    responses((status = 200, description = "The node", body = NodeDetail),
        (status = 404, description = "No such node", body = ErrorBody)))]
pub(crate) async fn node(
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

/// The scheduler's state and the last reload.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SchedulerView {
    scheduler: Option<lqos_bus::SchedulerState>,
    last_reload: Option<String>,
    last_apply_unix: Option<u64>,
    last_report: Option<ReloadReport>,
    warnings: Vec<String>,
}

/// The scheduler's state, the last reload and its report.
#[utoipa::path(get, path = "/scheduler", tag = "reload",
    responses((status = 200, description = "Scheduler view", body = SchedulerView)))]
pub(crate) async fn scheduler(
    State(state): State<WebState>,
) -> Result<Json<SchedulerView>, ApiError> {
    let s = fetch_status(&state).await?;
    Ok(Json(SchedulerView {
        scheduler: s.scheduler,
        last_reload: s.last_reload,
        last_apply_unix: s.last_apply_unix,
        last_report: state.last_reload(),
        warnings: s.warnings,
    }))
}

/// Reload options.
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub(crate) struct ReloadBody {
    /// Tear the tree down and build it again instead of applying the differences.
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

/// Asks lqosd to reload the inputs and apply the differences (admin).
#[utoipa::path(post, path = "/reload", tag = "reload", request_body(content = Option<ReloadBody>),
    responses((status = 200, description = "The reload report", body = ReloadReport),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "Inputs invalid: nothing changed (diagnostics)", body = ErrorBody)))]
pub(crate) async fn reload(
    State(state): State<WebState>,
    Admin(who): Admin,
    b: Option<Json<ReloadBody>>,
) -> Result<Json<ReloadReport>, ApiError> {
    let full = b.map(|Json(b)| b.full).unwrap_or(false);
    tracing::info!(user = %who.username, full, "reload requested from the web");
    do_reload(&state, full).await.map(Json)
}

/// What a reload would change, without applying it (admin).
#[utoipa::path(post, path = "/dry-run", tag = "reload",
    responses((status = 200, description = "The report of the would-be reload", body = ReloadReport),
        (status = 403, description = "Not an admin", body = ErrorBody)))]
pub(crate) async fn dry_run(
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
/// Live updates as Server-Sent Events: event `tick` every second with `{status, top, error}`.
/// The stream ends when the session does (logout, password change, role change, deletion).
#[utoipa::path(get, path = "/events", tag = "live",
    responses((status = 200, description = "An SSE stream of `tick` events", body = String, content_type = "text/event-stream"),
        (status = 429, description = "Too many streams for this session", body = ErrorBody)))]
pub(crate) async fn events(
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
