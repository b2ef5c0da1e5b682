//! The kernel door: [`Transport`] and its netlink implementation. Everything above this module
//! is data; everything that touches a socket is here.

use std::io;

use lqos_config::LeafQdisc;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::sys::socket::{setsockopt, sockopt};

use crate::error::{KernelError, TcError};
use crate::ops::TcOp;
use crate::wire::*;

/// One request: the operation and its encoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What it does (for error reports and the `tc` rendering).
    pub op: TcOp,
    /// The netlink message (sequence number stamped by the transport).
    pub msg: Vec<u8>,
}

impl Request {
    /// Encodes `op`.
    pub fn new(op: TcOp) -> Self {
        let msg = op.encode();
        Request { op, msg }
    }
}

/// The kernel's answer to one request.
pub type Ack = Result<(), KernelError>;

/// A read-only question to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `RTM_GETLINK` by name (`ip link show dev NAME`).
    Link {
        /// Interface name.
        name: String,
    },
    /// Dump the qdiscs of an interface (`tc -s qdisc show dev X`).
    Qdiscs {
        /// Interface index.
        ifindex: u32,
    },
    /// Dump the classes of an interface (`tc -s class show dev X`).
    Classes {
        /// Interface index.
        ifindex: u32,
    },
    /// The one qdisc attached under class `parent`, with its counters: a single
    /// `RTM_GETQDISC` *get* (not a dump) addressed by interface and parent, so the kernel looks
    /// the class up instead of walking every qdisc of the interface (`tc -s qdisc show dev X
    /// parent P`, which dumps and filters in user space). Also finds the kernel's default
    /// A missing class answers ENOENT. The kernel's default pfifo of a class created without
    /// a leaf is invisible and not answered (the ACK comes alone): read the class instead.
    LeafOf {
        /// Interface index.
        ifindex: u32,
        /// Parent class handle (`major << 16 | minor`).
        parent: u32,
    },
    /// One class with its counters: a single `RTM_GETTCLASS` get (`tc -s class show dev X
    /// classid C` dumps every class instead). A missing class answers ENOENT.
    ClassOf {
        /// Interface index.
        ifindex: u32,
        /// Class handle (`major << 16 | minor`).
        handle: u32,
    },
}

