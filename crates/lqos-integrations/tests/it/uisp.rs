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
    // (50 + 2500 kB × 8 / 1000) × 1.15 = 80.5; commit 50 × 0.98 = 49.
    assert_eq!((smith.download_min, smith.download_max), (RateKbit(49_000), RateKbit(80_500)));
    assert_eq!((smith.upload_min, smith.upload_max), (RateKbit(9_800), RateKbit(17_250)));
    assert_eq!(smith.name, "John Smith, 4 Elm St");
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
    assert_eq!(
        paths,
        ["Core", "Core/North Tower", "Core/North Tower/North-LTU", "Core/Core-AP1", "Orphans"]
    );
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
