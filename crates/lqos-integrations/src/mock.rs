//! A mock CRM for tests (feature `mock`): an axum server on 127.0.0.1 with a random port, in
//! its own thread and runtime, answering each path (with its query string) from a queue of
//! canned replies. The last reply of a queue repeats. An optional required header (token,
//! Basic or Bearer) is checked on every request; a mismatch gets 401.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;

/// One canned answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body (sent as `application/json`).
    pub body: String,
    /// Wait before answering.
    pub delay: Duration,
}

impl Reply {
    /// 200 with `body`.
    pub fn json(body: impl Into<String>) -> Self {
        Reply { status: 200, body: body.into(), delay: Duration::ZERO }
    }
    /// `status` with `body`.
    pub fn status(status: u16, body: impl Into<String>) -> Self {
        Reply { status, body: body.into(), delay: Duration::ZERO }
    }
    /// The same reply after `delay`.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct State {
    routes: HashMap<String, VecDeque<Reply>>,
    header: Option<(String, String)>,
    hits: HashMap<String, usize>,
}

/// The running mock; stopped on drop.
pub struct MockCrm {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MockCrm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockCrm").field("addr", &self.addr).finish()
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn answer(state: Arc<Mutex<State>>, uri: Uri, headers: HeaderMap) -> Response {
    let key = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let reply = {
        let mut st = lock(&state);
        *st.hits.entry(key.clone()).or_default() += 1;
        let authorized = st.header.as_ref().is_none_or(|(name, value)| {
            headers.get(name.as_str()).and_then(|v| v.to_str().ok()) == Some(value.as_str())
        });
        if !authorized {
            Reply::status(401, r#"{"code":401,"message":"Unauthorized"}"#)
        } else {
            match st.routes.get_mut(&key) {
                Some(q) if q.len() > 1 => q.pop_front().unwrap_or_else(|| Reply::status(500, "")),
                Some(q) => q.front().cloned().unwrap_or_else(|| Reply::status(500, "")),
                None => Reply::status(404, format!(r#"{{"message":"no route {key}"}}"#)),
            }
        }
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Body::from(reply.body))
        .unwrap_or_default()
}

impl MockCrm {
    /// Starts the server on 127.0.0.1 with a random port.
    pub fn start() -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                let app = Router::new()
                    .fallback(move |uri: Uri, headers: HeaderMap| answer(st.clone(), uri, headers));
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        Ok(MockCrm { addr, state, shutdown: Some(tx), thread: Some(thread) })
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request must carry `name: value`, else 401.
    pub fn require_header(&self, name: &str, value: &str) {
        lock(&self.state).header = Some((name.to_ascii_lowercase(), value.to_string()));
    }

    /// Answers `path_and_query` with `replies` in turn (the last one repeats).
    pub fn set(&self, path_and_query: &str, replies: Vec<Reply>) {
        lock(&self.state).routes.insert(path_and_query.to_string(), replies.into());
    }

    /// Requests seen for `path_and_query`.
    pub fn hits(&self, path_and_query: &str) -> usize {
        lock(&self.state).hits.get(path_and_query).copied().unwrap_or(0)
    }
}

impl Drop for MockCrm {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
