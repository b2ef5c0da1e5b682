//! Sessions, CSRF, login rate limiting and the first-run setup token.
//!
//! * Session cookie `v1.<base64url(JSON claims)>.<base64url(HMAC-SHA256)>`, 12 h lifetime,
//!   `HttpOnly; SameSite=Strict; Path=/`. Over HTTPS it is `__Host-lqos_session` with
//!   `Secure` (the browser then refuses it from plain HTTP, from another port's server setting
//!   it, or with a Domain), and only that name is read; over plain HTTP (`[web] tls = "off"`
//!   without a proxy saying `X-Forwarded-Proto: https`) it is `lqos_session`. The claims
//!   carry a fingerprint of the user's password hash and role, so `lqusers passwd`/`del` and
//!   the GUI's user management (delete, reset password, change role) end that user's
//!   sessions; the role is always taken from the users file, re-read when it changes.
//!   Logout revokes that one session server-side (its nonce is remembered until it expires).
//!   Long-lived responses (the SSE stream) re-check the session on every tick.
//! * CSRF: every POST/PUT/PATCH/DELETE except login and setup needs `X-CSRF-Token` equal to the
//!   session's token (returned by `GET /api/v1/session`); any write with an `Origin` header
//!   other than this server's own scheme and host (see [`crate::front::Peer`]) is refused. Login and setup need a JSON body, which a
//!   cross-site form cannot send without a CORS preflight (and there is no CORS layer).
//! * Login: see [`crate::throttle`] — attempts counted per client (IPv6 by /64, behind
//!   `trusted_proxies` the forwarded address) and per username before Argon2 runs, Argon2 on a
//!   small fixed pool, the surplus answered 429. Failed logins are logged without the typed
//!   username (it is often a password typed in the wrong field).
//! * First run: while no admin exists, a random token is made at start. It expires after
//!   [`SETUP_TOKEN_LIFETIME`], works once (creation runs under one lock, so two concurrent
//!   requests cannot both create an admin), and is dead as soon as any admin exists.
//! * A users file that does not parse denies every login (and setup) until it is fixed; the
//!   previous list is not kept.

use std::collections::HashMap;
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

use super::front::Peer;
use super::users::{Role, User, UserStore, UsersError};
use super::{ApiError, WebOptions, WebState};

/// Session cookie name over plain HTTP.
pub const COOKIE_NAME: &str = "lqos_session";
/// Session cookie name over HTTPS.
pub const SECURE_COOKIE_NAME: &str = "__Host-lqos_session";

/// The cookie name for a connection that is (or is not) HTTPS.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure { SECURE_COOKIE_NAME } else { COOKIE_NAME }
}
/// CSRF header name.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Session lifetime.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Failed logins allowed per client per window.
pub const MAX_FAILURES: usize = crate::throttle::MAX_PER_CLIENT;
/// The rate-limit window.
pub const FAILURE_WINDOW: Duration = crate::throttle::CLIENT_WINDOW;
/// How long the first-run setup token works after start.
pub const SETUP_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// User-management writes (create, delete, change role, reset password) allowed per client
/// and per acting admin. Every write counts, successful or not: each may cost an Argon2 hash
/// and an fsync. Beyond it the answer is 429 with `Retry-After`, as for logins.
pub const ADMIN_WRITE_LIMITS: crate::throttle::Limits = crate::throttle::Limits {
    per_client: 20,
    client_window: Duration::from_secs(60),
    per_user: 60,
    user_window: Duration::from_secs(300),
};

type HmacSha256 = Hmac<Sha256>;

/// A logged-in user, as handlers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Session {
    /// Login name.
    pub username: String,
    /// Current role.
    pub role: Role,
    /// The CSRF token to send back in `X-CSRF-Token`.
    pub csrf: String,
    /// This session's own id (its nonce), never sent to the client.
    #[serde(skip)]
    pub id: String,
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
    /// Why the file on disk is unusable (it does not parse): everyone is denied meanwhile.
    broken: Option<String>,
}

