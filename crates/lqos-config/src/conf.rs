//! `/etc/lqos.conf`: the LibreQoS 1.5 TOML schema, read leniently.
//!
//! The file is parsed with `toml_edit` so that every key keeps its position: each diagnostic
//! names the key path and its line. Missing sections and keys take the defaults below (each
//! cites its LibreQoS key). Unknown keys and sections only warn; the other LibreQoS sections
//! that lqos does not use (`[long_term_stats]`, `[stormguard]`, …) are accepted silently.

use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use toml_edit::{ImDocument, Item, TableLike, Value};

use crate::diag::Diagnostic;
use crate::model::{
    Config, DefaultSqm, ExceptionCpe, Flows, IntegrationCommon, InterfaceMode, InterfaceName,
    IpRanges, LazyQueues, MetricsConfig, NetzurConfig, QueueMode, QueuesConfig, RateKbit,
    SplynxConfig, SuspendedStrategy, TopologyConfig, TopologyStrategy, Tuning, UispConfig,
};
use crate::pos::LineIndex;
use crate::sqm::parse_sqm_tokens;

/// Where the configuration lives unless `--config` or `LQOS_CONFIG` say otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/lqos.conf";
/// Environment variable naming the configuration file (LibreQoS: `LQOS_CONFIG`).
pub const CONFIG_ENV: &str = "LQOS_CONFIG";
/// Environment variable overriding `lqos_directory` after parsing (LibreQoS: `LQOS_DIRECTORY`).
pub const DIRECTORY_ENV: &str = "LQOS_DIRECTORY";
/// The only schema version understood (LibreQoS key `version`).
pub const SUPPORTED_VERSION: &str = "1.5";
/// Default for `lqos_directory` (LibreQoS installs to `/opt/libreqos/src`).
pub const DEFAULT_LQOS_DIRECTORY: &str = "/opt/libreqos/src";
/// Default for `node_name`.
pub const DEFAULT_NODE_NAME: &str = "lqos";
/// Default for `queue_check_period_ms` (LibreQoS example: 1000).
pub const DEFAULT_QUEUE_CHECK_PERIOD_MS: u64 = 1000;
/// Default for `webserver_listen` (LibreQoS: `":::9123"`, all addresses, port 9123).
pub const DEFAULT_WEBSERVER_LISTEN: &str = "[::]:9123";
/// Default for `[queues] default_sqm`.
pub const DEFAULT_SQM: &str = "cake diffserv4";
/// Default for `[queues] downlink_bandwidth_mbps`.
pub const DEFAULT_DOWNLINK_MBPS: f64 = 1000.0;
/// Default for `[queues] uplink_bandwidth_mbps`.
pub const DEFAULT_UPLINK_MBPS: f64 = 1000.0;
/// Default for `[queues] generated_pn_download_mbps`.
pub const DEFAULT_GENERATED_PN_DOWNLOAD_MBPS: f64 = 1000.0;
/// Default for `[queues] generated_pn_upload_mbps`.
pub const DEFAULT_GENERATED_PN_UPLOAD_MBPS: f64 = 1000.0;
/// Default for `[queues] fast_queues_fq_codel` (Mbps; circuits at or above get fq_codel).
pub const DEFAULT_FAST_QUEUES_FQ_CODEL_MBPS: f64 = 1000.0;
/// Default for `[ip_ranges] allow_subnets`.
pub const DEFAULT_ALLOW_SUBNETS: [&str; 4] =
    ["172.16.0.0/12", "10.0.0.0/8", "100.64.0.0/10", "192.168.0.0/16"];
/// Default for `[integration_common] queue_refresh_interval_mins`.
pub const DEFAULT_QUEUE_REFRESH_INTERVAL_MINS: u32 = 30;
/// Default for `[integration_common] max_shrink_ratio` (lqos extension, not in LibreQoS).
pub const DEFAULT_MAX_SHRINK_RATIO: f64 = 0.5;
/// Default for `[tuning] set_cpu_governor_performance`.
pub const DEFAULT_SET_CPU_GOVERNOR_PERFORMANCE: bool = true;
/// Default for `[tuning] stop_irq_balance`.
pub const DEFAULT_STOP_IRQ_BALANCE: bool = true;
/// Default for `[tuning] netdev_budget_usecs`.
pub const DEFAULT_NETDEV_BUDGET_USECS: u32 = 8000;
/// Default for `[tuning] netdev_budget_packets`.
pub const DEFAULT_NETDEV_BUDGET_PACKETS: u32 = 300;
/// Default for `[tuning] rx_usecs`.
pub const DEFAULT_RX_USECS: u32 = 8;
/// Default for `[tuning] tx_usecs`.
pub const DEFAULT_TX_USECS: u32 = 8;
/// Default for `[tuning] disable_rxvlan`.
pub const DEFAULT_DISABLE_RXVLAN: bool = true;
/// Default for `[tuning] disable_txvlan`.
pub const DEFAULT_DISABLE_TXVLAN: bool = true;
/// Default for `[tuning] disable_offload`.
pub const DEFAULT_DISABLE_OFFLOAD: [&str; 5] = ["gso", "tso", "lro", "sg", "gro"];
/// Default for `[flows] flow_timeout_seconds`.
pub const DEFAULT_FLOW_TIMEOUT_SECONDS: u64 = 30;
/// Default for `[bridge] use_xdp_bridge` (LibreQoS struct default).
pub const DEFAULT_USE_XDP_BRIDGE: bool = true;
/// Smallest `[bridge]`/`[single_interface]` `mtu`.
pub const MIN_MTU: u32 = 576;
/// Largest `[bridge]`/`[single_interface]` `mtu`.
pub const MAX_MTU: u32 = 9216;
/// Default for `[splynx_integration] strategy`.
pub const DEFAULT_SPLYNX_STRATEGY: TopologyStrategy = TopologyStrategy::ApSite;
/// Default for `[uisp_integration] strategy`.
pub const DEFAULT_UISP_STRATEGY: TopologyStrategy = TopologyStrategy::Full;
/// Default for `[uisp_integration] airmax_capacity` (LibreQoS migrates it to 1.0).
pub const DEFAULT_UISP_AIRMAX_CAPACITY: f64 = 1.0;
/// Default for `[uisp_integration] ltu_capacity` (LibreQoS migrates it to 1.0).
pub const DEFAULT_UISP_LTU_CAPACITY: f64 = 1.0;
/// Default for `[uisp_integration] bandwidth_overhead_factor`.
pub const DEFAULT_UISP_BANDWIDTH_OVERHEAD_FACTOR: f64 = 1.0;
/// Default for `[uisp_integration] commit_bandwidth_multiplier`.
pub const DEFAULT_UISP_COMMIT_BANDWIDTH_MULTIPLIER: f64 = 1.0;
/// Default for `[uisp_integration] airmax_flexible_frame_download_ratio`.
pub const DEFAULT_UISP_AIRMAX_FLEXIBLE_FRAME_DOWNLOAD_RATIO: f64 = 0.8;
/// Default for `[uisp_integration] infrastructure_transport_caps_enabled`.
pub const DEFAULT_UISP_INFRASTRUCTURE_TRANSPORT_CAPS_ENABLED: bool = true;
/// Default for `[integration_common] ethernet_port_limits_enabled`.
pub const DEFAULT_ETHERNET_PORT_LIMITS_ENABLED: bool = true;
/// Default for `[integration_common] ethernet_port_limit_multiplier`.
pub const DEFAULT_ETHERNET_PORT_LIMIT_MULTIPLIER: f64 = 0.94;
/// Default for `[netzur_integration] timeout_secs`.
pub const DEFAULT_NETZUR_TIMEOUT_SECS: u64 = 60;
/// Default for `[metrics] enabled` (lqos extension, not in LibreQoS): `/metrics` is served.
pub const DEFAULT_METRICS_ENABLED: bool = true;

