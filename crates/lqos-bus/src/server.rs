//! The async side: accept connections on the Unix socket and forward every request to one
//! queue. The owner of the queue (lqosd's apply task) answers through a oneshot channel, so
//! requests from all clients are handled one at a time, in order.
//!
//! The socket is local but not trusted (issue 13):
//! * **Who**: each connection's peer credentials (`SO_PEERCRED`) go through a [`PeerPolicy`]:
//!   root and lqosd's own user may do everything, group `lqos-admin` too, group `lqos` may only
//!   read (see [`crate::Access`]), anyone else is refused with one error answer. The socket file
//!   is `0660`, group `lqos`, as a second fence.
//! * **How much**: a request frame is at most [`Limits::max_request`] bytes and is read in
//!   [`frame::READ_CHUNK`] pieces, so memory follows the bytes that arrived, not the length
//!   announced. A started frame must arrive within [`Limits::frame_timeout`]; a connection
//!   that sends nothing for [`Limits::idle_timeout`] is closed; an answer the peer does not
//!   read within [`Limits::write_timeout`] closes it.
//! * **How many**: at most [`Limits::max_connections`] connections, [`Limits::max_per_uid`]
//!   per user (root is exempt unless [`Limits::cap_root`]). Refused connections get one short
//!   error answer while at most [`MAX_REJECTING`] refusals are pending, else they are closed.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::{Access, BusError, Command, CommandError, Response, frame};

/// A request waiting for its answer.
#[derive(Debug)]
pub struct Request {
    /// What was asked.
    pub command: Command,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Response>,
}

/// The group whose members may read (status, statistics, mappings, validation).
pub const READ_GROUP: &str = "lqos";
/// The group whose members may also change state (Reload, ClearTree, SchedulerReport).
pub const ADMIN_GROUP: &str = "lqos-admin";
/// Refused connections answered at the same time; beyond this they are closed unanswered.
pub const MAX_REJECTING: usize = 16;
/// Largest first frame read from a refused peer (to answer it with the reason).
const REJECT_READ_LIMIT: usize = 64 * 1024;
/// How long a refused peer gets to send its first frame.
const REJECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a group-membership answer is reused.
const POLICY_CACHE_TTL: Duration = Duration::from_secs(10);

/// Resource limits of the bus server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once (all users).
    pub max_connections: usize,
    /// Connections open at once per peer uid.
    pub max_per_uid: usize,
    /// Apply the caps to root as well (tests); by default root is never refused.
    pub cap_root: bool,
    /// A connection that sends no request for this long is closed.
    pub idle_timeout: Duration,
    /// A frame whose length prefix arrived must be complete within this time.
    pub frame_timeout: Duration,
    /// An answer must be taken by the peer within this time.
    pub write_timeout: Duration,
    /// Largest request frame, in bytes.
    pub max_request: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            max_per_uid: 64,
            cap_root: false,
            idle_timeout: Duration::from_secs(300),
            frame_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_request: frame::MAX_REQUEST_FRAME,
        }
    }
}

/// Decides what a peer may do from its uid and gid (see [`crate::Access`] for the table).
#[derive(Debug)]
pub struct PeerPolicy {
    own_uid: u32,
    read_gids: Vec<u32>,
    admin_gids: Vec<u32>,
    lookup_groups: bool,
    cache: Mutex<HashMap<(u32, u32), CachedAccess>>,
}

/// A decision and when it was made.
type CachedAccess = (Instant, Option<Access>);

