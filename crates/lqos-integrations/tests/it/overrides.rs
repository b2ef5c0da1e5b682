//! issue 10: operator overrides applied after every import, whatever the CRM.

use lqos_config::RateKbit;
use lqos_integrations::mock::Reply;
use lqos_integrations::{Crm, ImportError, PublishOptions, publish, pull_and_import};

use crate::netzur::{netzur_section, serve_netzur};
use crate::splynx::{serve_splynx, splynx_section};
use crate::uisp::{serve_uisp, uisp_section};
use crate::{assert_files, config, fast_http, fixture, seed_files};

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn node_rates(imp: &lqos_integrations::Import, name: &str) -> (u64, u64) {
    let i = imp.network.find_by_name(name).unwrap_or_else(|| panic!("{name} missing"));
    let n = &imp.network.nodes[i];
    (n.download.unwrap().0, n.upload.unwrap().0)
}

/// `integrationSplynxBandwidths.csv`: per site/AP capacities, matched by the node's name, its
/// whitespace-collapsed form, or the original name of a node renamed `name (<id>)`; children
/// follow a lowered parent.
#[tokio::test(flavor = "multi_thread")]
async fn splynx_bandwidth_csv_sets_site_and_ap_capacities() {
    let mock = serve_splynx();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "integrationSplynxBandwidths.csv",
        "ParentNode,Download Mbps,Upload Mbps\n\
         # comments are allowed\n\
         South Site,400,200\n\
         Tower South_South Sector A,300,100\n\
         North   Site,250.5,125\n\
         Relay,50,20\n\
         Gone Site,10,10\n",
    );
    let cfg = config(dir.path(), &splynx_section(&mock.url(), "ap_site"));
    let imp = pull_and_import(Crm::Splynx, &cfg, &fast_http()).await.unwrap();
    assert_eq!(node_rates(&imp, "South Site"), (400_000, 200_000));
    assert_eq!(node_rates(&imp, "Tower South_South Sector A"), (300_000, 100_000));
    // Not overridden, but clamped to its lowered site.
    assert_eq!(node_rates(&imp, "Tower South_Sector B"), (400_000, 200_000));
    assert_eq!(node_rates(&imp, "North Site"), (250_500, 125_000));
    assert_eq!(node_rates(&imp, "Ridge AP"), (250_500, 125_000));
    assert_eq!(node_rates(&imp, "Relay (501)"), (50_000, 20_000));
    let w = imp.warnings.iter().find(|w| w.message.contains("Gone Site")).unwrap();
    assert_eq!(
        w.to_string(),
        "integrationSplynxBandwidths.csv:7: warning: site 'Gone Site' is not in this import; bandwidth override not applied"
    );
    publish(&cfg, &imp, PublishOptions::default()).unwrap();
    assert_files(dir.path(), "splynx", "expected_bandwidth_csv");
}

/// `integrationUISPbandwidths.csv` applies to UISP imports, with no change to the UISP
/// importer itself; the Splynx file does not.
#[tokio::test(flavor = "multi_thread")]
async fn uisp_bandwidth_csv_is_applied_after_the_uisp_import() {
    let mock = serve_uisp();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "integrationUISPbandwidths.csv",
        "ParentNode,Download Mbps,Upload Mbps\nNorth Tower,200,100\n",
    );
    write(
        dir.path(),
        "integrationSplynxBandwidths.csv",
        "ParentNode,Download Mbps,Upload Mbps\nCore-AP1,1,1\n",
    );
    let cfg = config(dir.path(), &uisp_section(&mock.url(), ""));
    let imp = pull_and_import(Crm::Uisp, &cfg, &fast_http()).await.unwrap();
    assert_eq!(node_rates(&imp, "North Tower"), (200_000, 100_000));
    let i = imp.network.find_by_name("North Tower").unwrap();
    for &c in &imp.network.nodes[i].children {
        let n = &imp.network.nodes[c];
        assert!(n.download.unwrap().0 <= 200_000 && n.upload.unwrap().0 <= 100_000, "{n:?}");
    }
    assert_ne!(node_rates(&imp, "Core-AP1").0, 1_000);
}

