//! issue 10: `ipv6_with_mikrotik` / `use_mikrotik_ipv6`: IPv6 delegations looked up on
//! MikroTik routers (RouterOS REST API, mocked on 127.0.0.1) and merged into the import.

use std::time::Duration;

use lqos_integrations::mock::{MockCrm, Reply};
use lqos_integrations::{Crm, PublishOptions, publish, pull_and_import};

use crate::netzur::{netzur_section, serve_netzur};
use crate::{config, fast_http, fixture};

const PASSWORD: &str = "Sup3r-s3cret";

/// A RouterOS REST endpoint: Basic `api:<PASSWORD>`.
fn serve_routeros() -> MockCrm {
    let m = MockCrm::start().unwrap();
    // base64("api:Sup3r-s3cret")
    m.require_header("Authorization", "Basic YXBpOlN1cDNyLXMzY3JldA==");
    m.set(
        "/rest/ip/arp",
        vec![Reply::json(
            r#"[{".id":"*1","address":"100.64.2.20","mac-address":"02:00:00:00:00:20","interface":"bridge"},
                {".id":"*2","address":"100.64.2.30","mac-address":"02:00:00:00:00:30","interface":"bridge"}]"#,
        )],
    );
    m.set(
        "/rest/ip/dhcp-server/lease",
        vec![Reply::json(
            r#"[{".id":"*5","address":"100.64.2.10","mac-address":"AA:BB:CC:00:11:22"}]"#,
        )],
    );
    m.set(
        "/rest/ipv6/dhcp-server/binding",
        vec![Reply::json(
            r#"[{".id":"*7","address":"2001:db8:200::/56","duid":"0x00030001020000000020","server":"dhcp6"}]"#,
        )],
    );
    m.set(
        "/rest/ipv6/neighbor",
        vec![Reply::json(
            r#"[{".id":"*9","address":"2001:db8:1::30","mac-address":"02:00:00:00:00:30"},
                {".id":"*a","address":"fe80::20","mac-address":"02:00:00:00:00:20"}]"#,
        )],
    );
    m
}

fn routers_toml(dir: &std::path::Path, routers: &[(&str, u16, &str)]) -> std::path::PathBuf {
    let mut text = String::from("version = 1\n");
    for (name, port, password) in routers {
        text.push_str(&format!(
            "[[router]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\nusername = \"api\"\npassword = \"{password}\"\nuse_ssl = false\nplaintext_login = true\n"
        ));
    }
    let p = dir.join("mikrotik_ipv6.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn port_of(m: &MockCrm) -> u16 {
    m.url().rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn mikrotik_ipv6_is_merged_and_a_dead_router_costs_only_its_own_entries() {
    let crm = serve_netzur(vec![Reply::json(fixture("netzur", "libreqos.json"))]);
    let ros = serve_routeros();
    let dir = tempfile::tempdir().unwrap();
    let path =
        routers_toml(dir.path(), &[("edge", port_of(&ros), PASSWORD), ("dead", 9, PASSWORD)]);
    // UISP's ipv6_with_mikrotik turns it on for every integration, as in LibreQoS.
    let section = netzur_section(&crm.url())
        .replace("enable_uisp = false", "enable_uisp = false\nipv6_with_mikrotik = true")
        + &format!("[mikrotik_ipv6]\nconfig_path = \"{}\"\n", path.display());
    let cfg = config(dir.path(), &section);
    assert!(cfg.wants_mikrotik_ipv6());
    let imp = pull_and_import(Crm::Netzur, &cfg, &fast_http()).await.unwrap();
    assert_eq!(ros.hits("/rest/ip/arp"), 1);
    publish(&cfg, &imp, PublishOptions::default()).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("ShapedDevices.csv")).unwrap();
    // Bob: prefix from the DHCPv6 binding (MAC in the DUID) paired with his ARP entry.
    assert!(csv.contains("netzur_1002,Bob Roe,netzur_1002_device,Bob Roe_device,South Zone,netzur:zone:8,,,100.64.2.20/32,2001:db8:200::/56,"), "{csv}");
    // Lost Soul: neighbour address; link-local entries are ignored.
    assert!(csv.contains(",100.64.2.30/32,2001:db8:1::30/128,"), "{csv}");
    // Jane has a DHCP lease but no IPv6 answer: her own prefix stays alone.
    assert!(csv.contains(",\"100.64.2.10/32, 100.64.2.11/32\",2001:db8:20::/56,"), "{csv}");
    let w: Vec<String> = imp.warnings.iter().map(ToString::to_string).collect();
    assert!(
        w.iter().any(|x| x
            .contains("router 'dead' (127.0.0.1): cannot reach http://127.0.0.1:9/rest/ip/arp")),
        "{w:#?}"
    );
    assert!(w.iter().all(|x| !x.contains(PASSWORD)), "{w:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mikrotik_wrong_password_and_timeout_are_warnings_without_the_password() {
    let crm = serve_netzur(vec![Reply::json(fixture("netzur", "libreqos.json"))]);
    let ros = serve_routeros();
    let slow = MockCrm::start().unwrap();
    slow.set("/rest/ip/arp", vec![Reply::json("[]").delayed(Duration::from_secs(5))]);
    let dir = tempfile::tempdir().unwrap();
    let path = routers_toml(
        dir.path(),
        &[("edge", port_of(&ros), "wrong-password"), ("slow", port_of(&slow), PASSWORD)],
    );
    let mut cfg = config(dir.path(), &netzur_section(&crm.url()));
    cfg.mikrotik_ipv6.use_mikrotik_ipv6 = true;
    cfg.mikrotik_ipv6.config_path = path;
    let mut http = fast_http();
    http.timeout = Duration::from_millis(500);
    let imp = pull_and_import(Crm::Netzur, &cfg, &http).await.unwrap();
    let w: Vec<String> = imp.warnings.iter().map(ToString::to_string).collect();
    assert!(
        w.iter().any(|x| x
            .contains("router 'edge' (127.0.0.1): rejected the username or password (HTTP 401)")),
        "{w:#?}"
    );
    assert!(
        w.iter().any(|x| x.contains("router 'slow' (127.0.0.1): no answer within 1 s")),
        "{w:#?}"
    );
    assert!(w.iter().all(|x| !x.contains("wrong-password") && !x.contains(PASSWORD)), "{w:#?}");
    let bob = imp.circuits.iter().find(|c| c.id.0 == "netzur_1002").unwrap();
    assert!(bob.devices[0].ipv6.is_empty());

    // A missing credentials file is a warning too; the import goes on.
    cfg.mikrotik_ipv6.config_path = dir.path().join("absent.toml");
    let imp = pull_and_import(Crm::Netzur, &cfg, &fast_http()).await.unwrap();
    assert!(imp.warnings.iter().any(|w| w.message.contains("cannot read the router list")));
}
