//! The exact-prefix hash in front of the LPM trie, against the real kernel
//! (`BPF_PROG_TEST_RUN` on `lo`): random overlapping prefix sets compared with a longest-prefix
//! match computed here, more prefix lengths than the program lists (trie fallback), updates
//! racing with classification, and scans of unmapped addresses.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::atomic::{AtomicBool, Ordering},
};

use ipnet::IpNet;
use lqos_bpf::{
    Dataplane, DataplaneSettings, InterfaceRole, IpMapping, LoadOptions, MappingBatch, XDP_PASS,
    XDP_REDIRECT,
    abi::{self, DOWN},
    frames,
};

use crate::kernel_test;

const LO: u32 = 1;

/// splitmix64: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// Class handle (major 1, minor = id), slot = id, CPU from the online ones: every field of
/// the triple names the id.
fn mapping(id: u16, cpus: &[u32]) -> IpMapping {
    IpMapping {
        cpu: cpus[usize::from(id) % cpus.len()],
        class_handle: (1 << 16) | u32::from(id),
        slot: u32::from(id),
        circuit_hash: u64::from(id),
        device_hash: 0,
    }
}

fn loaded(opts: &LoadOptions) -> Dataplane {
    let mut dp = Dataplane::load(opts).expect("load data plane");
    dp.set_interface_index(LO, InterfaceRole::ToInternet).expect("configure lo");
    dp
}

/// Longest-prefix match over the reference set.
fn lpm(set: &HashMap<IpNet, IpMapping>, addr: IpAddr) -> Option<IpMapping> {
    set.iter()
        .filter(|(n, _)| n.contains(&addr))
        .max_by_key(|(n, _)| n.prefix_len())
        .map(|(_, m)| *m)
}

fn frame_to(addr: IpAddr) -> Vec<u8> {
    let src: IpAddr = match addr {
        IpAddr::V4(_) => "203.0.113.1".parse().expect("ip"),
        IpAddr::V6(_) => "2001:db8:ffff::1".parse().expect("ip"),
    };
    frames::udp_frame(src, addr, &[], 18).expect("frame")
}

fn meta_handle(meta: &[u8]) -> Option<u32> {
    if meta.len() != 8 {
        return None;
    }
    assert_eq!(u32::from_ne_bytes(meta[0..4].try_into().ok()?), abi::META_MAGIC);
    Some(u32::from_ne_bytes(meta[4..8].try_into().ok()?))
}

/// The class the program gives `addr` (None = unmapped), checking the action agrees.
fn classify(dp: &Dataplane, addr: IpAddr) -> Option<u32> {
    let r = dp.test_run_xdp(&frame_to(addr), LO, 1).expect("run");
    let h = meta_handle(&r.meta);
    match h {
        Some(_) => assert_eq!(r.action, XDP_REDIRECT, "{addr}: mapped but not redirected"),
        None => assert_eq!(r.action, XDP_PASS, "{addr}: unmapped but not passed"),
    }
    h
}

fn v4(base: u32, off: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(base.wrapping_add(off)))
}

fn v6(base: u128, off: u128) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(base.wrapping_add(off)))
}

/// A random prefix of one of `lens` (prefix lengths of its family) inside the base block.
fn random_net(rng: &mut Rng, v6_family: bool, lens: &[u8]) -> IpNet {
    let len = rng.pick(lens);
    if v6_family {
        // Inside 2001:db8::/32, bits 32..72 random (beyond are host bits for every length
        // used up to 64, random too for the longer ones).
        let base: u128 = 0x2001_0db8_u128 << 96;
        let addr =
            base | (u128::from(rng.next() as u32 & 0xff) << 88) | (u128::from(rng.next()) << 8);
        IpNet::new(IpAddr::V6(Ipv6Addr::from(addr)), len).expect("net").trunc()
    } else {
        // Inside 198.18.0.0/16, mostly the first /20 so that prefixes overlap.
        let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
        let addr = base | (rng.next() as u32 & 0x0fff);
        IpNet::new(IpAddr::V4(Ipv4Addr::from(addr)), len).expect("net").trunc()
    }
}