/// Authentication state shared by all requests.
pub struct Auth {
    users_file: PathBuf,
    users: RwLock<CachedUsers>,
    key: [u8; 32],
    setup_token: Mutex<Option<(String, Instant)>>,
    /// Held across first-admin creation: one creation at a time.
    setup_lock: tokio::sync::Mutex<()>,
    throttle: crate::throttle::Throttle,
    /// User-management writes, counted per client and per acting admin (see
    /// [`ADMIN_WRITE_LIMITS`]).
    admin_throttle: crate::throttle::Throttle,
    hashers: crate::throttle::HashPool,
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

/// What a session is bound to besides the name: the password hash, the role and the user's
/// generation. A new password or another role (from the GUI or `lqusers`) ends every session
/// of that user, for good (the generation only grows).
fn hash_tag(user: &User) -> String {
    let mut h = Sha256::new();
    h.update(user.role.as_str().as_bytes());
    h.update(b"|");
    h.update(user.generation.to_le_bytes());
    h.update(b"|");
    h.update(user.password_hash.as_bytes());
    hex::encode(&h.finalize()[..8])
}

impl Auth {
    pub(crate) fn new(opts: &WebOptions) -> Result<Auth, UsersError> {
        let store = UserStore::load(&opts.users_file)?;
        let setup_token =
            (!has_admin(&store)).then(|| (hex::encode(rand::random::<[u8; 16]>()), Instant::now()));
        Ok(Auth {
            users_file: opts.users_file.clone(),
            users: RwLock::new(CachedUsers {
                fingerprint: fingerprint(&opts.users_file),
                checked: Instant::now(),
                store,
                broken: None,
            }),
            key: opts.session_key.unwrap_or_else(rand::random),
            setup_token: Mutex::new(setup_token),
            setup_lock: tokio::sync::Mutex::new(()),
            throttle: crate::throttle::Throttle::default(),
            admin_throttle: crate::throttle::Throttle::with_limits(ADMIN_WRITE_LIMITS),
            hashers: crate::throttle::HashPool::new(
                crate::throttle::HASH_WORKERS,
                crate::throttle::HASH_QUEUE,
            ),
            revoked: Mutex::new(HashMap::new()),
        })
    }

    /// The first-run token while it is still usable: unused, younger than
    /// [`SETUP_TOKEN_LIFETIME`], no admin in the users file, and the file readable.
    pub fn setup_token(&self) -> Option<String> {
        if !self.with_users(|s| !has_admin(s)) || self.users_broken().is_some() {
            return None;
        }
        let guard = self.setup_token.lock().ok()?;
        let (token, made) = guard.as_ref()?;
        (made.elapsed() < SETUP_TOKEN_LIFETIME).then(|| token.clone())
    }

    /// Why the users file is unusable right now, if it is.
    pub(crate) fn users_broken(&self) -> Option<String> {
        self.with_users(|_| ());
        self.users.read().ok().and_then(|c| c.broken.clone())
    }

    /// True when the users file has no user at all (first run).
    pub(crate) fn no_users(&self) -> bool {
        self.users_broken().is_none() && self.with_users(UserStore::is_empty)
    }

