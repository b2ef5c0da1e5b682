//! lqtop: a terminal live view of lqosd over the bus — total download/upload (shaped and
//! unshaped), drops, scheduler phase and a table of circuits or nodes with their rates, TCP
//! round-trip time (p50/p90 on the access path) and retransmit ratio, refreshed every second.
//! It only sends read commands (`Status`, `TopCircuits`, `NodeStats`) and never changes
//! anything; it links the bus crate, never lqosd.
//!
//! Main pieces: [`Snapshot`] (one refresh worth of data), [`fetch`] (bus → snapshot),
//! [`Entry`] (one table row, built from a circuit or a node), [`sort_entries`] (the order of
//! the table for a [`SortKey`]), [`draw`] (snapshot + [`Ui`] → frame; pure, tested with
//! ratatui's `TestBackend`), [`Ui::key`] (key → new view/sort), [`run`] (the loop).
//!
//! Sorting rule: numbers sort worst (largest) first, rows without a value (no RTT sample, no
//! TCP packet) after every row with one, ties by name; the name key sorts A→Z. The circuit
//! view sorts the [`CIRCUIT_POOL`] busiest circuits (what `TopCircuits` returns), so at any
//! size one refresh stays one bounded answer; the node view sorts every node.
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::cmp::Ordering;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use lqos_bus::{BusClient, CircuitStat, Command, DaemonStatus, NodeStat, Qoe, Response};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

/// Command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "lqtop",
    version,
    about = "Live view of lqosd: total rates, circuits and nodes with rates, TCP RTT and \
             retransmits, refreshed every second (q quits, v switches circuits/nodes, \
             d/u/5/9/r/x/n sort)"
)]
pub struct Args {
    /// lqosd's bus socket (default: $LQOS_BUS, else /run/lqos/bus).
    #[arg(long, value_name = "PATH")]
    pub bus: Option<std::path::PathBuf>,
}

/// How often lqtop asks lqosd.
pub const REFRESH: Duration = Duration::from_secs(1);

/// How many of the busiest circuits the circuit view asks for and sorts.
pub const CIRCUIT_POOL: usize = 1000;

/// Which table is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// One row per circuit.
    #[default]
    Circuits,
    /// One row per node (site, AP).
    Nodes,
}

/// What the table is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Download rate, largest first.
    #[default]
    Down,
    /// Upload rate, largest first.
    Up,
    /// p50 access-path RTT over 60 s, largest first.
    RttP50,
    /// p90 access-path RTT over 60 s, largest first.
    RttP90,
    /// Retransmit ratio over 60 s (both directions), largest first.
    Retransmits,
    /// Queue drops, largest first.
    Drops,
    /// Name, A→Z.
    Name,
}

impl SortKey {
    /// Every key, in the order the footer lists them.
    pub const ALL: [SortKey; 7] = [
        SortKey::Down,
        SortKey::Up,
        SortKey::RttP50,
        SortKey::RttP90,
        SortKey::Retransmits,
        SortKey::Drops,
        SortKey::Name,
    ];

    /// The key that selects it.
    pub fn key(self) -> char {
        match self {
            SortKey::Down => 'd',
            SortKey::Up => 'u',
            SortKey::RttP50 => '5',
            SortKey::RttP90 => '9',
            SortKey::Retransmits => 'r',
            SortKey::Drops => 'x',
            SortKey::Name => 'n',
        }
    }

    /// The key for a typed character.
    pub fn from_char(c: char) -> Option<SortKey> {
        SortKey::ALL.into_iter().find(|k| k.key() == c)
    }

    /// The column header it sorts (as [`draw`] names it).
    pub fn column(self) -> &'static str {
        match self {
            SortKey::Down => "Down",
            SortKey::Up => "Up",
            SortKey::RttP50 => "p50",
            SortKey::RttP90 => "p90",
            SortKey::Retransmits => "Retx",
            SortKey::Drops => "Drops",
            SortKey::Name => "Name",
        }
    }
}

/// What the user picked: view and sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ui {
    /// Circuits or nodes.
    pub view: View,
    /// Sort key of the table.
    pub sort: SortKey,
}

