//! `network.json`: the site/AP hierarchy. Object keys are node names; `children` nests.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

use crate::diag::Diagnostic;
use crate::json::{self, J, Member};
use crate::model::{Network, NetworkNode, NodeIndex, RateKbit};
use crate::pos::LineIndex;
use crate::shaped::MIN_RATE_KBIT;

/// The most non-virtual site levels below a queue's root class: HTB allows 8 levels, one is
/// the queue's class `k:1` and one the circuits, leaving 6 (LibreQoS flattens deeper trees).
pub const MAX_SITE_DEPTH: usize = 6;

const DOWN: &str = "downloadBandwidthMbps";
const UP: &str = "uploadBandwidthMbps";
const DOWN_MIN: &str = "downloadBandwidthMbpsMin";
const UP_MIN: &str = "uploadBandwidthMbpsMin";

struct Cx<'a> {
    label: &'a str,
    idx: LineIndex,
    diags: Vec<Diagnostic>,
}

impl Cx<'_> {
    fn at(&self, d: Diagnostic, off: usize, field: &str) -> Diagnostic {
        let (l, c) = self.idx.line_col(off);
        d.at_line(l).at_column(c).field(field)
    }
    fn error(&mut self, off: usize, field: &str, msg: String, hint: Option<&str>) {
        let mut d = self.at(Diagnostic::error(self.label, msg), off, field);
        d.hint = hint.map(str::to_string);
        self.diags.push(d);
    }
    fn warn(&mut self, off: usize, field: &str, msg: String, hint: Option<&str>) {
        let mut d = self.at(Diagnostic::warning(self.label, msg), off, field);
        d.hint = hint.map(str::to_string);
        self.diags.push(d);
    }
}

struct Builder<'a> {
    cx: Cx<'a>,
    net: Network,
    names: HashMap<String, usize>,
    ids: HashMap<String, usize>,
    /// Byte offset of each node's key (for later checks).
    offsets: Vec<usize>,
}