    /// Runs `f` on the current users, re-reading the file at most once a second when it changed.
    pub(crate) fn with_users<T>(&self, f: impl FnOnce(&UserStore) -> T) -> T {
        let stale =
            self.users.read().map(|c| c.checked.elapsed() > Duration::from_secs(1)).unwrap_or(true);
        if stale && let Ok(mut c) = self.users.write() {
            c.checked = Instant::now();
            let fp = fingerprint(&self.users_file);
            if fp != c.fingerprint {
                c.fingerprint = fp;
                match UserStore::load(&self.users_file) {
                    Ok(store) => {
                        c.store = store;
                        c.broken = None;
                    }
                    Err(e) => {
                        // Deny everyone rather than keep a list the operator meant to change
                        // (a deleted user must not keep access because the file broke).
                        let why = anyhow_chain(&e);
                        tracing::error!(error = %why, "users file unusable: every login is refused until it is fixed");
                        c.store = UserStore::empty(&self.users_file);
                        c.broken = Some(why);
                    }
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
            c.broken = None;
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
            id: claims.nonce.clone(),
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
                id: claims.nonce.clone(),
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

    /// `Set-Cookie` value for a new session (`secure`: the browser talks HTTPS).
    pub(crate) fn cookie(&self, value: &str, secure: bool) -> String {
        let name = cookie_name(secure);
        let flag = if secure { "; Secure" } else { "" };
        format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{flag}",
            SESSION_LIFETIME.as_secs()
        )
    }

    /// `Set-Cookie` value that ends the session.
    pub(crate) fn clear_cookie(&self, secure: bool) -> String {
        let name = cookie_name(secure);
        let flag = if secure { "; Secure" } else { "" };
        format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{flag}")
    }

    /// Checks a login. The attempt is counted in the client and username buckets before the
    /// password is hashed (429 when either is full), then verified on the hashing pool (429
    /// when it is saturated). `Ok(None)`: wrong name or password, or an unusable users file.
    pub(crate) async fn login(
        &self,
        client: &str,
        username: &str,
        password: &str,
    ) -> Result<Option<User>, ApiError> {
        let ticket = self
            .throttle
            .admit(client, username, Instant::now())
            .map_err(|wait| ApiError::RateLimited { retry_after_secs: wait })?;
        if let Some(why) = self.users_broken() {
            tracing::warn!(%client, error = %why, "login refused: the users file is unusable");
            return Ok(None);
        }
        let store = self.with_users(|s| s.clone());
        let (u, p) = (username.to_owned(), password.to_owned());
        let user = self
            .hashers
            .run(move || store.verify(&u, &p).cloned())
            .await
            .map_err(|_| ApiError::RateLimited { retry_after_secs: 1 })?;
        if user.is_some() {
            self.throttle.succeeded(ticket);
        }
        Ok(user)
    }

    /// Creates the first admin with the setup token; the token is used up on success. One
    /// creation at a time (a lock), so the token works once even under concurrent requests.
    pub(crate) async fn first_admin(
        &self,
        client: &str,
        token: &str,
        username: &str,
        password: &str,
    ) -> Result<User, ApiError> {
        let ticket = self
            .throttle
            .admit(client, "\u{0}setup", Instant::now())
            .map_err(|wait| ApiError::RateLimited { retry_after_secs: wait })?;
        let _one_at_a_time = self.setup_lock.lock().await;
        if let Some(why) = self.users_broken() {
            return Err(ApiError::Conflict {
                message: format!("the users file is unusable ({why}); fix it first"),
            });
        }
        if self.with_users(has_admin) {
            return Err(ApiError::Conflict {
                message: "setup is already done; log in instead".into(),
            });
        }
        let expected = {
            let guard = self
                .setup_token
                .lock()
                .map_err(|_| ApiError::Internal { message: "setup lock poisoned".into() })?;
            guard.clone()
        };
        let Some((expected, made)) = expected else {
            return Err(ApiError::Forbidden { message: "setup token already used".into() });
        };
        if !constant_eq(expected.as_bytes(), token.as_bytes()) {
            return Err(ApiError::Forbidden { message: "invalid setup token".into() });
        }
        if made.elapsed() >= SETUP_TOKEN_LIFETIME {
            return Err(ApiError::Forbidden {
                message: format!(
                    "setup token expired ({} min after start): restart lqos_web for a new link, \
                     or create the admin with `lqusers add --role admin`",
                    SETUP_TOKEN_LIFETIME.as_secs() / 60
                ),
            });
        }
        let path = self.users_file.clone();
        let (u, p) = (username.to_owned(), password.to_owned());
        let store = self
            .hashers
            .run(move || -> Result<UserStore, UsersError> {
                let mut store = UserStore::load(&path)?;
                if has_admin(&store) {
                    return Err(UsersError::Exists { username: u });
                }
                store.add(&u, &p, Role::Admin)?;
                store.save()?;
                Ok(store)
            })
            .await
            .map_err(|_| ApiError::RateLimited { retry_after_secs: 1 })?
            .map_err(users_error)?;
        if let Ok(mut t) = self.setup_token.lock() {
            *t = None;
        }
        self.throttle.succeeded(ticket);
        let user = store
            .get(username)
            .cloned()
            .ok_or_else(|| ApiError::Internal { message: "user vanished".into() })?;
        self.replace_users(store);
        Ok(user)
    }
}

impl Auth {
    /// Changes the users file for the user-management API (admin `actor` from `client`).
    /// The write is counted first ([`ADMIN_WRITE_LIMITS`], 429 beyond), then runs on the
    /// hashing pool (Argon2 for new passwords; 429 when saturated): the file is re-read,
    /// changed and written under its lock ([`UserStore::update`]), so a concurrent `lqusers`
    /// edit is neither lost nor overwritten. The cached users are replaced before this
    /// returns, so sessions the change ends are refused from the next request on.
    pub(crate) async fn change_users<T: Send + 'static>(
        &self,
        client: &str,
        actor: &str,
        change: impl FnOnce(&mut UserStore) -> Result<T, UsersError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.admin_throttle
            .admit(client, actor, Instant::now())
            .map_err(|wait| ApiError::TooManyChanges { retry_after_secs: wait })?;
        let path = self.users_file.clone();
        let (out, store) = self
            .hashers
            .run(move || UserStore::update(&path, change))
            .await
            .map_err(|_| ApiError::TooManyChanges { retry_after_secs: 1 })?
            .map_err(users_error)?;
        self.replace_users(store);
        Ok(out)
    }
}

/// True when `store` has at least one admin.
fn has_admin(store: &UserStore) -> bool {
    store.users().iter().any(|u| u.role == Role::Admin)
}

/// `e` and its sources, `: `-separated.
fn anyhow_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
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
        UsersError::Exists { .. }
        | UsersError::LastAdmin { .. }
        | UsersError::Changed { .. }
        | UsersError::Busy { .. } => ApiError::Conflict { message: e.to_string() },
        UsersError::Parse { .. } => ApiError::Conflict {
            message: format!("{e}; fix the file first (lqos_web re-reads it)"),
        },
        UsersError::NoSuchUser { .. } => ApiError::NotFound { what: "user".into() },
        other => ApiError::Internal { message: format!("{other:#}") },
    }
}

/// Compares two secrets in time that depends on neither their contents nor their lengths:
/// both are first hashed (SHA-256, one pass over each input), then the two 32-byte digests
/// are compared in constant time. A guess that is shorter, longer or a right prefix takes the
/// same path as any other wrong guess.
fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    bool::from(da.as_slice().ct_eq(db.as_slice()))
}