/// `state_directory` when it is not set (LibreQoS rule): `<parent>/state` when
/// `lqos_directory` ends in `src`, else `<lqos_directory>/state`.
pub fn default_state_directory(lqos_directory: &Path) -> PathBuf {
    match (lqos_directory.file_name(), lqos_directory.parent()) {
        (Some(name), Some(parent)) if name == "src" => parent.join("state"),
        _ => lqos_directory.join("state"),
    }
}

const TOP_IGNORED: &[&str] = &[
    "packet_capture_time",
    "qoo_profile_id",
    "rtt_thresholds",
    "display_cobrand",
    "disable_icmp_ping",
    "exclude_efficiency_cores",
    "enable_circuit_heatmaps",
    "enable_site_heatmaps",
    "enable_asn_heatmaps",
    "long_term_stats",
    "influxdb",
    "visp_integration",
    "wispgate_integration",
    "powercode_integration",
    "sonar_integration",
    "stormguard",
    "dynamic_circuits",
    "radius_accounting",
    "ssl",
    "mikrotik_ipv6",
    "local_api",
    "treeguard",
];

/// Collects diagnostics for one file.
struct Cx {
    label: String,
    idx: LineIndex,
    diags: Vec<Diagnostic>,
}

impl Cx {
    fn line(&self, span: Option<Range<usize>>) -> Option<usize> {
        span.map(|s| self.idx.line(s.start))
    }
    fn push(&mut self, mut d: Diagnostic, line: Option<usize>, field: &str) {
        d.line = line;
        d.field = Some(field.to_string());
        self.diags.push(d);
    }
    fn error(&mut self, line: Option<usize>, field: &str, msg: String, hint: Option<&str>) {
        let mut d = Diagnostic::error(self.label.clone(), msg);
        d.hint = hint.map(str::to_string);
        self.push(d, line, field);
    }
    fn warn(&mut self, line: Option<usize>, field: &str, msg: String, hint: Option<&str>) {
        let mut d = Diagnostic::warning(self.label.clone(), msg);
        d.hint = hint.map(str::to_string);
        self.push(d, line, field);
    }
}

/// One table of the file (or an empty stand-in for a missing section).
struct Sect<'a> {
    /// Dotted prefix for field names (`queues.`), empty at the top level.
    prefix: String,
    table: Option<&'a dyn TableLike>,
    line: Option<usize>,
}

impl<'a> Sect<'a> {
    fn field(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn key_line(&self, cx: &Cx, key: &str) -> Option<usize> {
        self.table.and_then(|t| t.key(key)).and_then(|k| cx.line(k.span())).or(self.line)
    }

    fn get(&self, key: &str) -> Option<&'a Item> {
        self.table.and_then(|t| t.get(key)).filter(|i| !i.is_none())
    }

    fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    fn type_error(&self, cx: &mut Cx, key: &str, want: &str, item: &Item) {
        let line = self.key_line(cx, key);
        let got = item.type_name();
        cx.error(line, &self.field(key), format!("expected {want}, found {got}"), None);
    }

    fn opt_bool(&self, cx: &mut Cx, key: &str) -> Option<bool> {
        let item = self.get(key)?;
        match item.as_bool() {
            Some(b) => Some(b),
            None => {
                self.type_error(cx, key, "true or false", item);
                None
            }
        }
    }
    fn bool(&self, cx: &mut Cx, key: &str, default: bool) -> bool {
        self.opt_bool(cx, key).unwrap_or(default)
    }

