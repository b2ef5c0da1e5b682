//! Builds small test frames (Ethernet, 0–2 VLAN tags, PPPoE, IPv4/IPv6, UDP/TCP with or
//! without timestamps) for
//! `BPF_PROG_TEST_RUN` tests, the benchmark and lab traffic generators.

use std::net::IpAddr;

/// 802.1Q ethertype.
pub const ETH_P_8021Q: u16 = 0x8100;
/// 802.1ad (QinQ outer) ethertype.
pub const ETH_P_8021AD: u16 = 0x88a8;

/// PPPoE session ethertype.
pub const ETH_P_PPP_SES: u16 = 0x8864;

/// Layer 4 of a test frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// UDP with `payload` zero bytes.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Payload bytes.
        payload: usize,
    },
    /// TCP.
    Tcp(TcpSpec),
}

/// A TCP segment of a test frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpSpec {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags byte (0x10 ACK, 0x02 SYN, 0x18 PSH|ACK).
    pub flags: u8,
    /// `(TSval, TSecr)` timestamp option.
    pub ts: Option<(u32, u32)>,
    /// Lay the options out as a Linux SYN does (MSS, SACK-permitted, TS, NOP, WS) instead of
    /// NOP, NOP, TS — exercises the option walk.
    pub syn_layout: bool,
    /// Payload bytes.
    pub payload: usize,
}

impl TcpSpec {
    /// A bare SYN (sequence 1, no options, no payload): what an Internet scan sends.
    pub fn syn(sport: u16, dport: u16) -> Self {
        TcpSpec { sport, dport, seq: 1, flags: 0x02, ..TcpSpec::default() }
    }
}

/// Everything about a test frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpec<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address (same family).
    pub dst: IpAddr,
    /// VLAN tags, outermost first (802.1ad outside when there are two).
    pub vlans: &'a [u16],
    /// Wrap the IP packet in a PPPoE session header.
    pub pppoe: bool,
    /// Layer 4.
    pub l4: L4,
}

/// A UDP frame from `src` to `dst` (same family) with `vlans` tags (outermost first;
/// the first uses 802.1ad when there are two) and `payload` bytes of zeros.
/// Returns `None` when the address families differ.
pub fn udp_frame(src: IpAddr, dst: IpAddr, vlans: &[u16], payload: usize) -> Option<Vec<u8>> {
    build(&FrameSpec {
        src,
        dst,
        vlans,
        pppoe: false,
        l4: L4::Udp { sport: 40000, dport: 5201, payload },
    })
}

/// A TCP frame (see [`TcpSpec`]).
pub fn tcp_frame(src: IpAddr, dst: IpAddr, vlans: &[u16], tcp: TcpSpec) -> Option<Vec<u8>> {
    build(&FrameSpec { src, dst, vlans, pppoe: false, l4: L4::Tcp(tcp) })
}

fn l4_bytes(l4: &L4) -> Option<(u8, Vec<u8>)> {
    match *l4 {
        L4::Udp { sport, dport, payload } => {
            let len = u16::try_from(8 + payload).ok()?;
            let mut v = Vec::with_capacity(8 + payload);
            v.extend_from_slice(&sport.to_be_bytes());
            v.extend_from_slice(&dport.to_be_bytes());
            v.extend_from_slice(&len.to_be_bytes());
            v.extend_from_slice(&[0, 0]); // no UDP checksum; fine for test-run
            v.resize(8 + payload, 0);
            Some((17, v))
        }
        L4::Tcp(t) => {
            let mut opts = Vec::new();
            if let Some((tsval, tsecr)) = t.ts {
                if t.syn_layout {
                    opts.extend_from_slice(&[2, 4, 0x05, 0xb4, 4, 2]);
                    opts.extend_from_slice(&[8, 10]);
                    opts.extend_from_slice(&tsval.to_be_bytes());
                    opts.extend_from_slice(&tsecr.to_be_bytes());
                    opts.extend_from_slice(&[1, 3, 3, 7]);
                } else {
                    opts.extend_from_slice(&[1, 1, 8, 10]);
                    opts.extend_from_slice(&tsval.to_be_bytes());
                    opts.extend_from_slice(&tsecr.to_be_bytes());
                }
            }
            while opts.len() % 4 != 0 {
                opts.push(0);
            }
            let hlen = 20 + opts.len();
            let mut v = Vec::with_capacity(hlen + t.payload);
            v.extend_from_slice(&t.sport.to_be_bytes());
            v.extend_from_slice(&t.dport.to_be_bytes());
            v.extend_from_slice(&t.seq.to_be_bytes());
            v.extend_from_slice(&t.ack.to_be_bytes());
            v.push(u8::try_from(hlen / 4).ok()? << 4);
            v.push(t.flags);
            v.extend_from_slice(&64000u16.to_be_bytes());
            v.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
            v.extend_from_slice(&opts);
            v.resize(hlen + t.payload, 0);
            Some((6, v))
        }
    }
}

