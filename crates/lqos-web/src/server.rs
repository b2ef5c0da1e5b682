//! The HTTP(S) server: hyper under our own accept loop, so that hostile clients cannot hold
//! the server hostage.
//!
//! * Connections are capped in total ([`Limits::max_connections`]) and per client address
//!   ([`Limits::max_connections_per_client`]; IPv6 grouped by /64). Over a cap the new
//!   connection is closed at once, so slow clients from one place cannot starve the others.
//! * Every request head must arrive within [`Limits::header_read_timeout`] (≤ 10 s), counted
//!   from the moment the server waits for it: a slowloris client, or a keep-alive connection
//!   left idle, is closed when it runs out. The TLS handshake has the same limit.
//! * Request heads are at most [`MAX_HEAD_BYTES`]; a handler gets [`REQUEST_TIMEOUT`] to
//!   produce its answer (408 after that); a connection serves at most
//!   [`Limits::max_requests_per_connection`] requests, then says `Connection: close`.
//! * With TLS, the first byte of a connection decides: a TLS handshake goes to the
//!   application, anything else gets a permanent redirect to the same URL over `https://`,
//!   on the same port. The application is never served in clear text.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::WebState;
use crate::front::host_allowed;

/// Default time a client has to send a complete request head (also the idle keep-alive limit
/// and the TLS handshake limit).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a handler has to answer (a full reload of a large tree fits).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Default cap on open connections.
pub const MAX_CONNECTIONS: usize = 1024;
/// Default cap on open connections from one client address (IPv6: one /64).
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 128;
/// Default number of requests served on one connection before it is closed.
pub const MAX_REQUESTS_PER_CONNECTION: u64 = 1000;
/// Largest request head (request line + headers) read, in bytes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The server's limits against hostile or broken clients.
#[derive(Debug, Clone)]
pub struct Limits {
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`MAX_CONNECTIONS_PER_CLIENT`].
    pub max_connections_per_client: usize,
    /// See [`MAX_REQUESTS_PER_CONNECTION`].
    pub max_requests_per_connection: u64,
    /// How long open connections may finish their request after shutdown begins.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_connections_per_client: MAX_CONNECTIONS_PER_CLIENT,
            max_requests_per_connection: MAX_REQUESTS_PER_CONNECTION,
            shutdown_grace: Duration::from_secs(3),
        }
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {listen} (webserver_listen)")]
    Bind {
        /// The address as configured.
        listen: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The listening socket failed.
    #[error("web server failed")]
    Serve {
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Binds `listen` and serves [`crate::router`] in plain HTTP with the default [`Limits`]
/// until `shutdown` completes (tests, demos; `lqos_web` uses [`serve_with`] and TLS).
pub async fn serve(
    listen: &str,
    state: WebState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listener = bind(listen).await?;
    serve_with(listener, state, None, Limits::default(), shutdown).await
}

/// Binds `listen` (`webserver_listen`).
pub async fn bind(listen: &str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Bind { listen: listen.to_owned(), source })
}

/// The address a client counts under: IPv4 as is, IPv6 by its /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// One admitted connection; gives its place back when dropped.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    key: IpAddr,
}

impl Slot {
    fn take(counts: &Arc<Mutex<Counts>>, ip: IpAddr, limits: &Limits) -> Option<Slot> {
        let key = client_key(ip);
        let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
        let mine = c.per_client.get(&key).copied().unwrap_or(0);
        if c.total >= limits.max_connections || mine >= limits.max_connections_per_client {
            return None;
        }
        c.total += 1;
        c.per_client.insert(key, mine + 1);
        Some(Slot { counts: counts.clone(), key })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_client.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_client.remove(&self.key);
            }
        }
    }
}

/// Logs at most once per `every` (accept errors and refused connections can repeat fast).
struct Throttle {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    fn new(every: Duration) -> Self {
        Throttle { every, last: None, suppressed: 0 }
    }

