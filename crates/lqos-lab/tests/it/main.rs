//! End-to-end tests: lqosd in the namespace lab. They need root and run one at a time.
#![expect(clippy::print_stderr, reason = "end-to-end tests report the rates they measured")]
mod e2e;
mod insight;
mod prometheus;
mod qoe;
mod scheduler;
mod signals;
mod web;
