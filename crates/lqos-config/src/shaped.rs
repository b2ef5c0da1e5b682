//! `ShapedDevices.csv`: one row per device; rows sharing a Circuit ID form one circuit.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::diag::Diagnostic;
use crate::model::{Circuit, CircuitId, Device, RateKbit, SqmOverride};
use crate::pos::LineIndex;
use crate::sqm::{format_sqm_override, parse_sqm_override};

/// The smallest rate accepted anywhere (LibreQoS's Rust validator: 0.01 Mbps = 10 kbit/s).
pub const MIN_RATE_KBIT: u64 = 10;

/// The header the writer emits (LibreQoS current layout plus `sqm`).
pub const CSV_HEADER: [&str; 16] = [
    "Circuit ID",
    "Circuit Name",
    "Device ID",
    "Device Name",
    "Parent Node",
    "Parent Node ID",
    "Anchor Node ID",
    "MAC",
    "IPv4",
    "IPv6",
    "Download Min Mbps",
    "Upload Min Mbps",
    "Download Max Mbps",
    "Upload Max Mbps",
    "Comment",
    "sqm",
];

/// A ShapedDevices.csv column, as [`header_column`] recognises it from a header cell (with
/// every alias LibreQoS accepts). The one table of header names: the GUI editor uses it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(missing_docs, reason = "each variant is the ShapedDevices.csv column of that name")]
pub enum Col {
    CircuitId,
    CircuitName,
    DeviceId,
    DeviceName,
    ParentNode,
    ParentNodeId,
    AnchorNodeId,
    Mac,
    Ipv4,
    Ipv6,
    DownMin,
    UpMin,
    DownMax,
    UpMax,
    Comment,
    Sqm,
    RadiusUser,
}

const NCOLS: usize = 17;

impl Col {
    fn name(self) -> &'static str {
        match self {
            Col::RadiusUser => "RADIUS Username",
            other => CSV_HEADER[other as usize],
        }
    }

    /// Matches a header cell normalised to lowercase alphanumerics.
    fn from_header(norm: &str) -> Option<Col> {
        Some(match norm {
            "circuitid" => Col::CircuitId,
            "circuitname" => Col::CircuitName,
            "deviceid" => Col::DeviceId,
            "devicename" => Col::DeviceName,
            "parentnode" | "parent" | "parentnodename" => Col::ParentNode,
            "parentnodeid" | "parentid" => Col::ParentNodeId,
            "anchornodeid" | "id" => Col::AnchorNodeId,
            "mac" | "macaddress" => Col::Mac,
            "ipv4" | "ipv4address" | "ipv4addresses" => Col::Ipv4,
            "ipv6" | "ipv6address" | "ipv6addresses" => Col::Ipv6,
            "downloadmin" | "downloadminmbps" => Col::DownMin,
            "uploadmin" | "uploadminmbps" => Col::UpMin,
            "downloadmax" | "downloadmaxmbps" => Col::DownMax,
            "uploadmax" | "uploadmaxmbps" => Col::UpMax,
            "comment" | "comments" => Col::Comment,
            "sqm" | "sqmoverride" => Col::Sqm,
            "radiususername" | "username" => Col::RadiusUser,
            _ => return None,
        })
    }
}

const LEGACY: [Col; 14] = [
    Col::CircuitId,
    Col::CircuitName,
    Col::DeviceId,
    Col::DeviceName,
    Col::ParentNode,
    Col::Mac,
    Col::Ipv4,
    Col::Ipv6,
    Col::DownMin,
    Col::UpMin,
    Col::DownMax,
    Col::UpMax,
    Col::Comment,
    Col::Sqm,
];

const CURRENT: [Col; 16] = [
    Col::CircuitId,
    Col::CircuitName,
    Col::DeviceId,
    Col::DeviceName,
    Col::ParentNode,
    Col::ParentNodeId,
    Col::AnchorNodeId,
    Col::Mac,
    Col::Ipv4,
    Col::Ipv6,
    Col::DownMin,
    Col::UpMin,
    Col::DownMax,
    Col::UpMax,
    Col::Comment,
    Col::Sqm,
];

/// Bad addresses reported one by one per CSV cell; the rest are counted in one summary line.
const MAX_ADDRESS_ERRORS_PER_CELL: usize = 8;

