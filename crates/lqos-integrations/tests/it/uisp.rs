//! UISP: the three NMS calls, hierarchy, rates, suspended handling, filters, names.

use lqos_config::{RateKbit, TopologyStrategy};
use lqos_integrations::mock::{MockCrm, Reply};
use lqos_integrations::uisp::{UispDocs, import};
use lqos_integrations::{Crm, ImportError, PublishOptions, publish, pull_and_import};

use crate::{assert_files, config, fast_http, fixture};

pub const SITES: &str = "/nms/api/v2.1/sites";
pub const DEVICES: &str = "/nms/api/v2.1/devices?withInterfaces=true";
pub const LINKS: &str = "/nms/api/v2.1/data-links";

pub fn uisp_section(url: &str, extra: &str) -> String {
    format!(
        r#"[uisp_integration]
enable_uisp = true
token = "secret-token"
url = "{url}"
site = ""
strategy = "full"
suspended_strategy = "slow"
airmax_capacity = 1.0
ltu_capacity = 0.9
exclude_sites = ["Lab"]
bandwidth_overhead_factor = 1.15
commit_bandwidth_multiplier = 0.98
{extra}
"#
    )
}

pub fn serve_uisp() -> MockCrm {
    let m = MockCrm::start().unwrap();
    m.require_header("X-Auth-Token", "secret-token");
    m.set(SITES, vec![Reply::json(fixture("uisp", "sites.json"))]);
    m.set(DEVICES, vec![Reply::json(fixture("uisp", "devices.json"))]);
    m.set(LINKS, vec![Reply::json(fixture("uisp", "data-links.json"))]);
    m
}

fn docs() -> UispDocs {
    let p = |n| serde_json::from_str(&fixture("uisp", n)).unwrap();
    UispDocs {
        sites: p("sites.json"),
        devices: p("devices.json"),
        data_links: p("data-links.json"),
        routes: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn uisp_full_import_publishes_expected_files() {
    let mock = serve_uisp();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &uisp_section(&mock.url(), ""));
    let imp = pull_and_import(Crm::Uisp, &cfg, &fast_http()).await.unwrap();
    let report = publish(&cfg, &imp, PublishOptions::default()).unwrap();
    assert_eq!((report.circuits, report.circuits_before), (4, None));
    assert_files(dir.path(), "uisp", "expected_full");
    let w: Vec<String> = imp.warnings.iter().map(ToString::to_string).collect();
    let has = |s: &str| w.iter().any(|x| x.contains(s));
    assert!(has("address 203.0.113.5/32 of device 'Smith-CPE'"), "{w:#?}");
    assert!(has("circuit 's-cli5' (Pat Public) has no device with a usable address"), "{w:#?}");
    assert!(has("client 'Acme Corp' (s-cli4) has no link to an access point"), "{w:#?}");
    assert!(has("site name 'John Smith' is used more than once"), "{w:#?}");
    assert_eq!(mock.hits(SITES), 1);
}

#[test]
fn uisp_suspended_strategies_are_all_implemented() {
    let dir = tempfile::tempdir().unwrap();
    let find = |strategy: &str| {
        let cfg = config(
            dir.path(),
            &uisp_section("http://uisp.invalid", "")
                .replace("\"slow\"", &format!("\"{strategy}\"")),
        );
        import(&docs(), &cfg).unwrap().circuits.into_iter().find(|c| c.id.0 == "s-cli3")
    };
    let slow = find("slow").unwrap();
    assert_eq!(
        (slow.download_max, slow.upload_max, slow.download_min),
        (RateKbit(100), RateKbit(100), RateKbit(100))
    );
    assert!(find("ignore").is_none());
    let none = find("none").unwrap();
    assert_eq!((none.download_min, none.download_max), (RateKbit(24_500), RateKbit(28_750)));
}

#[test]
fn uisp_burst_overhead_and_commit_make_the_rates() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &uisp_section("http://uisp.invalid", ""));
    let imp = import(&docs(), &cfg).unwrap();
    let smith = imp.circuits.iter().find(|c| c.id.0 == "s-cli2").unwrap();
    // LibreQoS: (50 + 2500 × 8 / 1000 / 1024) × 1.15 = 57.522; commit 50 × 0.98 = 49.
    assert_eq!((smith.download_min, smith.download_max), (RateKbit(49_000), RateKbit(57_522)));
    assert_eq!((smith.upload_min, smith.upload_max), (RateKbit(9_800), RateKbit(11_506)));
    assert_eq!(smith.name, "John Smith (4 Elm St)");
    assert_eq!(smith.parent_node.as_deref(), Some("North-LTU"));
    // The LTU AP: 400/200 × ltu_capacity 0.9.
    let ap = imp.network.find_by_name("North-LTU").unwrap();
    assert_eq!(imp.network.nodes[ap].download, Some(RateKbit(360_000)));
    assert_eq!(imp.network.nodes[ap].upload, Some(RateKbit(180_000)));
    // AirMax flexible frame: 400 total split 75/25 by dlRatio.
    let ap1 = imp.network.find_by_name("Core-AP1").unwrap();
    assert_eq!(
        (imp.network.nodes[ap1].download, imp.network.nodes[ap1].upload),
        (Some(RateKbit(300_000)), Some(RateKbit(100_000)))
    );
    // Nothing from the excluded Lab site.
    assert!(imp.circuits.iter().all(|c| c.id.0 != "s-cli6"));
    assert!(imp.network.find_by_name("Lab").is_none());
}

