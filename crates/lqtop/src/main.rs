//! lqtop (work in progress).
fn main() {}
