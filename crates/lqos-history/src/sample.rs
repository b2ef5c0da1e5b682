//! One sample and its fixed 40-byte encoding (32 bytes in blocks written before TCP packet
//! counts were stored: see [`BLOCK_V2`]), and the accumulator that downsamples them.

use lqos_bus::{HistoryPoint, PerDirection, RttPercentiles};

/// Bytes of one encoded sample.
pub const SAMPLE_BYTES: usize = 40;
/// Bytes of one record in a block: a 4-byte offset from the block start, then the sample.
pub const RECORD_BYTES: usize = 4 + SAMPLE_BYTES;
/// Bytes of a sample in a first-layout block (no TCP packet counts).
pub const SAMPLE_BYTES_V1: usize = 32;
/// Bytes of a record in a first-layout block.
pub const RECORD_BYTES_V1: usize = 4 + SAMPLE_BYTES_V1;
/// The first four bytes of a block in the current layout. Read as a first-layout record
/// offset it would be 0xFF00_0002 seconds, more than any block spans, so a block starting
/// with it cannot be a first-layout block: old blocks stay readable without a format change
/// and are rewritten in the new layout the next time a point is added to them.
pub const BLOCK_V2: [u8; 4] = [0x02, 0x00, 0x00, 0xFF];
/// RTT units per millisecond (0.1 ms resolution).
const RTT_SCALE: f64 = 10.0;
/// Stored RTT meaning "no sample".
const RTT_NONE: u16 = u16::MAX;

/// What one circuit or node did in one interval.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    /// Download rate, bits/s.
    pub down_bps: u64,
    /// Upload rate, bits/s.
    pub up_bps: u64,
    /// Access-path RTT percentiles, milliseconds.
    pub rtt_access: Option<[f64; 3]>,
    /// Upstream-path RTT percentiles, milliseconds.
    pub rtt_upstream: Option<[f64; 3]>,
    /// TCP retransmits in the interval, down and up.
    pub retransmits: [u64; 2],
    /// Queue drops in the interval.
    pub drops: u64,
    /// TCP packets in the interval, down and up (0 in points stored before lqos recorded
    /// them).
    pub tcp_packets: [u64; 2],
}

impl Sample {
    /// Nothing moved and nothing was measured: no traffic, no RTT, no retransmits, no drops.
    /// The store keeps no point for a quiet sample (an idle circuit costs nothing to record);
    /// a query answers a zero point for each tick the store recorded without one.
    pub fn is_quiet(&self) -> bool {
        *self == Sample::default()
    }
}

fn sat32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn rtt_enc(ms: f64) -> u16 {
    if !ms.is_finite() || ms <= 0.0 {
        return 0;
    }
    let v = (ms * RTT_SCALE).round();
    if v >= f64::from(RTT_NONE - 1) { RTT_NONE - 1 } else { v as u16 }
}

fn rtt_dec(v: u16) -> f64 {
    f64::from(v) / RTT_SCALE
}

