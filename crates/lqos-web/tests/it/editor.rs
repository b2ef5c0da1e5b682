//! The shaped devices editor never loses data (issue 13, item 1). Each test reproduces one
//! way the editor used to lose or overwrite rows.

use super::*;

const WITH_EXTRAS: &str = "# exported by hand, keep this line\nCircuit ID,Circuit Name,Device ID,Device Name,Parent Node,Parent Node ID,Anchor Node ID,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment,sqm,Billing Plan\nc1,One,d1,Dev 1,AP-1,,,,100.64.0.1,,1,1,100,20,,,gold\n# c9 paused until March\nc2,Two,d2,Dev 2,AP-1,,,,100.64.0.2,,1,1,50,10,,,silver\n";

fn csv_path(app: &App) -> std::path::PathBuf {
    app.dir.path().join("ShapedDevices.csv")
}

fn read_csv(app: &App) -> String {
    std::fs::read_to_string(csv_path(app)).expect("csv")
}

async fn etag(app: &App, c: &Client) -> String {
    let r = send(app, c.get("/api/v1/shaped-devices")).await;
    r.headers[header::ETAG].to_str().expect("etag").to_owned()
}

/// Before: an edit of c1 rewrote the whole file from the parsed circuits, so comment lines and
/// the unknown "Billing Plan" column vanished. Now only c1's line changes.
#[tokio::test]
async fn comments_and_unknown_columns_survive_an_edit_of_another_row() {
    let app = app();
    std::fs::write(csv_path(&app), WITH_EXTRAS).expect("write");
    let c = login(&app, "admin", "admin-password").await;
    let r = c.edit(&app, "PUT", "/api/v1/shaped-devices/c1", &form("250", "100.64.0.1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let after = read_csv(&app);
    let changed: Vec<(&str, &str)> =
        WITH_EXTRAS.lines().zip(after.lines()).filter(|(a, b)| a != b).collect();
    assert_eq!(changed.len(), 1, "{after}");
    assert!(changed[0].1.starts_with("c1,One,d1,Dev 1,AP-1,,,,100.64.0.1,,1,1,250,20,"));
    assert!(changed[0].1.ends_with(",gold"), "the row keeps its own unknown cell: {after}");
    assert!(after.contains("# exported by hand, keep this line"));
    assert!(after.contains("# c9 paused until March"));
    assert!(after.contains(",silver"));
    // Every write keeps the previous file.
    let bak = std::fs::read_to_string(app.dir.path().join("ShapedDevices.csv.bak")).expect("bak");
    assert_eq!(bak, WITH_EXTRAS);
}

/// Before: a row the parser could not read was silently dropped by any save. Now every
/// write is refused while such a row exists, naming its line, and the file stays as it is.
#[tokio::test]
async fn writes_are_refused_while_other_rows_have_errors_and_the_lines_are_named() {
    let app = app();
    let broken = format!("{CSV}c7,Seven,d7,Dev 7,AP-1,,,,100.64.0.7,,1,1,fast,10,,\n");
    std::fs::write(csv_path(&app), &broken).expect("write");
    let c = login(&app, "admin", "admin-password").await;
    let r = c.edit(&app, "PUT", "/api/v1/shaped-devices/c1", &form("250", "100.64.0.1")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.body["error"], "file_has_errors");
    assert!(r.body["message"].as_str().expect("msg").contains("line 4"), "{}", r.text);
    assert_eq!(r.body["diagnostics"][0]["line"], 4);
    assert_eq!(read_csv(&app), broken, "nothing written");
    // The broken circuit itself can be fixed through the editor.
    let mut fix = form("70", "100.64.0.7");
    fix["circuit_id"] = json!("c7");
    fix["devices"][0]["device_id"] = json!("d7");
    let r = c.edit(&app, "PUT", "/api/v1/shaped-devices/c7", &fix).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(read_csv(&app).contains("c7,One,d7,Dev 1,AP-1,,,,100.64.0.7,,1,1,70,20,,"));
}

#[tokio::test]
async fn a_circuit_id_starting_with_hash_is_refused() {
    let app = app();
    let c = login(&app, "admin", "admin-password").await;
    let mut f = form("30", "100.64.0.50");
    f["circuit_id"] = json!("#hidden");
    let r = c.edit(&app, "POST", "/api/v1/shaped-devices", &f).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "Circuit ID");
    assert!(r.text.contains("comment"), "{}", r.text);
    assert_eq!(read_csv(&app), CSV);
}

/// Before: the last of two admins to save silently overwrote the other's change. Now the
/// second gets 409 (its ETag is stale) and a write without If-Match gets 428.
#[tokio::test]
async fn the_second_of_two_concurrent_admins_gets_409() {
    let app = app();
    let a = login(&app, "admin", "admin-password").await;
    let b = login(&app, "admin", "admin-password").await;
    let (ea, eb) = (etag(&app, &a).await, etag(&app, &b).await);
    assert_eq!(ea, eb);
    let r =
        send(&app, a.write_if("PUT", "/api/v1/shaped-devices/c1", &form("250", "100.64.0.1"), &ea))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new_tag = r.headers[header::ETAG].to_str().expect("etag").to_owned();
    assert_ne!(new_tag, ea);
    let r =
        send(&app, b.write_if("PUT", "/api/v1/shaped-devices/c1", &form("300", "100.64.0.1"), &eb))
            .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.body["error"], "stale");
    assert_eq!(r.headers[header::ETAG].to_str().expect("etag"), new_tag);
    assert!(read_csv(&app).contains(",250,20,"), "the first admin's edit stays");
    let r =
        send(&app, b.write("PUT", "/api/v1/shaped-devices/c1", &form("300", "100.64.0.1"))).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_REQUIRED, "{}", r.text);
}

