//! Shared fixtures for lqosd's unit tests: inputs on disk and a config pointing at them.

use lqos_config::Config;
use lqos_plan::HostFacts;
use lqos_plan::testkit::config_bridge;

pub const NETWORK: &str = r#"{"Site_A": {"downloadBandwidthMbps": 1000, "uploadBandwidthMbps": 1000,
    "children": {"AP_1": {"downloadBandwidthMbps": 300, "uploadBandwidthMbps": 100}}}}"#;
pub const HEADER: &str = "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,Parent Node ID,Anchor Node ID,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment\n";
pub const FACTS: HostFacts = HostFacts { cpus: 2, download_tx_queues: 2, upload_tx_queues: 2 };
pub const TWO: &str =
    "c1,Alice,d1,r1,AP_1,,,,100.64.0.1,,1,1,50,10,\nc2,Bob,d2,r2,Site_A,,,,100.64.0.2,,1,1,20,5,\n";

/// Writes network.json and a ShapedDevices.csv with `rows` into a temp dir.
pub fn setup(rows: &str) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("network.json"), NETWORK).expect("write");
    std::fs::write(dir.path().join("ShapedDevices.csv"), format!("{HEADER}{rows}")).expect("write");
    let mut config = config_bridge(1000, 1000);
    config.lqos_directory = dir.path().to_owned();
    config.state_directory = dir.path().join("state");
    (dir, config)
}
