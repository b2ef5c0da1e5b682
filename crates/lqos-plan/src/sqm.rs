//! Leaf qdisc choice per circuit and direction (reference §2.4, §4.6).

use lqos_config::{
    CakeDiffserv, CakeParams, FqCodelParams, LeafQdisc, QueuesConfig, RateKbit, SqmKind,
};

/// CAKE `rtt` for slow circuits that do not set one: ≤1 Mbps 300 ms, ≤2 180 ms, ≤3 140 ms,
/// ≤4 120 ms (one 1500-byte packet takes 12 ms at 1 Mbps; LibreQoS scales its target from that).
pub fn low_rate_rtt_us(max: RateKbit) -> Option<u32> {
    match max.0 {
        0..=1_000 => Some(300_000),
        1_001..=2_000 => Some(180_000),
        2_001..=3_000 => Some(140_000),
        3_001..=4_000 => Some(120_000),
        _ => None,
    }
}

fn with_rtt_fixup(mut leaf: LeafQdisc, max: RateKbit) -> LeafQdisc {
    if let LeafQdisc::Cake(p) = &mut leaf
        && p.rtt_us.is_none()
    {
        p.rtt_us = low_rate_rtt_us(max);
    }
    leaf
}

/// The CAKE used when a circuit asks for `cake`: `default_sqm` if it is CAKE, else
/// `cake diffserv4`.
fn cake_for_override(q: &QueuesConfig) -> LeafQdisc {
    match &q.default_sqm.leaf {
        Some(l @ LeafQdisc::Cake(_)) => l.clone(),
        _ => LeafQdisc::Cake(CakeParams {
            diffserv: Some(CakeDiffserv::Diffserv4),
            ..CakeParams::default()
        }),
    }
}

/// The leaf for one direction of a circuit whose effective ceil in that direction is `max`.
/// * explicit override `none` → no leaf; `fq_codel` → default fq_codel; `cake` → see
///   [`cake_for_override`] plus the low-rate `rtt` fix-up;
/// * no override: `fq_codel` when `max ≥ fast_queues_fq_codel` (a non-positive or non-finite
///   threshold disables this rule), else `default_sqm` (`None` = no leaf) plus the fix-up.
pub fn leaf_for(q: &QueuesConfig, explicit: Option<SqmKind>, max: RateKbit) -> Option<LeafQdisc> {
    match explicit {
        Some(SqmKind::None) => None,
        Some(SqmKind::FqCodel) => Some(LeafQdisc::FqCodel(FqCodelParams::default())),
        Some(SqmKind::Cake) => Some(with_rtt_fixup(cake_for_override(q), max)),
        None => {
            let t = q.fast_queues_fq_codel_mbps;
            if t.is_finite() && t > 0.0 && max >= RateKbit::from_mbps(t) {
                return Some(LeafQdisc::FqCodel(FqCodelParams::default()));
            }
            q.default_sqm.leaf.clone().map(|l| with_rtt_fixup(l, max))
        }
    }
}

/// [`leaf_for`] for one side of a circuit's `sqm` column: a side written with tc options
/// (`cake diffserv8 nat`) is that leaf (plus the low-rate `rtt` fix-up when it sets no
/// `rtt`); otherwise the kind alone decides.
pub fn leaf_for_override(
    q: &QueuesConfig,
    side: (Option<SqmKind>, Option<&LeafQdisc>),
    max: RateKbit,
) -> Option<LeafQdisc> {
    match side {
        (_, Some(leaf)) => Some(with_rtt_fixup(leaf.clone(), max)),
        (kind, None) => leaf_for(q, kind, max),
    }
}

#[cfg(test)]
mod tests {
    use lqos_config::{DefaultSqm, SqmKind};

    use super::*;
    use crate::testkit::{config_bridge, mbps};

    fn cake_rtt(l: &Option<LeafQdisc>) -> Option<Option<u32>> {
        match l {
            Some(LeafQdisc::Cake(p)) => Some(p.rtt_us),
            _ => None,
        }
    }

