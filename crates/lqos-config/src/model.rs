//! Validated, public types. Other crates accept only these; the raw serde mirrors of the
//! files stay private to this crate.

use std::fmt;
use std::path::PathBuf;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// A rate in kilobits per second (1 Mbps = 1000 kbit/s). Plans and tc use integer kbit so
/// that 1150 Mbps stays 1150 Mbps.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct RateKbit(pub u64);

impl RateKbit {
    /// Converts (possibly fractional) Mbps to kbit/s, rounding to the nearest kbit.
    /// Negative or non-finite input gives zero; callers validate before converting.
    pub fn from_mbps(mbps: f64) -> Self {
        if mbps.is_finite() && mbps > 0.0 {
            RateKbit((mbps * 1000.0).round() as u64)
        } else {
            RateKbit(0)
        }
    }

    /// Whole Mbps, as the inputs usually state them.
    pub fn as_mbps_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Bytes per second, as the kernel's 64-bit HTB rate attributes want them.
    pub fn bytes_per_sec(self) -> u64 {
        self.0.saturating_mul(125)
    }
}

impl fmt::Display for RateKbit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}kbit", self.0)
    }
}

/// A circuit's key: the `Circuit ID` column, trimmed, never empty.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CircuitId(pub String);

impl fmt::Display for CircuitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A network interface name (1..=15 bytes, no `/` or whitespace).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InterfaceName(pub String);

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Leaf SQM
// ---------------------------------------------------------------------------------------------

/// The leaf qdisc kinds a circuit can get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqmKind {
    /// `cake` (the `default_sqm` tokens when they start with `cake`, else `cake diffserv4`).
    Cake,
    /// `fq_codel` with kernel defaults.
    FqCodel,
    /// No leaf qdisc: the HTB class alone (the kernel's default pfifo).
    None,
}

/// A per-circuit `sqm` column value: `cake`, `fq_codel`, `none`, or directional `down/up`
/// where an empty side means "the default rule for that direction".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct SqmOverride {
    /// Download side, `None` = default rule.
    pub down: Option<SqmKind>,
    /// Upload side, `None` = default rule.
    pub up: Option<SqmKind>,
}

/// CAKE's diffserv modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CakeDiffserv {
    /// `diffserv3`
    Diffserv3,
    /// `diffserv4`
    Diffserv4,
    /// `diffserv8`
    Diffserv8,
    /// `besteffort`
    Besteffort,
    /// `precedence`
    Precedence,
}

/// CAKE's ACK filter modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CakeAckFilter {
    /// `no-ack-filter` (kernel default)
    #[default]
    Off,
    /// `ack-filter`
    On,
    /// `ack-filter-aggressive`
    Aggressive,
}

/// CAKE parameters that `default_sqm` may carry. `None` = kernel default.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct CakeParams {
    /// `bandwidth` (normally unset: HTB shapes, CAKE only manages the queue).
    pub bandwidth_kbit: Option<u64>,
    /// Diffserv mode.
    pub diffserv: Option<CakeDiffserv>,
    /// `rtt` in microseconds (set by the low-rate fix-ups).
    pub rtt_us: Option<u32>,
    /// ACK filter.
    pub ack_filter: CakeAckFilter,
    /// `nat` (true) / `nonat` (false).
    pub nat: Option<bool>,
    /// `wash` (true) / `nowash` (false).
    pub wash: Option<bool>,
    /// `split-gso` (true) / `no-split-gso` (false).
    pub split_gso: Option<bool>,
    /// `overhead N`.
    pub overhead: Option<i32>,
    /// `mpu N`.
    pub mpu: Option<u32>,
    /// `memlimit N` in bytes.
    pub memlimit: Option<u32>,
}

/// fq_codel parameters. `None` = kernel default.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct FqCodelParams {
    /// `limit` packets.
    pub limit: Option<u32>,
    /// `flows`.
    pub flows: Option<u32>,
    /// `target` in microseconds.
    pub target_us: Option<u32>,
    /// `interval` in microseconds.
    pub interval_us: Option<u32>,
    /// `quantum` bytes.
    pub quantum: Option<u32>,
    /// `ecn` (true) / `noecn` (false).
    pub ecn: Option<bool>,
}

/// A fully specified leaf qdisc, as the planner hands it to lqos-tc.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LeafQdisc {
    /// `cake …`
    Cake(CakeParams),
    /// `fq_codel …`
    FqCodel(FqCodelParams),
    /// `pfifo [limit N]`
    Pfifo {
        /// Packets.
        limit: Option<u32>,
    },
    /// `bfifo [limit N]`
    Bfifo {
        /// Bytes.
        limit: Option<u32>,
    },
}

