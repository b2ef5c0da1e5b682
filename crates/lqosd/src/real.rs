//! The real kernel door: lqos-tc for the queue tree, lqos-bpf for mappings and counters.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use lqos_bpf::{Dataplane, MappingBatch};
use lqos_config::CircuitId;
use lqos_plan::{ChangeSet, ClassId, IpMapping, Plan};
use lqos_tc::TcHandle;

use crate::engine::error_chain;
use crate::kernel::{ClassCounter, HostCounter, Kernel, KernelError, TcCounts};

/// lqos-tc + lqos-bpf behind the [`Kernel`] trait.
pub struct RealKernel {
    /// Queue engine.
    pub tc: TcHandle,
    /// eBPF programs and maps.
    pub dp: Dataplane,
}

impl std::fmt::Debug for RealKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RealKernel")
    }
}

fn tc_err(e: lqos_tc::TcError) -> KernelError {
    KernelError::Tc { message: error_chain(&e) }
}

fn bpf_err(e: lqos_bpf::BpfError) -> KernelError {
    KernelError::Bpf { message: error_chain(&e) }
}

/// The data plane's value for a planned mapping.
pub fn to_bpf(m: &IpMapping) -> (IpNet, lqos_bpf::IpMapping) {
    (
        m.net,
        lqos_bpf::IpMapping {
            cpu: m.cpu,
            class_handle: m.class.as_u32(),
            // Slot allocation belongs to lqosd's stats side (issue 11); until it lands every
            // mapping counts into the unshaped slot 0.
            slot: 0,
            circuit_hash: m.circuit_hash,
            device_hash: m.device_hash,
        },
    )
}

impl Kernel for RealKernel {
    fn apply_tc(&mut self, cs: &ChangeSet) -> Result<TcCounts, KernelError> {
        let report = self.tc.apply(cs).map_err(tc_err)?;
        let mut counts = TcCounts::default();
        for i in &report.interfaces {
            counts.added += i.added;
            counts.changed += i.changed;
            counts.deleted += i.deleted;
            tracing::debug!(
                interface = %i.interface,
                added = i.added,
                changed = i.changed,
                deleted = i.deleted,
                already = i.already,
                ms = i.duration.as_millis() as u64,
                "tc apply"
            );
        }
        Ok(counts)
    }

    fn unmap(&mut self, mappings: &[IpMapping]) -> Result<(), KernelError> {
        let batch =
            MappingBatch { upsert: Vec::new(), delete: mappings.iter().map(|m| m.net).collect() };
        self.dp.ip_map().apply(&batch).map(|_| ()).map_err(bpf_err)
    }

    fn map(&mut self, mappings: &[IpMapping]) -> Result<(), KernelError> {
        let batch =
            MappingBatch { upsert: mappings.iter().map(to_bpf).collect(), delete: Vec::new() };
        self.dp.ip_map().apply(&batch).map(|_| ()).map_err(bpf_err)
    }

    fn reconcile(&mut self, plan: &Plan) -> Result<ChangeSet, KernelError> {
        let mut cs = self.tc.reconcile_live(plan).map_err(tc_err)?;
        let live: HashMap<IpNet, lqos_bpf::IpMapping> =
            self.dp.ip_map().list().map_err(bpf_err)?.into_iter().collect();
        let wanted: HashMap<IpNet, &IpMapping> = plan.mappings.iter().map(|m| (m.net, m)).collect();
        for (net, _) in live.iter().filter(|(n, _)| !wanted.contains_key(n)) {
            cs.map_del.push(IpMapping {
                net: *net,
                cpu: 0,
                class: ClassId::new(0, 0),
                circuit: CircuitId(String::new()),
                circuit_hash: 0,
                device_hash: 0,
            });
        }
        for m in &plan.mappings {
            if live.get(&m.net) != Some(&to_bpf(m).1) {
                cs.map_add.push(m.clone());
            }
        }
        Ok(cs)
    }

    fn clear(&mut self, plan: &Plan) -> Result<(), KernelError> {
        self.dp.ip_map().clear().map_err(bpf_err)?;
        self.tc.teardown(plan).map(|_| ()).map_err(tc_err)
    }

    fn host_counters(&mut self) -> Result<Vec<(IpAddr, HostCounter)>, KernelError> {
        // The data plane no longer keeps per-host counters (issue 11: per-slot counters
        // replace the unbounded host map); lqosd's stats loop moves to slot counters.
        Ok(Vec::new())
    }

    fn class_counters(&mut self, interface: &str) -> Result<Vec<ClassCounter>, KernelError> {
        let stats = self.tc.class_stats(interface).map_err(tc_err)?;
        Ok(stats
            .into_iter()
            .map(|(id, s)| ClassCounter {
                handle: id.as_u32(),
                bytes: s.bytes,
                packets: s.packets,
                drops: u64::from(s.drops),
                backlog: u64::from(s.backlog),
            })
            .collect())
    }
}
