//! lqos-web is `lqos_web`, lqos's web server: the GUI, the REST API under `/api/v1` (OpenAPI
//! generated from the handlers at `/api/v1/openapi.json`, browsable at `/api-docs`; see
//! [`openapi`]), live updates over SSE (`/api/v1/events`) and Prometheus metrics
//! (`/metrics`), on `webserver_listen` (default `[::]:9123`). It runs as its own unprivileged
//! process (user `lqos`), separate from the root daemon.
//!
//! It never touches the kernel nor the applied plan: every live number and every reload goes
//! through a [`Backend`] that speaks lqos-bus [`Command`]s; in production that is
//! [`bus::BusBackend`], a client of lqosd's local bus, so a compromised web server can do no
//! more than the bus allows. The only files it writes are the users file (`lqusers.toml`, login
//! setup and admins' user management, `/api/v1/users`),
//! `ShapedDevices.csv` (admins, through lqos-config's validating writer), lqos.conf (admins,
//! configuration view) and its generated TLS certificate (`<state_directory>/web`).
//!
//! Transport rules live in [`server`] (HTTPS with redirect, header/request timeouts,
//! connection caps), [`tls`] (certificate) and [`front`] (client address behind trusted
//! proxies, `Host` check against DNS rebinding, HSTS); `/metrics` access in [`metrics`].
//!
//! Main types: [`WebState`] (everything a request needs), [`WebOptions`] (paths and switches),
//! [`Backend`] (the door to lqosd), [`ApiError`] (the one error type that becomes a response),
//! [`users::UserStore`] (the users file, shared with the `lqusers` CLI), [`app::run`] (what the
//! `lqos_web` binary does), [`server::serve_with`] (the server itself).
//!
//! ```no_run
//! # async fn demo() -> Result<(), lqos_web::ServeError> {
//! use std::sync::Arc;
//! use lqos_web::{demo::DemoBackend, serve, WebOptions, WebState};
//! let opts = WebOptions::new("/tmp/lqos".into());
//! let state = WebState::new(Arc::new(DemoBackend::new(100, 10)), opts).expect("state");
//! serve("127.0.0.1:9123", state, std::future::pending::<()>()).await
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod api;
pub mod app;
mod assets;
pub mod auth;
pub mod bus;
mod circuit;
mod csvedit;
pub mod demo;
mod editor;
mod error;
mod events;
pub mod front;
mod history;
mod insight;
pub mod metrics;
pub mod openapi;
pub mod server;
pub mod throttle;
pub mod tls;
mod useradmin;
pub mod users;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::MatchedPath;
use axum::http::Request;
use lqos_bus::{CircuitStat, Command, Response};
use tower_http::trace::TraceLayer;

pub use error::{ApiError, FieldError};
pub use server::{ServeError, serve};

/// A boxed future, as [`Backend::request`] returns it.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The web layer's only door to lqosd. `lqos_web` implements it with [`bus::BusBackend`] (the
/// local bus); tests use [`demo::DemoBackend`].
pub trait Backend: Send + Sync {
    /// Sends one command and waits for its answer.
    fn request(&self, cmd: Command) -> BoxFuture<'_, Response>;
}

/// Paths and switches of the web layer.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// `lqos_directory` (ShapedDevices.csv and network.json live here).
    pub lqos_directory: PathBuf,
    /// The users file, normally `<lqos_directory>/lqusers.toml`.
    pub users_file: PathBuf,
    /// `/etc/lqos.conf`, for the configuration view; `None` hides it.
    pub config_path: Option<PathBuf>,
    /// Serve `/metrics` at all.
    pub metrics_enabled: bool,
    /// When set, `/metrics` wants `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// Without a token: serve `/metrics` to any client (`[metrics] public = true`); otherwise
    /// only to clients on this host.
    pub metrics_public: bool,
    /// The server speaks HTTPS (`[web] tls`): cookies are `__Host-` + `Secure` and answers
    /// carry HSTS. Off, a trusted proxy's `X-Forwarded-Proto: https` decides per request.
    pub tls: bool,
    /// `[web] trusted_proxies`: peers whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Host names served besides IP literals and `localhost` (`[web] allowed_hosts` plus this
    /// machine's hostname; `"*"` = any).
    pub allowed_hosts: Vec<String>,
    /// Live event streams (`/api/v1/events`) one session may hold open at once.
    pub max_streams_per_session: usize,
    /// HMAC key for session cookies; `None` = 32 random bytes (sessions end at restart).
    pub session_key: Option<[u8; 32]>,
}

/// Default of [`WebOptions::max_streams_per_session`]: a few tabs.
pub const MAX_STREAMS_PER_SESSION: usize = 4;

impl WebOptions {
    /// Defaults for a given `lqos_directory`: users file inside it, metrics on for local
    /// clients, plain HTTP (as the router sees it; [`server`] adds TLS), no proxies.
    pub fn new(lqos_directory: PathBuf) -> Self {
        WebOptions {
            users_file: lqos_directory.join(users::USERS_FILE_NAME),
            lqos_directory,
            config_path: None,
            metrics_enabled: true,
            metrics_token: None,
            metrics_public: false,
            tls: false,
            trusted_proxies: Vec::new(),
            allowed_hosts: Vec::new(),
            max_streams_per_session: MAX_STREAMS_PER_SESSION,
            session_key: None,
        }
    }
}

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct WebState {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    opts: WebOptions,
    auth: auth::Auth,
    circuits: tokio::sync::Mutex<Option<(Instant, Arc<CircuitIndex>)>>,
    editor_lock: tokio::sync::Mutex<()>,
    last_reload: Mutex<Option<lqos_bus::ReloadReport>>,
    events: events::Hub,
}

