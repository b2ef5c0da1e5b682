//! libreqos (work in progress).
fn main() {}
