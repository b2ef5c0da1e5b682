//! `CircuitQueue`: one circuit's queue statistics, read from the kernel only when asked.
//!
//! Rules:
//! 1. Nothing is polled: the kernel is read while answering the command, never on a tick.
//! 2. A read touches only that circuit: per direction one netlink get of its HTB class and one
//!    of the leaf qdisc under it (addressed by the parent class, so the kernel looks the class
//!    up instead of walking a dump of 10,000 qdiscs).
//! 3. Cost is bounded whoever asks: an answer is reused for [`QUEUE_CACHE_FOR`], and at most
//!    [`QUEUE_READS_PER_SEC`] circuits are read from the kernel per second. Past that budget
//!    a circuit without a fresh answer gets `throttled: true` (the web API says 429).
//! 4. An unknown circuit is `Unavailable` ("not in the applied plan"), like `CircuitFlows`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lqos_bus::{
    CakeQueue, CakeTinQueue, CircuitQueue, CommandError, FqCodelQueue, LeafQueue, QueueCounters,
    QueueDirection, Response,
};
use lqos_plan::{Direction, Owner, Plan};
use lqos_tc::xstats::CakeTinStats;
use lqos_tc::{Stats, XStats};

use crate::kernel::{Kernel, QueueReading};

/// How long one circuit's answer is reused.
pub const QUEUE_CACHE_FOR: Duration = Duration::from_secs(1);
/// Circuits read from the kernel per second, at most (each read = 2 gets per direction).
pub const QUEUE_READS_PER_SEC: u32 = 20;

/// Recent answers and the read budget.
#[derive(Debug, Default)]
pub struct QueueView {
    cache: HashMap<String, (Instant, CircuitQueue)>,
    window_start: Option<Instant>,
    reads_in_window: u32,
}

impl QueueView {
    /// Answers `CircuitQueue` for `circuit` (see the module rules). `now_unix_ms` stamps a
    /// fresh read.
    pub fn answer<K: Kernel>(
        &mut self,
        kernel: &mut K,
        plan: Option<&Plan>,
        circuit: &str,
        now: Instant,
        now_unix_ms: u64,
    ) -> Response {
        let Some(plan) = plan.filter(|p| p.circuits.iter().any(|c| c.id.0 == circuit)) else {
            return Response::Error(CommandError::Unavailable {
                message: format!("circuit {circuit:?} is not in the applied plan"),
            });
        };
        self.cache.retain(|_, (at, _)| now.saturating_duration_since(*at) < QUEUE_CACHE_FOR);
        if let Some((_, q)) = self.cache.get(circuit) {
            return Response::Queue(Box::new(q.clone()));
        }
        if self
            .window_start
            .is_none_or(|s| now.saturating_duration_since(s) >= Duration::from_secs(1))
        {
            self.window_start = Some(now);
            self.reads_in_window = 0;
        }
        if self.reads_in_window >= QUEUE_READS_PER_SEC {
            return Response::Queue(Box::new(CircuitQueue {
                circuit: circuit.to_string(),
                throttled: true,
                ..Default::default()
            }));
        }
        self.reads_in_window += 1;
        let mut answer = CircuitQueue {
            circuit: circuit.to_string(),
            read_unix_ms: now_unix_ms,
            ..Default::default()
        };
        if plan.observe_only {
            answer.note = Some("observe mode: lqos builds no queues, so none are shown".into());
        }
        for (interface, class, direction) in circuit_classes(plan, circuit) {
            let reading = match kernel.queue_stats(&interface, class) {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(circuit, interface = %interface, class = %class, error = %e, "queue statistics");
                    return Response::Error(CommandError::Internal {
                        message: format!("reading the queue of circuit {circuit:?}: {e}"),
                    });
                }
            };
            answer.directions.push(direction_of(direction, &interface, class, reading));
        }
        self.cache.insert(circuit.to_string(), (now, answer.clone()));
        Response::Queue(Box::new(answer))
    }
}

