//! `/metrics` in the Prometheus text format (version 0.0.4).
//!
//! Series (all prefixed `lqos_`):
//! * `build_info{version}` 1; `up` 1 when lqosd answered Status.
//! * `download_bps`, `upload_bps`, `shaped_download_bps`, `shaped_upload_bps` (gauges),
//!   `drops_total`, `circuits`, `nodes`, `mappings`, `queues`, `warnings`,
//!   `last_apply_timestamp_seconds`, `uptime_seconds`.
//! * `scheduler_info{phase,integration}` 1, `scheduler_last_run_timestamp_seconds`,
//!   `scheduler_next_run_timestamp_seconds`, `scheduler_last_result_ok` (1/0).
//! * Per circuit (label `circuit` = Circuit ID, `direction` = `down`/`up`):
//!   `circuit_bytes_total`, `circuit_packets_total`, `circuit_rate_bps`; `circuit_drops_total`
//!   (label `circuit`).
//! * Per node (label `node`, `direction`): `node_rate_bps`, `node_max_bps`; `node_drops_total`.
//!
//! Cardinality bound: only the [`MAX_CIRCUIT_SERIES`] circuits with the most bytes (down + up)
//! are exported (7 series each, so at most 7,000 circuit series), plus every node (5 series
//! each); `circuits_exported` says how many circuits made the cut.
//!
//! Settings: [`super::WebOptions::metrics_enabled`] (false → 404) and
//! [`super::WebOptions::metrics_token`] (set → `Authorization: Bearer <token>` required).
//! lqos_web fills them with [`settings`]: lqos.conf `[metrics]`, overridden by the environment.

use std::fmt::Write;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use lqos_bus::{CircuitStat, DaemonStatus, NodeStat};

use super::auth::secret_eq;
use super::{ApiError, WebState};

/// Most circuits exported per scrape.
pub const MAX_CIRCUIT_SERIES: usize = 1000;

/// Environment variable switching `/metrics`: `off` disables it, any other non-empty value
/// enables it; wins over `[metrics] enabled`.
pub const METRICS_ENV: &str = "LQOS_METRICS";
/// Environment variable holding the `/metrics` bearer token; when non-empty it wins over
/// `[metrics] token`.
pub const METRICS_TOKEN_ENV: &str = "LQOS_METRICS_TOKEN";

/// `(enabled, token)` for `/metrics`: lqos.conf `[metrics]`, with [`METRICS_ENV`] and
/// [`METRICS_TOKEN_ENV`] (read through `env`) winning when set and non-empty.
pub fn settings(
    config: &lqos_config::MetricsConfig,
    env: impl Fn(&str) -> Option<String>,
) -> (bool, Option<String>) {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    let enabled = set(METRICS_ENV).map_or(config.enabled, |v| v != "off");
    let token = set(METRICS_TOKEN_ENV).or_else(|| config.token.clone());
    (enabled, token)
}

pub(crate) fn routes() -> Router<WebState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<WebState>, headers: HeaderMap) -> HttpResponse {
    if !state.opts().metrics_enabled {
        return ApiError::NotFound { what: "/metrics (disabled)".into() }.into_response();
    }
    if let Some(token) = &state.opts().metrics_token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !secret_eq(sent, token) {
            return (StatusCode::UNAUTHORIZED, "metrics token required\n").into_response();
        }
    }
    let status = super::api::fetch_status(&state).await.ok();
    let circuits = state.circuits().await.ok();
    let nodes = super::api::fetch_nodes(&state).await.ok();
    let text =
        render(status.as_ref(), circuits.as_deref().map(|i| i.list.as_slice()), nodes.as_deref());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// Escapes a label value.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP lqos_{name} {help}\n# TYPE lqos_{name} {kind}");
}

fn one(out: &mut String, name: &str, kind: &str, help: &str, v: u64) {
    head(out, name, kind, help);
    let _ = writeln!(out, "lqos_{name} {v}");
}

