//! Lenient serde mirrors of the three UISP answers: every field optional, unknown fields
//! ignored, one bad list item skipped with a warning instead of failing the import.

use lqos_config::Diagnostic;
use serde::Deserialize;
use serde_json::Value;

use super::{LABEL, json_kind};
use crate::error::{Crm, ImportError};

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct IdRef {
    pub id: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Site {
    pub id: Option<String>,
    pub identification: Option<SiteIdent>,
    pub description: Option<SiteDesc>,
    pub qos: Option<Qos>,
    pub ucrm: Option<Ucrm>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct SiteIdent {
    pub id: Option<String>,
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub parent: Option<IdRef>,
    pub suspended: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct SiteDesc {
    pub address: Option<String>,
    pub location: Option<Location>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Location {
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Qos {
    pub enabled: Option<bool>,
    pub download_speed: Option<f64>,
    pub upload_speed: Option<f64>,
    pub download_burst_size: Option<f64>,
    pub upload_burst_size: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Ucrm {
    pub service: Option<IdRef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct DeviceRaw {
    pub identification: Option<DevIdent>,
    pub ip_address: Option<String>,
    pub attributes: Option<Attributes>,
    pub overview: Option<Overview>,
    pub interfaces: Option<Vec<Iface>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct DevIdent {
    pub id: Option<String>,
    pub hostname: Option<String>,
    pub name: Option<String>,
    pub mac: Option<String>,
    pub model: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub role: Option<String>,
    pub site: Option<IdRef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Attributes {
    pub ap_device: Option<IdRef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Overview {
    pub downlink_capacity: Option<f64>,
    pub uplink_capacity: Option<f64>,
    pub total_capacity: Option<f64>,
    pub theoretical_total_capacity: Option<f64>,
    pub wireless_mode: Option<String>,
    pub wireless_active_interface_ids: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Iface {
    pub identification: Option<IfaceIdent>,
    pub addresses: Option<Vec<IfaceAddr>>,
    pub status: Option<IfaceStatus>,
    pub wireless: Option<Wireless>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct IfaceIdent {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct IfaceAddr {
    pub cidr: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct IfaceStatus {
    pub status: Option<String>,
    pub speed: Option<String>,
    pub current_speed: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Wireless {
    pub dl_ratio: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Link {
    pub from: Option<LinkEnd>,
    pub to: Option<LinkEnd>,
    pub can_delete: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LinkEnd {
    pub device: Option<Identified>,
    pub site: Option<Identified>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Identified {
    pub identification: Option<IdRef>,
}

impl LinkEnd {
    pub fn device_id(&self) -> Option<&str> {
        self.device.as_ref()?.identification.as_ref()?.id.as_deref()
    }
    pub fn site_id(&self) -> Option<&str> {
        self.site.as_ref()?.identification.as_ref()?.id.as_deref()
    }
}

/// Deserialises each item of a JSON list; items that do not fit are skipped with a warning.
pub(crate) fn parse_list<T: for<'de> Deserialize<'de>>(
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
