//! The real server on real sockets: slowloris, connection caps, idle keep-alive, HTTPS with
//! the HTTP redirect.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lqos_web::WebState;
use lqos_web::server::{Limits, serve_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use super::app;

/// Serves `state` on 127.0.0.1:<free port>; the server stops when the sender is dropped.
async fn start(
    state: WebState,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_with(listener, state, tls, limits, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// Reads until the peer closes (or `limit`); returns everything read.
async fn read_to_close<S: AsyncReadExt + Unpin>(s: &mut S, limit: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()?;
    Some(out)
}

/// One HTTP/1.1 request on a fresh connection; returns (status line + headers, body).
async fn http<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    s: &mut S,
    request: &str,
) -> (String, String) {
    s.write_all(request.as_bytes()).await.expect("write");
    let raw = read_to_close(s, Duration::from_secs(10)).await.expect("answer within 10 s");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_owned(), body.to_owned())
}

fn login_request() -> String {
    let body = r#"{"username":"admin","password":"admin-password"}"#;
    format!(
        "POST /api/v1/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A slowloris client from `from`: an unfinished request head, one more header line every
/// 300 ms, until the server closes. Returns how long the server kept it once connected.
async fn slowloris(from: &str, to: SocketAddr) -> Duration {
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind(format!("{from}:0").parse().expect("addr")).expect("bind");
    let Ok(mut s) = sock.connect(to).await else { return Duration::ZERO };
    let start = Instant::now();
    let _ = s.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n").await;
    let mut buf = [0u8; 512];
    loop {
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => {}
            },
            () = tokio::time::sleep(Duration::from_millis(300)) => {
                let _ = s.write_all(b"X-Slow: 1\r\n").await;
            }
        }
        if start.elapsed() > Duration::from_secs(30) {
            return start.elapsed();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_do_not_stop_a_login_and_each_is_closed_within_the_timeout() {
    let app = app();
    let timeout = Duration::from_secs(2);
    let limits = Limits { header_read_timeout: timeout, ..Limits::default() };
    let (addr, _stop) = start(app.state.clone(), None, limits).await;
    // The same login without attackers, measured in the same run for comparison.
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let (head, _) = http(&mut s, &login_request()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let quiet = t0.elapsed();
    // 200 slowloris connections from another address of this host.
    let attackers: Vec<_> = (0..200).map(|_| tokio::spawn(slowloris("127.0.0.2", addr))).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let (head, body) = http(&mut s, &login_request()).await;
    let login_time = t0.elapsed();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    eprintln!("login: {quiet:?} without attackers, {login_time:?} under 200 slowloris connections");
    assert!(login_time < Duration::from_secs(2), "login took {login_time:?}");
    let mut held = Vec::new();
    for a in attackers {
        held.push(a.await.expect("attacker task"));
    }
    let longest = held.iter().max().copied().unwrap_or_default();
    let refused = held.iter().filter(|d| **d < Duration::from_millis(500)).count();
    let mut sorted = held.clone();
    sorted.sort();
    eprintln!(
        "slowloris: longest held {longest:?}, {refused} of 200 refused at once; held p10 {:?} p50 {:?} p90 {:?}",
        sorted[20], sorted[100], sorted[180]
    );
    // Each one is closed within the header timeout (plus scheduling slack), however it drips.
    assert!(longest <= timeout + Duration::from_millis(1500), "held {longest:?}");
    // Connections past the per-client cap (128 per address by default) are closed at once;
    // how many that is depends on how many were open together (see the caps test).
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_caps_and_idle_keep_alive_close() {
    let app = app();
    let limits = Limits {
        header_read_timeout: Duration::from_secs(1),
        max_connections: 4,
        max_connections_per_client: 3,
        max_requests_per_connection: 2,
        ..Limits::default()
    };
    let (addr, _stop) = start(app.state.clone(), None, limits).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A 4th connection from the same client is closed at once.
    let mut fourth = TcpStream::connect(addr).await.expect("connect");
    let t = Instant::now();
    let got = read_to_close(&mut fourth, Duration::from_secs(3)).await.expect("closed");
    assert!(got.is_empty() && t.elapsed() < Duration::from_millis(500), "{:?}", t.elapsed());
    // Idle connections (no request at all) are closed by the header timeout, freeing places.
    for mut c in held {
        let t = Instant::now();
        read_to_close(&mut c, Duration::from_secs(4)).await.expect("idle connection closed");
        assert!(t.elapsed() < Duration::from_millis(2500), "{:?}", t.elapsed());
    }
    // Keep-alive: the second request on a connection is the last.
    let mut c = TcpStream::connect(addr).await.expect("connect");
    let get = "GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n";
    c.write_all(get.as_bytes()).await.expect("write");
    c.write_all(get.as_bytes()).await.expect("write");
    let text = String::from_utf8_lossy(
        &read_to_close(&mut c, Duration::from_secs(3)).await.expect("closed after 2 requests"),
    )
    .to_lowercase();
    assert_eq!(text.matches("http/1.1 200").count(), 2, "{text}");
    assert!(text.contains("connection: close"), "{text}");
}

fn tls_client(cert_pem: &std::path::Path) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(cert_pem).expect("pem") {
        roots.add(c.expect("cert")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_the_gui_and_plain_http_only_gets_a_redirect() {
    let app =
        super::app_with(5, &[("admin", "admin-password", super::Role::Admin)], |o| o.tls = true);
    let state_dir = tempfile::tempdir().expect("tempdir");
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let setup =
        lqos_web::tls::load_or_generate(None, None, state_dir.path(), &names).expect("cert");
    let limits = Limits { header_read_timeout: Duration::from_secs(2), ..Limits::default() };
    let (addr, _stop) = start(app.state.clone(), Some(setup.config.clone()), limits).await;

    // Plain HTTP on the same port: a redirect and nothing of the application.
    let mut plain = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET /app?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        addr.port()
    );
    let (head, body) = http(&mut plain, &req).await;
    assert!(head.starts_with("HTTP/1.1 308"), "{head}");
    assert!(
        head.to_lowercase()
            .contains(&format!("location: https://127.0.0.1:{}/app?x=1", addr.port())),
        "{head}"
    );
    assert!(!body.contains("<html"), "{body}");
    let mut plain = TcpStream::connect(addr).await.expect("connect");
    let (head, _) = http(&mut plain, &login_request()).await;
    assert!(head.starts_with("HTTP/1.1 308"), "a clear-text login is not served: {head}");

    // HTTPS: the certificate verifies against the generated one, login sets a __Host- cookie.
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut tls = tls_client(&setup.cert_path).connect(name, tcp).await.expect("TLS handshake");
    let (head, body) = http(&mut tls, &login_request()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    let lower = head.to_lowercase();
    assert!(lower.contains("set-cookie: __host-lqos_session="), "{head}");
    assert!(lower.contains("; secure"), "{head}");
    assert!(lower.contains("strict-transport-security: max-age=31536000"), "{head}");

    // A client that opens TLS and stalls is dropped by the handshake timeout.
    let mut stall = TcpStream::connect(addr).await.expect("connect");
    stall.write_all(&[0x16, 0x03, 0x01]).await.expect("write");
    let t = Instant::now();
    read_to_close(&mut stall, Duration::from_secs(15)).await.expect("closed");
    assert!(t.elapsed() <= Duration::from_secs(3), "{:?}", t.elapsed());
}
