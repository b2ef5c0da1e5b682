//! lqusers (work in progress).
fn main() {}