fn normalise(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// The column a header cell names (`Circuit ID`, `circuit_id`, `IPv4 Addresses`, …), if any:
/// case, spaces and punctuation do not matter.
pub fn header_column(cell: &str) -> Option<Col> {
    Col::from_header(&normalise(cell))
}

/// How the file's columns map to fields.
struct Layout {
    /// `index[col as usize]` = position in the row.
    index: [Option<usize>; NCOLS],
    /// Number of fields every row must have.
    width: usize,
    /// Line of the header, if there is one.
    header_line: Option<usize>,
}

/// `3, 5, 9`, or the first 20 and a count of the rest.
fn line_list(lines: &[usize]) -> String {
    const SHOWN: usize = 20;
    let mut s = lines.iter().take(SHOWN).map(ToString::to_string).collect::<Vec<_>>().join(", ");
    if lines.len() > SHOWN {
        s.push_str(&format!(" and {} more", lines.len() - SHOWN));
    }
    s
}

impl Layout {
    /// True if a row whose field count differs from the layout's can still be read safely
    /// (LibreQoS reads it): every missing field is a trailing optional column (Comment, sqm,
    /// RADIUS Username, or a column lqos ignores), or every extra field is empty.
    fn tolerates(&self, rec: &csv::StringRecord) -> bool {
        if rec.len() > self.width {
            return rec.iter().skip(self.width).all(|f| f.trim().is_empty());
        }
        (rec.len()..self.width).all(|pos| {
            match self.index.iter().position(|&i| i == Some(pos)) {
                None => true, // an ignored (unknown or empty-named) column
                Some(c) => {
                    c == Col::Comment as usize
                        || c == Col::Sqm as usize
                        || c == Col::RadiusUser as usize
                }
            }
        })
    }

    fn positional(cols: &[Col], width: usize) -> Layout {
        let mut index = [None; NCOLS];
        for (i, c) in cols.iter().take(width).enumerate() {
            index[*c as usize] = Some(i);
        }
        Layout { index, width, header_line: None }
    }
}

struct Cx<'a> {
    label: &'a str,
    diags: Vec<Diagnostic>,
    /// Errors pushed through [`Cx::error`] (counted so a row knows it failed without a scan).
    errors: usize,
}

impl Cx<'_> {
    fn error(&mut self, line: usize, col: Col, msg: String, hint: Option<String>) {
        let mut d = Diagnostic::error(self.label, msg).at_line(line).field(col.name());
        d.hint = hint;
        self.diags.push(d);
        self.errors += 1;
    }
    fn warn(&mut self, line: usize, col: Col, msg: String, hint: Option<String>) {
        let mut d = Diagnostic::warning(self.label, msg).at_line(line).field(col.name());
        d.hint = hint;
        self.diags.push(d);
    }
}

fn header_layout(cx: &mut Cx<'_>, rec: &csv::StringRecord, line: usize) -> Option<Layout> {
    let mut index = [None; NCOLS];
    let mut ok = true;
    for (i, cell) in rec.iter().map(str::trim).enumerate() {
        let norm = normalise(cell);
        match Col::from_header(&norm) {
            Some(c) => {
                if let Some(prev) = index[c as usize] {
                    cx.error(
                        line,
                        c,
                        format!(
                            "column '{cell}' appears twice (columns {} and {})",
                            prev + 1,
                            i + 1
                        ),
                        Some("delete one of the two columns".into()),
                    );
                    ok = false;
                } else {
                    index[c as usize] = Some(i);
                }
            }
            None if norm.is_empty() => {}
            None => cx.diags.push(
                Diagnostic::warning(cx.label, format!("unknown column '{cell}' is ignored"))
                    .at_line(line)
                    .field(cell)
                    .hint(format!("known columns: {}", CSV_HEADER.join(", "))),
            ),
        }
    }
    for c in [Col::DownMin, Col::UpMin, Col::DownMax, Col::UpMax] {
        if index[c as usize].is_none() {
            cx.error(
                line,
                c,
                format!("the header has no '{}' column", c.name()),
                Some(format!("the current header is: {}", CSV_HEADER.join(","))),
            );
            ok = false;
        }
    }
    if index[Col::Ipv4 as usize].is_none() && index[Col::Ipv6 as usize].is_none() {
        cx.warn(
            line,
            Col::Ipv4,
            "the header has neither an IPv4 nor an IPv6 column; no traffic will be matched".into(),
            None,
        );
    }
    ok.then_some(Layout { index, width: rec.len(), header_line: Some(line) })
}

