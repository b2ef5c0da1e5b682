//! lqos-plan integration tests: the worked example, planner rules, diff and properties.

mod diffs;
mod planner;
mod properties;
mod support;
