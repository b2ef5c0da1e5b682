//! `/metrics` through the real router, checked by Prometheus's own `promtool check metrics`
//! (Debian package `prometheus`, installed by scripts/deps.sh). The backend answers with
//! circuits and nodes whose names are operator text at its worst: quotes, backslashes, line
//! feeds, carriage returns, tabs, UTF-8 and a repeated name.

use std::io::Write;
use std::process::{Command as Process, Stdio};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use lqos_bus::{
    CircuitStat, Command, DaemonStatus, NodeStat, PerDirection, Qoe, Response, RttPaths,
    RttSummary, RttTotals,
};
use lqos_web::{Backend, BoxFuture, WebOptions, WebState, router};
use tower::ServiceExt;

const HOSTILE: [&str; 6] =
    ["quote\"d", "back\\slash\\", "line\nfeed", "cr\rtab\t", "Üñíçødé 客户 🚀", "\\\"\n\\n"];

/// lqosd as the metrics page sees it: status, circuits with TCP quality, nodes.
struct Hostile;

fn qoe(i: u64) -> Qoe {
    let rtt = RttSummary {
        p50: 10.0 + i as f64,
        p90: 20.0 + i as f64,
        p99: 40.0,
        samples: 9,
        sum_ms: 120.0,
    };
    Qoe {
        rtt_ms: RttPaths { access: Some(rtt), upstream: Some(rtt) },
        rtt_ms_10s: RttPaths { access: Some(rtt), upstream: None },
        retransmits: PerDirection { down: 3 * i, up: i },
        tcp_packets: PerDirection { down: 1000 * i, up: 500 * i },
        rtt_total: RttTotals {
            access_samples: 30,
            access_sum_ms: 360.5,
            upstream_samples: 1,
            upstream_sum_ms: 0.25,
        },
        ..Default::default()
    }
}

impl Backend for Hostile {
    fn request(&self, cmd: Command) -> BoxFuture<'_, Response> {
        let answer = match cmd {
            Command::Status => Response::Status(Box::new(DaemonStatus {
                version: "9.9.9".into(),
                download_bps: 1_000_000,
                upload_bps: 500_000,
                circuits: HOSTILE.len() + 1,
                nodes: HOSTILE.len(),
                history_bytes: Some(123_456_789),
                last_apply_unix: Some(1_700_000_000),
                ..Default::default()
            })),
            Command::CircuitStats { .. } | Command::TopCircuits { .. } => {
                let mut list: Vec<CircuitStat> = HOSTILE
                    .iter()
                    .zip(1u64..)
                    .map(|(id, i)| CircuitStat {
                        id: (*id).into(),
                        name: format!("name of {id}"),
                        parent: HOSTILE[0].into(),
                        download_bytes: 1000 * i,
                        upload_bytes: 10 * i,
                        download_bps: 8000 * i,
                        drops: i,
                        qoe: Some(qoe(i)),
                        ..Default::default()
                    })
                    .collect();
                // A repeated Circuit ID (lqosd quarantines these; /metrics must not repeat a
                // series even so) and a circuit without TCP.
                list.push(CircuitStat { id: HOSTILE[0].into(), ..Default::default() });
                list.push(CircuitStat { id: "quiet".into(), ..Default::default() });
                Response::Circuits(list)
            }
            Command::NodeStats => {
                let mut list: Vec<NodeStat> = HOSTILE
                    .iter()
                    .zip(1u64..)
                    .map(|(name, i)| NodeStat {
                        name: (*name).into(),
                        download_max_kbit: 100_000,
                        upload_max_kbit: 20_000,
                        download_bps: 1000 * i,
                        drops: i,
                        qoe: Some(qoe(i)),
                        ..Default::default()
                    })
                    .collect();
                list.push(NodeStat { name: HOSTILE[1].into(), ..Default::default() });
                Response::Nodes(list)
            }
            other => Response::Error(lqos_bus::CommandError::Unavailable {
                message: format!("not in this test: {other:?}"),
            }),
        };
        Box::pin(async move { answer })
    }
}

