//! `plan()`: inputs → [`Plan`]. See the crate docs for the rules; each step below says which.

use std::collections::{BTreeMap, HashSet};

use lqos_config::{
    Circuit, Config, InterfaceMode, MAX_RATE_KBIT, Network, ParentIndex, ParentLookup, QueueMode,
    RateKbit,
};

use crate::error::PlanError;
use crate::hash::{circuit_hash, device_hash};
use crate::model::*;
use crate::rates::{MIN_RATE_KBIT, mbps_text, quantum, r2q, share};
use crate::sqm::leaf_for_override;

/// Everything [`plan`] reads. Pure data; the caller gathers it.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// Validated lqos.conf.
    pub config: &'a Config,
    /// Validated network.json (`nodes` empty = flat).
    pub network: &'a Network,
    /// Validated circuits.
    pub circuits: &'a [Circuit],
    /// Queue and CPU counts.
    pub facts: HostFacts,
    /// Identities persisted from the last applied plan (empty on first run).
    pub previous: &'a Identities,
}

/// Most network levels that become classes: `k:1` + 6 node levels + the circuit = 8 HTB levels.
pub const MAX_NODE_DEPTH: usize = 6;
/// Upper bound on queues per direction (the data plane's CPU map holds 1024 CPUs).
pub const MAX_QUEUES: u32 = 1024;
/// Hysteresis for bin-packing: a top-level node is moved only while the heaviest queue carries
/// more than `(1 + 1/HYSTERESIS_DIV)` × the mean load (25 % above the mean).
pub const HYSTERESIS_DIV: u64 = 4;
/// First leaf qdisc handle handed out.
pub const FIRST_LEAF_HANDLE: u16 = 0x100;
/// Base of the default classes' leaf handles (`0x8000 + major`).
pub const DEFAULT_LEAF_BASE: u16 = 0x8000;

/// The identity key of the k-th generated parent.
pub fn generated_pn_key(k: u16) -> String {
    format!("libreqos:generated:pn:{k}")
}

/// Queues per direction and the stick offset.
///
/// Rule: `tx = override_available_queues` when set and > 0, else the smaller TX-queue count of
/// the two interfaces; `q = min(tx, cpus)` (the override is still capped by the CPUs, because
/// queue k is served by CPU k-1); on a stick `N = q / 2` and `stick_offset = N`, on a bridge
/// `N = q`, offset 0. N is capped at [`MAX_QUEUES`]. N < 1 is an error.
pub fn queue_count(
    mode: &InterfaceMode,
    config: &Config,
    facts: HostFacts,
) -> Result<(u16, u16), PlanError> {
    let tx = match config.queues.override_available_queues {
        Some(n) if n > 0 => n,
        _ => facts.download_tx_queues.min(facts.upload_tx_queues),
    };
    let q = tx.min(facts.cpus);
    let stick = mode.is_stick();
    let n = if stick { q / 2 } else { q }.min(MAX_QUEUES);
    if n < 1 {
        return Err(PlanError::TooFewQueues { queues: n, tx_queues: tx, cpus: facts.cpus, stick });
    }
    let n = n as u16; // ≤ 1024
    Ok((n, if stick { n } else { 0 }))
}

/// A class-bearing node of the effective tree (virtual and too-deep nodes removed).
struct TNode {
    key: String,
    name: String,
    parent: Option<usize>,
    children: Vec<usize>,
    circuits: Vec<usize>,
    generated: bool,
    down_decl: Option<RateKbit>,
    up_decl: Option<RateKbit>,
    down_min: Option<RateKbit>,
    up_min: Option<RateKbit>,
    weight: u64,
    queue: u16,
    minor: u16,
    down: Rates,
    up: Rates,
}

#[derive(Clone, Copy, Default)]
struct Rates {
    rate: u64,
    ceil: u64,
}

/// Per-circuit working state.
struct CState {
    parent: usize,
    minor: u16,
    down: Rates,
    up: Rates,
}

/// Every rate the planner reads is capped at [`MAX_RATE_KBIT`] (1 Tbit/s), so sums over a
/// whole network stay far below `u64::MAX` and no input can make the arithmetic wrap.
fn cap(r: RateKbit) -> u64 {
    r.0.min(MAX_RATE_KBIT)
}

fn warn(w: &mut Vec<PlanWarning>, owner: Owner, message: String) {
    w.push(PlanWarning { owner, message });
}

