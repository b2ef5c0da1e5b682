//! Netzur: one `GET {api_url}` with `Authorization: Bearer <api_key>` answering
//! `{"zones": […], "customers": […]}`, then a pure [`import`].
//!
//! Rules (LibreQoS's `integrationNetzur.py`): each zone (`name`, optional `id`/`zone_id`) is a
//! site (`netzur:zone:<id>`) with `capacity_download_mbps`/`capacity_upload_mbps` through the
//! shared client multiplier, unless its lower-cased name is in `exclude_sites`; a repeated zone
//! name keeps the first. A zone without a stated capacity gets `generated_pn_download_mbps` /
//! `generated_pn_upload_mbps` (LibreQoS writes 0 Mbps there, which shapes the zone to
//! nothing; lqos uses the same default as every other node of unknown capacity). Each customer
//! with a `subscriber_id` is a circuit `netzur_<id>` under the zone named by `zone`
//! (unparented when unknown; left out when that zone is excluded), named `customerName` (or
//! `address` with `circuit_name_as_address`), rates `download`/`upload` × multiplier with
//! Min = 0.98 × Max, and one device `netzur_<id>_device` named `<customerName>_device` with
//! `ip` (comma list or array), `ipv6` and `mac`. Always `full`.

use std::collections::HashMap;

use lqos_config::{Circuit, CircuitId, Config, Device, Diagnostic, NetzurConfig, RateKbit};
use serde_json::Value;
use tracing::debug;

use crate::Import;
use crate::common::{
    AddressFilter, AddressKind, AddressSet, BuildNode, PYTHON_MIN_RATIO, SharedRules, TreeBuilder,
    drop_duplicates_and_empty, id_string, min_max, number, push_address, rate, string,
};
use crate::error::{Crm, ImportError};
use crate::http::{Auth, Http, HttpOptions};
use crate::uisp::json_kind;

const LABEL: &str = "Netzur";
/// Shortest `timeout_secs` honoured (LibreQoS: min 5).
pub const MIN_TIMEOUT_SECS: u64 = 5;

/// The raw document.
#[derive(Debug, Clone, PartialEq)]
pub struct NetzurDocs {
    /// `{"zones": […], "customers": […]}`
    pub document: Value,
}

fn netzur_config(config: &Config) -> Result<&NetzurConfig, ImportError> {
    let n = config.netzur.as_ref().ok_or_else(|| ImportError::NotConfigured {
        crm: Crm::Netzur,
        cause: "the section is missing".into(),
    })?;
    if n.api_url.trim().is_empty() || n.api_key.trim().is_empty() {
        return Err(ImportError::NotConfigured {
            crm: Crm::Netzur,
            cause: "api_url and api_key are required".into(),
        });
    }
    Ok(n)
}

/// Fetches the document. `timeout_secs` from lqos.conf bounds each request.
pub async fn pull(config: &Config, opts: &HttpOptions) -> Result<NetzurDocs, ImportError> {
    let n = netzur_config(config)?;
    let mut opts = opts.clone();
    opts.timeout =
        opts.timeout.min(std::time::Duration::from_secs(n.timeout_secs.max(MIN_TIMEOUT_SECS)));
    let http = Http::new(Crm::Netzur, &opts, false)?;
    let url = n.api_url.trim().to_string();
    let document = http.get_json(&url, Auth::Bearer(n.api_key.trim())).await?;
    check_shape(&document, &url)?;
    Ok(NetzurDocs { document })
}

fn check_shape(doc: &Value, url: &str) -> Result<(), ImportError> {
    let ok = doc.is_object()
        && doc.get("zones").is_none_or(Value::is_array)
        && doc.get("customers").is_some_and(Value::is_array);
    if ok {
        Ok(())
    } else {
        Err(ImportError::Shape {
            crm: Crm::Netzur,
            url: url.to_string(),
            cause: format!(
                "expected an object with `zones` and `customers` lists, got {}",
                json_kind(doc)
            ),
        })
    }
}

fn ip_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => {
            s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_string).collect()
        }
        Some(Value::Array(a)) => a.iter().filter_map(|x| string(Some(x))).collect(),
        _ => Vec::new(),
    }
}

