//! lqtop: a terminal live view of lqosd over the bus — total download/upload (shaped and
//! unshaped), drops, scheduler phase and the busiest circuits, refreshed every second.
//! It only sends read commands (`Status`, `TopCircuits`) and never changes anything.
//!
//! Main pieces: [`Snapshot`] (one refresh worth of data), [`fetch`] (bus → snapshot),
//! [`draw`] (snapshot → frame; pure, tested with ratatui's `TestBackend`), [`run`] (the loop).
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use lqos_bus::{BusClient, CircuitStat, Command, DaemonStatus, Response};
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
    about = "Live view of lqosd: total rates and the busiest circuits, refreshed every second (q quits)"
)]
pub struct Args {
    /// lqosd's bus socket (default: $LQOS_BUS, else /run/lqos/bus).
    #[arg(long, value_name = "PATH")]
    pub bus: Option<std::path::PathBuf>,
}

/// How often lqtop asks lqosd.
pub const REFRESH: Duration = Duration::from_secs(1);

/// One refresh worth of data.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// lqosd's status, when it answered.
    pub status: Option<DaemonStatus>,
    /// Busiest circuits, busiest first.
    pub top: Vec<CircuitStat>,
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

/// Asks lqosd for status and the top `n` circuits; errors end up in [`Snapshot::error`].
pub fn fetch(bus: &mut BusClient, n: usize) -> Snapshot {
    let mut snap = Snapshot::default();
    match bus.request(&Command::Status) {
        Ok(Response::Status(s)) => snap.status = Some(*s),
        Ok(Response::Error(e)) => snap.error = Some(e.to_string()),
        Ok(_) => snap.error = Some("unexpected answer to Status".into()),
        Err(e) => snap.error = Some(format!("{e}")),
    }
    if snap.error.is_none() {
        match bus.request(&Command::TopCircuits { n }) {
            Ok(Response::Circuits(c)) => snap.top = c,
            Ok(Response::Error(e)) => snap.error = Some(e.to_string()),
            Ok(_) => snap.error = Some("unexpected answer to TopCircuits".into()),
            Err(e) => snap.error = Some(format!("{e}")),
        }
    }
    snap
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

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Draws one snapshot. Fits 80×24; smaller terminals get fewer rows, never a panic.
pub fn draw(frame: &mut Frame, snap: &Snapshot) {
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
                sched,
                s.version,
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
            format!("warning: {w}"),
            Style::default().fg(Color::Yellow),
        )));
    }
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::BOTTOM).title(" lqtop ")),
        head,
    );
    let header = Row::new(
        ["Circuit", "Parent", "Down", "Up", "Plan", "Drops"].map(|h| Cell::from(h).style(bold)),
    );
    let rows = snap.top.iter().map(|c| {
        Row::new([
            Cell::from(truncate(if c.name.is_empty() { &c.id } else { &c.name }, 40)),
            Cell::from(truncate(&c.parent, 30)),
            Cell::from(format!("{:>7}", rate(c.download_bps))),
            Cell::from(format!("{:>7}", rate(c.upload_bps))),
            Cell::from(format!(
                "{}/{}",
                rate(c.download_max_kbit * 1000),
                rate(c.upload_max_kbit * 1000)
            )),
            Cell::from(format!("{:>6}", c.drops)),
        ])
    });
    let widths = [
        Constraint::Fill(3),
        Constraint::Fill(2),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(12),
        Constraint::Length(7),
    ];
    frame.render_widget(Table::new(rows, widths).header(header), body);
    frame.render_widget(
        Paragraph::new("q quit · refresh 1 s · top circuits by download rate"),
        foot,
    );
}

/// Runs the live view until `q`, Esc or Ctrl-C.
pub fn run(bus_path: &std::path::Path) -> Result<(), LqtopError> {
    let mut terminal = ratatui::try_init().map_err(|source| LqtopError::Terminal { source })?;
    let result = (|| {
        let mut bus: Option<BusClient> = None;
        let mut snap = Snapshot::default();
        let mut next = Instant::now();
        loop {
            if Instant::now() >= next {
                let rows = terminal.size().map(|s| s.height.saturating_sub(6)).unwrap_or(18).max(1);
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
                    snap = fetch(b, rows as usize);
                    if snap.error.is_some() {
                        bus = None;
                    }
                }
                next = Instant::now() + REFRESH;
            }
            terminal.draw(|f| draw(f, &snap)).map_err(|source| LqtopError::Terminal { source })?;
            let wait = next.saturating_duration_since(Instant::now());
            if event::poll(wait).map_err(|source| LqtopError::Terminal { source })?
                && let Event::Key(k) =
                    event::read().map_err(|source| LqtopError::Terminal { source })?
                && k.kind == KeyEventKind::Press
            {
                let ctrl_c =
                    k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                if matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c {
                    return Ok(());
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
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn text(t: &Terminal<TestBackend>) -> String {
        let buf = t.backend().buffer();
        let w = buf.area.width as usize;
        buf.content
            .chunks(w)
            .map(|row| row.iter().map(|c| c.symbol()).collect::<String>() + "\n")
            .collect()
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
                    name: format!("Subscriber with a rather long name number {i}"),
                    parent: "AP-1".into(),
                    download_bps: 100_000_000 - i * 1000,
                    download_max_kbit: 100_000,
                    upload_max_kbit: 20_000,
                    ..Default::default()
                })
                .collect(),
            error: None,
        }
    }

    #[test]
    fn renders_totals_and_top_circuits_in_80x24() {
        let mut t = Terminal::new(TestBackend::new(80, 24)).expect("test");
        t.draw(|f| draw(f, &snapshot())).expect("test");
        let s = text(&t);
        assert!(s.contains("812.3M"), "{s}");
        assert!(s.contains("96.0M"), "{s}");
        assert!(s.contains("1234 circuits"), "{s}");
        assert!(s.contains("Subscriber with a rather") && s.contains("AP-1"), "{s}");
        assert!(s.contains("100.0M/20.0M"), "{s}");
        assert!(s.contains("q quit"), "{s}");
        assert_eq!(s.lines().count(), 24);
    }

    #[test]
    fn shows_bus_errors_and_survives_tiny_terminals() {
        let snap = Snapshot {
            error: Some("cannot reach lqosd at /run/lqos/bus".into()),
            ..Default::default()
        };
        let mut t = Terminal::new(TestBackend::new(80, 24)).expect("test");
        t.draw(|f| draw(f, &snap)).expect("test");
        assert!(text(&t).contains("cannot reach lqosd"));
        let mut small = Terminal::new(TestBackend::new(10, 3)).expect("test");
        small.draw(|f| draw(f, &snapshot())).expect("test");
    }

    #[test]
    fn rates_are_short() {
        assert_eq!(rate(999), "999");
        assert_eq!(rate(1_500), "1.5k");
        assert_eq!(rate(2_000_000_000), "2.0G");
    }
}
