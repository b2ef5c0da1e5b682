//! Decoders of a leaf qdisc's extended statistics, the `TCA_STATS_APP` block of a qdisc dump
//! (`tc -s qdisc show` prints them below the generic counters):
//! - CAKE nests its statistics as attributes: `TCA_CAKE_STATS_*` at the top, and inside
//!   `TCA_CAKE_STATS_TIN_STATS` one nest per tin (type = tin index + 1) of
//!   `TCA_CAKE_TIN_STATS_*` attributes ([`decode_cake`]);
//! - fq_codel sends `struct tc_fq_codel_xstats`: a `u32` type (0 = qdisc) and then
//!   `struct tc_fq_codel_qd_stats`, nine `u32`s of which the last three came in later kernels
//!   ([`decode_fq_codel`]).
//!
//! Layouts and numbers are those of the kernel's uapi `linux/pkt_sched.h`. Pure functions over
//! bytes: truncated or garbage input gives `None` or partly filled statistics, never a panic.

use serde::{Deserialize, Serialize};

use crate::wire::{attrs, u32_at, u64_at};

/// Most tins CAKE has (`CAKE_MAX_TINS`, diffserv8); nests beyond are ignored.
pub const CAKE_MAX_TINS: usize = 8;

/// `TCA_CAKE_STATS_*` (uapi `pkt_sched.h`).
pub mod cake_stats {
    #![expect(missing_docs, reason = "the uapi names are the documentation")]
    pub const CAPACITY_ESTIMATE64: u16 = 2;
    pub const MEMORY_LIMIT: u16 = 3;
    pub const MEMORY_USED: u16 = 4;
    pub const AVG_NETOFF: u16 = 5;
    pub const MIN_NETLEN: u16 = 6;
    pub const MAX_NETLEN: u16 = 7;
    pub const MIN_ADJLEN: u16 = 8;
    pub const MAX_ADJLEN: u16 = 9;
    pub const TIN_STATS: u16 = 10;
}

/// `TCA_CAKE_TIN_STATS_*` (uapi `pkt_sched.h`).
pub mod cake_tin {
    #![expect(missing_docs, reason = "the uapi names are the documentation")]
    pub const SENT_PACKETS: u16 = 2;
    pub const SENT_BYTES64: u16 = 3;
    pub const DROPPED_PACKETS: u16 = 4;
    pub const DROPPED_BYTES64: u16 = 5;
    pub const ACKS_DROPPED_PACKETS: u16 = 6;
    pub const ACKS_DROPPED_BYTES64: u16 = 7;
    pub const ECN_MARKED_PACKETS: u16 = 8;
    pub const ECN_MARKED_BYTES64: u16 = 9;
    pub const BACKLOG_PACKETS: u16 = 10;
    pub const BACKLOG_BYTES: u16 = 11;
    pub const THRESHOLD_RATE64: u16 = 12;
    pub const TARGET_US: u16 = 13;
    pub const INTERVAL_US: u16 = 14;
    pub const WAY_INDIRECT_HITS: u16 = 15;
    pub const WAY_MISSES: u16 = 16;
    pub const WAY_COLLISIONS: u16 = 17;
    pub const PEAK_DELAY_US: u16 = 18;
    pub const AVG_DELAY_US: u16 = 19;
    pub const BASE_DELAY_US: u16 = 20;
    pub const SPARSE_FLOWS: u16 = 21;
    pub const BULK_FLOWS: u16 = 22;
    pub const UNRESPONSIVE_FLOWS: u16 = 23;
    pub const MAX_SKBLEN: u16 = 24;
    pub const FLOW_QUANTUM: u16 = 25;
}

/// `TCA_FQ_CODEL_XSTATS_QDISC`: the xstats describe the qdisc (1 would be one class/flow).
pub const FQ_CODEL_XSTATS_QDISC: u32 = 0;

/// `fq_codel` qdisc statistics (`struct tc_fq_codel_qd_stats`). The last three fields are
/// `None` when the kernel's struct is shorter (before Linux 4.4/4.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FqCodelXStats {
    /// Largest packet seen, bytes.
    pub maxpacket: u32,
    /// Packets dropped because the qdisc `limit` was hit.
    pub drop_overlimit: u32,
    /// Packets ECN-marked instead of dropped.
    pub ecn_mark: u32,
    /// Times a packet created a new flow.
    pub new_flow_count: u32,
    /// Flows in the new list now.
    pub new_flows_len: u32,
    /// Flows in the old list now.
    pub old_flows_len: u32,
    /// Packets marked above `ce_threshold`.
    pub ce_mark: Option<u32>,
    /// Memory in use, bytes.
    pub memory_usage: Option<u32>,
    /// Packets dropped because of `memory_limit`.
    pub drop_overmemory: Option<u32>,
}