/// Builds the [`Plan`]. Pure and deterministic: the same input gives the same plan.
///
/// The rules (also in the crate docs):
/// 1. Queues: [`queue_count`].
/// 2. Tree: virtual nodes are not classes; their children and circuits go to the nearest real
///    ancestor (top level when there is none). Nodes deeper than [`MAX_NODE_DEPTH`] are merged
///    into their deepest allowed ancestor (warning). `Generated_PN_1..N` always exist, PN k on
///    queue k. Unparented circuits (all circuits in a flat network, and circuits whose parent is
///    a top-level virtual node) go under a generated PN; circuits naming an unknown parent stay
///    unshaped (warning).
/// 3. Queues for top-level nodes and unparented circuits: an object whose previous identity
///    names a queue that still exists keeps it. New objects go to the least-loaded queue
///    (ties: lowest queue) — load is the number of top-level nodes (resp. unparented circuits
///    per PN) in round-robin mode, visiting new objects in file/input order (which gives plain
///    round-robin on a first run), and the weight (sum of download max of the circuits beneath)
///    with `use_binpacking`, visiting new objects heaviest first. With bin-packing, after that,
///    while the heaviest queue is more than 25 % above the mean, the top-level node whose move
///    to the lightest queue best evens the pair is moved (only moves that strictly reduce the
///    pair's spread; at most `max(1, nodes/100)` moves per run of nodes that kept their queue
///    from the last plan, any number of nodes placed by this run, so that planning the same
///    inputs again moves nothing).
/// 4. Minors: an object whose previous identity has the same queue keeps its minor; the rest
///    take the lowest free minor ≥ 3 on their queue (nodes in tree order, then circuits in input
///    order). Leaf handles likewise per interface, from 0x100 up, never a major, 0x7FFF, or a
///    default-class leaf handle (`0x8000 + major`).
/// 5. Rates per direction (every input rate first capped at [`MAX_RATE_KBIT`], 1 Tbit/s; all
///    sums saturate): a node's ceil is its declared rate (missing: the parent's ceil),
///    clamped to the parent's ceil; generated PNs use `generated_pn_*` (0: link). A circuit's
///    ceil is its max clamped to the parent's ceil (warning). A circuit needs its min (≤ its
///    ceil); a node needs its explicit `*Min` (≤ ceil), else the sum of what its children and
///    circuits need, capped by its ceil (so an empty node needs only the 10 kbit floor). Every
///    parent (queue class `k:1` with rate = link) shares its rate among its children by their
///    needs with [`share`]. All rates and ceils are ≥ 10 kbit and rate ≤ ceil. Scaled explicit
///    minimums warn.
pub fn plan(input: &PlanInput<'_>) -> Result<Plan, PlanError> {
    let config = input.config;
    let q = &config.queues;
    let mode = config.interfaces.as_ref().ok_or(PlanError::NoInterfaces)?;
    let (n, offset) = queue_count(mode, config, input.facts)?;
    let down_if = mode.download_interface().0.clone();
    let up_if = mode.upload_interface().0.clone();
    let if_names: Vec<String> =
        if mode.is_stick() { vec![down_if.clone()] } else { vec![down_if.clone(), up_if.clone()] };

    if q.queue_mode == QueueMode::Observe {
        return Ok(Plan {
            queues: n,
            stick_offset: offset,
            observe_only: true,
            interfaces: if_names
                .into_iter()
                .map(|name| InterfacePlan {
                    name,
                    htbs: Vec::new(),
                    classes: Vec::new(),
                    leaves: Vec::new(),
                })
                .collect(),
            mappings: Vec::new(),
            nodes: Vec::new(),
            circuits: Vec::new(),
            // Keep the identities so that going back to shaping renumbers nothing.
            identities: input.previous.clone(),
            warnings: Vec::new(),
        });
    }
    let downlink = RateKbit(cap(q.downlink));
    let uplink = RateKbit(cap(q.uplink));
    for (direction, link) in [(Direction::Download, downlink), (Direction::Upload, uplink)] {
        if link.0 < MIN_RATE_KBIT {
            return Err(PlanError::CapacityTooLow { direction, kbit: link.0, min: MIN_RATE_KBIT });
        }
    }
    let mut warnings = Vec::new();

    // ---- 2. the effective tree ------------------------------------------------------------
    let mut tree: Vec<TNode> = Vec::with_capacity(input.network.nodes.len() + usize::from(n));
    let gen_rate = |r: RateKbit, link: RateKbit| if r.0 == 0 { link } else { RateKbit(cap(r)) };
    for k in 1..=n {
        tree.push(TNode {
            key: generated_pn_key(k),
            name: format!("Generated_PN_{k}"),
            parent: None,
            children: Vec::new(),
            circuits: Vec::new(),
            generated: true,
            down_decl: Some(gen_rate(q.generated_pn_download, downlink)),
            up_decl: Some(gen_rate(q.generated_pn_upload, uplink)),
            down_min: None,
            up_min: None,
            weight: 0,
            queue: k,
            minor: 0,
            down: Rates::default(),
            up: Rates::default(),
        });
    }
    // attach[src] = tree index that a circuit naming src (or a child of src) hangs under.
    let net = input.network;
    let mut attach: Vec<Option<usize>> = vec![None; net.nodes.len()];
    let mut depth: Vec<usize> = vec![0; net.nodes.len() + usize::from(n)];
    let mut seen_keys: HashSet<String> = tree.iter().map(|t| t.key.clone()).collect();
    // Depth-first from the roots with an explicit stack: (src index, attach point of parent).
    let mut stack: Vec<(usize, Option<usize>)> =
        net.roots.iter().rev().map(|r| (*r, None)).collect();
    let mut visited = vec![false; net.nodes.len()];
    while let Some((src, up)) = stack.pop() {
        let Some(node) = net.nodes.get(src) else { continue };
        if std::mem::replace(&mut visited[src], true) {
            continue; // malformed arena (cycle or shared child): visit once
        }
        let parent_depth = up.map_or(0, |u| depth.get(u).copied().unwrap_or(0));
        let here = if node.is_virtual {
            up
        } else if parent_depth >= MAX_NODE_DEPTH {
            let key = node.id.clone().unwrap_or_else(|| net.path(src));
            warn(
                &mut warnings,
                Owner::Node(key),
                format!(
                    "node {:?} is deeper than {MAX_NODE_DEPTH} levels; merged into its ancestor",
                    node.name
                ),
            );
            up
        } else {
            let key = node.id.clone().unwrap_or_else(|| net.path(src));
            if !seen_keys.insert(key.clone()) {
                return Err(PlanError::DuplicateNodeKey { key });
            }
            let idx = tree.len();
            tree.push(TNode {
                key,
                name: node.name.clone(),
                parent: up,
                children: Vec::new(),
                circuits: Vec::new(),
                generated: false,
                down_decl: node.download.filter(|r| r.0 > 0).map(|r| RateKbit(cap(r))),
                up_decl: node.upload.filter(|r| r.0 > 0).map(|r| RateKbit(cap(r))),
                down_min: node.download_min.map(|r| RateKbit(cap(r))),
                up_min: node.upload_min.map(|r| RateKbit(cap(r))),
                weight: 0,
                queue: 0,
                minor: 0,
                down: Rates::default(),
                up: Rates::default(),
            });
            if let Some(p) = up
                && let Some(pn) = tree.get_mut(p)
            {
                pn.children.push(idx);
            }
            depth[idx] = parent_depth + 1;
            Some(idx)
        };
        attach[src] = here;
        for c in node.children.iter().rev() {
            stack.push((*c, here));
        }
    }
    let top_real: Vec<usize> =
        (usize::from(n)..tree.len()).filter(|i| tree[*i].parent.is_none()).collect();

    // Circuit parents: Parent Node ID by `id`; Parent Node by key, `name` or attachment name.
    let parents = ParentIndex::new(net);
    // None = unparented (generated PN), Some(Some(t)) = under t, Some(None) = unattached.
    let mut cparent: Vec<Option<Option<usize>>> = Vec::with_capacity(input.circuits.len());
    let mut seen_circuits: HashSet<&str> = HashSet::with_capacity(input.circuits.len());
    for c in input.circuits {
        if !seen_circuits.insert(c.id.0.as_str()) {
            warn(
                &mut warnings,
                Owner::Circuit(c.id.clone()),
                "duplicate circuit id; later copy ignored".into(),
            );
            cparent.push(Some(None));
            continue;
        }
        let r = if net.is_flat() {
            None
        } else {
            match parents.resolve(c) {
                ParentLookup::Node(s) => attach.get(s).copied().flatten().map(Some),
                ParentLookup::Unparented => None,
                ParentLookup::Unknown => {
                    warn(
                        &mut warnings,
                        Owner::Circuit(c.id.clone()),
                        format!(
                            "parent {:?} not found in network.json; circuit left unshaped",
                            c.parent_node_id
                                .as_deref()
                                .or(c.parent_node.as_deref())
                                .unwrap_or_default()
                        ),
                    );
                    Some(None)
                }
            }
        };
        cparent.push(r);
    }

    // Weights: sum of circuit download max beneath.
    for (i, c) in input.circuits.iter().enumerate() {
        if let Some(Some(t)) = cparent[i] {
            tree[t].weight = tree[t].weight.saturating_add(cap(c.download_max).max(1));
        }
    }
    for t in (0..tree.len()).rev() {
        if let Some(p) = tree[t].parent {
            let w = tree[t].weight;
            tree[p].weight = tree[p].weight.saturating_add(w);
        }
    }

    // ---- 3. queues ---------------------------------------------------------------------------
    let nq = usize::from(n);
    let prev = input.previous;
    let valid_q = |qq: u16| (1..=n).contains(&qq);
    let binpack = q.use_binpacking;
    let mut loads = vec![0u64; nq]; // weight per queue (binpacking)
    let mut counts = vec![0u64; nq]; // top-level nodes per queue (round-robin)
    for t in &tree[..nq] {
        let l = &mut loads[usize::from(t.queue) - 1];
        *l = l.saturating_add(t.weight);
    }
    let argmin =
        |v: &[u64]| v.iter().enumerate().min_by_key(|(i, x)| (**x, *i)).map_or(0, |(i, _)| i);
    let mut new_top = Vec::new();
    for &t in &top_real {
        match prev.nodes.get(&tree[t].key) {
            Some(id) if valid_q(id.queue) => {
                tree[t].queue = id.queue;
                let k = usize::from(id.queue) - 1;
                loads[k] = loads[k].saturating_add(tree[t].weight);
                counts[k] += 1;
            }
            _ => new_top.push(t),
        }
    }
    // Unparented circuits: which keep their queue.
    let mut cqueue: Vec<u16> = vec![0; input.circuits.len()];
    let mut gen_counts = vec![0u64; nq];
    let mut new_unparented = Vec::new();
    for (i, c) in input.circuits.iter().enumerate() {
        if cparent[i].is_none() {
            match prev.circuits.get(&c.id.0) {
                Some(id) if valid_q(id.queue) => {
                    cqueue[i] = id.queue;
                    let k = usize::from(id.queue) - 1;
                    loads[k] = loads[k].saturating_add(cap(c.download_max).max(1));
                    gen_counts[k] += 1;
                }
                _ => new_unparented.push(i),
            }
        }
    }
    if binpack {
        new_top.sort_by(|a, b| {
            tree[*b].weight.cmp(&tree[*a].weight).then_with(|| tree[*a].key.cmp(&tree[*b].key))
        });
    }
    for &t in &new_top {
        let k = if binpack { argmin(&loads) } else { argmin(&counts) };
        tree[t].queue = k as u16 + 1;
        loads[k] = loads[k].saturating_add(tree[t].weight);
        counts[k] += 1;
    }
    if binpack {
        new_unparented.sort_by(|a, b| {
            let (ca, cb) = (&input.circuits[*a], &input.circuits[*b]);
            cb.download_max.cmp(&ca.download_max).then_with(|| ca.id.cmp(&cb.id))
        });
    }
    for &i in &new_unparented {
        let k = if binpack { argmin(&loads) } else { argmin(&gen_counts) };
        cqueue[i] = k as u16 + 1;
        loads[k] = loads[k].saturating_add(cap(input.circuits[i].download_max).max(1));
        gen_counts[k] += 1;
    }
    if binpack && nq > 1 {
        rebalance(&mut tree, &top_real, &new_top, &mut loads);
    }
    // Propagate queues down (parents come before children in `tree`).
    for t in nq..tree.len() {
        if let Some(p) = tree[t].parent {
            tree[t].queue = tree[p].queue;
        }
    }
    let mut cstate: Vec<Option<CState>> = Vec::with_capacity(input.circuits.len());
    for (i, _) in input.circuits.iter().enumerate() {
        let parent = match cparent[i] {
            None => Some(usize::from(cqueue[i]) - 1), // generated PN k is tree[k-1]
            Some(Some(t)) => Some(t),
            Some(None) => None,
        };
        cstate.push(parent.map(|p| {
            tree[p].circuits.push(i);
            CState { parent: p, minor: 0, down: Rates::default(), up: Rates::default() }
        }));
    }

    // ---- 4. minors ---------------------------------------------------------------------------
    let mut alloc = MinorAlloc::new(nq);
    let mut per_queue = vec![0usize; nq];
    for t in &tree {
        per_queue[usize::from(t.queue) - 1] += 1;
    }
    for s in cstate.iter().flatten() {
        per_queue[usize::from(tree[s.parent].queue) - 1] += 1;
    }
    for (k, count) in per_queue.iter().enumerate() {
        if *count > MinorAlloc::CAPACITY {
            return Err(PlanError::MinorOverflow {
                queue: k as u16 + 1,
                count: *count,
                max: MinorAlloc::CAPACITY,
            });
        }
    }
    for t in tree.iter_mut() {
        if let Some(id) = prev.nodes.get(&t.key)
            && id.queue == t.queue
            && alloc.claim(t.queue, id.minor)
        {
            t.minor = id.minor;
        }
    }
    for (i, c) in input.circuits.iter().enumerate() {
        if let Some(s) = cstate[i].as_mut() {
            let qq = tree[s.parent].queue;
            if let Some(id) = prev.circuits.get(&c.id.0)
                && id.queue == qq
                && alloc.claim(qq, id.minor)
            {
                s.minor = id.minor;
            }
        }
    }
    for t in tree.iter_mut() {
        if t.minor == 0 {
            t.minor = alloc.next(t.queue).ok_or(PlanError::MinorOverflow {
                queue: t.queue,
                count: per_queue[usize::from(t.queue) - 1],
                max: MinorAlloc::CAPACITY,
            })?;
        }
    }
    for s in cstate.iter_mut().flatten() {
        if s.minor == 0 {
            let qq = tree[s.parent].queue;
            s.minor = alloc.next(qq).ok_or(PlanError::MinorOverflow {
                queue: qq,
                count: per_queue[usize::from(qq) - 1],
                max: MinorAlloc::CAPACITY,
            })?;
        }
    }

    // ---- 5. rates ------------------------------------------------------------------------------
    for dir in [Direction::Download, Direction::Upload] {
        let link = match dir {
            Direction::Download => downlink.0,
            Direction::Upload => uplink.0,
        };
        // Ceils, parents first.
        for t in 0..tree.len() {
            let parent_ceil = tree[t].parent.map_or(link, |p| pick(&tree[p], dir).ceil);
            let decl = match dir {
                Direction::Download => tree[t].down_decl,
                Direction::Upload => tree[t].up_decl,
            };
            let want = decl.map_or(parent_ceil, |r| r.0);
            if want > parent_ceil {
                warn(
                    &mut warnings,
                    Owner::Node(tree[t].key.clone()),
                    format!(
                        "{dir:?} rate {} exceeds its parent's ceil {}; capped",
                        mbps_text(want),
                        mbps_text(parent_ceil)
                    ),
                );
            }
            pick_mut(&mut tree[t], dir).ceil = want.clamp(MIN_RATE_KBIT, parent_ceil);
        }
        for (i, c) in input.circuits.iter().enumerate() {
            let Some(s) = cstate[i].as_mut() else { continue };
            let parent_ceil = pick(&tree[s.parent], dir).ceil;
            let max = match dir {
                Direction::Download => cap(c.download_max),
                Direction::Upload => cap(c.upload_max),
            };
            if max > parent_ceil {
                warn(
                    &mut warnings,
                    Owner::Circuit(c.id.clone()),
                    format!(
                        "{dir:?} max {} exceeds parent {:?}'s ceil {}; capped",
                        mbps_text(max),
                        tree[s.parent].name,
                        mbps_text(parent_ceil)
                    ),
                );
            }
            match dir {
                Direction::Download => s.down.ceil = max.clamp(MIN_RATE_KBIT, parent_ceil),
                Direction::Upload => s.up.ceil = max.clamp(MIN_RATE_KBIT, parent_ceil),
            }
        }
        // Rates: each parent shares its rate among its children.
        // What each circuit needs guaranteed: its min (≤ its ceil, ≥ 10 kbit).
        let cneed: Vec<u64> = input
            .circuits
            .iter()
            .zip(&cstate)
            .map(|(c, s)| {
                match (dir, s.as_ref()) {
                    (Direction::Download, Some(s)) => cap(c.download_min).min(s.down.ceil),
                    (Direction::Upload, Some(s)) => cap(c.upload_min).min(s.up.ceil),
                    (_, None) => 0,
                }
                .max(MIN_RATE_KBIT)
            })
            .collect();
        let circuit_need = |i: usize| -> u64 { cneed.get(i).copied().unwrap_or(0) };
        // What each node needs guaranteed, children before parents: its explicit `*Min`
        // (≤ ceil), else what its children need (Σ of their needs), capped by its ceiling.
        // So an empty generated PN needs 10 kbit, not its ceiling, and circuits next to
        // child nodes keep their minimums when they fit.
        let mut need = vec![0u64; tree.len()];
        for t in (0..tree.len()).rev() {
            let ceil = pick(&tree[t], dir).ceil;
            let explicit = match dir {
                Direction::Download => tree[t].down_min,
                Direction::Upload => tree[t].up_min,
            };
            need[t] = match explicit {
                Some(m) => m.0.min(ceil),
                None => {
                    let children =
                        tree[t].children.iter().fold(0u64, |a, c| a.saturating_add(need[*c]));
                    let circuits = tree[t]
                        .circuits
                        .iter()
                        .fold(0u64, |a, i| a.saturating_add(circuit_need(*i)));
                    children.saturating_add(circuits).min(ceil)
                }
            }
            .max(MIN_RATE_KBIT);
        }
        let explicit: Vec<bool> = tree
            .iter()
            .map(|t| match dir {
                Direction::Download => t.down_min.is_some(),
                Direction::Upload => t.up_min.is_some(),
            })
            .collect();
        let node_desire = |t: usize| -> (u64, bool) { (need[t], explicit[t]) };
        let mut top_per_queue: Vec<Vec<usize>> = vec![Vec::new(); nq];
        for t in 0..tree.len() {
            if tree[t].parent.is_none() {
                top_per_queue[usize::from(tree[t].queue) - 1].push(t);
            }
        }
        for tops in &top_per_queue {
            let desires: Vec<u64> = tops.iter().map(|t| node_desire(*t).0).collect();
            let (rates, scaled) = share(link, &desires);
            for (t, r) in tops.iter().zip(rates) {
                let (_, explicit) = node_desire(*t);
                if scaled && explicit {
                    warn(
                        &mut warnings,
                        Owner::Node(tree[*t].key.clone()),
                        format!(
                            "{dir:?} minimum scaled down: siblings' minimums exceed the queue capacity"
                        ),
                    );
                }
                let x = pick_mut(&mut tree[*t], dir);
                x.rate = r.min(x.ceil);
            }
        }
        for p in 0..tree.len() {
            let budget = pick(&tree[p], dir).rate;
            let children = tree[p].children.clone();
            let circuits = tree[p].circuits.clone();
            let mut desires: Vec<u64> = children.iter().map(|t| node_desire(*t).0).collect();
            let mut csum = 0u64;
            for i in &circuits {
                let d = circuit_need(*i);
                csum = csum.saturating_add(d);
                desires.push(d);
            }
            let (rates, scaled) = share(budget, &desires);
            if scaled && csum > 0 {
                warn(
                    &mut warnings,
                    Owner::Node(tree[p].key.clone()),
                    format!(
                        "{dir:?}: sum of guaranteed rates beneath ({}, circuits {}) exceeds the node's rate {}; scaled down proportionally",
                        mbps_text(desires.iter().fold(0u64, |a, d| a.saturating_add(*d))),
                        mbps_text(csum),
                        mbps_text(budget)
                    ),
                );
            }
            for (j, r) in rates.into_iter().enumerate() {
                if let Some(t) = children.get(j) {
                    let x = pick_mut(&mut tree[*t], dir);
                    x.rate = r.min(x.ceil);
                } else if let Some(i) = circuits.get(j - children.len())
                    && let Some(s) = cstate[*i].as_mut()
                {
                    let x = match dir {
                        Direction::Download => &mut s.down,
                        Direction::Upload => &mut s.up,
                    };
                    x.rate = r.min(x.ceil);
                }
            }
        }
    }

    // ---- 6. classes, leaves, mappings ---------------------------------------------------------
    let r2q_down = r2q(downlink);
    let r2q_up = r2q(uplink);
    let mut ifaces: Vec<InterfacePlan> = if_names
        .iter()
        .map(|name| InterfacePlan {
            name: name.clone(),
            htbs: Vec::new(),
            classes: Vec::new(),
            leaves: Vec::new(),
        })
        .collect();
    let if_of = |dir: Direction| if mode.is_stick() || dir == Direction::Download { 0 } else { 1 };
    let major_of =
        |queue: u16, dir: Direction| if dir == Direction::Upload { queue + offset } else { queue };
    // Leaf handles.
    let reserved = |h: u16| {
        h < FIRST_LEAF_HANDLE
            || h == MQ_MAJOR
            || h == 0xFFFF
            || h <= 2 * n
            || (DEFAULT_LEAF_BASE..=DEFAULT_LEAF_BASE + 2 * n).contains(&h)
    };
    let mut leaf_alloc: Vec<HandleAlloc> = ifaces.iter().map(|_| HandleAlloc::new()).collect();
    // Per circuit: chosen leaves.
    let mut cleaf: Vec<[Option<(lqos_config::LeafQdisc, u16)>; 2]> =
        Vec::with_capacity(input.circuits.len());
    let mut leaf_want = vec![0usize; ifaces.len()];
    let mut leaf_tmp: Vec<[Option<lqos_config::LeafQdisc>; 2]> =
        Vec::with_capacity(input.circuits.len());
    for (i, c) in input.circuits.iter().enumerate() {
        let Some(s) = cstate[i].as_ref() else {
            leaf_tmp.push([None, None]);
            continue;
        };
        let (ov_down, ov_up) = match &c.sqm {
            Some(o) => ((o.down, o.down_leaf.as_ref()), (o.up, o.up_leaf.as_ref())),
            None => ((None, None), (None, None)),
        };
        let down = leaf_for_override(q, ov_down, RateKbit(s.down.ceil));
        let up = leaf_for_override(q, ov_up, RateKbit(s.up.ceil));
        leaf_want[if_of(Direction::Download)] += usize::from(down.is_some());
        leaf_want[if_of(Direction::Upload)] += usize::from(up.is_some());
        leaf_tmp.push([down, up]);
    }
    let capacity = (u32::from(u16::MAX) + 1 - u32::from(FIRST_LEAF_HANDLE)) as usize;
    for (ix, want) in leaf_want.iter().enumerate() {
        let avail = capacity.saturating_sub(2 + 4 * nq);
        if *want > avail {
            return Err(PlanError::LeafHandleOverflow {
                interface: ifaces[ix].name.clone(),
                count: *want,
                max: avail,
            });
        }
    }
    // Keep previous handles first, then allocate.
    for (i, c) in input.circuits.iter().enumerate() {
        let pid = prev.circuits.get(&c.id.0);
        let mut out: [Option<(lqos_config::LeafQdisc, u16)>; 2] = [None, None];
        for (d, dir) in [Direction::Download, Direction::Upload].into_iter().enumerate() {
            if let Some(leaf) = leaf_tmp[i][d].take() {
                let old = pid.and_then(|p| if d == 0 { p.down_leaf } else { p.up_leaf });
                let h =
                    old.filter(|h| !reserved(*h) && leaf_alloc[if_of(dir)].claim(*h)).unwrap_or(0);
                out[d] = Some((leaf, h));
            }
        }
        cleaf.push(out);
    }
    for out in cleaf.iter_mut() {
        for (d, dir) in [Direction::Download, Direction::Upload].into_iter().enumerate() {
            if let Some((_, h)) = out[d].as_mut()
                && *h == 0
            {
                *h = leaf_alloc[if_of(dir)].next(&reserved).ok_or_else(|| {
                    PlanError::LeafHandleOverflow {
                        interface: ifaces[if_of(dir)].name.clone(),
                        count: leaf_want[if_of(dir)],
                        max: capacity,
                    }
                })?;
            }
        }
    }

    for dir in [Direction::Download, Direction::Upload] {
        let ix = if_of(dir);
        let link = match dir {
            Direction::Download => downlink,
            Direction::Upload => uplink,
        };
        let rq = if dir == Direction::Download { r2q_down } else { r2q_up };
        let iface = &mut ifaces[ix];
        for k in 1..=n {
            let major = major_of(k, dir);
            iface.htbs.push(HtbQdisc {
                mq_slot: major,
                major,
                default_minor: QUEUE_DEFAULT_MINOR,
                r2q: rq,
            });
            iface.classes.push(HtbClass {
                id: ClassId::new(major, QUEUE_ROOT_MINOR),
                parent: ClassParent::Qdisc(major),
                rate: link,
                ceil: link,
                prio: 0,
                quantum: quantum(link, rq),
                owner: Owner::QueueRoot(k),
                direction: dir,
            });
            iface.classes.push(HtbClass {
                id: ClassId::new(major, QUEUE_DEFAULT_MINOR),
                parent: ClassParent::Class(ClassId::new(major, QUEUE_ROOT_MINOR)),
                rate: RateKbit((link.0 / 4).max(MIN_RATE_KBIT)),
                ceil: link,
                prio: 5,
                quantum: quantum(link, rq),
                owner: Owner::QueueDefault(k),
                direction: dir,
            });
            if let Some(leaf) = &q.default_sqm.leaf {
                iface.leaves.push(LeafPlan {
                    parent: ClassId::new(major, QUEUE_DEFAULT_MINOR),
                    handle: DEFAULT_LEAF_BASE + major,
                    qdisc: leaf.clone(),
                    owner: Owner::QueueDefault(k),
                });
            }
        }
        for t in &tree {
            let major = major_of(t.queue, dir);
            let parent = match t.parent {
                Some(p) => ClassId::new(major, tree[p].minor),
                None => ClassId::new(major, QUEUE_ROOT_MINOR),
            };
            let r = pick(t, dir);
            iface.classes.push(HtbClass {
                id: ClassId::new(major, t.minor),
                parent: ClassParent::Class(parent),
                rate: RateKbit(r.rate),
                ceil: RateKbit(r.ceil),
                prio: 3,
                quantum: quantum(RateKbit(r.ceil), rq),
                owner: Owner::Node(t.key.clone()),
                direction: dir,
            });
        }
        for (i, c) in input.circuits.iter().enumerate() {
            let Some(s) = cstate[i].as_ref() else { continue };
            let p = &tree[s.parent];
            let major = major_of(p.queue, dir);
            let r = if dir == Direction::Download { s.down } else { s.up };
            let id = ClassId::new(major, s.minor);
            iface.classes.push(HtbClass {
                id,
                parent: ClassParent::Class(ClassId::new(major, p.minor)),
                rate: RateKbit(r.rate),
                ceil: RateKbit(r.ceil),
                prio: 3,
                quantum: quantum(RateKbit(r.ceil), rq),
                owner: Owner::Circuit(c.id.clone()),
                direction: dir,
            });
            let d = usize::from(dir == Direction::Upload);
            if let Some((leaf, h)) = &cleaf[i][d] {
                iface.leaves.push(LeafPlan {
                    parent: id,
                    handle: *h,
                    qdisc: leaf.clone(),
                    owner: Owner::Circuit(c.id.clone()),
                });
            }
        }
    }

    // Mappings: first circuit (input order) wins a duplicated address.
    let mut map: BTreeMap<ipnet::IpNet, IpMapping> = BTreeMap::new();
    for (i, c) in input.circuits.iter().enumerate() {
        let Some(s) = cstate[i].as_ref() else { continue };
        let queue = tree[s.parent].queue;
        let ch = circuit_hash(&c.id.0);
        for (net_, dev) in c.networks() {
            let net_ = net_.trunc();
            if let Some(other) = map.get(&net_) {
                if other.circuit != c.id {
                    warn(
                        &mut warnings,
                        Owner::Circuit(c.id.clone()),
                        format!(
                            "address {net_} already belongs to circuit {:?}; ignored here",
                            other.circuit.0
                        ),
                    );
                }
                continue;
            }
            map.insert(
                net_,
                IpMapping {
                    net: net_,
                    cpu: u32::from(queue) - 1,
                    class: ClassId::new(queue, s.minor),
                    circuit: c.id.clone(),
                    circuit_hash: ch,
                    device_hash: device_hash(&dev.id),
                },
            );
        }
    }
    let mut mappings: Vec<IpMapping> = map.into_values().collect();
    mappings.sort();

    // Identities, nodes, circuits.
    let mut identities = Identities::default();
    let mut nodes = Vec::with_capacity(tree.len());
    for t in &tree {
        identities.nodes.insert(
            t.key.clone(),
            Identity { queue: t.queue, minor: t.minor, down_leaf: None, up_leaf: None },
        );
        nodes.push(PlannedNode {
            key: t.key.clone(),
            name: t.name.clone(),
            parent: t.parent.map(|p| tree[p].key.clone()),
            queue: t.queue,
            class: ClassId::new(t.queue, t.minor),
            download: RateKbit(t.down.ceil),
            upload: RateKbit(t.up.ceil),
            generated: t.generated,
        });
    }
    let mut circuits = Vec::new();
    for (i, c) in input.circuits.iter().enumerate() {
        let Some(s) = cstate[i].as_ref() else { continue };
        let p = &tree[s.parent];
        identities.circuits.insert(
            c.id.0.clone(),
            Identity {
                queue: p.queue,
                minor: s.minor,
                down_leaf: cleaf[i][0].as_ref().map(|x| x.1),
                up_leaf: cleaf[i][1].as_ref().map(|x| x.1),
            },
        );
        circuits.push(PlannedCircuit {
            id: c.id.clone(),
            name: c.name.clone(),
            parent: p.key.clone(),
            queue: p.queue,
            class: ClassId::new(p.queue, s.minor),
            up_class: ClassId::new(p.queue + offset, s.minor),
            download_min: RateKbit(s.down.rate),
            download_max: RateKbit(s.down.ceil),
            upload_min: RateKbit(s.up.rate),
            upload_max: RateKbit(s.up.ceil),
        });
    }

    Ok(Plan {
        queues: n,
        stick_offset: offset,
        observe_only: false,
        interfaces: ifaces,
        mappings,
        nodes,
        circuits,
        identities,
        warnings,
    })
}

