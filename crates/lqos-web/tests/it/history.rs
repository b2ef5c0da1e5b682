//! `/api/v1/circuits/{id}/history` and `/api/v1/nodes/{name}/history` against the demo
//! backend: every range, the default, an unknown range (400), an empty series, login.

use axum::body::Body;
use axum::http::StatusCode;
use lqos_bus::{Command, HistoryKind, HistoryRange};

use super::{app, login, req, send};

#[tokio::test]
async fn every_range_answers_with_its_step_and_window() {
    let app = app();
    let c = login(&app, "viewer", "viewer-password").await;
    for (range, step) in
        [("10m", 1), ("1h", 60), ("24h", 60), ("7d", 900), ("30d", 900), ("90d", 900)]
    {
        let r = send(&app, c.get(&format!("/api/v1/circuits/c00001/history?range={range}"))).await;
        assert_eq!(r.status, StatusCode::OK, "{range}: {}", r.text);
        assert_eq!(r.body["range"], range);
        assert_eq!(r.body["kind"], "circuit");
        assert_eq!(r.body["id"], "c00001");
        assert_eq!(r.body["step_secs"], step, "{range}");
        let points = r.body["points"].as_array().expect("points");
        let secs = HistoryRange::parse(range).expect("range").secs();
        assert_eq!(points.len() as u64, secs / step, "{range}");
        let now = r.body["now"].as_u64().expect("now");
        let first = points[0]["t"].as_u64().expect("t");
        assert!(first + secs >= now, "{range}: {first} older than the window");
        assert!(points[0]["rtt_access_ms"]["p90"].as_f64().is_some(), "{range}");
        assert!(points[0]["retransmits"]["down"].as_u64().is_some(), "{range}");
        let r = send(&app, c.get(&format!("/api/v1/nodes/AP-1-1/history?range={range}"))).await;
        assert_eq!(r.status, StatusCode::OK, "{range}: {}", r.text);
        assert_eq!(r.body["kind"], "node");
    }
    // The command reached lqosd as typed.
    assert_eq!(
        app.backend.commands().last(),
        Some(&Command::History {
            kind: HistoryKind::Node,
            id: "AP-1-1".into(),
            range: HistoryRange::Days90
        })
    );
    // No range = 1 h.
    let r = send(&app, c.get("/api/v1/circuits/c00002/history")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["range"], "1h");
}

#[tokio::test]
async fn unknown_ranges_are_400_and_unknown_series_are_empty() {
    let app = app();
    let c = login(&app, "viewer", "viewer-password").await;
    let before = app.backend.commands().len();
    for bad in ["5m", "", "1H", "90d%00", "%F0%9F%92%A9"] {
        let r = send(&app, c.get(&format!("/api/v1/circuits/c00001/history?range={bad}"))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        assert_eq!(r.body["error"], "bad_request");
        assert!(r.body["message"].as_str().expect("msg").contains("10m, 1h, 24h, 7d, 30d, 90d"));
    }
    let sent = app.backend.commands()[before..]
        .iter()
        .filter(|c| matches!(c, Command::History { .. }))
        .count();
    assert_eq!(sent, 0, "a bad range never reaches lqosd");
    let r = send(&app, c.get("/api/v1/circuits/nobody/history?range=7d")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["points"], serde_json::json!([]), "an empty range is an empty list");
    assert_eq!(r.body["step_secs"], 900);
    let r = send(&app, c.get("/api/v1/nodes/none/history?range=10m")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["points"], serde_json::json!([]));
}

#[tokio::test]
async fn history_needs_a_login() {
    let app = app();
    for path in ["/api/v1/circuits/c00001/history?range=1h", "/api/v1/nodes/Core/history"] {
        let r = send(&app, req("GET", path).body(Body::empty()).expect("req")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test]
async fn the_shared_dom_helpers_load_before_every_page_script() {
    let app = app();
    let r = send(&app, req("GET", "/static/dom.js").body(Body::empty()).expect("req")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("window.lqosDom"));
    assert!(!r.text.contains("http://") && !r.text.contains("https://"), "no CDN");
    for (page, first_user) in [("/app", "/static/chart.js"), ("/api-docs", "/static/api-docs.js")] {
        let r = send(&app, req("GET", page).body(Body::empty()).expect("req")).await;
        let dom = r.text.find("/static/dom.js").unwrap_or(usize::MAX);
        let user = r.text.find(first_user).unwrap_or(0);
        assert!(dom < user, "{page} loads dom.js before {first_user}");
    }
    // No page script keeps its own copy of el().
    for script in ["app.js", "insight.js", "circuit.js", "history.js", "api-docs.js", "users.js"] {
        let path = format!("/static/{script}");
        let r = send(&app, req("GET", &path).body(Body::empty()).expect("req")).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(!r.text.contains("function el("), "{path} defines its own el()");
    }
}

#[tokio::test]
async fn the_history_script_is_embedded_and_loaded_by_the_app() {
    let app = app();
    let r = send(&app, req("GET", "/static/history.js").body(Body::empty()).expect("req")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("window.lqosHistory"));
    assert!(r.text.contains("/history?range="));
    assert!(!r.text.contains("http://") && !r.text.contains("https://"), "no CDN");
    let r = send(&app, req("GET", "/app").body(Body::empty()).expect("req")).await;
    assert!(r.text.contains("<script src=\"/static/history.js\"></script>"));
    let r = send(&app, req("GET", "/static/app.js").body(Body::empty()).expect("req")).await;
    assert!(r.text.contains("lqosHistory(document.getElementById(\"circuit-history\")"));
    assert!(r.text.contains("lqosHistory(document.getElementById(\"node-history\")"));
}
