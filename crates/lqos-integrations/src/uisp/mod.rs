//! UISP (NMS API v2.1): three GETs (`sites`, `devices?withInterfaces=true`, `data-links`) with
//! `X-Auth-Token`, plus the operator's `integrationUISProutes.csv` when present, then a pure
//! [`import`] that builds the site/AP hierarchy and one circuit per client ("endpoint") site.
//!
//! Rules (LibreQoS's Rust UISP integration, `full` = its capacity-weighted `full2`):
//! - names: "Last, First" client sites become "First Last" unless a part is a business suffix
//!   ("Acme, LLC" stays); every site sharing a name gets ` (address segment)`, else
//!   ` (service name)`, else ` (short id)` ([`naming`]). `circuit_name_as_address` names a
//!   circuit after its site's address.
//! - client → AP: a device's `attributes.apDevice`, else a device data-link to another site,
//!   else a site-level data-link (the last match wins, as in LibreQoS); an AP outside the
//!   infrastructure tree or no AP at all → `Orphans` (`full`, `ap_site`). `exception_cpes`
//!   (`cpe:parent`) forces the parent of a CPE's circuit to an AP or a site.
//! - topology (`full`): parents and capacities follow the route search in [`graph`]; route
//!   overrides come from [`routes`]. Radios that carry no circuit are not emitted (their
//!   capacity still limits the path); `use_ptmp_as_parent` hangs a site under the PtMP AP
//!   that feeds it; `squash_sites` leaves named sites out (children move up).
//! - rates: Min = plan × `commit_bandwidth_multiplier`, Max = (plan + burst) ×
//!   `bandwidth_overhead_factor` (burst Mbps = burst size × 8 / 1000 / 1024, as LibreQoS);
//!   without a plan the generated-parent rates × overhead. The slowest negotiated Ethernet
//!   port of the station CPEs (or, without one, of the non-router devices) caps Max at
//!   `ethernet_port_limit_multiplier` × its speed. `suspended_strategy`: `none` shapes
//!   normally, `ignore` leaves the client out, `slow` shapes it at 0.1 Mbps.
//! - radio capacity: see [`device`] (airMax flexible frame, 5AC/LTU factors, transport caps).
//!
//! Every difference from LibreQoS, with its reason, is listed in [`parity`].

pub mod device;
pub mod graph;
pub mod parity {
    #![doc = include_str!("../../docs/uisp.md")]
}
pub mod naming;
mod raw;
pub mod routes;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use lqos_config::{
    Circuit, CircuitId, Config, Device, Diagnostic, RateKbit, SuspendedStrategy, TopologyStrategy,
    UispConfig,
};
use serde_json::Value;
use tracing::debug;

use crate::Import;
use crate::common::{
    AddressFilter, AddressSet, BuildNode, SharedRules, TreeBuilder, UniqueNames,
    drop_duplicates_and_empty, lat_lon, min_max, rate,
};
use crate::error::{Crm, ImportError};
use crate::http::{Auth, Http, HttpOptions};

pub use device::{
    AIRMAX_FLEXIBLE_FRAME_DOWNLOAD_RATIO, Capacity, DeviceRules, ETHERNET_PORT_LIMIT_MULTIPLIER,
    PortPolicy, parse_speed_mbps,
};
pub use naming::normalise_client_name;
pub use routes::{ROUTES_FILE, RouteOverride, parse_routes};

use graph::{FALLBACK_COST, Graph, hop_cost, override_cost};
use raw::{DeviceRaw, Link, Qos, Site, parse_list};

/// Name of the generated node for clients without an AP and sites without a path to the root.
pub const ORPHANS_NODE: &str = "Orphans";
/// Its stable id (LibreQoS's id for its generated Orphans site).
pub const ORPHANS_ID: &str = "libreqos:generated:uisp:site:orphans";
/// Rate of a suspended client under `suspended_strategy = "slow"`, Mbps.
pub const SUSPENDED_SLOW_MBPS: f64 = 0.1;
const LABEL: &str = "UISP";

