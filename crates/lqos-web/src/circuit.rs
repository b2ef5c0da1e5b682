//! `GET /api/v1/circuits/{id}/queue`: the queue statistics of one circuit (its HTB classes and
//! leaf qdiscs, both directions: drops, overlimits, backlog; CAKE tins or fq_codel counters),
//! read by lqosd from the kernel when asked. lqosd reuses an answer for a second and reads at
//! most a few circuits per second; past that budget this answers 429 with `Retry-After: 1`.
//! Any logged-in user (viewers too) may read it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use lqos_bus::{
    CakeQueue, CakeTinQueue, CircuitQueue, Command, CommandError, LeafQueue, QueueCounters,
    QueueDirection, Response,
};

use super::{ApiError, WebState};

pub(crate) fn routes() -> super::openapi::ApiRoutes {
    super::openapi::ApiRoutes::new().route("/circuits/{id}/queue", get(circuit_queue))
}

/// True for lqosd's "circuit … is not in the applied plan" (an unknown circuit, 404), as
/// opposed to lqosd itself being unavailable (503).
fn not_in_plan(e: &CommandError) -> bool {
    matches!(e, CommandError::Unavailable { message } if message.ends_with("is not in the applied plan"))
}

/// One circuit's queue statistics, both directions: HTB class counters and the leaf's (CAKE
/// tins or fq_codel), read from the kernel by lqosd on request.
#[utoipa::path(get, path = "/circuits/{id}/queue", tag = "live",
    params(("id" = String, Path, description = "Circuit ID")),
    responses((status = 200, description = "The queues", body = CircuitQueue),
        (status = 404, description = "No such circuit in the applied plan", body = super::error::ErrorBody),
        (status = 429, description = "lqosd's read budget is used up; `Retry-After: 1`", body = super::error::ErrorBody)))]
pub(crate) async fn circuit_queue(
    State(state): State<WebState>,
    Path(id): Path<String>,
) -> Result<HttpResponse, ApiError> {
    match state.backend().request(Command::CircuitQueue { circuit: id.clone() }).await {
        Response::Queue(q) if q.throttled => {
            let message = "lqosd is reading many queues right now; ask again in a second".into();
            let mut resp = ApiError::TooMany { message }.into_response();
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok(resp)
        }
        Response::Queue(q) => Ok(Json(*q).into_response()),
        Response::Error(e) if not_in_plan(&e) => {
            Err(ApiError::NotFound { what: format!("circuit {id:?}") })
        }
        other => Err(ApiError::from_response(other)),
    }
}

/// The demo backend's answer: download shaped by CAKE diffserv4 (four tins), upload by a
/// circuit class with the kernel's default leaf (what leaf `none` looks like). Numbers grow
/// with `seconds` so the page visibly refreshes.
pub(crate) fn demo_queue(circuit: &str, class: &str, seconds: u64, unix_ms: u64) -> CircuitQueue {
    let tin = |i: u64| CakeTinQueue {
        sent_packets: 40_000 * (i + 1) + seconds * 900,
        sent_bytes: 52_000_000 * (i + 1) + seconds * 1_200_000,
        dropped_packets: (3 - i.min(3)) * 7 + seconds / 10,
        ecn_marked_packets: (3 - i.min(3)) * 11 + seconds / 7,
        ack_drops: i * 5,
        backlog_bytes: if i == 1 { 4_542 } else { 0 },
        backlog_packets: if i == 1 { 3 } else { 0 },
        threshold_rate_bps: [6_250_000, 100_000_000, 50_000_000, 25_000_000][i as usize % 4],
        target_us: 5_000,
        interval_us: 100_000,
        peak_delay_us: 800 + 1_700 * i + (seconds % 5) * 100,
        avg_delay_us: 150 + 400 * i,
        base_delay_us: 12,
        sparse_flows: i + 1,
        bulk_flows: i % 2,
        unresponsive_flows: 0,
    };
    let tins: Vec<CakeTinQueue> = (0..4).map(tin).collect();
    let mut total = CakeTinQueue { target_us: 5_000, interval_us: 100_000, ..Default::default() };
    for t in &tins {
        total.sent_packets += t.sent_packets;
        total.sent_bytes += t.sent_bytes;
        total.dropped_packets += t.dropped_packets;
        total.ecn_marked_packets += t.ecn_marked_packets;
        total.ack_drops += t.ack_drops;
        total.backlog_bytes += t.backlog_bytes;
        total.backlog_packets += t.backlog_packets;
        total.sparse_flows += t.sparse_flows;
        total.bulk_flows += t.bulk_flows;
        total.peak_delay_us = total.peak_delay_us.max(t.peak_delay_us);
        total.avg_delay_us = total.avg_delay_us.max(t.avg_delay_us);
    }
    let down_counters = QueueCounters {
        bytes: total.sent_bytes,
        packets: total.sent_packets,
        drops: total.dropped_packets,
        overlimits: 0,
        requeues: 0,
        backlog_bytes: total.backlog_bytes,
        backlog_packets: total.backlog_packets,
    };
    let up_counters = QueueCounters {
        bytes: 9_000_000 + seconds * 150_000,
        packets: 30_000 + seconds * 300,
        drops: seconds / 30,
        overlimits: 120 + seconds,
        ..Default::default()
    };
    let up_class = class.split_once(':').map(|(_, minor)| format!("2:{minor}"));
    CircuitQueue {
        circuit: circuit.to_string(),
        read_unix_ms: unix_ms,
        throttled: false,
        directions: vec![
            QueueDirection {
                direction: "download".into(),
                interface: "eth1".into(),
                class: class.to_string(),
                class_stats: Some(QueueCounters { overlimits: 340 + seconds, ..down_counters }),
                leaf: Some(LeafQueue {
                    kind: "cake".into(),
                    handle: "8001:".into(),
                    counters: down_counters,
                    cake: Some(CakeQueue {
                        capacity_estimate_bps: 0,
                        memory_used: 65_536,
                        memory_limit: 4 << 20,
                        tins,
                        total,
                    }),
                    fq_codel: None,
                }),
            },
            QueueDirection {
                direction: "upload".into(),
                interface: "eth0".into(),
                class: up_class.unwrap_or_else(|| class.to_string()),
                class_stats: Some(up_counters),
                leaf: None,
            },
        ],
        note: None,
    }
}