/// What a key press asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    /// Quit lqtop.
    Quit,
    /// Redraw with the new view/sort; `refetch` when the view changed (other data needed).
    Changed {
        /// The view changed, so new data must be fetched now.
        refetch: bool,
    },
    /// Nothing to do.
    Ignored,
}

impl Ui {
    /// Applies a typed character: `q` quits, `v` (or Tab, see [`run`]) switches the view, a
    /// sort key ([`SortKey::key`]) sorts.
    pub fn key(&mut self, c: char) -> KeyAction {
        if c == 'q' {
            return KeyAction::Quit;
        }
        if c == 'v' || c == '\t' {
            self.view = match self.view {
                View::Circuits => View::Nodes,
                View::Nodes => View::Circuits,
            };
            return KeyAction::Changed { refetch: true };
        }
        match SortKey::from_char(c) {
            Some(k) => {
                self.sort = k;
                KeyAction::Changed { refetch: false }
            }
            None => KeyAction::Ignored,
        }
    }
}

/// One refresh worth of data.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// lqosd's status, when it answered.
    pub status: Option<DaemonStatus>,
    /// Busiest circuits (circuit view).
    pub top: Vec<CircuitStat>,
    /// Every node (node view).
    pub nodes: Vec<NodeStat>,
    /// Why the last refresh failed.
    pub error: Option<String>,
}

