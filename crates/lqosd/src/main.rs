//! lqosd (work in progress).
fn main() {}