/// `appendToShapedDevices.csv`: its rows are in every import's ShapedDevices.csv, and a bad
/// row refuses the import with file:line:field.
#[tokio::test(flavor = "multi_thread")]
async fn append_rows_are_added_to_every_import() {
    let mock = serve_netzur(vec![Reply::json(fixture("netzur", "libreqos.json"))]);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "appendToShapedDevices.csv",
        "office,Office,office-router,Office Router,North Zone,,,,100.64.200.1,,10,10,100,100,static\n\
         netzur_1002,Bob Roe,bob-ap,Bob AP,South Zone,,,,100.64.200.2,,1,1,57.5,11.5,\n",
    );
    let cfg = config(dir.path(), &netzur_section(&mock.url()));
    let imp = pull_and_import(Crm::Netzur, &cfg, &fast_http()).await.unwrap();
    publish(&cfg, &imp, PublishOptions::default()).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("ShapedDevices.csv")).unwrap();
    assert!(
        csv.ends_with("office,Office,office-router,Office Router,North Zone,,,,100.64.200.1/32,,10,10,100,100,static,\n"),
        "{csv}"
    );
    assert!(
        csv.contains(
            "netzur_1002,Bob Roe,bob-ap,Bob AP,South Zone,netzur:zone:8,,,100.64.200.2/32,"
        ),
        "{csv}"
    );

    write(
        dir.path(),
        "appendToShapedDevices.csv",
        "office,Office,office-router,Office Router,North Zone,,,,100.64.200.1,,10,10,1x0,100,\n",
    );
    let err = pull_and_import(Crm::Netzur, &cfg, &fast_http()).await.unwrap_err();
    assert!(matches!(err, ImportError::Overrides { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("appendToShapedDevices.csv:1: Download Max Mbps: '1x0' is not a number"),
        "{err}"
    );
}

const OVERRIDES: &str = r#"{
  "persistent_devices": [
    {
      "circuit_id": "catchall",
      "circuit_name": "Catch-all",
      "device_id": "catchall-1",
      "device_name": "Catch-all block",
      "parent_node": "South Zone",
      "mac": "",
      "ipv4": [["100.64.250.0", 24]],
      "ipv6": [],
      "download_min_mbps": 1,
      "upload_min_mbps": 1,
      "download_max_mbps": 20,
      "upload_max_mbps": 5,
      "comment": "persistent"
    }
  ],
  "circuit_adjustments": [
    {"type": "circuit_adjust_speed", "circuit_id": "netzur_1001", "max_download_bandwidth": 250.0, "min_download_bandwidth": 200, "max_upload_bandwidth": null},
    {"type": "device_adjust_sqm", "device_id": "netzur_1002_device", "sqm_override": "fq_codel/cake"},
    {"type": "reparent_circuit", "circuit_id": "netzur_1003", "parent_node": "North Zone"},
    {"type": "remove_circuit", "circuit_id": "netzur_1005"},
    {"type": "remove_device", "device_id": "no-such-device"}
  ],
  "network_adjustments": [
    {"type": "adjust_site_speed", "node_id": "netzur:zone:8", "site_name": "renamed in the CRM", "download_bandwidth_mbps": 300, "upload_bandwidth_mbps": null},
    {"type": "adjust_site_speed", "site_name": "North Zone", "download_bandwidth_mbps": 900, "upload_bandwidth_mbps": 450},
    {"type": "set_node_virtual", "node_name": "North Zone", "virtual": true}
  ],
  "rtt_excluded_circuits": ["netzur_1001"]
}
"#;

/// `lqos_overrides.json` (LibreQoS's format): persistent devices, circuit adjustments and site
/// speeds, applied after the import and kept when the CRM data changes.
#[tokio::test(flavor = "multi_thread")]
async fn lqos_overrides_json_is_applied_and_survives_a_crm_refresh() {
    let mock = serve_netzur(vec![Reply::json(fixture("netzur", "libreqos.json"))]);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "lqos_overrides.json", OVERRIDES);
    let cfg = config(dir.path(), &netzur_section(&mock.url()));
    let imp = pull_and_import(Crm::Netzur, &cfg, &fast_http()).await.unwrap();
    publish(&cfg, &imp, PublishOptions::default()).unwrap();
    assert_files(dir.path(), "netzur", "expected_overrides");
    // Warnings name file:line for what could not be applied.
    let w: Vec<String> = imp.warnings.iter().map(ToString::to_string).collect();
    assert!(
        w.contains(&"lqos_overrides.json:24: warning: device 'no-such-device' is not in this import; adjustment not applied".to_string()),
        "{w:#?}"
    );
    assert!(
        w.iter().any(|x| x.starts_with(
            "lqos_overrides.json:29: warning: network_adjustments[2].type: 'set_node_virtual'"
        )),
        "{w:#?}"
    );

    // The CRM changes Jane's plan and moves Lost Soul: the overrides still win.
    let mut doc: serde_json::Value =
        serde_json::from_str(&fixture("netzur", "libreqos.json")).unwrap();
    doc["customers"][0]["download"] = serde_json::json!(500);
    doc["customers"][2]["zone"] = serde_json::json!("South Zone");
    mock.set(crate::netzur::PATH, vec![Reply::json(doc.to_string())]);
    let again = pull_and_import(Crm::Netzur, &cfg, &fast_http()).await.unwrap();
    let jane = again.circuits.iter().find(|c| c.id.0 == "netzur_1001").unwrap();
    assert_eq!((jane.download_max, jane.download_min), (RateKbit(250_000), RateKbit(200_000)));
    let lost = again.circuits.iter().find(|c| c.id.0 == "netzur_1003").unwrap();
    assert_eq!(lost.parent_node.as_deref(), Some("North Zone"));
    assert!(again.circuits.iter().any(|c| c.id.0 == "catchall"));
}

