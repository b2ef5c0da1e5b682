//! Each test reproduces one attack on the bus (issue 13) against a real socket.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::{BusClient, ReloadMode};

/// A socket served by `serve_with` and a fake apply task that records every command.
struct Harness {
    _dir: tempfile::TempDir,
    path: PathBuf,
    seen: Arc<Mutex<Vec<Command>>>,
}

fn start(policy: PeerPolicy, limits: Limits) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = dir.path().join("bus");
    let listener = bind(&path).expect("bind");
    // World-writable on purpose: these tests check the credential check, not the file mode.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let (tx, mut rx) = mpsc::channel::<Request>(4);
    tokio::spawn(serve_with(listener, tx, Arc::new(policy), limits));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            let answer = match req.command {
                Command::Ping => Response::Pong,
                _ => Response::Ack,
            };
            record.lock().expect("record").push(req.command);
            let _ = req.reply.send(answer);
        }
    });
    Harness { _dir: dir, path, seen }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("join")
}

fn request(path: &Path, cmd: Command) -> Result<Response, BusError> {
    let mut c = BusClient::connect(path)?;
    c.set_timeout(Some(Duration::from_secs(5)))?;
    c.request(&cmd)
}

/// True when the server closed `s` (EOF) within `within`.
fn closed_within(s: &mut std::os::unix::net::UnixStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut b = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).expect("timeout");
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn denied(r: &Result<Response, BusError>) -> String {
    match r {
        Ok(Response::Error(CommandError::Unavailable { message })) => message.clone(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_requests_reach_the_queue_and_answers_come_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("run/bus");
    let listener = bind(&path).expect("bind");
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let (tx, mut rx) = mpsc::channel::<Request>(4);
    tokio::spawn(serve(listener, tx));
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            let answer = match req.command {
                Command::Ping => Response::Pong,
                _ => Response::Ack,
            };
            let _ = req.reply.send(answer);
        }
    });
    let answers = blocking(move || {
        let mut c = BusClient::connect(&path).expect("connect");
        let a = c.request(&Command::Ping).expect("ping");
        let b = c.request(&Command::ClearTree).expect("clear");
        (a, b)
    })
    .await;
    // The test runs as root (or as lqosd's own user): full access.
    assert_eq!(answers, (Response::Pong, Response::Ack));
}

#[test]
fn connect_to_missing_socket_names_the_path_and_lqosd() {
    let err = BusClient::connect(Path::new("/nonexistent/lqos/bus")).expect_err("no daemon");
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/lqos/bus") && msg.contains("lqosd"), "{msg}");
}

/// Attack: announce a 64 MiB frame and send nothing. Before: lqosd allocated the announced
/// length and waited forever. Now: refused at the prefix with an answer naming the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_64_mib_request_is_refused_at_the_prefix() {
    let h = start(PeerPolicy::with_gids(vec![], vec![]), Limits::default());
    let path = h.path.clone();
    let (answer, closed) = blocking(move || {
        let mut s = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        s.write_all(&(64u32 * 1024 * 1024).to_be_bytes()).expect("prefix");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let answer: Option<Response> = frame::read_frame(&mut s).expect("answer");
        (answer, closed_within(&mut s, Duration::from_secs(2)))
    })
    .await;
    match answer {
        Some(Response::Error(CommandError::Internal { message })) => {
            assert!(message.contains("67108864") && message.contains("exceeds"), "{message}")
        }
        other => panic!("expected a size refusal, got {other:?}"),
    }
    assert!(closed, "the connection must be closed after the refusal");
    assert!(h.seen.lock().expect("seen").is_empty());
}

