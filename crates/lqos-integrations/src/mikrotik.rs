//! IPv6 enrichment from MikroTik routers (`[integration_common] use_mikrotik_ipv6` or UISP's
//! `ipv6_with_mikrotik`): each router in the credentials file (`[mikrotik_ipv6] config_path`,
//! LibreQoS's `mikrotik_ipv6.toml`: `[[router]] name, host, port, username, password,
//! use_ssl`; when it is missing, the older `mikrotikDHCPRouterList.csv` in `lqos_directory`)
//! is asked over the RouterOS REST API (v7.1+, `GET /rest/...` with Basic auth, over
//! TLS when `use_ssl`, plain HTTP otherwise) for its ARP table, DHCPv4 leases, DHCPv6 bindings
//! and IPv6 neighbours. [`build_map`] pairs the IPv4 and the IPv6 address or delegated prefix
//! each MAC address holds (LibreQoS's `mikrotikFindIPv6.py` rules: DHCP beats neighbour beats
//! ARP, a delegated prefix beats a host address, link-local is ignored, a MAC with two
//! different answers of the same rank is ambiguous and skipped), and [`merge`] adds the IPv6
//! to every device holding that IPv4.
//!
//! Failure rule: a router that cannot be reached or answers badly only costs its own entries
//! (a warning names the router and the cause); the import goes on, as in LibreQoS. Passwords
//! are never logged or put in a message: [`Router`]'s `Debug` hides them and requests carry
//! them only in the `Authorization` header.
//!
//! lqos speaks REST where LibreQoS speaks the binary API (port 8728/8729), so a `port` of 8728
//! or 8729 is taken for the www / www-ssl service's default (80 / 443), with a warning.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnet::IpNet;
use lqos_config::{Config, Diagnostic};
use serde::Deserialize;
use serde_json::Value;
use tracing::{debug, info};

use crate::Import;
use crate::common::{crm_address, crm_prefix, is_unshapeable};
use crate::http::HttpOptions;

const LABEL: &str = "mikrotik_ipv6";
/// Largest table read from a router (64 MiB).
pub const MAX_ROUTER_ANSWER_BYTES: usize = 64 << 20;
/// Longest wait for one router request.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The four tables asked from each router, after `/rest`.
pub const PATHS: [&str; 4] =
    ["/ip/arp", "/ip/dhcp-server/lease", "/ipv6/dhcp-server/binding", "/ipv6/neighbor"];

/// One `[[router]]` of the credentials file.
#[derive(Clone, Deserialize)]
pub struct Router {
    /// Operator's name for the router.
    #[serde(default)]
    pub name: String,
    /// Host name or address.
    pub host: String,
    /// Port; 80 / 443 when absent (8728 / 8729, the binary API's, are mapped to those).
    #[serde(default)]
    pub port: Option<u16>,
    /// REST user.
    pub username: String,
    /// REST password (never logged).
    pub password: String,
    /// HTTPS (`www-ssl` service) instead of HTTP.
    #[serde(default)]
    pub use_ssl: bool,
    /// Check the router's certificate (lqos extension; LibreQoS never does, RouterOS
    /// certificates are usually self-signed).
    #[serde(default)]
    pub verify_tls: bool,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .field("use_ssl", &self.use_ssl)
            .finish()
    }
}

impl Router {
    /// `http(s)://host:port/rest`, with the port rule of the module doc.
    pub fn base_url(&self) -> (String, Option<String>) {
        let default = if self.use_ssl { 443 } else { 80 };
        let (port, note) = match self.port {
            None => (default, None),
            Some(p @ (8728 | 8729)) => (
                default,
                Some(format!(
                    "router '{}': port {p} is RouterOS's binary API; lqos uses the REST API on port {default} (set port to the www{} service's port)",
                    self.name,
                    if self.use_ssl { "-ssl" } else { "" }
                )),
            ),
            Some(p) => (p, None),
        };
        let host = match self.host.trim().parse::<IpAddr>() {
            Ok(IpAddr::V6(a)) => format!("[{a}]"),
            _ => self.host.trim().to_string(),
        };
        (format!("{}://{host}:{port}/rest", if self.use_ssl { "https" } else { "http" }), note)
    }
}

#[derive(Deserialize)]
struct CredentialsFile {
    #[serde(default)]
    router: Vec<Router>,
}