#[test]
fn uisp_compile_modes_shape_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let run = |mode: &str| {
        let cfg = config(
            dir.path(),
            &format!(
                "[topology]\ncompile_mode = \"{mode}\"\n{}",
                uisp_section("http://uisp.invalid", "")
            ),
        );
        assert!(cfg.topology.compile_mode.is_some());
        import(&docs(), &cfg).unwrap()
    };
    let flat = run("flat");
    assert!(flat.network.is_flat());
    assert!(flat.circuits.iter().all(|c| c.parent_node.is_none()));
    let ap_only = run("ap_only");
    let tops: Vec<&str> =
        ap_only.network.roots.iter().map(|&r| ap_only.network.nodes[r].name.as_str()).collect();
    assert_eq!(tops, ["Core-AP1", "North-LTU"]);
    assert!(ap_only.circuits.iter().find(|c| c.id.0 == "s-cli4").unwrap().parent_node.is_none());
    let ap_site = run("ap_site");
    let paths: Vec<String> =
        (0..ap_site.network.nodes.len()).map(|i| ap_site.network.path(i)).collect();
    assert_eq!(paths, ["Core", "Core/Core-AP1", "North Tower", "North Tower/North-LTU", "Orphans"]);
    let full = run("full");
    let paths: Vec<String> = (0..full.network.nodes.len()).map(|i| full.network.path(i)).collect();
    // The root site is not a node (as in LibreQoS): its children are the top level.
    assert_eq!(paths, ["North Tower", "North Tower/North-LTU", "Core-AP1", "Orphans"]);
    let _ = TopologyStrategy::Full;
}

#[test]
fn uisp_exception_cpe_forces_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &uisp_section(
            "http://uisp.invalid",
            "exception_cpes = [{ cpe = \"Acme-Router\", parent = \"North-LTU\" }]",
        ),
    );
    let imp = import(&docs(), &cfg).unwrap();
    let acme = imp.circuits.iter().find(|c| c.id.0 == "s-cli4").unwrap();
    assert_eq!(acme.parent_node.as_deref(), Some("North-LTU"));
    assert_eq!(acme.parent_node_id.as_deref(), Some("uisp:device:d-ap2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn uisp_rejected_token_names_crm_status_and_url() {
    let mock = serve_uisp();
    mock.require_header("X-Auth-Token", "another-token");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &uisp_section(&mock.url(), ""));
    let err = pull_and_import(Crm::Uisp, &cfg, &fast_http()).await.unwrap_err();
    assert!(matches!(err, ImportError::Rejected { status: 401, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("UISP rejected the token (HTTP 401) at http://127.0.0.1:"), "{msg}");
    assert!(msg.contains("/nms/api/v2.1/"), "{msg}");
}

// --- LibreQoS parity: ring, mesh, route overrides, caps, naming, options -----------------------

fn ring_docs() -> UispDocs {
    let p = |n: &str| serde_json::from_str(&fixture("uisp", &format!("ring/{n}"))).unwrap();
    UispDocs {
        sites: p("sites.json"),
        devices: p("devices.json"),
        data_links: p("data-links.json"),
        routes: None,
    }
}

fn serve_ring() -> MockCrm {
    let m = MockCrm::start().unwrap();
    m.require_header("X-Auth-Token", "secret-token");
    m.set(SITES, vec![Reply::json(fixture("uisp", "ring/sites.json"))]);
    m.set(DEVICES, vec![Reply::json(fixture("uisp", "ring/devices.json"))]);
    m.set(LINKS, vec![Reply::json(fixture("uisp", "ring/data-links.json"))]);
    m
}

/// What a ring import through the mock UISP published.
struct Pulled {
    imp: lqos_integrations::Import,
    network: String,
    csv: String,
}

/// Pulls the ring from a mock UISP with `common` lines in `[integration_common]` and
/// `uisp_extra` in `[uisp_integration]`, publishes it and reads the files back.
fn ring_pull(common: &str, uisp_extra: &str) -> Pulled {
    ring_pull_with_routes(common, uisp_extra, None)
}

/// [`ring_pull`] with an `integrationUISProutes.csv` in `lqos_directory`.
fn ring_pull_with_routes(common: &str, uisp_extra: &str, routes: Option<&str>) -> Pulled {
    let mock = serve_ring();
    let dir = tempfile::tempdir().unwrap();
    if let Some(r) = routes {
        std::fs::write(dir.path().join("integrationUISProutes.csv"), r).unwrap();
    }
    let cfg = config(dir.path(), &format!("{common}\n{}", uisp_section(&mock.url(), uisp_extra)));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let imp = rt.block_on(pull_and_import(Crm::Uisp, &cfg, &fast_http())).unwrap();
    publish(&cfg, &imp, PublishOptions::default()).unwrap();
    let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap();
    Pulled { network: read("network.json"), csv: read("ShapedDevices.csv"), imp }
}

/// `integration_common` lines first, then the UISP section with `uisp_extra`.
fn ring_config(dir: &std::path::Path, common: &str, uisp_extra: &str) -> lqos_config::Config {
    config(dir, &format!("{common}\n{}", uisp_section("http://uisp.invalid", uisp_extra)))
}

fn paths(net: &lqos_config::Network) -> Vec<String> {
    (0..net.nodes.len()).map(|i| net.path(i)).collect()
}

fn rates_of(net: &lqos_config::Network, name: &str) -> (u64, u64) {
    let i = net.find_by_name(name).unwrap_or_else(|| panic!("no node {name}"));
    (net.nodes[i].download.unwrap().0, net.nodes[i].upload.unwrap().0)
}

fn circuit<'a>(imp: &'a lqos_integrations::Import, id: &str) -> &'a lqos_config::Circuit {
    imp.circuits.iter().find(|c| c.id.0 == id).unwrap_or_else(|| panic!("no circuit {id}"))
}

