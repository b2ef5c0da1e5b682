//! lqos-web integration tests: the web API router with the demo backend, driven by `oneshot` (no
//! port), and the real server on sockets (module `server`).
#![expect(clippy::print_stderr, reason = "attack tests report what they measured")]

mod circuit;
mod editor;
mod events;
mod history;
mod insight;
mod login;
mod metrics;
mod security;
mod server;

// User management and the generated API document.
mod openapi;
mod users;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use lqos_bus::{Command, CommandError, Response};
use lqos_web::demo::DemoBackend;
use lqos_web::users::{Role, UserStore};
use lqos_web::{WebOptions, WebState, router};
use serde_json::{Value, json};
use tower::ServiceExt;

struct App {
    state: WebState,
    backend: Arc<DemoBackend>,
    dir: tempfile::TempDir,
}

const CSV: &str = "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,Parent Node ID,Anchor Node ID,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment,sqm
c1,One,d1,Dev 1,AP-1,,,,100.64.0.1,,1,1,100,20,,
c2,Two,d2,Dev 2,AP-1,,,,100.64.0.2,,1,1,50,10,,
";
const NET: &str = r#"{"AP-1": {"downloadBandwidthMbps": 1000, "uploadBandwidthMbps": 1000}}"#;

fn app_with(
    circuits: usize,
    users: &[(&str, &str, Role)],
    tweak: impl FnOnce(&mut WebOptions),
) -> App {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = WebOptions::new(dir.path().to_path_buf());
    if !users.is_empty() {
        let mut store = UserStore::load(&opts.users_file).expect("load users");
        for (u, p, r) in users {
            store.add(u, p, *r).expect("add user");
        }
        store.save().expect("save users");
    }
    std::fs::write(dir.path().join("ShapedDevices.csv"), CSV).expect("csv");
    std::fs::write(dir.path().join("network.json"), NET).expect("net");
    tweak(&mut opts);
    let backend = Arc::new(DemoBackend::new(circuits, 3));
    let state = WebState::new(backend.clone(), opts).expect("state");
    App { state, backend, dir }
}

fn app() -> App {
    app_with(
        50,
        &[("admin", "admin-password", Role::Admin), ("viewer", "viewer-password", Role::ReadOnly)],
        |_| {},
    )
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
    text: String,
}

async fn send(app: &App, req: Request<Body>) -> Reply {
    let resp = router(app.state.clone()).oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20).await.expect("body");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, headers, body, text }
}

/// A request without any Host header.
fn bare(method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder().method(method).uri(uri)
}

fn req(method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder().method(method).uri(uri).header(header::HOST, "localhost")
}

/// A body-less request as if it came over TCP from `ip`.
fn from_ip(ip: &str, b: axum::http::request::Builder) -> Request<Body> {
    let addr = std::net::SocketAddr::new(ip.parse().expect("ip"), 40000);
    b.extension(axum::extract::ConnectInfo(addr)).body(Body::empty()).expect("req")
}