    fn opt_str(&self, cx: &mut Cx, key: &str) -> Option<String> {
        let item = self.get(key)?;
        match item.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.type_error(cx, key, "a string", item);
                None
            }
        }
    }
    fn string(&self, cx: &mut Cx, key: &str, default: &str) -> String {
        self.opt_str(cx, key).unwrap_or_else(|| default.to_string())
    }

    fn opt_u64(&self, cx: &mut Cx, key: &str) -> Option<u64> {
        let item = self.get(key)?;
        match item.as_integer() {
            Some(i) if i >= 0 => Some(i as u64),
            Some(i) => {
                let line = self.key_line(cx, key);
                cx.error(line, &self.field(key), format!("{i} is negative"), None);
                None
            }
            None => {
                self.type_error(cx, key, "a whole number", item);
                None
            }
        }
    }
    fn opt_u32(&self, cx: &mut Cx, key: &str) -> Option<u32> {
        let v = self.opt_u64(cx, key)?;
        match u32::try_from(v) {
            Ok(v) => Some(v),
            Err(_) => {
                let line = self.key_line(cx, key);
                cx.error(line, &self.field(key), format!("{v} is too large"), None);
                None
            }
        }
    }
    fn u32(&self, cx: &mut Cx, key: &str, default: u32) -> u32 {
        self.opt_u32(cx, key).unwrap_or(default)
    }

    fn opt_f64(&self, cx: &mut Cx, key: &str) -> Option<f64> {
        let item = self.get(key)?;
        let v = item.as_float().or_else(|| item.as_integer().map(|i| i as f64));
        match v {
            Some(v) if v.is_finite() => Some(v),
            _ => {
                self.type_error(cx, key, "a number", item);
                None
            }
        }
    }

    /// A positive rate in Mbps (integer or fractional).
    fn rate(&self, cx: &mut Cx, key: &str, default_mbps: f64) -> RateKbit {
        match self.opt_f64(cx, key) {
            Some(v) if v >= 0.01 => RateKbit::from_mbps(v),
            Some(v) => {
                let line = self.key_line(cx, key);
                cx.error(
                    line,
                    &self.field(key),
                    format!("{v} Mbps is not a usable rate"),
                    Some("rates must be at least 0.01 Mbps"),
                );
                RateKbit::from_mbps(default_mbps)
            }
            None => RateKbit::from_mbps(default_mbps),
        }
    }

    fn str_list(&self, cx: &mut Cx, key: &str) -> Option<Vec<(String, Option<usize>)>> {
        let item = self.get(key)?;
        let Some(arr) = item.as_array() else {
            self.type_error(cx, key, "an array of strings", item);
            return None;
        };
        let mut out = Vec::new();
        for v in arr.iter() {
            let line = cx.line(v.span()).or_else(|| self.key_line(cx, key));
            match v.as_str() {
                Some(s) => out.push((s.to_string(), line)),
                None => cx.error(
                    line,
                    &self.field(key),
                    format!("expected a string, found {}", v.type_name()),
                    None,
                ),
            }
        }
        Some(out)
    }
    fn strings(&self, cx: &mut Cx, key: &str) -> Vec<String> {
        self.str_list(cx, key).unwrap_or_default().into_iter().map(|(s, _)| s).collect()
    }

    fn cidrs(&self, cx: &mut Cx, key: &str, default: &[&str]) -> Vec<IpNet> {
        let Some(list) = self.str_list(cx, key) else {
            return default.iter().filter_map(|s| s.parse().ok()).collect();
        };
        let mut out = Vec::new();
        for (s, line) in list {
            match parse_cidr(&s) {
                Ok((net, None)) => out.push(net),
                Ok((net, Some(warning))) => {
                    cx.warn(line, &self.field(key), warning, None);
                    out.push(net);
                }
                Err((msg, hint)) => cx.error(line, &self.field(key), msg, Some(&hint)),
            }
        }
        out
    }

    fn sub(&self, cx: &mut Cx, key: &str) -> Option<Sect<'a>> {
        let item = self.get(key)?;
        match item.as_table_like() {
            Some(t) => {
                let line = self.key_line(cx, key);
                Some(Sect { prefix: format!("{}{key}.", self.prefix), table: Some(t), line })
            }
            None => {
                self.type_error(cx, key, "a table", item);
                None
            }
        }
    }

    /// Warns about every key not in `known`.
    fn finish(&self, cx: &mut Cx, known: &[&str]) {
        let Some(t) = self.table else { return };
        for (k, _) in t.iter() {
            if !known.contains(&k) {
                let line = self.key_line(cx, k);
                cx.warn(
                    line,
                    &self.field(k),
                    format!("unknown key '{}', ignored", self.field(k)),
                    Some("check the spelling against packaging/lqos.example.conf"),
                );
            }
        }
    }

    fn missing(&self, cx: &mut Cx, key: &str, what: &str) {
        let field = self.field(key);
        cx.error(self.line, &field, format!("missing {field}"), Some(what));
    }
}

/// Parses `a.b.c.d/p` or `x::/p`. A bare address is an error (with a hint); host bits beyond
/// the prefix are cleared with a warning.
fn parse_cidr(s: &str) -> Result<(IpNet, Option<String>), (String, String)> {
    let t = s.trim();
    if let Ok(net) = t.parse::<IpNet>() {
        let trunc = net.trunc();
        if trunc != net {
            return Ok((trunc, Some(format!("'{t}' has host bits set; using {trunc}"))));
        }
        return Ok((net, None));
    }
    if let Ok(addr) = t.parse::<IpAddr>() {
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        return Err((
            format!("'{t}' is an address, not a range"),
            format!("add the prefix length, e.g. '{t}/{bits}' for this address alone"),
        ));
    }
    Err((format!("'{t}' is not an IP range"), "write a CIDR such as 10.0.0.0/8".to_string()))
}

fn interface_name(cx: &mut Cx, s: &Sect<'_>, key: &str) -> Option<InterfaceName> {
    let Some(name) = s.opt_str(cx, key) else {
        s.missing(cx, key, "name the network interface, e.g. \"eth1\"");
        return None;
    };
    if name.is_empty()
        || name.len() > 15
        || name.contains('/')
        || name.contains(char::is_whitespace)
    {
        let line = s.key_line(cx, key);
        cx.error(
            line,
            &s.field(key),
            format!("'{name}' is not a valid interface name"),
            Some("interface names are 1 to 15 characters without '/' or spaces"),
        );
        return None;
    }
    Some(InterfaceName(name))
}

fn mtu(cx: &mut Cx, s: &Sect<'_>) -> Option<u32> {
    let v = s.opt_u32(cx, "mtu")?;
    if !(MIN_MTU..=MAX_MTU).contains(&v) {
        let line = s.key_line(cx, "mtu");
        cx.error(
            line,
            &s.field("mtu"),
            format!("mtu {v} must be between {MIN_MTU} and {MAX_MTU}"),
            None,
        );
        return None;
    }
    Some(v)
}

