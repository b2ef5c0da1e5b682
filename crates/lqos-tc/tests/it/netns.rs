//! A network namespace with a veth pair `v0`/`v1` (4 TX and 4 RX queues each), deleted on drop
//! (also on panic), and helpers to run code and `tc` inside it.

use std::fs::File;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

use nix::sched::{CloneFlags, setns};

static KERNEL_LOCK: Mutex<()> = Mutex::new(());
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Serialises kernel tests (poisoning from an earlier failed test is ignored).
pub fn kernel_lock() -> MutexGuard<'static, ()> {
    KERNEL_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// True when running as root; otherwise prints the skip notice.
pub fn is_root_or_skip() -> bool {
    if nix::unistd::Uid::effective().is_root() {
        true
    } else {
        println!("skipped: needs root");
        false
    }
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("spawn {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The namespace guard.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `lqtc-<pid>-<n>` with `v0` (198.18.0.1/24) and its peer `v1` (no address, so
    /// traffic to 198.18.0.2 leaves through `v0`'s qdiscs), both up.
    pub fn new() -> Self {
        let name =
            format!("lqtc-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&[
            "link",
            "add",
            "v0",
            "numtxqueues",
            "4",
            "numrxqueues",
            "4",
            "type",
            "veth",
            "peer",
            "name",
            "v1",
            "numtxqueues",
            "4",
            "numrxqueues",
            "4",
        ]);
        ns.ip(&["addr", "add", "198.18.0.1/24", "dev", "v0"]);
        ns.ip(&["link", "set", "v0", "up"]);
        ns.ip(&["link", "set", "v1", "up"]);
        ns
    }

    /// `ip -n <ns> …`.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// `ip netns exec <ns> <cmd…>`.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut a = vec!["netns", "exec", self.name.as_str()];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// Runs `f` on a thread that has entered the namespace (sockets opened there stay bound to
    /// it). A panic in `f` is re-raised here.
    pub fn enter<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            let h = s.spawn(move || {
                let fd = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns into the test namespace");
                f()
            });
            match h.join() {
                Ok(r) => r,
                Err(p) => std::panic::resume_unwind(p),
            }
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}