/// One CAKE tin's statistics. An attribute the kernel did not send reads 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CakeTinStats {
    /// Packets sent.
    pub sent_packets: u32,
    /// Bytes sent.
    pub sent_bytes: u64,
    /// Packets dropped by the AQM or on overflow.
    pub dropped_packets: u32,
    /// Bytes dropped.
    pub dropped_bytes: u64,
    /// ACKs dropped by the ACK filter.
    pub acks_dropped_packets: u32,
    /// Packets ECN-marked.
    pub ecn_marked_packets: u32,
    /// Packets queued now.
    pub backlog_packets: u32,
    /// Bytes queued now.
    pub backlog_bytes: u32,
    /// The tin's threshold rate, bytes/s.
    pub threshold_rate_bytes_per_sec: u64,
    /// AQM target delay, µs.
    pub target_us: u32,
    /// AQM interval, µs.
    pub interval_us: u32,
    /// Peak queueing delay, µs.
    pub peak_delay_us: u32,
    /// Average queueing delay, µs.
    pub avg_delay_us: u32,
    /// Base (minimum) queueing delay, µs.
    pub base_delay_us: u32,
    /// Sparse flows now.
    pub sparse_flows: u32,
    /// Bulk flows now.
    pub bulk_flows: u32,
    /// Unresponsive flows now.
    pub unresponsive_flows: u32,
    /// Largest packet seen, bytes.
    pub max_skblen: u32,
    /// Flow quantum, bytes.
    pub flow_quantum: u32,
    /// Set-associative hash: indirect hits.
    pub way_indirect_hits: u32,
    /// Hash misses.
    pub way_misses: u32,
    /// Hash collisions.
    pub way_collisions: u32,
}

/// CAKE qdisc statistics.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CakeXStats {
    /// Capacity estimate (ingress/autorate mode), bytes/s.
    pub capacity_estimate_bytes_per_sec: u64,
    /// Memory limit, bytes.
    pub memory_limit: u32,
    /// Memory in use, bytes.
    pub memory_used: u32,
    /// Average network offset, bytes.
    pub avg_netoff: u32,
    /// Smallest packet seen on the wire, bytes.
    pub min_netlen: u32,
    /// Largest packet seen on the wire, bytes.
    pub max_netlen: u32,
    /// Smallest packet after overhead adjustment, bytes.
    pub min_adjlen: u32,
    /// Largest packet after overhead adjustment, bytes.
    pub max_adjlen: u32,
    /// Per-tin statistics, in tin order (1 tin for besteffort, up to 8).
    pub tins: Vec<CakeTinStats>,
}

impl CakeXStats {
    /// The tins summed: counters added, delays the worst (peak) or the largest (average),
    /// target and interval those of the first tin.
    pub fn total(&self) -> CakeTinStats {
        let mut t = CakeTinStats::default();
        for x in &self.tins {
            t.sent_packets = t.sent_packets.saturating_add(x.sent_packets);
            t.sent_bytes = t.sent_bytes.saturating_add(x.sent_bytes);
            t.dropped_packets = t.dropped_packets.saturating_add(x.dropped_packets);
            t.dropped_bytes = t.dropped_bytes.saturating_add(x.dropped_bytes);
            t.acks_dropped_packets = t.acks_dropped_packets.saturating_add(x.acks_dropped_packets);
            t.ecn_marked_packets = t.ecn_marked_packets.saturating_add(x.ecn_marked_packets);
            t.backlog_packets = t.backlog_packets.saturating_add(x.backlog_packets);
            t.backlog_bytes = t.backlog_bytes.saturating_add(x.backlog_bytes);
            t.sparse_flows = t.sparse_flows.saturating_add(x.sparse_flows);
            t.bulk_flows = t.bulk_flows.saturating_add(x.bulk_flows);
            t.unresponsive_flows = t.unresponsive_flows.saturating_add(x.unresponsive_flows);
            t.peak_delay_us = t.peak_delay_us.max(x.peak_delay_us);
            t.avg_delay_us = t.avg_delay_us.max(x.avg_delay_us);
            t.max_skblen = t.max_skblen.max(x.max_skblen);
        }
        if let Some(first) = self.tins.first() {
            t.target_us = first.target_us;
            t.interval_us = first.interval_us;
            t.base_delay_us = first.base_delay_us;
            t.flow_quantum = first.flow_quantum;
        }
        t
    }
}

