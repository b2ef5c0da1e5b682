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
fn overlapping_prefixes_of_different_lengths_warn_once_per_pair() {
    let d = check(
        NET,
        &[
            "c1,n,d,n,AP,,,,100.64.0.0/24,2001:db8::/32,1,1,10,10,",
            "c2,n,d,n,AP,,,,\"100.64.0.7, 100.64.0.8\",,1,1,10,10,",
            "c3,n,d,n,AP,,,,,2001:db8:5::/48,1,1,10,10,",
            "c4,n,d,n,AP,,,,100.64.1.0/24,2001:db9::1,1,1,10,10,",
        ],
    );
    assert!(errors(&d).is_empty(), "{d:#?}");
    let mut d: Vec<_> = d.into_iter().map(|d| (d.line, d.field.clone(), d.message)).collect();
    d.sort();
    assert_eq!(d.len(), 2, "one warning per pair of circuits: {d:#?}");
    assert_eq!((d[0].0, d[0].1.as_deref()), (Some(3), Some("IPv4")));
    assert!(d[0].2.contains("100.64.0.7 overlaps 100.64.0.0/24 at line 2"), "{}", d[0].2);
    assert!(d[0].2.ends_with("the longest prefix wins"), "{}", d[0].2);
    assert_eq!((d[1].0, d[1].1.as_deref()), (Some(4), Some("IPv6")));
    assert!(d[1].2.contains("2001:db8:5::/48 overlaps 2001:db8::/32"), "{}", d[1].2);
}

#[test]
fn ipv4_and_v4_mapped_ipv6_are_different_data_plane_keys() {
    // The data plane keys IPv4 as twelve 0xFF bytes + address; ::ffff:a.b.c.d is an IPv6 key.
    let d = check(
        NET,
        &["c1,n,d,n,AP,,,,100.64.0.1,,1,1,10,10,", "c2,n,d,n,AP,,,,,::ffff:100.64.0.1,1,1,10,10,"],
    );
    assert!(d.is_empty(), "{d:#?}");
    // ... but an IPv6 prefix covering the IPv4 key space really overlaps (warning).
    let d = check(
        NET,
        &[
            "c1,n,d,n,AP,,,,100.64.0.1,,1,1,10,10,",
            "c2,n,d,n,AP,,,,,ffff:ffff:ffff:ffff:ffff:ffff::/96,1,1,10,10,",
        ],
    );
    assert_eq!(d.len(), 1, "{d:#?}");
    assert!(!d[0].is_error());
    assert_eq!((d[0].line, d[0].field.as_deref()), (Some(3), Some("IPv6")));
    assert!(
        d[0].message
            .starts_with("ffff:ffff:ffff:ffff:ffff:ffff::/96 overlaps 100.64.0.1 at line 2"),
        "{}",
        d[0]
    );
}

#[test]
fn parent_node_may_name_a_node_by_key_name_or_attachment_and_id() {
    let net = r#"{"site-7f3a": {"id": "42", "name": "North Tower", "children": {
        "ap-19": {"id": "ap19", "active_attachment_name": "North AP 2"}}}}"#;
    let d = check(
        net,
        &[
            "c1,n,d,n,North Tower,,,,100.64.0.1,,1,1,10,10,",
            "c2,n,d,n,North AP 2,,,,100.64.0.2,,1,1,10,10,",
            "c3,n,d,n,ap-19,,,,100.64.0.3,,1,1,10,10,",
            "c4,n,d,n,,ap19,,,100.64.0.4,,1,1,10,10,",
        ],
    );
    assert!(d.is_empty(), "{d:#?}");
    let (n, _) = parse_network_str(net, "network.json");
    let ix = lqos_config::ParentIndex::new(&n);
    assert_eq!(ix.by_name("North Tower"), Some(0));
    assert_eq!(ix.by_name("North AP 2"), Some(1));
    assert_eq!(ix.by_id("42"), Some(0));
    assert_eq!(ix.by_name("nowhere"), None);
}

