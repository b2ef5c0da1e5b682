//! `BPF_PROG_TEST_RUN` tests: no network needed, `lo` (ifindex 1) stands in for the interface.

use std::net::IpAddr;

use ipnet::IpNet;
use lqos_bpf::{
    Dataplane, InterfaceRole, IpMapping, LoadOptions, MappingBatch, TC_ACT_OK, TC_ACT_REDIRECT,
    XDP_PASS, XDP_REDIRECT, abi, frames,
};

use crate::kernel_test;

const LO: u32 = 1;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip literal")
}

fn net(s: &str) -> IpNet {
    s.parse().expect("net literal")
}

fn mapping(cpu: u32, major: u16, minor: u16) -> IpMapping {
    IpMapping {
        cpu,
        class_handle: (u32::from(major) << 16) | u32::from(minor),
        circuit_hash: 0xc1,
        device_hash: 0xd1,
    }
}

fn loaded(role: InterfaceRole) -> Dataplane {
    let mut dp = Dataplane::load(&LoadOptions::default()).expect("load data plane");
    dp.set_interface_index(LO, role).expect("configure lo");
    dp
}

fn upsert(dp: &mut Dataplane, entries: &[(&str, IpMapping)]) {
    let batch = MappingBatch {
        upsert: entries.iter().map(|(n, m)| (net(n), *m)).collect(),
        delete: vec![],
    };
    dp.ip_map().apply(&batch).expect("apply mappings");
}

fn meta_handle(meta: &[u8]) -> Option<u32> {
    if meta.len() != 8 {
        return None;
    }
    let magic = u32::from_ne_bytes(meta[0..4].try_into().ok()?);
    assert_eq!(magic, abi::META_MAGIC, "metadata magic");
    Some(u32::from_ne_bytes(meta[4..8].try_into().ok()?))
}

fn udp(src: &str, dst: &str, vlans: &[u16]) -> Vec<u8> {
    frames::udp_frame(ip(src), ip(dst), vlans, 18).expect("frame")
}

#[test]
fn ipv4_download_redirects_and_writes_class_to_metadata() {
    let Some(_k) = kernel_test() else { return };
    let mut dp = loaded(InterfaceRole::ToInternet);
    upsert(&mut dp, &[("198.18.0.0/24", mapping(1, 3, 0x10))]);
    // From the Internet: the subscriber is the destination.
    let r = dp.test_run_xdp(&udp("198.19.0.1", "198.18.0.5", &[]), LO, 1).expect("run");
    assert_eq!(r.action, XDP_REDIRECT);
    assert_eq!(meta_handle(&r.meta), Some(0x0003_0010));
    // The same address as source is not looked up on this interface.
    let r = dp.test_run_xdp(&udp("198.18.0.5", "198.19.0.1", &[]), LO, 1).expect("run");
    assert_eq!(r.action, XDP_PASS);
    assert!(r.meta.is_empty());
}

#[test]
fn ipv6_upload_uses_source_address() {
    let Some(_k) = kernel_test() else { return };
    let mut dp = loaded(InterfaceRole::ToNetwork);
    upsert(&mut dp, &[("2001:db8:1::/48", mapping(0, 2, 0x21))]);
    let r = dp.test_run_xdp(&udp("2001:db8:1::5", "2001:db8:ff::1", &[]), LO, 1).expect("run");
    assert_eq!(r.action, XDP_REDIRECT);
    assert_eq!(meta_handle(&r.meta), Some(0x0002_0021));
    let r = dp.test_run_xdp(&udp("2001:db8:ff::1", "2001:db8:1::5", &[]), LO, 1).expect("run");
    assert_eq!(r.action, XDP_PASS);
}