/// lqtop failures.
#[derive(Debug, thiserror::Error)]
pub enum LqtopError {
    /// The terminal could not be driven.
    #[error("terminal i/o failed")]
    Terminal {
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Asks lqosd for status and the data `view` shows (the [`CIRCUIT_POOL`] busiest circuits, or
/// every node); errors end up in [`Snapshot::error`].
pub fn fetch(bus: &mut BusClient, view: View) -> Snapshot {
    let mut snap = Snapshot::default();
    match bus.request(&Command::Status) {
        Ok(Response::Status(s)) => snap.status = Some(*s),
        Ok(Response::Error(e)) => snap.error = Some(e.to_string()),
        Ok(_) => snap.error = Some("unexpected answer to Status".into()),
        Err(e) => snap.error = Some(format!("{e}")),
    }
    if snap.error.is_some() {
        return snap;
    }
    let (cmd, what) = match view {
        View::Circuits => (Command::TopCircuits { n: CIRCUIT_POOL }, "TopCircuits"),
        View::Nodes => (Command::NodeStats, "NodeStats"),
    };
    match bus.request(&cmd) {
        Ok(Response::Circuits(c)) if view == View::Circuits => snap.top = c,
        Ok(Response::Nodes(n)) if view == View::Nodes => snap.nodes = n,
        Ok(Response::Error(e)) => snap.error = Some(e.to_string()),
        Ok(_) => snap.error = Some(format!("unexpected answer to {what}")),
        Err(e) => snap.error = Some(format!("{e}")),
    }
    snap
}

/// One table row: a circuit or a node reduced to what lqtop shows and sorts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Entry {
    /// Circuit name (its ID when unnamed) or node name.
    pub name: String,
    /// Circuit: parent node. Node: `N circ`.
    pub detail: String,
    /// Download rate, bits/s.
    pub down_bps: u64,
    /// Upload rate, bits/s.
    pub up_bps: u64,
    /// Download ceiling, kbit/s.
    pub down_max_kbit: u64,
    /// Upload ceiling, kbit/s.
    pub up_max_kbit: u64,
    /// p50 access-path RTT over 60 s, ms (`None` = no sample).
    pub rtt_p50_ms: Option<f64>,
    /// p90 access-path RTT over 60 s, ms.
    pub rtt_p90_ms: Option<f64>,
    /// Retransmits / TCP packets over 60 s, both directions (`None` = no TCP packet).
    pub retx_ratio: Option<f64>,
    /// Queue drops.
    pub drops: u64,
}

fn quality(q: Option<&Qoe>) -> (Option<f64>, Option<f64>, Option<f64>) {
    let Some(q) = q else { return (None, None, None) };
    let access = q.rtt_ms.access.filter(|a| a.samples > 0);
    let packets = q.tcp_packets_60s.down.saturating_add(q.tcp_packets_60s.up);
    let retx = q.retransmits_60s.down.saturating_add(q.retransmits_60s.up);
    let ratio = (packets > 0).then(|| retx as f64 / packets as f64);
    (access.map(|a| a.p50), access.map(|a| a.p90), ratio)
}

impl Entry {
    /// A circuit's row.
    pub fn circuit(c: &CircuitStat) -> Entry {
        let (rtt_p50_ms, rtt_p90_ms, retx_ratio) = quality(c.qoe.as_ref());
        Entry {
            name: if c.name.is_empty() { c.id.clone() } else { c.name.clone() },
            detail: c.parent.clone(),
            down_bps: c.download_bps,
            up_bps: c.upload_bps,
            down_max_kbit: c.download_max_kbit,
            up_max_kbit: c.upload_max_kbit,
            rtt_p50_ms,
            rtt_p90_ms,
            retx_ratio,
            drops: c.drops,
        }
    }

    /// A node's row.
    pub fn node(n: &NodeStat) -> Entry {
        let (rtt_p50_ms, rtt_p90_ms, retx_ratio) = quality(n.qoe.as_ref());
        Entry {
            name: n.name.clone(),
            detail: format!("{} circ", n.circuits),
            down_bps: n.download_bps,
            up_bps: n.upload_bps,
            down_max_kbit: n.download_max_kbit,
            up_max_kbit: n.upload_max_kbit,
            rtt_p50_ms,
            rtt_p90_ms,
            retx_ratio,
            drops: n.drops,
        }
    }
}

/// Largest first, `None` last, NaN treated as absent.
fn desc_opt(a: Option<f64>, b: Option<f64>) -> Ordering {
    let clean = |v: Option<f64>| v.filter(|x| !x.is_nan());
    match (clean(a), clean(b)) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Sorts `entries` by `key` (see the module doc for the rule).
pub fn sort_entries(entries: &mut [Entry], key: SortKey) {
    entries.sort_by(|a, b| {
        let primary = match key {
            SortKey::Down => b.down_bps.cmp(&a.down_bps),
            SortKey::Up => b.up_bps.cmp(&a.up_bps),
            SortKey::RttP50 => desc_opt(a.rtt_p50_ms, b.rtt_p50_ms),
            SortKey::RttP90 => desc_opt(a.rtt_p90_ms, b.rtt_p90_ms),
            SortKey::Retransmits => desc_opt(a.retx_ratio, b.retx_ratio),
            SortKey::Drops => b.drops.cmp(&a.drops),
            SortKey::Name => Ordering::Equal,
        };
        primary.then_with(|| a.name.cmp(&b.name))
    });
}

/// `812.3M`-style rate (bits/s).
pub fn rate(bps: u64) -> String {
    let units = ["", "k", "M", "G", "T"];
    let mut v = bps as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 { format!("{bps}") } else { format!("{v:.1}{}", units[i]) }
}

/// A plan rate given in kbit/s, without a `.0`: `100M`, `2.5G`.
pub fn plan(kbit: u64) -> String {
    let r = rate(kbit.saturating_mul(1000));
    match r.find(".0") {
        Some(i) if r.len() == i + 3 => format!("{}{}", &r[..i], &r[i + 2..]),
        _ => r,
    }
}

/// RTT in ms, three significant digits at most, `-` without a sample.
pub fn ms(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() && x >= 0.0 => {
            if x < 10.0 {
                format!("{x:.2}")
            } else if x < 100.0 {
                format!("{x:.1}")
            } else if x < 100_000.0 {
                format!("{x:.0}")
            } else {
                ">99999".into()
            }
        }
        _ => "-".into(),
    }
}

/// A ratio (0..=1) as a percentage, `-` without a value.
pub fn percent(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() && x >= 0.0 => {
            let p = x * 100.0;
            if p < 10.0 { format!("{p:.2}%") } else { format!("{p:.0}%") }
        }
        _ => "-".into(),
    }
}

/// Utilisation of a ceiling: `45%`, `-` when there is no ceiling.
pub fn utilisation(bps: u64, max_kbit: u64) -> String {
    if max_kbit == 0 {
        return "-".into();
    }
    let p = bps as f64 / (max_kbit as f64 * 1000.0) * 100.0;
    format!("{p:.0}%")
}

fn truncate(s: &str, max: usize) -> String {
    // Control characters (a name is operator text) would move the cursor: show them as '?'.
    let clean: String = s.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    if clean.chars().count() <= max {
        clean
    } else {
        let mut t: String = clean.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The footer: keys, and which key sorts which column.
pub fn footer(ui: &Ui) -> String {
    let keys: Vec<String> =
        SortKey::ALL.iter().map(|k| format!("{}:{}", k.key(), k.column())).collect();
    let other = match ui.view {
        View::Circuits => "nodes",
        View::Nodes => "circuits",
    };
    format!("q:quit v:{other} sort {}", keys.join(" "))
}

/// Draws one snapshot. Fits 80×24; smaller terminals get fewer rows, never a panic.
pub fn draw(frame: &mut Frame, snap: &Snapshot, ui: &Ui) {
    let [head, body, foot] =
        Layout::vertical([Constraint::Length(4), Constraint::Min(0), Constraint::Length(1)])
            .areas(frame.area());
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let mut lines = Vec::new();
    match &snap.status {
        Some(s) => {
            let unshaped = s.download_bps.saturating_sub(s.shaped_download_bps);
            lines.push(Line::from(vec![
                Span::styled("Down ", bold),
                Span::styled(
                    format!("{:>8}bps", rate(s.download_bps)),
                    Style::default().fg(Color::Cyan),
                ),
                Span::raw("  "),
                Span::styled("Up ", bold),
                Span::styled(
                    format!("{:>8}bps", rate(s.upload_bps)),
                    Style::default().fg(Color::Yellow),
                ),
                Span::raw(format!(
                    "  shaped {}bps  unshaped {}bps",
                    rate(s.shaped_download_bps),
                    rate(unshaped)
                )),
            ]));
            let sched = s.scheduler.as_ref().map(|x| x.phase.as_str()).unwrap_or("not reporting");
            lines.push(Line::from(format!(
                "{} circuits  {} nodes  drops {}  scheduler {}  lqosd {} up {}m",
                s.circuits,
                s.nodes,
                s.drops,
                truncate(sched, 20),
                truncate(&s.version, 20),
                s.uptime_secs / 60
            )));
        }
        None => lines.push(Line::from(Span::styled(
            "no data from lqosd yet",
            Style::default().fg(Color::Red),
        ))),
    }
    if let Some(e) = &snap.error {
        lines.push(Line::from(Span::styled(truncate(e, 200), Style::default().fg(Color::Red))));
    } else if let Some(w) = snap.status.as_ref().and_then(|s| s.warnings.first()) {
        lines.push(Line::from(Span::styled(
            format!("warning: {}", truncate(w, 200)),
            Style::default().fg(Color::Yellow),
        )));
    }
    let title = match ui.view {
        View::Circuits => " lqtop · circuits (p50/p90: access RTT ms, Retx: ratio; 60 s) ",
        View::Nodes => " lqtop · nodes (p50/p90: access RTT ms, Retx: ratio; 60 s) ",
    };
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::BOTTOM).title(title)),
        head,
    );

