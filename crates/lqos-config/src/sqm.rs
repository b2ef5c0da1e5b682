//! `default_sqm` tc tokens and the per-circuit `sqm` column.

use crate::model::{
    CakeAckFilter, CakeAtm, CakeDiffserv, CakeFlowMode, CakeParams, DefaultSqm, FqCodelParams,
    LeafQdisc, SqmKind, SqmOverride,
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

/// Parses a tc time like `get_time()` in iproute2: `5ms`, `100us`, `1s` (also `sec`,
/// `msec`, `usec` and plurals, any case); a bare number is microseconds.
fn parse_time_us(v: &str, key: &str) -> Result<u32, String> {
    let lower = v.to_ascii_lowercase();
    let split = lower.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let mult = match unit {
        "" | "us" | "usec" | "usecs" => 1.0,
        "ms" | "msec" | "msecs" => 1_000.0,
        "s" | "sec" | "secs" => 1_000_000.0,
        _ => return Err(format!("'{key} {v}': not a time (e.g. 5ms, 100us)")),
    };
    let x: f64 = num.parse().map_err(|_| format!("'{key} {v}': not a time (e.g. 5ms, 100us)"))?;
    let us = x * mult;
    if !us.is_finite() || us < 0.0 || us > f64::from(u32::MAX) {
        return Err(format!("'{key} {v}': out of range"));
    }
    // tc truncates (C double → unsigned int).
    Ok(us as u32)
}

/// Parses a tc rate like `get_rate64()`: `100mbit`, `1gbit`, `500kbit`, `10MBps`, `1Gibit`,
/// bare number = bit/s. Returns kbit/s.
fn parse_rate_kbit(v: &str, key: &str) -> Result<u64, String> {
    let err = || format!("'{key} {v}': not a rate (e.g. 100mbit)");
    let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "bit" => 1.0,
        "kibit" => 1024.0,
        "kbit" => 1e3,
        "mibit" => 1024.0 * 1024.0,
        "mbit" => 1e6,
        "gibit" => 1024.0 * 1024.0 * 1024.0,
        "gbit" => 1e9,
        "tibit" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "tbit" => 1e12,
        "bps" => 8.0,
        "kibps" => 8.0 * 1024.0,
        "kbps" => 8e3,
        "mibps" => 8.0 * 1024.0 * 1024.0,
        "mbps" => 8e6,
        "gibps" => 8.0 * 1024.0 * 1024.0 * 1024.0,
        "gbps" => 8e9,
        "tibps" => 8.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "tbps" => 8e12,
        _ => return Err(err()),
    };
    let x: f64 = num.parse().map_err(|_| err())?;
    let k = x * scale / 1e3;
    if k.is_finite() && (0.0..1e15).contains(&k) { Ok(k.round() as u64) } else { Err(err()) }
}

/// Parses a byte size like `get_size()`: `32mb`, `4096`, `64k`, `1gbit`.
fn parse_bytes(v: &str, key: &str) -> Result<u32, String> {
    let err = || format!("'{key} {v}': not a byte size (e.g. 32mb)");
    let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1024.0,
        "m" | "mb" => 1024.0 * 1024.0,
        "g" | "gb" => 1024.0 * 1024.0 * 1024.0,
        "kbit" => 1024.0 / 8.0,
        "mbit" => 1024.0 * 1024.0 / 8.0,
        "gbit" => 1024.0 * 1024.0 * 1024.0 / 8.0,
        _ => return Err(err()),
    };
    let x: f64 = num.parse().map_err(|_| err())?;
    let n = x * mult;
    if !n.is_finite() || n < 0.0 || n > f64::from(u32::MAX) || n.fract() != 0.0 {
        return Err(err());
    }
    Ok(n as u32)
}

/// A whole number in `lo..=hi`, as tc's `strtol` checks for `overhead` and `mpu`.
fn parse_int_in(v: &str, key: &str, lo: i64, hi: i64) -> Result<i64, String> {
    match v.parse::<i64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(format!("'{key} {v}': must be a whole number from {lo} to {hi}")),
    }
}

