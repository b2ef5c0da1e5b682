//! lqos-integrations (work in progress).