/// The circuit's classes in the plan, download first.
fn circuit_classes(plan: &Plan, circuit: &str) -> Vec<(String, lqos_plan::ClassId, Direction)> {
    let mut out: Vec<(String, lqos_plan::ClassId, Direction)> = plan
        .interfaces
        .iter()
        .flat_map(|ifp| {
            ifp.classes
                .iter()
                .filter(|c| matches!(&c.owner, Owner::Circuit(id) if id.0 == circuit))
                .map(|c| (ifp.name.clone(), c.id, c.direction))
        })
        .collect();
    out.sort_by_key(|(_, _, d)| *d);
    out
}

fn counters(s: &Stats) -> QueueCounters {
    QueueCounters {
        bytes: s.bytes,
        packets: s.packets,
        drops: u64::from(s.drops),
        overlimits: u64::from(s.overlimits),
        requeues: u64::from(s.requeues),
        backlog_bytes: u64::from(s.backlog),
        backlog_packets: u64::from(s.qlen),
    }
}

fn tin(t: &CakeTinStats) -> CakeTinQueue {
    CakeTinQueue {
        sent_packets: u64::from(t.sent_packets),
        sent_bytes: t.sent_bytes,
        dropped_packets: u64::from(t.dropped_packets),
        ecn_marked_packets: u64::from(t.ecn_marked_packets),
        ack_drops: u64::from(t.acks_dropped_packets),
        backlog_bytes: u64::from(t.backlog_bytes),
        backlog_packets: u64::from(t.backlog_packets),
        threshold_rate_bps: t.threshold_rate_bytes_per_sec.saturating_mul(8),
        target_us: u64::from(t.target_us),
        interval_us: u64::from(t.interval_us),
        peak_delay_us: u64::from(t.peak_delay_us),
        avg_delay_us: u64::from(t.avg_delay_us),
        base_delay_us: u64::from(t.base_delay_us),
        sparse_flows: u64::from(t.sparse_flows),
        bulk_flows: u64::from(t.bulk_flows),
        unresponsive_flows: u64::from(t.unresponsive_flows),
    }
}

