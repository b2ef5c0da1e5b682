//! Recording fake of [`BpfKernel`] for tests of lqosd (feature `fake`).

use std::{collections::BTreeMap, net::IpAddr};

use ipnet::IpNet;

use crate::{BpfError, BpfKernel, HostCounter, IpMapping, MappingBatch};

/// One call seen by the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeCall {
    /// `apply_mappings` with its batch.
    Apply(MappingBatch),
    /// `clear_mappings`.
    Clear,
    /// `remove_hosts`.
    RemoveHosts(Vec<IpAddr>),
}

/// In-memory kernel: keeps mappings and an epoch, records every mutating call, and can be
/// told to fail the next mutating call.
#[derive(Debug, Default, Clone)]
pub struct FakeKernel {
    /// Calls in order.
    pub calls: Vec<FakeCall>,
    /// Current mappings.
    pub mappings: BTreeMap<IpNet, IpMapping>,
    /// Counters returned by `host_counters`.
    pub counters: BTreeMap<IpAddr, HostCounter>,
    /// Current epoch (bumped once per successful apply/clear).
    pub epoch: u32,
    /// When set, the next mutating call fails without changing anything.
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
        self.check_fail("apply_mappings")?;
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

    fn host_counters(&self) -> Result<Vec<(IpAddr, HostCounter)>, BpfError> {
        Ok(self.counters.iter().map(|(a, c)| (*a, *c)).collect())
    }

    fn remove_hosts(&mut self, hosts: &[IpAddr]) -> Result<(), BpfError> {
        self.check_fail("remove_hosts")?;
        self.calls.push(FakeCall::RemoveHosts(hosts.to_vec()));
        for h in hosts {
            self.counters.remove(h);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_records_batches_and_failed_batch_changes_nothing() {
        let mut k = FakeKernel::new();
        let net: IpNet = "198.18.0.0/24".parse().expect("net");
        let m = IpMapping { cpu: 1, class_handle: 0x0002_0010, ..Default::default() };
        let batch = MappingBatch { upsert: vec![(net, m)], delete: vec![] };
        assert_eq!(k.apply_mappings(&batch).expect("apply"), 1);
        assert_eq!(k.list_mappings().expect("list"), vec![(net, m)]);
        k.fail_next = true;
        let del = MappingBatch { upsert: vec![], delete: vec![net] };
        assert!(k.apply_mappings(&del).is_err());
        assert_eq!(k.list_mappings().expect("list").len(), 1);
        assert_eq!(k.calls, vec![FakeCall::Apply(batch)]);
        assert_eq!(k.epoch, 1);
    }
}