/// Addresses to classify: one inside each prefix (random host part) and as many random ones
/// in the base blocks (mostly unmapped).
fn probes(rng: &mut Rng, set: &HashMap<IpNet, IpMapping>) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for n in set.keys() {
        let host_bits = u32::from(n.max_prefix_len() - n.prefix_len());
        out.push(match n {
            IpNet::V4(n) => {
                let r = if host_bits == 0 { 0 } else { rng.next() as u32 >> (32 - host_bits) };
                IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) | r))
            }
            IpNet::V6(n) => {
                let r = if host_bits == 0 {
                    0
                } else {
                    ((u128::from(rng.next()) << 64) | u128::from(rng.next())) >> (128 - host_bits)
                };
                IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | r))
            }
        });
    }
    for _ in 0..set.len() {
        out.push(v4(u32::from(Ipv4Addr::new(198, 18, 0, 0)), rng.next() as u32 & 0x1fff));
        out.push(v6(0x2001_0db8_u128 << 96, (u128::from(rng.next() & 0x1ff)) << 88));
    }
    out
}

fn check_all(dp: &Dataplane, set: &HashMap<IpNet, IpMapping>, addrs: &[IpAddr], what: &str) {
    for a in addrs {
        let want = lpm(set, *a).map(|m| m.class_handle);
        assert_eq!(classify(dp, *a), want, "{what}: {a}");
    }
}

fn one_round(seed: u64, v4_lens: &[u8], v6_lens: &[u8], expect_trie: bool) {
    let mut rng = Rng(seed);
    let mut dp = loaded(&LoadOptions::default());
    let cpus = dp.cpus().to_vec();
    let mut next_id: u16 = 1;
    let mut set: HashMap<IpNet, IpMapping> = HashMap::new();
    let mut batch = MappingBatch::default();
    for _ in 0..160 {
        let v6 = rng.below(2) == 1;
        let n = random_net(&mut rng, v6, if v6 { v6_lens } else { v4_lens });
        let m = mapping(next_id, &cpus);
        next_id += 1;
        set.insert(n, m);
        batch.upsert.push((n, m));
    }
    dp.ip_map().apply(&batch).expect("insert");
    let before = dp.stats().expect("stats");
    let addrs = probes(&mut rng, &set);
    check_all(&dp, &set, &addrs, &format!("seed {seed} after insert"));
    let tries = dp.stats().expect("stats").trie_lookups - before.trie_lookups;
    let v4_list = dp.ip_map().prefix_lengths(true);
    if expect_trie {
        assert!(tries > 0, "seed {seed}: more lengths than listed must reach the trie");
        assert!(!v4_list.1, "seed {seed}: v4 list {v4_list:?} cannot be complete");
    } else {
        assert_eq!(tries, 0, "seed {seed}: every miss answered by the hash ({v4_list:?})");
    }

    // Deletes, replacements and new prefixes in one batch.
    let mut batch = MappingBatch::default();
    let nets: Vec<IpNet> = set.keys().copied().collect();
    for n in nets {
        match rng.below(3) {
            0 => {
                set.remove(&n);
                batch.delete.push(n);
            }
            1 => {
                let m = mapping(next_id, &cpus);
                next_id += 1;
                set.insert(n, m);
                batch.upsert.push((n, m));
            }
            _ => {}
        }
    }
    for _ in 0..40 {
        let v6 = rng.below(2) == 1;
        let n = random_net(&mut rng, v6, if v6 { v6_lens } else { v4_lens });
        if batch.delete.contains(&n) {
            continue;
        }
        let m = mapping(next_id, &cpus);
        next_id += 1;
        set.insert(n, m);
        batch.upsert.push((n, m));
    }
    dp.ip_map().apply(&batch).expect("change");
    let mut addrs = probes(&mut rng, &set);
    // Also the addresses of deleted prefixes (now covered by a shorter one or unmapped).
    addrs.extend(batch.delete.iter().map(|n| n.network()));
    check_all(&dp, &set, &addrs, &format!("seed {seed} after change"));
    assert_eq!(dp.ip_map().prefix_hash_info().prefixes, set.len());

    // Clear: everything unmapped.
    dp.ip_map().clear().expect("clear");
    check_all(&dp, &HashMap::new(), &addrs[..40.min(addrs.len())], "after clear");
}

