//! Who is suffering: `GET /api/v1/worst` (circuits or nodes, worst first by p90 access RTT or
//! retransmit ratio over a window), `GET /api/v1/qoe/distribution` (circuits by p90 access
//! RTT) and `GET /api/v1/unknown` (unmapped addresses with traffic), answered by lqosd over the
//! bus. Any logged-in user may read them.
//!
//! Parameters are checked here, before anything reaches the bus: a bad value is a 400 naming
//! the parameter and the accepted values.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use lqos_bus::{
    Command, QoeDistribution, QoeWindow, Response, UNKNOWN_LIMIT_MAX, UnknownList, WORST_LIMIT_MAX,
    WorstBy, WorstKind, WorstList,
};
use serde::Deserialize;

use super::{ApiError, WebState};

pub(crate) fn routes() -> super::openapi::ApiRoutes {
    super::openapi::ApiRoutes::new()
        .route("/worst", get(worst))
        .route("/qoe/distribution", get(distribution))
        .route("/unknown", get(unknown))
}

/// Entries of a worst-first list unless `limit` says otherwise.
pub const DEFAULT_WORST_LIMIT: usize = 20;
/// Unknown addresses answered unless `limit` says otherwise.
pub const DEFAULT_UNKNOWN_LIMIT: usize = 50;

/// What to rank.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct WorstQuery {
    /// `rtt` (p90 access RTT, the default) or `retransmits` (retransmit ratio, both
    /// directions combined).
    #[param(value_type = Option<WorstBy>)]
    by: Option<String>,
    /// `10s`, `60s` (default), `1h` or `24h` (the last two from the history store).
    #[param(value_type = Option<QoeWindow>)]
    window: Option<String>,
    /// Entries, 1..=500 (default 20).
    #[param(value_type = Option<usize>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// `circuits` (default) or `nodes`.
    #[param(value_type = Option<WorstKind>)]
    kind: Option<String>,
}

/// A value shortened for an error message (it is the client's own text).
fn shown(v: &str) -> String {
    v.chars().take(32).collect()
}

fn parse_limit(v: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(v) = v else { return Ok(default) };
    match v.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::bad(format!("limit {:?} is not a number in 1..={max}", shown(v)))),
    }
}

fn parse_worst(q: Result<Query<WorstQuery>, QueryRejection>) -> Result<Command, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad(e.body_text()))?;
    let by = match q.by.as_deref() {
        None | Some("rtt") => WorstBy::Rtt,
        Some("retransmits") => WorstBy::Retransmits,
        Some(other) => {
            return Err(ApiError::bad(format!(
                "by {:?} is not one of rtt, retransmits",
                shown(other)
            )));
        }
    };
    let kind = match q.kind.as_deref() {
        None | Some("circuits") => WorstKind::Circuits,
        Some("nodes") => WorstKind::Nodes,
        Some(other) => {
            return Err(ApiError::bad(format!(
                "kind {:?} is not one of circuits, nodes",
                shown(other)
            )));
        }
    };
    let window = match q.window.as_deref() {
        None => QoeWindow::Secs60,
        Some(w) => QoeWindow::parse(w).ok_or_else(|| {
            let known: Vec<&str> = QoeWindow::ALL.iter().map(|w| w.as_str()).collect();
            ApiError::bad(format!("window {:?} is not one of {}", shown(w), known.join(", ")))
        })?,
    };
    let limit = parse_limit(q.limit.as_deref(), DEFAULT_WORST_LIMIT, WORST_LIMIT_MAX)?;
    Ok(Command::Worst { kind, by, window, limit })
}

/// Circuits or nodes worst first by p90 access RTT or retransmit ratio over a window; entries
/// with fewer samples than the answer's `min_samples` are left out.
#[utoipa::path(get, path = "/worst", tag = "insight", params(WorstQuery),
    responses((status = 200, description = "Worst first", body = WorstList),
        (status = 400, description = "A parameter is not one of its accepted values", body = super::error::ErrorBody),
        (status = 503, description = "lqosd unreachable, or history off for 1h/24h", body = super::error::ErrorBody)))]
pub(crate) async fn worst(
    State(state): State<WebState>,
    q: Result<Query<WorstQuery>, QueryRejection>,
) -> Result<Json<WorstList>, ApiError> {
    let cmd = parse_worst(q)?;
    match state.backend().request(cmd).await {
        Response::Worst(list) => Ok(Json(*list)),
        other => Err(ApiError::from_response(other)),
    }
}

/// Circuits by p90 access RTT over the last 60 s, in doubling buckets from 1 ms.
#[utoipa::path(get, path = "/qoe/distribution", tag = "insight",
    responses((status = 200, description = "The distribution", body = QoeDistribution)))]
pub(crate) async fn distribution(
    State(state): State<WebState>,
) -> Result<Json<QoeDistribution>, ApiError> {
    match state.backend().request(Command::QoeDistribution).await {
        Response::Distribution(d) => Ok(Json(*d)),
        other => Err(ApiError::from_response(other)),
    }
}

/// How many unknown addresses.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UnknownQuery {
    /// Entries, 1..=100 (default 50).
    #[param(value_type = Option<usize>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

/// Addresses with traffic that match no circuit (missing from ShapedDevices.csv?), busiest
/// first; sampled estimates.
#[utoipa::path(get, path = "/unknown", tag = "insight", params(UnknownQuery),
    responses((status = 200, description = "Unknown addresses", body = UnknownList),
        (status = 400, description = "Bad limit", body = super::error::ErrorBody)))]
pub(crate) async fn unknown(
    State(state): State<WebState>,
    q: Result<Query<UnknownQuery>, QueryRejection>,
) -> Result<Json<UnknownList>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad(e.body_text()))?;
    let limit = parse_limit(q.limit.as_deref(), DEFAULT_UNKNOWN_LIMIT, UNKNOWN_LIMIT_MAX)?;
    match state.backend().request(Command::UnknownAddresses { limit }).await {
        Response::Unknown(list) => Ok(Json(*list)),
        other => Err(ApiError::from_response(other)),
    }
}
