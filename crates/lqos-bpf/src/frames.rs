//! Builds small test frames (Ethernet, 0–2 VLAN tags, IPv4/IPv6, UDP) for
//! `BPF_PROG_TEST_RUN` tests, the benchmark and lab traffic generators.

use std::net::IpAddr;

/// 802.1Q ethertype.
pub const ETH_P_8021Q: u16 = 0x8100;
/// 802.1ad (QinQ outer) ethertype.
pub const ETH_P_8021AD: u16 = 0x88a8;

/// A UDP frame from `src` to `dst` (same family) with `vlans` tags (outermost first;
/// the first uses 802.1ad when there are two) and `payload` bytes of zeros.
/// Returns `None` when the address families differ.
pub fn udp_frame(src: IpAddr, dst: IpAddr, vlans: &[u16], payload: usize) -> Option<Vec<u8>> {
    let mut f = Vec::with_capacity(64 + payload);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // dst mac
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // src mac
    for (i, vid) in vlans.iter().enumerate() {
        let tpid = if vlans.len() > 1 && i == 0 { ETH_P_8021AD } else { ETH_P_8021Q };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    }
    let udp_len = u16::try_from(8 + payload).ok()?;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let total = 20 + udp_len;
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip[8] = 64;
            ip[9] = 17;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let csum = checksum(&ip);
            ip[10..12].copy_from_slice(&csum.to_be_bytes());
            f.extend_from_slice(&ip);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&0x86ddu16.to_be_bytes());
            let mut ip = [0u8; 40];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&udp_len.to_be_bytes());
            ip[6] = 17;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            f.extend_from_slice(&ip);
        }
        _ => return None,
    }
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&5201u16.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum (IPv4); fine for test-run
    f.resize(f.len() + payload, 0);
    Some(f)
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
