//! `libreqos` as an operator uses it: exit codes, every problem reported, dry-run output.

use std::path::{Path, PathBuf};

use clap::Parser;
use libreqos::{Args, Outcome, run};

mod libreqos_inputs;
mod quarantine;

/// The network every test here starts from: Site_A (AP_1) and Site_B.
pub const NETWORK: &str = r#"{
  "Site_A": {"downloadBandwidthMbps": 1000, "uploadBandwidthMbps": 1000,
    "children": {"AP_1": {"downloadBandwidthMbps": 300, "uploadBandwidthMbps": 100}}},
  "Site_B": {"downloadBandwidthMbps": 200, "uploadBandwidthMbps": 200}
}"#;
/// Four good circuits, c1..c4 on lines 2..5.
pub const CSV: &str = "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,Parent Node ID,Anchor Node ID,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment
c1,Alice,d1,Alice router,AP_1,,,,100.64.0.1,,1,1,100,20,
c2,Bob,d2,Bob router,AP_1,,,,\"100.64.0.2, 100.64.1.0/29\",2001:db8:1::/56,1,1,50,10,
c3,Carol,d3,Carol router,Site_B,,,,100.64.0.3,,1,1,150,20,
c4,Dave,d4,Dave router,,,,,100.64.0.4,,1,1,25,5,
";