/// Ring Core–A–B–C–Core: Tower B is two hops away either way; the A side (940/800 Mbps) is
/// fatter than the C side (500/300), so B hangs under A although the C–B data-link comes
/// first in UISP's list (which is what a fewest-hops BFS picked).
#[tokio::test(flavor = "multi_thread")]
async fn uisp_ring_parents_follow_the_fattest_equal_hop_path() {
    let mock = serve_ring();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &uisp_section(&mock.url(), ""));
    let imp = pull_and_import(Crm::Uisp, &cfg, &fast_http()).await.unwrap();
    publish(&cfg, &imp, PublishOptions::default()).unwrap();
    assert_files(dir.path(), "uisp", "expected_ring");
    assert_eq!(
        paths(&imp.network),
        ["Tower A", "Tower A/Tower B", "Tower A/Tower B/B-AP", "Tower A/A-AP", "Tower C",]
    );
    // AF60-LR radios are capped at 94 % of their 1 G port; the path's thinnest hop wins.
    assert_eq!(rates_of(&imp.network, "Tower A"), (940_000, 940_000));
    assert_eq!(rates_of(&imp.network, "Tower B"), (800_000, 800_000));
    assert_eq!(rates_of(&imp.network, "Tower C"), (500_000, 500_000));
    // airMax PtMP AP without totalCapacity: max(220, 180) × 0.8 / × 0.2.
    assert_eq!(rates_of(&imp.network, "B-AP"), (176_000, 44_000));
    // LTU: 400/200 × ltu_capacity 0.9.
    assert_eq!(rates_of(&imp.network, "A-AP"), (360_000, 180_000));
    assert_eq!(circuit(&imp, "s-k1").parent_node.as_deref(), Some("B-AP"));
    assert_eq!(circuit(&imp, "s-k4").parent_node.as_deref(), Some("B-AP"));
}

#[test]
fn uisp_ring_names_follow_libreqos() {
    let p = ring_pull("", "");
    for row in [
        "\ns-k1,Jorge Rubio (5 Pine St),d-k1,",
        "\ns-k2,Jorge Rubio (Home 200),d-k2,",
        "\ns-k3,\"Acme, LLC\",d-k3a,",
    ] {
        assert!(p.csv.contains(row), "{row}\n{}", p.csv);
    }
    let imp = p.imp;
    // Both "Rubio, Jorge" become "Jorge Rubio", then each gets its disambiguator: the first
    // address segment, else the service name.
    assert_eq!(circuit(&imp, "s-k1").name, "Jorge Rubio (5 Pine St)");
    assert_eq!(circuit(&imp, "s-k2").name, "Jorge Rubio (Home 200)");
    // A business suffix is not a first name.
    assert_eq!(circuit(&imp, "s-k3").name, "Acme, LLC");
    let w: Vec<String> = imp.warnings.iter().map(ToString::to_string).collect();
    assert!(
        w.iter().any(|x| x.contains("site name 'Jorge Rubio' is used more than once")),
        "{w:#?}"
    );
}