/// `rtt` presets: (name, interval µs); tc sends target = interval / 20.
const CAKE_RTT_PRESETS: [(&str, u32); 8] = [
    ("datacentre", 100),
    ("lan", 1_000),
    ("metro", 10_000),
    ("regional", 30_000),
    ("internet", 100_000),
    ("oceanic", 300_000),
    ("satellite", 1_000_000),
    ("interplanetary", 1_000_000_000),
];

/// Every CAKE keyword tc accepts (for the error message).
const CAKE_WORDS: &str = "bandwidth RATE, unlimited, autorate-ingress, rtt TIME, datacentre, \
    lan, metro, regional, internet, oceanic, satellite, interplanetary, besteffort, diffserv3, \
    diffserv4, diffserv8, precedence, flowblind, srchost, dsthost, hosts, flows, dual-srchost, \
    dual-dsthost, triple-isolate, nat, nonat, wash, nowash, split-gso, no-split-gso, \
    ack-filter, ack-filter-aggressive, no-ack-filter, memlimit BYTES, fwmark MASK, ingress, \
    egress, atm, noatm, ptm, raw, conservative, ethernet, docsis, ether-vlan, via-ethernet, \
    ipoa-vcmux, ipoa-llcsnap, bridged-vcmux, bridged-llcsnap, pppoa-vcmux, pppoa-llc, \
    pppoe-vcmux, pppoe-llcsnap, pppoe-ptm, bridged-ptm, overhead N, mpu N";

