//! Sessions, CSRF, login rate limiting and the first-run setup token.
//!
//! * Session cookie `lqos_session = v1.<base64url(JSON claims)>.<base64url(HMAC-SHA256)>`,
//!   `HttpOnly; SameSite=Strict; Path=/` (+`Secure` behind HTTPS), 12 h lifetime. The claims
//!   carry a fingerprint of the user's password hash, so `lqusers passwd`/`del` ends that
//!   user's sessions; the role is always taken from the users file, re-read when it changes.
//!   Logout revokes that one session server-side (its nonce is remembered until it expires).
//!   Long-lived responses (the SSE stream) re-check the session on every tick.
//! * CSRF: every POST/PUT/PATCH/DELETE except login and setup needs `X-CSRF-Token` equal to the
//!   session's token (returned by `GET /api/v1/session`); any request with an `Origin` header
//!   that does not match `Host` is refused. Login and setup need a JSON body, which a
//!   cross-site form cannot send without a CORS preflight (and there is no CORS layer).
//! * Login: at most [`MAX_FAILURES`] failed attempts per client IP per [`FAILURE_WINDOW`].
//! * First run: while the users file is empty, a random token is made at start; only a
//!   request carrying it can create the first admin, once.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::users::{Role, User, UserStore, UsersError};
use super::{ApiError, WebOptions, WebState};

/// Session cookie name.
pub const COOKIE_NAME: &str = "lqos_session";
/// CSRF header name.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Session lifetime.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Failed logins allowed per client per window.
pub const MAX_FAILURES: usize = 5;
/// The rate-limit window.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

type HmacSha256 = Hmac<Sha256>;

/// A logged-in user, as handlers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// Login name.
    pub username: String,
    /// Current role.
    pub role: Role,
    /// The CSRF token to send back in `X-CSRF-Token`.
    pub csrf: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    tag: String,
    iat: u64,
    exp: u64,
    nonce: String,
}

struct CachedUsers {
    fingerprint: Option<(SystemTime, u64)>,
    checked: Instant,
    store: UserStore,
}

/// Authentication state shared by all requests.
pub struct Auth {
    users_file: PathBuf,
    users: RwLock<CachedUsers>,
    key: [u8; 32],
    secure: bool,
    setup_token: Mutex<Option<String>>,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// Nonces of logged-out sessions, with their expiry (unix seconds).
    revoked: Mutex<HashMap<String, u64>>,
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn fingerprint(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let md = std::fs::metadata(path).ok()?;
    Some((md.modified().ok()?, md.len()))
}

fn hash_tag(user: &User) -> String {
    hex::encode(&Sha256::digest(user.password_hash.as_bytes())[..8])
}

impl Auth {
    pub(crate) fn new(opts: &WebOptions) -> Result<Auth, UsersError> {
        let store = UserStore::load(&opts.users_file)?;
        let setup_token = store.is_empty().then(|| hex::encode(rand::random::<[u8; 16]>()));
        Ok(Auth {
            users_file: opts.users_file.clone(),
            users: RwLock::new(CachedUsers {
                fingerprint: fingerprint(&opts.users_file),
                checked: Instant::now(),
                store,
            }),
            key: opts.session_key.unwrap_or_else(rand::random),
            secure: opts.secure_cookies,
            setup_token: Mutex::new(setup_token),
            failures: Mutex::new(HashMap::new()),
            revoked: Mutex::new(HashMap::new()),
        })
    }

    /// The first-run token while it is still usable.
    pub fn setup_token(&self) -> Option<String> {
        if !self.with_users(|s| s.is_empty()) {
            return None;
        }
        self.setup_token.lock().ok().and_then(|t| t.clone())
    }

    /// Runs `f` on the current users, re-reading the file at most once a second when it changed.
    pub(crate) fn with_users<T>(&self, f: impl FnOnce(&UserStore) -> T) -> T {
        let stale =
            self.users.read().map(|c| c.checked.elapsed() > Duration::from_secs(1)).unwrap_or(true);
        if stale && let Ok(mut c) = self.users.write() {
            c.checked = Instant::now();
            let fp = fingerprint(&self.users_file);
            if fp != c.fingerprint {
                match UserStore::load(&self.users_file) {
                    Ok(store) => {
                        c.store = store;
                        c.fingerprint = fp;
                    }
                    Err(e) => tracing::warn!(error = %e, "keeping the previous users list"),
                }
            }
        }
        match self.users.read() {
            Ok(c) => f(&c.store),
            Err(poisoned) => f(&poisoned.into_inner().store),
        }
    }