#[test]
fn uisp_circuit_name_as_address_uses_the_site_address() {
    let p = ring_pull("circuit_name_as_address = true", "");
    assert!(p.csv.contains("\ns-k1,\"5 Pine St, Town\",d-k1,Rubio-CPE1,B-AP,"), "{}", p.csv);
    let imp = p.imp;
    assert_eq!(circuit(&imp, "s-k1").name, "5 Pine St, Town");
    // No address: the site name stays.
    assert_eq!(circuit(&imp, "s-k2").name, "Jorge Rubio (Home 200)");
}

/// The routes file from LibreQoS's documentation ("add a cost above the default for the path
/// you do not prefer") moves B round the ring; a bad line is reported with its file:line.
#[tokio::test(flavor = "multi_thread")]
async fn uisp_routes_file_overrides_the_ring_and_reports_bad_lines() {
    let mock = serve_ring();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("integrationUISProutes.csv"),
        "# From, To, Cost\nTower A, Tower B, 100\nTower C, Tower B, lots\nNowhere, Tower B, 5\n",
    )
    .unwrap();
    let cfg = config(dir.path(), &uisp_section(&mock.url(), ""));
    let imp = pull_and_import(Crm::Uisp, &cfg, &fast_http()).await.unwrap();
    assert_eq!(
        paths(&imp.network),
        ["Tower A", "Tower A/A-AP", "Tower C", "Tower C/Tower B", "Tower C/Tower B/B-AP"]
    );
    assert_eq!(rates_of(&imp.network, "Tower B"), (300_000, 300_000));
    let w: Vec<String> = imp.warnings.iter().map(ToString::to_string).collect();
    let file = dir.path().join("integrationUISProutes.csv").display().to_string();
    assert!(
        w.iter()
            .any(|x| x
                .starts_with(&format!("{file}:3: warning: Cost: \"lots\" is not a whole number"))),
        "{w:#?}"
    );
    assert!(
        w.iter().any(|x| x
            .contains(":4: warning: route override 'Nowhere' – 'Tower B' matches no data-link")),
        "{w:#?}"
    );
    // Published like any import.
    publish(&cfg, &imp, PublishOptions::default()).unwrap();
    let net = std::fs::read_to_string(dir.path().join("network.json")).unwrap();
    assert!(net.contains("\"Tower C\": {"), "{net}");
}

#[test]
fn uisp_use_ptmp_as_parent_hangs_a_site_under_its_feeding_ap() {
    let p = ring_pull("", "use_ptmp_as_parent = true");
    let net: serde_json::Value = serde_json::from_str(&p.network).unwrap();
    let ap = &net["Tower A"]["children"]["A-to-B"];
    assert_eq!((ap["id"].as_str(), ap["type"].as_str()), (Some("uisp:device:d-a-b"), Some("ap")));
    assert!(ap["children"]["Tower B"]["children"]["B-AP"].is_object(), "{}", p.network);
    let imp = p.imp;
    assert_eq!(
        paths(&imp.network),
        [
            "Tower A",
            "Tower A/A-to-B",
            "Tower A/A-to-B/Tower B",
            "Tower A/A-to-B/Tower B/B-AP",
            "Tower A/A-AP",
            "Tower C",
        ]
    );
    assert_eq!(rates_of(&imp.network, "A-to-B"), (800_000, 800_000));
}

#[test]
fn uisp_squash_sites_moves_children_up_unless_protected() {
    let p = ring_pull("", "squash_sites = [\"Tower A\"]");
    assert!(!p.network.contains("\"Tower A\""), "{}", p.network);
    let imp = p.imp;
    assert_eq!(paths(&imp.network), ["Tower B", "Tower B/B-AP", "Tower C", "A-AP"]);
    let imp =
        ring_pull("", "squash_sites = [\"Tower A\"]\ndo_not_squash_sites = [\"Tower A\"]").imp;
    assert!(imp.network.find_by_name("Tower A").is_some());
}

#[test]
fn uisp_ignore_calculated_capacity_uses_generated_rates() {
    let p = ring_pull("", "ignore_calculated_capacity = true");
    let net: serde_json::Value = serde_json::from_str(&p.network).unwrap();
    assert_eq!(net["Tower C"]["downloadBandwidthMbps"], 1000, "{}", p.network);
    let imp = p.imp;
    for n in ["Tower A", "Tower B", "Tower C", "B-AP", "A-AP"] {
        assert_eq!(rates_of(&imp.network, n), (1_000_000, 1_000_000), "{n}");
    }
}

#[test]
fn uisp_transport_caps_and_airmax_ratio_are_configurable() {
    let p = ring_pull(
        "",
        "infrastructure_transport_caps_enabled = false\nairmax_flexible_frame_download_ratio = 0.6",
    );
    let net: serde_json::Value = serde_json::from_str(&p.network).unwrap();
    assert_eq!(
        (
            &net["Tower A"]["children"]["Tower B"]["children"]["B-AP"]["downloadBandwidthMbps"],
            &net["Tower A"]["downloadBandwidthMbps"]
        ),
        (&serde_json::json!(132), &serde_json::json!(1000)),
        "{}",
        p.network
    );
    let imp = p.imp;
    // Without the AF60-LR 1 G ceiling the 2 G radios no longer limit Tower A (the generated
    // 1000 Mbps site links do).
    assert_eq!(rates_of(&imp.network, "Tower A"), (1_000_000, 1_000_000));
    assert_eq!(rates_of(&imp.network, "B-AP"), (132_000, 88_000));
}