    let mut entries: Vec<Entry> = match ui.view {
        View::Circuits => snap.top.iter().map(Entry::circuit).collect(),
        View::Nodes => snap.nodes.iter().map(Entry::node).collect(),
    };
    sort_entries(&mut entries, ui.sort);
    entries.truncate(usize::from(body.height.saturating_sub(1)));
    let (name_col, detail_col, plan_col) = match ui.view {
        View::Circuits => ("Circuit", "Parent", "Plan"),
        View::Nodes => ("Node", "Size", "Util"),
    };
    let header_names =
        [name_col, detail_col, "Down", "Up", plan_col, "p50", "p90", "Retx", "Drops"];
    let sorted_col = match ui.sort {
        SortKey::Name => name_col,
        k => k.column(),
    };
    let header = Row::new(header_names.map(|h| {
        if h == sorted_col {
            Cell::from(format!("{h}▼")).style(bold.fg(Color::Green))
        } else {
            Cell::from(h).style(bold)
        }
    }));
    let rows = entries.iter().map(|e| {
        let third = match ui.view {
            View::Circuits => format!("{}/{}", plan(e.down_max_kbit), plan(e.up_max_kbit)),
            View::Nodes => format!(
                "{}/{}",
                utilisation(e.down_bps, e.down_max_kbit),
                utilisation(e.up_bps, e.up_max_kbit)
            ),
        };
        Row::new([
            Cell::from(truncate(&e.name, 40)),
            Cell::from(truncate(&e.detail, 30)),
            Cell::from(format!("{:>6}", rate(e.down_bps))),
            Cell::from(format!("{:>6}", rate(e.up_bps))),
            Cell::from(third),
            Cell::from(format!("{:>5}", ms(e.rtt_p50_ms))),
            Cell::from(format!("{:>5}", ms(e.rtt_p90_ms))),
            Cell::from(format!("{:>5}", percent(e.retx_ratio))),
            Cell::from(format!("{:>5}", e.drops)),
        ])
    });
    let widths = [
        Constraint::Fill(3),
        Constraint::Fill(2),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(6),
    ];
    frame.render_widget(Table::new(rows, widths).header(header), body);
    frame.render_widget(Paragraph::new(footer(ui)), foot);
}

