//! Splynx (API 2.0): Basic auth with the API key and secret, eight list endpoints (four in
//! `flat` mode), then a pure [`import`]. Rules follow LibreQoS's `integrationSplynx.py`.
//!
//! Circuits: one per active internet service (Circuit ID = service id, name = customer
//! name); one device `splynx_service_<id>` with the service's IPv4 (+ `ipv4_route`) and IPv6
//! (+ `ipv6_delegated`), supplemented from `customers-online` when a family is missing;
//! services known only from customers-online come after the others. The service's own
//! address keeps what the CRM gave ([`crate::common::crm_address`]): `100.64.5.3/29` is the
//! host 100.64.5.3, never the whole /29; a route or delegation with host bits is shaped as
//! its whole prefix, as LibreQoS ends up doing ([`crate::common::crm_prefix`]). Rates: tariff `speed_download/upload` (kbps; a larger
//! `burst_limit_fixed_*` replaces them) / 1000 × the shared multiplier, Min = 0.98 × Max. A
//! service with an unknown tariff is left out with a warning (LibreQoS stops with an error).
//!
//! Hardware (monitoring): a device is an AP when its `access_device` flag is set (the legacy
//! `type == 5` when it has no flag) or when any service names it as its `access_device`.
//! Names: the title with whitespace collapsed, `Parent_Child` under a parent; when names
//! collide every one of them becomes `name (<id>)`, so names do not depend on API order.
//! Parent of a circuit: its access device, else its router, else the router's first sector,
//! when that id is a monitoring device. Modes: `flat` (no nodes), `ap_only` (APs at the top,
//! circuits only under APs), `ap_site` (every network site, each AP under its site or at the
//! top, circuits only under APs; `full` when no monitoring row names a site), `full` (the
//! monitoring tree). Nodes are 10 Gbps (clamped to the uplink) unless an override says
//! otherwise ([`crate::overrides`]).

use std::collections::{HashMap, HashSet};

use lqos_config::{Circuit, CircuitId, Config, Device, Diagnostic, SplynxConfig, TopologyStrategy};
use serde_json::Value;
use tracing::debug;

use crate::Import;
use crate::common::{
    AddressFilter, AddressKind, AddressSet, BuildNode, PYTHON_MIN_RATIO, SharedRules, TreeBuilder,
    UniqueNames, disambiguate, drop_duplicates_and_empty, id_string, lat_lon, min_max,
    normalize_display_name, number, push_address, rate, string,
};
use crate::error::{Crm, ImportError};
use crate::http::{Auth, Http, HttpOptions};
use crate::uisp::json_kind;

/// Default site/AP capacity in Mbps (LibreQoS's Splynx importer).
pub const DEFAULT_NODE_MBPS: f64 = 10_000.0;
const LABEL: &str = "Splynx";

/// Endpoint paths after `/api/2.0/`.
pub mod endpoints {
    /// Tariffs.
    pub const TARIFFS: &str = "admin/tariffs/internet";
    /// Customers.
    pub const CUSTOMERS: &str = "admin/customers/customer";
    /// Online sessions.
    pub const ONLINE: &str = "admin/customers/customers-online";
    /// Routers.
    pub const ROUTERS: &str = "admin/networking/routers";
    /// Router sectors.
    pub const SECTORS: &str = "admin/networking/routers-sectors";
    /// Active internet services (exact query string).
    pub const SERVICES: &str =
        "admin/customers/customer/0/internet-services?main_attributes%5Bstatus%5D=active";
    /// Monitoring (hardware).
    pub const MONITORING: &str = "admin/networking/monitoring";
    /// Network sites.
    pub const SITES: &str = "admin/networking/network-sites";
}

/// The raw lists. `None` = not fetched (`flat` mode needs only four).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SplynxDocs {
    /// Tariffs.
    pub tariffs: Value,
    /// Customers.
    pub customers: Value,
    /// Online sessions.
    pub online: Value,
    /// Services.
    pub services: Value,
    /// Routers.
    pub routers: Option<Value>,
    /// Router sectors.
    pub sectors: Option<Value>,
    /// Monitoring.
    pub monitoring: Option<Value>,
    /// Network sites.
    pub network_sites: Option<Value>,
}