    /// Replaces the cached users after this process wrote the file.
    fn replace_users(&self, store: UserStore) {
        if let Ok(mut c) = self.users.write() {
            c.fingerprint = fingerprint(&self.users_file);
            c.checked = Instant::now();
            c.store = store;
        }
    }

    fn sign(&self, data: &[u8]) -> Vec<u8> {
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    fn csrf_for(&self, nonce: &str) -> String {
        hex::encode(&self.sign(format!("csrf|{nonce}").as_bytes())[..16])
    }

    /// Makes a session cookie value for `user`.
    pub(crate) fn issue(&self, user: &User) -> (String, Session) {
        let now = now_unix();
        let claims = Claims {
            sub: user.username.clone(),
            tag: hash_tag(user),
            iat: now,
            exp: now + SESSION_LIFETIME.as_secs(),
            nonce: hex::encode(rand::random::<[u8; 16]>()),
        };
        let body = B64.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signed = format!("v1.{body}");
        let sig = B64.encode(self.sign(signed.as_bytes()));
        let session = Session {
            username: user.username.clone(),
            role: user.role,
            csrf: self.csrf_for(&claims.nonce),
        };
        (format!("{signed}.{sig}"), session)
    }

    /// The claims of a genuine, unexpired cookie value (revocation not checked).
    fn decode(&self, value: &str) -> Option<Claims> {
        let (signed, sig) = value.rsplit_once('.')?;
        let body = signed.strip_prefix("v1.")?;
        let sig = B64.decode(sig).ok()?;
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key).ok()?;
        mac.update(signed.as_bytes());
        mac.verify_slice(&sig).ok()?;
        let claims: Claims = serde_json::from_slice(&B64.decode(body).ok()?).ok()?;
        (claims.exp > now_unix()).then_some(claims)
    }

    /// Checks a cookie value; `None` for anything forged, expired, logged out or stale
    /// (user deleted or password changed).
    pub(crate) fn verify(&self, value: &str) -> Option<Session> {
        let claims = self.decode(value)?;
        let revoked = match self.revoked.lock() {
            Ok(r) => r.contains_key(&claims.nonce),
            Err(poisoned) => poisoned.into_inner().contains_key(&claims.nonce),
        };
        if revoked {
            return None;
        }
        self.with_users(|store| {
            let user = store.get(&claims.sub)?;
            (hash_tag(user) == claims.tag).then(|| Session {
                username: user.username.clone(),
                role: user.role,
                csrf: self.csrf_for(&claims.nonce),
            })
        })
    }

    /// Ends the session of cookie `value` server-side (logout); forgets expired revocations.
    pub(crate) fn revoke(&self, value: &str) {
        let Some(claims) = self.decode(value) else { return };
        let mut map = match self.revoked.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = now_unix();
        map.retain(|_, exp| *exp > now);
        map.insert(claims.nonce, claims.exp);
    }

    /// `Set-Cookie` value for a new session.
    pub(crate) fn cookie(&self, value: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            SESSION_LIFETIME.as_secs()
        )
    }

    /// `Set-Cookie` value that ends the session.
    pub(crate) fn clear_cookie(&self) -> String {
        format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
    }

    /// Err when `client` failed too often recently.
    pub(crate) fn check_rate(&self, client: &str) -> Result<(), ApiError> {
        let Ok(mut map) = self.failures.lock() else { return Ok(()) };
        let now = Instant::now();
        if let Some(q) = map.get_mut(client) {
            while q.front().is_some_and(|t| now.duration_since(*t) > FAILURE_WINDOW) {
                q.pop_front();
            }
            if q.len() >= MAX_FAILURES {
                let oldest = q.front().copied().unwrap_or(now);
                let wait = FAILURE_WINDOW.saturating_sub(now.duration_since(oldest));
                return Err(ApiError::RateLimited { retry_after_secs: wait.as_secs().max(1) });
            }
        }
        Ok(())
    }