/// The station's slowest port caps the plan (a plain `speed` counts when the port is
/// `connected`); a router next to a station, or a router alone, does not.
#[test]
fn uisp_ethernet_port_caps_follow_the_station_cpe() {
    let p = ring_pull("", "");
    for row in [
        "\ns-k3,\"Acme, LLC\",d-k3a,Acme-CPE,A-AP,uisp:device:d-a-ap,,24:5A:4C:00:10:03,100.64.10.3/32,,94,49,94,57.5,,",
        "\ns-k4,Solo Router,d-k4,Solo-Router,B-AP,uisp:device:d-b-ap,,24:5A:4C:00:10:05,100.64.10.5/32,,294,294,345,345,,",
    ] {
        assert!(p.csv.contains(row), "{row}\n{}", p.csv);
    }
    let imp = p.imp;
    let acme = circuit(&imp, "s-k3");
    // Plan 300/50: 300 × 1.15 = 345 capped to 0.94 × 100 and min 294 follows the cap; the
    // upload plan (50 × 1.15 = 57.5, min 49) is below the cap and stays (as in LibreQoS).
    assert_eq!((acme.download_max, acme.upload_max), (RateKbit(94_000), RateKbit(57_500)));
    assert_eq!((acme.download_min, acme.upload_min), (RateKbit(94_000), RateKbit(49_000)));
    let solo = circuit(&imp, "s-k4");
    assert_eq!((solo.download_min, solo.download_max), (RateKbit(294_000), RateKbit(345_000)));
    let jorge = circuit(&imp, "s-k1");
    assert_eq!((jorge.download_min, jorge.download_max), (RateKbit(98_000), RateKbit(115_000)));

    let imp = ring_pull("ethernet_port_limit_multiplier = 0.9", "").imp;
    assert_eq!(circuit(&imp, "s-k3").download_max, RateKbit(90_000));
    let imp = ring_pull("ethernet_port_limits_enabled = false", "").imp;
    assert_eq!(circuit(&imp, "s-k3").download_max, RateKbit(345_000));
}

#[test]
fn uisp_exception_cpes_accept_libreqos_string_form() {
    let p = ring_pull("", "exception_cpes = [\"Solo-Router:Tower C\", \"Rubio-CPE2:B-AP\"]");
    assert!(
        p.csv.contains("\ns-k4,Solo Router,d-k4,Solo-Router,Tower C,uisp:site:s-c,"),
        "{}",
        p.csv
    );
    let imp = p.imp;
    assert_eq!(circuit(&imp, "s-k4").parent_node.as_deref(), Some("Tower C"));
    assert_eq!(circuit(&imp, "s-k4").parent_node_id.as_deref(), Some("uisp:site:s-c"));
    assert_eq!(circuit(&imp, "s-k2").parent_node.as_deref(), Some("B-AP"));
}

fn radio(id: &str, site: &str, role: &str, cap_mbps: u64) -> serde_json::Value {
    let mode = if role == "ap" { "ap-ptp" } else { "sta-ptp" };
    serde_json::json!({"identification":{"id":id,"hostname":id,"model":"AF-5XHD","type":"airFiber","role":role,"site":{"id":site}},
        "overview":{"wirelessMode":mode,"downlinkCapacity":cap_mbps * 1_000_000,"uplinkCapacity":cap_mbps * 1_000_000}})
}

fn dlink(a: &str, b: &str) -> serde_json::Value {
    serde_json::json!({"from":{"device":{"identification":{"id":a}}},"to":{"device":{"identification":{"id":b}}},"canDelete":true})
}

