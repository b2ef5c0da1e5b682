//! lqos-lab (work in progress).