#[test]
fn one_and_two_vlan_tags_are_parsed() {
    let Some(_k) = kernel_test() else { return };
    let mut dp = loaded(InterfaceRole::ToInternet);
    upsert(
        &mut dp,
        &[("198.18.1.0/24", mapping(1, 1, 0x30)), ("2001:db8:2::/48", mapping(1, 1, 0x31))],
    );
    for vlans in [&[][..], &[7][..], &[7, 8][..]] {
        let r = dp.test_run_xdp(&udp("198.19.0.1", "198.18.1.9", vlans), LO, 1).expect("run");
        assert_eq!(r.action, XDP_REDIRECT, "ipv4 with {vlans:?}");
        assert_eq!(meta_handle(&r.meta), Some(0x0001_0030), "ipv4 with {vlans:?}");
        let r =
            dp.test_run_xdp(&udp("2001:db8:ff::1", "2001:db8:2::9", vlans), LO, 1).expect("run");
        assert_eq!(meta_handle(&r.meta), Some(0x0001_0031), "ipv6 with {vlans:?}");
    }
    // Three tags are beyond the parser: passed unshaped.
    let r = dp.test_run_xdp(&udp("198.19.0.1", "198.18.1.9", &[7, 8, 9]), LO, 1).expect("run");
    assert_eq!(r.action, XDP_PASS);
}

#[test]
fn longest_prefix_wins() {
    let Some(_k) = kernel_test() else { return };
    let mut dp = loaded(InterfaceRole::ToInternet);
    upsert(
        &mut dp,
        &[
            ("198.18.0.0/16", mapping(0, 1, 0x16)),
            ("198.18.5.0/24", mapping(0, 1, 0x24)),
            ("198.18.5.5/32", mapping(0, 1, 0x32)),
        ],
    );
    for (dst, minor) in [("198.18.9.9", 0x16), ("198.18.5.9", 0x24), ("198.18.5.5", 0x32)] {
        let r = dp.test_run_xdp(&udp("198.19.0.1", dst, &[]), LO, 1).expect("run");
        assert_eq!(meta_handle(&r.meta), Some(0x0001_0000 | minor), "{dst}");
    }
}

#[test]
fn unmapped_non_ip_and_unconfigured_pass_without_metadata() {
    let Some(_k) = kernel_test() else { return };
    let mut dp = loaded(InterfaceRole::ToInternet);
    upsert(&mut dp, &[("198.18.0.0/24", mapping(0, 1, 0x10))]);
    let r = dp.test_run_xdp(&udp("198.19.0.1", "198.18.7.7", &[]), LO, 1).expect("run");
    assert_eq!((r.action, r.meta.len()), (XDP_PASS, 0));
    let mut arp = udp("198.19.0.1", "198.18.0.5", &[]);
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let r = dp.test_run_xdp(&arp, LO, 1).expect("run");
    assert_eq!((r.action, r.meta.len()), (XDP_PASS, 0));
    // A mapping to a CPU that is not in the cpumap fails open.
    upsert(&mut dp, &[("198.18.9.0/24", mapping(200, 1, 0x11))]);
    let r = dp.test_run_xdp(&udp("198.19.0.1", "198.18.9.1", &[]), LO, 1).expect("run");
    assert_eq!(r.action, XDP_PASS);
    // No role for the interface: everything passes.
    let mut dp2 = Dataplane::load(&LoadOptions::default()).expect("load");
    upsert(&mut dp2, &[("198.18.0.0/24", mapping(0, 1, 0x10))]);
    let r = dp2.test_run_xdp(&udp("198.19.0.1", "198.18.0.5", &[]), LO, 1).expect("run");
    assert_eq!(r.action, XDP_PASS);
}

#[test]
fn counters_count_bytes_and_packets_per_direction() {
    let Some(_k) = kernel_test() else { return };
    let mut dp = loaded(InterfaceRole::ToInternet);
    upsert(&mut dp, &[("198.18.0.0/24", mapping(0, 1, 0x10))]);
    let down = udp("198.19.0.1", "198.18.0.5", &[]);
    dp.test_run_xdp(&down, LO, 3).expect("run");
    dp.set_interface_index(LO, InterfaceRole::ToNetwork).expect("role");
    let up = udp("198.18.0.5", "198.19.0.1", &[9]);
    dp.test_run_xdp(&up, LO, 2).expect("run");
    // Unmapped hosts are counted too (class 0).
    dp.test_run_xdp(&udp("198.18.200.1", "198.19.0.1", &[]), LO, 1).expect("run");
    let counters = dp.host_counters().read_all().expect("read counters");
    let c = counters.iter().find(|(a, _)| *a == ip("198.18.0.5")).expect("host present").1;
    assert_eq!(c.download_packets, 3);
    assert_eq!(c.download_bytes, 3 * down.len() as u64);
    assert_eq!(c.upload_packets, 2);
    assert_eq!(c.upload_bytes, 2 * up.len() as u64);
    assert_eq!(c.class_handle, 0x0001_0010);
    assert!(c.last_seen_ns > 0);
    let u = counters.iter().find(|(a, _)| *a == ip("198.18.200.1")).expect("unmapped host").1;
    assert_eq!((u.upload_packets, u.class_handle), (1, 0));
    dp.host_counters().remove(&[ip("198.18.0.5")]).expect("remove");
    assert_eq!(dp.host_counters().read_all().expect("read").len(), 1);
}

