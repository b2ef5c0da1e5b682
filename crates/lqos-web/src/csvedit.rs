//! Text-level edits of ShapedDevices.csv: the editor changes only the lines of the circuit it
//! edits and copies every other line byte for byte, so comment lines, blank lines, columns
//! lqos does not know (or the form does not show, like RADIUS Username), quoting and line
//! endings all survive an edit of another row.
//!
//! An edited row keeps the cells of the columns the form does not show from the row it
//! replaces (matched by Device ID, else by position). New rows are written in the file's own
//! column order.
//!
//! Refused (the file is left alone): a file without a header line (the positional legacy
//! layout), and a record whose quoted cell spans lines (it cannot be replaced line by line).

use crate::editor::CircuitForm;

/// Why a splice is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpliceError {
    /// No header line: the editor does not know the columns.
    #[error(
        "ShapedDevices.csv has no header line; add the header (Circuit ID,Circuit Name,…) before editing it here"
    )]
    NoHeader,
    /// A quoted cell spans lines.
    #[error(
        "ShapedDevices.csv:{line}: a quoted cell continues on the next line; the editor cannot change this file safely, edit it by hand"
    )]
    MultiLine {
        /// 1-based line.
        line: usize,
    },
    /// The header lacks a column the form needs.
    #[error("ShapedDevices.csv has no '{column}' column")]
    MissingColumn {
        /// The column.
        column: &'static str,
    },
    /// No rows with that Circuit ID.
    #[error("circuit {id:?} not found")]
    NotFound {
        /// The id.
        id: String,
    },
}

/// The form's columns, in the order of `CircuitForm::records`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum F {
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
}

const ALL: [F; 16] = [
    F::CircuitId,
    F::CircuitName,
    F::DeviceId,
    F::DeviceName,
    F::ParentNode,
    F::ParentNodeId,
    F::AnchorNodeId,
    F::Mac,
    F::Ipv4,
    F::Ipv6,
    F::DownMin,
    F::UpMin,
    F::DownMax,
    F::UpMax,
    F::Comment,
    F::Sqm,
];

/// The form field a header cell names; the header names and aliases are lqos-config's
/// ([`lqos_config::header_column`]), so the editor and the parser never disagree.
fn column_of(cell: &str) -> Option<F> {
    use lqos_config::ShapedColumn as C;
    Some(match lqos_config::header_column(cell)? {
        C::CircuitId => F::CircuitId,
        C::CircuitName => F::CircuitName,
        C::DeviceId => F::DeviceId,
        C::DeviceName => F::DeviceName,
        C::ParentNode => F::ParentNode,
        C::ParentNodeId => F::ParentNodeId,
        C::AnchorNodeId => F::AnchorNodeId,
        C::Mac => F::Mac,
        C::Ipv4 => F::Ipv4,
        C::Ipv6 => F::Ipv6,
        C::DownMin => F::DownMin,
        C::UpMin => F::UpMin,
        C::DownMax => F::DownMax,
        C::UpMax => F::UpMax,
        C::Comment => F::Comment,
        C::Sqm => F::Sqm,
        C::RadiusUser => return None,
    })
}

