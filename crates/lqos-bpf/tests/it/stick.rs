//! On-a-stick over a real veth: tagged frames are sent and received with AF_PACKET sockets
//! (no 8021q module needed) on the peer `p0`; the shaper side `s0` runs XDP, the stick
//! ingress hairpin and the egress classifier, with VLAN offload on and off. Whatever the
//! offload, the kernel moves the outer tag to `skb->vlan_tci` before tc ingress, so this is
//! where the swap must happen: frames must come back on the *other* VLAN (the inner one for
//! QinQ), land in the mapped HTB class and be counted.
#![expect(unsafe_code, reason = "AF_PACKET with PACKET_AUXDATA needs raw libc socket calls")]

use std::{
    fs::File,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
    process::Command,
};

use lqos_bpf::{
    Dataplane, InterfaceRole, IpMapping, LoadOptions, MappingBatch,
    frames::{self, FrameSpec, L4},
};
use nix::sched::{CloneFlags, setns};

use crate::kernel_test;

const ETH_P_ALL: u16 = 0x0003;
const SOL_PACKET: libc::c_int = 263;
const PACKET_AUXDATA: libc::c_int = 8;
const PACKET_OUTGOING: u8 = 4;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;

/// `struct tpacket_auxdata`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct AuxData {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}

struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
}

impl PacketSocket {
    /// A raw socket bound to `ifname` inside namespace `ns` (created on a thread that
    /// entered it; the socket stays there).
    fn open(ns: &str, ifname: &str) -> PacketSocket {
        let path = format!("/run/netns/{ns}");
        let ifname = ifname.to_string();
        std::thread::spawn(move || {
            let f = File::open(&path).expect("open netns");
            setns(f.as_fd(), CloneFlags::CLONE_NEWNET).expect("enter netns");
            let ifindex = nix::net::if_::if_nametoindex(ifname.as_str()).expect("ifindex") as i32;
            // SAFETY: plain socket(2) call; the result is checked before wrapping it.
            let raw = unsafe {
                libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(ETH_P_ALL.to_be()))
            };
            assert!(raw >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
            // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let mut sll: libc::sockaddr_ll = unsafe_zeroed_sll();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = ETH_P_ALL.to_be();
            sll.sll_ifindex = ifindex;
            // SAFETY: `sll` is a valid sockaddr_ll and its size is passed.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
            let on: libc::c_int = 1;
            // SAFETY: option value is a valid c_int of the passed size.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    SOL_PACKET,
                    PACKET_AUXDATA,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "PACKET_AUXDATA: {}", std::io::Error::last_os_error());
            let tv = libc::timeval { tv_sec: 0, tv_usec: 200_000 };
            // SAFETY: option value is a valid timeval of the passed size.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&tv as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "SO_RCVTIMEO: {}", std::io::Error::last_os_error());
            PacketSocket { fd, ifindex }
        })
        .join()
        .expect("netns thread")
    }

    fn send(&self, frame: &[u8]) {
        let mut sll = unsafe_zeroed_sll();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: buffer and address are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(n, frame.len() as isize, "sendto: {}", std::io::Error::last_os_error());
    }

    /// Next incoming frame with its tags restored (the kernel reports a stripped outer tag
    /// in PACKET_AUXDATA), or `None` after the receive timeout.
    fn recv(&self) -> Option<Vec<u8>> {
        // Bounded: every loop iteration consumes one frame or returns.
        for _ in 0..1000 {
            let mut buf = [0u8; 2048];
            let mut cmsg = [0u64; 16];
            let mut from = unsafe_zeroed_sll();
            let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
            // SAFETY: msghdr is plain data; all-zero is a valid "empty" value we then fill.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cmsg.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&cmsg);
            // SAFETY: every pointer in `msg` refers to live buffers of the stated sizes.
            let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, 0) };
            if n < 0 {
                return None;
            }
            if from.sll_pkttype == PACKET_OUTGOING {
                continue;
            }
            let mut frame = buf[..n as usize].to_vec();
            // SAFETY: CMSG_* walk the control buffer the kernel filled, within msg_controllen.
            let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
            while !c.is_null() {
                // SAFETY: `c` is a valid cmsghdr inside the control buffer.
                let hdr = unsafe { &*c };
                if hdr.cmsg_level == SOL_PACKET && hdr.cmsg_type == PACKET_AUXDATA {
                    // SAFETY: the kernel wrote a tpacket_auxdata here; read it unaligned.
                    let aux: AuxData =
                        unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<AuxData>()) };
                    if aux.tp_status & TP_STATUS_VLAN_VALID != 0 {
                        let tpid = if aux.tp_vlan_tpid == 0 { 0x8100 } else { aux.tp_vlan_tpid };
                        let mut tag = tpid.to_be_bytes().to_vec();
                        tag.extend_from_slice(&aux.tp_vlan_tci.to_be_bytes());
                        frame.splice(12..12, tag);
                    }
                }
                // SAFETY: advancing within the same control buffer.
                c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
            }
            return Some(frame);
        }
        None
    }
}