/// LibreQoS's older router list in `lqos_directory`, read when the TOML file is missing.
pub const LEGACY_CSV: &str = "mikrotikDHCPRouterList.csv";

/// Reads the credentials file; when it is missing, the legacy `mikrotikDHCPRouterList.csv`
/// (`RouterName,IP,Username,Password,apiPort` after a header line) in `lqos_directory`.
/// Errors name the file and line, never a password.
pub fn load_routers(config: &Config) -> Result<Vec<Router>, Box<Diagnostic>> {
    let path = &config.mikrotik_ipv6.config_path;
    let file = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let legacy = config.lqos_directory.join(LEGACY_CSV);
            if let Ok(csv) = std::fs::read_to_string(&legacy) {
                return parse_legacy_csv(&csv);
            }
            return Err(Box::new(
                Diagnostic::warning(LABEL, format!("the router list {file} does not exist; IPv6 enrichment skipped"))
                    .hint("create it with [[router]] name, host, port, username, password, use_ssl, or set [mikrotik_ipv6] config_path"),
            ));
        }
        Err(e) => {
            return Err(Box::new(Diagnostic::warning(
                LABEL,
                format!("cannot read the router list {file}: {e}; IPv6 enrichment skipped"),
            )));
        }
    };
    let parsed: CredentialsFile = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text.as_bytes().iter().take(s.start).filter(|&&b| b == b'\n').count() + 1);
        let mut d =
            Diagnostic::warning(file.clone(), format!("{}; IPv6 enrichment skipped", e.message()));
        d.line = line;
        Box::new(d)
    })?;
    Ok(parsed.router)
}

fn parse_legacy_csv(text: &str) -> Result<Vec<Router>, Box<Diagnostic>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let port = f.get(4).and_then(|p| p.parse::<u16>().ok());
        match (f.as_slice(), port) {
            ([name, host, user, password, _], Some(port)) => out.push(Router {
                name: (*name).to_string(),
                host: (*host).to_string(),
                port: Some(port),
                username: (*user).to_string(),
                password: (*password).to_string(),
                use_ssl: false,
                verify_tls: false,
            }),
            _ => {
                return Err(Box::new(
                    Diagnostic::warning(
                        LEGACY_CSV,
                        "expected RouterName,IP,Username,Password,apiPort; IPv6 enrichment skipped",
                    )
                    .at_line(i + 1),
                ));
            }
        }
    }
    Ok(out)
}

/// The four tables of one router.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouterTables {
    /// `/ip/arp`.
    pub arp: Vec<Value>,
    /// `/ip/dhcp-server/lease`.
    pub dhcp4: Vec<Value>,
    /// `/ipv6/dhcp-server/binding`.
    pub dhcp6: Vec<Value>,
    /// `/ipv6/neighbor`.
    pub neighbor6: Vec<Value>,
}

async fn fetch_tables(router: &Router, opts: &HttpOptions) -> Result<RouterTables, String> {
    let (base, _) = router.base_url();
    let timeout = opts.timeout.min(MAX_REQUEST_TIMEOUT);
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .danger_accept_invalid_certs(router.use_ssl && !router.verify_tls)
        .user_agent(concat!("lqos_scheduler/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let mut lists: Vec<Vec<Value>> = Vec::with_capacity(PATHS.len());
    for path in PATHS {
        let url = format!("{base}{path}");
        let resp = client
            .get(&url)
            .basic_auth(&router.username, Some(&router.password))
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    format!("no answer within {} s at {url}", timeout.as_secs().max(1))
                } else {
                    format!("cannot reach {url}: {}", crate::error_chain(&e))
                }
            })?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(format!(
                "rejected the username or password (HTTP {}) at {url}",
                status.as_u16()
            ));
        }
        if !status.is_success() {
            return Err(format!("answered HTTP {} at {url}", status.as_u16()));
        }
        let bytes =
            crate::http::read_capped(resp, opts.max_answer_bytes.min(MAX_ROUTER_ANSWER_BYTES))
                .await
                .map_err(|e| match e {
                    crate::http::CappedError::TooLarge => {
                        format!(
                            "sent more than {} at {url}",
                            crate::error::human_bytes(
                                opts.max_answer_bytes.min(MAX_ROUTER_ANSWER_BYTES)
                            )
                        )
                    }
                    crate::http::CappedError::Http(e) => {
                        format!("cannot read the answer at {url}: {e}")
                    }
                })?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Array(a)) => lists.push(a),
            Ok(_) => return Err(format!("sent something other than a JSON list at {url}")),
            Err(e) => return Err(format!("sent malformed JSON at {url}: {e}")),
        }
    }
    let mut it = lists.into_iter();
    Ok(RouterTables {
        arp: it.next().unwrap_or_default(),
        dhcp4: it.next().unwrap_or_default(),
        dhcp6: it.next().unwrap_or_default(),
        neighbor6: it.next().unwrap_or_default(),
    })
}