/// Parses CAKE's words with tc's rules (`q_cake.c`): later words win, the framing keywords
/// add to the overhead, `overhead N` sets it.
fn parse_cake<'a>(it: &mut impl Iterator<Item = &'a str>) -> Result<CakeParams, String> {
    let mut p = CakeParams::default();
    let mut overhead: i64 = 0;
    let mut overhead_set = false;
    let mut preset: Option<&str> = None;
    while let Some(tok) = it.next() {
        let lower = tok.to_ascii_lowercase();
        let mut frame = |atm: Option<CakeAtm>, add: i64| {
            if let Some(a) = atm {
                p.atm = Some(a);
            }
            overhead += add;
            overhead_set = true;
        };
        match lower.as_str() {
            "bandwidth" => {
                p.bandwidth_kbit = Some(parse_rate_kbit(next_value(it, tok)?, tok)?);
                p.autorate_ingress = Some(false);
            }
            "unlimited" => {
                p.bandwidth_kbit = Some(0);
                p.autorate_ingress = Some(false);
            }
            "autorate-ingress" => p.autorate_ingress = Some(true),
            "rtt" => p.rtt_us = Some(parse_time_us(next_value(it, tok)?, tok)?),
            "besteffort" => p.diffserv = Some(CakeDiffserv::Besteffort),
            "precedence" => p.diffserv = Some(CakeDiffserv::Precedence),
            "diffserv8" => p.diffserv = Some(CakeDiffserv::Diffserv8),
            "diffserv4" | "diffserv" => p.diffserv = Some(CakeDiffserv::Diffserv4),
            "diffserv3" => p.diffserv = Some(CakeDiffserv::Diffserv3),
            "nowash" => p.wash = Some(false),
            "wash" => p.wash = Some(true),
            "split-gso" => p.split_gso = Some(true),
            "no-split-gso" => p.split_gso = Some(false),
            "flowblind" => p.flow_mode = Some(CakeFlowMode::Flowblind),
            "srchost" => p.flow_mode = Some(CakeFlowMode::Srchost),
            "dsthost" => p.flow_mode = Some(CakeFlowMode::Dsthost),
            "hosts" => p.flow_mode = Some(CakeFlowMode::Hosts),
            "flows" => p.flow_mode = Some(CakeFlowMode::Flows),
            "dual-srchost" => p.flow_mode = Some(CakeFlowMode::DualSrchost),
            "dual-dsthost" => p.flow_mode = Some(CakeFlowMode::DualDsthost),
            "triple-isolate" => p.flow_mode = Some(CakeFlowMode::TripleIsolate),
            "nat" => p.nat = Some(true),
            "nonat" => p.nat = Some(false),
            "ptm" => p.atm = Some(CakeAtm::Ptm),
            "atm" => p.atm = Some(CakeAtm::Atm),
            "noatm" => p.atm = Some(CakeAtm::None),
            "raw" => {
                p.atm = Some(CakeAtm::None);
                overhead = 0;
                overhead_set = true;
                p.raw = true;
            }
            "conservative" => {
                p.atm = Some(CakeAtm::Atm);
                overhead = 48;
                overhead_set = true;
            }
            "ipoa-vcmux" => frame(Some(CakeAtm::Atm), 8),
            "ipoa-llcsnap" => frame(Some(CakeAtm::Atm), 16),
            "bridged-vcmux" => frame(Some(CakeAtm::Atm), 24),
            "bridged-llcsnap" => frame(Some(CakeAtm::Atm), 32),
            "pppoa-vcmux" => frame(Some(CakeAtm::Atm), 10),
            "pppoa-llc" => frame(Some(CakeAtm::Atm), 14),
            "pppoe-vcmux" => frame(Some(CakeAtm::Atm), 32),
            "pppoe-llcsnap" => frame(Some(CakeAtm::Atm), 40),
            "pppoe-ptm" => frame(Some(CakeAtm::Ptm), 30),
            "bridged-ptm" => frame(Some(CakeAtm::Ptm), 22),
            "via-ethernet" => {}
            "ethernet" => {
                frame(None, 38);
                p.mpu = Some(84);
            }
            "ether-vlan" => frame(None, 4),
            "docsis" => {
                frame(Some(CakeAtm::None), 18);
                p.mpu = Some(64);
            }
            "overhead" => {
                overhead = parse_int_in(next_value(it, tok)?, tok, -64, 256)?;
                overhead_set = true;
            }
            "mpu" => p.mpu = Some(parse_int_in(next_value(it, tok)?, tok, 0, 256)? as u32),
            "ingress" => p.ingress = Some(true),
            "egress" => p.ingress = Some(false),
            "no-ack-filter" => p.ack_filter = Some(CakeAckFilter::Off),
            "ack-filter" => p.ack_filter = Some(CakeAckFilter::On),
            "ack-filter-aggressive" => p.ack_filter = Some(CakeAckFilter::Aggressive),
            "memlimit" => p.memlimit = Some(parse_bytes(next_value(it, tok)?, tok)?),
            "fwmark" => {
                let v = next_value(it, tok)?;
                p.fwmark = Some(parse_u32_any_base(v).ok_or_else(|| {
                    format!("'{tok} {v}': not a mark (a number, decimal or 0x hex)")
                })?);
            }
            other => match CAKE_RTT_PRESETS.iter().find(|(n, _)| *n == other) {
                Some((name, interval)) => {
                    if let Some(first) = preset {
                        return Err(format!("'{name}' and '{first}' are both rtt presets"));
                    }
                    preset = Some(name);
                    p.rtt_us = Some(*interval);
                }
                None => {
                    return Err(format!(
                        "cake option '{other}' is not a tc cake option (tc accepts: {CAKE_WORDS})"
                    ));
                }
            },
        }
    }
    if overhead_set {
        // The framing keywords can add up past tc's own range; keep what tc would send.
        p.overhead = Some(i32::try_from(overhead).unwrap_or(i32::MAX));
    }
    Ok(p)
}

/// A u32 in decimal, `0x` hex or leading-zero octal (tc's `get_u32(.., 0)`).
fn parse_u32_any_base(v: &str) -> Option<u32> {
    let l = v.to_ascii_lowercase();
    if let Some(h) = l.strip_prefix("0x") {
        u32::from_str_radix(h, 16).ok()
    } else if l.len() > 1 && l.starts_with('0') {
        u32::from_str_radix(&l[1..], 8).ok()
    } else {
        l.parse().ok()
    }
}

