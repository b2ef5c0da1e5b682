//! The real kernel door: lqos-tc for the queue tree, lqos-bpf for mappings and counters.

use std::collections::HashMap;
use std::ops::Range;

use ipnet::IpNet;
use lqos_bpf::{Dataplane, MappingBatch};
use lqos_config::CircuitId;
use lqos_plan::{ChangeSet, ClassId, IpMapping, Plan};
use lqos_tc::TcHandle;

use crate::engine::error_chain;
use crate::kernel::{
    ClassCounter, Flow, Kernel, KernelError, QueueReading, RttHistogram, SlotCounters, TcCounts,
};
use crate::slots::SlotTable;

/// lqos-tc + lqos-bpf behind the [`Kernel`] trait.
pub struct RealKernel {
    /// Queue engine.
    pub tc: TcHandle,
    /// eBPF programs and maps.
    pub dp: Dataplane,
    /// Circuit → counter slot written into the mappings.
    slots: SlotTable,
    ager: lqos_bpf::FlowAger,
    max_slots: u32,
}

/// A flow idle (no new packet) for this many sweeps is no longer listed (the data plane reuses
/// its way for a new flow once it has been idle for a whole sweep interval).
pub const FLOW_IDLE_SWEEPS: u32 = 6;

impl RealKernel {
    /// Both handles, no slots assigned yet.
    pub fn new(tc: TcHandle, mut dp: Dataplane) -> Self {
        let max_slots = dp.slot_counters().max_slots();
        RealKernel {
            tc,
            dp,
            slots: SlotTable::default(),
            ager: lqos_bpf::FlowAger::new(),
            max_slots,
        }
    }
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

/// The data plane's value for a planned mapping; a circuit without a slot counts as unshaped
/// (slot 0).
pub fn to_bpf(m: &IpMapping, slots: &SlotTable) -> (IpNet, lqos_bpf::IpMapping) {
    (
        m.net,
        lqos_bpf::IpMapping {
            cpu: m.cpu,
            class_handle: m.class.as_u32(),
            slot: slots.get(&m.circuit.0).unwrap_or(0),
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
        let batch = MappingBatch {
            upsert: mappings.iter().map(|m| to_bpf(m, &self.slots)).collect(),
            delete: Vec::new(),
        };
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
            if live.get(&m.net) != Some(&to_bpf(m, &self.slots).1) {
                cs.map_add.push(m.clone());
            }
        }
        Ok(cs)
    }

    fn clear(&mut self, plan: &Plan) -> Result<(), KernelError> {
        self.dp.ip_map().clear().map_err(bpf_err)?;
        self.tc.teardown(plan).map(|_| ()).map_err(tc_err)
    }

    fn slot_counters(
        &mut self,
        range: Range<u32>,
        out: &mut Vec<SlotCounters>,
    ) -> Result<(), KernelError> {
        self.dp.slot_counters().read(range, out).map_err(bpf_err)
    }

    fn rtt_histograms(
        &mut self,
        range: Range<u32>,
        out: &mut Vec<RttHistogram>,
    ) -> Result<(), KernelError> {
        self.dp.rtt_histograms().read(range, out).map_err(bpf_err)
    }

    fn reset_slots(&mut self, slots: &[u32]) -> Result<(), KernelError> {
        self.dp.reset_slots(slots).map_err(bpf_err)
    }

    fn sweep_flows(&mut self) -> Result<Vec<Flow>, KernelError> {
        self.ager.sweep(self.dp.flows(), FLOW_IDLE_SWEEPS).map_err(bpf_err)
    }

    fn dataplane_health(&mut self) -> Result<Option<lqos_bus::DataplaneHealth>, KernelError> {
        let s = self.dp.stats().map_err(bpf_err)?;
        Ok(Some(lqos_bus::DataplaneHealth {
            flow_capacity: u64::from(self.dp.flows().capacity()),
            flows_live: 0,
            flows_created: s.flows_created,
            untracked_packets: s.flows_dropped,
            flows_over_budget: s.flows_over_budget,
            rtt_samples: s.rtt_samples,
            cache_misses: s.cache_misses,
            trie_lookups: s.trie_lookups,
            unknown_samples_lost: s.unknown_dropped,
            no_metadata: s.no_metadata,
        }))
    }

    fn take_unknown(&mut self) -> Result<Vec<crate::kernel::UnknownAddress>, KernelError> {
        let table = self.dp.unknown();
        let seen = table.read_all().map_err(bpf_err)?;
        if !seen.is_empty() {
            table.clear().map_err(bpf_err)?;
        }
        Ok(seen)
    }

    fn set_observe(&mut self, observe: bool) -> Result<(), KernelError> {
        self.dp.set_observe(observe).map_err(bpf_err)
    }

    fn slot_capacity(&self) -> u32 {
        self.max_slots
    }

    fn set_slots(&mut self, slots: &SlotTable) {
        self.slots = slots.clone();
    }

    fn queue_stats(
        &mut self,
        interface: &str,
        class: ClassId,
    ) -> Result<QueueReading, KernelError> {
        let class_stats = self.tc.class_get(interface, class).map_err(tc_err)?;
        let leaf = match class_stats {
            Some(_) => self.tc.leaf_qdisc(interface, class).map_err(tc_err)?,
            None => None,
        };
        Ok(QueueReading { class: class_stats, leaf })
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
