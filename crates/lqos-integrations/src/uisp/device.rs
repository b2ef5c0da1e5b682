//! What one UISP device tells the import: its name and addresses, its radio capacity (the
//! airMax flexible-frame formula, 5AC/LTU factors, transport-port and model ceilings) and its
//! negotiated Ethernet speed (the CPE port cap). Formulas follow LibreQoS's `UispDevice`.

use ipnet::IpNet;

use super::raw::DeviceRaw;
use crate::common::parse_host_or_net;

/// LibreQoS's `airmax_flexible_frame_download_ratio` default.
pub const AIRMAX_FLEXIBLE_FRAME_DOWNLOAD_RATIO: f64 = 0.8;
/// LibreQoS's `ethernet_port_limit_multiplier` default.
pub const ETHERNET_PORT_LIMIT_MULTIPLIER: f64 = 0.94;

/// `[integration_common] ethernet_port_limits_enabled` / `ethernet_port_limit_multiplier`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PortPolicy {
    /// Caps are applied at all.
    pub enabled: bool,
    /// Usable share of the line rate.
    pub multiplier: f64,
}

impl PortPolicy {
    /// The usable rate of a port negotiated at `line_mbps`, rounded like LibreQoS;
    /// `None` when caps are disabled or the speed is unknown.
    pub fn usable_mbps(self, line_mbps: u64) -> Option<u64> {
        if !self.enabled || line_mbps == 0 {
            return None;
        }
        let cap = line_mbps as f64 * self.multiplier;
        (cap.is_finite() && cap > 0.0).then(|| cap.round() as u64)
    }
}

/// The settings device capacities depend on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceRules {
    /// `generated_pn_download_mbps`, `generated_pn_upload_mbps`.
    pub generated: (u64, u64),
    /// `airmax_capacity`.
    pub airmax_capacity: f64,
    /// `airmax_flexible_frame_download_ratio`.
    pub airmax_ratio: f64,
    /// `ltu_capacity`.
    pub ltu_capacity: f64,
    /// `infrastructure_transport_caps_enabled`.
    pub transport_caps: bool,
    /// The Ethernet port policy.
    pub port: PortPolicy,
}

/// A device's capacity in Mbps, after every rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    /// Download (AP → station).
    pub down: u64,
    /// Upload.
    pub up: u64,
    /// Before the transport cap.
    pub raw: (u64, u64),
    /// When a transport cap applied: (line rate, usable cap, reason).
    pub transport_cap: Option<(u64, u64, String)>,
}

/// Link speed in Mbps from UISP's `currentSpeed`/`speed` (`"1000-full"`, `"2.5Gbps-full"`,
/// `"10g"`), rounded; `None` for `auto`, empty or zero.
pub fn parse_speed_mbps(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let n: f64 = digits.parse().ok()?;
    if !(n.is_finite() && n > 0.0) {
        return None;
    }
    let mult = if t.contains("gbps") || t.ends_with('g') { 1000.0 } else { 1.0 };
    let mbps = (n * mult).round();
    (1.0..1e12).contains(&mbps).then_some(mbps as u64)
}

fn is_wireless_kind(kind: &str) -> bool {
    matches!(kind, "wlan" | "wifi" | "wireless")
}

/// `connected`, `up` and `active` let a plain `speed` count when `currentSpeed` is missing.
fn allows_plain_speed(status: Option<&str>) -> bool {
    status.is_some_and(|s| {
        matches!(s.trim().to_ascii_lowercase().as_str(), "connected" | "up" | "active")
    })
}

fn bps_to_mbps(v: Option<f64>) -> Option<f64> {
    v.filter(|b| b.is_finite() && *b > 0.0).map(|b| b / 1e6)
}

fn floor_u64(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 { v.min(1e12) as u64 } else { 0 }
}

