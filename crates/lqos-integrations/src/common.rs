//! Helpers shared by the importers: rates, address filtering, unique names and a small tree
//! builder that turns nodes with parent links into lqos-config's [`Network`] arena.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use lqos_config::{Circuit, Config, Device, Diagnostic, Network, NetworkNode, RateKbit};
use serde_json::Value;

/// Lowest rate an importer writes (0.1 Mbps), as LibreQoS's UISP importer floors rates.
pub const MIN_IMPORT_RATE_KBIT: u64 = 100;
/// Min/max ratio the Python integrations use (`Min = 0.98 × Max`).
pub const PYTHON_MIN_RATIO: f64 = 0.98;
/// Share of a known CPE Ethernet port speed a circuit may use (`ethernet_port_limit_multiplier`).
pub const ETHERNET_PORT_LIMIT_MULTIPLIER: f64 = 0.94;

/// Settings that LibreQoS reads from `[uisp_integration]` even for the other CRMs.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedRules {
    /// `bandwidth_overhead_factor` (default 1.0).
    pub overhead: f64,
    /// `commit_bandwidth_multiplier` (default 1.0).
    pub commit: f64,
    /// `[integration_common] client_bandwidth_multiplier` (unset = 1.0).
    pub client_multiplier: f64,
    /// `exclude_sites`, lower-cased and trimmed.
    pub exclude_sites: Vec<String>,
}

impl SharedRules {
    /// Reads the shared rules from the configuration.
    pub fn from_config(config: &Config) -> Self {
        let (overhead, commit, exclude) = match &config.uisp {
            Some(u) => (
                u.bandwidth_overhead_factor,
                u.commit_bandwidth_multiplier,
                u.exclude_sites.clone(),
            ),
            None => (1.0, 1.0, Vec::new()),
        };
        SharedRules {
            overhead: positive_or(overhead, 1.0),
            commit: positive_or(commit, 1.0),
            client_multiplier: positive_or(
                config.integration_common.client_bandwidth_multiplier.unwrap_or(1.0),
                1.0,
            ),
            exclude_sites: exclude.iter().map(|s| s.trim().to_lowercase()).collect(),
        }
    }

    /// LibreQoS's client rate rule: `max(plan × overhead, plan × client_multiplier)`.
    pub fn client_max_mbps(&self, plan_mbps: f64) -> f64 {
        (plan_mbps * self.overhead).max(plan_mbps * self.client_multiplier)
    }

    /// True when `name` is listed in `exclude_sites` (case-insensitive).
    pub fn is_excluded(&self, name: &str) -> bool {
        let n = name.trim().to_lowercase();
        self.exclude_sites.contains(&n)
    }
}

fn positive_or(v: f64, default: f64) -> f64 {
    if v.is_finite() && v > 0.0 { v } else { default }
}

/// A rate in Mbps to kbit, floored at [`MIN_IMPORT_RATE_KBIT`].
pub fn rate(mbps: f64) -> RateKbit {
    RateKbit(RateKbit::from_mbps(mbps).0.max(MIN_IMPORT_RATE_KBIT))
}

/// Min and max for one direction: both floored, min never above max.
pub fn min_max(min_mbps: f64, max_mbps: f64) -> (RateKbit, RateKbit) {
    let max = rate(max_mbps);
    let min = rate(min_mbps).min(max);
    (min, max)
}

/// Which subnets an address must (allow) and must not (ignore) fall in.
#[derive(Debug, Clone)]
pub struct AddressFilter {
    allow: Vec<IpNet>,
    ignore: Vec<IpNet>,
    require_allow: bool,
}

impl AddressFilter {
    /// UISP's rule: inside `allow_subnets` (when any are set) and not inside `ignore_subnets`.
    pub fn allow_and_ignore(config: &Config) -> Self {
        AddressFilter {
            allow: config.ip_ranges.allow_subnets.clone(),
            ignore: config.ip_ranges.ignore_subnets.clone(),
            require_allow: true,
        }
    }
    /// The Python integrations' rule: only `ignore_subnets` removes addresses.
    pub fn ignore_only(config: &Config) -> Self {
        AddressFilter {
            allow: Vec::new(),
            ignore: config.ip_ranges.ignore_subnets.clone(),
            require_allow: false,
        }
    }
    /// True if `net` may be shaped.
    pub fn permits(&self, net: &IpNet) -> bool {
        if self.ignore.iter().any(|i| i.contains(net)) {
            return false;
        }
        !self.require_allow || self.allow.is_empty() || self.allow.iter().any(|a| a.contains(net))
    }
}