fn unsafe_zeroed_sll() -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
    unsafe { std::mem::zeroed() }
}

fn sh(ns: &str, cmd: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", cmd])
        .output()
        .unwrap_or_else(|e| panic!("run in {ns}: {cmd}: {e}"));
    assert!(out.status.success(), "in {ns}: {cmd}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Guard {
    names: Vec<String>,
    home: Option<File>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(home) = &self.home {
            let _ = setns(home.as_fd(), CloneFlags::CLONE_NEWNET);
        }
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

fn class_packets(ns: &str, classid: &str) -> u64 {
    let text = sh(ns, "tc -s class show dev s0");
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.split_whitespace().nth(2) == Some(classid) {
            let sent = lines.next().unwrap_or_default();
            return sent.split_whitespace().nth(3).and_then(|w| w.parse().ok()).unwrap_or(0);
        }
    }
    panic!("class {classid} not found in: {text}");
}

fn frame(src: &str, dst: &str, vlans: &[u16], seq: u16) -> Vec<u8> {
    frames::build(&FrameSpec {
        src: src.parse().expect("ip"),
        dst: dst.parse().expect("ip"),
        vlans,
        pppoe: false,
        l4: L4::Udp { sport: 4000, dport: seq, payload: 32 },
    })
    .expect("frame")
}

/// `(source, destination)` UDP ports of one of our IPv4 test frames; `None` for anything
/// else (the kernel's own IPv6/ND chatter on the link).
fn udp_ports(f: &[u8]) -> Option<(u16, u16)> {
    let mut off = 12;
    while matches!(u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]), 0x8100 | 0x88a8) {
        off += 4;
    }
    if u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]) != 0x0800 || *f.get(off + 11)? != 17 {
        return None;
    }
    let l4 = off + 2 + 20;
    Some((
        u16::from_be_bytes([*f.get(l4)?, *f.get(l4 + 1)?]),
        u16::from_be_bytes([*f.get(l4 + 2)?, *f.get(l4 + 3)?]),
    ))
}

/// Next frame of ours (UDP from port 4000), skipping the link's other traffic.
fn recv_ours(sock: &PacketSocket) -> Option<Vec<u8>> {
    (0..50).find_map(|_| {
        let f = sock.recv()?;
        Some(f).filter(|f| udp_ports(f).is_some_and(|(sp, _)| sp == 4000))
    })
}

/// (src, dst, tags sent, tags expected back, direction index).
type Case = (&'static str, &'static str, &'static [u16], &'static [u16], usize);

