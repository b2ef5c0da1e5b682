//! The seam between lqosd and the kernel: everything lqosd does to the maps at run time.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::{BpfError, HostCounter, IpMapping, MappingBatch};

/// Map-level operations lqosd needs after attach. Implemented by [`crate::Dataplane`] and by
/// the recording fake (`fake::FakeKernel`, feature `fake`).
pub trait BpfKernel {
    /// Applies one batch of mapping changes, then bumps the hot-cache epoch. Returns the new epoch.
    fn apply_mappings(&mut self, batch: &MappingBatch) -> Result<u32, BpfError>;
    /// Removes every mapping, then bumps the epoch.
    fn clear_mappings(&mut self) -> Result<u32, BpfError>;
    /// Every mapping, sorted by prefix.
    fn list_mappings(&self) -> Result<Vec<(IpNet, IpMapping)>, BpfError>;
    /// Per-host counters summed over CPUs, sorted by address.
    fn host_counters(&self) -> Result<Vec<(IpAddr, HostCounter)>, BpfError>;
    /// Forgets hosts' counters (garbage collection).
    fn remove_hosts(&mut self, hosts: &[IpAddr]) -> Result<(), BpfError>;
}
