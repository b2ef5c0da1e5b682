//! Live statistics. Two sources, read at different rates:
//! - the data plane's counters (cheap batched map reads) every tick: per-host (and, with
//!   per-slot counters, per-circuit) bytes and packets, hence the totals and shaped share;
//! - the HTB class counters of each shaping interface (a netlink dump of every class, the
//!   expensive part at 100k circuits) only while somebody looks: the service asks for them
//!   when a stats command arrived in the last [`CLASS_INTEREST`], and once right away when a
//!   command finds them older than a tick.
//!
//! Circuits and nodes are indexed once per applied plan ([`StatsTracker::set_plan`]): a tick
//! does no string hashing, cloning of the plan or per-owner allocation.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use lqos_bus::{CircuitStat, NodeStat};
use lqos_plan::{Direction, Plan};

use crate::kernel::{ClassCounter, HostCounter};

/// How long after the last stats command the class counters are still read every tick.
pub const CLASS_INTEREST: Duration = Duration::from_secs(30);

/// Samples older than this give no rate (the next one starts a new interval), so a reader
/// never sees an average over a long unwatched stretch.
pub const MAX_RATE_INTERVAL: Duration = Duration::from_secs(5);

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

/// Where each HTB class of the applied plan belongs: built once per plan.
#[derive(Debug, Default)]
struct Index {
    /// Shaping interfaces in plan order.
    interfaces: Vec<String>,
    /// (interface position, class handle) → (owner position, direction). Owners are the
    /// plan's circuits in order, then its nodes.
    classes: HashMap<(usize, u32), (usize, Direction)>,
}

fn dir_index(d: Direction) -> usize {
    match d {
        Direction::Download => 0,
        Direction::Upload => 1,
    }
}