impl Builder<'_> {
    fn rate(&mut self, m: &Member, path: &str) -> Option<RateKbit> {
        let field = format!("{path}.{}", m.key);
        match &m.val {
            J::Null => None,
            J::Num(raw) => {
                let v: f64 = raw.parse().unwrap_or(f64::NAN);
                if !v.is_finite() || v < 0.0 {
                    self.cx.error(
                        m.val_off,
                        &field,
                        format!("{raw} is not a usable rate"),
                        Some("rates are Mbps; 0 or a missing key inherits the parent's rate"),
                    );
                    None
                } else if v == 0.0 {
                    None
                } else if RateKbit::from_mbps(v).0 < MIN_RATE_KBIT {
                    self.cx.error(
                        m.val_off,
                        &field,
                        format!("{raw} Mbps is below the minimum of 0.01 Mbps"),
                        None,
                    );
                    None
                } else {
                    Some(RateKbit::from_mbps(v))
                }
            }
            // LibreQoS reads `"500"` as 500 (Python's float()); `""` is "not set".
            J::Str(s) if s.trim().is_empty() => None,
            J::Str(s) if s.trim().parse::<f64>().is_ok() => {
                let num = Member {
                    key: m.key.clone(),
                    key_off: m.key_off,
                    val: J::Num(s.trim().to_string()),
                    val_off: m.val_off,
                };
                self.rate(&num, path)
            }
            other => {
                self.cx.error(
                    m.val_off,
                    &field,
                    format!("expected a number, found {}", other.type_name()),
                    Some("rates are Mbps, written as 500 or \"500\""),
                );
                None
            }
        }
    }

    /// `virtual`: true/false, 1/0, or the strings "true"/"false"/"1"/"0"/"yes"/"no" (any
    /// case) as LibreQoS's tools write them; `""` and null are "not set".
    fn flag(&mut self, m: &Member, path: &str) -> Option<bool> {
        let parsed = match &m.val {
            J::Bool(b) => Some(Some(*b)),
            J::Null => Some(None),
            J::Num(n) => match n.parse::<f64>() {
                Ok(1.0) => Some(Some(true)),
                Ok(0.0) => Some(Some(false)),
                _ => None,
            },
            J::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Some(Some(true)),
                "false" | "0" | "no" => Some(Some(false)),
                "" => Some(None),
                _ => None,
            },
            _ => None,
        };
        parsed.unwrap_or_else(|| {
            self.cx.error(
                m.val_off,
                &format!("{path}.{}", m.key),
                format!("expected true or false, found {}", m.val.type_name()),
                Some("write true, false, \"true\", \"false\", 1 or 0"),
            );
            None
        })
    }

    fn opt_string(&mut self, m: &Member, path: &str) -> Option<String> {
        match &m.val {
            J::Str(s) => Some(s.clone()),
            // `"id": 1234` names the same node as `"id": "1234"`.
            J::Num(n) => Some(n.clone()),
            J::Null => None,
            other => {
                self.cx.error(
                    m.val_off,
                    &format!("{path}.{}", m.key),
                    format!("expected a string, found {}", other.type_name()),
                    None,
                );
                None
            }
        }
    }

    /// Adds the nodes of one `{name: node, …}` object under `parent`.
    fn nodes(&mut self, members: &[Member], parent: Option<NodeIndex>, parent_path: &str) {
        for m in members {
            let path = if parent_path.is_empty() {
                m.key.clone()
            } else {
                format!("{parent_path}/{}", m.key)
            };
            let J::Obj(fields) = &m.val else {
                self.cx.error(
                    m.val_off,
                    &path,
                    format!("node '{}' must be an object, found {}", m.key, m.val.type_name()),
                    Some("write {} for a node with no settings"),
                );
                continue;
            };
            if m.key.trim().is_empty() {
                self.cx.error(m.key_off, &path, "node name is empty".into(), None);
                continue;
            }
            if let Some(&first) = self.names.get(&m.key) {
                let (l, _) = self.cx.idx.line_col(self.offsets[first]);
                self.cx.error(
                    m.key_off,
                    &path,
                    format!("node name '{}' is used twice (first at line {l})", m.key),
                    Some("node names must be unique across the whole file; rename one"),
                );
                continue;
            }
            let idx = self.net.nodes.len();
            self.names.insert(m.key.clone(), idx);
            self.offsets.push(m.key_off);
            let (line, _) = self.cx.idx.line_col(m.key_off);
            let mut node = NetworkNode {
                name: m.key.clone(),
                id: None,
                display_name: None,
                node_type: None,
                is_virtual: false,
                download: None,
                upload: None,
                download_min: None,
                upload_min: None,
                parent,
                children: Vec::new(),
                line,
                extra: Map::new(),
            };
            let mut children: Option<&[Member]> = None;
            let mut virtual_flag: Option<(bool, usize)> = None;
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for f in fields {
                if let Some(&prev) = seen.get(f.key.as_str()) {
                    let (l, _) = self.cx.idx.line_col(prev);
                    self.cx.error(
                        f.key_off,
                        &format!("{path}.{}", f.key),
                        format!(
                            "field '{}' appears twice in node '{}' (first at line {l})",
                            f.key, m.key
                        ),
                        Some("if this is meant as a child node, put it inside \"children\""),
                    );
                    continue;
                }
                seen.insert(f.key.as_str(), f.key_off);
                match f.key.as_str() {
                    DOWN => node.download = self.rate(f, &path),
                    UP => node.upload = self.rate(f, &path),
                    DOWN_MIN => node.download_min = self.rate(f, &path),
                    UP_MIN => node.upload_min = self.rate(f, &path),
                    "id" => node.id = self.opt_string(f, &path).filter(|s| !s.is_empty()),
                    "name" => node.display_name = self.opt_string(f, &path),
                    "type" => node.node_type = self.opt_string(f, &path),
                    "virtual" => {
                        if let Some(b) = self.flag(f, &path) {
                            virtual_flag = Some((b, f.key_off));
                        }
                    }
                    "children" => match &f.val {
                        J::Obj(c) => children = Some(c),
                        J::Null => {}
                        other => self.cx.error(
                            f.val_off,
                            &format!("{path}.children"),
                            format!("expected an object of nodes, found {}", other.type_name()),
                            Some("children is {\"Name\": {…}, …}; use {} for none"),
                        ),
                    },
                    _ => {
                        node.extra.insert(f.key.clone(), f.val.to_value());
                    }
                }
            }
            let type_virtual =
                node.node_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("virtual"));
            node.is_virtual = type_virtual || virtual_flag.is_some_and(|(b, _)| b);
            if let Some((false, off)) = virtual_flag
                && type_virtual
            {
                self.cx.warn(
                    off,
                    &format!("{path}.virtual"),
                    format!(
                        "node '{}' has type \"virtual\" but virtual: false; treated as virtual",
                        m.key
                    ),
                    Some("remove one of the two"),
                );
            }
            for (min, max, fmin) in [
                (node.download_min, node.download, DOWN_MIN),
                (node.upload_min, node.upload, UP_MIN),
            ] {
                if let (Some(lo), Some(hi)) = (min, max)
                    && lo > hi
                {
                    self.cx.error(
                        m.key_off,
                        &format!("{path}.{fmin}"),
                        format!("node '{}': minimum {} exceeds maximum {}", m.key, lo, hi),
                        Some("the guaranteed rate cannot exceed the ceiling"),
                    );
                }
            }
            if let Some(id) = &node.id {
                if let Some(&first) = self.ids.get(id) {
                    let (l, _) = self.cx.idx.line_col(self.offsets[first]);
                    self.cx.error(
                        m.key_off,
                        &format!("{path}.id"),
                        format!("id '{id}' is used by node '{}' and by node at line {l}", m.key),
                        Some("ids must be unique"),
                    );
                } else {
                    self.ids.insert(id.clone(), idx);
                }
            }
            self.net.nodes.push(node);
            match parent {
                Some(p) => self.net.nodes[p].children.push(idx),
                None => self.net.roots.push(idx),
            }
            if let Some(c) = children {
                self.nodes(c, Some(idx), &path);
            }
        }
    }
}