/// The operator's route overrides file, as read by [`pull`].
#[derive(Debug, Clone, PartialEq)]
pub struct RoutesFile {
    /// Where it was read (used in diagnostics).
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

/// The three raw answers, exactly as UISP sent them, and the route overrides file.
#[derive(Debug, Clone, PartialEq)]
pub struct UispDocs {
    /// `GET /nms/api/v2.1/sites`
    pub sites: Value,
    /// `GET /nms/api/v2.1/devices?withInterfaces=true`
    pub devices: Value,
    /// `GET /nms/api/v2.1/data-links`
    pub data_links: Value,
    /// `<lqos_directory>/integrationUISProutes.csv`, when it exists.
    pub routes: Option<RoutesFile>,
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

/// Reads `integrationUISProutes.csv` from `lqos_directory`; `None` when it does not exist.
pub fn read_routes_file(config: &Config) -> Result<Option<RoutesFile>, ImportError> {
    let path = config.lqos_directory.join(ROUTES_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(RoutesFile { path, text })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ImportError::Read { path, source }),
    }
}

/// Fetches the three documents (concurrently) and reads the route overrides file.
pub async fn pull(config: &Config, opts: &HttpOptions) -> Result<UispDocs, ImportError> {
    let u = uisp_config(config)?;
    let routes = read_routes_file(config)?;
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
    Ok(UispDocs { sites, devices, data_links, routes })
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

fn short_id(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_alphanumeric()).take(8).collect()
}

fn mbps_u64(r: RateKbit) -> u64 {
    (r.as_mbps_f64().round().max(0.0)) as u64
}

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

/// A node of the emitted tree in `full` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Emit {
    Site(usize),
    Ap(usize),
}

/// The device rules from the configuration.
fn device_rules(config: &Config, u: &UispConfig) -> DeviceRules {
    DeviceRules {
        generated: (
            mbps_u64(config.queues.generated_pn_download),
            mbps_u64(config.queues.generated_pn_upload),
        ),
        airmax_capacity: u.airmax_capacity,
        airmax_ratio: u.airmax_flexible_frame_download_ratio,
        ltu_capacity: u.ltu_capacity,
        transport_caps: u.infrastructure_transport_caps_enabled,
        port: PortPolicy {
            enabled: config.integration_common.ethernet_port_limits_enabled,
            multiplier: config.integration_common.ethernet_port_limit_multiplier,
        },
    }
}

