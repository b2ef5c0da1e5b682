//! Odd-but-real ShapedDevices.csv rows, each with its exact outcome: accepted, warning at line
//! N, circuit X quarantined (unshaped or under a generated parent), or the input refused.
//! The base input (`CSV`) holds c1..c4 on lines 2..5.

use libreqos::Outcome;

use crate::{CSV, cli, setup};

fn dry_run_json(csv: &str) -> (Outcome, serde_json::Value) {
    let (_d, conf) = setup(csv);
    let (code, out) = cli(&conf, &["--dry-run", "--json"]);
    (code, serde_json::from_str(&out).unwrap_or_else(|e| panic!("one JSON document: {e}\n{out}")))
}

fn quarantined(v: &serde_json::Value) -> Vec<(String, u64, String)> {
    v["quarantined"]
        .as_array()
        .expect("quarantined")
        .iter()
        .map(|q| {
            (
                q["circuit_id"].as_str().unwrap_or_default().to_owned(),
                q["line"].as_u64().unwrap_or_default(),
                q["action"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn planned(v: &serde_json::Value, id: &str) -> Option<serde_json::Value> {
    v["circuits"].as_array()?.iter().find(|c| c["circuit_id"] == id).cloned()
}

#[test]
fn unknown_parent_is_shaped_under_a_generated_parent_and_validate_exits_1() {
    let csv = format!("{CSV}c5,Eve,d5,Eve router,AP_9,,,,100.64.0.5,,1,1,5,5,\n");
    let (_d, conf) = setup(&csv);
    let (code, out) = cli(&conf, &["--validate"]);
    assert_eq!(code, Outcome::Invalid, "{out}");
    assert!(
        out.contains("ShapedDevices.csv:6: Parent Node: circuit 'c5': parent node 'AP_9'"),
        "{out}"
    );
    assert!(out.contains("ShapedDevices.csv:6): shaped under a generated parent node"), "{out}");
    assert!(out.contains("invalid: 1 circuit(s) quarantined"), "{out}");
    let (code, v) = dry_run_json(&csv);
    assert_eq!(code, Outcome::Ok);
    assert_eq!(quarantined(&v), [("c5".to_owned(), 6, "generated_parent".to_owned())]);
    let c5 = planned(&v, "c5").expect("c5 is planned");
    assert!(c5["parent"].as_str().is_some_and(|p| p.starts_with("libreqos:generated:pn:")));
    assert!(v["quarantined"][0]["reason"].as_str().is_some_and(|r| r.starts_with("Parent Node:")));
    assert_eq!(v["change"]["circuits"], 5);
}

#[test]
fn an_exact_duplicate_address_quarantines_the_later_row_only() {
    let csv = format!("{CSV}c5,Eve,d5,Eve router,AP_1,,,,100.64.0.3,,1,1,5,5,\n");
    let (code, v) = dry_run_json(&csv);
    assert_eq!(code, Outcome::Ok);
    assert_eq!(quarantined(&v), [("c5".to_owned(), 6, "unshaped".to_owned())]);
    assert!(planned(&v, "c5").is_none(), "c5 is left unshaped");
    assert!(planned(&v, "c3").is_some(), "c3 keeps 100.64.0.3");
    assert_eq!(v["change"]["counts"]["mappings_added"], 6);
}

#[test]
fn absurd_rates_are_quarantined_not_a_panic() {
    let csv = format!("{CSV}c5,Eve,d5,Eve router,AP_1,,,,100.64.0.5,,1,1,1e300,5,\n");
    let (_d, conf) = setup(&csv);
    let (code, out) = cli(&conf, &["--validate"]);
    assert_eq!(code, Outcome::Invalid, "{out}");
    assert!(out.contains("ShapedDevices.csv:6: Download Max Mbps: "), "{out}");
    assert!(out.contains("1 Tbit/s"), "{out}");
    let (code, v) = dry_run_json(&csv);
    assert_eq!(code, Outcome::Ok);
    assert_eq!(quarantined(&v), [("c5".to_owned(), 6, "unshaped".to_owned())]);
}

#[test]
fn overlapping_prefixes_of_different_lengths_are_accepted_with_one_warning() {
    // c2 owns 100.64.1.0/29; c5 takes one host inside it and one more: longest prefix wins.
    let csv = format!("{CSV}c5,Eve,d5,Eve router,AP_1,,,,\"100.64.1.3, 100.64.1.4\",,1,1,5,5,\n");
    let (_d, conf) = setup(&csv);
    let (code, out) = cli(&conf, &["--validate"]);
    assert_eq!(code, Outcome::Ok, "{out}");
    let warnings: Vec<&str> = out.lines().filter(|l| l.contains("overlaps")).collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(
        warnings[0].contains(
            "ShapedDevices.csv:6: warning: IPv4: 100.64.1.3 overlaps 100.64.1.0/29 at line 3"
        ),
        "{out}"
    );
}

#[test]
fn ipv4_and_its_v4_mapped_ipv6_form_are_not_a_conflict() {
    let csv = format!("{CSV}c5,Eve,d5,Eve router,AP_1,,,,,::ffff:100.64.0.1,1,1,5,5,\n");
    let (_d, conf) = setup(&csv);
    let (code, out) = cli(&conf, &["--validate"]);
    assert_eq!(code, Outcome::Ok, "{out}");
}

#[test]
fn quarantining_more_than_max_quarantine_ratio_refuses_the_whole_input() {
    // 2 of 6 circuits (33 %) > 5 %: probably a broken export; keep what is applied.
    let csv = format!(
        "{CSV}c5,Eve,d5,Eve router,AP_1,,,,100.64.0.5,,1,1,x,5,\nc6,Fay,d6,Fay router,Gone,,,,100.64.0.6,,1,1,5,5,\n"
    );
    let (_d, conf) = setup(&csv);
    let (code, out) = cli(&conf, &["--validate"]);
    assert_eq!(code, Outcome::Invalid, "{out}");
    assert!(
        out.contains("2 of 6 circuits would be quarantined, more than max_quarantine_ratio = 0.05"),
        "{out}"
    );
    assert!(out.contains("nothing would be applied"), "{out}");
    let (code, v) = dry_run_json(&csv);
    assert_eq!(code, Outcome::Invalid);
    assert_eq!(v["refused"], true);
    assert_eq!(v["quarantined"].as_array().map(Vec::len), Some(2));
    // Raising the ratio accepts the same input.
    let (_d, conf) = setup(&csv);
    let text = std::fs::read_to_string(&conf).expect("conf");
    let text: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim() == "[queues]" {
                "[queues]\nmax_quarantine_ratio = 0.5".into()
            } else {
                l.into()
            }
        })
        .collect();
    let text = text.join("\n");
    std::fs::write(&conf, text).expect("conf");
    let (code, out) = cli(&conf, &["--dry-run", "--json"]);
    assert_eq!(code, Outcome::Ok, "{out}");
}

#[test]
fn a_wrong_field_count_refuses_the_whole_input() {
    let csv = format!("{CSV}c5,Eve,d5,Eve router,AP_1,,,,100.64.0.5,,1,1,5\n");
    let (code, v) = dry_run_json(&csv);
    assert_eq!(code, Outcome::Invalid);
    assert_eq!(v["refused"], true);
    let d = &v["diagnostics"][0];
    assert_eq!((d["line"].as_u64(), d["severity"].as_str()), (Some(6), Some("error")));
}

#[test]
fn parent_node_may_be_a_display_name() {
    let (dir, conf) =
        setup(&format!("{CSV}c5,Eve,d5,Eve router,Access One,,,,100.64.0.5,,1,1,5,5,\n"));
    let net = crate::NETWORK.replace(
        "\"AP_1\": {\"downloadBandwidthMbps\": 300",
        "\"AP_1\": {\"name\": \"Access One\", \"downloadBandwidthMbps\": 300",
    );
    std::fs::write(dir.path().join("network.json"), net).expect("net");
    let (code, out) = cli(&conf, &["--dry-run", "--json"]);
    assert_eq!(code, Outcome::Ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(planned(&v, "c5").expect("c5")["parent"], "Site_A/AP_1");
    assert!(quarantined(&v).is_empty());
}