fn splynx_config(config: &Config) -> Result<&SplynxConfig, ImportError> {
    let s = config.splynx.as_ref().ok_or_else(|| ImportError::NotConfigured {
        crm: Crm::Splynx,
        cause: "the section is missing".into(),
    })?;
    if s.url.trim().is_empty() || s.api_key.trim().is_empty() || s.api_secret.trim().is_empty() {
        return Err(ImportError::NotConfigured {
            crm: Crm::Splynx,
            cause: "url, api_key and api_secret are required".into(),
        });
    }
    Ok(s)
}

fn mode(config: &Config, s: &SplynxConfig) -> TopologyStrategy {
    config.topology.compile_mode.unwrap_or(s.strategy)
}

/// Fetches the lists (all concurrently).
pub async fn pull(config: &Config, opts: &HttpOptions) -> Result<SplynxDocs, ImportError> {
    let s = splynx_config(config)?;
    let http = Http::new(Crm::Splynx, opts, false)?;
    let base = format!("{}/api/2.0", s.url.trim().trim_end_matches('/'));
    let auth = Auth::Basic(s.api_key.trim(), s.api_secret.trim());
    let get = |path: &'static str| {
        let url = format!("{base}/{path}");
        let http = &http;
        async move {
            let v = http.get_json(&url, auth).await?;
            if v.is_array() {
                Ok(v)
            } else {
                Err(ImportError::Shape {
                    crm: Crm::Splynx,
                    url,
                    cause: format!("expected a JSON list, got {}", json_kind(&v)),
                })
            }
        }
    };
    let (tariffs, customers, online, services) = tokio::try_join!(
        get(endpoints::TARIFFS),
        get(endpoints::CUSTOMERS),
        get(endpoints::ONLINE),
        get(endpoints::SERVICES),
    )?;
    let mut docs = SplynxDocs { tariffs, customers, online, services, ..Default::default() };
    if mode(config, s) != TopologyStrategy::Flat {
        let (routers, sectors, monitoring, sites) = tokio::try_join!(
            get(endpoints::ROUTERS),
            get(endpoints::SECTORS),
            get(endpoints::MONITORING),
            get(endpoints::SITES),
        )?;
        docs.routers = Some(routers);
        docs.sectors = Some(sectors);
        docs.monitoring = Some(monitoring);
        docs.network_sites = Some(sites);
    }
    Ok(docs)
}

fn list<'a>(v: Option<&'a Value>, what: &str) -> Result<&'a [Value], ImportError> {
    match v {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(ImportError::Shape {
            crm: Crm::Splynx,
            url: what.to_string(),
            cause: format!("expected a JSON list, got {}", json_kind(other)),
        }),
    }
}

fn split_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => {
            s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_string).collect()
        }
        Some(Value::Array(a)) => a.iter().filter_map(|x| string(Some(x))).collect(),
        _ => Vec::new(),
    }
}

/// LibreQoS's flag test: `1`, `true`, `"1"`, `"true"` / `"True"`.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64() == Some(1.0),
        Some(Value::String(s)) => s.trim() == "1" || s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

struct Hw {
    id: String,
    /// Normalised title (whitespace collapsed), the parent's part of an extended name.
    title: String,
    parent: Option<String>,
    is_ap: bool,
    network_site: Option<String>,
    gps: Option<(f64, f64)>,
}

/// A Splynx `gps` string `lat,lon`; `None` when malformed or out of range (as LibreQoS).
fn gps(v: Option<&Value>) -> Option<(f64, f64)> {
    let s = string(v)?;
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [a, b] = parts.as_slice() else { return None };
    let (lat, lon) = (a.parse::<f64>().ok()?, b.parse::<f64>().ok()?);
    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
}

/// A Splynx graph id (`id`, `parent_id`, `access_device`, …) as a string; `None` for null,
/// empty and `0` (Splynx's "none").
fn graph_id(v: Option<&Value>) -> Option<String> {
    id_string(v).filter(|s| s != "0")
}

