//! Login throttling (issue 13): every attempt is counted *before* the password is hashed, in
//! two buckets — the client (an IPv4 address, or the /64 of an IPv6 address, behind
//! `trusted_proxies` the first untrusted `X-Forwarded-For` hop) and the typed username — so
//! fifty parallel guesses cost five hashes, not fifty. Argon2 itself runs on a small fixed
//! pool ([`HashPool`], [`HASH_WORKERS`] threads, [`HASH_QUEUE`] waiting jobs): each thread
//! reuses one ~19 MiB buffer, and the surplus is answered 429 at once.
//!
//! A successful login takes its attempt back out of both buckets; failures stay for the
//! window. The username bucket is larger than the client bucket so that a guesser spread over
//! many addresses is slowed down without one client locking a user out.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Attempts (in flight or failed) allowed per client per [`CLIENT_WINDOW`].
pub const MAX_PER_CLIENT: usize = 5;
/// The client window.
pub const CLIENT_WINDOW: Duration = Duration::from_secs(60);
/// Failed attempts allowed per username per [`USER_WINDOW`], from all clients together.
pub const MAX_PER_USER: usize = 10;
/// The username window.
pub const USER_WINDOW: Duration = Duration::from_secs(300);
/// Clients and usernames tracked at once; beyond this new keys are refused until old ones
/// expire (memory stays bounded whatever the number of source addresses).
pub const MAX_TRACKED: usize = 10_000;
/// Threads that run Argon2 (the "semaphore"; with [`HASH_QUEUE`] at most 6 attempts are
/// admitted at once). Each keeps one reused ~19 MiB working buffer
/// (`users::verify_password`), so together they hold at most 2 × 19 MiB, well under the
/// 64 MiB an attack may cost; Argon2 is CPU-bound, and more threads than a small shaper's
/// spare cores would not hash faster.
pub const HASH_WORKERS: usize = 2;
/// Hash jobs that may wait for a worker; more are refused (429).
pub const HASH_QUEUE: usize = 4;

/// The throttle key of a client: the address, IPv6 grouped by /64, IPv4-mapped as IPv4.
pub fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The client's address: the peer, or — when the peer is one of `trusted` proxies — the
/// right-most `X-Forwarded-For` address that is not a trusted proxy.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().parse::<IpAddr>())
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    Some(hops.into_iter().rev().find(|ip| !is_trusted(ip)).unwrap_or(peer))
}

/// The username bucket key: lowercase, at most 64 characters (longer names cannot exist).
fn user_key(username: &str) -> String {
    username.chars().take(64).flat_map(char::to_lowercase).collect()
}

#[derive(Default)]
struct Buckets(HashMap<String, VecDeque<Instant>>);

impl Buckets {
    /// Seconds to wait when `key` is full, else `None`.
    fn full(&mut self, key: &str, max: usize, window: Duration, now: Instant) -> Option<u64> {
        let q = self.0.get_mut(key)?;
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        (q.len() >= max).then(|| {
            let oldest = q.front().copied().unwrap_or(now);
            window.saturating_sub(now.duration_since(oldest)).as_secs().max(1)
        })
    }

    fn room_for(&mut self, key: &str, window: Duration, now: Instant) -> bool {
        if self.0.len() < MAX_TRACKED || self.0.contains_key(key) {
            return true;
        }
        self.0.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        self.0.len() < MAX_TRACKED
    }

    fn push(&mut self, key: &str, now: Instant) {
        self.0.entry(key.to_owned()).or_default().push_back(now);
    }

    fn take_back(&mut self, key: &str, at: Instant) {
        if let Some(q) = self.0.get_mut(key)
            && let Some(i) = q.iter().rposition(|t| *t == at)
        {
            q.remove(i);
        }
    }
}

/// How many attempts each bucket allows per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Attempts per client per `client_window`.
    pub per_client: usize,
    /// The client window.
    pub client_window: Duration,
    /// Attempts per username per `user_window`.
    pub per_user: usize,
    /// The username window.
    pub user_window: Duration,
}

/// The login limits: [`MAX_PER_CLIENT`] per [`CLIENT_WINDOW`], [`MAX_PER_USER`] per
/// [`USER_WINDOW`].
pub const LOGIN_LIMITS: Limits = Limits {
    per_client: MAX_PER_CLIENT,
    client_window: CLIENT_WINDOW,
    per_user: MAX_PER_USER,
    user_window: USER_WINDOW,
};

/// Both buckets.
pub struct Throttle {
    inner: Mutex<(Buckets, Buckets)>,
    limits: Limits,
}

impl Default for Throttle {
    /// A login throttle ([`LOGIN_LIMITS`]).
    fn default() -> Self {
        Throttle::with_limits(LOGIN_LIMITS)
    }
}

/// One counted attempt; give it back with [`Throttle::succeeded`].
#[derive(Debug)]
pub struct Ticket {
    client: String,
    user: String,
    at: Instant,
}