fn vlan(cx: &mut Cx, s: &Sect<'_>, key: &str) -> Option<u16> {
    let Some(v) = s.opt_u64(cx, key) else {
        if !s.has(key) {
            s.missing(cx, key, "give the VLAN ID (1-4094)");
        }
        return None;
    };
    if !(1..=4094).contains(&v) {
        let line = s.key_line(cx, key);
        cx.error(line, &s.field(key), format!("VLAN {v} must be between 1 and 4094"), None);
        return None;
    }
    Some(v as u16)
}

fn interfaces(cx: &mut Cx, top: &Sect<'_>) -> Option<InterfaceMode> {
    let bridge = top.sub(cx, "bridge");
    let stick = top.sub(cx, "single_interface");
    match (bridge, stick) {
        (Some(_), Some(s)) => {
            cx.error(
                s.line,
                "single_interface",
                "the file has both [bridge] and [single_interface]".to_string(),
                Some("keep only the section matching how the shaper is wired"),
            );
            None
        }
        (Some(b), None) => {
            let to_internet = interface_name(cx, &b, "to_internet");
            let to_network = interface_name(cx, &b, "to_network");
            let use_xdp_bridge = b.bool(cx, "use_xdp_bridge", DEFAULT_USE_XDP_BRIDGE);
            let mtu = mtu(cx, &b);
            b.finish(cx, &["use_xdp_bridge", "to_internet", "to_network", "mtu"]);
            if let (Some(ti), Some(tn)) = (&to_internet, &to_network)
                && ti == tn
            {
                let line = b.key_line(cx, "to_network");
                cx.error(
                    line,
                    "bridge.to_network",
                    format!("to_internet and to_network are both '{ti}'"),
                    Some("a bridge needs two interfaces; use [single_interface] for one NIC"),
                );
                return None;
            }
            Some(InterfaceMode::Bridge {
                to_internet: to_internet?,
                to_network: to_network?,
                use_xdp_bridge,
                mtu,
            })
        }
        (None, Some(s)) => {
            let interface = interface_name(cx, &s, "interface");
            let internet_vlan = vlan(cx, &s, "internet_vlan");
            let network_vlan = vlan(cx, &s, "network_vlan");
            let mtu = mtu(cx, &s);
            s.finish(cx, &["interface", "internet_vlan", "network_vlan", "mtu"]);
            Some(InterfaceMode::Stick {
                interface: interface?,
                internet_vlan: internet_vlan?,
                network_vlan: network_vlan?,
                mtu,
            })
        }
        (None, None) => {
            cx.warn(
                None,
                "bridge",
                "neither [bridge] nor [single_interface] is present; lqosd will not start"
                    .to_string(),
                Some("add a [bridge] section with to_internet and to_network"),
            );
            None
        }
    }
}

fn queues(cx: &mut Cx, s: &Sect<'_>) -> QueuesConfig {
    let default_sqm = match s.opt_str(cx, "default_sqm") {
        None => default_sqm(),
        Some(tokens) => match parse_sqm_tokens(&tokens) {
            Ok(sqm) => sqm,
            Err(msg) => {
                let line = s.key_line(cx, "default_sqm");
                cx.error(
                    line,
                    "queues.default_sqm",
                    msg,
                    Some("e.g. \"cake diffserv4\", \"fq_codel\" or \"none\""),
                );
                default_sqm()
            }
        },
    };
    let monitor_only = s.opt_bool(cx, "monitor_only");
    let queue_mode = match s.opt_str(cx, "queue_mode") {
        Some(m) => match m.to_ascii_lowercase().as_str() {
            "shape" => QueueMode::Shape,
            "observe" => QueueMode::Observe,
            _ => {
                let line = s.key_line(cx, "queue_mode");
                cx.error(
                    line,
                    "queues.queue_mode",
                    format!("'{m}' is not a queue mode"),
                    Some("use \"shape\" or \"observe\""),
                );
                QueueMode::Shape
            }
        },
        None if monitor_only == Some(true) => QueueMode::Observe,
        None => QueueMode::Shape,
    };
    let lazy_queues = match s.opt_str(cx, "lazy_queues") {
        None => LazyQueues::No,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "no" => LazyQueues::No,
            "htb" => LazyQueues::Htb,
            "full" => LazyQueues::Full,
            _ => {
                let line = s.key_line(cx, "lazy_queues");
                cx.error(
                    line,
                    "queues.lazy_queues",
                    format!("'{v}' is not a lazy_queues mode"),
                    Some("use \"No\", \"Htb\" or \"Full\""),
                );
                LazyQueues::No
            }
        },
    };
    let fast = match s.opt_f64(cx, "fast_queues_fq_codel") {
        Some(v) if v > 0.0 => v,
        Some(v) => {
            let line = s.key_line(cx, "fast_queues_fq_codel");
            cx.error(line, "queues.fast_queues_fq_codel", format!("{v} must be > 0"), None);
            DEFAULT_FAST_QUEUES_FQ_CODEL_MBPS
        }
        None => DEFAULT_FAST_QUEUES_FQ_CODEL_MBPS,
    };
    let q = QueuesConfig {
        default_sqm,
        queue_mode,
        downlink: s.rate(cx, "downlink_bandwidth_mbps", DEFAULT_DOWNLINK_MBPS),
        uplink: s.rate(cx, "uplink_bandwidth_mbps", DEFAULT_UPLINK_MBPS),
        generated_pn_download: s.rate(
            cx,
            "generated_pn_download_mbps",
            DEFAULT_GENERATED_PN_DOWNLOAD_MBPS,
        ),
        generated_pn_upload: s.rate(
            cx,
            "generated_pn_upload_mbps",
            DEFAULT_GENERATED_PN_UPLOAD_MBPS,
        ),
        dry_run: s.bool(cx, "dry_run", false),
        sudo: s.bool(cx, "sudo", false),
        override_available_queues: s.opt_u32(cx, "override_available_queues").filter(|&n| n > 0),
        use_binpacking: s.bool(cx, "use_binpacking", false),
        lazy_queues,
        lazy_expire_seconds: s.opt_u64(cx, "lazy_expire_seconds"),
        fast_queues_fq_codel_mbps: fast,
    };
    let _ = s.opt_u64(cx, "lazy_threshold_bytes");
    s.finish(
        cx,
        &[
            "default_sqm",
            "queue_mode",
            "monitor_only",
            "downlink_bandwidth_mbps",
            "uplink_bandwidth_mbps",
            "generated_pn_download_mbps",
            "generated_pn_upload_mbps",
            "dry_run",
            "sudo",
            "override_available_queues",
            "use_binpacking",
            "lazy_queues",
            "lazy_expire_seconds",
            "lazy_threshold_bytes",
            "fast_queues_fq_codel",
        ],
    );
    q
}

