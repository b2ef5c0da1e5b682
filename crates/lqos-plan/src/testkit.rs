//! Builders for tests and benchmarks (feature `testkit`): a [`Config`] with LibreQoS defaults,
//! networks from a nested spec, circuits, and seeded random networks and circuits. No I/O.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ipnet::{Ipv4Net, Ipv6Net};
use lqos_config::{
    CakeDiffserv, CakeParams, Circuit, CircuitId, Config, DefaultSqm, Device, IntegrationCommon,
    InterfaceMode, InterfaceName, IpRanges, LazyQueues, LeafQdisc, Network, NetworkNode, QueueMode,
    QueuesConfig, RateKbit, SqmOverride, TopologyConfig, Tuning,
};

use crate::model::HostFacts;

/// Mbps → kbit.
pub fn mbps(m: u64) -> RateKbit {
    RateKbit(m * 1000)
}

/// A bridge config (`to_network` = `eth1` carries download, `to_internet` = `eth0` upload) with
/// `default_sqm = "cake diffserv4"` and LibreQoS's defaults (generated PNs 1000/1000 Mbps,
/// fq_codel at ≥ 1000 Mbps).
pub fn config_bridge(down_mbps: u64, up_mbps: u64) -> Config {
    Config {
        path: PathBuf::from("/etc/lqos.conf"),
        lqos_directory: PathBuf::from("/opt/libreqos/src"),
        state_directory: PathBuf::from("/opt/libreqos/src/state"),
        node_id: "test".into(),
        node_name: "test".into(),
        queue_check_period_ms: 1000,
        disable_webserver: true,
        webserver_listen: "[::]:9123".into(),
        interfaces: Some(InterfaceMode::Bridge {
            to_internet: InterfaceName("eth0".into()),
            to_network: InterfaceName("eth1".into()),
            use_xdp_bridge: false,
            mtu: None,
        }),
        queues: QueuesConfig {
            default_sqm: DefaultSqm {
                tokens: "cake diffserv4".into(),
                leaf: Some(LeafQdisc::Cake(CakeParams {
                    diffserv: Some(CakeDiffserv::Diffserv4),
                    ..CakeParams::default()
                })),
            },
            queue_mode: QueueMode::Shape,
            downlink: mbps(down_mbps),
            uplink: mbps(up_mbps),
            generated_pn_download: mbps(1000),
            generated_pn_upload: mbps(1000),
            dry_run: false,
            sudo: false,
            override_available_queues: None,
            use_binpacking: false,
            lazy_queues: LazyQueues::No,
            lazy_expire_seconds: None,
            fast_queues_fq_codel_mbps: 1000.0,
        },
        ip_ranges: IpRanges::default(),
        integration_common: IntegrationCommon {
            circuit_name_as_address: false,
            queue_refresh_interval_mins: 30,
            promote_to_root: Vec::new(),
            client_bandwidth_multiplier: None,
            max_shrink_ratio: 0.5,
            ethernet_port_limits_enabled: true,
            ethernet_port_limit_multiplier: 0.94,
        },
        tuning: Tuning {
            set_cpu_governor_performance: false,
            stop_irq_balance: false,
            netdev_budget_usecs: 8000,
            netdev_budget_packets: 300,
            rx_usecs: 8,
            tx_usecs: 8,
            disable_rxvlan: false,
            disable_txvlan: false,
            disable_offload: Vec::new(),
        },
        flows: None,
        topology: TopologyConfig::default(),
        uisp: None,
        splynx: None,
        netzur: None,
        metrics: Default::default(),
    }
}

/// Like [`config_bridge`] but `[single_interface]` on `eth0`.
pub fn config_stick(down_mbps: u64, up_mbps: u64) -> Config {
    let mut c = config_bridge(down_mbps, up_mbps);
    c.interfaces = Some(InterfaceMode::Stick {
        interface: InterfaceName("eth0".into()),
        internet_vlan: 2,
        network_vlan: 3,
        mtu: None,
    });
    c
}

/// `queues` TX queues on both interfaces and `queues` CPUs.
pub fn facts(queues: u32) -> HostFacts {
    HostFacts { cpus: queues, download_tx_queues: queues, upload_tx_queues: queues }
}

/// A network.json node as written in a nested spec.
#[derive(Debug, Clone, Default)]
pub struct NodeSpec {
    /// Key.
    pub name: String,
    /// Optional `id`.
    pub id: Option<String>,
    /// Download Mbps (`None` = missing).
    pub down: Option<RateKbit>,
    /// Upload Mbps.
    pub up: Option<RateKbit>,
    /// Explicit download min.
    pub down_min: Option<RateKbit>,
    /// Explicit upload min.
    pub up_min: Option<RateKbit>,
    /// Virtual node.
    pub is_virtual: bool,
    /// Children.
    pub children: Vec<NodeSpec>,
}

/// A node with rates in Mbps.
pub fn site(name: &str, down_mbps: u64, up_mbps: u64, children: Vec<NodeSpec>) -> NodeSpec {
    NodeSpec {
        name: name.into(),
        down: Some(mbps(down_mbps)),
        up: Some(mbps(up_mbps)),
        children,
        ..NodeSpec::default()
    }
}

/// A virtual node.
pub fn virtual_node(name: &str, children: Vec<NodeSpec>) -> NodeSpec {
    NodeSpec { name: name.into(), is_virtual: true, children, ..NodeSpec::default() }
}

