//! The kernel door of lqosd: everything the apply engine asks of the kernel goes through the
//! [`Kernel`] trait. The real implementation drives lqos-tc (queues) and lqos-bpf (mappings and
//! counters); [`fake::FakeKernel`] records calls so the engine's ordering and failure rules are
//! tested without root.

use std::ops::Range;

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

pub use lqos_bpf::{Flow, RttHistogram, SlotCounters, UnknownAddress};

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

/// One circuit class and the leaf qdisc under it, as the kernel reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueReading {
    /// The HTB class (`None` when the kernel does not have it).
    pub class: Option<lqos_tc::LiveClass>,
    /// The visible leaf qdisc under it (`None` for the kernel's default pfifo of leaf `none`).
    pub leaf: Option<lqos_tc::LiveQdisc>,
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
    /// Reads the counters of slots `range`, summed over CPUs (`out[i]` = slot
    /// `range.start + i`).
    fn slot_counters(
        &mut self,
        range: Range<u32>,
        out: &mut Vec<SlotCounters>,
    ) -> Result<(), KernelError>;
    /// Reads the cumulative RTT histograms of slots `range`.
    fn rtt_histograms(
        &mut self,
        range: Range<u32>,
        out: &mut Vec<RttHistogram>,
    ) -> Result<(), KernelError>;
    /// Zeroes the counters and histograms of slots about to be given to another circuit.
    fn reset_slots(&mut self, slots: &[u32]) -> Result<(), KernelError>;
    /// Reads the flow table, deletes flows idle for a few sweeps, returns the live ones.
    fn sweep_flows(&mut self) -> Result<Vec<Flow>, KernelError>;
    /// Reads the sampled unknown-address table (addresses that match no mapping, with their
    /// estimated bytes and packets since the last call) and empties it for the next window.
    fn take_unknown(&mut self) -> Result<Vec<UnknownAddress>, KernelError>;
    /// The data plane's own counters and table sizes (`None`: no data plane, e.g. the fake).
    fn dataplane_health(&mut self) -> Result<Option<lqos_bus::DataplaneHealth>, KernelError> {
        Ok(None)
    }
    /// `queue_mode = "observe"`: count and measure, never redirect or classify.
    fn set_observe(&mut self, observe: bool) -> Result<(), KernelError>;
    /// Reads per-class counters of one interface.
    fn class_counters(&mut self, interface: &str) -> Result<Vec<ClassCounter>, KernelError>;
    /// Reads one class of `interface` and the leaf qdisc under it: two netlink gets addressed
    /// by the class, never a dump of the interface.
    fn queue_stats(
        &mut self,
        interface: &str,
        class: lqos_plan::ClassId,
    ) -> Result<QueueReading, KernelError>;
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
        /// `reset_slots` with the slots.
        ResetSlots(Vec<u32>),
        /// `set_observe` (recorded only when it changes).
        Observe(bool),
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
        /// Slot counters, index = slot.
        pub slots: Vec<SlotCounters>,
        /// RTT histograms, index = slot.
        pub hists: Vec<RttHistogram>,
        /// What `sweep_flows` returns.
        pub flows: Vec<Flow>,
        /// The unknown-address table: `take_unknown` returns and empties it.
        pub unknown: Vec<UnknownAddress>,
        /// `take_unknown` calls.
        pub unknown_reads: usize,
        /// The last observe switch.
        pub observe: Option<bool>,
        /// Slot counter reads.
        pub slot_reads: usize,
        /// RTT histogram reads.
        pub hist_reads: usize,
        /// What `class_counters` returns.
        pub classes: Vec<ClassCounter>,
        /// How many times `class_counters` was called (one per interface per read).
        pub class_reads: usize,
        /// What `queue_stats` returns, by (interface, class handle); absent = no class.
        pub queues: std::collections::BTreeMap<(String, u32), QueueReading>,
        /// `queue_stats` calls.
        pub queue_reads: usize,
        /// What `dataplane_health` returns.
        pub health: Option<lqos_bus::DataplaneHealth>,
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
        fn slot_counters(
            &mut self,
            range: Range<u32>,
            out: &mut Vec<SlotCounters>,
        ) -> Result<(), KernelError> {
            self.slot_reads += 1;
            out.clear();
            out.extend(range.map(|s| self.slots.get(s as usize).copied().unwrap_or_default()));
            Ok(())
        }
        fn rtt_histograms(
            &mut self,
            range: Range<u32>,
            out: &mut Vec<RttHistogram>,
        ) -> Result<(), KernelError> {
            self.hist_reads += 1;
            out.clear();
            out.extend(range.map(|s| self.hists.get(s as usize).copied().unwrap_or_default()));
            Ok(())
        }
        fn reset_slots(&mut self, slots: &[u32]) -> Result<(), KernelError> {
            self.calls.push(Call::ResetSlots(slots.to_vec()));
            for s in slots {
                if let Some(c) = self.slots.get_mut(*s as usize) {
                    *c = SlotCounters::default();
                }
                if let Some(h) = self.hists.get_mut(*s as usize) {
                    *h = RttHistogram::default();
                }
            }
            Ok(())
        }
        fn sweep_flows(&mut self) -> Result<Vec<Flow>, KernelError> {
            Ok(self.flows.clone())
        }
        fn dataplane_health(&mut self) -> Result<Option<lqos_bus::DataplaneHealth>, KernelError> {
            Ok(self.health)
        }
        fn take_unknown(&mut self) -> Result<Vec<UnknownAddress>, KernelError> {
            self.unknown_reads += 1;
            Ok(std::mem::take(&mut self.unknown))
        }
        fn set_observe(&mut self, observe: bool) -> Result<(), KernelError> {
            if self.observe.unwrap_or(false) != observe {
                self.calls.push(Call::Observe(observe));
            }
            self.observe = Some(observe);
            Ok(())
        }
        fn class_counters(&mut self, _interface: &str) -> Result<Vec<ClassCounter>, KernelError> {
            self.class_reads += 1;
            Ok(self.classes.clone())
        }
        fn queue_stats(
            &mut self,
            interface: &str,
            class: lqos_plan::ClassId,
        ) -> Result<QueueReading, KernelError> {
            self.queue_reads += 1;
            Ok(self
                .queues
                .get(&(interface.to_string(), class.as_u32()))
                .cloned()
                .unwrap_or_default())
        }
    }
}
