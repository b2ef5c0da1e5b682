//! lqos_scheduler (work in progress).
fn main() {}
