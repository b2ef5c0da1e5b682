//! The common settings of lqos.conf that an operator changes from the GUI, and the one edit that
//! changes only them: shared by lqos_web (which writes the file when it may) and lqosd (which
//! writes it for lqos_web when the web server's sandbox or the file's owner forbid it).
//!
//! Values arrive as text (a form field, a JSON number written out); each setting's kind says
//! how it is stored. The result is the operator's file with only those values changed (see
//! [`crate::edit_config_str`]) and must parse with no errors, else nothing is returned.

use std::path::Path;

use crate::{ConfEdit, ConfValue, Diagnostic, EditError, edit_config_str, parse_config_str};

/// How a setting is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    /// A string.
    Text,
    /// A number, whole when it is whole (`1000`, `2.5`).
    Number,
    /// A whole number, zero or more.
    Integer,
}

/// The settings the GUI edits: (setting name, TOML table or `""` for the top level, TOML key,
/// kind).
pub const COMMON_SETTINGS: [(&str, &str, &str, SettingKind); 7] = [
    ("node_name", "", "node_name", SettingKind::Text),
    ("downlink_bandwidth_mbps", "queues", "downlink_bandwidth_mbps", SettingKind::Number),
    ("uplink_bandwidth_mbps", "queues", "uplink_bandwidth_mbps", SettingKind::Number),
    ("generated_pn_download_mbps", "queues", "generated_pn_download_mbps", SettingKind::Number),
    ("generated_pn_upload_mbps", "queues", "generated_pn_upload_mbps", SettingKind::Number),
    ("default_sqm", "queues", "default_sqm", SettingKind::Text),
    (
        "queue_refresh_interval_mins",
        "integration_common",
        "queue_refresh_interval_mins",
        SettingKind::Integer,
    ),
];

/// Most settings one edit may carry (there are only [`COMMON_SETTINGS`]; more is an attack or
/// a bug, refused before any work).
pub const MAX_SETTINGS: usize = 32;
/// Longest value accepted for one setting, bytes.
pub const MAX_VALUE_BYTES: usize = 1024;

/// One setting that cannot be set, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The setting name (as in [`COMMON_SETTINGS`], or as given when it is not one).
    pub setting: String,
    /// Why.
    pub message: String,
}

impl SettingError {
    fn new(setting: &str, message: impl Into<String>) -> SettingError {
        SettingError { setting: setting.to_owned(), message: message.into() }
    }
}

/// Why [`edit_common_settings`] changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum SettingsEditError {
    /// Settings that are not editable or values of the wrong kind, or values the new file's
    /// validation refuses (then with its diagnostics).
    #[error("{}", fields_message(errors))]
    Fields {
        /// One per refused setting.
        errors: Vec<SettingError>,
        /// The validation of the edited file, when that is what refused.
        diagnostics: Vec<Diagnostic>,
    },
    /// The file as it is on disk does not parse: the operator must fix it by hand first.
    #[error("lqos.conf does not parse: {source}")]
    Syntax {
        /// The parser's error.
        #[source]
        source: EditError,
    },
}

fn fields_message(errors: &[SettingError]) -> String {
    let parts: Vec<String> =
        errors.iter().map(|e| format!("{}: {}", e.setting, e.message)).collect();
    if parts.is_empty() { "lqos.conf would not be valid".into() } else { parts.join("; ") }
}

fn value_of(name: &str, kind: SettingKind, raw: &str) -> Result<ConfValue, SettingError> {
    let raw = raw.trim();
    if raw.len() > MAX_VALUE_BYTES {
        return Err(SettingError::new(name, format!("longer than {MAX_VALUE_BYTES} bytes")));
    }
    Ok(match kind {
        SettingKind::Text => ConfValue::Text(raw.to_owned()),
        SettingKind::Integer => match raw.parse::<i64>() {
            Ok(n) if n >= 0 => ConfValue::Integer(n),
            _ => return Err(SettingError::new(name, format!("{raw:?} is not a whole number"))),
        },
        SettingKind::Number => match raw.parse::<f64>() {
            Ok(n) if n.is_finite() && n >= 0.0 => {
                if n.fract() == 0.0 && n < 9.0e15 {
                    ConfValue::Integer(n as i64)
                } else {
                    ConfValue::Float(n)
                }
            }
            _ => return Err(SettingError::new(name, format!("{raw:?} is not a number"))),
        },
    })
}

