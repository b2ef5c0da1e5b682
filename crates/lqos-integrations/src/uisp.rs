//! UISP (NMS API v2.1): three GETs (`sites`, `devices?withInterfaces=true`, `data-links`) with
//! `X-Auth-Token`, then a pure [`import`] that builds the site/AP hierarchy and one circuit per
//! client ("endpoint") site.
//!
//! Rules (LibreQoS 1.5 behaviour, minus its documented bugs):
//! - client → AP: a device's `attributes.apDevice`, else a device data-link to another site,
//!   else a site-level data-link; otherwise the client goes under `Orphans` (`full`, `ap_site`)
//!   or stays unparented (`ap_only`, `flat`). `exception_cpes` forces a parent by name.
//! - rates: with site QoS, Max = (plan + burst) × max(overhead, client multiplier) and
//!   Min = plan × `commit_bandwidth_multiplier`, burst Mbps = burst size (kB) × 8 / 1000;
//!   without QoS the generated-parent rates are used. A known CPE Ethernet port caps both at
//!   0.94 × its speed. `suspended_strategy`: `none` shapes normally, `ignore` leaves the client
//!   out, `slow` shapes it at 0.1 Mbps.
//! - AP capacity: AirMax flexible-frame APs use `totalCapacity × airmax_capacity` split by the
//!   live `dlRatio` (else 0.8); others `downlinkCapacity`/`uplinkCapacity`, × `airmax_capacity`
//!   for 5AC models and × `ltu_capacity` for LTU models; capped to 0.94 × the fastest active
//!   Ethernet port; zero → the generated-parent rates.
//! - names: duplicate site names get their first address segment (else the service name, else
//!   a short id) appended; an AP whose hostname collides gets `[short id]`.

use std::collections::{HashMap, HashSet, VecDeque};

use lqos_config::{
    Circuit, CircuitId, Config, Device, Diagnostic, RateKbit, SuspendedStrategy, TopologyStrategy,
    UispConfig,
};
use serde::Deserialize;
use serde_json::Value;
use tracing::debug;

use crate::Import;
use crate::common::{
    AddressFilter, AddressSet, BuildNode, ETHERNET_PORT_LIMIT_MULTIPLIER, SharedRules, TreeBuilder,
    UniqueNames, drop_duplicates_and_empty, lat_lon, min_max, parse_host_or_net, rate,
};
use crate::error::{Crm, ImportError};
use crate::http::{Auth, Http, HttpOptions};

/// LibreQoS's `airmax_flexible_frame_download_ratio` default (not in lqos.conf's model).
pub const AIRMAX_FLEXIBLE_FRAME_DOWNLOAD_RATIO: f64 = 0.8;
/// Name of the generated node for clients without an AP and sites without a path to the root.
pub const ORPHANS_NODE: &str = "Orphans";
/// Name of the synthetic root when several sites have an Internet link.
pub const INSERTED_ROOT: &str = "INSERTED_INTERNET";
/// Rate of a suspended client under `suspended_strategy = "slow"`, Mbps.
pub const SUSPENDED_SLOW_MBPS: f64 = 0.1;
const LABEL: &str = "UISP";

/// The three raw answers, exactly as UISP sent them.
#[derive(Debug, Clone, PartialEq)]
pub struct UispDocs {
    /// `GET /nms/api/v2.1/sites`
    pub sites: Value,
    /// `GET /nms/api/v2.1/devices?withInterfaces=true`
    pub devices: Value,
    /// `GET /nms/api/v2.1/data-links`
    pub data_links: Value,
}

fn uisp_config(config: &Config) -> Result<&UispConfig, ImportError> {
    let u = config.uisp.as_ref().ok_or_else(|| ImportError::NotConfigured {
        crm: Crm::Uisp,
        cause: "the section is missing".into(),
    })?;
    if u.url.trim().is_empty() || u.token.trim().is_empty() {
        return Err(ImportError::NotConfigured {
            crm: Crm::Uisp,
            cause: "url and token are required".into(),
        });
    }
    Ok(u)
}

/// The NMS API base: trailing slashes trimmed, `/nms/api/v2.1` appended when absent.
pub fn api_base(url: &str) -> String {
    let u = url.trim().trim_end_matches('/');
    if u.ends_with("/nms/api/v2.1") { u.to_string() } else { format!("{u}/nms/api/v2.1") }
}