/// Mesh: Core–X 1000, Core–Z 100, X–Y 900, Z–Y 1000, X–Z 1000. A direct hop beats two fat
/// ones (Z stays on the thin direct link, as in LibreQoS); among the two-hop paths to Y the
/// fatter one (via X, thinnest 900) beats the one via Z (thinnest 100).
#[tokio::test(flavor = "multi_thread")]
async fn uisp_mesh_parents_follow_libreqos_route_costs() {
    let site = |id: &str, name: &str, kind: &str| serde_json::json!({"id":id,"identification":{"id":id,"name":name,"type":kind}});
    let sites = serde_json::json!([
        site("m-core", "Core", "site"),
        site("m-z", "Z", "site"),
        site("m-y", "Y", "site"),
        site("m-x", "X", "site"),
        {"id":"m-k","identification":{"id":"m-k","name":"Mesh Client","type":"endpoint"},"qos":{"downloadSpeed":50000000,"uploadSpeed":10000000}},
    ]);
    let devices = serde_json::json!([
        radio("core-x", "m-core", "ap", 1000), radio("x-core", "m-x", "station", 1000),
        radio("core-z", "m-core", "ap", 100), radio("z-core", "m-z", "station", 100),
        radio("z-y", "m-z", "ap", 1000), radio("y-z", "m-y", "station", 1000),
        radio("x-y", "m-x", "ap", 900), radio("y-x", "m-y", "station", 900),
        radio("x-z", "m-x", "ap", 1000), radio("z-x", "m-z", "station", 1000),
        {"identification":{"id":"y-ap","hostname":"Y-AP","model":"LTU-Rocket","type":"ltu","role":"ap","site":{"id":"m-y"}},
         "overview":{"wirelessMode":"ap-ptmp","downlinkCapacity":400000000,"uplinkCapacity":200000000}},
        {"identification":{"id":"k-cpe","hostname":"K-CPE","role":"station","site":{"id":"m-k"}},"ipAddress":"100.64.20.1",
         "attributes":{"apDevice":{"id":"y-ap"}}},
    ]);
    let links = serde_json::json!([
        dlink("z-y", "y-z"),
        dlink("x-z", "z-x"),
        dlink("core-z", "z-core"),
        dlink("x-y", "y-x"),
        dlink("core-x", "x-core"),
    ]);
    let m = MockCrm::start().unwrap();
    m.set(SITES, vec![Reply::json(sites.to_string())]);
    m.set(DEVICES, vec![Reply::json(devices.to_string())]);
    m.set(LINKS, vec![Reply::json(links.to_string())]);
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        config(dir.path(), &uisp_section(&m.url(), "").replace("site = \"\"", "site = \"Core\""));
    let imp = pull_and_import(Crm::Uisp, &cfg, &fast_http()).await.unwrap();
    assert_eq!(paths(&imp.network), ["Z", "X", "X/Y", "X/Y/Y-AP"]);
    assert_eq!(rates_of(&imp.network, "Z"), (100_000, 100_000));
    assert_eq!(rates_of(&imp.network, "Y"), (900_000, 900_000));
    assert_eq!(circuit(&imp, "m-k").parent_node.as_deref(), Some("Y-AP"));
    publish(&cfg, &imp, PublishOptions::default()).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("ShapedDevices.csv")).unwrap();
    assert!(csv.contains("m-k,Mesh Client,k-cpe,K-CPE,Y-AP,uisp:device:y-ap,"), "{csv}");
}

#[test]
fn uisp_bad_option_values_are_refused_with_their_line() {
    let text = "version = \"1.5\"\n[uisp_integration]\nenable_uisp = false\nairmax_flexible_frame_download_ratio = 1.5\nexception_cpes = [\"no-colon\"]\n[integration_common]\nethernet_port_limit_multiplier = 0\n";
    let (_, diags) = lqos_config::parse_config_str(text, std::path::Path::new("/t/lqos.conf"));
    let d: Vec<String> = diags.iter().filter(|d| d.is_error()).map(ToString::to_string).collect();
    assert!(
        d.iter().any(|x| x.contains(":4") && x.contains("airmax_flexible_frame_download_ratio")),
        "{d:#?}"
    );
    assert!(
        d.iter().any(|x| x.contains(":5") && x.contains("\"no-colon\" is not \"cpe:parent\"")),
        "{d:#?}"
    );
    assert!(
        d.iter().any(|x| x.contains(":7") && x.contains("ethernet_port_limit_multiplier")),
        "{d:#?}"
    );
}

fn small_uisp(
    sites: serde_json::Value,
    devices: serde_json::Value,
    links: serde_json::Value,
) -> UispDocs {
    UispDocs { sites, devices, data_links: links, routes: None }
}