/// A malformed file or a bad value refuses the import with file:line(:col): field, and the
/// last good files stay.
#[tokio::test(flavor = "multi_thread")]
async fn bad_overrides_refuse_the_import_naming_file_line_and_field() {
    let mock = serve_netzur(vec![Reply::json(fixture("netzur", "libreqos.json"))]);
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed_files(dir.path(), 2);
    let cfg = config(dir.path(), &netzur_section(&mock.url()));

    write(
        dir.path(),
        "lqos_overrides.json",
        "{\n  \"circuit_adjustments\": [\n    {\"type\": \"remove_circuit\",}\n  ]\n}\n",
    );
    let err = pull_and_import(Crm::Netzur, &cfg, &fast_http()).await.unwrap_err();
    let ImportError::Overrides { diagnostics } = &err else { panic!("{err:?}") };
    assert!(diagnostics[0].to_string().starts_with("lqos_overrides.json:3:"), "{}", diagnostics[0]);
    assert!(err.is_input_error());

    let bad = OVERRIDES
        .replace("\"max_download_bandwidth\": 250.0", "\"max_download_bandwidth\": \"fast\"")
        .replace("\"sqm_override\": \"fq_codel/cake\"", "\"sqm_override\": \"turbo\"")
        .replace("[[\"100.64.250.0\", 24]]", "[[\"100.64.250.7\", 24]]");
    write(dir.path(), "lqos_overrides.json", &bad);
    let err = pull_and_import(Crm::Netzur, &cfg, &fast_http()).await.unwrap_err();
    let ImportError::Overrides { diagnostics } = &err else { panic!("{err:?}") };
    let d: Vec<String> =
        diagnostics.iter().filter(|d| d.is_error()).map(ToString::to_string).collect();
    assert_eq!(d.len(), 3, "{d:#?}");
    assert!(d[0].starts_with("lqos_overrides.json:10: persistent_devices[0].ipv4: '100.64.250.7/24' has host bits set"), "{d:#?}");
    assert_eq!(
        d[1],
        "lqos_overrides.json:20: circuit_adjustments[0].max_download_bandwidth: \"fast\" is not a number (hint: Mbps, or null)"
    );
    assert!(
        d[2].starts_with("lqos_overrides.json:21: circuit_adjustments[1].sqm_override: "),
        "{d:#?}"
    );
    assert!(
        err.to_string()
            .starts_with("operator overrides have 3 error(s), first: lqos_overrides.json:10:"),
        "{err}"
    );
    crate::assert_unchanged(dir.path(), &seeded);

    // A persistent device whose prefix covers an address the CRM gave another circuit.
    let clash = OVERRIDES.replace("[[\"100.64.250.0\", 24]]", "[[\"100.64.2.0\", 24]]");
    write(dir.path(), "lqos_overrides.json", &clash);
    let err = pull_and_import(Crm::Netzur, &cfg, &fast_http()).await.unwrap_err();
    assert!(
        err.to_string().contains(
            "first: lqos_overrides.json:3: ipv4: 100.64.2.0/24 of device 'catchall-1' overlaps 100.64.2.10/32 of circuit 'netzur_1001' (Jane Doe)"
        ),
        "{err}"
    );
    crate::assert_unchanged(dir.path(), &seeded);

    write(dir.path(), "lqos_overrides.json", "");
    write(dir.path(), "integrationSplynxBandwidths.csv", "this file is not read for Netzur\n,,\n");
    write(dir.path(), "appendToShapedDevices.csv", "# nothing yet\n\n");
    pull_and_import(Crm::Netzur, &cfg, &fast_http()).await.unwrap();
}

/// A bad row in a bandwidth CSV names file:line:field.
#[tokio::test(flavor = "multi_thread")]
async fn bad_bandwidth_csv_row_is_refused_with_its_line() {
    let mock = serve_splynx();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "integrationSplynxBandwidths.csv",
        "ParentNode,Download Mbps,Upload Mbps\nSouth Site,-5,100\nNorth Site,100\n",
    );
    let cfg = config(dir.path(), &splynx_section(&mock.url(), "ap_site"));
    let err = pull_and_import(Crm::Splynx, &cfg, &fast_http()).await.unwrap_err();
    let ImportError::Overrides { diagnostics } = &err else { panic!("{err:?}") };
    let d: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        d,
        [
            "integrationSplynxBandwidths.csv:2: download: '-5' is not a rate in Mbps (hint: a number of Mbps above 0)",
            "integrationSplynxBandwidths.csv:3: 2 fields, expected 3 (hint: write: site or AP name,download Mbps,upload Mbps)",
        ]
    );
}