#[test]
fn random_overlapping_prefixes_classify_like_a_longest_prefix_match() {
    let Some(_k) = kernel_test() else { return };
    // Up to 8 lengths per family: the hash answers every miss (also "unmapped").
    for seed in 1..=3 {
        one_round(
            seed,
            &[16, 20, 22, 24, 28, 30, 31, 32],
            &[32, 40, 48, 56, 60, 64, 96, 128],
            false,
        );
    }
}

#[test]
fn more_prefix_lengths_than_listed_fall_back_to_the_trie_and_stay_exact() {
    let Some(_k) = kernel_test() else { return };
    let many: Vec<u8> = (12..=32).collect(); // 21 IPv4 lengths
    for seed in 11..=13 {
        one_round(seed, &many, &[36, 44, 48, 52, 56, 60, 62, 64, 80, 96, 112, 128], true);
    }
}

#[test]
fn a_half_full_small_table_moves_entries_and_stays_exact() {
    let Some(_k) = kernel_test() else { return };
    // 64 buckets × 2 ways for 64 prefixes: placing them needs moves along paths.
    let mut dp = loaded(&LoadOptions { max_mappings: 64, ..LoadOptions::default() });
    let cpus = dp.cpus().to_vec();
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    let mut rng = Rng(5);
    let mut set: HashMap<IpNet, IpMapping> = HashMap::new();
    let mut id = 1u16;
    for round in 0..4 {
        let mut batch = MappingBatch::default();
        // Delete some, then fill back up to 64 with new /32s.
        let nets: Vec<IpNet> = set.keys().copied().collect();
        for n in nets.into_iter().filter(|_| rng.below(3) == 0) {
            set.remove(&n);
            batch.delete.push(n);
        }
        while set.len() < 64 {
            let n = IpNet::new(v4(base, rng.below(4096) as u32), 32).expect("net");
            if set.contains_key(&n) || batch.delete.contains(&n) {
                continue;
            }
            set.insert(n, mapping(id, &cpus));
            batch.upsert.push((n, mapping(id, &cpus)));
            id += 1;
        }
        // Deletes first: the trie holds 64 at most (a batch upserts before it deletes).
        let deletes = std::mem::take(&mut batch.delete);
        dp.ip_map().apply(&MappingBatch { upsert: vec![], delete: deletes }).expect("delete");
        dp.ip_map().apply(&batch).expect("apply");
        let info = dp.ip_map().prefix_hash_info();
        assert_eq!(info.prefixes, 64);
        let before = dp.stats().expect("stats").trie_lookups;
        let mut addrs: Vec<IpAddr> = set.keys().map(|n| n.addr()).collect();
        addrs.extend((0..64).map(|_| v4(base, rng.below(4096) as u32)));
        check_all(&dp, &set, &addrs, &format!("round {round}"));
        if info.unplaced == 0 {
            assert_eq!(dp.stats().expect("stats").trie_lookups, before, "round {round}");
        }
        println!("round {round}: {} without a way, {} moves so far", info.unplaced, info.moves);
    }
    assert!(dp.ip_map().prefix_hash_info().moves > 0, "the table was meant to need moves");
}

