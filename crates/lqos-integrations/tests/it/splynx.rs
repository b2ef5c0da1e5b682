//! Splynx: Basic auth, eight lists, tariffs → rates, online-only addresses, unknown tariff.

use lqos_config::RateKbit;
use lqos_integrations::mock::{MockCrm, Reply};
use lqos_integrations::splynx::endpoints;
use lqos_integrations::{Crm, PublishOptions, publish, pull_and_import};

use crate::{assert_files, config, fast_http, fixture};

pub fn splynx_section(url: &str, strategy: &str) -> String {
    format!(
        r#"[uisp_integration]
enable_uisp = false
bandwidth_overhead_factor = 1.15
commit_bandwidth_multiplier = 0.98
[splynx_integration]
enable_splynx = true
api_key = "key"
api_secret = "secret"
url = "{url}"
strategy = "{strategy}"
"#
    )
}

pub fn serve_splynx() -> MockCrm {
    let m = MockCrm::start().unwrap();
    // base64("key:secret")
    m.require_header("Authorization", "Basic a2V5OnNlY3JldA==");
    for (path, file) in [
        (endpoints::TARIFFS, "tariffs.json"),
        (endpoints::CUSTOMERS, "customers.json"),
        (endpoints::ONLINE, "customers-online.json"),
        (endpoints::ROUTERS, "routers.json"),
        (endpoints::SECTORS, "routers-sectors.json"),
        (endpoints::SERVICES, "internet-services.json"),
        (endpoints::MONITORING, "monitoring.json"),
        (endpoints::SITES, "network-sites.json"),
    ] {
        m.set(&format!("/api/2.0/{path}"), vec![Reply::json(fixture("splynx", file))]);
    }
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn splynx_ap_site_import_publishes_expected_files() {
    let mock = serve_splynx();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &splynx_section(&mock.url(), "ap_site"));
    let imp = pull_and_import(Crm::Splynx, &cfg, &fast_http()).await.unwrap();
    publish(&cfg, &imp, PublishOptions::default()).unwrap();
    assert_files(dir.path(), "splynx", "expected_ap_site");
    // Online-only addresses.
    let bob = imp.circuits.iter().find(|c| c.id.0 == "94").unwrap();
    assert_eq!(bob.devices[0].ipv4, ["100.64.3.20/32".parse().unwrap()]);
    assert_eq!(bob.devices[0].ipv6, ["2001:db8:11::1/128".parse().unwrap()]);
    // Burst replaces the speed: 60 Mbps × 1.15, min 0.98 × max.
    assert_eq!((bob.download_max, bob.download_min), (RateKbit(69_000), RateKbit(67_620)));
    // Parent through the router's first sector.
    assert_eq!(bob.parent_node.as_deref(), Some("Tower South_Sector B"));
    // Unknown tariff: left out with a warning.
    assert!(imp.circuits.iter().all(|c| c.id.0 != "95"));
    assert!(
        imp.warnings
            .iter()
            .any(|w| w.message.contains("service 95 (Carol Unknown) has unknown tariff '99'"))
    );
    assert_eq!(mock.hits(&format!("/api/2.0/{}", endpoints::SERVICES)), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn splynx_flat_fetches_four_lists_and_full_builds_the_monitoring_tree() {
    let mock = serve_splynx();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &splynx_section(&mock.url(), "flat"));
    let flat = pull_and_import(Crm::Splynx, &cfg, &fast_http()).await.unwrap();
    assert!(flat.network.is_flat());
    assert_eq!(mock.hits(&format!("/api/2.0/{}", endpoints::MONITORING)), 0);
    assert_eq!(flat.circuits.len(), 3);

    let cfg = config(dir.path(), &splynx_section(&mock.url(), "full"));
    let full = pull_and_import(Crm::Splynx, &cfg, &fast_http()).await.unwrap();
    let paths: Vec<String> = (0..full.network.nodes.len()).map(|i| full.network.path(i)).collect();
    assert_eq!(
        paths,
        [
            "Tower South",
            "Tower South/Tower South_South Sector A",
            "Tower South/Tower South_Sector B",
            "Tower South/Tower South_Backhaul"
        ]
    );
    let jane = full.circuits.iter().find(|c| c.id.0 == "93").unwrap();
    assert_eq!(jane.parent_node_id.as_deref(), Some("splynx:ap:244"));

    let cfg = config(dir.path(), &splynx_section(&mock.url(), "ap_only"));
    let ap_only = pull_and_import(Crm::Splynx, &cfg, &fast_http()).await.unwrap();
    assert_eq!(ap_only.network.roots.len(), 2);
    assert!(ap_only.circuits.iter().find(|c| c.id.0 == "96").unwrap().parent_node.is_none());
}
