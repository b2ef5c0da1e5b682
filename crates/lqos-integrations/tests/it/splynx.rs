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
    // Online-only addresses; such services come after those with static addresses.
    let order: Vec<&str> = imp.circuits.iter().map(|c| c.id.0.as_str()).collect();
    assert_eq!(order, ["93", "96", "97", "94"]);
    let bob = imp.circuits.iter().find(|c| c.id.0 == "94").unwrap();
    assert_eq!(bob.devices[0].ipv4, ["100.64.3.20/32".parse().unwrap()]);
    assert_eq!(bob.devices[0].ipv6, ["2001:db8:11::1/128".parse().unwrap()]);
    // Burst replaces the speed: 60 Mbps × 1.15, min 0.98 × max.
    assert_eq!((bob.download_max, bob.download_min), (RateKbit(69_000), RateKbit(67_620)));
    // Parent through the router's first sector.
    assert_eq!(bob.parent_node.as_deref(), Some("Tower South_Sector B"));
    // Unknown tariff: left out with a warning (LibreQoS crashes on it).
    assert!(imp.circuits.iter().all(|c| c.id.0 != "95"));
    assert!(
        imp.warnings
            .iter()
            .any(|w| w.message.contains("service 95 (Carol Unknown) has unknown tariff '99'"))
    );
    assert_eq!(mock.hits(&format!("/api/2.0/{}", endpoints::SERVICES)), 1);
}

/// issue 10: a monitoring device that a service names as its `access_device` is an AP even
/// with `access_device = 0` and `type != 5`; in ap_site its network site exists and the
/// circuit hangs under it.
#[tokio::test(flavor = "multi_thread")]
async fn splynx_referenced_access_device_is_an_ap_under_its_site() {
    let mock = serve_splynx();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &splynx_section(&mock.url(), "ap_site"));
    let imp = pull_and_import(Crm::Splynx, &cfg, &fast_http()).await.unwrap();
    let ridge = imp.network.find_by_name("Ridge AP").expect("referenced device is an AP");
    assert_eq!(imp.network.nodes[ridge].id.as_deref(), Some("splynx:ap:400"));
    assert_eq!(imp.network.path(ridge), "North Site/Ridge AP");
    let eve = imp.circuits.iter().find(|c| c.id.0 == "97").unwrap();
    assert_eq!(eve.parent_node.as_deref(), Some("Ridge AP"));
    assert_eq!(eve.parent_node_id.as_deref(), Some("splynx:ap:400"));
    // ap_only: the same AP at the top level, the circuit under it.
    let cfg = config(dir.path(), &splynx_section(&mock.url(), "ap_only"));
    let ap_only = pull_and_import(Crm::Splynx, &cfg, &fast_http()).await.unwrap();
    let eve = ap_only.circuits.iter().find(|c| c.id.0 == "97").unwrap();
    assert_eq!(eve.parent_node_id.as_deref(), Some("splynx:ap:400"));
}

/// issue 10: ap_site creates every network site, also those without APs.
#[tokio::test(flavor = "multi_thread")]
async fn splynx_ap_site_creates_every_network_site() {
    let mock = serve_splynx();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &splynx_section(&mock.url(), "ap_site"));
    let imp = pull_and_import(Crm::Splynx, &cfg, &fast_http()).await.unwrap();
    let roots: Vec<&str> =
        imp.network.roots.iter().map(|&r| imp.network.nodes[r].name.as_str()).collect();
    // Sites in API order, then the AP that names no site ("Relay (501)").
    assert_eq!(roots, ["South Site", "North Site", "Empty Site", "Relay (501)"]);
    let empty = imp.network.find_by_name("Empty Site").unwrap();
    assert_eq!(imp.network.nodes[empty].id.as_deref(), Some("splynx:network_site:3"));
    assert!(imp.network.nodes[empty].children.is_empty());
    // A malformed gps leaves the coordinates out; a good one is kept.
    assert!(imp.network.nodes[empty].extra.get("latitude").is_none());
    let north = imp.network.find_by_name("North Site").unwrap();
    assert_eq!(imp.network.nodes[north].extra["latitude"], 41.0);
}

