//! Splynx (API 2.0): Basic auth with the API key and secret, eight list endpoints (four in
//! `flat` mode), then a pure [`import`].
//!
//! Rules: one circuit per active internet service (Circuit ID = service id, name = customer
//! name); one device `splynx_service_<id>` with the service's static IPv4 (+ routes) and IPv6
//! (+ delegated prefixes), supplemented from `customers-online` when a family is missing.
//! Rates: tariff `speed_download/upload` (kbps; a larger `burst_limit_fixed_*` replaces them)
//! / 1000 × the shared multiplier, Min = 0.98 × Max. A service with an unknown tariff is left
//! out with a warning. Parent: the service's access device, else its router, else the router's
//! first sector, when that id is a monitoring device. Modes: `flat` (no nodes), `ap_only` (AP
//! monitoring devices at the top), `ap_site` (network sites with their APs, or `full` when no
//! monitoring device names a network site), `full` (the monitoring parent tree).

use std::collections::{HashMap, HashSet};

use lqos_config::{Circuit, CircuitId, Config, Device, Diagnostic, SplynxConfig, TopologyStrategy};
use serde_json::Value;
use tracing::debug;

use crate::Import;
use crate::common::{
    AddressFilter, AddressSet, BuildNode, PYTHON_MIN_RATIO, SharedRules, TreeBuilder, UniqueNames,
    drop_duplicates_and_empty, id_string, lat_lon, min_max, number, parse_host_or_net,
    parse_prefix, rate, string,
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

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => matches!(s.trim(), "1" | "true" | "yes"),
        _ => false,
    }
}

struct Hw {
    id: String,
    title: String,
    parent: Option<String>,
    is_ap: bool,
    network_site: Option<String>,
    gps: Option<(f64, f64)>,
}

