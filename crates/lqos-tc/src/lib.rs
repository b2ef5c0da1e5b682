//! lqos-tc (work in progress).