/// Two admins racing for real (no sequencing): exactly one write wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writes_with_the_same_etag_have_one_winner() {
    let app = app();
    let c = login(&app, "admin", "admin-password").await;
    let tag = etag(&app, &c).await;
    let mut tasks = Vec::new();
    for down in ["210", "220", "230", "240"] {
        let req = c.write_if("PUT", "/api/v1/shaped-devices/c1", &form(down, "100.64.0.1"), &tag);
        let state = app.state.clone();
        tasks.push(tokio::spawn(async move {
            router(state).oneshot(req).await.expect("infallible").status()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("join") {
            StatusCode::OK => ok += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1);
}

/// The same guard as CRM imports: deleting the only circuit (100 % of them) is refused.
#[tokio::test]
async fn the_shrink_guard_refuses_removing_too_much() {
    let app = app();
    let c = login(&app, "admin", "admin-password").await;
    let r = c.edit(&app, "DELETE", "/api/v1/shaped-devices/c2", &json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "1 of 2 is within max_shrink_ratio 0.5: {}", r.text);
    let r = c.edit(&app, "DELETE", "/api/v1/shaped-devices/c1", &json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(r.text.contains("max_shrink_ratio"), "{}", r.text);
    assert!(read_csv(&app).contains("c1,"));
}

/// While an integration owns the files, the editor is read-only and says why.
#[tokio::test]
async fn an_enabled_integration_makes_the_editor_read_only() {
    let app = app_with(5, &[("admin", "admin-password", Role::Admin)], |o| {
        let conf = o.lqos_directory.join("lqos.conf");
        let text = include_str!("../../../../packaging/lqos.example.conf")
            .replace("enable_uisp = false", "enable_uisp = true")
            .replace("/opt/libreqos/src", &o.lqos_directory.display().to_string());
        std::fs::write(&conf, text).expect("conf");
        o.config_path = Some(conf);
    });
    let c = login(&app, "admin", "admin-password").await;
    let r = send(&app, c.get("/api/v1/shaped-devices")).await;
    assert!(r.body["read_only"].as_str().expect("read_only").contains("UISP"), "{}", r.text);
    let r = c.edit(&app, "PUT", "/api/v1/shaped-devices/c1", &form("250", "100.64.0.1")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(r.text.contains("enable_uisp = false"), "{}", r.text);
    assert_eq!(read_csv(&app), CSV);
}

/// The scheduler and the editor share one lock: while it is held, a save waits and then
/// gives up with 409 instead of interleaving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_inputs_lock_blocks_the_editor() {
    let app = app();
    let c = login(&app, "admin", "admin-password").await;
    let tag = etag(&app, &c).await;
    let held = lqos_config::lock_inputs(app.dir.path(), std::time::Duration::ZERO).expect("lock");
    let state = app.state.clone();
    let req = c.write_if("PUT", "/api/v1/shaped-devices/c1", &form("250", "100.64.0.1"), &tag);
    let pending = tokio::spawn(async move { router(state).oneshot(req).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "the save must wait for the lock");
    drop(held);
    let status = pending.await.expect("join").expect("infallible").status();
    assert_eq!(status, StatusCode::OK);
}

/// Hostile JSON shaped like the editor's bodies: the form's keys with values of every JSON
/// type (long, multi-line, `#`, quotes, commas, huge numbers), nested at random.
fn editor_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just("c1".to_owned()),
            Just("AP-1".to_owned()),
            Just("100.64.0.9".to_owned()),
            Just("#c".to_owned()),
            Just("a\nb".to_owned()),
            Just("\"q\",x".to_owned()),
            Just("1e999".to_owned()),
            Just("0.0.0.0/0".to_owned()),
            "[0-9]{1,4}",
            "\\PC{0,20}",
        ]
        .prop_map(Value::String),
    ];
    let key = prop::sample::select(vec![
        "circuit_id",
        "circuit_name",
        "parent_node",
        "parent_node_id",
        "anchor_node_id",
        "download_min_mbps",
        "upload_min_mbps",
        "download_max_mbps",
        "upload_max_mbps",
        "sqm",
        "devices",
        "device_id",
        "device_name",
        "mac",
        "ipv4",
        "ipv6",
        "comment",
        "x",
        "node_name",
        "default_sqm",
        "downlink_bandwidth_mbps",
    ]);
    scalar.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..12).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// Invariant: whatever JSON an admin's client sends to the editor or the configuration page,
/// the answer is 200 or a 4xx (never a panic or a 5xx), and the file on disk stays one lqos
/// accepts without errors, with its comment line.
#[test]
fn fuzz_editor_json_bodies() {
    use proptest::test_runner::{Config, TestRunner};
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let app = app_with(5, &[("admin", "admin-password", Role::Admin)], |o| {
        let conf = o.lqos_directory.join("lqos.conf");
        let text = include_str!("../../../../packaging/lqos.example.conf")
            .replace("/opt/libreqos/src", &o.lqos_directory.display().to_string());
        std::fs::write(&conf, text).expect("conf");
        o.config_path = Some(conf);
    });
    std::fs::write(csv_path(&app), WITH_EXTRAS).expect("write");
    let c = rt.block_on(login(&app, "admin", "admin-password"));
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 64;
    }
    config.failure_persistence = None;
    let mut runner = TestRunner::new(config);
    let result = runner.run(&(editor_json(), 0usize..4), |(body, target)| {
        let (method, uri) = [
            ("POST", "/api/v1/shaped-devices"),
            ("PUT", "/api/v1/shaped-devices/c1"),
            ("PUT", "/api/v1/shaped-devices/c2"),
            ("PUT", "/api/v1/config"),
        ][target];
        let r = rt.block_on(c.edit(&app, method, uri, &body));
        proptest::prop_assert!(
            r.status == StatusCode::OK || r.status.is_client_error(),
            "{method} {uri} {body} -> {} {}",
            r.status,
            r.text
        );
        let text = read_csv(&app);
        let (_, diags) = lqos_config::parse_shaped_devices_str(&text, "ShapedDevices.csv");
        proptest::prop_assert!(!diags.iter().any(|d| d.is_error()), "{diags:?}\n{text}");
        proptest::prop_assert!(text.starts_with("# exported by hand, keep this line\n"));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Plays lqosd for `EditConfig` (as lqosd's handler does: the shared edit, then a write that
/// falls back to rewriting in place) and counts the requests; the rest goes to the demo.
struct ConfigWriter {
    path: std::path::PathBuf,
    demo: DemoBackend,
    edits: std::sync::Mutex<Vec<Vec<(String, String)>>>,
}

impl lqos_web::Backend for ConfigWriter {
    fn request(&self, cmd: Command) -> lqos_web::BoxFuture<'_, Response> {
        let Command::EditConfig { settings } = cmd else { return self.demo.request(cmd) };
        if let Ok(mut e) = self.edits.lock() {
            e.push(settings.clone());
        }
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let answer = match lqos_config::edit_common_settings(&text, &self.path, &settings) {
            Ok((new, warnings)) => match lqos_config::write_replacing(&self.path, new.as_bytes()) {
                Ok(()) => Response::ConfigSaved(warnings),
                Err(e) => Response::Error(CommandError::Internal { message: e.to_string() }),
            },
            Err(lqos_config::SettingsEditError::Fields { errors, .. }) => {
                Response::Error(CommandError::InvalidInput {
                    diagnostics: errors
                        .into_iter()
                        .map(|e| {
                            lqos_config::Diagnostic::error("lqos.conf", e.message).field(e.setting)
                        })
                        .collect(),
                })
            }
            Err(e) => Response::Error(CommandError::Internal { message: e.to_string() }),
        };
        Box::pin(async move { answer })
    }
}

/// Before: under the packaged unit the web server (user lqos, /etc read-only in its sandbox)
/// answered 500 "Read-only file system" to every settings save. Now it asks lqosd to write.
#[tokio::test]
async fn a_config_the_web_server_may_not_write_is_written_by_lqosd() {
    use std::process::Command as Cmd;
    let app = app_with(5, &[("admin", "admin-password", Role::Admin)], |_| {});
    let etc = app.dir.path().join("etc");
    std::fs::create_dir(&etc).expect("etc");
    let path = etc.join("lqos.conf");
    std::fs::write(&path, COMMENTED_CONF).expect("conf");
    let writer = Arc::new(ConfigWriter {
        path: path.clone(),
        demo: DemoBackend::new(5, 3),
        edits: std::sync::Mutex::new(Vec::new()),
    });
    let mut opts = WebOptions::new(app.dir.path().to_path_buf());
    opts.config_path = Some(path.clone());
    let app = App {
        state: WebState::new(writer.clone(), opts).expect("state"),
        backend: app.backend,
        dir: app.dir,
    };
    let c = login(&app, "admin", "admin-password").await;
    let put = |body: Value| c.write("PUT", "/api/v1/config", &body);
    // Writable: the web server writes it itself, lqosd is not asked.
    let r = send(&app, put(json!({"downlink_bandwidth_mbps": 1500}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(writer.edits.lock().expect("lock").is_empty());
    // /etc read-only (an immutable directory refuses the temporary file the same way).
    if !Cmd::new("chattr").arg("+i").arg(&etc).status().is_ok_and(|s| s.success()) {
        eprintln!("skipped the read-only half: chattr +i does not work here");
        return;
    }
    struct Undo(std::path::PathBuf);
    impl Drop for Undo {
        fn drop(&mut self) {
            let _ = std::process::Command::new("chattr").arg("-i").arg(&self.0).status();
        }
    }
    let _undo = Undo(etc.clone());
    let r =
        send(&app, put(json!({"downlink_bandwidth_mbps": "2500", "node_name": "north-2"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let text = std::fs::read_to_string(&path).expect("conf");
    assert!(
        text.contains("downlink_bandwidth_mbps = 2500 # keep in sync with the router"),
        "{text}"
    );
    assert!(text.contains("node_name = \"north-2\"  # shown in the GUI"), "{text}");
    assert!(text.contains("[custom_vendor_section]\nanswer = 42   # the answer"), "{text}");
    assert_eq!(writer.edits.lock().expect("lock").len(), 1, "lqosd asked once");
    // Refused values never reach lqosd (checked here first) and change nothing.
    let r = send(&app, put(json!({"uplink_bandwidth_mbps": "fast"}))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "uplink_bandwidth_mbps");
    assert_eq!(writer.edits.lock().expect("lock").len(), 1);
    assert_eq!(std::fs::read_to_string(&path).expect("conf"), text);
}