fn default_sqm() -> DefaultSqm {
    // DEFAULT_SQM is a constant known to parse; fall back to "no leaf" rather than panic.
    parse_sqm_tokens(DEFAULT_SQM)
        .unwrap_or_else(|_| DefaultSqm { tokens: DEFAULT_SQM.to_string(), leaf: None })
}

fn strategy(cx: &mut Cx, s: &Sect<'_>, key: &str, allow_empty: bool) -> Option<TopologyStrategy> {
    let v = s.opt_str(cx, key)?;
    match v.trim().to_ascii_lowercase().as_str() {
        "" if allow_empty => None,
        "flat" => Some(TopologyStrategy::Flat),
        "ap_only" => Some(TopologyStrategy::ApOnly),
        "ap_site" => Some(TopologyStrategy::ApSite),
        "full" | "full2" => Some(TopologyStrategy::Full),
        _ => {
            let line = s.key_line(cx, key);
            cx.error(
                line,
                &s.field(key),
                format!("'{v}' is not a topology mode"),
                Some("use one of flat, ap_only, ap_site or full"),
            );
            None
        }
    }
}

fn required_when_enabled(cx: &mut Cx, s: &Sect<'_>, enabled: bool, key: &str) -> String {
    let v = s.string(cx, key, "");
    if enabled && v.trim().is_empty() {
        s.missing(cx, key, "required while the integration is enabled");
    }
    v
}

/// An optional share in (0, 1]; anything else is an error at the key's line.
fn unit_ratio(cx: &mut Cx, s: &Sect<'_>, key: &str, default: f64, field: &str) -> f64 {
    match s.opt_f64(cx, key) {
        None => default,
        Some(v) if v.is_finite() && v > 0.0 && v <= 1.0 => v,
        Some(v) => {
            let line = s.key_line(cx, key);
            cx.error(line, field, format!("{v} must be > 0 and <= 1"), None);
            default
        }
    }
}

fn uisp(cx: &mut Cx, s: &Sect<'_>) -> UispConfig {
    let enabled = s.bool(cx, "enable_uisp", false);
    let suspended_strategy = match s.opt_str(cx, "suspended_strategy") {
        None => SuspendedStrategy::None,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "none" | "" => SuspendedStrategy::None,
            "ignore" => SuspendedStrategy::Ignore,
            "slow" => SuspendedStrategy::Slow,
            _ => {
                let line = s.key_line(cx, "suspended_strategy");
                cx.error(
                    line,
                    "uisp_integration.suspended_strategy",
                    format!("'{v}' is not a suspended strategy"),
                    Some("use none, ignore or slow"),
                );
                SuspendedStrategy::None
            }
        },
    };
    let mut exception_cpes = Vec::new();
    if let Some(item) = s.get("exception_cpes") {
        let line = s.key_line(cx, "exception_cpes");
        let entries: Vec<&dyn TableLike> = match (item.as_array(), item.as_array_of_tables()) {
            (Some(a), _) => {
                // LibreQoS documents entries as "cpe:parent" strings; its parser wants tables.
                for v in a.iter() {
                    if let Some(text) = v.as_str() {
                        match text.split_once(':') {
                            Some((c, p)) if !c.trim().is_empty() && !p.trim().is_empty() => {
                                exception_cpes.push(ExceptionCpe {
                                    cpe: c.trim().to_string(),
                                    parent: p.trim().to_string(),
                                })
                            }
                            _ => cx.error(
                                line,
                                "uisp_integration.exception_cpes",
                                format!("\"{text}\" is not \"cpe:parent\""),
                                Some("write each entry as \"CPE name:parent name\" or {cpe = \"…\", parent = \"…\"}"),
                            ),
                        }
                    } else if v.as_inline_table().is_none() {
                        cx.error(
                            line,
                            "uisp_integration.exception_cpes",
                            "each entry is a \"cpe:parent\" string or a {cpe, parent} table"
                                .to_string(),
                            None,
                        );
                    }
                }
                a.iter().filter_map(Value::as_inline_table).map(|t| t as _).collect()
            }
            (_, Some(a)) => a.iter().map(|t| t as _).collect(),
            _ => {
                s.type_error(cx, "exception_cpes", "an array of {cpe, parent} tables", item);
                Vec::new()
            }
        };
        for t in entries {
            let cpe = t.get("cpe").and_then(Item::as_str);
            let parent = t.get("parent").and_then(Item::as_str);
            match (cpe, parent) {
                (Some(c), Some(p)) => {
                    exception_cpes.push(ExceptionCpe { cpe: c.to_string(), parent: p.to_string() })
                }
                _ => cx.error(
                    line,
                    "uisp_integration.exception_cpes",
                    "each entry needs string fields cpe and parent".to_string(),
                    None,
                ),
            }
        }
    }
    let u = UispConfig {
        enabled,
        token: required_when_enabled(cx, s, enabled, "token"),
        url: required_when_enabled(cx, s, enabled, "url"),
        site: s.string(cx, "site", ""),
        strategy: strategy(cx, s, "strategy", false).unwrap_or(DEFAULT_UISP_STRATEGY),
        suspended_strategy,
        airmax_capacity: s.opt_f64(cx, "airmax_capacity").unwrap_or(DEFAULT_UISP_AIRMAX_CAPACITY),
        ltu_capacity: s.opt_f64(cx, "ltu_capacity").unwrap_or(DEFAULT_UISP_LTU_CAPACITY),
        exclude_sites: s.strings(cx, "exclude_sites"),
        ipv6_with_mikrotik: s.bool(cx, "ipv6_with_mikrotik", false),
        bandwidth_overhead_factor: s
            .opt_f64(cx, "bandwidth_overhead_factor")
            .unwrap_or(DEFAULT_UISP_BANDWIDTH_OVERHEAD_FACTOR),
        commit_bandwidth_multiplier: s
            .opt_f64(cx, "commit_bandwidth_multiplier")
            .unwrap_or(DEFAULT_UISP_COMMIT_BANDWIDTH_MULTIPLIER),
        exception_cpes,
        insecure_ssl: s.bool(cx, "insecure_ssl", false),
        airmax_flexible_frame_download_ratio: unit_ratio(
            cx,
            s,
            "airmax_flexible_frame_download_ratio",
            DEFAULT_UISP_AIRMAX_FLEXIBLE_FRAME_DOWNLOAD_RATIO,
            "uisp_integration.airmax_flexible_frame_download_ratio",
        ),
        ignore_calculated_capacity: s.bool(cx, "ignore_calculated_capacity", false),
        infrastructure_transport_caps_enabled: s.bool(
            cx,
            "infrastructure_transport_caps_enabled",
            DEFAULT_UISP_INFRASTRUCTURE_TRANSPORT_CAPS_ENABLED,
        ),
        use_ptmp_as_parent: s.bool(cx, "use_ptmp_as_parent", false),
        squash_sites: s.strings(cx, "squash_sites"),
        do_not_squash_sites: s.strings(cx, "do_not_squash_sites"),
        enable_squashing: s.bool(cx, "enable_squashing", false),
    };
    s.finish(
        cx,
        &[
            "enable_uisp",
            "token",
            "url",
            "site",
            "strategy",
            "suspended_strategy",
            "airmax_capacity",
            "ltu_capacity",
            "exclude_sites",
            "ipv6_with_mikrotik",
            "bandwidth_overhead_factor",
            "commit_bandwidth_multiplier",
            "exception_cpes",
            "insecure_ssl",
            "airmax_flexible_frame_download_ratio",
            "ignore_calculated_capacity",
            "infrastructure_transport_caps_enabled",
            "squash_sites",
            "do_not_squash_sites",
            "enable_squashing",
            "use_ptmp_as_parent",
        ],
    );
    u
}