/// Fetches the three documents (concurrently).
pub async fn pull(config: &Config, opts: &HttpOptions) -> Result<UispDocs, ImportError> {
    let u = uisp_config(config)?;
    let http = Http::new(Crm::Uisp, opts, u.insecure_ssl)?;
    let base = api_base(&u.url);
    let auth = Auth::Header("X-Auth-Token", u.token.trim());
    let (sites_url, devices_url, links_url) = (
        format!("{base}/sites"),
        format!("{base}/devices?withInterfaces=true"),
        format!("{base}/data-links"),
    );
    let (sites, devices, data_links) = tokio::try_join!(
        http.get_json(&sites_url, auth),
        http.get_json(&devices_url, auth),
        http.get_json(&links_url, auth),
    )?;
    for (url, v) in [(&sites_url, &sites), (&devices_url, &devices), (&links_url, &data_links)] {
        if !v.is_array() {
            return Err(ImportError::Shape {
                crm: Crm::Uisp,
                url: url.clone(),
                cause: format!("expected a JSON list, got {}", json_kind(v)),
            });
        }
    }
    Ok(UispDocs { sites, devices, data_links })
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

// --- serde mirrors (lenient: every field optional) -------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct IdRef {
    id: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Site {
    id: Option<String>,
    identification: Option<SiteIdent>,
    description: Option<SiteDesc>,
    qos: Option<Qos>,
    ucrm: Option<Ucrm>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SiteIdent {
    id: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    parent: Option<IdRef>,
    suspended: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SiteDesc {
    address: Option<String>,
    location: Option<Location>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Qos {
    enabled: Option<bool>,
    download_speed: Option<f64>,
    upload_speed: Option<f64>,
    download_burst_size: Option<f64>,
    upload_burst_size: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Ucrm {
    service: Option<IdRef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct DeviceRaw {
    identification: Option<DevIdent>,
    ip_address: Option<String>,
    attributes: Option<Attributes>,
    overview: Option<Overview>,
    interfaces: Option<Vec<Iface>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct DevIdent {
    id: Option<String>,
    hostname: Option<String>,
    name: Option<String>,
    mac: Option<String>,
    model: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    role: Option<String>,
    site: Option<IdRef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Attributes {
    ap_device: Option<IdRef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Overview {
    downlink_capacity: Option<f64>,
    uplink_capacity: Option<f64>,
    total_capacity: Option<f64>,
    wireless_mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Iface {
    identification: Option<IfaceIdent>,
    addresses: Option<Vec<IfaceAddr>>,
    status: Option<IfaceStatus>,
    wireless: Option<Wireless>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct IfaceIdent {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct IfaceAddr {
    cidr: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct IfaceStatus {
    status: Option<String>,
    current_speed: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Wireless {
    dl_ratio: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Link {
    from: Option<LinkEnd>,
    to: Option<LinkEnd>,
    can_delete: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LinkEnd {
    device: Option<Identified>,
    site: Option<Identified>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Identified {
    identification: Option<IdRef>,
}

impl LinkEnd {
    fn device_id(&self) -> Option<&str> {
        self.device.as_ref()?.identification.as_ref()?.id.as_deref()
    }
    fn site_id(&self) -> Option<&str> {
        self.site.as_ref()?.identification.as_ref()?.id.as_deref()
    }
}

fn parse_list<T: for<'de> Deserialize<'de>>(
    v: &Value,
    what: &str,
    warnings: &mut Vec<Diagnostic>,
) -> Result<Vec<T>, ImportError> {
    let Value::Array(items) = v else {
        return Err(ImportError::Shape {
            crm: Crm::Uisp,
            url: what.to_string(),
            cause: format!("expected a JSON list, got {}", json_kind(v)),
        });
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match T::deserialize(item) {
            Ok(t) => out.push(t),
            Err(e) => warnings.push(
                Diagnostic::warning(
                    LABEL,
                    format!("{what}[{i}] is not understood and was skipped: {e}"),
                )
                .field(what),
            ),
        }
    }
    Ok(out)
}

// --- helpers -----------------------------------------------------------------------------------

/// "Doe, Jane" → "Jane Doe" (one comma, both sides words without digits); other names as is.
pub fn normalise_client_name(name: &str) -> String {
    let parts: Vec<&str> = name.split(',').map(str::trim).collect();
    if let [last, first] = parts.as_slice()
        && !last.is_empty()
        && !first.is_empty()
        && !name.chars().any(|c| c.is_ascii_digit())
    {
        return format!("{first} {last}");
    }
    name.trim().to_string()
}

/// Link speed in Mbps from UISP's `currentSpeed` (`"1000-full"`, `"10gbps"`, `"100"`).
pub fn parse_speed_mbps(text: &str) -> Option<f64> {
    let t = text.trim().to_ascii_lowercase();
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let n: f64 = digits.parse().ok()?;
    let rest = &t[digits.len()..];
    let mbps = if rest.starts_with("gbps") || rest.starts_with('g') { n * 1000.0 } else { n };
    (mbps > 0.0).then_some(mbps)
}

fn short_id(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_alphanumeric()).take(8).collect()
}

impl DeviceRaw {
    fn id(&self) -> Option<&str> {
        self.identification.as_ref()?.id.as_deref().filter(|s| !s.is_empty())
    }
    fn site_id(&self) -> Option<&str> {
        self.identification.as_ref()?.site.as_ref()?.id.as_deref()
    }
    fn name(&self) -> String {
        let ident = self.identification.as_ref();
        ident
            .and_then(|i| i.hostname.clone().or_else(|| i.name.clone()))
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| self.id().unwrap_or("device").to_string())
    }
    fn ap_device_id(&self) -> Option<&str> {
        self.attributes.as_ref()?.ap_device.as_ref()?.id.as_deref()
    }
    fn model(&self) -> String {
        self.identification.as_ref().and_then(|i| i.model.clone()).unwrap_or_default()
    }
    /// Fastest active Ethernet/SFP port, Mbps.
    fn ethernet_speed_mbps(&self) -> Option<f64> {
        self.interfaces
            .iter()
            .flatten()
            .filter(|i| {
                let kind =
                    i.identification.as_ref().and_then(|id| id.kind.as_deref()).unwrap_or("");
                let name =
                    i.identification.as_ref().and_then(|id| id.name.as_deref()).unwrap_or("");
                let eth = matches!(kind, "eth" | "ethernet" | "sfp" | "sfp+" | "port")
                    || (kind.is_empty() && name.starts_with("eth"));
                let active = i
                    .status
                    .as_ref()
                    .and_then(|s| s.status.as_deref())
                    .is_none_or(|s| s == "active");
                eth && active
            })
            .filter_map(|i| i.status.as_ref()?.current_speed.as_deref().and_then(parse_speed_mbps))
            .fold(None, |acc: Option<f64>, s| Some(acc.map_or(s, |a| a.max(s))))
    }
    fn addresses(&self) -> Vec<ipnet::IpNet> {
        let mut out = Vec::new();
        if let Some(ip) = self.ip_address.as_deref().and_then(|s| {
            let host = s.split('/').next().unwrap_or(s);
            parse_host_or_net(host)
        }) {
            out.push(ip);
        }
        for iface in self.interfaces.iter().flatten() {
            for a in iface.addresses.iter().flatten() {
                if let Some(net) = a.cidr.as_deref().and_then(parse_host_or_net)
                    && !out.contains(&net)
                {
                    out.push(net);
                }
            }
        }
        out
    }
    /// AP capacity in Mbps (download, upload); `None` when UISP reports none.
    fn capacity_mbps(&self, u: &UispConfig) -> Option<(f64, f64)> {
        let ov = self.overview.as_ref()?;
        let ident = self.identification.as_ref();
        let is_flex = ident.and_then(|i| i.kind.as_deref()) == Some("airMax")
            && ident.and_then(|i| i.role.as_deref()) == Some("ap")
            && ov.wireless_mode.as_deref() == Some("ap-ptmp");
        let (mut down, mut up) = if is_flex {
            let total = ov
                .total_capacity
                .filter(|t| *t > 0.0)
                .unwrap_or(ov.downlink_capacity.unwrap_or(0.0) + ov.uplink_capacity.unwrap_or(0.0));
            let total = total / 1e6 * u.airmax_capacity;
            let ratio = self
                .interfaces
                .iter()
                .flatten()
                .find_map(|i| i.wireless.as_ref()?.dl_ratio)
                .map(|r| if r > 1.0 { r / 100.0 } else { r })
                .filter(|r| *r > 0.0 && *r < 1.0)
                .unwrap_or(AIRMAX_FLEXIBLE_FRAME_DOWNLOAD_RATIO);
            (total * ratio, total * (1.0 - ratio))
        } else {
            let model = self.model().to_ascii_uppercase();
            let mut f = 1.0;
            if model.contains("5AC") {
                f *= u.airmax_capacity;
            }
            if model.contains("LTU") {
                f *= u.ltu_capacity;
            }
            (
                ov.downlink_capacity.unwrap_or(0.0) / 1e6 * f,
                ov.uplink_capacity.unwrap_or(0.0) / 1e6 * f,
            )
        };
        if down <= 0.0 || up <= 0.0 {
            return None;
        }
        if let Some(eth) = self.ethernet_speed_mbps() {
            let cap = eth * ETHERNET_PORT_LIMIT_MULTIPLIER;
            down = down.min(cap);
            up = up.min(cap);
        }
        Some((down, up))
    }
}

/// A neighbour site and the capacity of the link to it, when known.
type SiteEdge = (usize, Option<(RateKbit, RateKbit)>);

struct SiteInfo {
    id: String,
    raw_name: String,
    client: bool,
    parent: Option<String>,
    suspended: bool,
    address: Option<String>,
    service_name: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    qos: Option<Qos>,
}

/// Turns the three documents into the network and the circuits. Pure: no I/O.
pub fn import(docs: &UispDocs, config: &Config) -> Result<Import, ImportError> {
    let u = uisp_config(config)?;
    let rules = SharedRules::from_config(config);
    let filter = AddressFilter::allow_and_ignore(config);
    let mode = config.topology.compile_mode.unwrap_or(u.strategy);
    let gen_down = config.queues.generated_pn_download.as_mbps_f64();
    let gen_up = config.queues.generated_pn_upload.as_mbps_f64();
    let mut warnings = Vec::new();

    let raw_sites: Vec<Site> = parse_list(&docs.sites, "sites", &mut warnings)?;
    let raw_devices: Vec<DeviceRaw> = parse_list(&docs.devices, "devices", &mut warnings)?;
    let links: Vec<Link> = parse_list(&docs.data_links, "data-links", &mut warnings)?;

    // 1. Sites: dedupe by id, drop excluded ones.
    let mut sites: Vec<SiteInfo> = Vec::new();
    let mut seen = HashSet::new();
    let mut excluded: HashSet<String> = HashSet::new();
    for s in raw_sites {
        let ident = s.identification.unwrap_or_default();
        let Some(id) = s.id.or(ident.id).filter(|i| !i.is_empty()) else {
            warnings.push(Diagnostic::warning(LABEL, "a site without an id was skipped"));
            continue;
        };
        if !seen.insert(id.clone()) {
            continue;
        }
        let raw_name = ident.name.unwrap_or_else(|| id.clone());
        if rules.is_excluded(&raw_name) {
            debug!(site = %raw_name, "excluded by exclude_sites");
            excluded.insert(id);
            continue;
        }
        let desc = s.description.unwrap_or_default();
        let loc = desc.location.unwrap_or_default();
        sites.push(SiteInfo {
            client: ident.kind.as_deref() == Some("endpoint"),
            parent: ident.parent.and_then(|p| p.id),
            suspended: ident.suspended.unwrap_or(false),
            address: desc.address.filter(|a| !a.trim().is_empty()),
            service_name: s.ucrm.and_then(|c| c.service).and_then(|sv| sv.name),
            lat: loc.latitude,
            lon: loc.longitude,
            qos: s.qos,
            raw_name,
            id,
        });
    }
    let site_index: HashMap<&str, usize> =
        sites.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();

    // 2. Names: clients normalised; duplicates get a distinguishing suffix.
    let base_names: Vec<String> = sites
        .iter()
        .map(|s| {
            if s.client {
                normalise_client_name(&s.raw_name)
            } else {
                s.raw_name.trim().to_string()
            }
        })
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for n in &base_names {
        *counts.entry(n.as_str()).or_default() += 1;
    }
    let mut names = UniqueNames::default();
    let site_names: Vec<String> = sites
        .iter()
        .zip(&base_names)
        .map(|(s, base)| {
            let name = if counts.get(base.as_str()).copied().unwrap_or(0) > 1 {
                let extra = s
                    .address
                    .as_deref()
                    .and_then(|a| a.split(',').next())
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .or_else(|| s.service_name.clone())
                    .unwrap_or_else(|| short_id(&s.id));
                warnings.push(Diagnostic::warning(
                    LABEL,
                    format!("site name '{base}' is used more than once; site {} is named '{base}, {extra}'", s.id),
                ));
                format!("{base}, {extra}")
            } else {
                base.clone()
            };
            if s.client { name } else { names.claim(&name, &short_id(&s.id)) }
        })
        .collect();

    // 3. Devices: dedupe, drop those in excluded or unknown sites.
    let mut devices: Vec<DeviceRaw> = Vec::new();
    let mut dev_seen = HashSet::new();
    let mut excluded_devices: HashSet<String> = HashSet::new();
    for d in raw_devices {
        let Some(id) = d.id().map(str::to_string) else { continue };
        let Some(site) = d.site_id() else { continue };
        if excluded.contains(site) {
            excluded_devices.insert(id);
            continue;
        }
        if !site_index.contains_key(site) || !dev_seen.insert(id) {
            continue;
        }
        devices.push(d);
    }
    let dev_index: HashMap<&str, usize> =
        devices.iter().enumerate().filter_map(|(i, d)| d.id().map(|id| (id, i))).collect();
    let dev_site = |di: usize| {
        devices.get(di).and_then(|d| d.site_id()).and_then(|s| site_index.get(s).copied())
    };
    let is_infra_site = |si: usize| sites.get(si).is_some_and(|s| !s.client);

    // 4. Client → AP.
    let mut client_ap: HashMap<usize, usize> = HashMap::new();
    for (si, s) in sites.iter().enumerate().filter(|(_, s)| s.client) {
        let own: Vec<usize> = (0..devices.len()).filter(|&di| dev_site(di) == Some(si)).collect();
        let other_site_device = |id: Option<&str>| -> Option<usize> {
            let di = *dev_index.get(id?)?;
            (dev_site(di) != Some(si)).then_some(di)
        };
        let by_attr = own.iter().find_map(|&di| other_site_device(devices[di].ap_device_id()));
        let by_link = || {
            links.iter().find_map(|l| {
                let (f, t) = (l.from.as_ref()?, l.to.as_ref()?);
                let f_own =
                    f.device_id().and_then(|d| dev_index.get(d)).is_some_and(|di| own.contains(di));
                let t_own =
                    t.device_id().and_then(|d| dev_index.get(d)).is_some_and(|di| own.contains(di));
                if f_own && !t_own {
                    other_site_device(t.device_id())
                } else if t_own && !f_own {
                    other_site_device(f.device_id())
                } else {
                    None
                }
            })
        };
        let by_site_link = || {
            links.iter().find_map(|l| {
                let (f, t) = (l.from.as_ref()?, l.to.as_ref()?);
                if f.site_id() == Some(s.id.as_str())
                    && f.device_id().is_none_or(|d| !dev_index.contains_key(d))
                {
                    other_site_device(t.device_id())
                } else if t.site_id() == Some(s.id.as_str())
                    && t.device_id().is_none_or(|d| !dev_index.contains_key(d))
                {
                    other_site_device(f.device_id())
                } else {
                    None
                }
            })
        };
        if let Some(ap) = by_attr.or_else(by_link).or_else(by_site_link) {
            client_ap.insert(si, ap);
        }
    }

    // 5. Circuits (parents filled in after the hierarchy is named).
    struct Draft {
        site: usize,
        circuit: Circuit,
        ap: Option<usize>,
        forced_parent: Option<String>,
    }
    let mut drafts: Vec<Draft> = Vec::new();
    for (si, s) in sites.iter().enumerate().filter(|(_, s)| s.client) {
        let name = site_names[si].clone();
        if s.suspended && u.suspended_strategy == SuspendedStrategy::Ignore {
            warnings.push(Diagnostic::warning(
                LABEL,
                format!("client '{name}' ({}) is suspended and left out (suspended_strategy = \"ignore\")", s.id),
            ));
            continue;
        }
        let own: Vec<usize> = (0..devices.len()).filter(|&di| dev_site(di) == Some(si)).collect();
        let behind_excluded = s.parent.as_ref().is_some_and(|p| excluded.contains(p))
            || own.iter().any(|&di| {
                devices[di].ap_device_id().is_some_and(|a| excluded_devices.contains(a))
            });
        if behind_excluded {
            debug!(client = %name, "behind an excluded site, left out");
            continue;
        }
        let mut devs = Vec::new();
        for &di in &own {
            let d = &devices[di];
            let mut set = AddressSet::default();
            for net in d.addresses() {
                set.push(net, &filter);
            }
            for r in &set.rejected {
                warnings.push(Diagnostic::warning(
                    LABEL,
                    format!(
                        "address {r} of device '{}' (client '{name}') is outside [ip_ranges] allow_subnets or inside ignore_subnets; left out",
                        d.name()
                    ),
                ));
            }
            devs.push(Device {
                id: d.id().unwrap_or_default().to_string(),
                name: d.name(),
                mac: d.identification.as_ref().and_then(|i| i.mac.clone()).unwrap_or_default(),
                ipv4: set.v4,
                ipv6: set.v6,
                comment: String::new(),
                line: 0,
            });
        }
        // Rates.
        let qos = s.qos.as_ref().filter(|q| {
            q.enabled.unwrap_or(true)
                && q.download_speed.unwrap_or(0.0) > 0.0
                && q.upload_speed.unwrap_or(0.0) > 0.0
        });
        let ((mut dmin, mut dmax), (mut umin, mut umax)) = match qos {
            Some(q) => {
                let plan_d = q.download_speed.unwrap_or(0.0) / 1e6;
                let plan_u = q.upload_speed.unwrap_or(0.0) / 1e6;
                let burst_d = q.download_burst_size.unwrap_or(0.0).max(0.0) * 8.0 / 1000.0;
                let burst_u = q.upload_burst_size.unwrap_or(0.0).max(0.0) * 8.0 / 1000.0;
                (
                    (plan_d * rules.commit, rules.client_max_mbps(plan_d + burst_d)),
                    (plan_u * rules.commit, rules.client_max_mbps(plan_u + burst_u)),
                )
            }
            None => {
                let (d, up) = (rules.client_max_mbps(gen_down), rules.client_max_mbps(gen_up));
                ((d * rules.commit, d), (up * rules.commit, up))
            }
        };
        if s.suspended && u.suspended_strategy == SuspendedStrategy::Slow {
            (dmin, dmax, umin, umax) = (
                SUSPENDED_SLOW_MBPS,
                SUSPENDED_SLOW_MBPS,
                SUSPENDED_SLOW_MBPS,
                SUSPENDED_SLOW_MBPS,
            );
        } else if let Some(port) =
            own.iter().filter_map(|&di| devices[di].ethernet_speed_mbps()).reduce(f64::max)
        {
            let cap = port * ETHERNET_PORT_LIMIT_MULTIPLIER;
            if dmax > cap || umax > cap {
                warnings.push(Diagnostic::warning(
                    LABEL,
                    format!("client '{name}': rates capped to {cap} Mbps by the CPE's {port} Mbps Ethernet port"),
                ));
            }
            (dmin, dmax, umin, umax) = (dmin.min(cap), dmax.min(cap), umin.min(cap), umax.min(cap));
        }
        let (download_min, download_max) = min_max(dmin, dmax);
        let (upload_min, upload_max) = min_max(umin, umax);
        let forced_parent = u
            .exception_cpes
            .iter()
            .find(|e| {
                e.cpe == s.raw_name
                    || e.cpe == name
                    || own.iter().any(|&di| devices[di].name() == e.cpe)
            })
            .map(|e| e.parent.clone());
        drafts.push(Draft {
            site: si,
            ap: client_ap.get(&si).copied(),
            forced_parent,
            circuit: Circuit {
                id: CircuitId(s.id.clone()),
                name,
                parent_node: None,
                parent_node_id: None,
                anchor_node_id: None,
                download_min,
                upload_min,
                download_max,
                upload_max,
                sqm: None,
                devices: devs,
                line: 0,
            },
        });
    }

    // 6. Hierarchy.
    let top = (config.queues.downlink, config.queues.uplink);
    let gen_rates = (rate(gen_down), rate(gen_up));
    let mut tree = TreeBuilder::default();
    let mut site_node: HashMap<usize, usize> = HashMap::new();
    let mut orphans: Option<usize> = None;
    let site_build = |si: usize, parent: Option<usize>, rates: (RateKbit, RateKbit)| -> BuildNode {
        let s = &sites[si];
        BuildNode {
            name: site_names[si].clone(),
            id: Some(format!("uisp:site:{}", s.id)),
            node_type: "site",
            download: rates.0,
            upload: rates.1,
            parent,
            extra: lat_lon(s.lat, s.lon),
        }
    };
    let orphans_build = |names: &mut UniqueNames| BuildNode {
        name: names.claim(ORPHANS_NODE, "generated"),
        id: Some("uisp:site:orphans".into()),
        node_type: "site",
        download: gen_rates.0,
        upload: gen_rates.1,
        parent: None,
        extra: Default::default(),
    };
    let used_aps: Vec<usize> = {
        let mut v: Vec<usize> = drafts.iter().filter_map(|d| d.ap).collect();
        let mut seen = HashSet::new();
        v.retain(|a| seen.insert(*a));
        v
    };
    let ap_rates = |di: usize| -> (RateKbit, RateKbit) {
        devices[di].capacity_mbps(u).map(|(d, up)| (rate(d), rate(up))).unwrap_or(gen_rates)
    };
    match mode {
        TopologyStrategy::Flat | TopologyStrategy::ApOnly => {}
        TopologyStrategy::ApSite => {
            for &ap in &used_aps {
                if let Some(si) = dev_site(ap).filter(|&si| is_infra_site(si))
                    && !site_node.contains_key(&si)
                {
                    let idx = tree.add(site_build(si, None, gen_rates));
                    site_node.insert(si, idx);
                }
            }
        }
        TopologyStrategy::Full => {
            // Root: the configured site, else the sites with an Internet link.
            let configured = (!u.site.trim().is_empty())
                .then(|| {
                    (0..sites.len())
                        .find(|&i| is_infra_site(i) && sites[i].raw_name.trim() == u.site.trim())
                })
                .flatten();
            let roots: Vec<usize> = match configured {
                Some(r) => vec![r],
                None => {
                    let mut r: Vec<usize> = Vec::new();
                    for l in &links {
                        if l.can_delete == Some(false)
                            && let Some(si) = l
                                .from
                                .as_ref()
                                .and_then(|f| f.site_id())
                                .and_then(|s| site_index.get(s).copied())
                            && is_infra_site(si)
                            && !r.contains(&si)
                        {
                            r.push(si);
                        }
                    }
                    r
                }
            };
            if roots.is_empty() {
                return Err(ImportError::Data {
                    crm: Crm::Uisp,
                    cause: if u.site.trim().is_empty() {
                        "no root site: no data-link marks the Internet uplink (canDelete = false); set `site` in [uisp_integration]".into()
                    } else {
                        format!(
                            "root site '{}' (`site` in [uisp_integration]) is not an infrastructure site in UISP",
                            u.site
                        )
                    },
                });
            }
            // Site graph: NMS parent links and device data-links between infrastructure sites.
            let mut adj: HashMap<usize, Vec<SiteEdge>> = HashMap::new();
            for l in &links {
                let (Some(f), Some(t)) = (l.from.as_ref(), l.to.as_ref()) else { continue };
                let (Some(fd), Some(td)) = (
                    f.device_id().and_then(|d| dev_index.get(d).copied()),
                    t.device_id().and_then(|d| dev_index.get(d).copied()),
                ) else {
                    continue;
                };
                let (Some(fs), Some(ts)) = (dev_site(fd), dev_site(td)) else { continue };
                if fs == ts || !is_infra_site(fs) || !is_infra_site(ts) {
                    continue;
                }
                let cap = [fd, td]
                    .iter()
                    .filter_map(|&d| devices[d].capacity_mbps(u))
                    .reduce(|a, b| (a.0.min(b.0), a.1.min(b.1)))
                    .map(|(d, up)| (rate(d), rate(up)));
                adj.entry(fs).or_default().push((ts, cap));
                adj.entry(ts).or_default().push((fs, cap));
            }
            // NMS parent links last: a data-link (with its capacity) wins.
            for (si, s) in sites.iter().enumerate().filter(|(_, s)| !s.client) {
                if let Some(p) = s
                    .parent
                    .as_deref()
                    .and_then(|p| site_index.get(p).copied())
                    .filter(|&p| is_infra_site(p))
                {
                    adj.entry(p).or_default().push((si, None));
                    adj.entry(si).or_default().push((p, None));
                }
            }
            let parent_of_roots = if roots.len() > 1 {
                Some(tree.add(BuildNode {
                    name: names.claim(INSERTED_ROOT, "generated"),
                    id: Some("uisp:site:ROOT-001".into()),
                    node_type: "site",
                    download: top.0,
                    upload: top.1,
                    parent: None,
                    extra: Default::default(),
                }))
            } else {
                None
            };
            let mut queue = VecDeque::new();
            for &r in &roots {
                let idx = tree.add(site_build(r, parent_of_roots, top));
                site_node.insert(r, idx);
                queue.push_back(r);
            }
            while let Some(si) = queue.pop_front() {
                let parent_idx = site_node.get(&si).copied();
                for &(n, cap) in adj.get(&si).map(Vec::as_slice).unwrap_or(&[]) {
                    if site_node.contains_key(&n) {
                        continue;
                    }
                    let idx = tree.add(site_build(n, parent_idx, cap.unwrap_or(gen_rates)));
                    site_node.insert(n, idx);
                    queue.push_back(n);
                }
            }
            for si in (0..sites.len()).filter(|&i| is_infra_site(i)) {
                if let std::collections::hash_map::Entry::Vacant(slot) = site_node.entry(si) {
                    let o = *orphans.get_or_insert_with(|| tree.add(orphans_build(&mut names)));
                    warnings.push(Diagnostic::warning(
                        LABEL,
                        format!(
                            "site '{}' has no path to the root site; placed under '{ORPHANS_NODE}'",
                            site_names[si]
                        ),
                    ));
                    slot.insert(tree.add(site_build(si, Some(o), gen_rates)));
                }
            }
        }
    }
    // AP nodes.
    let mut ap_node: HashMap<usize, usize> = HashMap::new();
    if mode != TopologyStrategy::Flat {
        for &ap in &used_aps {
            let parent = dev_site(ap).and_then(|si| site_node.get(&si).copied());
            let d = &devices[ap];
            let id = d.id().unwrap_or_default();
            let rates = ap_rates(ap);
            let idx = tree.add(BuildNode {
                name: names.claim(&d.name(), &short_id(id)),
                id: Some(format!("uisp:device:{id}")),
                node_type: "ap",
                download: rates.0,
                upload: rates.1,
                parent,
                extra: Default::default(),
            });
            ap_node.insert(ap, idx);
        }
    }
    // Parents.
    let mut circuits = Vec::with_capacity(drafts.len());
    for mut d in drafts {
        let mut parent = d.ap.and_then(|ap| ap_node.get(&ap).copied());
        if let Some(forced) = &d.forced_parent {
            match (0..tree.len()).find(|&i| tree.get(i).is_some_and(|n| n.name == *forced)) {
                Some(i) => parent = Some(i),
                None => warnings.push(Diagnostic::warning(
                    LABEL,
                    format!("exception_cpes: parent '{forced}' of '{}' is not a node of the import; ignored", d.circuit.name),
                )),
            }
        }
        if parent.is_none() && d.ap.is_none() {
            warnings.push(Diagnostic::warning(
                LABEL,
                format!(
                    "client '{}' ({}) has no link to an access point",
                    d.circuit.name, sites[d.site].id
                ),
            ));
        }
        if parent.is_none() && matches!(mode, TopologyStrategy::Full | TopologyStrategy::ApSite) {
            parent = Some(*orphans.get_or_insert_with(|| tree.add(orphans_build(&mut names))));
        }
        if let Some(n) = parent.and_then(|p| tree.get(p)) {
            d.circuit.parent_node = Some(n.name.clone());
            d.circuit.parent_node_id = n.id.clone();
        }
        circuits.push(d.circuit);
    }
    let circuits = drop_duplicates_and_empty(circuits, LABEL, &mut warnings);
    // Keep only nodes that lead to a circuit, except in `full` mode (the whole site tree).
    let mut useful = vec![mode == TopologyStrategy::Full; tree.len()];
    for c in &circuits {
        let mut cur = (0..tree.len())
            .find(|&i| tree.get(i).is_some_and(|n| Some(&n.name) == c.parent_node.as_ref()));
        while let Some(i) = cur {
            if let Some(slot) = useful.get_mut(i) {
                *slot = true;
            }
            cur = tree.get(i).and_then(|n| n.parent);
        }
    }
    let network = tree.finish(&config.integration_common.promote_to_root, top, |i| {
        useful.get(i).copied().unwrap_or(false)
    });
    debug!(circuits = circuits.len(), nodes = network.nodes.len(), "UISP import built");
    Ok(Import { crm: Crm::Uisp, network, circuits, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_names_are_turned_round() {
        assert_eq!(normalise_client_name("Doe, Jane"), "Jane Doe");
        assert_eq!(normalise_client_name("ACME Ltd"), "ACME Ltd");
        assert_eq!(normalise_client_name("Main St, 12"), "Main St, 12");
    }

    #[test]
    fn speeds_parse() {
        assert_eq!(parse_speed_mbps("1000-full"), Some(1000.0));
        assert_eq!(parse_speed_mbps("10gbps"), Some(10000.0));
        assert_eq!(parse_speed_mbps("unknown"), None);
    }

    #[test]
    fn api_base_appends_path_once() {
        assert_eq!(api_base("https://uisp.example.com/"), "https://uisp.example.com/nms/api/v2.1");
        assert_eq!(api_base("https://u.example/nms/api/v2.1"), "https://u.example/nms/api/v2.1");
    }
}
