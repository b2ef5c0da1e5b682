//! Live statistics. Two sources, read at different rates:
//! - the data plane's per-slot counters (one `BPF_MAP_LOOKUP_BATCH` per 4096 slots) every
//!   tick: per-circuit bytes, packets and rates (slot 0 = unshaped traffic), TCP packets and
//!   retransmits, and — through [`crate::qoe`] — the RTT histograms of active circuits;
//! - the HTB class counters of each shaping interface (a netlink dump of every class, the
//!   expensive part at 100k circuits) only while somebody looks: the service asks for them
//!   when a stats command arrived in the last [`CLASS_INTEREST`], and once right away when a
//!   command finds them older than a tick.
//!
//! Circuits and nodes are indexed once per applied plan ([`StatsTracker::set_plan`]): a tick
//! does no string hashing, cloning of the plan or per-owner allocation.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lqos_bus::{CircuitStat, NodeStat};
use lqos_plan::{Direction, Plan};

use crate::kernel::{ClassCounter, RttHistogram, SlotCounters};
use crate::qoe::{QoeTracker, WINDOW_LONG, WINDOW_SHORT, Window};
use crate::slots::SlotTable;

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

/// One circuit's numbers for the history store ([`StatsTracker::history_rows`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HistoryRow {
    /// Rates `[down, up]`, bits/s.
    pub bps: [u64; 2],
    /// Cumulative TCP retransmits `[down, up]`.
    pub retransmits: [u64; 2],
    /// Cumulative TCP packets `[down, up]`.
    pub tcp_packets: [u64; 2],
    /// Cumulative queue drops (as of the last class read).
    pub drops: u64,
    /// RTT over the short window.
    pub rtt: lqos_bus::RttPaths,
}

