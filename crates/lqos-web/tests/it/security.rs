//! Attacks on the router: DNS rebinding (Host), /metrics from elsewhere, cookies and Origin
//! over HTTPS and behind a proxy.

use axum::http::{StatusCode, header};
use serde_json::json;

use super::{Role, app, app_with, bare, from_ip, json_req, req, send};

#[tokio::test]
async fn dns_rebinding_host_names_are_refused_before_any_handler() {
    let app = app();
    // A page on evil.example whose name now points at the shaper: the browser sends its own
    // Host. Public and private paths alike are refused; the login form cannot be driven.
    for path in ["/app", "/api/v1/health", "/api/v1/setup/status", "/metrics"] {
        let r = send(
            &app,
            from_ip("127.0.0.1", bare("GET", path).header(header::HOST, "evil.example:9123")),
        )
        .await;
        assert_eq!(r.status, StatusCode::MISDIRECTED_REQUEST, "{path}");
    }
    let login = bare("POST", "/api/v1/login")
        .header(header::HOST, "evil.example")
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(
            json!({"username": "admin", "password": "admin-password"}).to_string(),
        ))
        .expect("req");
    assert_eq!(send(&app, login).await.status, StatusCode::MISDIRECTED_REQUEST);
    // IP literals and localhost are always served; other names only when listed.
    for host in ["192.0.2.10:9123", "[2001:db8::1]:9123", "localhost:9123"] {
        let r = send(
            &app,
            bare("GET", "/api/v1/health")
                .header(header::HOST, host)
                .body(axum::body::Body::empty())
                .expect("req"),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{host}");
    }
    // Two Host headers (a proxy confusion trick) are refused outright.
    let two = req("GET", "/api/v1/health")
        .header(header::HOST, "evil.example")
        .body(axum::body::Body::empty())
        .expect("req");
    assert_eq!(send(&app, two).await.status, StatusCode::BAD_REQUEST);
    let listed = app_with(5, &[], |o| o.allowed_hosts = vec!["shaper.example.net".into()]);
    let r = send(
        &listed,
        bare("GET", "/api/v1/health")
            .header(header::HOST, "Shaper.Example.Net:9123")
            .body(axum::body::Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_are_not_public_by_default() {
    // No token, not public: this host only.
    let app = app_with(20, &[], |_| {});
    let r = send(&app, from_ip("192.0.2.50", req("GET", "/metrics"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(!r.text.contains("lqos_"), "nothing leaks: {}", r.text);
    assert_eq!(
        send(&app, from_ip("2001:db8::5", req("GET", "/metrics"))).await.status,
        StatusCode::FORBIDDEN
    );
    for local in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
        let r = send(&app, from_ip(local, req("GET", "/metrics"))).await;
        assert_eq!(r.status, StatusCode::OK, "{local}");
        assert!(r.text.contains("lqos_up 1"));
    }
    // Behind a trusted proxy on this host, the forwarded client counts, not the proxy.
    let proxied =
        app_with(20, &[], |o| o.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")]);
    let r = send(
        &proxied,
        from_ip("127.0.0.1", req("GET", "/metrics").header("x-forwarded-for", "192.0.2.50")),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // With a token, everyone needs it (this host too); with public = true nobody does.
    let token = app_with(20, &[], |o| o.metrics_token = Some("s3cret-token".into()));
    let r = send(&token, from_ip("127.0.0.1", req("GET", "/metrics"))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
    for wrong in [
        "Bearer s3cret-toke",
        "Bearer s3cret-token-and-more",
        "Bearer ",
        "Bearer S3CRET-TOKEN",
        "s3cret-token",
    ] {
        let r = send(
            &token,
            from_ip("192.0.2.50", req("GET", "/metrics").header(header::AUTHORIZATION, wrong)),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{wrong}");
    }
    let r = send(
        &token,
        from_ip(
            "192.0.2.50",
            req("GET", "/metrics").header(header::AUTHORIZATION, "Bearer s3cret-token"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let public = app_with(20, &[], |o| o.metrics_public = true);
    assert_eq!(
        send(&public, from_ip("192.0.2.50", req("GET", "/metrics"))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn over_https_the_cookie_is_host_prefixed_secure_and_answers_carry_hsts() {
    let app = app_with(5, &[("admin", "admin-password", Role::Admin)], |o| o.tls = true);
    let body = json!({"username": "admin", "password": "admin-password"});
    let r = send(&app, json_req("POST", "/api/v1/login", &body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let set = r.headers[header::SET_COOKIE].to_str().expect("ascii").to_owned();
    assert!(set.starts_with("__Host-lqos_session="), "{set}");
    assert!(set.contains("; Secure") && set.contains("Path=/") && !set.contains("Domain"), "{set}");
    assert_eq!(r.headers[header::STRICT_TRANSPORT_SECURITY], "max-age=31536000");
    let pair = set.split(';').next().expect("pair").to_owned();
    let csrf = r.body["csrf"].as_str().expect("csrf").to_owned();
    // The cookie works; the plain-HTTP name is not read over HTTPS.
    let ok = req("GET", "/api/v1/session")
        .header(header::COOKIE, &pair)
        .body(axum::body::Body::empty())
        .expect("req");
    assert_eq!(send(&app, ok).await.status, StatusCode::OK);
    let value = pair.split_once('=').expect("=").1;
    let plain_name = req("GET", "/api/v1/session")
        .header(header::COOKIE, format!("lqos_session={value}"))
        .body(axum::body::Body::empty())
        .expect("req");
    assert_eq!(send(&app, plain_name).await.status, StatusCode::UNAUTHORIZED);
    // Writes: the Origin must be this server over https.
    let write = |origin: &str| {
        req("POST", "/api/v1/dry-run")
            .header(header::COOKIE, &pair)
            .header("x-csrf-token", &csrf)
            .header(header::ORIGIN, origin)
            .body(axum::body::Body::empty())
            .expect("req")
    };
    assert_eq!(send(&app, write("http://localhost")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(send(&app, write("https://evil.example")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(send(&app, write("https://localhost")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn tls_off_behind_a_trusted_proxy_follows_its_forwarded_proto_and_host() {
    let app = app_with(5, &[("admin", "admin-password", Role::Admin)], |o| {
        o.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")];
        o.allowed_hosts = vec!["shaper.example.net".into()];
    });
    let login = |from: &str, proto: &str| {
        let b = req("POST", "/api/v1/login")
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-forwarded-proto", proto)
            .header("x-forwarded-host", "shaper.example.net")
            .extension(axum::extract::ConnectInfo(
                format!("{from}:40000").parse::<std::net::SocketAddr>().expect("addr"),
            ));
        b.body(axum::body::Body::from(
            json!({"username": "admin", "password": "admin-password"}).to_string(),
        ))
        .expect("req")
    };
    let r = send(&app, login("127.0.0.1", "https")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let set = r.headers[header::SET_COOKIE].to_str().expect("ascii");
    assert!(set.starts_with("__Host-lqos_session=") && set.contains("; Secure"), "{set}");
    // The same headers from a client that is not a trusted proxy change nothing.
    let r = send(&app, login("192.0.2.9", "https")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let set = r.headers[header::SET_COOKIE].to_str().expect("ascii");
    assert!(set.starts_with("lqos_session=") && !set.contains("Secure"), "{set}");
    assert!(!r.headers.contains_key(header::STRICT_TRANSPORT_SECURITY));
}

/// A `Write` into a shared buffer, for capturing log lines.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_login_never_logs_the_typed_username() {
    let app = app();
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let typed = json!({"username": "Tr0ub4dor&3-typed-here", "password": "wrong-password"});
    let r = send(&app, json_req("POST", "/api/v1/login", &typed)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let text = String::from_utf8_lossy(&logs.0.lock().expect("lock")).into_owned();
    assert!(text.contains("failed login"), "{text}");
    assert!(!text.contains("Tr0ub4dor"), "{text}");
}
