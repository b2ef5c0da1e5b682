//! Scheduler cycles against a fake bus and a mock CRM.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lqos_bus::{BusError, Command, ObjectCounts, ReloadMode, ReloadReport, Response};
use lqos_integrations::mock::{MockCrm, Reply};

use super::*;

/// Records every command; answers Ping/Reload/SchedulerReport like lqosd.
#[derive(Clone, Default)]
struct FakeBus {
    sent: Arc<Mutex<Vec<Command>>>,
    down: bool,
}

impl Bus for FakeBus {
    fn request(&mut self, command: &Command) -> Result<Response, BusError> {
        if self.down {
            return Err(BusError::Connect {
                path: "/tmp/nowhere/bus".into(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        self.sent.lock().unwrap().push(command.clone());
        Ok(match command {
            Command::Ping => Response::Pong,
            Command::Reload { mode } => Response::Reload(Box::new(ReloadReport {
                applied: true,
                full_rebuild: *mode == ReloadMode::Full,
                counts: ObjectCounts { added: 1, ..Default::default() },
                quarantined: vec![lqos_config::Quarantined {
                    circuit_id: "netzur_9".into(),
                    name: "Nine".into(),
                    file: "ShapedDevices.csv".into(),
                    line: 4,
                    reason: "Parent Node: parent node 'Gone' is not in network.json".into(),
                    action: lqos_config::QuarantineAction::GeneratedParent,
                }],
                ..Default::default()
            })),
            _ => Response::Ack,
        })
    }
    fn describe(&self) -> PathBuf {
        "/tmp/nowhere/bus".into()
    }
}

impl FakeBus {
    fn reloads(&self) -> Vec<ReloadMode> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter_map(|c| match c {
                Command::Reload { mode } => Some(*mode),
                _ => None,
            })
            .collect()
    }
    fn last_report(&self) -> Option<SchedulerState> {
        self.sent.lock().unwrap().iter().rev().find_map(|c| match c {
            Command::SchedulerReport(s) => Some(s.clone()),
            _ => None,
        })
    }
}

const DOC: &str = r#"{"zones":[{"id":1,"name":"Zone A","capacity_download_mbps":500,"capacity_upload_mbps":500}],
 "customers":[{"subscriber_id":"1","zone":"Zone A","customerName":"One","download":50,"upload":10,"ip":"100.64.0.1"},
              {"subscriber_id":"2","zone":"Zone A","customerName":"Two","download":20,"upload":5,"ip":"100.64.0.2"}]}"#;

fn write_conf(dir: &Path, url: &str) -> PathBuf {
    let conf = dir.join("lqos.conf");
    std::fs::write(
        &conf,
        format!(
            r#"version = "1.5"
lqos_directory = "{}"
[bridge]
to_internet = "eth1"
to_network = "eth2"
[netzur_integration]
enable_netzur = true
api_key = "k"
api_url = "{url}/api"
"#,
            dir.display()
        ),
    )
    .unwrap();
    conf
}

fn scheduler(dir: &Path, url: &str, bus: FakeBus) -> Scheduler<FakeBus> {
    scheduler_every(dir, url, bus, Duration::from_secs(1))
}

fn scheduler_every(dir: &Path, url: &str, bus: FakeBus, interval: Duration) -> Scheduler<FakeBus> {
    let opts = SchedulerOptions {
        config_path: write_conf(dir, url),
        force: false,
        reload: true,
        dry_run: false,
        ping_before_reload: false,
        import_timeout: Duration::from_secs(5),
        interval: Some(interval),
        wait_lqosd: Duration::from_millis(300),
        http: HttpOptions {
            timeout: Duration::from_secs(2),
            attempts: 2,
            backoff: Duration::from_millis(20),
            ..Default::default()
        },
        poll: Duration::from_millis(200),
    };
    Scheduler::new(opts, bus).unwrap()
}

fn mock() -> MockCrm {
    let m = MockCrm::start().unwrap();
    m.require_header("Authorization", "Bearer k");
    m.set("/api", vec![Reply::json(DOC)]);
    m
}

#[test]
fn startup_cycle_publishes_then_asks_for_a_full_reload() {
    let m = mock();
    let dir = tempfile::tempdir().unwrap();
    let bus = FakeBus::default();
    let mut s = scheduler(dir.path(), &m.url(), bus.clone());
    s.wait_for_lqosd().unwrap();
    let r = s.run_cycle(ReloadMode::Full, true).unwrap();
    assert_eq!(r.publish.unwrap().circuits, 2);
    assert_eq!(bus.reloads(), [ReloadMode::Full]);
    assert!(
        std::fs::read_to_string(dir.path().join("ShapedDevices.csv")).unwrap().contains("netzur_2")
    );
    let st = bus.last_report().unwrap();
    assert_eq!((st.phase.as_str(), st.integration.as_str()), ("idle", "netzur"));
    assert_eq!(
        st.last_result.as_deref(),
        Some("ok: 2 circuits, 1 nodes; reload +1 ~0 -0; 1 quarantined")
    );
    assert!(st.last_run_unix.is_some() && st.last_error.is_none());
}

#[test]
fn failed_import_keeps_files_reports_the_crm_error_and_skips_the_reload() {
    let m = mock();
    let dir = tempfile::tempdir().unwrap();
    let bus = FakeBus::default();
    let mut s = scheduler(dir.path(), &m.url(), bus.clone());
    s.run_cycle(ReloadMode::Incremental, false).unwrap();
    let before = std::fs::read_to_string(dir.path().join("ShapedDevices.csv")).unwrap();
    m.require_header("Authorization", "Bearer other");
    let err = s.run_cycle(ReloadMode::Incremental, false).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert_eq!(bus.reloads().len(), 1, "no reload after a failed import");
    assert_eq!(std::fs::read_to_string(dir.path().join("ShapedDevices.csv")).unwrap(), before);
    let st = bus.last_report().unwrap();
    assert_eq!(st.phase, "failed");
    let e = st.last_error.unwrap();
    assert!(e.contains("Netzur rejected the API key (HTTP 401) at http://127.0.0.1:"), "{e}");
    // At start-up the last good files are still reloaded.
    let _ = s.run_cycle(ReloadMode::Full, true).unwrap_err();
    assert_eq!(bus.reloads(), [ReloadMode::Incremental, ReloadMode::Full]);
}

#[test]
fn shrink_is_refused_with_exit_code_one() {
    let m = mock();
    let dir = tempfile::tempdir().unwrap();
    let bus = FakeBus::default();
    let mut s = scheduler(dir.path(), &m.url(), bus.clone());
    s.run_cycle(ReloadMode::Incremental, false).unwrap();
    m.set("/api", vec![Reply::json(r#"{"zones":[],"customers":[]}"#)]);
    let err = s.run_cycle(ReloadMode::Incremental, false).unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert!(error_chain(&err).contains("Netzur import is empty"), "{}", error_chain(&err));
}

#[test]
fn lqosd_wait_is_bounded_and_names_the_bus() {
    let dir = tempfile::tempdir().unwrap();
    let bus = FakeBus { down: true, ..Default::default() };
    let mut s = scheduler(dir.path(), "http://127.0.0.1:9", bus);
    let started = Instant::now();
    let err = s.wait_for_lqosd().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        err.to_string()
            .starts_with("lqosd did not answer on the bus at /tmp/nowhere/bus within 0 s"),
        "{err}"
    );
}

fn run_for(s: &mut Scheduler<FakeBus>, total: Duration, edit: Option<(PathBuf, Duration)>) {
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = stop.clone();
    let t = std::thread::spawn(move || {
        let start = Instant::now();
        if let Some((csv, at)) = edit {
            std::thread::sleep(at);
            let text = std::fs::read_to_string(&csv).unwrap();
            std::fs::write(&csv, text.replace("One,", "One Edited,")).unwrap();
        }
        std::thread::sleep(total.saturating_sub(start.elapsed()));
        stopper.store(true, Ordering::Relaxed);
    });
    s.run(&stop).unwrap();
    t.join().unwrap();
}

#[test]
fn daemon_reloads_within_seconds_after_a_manual_edit() {
    let m = mock();
    let dir = tempfile::tempdir().unwrap();
    let bus = FakeBus::default();
    let mut s = scheduler_every(dir.path(), &m.url(), bus.clone(), Duration::from_secs(3600));
    let csv = dir.path().join("ShapedDevices.csv");
    run_for(&mut s, Duration::from_millis(2500), Some((csv, Duration::from_millis(1000))));
    // Start-up full reload, then exactly one incremental reload for the edit (debounced).
    assert_eq!(bus.reloads(), [ReloadMode::Full, ReloadMode::Incremental]);
    assert_eq!(m.hits("/api"), 1, "an edit does not re-run the integration");
    let st = bus.last_report().unwrap();
    assert_eq!(st.phase, "stopped");
}

/// issue 10: editing lqos_overrides.json re-runs the integration within seconds, and the
/// override is in the published file.
#[test]
fn daemon_reapplies_overrides_within_seconds_after_an_edit() {
    let m = mock();
    let dir = tempfile::tempdir().unwrap();
    let bus = FakeBus::default();
    let mut s = scheduler_every(dir.path(), &m.url(), bus.clone(), Duration::from_secs(3600));
    let overrides = dir.path().join("lqos_overrides.json");
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        std::fs::write(
            &overrides,
            r#"{"circuit_adjustments": [{"type": "circuit_adjust_speed", "circuit_id": "netzur_1", "max_download_bandwidth": 77}]}"#,
        )
        .unwrap();
    });
    run_for(&mut s, Duration::from_millis(2600), None);
    writer.join().unwrap();
    assert_eq!(m.hits("/api"), 2, "the edit re-ran the integration once");
    assert_eq!(bus.reloads(), [ReloadMode::Full, ReloadMode::Incremental]);
    let csv = std::fs::read_to_string(dir.path().join("ShapedDevices.csv")).unwrap();
    assert!(csv.contains("netzur_1,One,netzur_1_device,One_device,Zone A,netzur:zone:1,,,100.64.0.1/32,,49,9.8,77,10,"), "{csv}");
}

#[test]
fn daemon_refreshes_every_interval_without_overlap() {
    let m = mock();
    let dir = tempfile::tempdir().unwrap();
    let bus = FakeBus::default();
    let mut s = scheduler_every(dir.path(), &m.url(), bus.clone(), Duration::from_secs(1));
    run_for(&mut s, Duration::from_millis(3500), None);
    let reloads = bus.reloads();
    assert_eq!(reloads.first(), Some(&ReloadMode::Full));
    assert!(reloads[1..].iter().all(|m| *m == ReloadMode::Incremental));
    // One import per reload: cycles are sequential (integration → reload), never interleaved.
    assert_eq!(m.hits("/api"), reloads.len());
    assert!(reloads.len() >= 3, "{reloads:?}");
    // Commands never interleave: every Reload directly follows its cycle's reports.
    let sent = bus.sent.lock().unwrap();
    assert!(
        sent.iter()
            .any(|c| matches!(c, Command::SchedulerReport(st) if st.next_run_unix.is_some()))
    );
}