impl DeviceRaw {
    pub(crate) fn id(&self) -> Option<&str> {
        self.identification.as_ref()?.id.as_deref().filter(|s| !s.is_empty())
    }
    pub(crate) fn site_id(&self) -> Option<&str> {
        self.identification.as_ref()?.site.as_ref()?.id.as_deref()
    }
    /// Hostname, else name, else the id.
    pub(crate) fn name(&self) -> String {
        let ident = self.identification.as_ref();
        ident
            .and_then(|i| i.hostname.clone().or_else(|| i.name.clone()))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| self.id().unwrap_or("device").to_string())
    }
    pub(crate) fn ap_device_id(&self) -> Option<&str> {
        self.attributes.as_ref()?.ap_device.as_ref()?.id.as_deref()
    }
    pub(crate) fn model(&self) -> String {
        self.identification.as_ref().and_then(|i| i.model.clone()).unwrap_or_default()
    }
    pub(crate) fn role(&self) -> Option<String> {
        self.identification.as_ref()?.role.as_ref().map(|r| r.trim().to_ascii_lowercase())
    }
    pub(crate) fn wireless_mode(&self) -> Option<String> {
        self.overview.as_ref()?.wireless_mode.as_ref().map(|m| m.trim().to_ascii_lowercase())
    }
    /// A point-to-multipoint access point (`wirelessMode` `ap-ptmp`).
    pub(crate) fn is_ptmp_ap(&self) -> bool {
        self.wireless_mode().is_some_and(|m| m == "ap-ptmp")
    }
    /// A subscriber radio: role station/sta/cpe, or a `sta*` wireless mode.
    pub(crate) fn is_station_cpe(&self) -> bool {
        matches!(self.role().as_deref(), Some("station" | "sta" | "cpe"))
            || self.wireless_mode().is_some_and(|m| m.starts_with("sta"))
    }
    /// A router or home Wi-Fi box (its LAN port says nothing about the radio link).
    pub(crate) fn is_router_like(&self) -> bool {
        matches!(self.role().as_deref(), Some("router" | "homewifi" | "home-wifi" | "home wifi"))
    }

    fn iface_speed(i: &super::raw::Iface) -> Option<u64> {
        let st = i.status.as_ref()?;
        let raw = match st.current_speed.as_deref() {
            Some(c) => Some(c),
            None if allows_plain_speed(st.status.as_deref()) => st.speed.as_deref(),
            None => None,
        }?;
        parse_speed_mbps(raw)
    }

    /// The slowest non-wireless port with a known speed: (Mbps, interface name).
    pub(crate) fn negotiated_ethernet(&self) -> Option<(u64, Option<String>)> {
        let mut best: Option<(u64, Option<String>)> = None;
        for i in self.interfaces.iter().flatten() {
            let ident = i.identification.as_ref();
            let kind = ident.and_then(|x| x.kind.as_deref()).unwrap_or("").to_ascii_lowercase();
            if is_wireless_kind(&kind) {
                continue;
            }
            let Some(speed) = Self::iface_speed(i) else { continue };
            if best.as_ref().is_none_or(|(b, _)| speed < *b) {
                best = Some((speed, ident.and_then(|x| x.name.clone())));
            }
        }
        best
    }

    /// The fastest transport port (Ethernet, SFP, fibre by type or name) with a known speed.
    fn transport_port(&self) -> Option<(u64, Option<String>)> {
        let mut best: Option<(u64, Option<String>)> = None;
        for i in self.interfaces.iter().flatten() {
            let ident = i.identification.as_ref();
            let kind =
                ident.and_then(|x| x.kind.as_deref()).unwrap_or("").trim().to_ascii_lowercase();
            let name =
                ident.and_then(|x| x.name.as_deref()).unwrap_or("").trim().to_ascii_lowercase();
            let transport = !is_wireless_kind(&kind)
                && (matches!(
                    kind.as_str(),
                    "eth" | "ethernet" | "sfp" | "sfp+" | "sfpplus" | "fiber" | "optical"
                ) || name.starts_with("eth")
                    || name.starts_with("sfp")
                    || name.starts_with("fiber"));
            if !transport {
                continue;
            }
            let Some(speed) = Self::iface_speed(i) else { continue };
            if best.as_ref().is_none_or(|(b, _)| speed > *b) {
                best = Some((speed, ident.and_then(|x| x.name.clone())));
            }
        }
        best
    }

    /// Ceilings of models whose radio outruns their Ethernet port (LibreQoS: AF60-LR, 1 G).
    fn model_port_ceiling(&self) -> Option<(u64, String)> {
        let key: String = self
            .model()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect();
        match key.as_str() {
            "AF60LR" => Some((1000, "model AF60LR is limited to 1G Ethernet ports".into())),
            _ => None,
        }
    }

    /// The download ratio of the active wireless interface (`dlRatio`, 0–1 or a percentage).
    fn active_dl_ratio(&self) -> Option<f64> {
        let norm = |r: f64| -> Option<f64> {
            if !r.is_finite() || r <= 0.0 {
                None
            } else if r < 1.0 {
                Some(r)
            } else if r <= 100.0 {
                Some(r / 100.0)
            } else {
                None
            }
        };
        let ifaces = self.interfaces.as_ref()?;
        if let Some(active) =
            self.overview.as_ref().and_then(|o| o.wireless_active_interface_ids.as_ref())
        {
            for name in active {
                let r = ifaces.iter().find_map(|i| {
                    (i.identification.as_ref()?.name.as_deref() == Some(name.as_str()))
                        .then(|| i.wireless.as_ref()?.dl_ratio)
                        .flatten()
                });
                if let Some(r) = r.and_then(norm) {
                    return Some(r);
                }
            }
        }
        ifaces
            .iter()
            .filter(|i| {
                i.identification
                    .as_ref()
                    .and_then(|x| x.kind.as_deref())
                    .is_some_and(|k| is_wireless_kind(&k.to_ascii_lowercase()))
            })
            .find_map(|i| i.wireless.as_ref()?.dl_ratio)
            .and_then(norm)
    }

    /// airMax AP in PtMP mode that runs flexible framing (a live `dlRatio` or a theoretical
    /// total capacity).
    fn is_airmax_flexible_frame_ap(&self) -> bool {
        let ident = self.identification.as_ref();
        let airmax = ident
            .and_then(|i| i.kind.as_deref())
            .is_some_and(|k| k.eq_ignore_ascii_case("airmax"))
            && ident.and_then(|i| i.role.as_deref()).is_some_and(|r| r.eq_ignore_ascii_case("ap"));
        airmax
            && self.is_ptmp_ap()
            && (self.active_dl_ratio().is_some()
                || self
                    .overview
                    .as_ref()
                    .and_then(|o| o.theoretical_total_capacity)
                    .is_some_and(|t| t > 0.0))
    }

    /// LibreQoS's flexible-frame formula: total = `totalCapacity`, else the larger of
    /// `downlinkCapacity`/`uplinkCapacity`, × `airmax_capacity`, split by the live `dlRatio`
    /// (else `airmax_flexible_frame_download_ratio`).
    fn airmax_capacity(&self, r: &DeviceRules) -> Option<(u64, u64)> {
        if !self.is_airmax_flexible_frame_ap() {
            return None;
        }
        let ov = self.overview.as_ref()?;
        let total = bps_to_mbps(ov.total_capacity).or_else(|| {
            let d = bps_to_mbps(ov.downlink_capacity)?;
            let u = bps_to_mbps(ov.uplink_capacity)?;
            Some(d.max(u))
        })? * r.airmax_capacity;
        if !(total.is_finite() && total > 0.0) {
            return None;
        }
        let ratio = self.active_dl_ratio().unwrap_or(r.airmax_ratio);
        let up_ratio = 1.0 - ratio;
        if !(up_ratio.is_finite() && up_ratio > 0.0 && ratio > 0.0) {
            return None;
        }
        Some(((total * ratio).round() as u64, (total * up_ratio).round() as u64))
    }

    /// The device's capacity (Mbps) as LibreQoS computes it: the airMax formula for
    /// flexible-frame APs; otherwise `downlinkCapacity`/`uplinkCapacity` (× `airmax_capacity`
    /// for 5AC models, × `ltu_capacity` for LTU models); zero → the generated-node rates;
    /// then, with `infrastructure_transport_caps_enabled`, capped at the usable rate of the
    /// fastest transport port (or the model's port ceiling).
    pub(crate) fn capacity(&self, r: &DeviceRules) -> Capacity {
        let (mut down, mut up) = r.generated;
        if let Some(ov) = &self.overview {
            if let Some(c) = self.airmax_capacity(r) {
                (down, up) = c;
            } else {
                if let Some(d) = ov.downlink_capacity {
                    down = floor_u64(d / 1e6);
                }
                if let Some(u) = ov.uplink_capacity {
                    up = floor_u64(u / 1e6);
                }
                let model = self.model();
                if model.contains("5AC") {
                    down = floor_u64(down as f64 * r.airmax_capacity);
                    up = floor_u64(up as f64 * r.airmax_capacity);
                }
                if model.contains("LTU") {
                    down = floor_u64(down as f64 * r.ltu_capacity);
                    up = floor_u64(up as f64 * r.ltu_capacity);
                }
            }
        }
        if down == 0 {
            down = r.generated.0;
        }
        if up == 0 {
            up = r.generated.1;
        }
        let raw = (down, up);
        let mut transport_cap = None;
        if r.transport_caps {
            let selected = self
                .transport_port()
                .map(|(line, iface)| {
                    let reason = match iface {
                        Some(i) => {
                            format!("active transport interface {i} negotiated at {line} Mbps")
                        }
                        None => format!("active transport interface negotiated at {line} Mbps"),
                    };
                    (line, reason)
                })
                .or_else(|| self.model_port_ceiling());
            if let Some((line, reason)) = selected
                && let Some(cap) = r.port.usable_mbps(line)
                && (down > cap || up > cap)
            {
                down = down.min(cap);
                up = up.min(cap);
                transport_cap = Some((line, cap, reason));
            }
        }
        Capacity { down, up, raw, transport_cap }
    }

    /// Every address of the device: `ipAddress` (always a host) and the interface CIDRs
    /// (a host address becomes /32 or /128, a network address keeps its prefix).
    pub(crate) fn addresses(&self) -> Vec<IpNet> {
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
}