impl LeafQdisc {
    /// The kernel's name for this qdisc kind (`TCA_KIND`), e.g. `sch_cake` registers `cake`.
    pub fn kind(&self) -> &'static str {
        match self {
            LeafQdisc::Cake(_) => "cake",
            LeafQdisc::FqCodel(_) => "fq_codel",
            LeafQdisc::Pfifo { .. } => "pfifo",
            LeafQdisc::Bfifo { .. } => "bfifo",
        }
    }
}

/// `default_sqm`, parsed from its tc tokens (`"cake diffserv4 ack-filter"`, `"fq_codel"`,
/// `"none"`, `"pfifo"`). `None` = no leaf qdisc.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DefaultSqm {
    /// The tokens as written in lqos.conf (kept for display and for writing back).
    pub tokens: String,
    /// The parsed leaf, `None` for `none`.
    pub leaf: Option<LeafQdisc>,
}

// ---------------------------------------------------------------------------------------------
// lqos.conf
// ---------------------------------------------------------------------------------------------

/// Where the shaper sits: an inline bridge of two NICs, or one NIC "on a stick" with VLANs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum InterfaceMode {
    /// `[bridge]`
    Bridge {
        /// NIC facing the edge router; upload is shaped on its egress.
        to_internet: InterfaceName,
        /// NIC facing the subscribers; download is shaped on its egress.
        to_network: InterfaceName,
        /// `use_xdp_bridge` (accepted for compatibility; lqos forwards with a Linux bridge).
        use_xdp_bridge: bool,
        /// Optional MTU, 576..=9216.
        mtu: Option<u32>,
    },
    /// `[single_interface]`
    Stick {
        /// The trunk NIC.
        interface: InterfaceName,
        /// VLAN facing the Internet.
        internet_vlan: u16,
        /// VLAN facing the subscribers.
        network_vlan: u16,
        /// Optional MTU, 576..=9216.
        mtu: Option<u32>,
    },
}

impl InterfaceMode {
    /// The interface whose egress carries download (subscriber-facing).
    pub fn download_interface(&self) -> &InterfaceName {
        match self {
            InterfaceMode::Bridge { to_network, .. } => to_network,
            InterfaceMode::Stick { interface, .. } => interface,
        }
    }
    /// The interface whose egress carries upload (Internet-facing).
    pub fn upload_interface(&self) -> &InterfaceName {
        match self {
            InterfaceMode::Bridge { to_internet, .. } => to_internet,
            InterfaceMode::Stick { interface, .. } => interface,
        }
    }
    /// True for `[single_interface]`.
    pub fn is_stick(&self) -> bool {
        matches!(self, InterfaceMode::Stick { .. })
    }
}

/// `queue_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum QueueMode {
    /// Build the HTB tree (default).
    #[default]
    Shape,
    /// Keep the root `mq` only; build nothing ("monitor only").
    Observe,
}

/// `lazy_queues`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum LazyQueues {
    /// `No` (default).
    #[default]
    No,
    /// `Htb`
    Htb,
    /// `Full`
    Full,
}

/// `[queues]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuesConfig {
    /// `default_sqm`.
    pub default_sqm: DefaultSqm,
    /// `queue_mode` (or legacy `monitor_only`).
    pub queue_mode: QueueMode,
    /// `downlink_bandwidth_mbps`: total download capacity (on `to_network`).
    pub downlink: RateKbit,
    /// `uplink_bandwidth_mbps`: total upload capacity (on `to_internet`).
    pub uplink: RateKbit,
    /// `generated_pn_download_mbps`.
    pub generated_pn_download: RateKbit,
    /// `generated_pn_upload_mbps`.
    pub generated_pn_upload: RateKbit,
    /// `dry_run` (accepted; lqos has `libreqos --dry-run` instead).
    pub dry_run: bool,
    /// `sudo` (accepted, ignored: lqosd talks netlink).
    pub sudo: bool,
    /// `override_available_queues` (`None` or 0 = auto).
    pub override_available_queues: Option<u32>,
    /// `use_binpacking`.
    pub use_binpacking: bool,
    /// `lazy_queues`.
    pub lazy_queues: LazyQueues,
    /// `lazy_expire_seconds`.
    pub lazy_expire_seconds: Option<u64>,
    /// `fast_queues_fq_codel` in Mbps (default 1000): circuits at or above it get fq_codel.
    pub fast_queues_fq_codel_mbps: f64,
}

/// `[ip_ranges]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IpRanges {
    /// `allow_subnets`.
    pub allow_subnets: Vec<IpNet>,
    /// `ignore_subnets`.
    pub ignore_subnets: Vec<IpNet>,
}