fn width_hint(layout: &Layout, got: usize) -> String {
    if layout.header_line.is_some() {
        let mut h = format!("the header has {} columns and this row has {got}", layout.width);
        if got == 13 || got == 14 {
            h.push_str(
                "; this looks like the legacy layout without Parent Node ID and Anchor Node ID: \
                 add two empty fields after Parent Node, or use the legacy header",
            );
        }
        h
    } else {
        format!("the first row has {} fields and this row has {got}", layout.width)
    }
}

/// Parses a rate in Mbps; `Err` carries the message.
fn parse_rate(s: &str) -> Result<RateKbit, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !v.is_finite() {
        return Err(format!("'{s}' is not a number"));
    }
    if v < 0.0 {
        return Err(format!("{s} is negative"));
    }
    let r = RateKbit::from_mbps(v);
    if r.0 < MIN_RATE_KBIT {
        return Err(format!("{s} Mbps is below the minimum of 0.01 Mbps"));
    }
    Ok(r)
}

fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|t| !t.is_empty())
}

type IpErr = (String, String);

pub(crate) fn parse_v4(t: &str) -> Result<Ipv4Net, IpErr> {
    let (addr, len) = match t.split_once('/') {
        Some((a, l)) => (a.trim(), Some(l.trim())),
        None => (t, None),
    };
    let Ok(ip) = addr.parse::<Ipv4Addr>() else {
        let hint = if addr.parse::<Ipv6Addr>().is_ok() {
            "this is an IPv6 address: put it in the IPv6 column"
        } else {
            "write an address like 100.64.0.10 or a prefix like 100.64.1.0/29"
        };
        return Err((format!("'{t}' is not an IPv4 address"), hint.into()));
    };
    let len = match len {
        None => 32,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= 32 => n,
            _ => {
                return Err((
                    format!("'{t}' has an invalid prefix length"),
                    "IPv4 prefix lengths are 0 to 32".into(),
                ));
            }
        },
    };
    let net = Ipv4Net::new(ip, len).map_err(|_| (format!("'{t}' is invalid"), String::new()))?;
    if net.trunc() != net {
        return Err((
            format!("'{t}' has host bits set beyond /{len}"),
            format!("use {} for the whole prefix, or {ip}/32 for this one host", net.trunc()),
        ));
    }
    Ok(net)
}

pub(crate) fn parse_v6(t: &str) -> Result<Ipv6Net, IpErr> {
    let (addr, len) = match t.split_once('/') {
        Some((a, l)) => (a.trim(), Some(l.trim())),
        None => (t, None),
    };
    let Ok(ip) = addr.parse::<Ipv6Addr>() else {
        let hint = if addr.parse::<Ipv4Addr>().is_ok() {
            "this is an IPv4 address: put it in the IPv4 column"
        } else {
            "write an address like 2001:db8::10 or a prefix like 2001:db8:1::/56"
        };
        return Err((format!("'{t}' is not an IPv6 address"), hint.into()));
    };
    let len = match len {
        None => 128,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= 128 => n,
            _ => {
                return Err((
                    format!("'{t}' has an invalid prefix length"),
                    "IPv6 prefix lengths are 0 to 128".into(),
                ));
            }
        },
    };
    let net = Ipv6Net::new(ip, len).map_err(|_| (format!("'{t}' is invalid"), String::new()))?;
    if net.trunc() != net {
        return Err((
            format!("'{t}' has host bits set beyond /{len}"),
            format!("use {} for the whole prefix, or {ip}/128 for this one host", net.trunc()),
        ));
    }
    Ok(net)
}

/// One parsed row, before grouping.
struct Row {
    circuit_id: String,
    circuit_name: String,
    parent_node: Option<String>,
    parent_node_id: Option<String>,
    anchor_node_id: Option<String>,
    rates: [RateKbit; 4],
    sqm: Option<SqmOverride>,
    device: Device,
}