/// The tracker, fed once per tick.
#[derive(Debug, Default)]
pub struct StatsTracker {
    index: Index,
    /// Per owner (circuits, then nodes), download and upload.
    flows: Vec<[Flow; 2]>,
    prev_class: HashMap<(usize, u32), u64>,
    class_at: Option<Instant>,
    /// Slot → circuit position + 1 (0 = no circuit).
    slot_owner: Vec<u32>,
    /// Circuit position → slot.
    circuit_slot: Vec<Option<u32>>,
    table: SlotTable,
    prev_slots: Vec<SlotCounters>,
    slots_at: Option<Instant>,
    /// Cumulative slot counters per circuit position.
    circuit_totals: Vec<SlotCounters>,
    /// RTT and retransmit windows per slot.
    pub qoe: QoeTracker,
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
    /// Indexes a newly applied plan (or none) and its slot table; class numbers start over,
    /// slot counters continue for circuits that kept their slot.
    pub fn set_plan(&mut self, plan: Option<&Plan>, table: &SlotTable) {
        let mut index = Index::default();
        // Slots that changed hands were zeroed in the kernel: forget their history here too.
        let before = self.table.by_slot();
        let after = table.by_slot();
        let changed: Vec<u32> = after
            .iter()
            .filter(|(s, c)| before.get(s) != Some(c))
            .map(|(s, _)| *s)
            .chain(before.keys().filter(|s| !after.contains_key(s)).copied())
            .collect();
        for s in &changed {
            if let Some(p) = self.prev_slots.get_mut(*s as usize) {
                *p = SlotCounters::default();
            }
        }
        self.qoe.reset_slots(&changed);
        self.table = table.clone();
        self.slot_owner = vec![0; table.max_slot() as usize + 1];
        self.circuit_slot = Vec::new();
        self.circuit_totals = Vec::new();
        if let Some(plan) = plan {
            for (i, c) in plan.circuits.iter().enumerate() {
                let slot = table.get(&c.id.0);
                if let Some(s) = slot
                    && let Some(o) = self.slot_owner.get_mut(s as usize)
                {
                    *o = i as u32 + 1;
                }
                self.circuit_slot.push(slot);
            }
            self.circuit_totals = vec![SlotCounters::default(); plan.circuits.len()];
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
                let is_circuit = owner < self.circuit_slot.len();
                if let Some(f) = self.flows.get_mut(owner) {
                    let f = &mut f[dir_index(dir)];
                    // A circuit's traffic numbers come from its slot counters; its class gives
                    // what only the queue knows.
                    if !is_circuit {
                        f.bps = rate(delta, secs);
                        f.bytes = cc.bytes;
                        f.packets = cc.packets;
                    }
                    f.drops = cc.drops;
                    f.backlog = cc.backlog;
                }
            }
        }
        self.total_drops = drops;
    }

    /// The highest slot in use: counters are read for `0..=max_slot()`.
    pub fn max_slot(&self) -> u32 {
        self.table.max_slot()
    }

    /// Feeds the slot counters `0..counters.len()` read at `now`: circuit rates and totals,
    /// the shaper's totals (slot 0 = unshaped), and TCP activity for the QoE windows.
    pub fn update_slots(&mut self, counters: &[SlotCounters], now: Instant) {
        let secs = interval(self.slots_at, now);
        self.slots_at = Some(now);
        let known = self.prev_slots.len();
        let (mut down, mut up, mut sdown, mut sup) = (0u64, 0u64, 0u64, 0u64);
        for (s, c) in counters.iter().enumerate() {
            let delta = match self.prev_slots.get(s) {
                Some(p) if s < known => c.delta(p),
                _ => SlotCounters::default(),
            };
            down = down.wrapping_add(delta.bytes[0]);
            up = up.wrapping_add(delta.bytes[1]);
            if s > 0 {
                sdown = sdown.wrapping_add(delta.bytes[0]);
                sup = sup.wrapping_add(delta.bytes[1]);
                self.qoe.note(s as u32, &delta);
            }
            let owner = self.slot_owner.get(s).copied().unwrap_or(0);
            if owner > 0 {
                let pos = owner as usize - 1;
                if let Some(f) = self.flows.get_mut(pos) {
                    for (d, flow) in f.iter_mut().enumerate() {
                        flow.bps = rate(delta.bytes[d], secs);
                        flow.bytes = c.bytes[d];
                        flow.packets = c.packets[d];
                    }
                }
                if let Some(t) = self.circuit_totals.get_mut(pos) {
                    *t = *c;
                }
            }
        }
        if self.prev_slots.len() < counters.len() {
            self.prev_slots.resize(counters.len(), SlotCounters::default());
        }
        self.prev_slots[..counters.len()].copy_from_slice(counters);
        self.total_bps = (rate(down, secs), rate(up, secs));
        self.shaped_bps = (rate(sdown, secs), rate(sup, secs));
    }

    /// One tick's worth of both sources (tests and callers that read everything).
    pub fn update(
        &mut self,
        classes: &[(String, Vec<ClassCounter>)],
        slots: &[SlotCounters],
        now: Instant,
    ) {
        self.update_classes(classes, now);
        self.update_slots(slots, now);
    }

    /// The QoE answer of circuit position `pos`, `None` when it never saw TCP.
    fn circuit_qoe(
        &self,
        pos: usize,
        long: &HashMap<u32, Window>,
        short: &HashMap<u32, Window>,
    ) -> Option<lqos_bus::Qoe> {
        let slot = self.circuit_slot.get(pos).copied().flatten()?;
        let total = self.circuit_totals.get(pos)?;
        if total.tcp_packets == [0, 0] {
            return None;
        }
        let none = Window::default();
        Some(crate::qoe::answer(
            long.get(&slot).unwrap_or(&none),
            short.get(&slot).unwrap_or(&none),
            total,
            &self.qoe.cumulative(slot),
        ))
    }

    fn owner_flow(&self, pos: usize, dir: Direction) -> Flow {
        self.flows.get(pos).map(|f| f[dir_index(dir)]).unwrap_or_default()
    }

    /// Current rates `[down, up]` (bits/s) of owner `pos`: the plan's circuits in order, then
    /// its nodes.
    pub fn owner_rates(&self, pos: usize) -> [u64; 2] {
        self.flows.get(pos).map(|f| [f[0].bps, f[1].bps]).unwrap_or_default()
    }

    /// Each plan circuit's RTT and TCP counts over the last `window` (by circuit position;
    /// `None` for a circuit without a counter slot; an idle circuit has an empty window).
    pub fn circuit_windows(&self, plan: &Plan, window: Duration) -> Vec<Option<Window>> {
        let all = self.qoe.windows(window, Instant::now());
        (0..plan.circuits.len())
            .map(|i| {
                let slot = self.circuit_slot.get(i).copied().flatten()?;
                Some(all.get(&slot).copied().unwrap_or_default())
            })
            .collect()
    }

    /// The history store's per-circuit numbers, in the plan's circuit order, into `out`
    /// (cleared first): no strings, no plan walk beyond the circuit count.
    pub fn history_rows(&self, plan: &Plan, out: &mut Vec<HistoryRow>) {
        out.clear();
        let short = self.qoe.windows(WINDOW_SHORT, Instant::now());
        for i in 0..plan.circuits.len() {
            let f = self.flows.get(i).copied().unwrap_or_default();
            let total = self.circuit_totals.get(i).copied().unwrap_or_default();
            let rtt = self
                .circuit_slot
                .get(i)
                .copied()
                .flatten()
                .and_then(|s| short.get(&s))
                .map(|w| w.paths())
                .unwrap_or_default();
            out.push(HistoryRow {
                bps: [f[0].bps, f[1].bps],
                retransmits: total.retransmits,
                tcp_packets: total.tcp_packets,
                drops: f[0].drops.wrapping_add(f[1].drops),
                rtt,
            });
        }
    }

    /// Per-circuit numbers for the plan's circuits.
    pub fn circuits(&self, plan: &Plan) -> Vec<CircuitStat> {
        self.circuits_at(plan, None)
    }

    /// The stats of the plan's circuits at positions `only` (in that order; all circuits in
    /// plan order when `None`). Building a [`CircuitStat`] formats its addresses and merges
    /// its RTT windows, so a question about one circuit, or the busiest few, builds only
    /// those: at 10,000 circuits, building all of them for every single-circuit question kept
    /// the apply task busy enough to delay every other answer by seconds under web load.
    pub fn circuits_at(&self, plan: &Plan, only: Option<&[usize]>) -> Vec<CircuitStat> {
        let names: HashMap<&str, &str> =
            plan.nodes.iter().map(|n| (n.key.as_str(), n.name.as_str())).collect();
        let wanted: Option<std::collections::HashSet<&str>> = only.map(|only| {
            only.iter().filter_map(|&i| plan.circuits.get(i)).map(|c| c.id.0.as_str()).collect()
        });
        let mut addrs: HashMap<&str, Vec<String>> = HashMap::new();
        for m in &plan.mappings {
            let id = m.circuit.0.as_str();
            if wanted.as_ref().is_none_or(|w| w.contains(id)) {
                addrs.entry(id).or_default().push(m.net.to_string());
            }
        }
        let now = Instant::now();
        let long = self.qoe.windows(WINDOW_LONG, now);
        let short = self.qoe.windows(WINDOW_SHORT, now);
        let build =
            |i: usize, c: &lqos_plan::PlannedCircuit, addrs: &mut HashMap<&str, Vec<String>>| {
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
                    qoe: self.circuit_qoe(i, &long, &short),
                }
            };
        match only {
            None => {
                plan.circuits.iter().enumerate().map(|(i, c)| build(i, c, &mut addrs)).collect()
            }
            Some(only) => only
                .iter()
                .filter_map(|&i| plan.circuits.get(i).map(|c| build(i, c, &mut addrs)))
                .collect(),
        }
    }

    /// The positions of the `n` busiest circuits (download + upload rate, busiest first; ties
    /// in plan order).
    pub fn busiest(&self, plan: &Plan, n: usize) -> Vec<usize> {
        let mut all: Vec<(usize, u64)> = (0..plan.circuits.len())
            .map(|i| {
                let d = self.owner_flow(i, Direction::Download).bps;
                let u = self.owner_flow(i, Direction::Upload).bps;
                (i, d.saturating_add(u))
            })
            .collect();
        all.sort_by_key(|&(_, bps)| std::cmp::Reverse(bps));
        all.truncate(n);
        all.into_iter().map(|(i, _)| i).collect()
    }

    /// TCP quality per node key: the merged windows and summed totals of every circuit below
    /// it that saw TCP.
    fn node_qoe<'p>(&self, plan: &'p Plan) -> HashMap<&'p str, lqos_bus::Qoe> {
        let now = Instant::now();
        let long = self.qoe.windows(WINDOW_LONG, now);
        let short = self.qoe.windows(WINDOW_SHORT, now);
        let parent: HashMap<&str, Option<&str>> =
            plan.nodes.iter().map(|n| (n.key.as_str(), n.parent.as_deref())).collect();
        let mut acc: HashMap<&str, (Window, Window, SlotCounters, RttHistogram)> = HashMap::new();
        let none = Window::default();
        for (i, c) in plan.circuits.iter().enumerate() {
            let (Some(Some(slot)), Some(total)) =
                (self.circuit_slot.get(i), self.circuit_totals.get(i))
            else {
                continue;
            };
            if total.tcp_packets == [0, 0] {
                continue;
            }
            let (l, s) = (long.get(slot).unwrap_or(&none), short.get(slot).unwrap_or(&none));
            let cumulative = self.qoe.cumulative(*slot);
            let mut node = Some(c.parent.as_str());
            // Bounded by the number of nodes (a malformed cycle cannot loop forever).
            for _ in 0..=plan.nodes.len() {
                let Some(key) = node else { break };
                let e = acc.entry(key).or_default();
                e.0.merge(l);
                e.1.merge(s);
                e.3.merge(&cumulative);
                for d in 0..2 {
                    e.2.retransmits[d] = e.2.retransmits[d].wrapping_add(total.retransmits[d]);
                    e.2.tcp_packets[d] = e.2.tcp_packets[d].wrapping_add(total.tcp_packets[d]);
                }
                node = parent.get(key).copied().flatten();
            }
        }
        acc.into_iter().map(|(k, (l, s, t, h))| (k, crate::qoe::answer(&l, &s, &t, &h))).collect()
    }

    /// Per-node numbers.
    pub fn nodes(&self, plan: &Plan) -> Vec<NodeStat> {
        let names: HashMap<&str, &str> =
            plan.nodes.iter().map(|n| (n.key.as_str(), n.name.as_str())).collect();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for c in &plan.circuits {
            *counts.entry(c.parent.as_str()).or_default() += 1;
        }
        let qoe = self.node_qoe(plan);
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
                    qoe: qoe.get(n.key.as_str()).copied(),
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
        let plan = crate::engine::prepare(&config, FACTS, None).expect("plan").plan;
        let mut t = StatsTracker::default();
        let table =
            SlotTable::default().assign(plan.circuits.iter().map(|c| c.id.0.as_str()), 100).table;
        t.set_plan(Some(&plan), &table);
        let c1 = &plan.circuits[0];
        let iface = plan
            .interfaces
            .iter()
            .find(|i| i.classes.iter().any(|c| c.id == c1.class))
            .map(|i| i.name.clone())
            .expect("interface");
        let t0 = Instant::now();
        let node = plan.nodes.iter().position(|n| n.key == c1.parent).expect("parent node");
        let node_class = plan.nodes[node].class;
        let at = |bytes| {
            vec![(
                iface.clone(),
                vec![ClassCounter {
                    handle: node_class.as_u32(),
                    bytes,
                    drops: 3,
                    ..Default::default()
                }],
            )]
        };
        t.update_classes(&at(0), t0);
        t.update_classes(&at(125_000), t0 + Duration::from_secs(1));
        assert_eq!(t.nodes(&plan)[node].download_bps, 1_000_000);
        // After a long unwatched gap the first sample gives no rate, the next one does.
        let late = t0 + Duration::from_secs(60);
        t.update_classes(&at(10_000_000), late);
        assert_eq!(t.nodes(&plan)[node].download_bps, 0);
        t.update_classes(&at(10_250_000), late + Duration::from_secs(1));
        assert_eq!(t.nodes(&plan)[node].download_bps, 2_000_000);
        assert_eq!(t.nodes(&plan)[node].drops, 3);
        t.set_plan(Some(&plan), &table);
        assert_eq!(t.nodes(&plan)[node].drops, 0);
        t.set_plan(None, &SlotTable::default());
        assert!(t.classes_read_at().is_none());
    }

    #[test]
    fn circuit_numbers_come_from_its_slot_and_tcp_shows_as_qoe_up_the_tree() {
        let (_dir, config) = setup(TWO);
        let plan = crate::engine::prepare(&config, FACTS, None).expect("plan").plan;
        let table =
            SlotTable::default().assign(plan.circuits.iter().map(|c| c.id.0.as_str()), 100).table;
        let mut t = StatsTracker::default();
        t.set_plan(Some(&plan), &table);
        let s1 = table.get(&plan.circuits[0].id.0).expect("slot") as usize;
        let mut k = vec![SlotCounters::default(); table.max_slot() as usize + 1];
        let t0 = Instant::now();
        t.update_slots(&k, t0);
        k[0].bytes = [1_000, 0]; // unshaped
        k[s1].bytes = [250_000, 12_500];
        k[s1].packets = [200, 100];
        k[s1].tcp_packets = [200, 100];
        k[s1].retransmits = [7, 0];
        t.update_slots(&k, t0 + Duration::from_secs(1));
        let c = &t.circuits(&plan)[0];
        assert_eq!((c.download_bps, c.upload_bps), (2_000_000, 100_000));
        assert_eq!((c.download_packets, c.upload_packets), (200, 100));
        assert_eq!(t.total_bps.0, 2_008_000);
        assert_eq!(t.shaped_bps.0, 2_000_000);
        let q = c.qoe.expect("qoe");
        assert_eq!((q.retransmits.down, q.tcp_packets.up), (7, 100));
        assert!(t.circuits(&plan)[1].qoe.is_none(), "a circuit without TCP has no qoe");
        // One circuit, or the busiest, built alone are the same as in the whole list.
        let all = t.circuits(&plan);
        for (i, c) in all.iter().enumerate() {
            assert_eq!(t.circuits_at(&plan, Some(&[i])), vec![c.clone()], "circuit {i}");
        }
        assert_eq!(t.busiest(&plan, 1), vec![0], "the circuit with traffic is the busiest");
        assert_eq!(t.busiest(&plan, 10), vec![0, 1], "then the rest in plan order");
        assert_eq!(t.circuits_at(&plan, Some(&[1, 0])), vec![all[1].clone(), all[0].clone()]);
        // The circuit's parent node and every ancestor carry its totals.
        let nodes = t.nodes(&plan);
        let parent =
            plan.nodes.iter().position(|n| n.key == plan.circuits[0].parent).expect("node");
        assert_eq!(nodes[parent].qoe.expect("node qoe").retransmits.down, 7);
        if let Some(gp) = plan.nodes[parent].parent.as_deref() {
            let gp = plan.nodes.iter().position(|n| n.key == gp).expect("grandparent");
            assert_eq!(nodes[gp].qoe.expect("ancestor qoe").tcp_packets.down, 200);
        }
    }
}