#[test]
fn mapping_changes_are_seen_immediately_despite_hot_cache() {
    let Some(_k) = kernel_test() else { return };
    let mut dp = loaded(InterfaceRole::ToInternet);
    let frame = udp("198.19.0.1", "198.18.3.3", &[]);
    // Negative result gets cached…
    assert_eq!(dp.test_run_xdp(&frame, LO, 1).expect("run").action, XDP_PASS);
    assert!(dp.ip_map().hot_cache_len().expect("cache") >= 1);
    // …and is invalidated by the batch's epoch bump.
    upsert(&mut dp, &[("198.18.3.0/24", mapping(0, 4, 0x40))]);
    let r = dp.test_run_xdp(&frame, LO, 1).expect("run");
    assert_eq!(meta_handle(&r.meta), Some(0x0004_0040));
    // Changing the class is seen on the next packet.
    upsert(&mut dp, &[("198.18.3.0/24", mapping(0, 4, 0x41))]);
    let r = dp.test_run_xdp(&frame, LO, 1).expect("run");
    assert_eq!(meta_handle(&r.meta), Some(0x0004_0041));
    // Deleting it too.
    let e0 = dp.ip_map().epoch().expect("epoch");
    dp.ip_map().delete_batch(&[net("198.18.3.0/24")]).expect("delete");
    assert_eq!(dp.ip_map().epoch().expect("epoch"), e0.wrapping_add(1));
    assert_eq!(dp.test_run_xdp(&frame, LO, 1).expect("run").action, XDP_PASS);
}

#[test]
fn ip_map_list_and_clear() {
    let Some(_k) = kernel_test() else { return };
    let mut dp = loaded(InterfaceRole::ToInternet);
    upsert(&mut dp, &[("198.18.0.0/24", mapping(0, 1, 1)), ("2001:db8::/32", mapping(1, 2, 2))]);
    let list = dp.ip_map().list().expect("list");
    assert_eq!(
        list,
        vec![(net("198.18.0.0/24"), mapping(0, 1, 1)), (net("2001:db8::/32"), mapping(1, 2, 2))]
    );
    assert_eq!(dp.ip_map().get(&net("2001:db8::/32")).expect("get"), Some(mapping(1, 2, 2)));
    dp.ip_map().clear().expect("clear");
    assert!(dp.ip_map().list().expect("list").is_empty());
}

#[test]
fn tc_egress_classifies_by_own_lookup_without_metadata() {
    let Some(_k) = kernel_test() else { return };
    let mut dp = loaded(InterfaceRole::ToNetwork);
    upsert(
        &mut dp,
        &[("198.18.0.0/24", mapping(0, 3, 0x10)), ("2001:db8:1::/48", mapping(0, 2, 0x11))],
    );
    // Egress of to_network carries downloads: subscriber = destination.
    let r = dp.test_run_tc_egress(&udp("198.19.0.1", "198.18.0.5", &[]), LO).expect("run");
    assert_eq!((r.action, r.priority), (TC_ACT_OK, 0x0003_0010));
    let r = dp.test_run_tc_egress(&udp("2001:db8:ff::1", "2001:db8:1::5", &[5]), LO).expect("run");
    assert_eq!(r.priority, 0x0002_0011);
    // Egress of to_internet carries uploads: subscriber = source.
    dp.set_interface_index(LO, InterfaceRole::ToInternet).expect("role");
    let r = dp.test_run_tc_egress(&udp("198.18.0.5", "198.19.0.1", &[]), LO).expect("run");
    assert_eq!(r.priority, 0x0003_0010);
    let r = dp.test_run_tc_egress(&udp("198.19.0.1", "198.18.0.5", &[]), LO).expect("run");
    assert_eq!(r.priority, 0, "unmapped leaves priority alone");
}