/// Constant-time comparison of two secrets, lengths included (see `constant_eq`).
pub(crate) fn secret_eq(a: &str, b: &str) -> bool {
    constant_eq(a.as_bytes(), b.as_bytes())
}

/// The session cookie's value in `parts`, if any (only the name for this transport).
pub(crate) fn cookie_value(parts: &axum::http::HeaderMap, secure: bool) -> Option<&str> {
    let name = cookie_name(secure);
    parts
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Paths under `/api/v1` reachable without a session.
pub(crate) fn is_public_api(path: &str) -> bool {
    matches!(
        path,
        "/api/v1/login"
            | "/api/v1/setup"
            | "/api/v1/setup/status"
            | "/api/v1/health"
            | "/api/v1/openapi.json"
    )
}

/// True when the request has no `Origin`, or its `Origin` is this server as the browser
/// sees it: same scheme (https when [`Peer::secure`]) and same host (with port).
fn origin_matches(headers: &axum::http::HeaderMap, peer: &Peer) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some(host) = &peer.host else { return false };
    let scheme = if peer.secure { "https" } else { "http" };
    origin.trim_end_matches('/').eq_ignore_ascii_case(&format!("{scheme}://{host}"))
}

/// Middleware: attaches the [`Session`], enforces login on the API and CSRF on writes.
pub(crate) async fn guard(State(state): State<WebState>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<Peer>().cloned().unwrap_or(Peer {
        ip: None,
        secure: state.opts().tls,
        host: None,
    });
    let session = cookie_value(req.headers(), peer.secure).and_then(|v| state.auth().verify(v));
    let path = req.uri().path().to_owned();
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method {
        if !origin_matches(req.headers(), &peer) {
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

/// The client's throttle key (see [`crate::throttle::client_key`]): the [`Peer`]'s address
/// (behind a trusted proxy, the forwarded client), IPv6 grouped by /64; `unknown` without
/// connection info (tests driving the router).
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let from_peer = parts.extensions.get::<Peer>().and_then(|p| p.ip);
        let ip = from_peer
            .or_else(|| parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()));
        Ok(ClientAddr(ip.map_or_else(|| "unknown".into(), crate::throttle::client_key)))
    }
}