#[test]
fn lengths_list_is_the_longest_per_family_and_reports_overflow_and_completeness() {
    let Some(_k) = kernel_test() else { return };
    let mut dp = loaded(&LoadOptions::default());
    let cpus = dp.cpus().to_vec();
    let nets = ["198.18.0.0/16", "198.18.1.0/24", "198.18.1.7/32", "2001:db8::/32", "::/0"];
    let batch = MappingBatch {
        upsert: nets
            .iter()
            .enumerate()
            .map(|(i, n)| (n.parse().expect("net"), mapping(i as u16 + 1, &cpus)))
            .collect(),
        delete: vec![],
    };
    dp.ip_map().apply(&batch).expect("apply");
    // ::/0 covers IPv4 addresses too (their twelve 0xFF bytes are inside it).
    assert_eq!(dp.ip_map().prefix_lengths(true), (vec![128, 120, 112, 0], true, 0));
    assert_eq!(dp.ip_map().prefix_lengths(false), (vec![32, 0], true, 0));
    let any: IpAddr = "192.0.2.1".parse().expect("ip");
    assert_eq!(classify(&dp, any), Some((1 << 16) | 5), "::/0 is the default for IPv4 too");
    // A CPU that does not fit an entry keeps the prefix in the trie only: flagged overflow.
    let big = IpMapping { cpu: 70_000, ..mapping(9, &cpus) };
    let one: IpNet = "198.18.2.0/24".parse().expect("net");
    dp.ip_map().apply(&MappingBatch { upsert: vec![(one, big)], delete: vec![] }).expect("apply");
    let (lens, complete, overflow) = dp.ip_map().prefix_lengths(true);
    assert_eq!((lens, complete, overflow), (vec![128, 120, 112, 0], true, 0b10));
    assert_eq!(dp.ip_map().prefix_hash_info().unplaced, 1);
    let before = dp.stats().expect("stats").trie_lookups;
    let r = dp.test_run_xdp(&frame_to("198.18.2.9".parse().expect("ip")), LO, 1).expect("run");
    assert_eq!(meta_handle(&r.meta), Some((1 << 16) | 9), "answered by the trie");
    assert_eq!(dp.stats().expect("stats").trie_lookups, before + 1);
    // Deleting it clears the flag.
    dp.ip_map().apply(&MappingBatch { upsert: vec![], delete: vec![one] }).expect("apply");
    assert_eq!(dp.ip_map().prefix_lengths(true).2, 0);
}

#[test]
fn a_scan_of_unmapped_addresses_goes_to_slot_zero_and_the_unknown_table_without_the_trie() {
    let Some(_k) = kernel_test() else { return };
    let mut dp = loaded(&LoadOptions::default());
    dp.set_settings(&DataplaneSettings { unknown_sample_every: 1, ..Default::default() })
        .expect("settings");
    let cpus = dp.cpus().to_vec();
    // 64 subscribers (/32) and a /24 and a /56, the rest of 198.18.0.0/16 is unassigned.
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    let mut upsert: Vec<(IpNet, IpMapping)> = (0..64u16)
        .map(|i| (IpNet::new(v4(base, u32::from(i) * 7), 32).expect("net"), mapping(i + 1, &cpus)))
        .collect();
    upsert.push(("198.18.200.0/24".parse().expect("net"), mapping(100, &cpus)));
    upsert.push(("2001:db8:0:100::/56".parse().expect("net"), mapping(101, &cpus)));
    let set: HashMap<IpNet, IpMapping> = upsert.iter().copied().collect();
    dp.ip_map().apply(&MappingBatch { upsert, delete: vec![] }).expect("apply");
    let before = dp.stats().expect("stats");
    let mut scanned = 0u64;
    let mut rng = Rng(7);
    for i in 0..1500u32 {
        let a = if i % 3 == 0 {
            v6(0x2001_0db8_u128 << 96, u128::from(rng.next()) << 16)
        } else {
            v4(base, 1024 + rng.below(40_000) as u32)
        };
        if lpm(&set, a).is_some() {
            continue;
        }
        assert_eq!(classify(&dp, a), None, "{a}");
        scanned += 1;
    }
    let after = dp.stats().expect("stats");
    assert_eq!(after.trie_lookups, before.trie_lookups, "the hash answers 'unmapped' alone");
    assert!(after.cache_misses - before.cache_misses >= scanned * 9 / 10);
    let mut c = Vec::new();
    dp.slot_counters().read(0..1, &mut c).expect("slot 0");
    assert_eq!(c[0].packets[DOWN], scanned, "every scanned packet counted in slot 0");
    let unknown = dp.unknown().read_all().expect("unknown");
    let recorded: u64 = unknown.iter().map(|u| u.packets[DOWN]).sum();
    assert_eq!(recorded, scanned);
    assert!(unknown.iter().all(|u| lpm(&set, u.addr).is_none()));
}

