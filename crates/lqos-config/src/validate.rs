//! Checks across files and across circuits: parents exist, addresses do not overlap, rates are
//! sane (for circuits that did not come from the CSV parser, e.g. integrations).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

use crate::diag::Diagnostic;
use crate::model::{Circuit, Network};
use crate::shaped::MIN_RATE_KBIT;

/// One address or prefix in the v4-in-v6 space the dataplane uses.
#[derive(Clone, Copy)]
struct Entry {
    start: u128,
    len: u8,
    /// Index into the checked circuits (planned ones first, then rejected rows).
    circuit: u32,
    device: u32,
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
    let (start, len) = match net {
        IpNet::V4(n) => {
            let mapped: Ipv6Addr = n.network().to_ipv6_mapped();
            (u128::from(mapped), n.prefix_len() + 96)
        }
        IpNet::V6(n) => (u128::from(n.network()), n.prefix_len()),
    };
    Entry { start, len, circuit: circuit as u32, device: device as u32 }
}

fn contains(outer: &Entry, inner: &Entry) -> bool {
    if outer.len > inner.len {
        return false;
    }
    let mask = if outer.len == 0 { 0 } else { u128::MAX << (128 - u32::from(outer.len)) };
    inner.start & mask == outer.start
}

fn show(e: &Entry) -> String {
    let v6 = Ipv6Addr::from(e.start);
    match v6.to_ipv4_mapped() {
        Some(v4) if e.len >= 96 => {
            let len = e.len - 96;
            if len == 32 { v4.to_string() } else { format!("{v4}/{len}") }
        }
        _ => {
            if e.len == 128 {
                IpAddr::V6(v6).to_string()
            } else {
                format!("{v6}/{}", e.len)
            }
        }
    }
}

/// Reports every address used twice and every prefix overlapping another, in O(n log n):
/// entries sorted by (start, prefix length) form a forest of nested prefixes, swept with a
/// stack of the prefixes enclosing the current one.
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
    let mut stack: Vec<Entry> = Vec::new();
    for e in entries {
        while let Some(top) = stack.last() {
            if contains(top, &e) {
                break;
            }
            stack.pop();
        }
        if let Some(outer) = stack.last() {
            let (oc, od) = (&circuits[outer.circuit as usize], outer.device as usize);
            let (ec, ed) = (&circuits[e.circuit as usize], e.device as usize);
            let (o_dev, e_dev) = (&oc.devices[od], &ec.devices[ed]);
            // Report at the later line, naming the earlier one.
            let (here, there, here_e, there_e) = if e_dev.line >= o_dev.line {
                ((ec, e_dev), (oc, o_dev), &e, outer)
            } else {
                ((oc, o_dev), (ec, e_dev), outer, &e)
            };
            let field =
                if here_e.len >= 96 && Ipv6Addr::from(here_e.start).to_ipv4_mapped().is_some() {
                    "IPv4"
                } else {
                    "IPv6"
                };
            let what = if outer.len == e.len {
                format!("{} is also assigned at line {}", show(here_e), there.1.line)
            } else {
                format!("{} overlaps {} at line {}", show(here_e), show(there_e), there.1.line)
            };
            let d = if group[outer.circuit as usize] == group[e.circuit as usize] {
                Diagnostic::warning(csv_label, format!("{what} (same {})", circuit_name(here.0)))
                    .hint("list each address once per circuit")
            } else {
                Diagnostic::error(
                    csv_label,
                    format!("{what} ({} and {})", circuit_name(here.0), circuit_name(there.0)),
                )
                .hint("an address may belong to one circuit only; remove or narrow one of them")
            };
            out.push(d.at_line(here.1.line).field(field));
        }
        stack.push(e);
    }
}

/// Cross-file and cross-circuit checks (see docs/validation.md): every circuit's parent exists
/// in the network, no address or prefix belongs to two circuits, and each circuit's rates are
/// at least 0.01 Mbps with min ≤ max. Circuits from the CSV parser already passed the rate
/// checks; the checks matter for circuits built in code (integrations).
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
    let names: HashMap<&str, usize> =
        network.nodes.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
    let ids: HashMap<&str, usize> = network
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.id.as_deref().map(|id| (id, i)))
        .collect();
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
        for (name, min, max) in
            [("Download", c.download_min, c.download_max), ("Upload", c.upload_min, c.upload_max)]
        {
            if max.0 < MIN_RATE_KBIT || min.0 < MIN_RATE_KBIT {
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
        if network.is_flat() {
            if c.parent_node.is_some() || c.parent_node_id.is_some() {
                flat_parented.push(c);
            }
            continue;
        }
        check_parent(network, &names, &ids, c, network_label, csv_label, &mut out);
    }
    if !network.is_flat() {
        for c in rejected {
            check_parent(network, &names, &ids, c, network_label, csv_label, &mut out);
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

/// X1: the circuit's Parent Node ID / Parent Node resolves in a non-flat network.
fn check_parent(
    network: &Network,
    names: &HashMap<&str, usize>,
    ids: &HashMap<&str, usize>,
    c: &Circuit,
    network_label: &str,
    csv_label: &str,
    out: &mut Vec<Diagnostic>,
) {
    let by_id = c.parent_node_id.as_deref().and_then(|id| ids.get(id).copied());
    let by_name = c.parent_node.as_deref().and_then(|n| names.get(n).copied());
    match (&c.parent_node_id, by_id, &c.parent_node, by_name) {
        (_, Some(i), Some(name), _) if network.nodes[i].name != *name => out.push(
            Diagnostic::warning(
                csv_label,
                format!(
                    "Parent Node ID '{}' is node '{}', not '{name}'; the ID wins",
                    c.parent_node_id.as_deref().unwrap_or(""),
                    network.nodes[i].name
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
