//! The seam between lqosd and the kernel: everything lqosd does to the maps at run time.

use std::ops::Range;

use ipnet::IpNet;

use crate::{
    BpfError, DataplaneSettings, Flow, FlowKey, IpMapping, MappingBatch, RttHistogram,
    SlotCounters, UnknownAddress,
};

/// Map-level operations lqosd needs after attach. Implemented by [`crate::Dataplane`] and by
/// the recording fake (`fake::FakeKernel`, feature `fake`).
pub trait BpfKernel {
    /// Applies one batch of mapping changes, then bumps the cache epoch (also when the batch
    /// failed part-way). Returns the new epoch.
    fn apply_mappings(&mut self, batch: &MappingBatch) -> Result<u32, BpfError>;
    /// Removes every mapping, then bumps the epoch.
    fn clear_mappings(&mut self) -> Result<u32, BpfError>;
    /// Every mapping, sorted by prefix.
    fn list_mappings(&self) -> Result<Vec<(IpNet, IpMapping)>, BpfError>;
    /// Counters of slots `range`, summed over CPUs (`out[i]` = slot `range.start + i`).
    fn read_slot_counters(
        &self,
        range: Range<u32>,
        out: &mut Vec<SlotCounters>,
    ) -> Result<(), BpfError>;
    /// RTT histograms of slots `range` (`out[i]` = slot `range.start + i`).
    fn read_rtt_histograms(
        &self,
        range: Range<u32>,
        out: &mut Vec<RttHistogram>,
    ) -> Result<(), BpfError>;
    /// Zeroes counters and histograms of slots about to be reused.
    fn reset_slots(&mut self, slots: &[u32]) -> Result<(), BpfError>;
    /// The flow table.
    fn read_flows(&self) -> Result<Vec<Flow>, BpfError>;
    /// Deletes flows; returns how many existed.
    fn remove_flows(&mut self, keys: &[FlowKey]) -> Result<usize, BpfError>;
    /// The sampled unknown addresses, busiest first.
    fn read_unknown(&self) -> Result<Vec<UnknownAddress>, BpfError>;
    /// Empties the unknown-address table.
    fn clear_unknown(&mut self) -> Result<(), BpfError>;
    /// Global switches (observe mode, sampling).
    fn set_settings(&mut self, s: &DataplaneSettings) -> Result<(), BpfError>;
}