#[cfg(test)]
mod tests {
    //! Expectations ported from LibreQoS's `uisp_device.rs` tests (same inputs, same numbers).
    use super::*;
    use serde_json::json;

    fn rules() -> DeviceRules {
        DeviceRules {
            generated: (1000, 1000),
            airmax_capacity: 1.0,
            airmax_ratio: 0.8,
            ltu_capacity: 1.0,
            transport_caps: true,
            port: PortPolicy { enabled: true, multiplier: ETHERNET_PORT_LIMIT_MULTIPLIER },
        }
    }

    fn dev(v: serde_json::Value) -> DeviceRaw {
        serde_json::from_value(v).unwrap()
    }

    fn with_ifaces(ifaces: serde_json::Value) -> DeviceRaw {
        dev(
            json!({"identification":{"id":"dev-1","hostname":"dev-1"},"overview":{"wirelessMode":null},"interfaces":ifaces}),
        )
    }

    #[test]
    fn speeds_parse_like_libreqos() {
        assert_eq!(parse_speed_mbps("1000-full"), Some(1000));
        assert_eq!(parse_speed_mbps("2.5Gbps-full"), Some(2500));
        assert_eq!(parse_speed_mbps("10g"), Some(10000));
        assert_eq!(parse_speed_mbps("100"), Some(100));
        assert_eq!(parse_speed_mbps("auto"), None);
        assert_eq!(parse_speed_mbps(""), None);
        assert_eq!(parse_speed_mbps("unknown"), None);
    }

