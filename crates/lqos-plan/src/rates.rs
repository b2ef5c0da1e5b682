//! Rate arithmetic: r2q, quantum and the proportional sharing of a parent's guaranteed rate.

use lqos_config::RateKbit;

/// Smallest rate or ceil the planner emits (HTB refuses 0), 10 kbit/s.
pub const MIN_RATE_KBIT: u64 = 10;
/// Largest quantum (bytes) the planner aims for (`MAX_R2Q` in LibreQoS).
pub const MAX_QUANTUM: u32 = 60_000;
/// Smallest quantum (bytes): one full Ethernet frame.
pub const MIN_QUANTUM: u32 = 1522;

/// Formats `kbit` (kbit/s) as Mbps for messages: up to 3 decimals (exact, since 1 kbit =
/// 0.001 Mbps), trailing zeros trimmed, unit included: `1150 Mbps`, `0.5 Mbps`, `0.01 Mbps`.
pub fn mbps_text(kbit: u64) -> String {
    let (whole, frac) = (kbit / 1000, kbit % 1000);
    if frac == 0 {
        format!("{whole} Mbps")
    } else {
        let f = format!("{frac:03}");
        format!("{whole}.{} Mbps", f.trim_end_matches('0'))
    }
}

/// `r2q` for an HTB whose fastest class runs at `link`: the smallest value ≥ 10 such that
/// `link_bytes_per_sec / r2q ≤ 60000` (LibreQoS: start at 10, increment while above).
/// Computed from kbit, so fractional Mbps are not truncated. 1000 Mbps → 2084.
pub fn r2q(link: RateKbit) -> u32 {
    let bytes = link.bytes_per_sec();
    let need = bytes.div_ceil(u64::from(MAX_QUANTUM));
    u32::try_from(need.max(10)).unwrap_or(u32::MAX)
}

/// `quantum` for a class whose ceil is `ceil`: `bytes_per_sec / r2q`, clamped to
/// `1522..=60000`. 100 Mbps with r2q 2084 → 5998.
pub fn quantum(ceil: RateKbit, r2q: u32) -> u32 {
    let q = ceil.bytes_per_sec() / u64::from(r2q.max(1));
    u32::try_from(q).unwrap_or(u32::MAX).clamp(MIN_QUANTUM, MAX_QUANTUM)
}

/// Shares `budget` among children wanting `desires`. When the desires fit, every child gets
/// what it wants; otherwise each gets `desire × budget / Σdesires` (rounded down). Every result
/// is then raised to [`MIN_RATE_KBIT`] (HTB refuses 0), so many tiny children can still exceed
/// the budget by at most `10 kbit × count`. Returns the rates and whether scaling happened.
pub fn share(budget: u64, desires: &[u64]) -> (Vec<u64>, bool) {
    let sum: u128 = desires.iter().map(|d| u128::from(*d)).sum();
    let scaled = sum > u128::from(budget);
    let out = desires
        .iter()
        .map(|d| {
            let r = if scaled {
                // sum > budget ≥ 0, so sum > 0.
                (u128::from(*d) * u128::from(budget) / sum) as u64
            } else {
                *d
            };
            r.max(MIN_RATE_KBIT)
        })
        .collect();
    (out, scaled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r2q_and_quantum_match_the_reference_at_1_gbit() {
        let g = RateKbit(1_000_000);
        assert_eq!(r2q(g), 2084);
        assert_eq!(quantum(g, 2084), 59_980);
        assert_eq!(quantum(RateKbit(100_000), 2084), 5998);
        assert_eq!(quantum(RateKbit(12_000), 2084), 1522);
    }

    #[test]
    fn r2q_keeps_fractional_mbps_and_has_a_floor() {
        // 1150 Mbps: 143,750,000 B/s / 60000 = 2395.8 → 2396 (no truncation to 1100 or 1000).
        assert_eq!(r2q(RateKbit(1_150_000)), 2396);
        assert_eq!(r2q(RateKbit(1_000)), 10);
        assert_eq!(quantum(RateKbit(1_150_000), 2396), 59_995);
        assert!(quantum(RateKbit(10_000_000), 10) <= MAX_QUANTUM);
    }

    #[test]
    fn mbps_text_trims_trailing_zeros() {
        assert_eq!(mbps_text(1_150_000), "1150 Mbps");
        assert_eq!(mbps_text(500), "0.5 Mbps");
        assert_eq!(mbps_text(10), "0.01 Mbps");
        assert_eq!(mbps_text(1_234_567), "1234.567 Mbps");
        assert_eq!(mbps_text(0), "0 Mbps");
        assert_eq!(mbps_text(200_050), "200.05 Mbps");
    }

    #[test]
    fn share_scales_proportionally_with_a_floor() {
        assert_eq!(share(1000, &[300, 200]), (vec![300, 200], false));
        assert_eq!(share(1000, &[1000, 1000]), (vec![500, 500], true));
        assert_eq!(share(100, &[1000, 0]), (vec![100, 10], true));
        assert_eq!(share(0, &[]), (vec![], false));
    }
}
