//! Netlink wire format: constants, a message builder and an attribute reader. Pure bytes, no
//! socket. Everything is native-endian, as rtnetlink expects.

/// `struct nlmsghdr` length.
pub const NLMSG_HDRLEN: usize = 16;
/// `struct tcmsg` length.
pub const TCMSG_LEN: usize = 20;
/// `struct ifinfomsg` length.
pub const IFINFOMSG_LEN: usize = 16;

/// `NLMSG_ERROR`.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`.
pub const NLMSG_DONE: u16 = 3;

/// `RTM_NEWLINK`.
pub const RTM_NEWLINK: u16 = 16;
/// `RTM_GETLINK`.
pub const RTM_GETLINK: u16 = 18;
/// `RTM_NEWQDISC`.
pub const RTM_NEWQDISC: u16 = 36;
/// `RTM_DELQDISC`.
pub const RTM_DELQDISC: u16 = 37;
/// `RTM_GETQDISC`.
pub const RTM_GETQDISC: u16 = 38;
/// `RTM_NEWTCLASS`.
pub const RTM_NEWTCLASS: u16 = 40;
/// `RTM_DELTCLASS`.
pub const RTM_DELTCLASS: u16 = 41;
/// `RTM_GETTCLASS`.
pub const RTM_GETTCLASS: u16 = 42;

/// `NLM_F_REQUEST`.
pub const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_MULTI`.
pub const NLM_F_MULTI: u16 = 0x2;
/// `NLM_F_ACK`.
pub const NLM_F_ACK: u16 = 0x4;
/// Echo the answer to the sender (needed for a tc get's answer to reach the asker).
pub const NLM_F_ECHO: u16 = 0x8;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
pub const NLM_F_DUMP: u16 = 0x300;
/// `NLM_F_REPLACE`.
pub const NLM_F_REPLACE: u16 = 0x100;
/// `NLM_F_EXCL`.
pub const NLM_F_EXCL: u16 = 0x200;
/// `NLM_F_CREATE`.
pub const NLM_F_CREATE: u16 = 0x400;
/// In an NLMSG_ERROR: the echoed request was cut to its header.
pub const NLM_F_CAPPED: u16 = 0x100;
/// In an NLMSG_ERROR: extended-ack TLVs follow.
pub const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLMSGERR_ATTR_MSG`.
pub const NLMSGERR_ATTR_MSG: u16 = 1;

/// `TC_H_ROOT`.
pub const TC_H_ROOT: u32 = 0xFFFF_FFFF;

/// `TCA_KIND`.
pub const TCA_KIND: u16 = 1;
/// `TCA_OPTIONS`.
pub const TCA_OPTIONS: u16 = 2;
/// `TCA_STATS` (legacy `struct tc_stats`).
pub const TCA_STATS: u16 = 3;
/// `TCA_XSTATS`.
pub const TCA_XSTATS: u16 = 4;
/// `TCA_STATS2`.
pub const TCA_STATS2: u16 = 7;
/// `TCA_STATS_BASIC`.
pub const TCA_STATS_BASIC: u16 = 1;
/// `TCA_STATS_QUEUE`.
pub const TCA_STATS_QUEUE: u16 = 3;
/// `TCA_STATS_APP`.
pub const TCA_STATS_APP: u16 = 4;

/// `TCA_HTB_PARMS`.
pub const TCA_HTB_PARMS: u16 = 1;
/// `TCA_HTB_INIT`.
pub const TCA_HTB_INIT: u16 = 2;
/// `TCA_HTB_RATE64`.
pub const TCA_HTB_RATE64: u16 = 6;
/// `TCA_HTB_CEIL64`.
pub const TCA_HTB_CEIL64: u16 = 7;