fn splynx(cx: &mut Cx, s: &Sect<'_>) -> SplynxConfig {
    let enabled = match s.opt_bool(cx, "enable_splynx") {
        Some(b) => b,
        None => s.bool(cx, "enable_spylnx", false),
    };
    let c = SplynxConfig {
        enabled,
        api_key: required_when_enabled(cx, s, enabled, "api_key"),
        api_secret: required_when_enabled(cx, s, enabled, "api_secret"),
        url: required_when_enabled(cx, s, enabled, "url"),
        strategy: strategy(cx, s, "strategy", false).unwrap_or(DEFAULT_SPLYNX_STRATEGY),
    };
    s.finish(cx, &["enable_splynx", "enable_spylnx", "api_key", "api_secret", "url", "strategy"]);
    c
}

fn netzur(cx: &mut Cx, s: &Sect<'_>) -> NetzurConfig {
    let enabled = s.bool(cx, "enable_netzur", false);
    let c = NetzurConfig {
        enabled,
        api_key: required_when_enabled(cx, s, enabled, "api_key"),
        api_url: required_when_enabled(cx, s, enabled, "api_url"),
        timeout_secs: s.opt_u64(cx, "timeout_secs").unwrap_or(DEFAULT_NETZUR_TIMEOUT_SECS),
    };
    s.finish(cx, &["enable_netzur", "api_key", "api_url", "timeout_secs"]);
    c
}

fn metrics(cx: &mut Cx, s: &Sect<'_>) -> MetricsConfig {
    let enabled = s.bool(cx, "enabled", DEFAULT_METRICS_ENABLED);
    let token = match s.opt_str(cx, "token") {
        Some(t) if t.is_empty() => {
            let line = s.key_line(cx, "token");
            cx.error(
                line,
                "metrics.token",
                "metrics.token must not be empty when configured".to_string(),
                Some("remove the key to serve /metrics without a token"),
            );
            None
        }
        Some(t) if !t.bytes().all(|b| b.is_ascii_graphic()) => {
            let line = s.key_line(cx, "token");
            cx.error(
                line,
                "metrics.token",
                "metrics.token must be printable ASCII without spaces".to_string(),
                Some("it is sent as `Authorization: Bearer <token>`"),
            );
            None
        }
        t => t,
    };
    s.finish(cx, &["enabled", "token"]);
    MetricsConfig { enabled, token }
}

fn integration_common(cx: &mut Cx, s: &Sect<'_>) -> IntegrationCommon {
    let max_shrink_ratio = match s.opt_f64(cx, "max_shrink_ratio") {
        Some(v) if (0.0..=1.0).contains(&v) => v,
        Some(v) => {
            let line = s.key_line(cx, "max_shrink_ratio");
            cx.error(
                line,
                "integration_common.max_shrink_ratio",
                format!("{v} must be between 0 and 1"),
                Some("the share of circuits an import may remove; 1 disables the check"),
            );
            DEFAULT_MAX_SHRINK_RATIO
        }
        None => DEFAULT_MAX_SHRINK_RATIO,
    };
    let refresh = s.u32(cx, "queue_refresh_interval_mins", DEFAULT_QUEUE_REFRESH_INTERVAL_MINS);
    if refresh == 0 {
        let line = s.key_line(cx, "queue_refresh_interval_mins");
        cx.error(
            line,
            "integration_common.queue_refresh_interval_mins",
            "0 must be > 0".into(),
            None,
        );
    }
    let c = IntegrationCommon {
        circuit_name_as_address: s.bool(cx, "circuit_name_as_address", false),
        queue_refresh_interval_mins: refresh.max(1),
        promote_to_root: s.strings(cx, "promote_to_root"),
        client_bandwidth_multiplier: s.opt_f64(cx, "client_bandwidth_multiplier"),
        max_shrink_ratio,
        ethernet_port_limits_enabled: s.bool(
            cx,
            "ethernet_port_limits_enabled",
            DEFAULT_ETHERNET_PORT_LIMITS_ENABLED,
        ),
        ethernet_port_limit_multiplier: unit_ratio(
            cx,
            s,
            "ethernet_port_limit_multiplier",
            DEFAULT_ETHERNET_PORT_LIMIT_MULTIPLIER,
            "integration_common.ethernet_port_limit_multiplier",
        ),
    };
    s.finish(
        cx,
        &[
            "circuit_name_as_address",
            "queue_refresh_interval_mins",
            "promote_to_root",
            "client_bandwidth_multiplier",
            "max_shrink_ratio",
            "use_mikrotik_ipv6",
            "ethernet_port_limits_enabled",
            "ethernet_port_limit_multiplier",
            "topology_attachment_health",
        ],
    );
    c
}

