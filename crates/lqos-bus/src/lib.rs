//! lqos-bus (work in progress).
