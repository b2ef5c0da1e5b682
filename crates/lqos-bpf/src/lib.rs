//! lqos-bpf (work in progress).
