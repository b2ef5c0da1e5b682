//! `default_sqm` tc tokens and the per-circuit `sqm` column.

use crate::model::{
    CakeAckFilter, CakeDiffserv, CakeParams, DefaultSqm, FqCodelParams, LeafQdisc, SqmKind,
    SqmOverride,
};

/// Parses `default_sqm` (`"cake diffserv4 ack-filter"`, `"fq_codel"`, `"none"`, `"pfifo limit
/// 1000"`, …) into a leaf qdisc. Tokens are split on whitespace. Returns a message naming the
/// offending token on error.
pub fn parse_sqm_tokens(tokens: &str) -> Result<DefaultSqm, String> {
    let words: Vec<&str> = tokens.split_whitespace().collect();
    let Some((kind, rest)) = words.split_first() else {
        return Err("default_sqm cannot be empty; specify a qdisc such as 'cake diffserv4' or \
                    'fq_codel' (or 'none' for no leaf qdisc)"
            .to_string());
    };
    let mut it = rest.iter().copied();
    let leaf = match kind.to_ascii_lowercase().as_str() {
        "none" => {
            if let Some(extra) = it.next() {
                return Err(format!("'none' takes no parameters, found '{extra}'"));
            }
            None
        }
        "cake" => Some(LeafQdisc::Cake(parse_cake(&mut it)?)),
        "fq_codel" => Some(LeafQdisc::FqCodel(parse_fq_codel(&mut it)?)),
        "pfifo" => Some(LeafQdisc::Pfifo { limit: parse_fifo(&mut it, "pfifo")? }),
        "bfifo" => Some(LeafQdisc::Bfifo { limit: parse_fifo(&mut it, "bfifo")? }),
        other => {
            return Err(format!(
                "unknown qdisc '{other}' (supported: cake, fq_codel, pfifo, bfifo, none)"
            ));
        }
    };
    Ok(DefaultSqm { tokens: words.join(" "), leaf })
}

fn next_value<'a>(it: &mut impl Iterator<Item = &'a str>, key: &str) -> Result<&'a str, String> {
    it.next().ok_or_else(|| format!("'{key}' needs a value"))
}

fn parse_u32(v: &str, key: &str) -> Result<u32, String> {
    v.parse().map_err(|_| format!("'{key} {v}': not a whole number"))
}

/// Parses a tc time (`5ms`, `100us`, `1s`, bare number = microseconds) into microseconds.
fn parse_time_us(v: &str, key: &str) -> Result<u32, String> {
    let lower = v.to_ascii_lowercase();
    let (num, mult) = if let Some(n) = lower.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = lower.strip_suffix("ms") {
        (n, 1_000.0)
    } else if let Some(n) = lower.strip_suffix('s') {
        (n, 1_000_000.0)
    } else {
        (lower.as_str(), 1.0)
    };
    let x: f64 = num.parse().map_err(|_| format!("'{key} {v}': not a time (e.g. 5ms, 100us)"))?;
    let us = x * mult;
    if !us.is_finite() || us < 0.0 || us > f64::from(u32::MAX) {
        return Err(format!("'{key} {v}': out of range"));
    }
    Ok(us.round() as u32)
}

/// Parses a tc rate (`100mbit`, `1gbit`, `500kbit`, bare number = bit/s) into kbit/s.
fn parse_rate_kbit(v: &str, key: &str) -> Result<u64, String> {
    let lower = v.to_ascii_lowercase();
    let units: [(&str, f64); 5] =
        [("gbit", 1e6), ("mbit", 1e3), ("kbit", 1.0), ("bit", 1e-3), ("", 1e-3)];
    for (suffix, mult) in units {
        if let Some(n) = lower.strip_suffix(suffix)
            && let Ok(x) = n.parse::<f64>()
        {
            let k = x * mult;
            if k.is_finite() && (0.0..1e15).contains(&k) {
                return Ok(k.round() as u64);
            }
        }
    }
    Err(format!("'{key} {v}': not a rate (e.g. 100mbit)"))
}