#[test]
fn the_prefix_hash_is_rebuilt_from_a_pinned_trie_on_load() {
    let Some(_k) = kernel_test() else { return };
    lqos_bpf::ensure_bpffs().expect("bpffs");
    let dir = std::path::PathBuf::from(format!("/sys/fs/bpf/lqos-test-pfx-{}", std::process::id()));
    let _ = lqos_bpf::remove_pins(&dir);
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = lqos_bpf::remove_pins(&self.0);
        }
    }
    let _c = Cleanup(dir.clone());
    let opts = LoadOptions { pin_dir: Some(dir.clone()), ..LoadOptions::default() };
    let net: IpNet = "198.18.5.0/24".parse().expect("net");
    {
        let mut dp = loaded(&opts);
        let cpus = dp.cpus().to_vec();
        dp.ip_map()
            .apply(&MappingBatch { upsert: vec![(net, mapping(5, &cpus))], delete: vec![] })
            .expect("apply");
    }
    let mut dp = loaded(&opts);
    assert_eq!(dp.ip_map().prefix_hash_info().prefixes, 1);
    assert_eq!(dp.ip_map().prefix_lengths(true), (vec![120], true, 0));
    let before = dp.stats().expect("stats").trie_lookups;
    assert_eq!(classify(&dp, "198.18.5.1".parse().expect("ip")), Some((1 << 16) | 5));
    assert_eq!(classify(&dp, "198.18.6.1".parse().expect("ip")), None);
    assert_eq!(dp.stats().expect("stats").trie_lookups, before);
}

#[test]
fn a_partially_failed_batch_leaves_the_hash_equal_to_the_trie() {
    let Some(_k) = kernel_test() else { return };
    let mut dp = loaded(&LoadOptions { max_mappings: 4, ..LoadOptions::default() });
    let cpus = dp.cpus().to_vec();
    let batch = MappingBatch {
        upsert: (1..=6u16)
            .map(|i| {
                (
                    IpNet::new(v4(u32::from(Ipv4Addr::new(198, 18, 0, 0)), u32::from(i)), 32)
                        .expect("net"),
                    mapping(i, &cpus),
                )
            })
            .collect(),
        delete: vec![],
    };
    assert!(dp.ip_map().apply(&batch).is_err());
    let in_trie: HashMap<IpNet, IpMapping> =
        dp.ip_map().list().expect("list").into_iter().collect();
    assert_eq!(in_trie.len(), 4);
    assert_eq!(dp.ip_map().prefix_hash_info().prefixes, 4);
    let before = dp.stats().expect("stats").trie_lookups;
    for (n, _) in &batch.upsert {
        let want = in_trie.get(n).map(|m| m.class_handle);
        assert_eq!(classify(&dp, n.addr()), want, "{n}");
    }
    assert_eq!(dp.stats().expect("stats").trie_lookups, before);
}