fn opt(s: &str) -> Option<String> {
    if s.is_empty() { None } else { Some(s.to_string()) }
}

/// Parses one row; the flag is true when a field had an error (already reported). Such a row
/// keeps the fields that parsed (rates that failed are 0, addresses that failed are missing)
/// so the cross-file checks can still look at its parent and addresses.
fn parse_row(
    cx: &mut Cx<'_>,
    layout: &Layout,
    rec: &csv::StringRecord,
    line: usize,
) -> (Row, bool) {
    // Fields are trimmed here rather than by csv (its trim re-allocates every record).
    let get = |c: Col| layout.index[c as usize].and_then(|i| rec.get(i)).unwrap_or("").trim();
    let errors_before = cx.errors;

    let circuit_id = get(Col::CircuitId);
    if circuit_id.is_empty() {
        cx.error(
            line,
            Col::CircuitId,
            "Circuit ID is empty".into(),
            Some("every row needs a Circuit ID; rows of one subscriber share it".into()),
        );
    }
    let mut rates = [RateKbit(0); 4];
    for (i, c) in [Col::DownMin, Col::UpMin, Col::DownMax, Col::UpMax].into_iter().enumerate() {
        match parse_rate(get(c)) {
            Ok(r) => rates[i] = r,
            Err(msg) => cx.error(line, c, msg, Some("rates are Mbps, at least 0.01".into())),
        }
    }
    for (min, max, cmin, cmax) in
        [(0, 2, Col::DownMin, Col::DownMax), (1, 3, Col::UpMin, Col::UpMax)]
    {
        if rates[min].0 > 0 && rates[max].0 > 0 && rates[min] > rates[max] {
            cx.error(
                line,
                cmin,
                format!(
                    "{} ({}) is greater than {} ({})",
                    cmin.name(),
                    get(cmin),
                    cmax.name(),
                    get(cmax)
                ),
                Some("the guaranteed (min) rate cannot exceed the ceiling (max)".into()),
            );
        }
    }
    // One diagnostic per bad address, up to MAX_ADDRESS_ERRORS_PER_CELL, then one summary: a
    // cell of hundreds of bad addresses must not flood the report (found by fuzzing).
    let mut ipv4 = Vec::new();
    let mut bad = 0usize;
    for t in split_list(get(Col::Ipv4)) {
        match parse_v4(t) {
            Ok(n) => ipv4.push(n),
            Err((msg, hint)) => {
                bad = bad.saturating_add(1);
                if bad <= MAX_ADDRESS_ERRORS_PER_CELL {
                    cx.error(line, Col::Ipv4, msg, Some(hint));
                }
            }
        }
    }
    if bad > MAX_ADDRESS_ERRORS_PER_CELL {
        let more = bad - MAX_ADDRESS_ERRORS_PER_CELL;
        cx.error(line, Col::Ipv4, format!("and {more} more invalid IPv4 addresses"), None);
    }
    let mut ipv6 = Vec::new();
    let mut bad = 0usize;
    for t in split_list(get(Col::Ipv6)) {
        match parse_v6(t) {
            Ok(n) => ipv6.push(n),
            Err((msg, hint)) => {
                bad = bad.saturating_add(1);
                if bad <= MAX_ADDRESS_ERRORS_PER_CELL {
                    cx.error(line, Col::Ipv6, msg, Some(hint));
                }
            }
        }
    }
    if bad > MAX_ADDRESS_ERRORS_PER_CELL {
        let more = bad - MAX_ADDRESS_ERRORS_PER_CELL;
        cx.error(line, Col::Ipv6, format!("and {more} more invalid IPv6 addresses"), None);
    }
    let sqm = match parse_sqm_override(get(Col::Sqm)) {
        Ok(s) => s,
        Err(msg) => {
            cx.error(
                line,
                Col::Sqm,
                msg,
                Some(
                    "use cake, fq_codel or none, optionally with tc options (cake diffserv8 nat), \
                     or down/up such as cake/fq_codel"
                        .into(),
                ),
            );
            None
        }
    };
    let failed = cx.errors > errors_before;
    let parent = get(Col::ParentNode);
    let mac = match get(Col::Mac) {
        "" => get(Col::RadiusUser),
        m => m,
    };
    let row = Row {
        circuit_id: circuit_id.to_string(),
        circuit_name: get(Col::CircuitName).to_string(),
        parent_node: if parent.is_empty() || parent.eq_ignore_ascii_case("none") {
            None
        } else {
            Some(parent.to_string())
        },
        parent_node_id: opt(get(Col::ParentNodeId)),
        anchor_node_id: opt(get(Col::AnchorNodeId)),
        rates,
        sqm,
        device: Device {
            id: get(Col::DeviceId).to_string(),
            name: get(Col::DeviceName).to_string(),
            mac: mac.to_string(),
            ipv4,
            ipv6,
            comment: get(Col::Comment).to_string(),
            line,
        },
    };
    (row, failed)
}