fn json_req(method: &str, uri: &str, body: &Value) -> Request<Body> {
    req(method, uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("req")
}

/// A logged-in client: cookie + CSRF token.
struct Client {
    cookie: String,
    csrf: String,
}

async fn login(app: &App, user: &str, pass: &str) -> Client {
    let r =
        send(app, json_req("POST", "/api/v1/login", &json!({"username": user, "password": pass})))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let set =
        r.headers.get(header::SET_COOKIE).expect("cookie").to_str().expect("ascii").to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    let cookie = set.split(';').next().expect("pair").to_owned();
    Client { cookie, csrf: r.body["csrf"].as_str().expect("csrf").to_owned() }
}

impl Client {
    fn get(&self, uri: &str) -> Request<Body> {
        req("GET", uri).header(header::COOKIE, &self.cookie).body(Body::empty()).expect("req")
    }
    /// A write to the shaped-devices editor with `If-Match` set to the file's current ETag.
    async fn edit(&self, app: &App, method: &str, uri: &str, body: &Value) -> Reply {
        let etag = send(app, self.get("/api/v1/shaped-devices")).await.headers[header::ETAG]
            .to_str()
            .expect("etag")
            .to_owned();
        send(app, self.write_if(method, uri, body, &etag)).await
    }
    fn write_if(&self, method: &str, uri: &str, body: &Value, etag: &str) -> Request<Body> {
        req(method, uri)
            .header(header::COOKIE, &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .header(header::IF_MATCH, etag)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("req")
    }
    fn write(&self, method: &str, uri: &str, body: &Value) -> Request<Body> {
        req(method, uri)
            .header(header::COOKIE, &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("req")
    }
}

#[tokio::test]
async fn unauthenticated_gets_401_everywhere_but_public_paths() {
    let app = app();
    for path in [
        "/api/v1/status",
        "/api/v1/circuits",
        "/api/v1/circuits/c00001",
        "/api/v1/nodes",
        "/api/v1/events",
        "/api/v1/shaped-devices",
        "/api/v1/session",
    ] {
        let r = send(&app, req("GET", path).body(Body::empty()).expect("req")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.body["error"], "unauthorized");
    }
    let r = send(&app, json_req("POST", "/api/v1/reload", &json!({}))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    for path in ["/api/v1/health", "/api/v1/openapi.json", "/app", "/login", "/static/app.js"] {
        let r = send(&app, req("GET", path).body(Body::empty()).expect("req")).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
    }
    let forged = req("GET", "/api/v1/status")
        .header(header::COOKIE, "lqos_session=v1.e30.AAAA")
        .body(Body::empty())
        .expect("req");
    assert_eq!(send(&app, forged).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_logout_and_wrong_password() {
    let app = app();
    let r = send(
        &app,
        json_req("POST", "/api/v1/login", &json!({"username": "admin", "password": "nope-nope"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let c = login(&app, "admin", "admin-password").await;
    let r = send(&app, c.get("/api/v1/session")).await;
    assert_eq!(r.body["role"], "admin");
    let r = send(&app, c.write("POST", "/api/v1/logout", &json!({}))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers[header::SET_COOKIE].to_str().expect("ascii").contains("Max-Age=0"));
    let r = send(&app, c.get("/api/v1/session")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a logged-out cookie is refused");
    let r = send(&app, json_req("POST", "/api/v1/login", &json!({"username": "admin"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "missing field is a 4xx with a message");
    assert!(r.body["message"].as_str().expect("message").contains("password"));
    let r = send(
        &app,
        req("POST", "/api/v1/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{not json"))
            .expect("req"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn login_attempts_are_rate_limited() {
    let app = app();
    for _ in 0..5 {
        let r = send(
            &app,
            json_req(
                "POST",
                "/api/v1/login",
                &json!({"username": "admin", "password": "wrong-one"}),
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = send(
        &app,
        json_req(
            "POST",
            "/api/v1/login",
            &json!({"username": "admin", "password": "admin-password"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn read_only_cannot_write() {
    let app = app();
    let c = login(&app, "viewer", "viewer-password").await;
    assert_eq!(send(&app, c.get("/api/v1/status")).await.status, StatusCode::OK);
    let r = send(&app, c.write("POST", "/api/v1/reload", &json!({}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(&app, c.write("PUT", "/api/v1/shaped-devices/c1", &json!({}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(&app, c.write("DELETE", "/api/v1/shaped-devices/c1", &json!({}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!app.backend.commands().iter().any(|c| matches!(c, Command::Reload { .. })));
    assert!(
        std::fs::read_to_string(app.dir.path().join("ShapedDevices.csv"))
            .expect("csv")
            .contains("c1,One")
    );
}

#[tokio::test]
async fn csrf_is_enforced_on_writes() {
    let app = app();
    let c = login(&app, "admin", "admin-password").await;
    let no_header = req("POST", "/api/v1/reload")
        .header(header::COOKIE, &c.cookie)
        .body(Body::empty())
        .expect("req");
    let r = send(&app, no_header).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body["message"].as_str().expect("msg").contains("CSRF"));
    let wrong = Client { cookie: c.cookie.clone(), csrf: "0".repeat(32) };
    assert_eq!(
        send(&app, wrong.write("POST", "/api/v1/reload", &json!({}))).await.status,
        StatusCode::FORBIDDEN
    );
    let cross = req("POST", "/api/v1/reload")
        .header(header::COOKIE, &c.cookie)
        .header("x-csrf-token", &c.csrf)
        .header(header::ORIGIN, "http://evil.example")
        .body(Body::empty())
        .expect("req");
    assert_eq!(send(&app, cross).await.status, StatusCode::FORBIDDEN);
    assert!(!app.backend.commands().iter().any(|c| matches!(c, Command::Reload { .. })));
    let r = send(&app, c.write("POST", "/api/v1/reload", &json!({"full": true}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["applied"], true);
    assert!(app.backend.commands().contains(&Command::Reload { mode: lqos_bus::ReloadMode::Full }));
}

#[tokio::test]
async fn first_run_token_is_single_use() {
    let app = app_with(10, &[], |_| {});
    let token = app.state.setup_token().expect("token when no users");
    let r = send(&app, req("GET", "/api/v1/setup/status").body(Body::empty()).expect("req")).await;
    assert_eq!(r.body["setup_required"], true);
    let r = send(
        &app,
        json_req("POST", "/api/v1/login", &json!({"username": "x", "password": "whatever-1"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = send(
        &app,
        json_req(
            "POST",
            "/api/v1/setup",
            &json!({"token": "guess", "username": "root", "password": "long-enough-1"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(
        &app,
        json_req(
            "POST",
            "/api/v1/setup",
            &json!({"token": token, "username": "root", "password": "short"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["errors"][0]["field"], "password");
    let r = send(
        &app,
        json_req(
            "POST",
            "/api/v1/setup",
            &json!({"token": token, "username": "root", "password": "long-enough-1"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["role"], "admin");
    assert!(r.headers.contains_key(header::SET_COOKIE));
    let r = send(
        &app,
        json_req(
            "POST",
            "/api/v1/setup",
            &json!({"token": token, "username": "other", "password": "long-enough-2"}),
        ),
    )
    .await;
    assert!(r.status == StatusCode::CONFLICT || r.status == StatusCode::FORBIDDEN, "{}", r.status);
    assert!(app.state.setup_token().is_none());
    let store = UserStore::load(&app.dir.path().join("lqusers.toml")).expect("users");
    assert_eq!(store.users().len(), 1);
    login(&app, "root", "long-enough-1").await;
}

#[tokio::test]
async fn circuits_paginate_search_and_sort_over_10000() {
    let app = app_with(10_000, &[("admin", "admin-password", Role::Admin)], |_| {});
    let c = login(&app, "admin", "admin-password").await;
    let r = send(&app, c.get("/api/v1/circuits?sort=id&page=3&per_page=100")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["total"], 10_000);
    assert_eq!(r.body["pages"], 100);
    assert_eq!(r.body["items"].as_array().expect("items").len(), 100);
    assert_eq!(r.body["items"][0]["id"], "c00201");
    let r = send(&app, c.get("/api/v1/circuits?search=subscriber%20999&sort=id")).await;
    assert_eq!(r.body["total"], 11, "999 and 9990..=9999");
    let r = send(&app, c.get("/api/v1/circuits?search=100.64.3.&per_page=500")).await;
    assert!(r.body["total"].as_u64().expect("total") > 0);
    let r = send(&app, c.get("/api/v1/circuits?sort=download_bps&order=desc&per_page=500")).await;
    let rates: Vec<u64> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["download_bps"].as_u64().expect("n"))
        .collect();
    assert!(rates.windows(2).all(|w| w[0] >= w[1]));
    let r = send(&app, c.get("/api/v1/circuits?page=1000&per_page=500")).await;
    assert_eq!(r.body["items"].as_array().expect("items").len(), 0);
    for bad in ["page=0", "per_page=0", "per_page=100000", "sort=bogus", "order=up", "page=-1"] {
        let r = send(&app, c.get(&format!("/api/v1/circuits?{bad}"))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.body["message"].is_string());
    }
    assert_eq!(send(&app, c.get("/api/v1/circuits/nope")).await.status, StatusCode::NOT_FOUND);
    let r = send(&app, c.get("/api/v1/circuits/c00042")).await;
    assert_eq!(r.body["id"], "c00042");
    // Several list requests within a second share one CircuitStats.
    let n = app
        .backend
        .commands()
        .iter()
        .filter(|c| matches!(c, Command::CircuitStats { circuit: None }))
        .count();
    assert!(n <= 2, "{n}");
}

#[tokio::test]
async fn tree_and_status_endpoints() {
    let app = app();
    let c = login(&app, "admin", "admin-password").await;
    let r = send(&app, c.get("/api/v1/nodes")).await;
    let core = r
        .body
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == "Core")
        .expect("core")
        .clone();
    assert_eq!(core["children"].as_array().expect("children").len(), 3);
    let r = send(&app, c.get("/api/v1/nodes/AP-1-1")).await;
    assert_eq!(r.body["path"], json!(["Core", "Site-1", "AP-1-1"]));
    assert!(!r.body["circuits"].as_array().expect("circuits").is_empty());
    assert_eq!(send(&app, c.get("/api/v1/nodes/none")).await.status, StatusCode::NOT_FOUND);
    let r = send(&app, c.get("/api/v1/scheduler")).await;
    assert_eq!(r.body["scheduler"]["phase"], "idle");
    let r = send(&app, c.get("/api/v1/top?n=5")).await;
    assert_eq!(r.body.as_array().expect("top").len(), 5);
    assert_eq!(send(&app, c.get("/api/v1/top?n=0")).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn circuit_flows_answer_for_known_circuits_and_404_otherwise() {
    let app = app();
    assert_eq!(
        send(&app, req("GET", "/api/v1/circuits/c00001/flows").body(Body::empty()).expect("req"))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let c = login(&app, "viewer", "viewer-password").await;
    let r = send(&app, c.get("/api/v1/circuits/c00001/flows")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!([]));
    let r = send(&app, c.get("/api/v1/circuits/nobody/flows")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.backend.commands().last(),
        Some(&Command::CircuitFlows { circuit: "nobody".into() })
    );
}

#[tokio::test]
async fn invalid_reload_returns_diagnostics() {
    let app = app();
    let diag = lqos_config::Diagnostic::error("ShapedDevices.csv", "bad rate")
        .at_line(3)
        .field("Download Max Mbps");
    app.backend.set_reload_answer(Some(Response::Error(CommandError::InvalidInput {
        diagnostics: vec![diag],
    })));
    let c = login(&app, "admin", "admin-password").await;
    let r = send(&app, c.write("POST", "/api/v1/reload", &json!({}))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["diagnostics"][0]["field"], "Download Max Mbps");
}

fn form(down: &str, ipv4: &str) -> Value {
    json!({
        "circuit_id": "c1", "circuit_name": "One", "parent_node": "AP-1",
        "download_min_mbps": "1", "upload_min_mbps": "1", "download_max_mbps": down, "upload_max_mbps": "20", "sqm": "",
        "devices": [{"device_id": "d1", "device_name": "Dev 1", "mac": "", "ipv4": ipv4, "ipv6": "", "comment": ""}]
    })
}

#[tokio::test]
async fn editor_returns_field_errors_and_saves_valid_edits() {
    let app = app();
    let c = login(&app, "admin", "admin-password").await;
    let r = send(&app, c.get("/api/v1/shaped-devices/c1")).await;
    assert_eq!(r.body["download_max_mbps"], "100");
    assert_eq!(r.body["devices"][0]["ipv4"], "100.64.0.1/32");

    let r = c.edit(&app, "PUT", "/api/v1/shaped-devices/c1", &form("fast", "100.64.0.300")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect();
    assert!(fields.contains(&"Download Max Mbps"), "{fields:?}");
    assert!(fields.contains(&"devices[0].IPv4"), "{fields:?}");
    let r = c.edit(&app, "PUT", "/api/v1/shaped-devices/c1", &form("100", "100.64.0.2")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "duplicate address: {}", r.text);
    let mut bad_parent = form("100", "100.64.0.9");
    bad_parent["parent_node"] = json!("Nowhere");
    let r = c.edit(&app, "PUT", "/api/v1/shaped-devices/c1", &bad_parent).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("Parent Node"), "{}", r.text);
    assert!(!app.backend.commands().iter().any(|c| matches!(c, Command::Reload { .. })));
    assert!(
        std::fs::read_to_string(app.dir.path().join("ShapedDevices.csv"))
            .expect("csv")
            .contains(",100,20,")
    );

    let r = c.edit(&app, "PUT", "/api/v1/shaped-devices/c1", &form("250", "100.64.0.1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["reload"]["applied"], true);
    let csv = std::fs::read_to_string(app.dir.path().join("ShapedDevices.csv")).expect("csv");
    assert!(csv.contains(",250,20,"), "{csv}");
    assert!(csv.find("c1,").expect("c1") < csv.find("c2,").expect("c2"), "order kept");
    assert!(
        app.backend
            .commands()
            .contains(&Command::Reload { mode: lqos_bus::ReloadMode::Incremental })
    );

    let mut new = form("30", "100.64.0.77");
    new["circuit_id"] = json!("c3");
    let r = c.edit(&app, "POST", "/api/v1/shaped-devices", &new).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = c.edit(&app, "POST", "/api/v1/shaped-devices", &new).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["errors"][0]["field"], "Circuit ID");
    let r = c.edit(&app, "DELETE", "/api/v1/shaped-devices/c2", &json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(&app, c.get("/api/v1/shaped-devices")).await;
    let ids: Vec<&str> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["circuit_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["c1", "c3"]);
    assert_eq!(
        c.edit(&app, "DELETE", "/api/v1/shaped-devices/c2", &json!({})).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn metrics_token_and_switch() {
    let app = app_with(20, &[], |o| o.metrics_token = Some("s3cret".into()));
    let r = send(&app, req("GET", "/metrics").body(Body::empty()).expect("req")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = send(
        &app,
        req("GET", "/metrics")
            .header(header::AUTHORIZATION, "Bearer s3cret")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("lqos_up 1"));
    assert!(r.text.contains("lqos_circuit_bytes_total{circuit_id=\"c00001\",direction=\"down\"}"));
    assert!(r.text.contains("lqos_node_rate_bps{node=\"Core\",direction=\"down\"}"));
    assert!(r.text.contains("lqos_scheduler_info{phase=\"idle\",integration=\"none\"} 1"));
    let app = app_with(20, &[], |o| o.metrics_enabled = false);
    assert_eq!(
        send(&app, req("GET", "/metrics").body(Body::empty()).expect("req")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn config_view_masks_secrets_and_validates_edits() {
    let conf = r#"
lqos_directory = "/tmp/lqos-test"
node_name = "shaper-1"
[bridge]
to_internet = "eth1"
to_network = "eth2"
[queues]
default_sqm = "cake diffserv4"
downlink_bandwidth_mbps = 1000
uplink_bandwidth_mbps = 1000
[uisp_integration]
enable_uisp = true
token = "super-secret-token"
url = "https://uisp.example"
"#;
    let app = app_with(5, &[("admin", "admin-password", Role::Admin)], |_| {});
    let path = app.dir.path().join("lqos.conf");
    std::fs::write(&path, conf).expect("conf");
    let mut opts = WebOptions::new(app.dir.path().to_path_buf());
    opts.config_path = Some(path.clone());
    let app = App {
        state: WebState::new(app.backend.clone(), opts).expect("state"),
        backend: app.backend,
        dir: app.dir,
    };
    let c = login(&app, "admin", "admin-password").await;
    let r = send(&app, c.get("/api/v1/config")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(!r.text.contains("super-secret-token"));
    assert!(r.text.contains("********"));
    assert_eq!(r.body["common"]["node_name"], "shaper-1");
    let r =
        send(&app, c.write("PUT", "/api/v1/config", &json!({"downlink_bandwidth_mbps": "lots"})))
            .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["errors"][0]["field"], "downlink_bandwidth_mbps");
    let r = send(&app, c.write("PUT", "/api/v1/config", &json!({"password": "x"}))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = send(
        &app,
        c.write(
            "PUT",
            "/api/v1/config",
            &json!({"node_name": "shaper-2", "downlink_bandwidth_mbps": "2000"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let text = std::fs::read_to_string(&path).expect("conf");
    assert!(text.contains("shaper-2") && text.contains("super-secret-token"));
    let r = send(&app, c.get("/api/v1/config")).await;
    assert_eq!(r.body["common"]["downlink_bandwidth_mbps"], "2000");
}

#[tokio::test]
async fn password_change_ends_sessions() {
    let app = app();
    let c = login(&app, "viewer", "viewer-password").await;
    let mut store = UserStore::load(&app.dir.path().join("lqusers.toml")).expect("users");
    store.set_password("viewer", "another-password").expect("passwd");
    store.save().expect("save");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(send(&app, c.get("/api/v1/status")).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn lqosd_down_gives_503_not_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = UserStore::load(&dir.path().join("lqusers.toml")).expect("users");
    store.add("admin", "admin-password", Role::Admin).expect("add");
    store.save().expect("save");
    let state =
        WebState::new(Arc::new(lqos_web::demo::FailingBackend), WebOptions::new(dir.path().into()))
            .expect("state");
    let app = App { state, backend: Arc::new(DemoBackend::new(1, 1)), dir };
    let c = login(&app, "admin", "admin-password").await;
    let r = send(&app, c.get("/api/v1/status")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.body["message"].as_str().expect("msg").contains("not running"));
    let r = send(&app, from_ip("127.0.0.1", req("GET", "/metrics"))).await;
    assert!(r.text.contains("lqos_up 0"), "{}", r.text);
}

/// An app whose configuration view reads `conf` (written to `<dir>/lqos.conf`), with `tweak`
/// applied to the options after the path is set.
fn app_with_conf(conf: &str, tweak: impl FnOnce(&mut WebOptions)) -> (App, std::path::PathBuf) {
    let app = app_with(5, &[("admin", "admin-password", Role::Admin)], |_| {});
    let path = app.dir.path().join("lqos.conf");
    std::fs::write(&path, conf).expect("conf");
    let mut opts = WebOptions::new(app.dir.path().to_path_buf());
    opts.config_path = Some(path.clone());
    tweak(&mut opts);
    let app = App {
        state: WebState::new(app.backend.clone(), opts).expect("state"),
        backend: app.backend,
        dir: app.dir,
    };
    (app, path)
}

const COMMENTED_CONF: &str = r#"# Shaper at the north POP -- do not touch without a ticket.
version = "1.5"
lqos_directory = "/tmp/lqos-test"   # where network.json lives
node_name = "north-1"  # shown in the GUI

[bridge]
# eth1 faces the edge router
to_internet = "eth1"
to_network = "eth2"

[queues]
default_sqm = "cake diffserv4"
# contract: 1 Gbit down
downlink_bandwidth_mbps = 1000 # keep in sync with the router
uplink_bandwidth_mbps = 1000

# lqos does not know this one; it must survive.
[custom_vendor_section]
answer = 42   # the answer

[metrics]
enabled = true
token = "scrape-me-please"
"#;

#[tokio::test]
async fn configured_metrics_token_is_required_and_masked() {
    let (config, diags) = lqos_config::parse_config_str(COMMENTED_CONF, "lqos.conf".as_ref());
    assert!(!lqos_config::has_errors(&diags), "{diags:#?}");
    let config = config.expect("config");
    let (app, _) = app_with_conf(COMMENTED_CONF, |o| {
        (o.metrics_enabled, o.metrics_token) =
            lqos_web::metrics::settings(&config.metrics, |_| None);
    });
    let r = send(&app, req("GET", "/metrics").body(Body::empty()).expect("req")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let wrong = req("GET", "/metrics")
        .header(header::AUTHORIZATION, "Bearer scrape-me-not")
        .body(Body::empty())
        .expect("req");
    assert_eq!(send(&app, wrong).await.status, StatusCode::UNAUTHORIZED);
    let right = req("GET", "/metrics")
        .header(header::AUTHORIZATION, "Bearer scrape-me-please")
        .body(Body::empty())
        .expect("req");
    let r = send(&app, right).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("lqos_up 1"));
    // The configuration view shows that a token is set, never the token.
    let c = login(&app, "admin", "admin-password").await;
    let r = send(&app, c.get("/api/v1/config")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(!r.text.contains("scrape-me-please"), "{}", r.text);
    assert_eq!(r.body["config"]["metrics"]["token"], "********");
    assert_eq!(r.body["config"]["metrics"]["enabled"], true);
}

#[tokio::test]
async fn config_edit_keeps_comments_order_and_unknown_sections() {
    use std::os::unix::fs::PermissionsExt;
    let (app, path) = app_with_conf(COMMENTED_CONF, |_| {});
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let c = login(&app, "admin", "admin-password").await;
    let r = send(
        &app,
        c.write(
            "PUT",
            "/api/v1/config",
            &json!({"node_name": "north-2", "downlink_bandwidth_mbps": "2500.5"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let text = std::fs::read_to_string(&path).expect("conf");
    let expected = COMMENTED_CONF
        .replace("node_name = \"north-1\"", "node_name = \"north-2\"")
        .replace("downlink_bandwidth_mbps = 1000 #", "downlink_bandwidth_mbps = 2500.5 #");
    assert_ne!(expected, COMMENTED_CONF);
    assert_eq!(text, expected);
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the file keeps its mode");

    // An edit that makes the file invalid is refused and nothing is written.
    let r = send(&app, c.write("PUT", "/api/v1/config", &json!({"default_sqm": "bogus"}))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "default_sqm");
    assert_eq!(std::fs::read_to_string(&path).expect("conf"), expected);
}