/// Flattens a tree deeper than HTB allows the way LibreQoS does (`flattenA` in
/// LibreQoS.py): the nodes of the deepest allowed level keep their place, and every node
/// below them is moved up to become a child of the node one level above them (the deepest
/// levels merge upward, in file order). Levels count non-virtual nodes only. One warning
/// per node that receives moved nodes, naming them.
fn flatten_deep(cx: &mut Cx<'_>, net: &mut Network, offsets: &[usize]) {
    let mut depth = vec![0usize; net.nodes.len()];
    // anchor → nodes moved under it, in file order
    let mut moved: Vec<(NodeIndex, Vec<NodeIndex>)> = Vec::new();
    for i in 0..net.nodes.len() {
        let parent_depth = net.nodes[i].parent.map_or(0, |p| depth[p]);
        let is_virtual = net.nodes[i].is_virtual;
        depth[i] = parent_depth + usize::from(!is_virtual);
        if is_virtual || depth[i] <= MAX_SITE_DEPTH {
            continue;
        }
        // The nearest real ancestor on the deepest level but one.
        let mut anchor = net.nodes[i].parent;
        while let Some(a) = anchor {
            if !net.nodes[a].is_virtual && depth[a] == MAX_SITE_DEPTH - 1 {
                break;
            }
            anchor = net.nodes[a].parent;
        }
        let Some(a) = anchor else { continue };
        net.nodes[i].parent = Some(a);
        depth[i] = MAX_SITE_DEPTH;
        match moved.iter_mut().find(|(x, _)| *x == a) {
            Some((_, list)) => list.push(i),
            None => moved.push((a, vec![i])),
        }
    }
    if moved.is_empty() {
        return;
    }
    // Children lists again from the parent links; arena order is still depth-first.
    for n in &mut net.nodes {
        n.children.clear();
    }
    for i in 0..net.nodes.len() {
        if let Some(p) = net.nodes[i].parent {
            net.nodes[p].children.push(i);
        }
    }
    for (a, list) in moved {
        let names: Vec<String> = list.iter().map(|&i| format!("'{}'", net.nodes[i].name)).collect();
        let first = list.first().copied().unwrap_or(a);
        cx.warn(
            offsets.get(first).copied().unwrap_or(0),
            &net.path(a),
            format!(
                "the tree is deeper than the {MAX_SITE_DEPTH} site levels HTB allows: {} moved \
                 up under '{}' (as LibreQoS flattens it)",
                names.join(", "),
                net.nodes[a].name
            ),
            Some("mark an intermediate node \"virtual\": true, or move the branch up yourself"),
        );
    }
}