impl Sample {
    /// The fixed encoding: rates in kbit/s (u32, saturating at ~4.3 Tbit/s), RTT in 0.1 ms
    /// (u16, saturating at 6.5 s; `u16::MAX` = none), retransmits, drops and TCP packets as
    /// u32 (saturating).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&sat32(self.down_bps.div_ceil(1000)).to_le_bytes());
        out.extend_from_slice(&sat32(self.up_bps.div_ceil(1000)).to_le_bytes());
        for path in [self.rtt_access, self.rtt_upstream] {
            for i in 0..3 {
                let v = path.map(|p| rtt_enc(p[i])).unwrap_or(RTT_NONE);
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out.extend_from_slice(&sat32(self.retransmits[0]).to_le_bytes());
        out.extend_from_slice(&sat32(self.retransmits[1]).to_le_bytes());
        out.extend_from_slice(&sat32(self.drops).to_le_bytes());
        out.extend_from_slice(&sat32(self.tcp_packets[0]).to_le_bytes());
        out.extend_from_slice(&sat32(self.tcp_packets[1]).to_le_bytes());
    }

    /// Decodes [`SAMPLE_BYTES`] bytes; `None` when `b` is shorter.
    pub fn decode(b: &[u8]) -> Option<Sample> {
        let b = b.get(..SAMPLE_BYTES)?;
        let mut s = Sample::decode_v1(b)?;
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        s.tcp_packets = [u64::from(u32_at(32)), u64::from(u32_at(36))];
        Some(s)
    }

    /// Decodes a first-layout sample ([`SAMPLE_BYTES_V1`] bytes, no TCP packet counts);
    /// `None` when `b` is shorter.
    pub fn decode_v1(b: &[u8]) -> Option<Sample> {
        let b = b.get(..SAMPLE_BYTES_V1)?;
        let u32_at = |i: usize| -> u32 {
            let mut a = [0u8; 4];
            a.copy_from_slice(&b[i..i + 4]);
            u32::from_le_bytes(a)
        };
        let u16_at = |i: usize| -> u16 { u16::from_le_bytes([b[i], b[i + 1]]) };
        let path = |off: usize| -> Option<[f64; 3]> {
            let v = [u16_at(off), u16_at(off + 2), u16_at(off + 4)];
            if v.contains(&RTT_NONE) { None } else { Some(v.map(rtt_dec)) }
        };
        Some(Sample {
            down_bps: u64::from(u32_at(0)) * 1000,
            up_bps: u64::from(u32_at(4)) * 1000,
            rtt_access: path(8),
            rtt_upstream: path(14),
            retransmits: [u64::from(u32_at(20)), u64::from(u32_at(24))],
            drops: u64::from(u32_at(28)),
            tcp_packets: [0, 0],
        })
    }

    /// The API point at unix time `t`.
    pub fn point(&self, t: u64) -> HistoryPoint {
        let p = |v: [f64; 3]| RttPercentiles { p50: v[0], p90: v[1], p99: v[2] };
        HistoryPoint {
            t,
            down_bps: self.down_bps,
            up_bps: self.up_bps,
            rtt_access_ms: self.rtt_access.map(p),
            rtt_upstream_ms: self.rtt_upstream.map(p),
            retransmits: PerDirection { down: self.retransmits[0], up: self.retransmits[1] },
            tcp_packets: PerDirection { down: self.tcp_packets[0], up: self.tcp_packets[1] },
            drops: self.drops,
        }
    }
}

/// Sums of one RTT path.
#[derive(Debug, Clone, Copy, Default)]
struct RttAcc {
    n: u32,
    p50: f64,
    p90: f64,
    p99_max: f64,
}

impl RttAcc {
    fn add(&mut self, v: Option<[f64; 3]>) {
        if let Some(v) = v {
            self.n = self.n.saturating_add(1);
            self.p50 += v[0];
            self.p90 += v[1];
            self.p99_max = self.p99_max.max(v[2]);
        }
    }
    fn get(&self) -> Option<[f64; 3]> {
        (self.n > 0).then(|| {
            let n = f64::from(self.n);
            [self.p50 / n, self.p90 / n, self.p99_max]
        })
    }
}

/// Downsamples the samples of one bucket: rates and p50/p90 are means, p99 the maximum,
/// retransmits, TCP packets and drops sums.
#[derive(Debug, Clone, Copy, Default)]
pub struct Acc {
    /// Start of the bucket (unix seconds).
    pub bucket: u64,
    n: u32,
    down: u128,
    up: u128,
    access: RttAcc,
    upstream: RttAcc,
    retransmits: [u64; 2],
    tcp_packets: [u64; 2],
    drops: u64,
}

impl Acc {
    /// An empty accumulator for the bucket starting at `bucket`.
    pub fn new(bucket: u64) -> Acc {
        Acc { bucket, ..Acc::default() }
    }

