//! The kernel door of lqosd: everything the apply engine asks of the kernel goes through the
//! [`Kernel`] trait. The real implementation drives lqos-tc (queues) and lqos-bpf (mappings and
//! counters); [`fake::FakeKernel`] records calls so the engine's ordering and failure rules are
//! tested without root.

use std::net::IpAddr;

use lqos_plan::{ChangeSet, IpMapping, Plan};

/// A kernel operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Changing the queue tree failed.
    #[error("queue tree change failed: {message}")]
    Tc {
        /// The full error chain from lqos-tc (names the object and the kernel's errno).
        message: String,
    },
    /// Changing or reading the eBPF maps failed.
    #[error("eBPF map operation failed: {message}")]
    Bpf {
        /// The full error chain from lqos-bpf.
        message: String,
    },
}

/// Counts from one tc apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcCounts {
    /// Objects added.
    pub added: usize,
    /// Objects changed in place.
    pub changed: usize,
    /// Objects deleted.
    pub deleted: usize,
}

/// Per-host counters summed over CPUs (lqosd-side type; the data plane now counts per slot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCounter {
    /// Download bytes (L2, before shaping).
    pub download_bytes: u64,
    /// Download packets.
    pub download_packets: u64,
    /// Upload bytes.
    pub upload_bytes: u64,
    /// Upload packets.
    pub upload_packets: u64,
    /// Newest `CLOCK_BOOTTIME` nanoseconds over all CPUs.
    pub last_seen_ns: u64,
    /// Class handle (0 = unmapped).
    pub class_handle: u32,
}

/// Live numbers of one HTB class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassCounter {
    /// Class handle `major << 16 | minor`.
    pub handle: u32,
    /// Bytes sent.
    pub bytes: u64,
    /// Packets sent.
    pub packets: u64,
    /// Drops.
    pub drops: u64,
    /// Backlog bytes.
    pub backlog: u64,
}

/// Everything the engine needs from the kernel.
pub trait Kernel: Send {
    /// Applies the queue-tree part of a ChangeSet (deletions, additions, in-place changes),
    /// in lqos-tc's safe order.
    fn apply_tc(&mut self, cs: &ChangeSet) -> Result<TcCounts, KernelError>;
    /// Removes IP mappings (then flushes the hot cache).
    fn unmap(&mut self, mappings: &[IpMapping]) -> Result<(), KernelError>;
    /// Adds or overwrites IP mappings (then flushes the hot cache).
    fn map(&mut self, mappings: &[IpMapping]) -> Result<(), KernelError>;
    /// Compares the live tree with `plan` and says what must change (nothing when the kernel
    /// already holds the plan).
    fn reconcile(&mut self, plan: &Plan) -> Result<ChangeSet, KernelError>;
    /// Removes the managed tree (the interfaces get their original root qdisc back) and all
    /// mappings.
    fn clear(&mut self, plan: &Plan) -> Result<(), KernelError>;
    /// Reads per-host counters.
    fn host_counters(&mut self) -> Result<Vec<(IpAddr, HostCounter)>, KernelError>;
    /// Reads per-class counters of one interface.
    fn class_counters(&mut self, interface: &str) -> Result<Vec<ClassCounter>, KernelError>;
    /// How many counter slots the data plane has (slot 0 is the unshaped one).
    fn slot_capacity(&self) -> u32 {
        DEFAULT_SLOT_CAPACITY
    }
    /// The circuit → slot table the next `map` calls write into the mappings.
    fn set_slots(&mut self, _slots: &crate::slots::SlotTable) {}
}

/// Counter slots when the data plane does not say (the fake).
pub const DEFAULT_SLOT_CAPACITY: u32 = 1 << 18;

/// A recording fake for tests (and for `lqosd --fake-kernel` demos of the web GUI).
pub mod fake {
    use super::*;

    /// One recorded call.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Call {
        /// `apply_tc` with the ChangeSet's size.
        ApplyTc {
            /// Objects to add.
            adds: usize,
            /// Objects to change.
            changes: usize,
            /// Objects to delete.
            deletes: usize,
        },
        /// `unmap` with the count.
        Unmap(usize),
        /// `map` with the count.
        Map(usize),
        /// `reconcile`.
        Reconcile,
        /// `clear`.
        Clear,
    }

    /// Records calls; can be told to fail the next tc apply.
    #[derive(Debug, Default)]
    pub struct FakeKernel {
        /// Calls in order.
        pub calls: Vec<Call>,
        /// When set, the next `apply_tc` fails with this message.
        pub fail_next_tc: Option<String>,
        /// What `reconcile` returns.
        pub reconcile_answer: ChangeSet,
        /// What `host_counters` returns.
        pub hosts: Vec<(IpAddr, HostCounter)>,
        /// What `class_counters` returns.
        pub classes: Vec<ClassCounter>,
        /// How many times `class_counters` was called (one per interface per read).
        pub class_reads: usize,
    }

    impl Kernel for FakeKernel {
        fn apply_tc(&mut self, cs: &ChangeSet) -> Result<TcCounts, KernelError> {
            let adds = cs.mq_add.len() + cs.htb_add.len() + cs.class_add.len() + cs.leaf_add.len();
            let changes = cs.class_change.len() + cs.leaf_change.len();
            let deletes = cs.leaf_del.len() + cs.class_del.len() + cs.htb_del.len();
            self.calls.push(Call::ApplyTc { adds, changes, deletes });
            if let Some(message) = self.fail_next_tc.take() {
                return Err(KernelError::Tc { message });
            }
            Ok(TcCounts { added: adds, changed: changes, deleted: deletes })
        }
        fn unmap(&mut self, mappings: &[IpMapping]) -> Result<(), KernelError> {
            self.calls.push(Call::Unmap(mappings.len()));
            Ok(())
        }
        fn map(&mut self, mappings: &[IpMapping]) -> Result<(), KernelError> {
            self.calls.push(Call::Map(mappings.len()));
            Ok(())
        }
        fn reconcile(&mut self, _plan: &Plan) -> Result<ChangeSet, KernelError> {
            self.calls.push(Call::Reconcile);
            Ok(self.reconcile_answer.clone())
        }
        fn clear(&mut self, _plan: &Plan) -> Result<(), KernelError> {
            self.calls.push(Call::Clear);
            Ok(())
        }
        fn host_counters(&mut self) -> Result<Vec<(IpAddr, HostCounter)>, KernelError> {
            Ok(self.hosts.clone())
        }
        fn class_counters(&mut self, _interface: &str) -> Result<Vec<ClassCounter>, KernelError> {
            self.class_reads += 1;
            Ok(self.classes.clone())
        }
    }
}