/// Turns the document into zones and circuits. Pure: no I/O.
pub fn import(docs: &NetzurDocs, config: &Config) -> Result<Import, ImportError> {
    netzur_config(config)?;
    check_shape(&docs.document, "document")?;
    let rules = SharedRules::from_config(config);
    let filter = AddressFilter::ignore_only(config);
    let mut warnings = Vec::new();
    let empty = Vec::new();
    let zones = docs.document.get("zones").and_then(Value::as_array).unwrap_or(&empty);
    let customers = docs.document.get("customers").and_then(Value::as_array).unwrap_or(&empty);

    let mut tree = TreeBuilder::default();
    let mut zone_node: HashMap<String, usize> = HashMap::new();
    let gen_rates = (config.queues.generated_pn_download, config.queues.generated_pn_upload);
    for z in zones {
        let Some(name) = string(z.get("name")) else {
            warnings.push(Diagnostic::warning(LABEL, "a zone without a name was skipped"));
            continue;
        };
        if rules.is_excluded(&name) {
            continue;
        }
        if zone_node.contains_key(&name) {
            warnings.push(Diagnostic::warning(
                LABEL,
                format!("zone '{name}' appears more than once; the first one is used"),
            ));
            continue;
        }
        let zid = id_string(z.get("id")).or_else(|| id_string(z.get("zone_id")));
        let capacity = |key: &str, fallback: RateKbit| {
            let mbps = rules.client_max_mbps(number(z.get(key)).unwrap_or(0.0));
            if mbps > 0.0 { rate(mbps) } else { fallback }
        };
        let idx = tree.add(BuildNode {
            name: name.clone(),
            id: zid.map(|i| format!("netzur:zone:{i}")),
            node_type: "site",
            download: capacity("capacity_download_mbps", gen_rates.0),
            upload: capacity("capacity_upload_mbps", gen_rates.1),
            parent: None,
            extra: Default::default(),
        });
        zone_node.insert(name, idx);
    }

    let mut circuits = Vec::new();
    for c in customers {
        let Some(sid) = id_string(c.get("subscriber_id")) else { continue };
        let zone = string(c.get("zone"));
        if zone.as_deref().is_some_and(|z| rules.is_excluded(z)) {
            continue;
        }
        let name = string(c.get("customerName")).unwrap_or_else(|| sid.clone());
        let address = string(c.get("address"));
        let circuit_name = match address {
            Some(a) if config.integration_common.circuit_name_as_address => a,
            _ => name.clone(),
        };
        let max_d = rules.client_max_mbps(number(c.get("download")).unwrap_or(0.0));
        let max_u = rules.client_max_mbps(number(c.get("upload")).unwrap_or(0.0));
        let (download_min, download_max) = min_max(max_d * PYTHON_MIN_RATIO, max_d);
        let (upload_min, upload_max) = min_max(max_u * PYTHON_MIN_RATIO, max_u);
        let parent = zone.and_then(|z| {
            let found = zone_node.get(&z).and_then(|&i| tree.get(i));
            if found.is_none() {
                warnings.push(Diagnostic::warning(
                    LABEL,
                    format!("customer {sid} ({name}): zone '{z}' is unknown; unparented"),
                ));
            }
            found
        });
        let mut set = AddressSet::default();
        let what = format!("customer {sid}");
        for a in ip_list(c.get("ip")).iter().chain(ip_list(c.get("ipv6")).iter()) {
            push_address(&mut set, a, AddressKind::Host, &filter, &what, LABEL, &mut warnings);
        }
        let mac = string(c.get("mac")).unwrap_or_default();
        let devices = if set.is_empty() && mac.is_empty() {
            Vec::new()
        } else {
            vec![Device {
                id: format!("netzur_{sid}_device"),
                name: format!("{name}_device"),
                mac,
                ipv4: set.v4,
                ipv6: set.v6,
                comment: String::new(),
                line: 0,
            }]
        };
        circuits.push(Circuit {
            id: CircuitId(format!("netzur_{sid}")),
            name: circuit_name,
            parent_node: parent.map(|p| p.name.clone()),
            parent_node_id: parent.and_then(|p| p.id.clone()),
            anchor_node_id: None,
            download_min,
            upload_min,
            download_max,
            upload_max,
            sqm: None,
            devices,
            line: 0,
        });
    }
    let circuits = drop_duplicates_and_empty(circuits, LABEL, &mut warnings);
    let network = tree.finish(
        &config.integration_common.promote_to_root,
        (config.queues.downlink, config.queues.uplink),
        |_| true,
    );
    debug!(circuits = circuits.len(), nodes = network.nodes.len(), "Netzur import built");
    Ok(Import { crm: Crm::Netzur, network, circuits, warnings })
}
