//! `/metrics` in the Prometheus text format (version 0.0.4).
//!
//! Series (all prefixed `lqos_`):
//! * `build_info{version}` 1; `up` 1 when lqosd answered Status.
//! * `download_bps`, `upload_bps`, `shaped_download_bps`, `shaped_upload_bps` (gauges),
//!   `drops_total`, `circuits`, `nodes`, `mappings`, `queues`, `warnings`,
//!   `last_apply_timestamp_seconds`, `uptime_seconds`, `history_bytes` (when history is on).
//! * Data plane (once lqosd has read it): `xdp_flow_table_entries`, `xdp_flows_live` (gauges),
//!   `xdp_flows_created_total`, `xdp_untracked_packets_total` (packets of flows the full flow
//!   table could not track), `xdp_flows_over_budget_total`, `xdp_rtt_samples_total`, `xdp_cache_misses_total`,
//!   `xdp_trie_lookups_total`, `xdp_unknown_samples_lost_total`, `xdp_no_metadata_total`.
//! * `scheduler_info{phase,integration}` 1, `scheduler_last_run_timestamp_seconds`,
//!   `scheduler_next_run_timestamp_seconds`, `scheduler_last_result_ok` (1/0).
//! * Per circuit (label `circuit_id` = Circuit ID, `direction` = `down`/`up`):
//!   `circuit_bytes_total`, `circuit_packets_total`, `circuit_rate_bps`; `circuit_drops_total`
//!   (label `circuit_id`). Every circuit series uses `circuit_id`, the label the TCP series
//!   below were given by the issue-11 contract (before, these four used `circuit`).
//! * Per node (label `node`, `direction`): `node_rate_bps` (throughput), `node_max_bps`
//!   (configured ceiling); `node_drops_total`. A node name that repeats (network.json forbids
//!   it) is exported once, so no scrape ever carries a duplicate series.
//!
//! * TCP quality (issue 11; names are a contract for dashboards and alert rules), per circuit
//!   (label `circuit_id`) and per node (label `node`):
//!   `circuit_tcp_rtt_seconds{circuit_id,path="access"|"upstream",quantile="0.5"|"0.9"|"0.99"}`,
//!   a summary whose quantiles cover the last 60 s (absent when the window has no sample) and
//!   whose `_count`/`_sum` are cumulative; `circuit_tcp_retransmits_total{circuit_id,direction}`,
//!   `circuit_tcp_packets_total{circuit_id,direction}`; the same as `node_tcp_*` with `node`.
//!   Only circuits and nodes that have seen TCP appear.
//!
//! Cardinality bound: only the [`MAX_CIRCUIT_SERIES`] circuits with the most bytes (down + up)
//! are exported (7 series each plus at most 14 TCP series, so at most 21,000 circuit series),
//! plus every node (5 series each plus at most 14 TCP series); `circuits_exported` says how
//! many circuits made the cut.
//!
//! Access (not public by default): [`super::WebOptions::metrics_enabled`] (false → 404);
//! with [`super::WebOptions::metrics_token`] set, `Authorization: Bearer <token>` is required
//! from everyone (compared in constant time, length included); without a token only clients
//! on this host (loopback; behind a trusted proxy, the forwarded client) may read it, unless
//! [`super::WebOptions::metrics_public`] (`[metrics] public = true`) opens it to all.
//! lqos_web fills them with [`settings`]: lqos.conf `[metrics]`, overridden by the environment.

use std::fmt::Write;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use lqos_bus::{CircuitStat, DaemonStatus, DataplaneHealth, NodeStat, Qoe, RttSummary};

use super::auth::secret_eq;
use super::front::Peer;
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

async fn metrics(State(state): State<WebState>, peer: Peer, headers: HeaderMap) -> HttpResponse {
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
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "metrics token required\n",
            )
                .into_response();
        }
    } else if !state.opts().metrics_public && !peer.is_local() {
        return (
            StatusCode::FORBIDDEN,
            "/metrics is served to this host only; set [metrics] token (or public = true) in \
             lqos.conf to scrape it from elsewhere\n",
        )
            .into_response();
    }
    let status = super::api::fetch_status(&state).await.ok();
    let circuits = state.circuits().await.ok();
    let nodes = super::api::fetch_nodes(&state).await.ok();
    let text =
        render(status.as_ref(), circuits.as_deref().map(|i| i.list.as_slice()), nodes.as_deref());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// Escapes a label value as the text format wants: backslash, double quote and line feed are
