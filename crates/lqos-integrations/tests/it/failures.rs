//! Failures keep the last good files and report the error.

use std::time::Duration;

use lqos_config::{CircuitId, Network};
use lqos_integrations::mock::Reply;
use lqos_integrations::{Crm, Import, ImportError, PublishOptions, publish, pull_and_import};

use crate::netzur::{PATH, netzur_section, serve_netzur};
use crate::uisp::{DEVICES, serve_uisp, uisp_section};
use crate::{assert_unchanged, config, fast_http, fixture, seed_files};

async fn netzur_run(
    replies: Vec<Reply>,
    seeded_circuits: usize,
    force: bool,
) -> (tempfile::TempDir, (String, String), Result<(), ImportError>) {
    let mock = serve_netzur(replies);
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed_files(dir.path(), seeded_circuits);
    let cfg = config(dir.path(), &netzur_section(&mock.url()));
    let result = match pull_and_import(Crm::Netzur, &cfg, &fast_http()).await {
        Ok(imp) => publish(&cfg, &imp, PublishOptions { force, ..Default::default() }).map(|_| ()),
        Err(e) => Err(e),
    };
    (dir, seeded, result)
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_keeps_the_old_files() {
    let slow = Reply::json(fixture("netzur", "libreqos.json")).delayed(Duration::from_secs(5));
    let mock = serve_netzur(vec![slow]);
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed_files(dir.path(), 2);
    let cfg = config(dir.path(), &netzur_section(&mock.url()));
    let mut http = fast_http();
    http.timeout = Duration::from_millis(300);
    http.attempts = 2;
    let err = pull_and_import(Crm::Netzur, &cfg, &http).await.unwrap_err();
    assert!(matches!(err, ImportError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().starts_with("Netzur did not answer within"), "{err}");
    assert_eq!(mock.hits(PATH), 2);
    assert_unchanged(dir.path(), &seeded);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_keeps_the_old_files() {
    let (dir, seeded, r) = netzur_run(vec![Reply::json("{\"zones\": [")], 2, false).await;
    let err = r.unwrap_err();
    assert!(
        err.to_string().starts_with("Netzur sent malformed JSON at http://127.0.0.1:"),
        "{err}"
    );
    assert_unchanged(dir.path(), &seeded);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_uisp_list_is_named() {
    let mock = serve_uisp();
    mock.set(DEVICES, vec![Reply::json("{\"error\": \"nope\"}")]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &uisp_section(&mock.url(), ""));
    let err = pull_and_import(Crm::Uisp, &cfg, &fast_http()).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("UISP sent an unexpected document at")
            && msg.contains("devices?withInterfaces=true")
            && msg.contains("expected a JSON list, got an object"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_answer_is_not_published() {
    let (dir, seeded, r) =
        netzur_run(vec![Reply::json(r#"{"zones": [], "customers": []}"#)], 2, false).await;
    let err = r.unwrap_err();
    assert!(matches!(err, ImportError::Empty { crm: Crm::Netzur }), "{err:?}");
    assert!(
        err.to_string().contains("--force") && err.to_string().contains("max_shrink_ratio = 1.0")
    );
    assert_unchanged(dir.path(), &seeded);
}

#[tokio::test(flavor = "multi_thread")]
async fn eighty_percent_shrink_is_refused_and_force_overrides() {
    // The fixture has 3 usable circuits, none of them in the seeded file: 10 → 3 removes 100%.
    // Seed 10 circuits, and serve a document that keeps 2 of them (80% removed).
    let mut doc: serde_json::Value =
        serde_json::from_str(&fixture("netzur", "libreqos.json")).unwrap();
    doc["customers"] = serde_json::json!([
        {"subscriber_id": "x", "customerName": "Keep 0", "download": 10, "upload": 10, "ip": "100.99.0.1"},
        {"subscriber_id": "y", "customerName": "Keep 1", "download": 10, "upload": 10, "ip": "100.99.0.2"}
    ]);
    let body = doc.to_string();
    let (dir, seeded, r) = netzur_run(vec![Reply::json(body.clone())], 10, false).await;
    let err = r.unwrap_err();
    assert!(matches!(err, ImportError::Shrink { before: 10, removed: 10, .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("would remove 10 of 10 circuits (100%), more than max_shrink_ratio = 0.5"),
        "{err}"
    );
    assert_unchanged(dir.path(), &seeded);
    drop(dir);

    let (dir, seeded, r) = netzur_run(vec![Reply::json(body)], 10, true).await;
    r.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ShapedDevices.csv.bak")).unwrap(),
        seeded.1
    );
    assert_eq!(std::fs::read_to_string(dir.path().join("network.json.bak")).unwrap(), seeded.0);
    assert!(
        std::fs::read_to_string(dir.path().join("ShapedDevices.csv")).unwrap().contains("netzur_x")
    );
}

#[test]
fn shrink_counts_circuits_that_disappear() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed_files(dir.path(), 10);
    let cfg = config(dir.path(), "");
    // Keep 2 of the 10 old circuits (by id): 8 of 10 removed = 80% > 50%.
    let (old, _) = lqos_config::parse_shaped_devices_str(&seeded.1, "ShapedDevices.csv");
    let mut kept: Vec<_> = old.into_iter().take(2).collect();
    for c in &mut kept {
        c.parent_node = None;
    }
    let imp =
        Import { crm: Crm::Uisp, network: Network::default(), circuits: kept, warnings: vec![] };
    let err = publish(&cfg, &imp, PublishOptions::default()).unwrap_err();
    assert!(matches!(err, ImportError::Shrink { before: 10, removed: 8, .. }), "{err:?}");
    assert!(err.to_string().contains("(80%)"), "{err}");
    assert_unchanged(dir.path(), &seeded);
    // max_shrink_ratio = 1.0 disables the guard.
    let mut cfg = cfg;
    cfg.integration_common.max_shrink_ratio = 1.0;
    publish(&cfg, &imp, PublishOptions::default()).unwrap();
}

#[test]
fn invalid_import_is_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed_files(dir.path(), 2);
    let cfg = config(dir.path(), "");
    let (old, _) = lqos_config::parse_shaped_devices_str(&seeded.1, "ShapedDevices.csv");
    let mut circuits = old.clone();
    // Every circuit broken (a zero plan rate, a duplicated address): more than
    // max_quarantine_ratio of the import, so the import is not trusted and nothing is written.
    circuits[0].download_max = lqos_config::RateKbit(0);
    circuits[1].id = CircuitId("dup-ip".into());
    circuits[1].devices[0].ipv4 = circuits[0].devices[0].ipv4.clone();
    for c in &mut circuits {
        c.parent_node = None;
    }
    let network = Network::default();
    let imp = Import { crm: Crm::Splynx, network, circuits, warnings: vec![] };
    let err =
        publish(&cfg, &imp, PublishOptions { force: true, ..Default::default() }).unwrap_err();
    assert!(matches!(err, ImportError::Invalid { .. }), "{err:?}");
    assert!(err.to_string().starts_with("Splynx import fails validation"), "{err}");
    assert_unchanged(dir.path(), &seeded);
}

/// Issue 9: a CRM that keeps producing one bad row (here a duplicated address) must not block
/// every refresh. The files are published; lqosd quarantines the later circuit on reload.
#[test]
fn one_circuit_with_a_duplicate_address_does_not_block_the_import() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed_files(dir.path(), 2);
    let cfg = config(dir.path(), "");
    let (old, _) = lqos_config::parse_shaped_devices_str(&seeded.1, "ShapedDevices.csv");
    let mut circuits = old.clone();
    circuits[1].id = CircuitId("dup-ip".into());
    circuits[1].devices[0].ipv4 = circuits[0].devices[0].ipv4.clone();
    for c in &mut circuits {
        c.parent_node = None;
    }
    let imp = Import { crm: Crm::Splynx, network: Network::default(), circuits, warnings: vec![] };
    let report = publish(&cfg, &imp, PublishOptions { force: true, ..Default::default() })
        .expect("published despite one circuit-confined problem");
    assert_eq!(report.circuits, 2);
    assert!(report.warnings.iter().any(|d| d.severity == lqos_config::Severity::Quarantine));
    let text = std::fs::read_to_string(dir.path().join("ShapedDevices.csv")).unwrap();
    assert!(text.contains("dup-ip"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_error_after_retries_names_the_status() {
    let (dir, seeded, r) = netzur_run(vec![Reply::status(502, "bad gateway")], 2, false).await;
    let err = r.unwrap_err();
    assert!(matches!(err, ImportError::Status { status: 502, .. }), "{err:?}");
    assert!(err.to_string().contains("gave up after 3 attempts"), "{err}");
    assert_unchanged(dir.path(), &seeded);
}

/// An answer larger than max_answer_bytes is refused while streaming, not read into memory.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_answer_is_refused() {
    let mut doc = String::from(r#"{"zones": [], "customers": ["#);
    doc.push_str(&vec![r#"{"subscriber_id": "x"}"#; 20_000].join(","));
    doc.push_str("]}");
    let mock = serve_netzur(vec![Reply::json(doc)]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &netzur_section(&mock.url()));
    let mut http = fast_http();
    http.max_answer_bytes = 64 << 10;
    let err = pull_and_import(Crm::Netzur, &cfg, &http).await.unwrap_err();
    assert!(matches!(err, ImportError::TooLarge { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("Netzur sent more than 64 KiB at http://127.0.0.1:"),
        "{err}"
    );
}
