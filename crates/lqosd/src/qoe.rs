//! TCP quality per circuit and node, from the data plane's per-slot RTT histograms and TCP
//! counters (see lqos-bpf's `docs/qoe-api.md`).
//!
//! The kernel keeps cumulative histograms; windows are differences. Every [`RTT_PERIOD`] the
//! tracker reads the histograms of the slots that saw TCP packets since the last read (none
//! read when nothing moved, so an idle shaper reads nothing), stores the per-slot difference
//! of that period (sparse: active slots only) and forgets periods older than [`WINDOW_LONG`].
//! A window's percentiles come from the sum of its periods' histograms, so "the last 10 s" is
//! the last five 2-second periods. Nodes merge the histograms of every circuit below them.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use lqos_bpf::abi::{PATH_ACCESS, PATH_UPSTREAM};
use lqos_bus::{PerDirection, Qoe, RttPaths, RttSummary, RttTotals};

use crate::kernel::{RttHistogram, SlotCounters};

/// How often the RTT histograms of active slots are read.
pub const RTT_PERIOD: Duration = Duration::from_secs(2);
/// The short window (`rtt_ms_10s`).
pub const WINDOW_SHORT: Duration = Duration::from_secs(10);
/// The long window (`rtt_ms`, `/metrics`).
pub const WINDOW_LONG: Duration = Duration::from_secs(60);

/// What one slot did in one period (or a window's sum of periods).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// RTT samples.
    pub hist: RttHistogram,
    /// Retransmits `[down, up]`.
    pub retransmits: [u64; 2],
    /// TCP packets `[down, up]`.
    pub tcp_packets: [u64; 2],
}

impl Window {
    /// Adds another window.
    pub fn merge(&mut self, o: &Window) {
        self.hist.merge(&o.hist);
        for d in 0..2 {
            self.retransmits[d] = self.retransmits[d].wrapping_add(o.retransmits[d]);
            self.tcp_packets[d] = self.tcp_packets[d].wrapping_add(o.tcp_packets[d]);
        }
    }

    fn summary(&self, path: usize) -> Option<RttSummary> {
        let samples = self.hist.count(path);
        let ms = |q| self.hist.quantile_us(path, q).map(|us| us / 1000.0);
        Some(RttSummary {
            p50: ms(0.5)?,
            p90: ms(0.9)?,
            p99: ms(0.99)?,
            samples,
            sum_ms: self.hist.sum_us.get(path).copied().unwrap_or(0) as f64 / 1000.0,
        })
    }

    /// Both paths' percentiles.
    pub fn paths(&self) -> RttPaths {
        RttPaths { access: self.summary(PATH_ACCESS), upstream: self.summary(PATH_UPSTREAM) }
    }
}

fn per_dir(v: [u64; 2]) -> PerDirection {
    PerDirection { down: v[0], up: v[1] }
}

/// The bus answer from a long window, a short window, cumulative counters and the cumulative
/// histogram.
pub fn answer(long: &Window, short: &Window, total: &SlotCounters, hist: &RttHistogram) -> Qoe {
    let ms = |p: usize| hist.sum_us.get(p).copied().unwrap_or(0) as f64 / 1000.0;
    Qoe {
        rtt_total: RttTotals {
            access_samples: hist.count(PATH_ACCESS),
            access_sum_ms: ms(PATH_ACCESS),
            upstream_samples: hist.count(PATH_UPSTREAM),
            upstream_sum_ms: ms(PATH_UPSTREAM),
        },
        rtt_ms: long.paths(),
        rtt_ms_10s: short.paths(),
        retransmits: per_dir(total.retransmits),
        tcp_packets: per_dir(total.tcp_packets),
        retransmits_60s: per_dir(long.retransmits),
        tcp_packets_60s: per_dir(long.tcp_packets),
    }
}

#[derive(Debug)]
struct Period {
    at: Instant,
    slots: HashMap<u32, Window>,
}