/// Parses `a.b.c.d`, `a.b.c.d/nn`, IPv6 likewise. An address with a prefix keeps the prefix
/// only when it is the network address (`10.0.0.0/24`); otherwise it is the host (`/32`,
/// `/128`), since NMS interfaces report their address with the subnet's length.
pub fn parse_host_or_net(text: &str) -> Option<IpNet> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(addr) = t.parse::<IpAddr>() {
        return Some(IpNet::from(addr));
    }
    let net: IpNet = t.parse().ok()?;
    if net.addr() == net.network() && net.prefix_len() != 0 {
        Some(net)
    } else {
        Some(IpNet::from(net.addr()))
    }
}

/// Parses a route or delegated prefix (`100.64.5.0/29`, `2001:db8::/56`): host bits are
/// cleared, since the whole prefix belongs to the subscriber.
pub fn parse_prefix(text: &str) -> Option<IpNet> {
    let t = text.trim();
    if let Ok(addr) = t.parse::<IpAddr>() {
        return Some(IpNet::from(addr));
    }
    t.parse::<IpNet>().ok().map(|n| n.trunc())
}

/// True for addresses never worth shaping (link-local, loopback, unspecified).
pub fn is_unshapeable(net: &IpNet) -> bool {
    match net.addr() {
        IpAddr::V4(a) => a.is_loopback() || a.is_unspecified() || a.is_link_local(),
        IpAddr::V6(a) => {
            a.is_loopback() || a.is_unspecified() || (a.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Collects addresses for one device, filtered and de-duplicated in order.
#[derive(Debug, Default)]
pub struct AddressSet {
    /// IPv4 hosts and prefixes.
    pub v4: Vec<Ipv4Net>,
    /// IPv6 hosts and prefixes.
    pub v6: Vec<Ipv6Net>,
    /// Addresses left out by the filter.
    pub rejected: Vec<IpNet>,
}

impl AddressSet {
    /// Adds `net` if the filter permits it.
    pub fn push(&mut self, net: IpNet, filter: &AddressFilter) {
        if is_unshapeable(&net) {
            return;
        }
        if !filter.permits(&net) {
            if !self.rejected.contains(&net) {
                self.rejected.push(net);
            }
            return;
        }
        match net {
            IpNet::V4(n) if !self.v4.contains(&n) => self.v4.push(n),
            IpNet::V6(n) if !self.v6.contains(&n) => self.v6.push(n),
            _ => {}
        }
    }
    /// True if no address was kept.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// Hands out names that are unique across one network.json: the first claimant keeps the
/// plain name, later ones get `name [suffix]` (then `name [suffix] 2`, …).
#[derive(Debug, Default)]
pub struct UniqueNames {
    taken: HashSet<String>,
}

impl UniqueNames {
    /// Claims `name`, or `name [suffix]` when it is taken.
    pub fn claim(&mut self, name: &str, suffix: &str) -> String {
        if self.taken.insert(name.to_string()) {
            return name.to_string();
        }
        let base = format!("{name} [{suffix}]");
        let mut candidate = base.clone();
        let mut n = 2;
        while !self.taken.insert(candidate.clone()) {
            candidate = format!("{base} {n}");
            n += 1;
        }
        candidate
    }
}

impl UniqueNames {
    /// True when `name` was already claimed.
    pub fn is_taken(&self, name: &str) -> bool {
        self.taken.contains(name)
    }
}

/// LibreQoS's display-name rule: internal whitespace collapsed to one space, ends trimmed;
/// `fallback` (usually the id) when nothing is left.
pub fn normalize_display_name(raw: Option<&str>, fallback: &str) -> String {
    let name = raw.unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() { fallback.to_string() } else { name }
}

/// LibreQoS's duplicate rule: when several `(id, name)` share a name, every one of them (not
/// only the second and later) becomes `name (id)`, so names do not depend on API order.
pub fn disambiguate(items: &[(String, String)]) -> Vec<String> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (_, name) in items {
        *count.entry(name.as_str()).or_default() += 1;
    }
    items
        .iter()
        .map(|(id, name)| {
            if count.get(name.as_str()).copied().unwrap_or(0) > 1 {
                format!("{name} ({id})")
            } else {
                name.clone()
            }
        })
        .collect()
}

/// What a CRM field holds, which decides what host bits mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// The subscriber's own address (Splynx `ipv4`/`ipv6`, online sessions, Netzur `ip`):
    /// `100.64.5.3/29` is the host 100.64.5.3 with its subnet's length, see [`crm_address`].
    Host,
    /// A routed or delegated prefix (Splynx `ipv4_route`/`ipv6_delegated`): see [`crm_prefix`].
    Prefix,
}

/// How a CRM address text becomes a shaped network, LibreQoS's `fixSubnet` rule: a bare
/// address is the host; a network address keeps its prefix (`100.64.9.0/29`); an address with
/// host bits (`100.64.5.3/29`, an interface address with its subnet's length) is the host
/// alone (`100.64.5.3/32`), never the whole prefix. Returns the network and, for the last
/// case, a note for the operator.
pub fn crm_address(text: &str) -> Option<(IpNet, Option<String>)> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(addr) = t.parse::<IpAddr>() {
        return Some((IpNet::from(addr), None));
    }
    let net: IpNet = t.parse().ok()?;
    if net.addr() == net.network() && net.prefix_len() != 0 {
        return Some((net, None));
    }
    let host = IpNet::from(net.addr());
    let note = (net.prefix_len() != host.prefix_len()).then(|| {
        format!("'{t}' has host bits set; shaped as the host {host}, not the whole {}", net.trunc())
    });
    Some((host, note))
}

/// How a routed or delegated prefix text becomes a shaped network: the whole prefix, host bits
/// cleared (`100.64.5.3/29` → `100.64.5.0/29`). LibreQoS writes such a prefix unchanged and its
/// longest-prefix-match map ignores the host bits, so the whole /29 is shaped there too. A bare
/// address is the host. Returns the network and, when host bits were cleared, a note.
pub fn crm_prefix(text: &str) -> Option<(IpNet, Option<String>)> {
    let t = text.trim();
    if let Ok(addr) = t.parse::<IpAddr>() {
        return Some((IpNet::from(addr), None));
    }
    let net: IpNet = t.parse().ok()?;
    let trunc = net.trunc();
    let note = (trunc != net)
        .then(|| format!("routed prefix '{t}' has host bits set; shaped as the whole {trunc}"));
    Some((trunc, note))
}

/// Parses one CRM address of `kind` ([`crm_address`] or [`crm_prefix`]) into `set`, with a
/// warning naming `what` for text that is not an address and for host bits.
pub fn push_address(
    set: &mut AddressSet,
    text: &str,
    kind: AddressKind,
    filter: &AddressFilter,
    what: &str,
    label: &str,
    warnings: &mut Vec<Diagnostic>,
) {
    let parsed = match kind {
        AddressKind::Host => crm_address(text),
        AddressKind::Prefix => crm_prefix(text),
    };
    match parsed {
        Some((net, note)) => {
            if let Some(note) = note {
                warnings.push(Diagnostic::warning(label, format!("{what}: {note}")));
            }
            set.push(net, filter);
        }
        None if text.trim().is_empty() => {}
        None => warnings.push(Diagnostic::warning(
            label,
            format!("{what}: '{text}' is not an address; left out"),
        )),
    }
}

/// A node being built: name, stable id, type, rates, parent.
#[derive(Debug, Clone)]
pub struct BuildNode {
    /// Unique name (object key).
    pub name: String,
    /// Stable id (`uisp:site:…`).
    pub id: Option<String>,
    /// `site`, `ap`, …
    pub node_type: &'static str,
    /// Download capacity.
    pub download: RateKbit,
    /// Upload capacity.
    pub upload: RateKbit,
    /// Parent index in the builder.
    pub parent: Option<usize>,
    /// Extra fields (latitude, longitude, …).
    pub extra: serde_json::Map<String, Value>,
}

/// Builds a [`Network`] from nodes with parent links.
#[derive(Debug, Default)]
pub struct TreeBuilder {
    nodes: Vec<BuildNode>,
}

impl TreeBuilder {
    /// Adds a node and returns its index.
    pub fn add(&mut self, node: BuildNode) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }
    /// The node at `i`.
    pub fn get(&self, i: usize) -> Option<&BuildNode> {
        self.nodes.get(i)
    }
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    /// True when no node was added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Flattens into the depth-first arena. Nodes named in `promote_to_root` move to the top
    /// level with their subtree; `keep(i)` decides which nodes survive (a dropped node's
    /// children are dropped too). Each node's rates are clamped to its parent's, top-level
    /// nodes to `top` (download, upload).
    pub fn finish(
        mut self,
        promote_to_root: &[String],
        top: (RateKbit, RateKbit),
        keep: impl Fn(usize) -> bool,
    ) -> Network {
        for n in &mut self.nodes {
            if promote_to_root.contains(&n.name) {
                n.parent = None;
            }
        }
        let mut children: HashMap<Option<usize>, Vec<usize>> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if keep(i) {
                children.entry(n.parent).or_default().push(i);
            }
        }
        let mut net = Network::default();
        // (builder index, arena parent, parent rates)
        let mut stack: Vec<(usize, Option<usize>, (RateKbit, RateKbit))> = children
            .get(&None)
            .map(|v| v.iter().rev().map(|&i| (i, None, top)).collect())
            .unwrap_or_default();
        let mut visited = HashSet::new();
        while let Some((bi, parent, (pd, pu))) = stack.pop() {
            if !visited.insert(bi) {
                continue;
            }
            let Some(b) = self.nodes.get(bi) else { continue };
            let idx = net.nodes.len();
            let down = b.download.min(pd);
            let up = b.upload.min(pu);
            net.nodes.push(NetworkNode {
                name: b.name.clone(),
                id: b.id.clone(),
                display_name: None,
                node_type: Some(b.node_type.to_string()),
                is_virtual: false,
                download: Some(down),
                upload: Some(up),
                download_min: None,
                upload_min: None,
                parent,
                children: Vec::new(),
                line: 0,
                extra: b.extra.clone(),
            });
            match parent {
                Some(p) => {
                    if let Some(pn) = net.nodes.get_mut(p) {
                        pn.children.push(idx);
                    }
                }
                None => net.roots.push(idx),
            }
            if let Some(kids) = children.get(&Some(bi)) {
                for &k in kids.iter().rev() {
                    stack.push((k, Some(idx), (down, up)));
                }
            }
        }
        net
    }
}