fn gps(v: Option<&Value>) -> Option<(f64, f64)> {
    let s = string(v)?;
    let mut it = s.split(',').map(|p| p.trim().parse::<f64>());
    match (it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b))) => Some((a, b)),
        _ => None,
    }
}

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
            if let (Some(id), Some(r)) = (id_string(sct.get("id")), id_string(sct.get("router_id")))
            {
                m.entry(r).or_default().push(id);
            }
        }
        m
    };
    let hardware: Vec<Hw> = list(docs.monitoring.as_ref(), endpoints::MONITORING)?
        .iter()
        .filter_map(|m| {
            let id = id_string(m.get("id"))?;
            let title = ["title", "name", "address", "ip"]
                .iter()
                .find_map(|k| string(m.get(*k)))
                .unwrap_or_else(|| format!("device {id}"));
            Some(Hw {
                parent: id_string(m.get("parent_id")).filter(|p| p != "0"),
                is_ap: truthy(m.get("access_device")) || number(m.get("type")) == Some(5.0),
                network_site: id_string(m.get("network_site_id")).filter(|p| p != "0"),
                gps: gps(m.get("gps")),
                title,
                id,
            })
        })
        .collect();
    let hw_index: HashMap<&str, usize> =
        hardware.iter().enumerate().map(|(i, h)| (h.id.as_str(), i)).collect();

    // Hardware names: `Parent_Child` under a parent; duplicates get ` (<id>)`.
    let mut names = UniqueNames::default();
    let hw_names: Vec<String> = hardware
        .iter()
        .map(|h| {
            let base = match h.parent.as_deref().and_then(|p| hw_index.get(p)) {
                Some(&p) => format!("{}_{}", hardware[p].title, h.title),
                None => h.title.clone(),
            };
            let name = names.claim(&base, &h.id);
            if name != base { format!("{base} ({})", h.id) } else { name }
        })
        .collect();

    // Circuits.
    struct Draft {
        circuit: Circuit,
        hw: Option<usize>,
    }
    let mut drafts = Vec::new();
    for svc in list(Some(&docs.services), endpoints::SERVICES)? {
        let Some(id) = id_string(svc.get("id")) else { continue };
        if string(svc.get("status")).is_some_and(|st| st != "active") {
            continue;
        }
        let customer_id = id_string(svc.get("customer_id")).unwrap_or_default();
        let name = customers
            .get(&customer_id)
            .filter(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| format!("Customer {customer_id}"));
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
        let mut v4: Vec<String> = split_list(svc.get("ipv4"));
        v4.extend(split_list(svc.get("ipv4_route")));
        let mut v6: Vec<String> = split_list(svc.get("ipv6"));
        v6.extend(split_list(svc.get("ipv6_delegated")));
        if let Some((ov4, ov6)) = online.get(&id) {
            if v4.is_empty() {
                v4.extend(ov4.iter().cloned());
            }
            if v6.is_empty() {
                v6.extend(ov6.iter().cloned());
            }
        }
        let mut set = AddressSet::default();
        for (i, a) in v4.iter().chain(v6.iter()).enumerate() {
            // The service's own address is a host; routes and delegations are prefixes.
            let net = if i == 0 || (i >= v4.len() && i == v4.len()) {
                parse_host_or_net(a)
            } else {
                parse_prefix(a)
            };
            match net {
                Some(n) => set.push(n, &filter),
                None => warnings.push(Diagnostic::warning(
                    LABEL,
                    format!("service {id}: '{a}' is not an address; left out"),
                )),
            }
        }
        let max_d = rules.client_max_mbps(down);
        let max_u = rules.client_max_mbps(up);
        let (download_min, download_max) = min_max(max_d * PYTHON_MIN_RATIO, max_d);
        let (upload_min, upload_max) = min_max(max_u * PYTHON_MIN_RATIO, max_u);
        let parent_hw = [id_string(svc.get("access_device")), id_string(svc.get("router_id"))]
            .into_iter()
            .flatten()
            .find_map(|h| hw_index.get(h.as_str()).copied())
            .or_else(|| {
                let r = id_string(svc.get("router_id"))?;
                let first = sectors_of_router.get(&r)?.first()?;
                hw_index.get(first.as_str()).copied()
            });
        drafts.push(Draft {
            hw: parent_hw,
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

    // Hierarchy.
    let top = (config.queues.downlink, config.queues.uplink);
    let node_rate = (rate(DEFAULT_NODE_MBPS), rate(DEFAULT_NODE_MBPS));
    let mut tree = TreeBuilder::default();
    let mut hw_node: HashMap<usize, usize> = HashMap::new();
    let hw_build = |i: usize, parent: Option<usize>| {
        let h = &hardware[i];
        BuildNode {
            name: hw_names[i].clone(),
            id: Some(format!("splynx:{}:{}", if h.is_ap { "ap" } else { "site" }, h.id)),
            node_type: if h.is_ap { "ap" } else { "site" },
            download: node_rate.0,
            upload: node_rate.1,
            parent,
            extra: lat_lon(h.gps.map(|g| g.0), h.gps.map(|g| g.1)),
        }
    };
    let sites: Vec<&Value> = list(docs.network_sites.as_ref(), endpoints::SITES)?.iter().collect();
    let site_ids: HashSet<String> = sites.iter().filter_map(|s| id_string(s.get("id"))).collect();
    let uses_sites =
        hardware.iter().any(|h| h.network_site.as_ref().is_some_and(|n| site_ids.contains(n)));
    let effective = match mode {
        TopologyStrategy::ApSite if !uses_sites => TopologyStrategy::Full,
        m => m,
    };
    match effective {
        TopologyStrategy::Flat => {}
        TopologyStrategy::ApOnly => {
            for (i, h) in hardware.iter().enumerate() {
                if h.is_ap {
                    hw_node.insert(i, tree.add(hw_build(i, None)));
                }
            }
        }
        TopologyStrategy::ApSite => {
            let mut site_node: HashMap<String, usize> = HashMap::new();
            for site in &sites {
                let Some(sid) = id_string(site.get("id")) else { continue };
                if !hardware
                    .iter()
                    .any(|h| h.is_ap && h.network_site.as_deref() == Some(sid.as_str()))
                {
                    continue;
                }
                let title = string(site.get("title"))
                    .or_else(|| string(site.get("description")))
                    .unwrap_or_else(|| format!("Site {sid}"));
                let g = gps(site.get("gps"));
                let idx = tree.add(BuildNode {
                    name: names.claim(&title, &format!("site {sid}")),
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
                if let Some(&p) = h.network_site.as_ref().and_then(|n| site_node.get(n))
                    && h.is_ap
                {
                    hw_node.insert(i, tree.add(hw_build(i, Some(p))));
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
            for i in order {
                let parent = hardware[i]
                    .parent
                    .as_deref()
                    .and_then(|p| hw_index.get(p))
                    .and_then(|p| hw_node.get(p))
                    .copied();
                hw_node.insert(i, tree.add(hw_build(i, parent)));
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
