//! The production [`Backend`]: lqosd's local bus (`LQOS_BUS`, default `/run/lqos/bus`).
//!
//! Each request borrows an idle [`BusClient`] connection (or opens one), sends its command and
//! waits for the answer on a blocking thread, so the async workers never block. At most
//! [`MAX_CONNECTIONS`] requests are on the bus at once (the rest wait for a turn): lqosd
//! refuses a uid's connections beyond 64, and answered every request over that with 503
//! under a load of 200 concurrent API clients; and the connections are kept for reuse, so a
//! busy GUI does not reconnect (and have its credentials checked again) per request. A connection
//! is only put back after a complete answer; one that failed or timed out is dropped, so a late
//! answer can never be read as the answer to the next command. A pooled connection that turns
//! out dead (lqosd restarted) is replaced once by a fresh one.
//!
//! When lqosd cannot be reached the answer is [`CommandError::Unavailable`], which the API
//! shows as 503 and `/metrics` as `lqos_up 0`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lqos_bus::{BusClient, BusError, Command, CommandError, Response};

use crate::{Backend, BoxFuture};

/// Bus connections (= requests in flight on the bus) at once; more requests wait for a turn.
/// Below lqosd's per-uid cap (64, `lqos_bus::server::Limits`), leaving room for `lqtop` or
/// `lqusers` running as the same user; lqosd answers from one apply task anyway, so more
/// connections would only queue there.
pub const MAX_CONNECTIONS: usize = 32;
/// Idle connections kept for reuse: all of them.
pub const MAX_IDLE: usize = MAX_CONNECTIONS;
/// How long a read-only command may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a command that changes the kernel may take (a full rebuild of a large tree).
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(600);

/// The bus client pool.
#[derive(Clone)]
pub struct BusBackend {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    idle: Mutex<Vec<BusClient>>,
    turns: Arc<tokio::sync::Semaphore>,
}

fn timeout_for(cmd: &Command) -> Duration {
    match cmd {
        Command::Reload { .. } | Command::ClearTree | Command::DryRun => APPLY_TIMEOUT,
        _ => QUERY_TIMEOUT,
    }
}

impl BusBackend {
    /// A backend for the bus socket at `path`; connects lazily.
    pub fn new(path: &Path) -> Self {
        BusBackend {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
                turns: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
            }),
        }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

impl Inner {
    fn take_idle(&self) -> Option<BusClient> {
        self.idle.lock().ok().and_then(|mut v| v.pop())
    }

    fn put_back(&self, client: BusClient) {
        if let Ok(mut v) = self.idle.lock()
            && v.len() < MAX_IDLE
        {
            v.push(client);
        }
    }

    fn connect(&self) -> Result<BusClient, BusError> {
        BusClient::connect(&self.path)
    }

    fn once(&self, client: &mut BusClient, cmd: &Command) -> Result<Response, BusError> {
        client.set_timeout(Some(timeout_for(cmd)))?;
        client.request(cmd)
    }

    /// Blocking: one command, one answer.
    fn request_blocking(&self, cmd: &Command) -> Response {
        if let Some(mut client) = self.take_idle() {
            match self.once(&mut client, cmd) {
                Ok(answer) => {
                    self.put_back(client);
                    return answer;
                }
                // A stale pooled connection (lqosd restarted): try once more on a fresh one.
                Err(BusError::Io { .. } | BusError::Closed) => {}
                Err(e) => return failure(&self.path, &e),
            }
        }
        let mut client = match self.connect() {
            Ok(c) => c,
            Err(e) => return failure(&self.path, &e),
        };
        match self.once(&mut client, cmd) {
            Ok(answer) => {
                self.put_back(client);
                answer
            }
            Err(e) => failure(&self.path, &e),
        }
    }
}

fn failure(path: &Path, e: &BusError) -> Response {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    tracing::warn!(bus = %path.display(), error = %message, "lqosd not reachable over the bus");
    match e {
        BusError::Connect { .. } | BusError::Io { .. } | BusError::Closed => {
            Response::Error(CommandError::Unavailable {
                message: format!("lqosd is not running or not reachable ({message})"),
            })
        }
        _ => Response::Error(CommandError::Internal { message }),
    }
}