/// `IFLA_IFNAME`.
pub const IFLA_IFNAME: u16 = 3;
/// `IFLA_MTU`.
pub const IFLA_MTU: u16 = 4;
/// `IFLA_TXQLEN`.
pub const IFLA_TXQLEN: u16 = 13;
/// `IFLA_OPERSTATE`.
pub const IFLA_OPERSTATE: u16 = 16;
/// `IFLA_NUM_TX_QUEUES`.
pub const IFLA_NUM_TX_QUEUES: u16 = 31;
/// `IFLA_NUM_RX_QUEUES`.
pub const IFLA_NUM_RX_QUEUES: u16 = 32;

/// `NLA_F_NESTED`; masked off when reading types.
const NLA_TYPE_MASK: u16 = 0x3FFF;

/// Rounds up to the 4-byte netlink alignment.
pub const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Builds one netlink message: header, fixed family header, attributes, nests.
/// The sequence number is left 0; the transport stamps it when sending.
#[derive(Debug, Clone)]
pub struct MsgBuilder {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl MsgBuilder {
    /// Starts a message of `msg_type` with `flags`.
    pub fn new(msg_type: u16, flags: u16) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // len, patched in finish()
        buf.extend_from_slice(&msg_type.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // seq
        buf.extend_from_slice(&0u32.to_ne_bytes()); // pid
        MsgBuilder { buf, nests: Vec::new() }
    }

    /// Appends `struct tcmsg`.
    pub fn tcmsg(mut self, ifindex: u32, handle: u32, parent: u32, info: u32) -> Self {
        self.buf.extend_from_slice(&[0, 0, 0, 0]); // family AF_UNSPEC + pads
        self.buf.extend_from_slice(&ifindex.to_ne_bytes());
        self.buf.extend_from_slice(&handle.to_ne_bytes());
        self.buf.extend_from_slice(&parent.to_ne_bytes());
        self.buf.extend_from_slice(&info.to_ne_bytes());
        self
    }

    /// Appends `struct ifinfomsg` (family AF_UNSPEC).
    pub fn ifinfomsg(mut self, ifindex: u32) -> Self {
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
        self.buf.extend_from_slice(&ifindex.to_ne_bytes());
        self.buf.extend_from_slice(&[0u8; 8]);
        self
    }

    /// Appends an attribute with a raw payload, padded to 4 bytes.
    pub fn attr(mut self, ty: u16, payload: &[u8]) -> Self {
        self.put_attr(ty, payload);
        self
    }

    fn put_attr(&mut self, ty: u16, payload: &[u8]) {
        let len = 4 + payload.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    /// Appends a NUL-terminated string attribute.
    pub fn attr_str(self, ty: u16, s: &str) -> Self {
        let mut p = Vec::with_capacity(s.len() + 1);
        p.extend_from_slice(s.as_bytes());
        p.push(0);
        self.attr(ty, &p)
    }

    /// Appends a u32 attribute.
    pub fn attr_u32(self, ty: u16, v: u32) -> Self {
        self.attr(ty, &v.to_ne_bytes())
    }

    /// Appends a u64 attribute.
    pub fn attr_u64(self, ty: u16, v: u64) -> Self {
        self.attr(ty, &v.to_ne_bytes())
    }

    /// Opens a nested attribute (closed by [`MsgBuilder::end_nest`]). Like iproute2, the
    /// `NLA_F_NESTED` bit is not set.
    pub fn nest(mut self, ty: u16) -> Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self
    }

    /// Closes the innermost nest.
    pub fn end_nest(mut self) -> Self {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    /// Patches the length and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        while !self.nests.is_empty() {
            self = self.end_nest();
        }
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// A parsed `nlmsghdr` plus its payload.
#[derive(Debug, Clone, Copy)]
pub struct NlMsg<'a> {
    /// `nlmsg_type`.
    pub msg_type: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// Payload after the header.
    pub payload: &'a [u8],
}

/// Splits a datagram into netlink messages. Stops at the first malformed header.
pub fn messages(buf: &[u8]) -> impl Iterator<Item = NlMsg<'_>> {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        let hdr = buf.get(off..off + NLMSG_HDRLEN)?;
        let len = u32_at(hdr, 0)? as usize;
        if len < NLMSG_HDRLEN {
            return None;
        }
        let body = buf.get(off + NLMSG_HDRLEN..off + len)?;
        let msg = NlMsg {
            msg_type: u16_at(hdr, 4)?,
            flags: u16_at(hdr, 6)?,
            seq: u32_at(hdr, 8)?,
            payload: body,
        };
        off += align4(len);
        Some(msg)
    })
}

