//! Netzur: Bearer token, one document, retries on 503.

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