fn cells(line: &str) -> Vec<String> {
    let mut r =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(line.as_bytes());
    let mut rec = csv::StringRecord::new();
    match r.read_record(&mut rec) {
        Ok(true) => rec.iter().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// True for lines the parser skips: blank, `#` comments, all-empty cells.
fn skipped(line: &str, cells: &[String]) -> bool {
    let t = line.trim_start();
    t.is_empty() || t.starts_with('#') || cells.iter().all(|c| c.trim().is_empty())
}

/// ShapedDevices.csv split into lines, with the header's column map.
#[derive(Debug)]
pub struct RawCsv<'a> {
    bom: &'a str,
    /// Lines without their `\n` (a `\r` stays, so CRLF files stay CRLF).
    lines: Vec<&'a str>,
    crlf: bool,
    ends_with_newline: bool,
    /// Width of the header.
    width: usize,
    /// Position of each form column in the header.
    index: [Option<usize>; 16],
    /// For each data line: (line index, Circuit ID).
    rows: Vec<(usize, String)>,
}

impl<'a> RawCsv<'a> {
    /// Reads the structure of `text`.
    pub fn parse(text: &'a str) -> Result<RawCsv<'a>, SpliceError> {
        let (bom, body) = match text.strip_prefix('\u{feff}') {
            Some(rest) => ("\u{feff}", rest),
            None => ("", text),
        };
        let ends_with_newline = body.ends_with('\n');
        let trimmed = body.strip_suffix('\n').unwrap_or(body);
        let lines: Vec<&str> = if trimmed.is_empty() && !ends_with_newline {
            Vec::new()
        } else {
            trimmed.split('\n').collect()
        };
        let crlf = lines.first().is_some_and(|l| l.ends_with('\r'));
        let mut index = [None; 16];
        let mut width = 0;
        let mut header = false;
        let mut rows = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let is_comment = line.trim_start().starts_with('#');
            if !is_comment && line.matches('"').count() % 2 == 1 {
                return Err(SpliceError::MultiLine { line: i + 1 });
            }
            let c = cells(line.trim_end_matches('\r'));
            if skipped(line, &c) {
                continue;
            }
            if !header {
                if !c.iter().any(|h| column_of(h) == Some(F::CircuitId)) {
                    return Err(SpliceError::NoHeader);
                }
                for (pos, h) in c.iter().enumerate() {
                    if let Some(f) = column_of(h)
                        && index[f as usize].is_none()
                    {
                        index[f as usize] = Some(pos);
                    }
                }
                width = c.len();
                header = true;
                continue;
            }
            let id_pos = index[F::CircuitId as usize].unwrap_or(0);
            rows.push((i, c.get(id_pos).map(|s| s.trim().to_owned()).unwrap_or_default()));
        }
        if !header {
            return Err(SpliceError::NoHeader);
        }
        for f in [F::CircuitId, F::DownMin, F::UpMin, F::DownMax, F::UpMax] {
            if index[f as usize].is_none() {
                return Err(SpliceError::MissingColumn {
                    column: lqos_config::CSV_HEADER[f as usize],
                });
            }
        }
        Ok(RawCsv { bom, lines, crlf, ends_with_newline, width, index, rows })
    }

    /// 1-based line numbers of the rows of circuit `id`.
    pub fn lines_of(&self, id: &str) -> Vec<usize> {
        self.rows.iter().filter(|(_, c)| c == id).map(|(i, _)| i + 1).collect()
    }

    fn record(&self, old: Option<Vec<String>>, values: &[&str; 16]) -> String {
        let mut row = old.unwrap_or_default();
        if row.len() < self.width {
            row.resize(self.width, String::new());
        }
        for f in ALL {
            if let Some(pos) = self.index[f as usize] {
                if pos >= row.len() {
                    row.resize(pos + 1, String::new());
                }
                row[pos] = values[f as usize].to_owned();
            }
        }
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        let _ = w.write_record(&row);
        let bytes = w.into_inner().unwrap_or_default();
        let mut s = String::from_utf8_lossy(&bytes).into_owned();
        if s.ends_with('\n') {
            s.pop();
        }
        if self.crlf {
            s.push('\r');
        }
        s
    }

    /// The file with the rows of circuit `original` (or none: a new circuit, appended)
    /// replaced by `form`'s rows (or removed when `form` is `None`). Returns the new text and
    /// the 1-based line of the first new row (with the number of new rows).
    pub fn splice(
        &self,
        original: Option<&str>,
        form: Option<&CircuitForm>,
    ) -> Result<(String, usize, usize), SpliceError> {
        let old_lines: Vec<usize> = match original {
            Some(id) => {
                let l: Vec<usize> =
                    self.rows.iter().filter(|(_, c)| c == id).map(|(i, _)| *i).collect();
                if l.is_empty() {
                    return Err(SpliceError::NotFound { id: id.to_owned() });
                }
                l
            }
            None => Vec::new(),
        };
        let old_cells: Vec<Vec<String>> =
            old_lines.iter().map(|&i| cells(self.lines[i].trim_end_matches('\r'))).collect();
        let dev_pos = self.index[F::DeviceId as usize];
        let new_rows: Vec<String> = match form {
            Some(form) => form
                .records()
                .iter()
                .enumerate()
                .map(|(j, values)| {
                    let by_id = dev_pos.and_then(|p| {
                        old_cells.iter().find(|c| {
                            !values[F::DeviceId as usize].is_empty()
                                && c.get(p).map(|s| s.trim()) == Some(values[F::DeviceId as usize])
                        })
                    });
                    let old = by_id.or_else(|| old_cells.get(j)).cloned();
                    self.record(old, values)
                })
                .collect(),
            None => Vec::new(),
        };
        let insert_at = old_lines.first().copied().unwrap_or(self.lines.len());
        let mut out: Vec<&str> = Vec::with_capacity(self.lines.len() + new_rows.len());
        let mut first_new = 0;
        for (i, line) in self.lines.iter().enumerate() {
            if i == insert_at {
                first_new = out.len() + 1;
                out.extend(new_rows.iter().map(String::as_str));
            }
            if !old_lines.contains(&i) {
                out.push(line);
            }
        }
        if insert_at >= self.lines.len() {
            first_new = out.len() + 1;
            out.extend(new_rows.iter().map(String::as_str));
        }
        let mut text = String::from(self.bom);
        text.push_str(&out.join("\n"));
        if self.ends_with_newline || original.is_none() || !out.is_empty() {
            text.push('\n');
        }
        Ok((text, first_new, new_rows.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# exported 2024-01-01\r\nCircuit ID,Circuit Name,Device ID,Device Name,Parent Node,Parent Node ID,Anchor Node ID,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment,sqm,RADIUS Username,Billing\r\nc1,One,d1,Dev 1,AP-1,,,,100.64.0.1,,1,1,100,20,,,alice,gold\r\n# c9 is paused\r\nc2,\"Two, Inc\",d2,Dev 2,AP-1,,,,100.64.0.2,,1,1,50,10,,,bob,silver\r\n";

    fn form(id: &str, down: &str) -> CircuitForm {
        serde_json::from_value(serde_json::json!({
            "circuit_id": id, "circuit_name": "One", "parent_node": "AP-1",
            "download_min_mbps": "1", "upload_min_mbps": "1", "download_max_mbps": down,
            "upload_max_mbps": "20",
            "devices": [{"device_id": "d1", "device_name": "Dev 1", "ipv4": "100.64.0.1"}]
        }))
        .expect("form")
    }

    #[test]
    fn editing_one_row_keeps_comments_unknown_columns_quoting_and_crlf() {
        let raw = RawCsv::parse(FILE).expect("parse");
        let (text, first, n) = raw.splice(Some("c1"), Some(&form("c1", "250"))).expect("splice");
        assert_eq!((first, n), (3, 1));
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], "# exported 2024-01-01");
        assert!(
            lines[2].starts_with("c1,One,d1,Dev 1,AP-1,,,,100.64.0.1,,1,1,250,20,,,alice,gold")
        );
        assert_eq!(lines[3], "# c9 is paused");
        assert_eq!(lines[4], "c2,\"Two, Inc\",d2,Dev 2,AP-1,,,,100.64.0.2,,1,1,50,10,,,bob,silver");
        assert!(text.ends_with("\r\n"));
        // Only the edited line differs.
        let before: Vec<&str> = FILE.split("\r\n").collect();
        let changed = before.iter().zip(&lines).filter(|(a, b)| a != b).count();
        assert_eq!(changed, 1);
    }

    #[test]
    fn delete_and_append_touch_only_their_rows() {
        let raw = RawCsv::parse(FILE).expect("parse");
        let (text, _, n) = raw.splice(Some("c1"), None).expect("delete");
        assert_eq!(n, 0);
        assert!(!text.contains("c1,") && text.contains("# c9 is paused") && text.contains("bob"));
        let (text, first, _) = raw.splice(None, Some(&form("c3", "30"))).expect("append");
        assert_eq!(first, 6);
        assert!(text.ends_with("c3,One,d1,Dev 1,AP-1,,,,100.64.0.1,,1,1,30,20,,,,\r\n"), "{text}");
        assert!(matches!(raw.splice(Some("zz"), None), Err(SpliceError::NotFound { .. })));
    }

    #[test]
    fn files_the_editor_cannot_change_safely_are_refused() {
        assert_eq!(RawCsv::parse("c1,a,b\n").expect_err("no header"), SpliceError::NoHeader);
        let multi = "Circuit ID,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment\nc1,1,1,2,2,\"two\nlines\"\n";
        assert_eq!(RawCsv::parse(multi).expect_err("multi"), SpliceError::MultiLine { line: 2 });
    }
}
