//! Editing lqos.conf text in place: set a few values and keep everything else — comments,
//! blank lines, key order, sections lqos does not know — byte for byte.
//!
//! The text is parsed with `toml_edit`; only the items named by the edits are replaced, and a
//! replaced value keeps the whitespace and trailing comment around it. A key that is missing
//! is appended to its table; a missing table is appended to the file. A UTF-8 BOM and CRLF
//! line endings survive. The result is not validated here: callers check it with
//! [`crate::parse_config_str`] before writing it.

use toml_edit::{DocumentMut, Item, Table, TableLike, Value};

/// A scalar to store in lqos.conf.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfValue {
    /// A basic string (`"…"`).
    Text(String),
    /// A whole number.
    Integer(i64),
    /// A float (`2.5`).
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
}

/// One change: `key` in `[table]`, `table` empty for the top level.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfEdit {
    /// Table name (`"queues"`), or `""` for a top-level key.
    pub table: String,
    /// Key inside the table.
    pub key: String,
    /// The new value.
    pub value: ConfValue,
}

impl ConfEdit {
    /// `[table] key = value`.
    pub fn new(table: &str, key: &str, value: ConfValue) -> Self {
        ConfEdit { table: table.to_owned(), key: key.to_owned(), value }
    }
}

/// Why an edit could not be made (nothing is changed then).
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The text is not valid TOML.
    #[error("lqos.conf is not valid TOML")]
    Syntax {
        /// The parser's error (with its position).
        #[source]
        source: toml_edit::TomlError,
    },
    /// The table an edit names exists but holds a value (e.g. `queues = 5`).
    #[error("[{table}] is not a table in lqos.conf (needed for {key})")]
    NotATable {
        /// The table name.
        table: String,
        /// The key that was to be set in it.
        key: String,
    },
    /// The key an edit names holds a table or an array of tables, which edits never replace.
    #[error("{key} in [{table}] holds a table, not a value")]
    NotAValue {
        /// The table name (`""` = top level).
        table: String,
        /// The key.
        key: String,
    },
}

fn to_value(v: &ConfValue) -> Value {
    match v {
        ConfValue::Text(s) => Value::from(s.as_str()),
        ConfValue::Integer(i) => Value::from(*i),
        ConfValue::Float(f) => Value::from(*f),
        ConfValue::Bool(b) => Value::from(*b),
    }
}

fn set(t: &mut dyn TableLike, e: &ConfEdit) -> Result<(), EditError> {
    let mut new = to_value(&e.value);
    match t.get_mut(&e.key) {
        Some(Item::Value(old)) => {
            // Keep the spacing and the trailing comment of the value it replaces.
            *new.decor_mut() = old.decor().clone();
            *old = new;
        }
        Some(item) if item.is_none() => *item = Item::Value(new),
        Some(_) => {
            return Err(EditError::NotAValue { table: e.table.clone(), key: e.key.clone() });
        }
        None => {
            t.insert(&e.key, Item::Value(new));
        }
    }
    Ok(())
}

/// Applies `edits` (in order) to lqos.conf `text` and returns the new text. Everything the
/// edits do not name is kept as written. Err when the text is not TOML or an edit would
/// replace a table; then no text is returned.
///
/// ```
/// use lqos_config::{ConfEdit, ConfValue, edit_config_str};
/// let text = "# my shaper\nnode_name = \"a\" # shown in the GUI\n\n[queues]\n# total\ndownlink_bandwidth_mbps = 1000\n";
/// let out = edit_config_str(text, &[
///     ConfEdit::new("", "node_name", ConfValue::Text("b".into())),
///     ConfEdit::new("queues", "downlink_bandwidth_mbps", ConfValue::Integer(2000)),
/// ]).unwrap();
/// assert_eq!(out, "# my shaper\nnode_name = \"b\" # shown in the GUI\n\n[queues]\n# total\ndownlink_bandwidth_mbps = 2000\n");
/// ```
pub fn edit_config_str(text: &str, edits: &[ConfEdit]) -> Result<String, EditError> {
    let (bom, body) = match text.strip_prefix('\u{feff}') {
        Some(rest) => ("\u{feff}", rest),
        None => ("", text),
    };
    let crlf = body.contains("\r\n");
    let mut doc: DocumentMut = body.parse().map_err(|source| EditError::Syntax { source })?;
    for e in edits {
        if e.table.is_empty() {
            set(doc.as_table_mut(), e)?;
            continue;
        }
        let item = doc.as_table_mut().entry(&e.table).or_insert_with(|| Item::Table(Table::new()));
        let table = item
            .as_table_like_mut()
            .ok_or_else(|| EditError::NotATable { table: e.table.clone(), key: e.key.clone() })?;
        set(table, e)?;
    }
    let mut out = doc.to_string();
    if crlf {
        out = out.replace("\r\n", "\n").replace('\n', "\r\n");
    }
    Ok(format!("{bom}{out}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../packaging/lqos.example.conf");

    #[test]
    fn no_edits_reproduce_the_file_byte_for_byte() {
        assert_eq!(edit_config_str(EXAMPLE, &[]).unwrap(), EXAMPLE);
    }

    #[test]
    fn only_the_edited_lines_change() {
        let out = edit_config_str(
            EXAMPLE,
            &[
                ConfEdit::new("queues", "downlink_bandwidth_mbps", ConfValue::Float(2500.5)),
                ConfEdit::new("", "node_name", ConfValue::Text("edge \"1\"".into())),
            ],
        )
        .unwrap();
        let before: Vec<&str> = EXAMPLE.lines().collect();
        let after: Vec<&str> = out.lines().collect();
        assert_eq!(before.len(), after.len());
        let changed: Vec<(&str, &str)> =
            before.iter().zip(&after).filter(|(a, b)| a != b).map(|(a, b)| (*a, *b)).collect();
        assert_eq!(
            changed,
            vec![
                ("node_name = \"Example Shaper\"", "node_name = 'edge \"1\"'"),
                ("downlink_bandwidth_mbps = 1000", "downlink_bandwidth_mbps = 2500.5"),
            ]
        );
    }

    #[test]
    fn missing_keys_and_tables_are_appended_and_bom_crlf_survive() {
        let text = "\u{feff}version = \"1.5\"\r\n# keep\r\n[queues]\r\nsudo = false\r\n";
        let out = edit_config_str(
            text,
            &[
                ConfEdit::new("queues", "uplink_bandwidth_mbps", ConfValue::Integer(5)),
                ConfEdit::new("", "node_name", ConfValue::Text("n".into())),
                ConfEdit::new("metrics", "enabled", ConfValue::Bool(false)),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "\u{feff}version = \"1.5\"\r\nnode_name = \"n\"\r\n# keep\r\n[queues]\r\nsudo = false\r\n\
             uplink_bandwidth_mbps = 5\r\n\r\n[metrics]\r\nenabled = false\r\n"
        );
    }

    #[test]
    fn tables_are_never_replaced_and_bad_toml_is_refused() {
        let e =
            edit_config_str("queues = 5\n", &[ConfEdit::new("queues", "x", ConfValue::Bool(true))])
                .unwrap_err();
        assert!(matches!(e, EditError::NotATable { .. }), "{e}");
        let e =
            edit_config_str("[queues]\n", &[ConfEdit::new("", "queues", ConfValue::Integer(1))])
                .unwrap_err();
        assert!(matches!(e, EditError::NotAValue { .. }), "{e}");
        let e = edit_config_str("[queues\n", &[]).unwrap_err();
        assert!(matches!(e, EditError::Syntax { .. }), "{e}");
    }
}
