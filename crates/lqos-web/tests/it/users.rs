//! User management from the GUI (`/api/v1/users`): who may, the rules a tired admin or an
//! attacker probes, and the users file shared with `lqusers`.

use std::sync::Mutex;

use super::*;

fn users_path(app: &App) -> std::path::PathBuf {
    app.dir.path().join("lqusers.toml")
}

fn names(r: &Reply) -> Vec<(String, String)> {
    r.body
        .as_array()
        .expect("list")
        .iter()
        .map(|u| {
            (
                u["username"].as_str().expect("name").to_owned(),
                u["role"].as_str().expect("role").to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

async fn try_login(app: &App, user: &str, pass: &str) -> StatusCode {
    send(app, json_req("POST", "/api/v1/login", &json!({"username": user, "password": pass})))
        .await
        .status
}

#[tokio::test]
async fn viewers_get_403_and_anonymous_401_on_every_users_route() {
    let app = app();
    let viewer = login(&app, "viewer", "viewer-password").await;
    let calls: [(&str, &str, Value); 5] = [
        ("GET", "/api/v1/users", json!(null)),
        (
            "POST",
            "/api/v1/users",
            json!({"username": "eve", "role": "admin", "password": "long-password"}),
        ),
        ("DELETE", "/api/v1/users/admin", json!({})),
        ("PUT", "/api/v1/users/viewer/role", json!({"role": "admin"})),
        ("PUT", "/api/v1/users/admin/password", json!({"password": "taken-over-now"})),
    ];
    let before = std::fs::read(users_path(&app)).expect("users");
    for (method, uri, body) in &calls {
        let r = if *method == "GET" {
            send(&app, viewer.get(uri)).await
        } else {
            send(&app, viewer.write(method, uri, body)).await
        };
        assert_eq!(r.status, StatusCode::FORBIDDEN, "viewer {method} {uri}: {}", r.text);
        let anon = if *method == "GET" {
            req(method, uri).body(Body::empty()).expect("req")
        } else {
            json_req(method, uri, body)
        };
        let r = send(&app, anon).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "anonymous {method} {uri}");
    }
    assert_eq!(std::fs::read(users_path(&app)).expect("users"), before, "nothing written");
    assert_eq!(try_login(&app, "admin", "admin-password").await, StatusCode::OK);
}

#[tokio::test]
async fn admin_creates_changes_resets_and_deletes_users() {
    let app = app();
    let admin = login(&app, "admin", "admin-password").await;
    let r = send(&app, admin.get("/api/v1/users")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(names(&r), pairs(&[("admin", "admin"), ("viewer", "read_only")]));

    let r = send(
        &app,
        admin.write(
            "POST",
            "/api/v1/users",
            &json!({"username": "carol", "role": "read-only", "password": "carol-password"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body, json!({"username": "carol", "role": "read_only"}));
    let carol = login(&app, "carol", "carol-password").await;
    assert_eq!(send(&app, carol.get("/api/v1/session")).await.body["role"], "read_only");

    let r =
        send(&app, admin.write("PUT", "/api/v1/users/carol/role", &json!({"role": "admin"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["role"], "admin");
    let carol = login(&app, "carol", "carol-password").await;
    assert_eq!(send(&app, carol.get("/api/v1/users")).await.status, StatusCode::OK, "now admin");

    let r = send(
        &app,
        admin.write("PUT", "/api/v1/users/carol/password", &json!({"password": "new-carol-pass"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(try_login(&app, "carol", "carol-password").await, StatusCode::UNAUTHORIZED);
    assert_eq!(try_login(&app, "carol", "new-carol-pass").await, StatusCode::OK);

    let r = send(&app, admin.write("DELETE", "/api/v1/users/carol", &json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["username"], "carol");
    let r = send(&app, admin.get("/api/v1/users")).await;
    assert_eq!(names(&r), pairs(&[("admin", "admin"), ("viewer", "read_only")]));
    assert_eq!(try_login(&app, "carol", "new-carol-pass").await, StatusCode::UNAUTHORIZED);
    // The change is in the file lqusers reads.
    let store = UserStore::load(&users_path(&app)).expect("users");
    assert!(store.get("carol").is_none());
    // Unknown users are 404 for every change.
    for (method, uri, body) in [
        ("DELETE", "/api/v1/users/nobody", json!({})),
        ("PUT", "/api/v1/users/nobody/role", json!({"role": "admin"})),
        ("PUT", "/api/v1/users/nobody/password", json!({"password": "long-enough-1"})),
    ] {
        let r = send(&app, admin.write(method, uri, &body)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {uri}: {}", r.text);
    }
}

#[tokio::test]
async fn the_last_admin_can_be_neither_deleted_nor_demoted() {
    let app = app();
    let admin = login(&app, "admin", "admin-password").await;
    let r = send(&app, admin.write("DELETE", "/api/v1/users/admin", &json!({}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(r.body["message"].as_str().expect("msg").contains("last admin"), "{}", r.text);
    let r =
        send(&app, admin.write("PUT", "/api/v1/users/admin/role", &json!({"role": "read_only"})))
            .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let store = UserStore::load(&users_path(&app)).expect("users");
    assert_eq!(store.get("admin").map(|u| u.role), Some(Role::Admin), "file unchanged");
    assert_eq!(send(&app, admin.get("/api/v1/users")).await.status, StatusCode::OK, "still in");

    // With a second admin, the first may step down (and its session ends).
    let r = send(&app, admin.write("PUT", "/api/v1/users/viewer/role", &json!({"role": "admin"})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r =
        send(&app, admin.write("PUT", "/api/v1/users/admin/role", &json!({"role": "read_only"})))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(send(&app, admin.get("/api/v1/users")).await.status, StatusCode::UNAUTHORIZED);
    // The remaining admin is now the last one.
    let other = login(&app, "viewer", "viewer-password").await;
    let r = send(&app, other.write("DELETE", "/api/v1/users/viewer", &json!({}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let r = send(&app, other.write("DELETE", "/api/v1/users/admin", &json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "a read-only user can go: {}", r.text);
}

#[tokio::test]
async fn delete_reset_and_role_change_end_that_users_sessions_at_once() {
    let app = app_with(
        5,
        &[
            ("admin", "admin-password", Role::Admin),
            ("v1", "viewer-password", Role::ReadOnly),
            ("v2", "viewer-password", Role::ReadOnly),
            ("v3", "viewer-password", Role::ReadOnly),
        ],
        |_| {},
    );
    let admin = login(&app, "admin", "admin-password").await;
    let changes = [
        ("v1", "PUT", "/api/v1/users/v1/password", json!({"password": "another-password"})),
        ("v2", "PUT", "/api/v1/users/v2/role", json!({"role": "admin"})),
        ("v3", "DELETE", "/api/v1/users/v3", json!({})),
    ];
    for (user, method, uri, body) in changes {
        let s1 = login(&app, user, "viewer-password").await;
        let s2 = login(&app, user, "viewer-password").await;
        assert_eq!(send(&app, s1.get("/api/v1/status")).await.status, StatusCode::OK);
        let r = send(&app, admin.write(method, uri, &body)).await;
        assert_eq!(r.status, StatusCode::OK, "{method} {uri}: {}", r.text);
        // No wait: the very next request of either session is refused.
        for s in [&s1, &s2] {
            let r = send(&app, s.get("/api/v1/status")).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{user} after {method} {uri}");
        }
    }
    // A role changed back does not bring the ended sessions back.
    let s = login(&app, "v2", "viewer-password").await;
    for role in ["read_only", "admin"] {
        let r =
            send(&app, admin.write("PUT", "/api/v1/users/v2/role", &json!({"role": role}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    assert_eq!(send(&app, s.get("/api/v1/status")).await.status, StatusCode::UNAUTHORIZED);
    // Setting the role a user already has changes nothing and ends nothing.
    let s = login(&app, "v2", "viewer-password").await;
    let r =
        send(&app, admin.write("PUT", "/api/v1/users/v2/role", &json!({"role": "admin"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(send(&app, s.get("/api/v1/status")).await.status, StatusCode::OK);
    // The admin's own session is untouched by changes to others.
    assert_eq!(send(&app, admin.get("/api/v1/users")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn username_password_and_role_rules_are_the_ones_lqusers_has() {
    let app = app();
    let admin = login(&app, "admin", "admin-password").await;
    let long = "a".repeat(65);
    for bad in ["", "x y", "<img src=x onerror=alert(1)>", "a/b", "é", long.as_str()] {
        let r = send(
            &app,
            admin.write(
                "POST",
                "/api/v1/users",
                &json!({"username": bad, "role": "admin", "password": "long-password"}),
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}: {}", r.text);
        assert_eq!(r.body["errors"][0]["field"], "username");
    }
    let ok64 = "a".repeat(64);
    for good in ["bob.smith-2@example_net", ok64.as_str()] {
        let r = send(
            &app,
            admin.write(
                "POST",
                "/api/v1/users",
                &json!({"username": good, "role": "read_only", "password": "long-password"}),
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{good:?}: {}", r.text);
    }
    for (body, field) in [
        (json!({"username": "dave", "role": "read_only", "password": "short77"}), "password"),
        (json!({"username": "dave", "role": "root", "password": "long-password"}), "role"),
    ] {
        let r = send(&app, admin.write("POST", "/api/v1/users", &body)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.text);
        assert_eq!(r.body["errors"][0]["field"], field);
    }
    let r = send(
        &app,
        admin.write("PUT", "/api/v1/users/viewer/password", &json!({"password": "1234567"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["errors"][0]["field"], "password");
    let r = send(
        &app,
        admin.write(
            "POST",
            "/api/v1/users",
            &json!({"username": "viewer", "role": "admin", "password": "long-password"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "duplicate: {}", r.text);
    assert_eq!(
        UserStore::load(&users_path(&app)).expect("users").get("viewer").map(|u| u.role),
        Some(Role::ReadOnly),
        "a duplicate create changes nothing"
    );
    let r = send(&app, admin.write("POST", "/api/v1/users", &json!({"username": "x"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "missing fields: {}", r.text);
    let huge = "p".repeat(64 * 1024);
    let r = send(
        &app,
        admin.write(
            "POST",
            "/api/v1/users",
            &json!({"username": "big", "role": "admin", "password": huge}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("length limit"), "{}", r.text);
    assert!(UserStore::load(&users_path(&app)).expect("users").get("big").is_none());
}

#[tokio::test]
async fn writes_need_the_csrf_token_and_the_same_origin() {
    let app = app();
    let admin = login(&app, "admin", "admin-password").await;
    let before = std::fs::read(users_path(&app)).expect("users");
    let body = json!({"username": "mallory", "role": "admin", "password": "long-password"});
    let no_csrf = req("POST", "/api/v1/users")
        .header(header::COOKIE, &admin.cookie)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("req");
    let r = send(&app, no_csrf).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let wrong_csrf = req("DELETE", "/api/v1/users/viewer")
        .header(header::COOKIE, &admin.cookie)
        .header("x-csrf-token", "0".repeat(32))
        .body(Body::empty())
        .expect("req");
    assert_eq!(send(&app, wrong_csrf).await.status, StatusCode::FORBIDDEN);
    let mut cross = admin.write("PUT", "/api/v1/users/viewer/role", &json!({"role": "admin"}));
    cross.headers_mut().insert(header::ORIGIN, "http://evil.example".parse().expect("hv"));
    let r = send(&app, cross).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.text.contains("cross-origin"), "{}", r.text);
    assert_eq!(std::fs::read(users_path(&app)).expect("users"), before, "nothing written");
    // The same request from the page's own origin goes through.
    let mut same = admin.write("PUT", "/api/v1/users/viewer/role", &json!({"role": "admin"}));
    same.headers_mut().insert(header::ORIGIN, "http://localhost".parse().expect("hv"));
    assert_eq!(send(&app, same).await.status, StatusCode::OK);
}

#[tokio::test]
async fn user_changes_are_throttled_per_client_like_logins() {
    let app = app();
    let admin = login(&app, "admin", "admin-password").await;
    let limit = lqos_web::auth::ADMIN_WRITE_LIMITS.per_client;
    let bad = json!({"username": "no spaces", "role": "read_only", "password": "long-password"});
    for i in 0..limit {
        let r = send(&app, admin.write("POST", "/api/v1/users", &bad)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "attempt {i}: {}", r.text);
    }
    let good = json!({"username": "late", "role": "read_only", "password": "long-password"});
    let r = send(&app, admin.write("POST", "/api/v1/users", &good)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    let wait: u64 = r.headers[header::RETRY_AFTER].to_str().expect("ascii").parse().expect("secs");
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(UserStore::load(&users_path(&app)).expect("users").get("late").is_none());
    // Another client (another admin machine) is not held up; reads are never throttled.
    let elsewhere = admin.write("POST", "/api/v1/users", &good);
    let (mut parts, body) = elsewhere.into_parts();
    parts
        .extensions
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from(([192, 0, 2, 44], 40000))));
    let r = send(&app, Request::from_parts(parts, body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(send(&app, admin.get("/api/v1/users")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_concurrent_lqusers_edit_is_kept_and_a_stale_one_refused() {
    let app = app();
    let admin = login(&app, "admin", "admin-password").await;
    let path = users_path(&app);
    // lqusers reads the file (then, say, prompts for a password)…
    let mut cli = UserStore::load(&path).expect("users");
    // …meanwhile an admin adds a user in the GUI…
    let r = send(
        &app,
        admin.write(
            "POST",
            "/api/v1/users",
            &json!({"username": "gui", "role": "read_only", "password": "long-password"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // …so lqusers' write of its stale copy is refused instead of dropping "gui".
    cli.add("cli", "long-password", Role::ReadOnly).expect("add");
    let err = cli.save().expect_err("stale copy");
    assert!(matches!(err, lqos_web::users::UsersError::Changed { .. }), "{err}");
    // lqusers run again: its edit lands, and the GUI's next change keeps it.
    let mut cli = UserStore::load(&path).expect("users");
    cli.add("cli", "long-password", Role::ReadOnly).expect("add");
    cli.save().expect("save");
    let r =
        send(&app, admin.write("PUT", "/api/v1/users/gui/role", &json!({"role": "admin"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let store = UserStore::load(&path).expect("users");
    let all: Vec<&str> = store.users().iter().map(|u| u.username.as_str()).collect();
    assert_eq!(all, ["admin", "viewer", "gui", "cli"]);
    assert_eq!(store.get("gui").map(|u| u.role), Some(Role::Admin));
    // The GUI shows the CLI's user at once (the cache follows the GUI's own write).
    let r = send(&app, admin.get("/api/v1/users")).await;
    assert!(names(&r).contains(&("cli".to_owned(), "read_only".to_owned())), "{}", r.text);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777, 0o600);
}

#[tokio::test]
async fn a_writer_holding_the_lock_delays_the_gui_and_nothing_is_lost() {
    let app = app();
    let admin = login(&app, "admin", "admin-password").await;
    let lock = lqos_web::users::lock_path(&users_path(&app));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .expect("lock file");
    file.lock().expect("lock");
    // The other writer (lqusers) holds the lock for a moment, then lets go.
    let other = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        file.unlock().expect("unlock");
    });
    let started = std::time::Instant::now();
    let r = send(
        &app,
        admin.write(
            "POST",
            "/api/v1/users",
            &json!({"username": "after", "role": "read_only", "password": "long-password"}),
        ),
    )
    .await;
    other.join().expect("thread");
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(started.elapsed() >= std::time::Duration::from_millis(250), "waited for the lock");
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_password_or_hash_in_any_answer_or_log_line() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = app();
    let admin = login(&app, "admin", "admin-password").await;
    let secret1 = "Secret-Initial-Pw-1";
    let secret2 = "Secret-Reset-Pw-22";
    let mut answers = String::new();
    for (method, uri, body) in [
        (
            "POST",
            "/api/v1/users",
            json!({"username": "erin", "role": "read_only", "password": secret1}),
        ),
        ("PUT", "/api/v1/users/erin/password", json!({"password": secret2})),
        ("PUT", "/api/v1/users/erin/role", json!({"role": "admin"})),
        (
            "POST",
            "/api/v1/users",
            json!({"username": "erin", "role": "admin", "password": secret1}),
        ),
        (
            "POST",
            "/api/v1/users",
            json!({"username": "bad name", "role": "admin", "password": secret1}),
        ),
        ("PUT", "/api/v1/users/erin/password", json!({"password": "Sh0rtPw"})),
        ("DELETE", "/api/v1/users/erin", json!({})),
    ] {
        answers.push_str(&send(&app, admin.write(method, uri, &body)).await.text);
    }
    answers.push_str(&send(&app, admin.get("/api/v1/users")).await.text);
    let logged = String::from_utf8(logs.0.lock().expect("logs").clone()).expect("utf8");
    assert!(logged.contains("web user created"), "the test sees the logs: {logged}");
    for text in [&answers, &logged] {
        for secret in [secret1, secret2, "Sh0rtPw", "admin-password", "$argon2", "password_hash"] {
            assert!(!text.contains(secret), "{secret:?} leaked: {text}");
        }
    }
}

#[tokio::test]
async fn odd_names_from_a_hand_edited_file_are_plain_data_and_can_be_removed() {
    let app = app();
    let admin = login(&app, "admin", "admin-password").await;
    let hash = lqos_web::users::hash_password("long-password").expect("hash");
    let odd = "<img src=x onerror=alert(1)>";
    let text = std::fs::read_to_string(users_path(&app)).expect("read")
        + &format!(
            "\n[[users]]\nusername = {odd:?}\npassword_hash = {hash:?}\nrole = \"read_only\"\n"
        );
    std::fs::write(users_path(&app), text).expect("write");
    assert!(UserStore::load(&users_path(&app)).expect("users").get(odd).is_some());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = send(&app, admin.get("/api/v1/users")).await;
    assert!(names(&r).contains(&(odd.to_owned(), "read_only".to_owned())), "{}", r.text);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
    let uri = format!("/api/v1/users/{}", "%3Cimg%20src=x%20onerror=alert(1)%3E");
    let r = send(&app, admin.write("DELETE", &uri, &json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(UserStore::load(&users_path(&app)).expect("users").get(odd).is_none());
}

#[tokio::test]
#[expect(clippy::print_stderr, reason = "says when it skips without root")]
async fn the_file_keeps_its_owner_and_mode_after_gui_writes() {
    use std::os::unix::fs::MetadataExt;
    let app = app();
    let path = users_path(&app);
    if std::fs::metadata(&path).expect("stat").uid() != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).expect("chown");
    let admin = login(&app, "admin", "admin-password").await;
    let r = send(
        &app,
        admin.write(
            "POST",
            "/api/v1/users",
            &json!({"username": "frank", "role": "read_only", "password": "long-password"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let md = std::fs::metadata(&path).expect("stat");
    assert_eq!((md.uid(), md.gid(), md.mode() & 0o777), (65534, 65534, 0o600));
}