/// issue 10: every duplicate name gets ` (<id>)`, not only the second; whitespace inside a
/// name is collapsed.
#[tokio::test(flavor = "multi_thread")]
async fn splynx_every_duplicate_name_is_suffixed_and_whitespace_collapsed() {
    let mock = serve_splynx();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &splynx_section(&mock.url(), "full"));
    let imp = pull_and_import(Crm::Splynx, &cfg, &fast_http()).await.unwrap();
    for (name, id) in [("Relay (500)", "splynx:site:500"), ("Relay (501)", "splynx:ap:501")] {
        let i = imp.network.find_by_name(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(imp.network.nodes[i].id.as_deref(), Some(id));
    }
    assert!(imp.network.find_by_name("Relay").is_none());
    assert!(imp.network.find_by_name("Ridge AP").is_some());
    // The same names whatever order the API lists the devices in.
    mock.set(
        &format!("/api/2.0/{}", endpoints::MONITORING),
        vec![Reply::json({
            let mut v: Vec<serde_json::Value> =
                serde_json::from_str(&fixture("splynx", "monitoring.json")).unwrap();
            v.reverse();
            serde_json::Value::Array(v).to_string()
        })],
    );
    let reversed = pull_and_import(Crm::Splynx, &cfg, &fast_http()).await.unwrap();
    let mut a: Vec<String> = imp.network.nodes.iter().map(|n| n.name.clone()).collect();
    let mut b: Vec<String> = reversed.network.nodes.iter().map(|n| n.name.clone()).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

/// issue 10: `100.64.5.3/29` is the CRM's host address: it stays 100.64.5.3 (/32), never the
/// whole /29; a network address with its prefix (`100.64.9.0/29`) stays a prefix; a route
/// with host bits is its whole prefix, as LibreQoS shapes it.
#[tokio::test(flavor = "multi_thread")]
async fn splynx_host_bits_keep_the_host_not_the_prefix() {
    let mock = serve_splynx();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &splynx_section(&mock.url(), "ap_site"));
    let imp = pull_and_import(Crm::Splynx, &cfg, &fast_http()).await.unwrap();
    let eve = imp.circuits.iter().find(|c| c.id.0 == "97").unwrap();
    // The service's address is its host; its route, given with host bits, is the whole
    // routed prefix (what LibreQoS ends up shaping).
    assert_eq!(
        eve.devices[0].ipv4,
        ["100.64.5.3/32".parse().unwrap(), "100.64.6.4/30".parse().unwrap()]
    );
    assert!(imp.warnings.iter().any(|w| w.message.contains(
        "service 97: '100.64.5.3/29' has host bits set; shaped as the host 100.64.5.3/32, not the whole 100.64.5.0/29"
    )));
    assert!(imp.warnings.iter().any(|w| w.message.contains(
        "service 97: routed prefix '100.64.6.5/30' has host bits set; shaped as the whole 100.64.6.4/30"
    )));
    let dan = imp.circuits.iter().find(|c| c.id.0 == "96").unwrap();
    assert_eq!(
        dan.devices[0].ipv4,
        ["100.64.3.40/32".parse().unwrap(), "100.64.9.0/29".parse().unwrap()]
    );
}

/// `exclude_sites` (from [uisp_integration], as LibreQoS reads it for every CRM): the node is
/// left out, its children move to the top level, its circuits are unparented.
#[tokio::test(flavor = "multi_thread")]
async fn splynx_excluded_site_is_left_out_and_its_children_move_up() {
    let mock = serve_splynx();
    let dir = tempfile::tempdir().unwrap();
    let section = splynx_section(&mock.url(), "full").replace(
        "commit_bandwidth_multiplier = 0.98",
        "commit_bandwidth_multiplier = 0.98\nexclude_sites = [\"Tower South\", \"Ridge AP\"]",
    );
    let cfg = config(dir.path(), &section);
    let imp = pull_and_import(Crm::Splynx, &cfg, &fast_http()).await.unwrap();
    assert!(imp.network.find_by_name("Tower South").is_none());
    let a = imp.network.find_by_name("Tower South_South Sector A").unwrap();
    assert_eq!(imp.network.path(a), "Tower South_South Sector A");
    let eve = imp.circuits.iter().find(|c| c.id.0 == "97").unwrap();
    assert!(eve.parent_node.is_none() && eve.parent_node_id.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn splynx_flat_fetches_four_lists_and_full_builds_the_monitoring_tree() {
    let mock = serve_splynx();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &splynx_section(&mock.url(), "flat"));
    let flat = pull_and_import(Crm::Splynx, &cfg, &fast_http()).await.unwrap();
    assert!(flat.network.is_flat());
    assert_eq!(mock.hits(&format!("/api/2.0/{}", endpoints::MONITORING)), 0);
    assert_eq!(flat.circuits.len(), 4);

    let cfg = config(dir.path(), &splynx_section(&mock.url(), "full"));
    let full = pull_and_import(Crm::Splynx, &cfg, &fast_http()).await.unwrap();
    let paths: Vec<String> = (0..full.network.nodes.len()).map(|i| full.network.path(i)).collect();
    assert_eq!(
        paths,
        [
            "Tower South",
            "Tower South/Tower South_South Sector A",
            "Tower South/Tower South_Sector B",
            "Tower South/Tower South_Backhaul",
            "Ridge AP",
            "Relay (500)",
            "Relay (501)",
        ]
    );
    let jane = full.circuits.iter().find(|c| c.id.0 == "93").unwrap();
    assert_eq!(jane.parent_node_id.as_deref(), Some("splynx:ap:244"));

    let cfg = config(dir.path(), &splynx_section(&mock.url(), "ap_only"));
    let ap_only = pull_and_import(Crm::Splynx, &cfg, &fast_http()).await.unwrap();
    assert_eq!(ap_only.network.roots.len(), 4);
    assert!(ap_only.circuits.iter().find(|c| c.id.0 == "96").unwrap().parent_node.is_none());
}