/// Turns the documents into the network and the circuits. Pure: no I/O.
pub fn import(docs: &UispDocs, config: &Config) -> Result<Import, ImportError> {
    let u = uisp_config(config)?;
    let rules = SharedRules::from_config(config);
    let dev_rules = device_rules(config, u);
    let filter = AddressFilter::allow_and_ignore(config);
    let mode = config.topology.compile_mode.unwrap_or(u.strategy);
    let gen_down = config.queues.generated_pn_download.as_mbps_f64();
    let gen_up = config.queues.generated_pn_upload.as_mbps_f64();
    let mut warnings = Vec::new();

    let raw_sites: Vec<Site> = parse_list(&docs.sites, "sites", &mut warnings)?;
    let raw_devices: Vec<DeviceRaw> = parse_list(&docs.devices, "devices", &mut warnings)?;
    let links: Vec<Link> = parse_list(&docs.data_links, "data-links", &mut warnings)?;
    let route_overrides = match &docs.routes {
        Some(f) => parse_routes(&f.text, &f.path.display().to_string(), &mut warnings),
        None => Vec::new(),
    };
    if u.enable_squashing {
        warnings.push(Diagnostic::warning(
            LABEL,
            "enable_squashing: lqos never emits relay radios that carry no circuit, which is what squashing removes; nothing more to do",
        ).field("uisp_integration.enable_squashing"));
    }

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
        let raw_name = ident.name.map(|n| n.trim().to_string()).unwrap_or_else(|| id.clone());
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

    // 2. Names (LibreQoS's normalisation and disambiguation).
    let inputs: Vec<naming::NameInput<'_>> = sites
        .iter()
        .map(|s| naming::NameInput {
            id: &s.id,
            name: &s.raw_name,
            client: s.client,
            address: s.address.as_deref(),
            service: s.service_name.as_deref(),
        })
        .collect();
    let mut renamed = Vec::new();
    let site_names = naming::site_names(&inputs, &mut renamed);
    for (i, base) in renamed {
        warnings.push(Diagnostic::warning(
            LABEL,
            format!(
                "site name '{base}' is used more than once; site {} is named '{}'",
                sites[i].id, site_names[i]
            ),
        ));
    }
    let mut names = UniqueNames::default();
    for (s, n) in sites.iter().zip(&site_names) {
        if !s.client {
            names.claim(n, &short_id(&s.id));
        }
    }

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
    let site_devices: Vec<Vec<usize>> = {
        let mut v = vec![Vec::new(); sites.len()];
        for di in 0..devices.len() {
            if let Some(si) = dev_site(di) {
                v[si].push(di);
            }
        }
        v
    };
    let caps: Vec<Capacity> = devices.iter().map(|d| d.capacity(&dev_rules)).collect();
    for (d, c) in devices.iter().zip(&caps) {
        if let Some((line, cap, reason)) = &c.transport_cap {
            debug!(device = %d.name(), line, cap, %reason, "radio capacity capped by its transport port");
        }
    }

    // 4. Client → AP (LibreQoS order: apDevice, then device data-links, then site data-links;
    //    within each, the last match wins).
    let mut links_by_device: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut links_by_site: HashMap<&str, Vec<usize>> = HashMap::new();
    for (li, l) in links.iter().enumerate() {
        for end in [l.from.as_ref(), l.to.as_ref()].into_iter().flatten() {
            if let Some(d) = end.device_id() {
                let v = links_by_device.entry(d).or_default();
                if v.last() != Some(&li) {
                    v.push(li);
                }
            }
            if let Some(si) = end.site_id() {
                let v = links_by_site.entry(si).or_default();
                if v.last() != Some(&li) {
                    v.push(li);
                }
            }
        }
    }
    let mut client_ap: HashMap<usize, usize> = HashMap::new();
    for (si, s) in sites.iter().enumerate().filter(|(_, s)| s.client) {
        let own = &site_devices[si];
        let elsewhere = |id: Option<&str>| -> Option<usize> {
            let di = *dev_index.get(id?)?;
            (dev_site(di) != Some(si)).then_some(di)
        };
        let mut found: Option<usize> = None;
        for &di in own {
            if let Some(ap) = elsewhere(devices[di].ap_device_id()) {
                found = Some(ap);
            }
            if found.is_none() {
                let my_id = devices[di].id();
                let mine = my_id.and_then(|id| links_by_device.get(id)).map(Vec::as_slice);
                for l in mine.unwrap_or(&[]).iter().filter_map(|&li| links.get(li)) {
                    let (Some(f), Some(t)) = (l.from.as_ref(), l.to.as_ref()) else { continue };
                    if f.device_id().is_some()
                        && f.device_id() == my_id
                        && let Some(ap) = elsewhere(t.device_id())
                    {
                        found = Some(ap);
                    }
                    if t.device_id().is_some()
                        && t.device_id() == my_id
                        && let Some(ap) = elsewhere(f.device_id())
                    {
                        found = Some(ap);
                    }
                }
            }
        }
        if found.is_none() {
            let mine = links_by_site.get(s.id.as_str()).map(Vec::as_slice);
            for l in mine.unwrap_or(&[]).iter().filter_map(|&li| links.get(li)) {
                let (Some(f), Some(t)) = (l.from.as_ref(), l.to.as_ref()) else { continue };
                if f.site_id() == Some(s.id.as_str())
                    && let Some(ap) = elsewhere(t.device_id())
                {
                    found = Some(ap);
                }
                if t.site_id() == Some(s.id.as_str())
                    && let Some(ap) = elsewhere(f.device_id())
                {
                    found = Some(ap);
                }
            }
        }
        if let Some(ap) = found {
            client_ap.insert(si, ap);
        }
    }

    // 5. Circuits (parents filled in after the hierarchy is built).
    struct Draft {
        site: usize,
        circuit: Circuit,
        ap: Option<usize>,
        forced_parent: Option<String>,
    }
    let mut drafts: Vec<Draft> = Vec::new();
    for (si, s) in sites.iter().enumerate().filter(|(_, s)| s.client) {
        let mut name = site_names[si].clone();
        if config.integration_common.circuit_name_as_address
            && let Some(a) = s.address.as_deref()
        {
            name = a.trim().to_string();
        }
        if s.suspended && u.suspended_strategy == SuspendedStrategy::Ignore {
            warnings.push(Diagnostic::warning(
                LABEL,
                format!("client '{name}' ({}) is suspended and left out (suspended_strategy = \"ignore\")", s.id),
            ));
            continue;
        }
        let own = &site_devices[si];
        let behind_excluded = s.parent.as_ref().is_some_and(|p| excluded.contains(p))
            || own.iter().any(|&di| {
                devices[di].ap_device_id().is_some_and(|a| excluded_devices.contains(a))
            });
        if behind_excluded {
            debug!(client = %name, "behind an excluded site, left out");
            continue;
        }
        let mut devs = Vec::new();
        let mut addressed = Vec::new();
        for &di in own {
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
            if !set.is_empty() {
                addressed.push(di);
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
        let q = s.qos.clone().unwrap_or_default();
        let base_d = q.download_speed.filter(|v| v.is_finite() && *v > 0.0).unwrap_or(0.0) / 1e6;
        let base_u = q.upload_speed.filter(|v| v.is_finite() && *v > 0.0).unwrap_or(0.0) / 1e6;
        let max_of = |plan: f64| {
            if config.integration_common.client_bandwidth_multiplier.is_some() {
                rules.client_max_mbps(plan)
            } else {
                plan * rules.overhead
            }
        };
        let (mut dmin, mut dmax, mut umin, mut umax) =
            if s.suspended && u.suspended_strategy == SuspendedStrategy::Slow {
                (SUSPENDED_SLOW_MBPS, SUSPENDED_SLOW_MBPS, SUSPENDED_SLOW_MBPS, SUSPENDED_SLOW_MBPS)
            } else if base_d > 0.0 || base_u > 0.0 {
                let burst = |kb: Option<f64>| {
                    kb.filter(|v| v.is_finite() && *v > 0.0).unwrap_or(0.0) * 8.0 / 1000.0 / 1024.0
                };
                (
                    base_d * rules.commit,
                    max_of(base_d + burst(q.download_burst_size)),
                    base_u * rules.commit,
                    max_of(base_u + burst(q.upload_burst_size)),
                )
            } else {
                let (d, up) = (max_of(gen_down), max_of(gen_up));
                (d * rules.commit, d, up * rules.commit, up)
            };
        // Ethernet cap: the slowest port of the station CPEs, else of the non-router devices.
        let stations: Vec<usize> =
            addressed.iter().copied().filter(|&di| devices[di].is_station_cpe()).collect();
        let candidates: Vec<usize> = if stations.is_empty() {
            addressed.iter().copied().filter(|&di| !devices[di].is_router_like()).collect()
        } else {
            stations
        };
        let limiting = candidates
            .iter()
            .filter_map(|&di| devices[di].negotiated_ethernet().map(|(sp, ifc)| (sp, ifc, di)))
            .min_by_key(|(sp, _, _)| *sp);
        if let Some((speed, iface, di)) = limiting
            && let Some(cap) = dev_rules.port.usable_mbps(speed)
        {
            let cap = cap as f64;
            if dmax > cap || umax > cap {
                warnings.push(Diagnostic::warning(
                    LABEL,
                    format!(
                        "client '{name}': rates capped to {cap} Mbps by the {speed} Mbps Ethernet port {} of '{}'",
                        iface.unwrap_or_default(),
                        devices[di].name()
                    ),
                ));
            }
            dmax = dmax.min(cap);
            umax = umax.min(cap);
            dmin = dmin.min(dmax);
            umin = umin.min(umax);
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
    // An exception parent: an AP by name, else an infrastructure site by name or id.
    let resolve_forced = |p: &str| -> Option<Emit> {
        let p = p.trim();
        (0..devices.len())
            .find(|&di| devices[di].name() == p && dev_site(di).is_some_and(is_infra_site))
            .map(Emit::Ap)
            .or_else(|| {
                (0..sites.len())
                    .find(|&si| {
                        is_infra_site(si)
                            && (site_names[si] == p || sites[si].raw_name == p || sites[si].id == p)
                    })
                    .map(Emit::Site)
            })
    };
    let mut used_aps: Vec<usize> = Vec::new();
    {
        let mut seen = HashSet::new();
        for d in &drafts {
            let forced_ap =
                d.forced_parent.as_deref().and_then(resolve_forced).and_then(|e| match e {
                    Emit::Ap(a) => Some(a),
                    Emit::Site(_) => None,
                });
            for ap in [d.ap, forced_ap].into_iter().flatten() {
                if dev_site(ap).is_some_and(is_infra_site) && seen.insert(ap) {
                    used_aps.push(ap);
                }
            }
        }
    }
    let ap_caps = |di: usize| -> (u64, u64) {
        if u.ignore_calculated_capacity {
            dev_rules.generated
        } else {
            (caps[di].down, caps[di].up)
        }
    };
    let mut tree = TreeBuilder::default();
    let mut node_of: HashMap<Emit, usize> = HashMap::new();
    let mut orphans: Option<usize> = None;
    let orphans_build = |names: &mut UniqueNames| BuildNode {
        name: names.claim(ORPHANS_NODE, "generated"),
        id: Some(ORPHANS_ID.into()),
        node_type: "site",
        download: gen_rates.0,
        upload: gen_rates.1,
        parent: None,
        extra: Default::default(),
    };
    let site_build = |si: usize, parent: Option<usize>, rates: (RateKbit, RateKbit)| BuildNode {
        name: site_names[si].clone(),
        id: Some(format!("uisp:site:{}", sites[si].id)),
        node_type: "site",
        download: rates.0,
        upload: rates.1,
        parent,
        extra: lat_lon(sites[si].lat, sites[si].lon),
    };
    let ap_build =
        |di: usize, parent: Option<usize>, rates: (RateKbit, RateKbit), names: &mut UniqueNames| {
            let d = &devices[di];
            let id = d.id().unwrap_or_default();
            BuildNode {
                name: names.claim(&d.name(), &short_id(id)),
                id: Some(format!("uisp:device:{id}")),
                node_type: "ap",
                download: rates.0,
                upload: rates.1,
                parent,
                extra: Default::default(),
            }
        };
    match mode {
        TopologyStrategy::Flat => {}
        TopologyStrategy::ApOnly | TopologyStrategy::ApSite => {
            if mode == TopologyStrategy::ApSite {
                for &ap in &used_aps {
                    if let Some(si) = dev_site(ap)
                        && let std::collections::hash_map::Entry::Vacant(slot) =
                            node_of.entry(Emit::Site(si))
                    {
                        slot.insert(tree.add(site_build(si, None, gen_rates)));
                    }
                }
            }
            for &ap in &used_aps {
                let parent = dev_site(ap).and_then(|si| node_of.get(&Emit::Site(si)).copied());
                let (d, up) = ap_caps(ap);
                let idx =
                    tree.add(ap_build(ap, parent, (rate(d as f64), rate(up as f64)), &mut names));
                node_of.insert(Emit::Ap(ap), idx);
            }
        }
        TopologyStrategy::Full => {
            let full = FullTopology {
                u,
                sites: &sites,
                site_names: &site_names,
                devices: &devices,
                caps: &caps,
                site_devices: &site_devices,
                dev_index: &dev_index,
                site_index: &site_index,
                links: &links,
                routes: &route_overrides,
                generated: dev_rules.generated,
                top: (mbps_u64(top.0), mbps_u64(top.1)),
            };
            let laid = full.lay_out(&used_aps, &mut warnings)?;
            // Emit: sites in UISP order, then APs, then Orphans; parents by index.
            let order: Vec<Emit> = laid.nodes.iter().map(|n| n.emit).collect();
            let mut orphans_idx = None;
            let mut pending: Vec<(Emit, Option<Parent>, (u64, u64))> = Vec::new();
            for n in &laid.nodes {
                pending.push((n.emit, n.parent, n.rates));
            }
            let uses_orphans = pending.iter().any(|p| p.1 == Some(Parent::Orphans));
            // Builder indices are assigned in order; Orphans (if any) first so parents exist.
            if uses_orphans {
                orphans_idx = Some(tree.add(orphans_build(&mut names)));
            }
            let base = tree.len();
            for (i, e) in order.iter().enumerate() {
                node_of.insert(*e, base + i);
            }
            for (e, parent, (d, up)) in pending {
                let parent = match parent {
                    None => None,
                    Some(Parent::Orphans) => orphans_idx,
                    Some(Parent::Node(p)) => node_of.get(&p).copied(),
                };
                let rates = (rate(d as f64), rate(up as f64));
                match e {
                    Emit::Site(si) => tree.add(site_build(si, parent, rates)),
                    Emit::Ap(di) => tree.add(ap_build(di, parent, rates, &mut names)),
                };
            }
            orphans = orphans_idx;
        }
    }
    // Parents.
    let mut circuits = Vec::with_capacity(drafts.len());
    for mut d in drafts {
        let mut parent = d.ap.and_then(|ap| node_of.get(&Emit::Ap(ap)).copied());
        if let Some(forced) = &d.forced_parent {
            match resolve_forced(forced).and_then(|e| node_of.get(&e).copied()) {
                Some(i) => parent = Some(i),
                None => warnings.push(Diagnostic::warning(
                    LABEL,
                    format!("exception_cpes: parent '{forced}' of '{}' is not an AP or a non-root site of the import; ignored", d.circuit.name),
                ).field("uisp_integration.exception_cpes")),
            }
        }
        if parent.is_none()
            && let Some(ap) = d.ap
            && matches!(mode, TopologyStrategy::Full | TopologyStrategy::ApSite)
        {
            warnings.push(Diagnostic::warning(
                LABEL,
                format!(
                    "client '{}' ({}): its AP '{}' is not in an infrastructure site; placed under '{ORPHANS_NODE}'",
                    d.circuit.name,
                    sites[d.site].id,
                    devices[ap].name()
                ),
            ));
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
        let mut steps = 0;
        while let Some(i) = cur {
            if let Some(slot) = useful.get_mut(i) {
                *slot = true;
            }
            steps += 1;
            if steps > tree.len() {
                break;
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

/// Where an emitted node hangs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parent {
    Orphans,
    Node(Emit),
}

struct LaidNode {
    emit: Emit,
    parent: Option<Parent>,
    rates: (u64, u64),
}

struct Layout {
    nodes: Vec<LaidNode>,
}

/// Inputs of the `full` layout.
struct FullTopology<'a> {
    u: &'a UispConfig,
    sites: &'a [SiteInfo],
    site_names: &'a [String],
    devices: &'a [DeviceRaw],
    caps: &'a [Capacity],
    site_devices: &'a [Vec<usize>],
    dev_index: &'a HashMap<&'a str, usize>,
    site_index: &'a HashMap<&'a str, usize>,
    links: &'a [Link],
    routes: &'a [RouteOverride],
    generated: (u64, u64),
    top: (u64, u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GNode {
    Site(usize),
    Device(usize),
    Orphans,
    VirtualRoot,
}

/// Which end of a device pair is the AP (LibreQoS's directionality rules).
fn a_is_ap(a: &DeviceRaw, b: &DeviceRaw, a_id: &str, b_id: &str) -> Option<bool> {
    if a.ap_device_id() == Some(b_id) {
        return Some(false);
    }
    if b.ap_device_id() == Some(a_id) {
        return Some(true);
    }
    let role = |d: &DeviceRaw| match d.role().as_deref() {
        Some("ap") => Some(true),
        Some("station" | "sta" | "cpe") => Some(false),
        _ => None,
    };
    if let (Some(x), Some(y)) = (role(a), role(b))
        && x != y
    {
        return Some(x);
    }
    let mode = |d: &DeviceRaw| {
        let m = d.wireless_mode()?;
        if m.starts_with("ap") {
            Some(true)
        } else if m.starts_with("sta") {
            Some(false)
        } else {
            None
        }
    };
    match (mode(a), mode(b)) {
        (Some(x), Some(y)) if x != y => Some(x),
        _ => None,
    }
}

/// Capacity of a data-link per direction (a → b, b → a): the smaller of the two ends' figures
/// for the AP → station (download) and station → AP (upload) directions; `None` when
/// neither end is recognisably the AP.
fn directed_caps(
    a: &DeviceRaw,
    b: &DeviceRaw,
    cap_a: (u64, u64),
    cap_b: (u64, u64),
    generated: (u64, u64),
) -> Option<(u64, u64)> {
    let a_ap = a_is_ap(a, b, a.id().unwrap_or_default(), b.id().unwrap_or_default())?;
    let (ap, st) = if a_ap { (cap_a, cap_b) } else { (cap_b, cap_a) };
    let mut down = ap.0.min(st.0);
    let mut up = ap.1.min(st.1);
    if down < 1 {
        down = generated.0;
    }
    if up < 1 {
        up = generated.1;
    }
    Some(if a_ap { (down, up) } else { (up, down) })
}

impl FullTopology<'_> {
    fn is_infra(&self, si: usize) -> bool {
        self.sites.get(si).is_some_and(|s| !s.client)
    }
    fn dev_site(&self, di: usize) -> Option<usize> {
        self.devices.get(di)?.site_id().and_then(|s| self.site_index.get(s).copied())
    }

    fn roots(&self) -> Result<Vec<usize>, ImportError> {
        let u = self.u;
        let configured = (!u.site.trim().is_empty())
            .then(|| {
                (0..self.sites.len()).find(|&i| {
                    self.is_infra(i)
                        && (self.sites[i].raw_name == u.site.trim()
                            || self.site_names[i] == u.site.trim())
                })
            })
            .flatten();
        if !u.site.trim().is_empty() && configured.is_none() {
            return Err(ImportError::Data {
                crm: Crm::Uisp,
                cause: format!(
                    "root site '{}' (`site` in [uisp_integration]) is not an infrastructure site in UISP",
                    u.site
                ),
            });
        }
        let roots: Vec<usize> = match configured {
            Some(r) => vec![r],
            None => {
                let mut r: Vec<usize> = Vec::new();
                for l in self.links {
                    if l.can_delete == Some(false)
                        && let Some(si) = l
                            .from
                            .as_ref()
                            .and_then(|f| f.site_id())
                            .and_then(|s| self.site_index.get(s).copied())
                        && self.is_infra(si)
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
        Ok(roots)
    }

    /// Builds the graph, runs the route search and decides each emitted node's parent and
    /// rates.
    fn lay_out(
        &self,
        used_aps: &[usize],
        warnings: &mut Vec<Diagnostic>,
    ) -> Result<Layout, ImportError> {
        let roots = self.roots()?;
        let mut g = Graph::default();
        let mut kinds: Vec<GNode> = Vec::new();
        let mut site_g: HashMap<usize, usize> = HashMap::new();
        let mut dev_g: HashMap<usize, usize> = HashMap::new();
        let mut add = |g: &mut Graph, k: GNode| {
            kinds.push(k);
            g.add_node()
        };
        for si in (0..self.sites.len()).filter(|&si| self.is_infra(si)) {
            let n = add(&mut g, GNode::Site(si));
            site_g.insert(si, n);
        }
        for (si, devs) in self.site_devices.iter().enumerate() {
            let Some(&sn) = site_g.get(&si) else { continue };
            for &di in devs {
                let n = add(&mut g, GNode::Device(di));
                dev_g.insert(di, n);
                // LibreQoS: device → site at the generated download rate, site → device at
                // the generated upload rate.
                g.add_edge(n, sn, self.generated.0, hop_cost(self.generated.0));
                g.add_edge(sn, n, self.generated.1, hop_cost(self.generated.1));
            }
        }
        let root = if let [r] = roots.as_slice() {
            site_g.get(r).copied().unwrap_or(0)
        } else {
            let v = add(&mut g, GNode::VirtualRoot);
            for r in &roots {
                if let Some(&rn) = site_g.get(r) {
                    g.add_edge(v, rn, self.top.0, hop_cost(self.top.0));
                    g.add_edge(rn, v, self.top.1, hop_cost(self.top.1));
                }
            }
            v
        };
        // Device data-links between sites.
        let mut used_routes = vec![false; self.routes.len()];
        for l in self.links {
            let (Some(f), Some(t)) = (l.from.as_ref(), l.to.as_ref()) else { continue };
            let (Some(a_id), Some(b_id)) = (f.device_id(), t.device_id()) else { continue };
            let (Some(&ai), Some(&bi)) = (self.dev_index.get(a_id), self.dev_index.get(b_id))
            else {
                continue;
            };
            let (Some(&an), Some(&bn)) = (dev_g.get(&ai), dev_g.get(&bi)) else { continue };
            if an == bn
                || self.dev_site(ai) == self.dev_site(bi)
                || g.has_edge(an, bn)
                || g.has_edge(bn, an)
            {
                continue;
            }
            let (a, b) = (&self.devices[ai], &self.devices[bi]);
            let (ca, cb) = (&self.caps[ai], &self.caps[bi]);
            let (ab, ba) = match directed_caps(
                a,
                b,
                (ca.down, ca.up),
                (cb.down, cb.up),
                self.generated,
            ) {
                Some(c) => c,
                None => {
                    warnings.push(Diagnostic::warning(
                        LABEL,
                        format!(
                            "data-link '{}' – '{}': cannot tell which end is the AP; using '{}''s capacity per direction",
                            a.name(),
                            b.name(),
                            a.name()
                        ),
                    ));
                    (ca.down, ca.up)
                }
            };
            let site_name = |di: usize| self.dev_site(di).map(|si| self.site_names[si].as_str());
            let hit = self.routes.iter().position(|r| {
                r.matches(&a.name(), &b.name())
                    || matches!((site_name(ai), site_name(bi)), (Some(x), Some(y)) if r.matches(x, y))
            });
            let (cost_ab, cost_ba) = match hit {
                Some(i) => {
                    used_routes[i] = true;
                    let c = override_cost(self.routes[i].cost);
                    (c, c)
                }
                None => (hop_cost(ab), hop_cost(ba)),
            };
            g.add_edge(an, bn, ab, cost_ab);
            g.add_edge(bn, an, ba, cost_ba);
        }
        for (r, used) in self.routes.iter().zip(&used_routes) {
            if !used {
                warnings.push(
                    Diagnostic::warning(
                        ROUTES_FILE,
                        format!("route override '{}' – '{}' matches no data-link between two sites; ignored", r.from, r.to),
                    )
                    .at_line(r.line),
                );
            }
        }
        // UISP's site parent, only where no radio path exists (lqos extension).
        for (si, s) in self.sites.iter().enumerate() {
            let (Some(&sn), Some(pn)) = (
                site_g.get(&si),
                s.parent
                    .as_deref()
                    .and_then(|p| self.site_index.get(p))
                    .and_then(|p| site_g.get(p)),
            ) else {
                continue;
            };
            g.add_edge(*pn, sn, self.generated.0, FALLBACK_COST);
            g.add_edge(sn, *pn, self.generated.1, FALLBACK_COST);
        }
        // Orphans: sites with no path at all.
        let reach = g.from_root(root);
        let mut orphans_g = None;
        for si in (0..self.sites.len()).filter(|&si| self.is_infra(si)) {
            let Some(&sn) = site_g.get(&si) else { continue };
            if reach.reached.get(sn).copied().unwrap_or(false) {
                continue;
            }
            let o = *orphans_g.get_or_insert_with(|| {
                let o = add(&mut g, GNode::Orphans);
                g.add_edge(root, o, self.generated.0, hop_cost(self.generated.0));
                g.add_edge(o, root, self.generated.1, hop_cost(self.generated.1));
                o
            });
            warnings.push(Diagnostic::warning(
                LABEL,
                format!(
                    "site '{}' has no path to the root site; placed under '{ORPHANS_NODE}'",
                    self.site_names[si]
                ),
            ));
            g.add_edge(o, sn, self.generated.0, hop_cost(self.generated.0));
            g.add_edge(sn, o, self.generated.1, hop_cost(self.generated.1));
        }
        let from = g.from_root(root);
        let to = g.to_root(root);
        for (si, &sn) in (0..self.sites.len()).filter_map(|si| site_g.get(&si).map(|n| (si, n))) {
            if from.cost.get(sn).is_some_and(|&c| c >= FALLBACK_COST && c != u64::MAX) {
                warnings.push(Diagnostic::warning(
                    LABEL,
                    format!(
                        "site '{}' has no radio path to the root site; placed by its UISP parent site",
                        self.site_names[si]
                    ),
                ));
            }
        }

        // What is emitted.
        let single_root = (roots.len() == 1).then(|| roots[0]);
        let squashed = |si: usize| {
            let n = &self.site_names[si];
            let raw = &self.sites[si].raw_name;
            let listed = |l: &[String]| l.iter().any(|x| x.trim() == n || x.trim() == raw);
            listed(&self.u.squash_sites) && !listed(&self.u.do_not_squash_sites)
        };
        let mut emitted: HashSet<usize> = HashSet::new(); // graph nodes
        for (&si, &n) in &site_g {
            if Some(si) != single_root && !squashed(si) {
                emitted.insert(n);
            }
        }
        for ap in used_aps {
            if let Some(&n) = dev_g.get(ap) {
                emitted.insert(n);
            }
        }
        if let Some(o) = orphans_g {
            emitted.insert(o);
        }
        // use_ptmp_as_parent: the PtMP AP nearest upstream of a site (before any emitted node)
        // is emitted and becomes its parent.
        if self.u.use_ptmp_as_parent {
            let mut extra = Vec::new();
            for &sn in site_g.values() {
                let path = from.path(sn);
                for &x in path.iter().rev().skip(1) {
                    if emitted.contains(&x) {
                        break;
                    }
                    if let Some(GNode::Device(di)) = kinds.get(x)
                        && self.devices[*di].is_ptmp_ap()
                    {
                        extra.push(x);
                        break;
                    }
                }
            }
            emitted.extend(extra);
        }
        let emit_of = |x: usize| -> Option<Parent> {
            match kinds.get(x)? {
                GNode::Site(si) => Some(Parent::Node(Emit::Site(*si))),
                GNode::Device(di) => Some(Parent::Node(Emit::Ap(*di))),
                GNode::Orphans => Some(Parent::Orphans),
                GNode::VirtualRoot => None,
            }
        };
        let mut nodes = Vec::new();
        let mut order: Vec<usize> = emitted
            .iter()
            .copied()
            .filter(|&x| !matches!(kinds.get(x), Some(GNode::Orphans)))
            .collect();
        order.sort_unstable();
        for x in order {
            let Some(Parent::Node(emit)) = emit_of(x) else { continue };
            let path = from.path(x);
            let parent =
                path.iter().rev().skip(1).find(|p| emitted.contains(p)).and_then(|&p| emit_of(p));
            let fix = |v: u64, fallback: u64, top: u64| {
                if v == u64::MAX {
                    top
                } else if v < 1 {
                    fallback
                } else {
                    v
                }
            };
            let mut down =
                fix(from.min_cap.get(x).copied().unwrap_or(0), self.generated.0, self.top.0);
            let mut up = fix(to.min_cap.get(x).copied().unwrap_or(0), self.generated.1, self.top.1);
            if let Emit::Ap(di) = emit {
                down = down.min(self.caps[di].down);
                up = up.min(self.caps[di].up);
            }
            if self.u.ignore_calculated_capacity {
                (down, up) = self.generated;
            }
            nodes.push(LaidNode { emit, parent, rates: (down, up) });
        }
        Ok(Layout { nodes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(id: &str, role: Option<&str>, mode: Option<&str>, ap: Option<&str>) -> DeviceRaw {
        serde_json::from_value(serde_json::json!({
            "identification": {"id": id, "hostname": id, "role": role},
            "overview": {"wirelessMode": mode},
            "attributes": ap.map(|a| serde_json::json!({"apDevice": {"id": a}})),
        }))
        .unwrap()
    }

    // The four expectations of LibreQoS's `full2/directionality.rs` tests.
    #[test]
    fn attribute_orientation_is_stable_under_argument_order() {
        let (ap, sta) = (raw("ap", None, None, None), raw("sta", None, None, Some("ap")));
        let g = (999, 888);
        assert_eq!(directed_caps(&sta, &ap, (180, 60), (200, 50), g), Some((50, 180)));
        assert_eq!(directed_caps(&ap, &sta, (200, 50), (180, 60), g), Some((180, 50)));
    }

    #[test]
    fn role_and_wireless_mode_orientation() {
        let (ap, sta) =
            (raw("ap", Some("ap"), None, None), raw("sta", Some("station"), None, None));
        assert_eq!(directed_caps(&ap, &sta, (300, 80), (250, 120), (1, 1)), Some((250, 80)));
        let (ap, sta) =
            (raw("ap", None, Some("ap-ptmp"), None), raw("sta", None, Some("sta-ptmp"), None));
        assert_eq!(directed_caps(&ap, &sta, (400, 90), (350, 100), (1, 1)), Some((350, 90)));
    }

    #[test]
    fn ambiguous_links_have_no_orientation() {
        let (a, b) = (raw("a", None, None, None), raw("b", None, None, None));
        assert_eq!(directed_caps(&a, &b, (100, 100), (100, 100), (1, 1)), None);
    }

    #[test]
    fn api_base_appends_path_once() {
        assert_eq!(api_base("https://uisp.example.com/"), "https://uisp.example.com/nms/api/v2.1");
        assert_eq!(api_base("https://u.example/nms/api/v2.1"), "https://u.example/nms/api/v2.1");
    }
}
