//! Recording fake of [`BpfKernel`] for tests of lqosd (feature `fake`).

use std::{collections::BTreeMap, ops::Range};

use ipnet::IpNet;

use crate::{
    BpfError, BpfKernel, DataplaneSettings, Flow, FlowKey, IpMapping, MappingBatch, RttHistogram,
    SlotCounters, UnknownAddress,
};

/// One call seen by the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeCall {
    /// `apply_mappings` with its batch.
    Apply(MappingBatch),
    /// `clear_mappings`.
    Clear,
    /// `reset_slots`.
    ResetSlots(Vec<u32>),
    /// `remove_flows`.
    RemoveFlows(Vec<FlowKey>),
    /// `clear_unknown`.
    ClearUnknown,
    /// `set_settings`.
    Settings(DataplaneSettings),
}

/// In-memory kernel: keeps mappings, slot data and an epoch, records every mutating call, and
/// can be told to fail the next mutating call.
#[derive(Debug, Default, Clone)]
pub struct FakeKernel {
    /// Calls in order.
    pub calls: Vec<FakeCall>,
    /// Current mappings.
    pub mappings: BTreeMap<IpNet, IpMapping>,
    /// Counters per slot returned by `read_slot_counters` (missing slots read as zero).
    pub slots: BTreeMap<u32, SlotCounters>,
    /// Histograms per slot returned by `read_rtt_histograms`.
    pub rtt: BTreeMap<u32, RttHistogram>,
    /// Flows returned by `read_flows`.
    pub flows: BTreeMap<FlowKey, Flow>,
    /// Unknown addresses returned by `read_unknown`.
    pub unknown: Vec<UnknownAddress>,
    /// Current epoch (bumped once per apply/clear, also a failed one).
    pub epoch: u32,
    /// When set, the next mutating call fails without changing anything (an apply still
    /// bumps the epoch, as the real one does).
    pub fail_next: bool,
}

impl FakeKernel {
    /// Empty fake.
    pub fn new() -> Self {
        Self::default()
    }

    fn check_fail(&mut self, operation: &'static str) -> Result<(), BpfError> {
        if std::mem::take(&mut self.fail_next) {
            return Err(BpfError::Injected { operation });
        }
        Ok(())
    }
}

impl BpfKernel for FakeKernel {
    fn apply_mappings(&mut self, batch: &MappingBatch) -> Result<u32, BpfError> {
        if let Err(e) = self.check_fail("apply_mappings") {
            self.epoch = self.epoch.wrapping_add(1);
            return Err(e);
        }
        self.calls.push(FakeCall::Apply(batch.clone()));
        for (net, m) in &batch.upsert {
            self.mappings.insert(net.trunc(), *m);
        }
        for net in &batch.delete {
            self.mappings.remove(&net.trunc());
        }
        self.epoch = self.epoch.wrapping_add(1);
        Ok(self.epoch)
    }

    fn clear_mappings(&mut self) -> Result<u32, BpfError> {
        self.check_fail("clear_mappings")?;
        self.calls.push(FakeCall::Clear);
        self.mappings.clear();
        self.epoch = self.epoch.wrapping_add(1);
        Ok(self.epoch)
    }

    fn list_mappings(&self) -> Result<Vec<(IpNet, IpMapping)>, BpfError> {
        Ok(self.mappings.iter().map(|(n, m)| (*n, *m)).collect())
    }

    fn read_slot_counters(
        &self,
        range: Range<u32>,
        out: &mut Vec<SlotCounters>,
    ) -> Result<(), BpfError> {
        out.clear();
        out.extend(range.map(|s| self.slots.get(&s).copied().unwrap_or_default()));
        Ok(())
    }

    fn read_rtt_histograms(
        &self,
        range: Range<u32>,
        out: &mut Vec<RttHistogram>,
    ) -> Result<(), BpfError> {
        out.clear();
        out.extend(range.map(|s| self.rtt.get(&s).copied().unwrap_or_default()));
        Ok(())
    }

    fn reset_slots(&mut self, slots: &[u32]) -> Result<(), BpfError> {
        self.check_fail("reset_slots")?;
        self.calls.push(FakeCall::ResetSlots(slots.to_vec()));
        for s in slots {
            self.slots.remove(s);
            self.rtt.remove(s);
        }
        Ok(())
    }

    fn read_flows(&self) -> Result<Vec<Flow>, BpfError> {
        Ok(self.flows.values().copied().collect())
    }

    fn remove_flows(&mut self, keys: &[FlowKey]) -> Result<usize, BpfError> {
        self.check_fail("remove_flows")?;
        self.calls.push(FakeCall::RemoveFlows(keys.to_vec()));
        Ok(keys.iter().filter(|k| self.flows.remove(k).is_some()).count())
    }

    fn read_unknown(&self) -> Result<Vec<UnknownAddress>, BpfError> {
        Ok(self.unknown.clone())
    }

    fn clear_unknown(&mut self) -> Result<(), BpfError> {
        self.check_fail("clear_unknown")?;
        self.calls.push(FakeCall::ClearUnknown);
        self.unknown.clear();
        Ok(())
    }

    fn set_settings(&mut self, s: &DataplaneSettings) -> Result<(), BpfError> {
        self.check_fail("set_settings")?;
        self.calls.push(FakeCall::Settings(*s));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_records_batches_and_failed_batch_still_bumps_epoch() {
        let mut k = FakeKernel::new();
        let net: IpNet = "198.18.0.0/24".parse().expect("net");
        let m = IpMapping { cpu: 1, class_handle: 0x0002_0010, slot: 3, ..Default::default() };
        let batch = MappingBatch { upsert: vec![(net, m)], delete: vec![] };
        assert_eq!(k.apply_mappings(&batch).expect("apply"), 1);
        assert_eq!(k.list_mappings().expect("list"), vec![(net, m)]);
        k.fail_next = true;
        let del = MappingBatch { upsert: vec![], delete: vec![net] };
        assert!(k.apply_mappings(&del).is_err());
        assert_eq!(k.list_mappings().expect("list").len(), 1);
        assert_eq!(k.calls, vec![FakeCall::Apply(batch)]);
        assert_eq!(k.epoch, 2);
        let mut out = Vec::new();
        k.slots.insert(2, SlotCounters { packets: [5, 0], ..Default::default() });
        k.read_slot_counters(1..4, &mut out).expect("read");
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].packets, [5, 0]);
    }
}