#[test]
fn stick_direction_from_vlan_offset_on_upload_and_tag_swapped() {
    let Some(_k) = kernel_test() else { return };
    let mut dp =
        loaded(InterfaceRole::Stick { internet_vlan: 100, network_vlan: 200, stick_offset: 2 });
    upsert(&mut dp, &[("198.18.0.0/24", mapping(0, 1, 0x10))]);
    // Download: arrives on the Internet VLAN, subscriber = dst, leaves on the network VLAN.
    let r = dp.test_run_xdp(&udp("198.19.0.1", "198.18.0.5", &[100]), LO, 1).expect("run");
    assert_eq!(meta_handle(&r.meta), Some(0x0001_0010));
    assert_eq!(frames::outer_vid(&r.frame), Some(200));
    // Upload: arrives on the network VLAN, subscriber = src, major and CPU + offset.
    let r = dp.test_run_xdp(&udp("198.18.0.5", "198.19.0.1", &[200]), LO, 1).expect("run");
    assert_eq!(meta_handle(&r.meta), Some(0x0003_0010));
    assert_eq!(frames::outer_vid(&r.frame), Some(100));
    // Other VLANs and untagged frames are left alone.
    let r = dp.test_run_xdp(&udp("198.19.0.1", "198.18.0.5", &[300]), LO, 1).expect("run");
    assert_eq!((r.action, frames::outer_vid(&r.frame)), (XDP_PASS, Some(300)));
    // Ingress hairpin sends both VLANs back out, nothing else.
    let h = |dp: &mut Dataplane, v: &[u16]| {
        dp.test_run_tc_stick_ingress(&udp("198.19.0.1", "198.18.0.5", v), LO).expect("run").action
    };
    assert_eq!(h(&mut dp, &[100]), TC_ACT_REDIRECT);
    assert_eq!(h(&mut dp, &[200]), TC_ACT_REDIRECT);
    assert_eq!(h(&mut dp, &[300]), TC_ACT_OK);
    assert_eq!(h(&mut dp, &[]), TC_ACT_OK);
    // Egress fallback: network VLAN = download (dst), Internet VLAN = upload (src + offset).
    let r = dp.test_run_tc_egress(&udp("198.19.0.1", "198.18.0.5", &[200]), LO).expect("run");
    assert_eq!(r.priority, 0x0001_0010);
    let r = dp.test_run_tc_egress(&udp("198.18.0.5", "198.19.0.1", &[100]), LO).expect("run");
    assert_eq!(r.priority, 0x0003_0010);
}

#[test]
fn cpumap_is_sized_from_possible_cpus() {
    let Some(_k) = kernel_test() else { return };
    let mut dp = Dataplane::load(&LoadOptions::default()).expect("load");
    let possible = std::fs::read_to_string("/sys/devices/system/cpu/possible").expect("possible");
    let last: u32 =
        possible.trim().rsplit(['-', ',']).next().and_then(|s| s.parse().ok()).expect("parse");
    assert_eq!(dp.cpu_map().len(), last + 1);
    assert!(!dp.cpus().is_empty());
}

#[test]
fn pinned_maps_survive_a_reload() {
    let Some(_k) = kernel_test() else { return };
    lqos_bpf::ensure_bpffs().expect("bpffs");
    let dir = std::path::PathBuf::from(format!("/sys/fs/bpf/lqos-test-{}", std::process::id()));
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = lqos_bpf::remove_pins(&self.0);
        }
    }
    let _c = Cleanup(dir.clone());
    let opts = LoadOptions { pin_dir: Some(dir.clone()), ..LoadOptions::default() };
    {
        let mut dp = Dataplane::load(&opts).expect("load pinned");
        upsert(&mut dp, &[("198.18.0.0/24", mapping(0, 1, 1))]);
    }
    let mut dp = Dataplane::load(&opts).expect("reload pinned");
    assert_eq!(dp.ip_map().list().expect("list"), vec![(net("198.18.0.0/24"), mapping(0, 1, 1))]);
    assert_eq!(dp.ip_map().epoch().expect("epoch"), 1);
}