/// Builds the frame. `None` when the address families differ or a length overflows.
pub fn build(spec: &FrameSpec<'_>) -> Option<Vec<u8>> {
    let (proto, l4) = l4_bytes(&spec.l4)?;
    let mut f = Vec::with_capacity(64 + l4.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // dst mac
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // src mac
    for (i, vid) in spec.vlans.iter().enumerate() {
        let tpid = if spec.vlans.len() > 1 && i == 0 { ETH_P_8021AD } else { ETH_P_8021Q };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    }
    let mut ip = Vec::with_capacity(40 + l4.len());
    let ethertype = match (spec.src, spec.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = u16::try_from(20 + l4.len()).ok()?;
            let mut h = [0u8; 20];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h[8] = 64;
            h[9] = proto;
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            let csum = checksum(&h);
            h[10..12].copy_from_slice(&csum.to_be_bytes());
            ip.extend_from_slice(&h);
            0x0800u16
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let plen = u16::try_from(l4.len()).ok()?;
            let mut h = [0u8; 40];
            h[0] = 0x60;
            h[4..6].copy_from_slice(&plen.to_be_bytes());
            h[6] = proto;
            h[7] = 64;
            h[8..24].copy_from_slice(&s.octets());
            h[24..40].copy_from_slice(&d.octets());
            ip.extend_from_slice(&h);
            0x86ddu16
        }
        _ => return None,
    };
    ip.extend_from_slice(&l4);
    if spec.pppoe {
        f.extend_from_slice(&ETH_P_PPP_SES.to_be_bytes());
        let len = u16::try_from(ip.len() + 2).ok()?;
        f.extend_from_slice(&[0x11, 0x00, 0x12, 0x34]); // ver/type, code, session 0x1234
        f.extend_from_slice(&len.to_be_bytes());
        let ppp: u16 = if ethertype == 0x0800 { 0x0021 } else { 0x0057 };
        f.extend_from_slice(&ppp.to_be_bytes());
    } else {
        f.extend_from_slice(&ethertype.to_be_bytes());
    }
    f.extend_from_slice(&ip);
    Some(f)
}

/// VLAN id of the tag at `index` (0 = outermost), if the frame has that many tags.
pub fn vid_at(frame: &[u8], index: usize) -> Option<u16> {
    let off = 12 + 4 * index;
    let tpid = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    if tpid != ETH_P_8021Q && tpid != ETH_P_8021AD {
        return None;
    }
    Some(u16::from_be_bytes([*frame.get(off + 2)?, *frame.get(off + 3)?]) & 0x0fff)
}

/// VLAN id of the outermost tag, if the frame is tagged.
pub fn outer_vid(frame: &[u8]) -> Option<u16> {
    let tpid = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if tpid != ETH_P_8021Q && tpid != ETH_P_8021AD {
        return None;
    }
    Some(u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]) & 0x0fff)
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let hi = u32::from(pair[0]) << 8;
        let lo = pair.get(1).map_or(0, |b| u32::from(*b));
        sum = sum.wrapping_add(hi | lo);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_tags_put_8021ad_outside_and_ip_after_both() {
        let f = udp_frame(
            "198.18.0.1".parse().expect("ip"),
            "198.18.0.2".parse().expect("ip"),
            &[100, 200],
            10,
        )
        .expect("frame");
        assert_eq!(&f[12..14], &[0x88, 0xa8]);
        assert_eq!(outer_vid(&f), Some(100));
        assert_eq!(&f[16..18], &[0x81, 0x00]);
        assert_eq!(&f[18..20], &[0x00, 200]);
        assert_eq!(&f[20..22], &[0x08, 0x00]);
        assert_eq!(f[22], 0x45);
        assert_eq!(f.len(), 14 + 8 + 20 + 8 + 10);
    }

    #[test]
    fn ipv4_header_checksum_verifies() {
        let f =
            udp_frame("198.18.0.1".parse().expect("ip"), "198.18.0.2".parse().expect("ip"), &[], 0)
                .expect("frame");
        assert_eq!(checksum(&f[14..34]), 0);
    }

    #[test]
    fn tcp_timestamps_and_pppoe_are_where_parsers_look() {
        let t = TcpSpec {
            sport: 1,
            dport: 2,
            seq: 7,
            flags: 0x10,
            ts: Some((5, 6)),
            ..Default::default()
        };
        let f = build(&FrameSpec {
            src: "198.18.0.1".parse().expect("ip"),
            dst: "198.18.0.2".parse().expect("ip"),
            vlans: &[],
            pppoe: true,
            l4: L4::Tcp(t),
        })
        .expect("frame");
        assert_eq!(&f[12..14], &[0x88, 0x64]);
        assert_eq!(&f[20..22], &[0x00, 0x21]);
        let tcp = 22 + 20;
        assert_eq!(f[tcp + 12] >> 4, 8, "20 + 12 option bytes");
        assert_eq!(&f[tcp + 20..tcp + 24], &[1, 1, 8, 10]);
        assert_eq!(&f[tcp + 24..tcp + 28], &5u32.to_be_bytes());
        assert_eq!(checksum(&f[22..42]), 0);
    }

    #[test]
    fn mixed_families_give_none() {
        assert!(
            udp_frame(
                "198.18.0.1".parse().expect("ip"),
                "2001:db8::1".parse().expect("ip"),
                &[],
                0
            )
            .is_none()
        );
    }
}