/// Adds a row to its circuit (or starts one). A row naming a different parent than its
/// circuit's first row is reported and handed back for the rejected list.
fn add_row(
    cx: &mut Cx<'_>,
    circuits: &mut Vec<Circuit>,
    by_id: &mut HashMap<String, usize>,
    row: Row,
) -> Option<Row> {
    let line = row.device.line;
    if let Some(&i) = by_id.get(&row.circuit_id) {
        let c = &mut circuits[i];
        let first = c.line;
        let mut conflict = false;
        for (col, mine, theirs) in [
            (Col::ParentNode, &row.parent_node, &c.parent_node),
            (Col::ParentNodeId, &row.parent_node_id, &c.parent_node_id),
            (Col::AnchorNodeId, &row.anchor_node_id, &c.anchor_node_id),
        ] {
            let differs = if col == Col::ParentNode {
                mine != theirs
            } else {
                mine.is_some() && theirs.is_some() && mine != theirs
            };
            if differs {
                cx.error(
                    line,
                    col,
                    format!(
                        "circuit '{}' has {} '{}' here but '{}' at line {first}",
                        row.circuit_id,
                        col.name(),
                        mine.as_deref().unwrap_or(""),
                        theirs.as_deref().unwrap_or("")
                    ),
                    Some("all rows (devices) of one circuit must name the same parent".into()),
                );
                conflict = true;
            }
        }
        if conflict {
            return Some(row);
        }
        let theirs = [c.download_min, c.upload_min, c.download_max, c.upload_max];
        if row.rates != theirs || row.sqm != c.sqm {
            cx.warn(
                line,
                Col::DownMax,
                format!(
                    "circuit '{}' has different rates or sqm here than at line {first}; the \
                     first row's values are used",
                    row.circuit_id
                ),
                Some("give every row of a circuit the same rates".into()),
            );
        }
        c.devices.push(row.device);
    } else {
        by_id.insert(row.circuit_id.clone(), circuits.len());
        circuits.push(row.into_circuit());
    }
    None
}

impl Row {
    fn into_circuit(self) -> Circuit {
        let line = self.device.line;
        Circuit {
            id: CircuitId(self.circuit_id),
            name: self.circuit_name,
            parent_node: self.parent_node,
            parent_node_id: self.parent_node_id,
            anchor_node_id: self.anchor_node_id,
            download_min: self.rates[0],
            upload_min: self.rates[1],
            download_max: self.rates[2],
            upload_max: self.rates[3],
            sqm: self.sqm,
            devices: vec![self.device],
            line,
        }
    }
}

/// ShapedDevices.csv parsed, with the rows that were left out (see [`parse_shaped_devices`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShapedDevices {
    /// Circuits from rows without errors, grouped by Circuit ID (the ones to plan).
    pub circuits: Vec<Circuit>,
    /// Rows left out because of a field error (S5–S10) or a parent conflict (S11), one
    /// single-device circuit per row holding whatever did parse: rates that failed are 0,
    /// addresses that failed are missing. Only for the cross-file checks
    /// ([`crate::validate::validate_inputs_with_rejected`]); never plan them. Rows with the
    /// wrong number of fields (S4) are not here: their fields cannot be trusted.
    pub rejected: Vec<Circuit>,
    /// Every problem found in the file.
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses ShapedDevices.csv text, keeping the rejected rows for the cross-file checks so one
/// run reports every problem (a row with a bad rate is still checked for an unknown parent
/// and for addresses used by another circuit). `label` names the file in diagnostics.
pub fn parse_shaped_devices(text: &str, label: &str) -> ShapedDevices {
    let (circuits, rejected, diagnostics) = parse_impl(text, label);
    ShapedDevices { circuits, rejected, diagnostics }
}

