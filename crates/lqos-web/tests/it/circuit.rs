//! `GET /api/v1/circuits/{id}/queue` (queue statistics of one circuit) and the circuit page's
//! script: viewers may read it, an unknown circuit is 404, lqosd's throttle is 429 with
//! `Retry-After`, lqosd down is 503 (not 404).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{StatusCode, header};
use lqos_bus::{CircuitQueue, Command, Response};
use lqos_web::demo::{DemoBackend, FailingBackend};
use lqos_web::users::{Role, UserStore};
use lqos_web::{Backend, BoxFuture, WebOptions, WebState};

use super::{App, app, login, req, send};

#[tokio::test]
async fn a_viewer_reads_both_directions_of_a_circuit_queue() {
    let app = app();
    let c = login(&app, "viewer", "viewer-password").await;
    let r = send(&app, c.get("/api/v1/circuits/c00001/queue")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["circuit"], "c00001");
    assert_eq!(r.body["throttled"], false);
    let dirs = r.body["directions"].as_array().expect("directions");
    assert_eq!(dirs.len(), 2);
    assert_eq!(dirs[0]["direction"], "download");
    assert_eq!(dirs[0]["leaf"]["kind"], "cake");
    assert_eq!(dirs[0]["leaf"]["cake"]["tins"].as_array().map(Vec::len), Some(4));
    assert!(dirs[0]["leaf"]["cake"]["total"]["peak_delay_us"].as_u64().is_some());
    assert!(dirs[0]["class_stats"]["overlimits"].as_u64().is_some());
    assert_eq!(dirs[1]["direction"], "upload");
    assert_eq!(dirs[1]["leaf"], serde_json::Value::Null);
    assert!(dirs[1]["class_stats"]["drops"].as_u64().is_some());
    assert_eq!(
        app.backend.commands().last(),
        Some(&Command::CircuitQueue { circuit: "c00001".into() }),
        "the id reached lqosd as typed"
    );
}

#[tokio::test]
async fn unknown_circuits_are_404_and_a_login_is_needed() {
    let app = app();
    let c = login(&app, "viewer", "viewer-password").await;
    for id in ["nobody", "c00001%20", "%F0%9F%92%A9"] {
        let r = send(&app, c.get(&format!("/api/v1/circuits/{id}/queue"))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}: {}", r.text);
        assert_eq!(r.body["error"], "not_found");
    }
    let r =
        send(&app, req("GET", "/api/v1/circuits/c00001/queue").body(Body::empty()).expect("req"))
            .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// Answers every CircuitQueue as lqosd does past its read budget.
struct Throttled;

impl Backend for Throttled {
    fn request(&self, _cmd: Command) -> BoxFuture<'_, Response> {
        Box::pin(async {
            Response::Queue(Box::new(CircuitQueue {
                circuit: "c1".into(),
                throttled: true,
                ..Default::default()
            }))
        })
    }
}

fn app_over(backend: Arc<dyn Backend>) -> App {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = WebOptions::new(dir.path().to_path_buf());
    let mut store = UserStore::load(&opts.users_file).expect("load users");
    store.add("viewer", "viewer-password", Role::ReadOnly).expect("add user");
    store.save().expect("save users");
    let state = WebState::new(backend, opts).expect("state");
    App { state, backend: Arc::new(DemoBackend::new(1, 1)), dir }
}

#[tokio::test]
async fn lqosd_throttling_is_429_with_retry_after_and_lqosd_down_is_503() {
    let app = app_over(Arc::new(Throttled));
    let c = login(&app, "viewer", "viewer-password").await;
    let r = send(&app, c.get("/api/v1/circuits/c1/queue")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("1"));

    let app = app_over(Arc::new(FailingBackend));
    let c = login(&app, "viewer", "viewer-password").await;
    let r = send(&app, c.get("/api/v1/circuits/c1/queue")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
}

#[tokio::test]
async fn the_circuit_script_is_embedded_and_called_by_the_circuit_page() {
    let app = app();
    let r = send(&app, req("GET", "/static/circuit.js").body(Body::empty()).expect("req")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("window.lqosCircuit"));
    for id in ["c-rtt-access", "c-rtt-upstream", "c-retrans", "circuit-flows", "circuit-queue"] {
        assert!(r.text.contains(id), "circuit.js builds #{id}");
    }
    assert!(r.text.contains("/queue") && r.text.contains("/flows"));
    assert!(!r.text.contains("http://") && !r.text.contains("https://"), "no CDN");
    assert!(!r.text.contains("innerHTML"), "text only, never markup from data");
    let r = send(&app, req("GET", "/app").body(Body::empty()).expect("req")).await;
    assert!(r.text.contains("<script src=\"/static/circuit.js\"></script>"));
    let r = send(&app, req("GET", "/static/app.js").body(Body::empty()).expect("req")).await;
    assert!(r.text.contains("lqosCircuit"));
}