/// Attack: announce an allowed size (1 MiB), send 10 bytes, stall. Before: the task waited
/// forever holding the whole buffer. Now: closed after `frame_timeout`, others are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_frame_is_closed_after_the_frame_timeout() {
    let limits = Limits { frame_timeout: Duration::from_millis(300), ..Limits::default() };
    let h = start(PeerPolicy::with_gids(vec![], vec![]), limits);
    let path = h.path.clone();
    let (closed, elapsed, ping) = blocking(move || {
        let mut s = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        s.write_all(&(1024u32 * 1024).to_be_bytes()).expect("prefix");
        s.write_all(b"{\"version\"").expect("some bytes");
        let ping = request(&path, Command::Ping);
        let t = Instant::now();
        (closed_within(&mut s, Duration::from_secs(3)), t.elapsed(), ping)
    })
    .await;
    assert!(matches!(ping, Ok(Response::Pong)), "{ping:?}");
    assert!(closed, "stalled connection still open after 3 s");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

/// Attack: open many idle connections. Now: beyond `max_per_uid` a connection gets a refusal
/// naming the limit; idle ones are closed after `idle_timeout`, after which others connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_capped_per_uid_and_closed_when_idle() {
    let limits = Limits {
        max_per_uid: 4,
        max_connections: 8,
        cap_root: true,
        idle_timeout: Duration::from_millis(700),
        ..Limits::default()
    };
    let h = start(PeerPolicy::with_gids(vec![], vec![]), limits);
    let path = h.path.clone();
    let (refused, all_closed, after) = blocking(move || {
        let mut idle: Vec<_> = (0..4)
            .map(|_| std::os::unix::net::UnixStream::connect(&path).expect("connect"))
            .collect();
        // Give the server time to count them.
        std::thread::sleep(Duration::from_millis(100));
        let refused = request(&path, Command::Ping);
        let all_closed = idle.iter_mut().all(|s| closed_within(s, Duration::from_secs(3)));
        std::thread::sleep(Duration::from_millis(100));
        (refused, all_closed, request(&path, Command::Ping))
    })
    .await;
    let msg = denied(&refused);
    assert!(msg.contains("4 bus connections"), "{msg}");
    assert!(all_closed, "idle connections must be closed after idle_timeout");
    assert!(matches!(after, Ok(Response::Pong)), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_is_not_capped_by_default() {
    let limits = Limits { max_per_uid: 2, max_connections: 2, ..Limits::default() };
    let h = start(PeerPolicy::with_gids(vec![], vec![]), limits);
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let path = h.path.clone();
    let answer = blocking(move || {
        let _idle: Vec<_> = (0..4)
            .map(|_| std::os::unix::net::UnixStream::connect(&path).expect("connect"))
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        request(&path, Command::Ping)
    })
    .await;
    assert!(matches!(answer, Ok(Response::Pong)), "{answer:?}");
}

/// The uid/gid of `nobody`/`nogroup` used by the child-process tests.
const NOBODY: u32 = 65534;

/// Runs this test binary again as `nobody` to send `cmd` to `socket`; returns what the child
/// got (the answer as JSON, or `ERR: …`). `None` when not root.
fn as_nobody(socket: &Path, cmd: &Command) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        let mut err = std::io::stderr();
        let _ = writeln!(err, "skipped: needs root to run a client as nobody");
        return None;
    }
    let exe = std::env::current_exe().expect("exe");
    let out = std::process::Command::new(exe)
        .args(["server::tests::child_client", "--exact", "--nocapture", "--test-threads=1"])
        .env("LQOS_BUS_TEST_CHILD", socket)
        .env("LQOS_BUS_TEST_CMD", serde_json::to_string(cmd).expect("json"))
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("CHILD-ANSWER:")).unwrap_or_else(|| {
        panic!("child said nothing: {stdout} {}", String::from_utf8_lossy(&out.stderr))
    });
    Some(line.to_owned())
}

/// Not a test of its own: the client half of [`as_nobody`], active only in the child.
#[test]
fn child_client() {
    let (Some(socket), Some(cmd)) =
        (std::env::var_os("LQOS_BUS_TEST_CHILD"), std::env::var("LQOS_BUS_TEST_CMD").ok())
    else {
        return;
    };
    let cmd: Command = serde_json::from_str(&cmd).expect("command");
    let line = match request(Path::new(&socket), cmd) {
        Ok(r) => serde_json::to_string(&r).expect("json"),
        Err(e) => format!("ERR: {e}"),
    };
    let mut out = std::io::stdout();
    writeln!(out, "\nCHILD-ANSWER:{line}").expect("write");
}