#[test]
fn replacing_entries_while_classifying_never_mixes_two_entries() {
    let Some(_k) = kernel_test() else { return };
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    // A 4-entry cache per CPU: nearly every packet misses it and reads the prefix hash.
    let mut dp = loaded(&LoadOptions { cache_entries: 4, ..LoadOptions::default() });
    let online = dp.cpus().to_vec();
    const ADDRS: u16 = 32;
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    let net_of = |i: u16| IpNet::new(v4(base, u32::from(i) * 3), 32).expect("net");
    // Version A of address i: class 1:(i+1), slot i+1, an online CPU (redirected).
    // Version B: class 2:(i+101), slot i+101, CPU 4000 (not in the cpumap: XDP_PASS).
    let a = |i: u16| IpMapping {
        cpu: online[0],
        class_handle: (1 << 16) | u32::from(i + 1),
        slot: u32::from(i + 1),
        circuit_hash: 0,
        device_hash: 0,
    };
    let b = |i: u16| IpMapping {
        cpu: 4000,
        class_handle: (2 << 16) | u32::from(i + 101),
        slot: u32::from(i + 101),
        circuit_hash: 0,
        device_hash: 0,
    };
    // A covering /24 with its own triple, so that a reader that misses the /32 (it must
    // never) would show up as class 3:200.
    let mut init: Vec<(IpNet, IpMapping)> = (0..ADDRS).map(|i| (net_of(i), a(i))).collect();
    init.push((
        "198.18.0.0/24".parse().expect("net"),
        IpMapping {
            cpu: online[0],
            class_handle: (3 << 16) | 200,
            slot: 200,
            circuit_hash: 0,
            device_hash: 0,
        },
    ));
    dp.ip_map().apply(&MappingBatch { upsert: init, delete: vec![] }).expect("init");
    let frames: Vec<Vec<u8>> = (0..ADDRS).map(|i| frame_to(net_of(i).addr())).collect();
    let stop = AtomicBool::new(false);
    let before = dp.stats().expect("stats");
    let (ip_map, runner) = dp.ip_map_and_runner();
    const READS: usize = 40_000;
    let readers = 1;
    let observed: Vec<Vec<(u16, bool)>> = std::thread::scope(|s| {
        let stop = &stop;
        let frames = &frames;
        let handles: Vec<_> = (0..readers)
            .map(|r| {
                s.spawn(move || {
                    let mut set = nix::sched::CpuSet::new();
                    set.set(r).expect("cpu set");
                    let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
                    let mut seen = Vec::with_capacity(READS);
                    for k in 0..READS {
                        let i = ((k * 7 + r) % usize::from(ADDRS)) as u16;
                        let res = runner.test_run_xdp(&frames[usize::from(i)], LO, 1).expect("run");
                        let h = meta_handle(&res.meta);
                        let is_a = h == Some(a(i).class_handle);
                        let is_b = h == Some(b(i).class_handle);
                        assert!(is_a || is_b, "address {i}: class {h:x?} is neither version");
                        // The CPU came with the same entry: A redirects, B cannot.
                        let want = if is_a { XDP_REDIRECT } else { XDP_PASS };
                        assert_eq!(res.action, want, "address {i}: class and CPU of two entries");
                        seen.push((i, is_a));
                    }
                    stop.store(true, Ordering::Relaxed);
                    seen
                })
            })
            .collect();
        // Writer (on the other CPU): every batch gives every address a random version (in
        // place in the hash), and inserts or deletes a neighbour of each.
        let writer = s.spawn(move || {
            if ncpu > 1 {
                let mut set = nix::sched::CpuSet::new();
                set.set(1).expect("cpu set");
                let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
            }
            let mut rng = Rng(99);
            let mut flips = 0u32;
            while !stop.load(Ordering::Relaxed) && flips < 100_000 {
                let mut batch = MappingBatch::default();
                for i in 0..ADDRS {
                    let m = if rng.below(2) == 0 { a(i) } else { b(i) };
                    batch.upsert.push((net_of(i), m));
                    let extra = IpNet::new(v4(base, 1 + u32::from(i) * 3), 32).expect("net");
                    if flips.is_multiple_of(2) {
                        batch.upsert.push((extra, a(i)));
                    } else {
                        batch.delete.push(extra);
                    }
                }
                ip_map.apply(&batch).expect("flip");
                flips += 1;
            }
            println!("writer: {flips} batches");
        });
        let seen = handles.into_iter().map(|h| h.join().expect("reader")).collect();
        writer.join().expect("writer");
        seen
    });
    let after = dp.stats().expect("stats");
    println!(
        "cache misses {}, trie lookups {}, torn reads {}",
        after.cache_misses - before.cache_misses,
        after.trie_lookups - before.trie_lookups,
        after.pfx_torn - before.pfx_torn
    );
    assert!(after.cache_misses - before.cache_misses > (READS * readers) as u64 / 2);
    // Slots came with the same entry as the class: per slot, the packets equal the answers.
    let mut counts: HashMap<u32, u64> = HashMap::new();
    for (i, is_a) in observed.iter().flatten() {
        let slot = if *is_a { a(*i).slot } else { b(*i).slot };
        *counts.entry(slot).or_default() += 1;
    }
    let mut c = Vec::new();
    dp.slot_counters().read(0..256, &mut c).expect("slots");
    for (s, sc) in c.iter().enumerate() {
        let want = counts.get(&(s as u32)).copied().unwrap_or(0);
        assert_eq!(sc.packets[DOWN], want, "slot {s}");
    }
}