/// A directory with lqos.conf (from the packaging example), NETWORK and `csv`.
pub fn setup(csv: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/lqos.example.conf"),
    )
    .expect("example conf");
    let conf: String = example
        .lines()
        .map(|l| {
            if l.starts_with("lqos_directory") {
                format!("lqos_directory = \"{}\"", dir.path().display())
            } else if l.starts_with("downlink_bandwidth_mbps") {
                "downlink_bandwidth_mbps = 10000".to_owned()
            } else if l.starts_with("state_directory") {
                format!("state_directory = \"{}/state\"", dir.path().display())
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("lqos.conf"), conf).expect("conf");
    std::fs::write(dir.path().join("network.json"), NETWORK).expect("net");
    std::fs::write(dir.path().join("ShapedDevices.csv"), csv).expect("csv");
    let conf = dir.path().join("lqos.conf");
    (dir, conf)
}

/// Runs libreqos with `--config conf` and `flags`; the exit outcome and stdout.
pub fn cli(conf: &Path, flags: &[&str]) -> (Outcome, String) {
    let mut argv = vec!["libreqos".to_owned(), "--config".into(), conf.display().to_string()];
    argv.extend(flags.iter().map(|s| (*s).to_owned()));
    let args = Args::try_parse_from(argv).expect("args");
    let mut out = Vec::new();
    let code = run(&args, &mut out).unwrap_or(Outcome::CannotRun);
    (code, String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn validate_exits_0_for_valid_inputs() {
    let (_d, conf) = setup(CSV);
    let (code, out) = cli(&conf, &["--validate"]);
    assert_eq!(code, Outcome::Ok, "{out}");
    assert!(out.contains("valid: 3 node(s), 4 circuit(s)"), "{out}");
}

#[test]
fn validate_exits_1_and_prints_every_problem_with_its_line() {
    let bad = format!(
        "{CSV}c5,Eve,d5,Eve router,AP_1,,,,100.64.0.9,,1,1,abc,5,\nc6,Frank,d6,Frank router,AP_1,,,,100.64.0.10,,10,1,5,5,\n,NoId,d7,x,AP_1,,,,100.64.0.7,,1,1,5,5,\n"
    );
    let (_d, conf) = setup(&bad);
    let (code, out) = cli(&conf, &["--validate"]);
    assert_eq!(code, Outcome::Invalid, "{out}");
    assert!(out.contains("ShapedDevices.csv:6: Download Max Mbps"), "{out}");
    assert!(out.contains("ShapedDevices.csv:7: Download Min Mbps"), "{out}");
    assert!(out.contains("ShapedDevices.csv:8: Circuit ID"), "{out}");
}

#[test]
fn unknown_parent_and_duplicate_address_quarantine_and_validate_exits_1() {
    let bad = format!("{CSV}c5,Eve,d5,Eve router,AP_9,,,,100.64.0.1,,1,1,5,5,\n");
    let (_d, conf) = setup(&bad);
    let (code, out) = cli(&conf, &["--validate"]);
    assert_eq!(code, Outcome::Invalid, "{out}");
    assert!(out.contains("AP_9"), "{out}");
    assert!(out.contains("100.64.0.1"), "{out}");
}

#[test]
fn missing_config_exits_2() {
    let args =
        Args::try_parse_from(["libreqos", "--config", "/nonexistent/lqos.conf", "--validate"])
            .expect("args");
    let err = run(&args, &mut Vec::new()).expect_err("cannot run");
    assert!(format!("{err:#}").contains("/nonexistent/lqos.conf"), "{err:#}");
}

#[test]
fn dry_run_json_describes_queues_and_the_full_build() {
    let (_d, conf) = setup(CSV);
    let (code, out) = cli(&conf, &["--dry-run", "--json"]);
    assert_eq!(code, Outcome::Ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(v["queues"].as_u64().expect("queues") >= 1);
    assert_eq!(v["change"]["circuits"], 4);
    assert_eq!(v["compared_with_applied"], false);
    assert_eq!(v["change"]["counts"]["mappings_added"], 6);
}

#[test]
fn show_tc_prints_integer_kbit_rates_and_changes_nothing() {
    let (dir, conf) = setup(&CSV.replace(",1,1,150,20,", ",1,1,1150,20,").replace(
        "\"Site_B\": {\"downloadBandwidthMbps\": 200",
        "\"Site_B\": {\"downloadBandwidthMbps\": 2000",
    ));
    std::fs::write(
        dir.path().join("network.json"),
        NETWORK.replace("200, \"uploadBandwidthMbps\": 200", "2000, \"uploadBandwidthMbps\": 2000"),
    )
    .expect("net");
    let (code, out) = cli(&conf, &["--dry-run", "--show-tc"]);
    assert_eq!(code, Outcome::Ok, "{out}");
    assert!(out.contains("ceil 1150000kbit"), "1150 Mbps must stay 1150 Mbps:\n{out}");
    assert!(!dir.path().join("state/applied_plan.json").exists());
}

#[test]
fn apply_without_lqosd_says_lqosd_is_needed_and_exits_2() {
    let (_d, conf) = setup(CSV);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_libreqos"))
        .args(["--config", &conf.display().to_string()])
        .env("LQOS_BUS", dir.path().join("bus"))
        .output()
        .expect("run libreqos");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs lqosd") && err.contains("bus"), "{err}");
}

/// Issue 9: `--migrate-config OLD NEW` writes a 1.5 file and keeps an existing NEW unless
/// `--force`.
#[test]
fn migrate_config_writes_new_and_keeps_an_existing_one_without_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = dir.path().join("old.conf");
    let new = dir.path().join("new.conf");
    std::fs::write(
        &old,
        "lqos_directory = '/x'\n[bridge]\nuse_xdp_bridge = true\ninterface_mapping = [\
         { name = \"eth1\", redirect_to = \"eth2\", scan_vlans = false }]\nvlan_mapping = []\n",
    )
    .expect("old");
    let argv = |force: bool| {
        let mut v = vec!["libreqos", "--migrate-config"];
        let (o, n) = (old.to_str().expect("utf8"), new.to_str().expect("utf8"));
        v.extend([o, n]);
        if force {
            v.push("--force");
        }
        Args::try_parse_from(v).expect("args")
    };
    let mut out = Vec::new();
    assert_eq!(run(&argv(false), &mut out).expect("migrate"), Outcome::Ok);
    assert!(String::from_utf8_lossy(&out).contains("to_internet = \"eth2\""));
    assert!(lqos_config::load_config(&new).is_ok());
    std::fs::write(&new, "mine").expect("new");
    assert!(run(&argv(false), &mut Vec::new()).is_err());
    assert_eq!(std::fs::read_to_string(&new).expect("read"), "mine");
    assert_eq!(run(&argv(true), &mut Vec::new()).expect("force"), Outcome::Ok);
    assert!(Args::try_parse_from(["libreqos", "--force"]).is_err());
}