/// The tracker, fed once per tick.
#[derive(Debug, Default)]
pub struct StatsTracker {
    index: Index,
    /// Per owner (circuits, then nodes), download and upload.
    flows: Vec<[Flow; 2]>,
    prev_class: HashMap<(usize, u32), u64>,
    class_at: Option<Instant>,
    prev_hosts: HashMap<IpAddr, HostCounter>,
    hosts_at: Option<Instant>,
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

/// Seconds since `prev`, or 0 (no rate) when there was none or it is too old.
fn interval(prev: Option<Instant>, now: Instant) -> f64 {
    match prev {
        Some(t) if now.saturating_duration_since(t) <= MAX_RATE_INTERVAL => {
            now.saturating_duration_since(t).as_secs_f64()
        }
        _ => 0.0,
    }
}

impl StatsTracker {
    /// Indexes a newly applied plan (or none); numbers start over.
    pub fn set_plan(&mut self, plan: Option<&Plan>) {
        let mut index = Index::default();
        if let Some(plan) = plan {
            let circuit_pos: HashMap<&str, usize> =
                plan.circuits.iter().enumerate().map(|(i, c)| (c.id.0.as_str(), i)).collect();
            let node_pos: HashMap<&str, usize> = plan
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.key.as_str(), plan.circuits.len() + i))
                .collect();
            for (i, iface) in plan.interfaces.iter().enumerate() {
                index.interfaces.push(iface.name.clone());
                for c in &iface.classes {
                    let pos = match &c.owner {
                        lqos_plan::Owner::Circuit(id) => circuit_pos.get(id.0.as_str()),
                        lqos_plan::Owner::Node(key) => node_pos.get(key.as_str()),
                        _ => None,
                    };
                    if let Some(pos) = pos {
                        index.classes.insert((i, c.id.as_u32()), (*pos, c.direction));
                    }
                }
            }
            self.flows = vec![[Flow::default(); 2]; plan.circuits.len() + plan.nodes.len()];
        } else {
            self.flows = Vec::new();
        }
        self.index = index;
        self.prev_class.clear();
        self.class_at = None;
        self.total_drops = 0;
    }

    /// When the class counters were last read.
    pub fn classes_read_at(&self) -> Option<Instant> {
        self.class_at
    }

    /// Feeds the HTB class counters, per interface name.
    pub fn update_classes(&mut self, classes: &[(String, Vec<ClassCounter>)], now: Instant) {
        let secs = interval(self.class_at, now);
        self.class_at = Some(now);
        let mut drops = 0;
        for (ifname, counters) in classes {
            let Some(ifpos) = self.index.interfaces.iter().position(|n| n == ifname) else {
                continue;
            };
            for cc in counters {
                let key = (ifpos, cc.handle);
                let Some((owner, dir)) = self.index.classes.get(&key).copied() else { continue };
                let prev = self.prev_class.insert(key, cc.bytes);
                let delta = match prev {
                    Some(p) if secs > 0.0 => cc.bytes.saturating_sub(p),
                    _ => 0,
                };
                drops += cc.drops;
                if let Some(f) = self.flows.get_mut(owner) {
                    f[dir_index(dir)] = Flow {
                        bps: rate(delta, secs),
                        bytes: cc.bytes,
                        packets: cc.packets,
                        drops: cc.drops,
                        backlog: cc.backlog,
                    };
                }
            }
        }
        self.total_drops = drops;
    }

    /// Feeds the per-host counters and the set of mapped host addresses (to split shaped from
    /// unshaped).
    pub fn update_hosts(
        &mut self,
        hosts: &[(IpAddr, HostCounter)],
        mapped: &dyn Fn(IpAddr) -> bool,
        now: Instant,
    ) {
        let secs = interval(self.hosts_at, now);
        self.hosts_at = Some(now);
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

    /// One tick's worth of both sources (tests and callers that read everything).
    pub fn update(
        &mut self,
        classes: &[(String, Vec<ClassCounter>)],
        hosts: &[(IpAddr, HostCounter)],
        mapped: &dyn Fn(IpAddr) -> bool,
        now: Instant,
    ) {
        self.update_classes(classes, now);
        self.update_hosts(hosts, mapped, now);
    }

    fn owner_flow(&self, pos: usize, dir: Direction) -> Flow {
        self.flows.get(pos).map(|f| f[dir_index(dir)]).unwrap_or_default()
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
            .enumerate()
            .map(|(i, c)| {
                let d = self.owner_flow(i, Direction::Download);
                let u = self.owner_flow(i, Direction::Upload);
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
            .enumerate()
            .map(|(i, n)| {
                let pos = plan.circuits.len() + i;
                let d = self.owner_flow(pos, Direction::Download);
                let u = self.owner_flow(pos, Direction::Upload);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{FACTS, TWO, setup};

    #[test]
    fn rates_come_from_fresh_samples_only_and_a_new_plan_starts_over() {
        let (_dir, config) = setup(TWO);
        let plan = crate::engine::prepare(&config, FACTS, &Default::default()).expect("plan").plan;
        let mut t = StatsTracker::default();
        t.set_plan(Some(&plan));
        let c1 = &plan.circuits[0];
        let iface = plan
            .interfaces
            .iter()
            .find(|i| i.classes.iter().any(|c| c.id == c1.class))
            .map(|i| i.name.clone())
            .expect("interface");
        let at = |bytes| {
            vec![(
                iface.clone(),
                vec![ClassCounter { handle: c1.class.as_u32(), bytes, ..Default::default() }],
            )]
        };
        let t0 = Instant::now();
        t.update_classes(&at(0), t0);
        t.update_classes(&at(125_000), t0 + Duration::from_secs(1));
        assert_eq!(t.circuits(&plan)[0].download_bps, 1_000_000);
        // After a long unwatched gap the first sample gives no rate, the next one does.
        let late = t0 + Duration::from_secs(60);
        t.update_classes(&at(10_000_000), late);
        assert_eq!(t.circuits(&plan)[0].download_bps, 0);
        t.update_classes(&at(10_250_000), late + Duration::from_secs(1));
        assert_eq!(t.circuits(&plan)[0].download_bps, 2_000_000);
        assert_eq!(t.circuits(&plan)[0].download_bytes, 10_250_000);
        t.set_plan(Some(&plan));
        assert_eq!(t.circuits(&plan)[0].download_bytes, 0);
        t.set_plan(None);
        assert!(t.classes_read_at().is_none());
    }
}
