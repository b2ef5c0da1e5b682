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

// ---------------------------------------------------------------------------------------------
// LibreQoS's own example inputs (tests/fixtures/libreqos-inputs, copied from LibreQoS 455bc13b):
// each with its expected outcome. Issue 9.
// ---------------------------------------------------------------------------------------------

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/libreqos-inputs").join(name)
}

/// (line, field) of every warning, errors refused.
fn warned(d: &[lqos_config::Diagnostic]) -> Vec<(Option<usize>, String)> {
    assert!(d.iter().all(|d| !d.is_error()), "{d:#?}");
    d.iter().map(|d| (d.line, d.field.clone().unwrap_or_default())).collect()
}

/// The LibreQoS 1.5 example loads unchanged: every `""` is "not set", and each key or section
/// lqos does not implement is warned once with its line.
#[test]
fn libreqos_v15_example_conf_loads_unchanged_with_one_warning_per_unused_key() {
    let (c, d) = load_config(&fixture("lqos.conf.v15-example.toml")).unwrap();
    assert_eq!(
        warned(&d),
        vec![
            (Some(6), "packet_capture_time".into()),
            (Some(8), "display_cobrand".into()),
            (Some(9), "enable_circuit_heatmaps".into()),
            (Some(10), "enable_site_heatmaps".into()),
            (Some(11), "enable_asn_heatmaps".into()),
            (Some(53), "queues.sudo".into()),
            (Some(57), "treeguard".into()),
            (Some(99), "long_term_stats".into()),
            (Some(105), "local_api".into()),
            (Some(123), "integration_common.topology_attachment_health".into()),
            (Some(143), "visp_integration".into()),
            (Some(157), "topology.queue_auto_virtualize_threshold_mbps".into()),
            (Some(176), "powercode_integration".into()),
            (Some(181), "sonar_integration".into()),
            (Some(192), "influxdb".into()),
        ]
    );
    assert!(d.iter().all(|d| d.message.contains("has no effect in lqos")), "{d:#?}");
    let u = c.uisp.unwrap();
    assert_eq!(u.strategy, lqos_config::conf::DEFAULT_UISP_STRATEGY); // strategy = ""
    assert_eq!(u.suspended_strategy, lqos_config::SuspendedStrategy::None);
    assert!(matches!(
        c.interfaces,
        Some(lqos_config::InterfaceMode::Bridge { ref to_internet, .. }) if to_internet.0 == "eth0"
    ));
    assert_eq!(c.topology.compile_mode, Some(lqos_config::TopologyStrategy::ApSite));
}

#[test]
fn libreqos_shipped_lqos_example_loads_unchanged() {
    let (c, d) = load_config(&fixture("lqos.example")).unwrap();
    let fields: Vec<String> = warned(&d).into_iter().map(|(_, f)| f).collect();
    for f in [
        "packet_capture_time",
        "queues.sudo",
        "queues.lazy_queues",
        "queues.lazy_expire_seconds",
        "long_term_stats",
        "flows.flow_timeout_seconds",
        "stormguard",
    ] {
        assert_eq!(fields.iter().filter(|x| *x == f).count(), 1, "{f} in {fields:?}");
    }
    assert_eq!(c.queues.downlink.0, 100_000_000);
    assert_eq!(c.ip_ranges.ignore_subnets.len(), 1);
}

/// A LibreQoS 1.4 /etc/lqos.conf (no version; interfaces lived in ispConfig.py and
/// `[bridge] interface_mapping`) is refused with what to add.
const LQOS_CONF_14: &str = "lqos_directory = '/opt/libreqos/src'\nqueue_check_period_ms = 1000\n\
    node_id = \"abc\"\n\n[usage_stats]\nsend_anonymous = true\n\n[tuning]\nstop_irq_balance = true\n\
    netdev_budget_usecs = 8000\nnetdev_budget_packets = 300\nrx_usecs = 8\ntx_usecs = 8\n\
    disable_rxvlan = true\ndisable_txvlan = true\ndisable_offload = [ \"gso\", \"tso\", \"lro\", \"sg\", \"gro\" ]\n\n\
    [bridge]\nuse_xdp_bridge = true\ninterface_mapping = [\n  { name = \"eth1\", redirect_to = \"eth2\", scan_vlans = false },\n  \
    { name = \"eth2\", redirect_to = \"eth1\", scan_vlans = false }\n]\nvlan_mapping = []\n";

