//! Checks across files and across circuits, and the quarantine.
//!
//! [`validate_inputs_with_rejected`] checks that parents exist, that no address belongs to two
//! circuits, and that rates are sane (for circuits that did not come from the CSV parser, e.g.
//! integrations). [`triage`] then sorts every error: a problem confined to one circuit (its
//! own fields, an unknown parent, an address another circuit already owns) quarantines that
//! circuit only ([`Quarantined`], severity [`Severity::Quarantine`]); every other error is a
//! problem with the whole input and keeps its [`Severity::Error`] (refusal).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::diag::{Diagnostic, Severity};
use crate::model::{Circuit, Network, NodeIndex};
use crate::shaped::MIN_RATE_KBIT;

/// The largest rate accepted anywhere: 1 Tbit/s (1,000,000,000 kbit/s). A circuit rate above
/// it quarantines the circuit; the planner caps every rate at it, so no input can make its
/// arithmetic overflow.
pub const MAX_RATE_KBIT: u64 = 1_000_000_000;

/// The network.json field LibreQoS uses for the attachment a node currently hangs from; a
/// circuit's Parent Node may name it.
pub const ACTIVE_ATTACHMENT_FIELD: &str = "active_attachment_name";

// ---------------------------------------------------------------------------------------------
// Parent resolution
// ---------------------------------------------------------------------------------------------

/// How a circuit's parent resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentLookup {
    /// No Parent Node and no Parent Node ID: unparented (a generated parent node).
    Unparented,
    /// The node at this index of [`Network::nodes`].
    Node(NodeIndex),
    /// A parent is named but no node matches.
    Unknown,
}

/// Lookup tables for circuit parents, built once per network.
///
/// `Parent Node ID` matches a node's `id`; `Parent Node` matches, in this order, a node's key,
/// its `name` field, or its `active_attachment_name` field. When a name matches several
/// nodes the first in file order wins. A Parent Node ID that resolves wins over the name.
#[derive(Debug)]
pub struct ParentIndex<'a> {
    by_key: HashMap<&'a str, NodeIndex>,
    by_name: HashMap<&'a str, NodeIndex>,
    by_attachment: HashMap<&'a str, NodeIndex>,
    by_id: HashMap<&'a str, NodeIndex>,
}

impl<'a> ParentIndex<'a> {
    /// Indexes `network`.
    pub fn new(network: &'a Network) -> Self {
        let mut ix = ParentIndex {
            by_key: HashMap::with_capacity(network.nodes.len()),
            by_name: HashMap::new(),
            by_attachment: HashMap::new(),
            by_id: HashMap::new(),
        };
        for (i, n) in network.nodes.iter().enumerate() {
            ix.by_key.entry(n.name.as_str()).or_insert(i);
            if let Some(id) = n.id.as_deref() {
                ix.by_id.entry(id).or_insert(i);
            }
            if let Some(name) = n.display_name.as_deref() {
                ix.by_name.entry(name).or_insert(i);
            }
            if let Some(serde_json::Value::String(a)) = n.extra.get(ACTIVE_ATTACHMENT_FIELD) {
                ix.by_attachment.entry(a.as_str()).or_insert(i);
            }
        }
        ix
    }

    /// The node a `Parent Node ID` names.
    pub fn by_id(&self, id: &str) -> Option<NodeIndex> {
        self.by_id.get(id).copied()
    }

    /// The node a `Parent Node` names: its key, else its `name`, else its attachment name.
    pub fn by_name(&self, name: &str) -> Option<NodeIndex> {
        self.by_key
            .get(name)
            .or_else(|| self.by_name.get(name))
            .or_else(|| self.by_attachment.get(name))
            .copied()
    }