/// Removes addresses already used by an earlier circuit (LibreQoS drops duplicates with a
/// warning), then devices left without addresses and circuits left without devices.
pub fn drop_duplicates_and_empty(
    circuits: Vec<Circuit>,
    label: &str,
    warnings: &mut Vec<Diagnostic>,
) -> Vec<Circuit> {
    let mut seen: HashMap<IpNet, String> = HashMap::new();
    let mut out = Vec::with_capacity(circuits.len());
    for mut c in circuits {
        for d in &mut c.devices {
            let mut keep = |net: IpNet, d: &Device| -> bool {
                match seen.get(&net) {
                    Some(owner) if *owner != c.id.0 => {
                        warnings.push(Diagnostic::warning(
                            label,
                            format!(
                                "address {net} of device '{}' (circuit '{}') is already used by circuit '{owner}'; left out",
                                d.id, c.id
                            ),
                        ));
                        false
                    }
                    _ => {
                        seen.insert(net, c.id.0.clone());
                        true
                    }
                }
            };
            let snapshot = d.clone();
            d.ipv4.retain(|n| keep(IpNet::V4(*n), &snapshot));
            d.ipv6.retain(|n| keep(IpNet::V6(*n), &snapshot));
        }
        let before = c.devices.len();
        c.devices.retain(|d| !d.ipv4.is_empty() || !d.ipv6.is_empty());
        if c.devices.len() < before {
            warnings.push(Diagnostic::warning(
                label,
                format!(
                    "circuit '{}' ({}): {} device(s) without a usable address left out",
                    c.id,
                    c.name,
                    before - c.devices.len()
                ),
            ));
        }
        if c.devices.is_empty() {
            warnings.push(
                Diagnostic::warning(
                    label,
                    format!(
                        "circuit '{}' ({}) has no device with a usable address; left out",
                        c.id, c.name
                    ),
                )
                .hint("give the subscriber's device an address inside [ip_ranges] allow_subnets"),
            );
            continue;
        }
        out.push(c);
    }
    out
}