/// Iterates over attributes `(type, payload)` in `buf`.
pub fn attrs(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        let len = u16_at(buf, off)? as usize;
        let ty = u16_at(buf, off + 2)? & NLA_TYPE_MASK;
        if len < 4 {
            return None;
        }
        let payload = buf.get(off + 4..off + len)?;
        off += align4(len);
        Some((ty, payload))
    })
}

/// Finds the first attribute of type `ty`.
pub fn find_attr(buf: &[u8], ty: u16) -> Option<&[u8]> {
    attrs(buf).find(|(t, _)| *t == ty).map(|(_, p)| p)
}

/// Reads a native-endian u16 at `off`.
pub fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off + 2)?;
    Some(u16::from_ne_bytes([s[0], s[1]]))
}

/// Reads a native-endian u32 at `off`.
pub fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off + 4)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads a native-endian i32 at `off`.
pub fn i32_at(b: &[u8], off: usize) -> Option<i32> {
    u32_at(b, off).map(|v| v as i32)
}

/// Reads a native-endian u64 at `off`.
pub fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_ne_bytes(a))
}

/// A NUL-terminated string payload.
pub fn str_of(p: &[u8]) -> String {
    let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
    String::from_utf8_lossy(&p[..end]).into_owned()
}

/// Stamps `seq` into an encoded message.
pub fn set_seq(msg: &mut [u8], seq: u32) {
    if let Some(s) = msg.get_mut(8..12) {
        s.copy_from_slice(&seq.to_ne_bytes());
    }
}

/// The `nlmsg_type` of an encoded message.
pub fn msg_type_of(msg: &[u8]) -> u16 {
    u16_at(msg, 4).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_patches_lengths_and_pads_attributes() {
        let m = MsgBuilder::new(RTM_NEWQDISC, NLM_F_REQUEST)
            .tcmsg(3, 0x7FFF_0000, TC_H_ROOT, 0)
            .attr_str(TCA_KIND, "mq")
            .finish();
        // 16 header + 20 tcmsg + 8 (4 + "mq\0" padded)
        assert_eq!(m.len(), 44);
        assert_eq!(u32_at(&m, 0), Some(44));
        let msgs: Vec<_> = messages(&m).collect();
        assert_eq!(msgs.len(), 1);
        let kind = find_attr(&msgs[0].payload[TCMSG_LEN..], TCA_KIND).map(str_of);
        assert_eq!(kind.as_deref(), Some("mq"));
    }

    #[test]
    fn nests_get_their_length() {
        let m = MsgBuilder::new(RTM_NEWQDISC, 0)
            .tcmsg(1, 0, 0, 0)
            .nest(TCA_OPTIONS)
            .attr_u32(1, 7)
            .end_nest()
            .finish();
        let body = &m[NLMSG_HDRLEN + TCMSG_LEN..];
        let opts = find_attr(body, TCA_OPTIONS).unwrap_or_default();
        assert_eq!(opts.len(), 8);
        assert_eq!(find_attr(opts, 1).and_then(|p| u32_at(p, 0)), Some(7));
    }

    #[test]
    fn attribute_reader_stops_on_truncated_input() {
        let bytes = [8u8, 0, 1, 0, 1, 2];
        assert_eq!(attrs(&bytes).count(), 0);
        assert_eq!(messages(&bytes).count(), 0);
    }
}