    #[test]
    fn disconnected_plain_speed_is_ignored_for_negotiated_ethernet() {
        let d = with_ifaces(json!([{"identification":{"name":"eth0@1","type":"eth"},
            "status":{"status":"disconnected","speed":"10-half","currentSpeed":null}}]));
        assert_eq!(d.negotiated_ethernet(), None);
    }

    #[test]
    fn disconnected_current_speed_is_still_accepted() {
        let d = with_ifaces(json!([{"identification":{"name":"data","type":"eth"},
            "status":{"status":"disconnected","speed":"auto","currentSpeed":"100-full"}}]));
        assert_eq!(d.negotiated_ethernet(), Some((100, Some("data".into()))));
    }

    #[test]
    fn connected_up_and_active_plain_speeds_are_accepted() {
        for status in ["connected", "up", "active"] {
            let d = with_ifaces(json!([{"identification":{"name":"eth0","type":"eth"},
                "status":{"status":status,"speed":"1000-full","currentSpeed":null}}]));
            assert_eq!(d.negotiated_ethernet(), Some((1000, Some("eth0".into()))), "{status}");
        }
    }

    #[test]
    fn slowest_port_is_the_negotiated_speed() {
        let d = with_ifaces(json!([
            {"identification":{"name":"eth0","type":"eth"},"status":{"currentSpeed":"1000-full"}},
            {"identification":{"name":"eth1","type":"eth"},"status":{"currentSpeed":"100-full"}},
            {"identification":{"name":"ath0","type":"wlan"},"status":{"currentSpeed":"10-full"}}]));
        assert_eq!(d.negotiated_ethernet(), Some((100, Some("eth1".into()))));
    }