async fn scrape() -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = WebOptions::new(dir.path().to_path_buf());
    opts.metrics_token = Some("scrape-token".into());
    let state = WebState::new(Arc::new(Hostile), opts).expect("state");
    let req = Request::builder()
        .method("GET")
        .uri("/metrics")
        .header(header::AUTHORIZATION, "Bearer scrape-token")
        .body(Body::empty())
        .expect("request");
    let resp = router(state).oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let ctype = resp.headers().get(header::CONTENT_TYPE).cloned();
    assert_eq!(
        ctype.as_ref().and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20).await.expect("body");
    String::from_utf8(bytes.to_vec()).expect("metrics are UTF-8")
}

/// `promtool check metrics < text`: `None` when promtool is not installed, else its exit
/// success and combined output.
fn promtool(text: &str) -> Option<(bool, String)> {
    let mut child = match Process::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("run promtool: {e}"),
    };
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("feed promtool");
    let out = child.wait_with_output().expect("promtool output");
    let msg =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Some((out.status.success(), msg))
}

#[tokio::test]
async fn metrics_with_hostile_names_pass_promtool_check_metrics() {
    let text = scrape().await;
    // The contract series are there, escaped, once each.
    for line in [
        "lqos_up 1",
        "lqos_history_bytes 123456789",
        "lqos_circuit_tcp_rtt_seconds{circuit_id=\"quote\\\"d\",path=\"access\",quantile=\"0.5\"} 0.011",
        "lqos_circuit_tcp_rtt_seconds_count{circuit_id=\"line\\nfeed\",path=\"access\"} 30",
        "lqos_circuit_tcp_retransmits_total{circuit_id=\"back\\\\slash\\\\\",direction=\"down\"} 6",
        "lqos_circuit_tcp_packets_total{circuit_id=\"Üñíçødé 客户 🚀\",direction=\"up\"} 2500",
        "lqos_circuit_bytes_total{circuit_id=\"\\\\\\\"\\n\\\\n\",direction=\"down\"} 6000",
        "lqos_node_tcp_rtt_seconds{node=\"cr\rtab\t\",path=\"upstream\",quantile=\"0.9\"} 0.024",
        "lqos_node_rate_bps{node=\"back\\\\slash\\\\\",direction=\"down\"} 2000",
        "lqos_node_drops_total{node=\"quote\\\"d\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    assert_eq!(text.matches("lqos_circuit_drops_total{circuit_id=\"quote\\\"d\"}").count(), 1);
    assert_eq!(text.matches("lqos_node_drops_total{node=\"back\\\\slash\\\\\"}").count(), 1);
    assert_eq!(text.matches("# TYPE lqos_circuit_tcp_rtt_seconds summary").count(), 1);
    let Some((ok, msg)) = promtool(&text) else {
        eprintln!(
            "skipped: promtool not found (scripts/deps.sh installs it with Debian's prometheus \
             package)"
        );
        return;
    };
    assert!(ok, "promtool check metrics failed:\n{msg}\n--- /metrics ---\n{text}");
    assert!(msg.trim().is_empty(), "promtool lint findings:\n{msg}\n--- /metrics ---\n{text}");
}

#[test]
fn promtool_rejects_what_the_format_forbids() {
    // The check above can fail: promtool refuses a raw line feed in a label value and a
    // counter without `_total`.
    let broken =
        "# HELP lqos_x_total X.\n# TYPE lqos_x_total counter\nlqos_x_total{a=\"b\nc\"} 1\n";
    let Some((ok, _)) = promtool(broken) else {
        eprintln!("skipped: promtool not found");
        return;
    };
    assert!(!ok, "promtool accepted a raw line feed in a label value");
    let lint = "# HELP lqos_x X.\n# TYPE lqos_x counter\nlqos_x 1\n";
    let (_, msg) = promtool(lint).expect("promtool");
    assert!(msg.contains("_total"), "{msg}");
}
