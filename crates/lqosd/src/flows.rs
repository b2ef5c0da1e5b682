//! The busiest flows per circuit. Every [`FLOW_SWEEP`] the apply task sweeps the data plane's
//! flow table (flows idle for a few sweeps are no longer listed and their ways go to new
//! flows, see lqos-bpf's `FlowAger`) and keeps the live flows with their rate since the
//! previous sweep; `CircuitFlows` answers from that list, filtered by the circuit's slot,
//! busiest first.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lqos_bus::{FlowEntry, PerDirection};

use crate::kernel::Flow;

/// How often the flow table is swept.
pub const FLOW_SWEEP: Duration = Duration::from_secs(5);

/// The last sweep.
#[derive(Debug, Default)]
pub struct FlowView {
    flows: Vec<Flow>,
    rates: HashMap<lqos_bpf::FlowKey, [u64; 2]>,
    at: Option<Instant>,
}

fn protocol(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        other => other.to_string(),
    }
}

fn rtt_ms(us: u32) -> Option<f64> {
    (us > 0).then(|| f64::from(us) / 1000.0)
}

impl FlowView {
    /// True when a sweep is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.at.is_none_or(|t| now.saturating_duration_since(t) >= FLOW_SWEEP)
    }

    /// Takes a sweep's live flows.
    pub fn update(&mut self, flows: Vec<Flow>, now: Instant) {
        let secs = self.at.map(|t| now.saturating_duration_since(t).as_secs_f64()).unwrap_or(0.0);
        let prev: HashMap<_, _> = self.flows.iter().map(|f| (f.key, f.bytes)).collect();
        self.rates = flows
            .iter()
            .map(|f| {
                let mut r = [0u64; 2];
                if let Some(p) = prev.get(&f.key)
                    && secs > 0.0
                {
                    for d in 0..2 {
                        r[d] = (f.bytes[d].saturating_sub(p[d]) as f64 * 8.0 / secs) as u64;
                    }
                }
                (f.key, r)
            })
            .collect();
        self.flows = flows;
        self.at = Some(now);
    }

    /// Up to `n` flows of `slot`, busiest (current rate, then bytes) first.
    pub fn of_slot(&self, slot: u32, n: usize) -> Vec<FlowEntry> {
        let mono_now = monotonic_ns();
        let mut mine: Vec<(&Flow, [u64; 2])> = self
            .flows
            .iter()
            .filter(|f| f.slot == slot)
            .map(|f| (f, self.rates.get(&f.key).copied().unwrap_or_default()))
            .collect();
        mine.sort_by(|a, b| {
            (b.1[0] + b.1[1])
                .cmp(&(a.1[0] + a.1[1]))
                .then_with(|| b.0.total_bytes().cmp(&a.0.total_bytes()))
                .then_with(|| a.0.key.cmp(&b.0.key))
        });
        mine.truncate(n);
        mine.into_iter()
            .map(|(f, r)| FlowEntry {
                protocol: protocol(f.key.protocol),
                subscriber: f.key.subscriber.to_string(),
                subscriber_port: f.key.subscriber_port,
                remote: f.key.remote.to_string(),
                remote_port: f.key.remote_port,
                bytes: PerDirection { down: f.bytes[0], up: f.bytes[1] },
                packets: PerDirection { down: f.packets[0], up: f.packets[1] },
                rate_bps: PerDirection { down: r[0], up: r[1] },
                retransmits: PerDirection {
                    down: u64::from(f.retransmits[0]),
                    up: u64::from(f.retransmits[1]),
                },
                rtt_access_ms: rtt_ms(f.rtt_us[0]),
                rtt_upstream_ms: rtt_ms(f.rtt_us[1]),
                age_secs: mono_now.map_or(0, |n| n.saturating_sub(f.first_seen_ns) / 1_000_000_000),
            })
            .collect()
    }
}

/// `CLOCK_MONOTONIC` now, in ns (the flow table's clock).
fn monotonic_ns() -> Option<u64> {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).ok()?;
    let secs = u64::try_from(ts.tv_sec()).ok()?;
    let nanos = u64::try_from(ts.tv_nsec()).ok()?;
    Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use lqos_bpf::FlowKey;

    pub(crate) fn flow(slot: u32, port: u16, bytes: u64) -> Flow {
        Flow {
            key: FlowKey {
                subscriber: "100.64.0.1".parse().expect("ip"),
                remote: "198.18.0.1".parse().expect("ip"),
                subscriber_port: port,
                remote_port: 443,
                protocol: 6,
            },
            slot,
            bytes: [bytes, bytes / 10],
            packets: [10, 5],
            retransmits: [2, 0],
            rtt_us: [12_000, 0],
            rtt_samples: [3, 0],
            first_seen_ns: 0,
            last_seen_ns: 0,
            idle_sweeps: 0,
        }
    }

    #[test]
    fn a_circuits_flows_come_busiest_first_with_rates_between_sweeps() {
        let mut v = FlowView::default();
        let t0 = Instant::now();
        assert!(v.due(t0));
        v.update(vec![flow(1, 1000, 5_000), flow(1, 1001, 1_000), flow(2, 1002, 9_999)], t0);
        assert!(!v.due(t0 + Duration::from_secs(1)));
        // In the next 5 s port 1001 moves 250 kB, port 1000 nothing.
        let t1 = t0 + FLOW_SWEEP;
        v.update(vec![flow(1, 1000, 5_000), flow(1, 1001, 251_000), flow(2, 1002, 9_999)], t1);
        let list = v.of_slot(1, 10);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].subscriber_port, 1001);
        assert_eq!(list[0].rate_bps.down, 400_000);
        assert_eq!(list[0].protocol, "tcp");
        assert_eq!(list[0].rtt_access_ms, Some(12.0));
        assert_eq!(list[0].rtt_upstream_ms, None);
        assert_eq!(list[1].rate_bps.down, 0);
        assert_eq!(v.of_slot(1, 1).len(), 1);
        assert!(v.of_slot(7, 10).is_empty());
    }
}
