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
    assert!(imp.warnings.iter().any(|w| w.message.contains("absent.toml does not exist")));

    // Without the TOML file, LibreQoS's older mikrotikDHCPRouterList.csv is read.
    std::fs::write(
        dir.path().join("mikrotikDHCPRouterList.csv"),
        format!(
            "Router Name,IP,API Username,API Password,API Port\nedge,127.0.0.1,api,{PASSWORD},{}\n",
            port_of(&ros)
        ),
    )
    .unwrap();
    let imp = pull_and_import(Crm::Netzur, &cfg, &fast_http()).await.unwrap();
    let bob = imp.circuits.iter().find(|c| c.id.0 == "netzur_1002").unwrap();
    assert_eq!(bob.devices[0].ipv6, ["2001:db8:200::/56".parse().unwrap()]);
}

/// A RouterOS REST endpoint over TLS with a self-signed certificate (made with `openssl` at
/// test time): HTTP/1.1 by hand, one request per connection, served by the test's runtime.
/// Returns its port.
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
async fn tls_router(dir: &std::path::Path) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    if !made.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: openssl cannot make a test certificate");
        return None;
    }
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&cert).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let authorized = head.contains("authorization: basic yxbpoln1cdnylxmzy3jlda==");
                let body = match path.as_str() {
                    "/rest/ip/arp" => {
                        r#"[{"address":"100.64.2.20","mac-address":"02:00:00:00:00:20"}]"#
                    }
                    "/rest/ipv6/dhcp-server/binding" => {
                        r#"[{"address":"2001:db8:200::/56","duid":"0x00030001020000000020"}]"#
                    }
                    _ => "[]",
                };
                let status = if authorized { "200 OK" } else { "401 Unauthorized" };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Some(port)
}

/// `use_ssl = true`: the REST API over TLS; RouterOS's self-signed certificate is accepted as
/// LibreQoS does, unless `verify_tls = true` asks for a trusted one.
#[tokio::test(flavor = "multi_thread")]
async fn mikrotik_over_tls_accepts_self_signed_unless_verify_tls() {
    let dir = tempfile::tempdir().unwrap();
    let Some(port) = tls_router(dir.path()).await else { return };
    let crm = serve_netzur(vec![Reply::json(fixture("netzur", "libreqos.json"))]);
    let toml = |verify: bool| {
        format!(
            "[[router]]\nname = \"tls\"\nhost = \"127.0.0.1\"\nport = {}\nusername = \"api\"\npassword = \"{PASSWORD}\"\nuse_ssl = true\nverify_tls = {verify}\n",
            port
        )
    };
    let path = dir.path().join("routers.toml");
    std::fs::write(&path, toml(false)).unwrap();
    let mut cfg = config(dir.path(), &netzur_section(&crm.url()));
    cfg.mikrotik_ipv6.use_mikrotik_ipv6 = true;
    cfg.mikrotik_ipv6.config_path = path.clone();
    let imp = pull_and_import(Crm::Netzur, &cfg, &fast_http()).await.unwrap();
    let bob = imp.circuits.iter().find(|c| c.id.0 == "netzur_1002").unwrap();
    assert_eq!(bob.devices[0].ipv6, ["2001:db8:200::/56".parse().unwrap()], "{:#?}", imp.warnings);

    std::fs::write(&path, toml(true)).unwrap();
    let imp = pull_and_import(Crm::Netzur, &cfg, &fast_http()).await.unwrap();
    let bob = imp.circuits.iter().find(|c| c.id.0 == "netzur_1002").unwrap();
    assert!(bob.devices[0].ipv6.is_empty());
    let w: Vec<String> = imp.warnings.iter().map(ToString::to_string).collect();
    assert!(
        w.iter().any(|x| x.contains(&format!(
            "router 'tls' (127.0.0.1): cannot reach https://127.0.0.1:{}/rest/ip/arp",
            port
        ))),
        "{w:#?}"
    );
    assert!(w.iter().all(|x| !x.contains(PASSWORD)), "{w:#?}");
}
