//! Kernel tests for lqos-tc. They need root; each runs in its own network namespace with a
//! 4-queue veth pair and holds a process-wide lock, so they run one at a time.

#![expect(clippy::print_stdout, reason = "kernel tests say when they skip")]

mod kernel;
mod netns;