/// Asks every router and returns the IPv4 → IPv6 map plus warnings.
pub async fn pull_map(
    config: &Config,
    opts: &HttpOptions,
) -> (HashMap<Ipv4Addr, IpNet>, Vec<Diagnostic>) {
    let mut warnings = Vec::new();
    let routers = match load_routers(config) {
        Ok(r) => r,
        Err(d) => return (HashMap::new(), vec![*d]),
    };
    for r in &routers {
        if let (_, Some(note)) = r.base_url() {
            warnings.push(Diagnostic::warning(LABEL, note));
        }
    }
    let mut map = HashMap::new();
    // One router after the other: they are few, and each request is bounded by its timeout.
    for router in &routers {
        match fetch_tables(router, opts).await {
            Ok(tables) => {
                let (m, w) = build_map(&tables);
                debug!(router = %router.name, pairs = m.len(), "MikroTik IPv6 map");
                warnings.extend(w.into_iter().map(|msg| {
                    Diagnostic::warning(LABEL, format!("router '{}': {msg}", router.name))
                }));
                map.extend(m);
            }
            Err(cause) => warnings.push(Diagnostic::warning(
                LABEL,
                format!(
                    "router '{}' ({}): {cause}; its IPv6 addresses are left out",
                    router.name, router.host
                ),
            )),
        }
    }
    info!(routers = routers.len(), pairs = map.len(), "MikroTik IPv6 lookup done");
    (map, warnings)
}

/// A MAC address as 12 upper-case hex digits, whatever the separators.
pub fn normalize_mac(mac: &str) -> Option<String> {
    let hex: String =
        mac.chars().filter(char::is_ascii_hexdigit).collect::<String>().to_ascii_uppercase();
    let seps_ok = mac.chars().all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '-' | '.' | ' '));
    (hex.len() == 12 && seps_ok).then_some(hex)
}