    #[test]
    fn airmax_ptmp_ap_uses_reported_total_capacity_and_dl_ratio() {
        let d = dev(
            json!({"identification":{"id":"a","hostname":"a","model":"RP-5AC-Gen2","role":"ap","type":"airMax"},
            "overview":{"wirelessMode":"ap-ptmp","totalCapacity":200000000,"theoreticalTotalCapacity":1000000,"wirelessActiveInterfaceIds":["main"]},
            "interfaces":[{"identification":{"name":"main","type":"wlan"},"wireless":{"dlRatio":75.0}}]}),
        );
        let c = d.capacity(&rules());
        assert_eq!((c.down, c.up), (150, 50));
    }

    #[test]
    fn airmax_ptmp_ap_uses_directional_capacities_when_total_missing() {
        let d = dev(
            json!({"identification":{"id":"a","hostname":"a","model":"RP-5AC-Gen2","role":"ap","type":"airMax"},
            "overview":{"wirelessMode":"ap-ptmp","downlinkCapacity":220000000,"uplinkCapacity":180000000,"theoreticalTotalCapacity":1000000,"wirelessActiveInterfaceIds":["main"]},
            "interfaces":[{"identification":{"name":"main","type":"wlan"},"wireless":{"dlRatio":null}}]}),
        );
        let c = d.capacity(&rules());
        assert_eq!((c.down, c.up), (176, 44));
        // The configured ratio drives the split when the radio reports none.
        let mut r = rules();
        r.airmax_ratio = 0.5;
        let c = d.capacity(&r);
        assert_eq!((c.down, c.up), (110, 110));
    }

    #[test]
    fn airmax_ptp_ap_ignores_theoretical_total_capacity() {
        let d = dev(
            json!({"identification":{"id":"a","hostname":"a","model":"GBE","role":"ap","type":"airMax"},
            "overview":{"wirelessMode":"ap-ptp","downlinkCapacity":1617000000,"uplinkCapacity":1078000000,"theoreticalTotalCapacity":19250000,"wirelessActiveInterfaceIds":["main"]},
            "interfaces":[{"identification":{"name":"main","type":"wlan"},"wireless":{"dlRatio":90.0}}]}),
        );
        let c = d.capacity(&rules());
        assert_eq!((c.down, c.up), (1617, 1078));
    }