/// Attack: a local user outside both groups talks to the bus. Before: the socket mode was
/// the only fence (a 0666 socket or a wrong group let anyone ClearTree). Now: refused by
/// credentials, with a reason, and nothing reaches the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_outside_the_bus_groups_is_refused() {
    let h = start(PeerPolicy::with_gids(vec![4242], vec![4243]), Limits::default());
    let path = h.path.clone();
    let Some(answer) = blocking(move || as_nobody(&path, &Command::ClearTree)).await else {
        return;
    };
    assert!(answer.contains("permission denied") && answer.contains("uid 65534"), "{answer}");
    assert!(h.seen.lock().expect("seen").is_empty(), "nothing may reach the apply task");
}

/// A member of the read group may read but not change the kernel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_group_may_read_but_not_reload() {
    let h = start(PeerPolicy::with_gids(vec![NOBODY], vec![4243]), Limits::default());
    let path = h.path.clone();
    let Some(ping) = blocking({
        let path = path.clone();
        move || as_nobody(&path, &Command::Ping)
    })
    .await
    else {
        return;
    };
    assert_eq!(ping, r#"{"response":"pong"}"#);
    let reload = blocking(move || {
        as_nobody(&path, &Command::Reload { mode: ReloadMode::Full }).expect("root")
    })
    .await;
    assert!(reload.contains("permission denied") && reload.contains("reload"), "{reload}");
    assert_eq!(*h.seen.lock().expect("seen"), vec![Command::Ping]);
}

/// A member of the admin group may reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_group_may_reload() {
    let h = start(PeerPolicy::with_gids(vec![4242], vec![NOBODY]), Limits::default());
    let path = h.path.clone();
    let Some(answer) =
        blocking(move || as_nobody(&path, &Command::Reload { mode: ReloadMode::Incremental }))
            .await
    else {
        return;
    };
    assert_eq!(answer, r#"{"response":"ack"}"#);
}

#[test]
fn policy_grants_by_uid_and_primary_gid() {
    let p = PeerPolicy::with_gids(vec![10], vec![20]);
    assert_eq!(p.access_for(0, 0), Some(Access::Admin));
    assert_eq!(p.access_for(1000, 20), Some(Access::Admin));
    assert_eq!(p.access_for(1000, 10), Some(Access::Read));
    assert_eq!(p.access_for(1000, 30), None);
    assert_eq!(p.socket_gid(), Some(10));
}

#[tokio::test]
async fn async_payload_buffer_follows_received_bytes_not_the_announced_length() {
    let (mut a, mut b) = tokio::io::duplex(1024);
    a.write_all(&[b'x'; 100]).await.expect("write");
    drop(a);
    let mut buf = Vec::new();
    let err = read_payload(&mut b, 64 * 1024 * 1024, &mut buf).await.expect_err("short");
    assert!(err.to_string().contains("i/o"), "{err}");
    assert!(buf.capacity() <= 2 * frame::READ_CHUNK, "capacity {}", buf.capacity());
}

/// lqosd closes idle connections; a long-lived client (the scheduler, lqtop) reconnects once
/// on its next request instead of failing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reconnects_after_an_idle_close() {
    let limits = Limits { idle_timeout: Duration::from_millis(200), ..Limits::default() };
    let h = start(PeerPolicy::with_gids(vec![], vec![]), limits);
    let path = h.path.clone();
    let (first, second) = blocking(move || {
        let mut c = BusClient::connect(&path).expect("connect");
        let first = c.request(&Command::Ping);
        std::thread::sleep(Duration::from_millis(600));
        (first, c.request(&Command::Status))
    })
    .await;
    assert!(matches!(first, Ok(Response::Pong)), "{first:?}");
    assert!(matches!(second, Ok(Response::Ack)), "{second:?}");
    assert_eq!(*h.seen.lock().expect("seen"), vec![Command::Ping, Command::Status]);
}