fn tuning(cx: &mut Cx, s: &Sect<'_>) -> Tuning {
    let t = Tuning {
        set_cpu_governor_performance: s.bool(
            cx,
            "set_cpu_governor_performance",
            DEFAULT_SET_CPU_GOVERNOR_PERFORMANCE,
        ),
        stop_irq_balance: s.bool(cx, "stop_irq_balance", DEFAULT_STOP_IRQ_BALANCE),
        netdev_budget_usecs: s.u32(cx, "netdev_budget_usecs", DEFAULT_NETDEV_BUDGET_USECS),
        netdev_budget_packets: s.u32(cx, "netdev_budget_packets", DEFAULT_NETDEV_BUDGET_PACKETS),
        rx_usecs: s.u32(cx, "rx_usecs", DEFAULT_RX_USECS),
        tx_usecs: s.u32(cx, "tx_usecs", DEFAULT_TX_USECS),
        disable_rxvlan: s.bool(cx, "disable_rxvlan", DEFAULT_DISABLE_RXVLAN),
        disable_txvlan: s.bool(cx, "disable_txvlan", DEFAULT_DISABLE_TXVLAN),
        disable_offload: s.str_list(cx, "disable_offload").map_or_else(
            || DEFAULT_DISABLE_OFFLOAD.iter().map(|s| s.to_string()).collect(),
            |l| l.into_iter().map(|(s, _)| s).collect(),
        ),
    };
    s.finish(
        cx,
        &[
            "set_cpu_governor_performance",
            "stop_irq_balance",
            "netdev_budget_usecs",
            "netdev_budget_packets",
            "rx_usecs",
            "tx_usecs",
            "disable_rxvlan",
            "disable_txvlan",
            "disable_offload",
        ],
    );
    t
}

fn flows(cx: &mut Cx, s: &Sect<'_>) -> Flows {
    let netflow_port = s.opt_u64(cx, "netflow_port").and_then(|p| {
        u16::try_from(p).ok().or_else(|| {
            let line = s.key_line(cx, "netflow_port");
            cx.error(line, "flows.netflow_port", format!("port {p} is out of range"), None);
            None
        })
    });
    let netflow_version = s.opt_u64(cx, "netflow_version").and_then(|v| {
        if v == 5 || v == 9 {
            Some(v as u8)
        } else {
            let line = s.key_line(cx, "netflow_version");
            cx.error(line, "flows.netflow_version", format!("{v} is not 5 or 9"), None);
            None
        }
    });
    let f = Flows {
        flow_timeout_seconds: s
            .opt_u64(cx, "flow_timeout_seconds")
            .unwrap_or(DEFAULT_FLOW_TIMEOUT_SECONDS),
        netflow_enabled: s.bool(cx, "netflow_enabled", false),
        netflow_port,
        netflow_ip: s.opt_str(cx, "netflow_ip"),
        netflow_version,
        do_not_track_subnets: s.cidrs(cx, "do_not_track_subnets", &[]),
    };
    s.finish(
        cx,
        &[
            "flow_timeout_seconds",
            "netflow_enabled",
            "netflow_port",
            "netflow_ip",
            "netflow_version",
            "do_not_track_subnets",
        ],
    );
    f
}

/// Parses lqos.conf text. `path` is used for diagnostics and stored in [`Config::path`].
/// Returns `None` when the TOML itself is broken; otherwise a config built with defaults for
/// whatever was wrong, plus every diagnostic (check [`crate::has_errors`] before using it).
pub fn parse_config_str(text: &str, path: &Path) -> (Option<Config>, Vec<Diagnostic>) {
    parse_config_with(text, path, None)
}