    /// `Some(number suppressed since the last log)` when it is time to log again.
    fn ready(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < self.every) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Serves [`crate::router`] on `listener` until `shutdown` completes: HTTPS when `tls` is
/// given (plain HTTP on the same port gets a redirect), plain HTTP otherwise. Logs the
/// first-run setup link once when no user exists yet.
pub async fn serve_with(
    listener: TcpListener,
    state: WebState,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let local = listener.local_addr().map_err(|source| ServeError::Serve { source })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%local, scheme, "web server listening");
    if let Some(token) = state.setup_token() {
        tracing::info!(
            "no web users yet: create the first admin at {scheme}://{}/setup?token={token} \
             (single use; or run `lqusers add`)",
            display_host(local)
        );
    }
    let redirect = redirect_app(state.opts().allowed_hosts.clone());
    let app = crate::router(state);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let counts = Arc::new(Mutex::new(Counts::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut refused = Throttle::new(Duration::from_secs(10));
    let mut failed = Throttle::new(Duration::from_secs(10));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors or memory: back off instead of spinning.
                if let Some(n) = failed.ready() {
                    tracing::warn!(error = %e, suppressed = n, "web server cannot accept");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = Slot::take(&counts, peer.ip(), &limits) else {
            if let Some(n) = refused.ready() {
                tracing::warn!(
                    client = %client_key(peer.ip()),
                    suppressed = n,
                    "connection refused: too many open connections (total or from this client)"
                );
            }
            drop(tcp);
            continue;
        };
        let (app, redirect, acceptor, limits, stop) =
            (app.clone(), redirect.clone(), acceptor.clone(), limits.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let _slot = slot;
            connection(tcp, peer, app, redirect, acceptor, limits, stop).await;
        });
    }
    tracing::info!("web server stopping: no new connections");
    let _ = stop_tx.send(true);
    let start = Instant::now();
    while counts.lock().map(|c| c.total).unwrap_or(0) > 0 && start.elapsed() < limits.shutdown_grace
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    redirect: Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let Some(acceptor) = acceptor else {
        return serve_connection(TokioIo::new(tcp), peer, app, &limits, stop).await;
    };
    let mut first = [0u8; 1];
    match tokio::time::timeout(limits.header_read_timeout, tcp.peek(&mut first)).await {
        Ok(Ok(1..)) => {}
        _ => return,
    }
    // 0x16: a TLS handshake record. Anything else is taken for plain HTTP.
    if first[0] != 0x16 {
        return serve_connection(TokioIo::new(tcp), peer, redirect, &limits, stop).await;
    }
    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => serve_connection(TokioIo::new(stream), peer, app, &limits, stop).await,
        Ok(Err(e)) => tracing::debug!(client = %peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(client = %peer, "TLS handshake timed out"),
    }
}

async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    limits: &Limits,
    mut stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let served = Arc::new(AtomicU64::new(0));
    let max_requests = limits.max_requests_per_connection;
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let n = served.fetch_add(1, Ordering::Relaxed) + 1;
        let app = app.clone();
        async move {
            let Ok(mut resp) = app.oneshot(req).await;
            if n >= max_requests {
                resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(resp)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BYTES);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let stopping = async move {
        // Only the end of the wait matters; the guard it returns is not kept across awaits.
        let _ = stop.wait_for(|s| *s).await.is_ok();
    };
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(client = %peer, error = %e, "connection closed");
            }
        }
        () = stopping => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits.shutdown_grace, conn).await;
        }
    }
}

/// What plain HTTP gets when the server speaks HTTPS: 308 to the same URL over `https://`,
/// for allowed hosts only.
fn redirect_app(allowed_hosts: Vec<String>) -> Router {
    Router::new().fallback(move |headers: HeaderMap, uri: Uri| {
        let allowed = allowed_hosts.clone();
        async move {
            let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !host_allowed(host, &allowed) {
                return (StatusCode::MISDIRECTED_REQUEST, "use https:// with a served host name\n")
                    .into_response();
            }
            let path = uri.path_and_query().map_or("/", |p| p.as_str());
            Redirect::permanent(&format!("https://{host}{path}")).into_response()
        }
    })
}

fn display_host(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("<this-host>:{}", addr.port())
    } else {
        addr.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_by_64_and_caps_hold() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key("2001:db8:1:3::1".parse().expect("ip")));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        assert_eq!(client_key(mapped), "192.0.2.1".parse::<IpAddr>().expect("ip"));

        let limits =
            Limits { max_connections: 3, max_connections_per_client: 2, ..Limits::default() };
        let counts = Arc::new(Mutex::new(Counts::default()));
        let s1 = Slot::take(&counts, a, &limits).expect("first");
        let _s2 = Slot::take(&counts, b, &limits).expect("second, same /64");
        assert!(Slot::take(&counts, a, &limits).is_none(), "third from the same /64");
        let _s3 = Slot::take(&counts, "192.0.2.7".parse().expect("ip"), &limits).expect("other");
        assert!(Slot::take(&counts, "192.0.2.8".parse().expect("ip"), &limits).is_none(), "total");
        drop(s1);
        assert!(Slot::take(&counts, a, &limits).is_some(), "a place came back");
    }
}