impl Backend for BusBackend {
    fn request(&self, cmd: Command) -> BoxFuture<'_, Response> {
        let inner = self.inner.clone();
        Box::pin(async move {
            // The semaphore is never closed; a failure would only mean no limit.
            let turn = inner.turns.clone().acquire_owned().await.ok();
            tokio::task::spawn_blocking(move || {
                let answer = inner.request_blocking(&cmd);
                drop(turn);
                answer
            })
            .await
            .unwrap_or_else(|e| {
                Response::Error(CommandError::Internal { message: format!("bus task: {e}") })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lqos_bus::server::{Request, bind, serve};
    use std::sync::atomic::AtomicUsize;
    use tokio::sync::mpsc;

    /// A bus server whose "apply task" answers Ping and Status-less commands with Ack.
    fn fake_lqosd(path: &Path) -> tokio::task::JoinHandle<()> {
        let listener = bind(path).expect("bind");
        let (tx, mut rx) = mpsc::channel::<Request>(4);
        tokio::spawn(async move {
            while let Some(req) = rx.recv().await {
                let answer = match req.command {
                    Command::Ping => Response::Pong,
                    _ => Response::Ack,
                };
                let _ = req.reply.send(answer);
            }
        });
        tokio::spawn(serve(listener, tx))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commands_travel_over_the_bus_and_connections_are_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bus");
        let server = fake_lqosd(&path);
        let backend = BusBackend::new(&path);
        assert_eq!(backend.request(Command::Ping).await, Response::Pong);
        assert_eq!(backend.request(Command::ClearTree).await, Response::Ack);
        assert_eq!(backend.inner.idle.lock().expect("lock").len(), 1, "one connection reused");
        server.abort();
    }

    /// A server that answers one command per connection, then closes it (as after a restart
    /// of lqosd, the pooled connection is dead).
    fn one_answer_per_connection(path: &Path) {
        let listener = std::os::unix::net::UnixListener::bind(path).expect("bind");
        std::thread::spawn(move || {
            for _ in 0..4 {
                let Ok((mut s, _)) = listener.accept() else { return };
                if let Ok(Some(_cmd)) = lqos_bus::frame::read_frame::<Command>(&mut s) {
                    let _ = lqos_bus::frame::write_frame(&mut s, &Response::Pong);
                }
            }
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_pooled_connection_is_replaced_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bus");
        one_answer_per_connection(&path);
        let backend = BusBackend::new(&path);
        assert_eq!(backend.request(Command::Ping).await, Response::Pong);
        assert_eq!(backend.request(Command::Ping).await, Response::Pong, "reconnected");
    }

    /// (open now, most open at once, accepted in all).
    type Counts = (AtomicUsize, AtomicUsize, AtomicUsize);

    /// A server that answers Ping after a short pause on every connection, counting the
    /// connections open at once and in all.
    fn counting_server(path: &Path) -> Arc<Counts> {
        use std::sync::atomic::Ordering::SeqCst;
        let listener = std::os::unix::net::UnixListener::bind(path).expect("bind");
        let counts: Arc<Counts> = Arc::new(Default::default());
        let c = Arc::clone(&counts);
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { return };
                let c = Arc::clone(&c);
                let open = c.0.fetch_add(1, SeqCst) + 1;
                c.1.fetch_max(open, SeqCst);
                c.2.fetch_add(1, SeqCst);
                std::thread::spawn(move || {
                    while let Ok(Some(_cmd)) = lqos_bus::frame::read_frame::<Command>(&mut s) {
                        std::thread::sleep(Duration::from_millis(5));
                        if lqos_bus::frame::write_frame(&mut s, &Response::Pong).is_err() {
                            break;
                        }
                    }
                    c.0.fetch_sub(1, SeqCst);
                });
            }
        });
        counts
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_requests_share_a_bounded_set_of_connections() {
        use std::sync::atomic::Ordering::SeqCst;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bus");
        let counts = counting_server(&path);
        let backend = BusBackend::new(&path);
        for round in 0..3 {
            let asks: Vec<_> = (0..200)
                .map(|_| {
                    let b = backend.clone();
                    tokio::spawn(async move { b.request(Command::Ping).await })
                })
                .collect();
            for a in asks {
                assert_eq!(a.await.expect("task"), Response::Pong, "round {round}");
            }
        }
        let most = counts.1.load(SeqCst);
        assert!(most <= MAX_CONNECTIONS, "{most} bus connections at once, cap {MAX_CONNECTIONS}");
        assert!(most > 1, "requests ran in parallel ({most})");
        let accepted = counts.2.load(SeqCst);
        assert!(
            accepted <= MAX_CONNECTIONS,
            "{accepted} connections for 600 requests: they are reused, not reopened"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_lqosd_is_unavailable_naming_the_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = BusBackend::new(&dir.path().join("missing-bus"));
        let Response::Error(CommandError::Unavailable { message }) =
            backend.request(Command::Status).await
        else {
            panic!("expected Unavailable")
        };
        assert!(message.contains("not running") && message.contains("missing-bus"), "{message}");
    }
}
