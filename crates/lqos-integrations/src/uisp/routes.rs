//! `integrationUISProutes.csv` (in `lqos_directory`): operator route costs for the `full`
//! topology. Each line is `From, To, Cost` (no header needed; `#` starts a comment; a
//! `From Site,To Site,Cost` header line is skipped). `From`/`To` name two sites (or, as in
//! LibreQoS, the two radios) at either end of a UISP data-link; the order does not matter.
//!
//! Meaning (LibreQoS's documented one): the cost replaces that link's routing weight, in the
//! unit where a default hop costs 10 — higher avoids the link, lower prefers it. A bad line is
//! reported with its file:line and skipped; the others still apply.

use lqos_config::Diagnostic;

/// File name inside `lqos_directory`.
pub const ROUTES_FILE: &str = "integrationUISProutes.csv";

/// One override line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteOverride {
    /// First site (or radio) name.
    pub from: String,
    /// Second site (or radio) name.
    pub to: String,
    /// Cost in LibreQoS's hop units (default hop = 10).
    pub cost: u32,
    /// 1-based line in the file.
    pub line: usize,
}

impl RouteOverride {
    /// True when the override names the pair `a`–`b` (either order).
    pub fn matches(&self, a: &str, b: &str) -> bool {
        (self.from == a && self.to == b) || (self.from == b && self.to == a)
    }
}

/// Parses the file's text; every bad line becomes a warning at `label:line`.
pub fn parse_routes(text: &str, label: &str, warnings: &mut Vec<Diagnostic>) -> Vec<RouteOverride> {
    let mut out = Vec::new();
    for (i, text_line) in text.lines().enumerate() {
        let line = i + 1;
        let t = text_line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(t.as_bytes());
        let rec = match rdr.records().next() {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                warnings.push(
                    Diagnostic::warning(label, format!("unreadable line, skipped: {e}"))
                        .at_line(line),
                );
                continue;
            }
            None => continue,
        };
        if rec.len() != 3 {
            warnings.push(
                Diagnostic::warning(
                    label,
                    format!(
                        "expected 3 fields (From, To, Cost), found {}; line skipped",
                        rec.len()
                    ),
                )
                .at_line(line),
            );
            continue;
        }
        let (from, to, cost) = (&rec[0], &rec[1], &rec[2]);
        if cost.eq_ignore_ascii_case("cost") {
            continue;
        }
        if from.is_empty() || to.is_empty() {
            warnings.push(
                Diagnostic::warning(label, "a site name is empty; line skipped")
                    .at_line(line)
                    .field(if from.is_empty() { "From" } else { "To" }),
            );
            continue;
        }
        match cost.parse::<u32>() {
            Ok(c) => out.push(RouteOverride { from: from.into(), to: to.into(), cost: c, line }),
            Err(_) => warnings.push(
                Diagnostic::warning(
                    label,
                    format!("\"{cost}\" is not a whole number; line skipped"),
                )
                .at_line(line)
                .field("Cost")
                .hint("the cost is a non-negative integer; a default hop costs 10"),
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_reports_bad_ones_with_their_line() {
        let text = "From Site,To Site,Cost\n# comment\nSite 1, Site 3, 100\n\"Acme, LLC\",Site 2,5\nSite 4,Site 5\nSite 6,Site 7,lots\n";
        let mut w = Vec::new();
        let r = parse_routes(text, "/x/integrationUISProutes.csv", &mut w);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].from.as_str(), r[0].to.as_str(), r[0].cost, r[0].line),
            ("Site 1", "Site 3", 100, 3)
        );
        assert_eq!(r[1].from, "Acme, LLC");
        assert!(r[1].matches("Site 2", "Acme, LLC"));
        assert_eq!(w.len(), 2, "{w:#?}");
        assert_eq!(w[0].line, Some(5));
        assert_eq!(w[1].line, Some(6));
        assert_eq!(w[1].field.as_deref(), Some("Cost"));
        assert!(w[1].to_string().starts_with("/x/integrationUISProutes.csv:6"), "{}", w[1]);
    }
}