    #[test]
    fn rtt_fixups_apply_up_to_4_mbps_only() {
        let q = config_bridge(1000, 1000).queues;
        assert_eq!(cake_rtt(&leaf_for(&q, None, RateKbit(500))), Some(Some(300_000)));
        assert_eq!(cake_rtt(&leaf_for(&q, None, mbps(1))), Some(Some(300_000)));
        assert_eq!(cake_rtt(&leaf_for(&q, None, RateKbit(1_500))), Some(Some(180_000)));
        assert_eq!(cake_rtt(&leaf_for(&q, None, mbps(3))), Some(Some(140_000)));
        assert_eq!(cake_rtt(&leaf_for(&q, None, mbps(4))), Some(Some(120_000)));
        assert_eq!(cake_rtt(&leaf_for(&q, None, RateKbit(4_001))), Some(None));
    }

    #[test]
    fn explicit_rtt_in_default_sqm_is_kept() {
        let mut q = config_bridge(1000, 1000).queues;
        q.default_sqm.leaf =
            Some(LeafQdisc::Cake(CakeParams { rtt_us: Some(50_000), ..CakeParams::default() }));
        assert_eq!(cake_rtt(&leaf_for(&q, None, mbps(1))), Some(Some(50_000)));
    }

    #[test]
    fn fast_circuits_get_fq_codel_unless_overridden() {
        let q = config_bridge(10_000, 10_000).queues;
        assert!(matches!(leaf_for(&q, None, mbps(1000)), Some(LeafQdisc::FqCodel(_))));
        assert!(matches!(leaf_for(&q, None, RateKbit(999_999)), Some(LeafQdisc::Cake(_))));
        assert!(matches!(leaf_for(&q, Some(SqmKind::Cake), mbps(2000)), Some(LeafQdisc::Cake(_))));
        assert_eq!(leaf_for(&q, Some(SqmKind::None), mbps(2000)), None);
        assert!(matches!(
            leaf_for(&q, Some(SqmKind::FqCodel), mbps(5)),
            Some(LeafQdisc::FqCodel(_))
        ));
    }

    #[test]
    fn cake_override_without_cake_default_is_diffserv4_and_none_default_has_no_leaf() {
        let mut q = config_bridge(1000, 1000).queues;
        q.default_sqm = DefaultSqm { tokens: "none".into(), leaf: None };
        assert_eq!(leaf_for(&q, None, mbps(100)), None);
        match leaf_for(&q, Some(SqmKind::Cake), mbps(2)) {
            Some(LeafQdisc::Cake(p)) => {
                assert_eq!(p.diffserv, Some(CakeDiffserv::Diffserv4));
                assert_eq!(p.rtt_us, Some(180_000));
            }
            other => panic!("expected cake, got {other:?}"),
        }
        q.default_sqm = DefaultSqm {
            tokens: "fq_codel".into(),
            leaf: Some(LeafQdisc::FqCodel(FqCodelParams::default())),
        };
        assert!(matches!(leaf_for(&q, None, mbps(1)), Some(LeafQdisc::FqCodel(_))));
    }

    #[test]
    fn sqm_column_options_are_the_leaf_and_keep_the_low_rate_fixup() {
        let q = config_bridge(1000, 1000).queues;
        let leaf = lqos_config::parse_sqm_tokens("cake diffserv8 nat").ok().and_then(|s| s.leaf);
        match leaf_for_override(&q, (Some(SqmKind::Cake), leaf.as_ref()), mbps(1)) {
            Some(LeafQdisc::Cake(p)) => {
                assert_eq!(p.diffserv, Some(CakeDiffserv::Diffserv8));
                assert_eq!(p.nat, Some(true));
                assert_eq!(p.rtt_us, Some(300_000));
            }
            other => panic!("{other:?}"),
        }
        // Options win over the fast-queue rule; no options fall back to leaf_for.
        let f = lqos_config::parse_sqm_tokens("fq_codel target 2ms").ok().and_then(|s| s.leaf);
        assert!(f.is_some());
        assert_eq!(leaf_for_override(&q, (Some(SqmKind::FqCodel), f.as_ref()), mbps(5000)), f);
        assert_eq!(leaf_for_override(&q, (Some(SqmKind::None), None), mbps(5)), None);
    }
}