/// A JSON id (string or number) as a string; `None` for null/empty.
pub fn id_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A JSON number or numeric string as f64.
pub fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A JSON string (trimmed), `None` for null/empty/non-strings.
pub fn string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// Latitude/longitude extras, when both are known.
pub fn lat_lon(lat: Option<f64>, lon: Option<f64>) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    if let (Some(la), Some(lo)) = (lat, lon)
        && let (Some(a), Some(o)) =
            (serde_json::Number::from_f64(la), serde_json::Number::from_f64(lo))
    {
        m.insert("latitude".into(), Value::Number(a));
        m.insert("longitude".into(), Value::Number(o));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_address_becomes_host_and_network_address_stays_prefix() {
        assert_eq!(parse_host_or_net("100.64.1.10/24"), Some("100.64.1.10/32".parse().unwrap()));
        assert_eq!(parse_host_or_net("100.64.8.0/29"), Some("100.64.8.0/29".parse().unwrap()));
        assert_eq!(parse_host_or_net("2001:db8::1/64"), Some("2001:db8::1/128".parse().unwrap()));
        assert_eq!(parse_prefix("100.64.5.3/29"), Some("100.64.5.0/29".parse().unwrap()));
        assert_eq!(parse_host_or_net("nonsense"), None);
    }

    #[test]
    fn host_bits_mean_the_host_for_addresses_and_the_prefix_for_routes() {
        let a = |t: &str| crm_address(t).map(|(n, note)| (n.to_string(), note.is_some()));
        assert_eq!(a("100.64.5.3/29"), Some(("100.64.5.3/32".into(), true)));
        assert_eq!(a("100.64.5.0/29"), Some(("100.64.5.0/29".into(), false)));
        assert_eq!(a(" 100.64.5.3 "), Some(("100.64.5.3/32".into(), false)));
        assert_eq!(a("100.64.5.3/32"), Some(("100.64.5.3/32".into(), false)));
        assert_eq!(a("2001:db8::5/64"), Some(("2001:db8::5/128".into(), true)));
        assert_eq!(a("bogus/99"), None);
        let p = |t: &str| crm_prefix(t).map(|(n, note)| (n.to_string(), note.is_some()));
        assert_eq!(p("100.64.5.3/29"), Some(("100.64.5.0/29".into(), true)));
        assert_eq!(p("2001:db8:10::/56"), Some(("2001:db8:10::/56".into(), false)));
        assert_eq!(p("100.64.5.3"), Some(("100.64.5.3/32".into(), false)));
    }

    #[test]
    fn every_duplicate_gets_its_id_and_whitespace_collapses() {
        let items = [
            (
                "1122".to_string(),
                normalize_display_name(Some(" Telkom-Braeview-Sec-South  "), "1122"),
            ),
            ("1980".to_string(), normalize_display_name(Some("Telkom-Braeview-Sec-South"), "1980")),
            ("2000".to_string(), normalize_display_name(Some("Unique\tAP"), "2000")),
            ("7".to_string(), normalize_display_name(Some("   "), "7")),
        ];
        assert_eq!(
            disambiguate(&items),
            [
                "Telkom-Braeview-Sec-South (1122)",
                "Telkom-Braeview-Sec-South (1980)",
                "Unique AP",
                "7"
            ]
        );
    }

    #[test]
    fn unique_names_suffix_later_claimants() {
        let mut u = UniqueNames::default();
        assert_eq!(u.claim("Tower", "a"), "Tower");
        assert_eq!(u.claim("Tower", "b"), "Tower [b]");
        assert_eq!(u.claim("Tower", "b"), "Tower [b] 2");
    }

    #[test]
    fn tree_builder_clamps_children_and_promotes() {
        let mut t = TreeBuilder::default();
        let node = |name: &str, d: u64, parent| BuildNode {
            name: name.into(),
            id: None,
            node_type: "site",
            download: RateKbit(d),
            upload: RateKbit(d),
            parent,
            extra: Default::default(),
        };
        let a = t.add(node("A", 500_000, None));
        let b = t.add(node("B", 900_000, Some(a)));
        t.add(node("C", 100_000, Some(b)));
        let net =
            t.finish(&["C".to_string()], (RateKbit(2_000_000), RateKbit(2_000_000)), |_| true);
        assert_eq!(net.roots.len(), 2);
        let b = net.find_by_name("B").unwrap();
        assert_eq!(net.nodes[b].download, Some(RateKbit(500_000)));
        assert_eq!(net.path(net.find_by_name("C").unwrap()), "C");
    }
}
