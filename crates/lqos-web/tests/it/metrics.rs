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

/// The `lqos_…` metric names in a PromQL expression, each with the label names its selector
/// (`{…}`) uses.
fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("lqos_") {
        let tail = &rest[i..];
        let end =
            tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let name = tail[..end].to_owned();
        let mut labels = Vec::new();
        if let Some(sel) = tail[end..].strip_prefix('{')
            && let Some(close) = sel.find('}')
        {
            for m in sel[..close].split(',') {
                if let Some(eq) = m.find(['=', '!']) {
                    labels.push(m[..eq].trim().to_owned());
                }
            }
        }
        out.push((name, labels));
        rest = &tail[end..];
    }
    out
}

/// Label names in `by (…)` / `on (…)` clauses and `{{…}}` legends.
fn grouping_labels(expr: &str, legend: &str) -> Vec<String> {
    let mut out = Vec::new();
    for kw in ["by (", "on ("] {
        let mut rest = expr;
        while let Some(i) = rest.find(kw) {
            let tail = &rest[i + kw.len()..];
            let close = tail.find(')').unwrap_or(tail.len());
            out.extend(tail[..close].split(',').map(|l| l.trim().to_owned()));
            rest = &tail[close..];
        }
    }
    let mut rest = legend;
    while let Some(i) = rest.find("{{") {
        let tail = &rest[i + 2..];
        let close = tail.find("}}").unwrap_or(tail.len());
        out.push(tail[..close].trim().to_owned());
        rest = &tail[close..];
    }
    out
}

#[tokio::test]
async fn grafana_dashboard_queries_only_exported_series_and_valid_promql() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/grafana/lqos.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read the dashboard"))
            .expect("the dashboard is JSON");
    let text = scrape().await;
    // Sample lines of a family, `_sum`/`_count` counted with their summary.
    let samples = |name: &str| -> Vec<&str> {
        text.lines()
            .filter(|l| {
                l.strip_prefix(name).is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
            })
            .collect()
    };
    let mut exprs: Vec<(String, String)> = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("expr").to_owned();
            exprs.push((expr, t["legendFormat"].as_str().unwrap_or("").to_owned()));
        }
    }
    for v in dash["templating"]["list"].as_array().expect("templating") {
        let q = v["query"].as_str().expect("query");
        let inner = q.strip_prefix("label_values(").and_then(|q| q.strip_suffix(')'));
        let (metric, label) = inner.and_then(|i| i.split_once(", ")).expect("label_values(m, l)");
        exprs.push((metric.to_owned(), format!("{{{{{label}}}}}")));
    }
    assert!(exprs.len() >= 10, "{exprs:?}");
    for (expr, legend) in &exprs {
        let used = selectors(expr);
        assert!(!used.is_empty(), "no lqos metric in {expr}");
        for (name, labels) in &used {
            let lines = samples(name);
            assert!(!lines.is_empty(), "{expr}: /metrics has no {name}");
            for l in labels {
                assert!(
                    lines.iter().any(|s| s.contains(&format!("{l}=\""))),
                    "{expr}: {name} has no label {l}"
                );
            }
        }
        for l in grouping_labels(expr, legend) {
            assert!(
                used.iter().any(|(n, _)| samples(n).iter().any(|s| s.contains(&format!("{l}=\"")))),
                "{expr}: label {l} (by/on/legend) is on none of its series"
            );
        }
    }
    // Every expression parses as PromQL: promtool checks them as recording rules.
    let rules = serde_json::json!({ "groups": [{
        "name": "grafana",
        "rules": exprs.iter().enumerate().map(|(i, (e, _))| serde_json::json!({
            "record": format!("dashboard:expr_{i}"),
            "expr": e.replace("$node", ".*").replace("$circuit", ".*"),
        })).collect::<Vec<_>>(),
    }]});
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, rules.to_string()).expect("write rules");
    let out = match Process::new("promtool").arg("check").arg("rules").arg(&file).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped the PromQL check: promtool not found");
            return;
        }
        Err(e) => panic!("run promtool: {e}"),
    };
    assert!(
        out.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Percent-encodes a URL query value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET path` over HTTP/1.0 on 127.0.0.1:`port`; the body of a 200 answer.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?;
    (status == "200").then(|| body.to_owned())
}

/// A real Prometheus server and the directory it owns; dropping kills it and removes both.
struct PromServer {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Drop for PromServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Serves `body` as `/metrics` over plain HTTP on 127.0.0.1 from a thread; returns its port.
/// The thread ends with the test process.
fn serve_metrics(body: String) -> u16 {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[tokio::test]
async fn a_real_prometheus_server_keeps_hostile_label_values_intact() {
    // promtool checks with the client library's parser; the server scrapes with its own.
    // This test has the server scrape the hostile answer and give every name back exactly.
    let Ok(bin) = Process::new("prometheus").arg("--version").output() else {
        eprintln!(
            "skipped: prometheus not installed (scripts/deps.sh installs Debian's prometheus \
             package)"
        );
        return;
    };
    assert!(bin.status.success(), "prometheus --version failed");
    let text = scrape().await;
    let samples = text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count();
    let target = serve_metrics(text);
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("prometheus.yml");
    std::fs::write(
        &conf,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - \
             job_name: hostile\n    static_configs:\n      - targets: [\"127.0.0.1:{target}\"]\n"
        ),
    )
    .expect("write prometheus.yml");
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
    let child = Process::new("prometheus")
        .arg(format!("--config.file={}", conf.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn prometheus");
    let log_path = dir.path().join("prometheus.log");
    let prom = PromServer { child, _dir: dir, port };
    let query = |q: &str| -> Option<serde_json::Value> {
        let body = http_get(prom.port, &format!("/api/v1/query?query={}", urlencode(q)))?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["data"]["result"].as_array().filter(|r| !r.is_empty()).map(|r| r[0].clone())
    };
    let start = std::time::Instant::now();
    let scraped = loop {
        if let Some(v) = query("scrape_samples_scraped{job=\"hostile\"}") {
            break v;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "no scrape within 30 s:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    let value = |v: &serde_json::Value| v["value"][1].as_str().unwrap_or("").to_owned();
    assert_eq!(value(&scraped), samples.to_string(), "every sample line was taken");
    let up = query("up{job=\"hostile\"}").expect("up");
    assert_eq!(value(&up), "1", "the scrape succeeded");
    for (metric, label, extra) in [
        ("lqos_circuit_drops_total", "circuit_id", Some("quiet")),
        ("lqos_node_tcp_retransmits_total", "node", None),
    ] {
        let body = http_get(prom.port, &format!("/api/v1/series?match[]={}", urlencode(metric)))
            .expect("series answer");
        let v: serde_json::Value = serde_json::from_str(&body).expect("series JSON");
        let mut got: Vec<String> = v["data"]
            .as_array()
            .expect("series")
            .iter()
            .filter_map(|s| s[label].as_str().map(str::to_owned))
            .collect();
        got.sort();
        got.dedup();
        let mut want: Vec<String> =
            HOSTILE.iter().map(|s| (*s).to_owned()).chain(extra.map(str::to_owned)).collect();
        want.sort();
        assert_eq!(got, want, "{metric}: label {label} as Prometheus stored it");
    }
}
