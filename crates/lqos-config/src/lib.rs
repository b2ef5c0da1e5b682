//! lqos-config owns the operator's inputs: `/etc/lqos.conf` (LibreQoS 1.5 TOML schema),
//! `ShapedDevices.csv` and `network.json`. It parses them, validates them (reporting every
//! problem at once with file, line and field) and writes them back atomically. Its only I/O is
//! loading and writing files; all parsing is on strings so tests need no disk.
//!
//! Main types: [`Config`], [`Network`], [`Circuit`], [`Diagnostic`].
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod diag;
pub mod model;

pub use diag::{Diagnostic, Severity, has_errors};
pub use model::*;
