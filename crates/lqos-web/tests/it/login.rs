//! Login under attack (issue 13, item 2) and the first-run setup token (item 5).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;

use super::*;

fn login_from(ip: &str, user: &str, pass: &str) -> Request<Body> {
    let mut r = json_req("POST", "/api/v1/login", &json!({"username": user, "password": pass}));
    let addr = SocketAddr::new(ip.parse().expect("ip"), 40000);
    r.extensions_mut().insert(ConnectInfo(addr));
    r
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4
}

/// Sends `reqs` all at once; returns the statuses and the peak RSS growth (KiB) over `base`.
async fn burst(app: &App, reqs: Vec<Request<Body>>, base: u64) -> (Vec<StatusCode>, u64) {
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let tasks: Vec<_> = reqs
        .into_iter()
        .map(|r| {
            let state = app.state.clone();
            tokio::spawn(
                async move { router(state).oneshot(r).await.expect("infallible").status() },
            )
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("join"));
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sampler.join();
    let grown = peak.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(base);
    (statuses, grown)
}

fn count(s: &[StatusCode], code: StatusCode) -> usize {
    s.iter().filter(|c| **c == code).count()
}

/// The attack, run alone in a child process so that no other test's memory is measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_fifty_parallel_wrong_logins() {
    if std::env::var_os("LQOS_WEB_LOGIN_CHILD").is_none() {
        return;
    }
    let app = app();
    // Warm up: one wrong login from elsewhere (dummy hash, hashing threads).
    let warm = send(&app, login_from("2001:db8:ffff::1", "admin", "wrong-password")).await;
    assert_eq!(warm.status, StatusCode::UNAUTHORIZED);
    let base = rss_kib();
    // Wave 1: one client, one user, 50 at once.
    let reqs = (0..50).map(|_| login_from("192.0.2.66", "admin", "wrong-password")).collect();
    let (one, grown1) = burst(&app, reqs, base).await;
    // Wave 2: 50 clients (distinct /64s), 50 usernames, at once: the hashing pool is the limit.
    let reqs = (0..50)
        .map(|i| login_from(&format!("2001:db8:{i:x}::1"), &format!("user{i}"), "wrong-password"))
        .collect();
    let (two, grown2) = burst(&app, reqs, base).await;
    // A normal login still works afterwards from another client.
    let ok = send(&app, login_from("198.51.100.5", "admin", "admin-password")).await;
    let mut out = std::io::stdout();
    use std::io::Write;
    let _ = writeln!(
        out,
        "\nCHILD-RESULT:{} {} {} {} {} {} {} {}",
        count(&one, StatusCode::UNAUTHORIZED),
        count(&one, StatusCode::TOO_MANY_REQUESTS),
        count(&two, StatusCode::UNAUTHORIZED),
        count(&two, StatusCode::TOO_MANY_REQUESTS),
        grown1,
        grown2,
        ok.status.as_u16(),
        one.len() + two.len()
    );
}