    /// Adds one sample.
    pub fn add(&mut self, s: &Sample) {
        self.n = self.n.saturating_add(1);
        self.down += u128::from(s.down_bps);
        self.up += u128::from(s.up_bps);
        self.access.add(s.rtt_access);
        self.upstream.add(s.rtt_upstream);
        for d in 0..2 {
            self.retransmits[d] = self.retransmits[d].saturating_add(s.retransmits[d]);
            self.tcp_packets[d] = self.tcp_packets[d].saturating_add(s.tcp_packets[d]);
        }
        self.drops = self.drops.saturating_add(s.drops);
    }

    /// Samples added.
    pub fn count(&self) -> u32 {
        self.n
    }

    /// The downsampled sample, `None` when nothing was added.
    pub fn get(&self) -> Option<Sample> {
        self.get_over(self.n)
    }

    /// The downsampled sample of a bucket that had `ticks` ticks, of which this series was
    /// quiet (not recorded, see [`Sample::is_quiet`]) in the ones it has no sample for: rates
    /// are means over all `ticks` (a quiet tick moved nothing), never over fewer than the
    /// samples added. `None` when nothing was added.
    pub fn get_over(&self, ticks: u32) -> Option<Sample> {
        if self.n == 0 {
            return None;
        }
        let n = u128::from(self.n.max(ticks));
        Some(Sample {
            down_bps: u64::try_from(self.down / n).unwrap_or(u64::MAX),
            up_bps: u64::try_from(self.up / n).unwrap_or(u64::MAX),
            rtt_access: self.access.get(),
            rtt_upstream: self.upstream.get(),
            retransmits: self.retransmits,
            drops: self.drops,
            tcp_packets: self.tcp_packets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_saturates() {
        let s = Sample {
            down_bps: 123_456_000,
            up_bps: 7_000,
            rtt_access: Some([1.5, 12.3, 99.9]),
            rtt_upstream: None,
            retransmits: [3, 4],
            drops: 5,
            tcp_packets: [700, 80],
        };
        let mut b = Vec::new();
        s.encode(&mut b);
        assert_eq!(b.len(), SAMPLE_BYTES);
        assert_eq!(Sample::decode(&b), Some(s));
        // The first layout is the same without the packet counts.
        assert_eq!(
            Sample::decode_v1(&b[..SAMPLE_BYTES_V1]),
            Some(Sample { tcp_packets: [0, 0], ..s })
        );
        let huge = Sample {
            down_bps: u64::MAX,
            rtt_access: Some([f64::NAN, -1.0, 1e9]),
            retransmits: [u64::MAX, 0],
            ..Sample::default()
        };
        let mut b = Vec::new();
        huge.encode(&mut b);
        let d = Sample::decode(&b).expect("decode");
        assert_eq!(d.down_bps, u64::from(u32::MAX) * 1000);
        assert_eq!(d.rtt_access, Some([0.0, 0.0, 6553.4]));
        assert_eq!(d.retransmits, [u64::from(u32::MAX), 0]);
        assert_eq!(Sample::decode(&b[..SAMPLE_BYTES - 1]), None);
        assert_eq!(Sample::decode_v1(&b[..31]), None);
    }

    #[test]
    fn accumulator_means_rates_and_keeps_the_worst_p99() {
        let mut a = Acc::new(60);
        assert_eq!(a.get(), None);
        a.add(&Sample {
            down_bps: 1000,
            rtt_access: Some([1.0, 2.0, 10.0]),
            retransmits: [1, 0],
            drops: 2,
            ..Sample::default()
        });
        a.add(&Sample {
            down_bps: 3000,
            retransmits: [2, 5],
            tcp_packets: [100, 50],
            ..Sample::default()
        });
        a.add(&Sample { down_bps: 2000, rtt_access: Some([3.0, 4.0, 5.0]), ..Sample::default() });
        let s = a.get().expect("sample");
        assert_eq!(s.down_bps, 2000);
        assert_eq!(s.rtt_access, Some([2.0, 3.0, 10.0]));
        assert_eq!(s.rtt_upstream, None);
        assert_eq!(s.retransmits, [3, 5]);
        assert_eq!(s.tcp_packets, [100, 50]);
        assert_eq!(s.drops, 2);
    }
}
