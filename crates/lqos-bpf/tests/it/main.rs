//! lqos-bpf integration tests. All of them need root (they load eBPF programs); they print
//! "skipped: needs root" otherwise. They hold one process-wide lock, so they run serially.
#![expect(clippy::print_stdout, reason = "tests report skips and diagnostics on stdout")]

mod pfx;
mod stick;
mod test_run;
mod veth;

use std::sync::{Mutex, MutexGuard};

static KERNEL_LOCK: Mutex<()> = Mutex::new(());

/// Takes the kernel-test lock, or returns `None` (after printing why) when not root.
fn kernel_test() -> Option<MutexGuard<'static, ()>> {
    if !nix::unistd::Uid::effective().is_root() {
        println!("skipped: needs root");
        return None;
    }
    Some(KERNEL_LOCK.lock().unwrap_or_else(|p| p.into_inner()))
}