/// The one door to the kernel. The real one is [`NetlinkTransport`]; tests use
/// `fake::FakeTransport`; benchmarks compare with `batch::TcBatchTransport`.
pub trait Transport {
    /// Sends every request in order, many per `sendmsg`, and returns one [`Ack`] per request in
    /// the same order. The kernel goes on after a failed request, so later ones may fail too.
    fn send_batch(&mut self, batch: &[Request]) -> Result<Vec<Ack>, TcError>;
    /// Runs a query and hands every reply message to `sink`.
    fn query(&mut self, q: &Query, sink: &mut dyn FnMut(&NlMsg<'_>)) -> Result<(), TcError>;
    /// Whether this kernel can create `leaf`, checked without touching any real interface.
    fn probe_qdisc(&mut self, leaf: &LeafQdisc) -> Result<bool, TcError>;
}

/// Bytes of requests per `sendmsg` (the socket's send buffer is raised to fit).
pub const DEFAULT_CHUNK_BYTES: usize = 192 * 1024;
const SEND_BUF: usize = 4 << 20;
const RECV_BUF: usize = 64 << 20;
const RECV_CHUNK: usize = 1 << 20;

/// A `NETLINK_ROUTE` socket, bound in the network namespace of the thread that opened it.
#[derive(Debug)]
pub struct NetlinkTransport {
    sock: Socket,
    seq: u32,
    chunk_bytes: usize,
    rx: Vec<u8>,
}

impl NetlinkTransport {
    /// Opens and binds the socket, turns on extended acks and capped acks, and raises the
    /// buffers (forced when allowed) so a whole chunk of ACKs fits.
    pub fn open() -> Result<Self, TcError> {
        let sock_err = |source| TcError::Socket { source };
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(sock_err)?;
        sock.bind(&SocketAddr::new(0, 0)).map_err(sock_err)?;
        sock.set_ext_ack(true).map_err(sock_err)?;
        sock.set_cap_ack(true).map_err(sock_err)?;
        if setsockopt(&sock, sockopt::RcvBufForce, &RECV_BUF).is_err() {
            let _ = setsockopt(&sock, sockopt::RcvBuf, &RECV_BUF);
        }
        if setsockopt(&sock, sockopt::SndBufForce, &SEND_BUF).is_err() {
            let _ = setsockopt(&sock, sockopt::SndBuf, &SEND_BUF);
        }
        Ok(NetlinkTransport { sock, seq: 1, chunk_bytes: DEFAULT_CHUNK_BYTES, rx: Vec::new() })
    }

    /// Changes how many bytes of requests go into one `sendmsg` (benchmarks; 1 = one message
    /// per `sendmsg`, like `tc`).
    pub fn set_chunk_bytes(&mut self, bytes: usize) {
        self.chunk_bytes = bytes.max(1);
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn recv(&mut self) -> Result<(), TcError> {
        self.rx.clear();
        if self.rx.capacity() < RECV_CHUNK {
            self.rx.reserve(RECV_CHUNK);
        }
        self.sock
            .recv(&mut self.rx, 0)
            .map_err(|source| TcError::Io { what: "receive", source })?;
        Ok(())
    }

    fn send_chunk(&mut self, chunk: &[Request], out: &mut Vec<Ack>) -> Result<(), TcError> {
        let first = self.seq.wrapping_add(1);
        let mut buf = Vec::with_capacity(self.chunk_bytes + 4096);
        for r in chunk {
            let seq = self.next_seq();
            let start = buf.len();
            buf.extend_from_slice(&r.msg);
            set_seq(&mut buf[start..], seq);
            buf.resize(align4(buf.len()), 0);
        }
        self.sock.send(&buf, 0).map_err(|source| TcError::Io { what: "send", source })?;
        let base = out.len();
        out.extend(chunk.iter().map(|_| Err(KernelError { errno: libc_eio(), extack: None })));
        let mut pending = chunk.len();
        // Every request carries NLM_F_ACK, so exactly one NLMSG_ERROR comes back per request.
        while pending > 0 {
            self.recv()?;
            for m in messages(&self.rx) {
                if m.msg_type != NLMSG_ERROR {
                    continue;
                }
                let Some((orig_seq, ack)) = parse_ack(&m) else { continue };
                let idx = orig_seq.wrapping_sub(first) as usize;
                if idx < chunk.len()
                    && let Some(slot) = out.get_mut(base + idx)
                {
                    *slot = ack;
                    pending -= 1;
                }
            }
        }
        Ok(())
    }

    fn query_msg(q: &Query) -> Vec<u8> {
        match q {
            Query::Link { name } => MsgBuilder::new(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK)
                .ifinfomsg(0)
                .attr_str(IFLA_IFNAME, name)
                .finish(),
            Query::Qdiscs { ifindex } => MsgBuilder::new(RTM_GETQDISC, NLM_F_REQUEST | NLM_F_DUMP)
                .tcmsg(*ifindex, 0, 0, 0)
                .finish(),
            Query::Classes { ifindex } => {
                MsgBuilder::new(RTM_GETTCLASS, NLM_F_REQUEST | NLM_F_DUMP)
                    .tcmsg(*ifindex, 0, 0, 0)
                    .finish()
            }
            // A get, answered by one RTM_NEWQDISC and then the ACK that ends the query. The
            // kernel sends a get's answer to the asker only with NLM_F_ECHO (otherwise to the
            // RTNLGRP_TC listeners alone).
            Query::LeafOf { ifindex, parent } => {
                MsgBuilder::new(RTM_GETQDISC, NLM_F_REQUEST | NLM_F_ACK | NLM_F_ECHO)
                    .tcmsg(*ifindex, 0, *parent, 0)
                    .finish()
            }
            Query::ClassOf { ifindex, handle } => {
                MsgBuilder::new(RTM_GETTCLASS, NLM_F_REQUEST | NLM_F_ACK | NLM_F_ECHO)
                    .tcmsg(*ifindex, *handle, 0, 0)
                    .finish()
            }
        }
    }
}

fn libc_eio() -> i32 {
    5
}

/// Parses an `NLMSG_ERROR`: the original sequence number and the outcome.
pub fn parse_ack(m: &NlMsg<'_>) -> Option<(u32, Ack)> {
    let err = i32_at(m.payload, 0)?;
    let orig_len = u32_at(m.payload, 4)? as usize;
    let orig_seq = u32_at(m.payload, 12)?;
    if err == 0 {
        return Some((orig_seq, Ok(())));
    }
    let tlv_off = if m.flags & NLM_F_CAPPED != 0 { 4 + NLMSG_HDRLEN } else { 4 + align4(orig_len) };
    let extack = if m.flags & NLM_F_ACK_TLVS != 0 {
        m.payload.get(tlv_off..).and_then(|t| find_attr(t, NLMSGERR_ATTR_MSG)).map(str_of)
    } else {
        None
    };
    Some((orig_seq, Err(KernelError { errno: err.saturating_neg(), extack })))
}

impl Transport for NetlinkTransport {
    fn send_batch(&mut self, batch: &[Request]) -> Result<Vec<Ack>, TcError> {
        let mut out = Vec::with_capacity(batch.len());
        let mut start = 0;
        while start < batch.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < batch.len()
                && (end == start || bytes + batch[end].msg.len() <= self.chunk_bytes)
            {
                bytes += align4(batch[end].msg.len());
                end += 1;
            }
            self.send_chunk(&batch[start..end], &mut out)?;
            start = end;
        }
        Ok(out)
    }

    fn query(&mut self, q: &Query, sink: &mut dyn FnMut(&NlMsg<'_>)) -> Result<(), TcError> {
        let seq = self.next_seq();
        let mut msg = Self::query_msg(q);
        set_seq(&mut msg, seq);
        self.sock.send(&msg, 0).map_err(|source| TcError::Io { what: "send", source })?;
        loop {
            self.recv()?;
            let mut done = false;
            let mut failure = None;
            for m in messages(&self.rx) {
                if m.seq != seq {
                    continue;
                }
                match m.msg_type {
                    NLMSG_DONE => {
                        let err = i32_at(m.payload, 0).unwrap_or(0);
                        if err < 0 {
                            failure = Some(KernelError { errno: -err, extack: None });
                        }
                        done = true;
                    }
                    NLMSG_ERROR => {
                        if let Some((_, Err(e))) = parse_ack(&m) {
                            failure = Some(e);
                        }
                        done = true;
                    }
                    _ => sink(&m),
                }
            }
            if let Some(e) = failure {
                return Err(TcError::Kernel {
                    op: format!("{q:?}"),
                    owner: None,
                    errno: e.errno,
                    source: e.io(),
                    extack: e.extack,
                    more_failures: 0,
                });
            }
            if done {
                return Ok(());
            }
        }
    }

    fn probe_qdisc(&mut self, leaf: &LeafQdisc) -> Result<bool, TcError> {
        probe_in_scratch_netns(leaf)
    }
}

/// The message that adds `leaf` as the root qdisc of `lo` (ifindex 1) — used only in a scratch
/// namespace.
pub fn probe_message(leaf: &LeafQdisc) -> Vec<u8> {
    let op = TcOp::new(
        crate::ops::Verb::Add,
        "lo",
        1,
        crate::ops::TcObject::Leaf(lqos_plan::LeafPlan {
            parent: lqos_plan::ClassId::from_u32(TC_H_ROOT),
            handle: 1,
            qdisc: leaf.clone(),
            owner: lqos_plan::Owner::QueueDefault(0),
        }),
    );
    op.encode()
}

/// Creates a throw-away network namespace on a helper thread (`unshare(CLONE_NEWNET)`), adds
/// `leaf` as the root qdisc of its `lo`, and reports whether the kernel knows the kind. The
/// namespace disappears with the thread. Nothing outside it is touched.
pub fn probe_in_scratch_netns(leaf: &LeafQdisc) -> Result<bool, TcError> {
    let kind = leaf.kind().to_string();
    let leaf = leaf.clone();
    let probe_err = |source: io::Error| TcError::Probe { kind: kind.clone(), source };
    let handle = std::thread::Builder::new()
        .name("lqos-tc-probe".into())
        .spawn(move || -> Result<Ack, TcError> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                TcError::Probe { kind: leaf.kind().to_string(), source: io::Error::from(e) }
            })?;
            let mut t = NetlinkTransport::open()?;
            let op = TcOp::new(crate::ops::Verb::Add, "lo", 1, crate::ops::TcObject::RootMq);
            let req = Request { op, msg: probe_message(&leaf) };
            let acks = t.send_batch(std::slice::from_ref(&req))?;
            Ok(acks.into_iter().next().unwrap_or(Ok(())))
        })
        .map_err(probe_err)?;
    let ack = handle.join().map_err(|_| probe_err(io::Error::other("probe thread panicked")))??;
    Ok(match ack {
        Ok(()) => true,
        Err(e) => !is_unknown_kind(&e),
    })
}