#[test]
fn libreqos_14_config_is_refused_saying_what_to_add() {
    for text in [LQOS_CONF_14, "lqos_directory = '/opt/libreqos/src'\nnode_id = \"x\"\n"] {
        let (_, d) = lqos_config::parse_config_str(text, Path::new("lqos.conf"));
        let e = crate::only_error(&d);
        assert!(e.message.contains("LibreQoS 1.4 lqos.conf"), "{e}");
        let hint = e.hint.as_deref().unwrap();
        assert!(hint.contains("version = \"1.5\"") && hint.contains("[bridge]"), "{hint}");
        assert!(hint.contains("to_internet") && hint.contains("[single_interface]"), "{hint}");
        assert!(hint.contains("--migrate-config"), "{hint}");
    }
    let (_, d) = lqos_config::parse_config_str(LQOS_CONF_14, Path::new("lqos.conf"));
    assert_eq!(crate::only_error(&d).line, Some(18)); // the [bridge] header
}

#[test]
fn migrate_config_writes_a_15_file_that_loads_and_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("lqos.conf.14");
    let new = dir.path().join("lqos.conf");
    fs::write(&old, LQOS_CONF_14).unwrap();
    let m = lqos_config::migrate::migrate_file(&old, &new, false).unwrap();
    assert!(m.notes[0].contains("to_internet = \"eth2\""), "{:?}", m.notes);
    let (c, d) = load_config(&new).unwrap();
    assert!(d.iter().all(|d| !d.is_error()), "{d:#?}");
    let Some(lqos_config::InterfaceMode::Bridge {
        to_internet, to_network, use_xdp_bridge, ..
    }) = c.interfaces
    else {
        panic!("no bridge")
    };
    assert_eq!(
        (to_internet.0.as_str(), to_network.0.as_str(), use_xdp_bridge),
        ("eth2", "eth1", true)
    );
    assert!(c.tuning.stop_irq_balance);
    let text = fs::read_to_string(&new).unwrap();
    assert!(text.starts_with("version = \"1.5\""), "{text}");
    assert!(!text.contains("usage_stats") && !text.contains("interface_mapping"), "{text}");

    // NEW exists: refused without --force, and the file is untouched.
    fs::write(&new, "keep me").unwrap();
    let e = lqos_config::migrate::migrate_file(&old, &new, false).unwrap_err();
    assert!(matches!(e, lqos_config::migrate::MigrateError::Exists { .. }), "{e}");
    assert_eq!(fs::read_to_string(&new).unwrap(), "keep me");
    // With --force it is replaced atomically.
    lqos_config::migrate::migrate_file(&old, &new, true).unwrap();
    assert!(fs::read_to_string(&new).unwrap().contains("to_network = \"eth1\""));
    // No temporary files are left behind.
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn migrate_config_reads_ispconfig_py_for_a_stick_and_the_queues() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("lqos.conf");
    fs::write(&old, "lqos_directory = '/nonexistent'\nnode_id = \"x\"\n").unwrap();
    fs::write(
        dir.path().join("ispConfig.py"),
        "interfaceA = 'ens19'\ninterfaceB = 'ens20'\nOnAStick = True\nStickVlanA = 10\n\
         StickVlanB = 20\nsqm = 'cake diffserv4'\nupstreamBandwidthCapacityDownloadMbps = 2000\n\
         upstreamBandwidthCapacityUploadMbps = 500\nenableActualShellCommands = True\n\
         allowedSubnets = ['100.64.0.0/10']\n",
    )
    .unwrap();
    let m = lqos_config::migrate::migrate_str(
        &fs::read_to_string(&old).unwrap(),
        Some(&fs::read_to_string(dir.path().join("ispConfig.py")).unwrap()),
        &old,
    )
    .unwrap();
    let (c, d) = lqos_config::parse_config_str(&m.text, &old);
    assert!(d.iter().all(|d| !d.is_error()), "{d:#?}\n{}", m.text);
    let c = c.unwrap();
    assert!(matches!(
        c.interfaces,
        Some(lqos_config::InterfaceMode::Stick { internet_vlan: 10, network_vlan: 20, .. })
    ));
    assert_eq!((c.queues.downlink.0, c.queues.uplink.0), (2_000_000, 500_000));
    assert!(!c.queues.dry_run);
    assert_eq!(c.ip_ranges.allow_subnets.len(), 1);
    // A current file is not "migrated" again.
    let e = lqos_config::migrate::migrate_str(&m.text, None, &old).unwrap_err();
    assert!(matches!(e, lqos_config::migrate::MigrateError::AlreadyCurrent { .. }), "{e}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    // Invariant: whatever bytes a file holds, decoding and every parser return (diagnostics,
    // never a panic), and decoding never fails.
    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
        let (text, _) = lqos_config::decode_text(&bytes, "f");
        let _ = lqos_config::parse_config_str(&text, Path::new("lqos.conf"));
        let _ = lqos_config::parse_shaped_devices(&text, "ShapedDevices.csv");
        let _ = parse_network_str(&text, "network.json");
        let _ = lqos_config::parse_sqm_tokens(&text);
        let _ = lqos_config::parse_sqm_override(&text);
        let _ = lqos_config::migrate::migrate_str(&text, Some(&text), Path::new("old.conf"));
    }

    // Invariant: the same with bytes shaped like the real files (keywords, separators,
    // quotes, numbers), which reach deeper into each parser.
    #[test]
    fn parsers_never_panic_on_file_shaped_noise(
        parts in proptest::collection::vec(proptest::prop_oneof![
            proptest::prelude::Just("[bridge]\n".to_string()),
            proptest::prelude::Just("[queues]\ndefault_sqm = \"".to_string()),
            proptest::prelude::Just("cake ".to_string()),
            proptest::prelude::Just("overhead ".to_string()),
            proptest::prelude::Just("rtt ".to_string()),
            proptest::prelude::Just("fq_codel memory_limit ".to_string()),
            proptest::prelude::Just("\"children\": {".to_string()),
            proptest::prelude::Just("{\"A\": {\"virtual\": ".to_string()),
            proptest::prelude::Just("\"downloadBandwidthMbps\": \"".to_string()),
            proptest::prelude::Just("Circuit ID,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,sqm\n".to_string()),
            proptest::prelude::Just(",".to_string()),
            proptest::prelude::Just("\"".to_string()),
            proptest::prelude::Just("\r\n".to_string()),
            proptest::prelude::Just("}".to_string()),
            "-?[0-9]{1,12}(\\.[0-9]{1,3})?(e[0-9]{1,3})?(mbit|ms|us|kb|gbit)?",
            "[a-z_/-]{1,12}",
        ], 0..60)
    ) {
        let text: String = parts.concat();
        let _ = lqos_config::parse_config_str(&text, Path::new("lqos.conf"));
        let _ = lqos_config::parse_shaped_devices(&text, "ShapedDevices.csv");
        let _ = parse_network_str(&text, "network.json");
        let _ = lqos_config::parse_sqm_tokens(&text);
        let _ = lqos_config::parse_sqm_override(&text);
    }
}