/// `[integration_common]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegrationCommon {
    /// `circuit_name_as_address`.
    pub circuit_name_as_address: bool,
    /// `queue_refresh_interval_mins` (default 30).
    pub queue_refresh_interval_mins: u32,
    /// `promote_to_root`.
    pub promote_to_root: Vec<String>,
    /// `client_bandwidth_multiplier`.
    pub client_bandwidth_multiplier: Option<f64>,
    /// Share of circuits an import may remove before it is refused (lqos extension,
    /// `max_shrink_ratio`, default 0.5).
    pub max_shrink_ratio: f64,
    /// `ethernet_port_limits_enabled` (default true): a CPE's negotiated Ethernet speed caps
    /// its circuit.
    pub ethernet_port_limits_enabled: bool,
    /// `ethernet_port_limit_multiplier` (default 0.94, 0 < m ≤ 1): usable share of the port.
    pub ethernet_port_limit_multiplier: f64,
}

/// `[tuning]` (applied by lqosd at start).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tuning {
    /// `set_cpu_governor_performance`.
    pub set_cpu_governor_performance: bool,
    /// `stop_irq_balance`.
    pub stop_irq_balance: bool,
    /// `netdev_budget_usecs`.
    pub netdev_budget_usecs: u32,
    /// `netdev_budget_packets`.
    pub netdev_budget_packets: u32,
    /// `rx_usecs`.
    pub rx_usecs: u32,
    /// `tx_usecs`.
    pub tx_usecs: u32,
    /// `disable_rxvlan`.
    pub disable_rxvlan: bool,
    /// `disable_txvlan`.
    pub disable_txvlan: bool,
    /// `disable_offload`.
    pub disable_offload: Vec<String>,
}

/// `[flows]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flows {
    /// `flow_timeout_seconds`.
    pub flow_timeout_seconds: u64,
    /// `netflow_enabled`.
    pub netflow_enabled: bool,
    /// `netflow_port`.
    pub netflow_port: Option<u16>,
    /// `netflow_ip`.
    pub netflow_ip: Option<String>,
    /// `netflow_version`.
    pub netflow_version: Option<u8>,
    /// `do_not_track_subnets`.
    pub do_not_track_subnets: Vec<IpNet>,
}

/// How an integration builds the hierarchy (`[topology] compile_mode` or legacy `strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopologyStrategy {
    /// Circuits only, no hierarchy.
    Flat,
    /// Access points only.
    ApOnly,
    /// Sites with their APs.
    ApSite,
    /// The whole site tree.
    Full,
}

/// `[topology]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TopologyConfig {
    /// `compile_mode` (`None` = use each integration's `strategy`).
    pub compile_mode: Option<TopologyStrategy>,
}

/// What UISP does with suspended clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuspendedStrategy {
    /// Shape them normally.
    None,
    /// Leave them out.
    Ignore,
    /// Shape them at 0.1 Mbps.
    Slow,
}

/// One `exception_cpes` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionCpe {
    /// CPE name.
    pub cpe: String,
    /// Parent node name to force.
    pub parent: String,
}

/// `[uisp_integration]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UispConfig {
    /// `enable_uisp`.
    pub enabled: bool,
    /// `token` (secret).
    pub token: String,
    /// `url`.
    pub url: String,
    /// `site` (root site for `full`).
    pub site: String,
    /// `strategy`.
    pub strategy: TopologyStrategy,
    /// `suspended_strategy`.
    pub suspended_strategy: SuspendedStrategy,
    /// `airmax_capacity`.
    pub airmax_capacity: f64,
    /// `ltu_capacity`.
    pub ltu_capacity: f64,
    /// `exclude_sites`.
    pub exclude_sites: Vec<String>,
    /// `ipv6_with_mikrotik`.
    pub ipv6_with_mikrotik: bool,
    /// `bandwidth_overhead_factor`.
    pub bandwidth_overhead_factor: f64,
    /// `commit_bandwidth_multiplier`.
    pub commit_bandwidth_multiplier: f64,
    /// `exception_cpes`.
    pub exception_cpes: Vec<ExceptionCpe>,
    /// `insecure_ssl`.
    pub insecure_ssl: bool,
    /// `airmax_flexible_frame_download_ratio` (default 0.8): download share of a flexible-frame
    /// airMax AP's capacity when the radio reports no live ratio.
    pub airmax_flexible_frame_download_ratio: f64,
    /// `ignore_calculated_capacity`: infrastructure nodes get the generated-node rates instead
    /// of the radio/path capacity.
    pub ignore_calculated_capacity: bool,
    /// `infrastructure_transport_caps_enabled` (default true): a radio's capacity is capped by
    /// its transport port (or its model's port ceiling).
    pub infrastructure_transport_caps_enabled: bool,
    /// `use_ptmp_as_parent`: a site fed by a point-to-multipoint AP hangs under that AP.
    pub use_ptmp_as_parent: bool,
    /// `squash_sites`: sites left out of the tree, their children moved to their parent.
    pub squash_sites: Vec<String>,
    /// `do_not_squash_sites`: sites never squashed (wins over `squash_sites`).
    pub do_not_squash_sites: Vec<String>,
    /// `enable_squashing`: accepted; lqos never emits relay radios, so there is nothing more to
    /// squash.
    pub enable_squashing: bool,
}

