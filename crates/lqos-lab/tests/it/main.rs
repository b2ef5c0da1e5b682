//! End-to-end tests: lqosd in the namespace lab. They need root and run one at a time.
mod e2e;