/// A Windows-1252 ShapedDevices.csv and a BOM+CRLF network.json on disk: load_inputs reads
/// both, warns once about the encoding (naming the file), and plans every circuit.
#[test]
fn load_inputs_reads_cp1252_csv_and_bom_crlf_network_json() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("lqos.conf");
    fs::write(
        &conf,
        format!(
            "version = \"1.5\"\nlqos_directory = \"{}\"\n[bridge]\nto_internet = \"eth1\"\nto_network = \"eth2\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let (config, _) = load_config(&conf).unwrap();
    fs::write(
        config.network_json_path(),
        "\u{feff}{\r\n  \"Tower\": {\"downloadBandwidthMbps\": \"500\", \"uploadBandwidthMbps\": 100}\r\n}\r\n",
    )
    .unwrap();
    let mut csv = b"Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,MAC,IPv4,IPv6,\
Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment\r\n"
        .to_vec();
    csv.extend_from_slice(b"c1,Fran\xe7ois,d1,Router,Tower,,100.64.0.1,,1,1,10,10\r\n");
    fs::write(config.shaped_devices_path(), csv).unwrap();
    let inputs = load_inputs(&config).unwrap();
    assert!(!inputs.has_errors(), "{:#?}", inputs.diagnostics);
    let enc: Vec<_> =
        inputs.diagnostics.iter().filter(|d| d.message.contains("Windows-1252")).collect();
    assert_eq!(enc.len(), 1, "{:#?}", inputs.diagnostics);
    assert!(enc[0].file.ends_with("ShapedDevices.csv"));
    assert_eq!(inputs.circuits[0].name, "François");
    assert_eq!(inputs.network.nodes[0].download.unwrap().0, 500_000);
    // The short row (no Comment) is the other warning, at line 2.
    let short: Vec<_> =
        inputs.diagnostics.iter().filter(|d| d.message.contains("lines 2;")).collect();
    assert_eq!(short.len(), 1, "{:#?}", inputs.diagnostics);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    // Invariant: any CAKE or fq_codel option list lqos accepts, printed back with
    // `LeafQdisc::tc_args`, parses to the same parameters (what lqos shows as tc words is
    // what it sends).
    #[test]
    fn sqm_words_round_trip_through_tc_args(
        cake in proptest::prelude::any::<bool>(),
        words in proptest::collection::vec(proptest::sample::select(vec![
            "bandwidth 100mbit", "unlimited", "autorate-ingress", "rtt 20ms", "internet",
            "besteffort", "diffserv3", "diffserv4", "diffserv8", "precedence", "flowblind",
            "srchost", "dsthost", "hosts", "flows", "dual-srchost", "dual-dsthost",
            "triple-isolate", "nat", "nonat", "wash", "nowash", "split-gso", "no-split-gso",
            "ack-filter", "ack-filter-aggressive", "no-ack-filter", "memlimit 32mb",
            "fwmark 0xff", "ingress", "egress", "atm", "noatm", "ptm", "raw", "conservative",
            "ethernet", "docsis", "ether-vlan", "pppoe-ptm", "overhead -10", "mpu 64",
        ]), 0..8),
        fq in proptest::collection::vec(proptest::sample::select(vec![
            "limit 1000", "flows 1024", "quantum 300", "target 5ms", "interval 100ms", "ecn",
            "noecn", "ce_threshold 2ms", "memory_limit 32mb", "drop_batch 64",
        ]), 0..6),
    ) {
        let text = if cake { format!("cake {}", words.join(" ")) } else { format!("fq_codel {}", fq.join(" ")) };
        if let Ok(sqm) = lqos_config::parse_sqm_tokens(&text) {
            let leaf = sqm.leaf.unwrap();
            let again = lqos_config::parse_sqm_tokens(&leaf.tc_args()).unwrap().leaf;
            proptest::prop_assert_eq!(again, Some(leaf), "{}", text);
        }
    }
}

#[test]
#[expect(clippy::print_stderr, reason = "says why the root-only test was skipped")]
fn write_atomic_keeps_the_owner_of_the_replaced_file_when_root() {
    use std::os::unix::fs::MetadataExt;
    if !is_root() {
        eprintln!("skipped: only root may give a file away");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("lqos.conf");
    fs::write(&conf, "old").unwrap();
    // root:lqos 0640 as the package installs it (uid/gid need not exist).
    std::os::unix::fs::chown(&conf, Some(0), Some(4242)).unwrap();
    write_atomic(&conf, b"new").unwrap();
    let m = fs::metadata(&conf).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 4242), "group kept, so group members can still read it");
    assert_eq!(fs::read_to_string(&conf).unwrap(), "new");
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.to_owned()))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
}