/// Runs the live view until `q`, Esc or Ctrl-C.
pub fn run(bus_path: &std::path::Path) -> Result<(), LqtopError> {
    let mut terminal = ratatui::try_init().map_err(|source| LqtopError::Terminal { source })?;
    let result = (|| {
        let mut bus: Option<BusClient> = None;
        let mut snap = Snapshot::default();
        let mut ui = Ui::default();
        let mut next = Instant::now();
        loop {
            if Instant::now() >= next {
                if bus.is_none() {
                    match BusClient::connect(bus_path) {
                        Ok(mut b) => {
                            let _ = b.set_timeout(Some(Duration::from_secs(2)));
                            bus = Some(b);
                        }
                        Err(e) => snap = Snapshot { error: Some(e.to_string()), ..snap },
                    }
                }
                if let Some(b) = bus.as_mut() {
                    snap = fetch(b, ui.view);
                    if snap.error.is_some() {
                        bus = None;
                    }
                }
                next = Instant::now() + REFRESH;
            }
            terminal
                .draw(|f| draw(f, &snap, &ui))
                .map_err(|source| LqtopError::Terminal { source })?;
            let wait = next.saturating_duration_since(Instant::now());
            if event::poll(wait).map_err(|source| LqtopError::Terminal { source })?
                && let Event::Key(k) =
                    event::read().map_err(|source| LqtopError::Terminal { source })?
                && k.kind == KeyEventKind::Press
            {
                let typed = match k.code {
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => 'q',
                    KeyCode::Esc => 'q',
                    KeyCode::Tab => '\t',
                    KeyCode::Char(c) => c,
                    _ => continue,
                };
                match ui.key(typed) {
                    KeyAction::Quit => return Ok(()),
                    KeyAction::Changed { refetch: true } => {
                        // Show the other table's data at once, not after the next tick.
                        snap.top.clear();
                        snap.nodes.clear();
                        next = Instant::now();
                    }
                    KeyAction::Changed { refetch: false } | KeyAction::Ignored => {}
                }
            }
        }
    })();
    ratatui::restore();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use lqos_bus::{PerDirection, RttPaths, RttSummary};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn text(t: &Terminal<TestBackend>) -> String {
        let buf = t.backend().buffer();
        let w = (buf.area.width as usize).max(1);
        buf.content
            .chunks(w)
            .map(|row| row.iter().map(|c| c.symbol()).collect::<String>() + "\n")
            .collect()
    }

    fn qoe(p50: f64, p90: f64, retx: u64, packets: u64) -> Qoe {
        let s = RttSummary { p50, p90, p99: p90 * 2.0, samples: 10, sum_ms: p50 * 10.0 };
        Qoe {
            rtt_ms: RttPaths { access: Some(s), upstream: None },
            retransmits_60s: PerDirection { down: retx, up: 0 },
            tcp_packets_60s: PerDirection { down: packets, up: 0 },
            ..Default::default()
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            status: Some(DaemonStatus {
                version: "0.1.0".into(),
                download_bps: 812_300_000,
                upload_bps: 96_000_000,
                shaped_download_bps: 700_000_000,
                circuits: 1234,
                nodes: 12,
                ..Default::default()
            }),
            top: (0..40)
                .map(|i| CircuitStat {
                    id: format!("c{i}"),
                    name: format!("Sub{i:02} with a rather long name"),
                    parent: "AP-1".into(),
                    download_bps: 100_000_000 - i * 1000,
                    download_max_kbit: 100_000,
                    upload_max_kbit: 20_000,
                    qoe: (i < 3).then(|| qoe(1.5 + i as f64 * 10.0, 30.0 - i as f64, i, 1000)),
                    ..Default::default()
                })
                .collect(),
            nodes: vec![
                NodeStat {
                    name: "AP-1".into(),
                    download_max_kbit: 200_000,
                    upload_max_kbit: 50_000,
                    download_bps: 90_000_000,
                    upload_bps: 5_000_000,
                    circuits: 40,
                    drops: 7,
                    qoe: Some(qoe(4.0, 48.5, 25, 1000)),
                    ..Default::default()
                },
                NodeStat {
                    name: "Site-B".into(),
                    download_max_kbit: 1_000_000,
                    upload_max_kbit: 1_000_000,
                    download_bps: 10_000_000,
                    circuits: 2,
                    ..Default::default()
                },
            ],
            error: None,
        }
    }

    fn render(snap: &Snapshot, ui: &Ui, w: u16, h: u16) -> String {
        let mut t = Terminal::new(TestBackend::new(w, h)).expect("test");
        t.draw(|f| draw(f, snap, ui)).expect("test");
        text(&t)
    }

    fn row_of<'a>(s: &'a str, needle: &str) -> &'a str {
        s.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle} in\n{s}"))
    }

    #[test]
    fn renders_totals_and_top_circuits_in_80x24() {
        let s = render(&snapshot(), &Ui::default(), 80, 24);
        assert!(s.contains("812.3M"), "{s}");
        assert!(s.contains("96.0M"), "{s}");
        assert!(s.contains("1234 circuits"), "{s}");
        assert!(s.contains("Sub00 with a") && s.contains("AP-1"), "{s}");
        assert!(s.contains("100M/20M"), "{s}");
        assert!(s.contains("q:quit"), "{s}");
        assert!(s.contains("n:Name"), "the whole footer fits 80 columns: {s}");
        assert_eq!(s.lines().count(), 24);
    }

    #[test]
    fn circuit_rows_show_rtt_and_retransmits_and_the_sorted_column() {
        let ui = Ui { view: View::Circuits, sort: SortKey::RttP50 };
        let s = render(&snapshot(), &ui, 100, 24);
        // Sorted by p50, worst first: c2 (21.5 ms) leads, then c1, then c0.
        let body: Vec<&str> = s.lines().skip(5).collect();
        assert!(body[0].contains("Sub02"), "{s}");
        assert!(body[1].contains("Sub01"), "{s}");
        assert!(body[2].contains("Sub00"), "{s}");
        let c2 = row_of(&s, "Sub02");
        assert!(c2.contains("21.5") && c2.contains("28.0") && c2.contains("0.20%"), "{c2}");
        let c0 = row_of(&s, "Sub00");
        assert!(c0.contains("1.50") && c0.contains("0.00%"), "{c0}");
        // Circuits without TCP show dashes.
        let c9 = row_of(&s, "Sub09");
        assert_eq!(c9.matches(" -").count(), 3, "{c9}");
        assert!(row_of(&s, "Circuit").contains("p50▼"), "{s}");
        let foot = s.lines().last().expect("footer");
        for part in ["d:Down", "u:Up", "5:p50", "9:p90", "r:Retx", "x:Drops", "n:Name", "v:nodes"] {
            assert!(foot.contains(part), "footer lacks {part}: {foot}");
        }
    }

    #[test]
    fn node_view_lists_nodes_with_utilisation_rtt_and_retransmits() {
        let mut ui = Ui::default();
        assert_eq!(ui.key('v'), KeyAction::Changed { refetch: true });
        assert_eq!(ui.view, View::Nodes);
        assert_eq!(ui.key('9'), KeyAction::Changed { refetch: false });
        let s = render(&snapshot(), &ui, 100, 24);
        assert!(s.contains("lqtop · nodes"), "{s}");
        assert!(row_of(&s, "Node").contains("p90▼"), "{s}");
        let ap = row_of(&s, "AP-1");
        for part in ["40 circ", "90.0M", "5.0M", "45%/10%", "4.00", "48.5", "2.50%", "7"] {
            assert!(ap.contains(part), "AP-1 row lacks {part}: {ap}");
        }
        let site = row_of(&s, "Site-B");
        assert!(site.contains("1%/0%") && site.contains(" -"), "{site}");
        // AP-1 (with RTT) sorts before Site-B (without).
        assert!(s.find("AP-1").expect("ap") < s.find("Site-B").expect("site"), "{s}");
        assert!(s.lines().last().expect("footer").contains("v:circuits"), "{s}");
        assert_eq!(ui.key('\t'), KeyAction::Changed { refetch: true });
        assert_eq!(ui.view, View::Circuits);
        assert_eq!(ui.key('z'), KeyAction::Ignored);
        assert_eq!(ui.key('q'), KeyAction::Quit);
    }

    fn entry(name: &str, down: u64, p90: Option<f64>, retx: Option<f64>) -> Entry {
        Entry {
            name: name.into(),
            down_bps: down,
            rtt_p90_ms: p90,
            retx_ratio: retx,
            ..Default::default()
        }
    }

    fn names(e: &[Entry]) -> Vec<&str> {
        e.iter().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn sorting_puts_the_worst_first_and_missing_values_last() {
        let mut e = vec![
            entry("b", 10, None, Some(0.01)),
            entry("a", 30, Some(5.0), None),
            entry("c", 20, Some(f64::NAN), Some(0.2)),
            entry("d", 20, Some(50.0), Some(0.01)),
        ];
        sort_entries(&mut e, SortKey::Down);
        assert_eq!(names(&e), ["a", "c", "d", "b"]);
        sort_entries(&mut e, SortKey::RttP90);
        assert_eq!(names(&e), ["d", "a", "b", "c"]);
        sort_entries(&mut e, SortKey::Retransmits);
        assert_eq!(names(&e), ["c", "b", "d", "a"]);
        sort_entries(&mut e, SortKey::Name);
        assert_eq!(names(&e), ["a", "b", "c", "d"]);
        for k in SortKey::ALL {
            assert_eq!(SortKey::from_char(k.key()), Some(k));
        }
    }

    #[test]
    fn shows_bus_errors_and_survives_tiny_terminals_and_hostile_names() {
        let snap = Snapshot {
            error: Some("cannot reach lqosd at /run/lqos/bus".into()),
            ..Default::default()
        };
        assert!(render(&snap, &Ui::default(), 80, 24).contains("cannot reach lqosd"));
        let mut hostile = snapshot();
        hostile.top[0].name = "evil\x1b[2J\nname".into();
        hostile.nodes[0].download_max_kbit = u64::MAX;
        for view in [View::Circuits, View::Nodes] {
            for sort in SortKey::ALL {
                let ui = Ui { view, sort };
                let s = render(&hostile, &ui, 100, 24);
                assert!(!s.contains('\x1b'), "{s}");
                for (w, h) in [(10, 3), (1, 1), (0, 0), (200, 60)] {
                    render(&hostile, &ui, w, h);
                }
            }
        }
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(rate(999), "999");
        assert_eq!(rate(1_500), "1.5k");
        assert_eq!(rate(2_000_000_000), "2.0G");
        assert_eq!(plan(100_000), "100M");
        assert_eq!(plan(2_500_000), "2.5G");
        assert_eq!(plan(u64::MAX), rate(u64::MAX));
        assert_eq!(ms(Some(1.234)), "1.23");
        assert_eq!(ms(Some(12.34)), "12.3");
        assert_eq!(ms(Some(1234.5)), "1234");
        assert_eq!(ms(Some(1e9)), ">99999");
        assert_eq!(ms(None), "-");
        assert_eq!(ms(Some(f64::NAN)), "-");
        assert_eq!(percent(Some(0.0123)), "1.23%");
        assert_eq!(percent(Some(0.5)), "50%");
        assert_eq!(percent(None), "-");
        assert_eq!(utilisation(50_000_000, 100_000), "50%");
        assert_eq!(utilisation(5, 0), "-");
    }
}