/// `[splynx_integration]` (alias `[spylnx_integration]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplynxConfig {
    /// `enable_splynx` (alias `enable_spylnx`).
    pub enabled: bool,
    /// `api_key` (secret).
    pub api_key: String,
    /// `api_secret` (secret).
    pub api_secret: String,
    /// `url`.
    pub url: String,
    /// `strategy` (default `ap_site`).
    pub strategy: TopologyStrategy,
}

/// `[netzur_integration]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetzurConfig {
    /// `enable_netzur`.
    pub enabled: bool,
    /// `api_key` (secret).
    pub api_key: String,
    /// `api_url`.
    pub api_url: String,
    /// `timeout_secs` (default 60).
    pub timeout_secs: u64,
}

/// `[metrics]`: the Prometheus endpoint `/metrics` (lqos extension; LibreQoS has no such
/// section). lqosd lets the environment override both fields (`LQOS_METRICS=off`,
/// `LQOS_METRICS_TOKEN`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsConfig {
    /// `enabled`: serve `/metrics` at all (default [`crate::conf::DEFAULT_METRICS_ENABLED`]).
    pub enabled: bool,
    /// `token` (secret): when set, `/metrics` wants `Authorization: Bearer <token>`.
    /// `None` (the default) serves it without authentication.
    pub token: Option<String>,
}

impl Default for MetricsConfig {
    /// The section's defaults: enabled, no token.
    fn default() -> Self {
        MetricsConfig { enabled: crate::conf::DEFAULT_METRICS_ENABLED, token: None }
    }
}

/// The validated `/etc/lqos.conf`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Where the file was read from.
    pub path: PathBuf,
    /// `lqos_directory`: location of network.json and ShapedDevices.csv.
    pub lqos_directory: PathBuf,
    /// `state_directory` (default derived from `lqos_directory`).
    pub state_directory: PathBuf,
    /// `node_id`.
    pub node_id: String,
    /// `node_name`.
    pub node_name: String,
    /// `queue_check_period_ms`.
    pub queue_check_period_ms: u64,
    /// `disable_webserver`.
    pub disable_webserver: bool,
    /// `webserver_listen` (default `[::]:9123`).
    pub webserver_listen: String,
    /// `[bridge]` xor `[single_interface]`; `None` when neither is present (lqosd refuses to start).
    pub interfaces: Option<InterfaceMode>,
    /// `[queues]`.
    pub queues: QueuesConfig,
    /// `[ip_ranges]`.
    pub ip_ranges: IpRanges,
    /// `[integration_common]`.
    pub integration_common: IntegrationCommon,
    /// `[tuning]`.
    pub tuning: Tuning,
    /// `[flows]`.
    pub flows: Option<Flows>,
    /// `[topology]`.
    pub topology: TopologyConfig,
    /// `[uisp_integration]`.
    pub uisp: Option<UispConfig>,
    /// `[splynx_integration]`.
    pub splynx: Option<SplynxConfig>,
    /// `[netzur_integration]`.
    pub netzur: Option<NetzurConfig>,
    /// `[metrics]` (lqos extension; defaults when the section is missing).
    #[serde(default)]
    pub metrics: MetricsConfig,
}

impl Config {
    /// `<lqos_directory>/network.json`
    pub fn network_json_path(&self) -> PathBuf {
        self.lqos_directory.join("network.json")
    }
    /// `<lqos_directory>/ShapedDevices.csv`
    pub fn shaped_devices_path(&self) -> PathBuf {
        self.lqos_directory.join("ShapedDevices.csv")
    }
}

// ---------------------------------------------------------------------------------------------
// network.json
// ---------------------------------------------------------------------------------------------

/// Index of a node in [`Network::nodes`].
pub type NodeIndex = usize;