/// Windows of RTT and retransmits per slot.
#[derive(Debug, Default)]
pub struct QoeTracker {
    periods: VecDeque<Period>,
    /// Counter deltas of the period being collected, per active slot.
    pending: HashMap<u32, Window>,
    /// The cumulative histograms at the last read, index = slot.
    prev_hist: Vec<RttHistogram>,
    baseline: bool,
    last_read: Option<Instant>,
}

impl QoeTracker {
    /// Forgets everything about `slots` (given to other circuits, their kernel histograms
    /// were reset to zero).
    pub fn reset_slots(&mut self, slots: &[u32]) {
        for s in slots {
            if let Some(h) = self.prev_hist.get_mut(*s as usize) {
                *h = RttHistogram::default();
            }
            self.pending.remove(s);
            for p in &mut self.periods {
                p.slots.remove(s);
            }
        }
    }

    /// Forgets every baseline (a restart of the counters); the next read is a new baseline.
    pub fn restart(&mut self) {
        *self = QoeTracker::default();
    }

    /// One slot's counter difference over a tick; only TCP activity is kept.
    pub fn note(&mut self, slot: u32, delta: &SlotCounters) {
        if delta.tcp_packets == [0, 0] && delta.retransmits == [0, 0] {
            return;
        }
        let w = self.pending.entry(slot).or_default();
        for d in 0..2 {
            w.retransmits[d] = w.retransmits[d].wrapping_add(delta.retransmits[d]);
            w.tcp_packets[d] = w.tcp_packets[d].wrapping_add(delta.tcp_packets[d]);
        }
    }

    /// The slot range whose histograms must be read now (`None`: nothing to read yet):
    /// everything up to `max_slot` for the first baseline, else the span of the slots active
    /// in this period, once per [`RTT_PERIOD`].
    pub fn due(&self, max_slot: u32, now: Instant) -> Option<std::ops::Range<u32>> {
        if !self.baseline {
            return Some(0..max_slot.saturating_add(1));
        }
        if self.last_read.is_some_and(|t| now.saturating_duration_since(t) < RTT_PERIOD) {
            return None;
        }
        let lo = self.pending.keys().min()?;
        let hi = self.pending.keys().max()?;
        Some(*lo..hi.saturating_add(1))
    }

    /// Feeds histograms read for `start..start + hists.len()` at `now` and closes the period.
    pub fn feed(&mut self, start: u32, hists: &[RttHistogram], now: Instant) {
        let end = start as usize + hists.len();
        if self.prev_hist.len() < end {
            self.prev_hist.resize(end, RttHistogram::default());
        }
        let first = !self.baseline;
        let mut pending = std::mem::take(&mut self.pending);
        for (i, h) in hists.iter().enumerate() {
            let slot = start + i as u32;
            let prev = &mut self.prev_hist[start as usize + i];
            if !first && h != prev {
                pending.entry(slot).or_default().hist = h.delta(prev);
            }
            *prev = *h;
        }
        self.baseline = true;
        self.last_read = Some(now);
        pending.retain(|_, w| *w != Window::default());
        if !pending.is_empty() {
            self.periods.push_back(Period { at: now, slots: pending });
        }
        while self
            .periods
            .front()
            .is_some_and(|p| now.saturating_duration_since(p.at) > WINDOW_LONG)
        {
            self.periods.pop_front();
        }
    }

    fn in_window(&self, window: Duration, now: Instant) -> impl Iterator<Item = &Period> {
        self.periods.iter().filter(move |p| now.saturating_duration_since(p.at) <= window)
    }

    /// The cumulative histogram of `slot` at the last read (zero before the first).
    pub fn cumulative(&self, slot: u32) -> RttHistogram {
        self.prev_hist.get(slot as usize).copied().unwrap_or_default()
    }

    /// One slot over the last `window`.
    pub fn window(&self, slot: u32, window: Duration, now: Instant) -> Window {
        let mut w = Window::default();
        for p in self.in_window(window, now) {
            if let Some(x) = p.slots.get(&slot) {
                w.merge(x);
            }
        }
        w
    }