    #[test]
    fn non_airmax_ap_devices_keep_existing_capacity_path() {
        let mut r = rules();
        r.airmax_capacity = 0.5;
        let d = dev(
            json!({"identification":{"id":"a","hostname":"a","model":"LBE-5AC-Gen2","role":"station","type":"airMax"},
            "overview":{"wirelessMode":"sta-ptmp","downlinkCapacity":300000000,"uplinkCapacity":200000000,"theoreticalTotalCapacity":200000000,"wirelessActiveInterfaceIds":["main"]},
            "interfaces":[{"identification":{"name":"main","type":"wlan"},"wireless":{"dlRatio":90.0}}]}),
        );
        let c = d.capacity(&r);
        assert_eq!((c.down, c.up), (150, 100));
    }

    #[test]
    fn af60lr_model_fallback_caps_radio_capacity_to_gigabit_transport() {
        let d = dev(
            json!({"identification":{"id":"af","hostname":"AF60LR-TuscToMonte","model":"AF60-LR","role":"station","type":"airFiber"},
            "overview":{"wirelessMode":"sta-ptp","downlinkCapacity":2000000000i64,"uplinkCapacity":2000000000i64}}),
        );
        let c = d.capacity(&rules());
        assert_eq!(c.raw, (2000, 2000));
        assert_eq!((c.down, c.up), (940, 940));
        let (line, cap, reason) = c.transport_cap.unwrap();
        assert_eq!((line, cap), (1000, 940));
        assert!(reason.contains("AF60LR"));
        // Disabled: the radio capacity stands.
        let mut r = rules();
        r.transport_caps = false;
        assert_eq!(d.capacity(&r).down, 2000);
    }

    #[test]
    fn wavepro_two_point_five_gig_port_caps_radio_capacity() {
        let d = dev(
            json!({"identification":{"id":"w","hostname":"WavePro","model":"Wave-Pro","role":"station","type":"airFiber"},
            "overview":{"wirelessMode":"sta-ptp","downlinkCapacity":2700000000i64,"uplinkCapacity":2700000000i64},
            "interfaces":[{"identification":{"name":"eth0","type":"eth"},"status":{"status":"connected","speed":"auto","currentSpeed":"2.5Gbps-full"}}]}),
        );
        let c = d.capacity(&rules());
        assert_eq!((c.raw.0, c.down, c.up), (2700, 2350, 2350));
        assert!(c.transport_cap.unwrap().2.contains("2500 Mbps"));
    }

    #[test]
    fn mixed_transport_ports_use_the_fastest_and_bridges_do_not_count() {
        let d = dev(
            json!({"identification":{"id":"w","hostname":"WavePro","model":"Wave-Pro","role":"station","type":"airFiber"},
            "overview":{"wirelessMode":"sta-ptp","downlinkCapacity":2700000000i64,"uplinkCapacity":2700000000i64},
            "interfaces":[
              {"identification":{"name":"br0","type":"bridge"},"status":{"status":"connected","currentSpeed":"1Gbps-full"}},
              {"identification":{"name":"eth0","type":"eth"},"status":{"status":"connected","currentSpeed":"1Gbps-full"}},
              {"identification":{"name":"sfp0","type":"sfp"},"status":{"status":"connected","currentSpeed":"2.5Gbps-full"}}]}),
        );
        let c = d.capacity(&rules());
        assert_eq!((c.down, c.up), (2350, 2350));
        let reason = c.transport_cap.unwrap().2;
        assert!(reason.contains("sfp0") && reason.contains("2500 Mbps"), "{reason}");
    }

    #[test]
    fn port_policy_rounds_and_can_be_disabled() {
        let p = PortPolicy { enabled: true, multiplier: 0.94 };
        assert_eq!(p.usable_mbps(100), Some(94));
        assert_eq!(p.usable_mbps(1000), Some(940));
        assert_eq!(PortPolicy { enabled: true, multiplier: 0.9 }.usable_mbps(1000), Some(900));
        assert_eq!(PortPolicy { enabled: false, multiplier: 0.94 }.usable_mbps(1000), None);
        assert_eq!(p.usable_mbps(0), None);
    }
}