    /// Resolves a circuit's parent (ID first, then name).
    pub fn resolve(&self, c: &Circuit) -> ParentLookup {
        if let Some(i) = c.parent_node_id.as_deref().and_then(|id| self.by_id(id)) {
            return ParentLookup::Node(i);
        }
        if let Some(i) = c.parent_node.as_deref().and_then(|n| self.by_name(n)) {
            return ParentLookup::Node(i);
        }
        if c.parent_node.is_none() && c.parent_node_id.is_none() {
            ParentLookup::Unparented
        } else {
            ParentLookup::Unknown
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------------------------

/// The top 96 bits of an IPv4 key: the data plane stores IPv4 as twelve `0xFF` bytes plus the
/// address (prefix length + 96), IPv6 as is. So `100.64.0.1` and `::ffff:100.64.0.1` are
/// different keys and never conflict.
const V4_KEY_PREFIX: u128 = !0u128 << 32;

/// One address or prefix keyed the way the data plane's LPM trie keys it.
#[derive(Clone, Copy)]
struct Entry {
    start: u128,
    len: u8,
    /// Index into the checked circuits (planned ones first, then rejected rows).
    circuit: u32,
    device: u32,
    /// Written in the IPv6 column (shown and reported as IPv6 even inside the IPv4 keys).
    v6: bool,
}

/// How a circuit is named in messages (a rejected row may have no Circuit ID).
fn circuit_name(c: &Circuit) -> String {
    if c.id.0.trim().is_empty() {
        "the row with no Circuit ID".to_string()
    } else {
        format!("circuit '{}'", c.id)
    }
}

fn to_entry(net: IpNet, circuit: usize, device: usize) -> Entry {
    let (start, len, v6) = match net {
        IpNet::V4(n) => {
            (V4_KEY_PREFIX | u128::from(u32::from(n.network())), n.prefix_len() + 96, false)
        }
        IpNet::V6(n) => (u128::from(n.network()), n.prefix_len(), true),
    };
    let circuit = u32::try_from(circuit).unwrap_or(u32::MAX);
    let device = u32::try_from(device).unwrap_or(u32::MAX);
    Entry { start, len, circuit, device, v6 }
}

fn contains(outer: &Entry, inner: &Entry) -> bool {
    if outer.len > inner.len {
        return false;
    }
    let mask = if outer.len == 0 { 0 } else { u128::MAX << (128 - u32::from(outer.len)) };
    inner.start & mask == outer.start
}

fn show(e: &Entry) -> String {
    if !e.v6 {
        let v4 = Ipv4Addr::from((e.start & 0xFFFF_FFFF) as u32);
        let len = e.len - 96;
        return if len == 32 { v4.to_string() } else { format!("{v4}/{len}") };
    }
    let v6 = Ipv6Addr::from(e.start);
    if e.len == 128 { IpAddr::V6(v6).to_string() } else { format!("{v6}/{}", e.len) }
}

/// Reports every address used twice and every prefix overlapping another, in O(n log n):
/// entries sorted by (start, prefix length) form a forest of nested prefixes, swept with a
/// stack of the prefixes enclosing the current one.
///
/// * the same address or prefix in two circuits: an error at the later line (that circuit is
///   quarantined by [`triage`]);
/// * prefixes of different lengths in two circuits: allowed (the data plane's longest prefix
///   wins), one warning per pair of circuits;
/// * any overlap inside one circuit: a warning.
///
/// `circuits` are the planned circuits followed by the rejected rows. Two entries belong to
/// the same circuit when they share a group: a planned circuit is its own group; a rejected
/// row joins the planned circuit with its Circuit ID, else the first rejected row with it
/// (an empty Circuit ID is a group of its own).
fn check_overlaps(
    circuits: &[&Circuit],
    planned: usize,
    csv_label: &str,
    out: &mut Vec<Diagnostic>,
) {
    let mut first_with_id: HashMap<&str, usize> = HashMap::with_capacity(circuits.len());
    let mut group: Vec<usize> = Vec::with_capacity(circuits.len());
    for (i, c) in circuits.iter().enumerate() {
        let id = c.id.0.as_str();
        let g = if i < planned || id.trim().is_empty() {
            i
        } else {
            first_with_id.get(id).copied().unwrap_or(i)
        };
        first_with_id.entry(id).or_insert(i);
        group.push(g);
    }
    let mut entries: Vec<Entry> = Vec::new();
    for (ci, c) in circuits.iter().enumerate() {
        for (di, d) in c.devices.iter().enumerate() {
            entries.extend(d.ipv4.iter().map(|n| to_entry(IpNet::V4(*n), ci, di)));
            entries.extend(d.ipv6.iter().map(|n| to_entry(IpNet::V6(*n), ci, di)));
        }
    }
    entries.sort_unstable_by_key(|e| (e.start, e.len, e.circuit, e.device));
    let mut warned_pairs: HashSet<(usize, usize)> = HashSet::new();
    let mut stack: Vec<Entry> = Vec::new();
    for e in entries {
        while let Some(top) = stack.last() {
            if contains(top, &e) {
                break;
            }
            stack.pop();
        }
        if let Some(outer) = stack.last() {
            let (Some(oc), Some(ec)) =
                (circuits.get(outer.circuit as usize), circuits.get(e.circuit as usize))
            else {
                continue;
            };
            let (Some(o_dev), Some(e_dev)) =
                (oc.devices.get(outer.device as usize), ec.devices.get(e.device as usize))
            else {
                continue;
            };
            // Report at the later line, naming the earlier one.
            let (here, there, here_e, there_e) = if e_dev.line >= o_dev.line {
                ((ec, e_dev), (oc, o_dev), &e, outer)
            } else {
                ((oc, o_dev), (ec, e_dev), outer, &e)
            };
            let field = if here_e.v6 { "IPv6" } else { "IPv4" };
            let exact = outer.len == e.len;
            let what = if exact {
                format!("{} is also assigned at line {}", show(here_e), there.1.line)
            } else {
                format!("{} overlaps {} at line {}", show(here_e), show(there_e), there.1.line)
            };
            let (go, ge) = (group[outer.circuit as usize], group[e.circuit as usize]);
            let d = if go == ge {
                Diagnostic::warning(csv_label, format!("{what} (same {})", circuit_name(here.0)))
                    .hint("list each address once per circuit")
            } else if exact {
                Diagnostic::error(
                    csv_label,
                    format!("{what} ({} and {})", circuit_name(here.0), circuit_name(there.0)),
                )
                .hint("an address may belong to one circuit only; the later row is quarantined")
            } else if warned_pairs.insert((go.min(ge), go.max(ge))) {
                Diagnostic::warning(
                    csv_label,
                    format!(
                        "{what} ({} and {}); the longest prefix wins",
                        circuit_name(here.0),
                        circuit_name(there.0)
                    ),
                )
                .hint("traffic of the narrower prefix is shaped by its own circuit")
            } else {
                stack.push(e);
                continue;
            };
            out.push(d.at_line(here.1.line).field(field));
        }
        stack.push(e);
    }
}

// ---------------------------------------------------------------------------------------------
// Cross-file checks
// ---------------------------------------------------------------------------------------------

/// Cross-file and cross-circuit checks (see docs/validation.md): every circuit's parent exists
/// in the network, no address belongs to two circuits, and each circuit's rates are between
/// 0.01 Mbps and [`MAX_RATE_KBIT`] with min ≤ max. Circuits from the CSV parser already passed
/// the lower rate checks; the checks matter for circuits built in code (integrations).
pub fn validate_inputs(
    network: &Network,
    circuits: &[Circuit],
    network_label: &str,
    csv_label: &str,
) -> Vec<Diagnostic> {
    validate_inputs_with_rejected(network, circuits, &[], network_label, csv_label)
}

/// [`validate_inputs`] plus the rows the CSV parser left out
/// ([`crate::shaped::ShapedDevices::rejected`]), so one run reports every problem: the
/// rejected rows' fields were already reported, but their parent (X1) and addresses (X3, X4)
/// are still checked against the network and against every other row. The rate and
/// Circuit ID checks (X5) and the flat-network note (X2) look at `circuits` only.
pub fn validate_inputs_with_rejected(
    network: &Network,
    circuits: &[Circuit],
    rejected: &[Circuit],
    network_label: &str,
    csv_label: &str,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let index = ParentIndex::new(network);
    let mut flat_parented: Vec<&Circuit> = Vec::new();
    for c in circuits {
        if c.id.0.trim().is_empty() {
            out.push(
                Diagnostic::error(csv_label, "Circuit ID is empty")
                    .at_line(c.line)
                    .field("Circuit ID"),
            );
        }
        if c.devices.is_empty() {
            out.push(
                Diagnostic::error(csv_label, format!("circuit '{}' has no devices", c.id))
                    .at_line(c.line)
                    .field("Device ID"),
            );
        }
        check_rates(c, csv_label, &mut out);
        if network.is_flat() {
            if c.parent_node.is_some() || c.parent_node_id.is_some() {
                flat_parented.push(c);
            }
            continue;
        }
        check_parent(network, &index, c, network_label, csv_label, &mut out);
    }
    if !network.is_flat() {
        for c in rejected {
            check_parent(network, &index, c, network_label, csv_label, &mut out);
        }
    }
    if let Some(first) = flat_parented.first() {
        out.push(
            Diagnostic::warning(
                csv_label,
                format!(
                    "{} circuit(s) name a parent node but {network_label} is flat ({{}}); they \
                     are placed under generated parent nodes",
                    flat_parented.len()
                ),
            )
            .at_line(first.line)
            .field("Parent Node")
            .hint(format!("add the nodes to {network_label}, or clear Parent Node")),
        );
    }
    let all: Vec<&Circuit> = circuits.iter().chain(rejected).collect();
    check_overlaps(&all, circuits.len(), csv_label, &mut out);
    out
}

/// X5: rates between 0.01 Mbps and 1 Tbit/s, min ≤ max.
fn check_rates(c: &Circuit, csv_label: &str, out: &mut Vec<Diagnostic>) {
    for (name, min, max) in
        [("Download", c.download_min, c.download_max), ("Upload", c.upload_min, c.upload_max)]
    {
        if max.0 > MAX_RATE_KBIT || min.0 > MAX_RATE_KBIT {
            let field = if max.0 > MAX_RATE_KBIT { "Max" } else { "Min" };
            out.push(
                Diagnostic::error(
                    csv_label,
                    format!(
                        "circuit '{}': {name} rates {}/{} exceed the largest rate lqos accepts \
                         (1 Tbit/s = 1000000 Mbps)",
                        c.id,
                        crate::shaped::mbps_text(min),
                        crate::shaped::mbps_text(max)
                    ),
                )
                .at_line(c.line)
                .field(format!("{name} {field} Mbps"))
                .hint("rates are Mbps"),
            );
        } else if max.0 < MIN_RATE_KBIT || min.0 < MIN_RATE_KBIT {
            out.push(
                Diagnostic::error(
                    csv_label,
                    format!("circuit '{}': {name} rates {min}/{max} are below 0.01 Mbps", c.id),
                )
                .at_line(c.line)
                .field(format!("{name} Max Mbps")),
            );
        } else if min > max {
            out.push(
                Diagnostic::error(
                    csv_label,
                    format!("circuit '{}': {name} min {min} exceeds max {max}", c.id),
                )
                .at_line(c.line)
                .field(format!("{name} Min Mbps")),
            );
        }
    }
}

/// X1: the circuit's Parent Node ID / Parent Node resolves in a non-flat network.
fn check_parent(
    network: &Network,
    index: &ParentIndex<'_>,
    c: &Circuit,
    network_label: &str,
    csv_label: &str,
    out: &mut Vec<Diagnostic>,
) {
    let by_id = c.parent_node_id.as_deref().and_then(|id| index.by_id(id));
    let by_name = c.parent_node.as_deref().and_then(|n| index.by_name(n));
    match (&c.parent_node_id, by_id, &c.parent_node, by_name) {
        (_, Some(i), Some(name), named) if named != Some(i) => out.push(
            Diagnostic::warning(
                csv_label,
                format!(
                    "Parent Node ID '{}' is node '{}', not '{name}'; the ID wins",
                    c.parent_node_id.as_deref().unwrap_or(""),
                    network.nodes.get(i).map_or("", |n| n.name.as_str())
                ),
            )
            .at_line(c.line)
            .field("Parent Node ID"),
        ),
        (_, Some(_), _, _) => {}
        (Some(id), None, _, Some(_)) => out.push(
            Diagnostic::warning(
                csv_label,
                format!("Parent Node ID '{id}' is not in {network_label}; using Parent Node"),
            )
            .at_line(c.line)
            .field("Parent Node ID"),
        ),
        (_, None, _, Some(_)) => {}
        (_, None, Some(name), None) => out.push(
            Diagnostic::error(
                csv_label,
                format!("{}: parent node '{name}' is not in {network_label}", circuit_name(c)),
            )
            .at_line(c.line)
            .field("Parent Node")
            .hint(format!(
                "add '{name}' to {network_label}, fix the spelling (names are \
                     case-sensitive), or leave Parent Node empty for an unparented circuit"
            )),
        ),
        (Some(id), None, None, None) => out.push(
            Diagnostic::error(
                csv_label,
                format!("{}: Parent Node ID '{id}' is not in {network_label}", circuit_name(c)),
            )
            .at_line(c.line)
            .field("Parent Node ID")
            .hint("fix the ID or leave it empty"),
        ),
        (None, None, None, None) => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Quarantine
// ---------------------------------------------------------------------------------------------

/// What happens to a quarantined circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum QuarantineAction {
    /// Not planned: no class, no address mapping; its traffic passes unshaped.
    Unshaped,
    /// Its only problem is a parent that is not in network.json: it is shaped at its own
    /// rates under its queue's generated parent node (`Generated_PN_k`), outside the site
    /// tree, so the subscriber keeps its plan instead of running unlimited.
    GeneratedParent,
}

/// A circuit set aside because of a problem of its own; the rest of the input is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quarantined {
    /// Circuit ID (empty for a row without one).
    pub circuit_id: String,
    /// Circuit Name.
    pub name: String,
    /// The file (ShapedDevices.csv label).
    pub file: String,
    /// First line of the circuit (or of the row) in the file.
    pub line: usize,
    /// Every problem, `field: message`, joined with `; `.
    pub reason: String,
    /// Unshaped, or shaped under a generated parent.
    pub action: QuarantineAction,
}

/// The outcome of [`triage`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Triage {
    /// Circuits to plan: the good ones and the ones moved under a generated parent (their
    /// Parent Node and Parent Node ID cleared).
    pub circuits: Vec<Circuit>,
    /// Every quarantined circuit, by line.
    pub quarantined: Vec<Quarantined>,
    /// The diagnostics, circuit-confined errors turned into [`Severity::Quarantine`].
    pub diagnostics: Vec<Diagnostic>,
}

/// Sorts the errors of one load into quarantines and refusals.
///
/// An error in `csv_label` at a line of a circuit (any of its rows, or a row the parser
/// rejected) is confined to that circuit: the circuit (every row sharing its Circuit ID) is
/// quarantined and the diagnostic's severity becomes [`Severity::Quarantine`]. A circuit
/// whose only problem is an unknown parent is moved under a generated parent node
/// ([`QuarantineAction::GeneratedParent`]); any other problem leaves it unshaped. Every other
/// error (a header, a row with the wrong number of fields, network.json, …) stays an error.
pub fn triage(
    network: &Network,
    circuits: Vec<Circuit>,
    rejected: &[Circuit],
    mut diagnostics: Vec<Diagnostic>,
    csv_label: &str,
) -> Triage {
    // Group key: the Circuit ID, or the line for a row without one.
    fn key(c: &Circuit, line: usize) -> String {
        if c.id.0.trim().is_empty() { format!("\0line {line}") } else { c.id.0.clone() }
    }
    let mut line_group: HashMap<usize, String> = HashMap::new();
    for c in &circuits {
        for d in &c.devices {
            line_group.insert(d.line, key(c, c.line));
        }
        line_group.entry(c.line).or_insert_with(|| key(c, c.line));
    }
    let mut rejected_groups: HashSet<String> = HashSet::new();
    for r in rejected {
        let k = key(r, r.line);
        line_group.entry(r.line).or_insert_with(|| k.clone());
        rejected_groups.insert(k);
    }
    // Problems per group, in diagnostic order.
    let mut problems: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, d) in diagnostics.iter().enumerate() {
        if !d.is_error() || d.file != csv_label {
            continue;
        }
        if let Some(g) = d.line.and_then(|l| line_group.get(&l)) {
            problems.entry(g.clone()).or_default().push(i);
        }
    }
    let index = ParentIndex::new(network);
    let mut quarantined = Vec::new();
    let mut keep = Vec::with_capacity(circuits.len());
    let mut seen: HashSet<String> = HashSet::new();
    let describe = |idx: &[usize], diags: &[Diagnostic]| {
        idx.iter()
            .filter_map(|i| diags.get(*i))
            .map(|d| match &d.field {
                Some(f) => format!("{f}: {}", d.message),
                None => d.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    for mut c in circuits {
        let k = key(&c, c.line);
        let Some(idx) = problems.get(&k) else {
            keep.push(c);
            continue;
        };
        let parent_only = !rejected_groups.contains(&k)
            && !network.is_flat()
            && index.resolve(&c) == ParentLookup::Unknown
            && idx.iter().all(|i| {
                diagnostics
                    .get(*i)
                    .and_then(|d| d.field.as_deref())
                    .is_some_and(|f| f == "Parent Node" || f == "Parent Node ID")
            });
        seen.insert(k);
        quarantined.push(Quarantined {
            circuit_id: c.id.0.clone(),
            name: c.name.clone(),
            file: csv_label.to_string(),
            line: c.line,
            reason: describe(idx, &diagnostics),
            action: if parent_only {
                QuarantineAction::GeneratedParent
            } else {
                QuarantineAction::Unshaped
            },
        });
        if parent_only {
            c.parent_node = None;
            c.parent_node_id = None;
            keep.push(c);
        }
    }
    for r in rejected {
        let k = key(r, r.line);
        if !seen.insert(k.clone()) {
            continue;
        }
        let reason = problems.get(&k).map(|idx| describe(idx, &diagnostics)).unwrap_or_default();
        quarantined.push(Quarantined {
            circuit_id: r.id.0.clone(),
            name: r.name.clone(),
            file: csv_label.to_string(),
            line: r.line,
            reason,
            action: QuarantineAction::Unshaped,
        });
    }
    for idx in problems.values() {
        for i in idx {
            if let Some(d) = diagnostics.get_mut(*i) {
                d.severity = Severity::Quarantine;
            }
        }
    }
    quarantined.sort_by_key(|q| q.line);
    Triage { circuits: keep, quarantined, diagnostics }
}