/// LibreQoS's AP test: the `access_device` flag when the row has one, else the legacy
/// `type == 5`; and any device a service names as its `access_device` is an AP too.
fn is_access_point(m: &Value, id: &str, referenced: &HashSet<String>) -> bool {
    let flagged = match m.get("access_device") {
        Some(v) => truthy(Some(v)),
        None => number(m.get("type")) == Some(5.0),
    };
    flagged || referenced.contains(id)
}

/// A network site: id, display name, coordinates.
type SiteRow = (String, String, Option<(f64, f64)>);

/// Turns the lists into the network and the circuits. Pure: no I/O.
pub fn import(docs: &SplynxDocs, config: &Config) -> Result<Import, ImportError> {
    let s = splynx_config(config)?;
    let mode = mode(config, s);
    let rules = SharedRules::from_config(config);
    let filter = AddressFilter::ignore_only(config);
    let mut warnings = Vec::new();

    // Tariffs → (down, up) Mbps.
    let mut tariffs: HashMap<String, (f64, f64)> = HashMap::new();
    for t in list(Some(&docs.tariffs), endpoints::TARIFFS)? {
        let Some(id) = id_string(t.get("id")) else { continue };
        let mut down = number(t.get("speed_download")).unwrap_or(0.0);
        let mut up = number(t.get("speed_upload")).unwrap_or(0.0);
        down = down.max(number(t.get("burst_limit_fixed_down")).unwrap_or(0.0));
        up = up.max(number(t.get("burst_limit_fixed_up")).unwrap_or(0.0));
        tariffs.insert(id, (down / 1000.0, up / 1000.0));
    }
    let customers: HashMap<String, String> = list(Some(&docs.customers), endpoints::CUSTOMERS)?
        .iter()
        .filter_map(|c| Some((id_string(c.get("id"))?, string(c.get("name")).unwrap_or_default())))
        .collect();
    let mut online: HashMap<String, (Vec<String>, Vec<String>)> = HashMap::new();
    for o in list(Some(&docs.online), endpoints::ONLINE)? {
        let Some(sid) = id_string(o.get("service_id")) else { continue };
        let e = online.entry(sid).or_default();
        e.0.extend(split_list(o.get("ipv4")));
        e.1.extend(split_list(o.get("ipv6")));
    }
    let sectors_of_router: HashMap<String, Vec<String>> = {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for sct in list(docs.sectors.as_ref(), endpoints::SECTORS)? {
            if let (Some(id), Some(r)) = (graph_id(sct.get("id")), graph_id(sct.get("router_id"))) {
                m.entry(r).or_default().push(id);
            }
        }
        m
    };
    let services = list(Some(&docs.services), endpoints::SERVICES)?;
    // Devices that services name as their access device are APs whatever their flags say.
    let referenced: HashSet<String> =
        services.iter().filter_map(|svc| graph_id(svc.get("access_device"))).collect();
    let hardware: Vec<Hw> = list(docs.monitoring.as_ref(), endpoints::MONITORING)?
        .iter()
        .filter_map(|m| {
            let id = graph_id(m.get("id"))?;
            let raw = ["title", "name", "address", "ip"].iter().find_map(|k| string(m.get(*k)));
            Some(Hw {
                title: normalize_display_name(raw.as_deref(), &id),
                parent: graph_id(m.get("parent_id")),
                is_ap: is_access_point(m, &id, &referenced),
                network_site: graph_id(m.get("network_site_id")),
                gps: gps(m.get("gps")),
                id,
            })
        })
        .collect();
    let hw_index: HashMap<&str, usize> =
        hardware.iter().enumerate().map(|(i, h)| (h.id.as_str(), i)).collect();

    // Hardware names: `Parent_Child` under a parent; every duplicate gets ` (<id>)`.
    let hw_names: Vec<String> = disambiguate(
        &hardware
            .iter()
            .map(|h| {
                let name = match h.parent.as_deref().and_then(|p| hw_index.get(p)) {
                    Some(&p) => normalize_display_name(
                        Some(&format!("{}_{}", hardware[p].title, h.title)),
                        &h.id,
                    ),
                    None => h.title.clone(),
                };
                (h.id.clone(), name)
            })
            .collect::<Vec<_>>(),
    );

    // Circuits: services with a static address first, then those known only from
    // customers-online (LibreQoS's order).
    struct Draft {
        circuit: Circuit,
        hw: Option<usize>,
        online_only: bool,
    }
    let mut drafts = Vec::new();
    for svc in services {
        let Some(id) = id_string(svc.get("id")) else { continue };
        if string(svc.get("status")).is_some_and(|st| st != "active") {
            continue;
        }
        let customer_id = id_string(svc.get("customer_id")).unwrap_or_default();
        let name = customers
            .get(&customer_id)
            .filter(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| customer_id.clone());
        let tariff_id = id_string(svc.get("tariff_id")).unwrap_or_default();
        let Some(&(down, up)) = tariffs.get(&tariff_id) else {
            warnings.push(
                Diagnostic::warning(
                    LABEL,
                    format!("service {id} ({name}) has unknown tariff '{tariff_id}'; left out"),
                )
                .hint("check the tariff in Splynx (Tariff plans → Internet) and the API key's permission to view tariffs"),
            );
            continue;
        };
        // The service's own addresses are hosts; routes and delegations are prefixes.
        let tagged = |field: &str, kind: AddressKind| {
            split_list(svc.get(field)).into_iter().map(move |a| (a, kind))
        };
        let mut v4: Vec<(String, AddressKind)> = tagged("ipv4", AddressKind::Host)
            .chain(tagged("ipv4_route", AddressKind::Prefix))
            .collect();
        let mut v6: Vec<(String, AddressKind)> = tagged("ipv6", AddressKind::Host)
            .chain(tagged("ipv6_delegated", AddressKind::Prefix))
            .collect();
        let online_only = v4.is_empty() && v6.is_empty();
        if let Some((ov4, ov6)) = online.get(&id) {
            if v4.is_empty() {
                v4.extend(ov4.iter().map(|a| (a.clone(), AddressKind::Host)));
            }
            if v6.is_empty() {
                v6.extend(ov6.iter().map(|a| (a.clone(), AddressKind::Host)));
            }
        }
        let mut set = AddressSet::default();
        let what = format!("service {id}");
        for (a, kind) in v4.iter().chain(v6.iter()) {
            push_address(&mut set, a, *kind, &filter, &what, LABEL, &mut warnings);
        }
        let max_d = rules.client_max_mbps(down);
        let max_u = rules.client_max_mbps(up);
        let (download_min, download_max) = min_max(max_d * PYTHON_MIN_RATIO, max_d);
        let (upload_min, upload_max) = min_max(max_u * PYTHON_MIN_RATIO, max_u);
        let parent_hw = [graph_id(svc.get("access_device")), graph_id(svc.get("router_id"))]
            .into_iter()
            .flatten()
            .find_map(|h| hw_index.get(h.as_str()).copied())
            .or_else(|| {
                let r = graph_id(svc.get("router_id"))?;
                let first = sectors_of_router.get(&r)?.first()?;
                hw_index.get(first.as_str()).copied()
            });
        drafts.push(Draft {
            hw: parent_hw,
            online_only,
            circuit: Circuit {
                id: CircuitId(id.clone()),
                name: name.clone(),
                parent_node: None,
                parent_node_id: None,
                anchor_node_id: None,
                download_min,
                upload_min,
                download_max,
                upload_max,
                sqm: None,
                devices: vec![Device {
                    id: format!("splynx_service_{id}"),
                    name,
                    mac: string(svc.get("mac")).unwrap_or_default(),
                    ipv4: set.v4,
                    ipv6: set.v6,
                    comment: String::new(),
                    line: 0,
                }],
                line: 0,
            },
        });
    }
    drafts.sort_by_key(|d| d.online_only);

    // Hierarchy.
    let top = (config.queues.downlink, config.queues.uplink);
    let node_rate = (rate(DEFAULT_NODE_MBPS), rate(DEFAULT_NODE_MBPS));
    let mut tree = TreeBuilder::default();
    let mut hw_node: HashMap<usize, usize> = HashMap::new();
    // Names are unique within each kind; this settles a site and a device sharing one.
    let mut taken = UniqueNames::default();
    let hw_build = |i: usize, parent: Option<usize>, taken: &mut UniqueNames| {
        let h = &hardware[i];
        let base = if taken.is_taken(&hw_names[i]) {
            format!("{} ({})", hw_names[i], h.id)
        } else {
            hw_names[i].clone()
        };
        let name = taken.claim(&base, &h.id);
        BuildNode {
            name,
            id: Some(format!("splynx:{}:{}", if h.is_ap { "ap" } else { "site" }, h.id)),
            node_type: if h.is_ap { "ap" } else { "site" },
            download: node_rate.0,
            upload: node_rate.1,
            parent,
            extra: lat_lon(h.gps.map(|g| g.0), h.gps.map(|g| g.1)),
        }
    };
    // `exclude_sites` (LibreQoS reads it from [uisp_integration] for every CRM): an excluded
    // node is left out, its children move to the top level and its circuits are unparented.
    let excluded = |i: usize| rules.is_excluded(&hw_names[i]);
    let sites = list(docs.network_sites.as_ref(), endpoints::SITES)?;
    // LibreQoS: ap_site uses network sites when there are some and any monitoring row names
    // one; otherwise it builds the monitoring tree like `full`.
    let uses_sites = !sites.is_empty() && hardware.iter().any(|h| h.network_site.is_some());
    let effective = match mode {
        TopologyStrategy::ApSite if !uses_sites => TopologyStrategy::Full,
        m => m,
    };
    match effective {
        TopologyStrategy::Flat => {}
        TopologyStrategy::ApOnly => {
            for (i, h) in hardware.iter().enumerate() {
                if h.is_ap && !excluded(i) {
                    hw_node.insert(i, tree.add(hw_build(i, None, &mut taken)));
                }
            }
        }
        TopologyStrategy::ApSite => {
            // Every network site, APs under theirs (top level when it names none we know).
            let site_rows: Vec<SiteRow> = sites
                .iter()
                .filter_map(|site| {
                    let sid = graph_id(site.get("id"))?;
                    let raw = string(site.get("title")).or_else(|| string(site.get("description")));
                    let name = normalize_display_name(raw.as_deref(), &sid);
                    Some((sid, name, gps(site.get("gps"))))
                })
                .collect();
            let site_names = disambiguate(
                &site_rows.iter().map(|(id, n, _)| (id.clone(), n.clone())).collect::<Vec<_>>(),
            );
            let mut site_node: HashMap<String, usize> = HashMap::new();
            for ((sid, _, g), name) in site_rows.into_iter().zip(site_names) {
                if rules.is_excluded(&name) {
                    continue;
                }
                let name = taken.claim(&name, &format!("site {sid}"));
                let idx = tree.add(BuildNode {
                    name,
                    id: Some(format!("splynx:network_site:{sid}")),
                    node_type: "site",
                    download: node_rate.0,
                    upload: node_rate.1,
                    parent: None,
                    extra: lat_lon(g.map(|x| x.0), g.map(|x| x.1)),
                });
                site_node.insert(sid, idx);
            }
            for (i, h) in hardware.iter().enumerate() {
                if h.is_ap && !excluded(i) {
                    let parent = h.network_site.as_ref().and_then(|n| site_node.get(n)).copied();
                    hw_node.insert(i, tree.add(hw_build(i, parent, &mut taken)));
                }
            }
        }
        TopologyStrategy::Full => {
            // Parents before children; cycles are broken by treating the node as top level.
            let mut order: Vec<usize> = Vec::new();
            let mut state = vec![0u8; hardware.len()];
            for start in 0..hardware.len() {
                let mut chain = Vec::new();
                let mut cur = Some(start);
                while let Some(c) = cur {
                    if state[c] != 0 {
                        break;
                    }
                    state[c] = 1;
                    chain.push(c);
                    cur = hardware[c].parent.as_deref().and_then(|p| hw_index.get(p).copied());
                }
                for &c in chain.iter().rev() {
                    state[c] = 2;
                    order.push(c);
                }
            }
            for i in order.into_iter().filter(|&i| !excluded(i)) {
                let parent = hardware[i]
                    .parent
                    .as_deref()
                    .and_then(|p| hw_index.get(p))
                    .and_then(|p| hw_node.get(p))
                    .copied();
                hw_node.insert(i, tree.add(hw_build(i, parent, &mut taken)));
            }
        }
    }
    let mut circuits = Vec::with_capacity(drafts.len());
    for mut d in drafts {
        if let Some(n) = d.hw.and_then(|h| hw_node.get(&h)).and_then(|&n| tree.get(n)) {
            d.circuit.parent_node = Some(n.name.clone());
            d.circuit.parent_node_id = n.id.clone();
        }
        circuits.push(d.circuit);
    }
    let circuits = drop_duplicates_and_empty(circuits, LABEL, &mut warnings);
    let network = tree.finish(&config.integration_common.promote_to_root, top, |_| true);
    debug!(
        circuits = circuits.len(),
        nodes = network.nodes.len(),
        ?effective,
        "Splynx import built"
    );
    Ok(Import { crm: Crm::Splynx, network, circuits, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn cfg(strategy: &str) -> Config {
        let text = format!(
            "version = \"1.5\"\nlqos_directory = \"/tmp\"\n[bridge]\nto_internet = \"a\"\nto_network = \"b\"\n\
             [splynx_integration]\nenable_splynx = true\napi_key = \"k\"\napi_secret = \"s\"\nurl = \"http://x\"\nstrategy = \"{strategy}\"\n"
        );
        parse_config_str_ok(&text)
    }

    fn parse_config_str_ok(text: &str) -> Config {
        let (c, d) = lqos_config::parse_config_str(text, Path::new("lqos.conf"));
        assert!(!lqos_config::has_errors(&d), "{d:#?}");
        c.unwrap()
    }

    /// LibreQoS's test_integration_splynx.py cases: integer and string ids mix, the router id
    /// and the router's first sector find the parent, duplicate names (whitespace variants
    /// included) all get their id.
    #[test]
    fn numeric_ids_parents_and_duplicate_names_match_libreqos() {
        let docs = SplynxDocs {
            tariffs: json!([{"id": 1, "speed_download": 100000, "speed_upload": 50000}]),
            customers: json!([{"id": 1, "name": "Octofin"}, {"id": 2, "name": "Second Circuit"}, {"id": 3, "name": "Third"}]),
            online: json!([]),
            services: json!([
                {"id": 1968, "customer_id": 1, "tariff_id": 1, "status": "active", "ipv4": "192.0.2.1", "mac": "", "access_device": 1122, "router_id": 0},
                {"id": 35055, "customer_id": 2, "tariff_id": 1, "status": "active", "ipv4": "192.0.2.2", "mac": "", "access_device": 0, "router_id": 10},
                {"id": 4, "customer_id": 3, "tariff_id": 1, "status": "active", "ipv4": "192.0.2.3", "mac": "", "access_device": 0, "router_id": 30}
            ]),
            routers: Some(json!([])),
            sectors: Some(json!([{"id": 20, "router_id": 30}])),
            monitoring: Some(json!([
                {"id": 1122, "title": " Telkom-Braeview-Sec-South  ", "access_device": 1},
                {"id": "1980", "title": "Telkom-Braeview-Sec-South", "access_device": "1"},
                {"id": 10, "title": "Router   A"},
                {"id": 20, "title": "Sector A", "type": 5}
            ])),
            network_sites: Some(json!([])),
        };
        let imp = import(&docs, &cfg("full")).unwrap();
        let parent = |id: &str| {
            let c = imp.circuits.iter().find(|c| c.id.0 == id).unwrap();
            (
                c.parent_node.clone().unwrap_or_default(),
                c.parent_node_id.clone().unwrap_or_default(),
            )
        };
        assert_eq!(
            parent("1968"),
            ("Telkom-Braeview-Sec-South (1122)".into(), "splynx:ap:1122".into())
        );
        assert_eq!(parent("35055"), ("Router A".into(), "splynx:site:10".into()));
        assert_eq!(parent("4"), ("Sector A".into(), "splynx:ap:20".into()));
        assert!(imp.network.find_by_name("Telkom-Braeview-Sec-South (1980)").is_some());
        // Rates: 100 Mbps plan, Min = 0.98 × Max.
        let c = imp.circuits.iter().find(|c| c.id.0 == "1968").unwrap();
        assert_eq!((c.download_max.0, c.download_min.0), (100_000, 98_000));
    }
}