pub(crate) fn parse_config_with(
    text: &str,
    path: &Path,
    lqos_directory_override: Option<PathBuf>,
) -> (Option<Config>, Vec<Diagnostic>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut cx =
        Cx { label: path.display().to_string(), idx: LineIndex::new(text), diags: Vec::new() };
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let (line, col) = e.span().map_or((None, None), |s| {
                let (l, c) = cx.idx.line_col(s.start);
                (Some(l), Some(c))
            });
            let mut d = Diagnostic::error(cx.label.clone(), e.message().trim().to_string())
                .hint("fix the TOML syntax; see packaging/lqos.example.conf");
            d.line = line;
            d.column = col;
            return (None, vec![d]);
        }
    };
    let top =
        Sect { prefix: String::new(), table: Some(doc.as_table() as &dyn TableLike), line: None };

    match top.opt_str(&mut cx, "version") {
        None if !top.has("version") => cx.warn(
            Some(1),
            "version",
            format!("version is missing; reading the file as version {SUPPORTED_VERSION}"),
            Some("add version = \"1.5\" at the top"),
        ),
        None => {}
        Some(v) if v.trim() == SUPPORTED_VERSION => {}
        Some(v) => {
            let line = top.key_line(&cx, "version");
            cx.error(
                line,
                "version",
                format!("version '{v}' is not supported (lqos reads version {SUPPORTED_VERSION})"),
                Some("migrate the file with LibreQoS 1.5 first, or start from lqos.example.conf"),
            );
        }
    }
    let lqos_directory = match (lqos_directory_override, top.opt_str(&mut cx, "lqos_directory")) {
        (Some(dir), _) => dir,
        (None, Some(d)) if !d.trim().is_empty() => PathBuf::from(d),
        (None, _) => {
            cx.warn(
                Some(1),
                "lqos_directory",
                format!("lqos_directory is not set; using {DEFAULT_LQOS_DIRECTORY}"),
                Some("set lqos_directory to the folder holding network.json"),
            );
            PathBuf::from(DEFAULT_LQOS_DIRECTORY)
        }
    };
    let state_directory = match top.opt_str(&mut cx, "state_directory") {
        Some(d) if d.trim().is_empty() => {
            let line = top.key_line(&cx, "state_directory");
            cx.error(
                line,
                "state_directory",
                "state_directory must not be empty when configured".to_string(),
                Some("remove the key to use the default"),
            );
            default_state_directory(&lqos_directory)
        }
        Some(d) => PathBuf::from(d),
        None => default_state_directory(&lqos_directory),
    };
    let node_id = top.string(&mut cx, "node_id", "");
    let node_name = top.string(&mut cx, "node_name", DEFAULT_NODE_NAME);
    let queue_check_period_ms =
        top.opt_u64(&mut cx, "queue_check_period_ms").unwrap_or(DEFAULT_QUEUE_CHECK_PERIOD_MS);
    let disable_webserver = top.bool(&mut cx, "disable_webserver", false);
    let webserver_listen = top.string(&mut cx, "webserver_listen", DEFAULT_WEBSERVER_LISTEN);

    let interfaces = interfaces(&mut cx, &top);
    let empty = |name: &str| Sect { prefix: format!("{name}."), table: None, line: None };

    let qs = top.sub(&mut cx, "queues").unwrap_or_else(|| empty("queues"));
    let queues = queues(&mut cx, &qs);

    let ir = top.sub(&mut cx, "ip_ranges").unwrap_or_else(|| empty("ip_ranges"));
    let ip_ranges = IpRanges {
        allow_subnets: ir.cidrs(&mut cx, "allow_subnets", &DEFAULT_ALLOW_SUBNETS),
        ignore_subnets: ir.cidrs(&mut cx, "ignore_subnets", &[]),
    };
    let _ = ir.opt_bool(&mut cx, "unknown_ip_honors_ignore");
    let _ = ir.opt_bool(&mut cx, "unknown_ip_honors_allow");
    ir.finish(
        &mut cx,
        &["allow_subnets", "ignore_subnets", "unknown_ip_honors_ignore", "unknown_ip_honors_allow"],
    );

    let ic = top.sub(&mut cx, "integration_common").unwrap_or_else(|| empty("integration_common"));
    let integration_common = integration_common(&mut cx, &ic);
    let ts = top.sub(&mut cx, "tuning").unwrap_or_else(|| empty("tuning"));
    let tuning = tuning(&mut cx, &ts);
    let flows = top.sub(&mut cx, "flows").map(|s| flows(&mut cx, &s));

    let topo = top.sub(&mut cx, "topology").unwrap_or_else(|| empty("topology"));
    let topology = TopologyConfig { compile_mode: strategy(&mut cx, &topo, "compile_mode", true) };
    topo.finish(&mut cx, &["compile_mode", "queue_auto_virtualize_threshold_mbps"]);

    let uisp = top.sub(&mut cx, "uisp_integration").map(|s| uisp(&mut cx, &s));
    let splynx_sect =
        match (top.sub(&mut cx, "splynx_integration"), top.sub(&mut cx, "spylnx_integration")) {
            (Some(a), Some(b)) => {
                cx.warn(
                    b.line,
                    "spylnx_integration",
                    "both [splynx_integration] and its misspelt alias [spylnx_integration] are \
                 present; using [splynx_integration]"
                        .to_string(),
                    Some("delete [spylnx_integration]"),
                );
                Some(a)
            }
            (a, b) => a.or(b),
        };
    let splynx = splynx_sect.map(|s| splynx(&mut cx, &s));
    let netzur = top.sub(&mut cx, "netzur_integration").map(|s| netzur(&mut cx, &s));
    let ms = top.sub(&mut cx, "metrics").unwrap_or_else(|| empty("metrics"));
    let metrics = metrics(&mut cx, &ms);

    let mut known: Vec<&str> = vec![
        "version",
        "lqos_directory",
        "state_directory",
        "node_id",
        "node_name",
        "queue_check_period_ms",
        "disable_webserver",
        "webserver_listen",
        "bridge",
        "single_interface",
        "queues",
        "ip_ranges",
        "integration_common",
        "tuning",
        "flows",
        "topology",
        "uisp_integration",
        "splynx_integration",
        "spylnx_integration",
        "netzur_integration",
        "metrics",
    ];
    known.extend_from_slice(TOP_IGNORED);
    top.finish(&mut cx, &known);

    let config = Config {
        path: path.to_path_buf(),
        lqos_directory,
        state_directory,
        node_id,
        node_name,
        queue_check_period_ms,
        disable_webserver,
        webserver_listen,
        interfaces,
        queues,
        ip_ranges,
        integration_common,
        tuning,
        flows,
        topology,
        uisp,
        splynx,
        netzur,
        metrics,
    };
    (Some(config), cx.diags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_directory_default_follows_the_src_rule() {
        assert_eq!(
            default_state_directory(Path::new("/opt/libreqos/src")),
            PathBuf::from("/opt/libreqos/state")
        );
        assert_eq!(
            default_state_directory(Path::new("/srv/lqos")),
            PathBuf::from("/srv/lqos/state")
        );
    }

    #[test]
    fn cidr_parser_rejects_bare_addresses_with_a_hint() {
        let (msg, hint) = parse_cidr("10.1.2.3").unwrap_err();
        assert!(msg.contains("is an address"));
        assert!(hint.contains("10.1.2.3/32"));
        let (net, warn) = parse_cidr("192.168.1.7/24").unwrap();
        assert_eq!(net.to_string(), "192.168.1.0/24");
        assert!(warn.is_some());
    }
}
