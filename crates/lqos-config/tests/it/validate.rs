use lqos_config::{parse_network_str, parse_shaped_devices_str, validate_inputs};

use crate::{errors, only_error};

const HEADER: &str = "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,Parent Node ID,\
Anchor Node ID,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment\n";

const NET: &str = r#"{"Site": {"id": "s1", "children": {"AP": {}, "V": {"virtual": true}}}}"#;

fn check(net: &str, rows: &[&str]) -> Vec<lqos_config::Diagnostic> {
    let (n, d1) = parse_network_str(net, "network.json");
    assert!(d1.is_empty(), "{d1:#?}");
    let csv = format!("{HEADER}{}\n", rows.join("\n"));
    let (c, d2) = parse_shaped_devices_str(&csv, "ShapedDevices.csv");
    assert!(d2.is_empty(), "{d2:#?}");
    validate_inputs(&n, &c, "network.json", "ShapedDevices.csv")
}

#[test]
fn unknown_parent_is_an_error_with_line() {
    let d = check(
        NET,
        &["c1,n,d,n,AP,,,,100.64.0.1,,1,1,10,10,", "c2,n,d,n,Nope,,,,100.64.0.2,,1,1,10,10,"],
    );
    let e = only_error(&d);
    assert_eq!((e.line, e.field.as_deref()), (Some(3), Some("Parent Node")));
    assert!(e.message.contains("'Nope'"));
}

#[test]
fn virtual_parent_and_parent_id_are_accepted() {
    let d = check(
        NET,
        &["c1,n,d,n,V,,,,100.64.0.1,,1,1,10,10,", "c2,n,d,n,,s1,,,100.64.0.2,,1,1,10,10,"],
    );
    assert!(d.is_empty(), "{d:#?}");
}

#[test]
fn flat_network_with_parents_warns_once() {
    let d = check(
        "{}",
        &["c1,n,d,n,AP,,,,100.64.0.1,,1,1,10,10,", "c2,n,d,n,AP,,,,100.64.0.2,,1,1,10,10,"],
    );
    assert_eq!(d.len(), 1);
    assert!(!d[0].is_error());
    assert!(d[0].message.starts_with("2 circuit(s)"));
}

#[test]
fn same_ipv4_in_two_circuits_is_an_error_at_the_later_line() {
    let d = check(
        NET,
        &["c1,n,d,n,AP,,,,100.64.0.1,,1,1,10,10,", "c2,n,d,n,AP,,,,100.64.0.1,,1,1,10,10,"],
    );
    let e = only_error(&d);
    assert_eq!((e.line, e.field.as_deref()), (Some(3), Some("IPv4")));
    assert!(e.message.contains("also assigned at line 2"), "{e}");
}

#[test]
fn overlapping_prefixes_v4_and_v6_are_errors() {
    let d = check(
        NET,
        &[
            "c1,n,d,n,AP,,,,100.64.0.0/24,2001:db8::/32,1,1,10,10,",
            "c2,n,d,n,AP,,,,100.64.0.7,,1,1,10,10,",
            "c3,n,d,n,AP,,,,,2001:db8:5::/48,1,1,10,10,",
            "c4,n,d,n,AP,,,,100.64.1.0/24,2001:db9::1,1,1,10,10,",
        ],
    );
    let e = errors(&d);
    assert_eq!(e.len(), 2, "{d:#?}");
    assert_eq!((e[0].line, e[0].field.as_deref()), (Some(3), Some("IPv4")));
    assert!(e[0].message.contains("100.64.0.7 overlaps 100.64.0.0/24 at line 2"), "{}", e[0]);
    assert_eq!((e[1].line, e[1].field.as_deref()), (Some(4), Some("IPv6")));
    assert!(e[1].message.contains("2001:db8:5::/48 overlaps 2001:db8::/32"), "{}", e[1]);
}

#[test]
fn overlap_within_one_circuit_only_warns() {
    let d = check(
        NET,
        &["c1,n,d1,n,AP,,,,100.64.0.0/30,,1,1,10,10,", "c1,n,d2,n,AP,,,,100.64.0.1,,1,1,10,10,"],
    );
    assert_eq!(d.len(), 1);
    assert!(!d[0].is_error());
}

#[test]
fn circuits_built_in_code_get_rate_checks() {
    let (n, _) = parse_network_str("{}", "network.json");
    let (mut c, _) =
        parse_shaped_devices_str(&format!("{HEADER}c1,n,d,n,,,,,100.64.0.1,,1,1,10,10,\n"), "x");
    c[0].upload_min = lqos_config::RateKbit(20_000);
    let d = validate_inputs(&n, &c, "network.json", "ShapedDevices.csv");
    assert_eq!(only_error(&d).field.as_deref(), Some("Upload Min Mbps"));
}