fn pick(t: &TNode, dir: Direction) -> Rates {
    match dir {
        Direction::Download => t.down,
        Direction::Upload => t.up,
    }
}

fn pick_mut(t: &mut TNode, dir: Direction) -> &mut Rates {
    match dir {
        Direction::Download => &mut t.down,
        Direction::Upload => &mut t.up,
    }
}

/// Bin-packing hysteresis (see [`plan`] rule 3).
fn rebalance(tree: &mut [TNode], top_real: &[usize], new_top: &[usize], loads: &mut [u64]) {
    let nq = loads.len() as u64;
    // Moving a node that kept its queue from the last plan rebuilds its classes: at most
    // `budget` of those per run. Nodes placed by this run move freely (nothing is built yet),
    // so a plan made from scratch is balanced in one run and planning it again moves nothing.
    let mut budget = (top_real.len() / 100).max(1);
    let is_new = |t: usize| new_top.contains(&t);
    // Every move strictly lowers the sum of squared loads, so this ends; the bound is a guard.
    for _ in 0..top_real.len().saturating_mul(4).saturating_add(16) {
        let total: u64 = loads.iter().fold(0u64, |a, l| a.saturating_add(*l));
        let Some((hi, &hl)) =
            loads.iter().enumerate().max_by_key(|(i, l)| (**l, std::cmp::Reverse(*i)))
        else {
            return;
        };
        let Some((lo, &ll)) = loads.iter().enumerate().min_by_key(|(i, l)| (**l, *i)) else {
            return;
        };
        // heaviest ≤ mean × (1 + 1/DIV)  ⇔  hl × nq × DIV ≤ total × (DIV + 1)
        if u128::from(hl) * u128::from(nq) * u128::from(HYSTERESIS_DIV)
            <= u128::from(total) * u128::from(HYSTERESIS_DIV + 1)
        {
            return;
        }
        let gap = hl - ll;
        // Best candidate: 0 < w < gap (strictly reduces the spread), closest to gap/2.
        let best = top_real
            .iter()
            .filter(|t| usize::from(tree[**t].queue) == hi + 1)
            .filter(|t| tree[**t].weight > 0 && tree[**t].weight < gap)
            .filter(|t| budget > 0 || is_new(**t))
            .min_by_key(|t| {
                (tree[**t].weight.saturating_mul(2).abs_diff(gap), tree[**t].key.clone())
            })
            .copied();
        let Some(t) = best else { return };
        if !is_new(t) {
            budget -= 1;
        }
        let w = tree[t].weight;
        tree[t].queue = lo as u16 + 1;
        loads[hi] = loads[hi].saturating_sub(w);
        loads[lo] = loads[lo].saturating_add(w);
    }
}

