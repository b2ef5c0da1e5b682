//! Host facts for the planner; they live in [`lqos_pipeline::facts`] (shared with libreqos).

pub use lqos_pipeline::facts::*;