/// How long the circuit list answer is reused for searches, sorts and pages.
const CIRCUIT_CACHE_TTL: Duration = Duration::from_secs(1);

impl WebState {
    /// Builds the state: loads the users file and, when it has no users, creates the
    /// one-time setup token (see [`WebState::setup_token`]).
    pub fn new(backend: Arc<dyn Backend>, opts: WebOptions) -> Result<WebState, users::UsersError> {
        let auth = auth::Auth::new(&opts)?;
        Ok(WebState {
            inner: Arc::new(Inner {
                backend,
                opts,
                auth,
                circuits: tokio::sync::Mutex::new(None),
                editor_lock: tokio::sync::Mutex::new(()),
                last_reload: Mutex::new(None),
                events: events::Hub::new(),
            }),
        })
    }

    /// The one-time first-admin token, while no user exists and it is unused.
    pub fn setup_token(&self) -> Option<String> {
        self.inner.auth.setup_token()
    }

    pub(crate) fn backend(&self) -> &dyn Backend {
        self.inner.backend.as_ref()
    }

    pub(crate) fn opts(&self) -> &WebOptions {
        &self.inner.opts
    }

    pub(crate) fn auth(&self) -> &auth::Auth {
        &self.inner.auth
    }

    /// All circuits (with search keys), from a cache at most [`CIRCUIT_CACHE_TTL`] old.
    pub(crate) async fn circuit_index(&self) -> Result<Arc<CircuitIndex>, ApiError> {
        let mut guard = self.inner.circuits.lock().await;
        if let Some((at, index)) = guard.as_ref()
            && at.elapsed() < CIRCUIT_CACHE_TTL
        {
            return Ok(index.clone());
        }
        let answer = self.backend().request(Command::CircuitStats { circuit: None }).await;
        let list = match answer {
            Response::Circuits(list) => list,
            other => return Err(ApiError::from_response(other)),
        };
        let index = Arc::new(CircuitIndex::new(list));
        *guard = Some((Instant::now(), index.clone()));
        Ok(index)
    }

    /// All circuits, from the cache.
    pub(crate) async fn circuits(&self) -> Result<Arc<CircuitIndex>, ApiError> {
        self.circuit_index().await
    }

    /// Drops the circuit cache (after a reload).
    pub(crate) async fn forget_circuits(&self) {
        *self.inner.circuits.lock().await = None;
    }

    pub(crate) fn set_last_reload(&self, report: lqos_bus::ReloadReport) {
        if let Ok(mut g) = self.inner.last_reload.lock() {
            *g = Some(report);
        }
    }

    pub(crate) fn last_reload(&self) -> Option<lqos_bus::ReloadReport> {
        self.inner.last_reload.lock().ok().and_then(|g| g.clone())
    }

    pub(crate) fn editor_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.inner.editor_lock
    }

    pub(crate) fn events(&self) -> &events::Hub {
        &self.inner.events
    }

    /// How many shared live ticks were computed so far (each is one Status and one
    /// TopCircuits on the bus, however many event streams are open).
    pub fn live_ticks_computed(&self) -> u64 {
        self.inner.events.computed()
    }
}

/// The circuit list with lowercase search and sort keys, built once per cache refresh.
pub(crate) struct CircuitIndex {
    pub(crate) list: Vec<CircuitStat>,
    /// Lowercase name per circuit.
    pub(crate) name_lower: Vec<String>,
    /// Lowercase `id name parent addresses…` per circuit.
    pub(crate) haystack: Vec<String>,
}

impl CircuitIndex {
    fn new(list: Vec<CircuitStat>) -> Self {
        let name_lower = list.iter().map(|c| c.name.to_lowercase()).collect();
        let haystack = list
            .iter()
            .map(|c| {
                let mut h = format!("{}\u{1}{}\u{1}{}", c.id, c.name, c.parent).to_lowercase();
                for a in &c.addresses {
                    h.push('\u{1}');
                    h.push_str(&a.to_lowercase());
                }
                h
            })
            .collect();
        CircuitIndex { list, name_lower, haystack }
    }
}

/// Every `/api/v1` route path as the router has it (relative to `/api/v1`, parameters as
/// `{name}`), for the test that checks the OpenAPI document against the router.
pub fn api_paths() -> Vec<&'static str> {
    api::routes().paths().to_vec()
}

/// Builds the whole application: pages, API, events and metrics.
pub fn router(state: WebState) -> Router {
    Router::new()
        .merge(assets::routes())
        .nest("/api/v1", api::routes().into_router())
        .merge(metrics::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::guard))
        .layer(axum::middleware::from_fn(assets::security_headers))
        .layer(axum::middleware::from_fn_with_state(state.clone(), front::front))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            server::REQUEST_TIMEOUT,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let path = req
                .extensions()
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            tracing::info_span!("http", method = %req.method(), path = %path)
        }))
        .with_state(state)
}
