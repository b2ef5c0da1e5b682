//! `/api/v1/worst`, `/api/v1/qoe/distribution`, `/api/v1/unknown`: parameters, bounds, access.

use super::*;
use lqos_bus::{QoeWindow, WorstBy, WorstKind};

const PATHS: [&str; 3] = ["/api/v1/worst", "/api/v1/qoe/distribution", "/api/v1/unknown"];

#[tokio::test]
async fn insight_needs_a_session_and_a_viewer_may_read_it() {
    let app = app();
    for path in PATHS {
        let r = send(&app, req("GET", path).body(Body::empty()).expect("req")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    assert!(app.backend.commands().is_empty(), "nothing reached lqosd without a session");
    let c = login(&app, "viewer", "viewer-password").await;
    for path in PATHS {
        let r = send(&app, c.get(path)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
    }
}

#[tokio::test]
async fn worst_passes_its_parameters_with_defaults_and_a_bounded_limit() {
    let app = app();
    let c = login(&app, "viewer", "viewer-password").await;
    let r = send(&app, c.get("/api/v1/worst")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!((r.body["kind"].as_str(), r.body["by"].as_str()), (Some("circuits"), Some("rtt")));
    assert_eq!(r.body["window"], "60s");
    assert!(r.body["entries"].as_array().expect("entries").len() <= 20);
    assert!(r.body["min_samples"].as_u64().is_some() && r.body["sample_unit"].is_string());
    let p90: Vec<f64> = r.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["rtt_access_p90_ms"].as_f64().expect("p90"))
        .collect();
    assert!(!p90.is_empty() && p90.windows(2).all(|w| w[0] >= w[1]), "worst first: {p90:?}");

    let r = send(&app, c.get("/api/v1/worst?by=retransmits&window=24h&limit=5&kind=nodes")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["entries"].as_array().expect("entries").len(), 5);
    assert_eq!(r.body["kind"], "nodes");
    let r = send(&app, c.get("/api/v1/worst?limit=500&window=10s")).await;
    assert_eq!(r.status, StatusCode::OK);
    let sent: Vec<Command> =
        app.backend.commands().into_iter().filter(|c| matches!(c, Command::Worst { .. })).collect();
    assert_eq!(
        sent,
        [
            Command::Worst {
                kind: WorstKind::Circuits,
                by: WorstBy::Rtt,
                window: QoeWindow::Secs60,
                limit: 20
            },
            Command::Worst {
                kind: WorstKind::Nodes,
                by: WorstBy::Retransmits,
                window: QoeWindow::Hours24,
                limit: 5
            },
            Command::Worst {
                kind: WorstKind::Circuits,
                by: WorstBy::Rtt,
                window: QoeWindow::Secs10,
                limit: 500
            },
        ]
    );
}

#[tokio::test]
async fn bad_parameters_are_a_400_naming_what_is_accepted() {
    let app = app();
    let c = login(&app, "admin", "admin-password").await;
    for (query, needle) in [
        ("by=latency", "rtt, retransmits"),
        ("window=2h", "10s, 60s, 1h, 24h"),
        ("window=", "10s, 60s, 1h, 24h"),
        ("kind=sites", "circuits, nodes"),
        ("limit=0", "1..=500"),
        ("limit=501", "1..=500"),
        ("limit=-1", "1..=500"),
        ("limit=abc", "1..=500"),
        ("limit=99999999999999999999999", "1..=500"),
        ("by=rtt&by=retransmits", "by"),
    ] {
        let r = send(&app, c.get(&format!("/api/v1/worst?{query}"))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text);
        let m = r.body["message"].as_str().expect("message");
        assert!(m.contains(needle), "{query}: {m}");
    }
    // A hostile value is not echoed whole.
    let long = "x".repeat(5000);
    let r = send(&app, c.get(&format!("/api/v1/worst?window={long}"))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.len() < 400, "{} bytes", r.text.len());
    for query in ["limit=0", "limit=101", "limit=x"] {
        let r = send(&app, c.get(&format!("/api/v1/unknown?{query}"))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(r.body["message"].as_str().expect("message").contains("1..=100"));
    }
    assert!(
        !app.backend
            .commands()
            .iter()
            .any(|c| matches!(c, Command::Worst { .. } | Command::UnknownAddresses { .. })),
        "a bad request never reaches lqosd"
    );
}

#[tokio::test]
async fn distribution_and_unknown_answer_their_shapes() {
    let app = app();
    let c = login(&app, "viewer", "viewer-password").await;
    let r = send(&app, c.get("/api/v1/qoe/distribution")).await;
    assert_eq!(r.body["percentile"], "p90");
    let buckets = r.body["buckets"].as_array().expect("buckets");
    assert!(buckets.len() > 4);
    let counted: u64 = buckets.iter().map(|b| b["circuits"].as_u64().expect("n")).sum();
    assert_eq!(Some(counted), r.body["circuits_measured"].as_u64());
    assert!(buckets.last().expect("last")["upper_ms"].is_null(), "the last bucket is open");
    let r = send(&app, c.get("/api/v1/unknown?limit=2")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["entries"].as_array().expect("entries").len(), 2);
    let e = &r.body["entries"][0];
    assert!(
        e["address"].is_string() && e["rate_bps"]["down"].is_u64() && e["last_seen_unix"].is_u64()
    );
    assert!(app.backend.commands().contains(&Command::UnknownAddresses { limit: 2 }));
    let r = send(&app, c.get("/api/v1/unknown")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(app.backend.commands().contains(&Command::UnknownAddresses { limit: 50 }));
}

#[tokio::test]
async fn lqosd_errors_become_clear_statuses() {
    let app = app();
    // lqosd down (or, for 1h/24h, its history off) answers Unavailable: the API shows a 503
    // with lqosd's message.
    let state = WebState::new(
        Arc::new(lqos_web::demo::FailingBackend),
        WebOptions::new(app.dir.path().to_path_buf()),
    )
    .expect("state");
    let failing =
        App { state, backend: app.backend.clone(), dir: tempfile::tempdir().expect("dir") };
    let c2 = login(&failing, "viewer", "viewer-password").await;
    for path in PATHS {
        let r = send(&failing, c2.get(path)).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(r.body["error"], "unavailable");
    }
}

#[tokio::test]
async fn the_api_document_describes_the_insight_routes_and_their_parameters() {
    let app = app();
    let r = send(&app, req("GET", "/api/v1/openapi.json").body(Body::empty()).expect("req")).await;
    assert_eq!(r.status, StatusCode::OK);
    for p in ["/worst", "/qoe/distribution", "/unknown"] {
        assert!(r.body["paths"][p]["get"].is_object(), "{p} missing");
    }
    let params: Vec<&str> = r.body["paths"]["/worst"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(params, ["by", "window", "limit", "kind"]);
    let windows = &r.body["components"]["schemas"]["QoeWindow"];
    assert!(windows.to_string().contains("24h"), "{windows}");
}
