//! lqos-plan is the pure queue planner. Given validated inputs (config, network, circuits),
//! host facts (queue and CPU counts) and the previous identity assignments, [`plan`] produces a
//! serializable [`Plan`]: per interface a root `mq 7FFF:`, one HTB per queue (class `k:1` =
//! the link capacity, default class `k:2`), the sites beneath `k:1`, circuits under their
//! parent node, and a leaf qdisc per circuit and direction; plus the IP → class mappings.
//! [`diff`] turns two plans into a [`ChangeSet`]; [`render_plan_tc`] and
//! [`render_changeset_tc`] print either as `tc -batch` lines.
//!
//! It must not do I/O, read a clock or the environment: the same input gives the same plan.
//!
//! Class IDs are stable: an object (node by `id`, else path; circuit by Circuit ID) that stays
//! on its queue keeps its minor, new objects take the lowest free minor, and objects that
//! disappear free theirs. Adding, removing or re-rating one circuit touches only that circuit.
//! The full rules are in [`planner::plan`]'s documentation and in the [`rules`] module
//! (`docs/planner.md`).
//!
//! ```
//! use lqos_plan::{diff, plan, Identities, Plan, PlanInput};
//! use lqos_plan::testkit::{circuit, config_bridge, facts, network, site};
//! use std::net::Ipv4Addr;
//!
//! let config = config_bridge(1000, 1000);
//! let net = network(vec![site("Site_A", 500, 500, vec![])]);
//! let circuits = vec![circuit("c1", "Alice", Some("Site_A"), 100, 20, Ipv4Addr::new(100, 64, 0, 1))];
//! let previous = Identities::default();
//! let input = PlanInput { config: &config, network: &net, circuits: &circuits, facts: facts(2), previous: &previous };
//! let p = plan(&input).unwrap();
//! assert_eq!(p.queues, 2);
//! assert_eq!(p.mappings.len(), 1);
//! assert!(diff(&p, &p).is_empty());
//! assert!(!diff(&Plan::empty(), &p).is_empty());
//! ```
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod diff;
#[doc = include_str!("../docs/planner.md")]
pub mod rules {}
pub mod error;
pub mod hash;
pub mod model;
pub mod planner;
pub mod rates;
pub mod render;
pub mod sqm;
pub mod summary;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use diff::{KernelView, apply, diff};
pub use error::PlanError;
pub use hash::{circuit_hash, device_hash};
pub use model::*;
pub use planner::{PlanInput, generated_pn_key, plan, queue_count};
pub use render::{render_changeset_tc, render_plan_tc};
pub use summary::{PlanSummary, QueueSummary};