/// A site with no radio path falls back to its UISP parent (lqos; LibreQoS orphans it), one
/// with neither goes under Orphans; a client whose AP sits in a client site goes under Orphans.
#[test]
fn uisp_sites_without_a_radio_path_and_aps_outside_the_tree() {
    let sites = serde_json::json!([
        {"id":"c","identification":{"id":"c","name":"Core","type":"site"}},
        {"id":"i","identification":{"id":"i","name":"Island","type":"site","parent":{"id":"c"}}},
        {"id":"l","identification":{"id":"l","name":"Lost","type":"site"}},
        {"id":"k1","identification":{"id":"k1","name":"Relay Client","type":"endpoint"}},
        {"id":"k2","identification":{"id":"k2","name":"Behind Relay","type":"endpoint"}},
    ]);
    let devices = serde_json::json!([
        {"identification":{"id":"gw","hostname":"GW","role":"router","site":{"id":"c"}}},
        {"identification":{"id":"relay","hostname":"Relay-AP","role":"ap","site":{"id":"k1"}},"ipAddress":"100.64.30.1"},
        {"identification":{"id":"cpe","hostname":"Behind-CPE","role":"station","site":{"id":"k2"}},"ipAddress":"100.64.30.2",
         "attributes":{"apDevice":{"id":"relay"}}},
    ]);
    let links = serde_json::json!([{"from":{"device":{"identification":{"id":"gw"}},"site":{"identification":{"id":"c"}}},"to":{"device":{"identification":{"id":"gw"}}},"canDelete":false}]);
    let dir = tempfile::tempdir().unwrap();
    let imp = import(
        &small_uisp(sites, devices, links),
        &config(dir.path(), &uisp_section("http://uisp.invalid", "")),
    )
    .unwrap();
    assert_eq!(paths(&imp.network), ["Orphans", "Orphans/Lost", "Island"]);
    assert_eq!(circuit(&imp, "k2").parent_node.as_deref(), Some("Orphans"));
    let w: Vec<String> = imp.warnings.iter().map(ToString::to_string).collect();
    assert!(w.iter().any(|x| x.contains("site 'Lost' has no path to the root site")), "{w:#?}");
    assert!(
        w.iter().any(|x| x.contains("site 'Island' has no radio path to the root site")),
        "{w:#?}"
    );
    assert!(
        w.iter().any(|x| x.contains("its AP 'Relay-AP' is not in an infrastructure site")),
        "{w:#?}"
    );
}

#[test]
fn uisp_root_site_is_configured_detected_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A configured root that UISP does not have: refused, naming the key.
    let cfg = ring_config(dir.path(), "", "").clone();
    let mut bad = cfg.clone();
    bad.uisp.as_mut().unwrap().site = "Nowhere".into();
    let err = import(&ring_docs(), &bad).unwrap_err().to_string();
    assert!(err.contains("root site 'Nowhere'") && err.contains("[uisp_integration]"), "{err}");
    // No configured root and no Internet link: refused with the fix.
    let mut docs = ring_docs();
    docs.data_links.as_array_mut().unwrap().retain(|l| l["canDelete"] != false);
    let err = import(&docs, &cfg).unwrap_err().to_string();
    assert!(err.contains("no root site") && err.contains("set `site`"), "{err}");
    // Configured by name: the same tree as the detected root.
    let mut named = cfg.clone();
    named.uisp.as_mut().unwrap().site = "Core".into();
    assert_eq!(
        paths(&import(&docs, &named).unwrap().network),
        paths(&import(&ring_docs(), &cfg).unwrap().network)
    );
    // Two Internet links: both roots are top-level nodes at the uplink rates.
    let mut two = ring_docs();
    two.data_links.as_array_mut().unwrap().push(serde_json::json!(
        {"from":{"device":{"identification":{"id":"d-c-core"}},"site":{"identification":{"id":"s-c"}}},"to":{"device":{"identification":{"id":"d-c-core"}}},"canDelete":false}));
    let imp = import(&two, &cfg).unwrap();
    let tops: Vec<&str> =
        imp.network.roots.iter().map(|&r| imp.network.nodes[r].name.as_str()).collect();
    assert_eq!(tops, ["Core", "Tower C"]);
    assert_eq!(rates_of(&imp.network, "Core"), (2_000_000, 1_000_000));
}