/// The directory refuses new entries (immutable, as a read-only /etc under a systemd sandbox
/// does) while the file itself stays writable: the file is rewritten in place.
#[test]
#[expect(clippy::print_stderr, reason = "says why the root-only part was skipped")]
fn write_replacing_rewrites_in_place_when_the_directory_refuses_a_temp_file() {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("lqos.conf");
    fs::write(&conf, "old contents, longer than the new ones").unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o640)).unwrap();
    // Without the fallback: a missing file is not created in place.
    let missing = dir.path().join("missing/x.conf");
    assert!(lqos_config::write_replacing(&missing, b"x").is_err());
    let chattr = |flag: &str| {
        Command::new("chattr").arg(flag).arg(dir.path()).status().is_ok_and(|s| s.success())
    };
    if !is_root() || !chattr("+i") {
        eprintln!("skipped: needs root and chattr on this filesystem");
        return;
    }
    struct Mutable<'a>(&'a Path);
    impl Drop for Mutable<'_> {
        fn drop(&mut self) {
            let _ = Command::new("chattr").arg("-i").arg(self.0).status();
        }
    }
    let _undo = Mutable(dir.path());
    let atomic = write_atomic(&conf, b"atomic");
    assert!(atomic.is_err(), "the immutable directory must refuse the temporary file");
    lqos_config::write_replacing(&conf, b"new").unwrap();
    assert_eq!(fs::read_to_string(&conf).unwrap(), "new", "truncated, not just overwritten");
    assert_eq!(fs::metadata(&conf).unwrap().permissions().mode() & 0o777, 0o640);
    // A file that is not there cannot be rewritten in place either: the error names both.
    let gone = dir.path().join("nothere.conf");
    let err = lqos_config::write_replacing(&gone, b"x").unwrap_err();
    let ConfigError::Write { source, .. } = &err else { panic!("{err:?}") };
    assert!(source.to_string().contains("atomic replace failed too"), "{source}");
    // A symlink is not followed by the in-place rewrite.
    drop(_undo);
    let target = dir.path().join("target");
    fs::write(&target, "target").unwrap();
    let link = dir.path().join("link.conf");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert!(chattr("+i"));
    let _undo = Mutable(dir.path());
    assert!(lqos_config::write_replacing(&link, b"evil").is_err());
    assert_eq!(fs::read_to_string(&target).unwrap(), "target");
}
