//! `GET /api/v1/circuits/{id}/history` and `GET /api/v1/nodes/{name}/history`: the stored
//! history of one circuit or node, answered by lqosd's history store over the bus.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use lqos_bus::{Command, HistoryKind, HistoryRange, HistorySeries, Response};
use serde::Deserialize;

use super::{ApiError, WebState};

pub(crate) fn routes() -> super::openapi::ApiRoutes {
    super::openapi::ApiRoutes::new()
        .route("/circuits/{id}/history", get(circuit_history))
        .route("/nodes/{name}/history", get(node_history))
}

/// The history range.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RangeQuery {
    /// `10m`, `1h` (default), `24h`, `7d`, `30d` or `90d`.
    #[param(value_type = Option<HistoryRange>)]
    range: Option<String>,
}

/// The `range` parameter: `10m`, `1h` (the default), `24h`, `7d`, `30d` or `90d`.
fn parse_range(q: Result<Query<RangeQuery>, QueryRejection>) -> Result<HistoryRange, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad(e.body_text()))?;
    match q.range.as_deref() {
        None => Ok(HistoryRange::Hour1),
        Some(r) => HistoryRange::parse(r).ok_or_else(|| {
            let known: Vec<&str> = HistoryRange::ALL.iter().map(|r| r.as_str()).collect();
            ApiError::bad(format!(
                "range {:?} is not one of {}",
                r.chars().take(32).collect::<String>(),
                known.join(", ")
            ))
        }),
    }
}

async fn fetch(
    state: &WebState,
    kind: HistoryKind,
    id: String,
    range: HistoryRange,
) -> Result<Json<HistorySeries>, ApiError> {
    match state.backend().request(Command::History { kind, id, range }).await {
        Response::History(series) => Ok(Json(*series)),
        other => Err(ApiError::from_response(other)),
    }
}

/// A circuit's stored history: throughput, RTT per path, retransmits, drops.
#[utoipa::path(get, path = "/circuits/{id}/history", tag = "history",
    params(("id" = String, Path, description = "Circuit ID"), RangeQuery),
    responses((status = 200, description = "The series (empty points when nothing was stored)", body = HistorySeries),
        (status = 400, description = "Unknown range", body = super::error::ErrorBody)))]
pub(crate) async fn circuit_history(
    State(state): State<WebState>,
    Path(id): Path<String>,
    q: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Json<HistorySeries>, ApiError> {
    let range = parse_range(q)?;
    fetch(&state, HistoryKind::Circuit, id, range).await
}

/// A node's stored history.
#[utoipa::path(get, path = "/nodes/{name}/history", tag = "history",
    params(("name" = String, Path, description = "Node name"), RangeQuery),
    responses((status = 200, description = "The series", body = HistorySeries),
        (status = 400, description = "Unknown range", body = super::error::ErrorBody)))]
pub(crate) async fn node_history(
    State(state): State<WebState>,
    Path(name): Path<String>,
    q: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Json<HistorySeries>, ApiError> {
    let range = parse_range(q)?;
    fetch(&state, HistoryKind::Node, name, range).await
}
