//! lqosd is the daemon and the only process that changes kernel state: it loads and attaches
//! the eBPF programs (lqos-bpf), owns the tc queue tree (lqos-tc), applies plans (lqos-plan)
//! built from the validated inputs (lqos-config), collects live statistics, and serves the
//! local bus. Everything that changes the kernel goes through one apply task
//! ([`service::Service`]) that answers [`lqos_bus::Command`]s one at a time. It serves no HTTP:
//! the GUI, the API and `/metrics` are `lqos_web` (crate lqos-web), an unprivileged process
//! that reaches this daemon over the bus like every other tool.
//!
//! Main types: [`engine::Engine`] (validate → plan → diff → apply, with the applied plan kept
//! in `state_directory`), [`kernel::Kernel`] (the kernel door, with a recording fake),
//! [`service::Service`] (the apply task), [`stats::StatsTracker`], [`tuning::plan_tuning`]
//! (host tuning from `[tuning]`, applied once at start-up).
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod check;
pub mod daemon;
pub mod engine;
pub mod facts;
pub mod flows;
pub mod history;
pub mod insight;
pub mod kernel;
pub mod observe;
pub mod preflight;
pub mod qoe;
pub mod queue;
pub mod real;
pub mod service;
pub mod slots;
pub mod stages;
pub mod stats;
#[cfg(test)]
mod testutil;
pub mod tuning;