/// Sets `settings` (name, value as text) in `text`, the lqos.conf at `path`: only those values
/// change; comments, key order and unknown sections stay. Returns the new text and its
/// diagnostics (warnings only). Refused, with nothing changed, when a setting is not in
/// [`COMMON_SETTINGS`], a value is not of its kind, the file does not parse, or the edited file
/// would not validate.
pub fn edit_common_settings(
    text: &str,
    path: &Path,
    settings: &[(String, String)],
) -> Result<(String, Vec<Diagnostic>), SettingsEditError> {
    if settings.len() > MAX_SETTINGS {
        let errors = vec![SettingError::new(
            "settings",
            format!("{} settings given, at most {MAX_SETTINGS}", settings.len()),
        )];
        return Err(SettingsEditError::Fields { errors, diagnostics: vec![] });
    }
    let mut edits: Vec<(&str, ConfEdit)> = Vec::new();
    let mut errors = Vec::new();
    for (name, raw) in settings {
        let Some(&(key, table, toml_key, kind)) =
            COMMON_SETTINGS.iter().find(|(k, ..)| *k == name.as_str())
        else {
            errors.push(SettingError::new(name, "not an editable setting"));
            continue;
        };
        match value_of(key, kind, raw) {
            Ok(v) => edits.push((key, ConfEdit::new(table, toml_key, v))),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(SettingsEditError::Fields { errors, diagnostics: vec![] });
    }
    let plain: Vec<ConfEdit> = edits.iter().map(|(_, e)| e.clone()).collect();
    let new_text = edit_config_str(text, &plain).map_err(|e| match e {
        EditError::Syntax { .. } => SettingsEditError::Syntax { source: e },
        EditError::NotATable { ref table, ref key }
        | EditError::NotAValue { ref table, ref key } => {
            let name = edits
                .iter()
                .find(|(_, ed)| &ed.table == table && &ed.key == key)
                .map_or_else(|| key.clone(), |(k, _)| (*k).to_owned());
            SettingsEditError::Fields {
                errors: vec![SettingError::new(&name, e.to_string())],
                diagnostics: vec![],
            }
        }
    })?;
    let (parsed, diagnostics) = parse_config_str(&new_text, path);
    let errors: Vec<SettingError> = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| {
            let field = d.field.clone().unwrap_or_default();
            let name = COMMON_SETTINGS
                .iter()
                .find(|(_, _, k, _)| field.ends_with(k))
                .map_or(field, |(k, ..)| (*k).to_owned());
            SettingError { setting: name, message: d.message.clone() }
        })
        .collect();
    if parsed.is_none() || !errors.is_empty() {
        return Err(SettingsEditError::Fields { errors, diagnostics });
    }
    Ok((new_text, diagnostics))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "# my box\nnode_name = \"edge-1\" # keep me\n\n[queues]\ndownlink_bandwidth_mbps = 1000\nuplink_bandwidth_mbps = 1000\ndefault_sqm = \"cake diffserv4\"\n\n[bridge]\nuse_xdp_bridge = false\nto_internet = \"eth0\"\nto_network = \"eth1\"\n\n[my_own_section]\nx = 1\n";

    fn set(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn only_the_named_values_change_and_the_rest_stays_byte_for_byte() {
        let p = Path::new("/etc/lqos.conf");
        let (text, _) = edit_common_settings(
            CONF,
            p,
            &set(&[("downlink_bandwidth_mbps", " 2500 "), ("node_name", "edge-2")]),
        )
        .expect("edit");
        assert!(text.contains("downlink_bandwidth_mbps = 2500\n"), "{text}");
        assert!(text.contains("node_name = \"edge-2\" # keep me"), "{text}");
        assert!(text.starts_with("# my box\n") && text.contains("[my_own_section]\nx = 1"));
        // A setting missing from the file is added to its table.
        let (text, _) =
            edit_common_settings(CONF, p, &set(&[("queue_refresh_interval_mins", "15")]))
                .expect("edit");
        assert!(text.contains("[integration_common]") && text.contains("= 15"), "{text}");
        let (text, _) =
            edit_common_settings(CONF, p, &set(&[("uplink_bandwidth_mbps", "2.5")])).expect("x");
        assert!(text.contains("uplink_bandwidth_mbps = 2.5"), "{text}");
    }

    #[test]
    fn unknown_settings_wrong_kinds_and_invalid_results_change_nothing() {
        let p = Path::new("/etc/lqos.conf");
        let refused = |pairs: &[(&str, &str)]| match edit_common_settings(CONF, p, &set(pairs)) {
            Err(SettingsEditError::Fields { errors, .. }) => errors,
            other => panic!("{pairs:?}: {other:?}"),
        };
        let e = refused(&[("to_internet", "eth9"), ("node_name", "x")]);
        assert_eq!((e.len(), e[0].setting.as_str()), (1, "to_internet"), "{e:?}");
        assert!(e[0].message.contains("not an editable setting"));
        for (k, v) in [
            ("downlink_bandwidth_mbps", "lots"),
            ("downlink_bandwidth_mbps", "-5"),
            ("downlink_bandwidth_mbps", "NaN"),
            ("downlink_bandwidth_mbps", "inf"),
            ("queue_refresh_interval_mins", "1.5"),
            ("queue_refresh_interval_mins", "-1"),
            ("queue_refresh_interval_mins", "99999999999999999999999"),
        ] {
            let e = refused(&[(k, v)]);
            assert_eq!(e[0].setting, k, "{v}: {e:?}");
        }
        // Valid TOML, refused by validation: named by its setting, with the diagnostics.
        match edit_common_settings(CONF, p, &set(&[("default_sqm", "bogus")])) {
            Err(SettingsEditError::Fields { errors, diagnostics }) => {
                assert_eq!(errors[0].setting, "default_sqm", "{errors:?}");
                assert!(!diagnostics.is_empty());
            }
            other => panic!("{other:?}"),
        }
        let long = "x".repeat(MAX_VALUE_BYTES + 1);
        assert_eq!(refused(&[("node_name", &long)])[0].setting, "node_name");
        let many: Vec<(String, String)> =
            (0..MAX_SETTINGS + 1).map(|_| ("node_name".into(), "a".into())).collect();
        assert!(matches!(
            edit_common_settings(CONF, p, &many),
            Err(SettingsEditError::Fields { .. })
        ));
        // A file that does not parse is the operator's to fix.
        assert!(matches!(
            edit_common_settings("[queues\n", p, &set(&[("node_name", "a")])),
            Err(SettingsEditError::Syntax { .. })
        ));
        // A text value cannot inject TOML: it is stored as one string.
        let (text, _) = edit_common_settings(
            CONF,
            p,
            &set(&[("node_name", "a\"\n[bridge]\nto_internet = \"evil")]),
        )
        .expect("a node name with quotes and newlines is just a string");
        let (c, _) = parse_config_str(&text, p);
        let c = c.expect("parses");
        assert_eq!(c.node_name, "a\"\n[bridge]\nto_internet = \"evil");
        assert!(text.contains("to_internet = \"eth0\""));
    }
}