#[test]
fn stick_swaps_vlan_with_and_without_offload_and_shapes_both_ways() {
    let Some(_k) = kernel_test() else { return };
    let pid = std::process::id();
    let (s, p) = (format!("lqv-s-{pid}"), format!("lqv-p-{pid}"));
    let mut guard = Guard { names: vec![], home: None };
    for n in [&s, &p] {
        let out = Command::new("ip").args(["netns", "add", n]).output().expect("ip netns add");
        assert!(out.status.success(), "netns add {n}");
        guard.names.push(n.clone());
    }
    let out = Command::new("ip")
        .args(["link", "add", "p0", "netns", &p, "type", "veth", "peer", "name", "s0", "netns", &s])
        .output()
        .expect("ip link add");
    assert!(out.status.success(), "veth: {}", String::from_utf8_lossy(&out.stderr));
    sh(
        &p,
        "sysctl -qw net.ipv6.conf.p0.disable_ipv6=1; ethtool -K p0 tx off >/dev/null; ip link set p0 up",
    );
    sh(
        &s,
        "sysctl -qw net.ipv6.conf.s0.disable_ipv6=1; \
         ethtool -K s0 tx off tso off gso off gro off >/dev/null; ip link set s0 up \
         && tc qdisc add dev s0 root handle 1: htb default 2 \
         && tc class add dev s0 parent 1: classid 1:1 htb rate 1gbit \
         && tc class add dev s0 parent 1:1 classid 1:2 htb rate 100mbit ceil 1gbit \
         && tc class add dev s0 parent 1:1 classid 1:10 htb rate 100mbit ceil 1gbit",
    );

    let mut dp = Dataplane::load(&LoadOptions::default()).expect("load");
    dp.ip_map()
        .apply(&MappingBatch {
            upsert: vec![(
                "198.18.0.5/32".parse().expect("net"),
                IpMapping { cpu: 0, class_handle: 0x0001_0010, slot: 5, ..Default::default() },
            )],
            delete: vec![],
        })
        .expect("map");
    let role = InterfaceRole::Stick { internet_vlan: 100, network_vlan: 200, stick_offset: 0 };
    guard.home = Some(File::open("/proc/thread-self/ns/net").expect("own netns"));
    let ns_file = File::open(format!("/run/netns/{s}")).expect("open shaper netns");
    setns(ns_file.as_fd(), CloneFlags::CLONE_NEWNET).expect("enter shaper netns");
    let mode = dp.attach_xdp("s0", role).expect("attach xdp");
    dp.attach_tc_egress("s0", role).expect("attach tc");
    if let Some(home) = &guard.home {
        setns(home.as_fd(), CloneFlags::CLONE_NEWNET).expect("back home");
    }
    println!("xdp mode {mode:?}");
    let sock = PacketSocket::open(&p, "p0");

    let mut expected_packets = [0u64; 2];
    let mut seq = 1000u16;
    for offload in ["off", "on"] {
        // Not every veth feature is switchable everywhere; report what we got.
        let _ = Command::new("ip")
            .args([
                "netns", "exec", &s, "ethtool", "-K", "s0", "rxvlan", offload, "txvlan", offload,
            ])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "exec", &s, "ethtool", "-K", "s0", "rx-vlan-stag-hw-parse", offload])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "exec", &s, "ethtool", "-K", "s0", "tx-vlan-stag-hw-insert", offload])
            .output();
        let feats = sh(&s, "ethtool -k s0 | grep -i vlan || true");
        println!("offload {offload}:\n{feats}");
        let cases: [Case; 4] = [
            ("198.19.0.1", "198.18.0.5", &[100], &[200], 0), // download
            ("198.18.0.5", "198.19.0.1", &[200], &[100], 1), // upload
            ("198.19.0.1", "198.18.0.5", &[7, 100], &[7, 200], 0), // QinQ: inner decides
            ("198.18.0.5", "198.19.0.1", &[7, 200], &[7, 100], 1),
        ];
        for (src, dst, tags_in, tags_out, dir) in cases {
            let before = class_packets(&s, "1:10");
            let n = 5;
            for _ in 0..n {
                seq += 1;
                sock.send(&frame(src, dst, tags_in, seq));
                let got = recv_ours(&sock).unwrap_or_else(|| {
                    panic!("offload {offload}: nothing came back for {tags_in:?} {src}->{dst}")
                });
                let vids: Vec<Option<u16>> =
                    (0..tags_out.len()).map(|i| frames::vid_at(&got, i)).collect();
                let want: Vec<Option<u16>> = tags_out.iter().map(|v| Some(*v)).collect();
                assert_eq!(vids, want, "offload {offload}: tags of {tags_in:?} {src}->{dst}");
                assert_eq!(udp_ports(&got).map(|p| p.1), Some(seq), "the same frame came back");
            }
            expected_packets[dir] += n;
            let after = class_packets(&s, "1:10");
            assert!(
                after - before >= n,
                "offload {offload}: {tags_in:?} {src}->{dst}: class 1:10 got {} of {n}",
                after - before
            );
        }
        // A VLAN that is not ours is not hairpinned.
        sock.send(&frame("198.19.0.1", "198.18.0.5", &[300], 1));
        assert!(recv_ours(&sock).is_none(), "VLAN 300 must not come back");
    }
    let mut c = Vec::new();
    dp.slot_counters().read(5..6, &mut c).expect("counters");
    assert_eq!(c[0].packets, expected_packets, "XDP counted every frame in its direction");
    dp.detach().expect("detach");
}
