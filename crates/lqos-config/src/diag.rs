//! Diagnostics: every problem found in an input, with its place.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How bad a diagnostic is. Any `Error` blocks planning; a `Quarantine` sets one circuit
/// aside (see [`crate::validate::triage`]); warnings are reported only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Severity {
    /// Reported, does not block.
    Warning,
    /// A problem confined to one circuit: that circuit is quarantined, the rest is applied.
    Quarantine,
    /// Blocks the plan; the last applied state stays in force.
    Error,
}

/// One problem in an input file, printed as `file:line:col: field: message (hint: …)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Diagnostic {
    /// File label (usually the file name or path as given).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known (JSON).
    pub column: Option<usize>,
    /// The field (CSV column header, TOML key path, or JSON path).
    pub field: Option<String>,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, naming the offending value.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A new error at `file` with `message`.
    pub fn error(file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.into(),
            line: None,
            column: None,
            field: None,
            severity: Severity::Error,
            message: message.into(),
            hint: None,
        }
    }
    /// A new warning at `file` with `message`.
    pub fn warning(file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(file, message) }
    }
    /// Sets the line.
    pub fn at_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }
    /// Sets the column.
    pub fn at_column(mut self, column: usize) -> Self {
        self.column = Some(column);
        self
    }
    /// Sets the field.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    /// Sets the hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        f.write_str(": ")?;
        // Errors and quarantines print as `file:line: field: message`.
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// True if any diagnostic is an error.
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(Diagnostic::is_error)
}

/// True if any diagnostic quarantined a circuit.
pub fn has_quarantine(diags: &[Diagnostic]) -> bool {
    diags.iter().any(|d| d.severity == Severity::Quarantine)
}