/// the only characters with an escape; everything else (UTF-8, tabs, carriage returns) is
/// legal as it is.
fn esc(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A sample value: Prometheus spells the special floats `NaN`, `+Inf` and `-Inf`.
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP lqos_{name} {help}\n# TYPE lqos_{name} {kind}");
}

fn one(out: &mut String, name: &str, kind: &str, help: &str, v: u64) {
    head(out, name, kind, help);
    let _ = writeln!(out, "lqos_{name} {v}");
}

/// The data plane's own counters (`xdp_*`).
fn dataplane(out: &mut String, d: &DataplaneHealth) {
    let series: [(&str, &str, &str, u64); 10] = [
        ("xdp_flow_table_entries", "gauge", "Entries of the flow table.", d.flow_capacity),
        ("xdp_flows_live", "gauge", "Flows seen in the last few sweeps.", d.flows_live),
        ("xdp_flows_created_total", "counter", "Flows created.", d.flows_created),
        (
            "xdp_untracked_packets_total",
            "counter",
            "Packets of flows that found no room in the flow table (no RTT or retransmit samples; raise LQOS_MAX_FLOWS when it grows).",
            d.untracked_packets,
        ),
        (
            "xdp_flows_over_budget_total",
            "counter",
            "New flows refused because their circuit opened its share of the flow table this sweep interval (a flood from or against one subscriber).",
            d.flows_over_budget,
        ),
        ("xdp_rtt_samples_total", "counter", "TCP RTT samples taken.", d.rtt_samples),
        ("xdp_cache_misses_total", "counter", "Classification-cache misses.", d.cache_misses),
        (
            "xdp_trie_lookups_total",
            "counter",
            "Cache misses answered by the LPM trie.",
            d.trie_lookups,
        ),
        (
            "xdp_unknown_samples_lost_total",
            "counter",
            "Unmapped-address samples lost to a full table.",
            d.unknown_samples_lost,
        ),
        (
            "xdp_no_metadata_total",
            "counter",
            "Frames tc classified without XDP metadata.",
            d.no_metadata,
        ),
    ];
    for (name, kind, help, v) in series {
        one(out, name, kind, help, v);
    }
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
        if let Some(b) = s.history_bytes {
            one(&mut out, "history_bytes", "gauge", "Bytes on disk of the history store.", b);
        }
        if let Some(t) = s.last_apply_unix {
            one(
                &mut out,
                "last_apply_timestamp_seconds",
                "gauge",
                "Unix time of the last successful apply.",
                t,
            );
        }
        if let Some(d) = &s.dataplane {
            dataplane(&mut out, d);
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
        let mut seen = std::collections::HashSet::with_capacity(list.len());
        top.retain(|c| seen.insert(c.id.as_str()));
        top.sort_unstable_by(|a, b| {
            (b.download_bytes.saturating_add(b.upload_bytes))
                .cmp(&(a.download_bytes.saturating_add(a.upload_bytes)))
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
                let _ = writeln!(out, "lqos_{name}{{circuit_id=\"{id}\",direction=\"down\"}} {d}");
                let _ = writeln!(out, "lqos_{name}{{circuit_id=\"{id}\",direction=\"up\"}} {u}");
            }
        }
        head(&mut out, "circuit_drops_total", "counter", "Queue drops per circuit.");
        for c in &top {
            let _ = writeln!(
                out,
                "lqos_circuit_drops_total{{circuit_id=\"{}\"}} {}",
                esc(&c.id),
                c.drops
            );
        }
        let tcp: Vec<(String, &Qoe)> = top
            .iter()
            .filter_map(|c| c.qoe.as_ref().map(|q| (format!("circuit_id=\"{}\"", esc(&c.id)), q)))
            .collect();
        tcp_series(&mut out, "circuit", &tcp);
    }
    if let Some(nodes) = nodes {
        let mut seen = std::collections::HashSet::with_capacity(nodes.len());
        let nodes: Vec<&NodeStat> = nodes.iter().filter(|n| seen.insert(n.name.as_str())).collect();
        head(&mut out, "node_rate_bps", "gauge", "Current rate per node, bits/s.");
        for n in &nodes {
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
        for n in &nodes {
            let name = esc(&n.name);
            let _ = writeln!(
                out,
                "lqos_node_max_bps{{node=\"{name}\",direction=\"down\"}} {}",
                n.download_max_kbit.saturating_mul(1000)
            );
            let _ = writeln!(
                out,
                "lqos_node_max_bps{{node=\"{name}\",direction=\"up\"}} {}",
                n.upload_max_kbit.saturating_mul(1000)
            );
        }
        head(&mut out, "node_drops_total", "counter", "Queue drops per node.");
        for n in &nodes {
            let _ = writeln!(out, "lqos_node_drops_total{{node=\"{}\"}} {}", esc(&n.name), n.drops);
        }
        let tcp: Vec<(String, &Qoe)> = nodes
            .iter()
            .filter_map(|n| n.qoe.as_ref().map(|q| (format!("node=\"{}\"", esc(&n.name)), q)))
            .collect();
        tcp_series(&mut out, "node", &tcp);
    }
    out
}

/// The TCP-quality series of `kind` (`circuit` or `node`) for `(label, qoe)` pairs.
fn tcp_series(out: &mut String, kind: &str, list: &[(String, &Qoe)]) {
    if list.is_empty() {
        return;
    }
    head(
        out,
        &format!("{kind}_tcp_rtt_seconds"),
        "summary",
        "TCP round-trip time from TCP timestamps; quantiles over the last 60 s, count and sum since the counter slot was assigned.",
    );
    for (label, q) in list {
        let paths: [(&str, Option<&RttSummary>, u64, f64); 2] = [
            (
                "access",
                q.rtt_ms.access.as_ref(),
                q.rtt_total.access_samples,
                q.rtt_total.access_sum_ms,
            ),
            (
                "upstream",
                q.rtt_ms.upstream.as_ref(),
                q.rtt_total.upstream_samples,
                q.rtt_total.upstream_sum_ms,
            ),
        ];
        for (path, window, count, sum_ms) in paths {
            if let Some(w) = window {
                for (quantile, ms) in [("0.5", w.p50), ("0.9", w.p90), ("0.99", w.p99)] {
                    let _ = writeln!(
                        out,
                        "lqos_{kind}_tcp_rtt_seconds{{{label},path=\"{path}\",quantile=\"{quantile}\"}} {}",
                        float(ms / 1000.0)
                    );
                }
            }
            let _ = writeln!(
                out,
                "lqos_{kind}_tcp_rtt_seconds_sum{{{label},path=\"{path}\"}} {}",
                float(sum_ms / 1000.0)
            );
            let _ = writeln!(
                out,
                "lqos_{kind}_tcp_rtt_seconds_count{{{label},path=\"{path}\"}} {count}"
            );
        }
    }
    for (name, help, pick) in [
        ("retransmits_total", "TCP retransmits (sequence at or below the highest seen).", 0),
        ("packets_total", "TCP packets.", 1),
    ] {
        head(out, &format!("{kind}_tcp_{name}"), "counter", help);
        for (label, q) in list {
            let v = if pick == 0 { q.retransmits } else { q.tcp_packets };
            for (dir, n) in [("down", v.down), ("up", v.up)] {
                let _ = writeln!(out, "lqos_{kind}_tcp_{name}{{{label},direction=\"{dir}\"}} {n}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lqos_config::MetricsConfig;

    #[test]
    fn settings_come_from_the_config_and_the_environment_wins() {
        let conf = MetricsConfig { enabled: false, token: Some("from-conf".into()), public: false };
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
    fn data_plane_counters_are_exported_once_read() {
        let none = render(Some(&DaemonStatus::default()), None, None);
        assert!(!none.contains("lqos_xdp_"), "{none}");
        let st = DaemonStatus {
            dataplane: Some(DataplaneHealth {
                flow_capacity: 131_072,
                flows_live: 900,
                untracked_packets: 42,
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = render(Some(&st), None, None);
        for line in [
            "# TYPE lqos_xdp_untracked_packets_total counter",
            "lqos_xdp_untracked_packets_total 42",
            "# TYPE lqos_xdp_flow_table_entries gauge",
            "lqos_xdp_flow_table_entries 131072",
            "lqos_xdp_flows_live 900",
            "lqos_xdp_cache_misses_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in {text}");
        }
    }

    #[test]
    fn history_size_is_exported_only_when_history_is_on() {
        let on = DaemonStatus { history_bytes: Some(12_345), ..Default::default() };
        let text = render(Some(&on), None, None);
        assert!(text.contains("# TYPE lqos_history_bytes gauge"), "{text}");
        assert!(text.contains("\nlqos_history_bytes 12345\n"), "{text}");
        let off = DaemonStatus::default();
        assert!(!render(Some(&off), None, None).contains("lqos_history_bytes"));
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
        assert!(text.contains("circuit_id=\"c\\\"1499\""));
        assert!(!text.contains("circuit_id=\"c\\\"499\""));
    }

    #[test]
    fn tcp_quality_series_follow_the_contract() {
        use lqos_bus::{PerDirection, RttPaths, RttTotals};
        let q = Qoe {
            rtt_ms: RttPaths {
                access: Some(RttSummary {
                    p50: 12.0,
                    p90: 20.0,
                    p99: 40.0,
                    samples: 9,
                    sum_ms: 120.0,
                }),
                upstream: None,
            },
            retransmits: PerDirection { down: 11, up: 2 },
            tcp_packets: PerDirection { down: 900, up: 400 },
            rtt_total: RttTotals { access_samples: 30, access_sum_ms: 360.0, ..Default::default() },
            ..Default::default()
        };
        let circuits = vec![
            CircuitStat {
                id: "c\"1".into(),
                download_bytes: 5,
                qoe: Some(q),
                ..Default::default()
            },
            CircuitStat { id: "quiet".into(), download_bytes: 1, ..Default::default() },
        ];
        let nodes = vec![NodeStat { name: "AP 1".into(), qoe: Some(q), ..Default::default() }];
        let text = render(None, Some(&circuits), Some(&nodes));
        for line in [
            "# TYPE lqos_circuit_tcp_rtt_seconds summary",
            "lqos_circuit_tcp_rtt_seconds{circuit_id=\"c\\\"1\",path=\"access\",quantile=\"0.5\"} 0.012",
            "lqos_circuit_tcp_rtt_seconds{circuit_id=\"c\\\"1\",path=\"access\",quantile=\"0.99\"} 0.04",
            "lqos_circuit_tcp_rtt_seconds_count{circuit_id=\"c\\\"1\",path=\"access\"} 30",
            "lqos_circuit_tcp_rtt_seconds_sum{circuit_id=\"c\\\"1\",path=\"access\"} 0.36",
            "lqos_circuit_tcp_rtt_seconds_count{circuit_id=\"c\\\"1\",path=\"upstream\"} 0",
            "lqos_circuit_tcp_retransmits_total{circuit_id=\"c\\\"1\",direction=\"down\"} 11",
            "lqos_circuit_tcp_packets_total{circuit_id=\"c\\\"1\",direction=\"up\"} 400",
            "lqos_node_tcp_rtt_seconds{node=\"AP 1\",path=\"access\",quantile=\"0.9\"} 0.02",
            "lqos_node_tcp_retransmits_total{node=\"AP 1\",direction=\"up\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        // No quantiles for a path without samples in the window, no series for a circuit
        // without TCP.
        assert!(!text.contains("path=\"upstream\",quantile"));
        assert!(text.contains("lqos_circuit_drops_total{circuit_id=\"quiet\"} 0"));
        assert!(
            !text.lines().any(|l| l.starts_with("lqos_circuit_tcp_") && l.contains("\"quiet\"")),
            "{text}"
        );
    }

    #[test]
    fn hostile_names_are_escaped_and_repeats_exported_once() {
        let hostile = "a\"b\\c\nd\u{e9}\u{1F600}\r\t";
        let circuits = vec![
            CircuitStat { id: hostile.into(), download_bytes: 2, ..Default::default() },
            CircuitStat { id: hostile.into(), download_bytes: 1, ..Default::default() },
        ];
        let nodes = vec![
            NodeStat { name: hostile.into(), download_max_kbit: u64::MAX, ..Default::default() },
            NodeStat { name: hostile.into(), ..Default::default() },
        ];
        let text = render(None, Some(&circuits), Some(&nodes));
        let escaped = "a\\\"b\\\\c\\nd\u{e9}\u{1F600}\r\t";
        assert!(
            text.lines()
                .any(|l| l == format!("lqos_circuit_drops_total{{circuit_id=\"{escaped}\"}} 0")),
            "{text}"
        );
        assert!(
            text.lines().any(|l| l
                == format!(
                    "lqos_node_max_bps{{node=\"{escaped}\",direction=\"down\"}} {}",
                    u64::MAX
                )),
            "{text}"
        );
        // Every sample stays on one line: no raw line feed inside a label value.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("lqos_"), "broken line {line:?}");
        }
        assert_eq!(text.matches("lqos_circuit_drops_total{").count(), 1);
        assert_eq!(text.matches("lqos_node_drops_total{").count(), 1);
    }

    #[test]
    fn special_floats_use_prometheus_spelling() {
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(0.012), "0.012");
        assert_eq!(float(1e-7), "0.0000001");
    }
}