    /// Every active slot over the last `window`.
    pub fn windows(&self, window: Duration, now: Instant) -> HashMap<u32, Window> {
        let mut out: HashMap<u32, Window> = HashMap::new();
        for p in self.in_window(window, now) {
            for (s, x) in &p.slots {
                out.entry(*s).or_default().merge(x);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lqos_bpf::abi::RTT_BUCKET_UPPER_US;

    /// A histogram with `n` samples of `us` microseconds on `path`.
    fn hist(path: usize, us: u32, n: u32) -> RttHistogram {
        let mut h = RttHistogram::default();
        let b = RTT_BUCKET_UPPER_US.iter().position(|u| us <= *u).unwrap_or(31);
        h.buckets[path][b] = n;
        h.sum_us[path] = u64::from(us) * u64::from(n);
        h
    }

    fn tcp(n: u64, retrans: u64) -> SlotCounters {
        SlotCounters { tcp_packets: [n, 0], retransmits: [retrans, 0], ..Default::default() }
    }

    #[test]
    fn windows_are_differences_of_cumulative_reads_and_old_periods_expire() {
        let mut q = QoeTracker::default();
        let t0 = Instant::now();
        // Baseline: the kernel already holds 100 samples of 50 ms from before lqosd started.
        assert_eq!(q.due(3, t0), Some(0..4));
        let mut kernel = vec![RttHistogram::default(); 4];
        kernel[2] = hist(PATH_ACCESS, 50_000, 100);
        q.feed(0, &kernel, t0);
        assert_eq!(q.window(2, WINDOW_LONG, t0).hist.count(PATH_ACCESS), 0, "old samples leaked");
        // Nothing moved: nothing to read.
        assert_eq!(q.due(3, t0 + RTT_PERIOD), None);
        // Slot 2 sees TCP and 10 new samples of 12 ms.
        q.note(2, &tcp(500, 20));
        let t1 = t0 + RTT_PERIOD;
        assert_eq!(q.due(3, t1), Some(2..3));
        let mut now_k = kernel[2];
        now_k.merge(&hist(PATH_ACCESS, 12_000, 10));
        q.feed(2, &[now_k], t1);
        let w = q.window(2, WINDOW_SHORT, t1);
        assert_eq!(w.hist.count(PATH_ACCESS), 10);
        assert_eq!((w.retransmits[0], w.tcp_packets[0]), (20, 500));
        let p50 = w.paths().access.expect("access").p50;
        assert!((8.0..=16.0).contains(&p50), "p50 {p50}");
        assert!(w.paths().upstream.is_none());
        // 12 s later the period left the short window but not the long one; after 61 s it is
        // gone.
        let t2 = t1 + Duration::from_secs(12);
        assert_eq!(q.window(2, WINDOW_SHORT, t2).hist.count(PATH_ACCESS), 0);
        assert_eq!(q.window(2, WINDOW_LONG, t2).hist.count(PATH_ACCESS), 10);
        q.note(1, &tcp(1, 0));
        q.feed(1, &[RttHistogram::default()], t1 + Duration::from_secs(61));
        assert!(!q.windows(WINDOW_LONG, t1 + Duration::from_secs(61)).contains_key(&2));
    }

    #[test]
    fn a_reused_slot_starts_from_zero() {
        let mut q = QoeTracker::default();
        let t0 = Instant::now();
        q.feed(0, &[RttHistogram::default(), hist(PATH_UPSTREAM, 30_000, 5)], t0);
        q.note(1, &tcp(5, 0));
        let t1 = t0 + RTT_PERIOD;
        q.feed(1, &[hist(PATH_UPSTREAM, 30_000, 9)], t1);
        assert_eq!(q.window(1, WINDOW_LONG, t1).hist.count(PATH_UPSTREAM), 4);
        // The slot goes to another circuit: the kernel zeroes it, so must we.
        q.reset_slots(&[1]);
        assert_eq!(q.window(1, WINDOW_LONG, t1).hist.count(PATH_UPSTREAM), 0);
        q.note(1, &tcp(1, 0));
        q.feed(1, &[hist(PATH_UPSTREAM, 30_000, 2)], t1 + RTT_PERIOD);
        assert_eq!(q.window(1, WINDOW_LONG, t1 + RTT_PERIOD).hist.count(PATH_UPSTREAM), 2);
    }
}