#[test]
fn rates_above_one_tbit_are_a_per_circuit_error() {
    let (n, _) = parse_network_str("{}", "network.json");
    let (mut c, _) = parse_shaped_devices_str(
        &format!(
            "{HEADER}c1,n,d,n,,,,,100.64.0.1,,1,1,10,10,\nc2,n,d,n,,,,,100.64.0.2,,1,1,10,10,\n"
        ),
        "x",
    );
    c[1].download_max = lqos_config::RateKbit::from_mbps(1e300);
    let d = validate_inputs(&n, &c, "network.json", "ShapedDevices.csv");
    let e = only_error(&d);
    assert_eq!((e.line, e.field.as_deref()), (Some(3), Some("Download Max Mbps")));
    assert!(e.message.contains("1 Tbit/s"), "{e}");
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

mod triage_properties {
    use std::collections::HashSet;

    use lqos_config::{QuarantineAction, Severity, parse_shaped_devices, triage};
    use proptest::prelude::*;

    use super::{HEADER, NET};

    /// One row from a small vocabulary of good and bad values, so that duplicates, unknown
    /// parents, bad rates and shared Circuit IDs are frequent.
    fn row() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec!["c1", "c2", "c3", "c4", "", "c5"]),
            prop::sample::select(vec!["AP", "Site", "V", "Nope", "", "s1"]),
            prop::sample::select(vec![
                "100.64.0.1",
                "100.64.0.2",
                "100.64.0.0/30",
                "300.1.1.1",
                "",
                "100.64.0.5/29",
            ]),
            prop::sample::select(vec!["", "::ffff:100.64.0.1", "2001:db8::/32", "2001:db8::1"]),
            prop::sample::select(vec!["1", "x", "0", "1e300", "20"]),
            prop::sample::select(vec!["10", "5", "abc", "1e300", "-1"]),
        )
            .prop_map(|(id, parent, v4, v6, min, max)| {
                format!("{id},n,d,n,{parent},,,,\"{v4}\",{v6},{min},1,{max},10,")
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        // Invariants of the quarantine (never a panic): every error left is not confined to a
        // circuit; a quarantined circuit is planned only when moved under a generated parent
        // (then with its parent cleared); kept circuits have no quarantine diagnostic at their
        // lines; Circuit IDs are not planned twice.
        #[test]
        fn triage_sorts_every_error_into_quarantine_or_refusal(rows in prop::collection::vec(row(), 0..12)) {
            let csv = format!("{HEADER}{}\n", rows.join("\n"));
            let (network, _) = lqos_config::parse_network_str(NET, "network.json");
            let shaped = parse_shaped_devices(&csv, "ShapedDevices.csv");
            let mut diags = shaped.diagnostics.clone();
            diags.extend(lqos_config::validate_inputs_with_rejected(
                &network, &shaped.circuits, &shaped.rejected, "network.json", "ShapedDevices.csv"));
            let t = triage(&network, shaped.circuits.clone(), &shaped.rejected, diags, "ShapedDevices.csv");
            // Every row has the header's field count, so nothing refuses the whole input.
            prop_assert!(t.diagnostics.iter().all(|d| !d.is_error()), "{:#?}", t.diagnostics);
            let q_lines: HashSet<usize> = t
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Quarantine)
                .filter_map(|d| d.line)
                .collect();
            let mut ids = HashSet::new();
            for c in &t.circuits {
                prop_assert!(ids.insert(c.id.0.clone()), "planned twice: {}", c.id);
                let q = t.quarantined.iter().find(|q| q.circuit_id == c.id.0);
                match q {
                    Some(q) => {
                        prop_assert_eq!(q.action, QuarantineAction::GeneratedParent);
                        prop_assert!(c.parent_node.is_none() && c.parent_node_id.is_none());
                    }
                    None => {
                        for d in &c.devices {
                            prop_assert!(!q_lines.contains(&d.line), "line {} kept", d.line);
                        }
                    }
                }
            }
            for q in &t.quarantined {
                prop_assert!(!q.reason.is_empty() || q.action == QuarantineAction::Unshaped);
                if q.action == QuarantineAction::Unshaped {
                    prop_assert!(t.circuits.iter().all(|c| c.id.0 != q.circuit_id || q.circuit_id.is_empty()));
                }
            }
        }
    }
}