/// The line of a record starting at `byte`. csv may report the offset of the previous line's
/// terminator (CRLF) or of comment lines before the record, so those are skipped first.
fn line_at(text: &str, lines: &LineIndex, byte: u64) -> usize {
    let mut i = usize::try_from(byte).unwrap_or(usize::MAX).min(text.len());
    let b = text.as_bytes();
    loop {
        while i < b.len() && (b[i] == b'\r' || b[i] == b'\n') {
            i += 1;
        }
        // csv also reports the start of skipped comment lines before the record.
        if i < b.len() && b[i] == b'#' {
            match b[i..].iter().position(|&c| c == b'\n') {
                Some(n) => i += n + 1,
                None => i = b.len(),
            }
        } else {
            break;
        }
    }
    lines.line(i)
}

/// Parses ShapedDevices.csv text. `label` names the file in diagnostics. Rows with errors are
/// left out of the result; every problem is in the returned diagnostics.
///
/// Accepts a header matched by normalised name (any order, aliases), or no header with the
/// legacy 13/14-column or current 15/16-column positional layout. `#` lines are comments.
///
/// The rows left out are dropped; use [`parse_shaped_devices`] to keep them for
/// [`crate::validate::validate_inputs_with_rejected`], as [`crate::load_inputs`] does.
pub fn parse_shaped_devices_str(text: &str, label: &str) -> (Vec<Circuit>, Vec<Diagnostic>) {
    let (circuits, _, diags) = parse_impl(text, label);
    (circuits, diags)
}

fn parse_impl(text: &str, label: &str) -> (Vec<Circuit>, Vec<Circuit>, Vec<Diagnostic>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // csv's own line counter skips comment lines and miscounts CRLF; map byte offsets instead.
    let lines = LineIndex::new(text);
    let mut cx = Cx { label, diags: Vec::new(), errors: 0 };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let mut rec = csv::StringRecord::new();
    let mut layout: Option<Layout> = None;
    let mut circuits: Vec<Circuit> = Vec::new();
    // Rows left out (field errors, parent conflicts), kept for the cross-file checks only.
    let mut rejected: Vec<Circuit> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    // Lines of rows accepted with a field count other than the layout's (one warning).
    let mut odd_width: Vec<usize> = Vec::new();
    loop {
        match reader.read_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(1, |p| line_at(text, &lines, p.byte()));
                cx.diags.push(
                    Diagnostic::error(label, format!("unreadable CSV: {e}")).at_line(line.max(1)),
                );
                break;
            }
        }
        let line = rec.position().map_or(1, |p| line_at(text, &lines, p.byte()));
        if rec.get(0).is_some_and(|f| f.trim_start().starts_with('#'))
            || rec.iter().all(|f| f.trim().is_empty())
        {
            continue;
        }
        let Some(lay) = &layout else {
            let is_header = rec.iter().any(|c| normalise(c) == "circuitid");
            if is_header {
                match header_layout(&mut cx, &rec, line) {
                    Some(l) => layout = Some(l),
                    None => return (Vec::new(), Vec::new(), cx.diags),
                }
                continue;
            }
            let l = match rec.len() {
                13 | 14 => Layout::positional(&LEGACY, rec.len()),
                15 | 16 => Layout::positional(&CURRENT, rec.len()),
                n => {
                    cx.diags.push(
                        Diagnostic::error(
                            label,
                            format!(
                                "cannot tell the layout of a row with {n} fields and no header"
                            ),
                        )
                        .at_line(line)
                        .hint(format!(
                            "add the header line: {} (or use the legacy 13/14-column layout)",
                            CSV_HEADER.join(",")
                        )),
                    );
                    return (Vec::new(), Vec::new(), cx.diags);
                }
            };
            layout = Some(l);
            let Some(lay) = &layout else { continue };
            let (row, failed) = parse_row(&mut cx, lay, &rec, line);
            let left_out =
                if failed { Some(row) } else { add_row(&mut cx, &mut circuits, &mut by_id, row) };
            if let Some(row) = left_out {
                rejected.push(row.into_circuit());
            }
            continue;
        };
        if rec.len() != lay.width && !lay.tolerates(&rec) {
            cx.diags.push(
                Diagnostic::error(
                    label,
                    format!("wrong number of fields: expected {}, found {}", lay.width, rec.len()),
                )
                .at_line(line)
                .hint(width_hint(lay, rec.len())),
            );
            continue;
        }
        if rec.len() != lay.width {
            odd_width.push(line);
        }
        let (row, failed) = parse_row(&mut cx, lay, &rec, line);
        let left_out =
            if failed { Some(row) } else { add_row(&mut cx, &mut circuits, &mut by_id, row) };
        if let Some(row) = left_out {
            rejected.push(row.into_circuit());
        }
    }
    if let (Some(lay), Some(&first)) = (&layout, odd_width.first()) {
        cx.diags.push(
            Diagnostic::warning(
                label,
                format!(
                    "{} row(s) do not have the header's {} fields but lack only trailing \
                     optional columns (Comment, sqm) or carry extra empty fields: lines {}; \
                     read with the missing fields empty",
                    odd_width.len(),
                    lay.width,
                    line_list(&odd_width)
                ),
            )
            .at_line(first)
            .hint("LibreQoS reads these rows the same way; rewrite the file to silence this"),
        );
    }
    (circuits, rejected, cx.diags)
}

