//! Integration tests for lqos-config: one binary, one module per input file.
#![allow(clippy::unwrap_used, reason = "tests unwrap known-good inputs")]

mod conf;
mod csv;
mod files;
mod fuzz;
mod network;
mod properties;
mod validate;

use lqos_config::Diagnostic;

/// The diagnostics that are errors.
pub fn errors(d: &[Diagnostic]) -> Vec<&Diagnostic> {
    d.iter().filter(|d| d.is_error()).collect()
}

/// The single error in `d`, or a panic listing all of them.
pub fn only_error(d: &[Diagnostic]) -> &Diagnostic {
    let e = errors(d);
    assert_eq!(e.len(), 1, "expected exactly one error, got: {d:#?}");
    e[0]
}
