//! Kernel tests for lqos-tc. They need root; each runs in its own network namespace with a
//! 4-queue veth pair and holds a process-wide lock, so they run one at a time.

mod kernel;
mod netns;
