//! `tc -batch` rendering of plans and change sets (for `libreqos --dry-run`, debugging and the
//! `linux_tc.txt` debug file). Handles are hex without `0x`, as `tc` prints them; rates are
//! integer kbit.

use std::fmt::Write as _;

use lqos_config::LeafQdisc;

use crate::model::*;

/// tc's argument words for a leaf qdisc, e.g. `cake diffserv4 rtt 300000us`
/// (see [`LeafQdisc::tc_args`]).
pub fn leaf_args(q: &LeafQdisc) -> String {
    q.tc_args()
}

fn parent_str(p: ClassParent) -> String {
    match p {
        ClassParent::Qdisc(m) => format!("{m:x}:"),
        ClassParent::Class(c) => c.to_string(),
    }
}

fn class_line(out: &mut String, verb: &str, dev: &str, c: &HtbClass) {
    let _ = writeln!(
        out,
        "class {verb} dev {dev} parent {} classid {} htb rate {}kbit ceil {}kbit prio {} quantum {}",
        parent_str(c.parent),
        c.id,
        c.rate.0,
        c.ceil.0,
        c.prio,
        c.quantum
    );
}

fn htb_line(out: &mut String, dev: &str, h: &HtbQdisc) {
    let _ = writeln!(
        out,
        "qdisc add dev {dev} parent {MQ_MAJOR:x}:{:x} handle {:x}: htb default {:x} r2q {}",
        h.mq_slot, h.major, h.default_minor, h.r2q
    );
}

fn leaf_line(out: &mut String, verb: &str, dev: &str, l: &LeafPlan) {
    let _ = writeln!(
        out,
        "qdisc {verb} dev {dev} parent {} handle {:x}: {}",
        l.parent,
        l.handle,
        leaf_args(&l.qdisc)
    );
}

fn mq_line(out: &mut String, dev: &str) {
    let _ = writeln!(out, "qdisc add dev {dev} root handle {MQ_MAJOR:x}: mq");
}

/// The `tc -batch` lines of a full build of `plan` on empty interfaces: per interface the root
/// `mq`, the per-queue HTBs, the classes (parents first) and the leaf qdiscs. IP mappings are
/// not tc and are not rendered.
pub fn render_plan_tc(plan: &Plan) -> String {
    render_changeset_tc(&crate::diff::diff(&Plan::empty(), plan))
}

/// The `tc -batch` lines of a change set, in the order lqos-tc applies it: leaf `qdisc del`,
/// `class del` (children first), HTB `qdisc del`, root `mq` add, HTB add, `class add`, leaf
/// `qdisc add`, `class change`, leaf `qdisc change`. Mappings are not rendered.
pub fn render_changeset_tc(cs: &ChangeSet) -> String {
    let mut out = String::new();
    for l in &cs.leaf_del {
        let _ = writeln!(
            out,
            "qdisc del dev {} parent {} handle {:x}:",
            l.interface, l.item.parent, l.item.handle
        );
    }
    for c in &cs.class_del {
        let _ = writeln!(
            out,
            "class del dev {} parent {} classid {}",
            c.interface,
            parent_str(c.item.parent),
            c.item.id
        );
    }
    for h in &cs.htb_del {
        let _ = writeln!(
            out,
            "qdisc del dev {} parent {MQ_MAJOR:x}:{:x} handle {:x}:",
            h.interface, h.item.mq_slot, h.item.major
        );
    }
    for m in &cs.mq_add {
        mq_line(&mut out, m);
    }
    for h in &cs.htb_add {
        htb_line(&mut out, &h.interface, &h.item);
    }
    for c in &cs.class_add {
        class_line(&mut out, "add", &c.interface, &c.item);
    }
    for l in &cs.leaf_add {
        leaf_line(&mut out, "add", &l.interface, &l.item);
    }
    for c in &cs.class_change {
        class_line(&mut out, "change", &c.interface, &c.item);
    }
    for l in &cs.leaf_change {
        leaf_line(&mut out, "change", &l.interface, &l.item);
    }
    out
}