impl PeerPolicy {
    /// The production policy: groups [`READ_GROUP`] and [`ADMIN_GROUP`] from the group
    /// database (missing groups grant nothing), supplementary groups looked up per user.
    pub fn system() -> PeerPolicy {
        let gid = |name: &str| match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => Some(g.gid.as_raw()),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(group = name, error = %e, "cannot look up bus group");
                None
            }
        };
        PeerPolicy {
            own_uid: nix::unistd::geteuid().as_raw(),
            read_gids: gid(READ_GROUP).into_iter().collect(),
            admin_gids: gid(ADMIN_GROUP).into_iter().collect(),
            lookup_groups: true,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A policy with explicit group ids and no group-database lookups: only the peer's
    /// primary gid counts (tests, and setups without NSS).
    pub fn with_gids(read_gids: Vec<u32>, admin_gids: Vec<u32>) -> PeerPolicy {
        PeerPolicy {
            own_uid: nix::unistd::geteuid().as_raw(),
            read_gids,
            admin_gids,
            lookup_groups: false,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Also grants admin to the primary or supplementary group ids `gids` (the lab runs
    /// lqos_web as `nobody`; `LQOS_BUS_ADMIN_GIDS` in lqosd).
    pub fn with_admin_gids(mut self, gids: impl IntoIterator<Item = u32>) -> PeerPolicy {
        self.admin_gids.extend(gids);
        self
    }

    /// The group the socket file should belong to (the read group), if it exists.
    pub fn socket_gid(&self) -> Option<u32> {
        self.read_gids.first().copied()
    }

    /// One line for the start-up log.
    pub fn describe(&self) -> String {
        let list = |v: &[u32]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
            }
        };
        format!(
            "admin: root, uid {}, gid {} ({ADMIN_GROUP}); read: gid {} ({READ_GROUP}); others refused",
            self.own_uid,
            list(&self.admin_gids),
            list(&self.read_gids)
        )
    }

    /// What the peer `uid`/`gid` may do; `None` = nothing. May read the group database
    /// (blocking); answers are cached for a few seconds.
    pub fn access_for(&self, uid: u32, gid: u32) -> Option<Access> {
        if uid == 0 || uid == self.own_uid {
            return Some(Access::Admin);
        }
        let now = Instant::now();
        if let Ok(cache) = self.cache.lock()
            && let Some((at, access)) = cache.get(&(uid, gid))
            && now.duration_since(*at) < POLICY_CACHE_TTL
        {
            return *access;
        }
        let mut groups = vec![gid];
        if self.lookup_groups {
            groups.extend(supplementary_groups(uid, gid));
        }
        let access = if groups.iter().any(|g| self.admin_gids.contains(g)) {
            Some(Access::Admin)
        } else if groups.iter().any(|g| self.read_gids.contains(g)) {
            Some(Access::Read)
        } else {
            None
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 4096 {
                cache.retain(|_, (at, _)| now.duration_since(*at) < POLICY_CACHE_TTL);
            }
            cache.insert((uid, gid), (now, access));
        }
        access
    }
}

/// The groups of user `uid` in the group database (empty when the user is unknown).
fn supplementary_groups(uid: u32, gid: u32) -> Vec<u32> {
    let user = match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u,
        _ => return Vec::new(),
    };
    let Ok(name) = std::ffi::CString::new(user.name) else { return Vec::new() };
    nix::unistd::getgrouplist(&name, nix::unistd::Gid::from_raw(gid))
        .map(|v| v.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_default()
}

/// Binds the socket at `path` (removing a stale one, creating the directory) with mode 0660.
pub fn bind(path: &Path) -> Result<UnixListener, BusError> {
    bind_with_group(path, None)
}

/// Like [`bind`], and gives the socket file to group `gid` (normally [`READ_GROUP`]) so its
/// members can connect.
pub fn bind_with_group(path: &Path, gid: Option<u32>) -> Result<UnixListener, BusError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| BusError::Io { source })?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(BusError::Io { source }),
    }
    let listener = UnixListener::bind(path)
        .map_err(|source| BusError::Connect { path: path.to_owned(), source })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|source| BusError::Io { source })?;
    if let Some(gid) = gid {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
            .map_err(|e| BusError::Io { source: std::io::Error::from(e) })?;
    }
    Ok(listener)
}

/// Accepts connections forever with the [`PeerPolicy::system`] policy and default
/// [`Limits`], forwarding requests to `queue`.
pub async fn serve(listener: UnixListener, queue: mpsc::Sender<Request>) {
    serve_with(listener, queue, Arc::new(PeerPolicy::system()), Limits::default()).await
}