/// Formats kbit/s as Mbps with no trailing zeros (`1150`, `2.5`, `0.01`), exactly.
pub(crate) fn mbps_text(r: RateKbit) -> String {
    let (whole, frac) = (r.0 / 1000, r.0 % 1000);
    if frac == 0 {
        whole.to_string()
    } else {
        let f = format!("{frac:03}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    }
}

/// Writes circuits as ShapedDevices.csv with the 16-column header (one row per device).
/// [`parse_shaped_devices_str`] gives back the same circuits (apart from line numbers).
pub fn shaped_devices_to_string(circuits: &[Circuit]) -> String {
    let mut w =
        csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    let mut out: Result<(), csv::Error> = w.write_record(CSV_HEADER);
    for c in circuits {
        let sqm = format_sqm_override(c.sqm.as_ref());
        let rates = [c.download_min, c.upload_min, c.download_max, c.upload_max].map(mbps_text);
        for d in &c.devices {
            let v4 = d.ipv4.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            let v6 = d.ipv6.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            let rec: [&str; 16] = [
                &c.id.0,
                &c.name,
                &d.id,
                &d.name,
                c.parent_node.as_deref().unwrap_or(""),
                c.parent_node_id.as_deref().unwrap_or(""),
                c.anchor_node_id.as_deref().unwrap_or(""),
                &d.mac,
                &v4,
                &v6,
                &rates[0],
                &rates[1],
                &rates[2],
                &rates[3],
                &d.comment,
                &sqm,
            ];
            out = out.and_then(|()| w.write_record(rec));
        }
    }
    // Writing into a Vec cannot fail; keep whatever was produced if it somehow did.
    let _ = out;
    match w.into_inner() {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => String::from_utf8_lossy(e.into_inner().get_ref()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbps_text_is_exact() {
        assert_eq!(mbps_text(RateKbit(1_150_000)), "1150");
        assert_eq!(mbps_text(RateKbit(2_500)), "2.5");
        assert_eq!(mbps_text(RateKbit(10)), "0.01");
        assert_eq!(mbps_text(RateKbit(1_234_567)), "1234.567");
    }

    #[test]
    fn host_bits_beyond_prefix_are_rejected_with_a_hint() {
        let (msg, hint) = parse_v4("100.64.0.5/29").unwrap_err();
        assert!(msg.contains("host bits"));
        assert!(hint.contains("100.64.0.0/29") && hint.contains("100.64.0.5/32"));
        assert_eq!(parse_v6("2001:db8::").unwrap().prefix_len(), 128);
        assert_eq!(parse_v6("2001:db8::/32").unwrap().prefix_len(), 32);
    }
}
