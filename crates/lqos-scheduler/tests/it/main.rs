//! The `lqos_scheduler` binary against a fake lqosd on a real bus socket and a mock CRM.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::{Arc, Mutex};

use lqos_bus::server::{Request, bind, serve};
use lqos_bus::{Command, ReloadReport, Response};
use lqos_integrations::mock::{MockCrm, Reply};

const DOC: &str = r#"{"zones":[{"id":1,"name":"Zone A","capacity_download_mbps":500,"capacity_upload_mbps":500}],
 "customers":[{"subscriber_id":"1","zone":"Zone A","customerName":"One","download":50,"upload":10,"ip":"100.64.0.1"}]}"#;

/// A fake lqosd: answers Ping, Reload and SchedulerReport on `path`, recording commands.
struct FakeLqosd {
    commands: Arc<Mutex<Vec<Command>>>,
    _rt: tokio::runtime::Runtime,
}

fn fake_lqosd(path: &Path) -> FakeLqosd {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let commands = Arc::new(Mutex::new(Vec::new()));
    let seen = commands.clone();
    let path = path.to_path_buf();
    rt.block_on(async {
        let listener = bind(&path).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Request>(16);
        tokio::spawn(serve(listener, tx));
        tokio::spawn(async move {
            while let Some(req) = rx.recv().await {
                seen.lock().unwrap().push(req.command.clone());
                let answer = match req.command {
                    Command::Ping => Response::Pong,
                    Command::Reload { .. } => Response::Reload(Box::new(ReloadReport {
                        applied: true,
                        circuits: 1,
                        ..Default::default()
                    })),
                    _ => Response::Ack,
                };
                let _ = req.reply.send(answer);
            }
        });
    });
    FakeLqosd { commands, _rt: rt }
}

fn conf(dir: &Path, url: &str) -> PathBuf {
    let p = dir.join("lqos.conf");
    std::fs::write(
        &p,
        format!(
            "version = \"1.5\"\nlqos_directory = \"{}\"\n[bridge]\nto_internet = \"eth1\"\nto_network = \"eth2\"\n\
             [netzur_integration]\nenable_netzur = true\napi_key = \"k\"\napi_url = \"{url}/api\"\n",
            dir.display()
        ),
    )
    .unwrap();
    p
}

fn scheduler(config: &Path, bus: &Path, args: &[&str]) -> std::process::Output {
    Process::new(env!("CARGO_BIN_EXE_lqos_scheduler"))
        .args(args)
        .env("LQOS_CONFIG", config)
        .env("LQOS_BUS", bus)
        .env_remove("LQOS_DIRECTORY")
        .output()
        .unwrap()
}

#[test]
fn once_imports_publishes_and_reloads_through_the_bus() {
    let crm = MockCrm::start().unwrap();
    crm.set("/api", vec![Reply::json(DOC)]);
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("run/bus");
    let lqosd = fake_lqosd(&bus);
    let out = scheduler(&conf(dir.path(), &crm.url()), &bus, &["--once"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("import published") && stderr.contains("reload done"), "{stderr}");
    let cmds = lqosd.commands.lock().unwrap().clone();
    // The files are written first; lqosd is pinged right before the Reload.
    let ping = cmds.iter().position(|c| *c == Command::Ping).expect("Ping sent");
    let reload = cmds.iter().position(|c| matches!(c, Command::Reload { .. })).unwrap();
    assert!(ping < reload, "{cmds:?}");
    assert!(
        cmds.contains(&Command::Reload { mode: lqos_bus::ReloadMode::Incremental }),
        "{cmds:?}"
    );
    assert!(cmds.iter().any(|c| matches!(c, Command::SchedulerReport(s) if s.phase == "idle" && s.integration == "netzur")));
    assert!(
        std::fs::read_to_string(dir.path().join("ShapedDevices.csv")).unwrap().contains("netzur_1")
    );
}

/// issue 10: `--once` with lqosd stopped still pulls and writes the files, then says that
/// lqosd was not reachable and exits 2, without waiting a minute first.
#[test]
fn once_without_lqosd_writes_the_files_then_exits_2_naming_the_bus() {
    let crm = MockCrm::start().unwrap();
    crm.set("/api", vec![Reply::json(DOC)]);
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("nobody/bus");
    let started = std::time::Instant::now();
    let out = scheduler(&conf(dir.path(), &crm.url()), &bus, &["--once"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
    assert!(
        std::fs::read_to_string(dir.path().join("ShapedDevices.csv")).unwrap().contains("netzur_1")
    );
    assert!(dir.path().join("network.json").exists());
    assert!(
        stderr.contains(&format!(
            "wrote network.json and ShapedDevices.csv (1 circuits, 1 nodes) to {}; but lqosd was not reachable on the bus at {}, so nothing was reloaded",
            dir.path().display(),
            bus.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was reloaded"), "{stderr}");
    // A second run finds the files current and still says lqosd was not reached.
    let out = scheduler(&conf(dir.path(), &crm.url()), &bus, &["--once"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("are already up to date (1 circuits, 1 nodes)"), "{stderr}");
}

/// `--once --no-write` pulls and validates but writes and reloads nothing.
#[test]
fn once_no_write_checks_without_writing_or_reloading() {
    let crm = MockCrm::start().unwrap();
    crm.set("/api", vec![Reply::json(DOC)]);
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("nobody/bus");
    let out = scheduler(&conf(dir.path(), &crm.url()), &bus, &["--once", "--no-write"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("import checked (dry run, nothing written)"), "{stderr}");
    assert_eq!(crm.hits("/api"), 1);
    assert!(!dir.path().join("ShapedDevices.csv").exists());
    assert!(!dir.path().join("network.json").exists());
}

/// With an unreachable CRM the run fails on the CRM (exit 2) and writes nothing.
#[test]
fn once_with_unreachable_crm_exits_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("nobody/bus");
    let out = scheduler(&conf(dir.path(), "http://127.0.0.1:9"), &bus, &["--once"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot reach Netzur at http://127.0.0.1:9/api"), "{stderr}");
    assert!(!dir.path().join("ShapedDevices.csv").exists());
}

#[test]
fn once_refuses_an_empty_import_with_exit_1_and_force_publishes_it() {
    let crm = MockCrm::start().unwrap();
    crm.set("/api", vec![Reply::json(r#"{"zones":[],"customers":[]}"#)]);
    let dir = tempfile::tempdir().unwrap();
    let config = conf(dir.path(), &crm.url());
    let out = scheduler(&config, &dir.path().join("bus"), &["--once", "--no-reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Netzur import is empty"));
    assert!(!dir.path().join("ShapedDevices.csv").exists());
    let out = scheduler(&config, &dir.path().join("bus"), &["--once", "--no-reload", "--force"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("ShapedDevices.csv").exists());
}

#[test]
fn missing_config_exits_1_and_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let out = scheduler(
        &dir.path().join("absent.conf"),
        &dir.path().join("bus"),
        &["--once", "--no-reload"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent.conf"));
}
