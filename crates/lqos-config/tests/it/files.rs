use std::fs;
use std::path::Path;

use lqos_config::{
    ConfigError, config_path_from_env, load_config, load_inputs, parse_network_str, write_atomic,
    write_network, write_shaped_devices,
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
    assert_eq!(inputs.circuits.len(), 2);
    assert!(inputs.has_errors());
    assert_eq!(inputs.diagnostics.len(), 1);
    assert_eq!(inputs.diagnostics[0].line, Some(3));
    assert!(inputs.diagnostics[0].file.ends_with("ShapedDevices.csv"));
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
