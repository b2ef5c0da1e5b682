//! lqos-integrations integration tests: mock CRMs on 127.0.0.1 serving recorded fixtures.
#![allow(clippy::unwrap_used, reason = "tests")]

mod failures;
mod mikrotik;
mod netzur;
mod overrides;
mod splynx;
mod uisp;

use std::path::{Path, PathBuf};
use std::time::Duration;

use lqos_config::{Config, has_errors, parse_config_str};
use lqos_integrations::HttpOptions;

/// A configuration whose `lqos_directory` is `dir`, with `extra` TOML appended.
pub fn config(dir: &Path, extra: &str) -> Config {
    let text = format!(
        r#"version = "1.5"
lqos_directory = "{}"
[bridge]
to_internet = "eth1"
to_network = "eth2"
[queues]
downlink_bandwidth_mbps = 2000
uplink_bandwidth_mbps = 1000
generated_pn_download_mbps = 1000
generated_pn_upload_mbps = 1000
[ip_ranges]
allow_subnets = ["100.64.0.0/10", "10.0.0.0/8", "2001:db8::/32"]
ignore_subnets = ["192.168.0.0/16"]
[integration_common]
queue_refresh_interval_mins = 30
max_shrink_ratio = 0.5
{extra}
"#,
        dir.display()
    );
    let (cfg, diags) = parse_config_str(&text, Path::new("/test/lqos.conf"));
    assert!(!has_errors(&diags), "{diags:#?}");
    cfg.unwrap()
}

/// Fast HTTP options for tests.
pub fn fast_http() -> HttpOptions {
    HttpOptions {
        timeout: Duration::from_secs(2),
        attempts: 3,
        backoff: Duration::from_millis(50),
        ..Default::default()
    }
}

/// `tests/fixtures/<crm>`.
pub fn fixture_dir(crm: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(crm)
}

/// A fixture file as text.
pub fn fixture(crm: &str, name: &str) -> String {
    std::fs::read_to_string(fixture_dir(crm).join(name)).unwrap()
}

/// Compares the published files with `fixtures/<crm>/<case>/`. With `LQOS_UPDATE_EXPECTED=1`
/// the expected files are (re)written instead.
pub fn assert_files(dir: &Path, crm: &str, case: &str) {
    let expected_dir = fixture_dir(crm).join(case);
    for name in ["network.json", "ShapedDevices.csv"] {
        let got = std::fs::read_to_string(dir.join(name)).unwrap();
        if std::env::var_os("LQOS_UPDATE_EXPECTED").is_some() {
            std::fs::create_dir_all(&expected_dir).unwrap();
            std::fs::write(expected_dir.join(name), &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(expected_dir.join(name)).unwrap();
        assert_eq!(got, want, "{crm}/{case}/{name} differs");
    }
}

/// Writes "last good" files into `dir` and returns their contents.
pub fn seed_files(dir: &Path, circuits: usize) -> (String, String) {
    let net = "{\n  \"Old Site\": {\n    \"downloadBandwidthMbps\": 100,\n    \"uploadBandwidthMbps\": 100\n  }\n}\n".to_string();
    let mut csv = String::from(
        "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment\n",
    );
    for i in 0..circuits {
        csv.push_str(&format!(
            "old{i},Old {i},od{i},Dev {i},Old Site,,100.99.0.{},,1,1,10,10,\n",
            i + 1
        ));
    }
    std::fs::write(dir.join("network.json"), &net).unwrap();
    std::fs::write(dir.join("ShapedDevices.csv"), &csv).unwrap();
    (net, csv)
}

/// The seeded files are still there, untouched, and no backup was made.
pub fn assert_unchanged(dir: &Path, seeded: &(String, String)) {
    assert_eq!(std::fs::read_to_string(dir.join("network.json")).unwrap(), seeded.0);
    assert_eq!(std::fs::read_to_string(dir.join("ShapedDevices.csv")).unwrap(), seeded.1);
    assert!(!dir.join("network.json.bak").exists());
}