fn parse_fq_codel<'a>(it: &mut impl Iterator<Item = &'a str>) -> Result<FqCodelParams, String> {
    let mut p = FqCodelParams::default();
    while let Some(tok) = it.next() {
        match tok.to_ascii_lowercase().as_str() {
            "limit" => p.limit = Some(parse_u32(next_value(it, tok)?, tok)?),
            "flows" => p.flows = Some(parse_u32(next_value(it, tok)?, tok)?),
            "quantum" => p.quantum = Some(parse_u32(next_value(it, tok)?, tok)?),
            "drop_batch" => p.drop_batch = Some(parse_u32(next_value(it, tok)?, tok)?),
            "target" => p.target_us = Some(parse_time_us(next_value(it, tok)?, tok)?),
            "interval" => p.interval_us = Some(parse_time_us(next_value(it, tok)?, tok)?),
            "ce_threshold" => p.ce_threshold_us = Some(parse_time_us(next_value(it, tok)?, tok)?),
            "memory_limit" => p.memory_limit = Some(parse_bytes(next_value(it, tok)?, tok)?),
            "ecn" => p.ecn = Some(true),
            "noecn" => p.ecn = Some(false),
            other => {
                return Err(format!(
                    "fq_codel option '{other}' is not a tc fq_codel option (tc accepts: limit \
                     PACKETS, flows NUMBER, quantum BYTES, target TIME, interval TIME, ecn, \
                     noecn, ce_threshold TIME, memory_limit BYTES, drop_batch SIZE)"
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

/// One side of the `sqm` column: a kind alone (`cake`), or a kind with tc options
/// (`cake diffserv8 nat`, `fq_codel target 2ms`), which are parsed like `default_sqm`.
fn parse_side(s: &str) -> Result<(Option<SqmKind>, Option<LeafQdisc>), String> {
    let words: Vec<&str> = s.split_whitespace().collect();
    let Some((first, rest)) = words.split_first() else { return Ok((None, None)) };
    let kind = match first.to_ascii_lowercase().as_str() {
        "cake" => SqmKind::Cake,
        "fq_codel" => SqmKind::FqCodel,
        "none" => SqmKind::None,
        other => return Err(format!("'{other}' is not cake, fq_codel or none")),
    };
    if rest.is_empty() {
        return Ok((Some(kind), None));
    }
    let leaf = parse_sqm_tokens(&words.join(" "))?.leaf;
    Ok((Some(kind), leaf))
}

/// Parses the `sqm` column: empty → `None`; `cake`, `fq_codel`, `none` (both directions),
/// each optionally followed by tc options (`cake diffserv8 nat`); or directional `down/up`
/// where either side may be empty (= default rule). Case-insensitive.
pub fn parse_sqm_override(text: &str) -> Result<Option<SqmOverride>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let ov = match t.split_once('/') {
        Some((down, up)) => {
            let (down, down_leaf) = parse_side(down)?;
            let (up, up_leaf) = parse_side(up)?;
            SqmOverride { down, up, down_leaf, up_leaf }
        }
        None => {
            let (k, leaf) = parse_side(t)?;
            SqmOverride { down: k, up: k, down_leaf: leaf.clone(), up_leaf: leaf }
        }
    };
    if ov.down.is_none() && ov.up.is_none() { Ok(None) } else { Ok(Some(ov)) }
}

fn side_str(k: Option<SqmKind>, leaf: Option<&LeafQdisc>) -> String {
    if let Some(l) = leaf {
        return l.tc_args();
    }
    match k {
        None => "",
        Some(SqmKind::Cake) => "cake",
        Some(SqmKind::FqCodel) => "fq_codel",
        Some(SqmKind::None) => "none",
    }
    .to_string()
}

/// Formats an `sqm` column value so that [`parse_sqm_override`] gives it back.
pub fn format_sqm_override(ov: Option<&SqmOverride>) -> String {
    match ov {
        None => String::new(),
        Some(o) if o.down == o.up && o.down_leaf == o.up_leaf => {
            side_str(o.down, o.down_leaf.as_ref())
        }
        Some(o) => format!(
            "{}/{}",
            side_str(o.down, o.down_leaf.as_ref()),
            side_str(o.up, o.up_leaf.as_ref())
        ),
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
        assert_eq!(p.ack_filter, Some(CakeAckFilter::On));
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
            Some(SqmOverride::kinds(Some(SqmKind::Cake), Some(SqmKind::Cake)))
        );
        assert!(parse_sqm_override("20").is_err());
    }
}
