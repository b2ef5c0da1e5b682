//! `lqosd`: the lqos daemon. Thin: arguments, logging, then `lqosd::daemon::run`.
fn main() {}