    pub(crate) fn record_failure(&self, client: &str) {
        let Ok(mut map) = self.failures.lock() else { return };
        if map.len() > 10_000 {
            let now = Instant::now();
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < FAILURE_WINDOW));
        }
        map.entry(client.to_owned()).or_default().push_back(Instant::now());
    }

    /// Checks a password (Argon2id, run off the async threads).
    pub(crate) async fn login(&self, username: &str, password: &str) -> Option<User> {
        let store = self.with_users(|s| s.clone());
        let (u, p) = (username.to_owned(), password.to_owned());
        tokio::task::spawn_blocking(move || store.verify(&u, &p).cloned()).await.ok().flatten()
    }

    /// Creates the first admin with the setup token; the token is used up on success.
    pub(crate) async fn first_admin(
        &self,
        token: &str,
        username: &str,
        password: &str,
    ) -> Result<User, ApiError> {
        let expected = {
            let guard = self
                .setup_token
                .lock()
                .map_err(|_| ApiError::Internal { message: "setup lock poisoned".into() })?;
            guard.clone()
        };
        if !self.with_users(|s| s.is_empty()) {
            return Err(ApiError::Conflict {
                message: "setup is already done; log in instead".into(),
            });
        }
        let Some(expected) = expected else {
            return Err(ApiError::Forbidden { message: "setup token already used".into() });
        };
        if !constant_eq(expected.as_bytes(), token.as_bytes()) {
            return Err(ApiError::Forbidden { message: "invalid setup token".into() });
        }
        let path = self.users_file.clone();
        let (u, p) = (username.to_owned(), password.to_owned());
        let store = tokio::task::spawn_blocking(move || -> Result<UserStore, UsersError> {
            let mut store = UserStore::load(&path)?;
            if !store.is_empty() {
                return Err(UsersError::Exists { username: u });
            }
            store.add(&u, &p, Role::Admin)?;
            store.save()?;
            Ok(store)
        })
        .await
        .map_err(|e| ApiError::Internal { message: e.to_string() })?
        .map_err(users_error)?;
        if let Ok(mut t) = self.setup_token.lock() {
            *t = None;
        }
        let user = store
            .get(username)
            .cloned()
            .ok_or_else(|| ApiError::Internal { message: "user vanished".into() })?;
        self.replace_users(store);
        Ok(user)
    }
}

/// Maps user-store errors: rule violations are the caller's fault, I/O is ours.
pub(crate) fn users_error(e: UsersError) -> ApiError {
    match e {
        UsersError::BadUsername { .. } => ApiError::Validation {
            errors: vec![super::FieldError::new("username", e.to_string())],
            diagnostics: vec![],
        },
        UsersError::WeakPassword => ApiError::Validation {
            errors: vec![super::FieldError::new("password", e.to_string())],
            diagnostics: vec![],
        },
        UsersError::Exists { .. } => ApiError::Conflict { message: e.to_string() },
        UsersError::NoSuchUser { .. } => ApiError::NotFound { what: "user".into() },
        other => ApiError::Internal { message: format!("{other:#}") },
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Constant-time comparison of two secrets.
pub(crate) fn secret_eq(a: &str, b: &str) -> bool {
    constant_eq(a.as_bytes(), b.as_bytes())
}

/// The session cookie's value in `parts`, if any.
pub(crate) fn cookie_value(parts: &axum::http::HeaderMap) -> Option<&str> {
    parts
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v)
}

/// Paths under `/api/v1` reachable without a session.
fn is_public_api(path: &str) -> bool {
    matches!(
        path,
        "/api/v1/login"
            | "/api/v1/setup"
            | "/api/v1/setup/status"
            | "/api/v1/health"
            | "/api/v1/openapi.json"
    )
}

fn origin_matches_host(headers: &axum::http::HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or(origin);
    origin_host.trim_end_matches('/') == host
}

/// Middleware: attaches the [`Session`], enforces login on the API and CSRF on writes.
pub(crate) async fn guard(State(state): State<WebState>, mut req: Request, next: Next) -> Response {
    let session = cookie_value(req.headers()).and_then(|v| state.auth().verify(v));
    let path = req.uri().path().to_owned();
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method {
        if !origin_matches_host(req.headers()) {
            return ApiError::Forbidden { message: "cross-origin request refused".into() }
                .into_response();
        }
        if !is_public_api(&path) {
            let Some(s) = &session else { return ApiError::Unauthorized.into_response() };
            let sent = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !secret_eq(sent, &s.csrf) {
                return ApiError::Forbidden { message: "missing or wrong X-CSRF-Token".into() }
                    .into_response();
            }
        }
    }
    if path.starts_with("/api/v1/") && !is_public_api(&path) && session.is_none() {
        return ApiError::Unauthorized.into_response();
    }
    if let Some(s) = session {
        req.extensions_mut().insert(s);
    }
    next.run(req).await
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Session>().cloned().ok_or(ApiError::Unauthorized)
    }
}

/// A session with the admin role (403 otherwise).
pub struct Admin(pub Session);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, s).await?;
        if session.role != Role::Admin {
            return Err(ApiError::Forbidden { message: "admin role required".into() });
        }
        Ok(Admin(session))
    }
}

/// The client's address for rate limiting (`unknown` without connection info, e.g. in tests).
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_else(|| "unknown".into()),
        ))
    }
}
