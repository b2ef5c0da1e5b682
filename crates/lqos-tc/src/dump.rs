//! What the kernel holds: [`LiveTree`] (qdiscs and classes of one interface, comparable with
//! an `InterfacePlan`) and per-object [`Stats`], parsed from rtnetlink dump messages.

use std::collections::BTreeMap;

use lqos_config::{LeafQdisc, RateKbit};
use lqos_plan::{ClassId, ClassParent, InterfacePlan, MQ_MAJOR};
use serde::{Deserialize, Serialize};

use crate::ops::decode_leaf;
use crate::wire::*;

/// Counters of one qdisc or class (`tc -s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Bytes sent.
    pub bytes: u64,
    /// Packets sent.
    pub packets: u64,
    /// Packets dropped.
    pub drops: u32,
    /// Overlimits.
    pub overlimits: u32,
    /// Requeues.
    pub requeues: u32,
    /// Backlog in bytes.
    pub backlog: u32,
    /// Queue length in packets.
    pub qlen: u32,
}

pub use crate::xstats::{CakeTinStats, CakeXStats, FqCodelXStats, XStats};

/// HTB qdisc parameters (`TCA_HTB_INIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HtbInit {
    /// `r2q`.
    pub r2q: u32,
    /// `default` minor.
    pub default_minor: u32,
}

/// A live qdisc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveQdisc {
    /// Handle (`major << 16`).
    pub handle: u32,
    /// Parent handle (`TC_H_ROOT` for the root).
    pub parent: u32,
    /// Kind (`mq`, `htb`, `pfifo`, …).
    pub kind: String,
    /// HTB parameters when `kind == "htb"`.
    pub htb: Option<HtbInit>,
    /// Decoded leaf parameters for pfifo/bfifo/fq_codel/cake.
    pub leaf: Option<LeafQdisc>,
    /// Counters.
    pub stats: Stats,
    /// Extended stats, when present.
    pub xstats: Option<XStats>,
}

impl LiveQdisc {
    /// The handle's major.
    pub fn major(&self) -> u16 {
        (self.handle >> 16) as u16
    }
}

/// A live class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveClass {
    /// Class ID.
    pub id: ClassId,
    /// Parent (a top-level class reports the HTB qdisc).
    pub parent: ClassParent,
    /// Kind (`htb`; `mq` for the root's slot classes).
    pub kind: String,
    /// Rate.
    pub rate: RateKbit,
    /// Ceil.
    pub ceil: RateKbit,
    /// Quantum bytes.
    pub quantum: u32,
    /// Priority.
    pub prio: u32,
    /// Handle of its leaf qdisc (`tcm_info`; 0 when none or unknown).
    pub leaf_handle: u32,
    /// Counters.
    pub stats: Stats,
}

/// Everything tc-related on one interface, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LiveTree {
    /// Interface name.
    pub interface: String,
    /// Interface index.
    pub ifindex: u32,
    /// Qdiscs in dump order.
    pub qdiscs: Vec<LiveQdisc>,
    /// HTB classes (mq slot classes are left out).
    pub classes: BTreeMap<ClassId, LiveClass>,
}

impl LiveTree {
    /// The root qdisc.
    pub fn root(&self) -> Option<&LiveQdisc> {
        self.qdiscs.iter().find(|q| q.parent == TC_H_ROOT)
    }
    /// True when the root is lqos's `mq 7fff:`.
    pub fn has_lqos_root(&self) -> bool {
        self.root().is_some_and(|q| q.kind == "mq" && q.major() == MQ_MAJOR)
    }
    /// The qdisc with this major.
    pub fn qdisc(&self, major: u16) -> Option<&LiveQdisc> {
        self.qdiscs.iter().find(|q| q.handle == u32::from(major) << 16 && q.handle != 0)
    }
    /// The visible (non-default) qdisc attached to `parent`.
    pub fn qdisc_under(&self, parent: u32) -> Option<&LiveQdisc> {
        self.qdiscs.iter().find(|q| q.parent == parent && q.handle != 0)
    }