/// Per-queue minor bitmap with a lowest-free cursor.
struct MinorAlloc {
    used: Vec<Vec<u64>>,
    cursor: Vec<u32>,
}

impl MinorAlloc {
    const CAPACITY: usize = (MAX_MINOR - FIRST_FREE_MINOR + 1) as usize;
    fn new(nq: usize) -> Self {
        MinorAlloc { used: vec![Vec::new(); nq], cursor: vec![u32::from(FIRST_FREE_MINOR); nq] }
    }
    fn claim(&mut self, queue: u16, minor: u16) -> bool {
        if !(FIRST_FREE_MINOR..=MAX_MINOR).contains(&minor) {
            return false;
        }
        let Some(bits) = self.used.get_mut(usize::from(queue).wrapping_sub(1)) else {
            return false;
        };
        if bits.is_empty() {
            bits.resize(1024, 0);
        }
        let (w, b) = (usize::from(minor) / 64, minor % 64);
        if bits[w] & (1 << b) != 0 {
            return false;
        }
        bits[w] |= 1 << b;
        true
    }
    fn next(&mut self, queue: u16) -> Option<u16> {
        let qi = usize::from(queue).checked_sub(1)?;
        loop {
            let m = *self.cursor.get(qi)?;
            if m > u32::from(MAX_MINOR) {
                return None;
            }
            self.cursor[qi] = m + 1;
            if self.claim(queue, m as u16) {
                return Some(m as u16);
            }
        }
    }
}

/// Per-interface leaf handle bitmap with a lowest-free cursor.
struct HandleAlloc {
    used: Vec<u64>,
    cursor: u32,
}

impl HandleAlloc {
    fn new() -> Self {
        HandleAlloc { used: vec![0; 1024], cursor: u32::from(FIRST_LEAF_HANDLE) }
    }
    fn claim(&mut self, h: u16) -> bool {
        let (w, b) = (usize::from(h) / 64, h % 64);
        if self.used[w] & (1 << b) != 0 {
            return false;
        }
        self.used[w] |= 1 << b;
        true
    }
    fn next(&mut self, reserved: &dyn Fn(u16) -> bool) -> Option<u16> {
        while self.cursor <= 0xFFFE {
            let h = self.cursor as u16;
            self.cursor += 1;
            if !reserved(h) && self.claim(h) {
                return Some(h);
            }
        }
        None
    }
}