/// Builds the arena (depth-first, file order) from top-level specs. `network(vec![])` is `{}`.
pub fn network(roots: Vec<NodeSpec>) -> Network {
    fn add(net: &mut Network, spec: NodeSpec, parent: Option<usize>) -> usize {
        let idx = net.nodes.len();
        net.nodes.push(NetworkNode {
            name: spec.name,
            id: spec.id,
            display_name: None,
            node_type: None,
            is_virtual: spec.is_virtual,
            download: spec.down.filter(|r| r.0 > 0),
            upload: spec.up.filter(|r| r.0 > 0),
            download_min: spec.down_min,
            upload_min: spec.up_min,
            parent,
            children: Vec::new(),
            line: idx + 1,
            extra: serde_json::Map::new(),
        });
        for c in spec.children {
            let ci = add(net, c, Some(idx));
            if let Some(n) = net.nodes.get_mut(idx) {
                n.children.push(ci);
            }
        }
        idx
    }
    let mut net = Network::default();
    for r in roots {
        let i = add(&mut net, r, None);
        net.roots.push(i);
    }
    net
}

/// A circuit with one device `<id>-d` holding `ipv4` (/32), rates in Mbps, min 1 Mbps.
pub fn circuit(
    id: &str,
    name: &str,
    parent: Option<&str>,
    down_mbps: u64,
    up_mbps: u64,
    ipv4: Ipv4Addr,
) -> Circuit {
    Circuit {
        id: CircuitId(id.into()),
        name: name.into(),
        parent_node: parent.map(str::to_string),
        parent_node_id: None,
        anchor_node_id: None,
        download_min: mbps(1),
        upload_min: mbps(1),
        download_max: mbps(down_mbps),
        upload_max: mbps(up_mbps),
        sqm: None,
        devices: vec![Device {
            id: format!("{id}-d"),
            name: format!("{name} device"),
            mac: String::new(),
            ipv4: vec![Ipv4Net::from(ipv4)],
            ipv6: Vec::new(),
            comment: String::new(),
            line: 0,
        }],
        line: 0,
    }
}

/// A unique IPv4 for the i-th object (100.64.0.0/10, wraps after 4M).
pub fn nth_ipv4(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x6440_0000u32 | (i & 0x003F_FFFF))
}

/// A unique IPv6 /64 for the i-th object.
pub fn nth_ipv6_64(i: u32) -> Ipv6Net {
    let a = Ipv6Addr::new(0x2001, 0x0db8, (i >> 16) as u16, i as u16, 0, 0, 0, 0);
    Ipv6Net::new(a, 64).unwrap_or_else(|_| Ipv6Net::from(a))
}

/// Tiny deterministic PRNG (xorshift64*), so the testkit needs no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (seed 0 is replaced by a constant).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }
    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// A random tree of `sites` nodes, at most `max_depth` deep, rates 10..=1000 Mbps (some missing,
/// so they inherit), about one in eight virtual, some with an `id`.
pub fn random_network(seed: u64, sites: usize, max_depth: usize) -> Network {
    let mut rng = Rng::new(seed);
    // Parent index per node in creation order, then build specs.
    let mut parent: Vec<Option<usize>> = Vec::with_capacity(sites);
    let mut depth: Vec<usize> = Vec::with_capacity(sites);
    for i in 0..sites {
        let p = if i == 0 || rng.below(4) == 0 {
            None
        } else {
            let cand = rng.below(i as u64) as usize;
            if depth.get(cand).copied().unwrap_or(0) + 1 < max_depth.max(1) {
                Some(cand)
            } else {
                None
            }
        };
        depth.push(p.and_then(|p| depth.get(p).copied()).map_or(0, |d| d + 1));
        parent.push(p);
    }
    let mut specs: Vec<NodeSpec> = (0..sites)
        .map(|i| {
            let r = |rng: &mut Rng| {
                if rng.below(8) == 0 { None } else { Some(mbps(10 + rng.below(991))) }
            };
            NodeSpec {
                name: format!("site{i}"),
                id: if rng.below(2) == 0 { Some(format!("test:site:{i}")) } else { None },
                down: r(&mut rng),
                up: r(&mut rng),
                is_virtual: rng.below(8) == 0,
                ..NodeSpec::default()
            }
        })
        .collect();
    // Attach children bottom-up (higher index first so every child is complete when moved).
    let mut roots = Vec::new();
    for i in (0..sites).rev() {
        let spec = std::mem::take(&mut specs[i]);
        match parent[i] {
            Some(p) => specs[p].children.insert(0, spec),
            None => roots.insert(0, spec),
        }
    }
    network(roots)
}

/// `count` circuits with random parents in `net` (about one in ten unparented), rates
/// 1..=500 Mbps down, 1..=100 up, min 0..=1 Mbps, one IPv4 and sometimes an IPv6 /64 each, IDs
/// `c<first+i>`.
pub fn random_circuits(seed: u64, net: &Network, first: u32, count: u32) -> Vec<Circuit> {
    let mut rng = Rng::new(seed ^ 0x5151);
    (first..first + count)
        .map(|i| {
            let parent = if net.nodes.is_empty() || rng.below(10) == 0 {
                None
            } else {
                net.nodes.get(rng.below(net.nodes.len() as u64) as usize).map(|n| n.name.as_str())
            };
            let mut c = circuit(
                &format!("c{i}"),
                &format!("Customer {i}"),
                parent,
                1 + rng.below(500),
                1 + rng.below(100),
                nth_ipv4(i),
            );
            c.download_min = RateKbit(rng.below(1001));
            c.upload_min = RateKbit(rng.below(1001));
            if rng.below(3) == 0
                && let Some(d) = c.devices.first_mut()
            {
                d.ipv6.push(nth_ipv6_64(i));
            }
            if rng.below(10) == 0 {
                c.sqm = Some(SqmOverride { down: Some(lqos_config::SqmKind::FqCodel), up: None });
            }
            c
        })
        .collect()
}