fn direction_of(
    direction: Direction,
    interface: &str,
    class: lqos_plan::ClassId,
    r: QueueReading,
) -> QueueDirection {
    let leaf = r.leaf.map(|q| {
        let (mut cake, mut fq_codel) = (None, None);
        match &q.xstats {
            Some(XStats::Cake(c)) => {
                cake = Some(CakeQueue {
                    capacity_estimate_bps: c.capacity_estimate_bytes_per_sec.saturating_mul(8),
                    memory_used: u64::from(c.memory_used),
                    memory_limit: u64::from(c.memory_limit),
                    tins: c.tins.iter().map(tin).collect(),
                    total: tin(&c.total()),
                })
            }
            Some(XStats::FqCodel(f)) => {
                fq_codel = Some(FqCodelQueue {
                    maxpacket: u64::from(f.maxpacket),
                    drop_overlimit: u64::from(f.drop_overlimit),
                    ecn_mark: u64::from(f.ecn_mark),
                    new_flow_count: u64::from(f.new_flow_count),
                    new_flows_len: u64::from(f.new_flows_len),
                    old_flows_len: u64::from(f.old_flows_len),
                    ce_mark: f.ce_mark.map(u64::from),
                    memory_usage: f.memory_usage.map(u64::from),
                    drop_overmemory: f.drop_overmemory.map(u64::from),
                })
            }
            None => {}
        }
        LeafQueue {
            handle: format!("{:x}:", q.handle >> 16),
            kind: q.kind,
            counters: counters(&q.stats),
            cake,
            fq_codel,
        }
    });
    QueueDirection {
        direction: match direction {
            Direction::Download => "download".into(),
            Direction::Upload => "upload".into(),
        },
        interface: interface.to_string(),
        class: class.to_string(),
        class_stats: r.class.map(|c| counters(&c.stats)),
        leaf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, store_for};
    use crate::kernel::fake::FakeKernel;
    use crate::testutil::{FACTS, setup};
    use lqos_bus::ReloadMode;
    use lqos_config::RateKbit;
    use lqos_plan::{ClassId, ClassParent};
    use lqos_tc::xstats::{CakeTinStats, CakeXStats};
    use lqos_tc::{LiveClass, LiveQdisc};

    fn rows(n: usize) -> String {
        (1..=n)
            .map(|i| format!("c{i},Name {i},d{i},r{i},AP_1,,,,100.64.1.{i},,1,1,50,10,\n"))
            .collect()
    }

    fn engine(n: usize) -> (tempfile::TempDir, Engine<FakeKernel>) {
        let (dir, config) = setup(&rows(n));
        let mut e = Engine::new(FakeKernel::default(), store_for(&config));
        e.reload(&config, FACTS, ReloadMode::Incremental).expect("reload");
        (dir, e)
    }

    fn stats(drops: u32, backlog: u32) -> Stats {
        Stats { bytes: 10_000, packets: 10, drops, overlimits: 4, requeues: 1, backlog, qlen: 2 }
    }

    fn class(id: ClassId, s: Stats) -> LiveClass {
        LiveClass {
            id,
            parent: ClassParent::Qdisc(id.major),
            kind: "htb".into(),
            rate: RateKbit(1000),
            ceil: RateKbit(50_000),
            quantum: 1514,
            prio: 3,
            leaf_handle: 0,
            stats: s,
        }
    }

    fn ask(v: &mut QueueView, e: &mut Engine<FakeKernel>, id: &str, now: Instant) -> Response {
        let (k, plan) = e.kernel_and_plan();
        v.answer(k, plan, id, now, 1_700_000_000_000)
    }

    #[test]
    fn a_circuit_answers_both_directions_with_class_leaf_and_cake_stats() {
        let (_d, mut e) = engine(2);
        let plan = e.applied().cloned().expect("plan");
        let classes = circuit_classes(&plan, "c1");
        assert_eq!(classes.len(), 2, "download and upload: {classes:?}");
        let (down_if, down, _) = classes[0].clone();
        let (up_if, up, _) = classes[1].clone();
        let tin = CakeTinStats {
            dropped_packets: 7,
            ecn_marked_packets: 3,
            peak_delay_us: 9000,
            avg_delay_us: 1200,
            target_us: 5000,
            interval_us: 100_000,
            sparse_flows: 2,
            bulk_flows: 1,
            backlog_bytes: 3000,
            threshold_rate_bytes_per_sec: 6_250_000,
            ..Default::default()
        };
        let cake = CakeXStats { tins: vec![tin, tin], memory_used: 4096, ..Default::default() };
        let leaf = LiveQdisc {
            handle: 0x8003_0000,
            parent: down.as_u32(),
            kind: "cake".into(),
            htb: None,
            leaf: None,
            stats: stats(14, 6000),
            xstats: Some(XStats::Cake(cake)),
        };
        e.kernel_mut().queues.insert(
            (down_if.clone(), down.as_u32()),
            QueueReading { class: Some(class(down, stats(14, 6000))), leaf: Some(leaf) },
        );
        e.kernel_mut().queues.insert(
            (up_if.clone(), up.as_u32()),
            QueueReading { class: Some(class(up, stats(0, 0))), leaf: None },
        );
        let mut v = QueueView::default();
        let Response::Queue(q) = ask(&mut v, &mut e, "c1", Instant::now()) else {
            panic!("queue answer")
        };
        assert_eq!(e.kernel_mut().queue_reads, 2, "one read per direction");
        assert!(!q.throttled);
        assert_eq!(q.read_unix_ms, 1_700_000_000_000);
        let [d, u] = &q.directions[..] else { panic!("two directions: {q:?}") };
        assert_eq!((d.direction.as_str(), d.interface.as_str()), ("download", down_if.as_str()));
        assert_eq!(d.class, down.to_string());
        let cs = d.class_stats.expect("class counters");
        assert_eq!((cs.drops, cs.overlimits, cs.requeues), (14, 4, 1));
        assert_eq!((cs.backlog_bytes, cs.backlog_packets), (6000, 2));
        let leaf = d.leaf.as_ref().expect("cake leaf");
        assert_eq!((leaf.kind.as_str(), leaf.handle.as_str()), ("cake", "8003:"));
        let c = leaf.cake.as_ref().expect("cake stats");
        assert_eq!(c.tins.len(), 2);
        assert_eq!(c.tins[0].threshold_rate_bps, 50_000_000, "bytes/s to bits/s");
        assert_eq!((c.total.dropped_packets, c.total.ecn_marked_packets), (14, 6));
        assert_eq!((c.total.peak_delay_us, c.total.target_us), (9000, 5000));
        assert_eq!((c.total.sparse_flows, c.total.bulk_flows), (4, 2));
        assert_eq!(u.direction, "upload");
        assert_eq!(u.leaf, None, "leaf none: the class alone");
        assert_eq!(u.class_stats.map(|s| s.packets), Some(10));
    }

    #[test]
    fn unknown_circuits_are_unavailable_and_never_read_the_kernel() {
        let (_d, mut e) = engine(2);
        let mut v = QueueView::default();
        for id in ["nobody", "", "c1 ", "C1"] {
            match ask(&mut v, &mut e, id, Instant::now()) {
                Response::Error(CommandError::Unavailable { message }) => {
                    assert!(message.contains("not in the applied plan"), "{message}")
                }
                other => panic!("{id:?}: {other:?}"),
            }
        }
        assert_eq!(e.kernel_mut().queue_reads, 0);
        // A class the kernel lost still answers, with no counters.
        let Response::Queue(q) = ask(&mut v, &mut e, "c2", Instant::now()) else { panic!("q") };
        assert!(q.directions.iter().all(|d| d.class_stats.is_none() && d.leaf.is_none()));
    }

    #[test]
    fn observe_mode_answers_a_note_and_reads_nothing() {
        let (_d, mut e) = engine(2);
        let mut plan = e.applied().cloned().expect("plan");
        plan.observe_only = true;
        for ifp in &mut plan.interfaces {
            ifp.classes.clear();
            ifp.leaves.clear();
        }
        let mut v = QueueView::default();
        let r = v.answer(e.kernel_mut(), Some(&plan), "c1", Instant::now(), 0);
        let Response::Queue(q) = r else { panic!("queue answer: {r:?}") };
        assert!(q.directions.is_empty());
        assert!(q.note.as_deref().is_some_and(|n| n.contains("observe")), "{q:?}");
        assert_eq!(e.kernel_mut().queue_reads, 0);
        // No plan at all: nothing is known.
        let r = v.answer(e.kernel_mut(), None, "c1", Instant::now(), 0);
        assert!(matches!(r, Response::Error(CommandError::Unavailable { .. })), "{r:?}");
    }

    #[test]
    fn answers_are_reused_for_a_second() {
        let (_d, mut e) = engine(2);
        let mut v = QueueView::default();
        let t0 = Instant::now();
        for ms in [0, 100, 500, 999] {
            assert!(matches!(
                ask(&mut v, &mut e, "c1", t0 + Duration::from_millis(ms)),
                Response::Queue(_)
            ));
        }
        assert_eq!(e.kernel_mut().queue_reads, 2, "one kernel read (2 directions) per second");
        ask(&mut v, &mut e, "c1", t0 + Duration::from_millis(1000));
        assert_eq!(e.kernel_mut().queue_reads, 4, "stale after a second");
    }

    #[test]
    fn hammering_many_circuits_reads_at_most_the_budget_per_second() {
        let n = QUEUE_READS_PER_SEC as usize + 10;
        let (_d, mut e) = engine(n);
        let mut v = QueueView::default();
        let t0 = Instant::now();
        let mut throttled = 0;
        for round in 0..5 {
            for i in 1..=n {
                let at = t0 + Duration::from_millis(round * 10);
                match ask(&mut v, &mut e, &format!("c{i}"), at) {
                    Response::Queue(q) if q.throttled => {
                        assert!(q.directions.is_empty());
                        throttled += 1;
                    }
                    Response::Queue(_) => {}
                    other => panic!("{other:?}"),
                }
            }
        }
        let budget = QUEUE_READS_PER_SEC as usize;
        assert_eq!(e.kernel_mut().queue_reads, 2 * budget, "the kernel read {budget} circuits");
        assert_eq!(throttled, 5 * (n - budget), "the rest were told to wait");
        // The next second has a fresh budget.
        ask(&mut v, &mut e, &format!("c{n}"), t0 + Duration::from_millis(1100));
        assert_eq!(e.kernel_mut().queue_reads, 2 * budget + 2);
    }
}