    /// What the kernel would report right after `ifp` was applied to an interface (no stats).
    /// Lets `reconcile(new, &[LiveTree::from_plan(old)])` serve as a diff in tests.
    pub fn from_plan(ifp: &InterfacePlan, ifindex: u32) -> Self {
        let mut t = LiveTree { interface: ifp.name.clone(), ifindex, ..Default::default() };
        t.qdiscs.push(LiveQdisc {
            handle: u32::from(MQ_MAJOR) << 16,
            parent: TC_H_ROOT,
            kind: "mq".into(),
            htb: None,
            leaf: None,
            stats: Stats::default(),
            xstats: None,
        });
        for h in &ifp.htbs {
            t.qdiscs.push(LiveQdisc {
                handle: u32::from(h.major) << 16,
                parent: (u32::from(MQ_MAJOR) << 16) | u32::from(h.mq_slot),
                kind: "htb".into(),
                htb: Some(HtbInit { r2q: h.r2q, default_minor: u32::from(h.default_minor) }),
                leaf: None,
                stats: Stats::default(),
                xstats: None,
            });
        }
        for c in &ifp.classes {
            t.classes.insert(
                c.id,
                LiveClass {
                    id: c.id,
                    parent: c.parent,
                    kind: "htb".into(),
                    rate: c.rate,
                    ceil: c.ceil,
                    quantum: c.quantum,
                    prio: c.prio,
                    leaf_handle: 0,
                    stats: Stats::default(),
                },
            );
        }
        for l in &ifp.leaves {
            t.qdiscs.push(LiveQdisc {
                handle: u32::from(l.handle) << 16,
                parent: l.parent.as_u32(),
                kind: l.qdisc.kind().into(),
                htb: None,
                leaf: Some(l.qdisc.clone()),
                stats: Stats::default(),
                xstats: None,
            });
        }
        t
    }
}

/// `tcmsg` fields of a message payload: (ifindex, handle, parent, info).
pub fn tcmsg_of(payload: &[u8]) -> Option<(u32, u32, u32, u32)> {
    Some((u32_at(payload, 4)?, u32_at(payload, 8)?, u32_at(payload, 12)?, u32_at(payload, 16)?))
}

/// Parses `TCA_STATS2` (falling back to the legacy `TCA_STATS`).
pub fn parse_stats(tca: &[u8]) -> (Stats, Option<&[u8]>) {
    let mut s = Stats::default();
    let mut app = None;
    if let Some(st2) = find_attr(tca, TCA_STATS2) {
        for (ty, p) in attrs(st2) {
            match ty {
                TCA_STATS_BASIC => {
                    s.bytes = u64_at(p, 0).unwrap_or(0);
                    s.packets = u64::from(u32_at(p, 8).unwrap_or(0));
                }
                // TCA_STATS_PKT64
                8 => s.packets = u64_at(p, 0).unwrap_or(s.packets),
                TCA_STATS_QUEUE => {
                    s.qlen = u32_at(p, 0).unwrap_or(0);
                    s.backlog = u32_at(p, 4).unwrap_or(0);
                    s.drops = u32_at(p, 8).unwrap_or(0);
                    s.requeues = u32_at(p, 12).unwrap_or(0);
                    s.overlimits = u32_at(p, 16).unwrap_or(0);
                }
                TCA_STATS_APP => app = Some(p),
                _ => {}
            }
        }
    } else if let Some(p) = find_attr(tca, TCA_STATS) {
        // struct tc_stats { u64 bytes; u32 packets, drops, overlimits, bps, pps, qlen, backlog }
        s.bytes = u64_at(p, 0).unwrap_or(0);
        s.packets = u64::from(u32_at(p, 8).unwrap_or(0));
        s.drops = u32_at(p, 12).unwrap_or(0);
        s.overlimits = u32_at(p, 16).unwrap_or(0);
        s.qlen = u32_at(p, 28).unwrap_or(0);
        s.backlog = u32_at(p, 32).unwrap_or(0);
    }
    if app.is_none() {
        app = find_attr(tca, TCA_XSTATS);
    }
    (s, app)
}

/// Parses one `RTM_NEWQDISC` dump message.
pub fn parse_qdisc(m: &NlMsg<'_>) -> Option<(u32, LiveQdisc)> {
    if m.msg_type != RTM_NEWQDISC {
        return None;
    }
    let (ifindex, handle, parent, _) = tcmsg_of(m.payload)?;
    let tca = m.payload.get(TCMSG_LEN..)?;
    let kind = find_attr(tca, TCA_KIND).map(str_of)?;
    let opts = find_attr(tca, TCA_OPTIONS);
    let htb = if kind == "htb" {
        opts.and_then(|o| find_attr(o, TCA_HTB_INIT)).map(|g| HtbInit {
            r2q: u32_at(g, 4).unwrap_or(0),
            default_minor: u32_at(g, 8).unwrap_or(0),
        })
    } else {
        None
    };
    let (stats, app) = parse_stats(tca);
    Some((
        ifindex,
        LiveQdisc {
            handle,
            parent,
            leaf: decode_leaf(&kind, opts),
            xstats: app.and_then(|a| crate::xstats::decode(&kind, a)),
            kind,
            htb,
            stats,
        },
    ))
}