/// Parses a byte size with optional k/m/g suffix (`32mb`, `4096`).
fn parse_bytes(v: &str, key: &str) -> Result<u32, String> {
    let lower = v.to_ascii_lowercase();
    let trimmed = lower.trim_end_matches('b');
    let (num, mult) = match trimmed.chars().last() {
        Some('k') => (&trimmed[..trimmed.len() - 1], 1024u64),
        Some('m') => (&trimmed[..trimmed.len() - 1], 1024 * 1024),
        Some('g') => (&trimmed[..trimmed.len() - 1], 1024 * 1024 * 1024),
        _ => (trimmed, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("'{key} {v}': not a byte size (e.g. 32mb)"))
}

fn parse_cake<'a>(it: &mut impl Iterator<Item = &'a str>) -> Result<CakeParams, String> {
    let mut p = CakeParams::default();
    while let Some(tok) = it.next() {
        match tok.to_ascii_lowercase().as_str() {
            "diffserv3" => p.diffserv = Some(CakeDiffserv::Diffserv3),
            "diffserv4" => p.diffserv = Some(CakeDiffserv::Diffserv4),
            "diffserv8" => p.diffserv = Some(CakeDiffserv::Diffserv8),
            "besteffort" => p.diffserv = Some(CakeDiffserv::Besteffort),
            "precedence" => p.diffserv = Some(CakeDiffserv::Precedence),
            "ack-filter" => p.ack_filter = CakeAckFilter::On,
            "ack-filter-aggressive" => p.ack_filter = CakeAckFilter::Aggressive,
            "no-ack-filter" => p.ack_filter = CakeAckFilter::Off,
            "nat" => p.nat = Some(true),
            "nonat" => p.nat = Some(false),
            "wash" => p.wash = Some(true),
            "nowash" => p.wash = Some(false),
            "split-gso" => p.split_gso = Some(true),
            "no-split-gso" => p.split_gso = Some(false),
            "unlimited" => p.bandwidth_kbit = None,
            "bandwidth" => p.bandwidth_kbit = Some(parse_rate_kbit(next_value(it, tok)?, tok)?),
            "rtt" => p.rtt_us = Some(parse_time_us(next_value(it, tok)?, tok)?),
            "datacentre" => p.rtt_us = Some(100),
            "lan" => p.rtt_us = Some(1_000),
            "metro" => p.rtt_us = Some(10_000),
            "regional" => p.rtt_us = Some(30_000),
            "internet" => p.rtt_us = Some(100_000),
            "oceanic" => p.rtt_us = Some(300_000),
            "satellite" => p.rtt_us = Some(1_000_000),
            "interplanetary" => p.rtt_us = Some(3_600_000_000),
            "overhead" => {
                let v = next_value(it, tok)?;
                p.overhead = Some(v.parse().map_err(|_| format!("'overhead {v}': not a number"))?);
            }
            "mpu" => p.mpu = Some(parse_u32(next_value(it, tok)?, tok)?),
            "memlimit" => p.memlimit = Some(parse_bytes(next_value(it, tok)?, tok)?),
            other => {
                return Err(format!(
                    "cake option '{other}' is not supported by lqos (supported: diffserv3, \
                     diffserv4, diffserv8, besteffort, precedence, ack-filter, \
                     ack-filter-aggressive, no-ack-filter, nat, nonat, wash, nowash, split-gso, \
                     no-split-gso, bandwidth, unlimited, rtt and its presets, overhead, mpu, \
                     memlimit)"
                ));
            }
        }
    }
    Ok(p)
}

fn parse_fq_codel<'a>(it: &mut impl Iterator<Item = &'a str>) -> Result<FqCodelParams, String> {
    let mut p = FqCodelParams::default();
    while let Some(tok) = it.next() {
        match tok.to_ascii_lowercase().as_str() {
            "limit" => p.limit = Some(parse_u32(next_value(it, tok)?, tok)?),
            "flows" => p.flows = Some(parse_u32(next_value(it, tok)?, tok)?),
            "quantum" => p.quantum = Some(parse_u32(next_value(it, tok)?, tok)?),
            "target" => p.target_us = Some(parse_time_us(next_value(it, tok)?, tok)?),
            "interval" => p.interval_us = Some(parse_time_us(next_value(it, tok)?, tok)?),
            "ecn" => p.ecn = Some(true),
            "noecn" => p.ecn = Some(false),
            other => {
                return Err(format!(
                    "fq_codel option '{other}' is not supported (supported: limit, flows, \
                     quantum, target, interval, ecn, noecn)"
                ));
            }
        }
    }
    Ok(p)
}