/// The MAC inside a DHCPv6 DUID of type 1 (link-layer + time) or 3 (link-layer).
pub fn mac_from_duid(duid: &str) -> Option<String> {
    let mut hex: String = duid.trim().replace([':', '-'], "").to_ascii_lowercase();
    if let Some(rest) = hex.strip_prefix("0x") {
        hex = rest.to_string();
    }
    if !hex.len().is_multiple_of(2) || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .filter_map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect();
    let mac = match bytes.as_slice() {
        [0, 1, _, _, _, _, _, _, m @ ..] if m.len() == 6 => m,
        [0, 3, _, _, m @ ..] if m.len() == 6 => m,
        _ => return None,
    };
    Some(mac.iter().map(|b| format!("{b:02X}")).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Arp = 0,
    Neighbor = 1,
    Dhcp = 2,
}

#[derive(Debug, Clone)]
struct Rec {
    source: Source,
    rank: u8,
    net: IpNet,
    ambiguous: bool,
}

fn field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// 2 = prefix, 1 = host; `None` for link-local, multicast, loopback, unspecified.
fn v6_rank(net: &IpNet) -> Option<u8> {
    let IpNet::V6(n) = net else { return None };
    let a = n.network();
    if a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || (a.segments()[0] & 0xffc0) == 0xfe80
    {
        return None;
    }
    Some(if n.prefix_len() < 128 { 2 } else { 1 })
}

fn record(map: &mut HashMap<String, Rec>, mac: String, source: Source, net: IpNet, rank: u8) {
    match map.get_mut(&mac) {
        None => {
            map.insert(mac, Rec { source, rank, net, ambiguous: false });
        }
        Some(cur) if source > cur.source || (source == cur.source && rank > cur.rank) => {
            *cur = Rec { source, rank, net, ambiguous: false };
        }
        Some(cur) if source == cur.source && rank == cur.rank && net.trunc() != cur.net.trunc() => {
            cur.ambiguous = true;
        }
        Some(_) => {}
    }
}

fn parse_net(text: &str) -> Option<IpNet> {
    crm_address(text).map(|(n, _)| n)
}

/// Pairs IPv4 and IPv6 by MAC address from one router's tables; returns the map and notes
/// about what was skipped (ambiguous MACs).
pub fn build_map(t: &RouterTables) -> (HashMap<Ipv4Addr, IpNet>, Vec<String>) {
    let mut v4: HashMap<String, Rec> = HashMap::new();
    let mut v6: HashMap<String, Rec> = HashMap::new();
    let mut notes = Vec::new();
    for e in &t.arp {
        let (Some(mac), Some(net)) = (
            field(e, "mac-address").and_then(normalize_mac),
            field(e, "address").and_then(parse_net),
        ) else {
            continue;
        };
        match net {
            IpNet::V4(_) => record(&mut v4, mac, Source::Arp, net, 0),
            IpNet::V6(_) => {
                if let Some(rank) = v6_rank(&net) {
                    record(&mut v6, mac, Source::Arp, net, rank);
                }
            }
        }
    }
    for e in &t.dhcp4 {
        if let (Some(mac), Some(net @ IpNet::V4(_))) = (
            field(e, "mac-address").and_then(normalize_mac),
            field(e, "address").and_then(parse_net),
        ) {
            record(&mut v4, mac, Source::Dhcp, net, 0);
        }
    }
    // DHCPv6 bindings without a MAC in their DUID are matched through the neighbour table by
    // the client's address.
    let mut by_client: HashMap<IpAddr, (IpNet, bool)> = HashMap::new();
    for e in &t.dhcp6 {
        let Some(net) = field(e, "address").and_then(|a| crm_prefix(a).map(|(n, _)| n)) else {
            continue;
        };
        let Some(rank) = v6_rank(&net) else { continue };
        if let Some(mac) = field(e, "duid").and_then(mac_from_duid) {
            record(&mut v6, mac, Source::Dhcp, net, rank);
        } else if let Some(client) = field(e, "client-address")
            .and_then(|c| c.split('/').next())
            .and_then(|c| c.parse::<IpAddr>().ok())
        {
            by_client
                .entry(client)
                .and_modify(|(n, amb)| *amb |= n.trunc() != net.trunc())
                .or_insert((net, false));
        }
    }
    for e in &t.neighbor6 {
        let (Some(mac), Some(addr)) = (
            field(e, "mac-address").and_then(normalize_mac),
            field(e, "address").and_then(parse_net),
        ) else {
            continue;
        };
        match by_client.get(&addr.addr()) {
            Some((net, false)) => {
                if let Some(rank) = v6_rank(net) {
                    record(&mut v6, mac, Source::Dhcp, *net, rank);
                }
            }
            Some((_, true)) => {
                notes.push(format!(
                    "DHCPv6 bindings for client {} disagree; using its neighbour address",
                    addr.addr()
                ));
                if let Some(rank) = v6_rank(&addr) {
                    record(&mut v6, mac, Source::Neighbor, addr, rank);
                }
            }
            None => {
                if let Some(rank) = v6_rank(&addr) {
                    record(&mut v6, mac, Source::Neighbor, addr, rank);
                }
            }
        }
    }
    let mut out = HashMap::new();
    let mut macs: Vec<&String> = v6.keys().collect();
    macs.sort();
    for mac in macs {
        let Some(r6) = v6.get(mac) else { continue };
        if r6.ambiguous {
            notes.push(format!("MAC {mac} has several IPv6 answers; skipped"));
            continue;
        }
        match v4.get(mac) {
            Some(r4) if r4.ambiguous => {
                notes.push(format!("MAC {mac} has several IPv4 addresses; skipped"))
            }
            Some(Rec { net: IpNet::V4(a), .. }) => {
                out.insert(a.addr(), r6.net);
            }
            _ => {}
        }
    }
    (out, notes)
}

/// Adds the mapped IPv6 to every device holding the IPv4 (LibreQoS keeps the device's own
/// IPv6 and appends). An IPv6 another circuit already has is left out with a warning.
pub fn merge(imp: &mut Import, map: &HashMap<Ipv4Addr, IpNet>) -> usize {
    if map.is_empty() {
        return 0;
    }
    let mut owner: HashMap<IpNet, String> = HashMap::new();
    for c in &imp.circuits {
        for (n, _) in c.networks() {
            owner.entry(n).or_insert_with(|| c.id.0.clone());
        }
    }
    let mut added = 0;
    let mut warnings = Vec::new();
    for c in &mut imp.circuits {
        for d in &mut c.devices {
            let wanted: Vec<IpNet> =
                d.ipv4.iter().filter_map(|n| map.get(&n.addr())).copied().collect();
            let mut seen: HashSet<IpNet> = d.ipv6.iter().map(|n| IpNet::V6(*n)).collect();
            for net in wanted {
                let IpNet::V6(n6) = net else { continue };
                if is_unshapeable(&net) || !seen.insert(net) {
                    continue;
                }
                match owner.get(&net) {
                    Some(o) if *o != c.id.0 => warnings.push(Diagnostic::warning(
                        LABEL,
                        format!("{net} from the routers belongs to circuit '{o}' already; not added to device '{}'", d.id),
                    )),
                    _ => {
                        owner.insert(net, c.id.0.clone());
                        d.ipv6.push(n6);
                        added += 1;
                    }
                }
            }
        }
    }
    imp.warnings.extend(warnings);
    added
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duid_types_1_and_3_carry_the_mac() {
        assert_eq!(
            mac_from_duid("0x000100012a3b4c5d2cc81bbdc9ab").as_deref(),
            Some("2CC81BBDC9AB")
        );
        assert_eq!(mac_from_duid("00:03:00:01:2c:c8:1b:bd:c9:ab").as_deref(), Some("2CC81BBDC9AB"));
        assert_eq!(mac_from_duid("0x0002000000090c"), None);
        assert_eq!(mac_from_duid("zz"), None);
    }

    #[test]
    fn dhcp_prefix_beats_neighbour_host_and_ambiguous_macs_are_skipped() {
        let t = RouterTables {
            arp: vec![
                json!({"address": "100.64.1.10", "mac-address": "2C:C8:1B:BD:C9:AB"}),
                json!({"address": "100.64.1.11", "mac-address": "2C:C8:1B:BD:C9:AC"}),
                json!({"address": "100.64.1.12", "mac-address": "2C:C8:1B:BD:C9:AC"}),
            ],
            dhcp4: vec![json!({"address": "100.64.1.20", "mac-address": "aa-bb-cc-dd-ee-01"})],
            dhcp6: vec![
                json!({"address": "2001:db8:100::/56", "duid": "0x000100012a3b4c5d2cc81bbdc9ab"}),
                json!({"address": "2001:db8:300::/56", "duid": "0x0002", "client-address": "fe80::1"}),
            ],
            neighbor6: vec![
                json!({"address": "2001:db8:1::10", "mac-address": "2C:C8:1B:BD:C9:AB"}),
                json!({"address": "fe80::1", "mac-address": "AA:BB:CC:DD:EE:01"}),
                json!({"address": "2001:db8:1::11", "mac-address": "2C:C8:1B:BD:C9:AC"}),
            ],
        };
        let (m, notes) = build_map(&t);
        assert_eq!(
            m.get(&"100.64.1.10".parse().unwrap()),
            Some(&"2001:db8:100::/56".parse().unwrap())
        );
        // Matched through the neighbour table by the DHCPv6 client address.
        assert_eq!(
            m.get(&"100.64.1.20".parse().unwrap()),
            Some(&"2001:db8:300::/56".parse().unwrap())
        );
        assert!(!m.contains_key(&"100.64.1.11".parse().unwrap()));
        assert!(notes.iter().any(|n| n.contains("2CC81BBDC9AC has several IPv4")), "{notes:?}");
    }

    #[test]
    fn router_debug_hides_the_password_and_binary_api_ports_map_to_rest() {
        let r = Router {
            name: "edge".into(),
            host: "2001:db8::1".into(),
            port: Some(8728),
            username: "api".into(),
            password: "s3cret-pw".into(),
            use_ssl: true,
            verify_tls: false,
        };
        assert!(!format!("{r:?}").contains("s3cret-pw"));
        let (url, note) = r.base_url();
        assert_eq!(url, "https://[2001:db8::1]:443/rest");
        assert!(note.unwrap().contains("port 8728 is RouterOS's binary API"));
    }
}
