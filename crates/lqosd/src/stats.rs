//! Live statistics: every tick lqosd reads the HTB class counters of each shaping interface and
//! the per-host eBPF counters, and turns the deltas into per-circuit, per-node and total rates.
//! Circuit and node numbers come from their own HTB classes (what was really shaped); the
//! per-host counters give the totals, so traffic of unmapped addresses shows as unshaped.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Instant;

use lqos_bus::{CircuitStat, NodeStat};
use lqos_plan::{Direction, Owner, Plan};

use crate::kernel::{ClassCounter, HostCounter};

/// Counters of one class at the previous tick.
#[derive(Debug, Clone, Copy, Default)]
struct Prev {
    bytes: u64,
}

/// Rates and totals of one owner in one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flow {
    /// Bits per second over the last tick.
    pub bps: u64,
    /// Total bytes.
    pub bytes: u64,
    /// Total packets.
    pub packets: u64,
    /// Drops.
    pub drops: u64,
    /// Backlog bytes.
    pub backlog: u64,
}

/// The tracker, fed once per tick.
#[derive(Debug, Default)]
pub struct StatsTracker {
    prev_class: HashMap<(Direction, u32), Prev>,
    prev_hosts: HashMap<IpAddr, HostCounter>,
    last_tick: Option<Instant>,
    /// Per owner and direction.
    pub flows: HashMap<(Owner, Direction), Flow>,
    /// Total download / upload bits per second (all hosts).
    pub total_bps: (u64, u64),
    /// Download / upload bits per second of mapped hosts.
    pub shaped_bps: (u64, u64),
    /// Drops across all classes.
    pub total_drops: u64,
}

fn rate(delta_bytes: u64, secs: f64) -> u64 {
    if secs <= 0.0 { 0 } else { (delta_bytes as f64 * 8.0 / secs) as u64 }
}

impl StatsTracker {
    /// Feeds one tick: class counters per interface name, host counters, and the set of mapped
    /// host addresses (to split shaped from unshaped).
    pub fn update(
        &mut self,
        plan: &Plan,
        classes: &[(String, Vec<ClassCounter>)],
        hosts: &[(IpAddr, HostCounter)],
        mapped: &dyn Fn(IpAddr) -> bool,
        now: Instant,
    ) {
        let secs = self.last_tick.map(|t| now.duration_since(t).as_secs_f64()).unwrap_or(0.0);
        self.last_tick = Some(now);
        let mut owners: HashMap<(&str, u32), (&Owner, Direction)> = HashMap::new();
        for iface in &plan.interfaces {
            for c in &iface.classes {
                owners.insert((iface.name.as_str(), c.id.as_u32()), (&c.owner, c.direction));
            }
        }
        let mut flows = HashMap::new();
        let mut drops = 0;
        let mut seen = HashSet::new();
        for (ifname, counters) in classes {
            for cc in counters {
                let Some((owner, dir)) = owners.get(&(ifname.as_str(), cc.handle)) else {
                    continue;
                };
                let key = (*dir, cc.handle);
                seen.insert(key);
                let prev = self.prev_class.insert(key, Prev { bytes: cc.bytes });
                let delta = prev.map(|p| cc.bytes.saturating_sub(p.bytes)).unwrap_or(0);
                drops += cc.drops;
                flows.insert(
                    ((*owner).clone(), *dir),
                    Flow {
                        bps: rate(delta, secs),
                        bytes: cc.bytes,
                        packets: cc.packets,
                        drops: cc.drops,
                        backlog: cc.backlog,
                    },
                );
            }
        }
        self.prev_class.retain(|k, _| seen.contains(k));
        self.flows = flows;
        self.total_drops = drops;

        let (mut down, mut up, mut sdown, mut sup) = (0u64, 0u64, 0u64, 0u64);
        let mut next_hosts = HashMap::with_capacity(hosts.len());
        for (ip, c) in hosts {
            if let Some(p) = self.prev_hosts.get(ip) {
                let d = c.download_bytes.saturating_sub(p.download_bytes);
                let u = c.upload_bytes.saturating_sub(p.upload_bytes);
                down += d;
                up += u;
                if mapped(*ip) {
                    sdown += d;
                    sup += u;
                }
            }
            next_hosts.insert(*ip, *c);
        }
        self.prev_hosts = next_hosts;
        self.total_bps = (rate(down, secs), rate(up, secs));
        self.shaped_bps = (rate(sdown, secs), rate(sup, secs));
    }

    fn flow(&self, owner: &Owner, dir: Direction) -> Flow {
        self.flows.get(&(owner.clone(), dir)).copied().unwrap_or_default()
    }

    /// Per-circuit numbers for the plan's circuits.
    pub fn circuits(&self, plan: &Plan) -> Vec<CircuitStat> {
        let names: HashMap<&str, &str> =
            plan.nodes.iter().map(|n| (n.key.as_str(), n.name.as_str())).collect();
        let mut addrs: HashMap<&str, Vec<String>> = HashMap::new();
        for m in &plan.mappings {
            addrs.entry(m.circuit.0.as_str()).or_default().push(m.net.to_string());
        }
        plan.circuits
            .iter()
            .map(|c| {
                let owner = Owner::Circuit(c.id.clone());
                let d = self.flow(&owner, Direction::Download);
                let u = self.flow(&owner, Direction::Upload);
                CircuitStat {
                    id: c.id.0.clone(),
                    name: c.name.clone(),
                    parent: names.get(c.parent.as_str()).copied().unwrap_or(&c.parent).to_owned(),
                    download_max_kbit: c.download_max.0,
                    upload_max_kbit: c.upload_max.0,
                    download_bps: d.bps,
                    upload_bps: u.bps,
                    download_bytes: d.bytes,
                    upload_bytes: u.bytes,
                    download_packets: d.packets,
                    upload_packets: u.packets,
                    drops: d.drops + u.drops,
                    backlog_bytes: d.backlog + u.backlog,
                    class: c.class.to_string(),
                    addresses: addrs.remove(c.id.0.as_str()).unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Per-node numbers.
    pub fn nodes(&self, plan: &Plan) -> Vec<NodeStat> {
        let names: HashMap<&str, &str> =
            plan.nodes.iter().map(|n| (n.key.as_str(), n.name.as_str())).collect();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for c in &plan.circuits {
            *counts.entry(c.parent.as_str()).or_default() += 1;
        }
        plan.nodes
            .iter()
            .map(|n| {
                let owner = Owner::Node(n.key.clone());
                let d = self.flow(&owner, Direction::Download);
                let u = self.flow(&owner, Direction::Upload);
                NodeStat {
                    name: n.name.clone(),
                    parent: n
                        .parent
                        .as_deref()
                        .map(|p| names.get(p).copied().unwrap_or(p).to_owned()),
                    download_max_kbit: n.download.0,
                    upload_max_kbit: n.upload.0,
                    download_bps: d.bps,
                    upload_bps: u.bps,
                    drops: d.drops + u.drops,
                    circuits: counts.get(n.key.as_str()).copied().unwrap_or(0),
                }
            })
            .collect()
    }
}