#[derive(Debug, Default)]
struct Slots {
    total: usize,
    per_uid: HashMap<u32, usize>,
}

/// One counted connection; gives its slot back when dropped.
struct Slot {
    slots: Arc<Mutex<Slots>>,
    uid: u32,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = match self.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_uid.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.per_uid.remove(&self.uid);
            }
        }
    }
}

fn take_slot(slots: &Arc<Mutex<Slots>>, uid: u32, limits: &Limits) -> Result<Slot, String> {
    let mut s = match slots.lock() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    };
    let capped = uid != 0 || limits.cap_root;
    let mine = s.per_uid.get(&uid).copied().unwrap_or(0);
    if capped && s.total >= limits.max_connections {
        return Err(format!(
            "lqosd has {} bus connections open (the limit); try again later",
            s.total
        ));
    }
    if capped && mine >= limits.max_per_uid {
        return Err(format!(
            "uid {uid} already has {mine} bus connections open (the limit); close some first"
        ));
    }
    s.total += 1;
    *s.per_uid.entry(uid).or_insert(0) += 1;
    Ok(Slot { slots: slots.clone(), uid })
}

/// Accepts connections forever, checking each peer with `policy` and `limits`, forwarding
/// permitted requests to `queue`.
pub async fn serve_with(
    listener: UnixListener,
    queue: mpsc::Sender<Request>,
    policy: Arc<PeerPolicy>,
    limits: Limits,
) {
    let slots = Arc::new(Mutex::new(Slots::default()));
    let rejecting = Arc::new(Semaphore::new(MAX_REJECTING));
    let limits = Arc::new(limits);
    let mut last_refusal_log: Option<Instant> = None;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "bus accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(cred) = stream.peer_cred() else { continue };
        let (uid, gid) = (cred.uid(), cred.gid());
        match take_slot(&slots, uid, &limits) {
            Ok(slot) => {
                let (queue, policy, limits) = (queue.clone(), policy.clone(), limits.clone());
                let rejecting = rejecting.clone();
                tokio::spawn(async move {
                    let lookup = policy.clone();
                    let access = tokio::task::spawn_blocking(move || lookup.access_for(uid, gid))
                        .await
                        .ok()
                        .flatten();
                    let Some(access) = access else {
                        tracing::warn!(
                            uid,
                            gid,
                            pid = cred.pid(),
                            "bus connection refused: peer is neither root nor in group {READ_GROUP} or {ADMIN_GROUP}"
                        );
                        drop(slot);
                        if let Ok(permit) = rejecting.try_acquire_owned() {
                            reject(stream, permission_denied(uid, gid)).await;
                            drop(permit);
                        }
                        return;
                    };
                    if let Err(e) = handle_connection(stream, queue, access, uid, &limits).await {
                        tracing::debug!(uid, error = %e, "bus connection ended with an error");
                    }
                    drop(slot);
                });
            }
            Err(message) => {
                let now = Instant::now();
                if last_refusal_log.is_none_or(|t| now.duration_since(t) > Duration::from_secs(10))
                {
                    last_refusal_log = Some(now);
                    tracing::warn!(uid, reason = %message, "bus connection refused");
                }
                if let Ok(permit) = rejecting.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        reject(stream, CommandError::Unavailable { message }).await;
                        drop(permit);
                    });
                }
            }
        }
    }
}

fn permission_denied(uid: u32, gid: u32) -> CommandError {
    CommandError::Unavailable {
        message: format!(
            "permission denied: uid {uid} (gid {gid}) may not use the lqos bus; \
             add the user to group {READ_GROUP} (read) or {ADMIN_GROUP} (change), or run as root"
        ),
    }
}

/// Answers a refused peer's first frame (read with small limits) with `error`, then closes.
async fn reject(mut stream: UnixStream, error: CommandError) {
    let answer = async {
        let mut prefix = [0u8; 4];
        stream.read_exact(&mut prefix).await.ok()?;
        if let Ok(len) = frame::frame_len_limited(prefix, REJECT_READ_LIMIT) {
            let mut buf = Vec::new();
            read_payload(&mut stream, len, &mut buf).await.ok()?;
        }
        let bytes = frame::encode(&Response::Error(error)).ok()?;
        stream.write_all(&bytes).await.ok()
    };
    let _ = tokio::time::timeout(REJECT_TIMEOUT, answer).await;
}

