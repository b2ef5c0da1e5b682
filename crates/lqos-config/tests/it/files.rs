use std::fs;
use std::path::Path;

use lqos_config::{
    ConfigError, Severity, config_path_from_env, load_config, load_inputs, parse_network_str,
    write_atomic, write_network, write_shaped_devices,
};

#[test]
fn missing_config_says_where_it_looked_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lqos.conf");
    let err = load_config(&path).unwrap_err();
    assert!(matches!(err, ConfigError::NotFound { .. }));
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("packaging/lqos.example.conf") && msg.contains("LQOS_CONFIG"), "{msg}");
}

#[test]
fn cli_path_wins() {
    assert_eq!(config_path_from_env(Some(Path::new("/x/y.conf"))), Path::new("/x/y.conf"));
}

#[test]
fn invalid_config_carries_every_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lqos.conf");
    fs::write(&path, "version = \"1.5\"\nlqos_directory = \"/x\"\n[bridge]\nto_internet = \"eth1\"\nto_network = \"eth1\"\nmtu = 5\n").unwrap();
    let Err(ConfigError::Invalid { diagnostics, .. }) = load_config(&path) else {
        panic!("expected Invalid")
    };
    assert_eq!(diagnostics.iter().filter(|d| d.is_error()).count(), 2, "{diagnostics:#?}");
}