/// Before: 50 parallel wrong logins ran 50 Argon2 hashes at once (~19 MiB each, ~1 GiB) before
/// any of them counted as a failure. Now: five are hashed, the surplus gets 429 at once, and
/// memory grows by less than 64 MiB.
#[test]
fn fifty_parallel_wrong_logins_cost_little_memory_and_the_surplus_gets_429() {
    let exe = std::env::current_exe().expect("exe");
    let out = std::process::Command::new(exe)
        .args(["login::child_fifty_parallel_wrong_logins", "--exact", "--nocapture"])
        .env("LQOS_WEB_LOGIN_CHILD", "1")
        .output()
        .expect("child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("CHILD-RESULT:")).unwrap_or_else(|| {
        panic!("child said nothing: {stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    });
    let v: Vec<u64> = line.split(' ').map(|n| n.parse().expect("number")).collect();
    let [unauth1, limited1, unauth2, limited2, grown1, grown2, ok, total] = v[..] else {
        panic!("bad child line {line}")
    };
    let mut err = std::io::stderr();
    use std::io::Write;
    let _ = writeln!(
        err,
        "wave 1 (one client): 401 x{unauth1}, 429 x{limited1}, RSS +{} MiB; wave 2 (50 clients): 401 x{unauth2}, 429 x{limited2}, RSS +{} MiB",
        grown1 / 1024,
        grown2 / 1024
    );
    assert_eq!(total, 100);
    assert_eq!(unauth1 + limited1, 50);
    assert!(unauth1 <= 5, "one client got {unauth1} hashed attempts");
    assert!(limited1 >= 45);
    assert_eq!(unauth2 + limited2, 50);
    assert!(limited2 >= 1, "the hashing pool must refuse a surplus");
    assert!(grown1 < 64 * 1024 && grown2 < 64 * 1024, "RSS grew {grown1} / {grown2} KiB");
    assert_eq!(ok, 200, "a normal login from another client still works");
}

/// Runs alone in a child process (a global subscriber captures every thread's events).
#[tokio::test]
async fn child_failed_login_log() {
    if std::env::var_os("LQOS_WEB_LOG_CHILD").is_none() {
        return;
    }
    let buf = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let writer = {
        let buf = buf.clone();
        move || CaptureWriter(buf.clone())
    };
    let sub = tracing_subscriber::fmt().with_writer(writer).with_ansi(false).finish();
    tracing::subscriber::set_global_default(sub).expect("subscriber");
    let app = app();
    let r = send(&app, login_from("192.0.2.9", "Secret-Pa55word-typed-here", "x")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let logged = String::from_utf8_lossy(&buf.lock().expect("buf")).replace('\n', " ");
    let mut out = std::io::stdout();
    use std::io::Write;
    let _ = writeln!(out, "\nCHILD-LOG:{logged}");
}

/// Before: a failed login logged the typed username, which is often a password typed into the
/// wrong field. Now the line names only the client.
#[test]
fn failed_logins_do_not_log_the_typed_username() {
    let exe = std::env::current_exe().expect("exe");
    let out = std::process::Command::new(exe)
        .args(["login::child_failed_login_log", "--exact", "--nocapture"])
        .env("LQOS_WEB_LOG_CHILD", "1")
        .output()
        .expect("child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let logged = stdout.lines().find_map(|l| l.strip_prefix("CHILD-LOG:")).unwrap_or_else(|| {
        panic!("child said nothing: {stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    });
    assert!(logged.contains("failed login") && logged.contains("192.0.2.9"), "{logged}");
    assert!(!logged.contains("Secret-Pa55word"), "{logged}");
}

struct CaptureWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn setup_req(token: &str, user: &str) -> Request<Body> {
    json_req(
        "POST",
        "/api/v1/setup",
        &json!({"token": token, "username": user, "password": "first-admin-password"}),
    )
}

/// Before: two concurrent setup requests could both pass the token check. Now exactly one
/// admin is created and the token is dead afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_token_is_single_use_under_concurrency() {
    let app = app_with(5, &[], |_| {});
    let token = app.state.setup_token().expect("token");
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let (state, r) = (app.state.clone(), setup_req(&token, &format!("admin{i}")));
            tokio::spawn(
                async move { router(state).oneshot(r).await.expect("infallible").status() },
            )
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("join"));
    }
    assert_eq!(count(&statuses, StatusCode::OK), 1, "{statuses:?}");
    let users = UserStore::load(&app.dir.path().join("lqusers.toml")).expect("users");
    assert_eq!(users.users().len(), 1);
    assert!(app.state.setup_token().is_none());
    let r = send(&app, setup_req(&token, "late")).await;
    assert_ne!(r.status, StatusCode::OK);
}

/// An admin created with `lqusers` while the token is outstanding kills the token.
#[tokio::test]
async fn setup_token_dies_once_an_admin_exists() {
    let app = app_with(5, &[], |_| {});
    let token = app.state.setup_token().expect("token");
    let mut store = UserStore::load(&app.dir.path().join("lqusers.toml")).expect("users");
    store.add("ops", "ops-password-1", Role::Admin).expect("add");
    store.save().expect("save");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(app.state.setup_token().is_none());
    let r = send(&app, setup_req(&token, "intruder")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
}

/// Before: a users file that stopped parsing kept the old list in force (a deleted user kept
/// access). Now everyone is denied until the file is fixed.
#[tokio::test]
async fn an_invalid_users_file_denies_everyone() {
    let app = app();
    let c = login(&app, "admin", "admin-password").await;
    assert_eq!(send(&app, c.get("/api/v1/status")).await.status, StatusCode::OK);
    std::fs::write(app.dir.path().join("lqusers.toml"), "version = 1\n[[users]]\nbroken =")
        .expect("write");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(send(&app, c.get("/api/v1/status")).await.status, StatusCode::UNAUTHORIZED);
    let r = send(&app, login_from("192.0.2.10", "admin", "admin-password")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
