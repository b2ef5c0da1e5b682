//! The capacity-weighted route search of LibreQoS's `full` strategy.
//!
//! Nodes are the infrastructure sites and the radios in them. Each radio is joined to its
//! site in both directions, and each UISP device data-link between two sites joins the two
//! radios with the link's capacity per direction. A hop costs `10000 − capacity in Mbps`
//! (never below 0), so among paths of equal length the one with the fattest links wins,
//! and a route override replaces a data-link's cost with `cost × 1000` (a default hop of 10
//! costs as much as a link of no capacity). The best path from the root to a node decides its
//! parent and its download capacity (the thinnest hop on it); the best path from the node to
//! the root gives its upload capacity.
//!
//! Ties between equally cheap paths go to the one with fewer hops, then to the one found
//! first in UISP's order. (LibreQoS leaves ties to its priority queue's internal order.)

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Cost of one hop of `cap_mbps`.
pub fn hop_cost(cap_mbps: u64) -> u64 {
    10_000u64.saturating_sub(cap_mbps)
}

/// Cost of a data-link whose route override says `cost` (LibreQoS hop units, default 10).
pub fn override_cost(cost: u32) -> u64 {
    u64::from(cost) * 1_000
}

/// Cost of a fallback edge (UISP's site parent when no radio path exists): dearer than any
/// real path.
pub const FALLBACK_COST: u64 = 1 << 40;

#[derive(Debug, Clone, Copy)]
struct Edge {
    to: usize,
    cap: u64,
    cost: u64,
}

/// A directed graph with per-edge capacity and cost.
#[derive(Debug, Default)]
pub struct Graph {
    out: Vec<Vec<Edge>>,
    inc: Vec<Vec<Edge>>,
}

/// The best path from (or to) the root for every node.
#[derive(Debug, Clone)]
pub struct Routes {
    /// Previous node on the path from the root (for [`Graph::from_root`]) or next node towards
    /// the root (for [`Graph::to_root`]); `None` for the root and unreachable nodes.
    pub prev: Vec<Option<usize>>,
    /// Reachable.
    pub reached: Vec<bool>,
    /// The thinnest hop on the path (Mbps); `u64::MAX` for the root.
    pub min_cap: Vec<u64>,
    /// The path's cost (`u64::MAX` when unreachable).
    pub cost: Vec<u64>,
}

impl Graph {
    /// Adds a node; returns its index.
    pub fn add_node(&mut self) -> usize {
        self.out.push(Vec::new());
        self.inc.push(Vec::new());
        self.out.len() - 1
    }
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.out.len()
    }
    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }
    /// True if there is an edge `a → b`.
    pub fn has_edge(&self, a: usize, b: usize) -> bool {
        self.out.get(a).is_some_and(|v| v.iter().any(|e| e.to == b))
    }
    /// Adds `a → b`.
    pub fn add_edge(&mut self, a: usize, b: usize, cap: u64, cost: u64) {
        if a >= self.len() || b >= self.len() || a == b {
            return;
        }
        self.out[a].push(Edge { to: b, cap, cost });
        self.inc[b].push(Edge { to: a, cap, cost });
    }

    /// Best paths from `root` to every node.
    pub fn from_root(&self, root: usize) -> Routes {
        Self::dijkstra(&self.out, root)
    }

    /// Best paths from every node to `root` (searched backwards from the root).
    pub fn to_root(&self, root: usize) -> Routes {
        Self::dijkstra(&self.inc, root)
    }

    fn dijkstra(adj: &[Vec<Edge>], root: usize) -> Routes {
        let n = adj.len();
        let mut best: Vec<Option<(u64, u64)>> = vec![None; n];
        let mut prev = vec![None; n];
        let mut done = vec![false; n];
        let mut order = Vec::with_capacity(n);
        let mut via_cap = vec![u64::MAX; n];
        let mut heap = BinaryHeap::new();
        if root < n {
            best[root] = Some((0, 0));
            heap.push(Reverse((0u64, 0u64, root)));
        }
        while let Some(Reverse((cost, hops, v))) = heap.pop() {
            if done[v] || best[v] != Some((cost, hops)) {
                continue;
            }
            done[v] = true;
            order.push(v);
            for e in &adj[v] {
                if done[e.to] {
                    continue;
                }
                let cand = (cost.saturating_add(e.cost), hops + 1);
                if best[e.to].is_none_or(|b| cand < b) {
                    best[e.to] = Some(cand);
                    prev[e.to] = Some(v);
                    via_cap[e.to] = e.cap;
                    heap.push(Reverse((cand.0, cand.1, e.to)));
                }
            }
        }
        let mut min_cap = vec![u64::MAX; n];
        for &v in &order {
            if let Some(p) = prev[v] {
                min_cap[v] = min_cap[p].min(via_cap[v]);
            }
        }
        let cost = best
            .iter()
            .zip(&done)
            .map(|(b, d)| if *d { b.map_or(u64::MAX, |b| b.0) } else { u64::MAX })
            .collect();
        Routes { prev, reached: done, min_cap, cost }
    }
}

impl Routes {
    /// The path from the root to `node` (root first), empty if unreachable.
    pub fn path(&self, node: usize) -> Vec<usize> {
        if !self.reached.get(node).copied().unwrap_or(false) {
            return Vec::new();
        }
        let mut p = vec![node];
        let mut cur = node;
        while let Some(x) = self.prev.get(cur).copied().flatten() {
            if p.len() > self.prev.len() {
                break;
            }
            p.push(x);
            cur = x;
        }
        p.reverse();
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(g: &mut Graph, a: usize, b: usize, cap: u64) {
        g.add_edge(a, b, cap, hop_cost(cap));
        g.add_edge(b, a, cap, hop_cost(cap));
    }

    #[test]
    fn fatter_path_wins_among_equal_hops_and_fewer_hops_win_otherwise() {
        // Ring: R - A - B - C - R. B is two hops from R either way; the A side is fatter.
        let mut g = Graph::default();
        let [r, a, b, c] = [0, 1, 2, 3].map(|_| g.add_node());
        both(&mut g, r, a, 1000);
        both(&mut g, a, b, 900);
        both(&mut g, b, c, 100);
        both(&mut g, c, r, 1000);
        let from = g.from_root(r);
        assert_eq!(from.path(b), [r, a, b]);
        assert_eq!(from.min_cap[b], 900);
        assert_eq!(from.path(c), [r, c]);
        assert_eq!(from.min_cap[r], u64::MAX);
    }

    #[test]
    fn override_cost_can_push_traffic_round_the_ring() {
        let mut g = Graph::default();
        let [r, a, b] = [0, 1, 2].map(|_| g.add_node());
        both(&mut g, r, a, 500);
        both(&mut g, a, b, 500);
        g.add_edge(r, b, 500, override_cost(100));
        g.add_edge(b, r, 500, override_cost(100));
        assert_eq!(g.from_root(r).path(b), [r, a, b]);
        assert_eq!(g.to_root(r).path(b), [r, a, b]);
    }

    #[test]
    fn to_root_follows_the_upload_direction() {
        let mut g = Graph::default();
        let [r, a] = [0, 1].map(|_| g.add_node());
        g.add_edge(r, a, 300, hop_cost(300));
        g.add_edge(a, r, 50, hop_cost(50));
        assert_eq!(g.from_root(r).min_cap[a], 300);
        assert_eq!(g.to_root(r).min_cap[a], 50);
        let lone = g.add_node();
        assert!(g.from_root(r).path(lone).is_empty());
    }
}