/// Scans of space no prefix covers are answered by the near bitmap (one hot cache line), not
/// by probing the hash; covered space still probes; the bitmap follows inserts and deletes,
/// and a short prefix of other addresses (which it cannot list) turns it off for that family.
#[test]
fn space_no_prefix_covers_is_answered_by_the_near_bitmap_and_stays_exact() {
    let Some(_k) = kernel_test() else { return };
    let mut dp = loaded(&LoadOptions::default());
    let cpus = dp.cpus().to_vec();
    let mut set: HashMap<IpNet, IpMapping> = HashMap::new();
    let mut upsert = Vec::new();
    let mut id = 1u16;
    let add = |net: &str,
               upsert: &mut Vec<(IpNet, IpMapping)>,
               set: &mut HashMap<IpNet, IpMapping>,
               id: &mut u16| {
        let n: IpNet = net.parse().expect("net");
        let m = mapping(*id, &cpus);
        *id += 1;
        set.insert(n, m);
        upsert.push((n, m));
    };
    // /32s in ten /16s (100.64/16 .. 100.73/16), one /12 (16 /16s), /56s in three /32s.
    for i in 0..10 {
        for h in 0..4 {
            add(&format!("100.{}.{}.{}/32", 64 + i, h, h * 9 + 1), &mut upsert, &mut set, &mut id);
        }
    }
    add("172.16.0.0/12", &mut upsert, &mut set, &mut id);
    for i in 0..3 {
        add(&format!("2001:db8:{i}:100::/56"), &mut upsert, &mut set, &mut id);
    }
    dp.ip_map().apply(&MappingBatch { upsert, delete: vec![] }).expect("apply");
    let mut rng = Rng(21);
    let dark_v4 = |rng: &mut Rng| -> IpAddr {
        // 100.74/16 .. 100.127/16 and 172.32/16 ..: next to covered space, covered by nothing.
        let a = if rng.below(2) == 0 {
            Ipv4Addr::new(100, 74 + rng.below(54) as u8, rng.below(256) as u8, rng.below(256) as u8)
        } else {
            Ipv4Addr::new(172, 32 + rng.below(32) as u8, rng.below(256) as u8, rng.below(256) as u8)
        };
        IpAddr::V4(a)
    };
    let stats = |dp: &Dataplane| dp.stats().expect("stats");
    let before = stats(&dp);
    let cached = |dp: &mut Dataplane| dp.ip_map().cache_entries().expect("cache");
    let (_, negative_before) = cached(&mut dp);
    let mut dark = Vec::new();
    for _ in 0..300 {
        dark.push(dark_v4(&mut rng));
    }
    dark.sort();
    dark.dedup();
    check_all(&dp, &set, &dark, "dark IPv4");
    let after = stats(&dp);
    assert_eq!(after.pfx_dark - before.pfx_dark, dark.len() as u64, "every dark IPv4 miss");
    assert_eq!(cached(&mut dp).1, negative_before, "a dark scan leaves nothing in the cache");
    // Covered space: the /12's /16s and the /32s' /16s probe the hash (mapped or not).
    let mut lit: Vec<IpAddr> = (0..200)
        .map(|i| {
            let a = if i % 2 == 0 {
                Ipv4Addr::new(172, 16 + (i % 16) as u8, rng.below(256) as u8, rng.below(256) as u8)
            } else {
                Ipv4Addr::new(100, 64 + (i % 10) as u8, rng.below(4) as u8, rng.below(256) as u8)
            };
            IpAddr::V4(a)
        })
        .collect();
    lit.sort();
    lit.dedup();
    let b2 = stats(&dp);
    check_all(&dp, &set, &lit, "covered IPv4");
    let a2 = stats(&dp);
    let unmapped_lit = lit.iter().filter(|a| lpm(&set, **a).is_none()).count();
    assert!(unmapped_lit > 0, "the test needs covered space nobody has");
    assert_eq!(
        cached(&mut dp).1,
        negative_before + unmapped_lit,
        "probed 'unmapped' answers are cached"
    );
    assert_eq!(a2.pfx_dark, b2.pfx_dark, "covered space is never answered by the bitmap");
    assert_eq!(a2.trie_lookups, before.trie_lookups, "nothing walked the trie");
    // Other addresses: /32s nobody has are dark (some may share a near bit: at most a few).
    let v6_dark: Vec<IpAddr> = (0..200u128)
        .map(|i| v6(0x2001_0db8_u128 << 96, (i + 16) << 96 | u128::from(rng.next())))
        .collect();
    let b3 = stats(&dp);
    check_all(&dp, &set, &v6_dark, "dark IPv6");
    let a3 = stats(&dp);
    assert!(a3.pfx_dark - b3.pfx_dark >= 190, "{} of 200", a3.pfx_dark - b3.pfx_dark);
    let v6_lit: Vec<IpAddr> =
        (0..3u128).map(|i| v6(0x2001_0db8_u128 << 96, i << 80 | 0x100 << 64 | 7)).collect();
    check_all(&dp, &set, &v6_lit, "covered IPv6");

    // A /24 of other addresses cannot be listed: their bitmap is off, answers stay exact.
    let mut upsert = Vec::new();
    add("2a00:1400::/24", &mut upsert, &mut set, &mut id);
    dp.ip_map().apply(&MappingBatch { upsert, delete: vec![] }).expect("apply");
    let b4 = stats(&dp);
    let more_v6: Vec<IpAddr> = (0..50u128)
        .map(|i| v6(0x2001_0db8_u128 << 96, (i + 300) << 96 | 5))
        .chain((0..50u128).map(|i| v6(0x2a00_1400_u128 << 96, i << 64 | 9)))
        .collect();
    check_all(&dp, &set, &more_v6, "IPv6 with a /24");
    assert_eq!(stats(&dp).pfx_dark, b4.pfx_dark, "bitmap off for other addresses");
    check_all(&dp, &set, &dark[..20], "dark IPv4, bitmap still on");
    assert_eq!(stats(&dp).pfx_dark, b4.pfx_dark + 20);

    // Deleting every /32 of 100.64/16 and the /12 turns their space dark.
    let gone: Vec<IpNet> = set
        .keys()
        .filter(|n| n.to_string().starts_with("100.64.") || n.to_string() == "172.16.0.0/12")
        .copied()
        .collect();
    for n in &gone {
        set.remove(n);
    }
    dp.ip_map().apply(&MappingBatch { upsert: vec![], delete: gone }).expect("delete");
    let now_dark: Vec<IpAddr> = (0..100u8)
        .map(|i| {
            IpAddr::V4(Ipv4Addr::new(
                if i % 2 == 0 { 100 } else { 172 },
                if i % 2 == 0 { 64 } else { 16 + i % 16 },
                i,
                1,
            ))
        })
        .collect();
    let b5 = stats(&dp);
    check_all(&dp, &set, &now_dark, "space emptied by deletes");
    assert_eq!(stats(&dp).pfx_dark - b5.pfx_dark, now_dark.len() as u64);
    assert_eq!(stats(&dp).trie_lookups, before.trie_lookups, "never the trie");
}
