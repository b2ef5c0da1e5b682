//! Netzur: Bearer token, one document, retries on 503.

use lqos_config::RateKbit;
use lqos_integrations::mock::{MockCrm, Reply};
use lqos_integrations::{Crm, PublishOptions, publish, pull_and_import};

use crate::{assert_files, config, fast_http, fixture};

pub const PATH: &str = "/api/libreqos";

pub fn netzur_section(url: &str) -> String {
    format!(
        r#"[uisp_integration]
enable_uisp = false
bandwidth_overhead_factor = 1.15
exclude_sites = ["Test Zone"]
[netzur_integration]
enable_netzur = true
api_key = "nz-key"
api_url = "{url}{PATH}"
timeout_secs = 10
"#
    )
}

pub fn serve_netzur(replies: Vec<Reply>) -> MockCrm {
    let m = MockCrm::start().unwrap();
    m.require_header("Authorization", "Bearer nz-key");
    m.set(PATH, replies);
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn netzur_retries_503_then_publishes_expected_files() {
    let mock = serve_netzur(vec![
        Reply::status(503, "<html>Service Unavailable</html>"),
        Reply::json(fixture("netzur", "libreqos.json")),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &netzur_section(&mock.url()));
    let imp = pull_and_import(Crm::Netzur, &cfg, &fast_http()).await.unwrap();
    assert_eq!(mock.hits(PATH), 2);
    publish(&cfg, &imp, PublishOptions::default()).unwrap();
    assert_files(dir.path(), "netzur", "expected");
    assert!(imp.network.find_by_name("Test Zone").is_none());
    let lost = imp.circuits.iter().find(|c| c.id.0 == "netzur_1003").unwrap();
    assert!(lost.parent_node.is_none());
}

/// issue 10: a customer of an excluded zone is dropped (not kept unparented), matching the
/// zone name case-insensitively as LibreQoS does.
#[tokio::test(flavor = "multi_thread")]
async fn netzur_customers_in_an_excluded_zone_are_dropped() {
    let mock = serve_netzur(vec![Reply::json(fixture("netzur", "libreqos.json"))]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &netzur_section(&mock.url()));
    let imp = pull_and_import(Crm::Netzur, &cfg, &fast_http()).await.unwrap();
    assert!(imp.circuits.iter().all(|c| c.id.0 != "netzur_1004"));
    let ids: Vec<&str> = imp.circuits.iter().map(|c| c.id.0.as_str()).collect();
    assert_eq!(ids, ["netzur_1001", "netzur_1002", "netzur_1003", "netzur_1005"]);
}

/// issue 10: a zone without a stated capacity gets generated_pn_download/upload_mbps (LibreQoS
/// writes 0 there); devices are named `<customer>_device`; an address with host bits stays
/// the host.
#[tokio::test(flavor = "multi_thread")]
async fn netzur_zone_without_capacity_and_device_naming() {
    let mock = serve_netzur(vec![Reply::json(fixture("netzur", "libreqos.json"))]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &netzur_section(&mock.url()));
    let imp = pull_and_import(Crm::Netzur, &cfg, &fast_http()).await.unwrap();
    let quiet = imp.network.find_by_name("Quiet Zone").unwrap();
    assert_eq!(imp.network.nodes[quiet].download, Some(RateKbit(1_000_000)));
    assert_eq!(imp.network.nodes[quiet].upload, Some(RateKbit(1_000_000)));
    let quinn = imp.circuits.iter().find(|c| c.id.0 == "netzur_1005").unwrap();
    assert_eq!(quinn.devices[0].name, "Quinn_device");
    assert_eq!(quinn.devices[0].ipv4, ["100.64.2.50/32".parse().unwrap()]);
    assert_eq!(quinn.name, "Quinn");
    // circuit_name_as_address names the circuit after the address.
    let mut cfg = cfg;
    cfg.integration_common.circuit_name_as_address = true;
    let imp = pull_and_import(Crm::Netzur, &cfg, &fast_http()).await.unwrap();
    let quinn = imp.circuits.iter().find(|c| c.id.0 == "netzur_1005").unwrap();
    assert_eq!(quinn.name, "1 Quiet Ln");
}