/// Reads exactly `len` payload bytes into `buf` through a [`frame::READ_CHUNK`] scratch
/// buffer: `buf` grows only with the bytes that arrived (see [`frame::read_payload`]).
pub async fn read_payload(
    r: &mut (impl AsyncRead + Unpin),
    len: usize,
    buf: &mut Vec<u8>,
) -> Result<(), BusError> {
    buf.clear();
    let mut scratch = vec![0u8; frame::READ_CHUNK.min(len)];
    while buf.len() < len {
        let want = (len - buf.len()).min(scratch.len());
        let n = r.read(&mut scratch[..want]).await.map_err(|source| BusError::Io { source })?;
        if n == 0 {
            return Err(BusError::Io {
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("frame ended after {} of {len} bytes", buf.len()),
                ),
            });
        }
        buf.extend_from_slice(&scratch[..n]);
    }
    Ok(())
}

fn timed_out(what: &str, after: Duration) -> BusError {
    BusError::Io {
        source: std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{what} not done within {} ms", after.as_millis()),
        ),
    }
}

async fn handle_connection(
    mut stream: UnixStream,
    queue: mpsc::Sender<Request>,
    access: Access,
    uid: u32,
    limits: &Limits,
) -> Result<(), BusError> {
    let mut buf = Vec::new();
    loop {
        let mut prefix = [0u8; 4];
        match tokio::time::timeout(limits.idle_timeout, stream.read_exact(&mut prefix)).await {
            Err(_) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(source)) => return Err(BusError::Io { source }),
        }
        let len = match frame::frame_len_limited(prefix, limits.max_request) {
            Ok(len) => len,
            Err(e) => {
                // Answer once, then close: the rest of the stream cannot be resynchronised.
                let message = format!("{e} ({} bytes for a request)", limits.max_request);
                let bytes = frame::encode(&Response::Error(CommandError::Internal { message }))?;
                let _ = tokio::time::timeout(limits.write_timeout, stream.write_all(&bytes)).await;
                return Err(e);
            }
        };
        tokio::time::timeout(limits.frame_timeout, read_payload(&mut stream, len, &mut buf))
            .await
            .map_err(|_| timed_out("request frame", limits.frame_timeout))??;
        let response = match frame::decode::<Command>(&buf) {
            Ok(command) if command.required_access() <= access => dispatch(&queue, command).await,
            Ok(command) => {
                tracing::info!(uid, command = %command.name(), "bus command refused: read-only peer");
                Response::Error(CommandError::Unavailable {
                    message: format!(
                        "permission denied: {} changes lqosd's state and needs root or group \
                         {ADMIN_GROUP}; uid {uid} may only read",
                        command.name()
                    ),
                })
            }
            Err(e) => Response::Error(CommandError::Internal { message: format!("{e}") }),
        };
        if buf.capacity() > frame::READ_CHUNK {
            buf = Vec::new();
        }
        let bytes = frame::encode(&response)?;
        tokio::time::timeout(limits.write_timeout, stream.write_all(&bytes))
            .await
            .map_err(|_| timed_out("answer", limits.write_timeout))?
            .map_err(|source| BusError::Io { source })?;
    }
}

/// Sends one command to the queue and waits for the answer.
pub async fn dispatch(queue: &mpsc::Sender<Request>, command: Command) -> Response {
    let (reply, answer) = oneshot::channel();
    if queue.send(Request { command, reply }).await.is_err() {
        return Response::Error(CommandError::Internal {
            message: "lqosd is shutting down".into(),
        });
    }
    answer.await.unwrap_or_else(|_| {
        Response::Error(CommandError::Internal { message: "lqosd dropped the request".into() })
    })
}

#[cfg(test)]
mod tests;