/// Scale check (prints numbers): 20,000 circuits and an overrides file with 4,000 entries
/// (speed, SQM, reparent, removal, persistent devices). The baseline is rendering the same
/// import as ShapedDevices.csv text, which every publish does anyway, measured in the same run.
/// Run: `cargo test -p lqos-integrations --test it overrides_scale -- --ignored --nocapture`
#[test]
#[ignore = "prints a measurement; run by hand"]
#[expect(clippy::print_stdout, reason = "a measurement is printed for the operator")]
fn overrides_scale() {
    use lqos_config::{Circuit, CircuitId, Device, Network, shaped_devices_to_string};
    use lqos_integrations::Import;
    use lqos_integrations::overrides::{Overrides, apply, parse_overrides_json};
    const CIRCUITS: usize = 20_000;
    let circuit = |i: usize| Circuit {
        id: CircuitId(format!("c{i}")),
        name: format!("Customer {i}"),
        parent_node: None,
        parent_node_id: None,
        anchor_node_id: None,
        download_min: RateKbit(10_000),
        upload_min: RateKbit(2_000),
        download_max: RateKbit(100_000),
        upload_max: RateKbit(20_000),
        sqm: None,
        devices: vec![Device {
            id: format!("d{i}"),
            name: format!("CPE {i}"),
            mac: String::new(),
            ipv4: vec![
                format!("100.{}.{}.{}/32", 64 + i / 65_536, (i / 256) % 256, i % 256)
                    .parse()
                    .unwrap(),
            ],
            ipv6: vec![],
            comment: String::new(),
            line: 0,
        }],
        line: 0,
    };
    let imp = Import {
        crm: Crm::Netzur,
        network: Network::default(),
        circuits: (0..CIRCUITS).map(circuit).collect(),
        warnings: vec![],
    };
    let mut entries = Vec::new();
    let mut persistent = Vec::new();
    for k in 0..1000 {
        let i = k * 17 % CIRCUITS;
        entries.push(format!(r#"{{"type": "circuit_adjust_speed", "circuit_id": "c{i}", "max_download_bandwidth": 50}}"#));
        entries.push(format!(
            r#"{{"type": "device_adjust_sqm", "device_id": "d{}", "sqm_override": "cake"}}"#,
            (i + 1) % CIRCUITS
        ));
        entries.push(format!(
            r#"{{"type": "reparent_circuit", "circuit_id": "c{}", "parent_node": ""}}"#,
            (i + 2) % CIRCUITS
        ));
        entries.push(format!(
            r#"{{"type": "remove_circuit", "circuit_id": "c{}"}}"#,
            (i + 3) % CIRCUITS
        ));
        persistent.push(format!(
            r#"{{"circuit_id": "p{k}", "device_id": "pd{k}", "ipv4": [["100.200.{}.{}", 32]], "download_min_mbps": 1, "upload_min_mbps": 1, "download_max_mbps": 10, "upload_max_mbps": 10}}"#,
            k / 256,
            k % 256
        ));
    }
    let text = format!(
        "{{\"persistent_devices\": [{}], \"circuit_adjustments\": [{}]}}",
        persistent.join(",\n"),
        entries.join(",\n")
    );
    let t = std::time::Instant::now();
    let csv = shaped_devices_to_string(&imp.circuits);
    let baseline = t.elapsed();
    let t = std::time::Instant::now();
    let mut ov = Overrides::default();
    let mut diags = Vec::new();
    parse_overrides_json(&text, &mut ov, &mut diags);
    let parsed = t.elapsed();
    let mut imp = imp;
    let t = std::time::Instant::now();
    let errors = apply(&mut imp, &ov, (RateKbit(10_000_000), RateKbit(10_000_000)));
    let applied = t.elapsed();
    assert!(errors.is_empty() && diags.is_empty(), "{errors:?} {diags:?}");
    assert_eq!(imp.circuits.len(), CIRCUITS + 1000 - 1000);
    println!(
        "overrides: {CIRCUITS} circuits, {} entries: parse {:.1} ms, apply {:.1} ms; ShapedDevices.csv rendering {:.1} ms ({} bytes); ratio (parse+apply)/render {:.2}",
        ov.adjustments.len() + ov.persistent.len(),
        parsed.as_secs_f64() * 1e3,
        applied.as_secs_f64() * 1e3,
        baseline.as_secs_f64() * 1e3,
        csv.len(),
        (parsed + applied).as_secs_f64() / baseline.as_secs_f64().max(1e-9)
    );
}
