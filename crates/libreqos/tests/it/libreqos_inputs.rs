//! LibreQoS's own example inputs (`tests/fixtures/libreqos-inputs/`, copied from the shared
//! reference, LibreQoS 455bc13b), each with its expected outcome.

use std::path::{Path, PathBuf};

use libreqos::Outcome;

use crate::cli;

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/libreqos-inputs").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// The 13-column header the example rows were written for.
const HEADER_13: &str = "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,MAC,IPv4,IPv6,\
Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment";

/// The example CSV's rows under the 13-column header.
fn example_rows_13() -> String {
    let csv = fixture("ShapedDevices.example.csv");
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    format!("{HEADER_13}\n{}\n", rows.join("\n"))
}

/// A directory with `conf` (its `lqos_directory` and `state_directory` pointed at the
/// directory, nothing else changed), the example network.json and `csv`.
fn dir_with(conf: &str, csv: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let text: Vec<String> = conf
        .lines()
        .map(|l| {
            if l.starts_with("lqos_directory") {
                format!("lqos_directory = \"{}\"", dir.path().display())
            } else if l.starts_with("state_directory") {
                format!("state_directory = \"{}/state\"", dir.path().display())
            } else {
                l.to_owned()
            }
        })
        .collect();
    let path = dir.path().join("lqos.conf");
    std::fs::write(&path, text.join("\n")).expect("conf");
    std::fs::write(dir.path().join("network.json"), fixture("network.example.json")).expect("net");
    std::fs::write(dir.path().join("ShapedDevices.csv"), csv).expect("csv");
    (dir, path)
}

fn packaging_conf() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/lqos.example.conf"),
    )
    .expect("packaging conf")
}

/// The shipped example CSV has a 15-column header over 13-field rows (LibreQoS itself fails on
/// it): refused at line 2 with the layout hint, nothing planned.
#[test]
fn shipped_example_csv_is_refused_at_line_2_with_the_layout_hint() {
    let (_d, conf) = dir_with(&packaging_conf(), &fixture("ShapedDevices.example.csv"));
    let (code, out) = cli(&conf, &["--validate"]);
    assert_eq!(code, Outcome::Invalid, "{out}");
    let first = out.lines().find(|l| l.contains("ShapedDevices.csv:")).expect("a problem");
    assert!(first.contains("ShapedDevices.csv:2: "), "{out}");
    assert!(out.contains("legacy layout"), "{out}");
    assert!(out.contains("nothing would be applied"), "{out}");
    let (code, out) = cli(&conf, &["--dry-run", "--json"]);
    assert_eq!(code, Outcome::Invalid, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(v["refused"], true);
}

/// The same rows under the 13-column header are valid; the whole tree plans, and circuit
/// 10011 (beside the child nodes of Site_1) keeps its 1 Mbps minimum.
#[test]
fn example_rows_under_the_13_column_header_plan_and_10011_keeps_its_minimum() {
    let (_d, conf) = dir_with(&packaging_conf(), &example_rows_13());
    let (code, out) = cli(&conf, &["--validate"]);
    assert_eq!(code, Outcome::Ok, "{out}");
    assert!(out.contains("valid: 11 node(s), 10 circuit(s), 10 device(s)"), "{out}");
    let (code, out) = cli(&conf, &["--dry-run", "--json"]);
    assert_eq!(code, Outcome::Ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    let circuits = v["circuits"].as_array().expect("circuits");
    assert_eq!(circuits.len(), 10);
    assert!(v["quarantined"].as_array().expect("quarantined").is_empty());
    let c = circuits.iter().find(|c| c["circuit_id"] == "10011").expect("10011");
    assert_eq!(c["parent"], "Site_1");
    let class = c["class"].as_str().expect("class");
    let (code, tc) = cli(&conf, &["--dry-run", "--show-tc"]);
    assert_eq!(code, Outcome::Ok, "{tc}");
    let line = tc
        .lines()
        .find(|l| l.starts_with("class add") && l.contains(&format!(" classid {class} ")))
        .expect("10011's download class");
    assert!(line.contains(" rate 1000kbit "), "{line}");
}

/// Both LibreQoS example configs load unchanged (only the directories pointed at the inputs).
#[test]
fn both_libreqos_example_configs_drive_validate_and_dry_run() {
    for name in ["lqos.conf.v15-example.toml", "lqos.example"] {
        let (_d, conf) = dir_with(&fixture(name), &example_rows_13());
        let (code, out) = cli(&conf, &["--validate"]);
        assert_eq!(code, Outcome::Ok, "{name}: {out}");
        // Settings lqos ignores are each reported once, with their line.
        let ignored: Vec<&str> = out.lines().filter(|l| l.contains("has no effect")).collect();
        assert!(!ignored.is_empty(), "{name}: {out}");
        for l in &ignored {
            assert_eq!(out.lines().filter(|x| x == l).count(), 1, "{name}: twice: {l}\n{out}");
        }
        let (code, out) = cli(&conf, &["--dry-run", "--json"]);
        assert_eq!(code, Outcome::Ok, "{name}: {out}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
        assert_eq!(v["circuits"].as_array().map(Vec::len), Some(10), "{name}");
    }
}

/// `manualNetwork.template.csv` is a template for building network.json, not a
/// ShapedDevices.csv: given as one, it is refused (no rate columns) and nothing is planned.
#[test]
fn manual_network_template_is_not_a_shaped_devices_file() {
    let (_d, conf) = dir_with(&packaging_conf(), &fixture("manualNetwork.template.csv"));
    let (code, out) = cli(&conf, &["--validate"]);
    assert_eq!(code, Outcome::Invalid, "{out}");
    assert!(out.contains("ShapedDevices.csv:1:"), "{out}");
}