/// Parses one `RTM_NEWTCLASS` dump message (HTB classes only).
pub fn parse_class(m: &NlMsg<'_>) -> Option<LiveClass> {
    if m.msg_type != RTM_NEWTCLASS {
        return None;
    }
    let (_, handle, parent, info) = tcmsg_of(m.payload)?;
    let tca = m.payload.get(TCMSG_LEN..)?;
    let kind = find_attr(tca, TCA_KIND).map(str_of)?;
    if kind != "htb" {
        return None;
    }
    let id = ClassId::from_u32(handle);
    let parent = if parent == TC_H_ROOT || parent & 0xFFFF == 0 {
        ClassParent::Qdisc(id.major)
    } else {
        ClassParent::Class(ClassId::from_u32(parent))
    };
    let opts = find_attr(tca, TCA_OPTIONS).unwrap_or_default();
    let parms = find_attr(opts, TCA_HTB_PARMS).unwrap_or_default();
    let rate32 = u64::from(u32_at(parms, 8).unwrap_or(0));
    let ceil32 = u64::from(u32_at(parms, 20).unwrap_or(0));
    let rate = find_attr(opts, TCA_HTB_RATE64).and_then(|p| u64_at(p, 0)).unwrap_or(rate32);
    let ceil = find_attr(opts, TCA_HTB_CEIL64).and_then(|p| u64_at(p, 0)).unwrap_or(ceil32);
    let (stats, _) = parse_stats(tca);
    Some(LiveClass {
        id,
        parent,
        kind,
        rate: RateKbit(rate / 125),
        ceil: RateKbit(ceil / 125),
        quantum: u32_at(parms, 32).unwrap_or(0),
        prio: u32_at(parms, 40).unwrap_or(0),
        leaf_handle: info,
        stats,
    })
}

/// Only the class ID and counters of a class message (for the per-second stats loop).
pub fn parse_class_stats(m: &NlMsg<'_>) -> Option<(ClassId, Stats)> {
    if m.msg_type != RTM_NEWTCLASS {
        return None;
    }
    let (_, handle, _, _) = tcmsg_of(m.payload)?;
    let tca = m.payload.get(TCMSG_LEN..)?;
    if find_attr(tca, TCA_KIND) != Some(b"htb\0".as_slice()) {
        return None;
    }
    Some((ClassId::from_u32(handle), parse_stats(tca).0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{TcObject, TcOp, Verb};
    use lqos_plan::{Direction, HtbClass, Owner};

    #[test]
    fn class_message_decodes_to_the_same_rates() {
        let c = HtbClass {
            id: ClassId::new(2, 0x30),
            parent: ClassParent::Class(ClassId::new(2, 1)),
            rate: RateKbit(10_000_000),
            ceil: RateKbit(40_000_000),
            prio: 3,
            quantum: 1514,
            owner: Owner::QueueRoot(2),
            direction: Direction::Download,
        };
        let m = TcOp::new(Verb::Add, "v0", 2, TcObject::Class(c.clone())).encode();
        let nl = messages(&m).next().expect("one message");
        let live = parse_class(&nl).expect("htb class");
        assert_eq!((live.id, live.parent, live.rate, live.ceil), (c.id, c.parent, c.rate, c.ceil));
        assert_eq!((live.quantum, live.prio), (1514, 3));
        assert_eq!(parse_class_stats(&nl), Some((c.id, Stats::default())));
    }

    #[test]
    fn stats2_blocks_are_read() {
        let mut basic = Vec::new();
        basic.extend_from_slice(&1234u64.to_ne_bytes());
        basic.extend_from_slice(&10u32.to_ne_bytes());
        basic.extend_from_slice(&0u32.to_ne_bytes());
        let mut queue = Vec::new();
        for v in [1u32, 1500, 3, 4, 5] {
            queue.extend_from_slice(&v.to_ne_bytes());
        }
        let m = MsgBuilder::new(RTM_NEWQDISC, 0)
            .tcmsg(2, 0x8003_0000, 0x0001_0003, 0)
            .attr_str(TCA_KIND, "pfifo")
            .attr_u32(TCA_OPTIONS, 100)
            .nest(TCA_STATS2)
            .attr(TCA_STATS_BASIC, &basic)
            .attr(TCA_STATS_QUEUE, &queue)
            .end_nest()
            .finish();
        let nl = messages(&m).next().expect("message");
        let (ifx, q) = parse_qdisc(&nl).expect("qdisc");
        assert_eq!(ifx, 2);
        assert_eq!(q.leaf, Some(LeafQdisc::Pfifo { limit: Some(100) }));
        let want = Stats {
            bytes: 1234,
            packets: 10,
            qlen: 1,
            backlog: 1500,
            drops: 3,
            requeues: 4,
            overlimits: 5,
        };
        assert_eq!(q.stats, want);
    }
}