/// Renders the whole exposition. Pure, for tests.
pub fn render(
    status: Option<&DaemonStatus>,
    circuits: Option<&[CircuitStat]>,
    nodes: Option<&[NodeStat]>,
) -> String {
    let mut out = String::with_capacity(64 * 1024);
    head(&mut out, "build_info", "gauge", "lqosd build.");
    let _ = writeln!(out, "lqos_build_info{{version=\"{}\"}} 1", esc(env!("CARGO_PKG_VERSION")));
    one(&mut out, "up", "gauge", "1 when lqosd answered.", u64::from(status.is_some()));
    if let Some(s) = status {
        one(&mut out, "download_bps", "gauge", "Total download rate, bits/s.", s.download_bps);
        one(&mut out, "upload_bps", "gauge", "Total upload rate, bits/s.", s.upload_bps);
        one(
            &mut out,
            "shaped_download_bps",
            "gauge",
            "Download rate of mapped circuits, bits/s.",
            s.shaped_download_bps,
        );
        one(
            &mut out,
            "shaped_upload_bps",
            "gauge",
            "Upload rate of mapped circuits, bits/s.",
            s.shaped_upload_bps,
        );
        one(&mut out, "drops_total", "counter", "Queue drops across all classes.", s.drops);
        one(&mut out, "circuits", "gauge", "Circuits in the applied plan.", s.circuits as u64);
        one(&mut out, "nodes", "gauge", "Nodes in the applied plan.", s.nodes as u64);
        one(&mut out, "mappings", "gauge", "IP mappings in force.", s.mappings as u64);
        one(&mut out, "queues", "gauge", "Shaping queues per direction.", u64::from(s.queues));
        one(&mut out, "warnings", "gauge", "Current warnings.", s.warnings.len() as u64);
        one(&mut out, "uptime_seconds", "gauge", "Seconds since lqosd started.", s.uptime_secs);
        if let Some(t) = s.last_apply_unix {
            one(
                &mut out,
                "last_apply_timestamp_seconds",
                "gauge",
                "Unix time of the last successful apply.",
                t,
            );
        }
        if let Some(sch) = &s.scheduler {
            head(&mut out, "scheduler_info", "gauge", "Scheduler phase and integration.");
            let _ = writeln!(
                out,
                "lqos_scheduler_info{{phase=\"{}\",integration=\"{}\"}} 1",
                esc(&sch.phase),
                esc(&sch.integration)
            );
            if let Some(t) = sch.last_run_unix {
                one(
                    &mut out,
                    "scheduler_last_run_timestamp_seconds",
                    "gauge",
                    "Last finished cycle.",
                    t,
                );
            }
            if let Some(t) = sch.next_run_unix {
                one(
                    &mut out,
                    "scheduler_next_run_timestamp_seconds",
                    "gauge",
                    "Next planned cycle.",
                    t,
                );
            }
            if let Some(r) = &sch.last_result {
                one(
                    &mut out,
                    "scheduler_last_result_ok",
                    "gauge",
                    "1 when the last cycle succeeded.",
                    u64::from(r == "ok"),
                );
            }
        }
    }
    if let Some(list) = circuits {
        let mut top: Vec<&CircuitStat> = list.iter().collect();
        top.sort_unstable_by(|a, b| {
            (b.download_bytes + b.upload_bytes)
                .cmp(&(a.download_bytes + a.upload_bytes))
                .then_with(|| a.id.cmp(&b.id))
        });
        top.truncate(MAX_CIRCUIT_SERIES);
        one(
            &mut out,
            "circuits_exported",
            "gauge",
            "Circuits exported here (top by bytes).",
            top.len() as u64,
        );
        type Pick = fn(&CircuitStat) -> (u64, u64);
        let series: [(&str, &str, &str, Pick); 3] = [
            ("circuit_bytes_total", "counter", "Bytes per circuit.", |c| {
                (c.download_bytes, c.upload_bytes)
            }),
            ("circuit_packets_total", "counter", "Packets per circuit.", |c| {
                (c.download_packets, c.upload_packets)
            }),
            ("circuit_rate_bps", "gauge", "Current rate per circuit, bits/s.", |c| {
                (c.download_bps, c.upload_bps)
            }),
        ];
        for (name, kind, help, pick) in series {
            head(&mut out, name, kind, help);
            for c in &top {
                let (d, u) = pick(c);
                let id = esc(&c.id);
                let _ = writeln!(out, "lqos_{name}{{circuit=\"{id}\",direction=\"down\"}} {d}");
                let _ = writeln!(out, "lqos_{name}{{circuit=\"{id}\",direction=\"up\"}} {u}");
            }
        }
        head(&mut out, "circuit_drops_total", "counter", "Queue drops per circuit.");
        for c in &top {
            let _ =
                writeln!(out, "lqos_circuit_drops_total{{circuit=\"{}\"}} {}", esc(&c.id), c.drops);
        }
    }
    if let Some(nodes) = nodes {
        head(&mut out, "node_rate_bps", "gauge", "Current rate per node, bits/s.");
        for n in nodes {
            let name = esc(&n.name);
            let _ = writeln!(
                out,
                "lqos_node_rate_bps{{node=\"{name}\",direction=\"down\"}} {}",
                n.download_bps
            );
            let _ = writeln!(
                out,
                "lqos_node_rate_bps{{node=\"{name}\",direction=\"up\"}} {}",
                n.upload_bps
            );
        }
        head(&mut out, "node_max_bps", "gauge", "Configured ceiling per node, bits/s.");
        for n in nodes {
            let name = esc(&n.name);
            let _ = writeln!(
                out,
                "lqos_node_max_bps{{node=\"{name}\",direction=\"down\"}} {}",
                n.download_max_kbit * 1000
            );
            let _ = writeln!(
                out,
                "lqos_node_max_bps{{node=\"{name}\",direction=\"up\"}} {}",
                n.upload_max_kbit * 1000
            );
        }
        head(&mut out, "node_drops_total", "counter", "Queue drops per node.");
        for n in nodes {
            let _ = writeln!(out, "lqos_node_drops_total{{node=\"{}\"}} {}", esc(&n.name), n.drops);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lqos_config::MetricsConfig;

    #[test]
    fn settings_come_from_the_config_and_the_environment_wins() {
        let conf = MetricsConfig { enabled: false, token: Some("from-conf".into()) };
        let none = |_: &str| None;
        assert_eq!(settings(&conf, none), (false, Some("from-conf".into())));
        assert_eq!(settings(&MetricsConfig::default(), none), (true, None));
        let env = |name: &str| match name {
            METRICS_ENV => Some("on".to_string()),
            METRICS_TOKEN_ENV => Some("from-env".to_string()),
            _ => None,
        };
        assert_eq!(settings(&conf, env), (true, Some("from-env".into())));
        let off = |name: &str| (name == METRICS_ENV).then(|| "off".to_string());
        assert_eq!(settings(&MetricsConfig::default(), off), (false, None));
        // Empty variables count as unset.
        let empty = |_: &str| Some(String::new());
        assert_eq!(settings(&conf, empty), (false, Some("from-conf".into())));
    }

    #[test]
    fn bounded_and_escaped() {
        let circuits: Vec<CircuitStat> = (0..1500)
            .map(|i| CircuitStat { id: format!("c\"{i}"), download_bytes: i, ..Default::default() })
            .collect();
        let text = render(None, Some(&circuits), None);
        assert!(text.contains("lqos_up 0"));
        assert!(text.contains("lqos_circuits_exported 1000"));
        assert_eq!(text.matches("lqos_circuit_drops_total{").count(), 1000);
        assert!(text.contains("circuit=\"c\\\"1499\""));
        assert!(!text.contains("circuit=\"c\\\"499\""));
    }
}
