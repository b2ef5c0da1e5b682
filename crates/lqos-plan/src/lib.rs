//! lqos-plan is the pure queue planner. Given validated inputs (config, network, circuits),
//! host facts (queue and CPU counts) and the previous identity assignments, it produces a
//! serializable [`Plan`]: the mq → HTB-per-queue → sites → circuits → leaf tree, and the IP
//! mappings. [`diff`] turns two plans into a [`ChangeSet`]. No I/O, no clock, no environment.
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod model;

pub use model::*;