/// Extended statistics of a leaf qdisc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum XStats {
    /// fq_codel.
    FqCodel(FqCodelXStats),
    /// CAKE.
    Cake(CakeXStats),
}

/// Decodes the `TCA_STATS_APP` block of a qdisc of `kind`; `None` for kinds without extended
/// statistics lqos knows (pfifo, htb, …) and for blocks that do not fit the layout.
pub fn decode(kind: &str, app: &[u8]) -> Option<XStats> {
    match kind {
        "cake" => decode_cake(app).map(XStats::Cake),
        "fq_codel" => decode_fq_codel(app).map(XStats::FqCodel),
        _ => None,
    }
}

/// Decodes `struct tc_fq_codel_xstats`. `None` when the type is not the qdisc one or the block
/// is shorter than the oldest kernel's struct (type + six `u32`).
pub fn decode_fq_codel(app: &[u8]) -> Option<FqCodelXStats> {
    if u32_at(app, 0)? != FQ_CODEL_XSTATS_QDISC {
        return None;
    }
    let f = |i: usize| u32_at(app, 4 + 4 * i);
    Some(FqCodelXStats {
        maxpacket: f(0)?,
        drop_overlimit: f(1)?,
        ecn_mark: f(2)?,
        new_flow_count: f(3)?,
        new_flows_len: f(4)?,
        old_flows_len: f(5)?,
        ce_mark: f(6),
        memory_usage: f(7),
        drop_overmemory: f(8),
    })
}

/// Decodes CAKE's nested statistics. `None` when the block holds no attribute at all (so a
/// block of some other layout is not shown as an idle CAKE); attributes of a wrong size read 0.
pub fn decode_cake(app: &[u8]) -> Option<CakeXStats> {
    let mut c = CakeXStats::default();
    let mut seen = false;
    for (ty, p) in attrs(app) {
        seen = true;
        let v32 = u32_at(p, 0).unwrap_or(0);
        match ty {
            cake_stats::CAPACITY_ESTIMATE64 => {
                c.capacity_estimate_bytes_per_sec = u64_at(p, 0).unwrap_or(0)
            }
            cake_stats::MEMORY_LIMIT => c.memory_limit = v32,
            cake_stats::MEMORY_USED => c.memory_used = v32,
            cake_stats::AVG_NETOFF => c.avg_netoff = v32,
            cake_stats::MIN_NETLEN => c.min_netlen = v32,
            cake_stats::MAX_NETLEN => c.max_netlen = v32,
            cake_stats::MIN_ADJLEN => c.min_adjlen = v32,
            cake_stats::MAX_ADJLEN => c.max_adjlen = v32,
            cake_stats::TIN_STATS => c.tins = decode_tins(p),
            _ => {}
        }
    }
    seen.then_some(c)
}

/// Tin nests are typed `index + 1`; they are placed by that index (a missing tin in between
/// reads as zeros), at most [`CAKE_MAX_TINS`].
fn decode_tins(nest: &[u8]) -> Vec<CakeTinStats> {
    let mut tins: Vec<CakeTinStats> = Vec::new();
    for (ty, tin) in attrs(nest) {
        let Some(idx) = usize::from(ty).checked_sub(1) else { continue };
        if idx >= CAKE_MAX_TINS {
            continue;
        }
        if tins.len() <= idx {
            tins.resize(idx + 1, CakeTinStats::default());
        }
        tins[idx] = decode_tin(tin);
    }
    tins
}