/// One node of network.json (a site, AP, …), as declared. Inheritance of missing rates is the
/// planner's job; validation has already checked names, rates and depth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkNode {
    /// The object key: globally unique.
    pub name: String,
    /// Optional stable `id` (e.g. `uisp:site:abc`), preferred as the identity key.
    pub id: Option<String>,
    /// Optional `name` field (display name) when it differs from the key.
    pub display_name: Option<String>,
    /// Optional `type` (`site`, `ap`, …).
    pub node_type: Option<String>,
    /// `virtual: true` or `type: "virtual"`: not a class; children are promoted.
    pub is_virtual: bool,
    /// `downloadBandwidthMbps`; `None` when missing or zero (inherits the parent's).
    pub download: Option<RateKbit>,
    /// `uploadBandwidthMbps`; `None` when missing or zero.
    pub upload: Option<RateKbit>,
    /// `downloadBandwidthMbpsMin`, if given.
    pub download_min: Option<RateKbit>,
    /// `uploadBandwidthMbpsMin`, if given.
    pub upload_min: Option<RateKbit>,
    /// Parent node, `None` at the top level.
    pub parent: Option<NodeIndex>,
    /// Children in file order.
    pub children: Vec<NodeIndex>,
    /// Line of the node's key in network.json (1-based).
    pub line: usize,
    /// Unknown fields, kept so that writing back loses nothing (e.g. `latitude`).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The parsed network.json. `nodes` is an arena in depth-first file order; an empty `nodes`
/// means a flat network (`{}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Network {
    /// All nodes, depth-first in file order.
    pub nodes: Vec<NetworkNode>,
    /// Top-level nodes in file order.
    pub roots: Vec<NodeIndex>,
}

impl Network {
    /// True for `{}` (every circuit goes under a generated parent).
    pub fn is_flat(&self) -> bool {
        self.nodes.is_empty()
    }
    /// Finds a node by its key.
    pub fn find_by_name(&self, name: &str) -> Option<NodeIndex> {
        self.nodes.iter().position(|n| n.name == name)
    }
    /// Finds a node by its `id`.
    pub fn find_by_id(&self, id: &str) -> Option<NodeIndex> {
        self.nodes.iter().position(|n| n.id.as_deref() == Some(id))
    }
    /// The names from the top level down to `idx`, joined by `/`.
    pub fn path(&self, idx: NodeIndex) -> String {
        let mut parts = Vec::new();
        let mut cur = Some(idx);
        while let Some(i) = cur {
            let Some(node) = self.nodes.get(i) else { break };
            parts.push(node.name.as_str());
            cur = node.parent;
        }
        parts.reverse();
        parts.join("/")
    }
}

// ---------------------------------------------------------------------------------------------
// ShapedDevices.csv
// ---------------------------------------------------------------------------------------------

/// One device (one CSV row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// `Device ID`.
    pub id: String,
    /// `Device Name`.
    pub name: String,
    /// `MAC`.
    pub mac: String,
    /// `IPv4` hosts (/32) and prefixes.
    pub ipv4: Vec<Ipv4Net>,
    /// `IPv6` hosts (/128) and prefixes.
    pub ipv6: Vec<Ipv6Net>,
    /// `Comment`.
    pub comment: String,
    /// Line in ShapedDevices.csv (1-based).
    pub line: usize,
}

/// A circuit: the rows sharing one Circuit ID. The first row defines name, parent, rates, SQM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Circuit {
    /// `Circuit ID`.
    pub id: CircuitId,
    /// `Circuit Name`.
    pub name: String,
    /// `Parent Node` (`None` when empty or `none`: unparented).
    pub parent_node: Option<String>,
    /// `Parent Node ID` (preferred over the name when it resolves).
    pub parent_node_id: Option<String>,
    /// `Anchor Node ID`.
    pub anchor_node_id: Option<String>,
    /// `Download Min Mbps`.
    pub download_min: RateKbit,
    /// `Upload Min Mbps`.
    pub upload_min: RateKbit,
    /// `Download Max Mbps`.
    pub download_max: RateKbit,
    /// `Upload Max Mbps`.
    pub upload_max: RateKbit,
    /// `sqm` column.
    pub sqm: Option<SqmOverride>,
    /// Devices in file order (at least one).
    pub devices: Vec<Device>,
    /// Line of the circuit's first row.
    pub line: usize,
}

impl Circuit {
    /// Every address or prefix of every device.
    pub fn networks(&self) -> impl Iterator<Item = (IpNet, &Device)> + '_ {
        self.devices.iter().flat_map(|d| {
            d.ipv4
                .iter()
                .map(move |n| (IpNet::V4(*n), d))
                .chain(d.ipv6.iter().map(move |n| (IpNet::V6(*n), d)))
        })
    }
}