#[test]
fn load_inputs_reads_both_files_and_cross_checks() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("lqos.conf");
    fs::write(
        &conf,
        format!(
            "version = \"1.5\"\nlqos_directory = \"{}\"\n[bridge]\nto_internet = \"a\"\nto_network = \"b\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let (config, warnings) = load_config(&conf).unwrap();
    assert!(warnings.is_empty(), "{warnings:#?}");
    fs::write(dir.path().join("network.json"), r#"{"AP": {"downloadBandwidthMbps": 100}}"#)
        .unwrap();
    let mut csv = b"\xEF\xBB\xBFCircuit ID,IPv4,Parent Node,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps\r\n".to_vec();
    csv.extend_from_slice(b"c1,100.64.0.1,AP,1,1,10,10\r\nc2,100.64.0.2,Gone,1,1,10,10\r\n");
    fs::write(dir.path().join("ShapedDevices.csv"), csv).unwrap();
    let inputs = load_inputs(&config).unwrap();
    // c2's unknown parent quarantines c2 alone: it is planned under a generated parent.
    assert_eq!(inputs.circuits.len(), 2);
    assert!(!inputs.has_errors());
    assert_eq!(inputs.diagnostics.len(), 1);
    assert_eq!(inputs.diagnostics[0].line, Some(3));
    assert_eq!(inputs.diagnostics[0].severity, Severity::Quarantine);
    assert!(inputs.diagnostics[0].file.ends_with("ShapedDevices.csv"));
    assert_eq!(inputs.quarantined.len(), 1);
    assert_eq!(inputs.quarantined[0].circuit_id, "c2");
    assert_eq!(inputs.quarantined[0].action, lqos_config::QuarantineAction::GeneratedParent);
    assert_eq!(inputs.circuits[1].parent_node, None);
}

/// Writes lqos.conf, network.json and ShapedDevices.csv into a temp dir and loads the inputs
/// the way `libreqos --validate` and lqosd do.
fn load_dir(network: &str, csv: &str) -> (tempfile::TempDir, lqos_config::Inputs) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("lqos.conf");
    fs::write(
        &conf,
        format!(
            "version = \"1.5\"\nlqos_directory = \"{}\"\n[bridge]\nto_internet = \"a\"\nto_network = \"b\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let (config, _) = load_config(&conf).unwrap();
    fs::write(dir.path().join("network.json"), network).unwrap();
    fs::write(dir.path().join("ShapedDevices.csv"), csv).unwrap();
    let inputs = load_inputs(&config).unwrap();
    (dir, inputs)
}

/// (line, field, severity, message) of every diagnostic, sorted.
fn summary(inputs: &lqos_config::Inputs) -> Vec<(Option<usize>, String, Severity, String)> {
    let mut v: Vec<_> = inputs
        .diagnostics
        .iter()
        .map(|d| (d.line, d.field.clone().unwrap_or_default(), d.severity, d.message.clone()))
        .collect();
    v.sort();
    v
}

const HEADER: &str = "Circuit ID,Parent Node,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,sqm\n";

#[test]
fn one_run_reports_field_parent_and_address_errors_of_a_bad_row() {
    let net = r#"{"AP_1": {"downloadBandwidthMbps": 100}}"#;
    let csv = format!("{HEADER}c1,AP_1,100.64.0.1,,1,1,10,10,\nc2,AP_9,100.64.0.1,,1,1,abc,10,\n");
    let (dir, inputs) = load_dir(net, &csv);
    assert_eq!(inputs.circuits.len(), 1, "the bad row is never planned");
    let net_label = dir.path().join("network.json").display().to_string();
    let q = Severity::Quarantine;
    assert_eq!(
        summary(&inputs),
        vec![
            (Some(3), "Download Max Mbps".into(), q, "'abc' is not a number".into()),
            (
                Some(3),
                "IPv4".into(),
                q,
                "100.64.0.1 is also assigned at line 2 (circuit 'c2' and circuit 'c1')".into()
            ),
            (
                Some(3),
                "Parent Node".into(),
                q,
                format!("circuit 'c2': parent node 'AP_9' is not in {net_label}")
            ),
        ]
    );
    assert!(inputs.diagnostics.iter().all(|d| d.file.ends_with("ShapedDevices.csv")));
}

#[test]
fn rejected_rows_cross_check_each_other_and_keep_only_what_parsed() {
    let net = r#"{"AP_1": {"downloadBandwidthMbps": 100}}"#;
    let csv = format!(
        "{HEADER}\
         c1,AP_1,100.64.0.1,,1,1,10,10,\n\
         c1,AP_1,100.64.0.1,,1,1,10,10,bogus\n\
         c3,AP_1,\"100.64.1.0/24, 300.1.1.1\",,1,1,10,x,\n\
         c4,AP_1,100.64.1.7,2001:db8::/32,5,1,1,10,\n\
         ,AP_7,,,1,1,10,10,\n\
         c6,AP_1,100.64.0.1\n\
         c7,AP_1,,2001:db8:1::1,1,1,10,10,\n"
    );
    let (_dir, inputs) = load_dir(net, &csv);
    let got = summary(&inputs);
    let at = |line: usize| -> Vec<(String, Severity)> {
        got.iter().filter(|d| d.0 == Some(line)).map(|d| (d.1.clone(), d.2)).collect()
    };
    let (q, w) = (Severity::Quarantine, Severity::Warning);
    // Line 3: a bad sqm on a second row of c1 (quarantines all of c1); its address repeats
    // c1's own: only a warning.
    assert_eq!(at(3), vec![("IPv4".into(), w), ("sqm".into(), q)]);
    // Line 4: the bad address and bad rate; the prefix that parsed still counts (line 5).
    assert_eq!(at(4), vec![("IPv4".into(), q), ("Upload Max Mbps".into(), q)]);
    // Line 5: min > max; its address sits inside c3's prefix: a longer prefix, so allowed.
    assert_eq!(at(5), vec![("Download Min Mbps".into(), q), ("IPv4".into(), w)]);
    assert!(got.iter().any(|d| d.0 == Some(5) && d.3.contains("overlaps 100.64.1.0/24 at line 4")));
    // Line 6: no Circuit ID and an unknown parent.
    assert_eq!(at(6), vec![("Circuit ID".into(), q), ("Parent Node".into(), q)]);
    assert!(got.iter().any(|d| d.0 == Some(6) && d.3.starts_with("the row with no Circuit ID")));
    // Line 7: wrong field count only (its fields are not trusted for cross-checks).
    assert_eq!(at(7), vec![(String::new(), Severity::Error)]);
    // Line 8: a valid circuit inside the rejected row's IPv6 prefix: longest prefix wins.
    assert_eq!(at(8), vec![("IPv6".into(), w)]);
    assert!(got.iter().any(|d| d.0 == Some(8)
        && d.3
            == "2001:db8:1::1 overlaps 2001:db8::/32 at line 5 (circuit 'c7' and circuit 'c4'); \
                the longest prefix wins"));
    assert_eq!(got.len(), 10, "{got:#?}");
    let ids: Vec<&str> = inputs.circuits.iter().map(|c| c.id.0.as_str()).collect();
    assert_eq!(ids, ["c7"]);
    let q_ids: Vec<(&str, usize)> =
        inputs.quarantined.iter().map(|q| (q.circuit_id.as_str(), q.line)).collect();
    assert_eq!(q_ids, [("c1", 2), ("c3", 4), ("c4", 5), ("", 6)]);
}

#[test]
fn load_inputs_fails_only_when_a_file_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("lqos.conf");
    fs::write(&conf, format!("version = \"1.5\"\nlqos_directory = \"{}\"\n", dir.path().display()))
        .unwrap();
    let (config, _) = load_config(&conf).unwrap();
    fs::write(dir.path().join("network.json"), "not json").unwrap();
    assert!(matches!(load_inputs(&config), Err(ConfigError::NotFound { .. })));
    fs::write(dir.path().join("ShapedDevices.csv"), "").unwrap();
    let inputs = load_inputs(&config).unwrap();
    assert!(inputs.has_errors());
}

#[test]
fn writers_replace_files_atomically_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let net_path = dir.path().join("network.json");
    fs::write(&net_path, "old").unwrap();
    let (net, _) = parse_network_str(
        r#"{"A": {"downloadBandwidthMbps": 1150, "children": {"B": {"uploadBandwidthMbps": 2.5}}}}"#,
        "n",
    );
    write_network(&net_path, &net).unwrap();
    let (back, d) = parse_network_str(&fs::read_to_string(&net_path).unwrap(), "n");
    assert!(d.is_empty());
    assert_eq!(back.nodes.len(), 2);
    assert_eq!(back.nodes[1].upload.unwrap().0, 2500);
    let csv_path = dir.path().join("ShapedDevices.csv");
    write_shaped_devices(&csv_path, &[]).unwrap();
    assert!(fs::read_to_string(&csv_path).unwrap().starts_with("Circuit ID,Circuit Name"));
    let leftovers: Vec<_> =
        fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "no temp files left: {leftovers:?}");
    let err = write_atomic(&dir.path().join("missing/x"), b"x").unwrap_err();
    assert!(matches!(err, ConfigError::Write { .. }));
}

#[test]
fn write_atomic_keeps_the_mode_of_the_replaced_file() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("lqos.conf");
    fs::write(&conf, "old").unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o600)).unwrap();
    write_atomic(&conf, b"new").unwrap();
    assert_eq!(fs::read_to_string(&conf).unwrap(), "new");
    assert_eq!(mode(&conf), 0o600);
    // A wider mode is kept too (not replaced by the default).
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o640)).unwrap();
    write_atomic(&conf, b"newer").unwrap();
    assert_eq!(mode(&conf), 0o640);
    // A file that did not exist gets 0644 whatever the umask allows beyond it.
    let fresh = dir.path().join("network.json");
    write_atomic(&fresh, b"{}").unwrap();
    assert_eq!(mode(&fresh), lqos_config::NEW_FILE_MODE);
    assert_eq!(lqos_config::NEW_FILE_MODE, 0o644);
    let leftovers = fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 2, "no temp files left");
}