/// True for the kernel's "Specified qdisc kind is unknown" (ENOENT on create).
pub fn is_unknown_kind(e: &KernelError) -> bool {
    e.errno == 2 && e.extack.as_deref().is_none_or(|m| m.contains("kind is unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_with_extended_message_is_parsed() {
        // NLMSG_ERROR, capped + TLVs: error -2, original header (seq 7), MSG attr.
        let mut payload = Vec::new();
        payload.extend_from_slice(&(-2i32).to_ne_bytes());
        payload.extend_from_slice(&40u32.to_ne_bytes()); // orig len
        payload.extend_from_slice(&36u16.to_ne_bytes());
        payload.extend_from_slice(&0u16.to_ne_bytes());
        payload.extend_from_slice(&7u32.to_ne_bytes()); // orig seq
        payload.extend_from_slice(&0u32.to_ne_bytes());
        let text = b"Specified qdisc kind is unknown\0";
        payload.extend_from_slice(&((4 + text.len()) as u16).to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(text);
        let m = NlMsg {
            msg_type: NLMSG_ERROR,
            flags: NLM_F_CAPPED | NLM_F_ACK_TLVS,
            seq: 7,
            payload: &payload,
        };
        let (seq, ack) = parse_ack(&m).expect("parse");
        assert_eq!(seq, 7);
        let e = ack.expect_err("error ack");
        assert_eq!(e.errno, 2);
        assert!(is_unknown_kind(&e));
    }

    #[test]
    fn probe_message_targets_root_of_lo() {
        let m = probe_message(&LeafQdisc::Pfifo { limit: None });
        assert_eq!(u32_at(&m, NLMSG_HDRLEN + 4), Some(1)); // ifindex
        assert_eq!(u32_at(&m, NLMSG_HDRLEN + 12), Some(TC_H_ROOT)); // parent
    }
}