impl Throttle {
    /// A throttle with other limits than the login's.
    pub fn with_limits(limits: Limits) -> Throttle {
        Throttle { inner: Mutex::new((Buckets::default(), Buckets::default())), limits }
    }

    /// Counts an attempt by `client` for `username`, or says how many seconds to wait.
    pub fn admit(&self, client: &str, username: &str, now: Instant) -> Result<Ticket, u64> {
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let user = user_key(username);
        let (clients, users) = &mut *g;
        let l = self.limits;
        if let Some(wait) = clients.full(client, l.per_client, l.client_window, now) {
            return Err(wait);
        }
        if let Some(wait) = users.full(&user, l.per_user, l.user_window, now) {
            return Err(wait);
        }
        if !clients.room_for(client, l.client_window, now)
            || !users.room_for(&user, l.user_window, now)
        {
            return Err(l.client_window.as_secs());
        }
        clients.push(client, now);
        users.push(&user, now);
        Ok(Ticket { client: client.to_owned(), user, at: now })
    }

    /// The attempt succeeded: it no longer counts against the client or the user.
    pub fn succeeded(&self, t: Ticket) {
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        g.0.take_back(&t.client, t.at);
        g.1.take_back(&t.user, t.at);
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of threads for Argon2 with a short bounded queue.
pub struct HashPool {
    tx: SyncSender<Job>,
}

/// The pool is saturated: answer 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl HashPool {
    /// Starts `workers` threads with room for `queue` waiting jobs. The threads end when the
    /// pool is dropped.
    pub fn new(workers: usize, queue: usize) -> HashPool {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers.max(1) {
            let rx: Arc<Mutex<Receiver<Job>>> = rx.clone();
            let spawned =
                std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        HashPool { tx }
    }

    /// Queues `f` on the pool and returns where its result will arrive, or refuses at once
    /// when every worker is busy and the queue is full.
    pub fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<tokio::sync::oneshot::Receiver<T>, Busy> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(f());
        });
        match self.tx.try_send(job) {
            Ok(()) => Ok(answer),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }

    /// Runs `f` on the pool and waits for it (see [`HashPool::submit`]).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        self.submit(f)?.await.map_err(|_| Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_grouped_by_64_and_mapped_v4_is_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        assert_eq!(client_key("::ffff:192.0.2.7".parse().expect("ip")), "192.0.2.7");
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 10.0.0.2".parse().expect("hv"));
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let stranger: IpAddr = "198.51.100.1".parse().expect("ip");
        assert_eq!(client_ip(Some(proxy), &h, &trusted), "203.0.113.9".parse().ok());
        assert_eq!(client_ip(Some(stranger), &h, &trusted), Some(stranger), "spoofed header");
        assert_eq!(client_ip(Some(proxy), &h, &[]), Some(proxy), "no trusted proxies");
        h.insert("x-forwarded-for", "garbage".parse().expect("hv"));
        assert_eq!(client_ip(Some(proxy), &h, &trusted), Some(proxy));
    }

    #[test]
    fn attempts_count_before_the_result_and_success_gives_them_back() {
        let t = Throttle::default();
        let now = Instant::now();
        let tickets: Vec<Ticket> =
            (0..MAX_PER_CLIENT).map(|_| t.admit("c", "alice", now).expect("room")).collect();
        assert!(t.admit("c", "alice", now).is_err(), "sixth attempt in flight refused");
        assert!(t.admit("other", "bob", now).is_ok(), "another client is not affected");
        for tk in tickets {
            t.succeeded(tk);
        }
        assert!(t.admit("c", "alice", now).is_ok());
        // The username bucket holds across clients.
        let t = Throttle::default();
        for i in 0..MAX_PER_USER {
            t.admit(&format!("c{i}"), "Admin", now).expect("room");
        }
        let wait = t.admit("fresh", "admin", now).expect_err("user bucket full");
        assert!(wait > 0 && wait <= USER_WINDOW.as_secs());
        assert!(t.admit("fresh", "admin", now + USER_WINDOW).is_ok(), "window over");
    }

    #[tokio::test]
    async fn the_pool_refuses_the_surplus_at_once() {
        let pool = HashPool::new(1, 1);
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let (g1, g2) = (gate.clone(), gate.clone());
        let first = pool.submit(move || g1.lock().map(|g| g.recv().is_ok()).unwrap_or(false));
        // Let the worker take the first job so that the second waits in the queue.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let second = pool.submit(move || g2.lock().map(|g| g.recv().is_ok()).unwrap_or(false));
        let (first, second) = (first.expect("worker"), second.expect("queue"));
        assert_eq!(pool.run(|| 3).await, Err(Busy), "worker busy and queue full");
        let _ = release.send(());
        let _ = release.send(());
        assert_eq!(first.await, Ok(true));
        assert_eq!(second.await, Ok(true));
        assert_eq!(pool.run(|| 4).await, Ok(4));
    }
}