/// Whatever UISP sends — numbers out of range, wrong types, missing or empty fields, a link
/// to itself — the import answers (maybe with an error) and never panics.
#[test]
fn uisp_import_survives_mangled_answers() {
    fn mangle(v: &mut serde_json::Value, seed: &mut u64) {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let pick = (*seed >> 33) % 11;
        match v {
            serde_json::Value::Object(m) => {
                let keys: Vec<String> = m.keys().cloned().collect();
                for k in keys {
                    if pick == 0 {
                        m.remove(&k);
                    } else if let Some(x) = m.get_mut(&k) {
                        mangle(x, seed);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| mangle(x, seed)),
            serde_json::Value::Number(_) => {
                *v = match pick {
                    1 => serde_json::json!(-1),
                    2 => serde_json::json!(1e300),
                    3 => serde_json::json!(0),
                    4 => serde_json::json!(u64::MAX),
                    5 => serde_json::json!("12"),
                    _ => v.clone(),
                }
            }
            serde_json::Value::String(s) => {
                *v = match pick {
                    1 => serde_json::json!(""),
                    2 => serde_json::json!("d-core-a"),
                    3 => serde_json::json!(7),
                    4 => serde_json::json!("999999999999999999999gbps"),
                    5 => serde_json::json!("ap-ptmp"),
                    6 => serde_json::json!(s.repeat(3)),
                    _ => v.clone(),
                }
            }
            _ => {}
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = ring_config(dir.path(), "", "use_ptmp_as_parent = true");
    let mut seed = 42u64;
    for _ in 0..300 {
        let mut d = ring_docs();
        mangle(&mut d.sites, &mut seed);
        mangle(&mut d.devices, &mut seed);
        mangle(&mut d.data_links, &mut seed);
        d.routes = Some(lqos_integrations::uisp::RoutesFile {
            path: "r.csv".into(),
            text: "Tower A,Tower B,4294967295\n\"unterminated,x,1\n,,\n".into(),
        });
        let _ = import(&d, &cfg);
    }
}

/// Scale check (prints numbers, asserts only the result's shape): a meshed network of
/// `SITES` towers (each linked to the next two) with `PER_SITE` clients each. The baseline is
/// the cost of turning the same answers into text and back (what pulling them costs at
/// least), measured in the same run.
/// Run: `cargo test -p lqos-integrations --test it uisp_import_scale -- --ignored --nocapture`
#[test]
#[ignore = "prints a measurement; run by hand"]
#[expect(clippy::print_stdout, reason = "a measurement is printed for the operator")]
fn uisp_import_scale() {
    const SITES: usize = 400;
    const PER_SITE: usize = 25;
    let mut sites = vec![
        serde_json::json!({"id":"s0","identification":{"id":"s0","name":"Core","type":"site"}}),
    ];
    let mut devices = Vec::new();
    let mut links = Vec::new();
    for i in 1..=SITES {
        sites.push(serde_json::json!({"id":format!("s{i}"),"identification":{"id":format!("s{i}"),"name":format!("Tower {i}"),"type":"site"}}));
        devices.push(serde_json::json!({"identification":{"id":format!("ap{i}"),"hostname":format!("AP{i}"),"role":"ap","site":{"id":format!("s{i}")}},
            "overview":{"wirelessMode":"ap-ptmp","downlinkCapacity":300000000,"uplinkCapacity":100000000}}));
        for back in 1..=2usize {
            if i >= back {
                let (j, cap) = (i - back, 1000 - 100 * back as u64 - (i as u64 % 7));
                devices.push(radio(&format!("r{i}-{j}a"), &format!("s{j}"), "ap", cap));
                devices.push(radio(&format!("r{i}-{j}b"), &format!("s{i}"), "station", cap));
                links.push(dlink(&format!("r{i}-{j}a"), &format!("r{i}-{j}b")));
            }
        }
        for k in 0..PER_SITE {
            let id = format!("c{i}-{k}");
            sites.push(serde_json::json!({"id":id,"identification":{"id":id,"name":format!("Client {i} {k}"),"type":"endpoint"},
                "qos":{"downloadSpeed":100000000,"uploadSpeed":20000000}}));
            devices.push(serde_json::json!({"identification":{"id":format!("d{id}"),"hostname":format!("CPE {id}"),"role":"station","site":{"id":id}},
                "ipAddress":format!("100.{}.{}.{}", 64 + i / 250, i % 250, k + 1),"attributes":{"apDevice":{"id":format!("ap{i}")}}}));
        }
    }
    let docs = small_uisp(sites.into(), devices.into(), links.into());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &uisp_section("http://uisp.invalid", "").replace("site = \"\"", "site = \"Core\""),
    );
    let t = std::time::Instant::now();
    let text = (docs.sites.to_string(), docs.devices.to_string(), docs.data_links.to_string());
    let _back: (serde_json::Value, serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&text.0).unwrap(),
        serde_json::from_str(&text.1).unwrap(),
        serde_json::from_str(&text.2).unwrap(),
    );
    let baseline = t.elapsed();
    let t = std::time::Instant::now();
    let imp = import(&docs, &cfg).unwrap();
    let took = t.elapsed();
    assert_eq!(imp.circuits.len(), SITES * PER_SITE);
    println!(
        "uisp import: {} sites, {} circuits, {} nodes: import {:.1} ms, JSON round trip {:.1} ms, ratio {:.2}",
        SITES + 1,
        imp.circuits.len(),
        imp.network.nodes.len(),
        took.as_secs_f64() * 1e3,
        baseline.as_secs_f64() * 1e3,
        took.as_secs_f64() / baseline.as_secs_f64().max(1e-9)
    );
}

/// LibreQoS matched route overrides against the radios' names; lqos accepts those too.
#[test]
fn uisp_routes_file_also_matches_radio_names() {
    let p = ring_pull_with_routes("", "", Some("B-to-A,A-to-B,100\n"));
    assert_eq!(
        paths(&p.imp.network),
        ["Tower A", "Tower A/A-AP", "Tower C", "Tower C/Tower B", "Tower C/Tower B/B-AP"]
    );
    // A cost below the default hop (10) makes the thin side preferred as well.
    let p = ring_pull_with_routes("", "", Some("Tower C,Tower B,1\n"));
    assert_eq!(paths(&p.imp.network)[3], "Tower C/Tower B");
}