fn decode_tin(tin: &[u8]) -> CakeTinStats {
    let mut t = CakeTinStats::default();
    for (ty, v) in attrs(tin) {
        let v32 = u32_at(v, 0).unwrap_or(0);
        let v64 = u64_at(v, 0).unwrap_or(0);
        match ty {
            cake_tin::SENT_PACKETS => t.sent_packets = v32,
            cake_tin::SENT_BYTES64 => t.sent_bytes = v64,
            cake_tin::DROPPED_PACKETS => t.dropped_packets = v32,
            cake_tin::DROPPED_BYTES64 => t.dropped_bytes = v64,
            cake_tin::ACKS_DROPPED_PACKETS => t.acks_dropped_packets = v32,
            cake_tin::ECN_MARKED_PACKETS => t.ecn_marked_packets = v32,
            cake_tin::BACKLOG_PACKETS => t.backlog_packets = v32,
            cake_tin::BACKLOG_BYTES => t.backlog_bytes = v32,
            cake_tin::THRESHOLD_RATE64 => t.threshold_rate_bytes_per_sec = v64,
            cake_tin::TARGET_US => t.target_us = v32,
            cake_tin::INTERVAL_US => t.interval_us = v32,
            cake_tin::WAY_INDIRECT_HITS => t.way_indirect_hits = v32,
            cake_tin::WAY_MISSES => t.way_misses = v32,
            cake_tin::WAY_COLLISIONS => t.way_collisions = v32,
            cake_tin::PEAK_DELAY_US => t.peak_delay_us = v32,
            cake_tin::AVG_DELAY_US => t.avg_delay_us = v32,
            cake_tin::BASE_DELAY_US => t.base_delay_us = v32,
            cake_tin::SPARSE_FLOWS => t.sparse_flows = v32,
            cake_tin::BULK_FLOWS => t.bulk_flows = v32,
            cake_tin::UNRESPONSIVE_FLOWS => t.unresponsive_flows = v32,
            cake_tin::MAX_SKBLEN => t.max_skblen = v32,
            cake_tin::FLOW_QUANTUM => t.flow_quantum = v32,
            // ACKS_DROPPED_BYTES64, ECN_MARKED_BYTES64, PAD: not shown.
            _ => {}
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{MsgBuilder, NlMsg, RTM_NEWQDISC, TCA_KIND, TCA_STATS_APP, TCA_STATS2};

    /// `struct tc_fq_codel_xstats` as the kernel lays it out: type, then `n` fields.
    fn fq_codel_block(ty: u32, fields: &[u32]) -> Vec<u8> {
        let mut b = ty.to_ne_bytes().to_vec();
        for f in fields {
            b.extend_from_slice(&f.to_ne_bytes());
        }
        b
    }

    /// Attribute bytes (header + payload, padded), as nla_put writes them.
    fn nla(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        b.extend_from_slice(&ty.to_ne_bytes());
        b.extend_from_slice(payload);
        while b.len() % 4 != 0 {
            b.push(0);
        }
        b
    }

    fn u32n(ty: u16, v: u32) -> Vec<u8> {
        nla(ty, &v.to_ne_bytes())
    }

    /// A 64-bit attribute preceded by a PAD attribute, like `nla_put_u64_64bit` on a
    /// misaligned buffer.
    fn u64n(ty: u16, v: u64) -> Vec<u8> {
        let mut b = nla(1, &[]);
        b.extend(nla(ty, &v.to_ne_bytes()));
        b
    }

    fn tin(i: u32) -> Vec<u8> {
        use cake_tin::*;
        [
            u32n(SENT_PACKETS, 1000 * i),
            u64n(SENT_BYTES64, 1_500_000 * u64::from(i)),
            u32n(DROPPED_PACKETS, 10 * i),
            u64n(DROPPED_BYTES64, 15_000 * u64::from(i)),
            u32n(ACKS_DROPPED_PACKETS, i),
            u32n(ECN_MARKED_PACKETS, 20 * i),
            u32n(BACKLOG_PACKETS, 3 * i),
            u32n(BACKLOG_BYTES, 4500 * i),
            u64n(THRESHOLD_RATE64, 12_500_000),
            u32n(TARGET_US, 5000),
            u32n(INTERVAL_US, 100_000),
            u32n(PEAK_DELAY_US, 900 * i),
            u32n(AVG_DELAY_US, 300 * i),
            u32n(BASE_DELAY_US, 20),
            u32n(SPARSE_FLOWS, i),
            u32n(BULK_FLOWS, 2 * i),
            u32n(UNRESPONSIVE_FLOWS, 0),
            u32n(MAX_SKBLEN, 1514),
            u32n(FLOW_QUANTUM, 1514),
        ]
        .concat()
    }

    /// CAKE's `TCA_STATS_APP` block with `tins` tins (diffserv3 has three).
    fn cake_block(tins: u32) -> Vec<u8> {
        use cake_stats::*;
        let mut nest = Vec::new();
        for i in 1..=tins {
            nest.extend(nla(i as u16, &tin(i)));
        }
        [
            u64n(CAPACITY_ESTIMATE64, 12_500_000),
            u32n(MEMORY_LIMIT, 4 << 20),
            u32n(MEMORY_USED, 65_536),
            u32n(AVG_NETOFF, 14),
            u32n(MIN_NETLEN, 60),
            u32n(MAX_NETLEN, 1514),
            u32n(MIN_ADJLEN, 64),
            u32n(MAX_ADJLEN, 1518),
            nla(TIN_STATS, &nest),
            u32n(11, 7), // DEFICIT: not decoded
        ]
        .concat()
    }

    #[test]
    fn fq_codel_struct_decodes_every_field() {
        let b = fq_codel_block(0, &[1514, 2, 3, 4, 5, 6, 7, 8, 9]);
        let s = decode_fq_codel(&b).expect("qdisc stats");
        assert_eq!(
            s,
            FqCodelXStats {
                maxpacket: 1514,
                drop_overlimit: 2,
                ecn_mark: 3,
                new_flow_count: 4,
                new_flows_len: 5,
                old_flows_len: 6,
                ce_mark: Some(7),
                memory_usage: Some(8),
                drop_overmemory: Some(9),
            }
        );
        assert_eq!(decode("fq_codel", &b), Some(XStats::FqCodel(s)));
    }

    #[test]
    fn fq_codel_from_an_old_kernel_lacks_the_late_fields() {
        let s = decode_fq_codel(&fq_codel_block(0, &[1514, 2, 3, 4, 5, 6])).expect("old struct");
        assert_eq!((s.new_flow_count, s.ce_mark, s.memory_usage), (4, None, None));
        // Seven fields: ce_mark only.
        let s = decode_fq_codel(&fq_codel_block(0, &[1, 2, 3, 4, 5, 6, 7])).expect("4.4 struct");
        assert_eq!((s.ce_mark, s.drop_overmemory), (Some(7), None));
    }

    #[test]
    fn fq_codel_class_stats_short_or_empty_blocks_are_not_qdisc_stats() {
        assert_eq!(decode_fq_codel(&fq_codel_block(1, &[0; 9])), None, "class xstats");
        assert_eq!(decode_fq_codel(&fq_codel_block(0, &[1, 2, 3, 4, 5])), None, "too short");
        assert_eq!(decode_fq_codel(&[]), None);
        assert_eq!(decode_fq_codel(&[0, 0]), None);
    }

    #[test]
    fn cake_nested_stats_decode_per_tin() {
        let c = decode_cake(&cake_block(3)).expect("cake");
        assert_eq!(c.capacity_estimate_bytes_per_sec, 12_500_000);
        assert_eq!((c.memory_limit, c.memory_used), (4 << 20, 65_536));
        assert_eq!((c.avg_netoff, c.min_netlen, c.max_netlen), (14, 60, 1514));
        assert_eq!((c.min_adjlen, c.max_adjlen), (64, 1518));
        assert_eq!(c.tins.len(), 3);
        let t2 = c.tins[1];
        assert_eq!((t2.sent_packets, t2.sent_bytes), (2000, 3_000_000));
        assert_eq!((t2.dropped_packets, t2.dropped_bytes), (20, 30_000));
        assert_eq!((t2.ecn_marked_packets, t2.acks_dropped_packets), (40, 2));
        assert_eq!((t2.backlog_packets, t2.backlog_bytes), (6, 9000));
        assert_eq!((t2.target_us, t2.interval_us), (5000, 100_000));
        assert_eq!((t2.peak_delay_us, t2.avg_delay_us, t2.base_delay_us), (1800, 600, 20));
        assert_eq!((t2.sparse_flows, t2.bulk_flows, t2.unresponsive_flows), (2, 4, 0));
        assert_eq!(t2.threshold_rate_bytes_per_sec, 12_500_000);
        assert_eq!((t2.max_skblen, t2.flow_quantum), (1514, 1514));
        let total = c.total();
        assert_eq!(total.dropped_packets, 10 + 20 + 30);
        assert_eq!(total.ecn_marked_packets, 20 + 40 + 60);
        assert_eq!(total.backlog_bytes, 4500 * 6);
        assert_eq!(total.peak_delay_us, 2700, "worst tin's peak");
        assert_eq!((total.sparse_flows, total.bulk_flows), (6, 12));
        assert_eq!(total.target_us, 5000);
    }

    #[test]
    fn cake_tins_are_placed_by_their_index_and_capped() {
        use cake_stats::TIN_STATS;
        // Tin 3 only, then a tin numbered 200 (beyond CAKE_MAX_TINS), then a type-0 nest.
        let nest = [nla(3, &tin(3)), nla(200, &tin(1)), nla(0, &tin(1))].concat();
        let c = decode_cake(&nla(TIN_STATS, &nest)).expect("cake");
        assert_eq!(c.tins.len(), 3);
        assert_eq!(c.tins[0], CakeTinStats::default());
        assert_eq!(c.tins[2].sent_packets, 3000);
    }

    #[test]
    fn truncated_cake_blocks_give_what_fits_and_never_panic() {
        let full = cake_block(4);
        for cut in 0..full.len() {
            let part = &full[..cut];
            let c = decode_cake(part);
            if cut < 4 {
                assert_eq!(c, None, "cut {cut}");
            }
            if let Some(c) = c {
                assert!(c.tins.len() <= 4);
                // Whatever was cut, a decoded value is the real one or zero.
                assert!(c.memory_limit == 0 || c.memory_limit == 4 << 20);
                let _ = c.total();
            }
        }
        // A 64-bit attribute with a 4-byte payload reads 0, not garbage.
        let c = decode_cake(&u32n(cake_stats::CAPACITY_ESTIMATE64, 9)).expect("one attr");
        assert_eq!(c.capacity_estimate_bytes_per_sec, 0);
    }

    #[test]
    fn other_kinds_have_no_extended_stats() {
        assert_eq!(decode("pfifo", &cake_block(1)), None);
        assert_eq!(decode("htb", &fq_codel_block(0, &[0; 9])), None);
    }

    #[test]
    fn a_whole_cake_qdisc_message_decodes_through_parse_qdisc() {
        let m = MsgBuilder::new(RTM_NEWQDISC, 0)
            .tcmsg(2, 0x8003_0000, 0x0001_0003, 0)
            .attr_str(TCA_KIND, "cake")
            .nest(TCA_STATS2)
            .attr(TCA_STATS_APP, &cake_block(1))
            .end_nest()
            .finish();
        let nl: NlMsg<'_> = crate::wire::messages(&m).next().expect("message");
        let (_, q) = crate::dump::parse_qdisc(&nl).expect("qdisc");
        let Some(XStats::Cake(c)) = q.xstats else { panic!("cake xstats: {:?}", q.xstats) };
        assert_eq!(c.tins.len(), 1);
        assert_eq!(c.tins[0].ecn_marked_packets, 20);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            // Invariant: any bytes, for any kind, decode without a panic, and CAKE never
            // reports more than CAKE_MAX_TINS tins.
            #[test]
            fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                for kind in ["cake", "fq_codel", "pfifo"] {
                    if let Some(XStats::Cake(c)) = decode(kind, &bytes) {
                        prop_assert!(c.tins.len() <= CAKE_MAX_TINS);
                        let _ = c.total();
                    }
                }
            }

            // Invariant: any bytes handed to the dump parsers as netlink messages parse or
            // are skipped without a panic.
            #[test]
            fn garbage_messages_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..768)) {
                for m in crate::wire::messages(&bytes) {
                    let _ = crate::dump::parse_qdisc(&m);
                    let _ = crate::dump::parse_class(&m);
                }
                let m = crate::wire::NlMsg {
                    msg_type: crate::wire::RTM_NEWQDISC,
                    flags: 0,
                    seq: 0,
                    payload: &bytes,
                };
                if let Some((_, q)) = crate::dump::parse_qdisc(&m)
                    && let Some(XStats::Cake(c)) = q.xstats
                {
                    prop_assert!(c.tins.len() <= CAKE_MAX_TINS);
                }
            }

            // Invariant: a well-formed fq_codel block of 6..=9 fields round-trips, whatever
            // the values.
            #[test]
            fn fq_codel_round_trips(fields in proptest::collection::vec(any::<u32>(), 6..=9)) {
                let mut b = 0u32.to_ne_bytes().to_vec();
                for f in &fields {
                    b.extend_from_slice(&f.to_ne_bytes());
                }
                let s = decode_fq_codel(&b).expect("decodes");
                prop_assert_eq!(s.maxpacket, fields[0]);
                prop_assert_eq!(s.old_flows_len, fields[5]);
                prop_assert_eq!(s.ce_mark, fields.get(6).copied());
                prop_assert_eq!(s.drop_overmemory, fields.get(8).copied());
            }
        }
    }
}