fn parse_fifo<'a>(
    it: &mut impl Iterator<Item = &'a str>,
    kind: &str,
) -> Result<Option<u32>, String> {
    let mut limit = None;
    while let Some(tok) = it.next() {
        if tok.eq_ignore_ascii_case("limit") {
            limit = Some(parse_u32(next_value(it, tok)?, tok)?);
        } else {
            return Err(format!("{kind} option '{tok}' is not supported (only: limit N)"));
        }
    }
    Ok(limit)
}

fn parse_kind(s: &str) -> Result<Option<SqmKind>, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "cake" => Ok(Some(SqmKind::Cake)),
        "fq_codel" => Ok(Some(SqmKind::FqCodel)),
        "none" => Ok(Some(SqmKind::None)),
        other => Err(format!("'{other}' is not cake, fq_codel or none")),
    }
}

/// Parses the `sqm` column: empty → `None`; `cake`, `fq_codel`, `none` (both directions); or
/// directional `down/up` where either side may be empty (= default rule). Case-insensitive.
pub fn parse_sqm_override(text: &str) -> Result<Option<SqmOverride>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let ov = match t.split_once('/') {
        Some((down, up)) => SqmOverride { down: parse_kind(down)?, up: parse_kind(up)? },
        None => {
            let k = parse_kind(t)?;
            SqmOverride { down: k, up: k }
        }
    };
    if ov.down.is_none() && ov.up.is_none() { Ok(None) } else { Ok(Some(ov)) }
}

fn kind_str(k: Option<SqmKind>) -> &'static str {
    match k {
        None => "",
        Some(SqmKind::Cake) => "cake",
        Some(SqmKind::FqCodel) => "fq_codel",
        Some(SqmKind::None) => "none",
    }
}

/// Formats an `sqm` column value so that [`parse_sqm_override`] gives it back.
pub fn format_sqm_override(ov: Option<&SqmOverride>) -> String {
    match ov {
        None => String::new(),
        Some(o) if o.down == o.up => kind_str(o.down).to_string(),
        Some(o) => format!("{}/{}", kind_str(o.down), kind_str(o.up)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cake_tokens_become_params() {
        let s = parse_sqm_tokens("cake diffserv4 ack-filter rtt 20ms").unwrap();
        let Some(LeafQdisc::Cake(p)) = s.leaf else { panic!("not cake") };
        assert_eq!(p.diffserv, Some(CakeDiffserv::Diffserv4));
        assert_eq!(p.ack_filter, CakeAckFilter::On);
        assert_eq!(p.rtt_us, Some(20_000));
    }

    #[test]
    fn none_pfifo_and_fq_codel_are_accepted() {
        assert_eq!(parse_sqm_tokens("none").unwrap().leaf, None);
        assert_eq!(
            parse_sqm_tokens("pfifo limit 100").unwrap().leaf,
            Some(LeafQdisc::Pfifo { limit: Some(100) })
        );
        assert_eq!(parse_sqm_tokens("bfifo").unwrap().leaf, Some(LeafQdisc::Bfifo { limit: None }));
        let f = parse_sqm_tokens("fq_codel target 5ms noecn").unwrap();
        assert_eq!(
            f.leaf,
            Some(LeafQdisc::FqCodel(FqCodelParams {
                target_us: Some(5000),
                ecn: Some(false),
                ..Default::default()
            }))
        );
    }

    #[test]
    fn empty_and_unknown_tokens_are_rejected_with_the_token() {
        assert!(parse_sqm_tokens("  ").unwrap_err().contains("cannot be empty"));
        assert!(parse_sqm_tokens("sfq").unwrap_err().contains("'sfq'"));
        assert!(parse_sqm_tokens("cake frobnicate").unwrap_err().contains("'frobnicate'"));
        assert!(parse_sqm_tokens("cake rtt").unwrap_err().contains("needs a value"));
    }

    #[test]
    fn sqm_column_forms_round_trip() {
        for s in ["cake", "fq_codel", "none", "cake/fq_codel", "fq_codel/", "/none"] {
            let ov = parse_sqm_override(s).unwrap();
            assert_eq!(format_sqm_override(ov.as_ref()), s, "{s}");
        }
        assert_eq!(parse_sqm_override("").unwrap(), None);
        assert_eq!(parse_sqm_override("/").unwrap(), None);
        assert_eq!(
            parse_sqm_override(" CAKE ").unwrap(),
            Some(SqmOverride { down: Some(SqmKind::Cake), up: Some(SqmKind::Cake) })
        );
        assert!(parse_sqm_override("20").is_err());
    }
}