/// Checks that need the whole tree: virtual-node promotion.
fn check_tree(cx: &mut Cx<'_>, net: &Network, offsets: &[usize]) {
    if !net.nodes.is_empty() && net.nodes.iter().all(|n| n.is_virtual) {
        cx.warn(
            offsets[0],
            &net.nodes[0].name,
            "every node is virtual; the network is treated as flat".into(),
            None,
        );
    }
    // Promotion: each real node (or the top) gets the real descendants reachable through
    // virtual nodes. Siblings after promotion must show distinct names.
    let mut groups: HashMap<(Option<NodeIndex>, &str), (NodeIndex, bool)> = HashMap::new();
    for (i, n) in net.nodes.iter().enumerate() {
        if n.is_virtual {
            continue;
        }
        let mut promoted = false;
        let mut p = n.parent;
        while let Some(pi) = p {
            if !net.nodes[pi].is_virtual {
                break;
            }
            promoted = true;
            p = net.nodes[pi].parent;
        }
        let shown = n.display_name.as_deref().unwrap_or(&n.name);
        match groups.get(&(p, shown)) {
            Some(&(first, first_promoted)) => {
                let first_node = &net.nodes[first];
                let under =
                    p.map_or("the top level".to_string(), |q| format!("'{}'", net.nodes[q].name));
                let msg = format!(
                    "nodes '{}' and '{}' (line {}) both appear as '{shown}' under {under}",
                    n.name, first_node.name, first_node.line
                );
                if promoted || first_promoted {
                    cx.error(
                        offsets[i],
                        &net.path(i),
                        format!("virtual-node promotion collision: {msg}"),
                        Some(
                            "give one of them a different \"name\", or make the virtual node real",
                        ),
                    );
                } else {
                    cx.warn(offsets[i], &net.path(i), msg, Some("give one a different \"name\""));
                }
            }
            None => {
                groups.insert((p, shown), (i, promoted));
            }
        }
    }
}

/// Parses network.json text. `label` names the file in diagnostics (line and column given).
/// `{}` is a flat network. On a JSON syntax error the network is empty and the error says where.
pub fn parse_network_str(text: &str, label: &str) -> (Network, Vec<Diagnostic>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut cx = Cx { label, idx: LineIndex::new(text), diags: Vec::new() };
    let (root, root_off) = match json::parse(text) {
        Ok(v) => v,
        Err(e) => {
            let msg = format!("invalid JSON: {}", e.message);
            cx.error(e.offset, "", msg, Some("network.json must be one JSON object; {} for flat"));
            if let Some(d) = cx.diags.last_mut() {
                d.field = None;
            }
            return (Network::default(), cx.diags);
        }
    };
    let J::Obj(members) = root else {
        cx.error(
            root_off,
            "",
            format!("network.json must be an object, found {}", root.type_name()),
            Some("write {} for a flat network"),
        );
        return (Network::default(), cx.diags);
    };
    let mut b = Builder {
        cx,
        net: Network::default(),
        names: HashMap::new(),
        ids: HashMap::new(),
        offsets: Vec::new(),
    };
    b.nodes(&members, None, "");
    let Builder { mut cx, mut net, offsets, .. } = b;
    flatten_deep(&mut cx, &mut net, &offsets);
    check_tree(&mut cx, &net, &offsets);
    (net, cx.diags)
}

fn rate_value(r: RateKbit) -> Value {
    if r.0.is_multiple_of(1000) {
        Value::Number(Number::from(r.0 / 1000))
    } else {
        Number::from_f64(r.as_mbps_f64()).map_or(Value::Null, Value::Number)
    }
}

fn node_value(net: &Network, i: NodeIndex) -> Value {
    let mut m = Map::new();
    let Some(n) = net.nodes.get(i) else { return Value::Object(m) };
    if let Some(id) = &n.id {
        m.insert("id".into(), Value::String(id.clone()));
    }
    if let Some(name) = &n.display_name {
        m.insert("name".into(), Value::String(name.clone()));
    }
    if let Some(t) = &n.node_type {
        m.insert("type".into(), Value::String(t.clone()));
    }
    let type_virtual = n.node_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("virtual"));
    if n.is_virtual && !type_virtual {
        m.insert("virtual".into(), Value::Bool(true));
    }
    for (key, r) in
        [(DOWN, n.download), (UP, n.upload), (DOWN_MIN, n.download_min), (UP_MIN, n.upload_min)]
    {
        if let Some(r) = r {
            m.insert(key.into(), rate_value(r));
        }
    }
    for (k, v) in &n.extra {
        m.insert(k.clone(), v.clone());
    }
    if !n.children.is_empty() {
        let children: Map<String, Value> = n
            .children
            .iter()
            .filter_map(|&c| net.nodes.get(c).map(|cn| (cn.name.clone(), node_value(net, c))))
            .collect();
        m.insert("children".into(), Value::Object(children));
    }
    Value::Object(m)
}

/// Writes network.json, pretty-printed, nodes in arena (file) order, unknown fields kept.
/// [`parse_network_str`] gives back the same network (apart from line numbers).
pub fn network_to_string(network: &Network) -> String {
    let top: Map<String, Value> = network
        .roots
        .iter()
        .filter_map(|&r| network.nodes.get(r).map(|n| (n.name.clone(), node_value(network, r))))
        .collect();
    let mut s = serde_json::to_string_pretty(&Value::Object(top)).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}
