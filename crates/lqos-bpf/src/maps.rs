//! Typed handles over the data plane's maps: [`IpMap`], [`CpuMap`], [`HostCounters`],
//! [`InterfaceConfig`], plus the 16-byte address encoding shared with the eBPF side.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd, BorrowedFd},
};

use aya::maps::{Array, HashMap, LpmTrie, Map, MapData, PerCpuHashMap, lpm_trie::Key};
use ipnet::IpNet;

use crate::{
    BpfError,
    abi::{self, CacheEntry, IfConfig, IpInfo, RawHostCounter},
};

/// Map names in `lqos_kern.c`.
pub(crate) const IP_MAP: &str = "lqos_ip_map";
pub(crate) const HOT_CACHE: &str = "lqos_hot_cache";
pub(crate) const EPOCH: &str = "lqos_epoch";
pub(crate) const CPU_MAP: &str = "lqos_cpu_map";
pub(crate) const HOST_COUNTERS: &str = "lqos_host_counters";
pub(crate) const IF_CONFIG: &str = "lqos_if_config";

/// Encodes an address as the data plane stores it: IPv6 as is, IPv4 as twelve `0xFF` bytes
/// followed by the address (LibreQoS-compatible).
pub fn encode_addr(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V6(v6) => v6.octets(),
        IpAddr::V4(v4) => {
            let mut out = [0xff; 16];
            out[12..].copy_from_slice(&v4.octets());
            out
        }
    }
}

/// Inverse of [`encode_addr`]: twelve `0xFF` bytes mean IPv4.
pub fn decode_addr(bytes: [u8; 16]) -> IpAddr {
    if bytes[..12].iter().all(|b| *b == 0xff) {
        IpAddr::V4(Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]))
    } else {
        IpAddr::V6(Ipv6Addr::from(bytes))
    }
}

/// LPM key of a prefix: IPv4 prefixes get + 96 bits. Host bits are cleared.
pub fn encode_net(net: &IpNet) -> Key<[u8; 16]> {
    let net = net.trunc();
    let prefix = match net {
        IpNet::V4(n) => u32::from(n.prefix_len()) + 96,
        IpNet::V6(n) => u32::from(n.prefix_len()),
    };
    Key::new(prefix, encode_addr(net.addr()))
}

/// Inverse of [`encode_net`]; `None` for a key that no prefix produces.
pub fn decode_net(key: &Key<[u8; 16]>) -> Option<IpNet> {
    let addr = decode_addr(key.data());
    let plen = key.prefix_len();
    match addr {
        IpAddr::V4(_) => {
            let p = u8::try_from(plen.checked_sub(96)?).ok()?;
            IpNet::new(addr, p).ok()
        }
        IpAddr::V6(_) => IpNet::new(addr, u8::try_from(plen).ok()?).ok(),
    }
}

/// What an address or prefix maps to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct IpMapping {
    /// CPU that serves the class's queue (queue k ↔ CPU k-1 by lqos's layout).
    pub cpu: u32,
    /// Download class handle `major << 16 | minor` (uploads on a stick add the offset to major).
    pub class_handle: u32,
    /// Circuit hash (reported back in counters by lqosd).
    pub circuit_hash: u64,
    /// Device hash.
    pub device_hash: u64,
}

impl From<IpMapping> for IpInfo {
    fn from(m: IpMapping) -> Self {
        IpInfo {
            cpu: m.cpu,
            class_handle: m.class_handle,
            circuit_hash: m.circuit_hash,
            device_hash: m.device_hash,
        }
    }
}

impl From<IpInfo> for IpMapping {
    fn from(i: IpInfo) -> Self {
        IpMapping {
            cpu: i.cpu,
            class_handle: i.class_handle,
            circuit_hash: i.circuit_hash,
            device_hash: i.device_hash,
        }
    }
}

/// One batch of mapping changes, applied together and followed by one epoch bump.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingBatch {
    /// Prefixes to add or replace.
    pub upsert: Vec<(IpNet, IpMapping)>,
    /// Prefixes to remove (missing ones are ignored).
    pub delete: Vec<IpNet>,
}

/// How an interface is used; stored per ifindex for the programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InterfaceRole {
    /// Faces the Internet (`to_internet`): ingress = download, subscriber = destination.
    ToInternet,
    /// Faces the subscribers (`to_network`): ingress = upload, subscriber = source.
    ToNetwork,
    /// One NIC with two VLANs (`[single_interface]`).
    Stick {
        /// VLAN towards the Internet.
        internet_vlan: u16,
        /// VLAN towards the subscribers.
        network_vlan: u16,
        /// Added to the CPU and the class major for uploads.
        stick_offset: u32,
    },
}

impl InterfaceRole {
    pub(crate) fn to_raw(self) -> IfConfig {
        match self {
            InterfaceRole::ToInternet => {
                IfConfig { direction: abi::DIR_TO_INTERNET, ..IfConfig::default() }
            }
            InterfaceRole::ToNetwork => {
                IfConfig { direction: abi::DIR_TO_NETWORK, ..IfConfig::default() }
            }
            InterfaceRole::Stick { internet_vlan, network_vlan, stick_offset } => IfConfig {
                direction: abi::DIR_STICK,
                internet_vid: internet_vlan & 0x0fff,
                isp_vid: network_vlan & 0x0fff,
                stick_offset,
                flags: 0,
            },
        }
    }
}

fn map_fd(map: &Map) -> Option<BorrowedFd<'_>> {
    match map {
        Map::LpmTrie(d) | Map::PerCpuHashMap(d) => Some(d.fd().as_fd()),
        _ => None,
    }
}

fn fd_or_err<'a>(map: &'a Map, name: &'static str) -> Result<BorrowedFd<'a>, BpfError> {
    map_fd(map).ok_or_else(|| BpfError::MapSyscall {
        map: name,
        operation: "get file descriptor".into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "unexpected map type"),
    })
}

fn map_err(
    map: &'static str,
    operation: impl Into<String>,
) -> impl FnOnce(aya::maps::MapError) -> BpfError {
    let operation = operation.into();
    move |source| BpfError::Map { map, operation, source }
}

fn is_not_found(e: &aya::maps::MapError) -> bool {
    matches!(e, aya::maps::MapError::KeyNotFound)
        || matches!(e, aya::maps::MapError::SyscallError(s) if s.io_error.raw_os_error() == Some(libc::ENOENT))
}

/// The IP → (CPU, class) table: LPM trie + epoch-checked hot cache.
///
/// Every change ends with [`IpMap::bump_epoch`], so no cached result from before the change
/// survives it (cache entries carry the epoch they were found in).
#[derive(Debug)]
pub struct IpMap {
    trie: Map,
    cache: Map,
    epoch: Map,
}

impl IpMap {
    pub(crate) fn new(trie: Map, cache: Map, epoch: Map) -> Result<Self, BpfError> {
        // Check key/value sizes once.
        LpmTrie::<&MapData, [u8; 16], IpInfo>::try_from(&trie).map_err(map_err(IP_MAP, "open"))?;
        aya::maps::HashMap::<&MapData, [u8; 16], CacheEntry>::try_from(&cache)
            .map_err(map_err(HOT_CACHE, "open"))?;
        Array::<&MapData, u32>::try_from(&epoch).map_err(map_err(EPOCH, "open"))?;
        Ok(IpMap { trie, cache, epoch })
    }

    /// Applies upserts then deletes, then bumps the epoch once.
    pub fn apply(&mut self, batch: &MappingBatch) -> Result<u32, BpfError> {
        self.upsert_no_bump(&batch.upsert)?;
        self.delete_no_bump(&batch.delete)?;
        self.bump_epoch()
    }

    /// Adds or replaces prefixes, then bumps the epoch.
    pub fn insert_batch(&mut self, entries: &[(IpNet, IpMapping)]) -> Result<u32, BpfError> {
        self.upsert_no_bump(entries)?;
        self.bump_epoch()
    }

    /// Removes prefixes (missing ones are ignored), then bumps the epoch.
    pub fn delete_batch(&mut self, nets: &[IpNet]) -> Result<u32, BpfError> {
        self.delete_no_bump(nets)?;
        self.bump_epoch()
    }

    /// Removes every mapping, then bumps the epoch.
    pub fn clear(&mut self) -> Result<u32, BpfError> {
        let nets: Vec<IpNet> = self.list()?.into_iter().map(|(n, _)| n).collect();
        self.delete_no_bump(&nets)?;
        self.bump_epoch()
    }

    /// Every mapping in the trie.
    pub fn list(&self) -> Result<Vec<(IpNet, IpMapping)>, BpfError> {
        let trie = LpmTrie::<&MapData, [u8; 16], IpInfo>::try_from(&self.trie)
            .map_err(map_err(IP_MAP, "open"))?;
        let mut out = Vec::new();
        for item in trie.iter() {
            let (key, info) = item.map_err(map_err(IP_MAP, "iterate"))?;
            if let Some(net) = decode_net(&key) {
                out.push((net, IpMapping::from(info)));
            }
        }
        out.sort_by_key(|e| e.0);
        Ok(out)
    }

    /// Exact-prefix lookup (not longest-prefix).
    pub fn get(&self, net: &IpNet) -> Result<Option<IpMapping>, BpfError> {
        let trie = LpmTrie::<&MapData, [u8; 16], IpInfo>::try_from(&self.trie)
            .map_err(map_err(IP_MAP, "open"))?;
        match trie.get(&encode_net(net), 0) {
            Ok(v) => Ok(Some(v.into())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(map_err(IP_MAP, format!("get {net}"))(e)),
        }
    }

    /// The current epoch.
    pub fn epoch(&self) -> Result<u32, BpfError> {
        let arr = Array::<&MapData, u32>::try_from(&self.epoch).map_err(map_err(EPOCH, "open"))?;
        arr.get(&0, 0).map_err(map_err(EPOCH, "read"))
    }

    /// Invalidates every hot-cache entry by moving to the next epoch. Returns the new epoch.
    pub fn bump_epoch(&mut self) -> Result<u32, BpfError> {
        let next = self.epoch()?.wrapping_add(1);
        let mut arr = Array::<&mut MapData, u32>::try_from(&mut self.epoch)
            .map_err(map_err(EPOCH, "open"))?;
        arr.set(0, next, 0).map_err(map_err(EPOCH, "write"))?;
        Ok(next)
    }

    /// Number of entries in the hot cache (any epoch); for tests and diagnostics.
    pub fn hot_cache_len(&self) -> Result<usize, BpfError> {
        let cache = aya::maps::HashMap::<&MapData, [u8; 16], CacheEntry>::try_from(&self.cache)
            .map_err(map_err(HOT_CACHE, "open"))?;
        Ok(cache.keys().filter(|k| k.is_ok()).count())
    }

    fn upsert_no_bump(&mut self, entries: &[(IpNet, IpMapping)]) -> Result<(), BpfError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut keys = Vec::with_capacity(entries.len() * abi::LPM_KEY_SIZE);
        let mut values = Vec::with_capacity(entries.len() * std::mem::size_of::<IpInfo>());
        for (net, m) in entries {
            let key = encode_net(net);
            keys.extend_from_slice(abi::pod_bytes(&key));
            values.extend_from_slice(abi::pod_bytes(&IpInfo::from(*m)));
        }
        match abi::update_batch(fd_or_err(&self.trie, IP_MAP)?, &keys, &values, entries.len()) {
            Ok(()) => return Ok(()),
            Err((_, e)) if is_batch_unsupported(&e) => {
                tracing::debug!(map = IP_MAP, error = %e, "batch update unsupported, updating one by one");
            }
            Err((done, e)) => {
                return Err(BpfError::MapSyscall {
                    map: IP_MAP,
                    operation: format!("batch update ({done} of {} done)", entries.len()),
                    source: e,
                });
            }
        }
        let mut trie = LpmTrie::<&mut MapData, [u8; 16], IpInfo>::try_from(&mut self.trie)
            .map_err(map_err(IP_MAP, "open"))?;
        for (net, m) in entries {
            trie.insert(&encode_net(net), IpInfo::from(*m), 0)
                .map_err(map_err(IP_MAP, format!("insert {net}")))?;
        }
        Ok(())
    }

    fn delete_no_bump(&mut self, nets: &[IpNet]) -> Result<(), BpfError> {
        let mut trie = LpmTrie::<&mut MapData, [u8; 16], IpInfo>::try_from(&mut self.trie)
            .map_err(map_err(IP_MAP, "open"))?;
        for net in nets {
            match trie.remove(&encode_net(net)) {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(map_err(IP_MAP, format!("delete {net}"))(e)),
            }
        }
        Ok(())
    }
}

fn is_batch_unsupported(e: &std::io::Error) -> bool {
    // ENOTSUPP (524) is the kernel-internal code the bpf syscall leaks for missing map ops.
    matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP | 524))
}

/// The cpumap that XDP redirects into; one slot per possible CPU.
#[derive(Debug)]
pub struct CpuMap {
    map: Map,
}

/// Queue size of each cpumap slot (LibreQoS uses 2048).
pub const DEFAULT_CPUMAP_QUEUE_SIZE: u32 = 2048;

impl CpuMap {
    pub(crate) fn new(map: Map) -> Self {
        CpuMap { map }
    }

    /// Enables every online CPU as a redirect target. Returns the CPUs filled.
    pub fn fill_online(&mut self, queue_size: u32) -> Result<Vec<u32>, BpfError> {
        let cpus =
            aya::util::online_cpus().map_err(|(path, source)| BpfError::Cpus { path, source })?;
        let mut cm = aya::maps::CpuMap::<&mut MapData>::try_from(&mut self.map)
            .map_err(map_err(CPU_MAP, "open"))?;
        for cpu in &cpus {
            cm.set(*cpu, queue_size, None, 0)
                .map_err(|source| BpfError::CpuMap { cpu: *cpu, source })?;
        }
        Ok(cpus)
    }

    /// Number of slots (= possible CPUs).
    pub fn len(&self) -> u32 {
        aya::maps::CpuMap::<&MapData>::try_from(&self.map).map_or(0, |m| m.len())
    }

    /// True when the map has no slots (never after a successful load).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counters of one subscriber address, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCounter {
    /// Download bytes (L2, before shaping).
    pub download_bytes: u64,
    /// Download packets.
    pub download_packets: u64,
    /// Upload bytes.
    pub upload_bytes: u64,
    /// Upload packets.
    pub upload_packets: u64,
    /// Newest `CLOCK_BOOTTIME` nanoseconds over all CPUs.
    pub last_seen_ns: u64,
    /// Class handle seen on the CPU with the newest packet (0 = unmapped).
    pub class_handle: u32,
}

impl HostCounter {
    fn add(&mut self, raw: &RawHostCounter) {
        self.download_bytes = self.download_bytes.wrapping_add(raw.download_bytes);
        self.download_packets = self.download_packets.wrapping_add(raw.download_packets);
        self.upload_bytes = self.upload_bytes.wrapping_add(raw.upload_bytes);
        self.upload_packets = self.upload_packets.wrapping_add(raw.upload_packets);
        if raw.last_seen_ns >= self.last_seen_ns && raw.last_seen_ns != 0 {
            self.last_seen_ns = raw.last_seen_ns;
            self.class_handle = raw.class_handle;
        }
    }
}

/// Per-CPU host counters keyed by subscriber address.
#[derive(Debug)]
pub struct HostCounters {
    map: Map,
    possible_cpus: usize,
}

const COUNTER_BATCH: usize = 4096;

impl HostCounters {
    pub(crate) fn new(map: Map, possible_cpus: usize) -> Result<Self, BpfError> {
        PerCpuHashMap::<&MapData, [u8; 16], RawHostCounter>::try_from(&map)
            .map_err(map_err(HOST_COUNTERS, "open"))?;
        Ok(HostCounters { map, possible_cpus })
    }

    /// Reads every host, summed over CPUs, with `BPF_MAP_LOOKUP_BATCH` (falls back to key
    /// iteration if the kernel refuses batches). Sorted by address.
    pub fn read_all(&self) -> Result<Vec<(IpAddr, HostCounter)>, BpfError> {
        let mut out = match self.read_batched() {
            Ok(v) => v,
            Err(BpfError::MapSyscall { source, .. })
                if matches!(source.raw_os_error(), Some(libc::EINVAL | libc::ENOSPC | 524)) =>
            {
                tracing::debug!(map = HOST_COUNTERS, error = %source, "batch lookup refused, iterating keys");
                self.read_iterating()?
            }
            Err(e) => return Err(e),
        };
        out.sort_by_key(|e| e.0);
        Ok(out)
    }

    fn read_batched(&self) -> Result<Vec<(IpAddr, HostCounter)>, BpfError> {
        let stride = std::mem::size_of::<RawHostCounter>().div_ceil(8) * 8;
        let per_entry = stride * self.possible_cpus;
        let mut keys = vec![0u8; COUNTER_BATCH * 16];
        let mut values = vec![0u8; COUNTER_BATCH * per_entry];
        let mut out = Vec::new();
        let mut token_in = [0u8; 8];
        let mut token_out = [0u8; 8];
        let mut first = true;
        // Bounded: each round returns ≥ 1 entry or ends; the map holds at most 2^18 entries.
        for _ in 0..=(1 << 18) {
            let chunk = abi::lookup_batch(
                fd_or_err(&self.map, HOST_COUNTERS)?,
                if first { None } else { Some(&token_in) },
                &mut token_out,
                &mut keys,
                16,
                &mut values,
                per_entry,
            )
            .map_err(|source| BpfError::MapSyscall {
                map: HOST_COUNTERS,
                operation: "batch lookup".into(),
                source,
            })?;
            for i in 0..chunk.count {
                let mut key = [0u8; 16];
                key.copy_from_slice(&keys[i * 16..i * 16 + 16]);
                let mut sum = HostCounter::default();
                for cpu in 0..self.possible_cpus {
                    let off = i * per_entry + cpu * stride;
                    if let Some(raw) = abi::pod_from_bytes::<RawHostCounter>(&values[off..]) {
                        sum.add(&raw);
                    }
                }
                out.push((decode_addr(key), sum));
            }
            if chunk.done || chunk.count == 0 {
                break;
            }
            token_in = token_out;
            first = false;
        }
        Ok(out)
    }

    fn read_iterating(&self) -> Result<Vec<(IpAddr, HostCounter)>, BpfError> {
        let map = PerCpuHashMap::<&MapData, [u8; 16], RawHostCounter>::try_from(&self.map)
            .map_err(map_err(HOST_COUNTERS, "open"))?;
        let mut out = Vec::new();
        for item in map.iter() {
            let (key, values) = item.map_err(map_err(HOST_COUNTERS, "iterate"))?;
            let mut sum = HostCounter::default();
            for raw in values.iter() {
                sum.add(raw);
            }
            out.push((decode_addr(key), sum));
        }
        Ok(out)
    }

    /// Deletes hosts (e.g. ones idle for too long). Missing ones are ignored.
    pub fn remove(&mut self, hosts: &[IpAddr]) -> Result<(), BpfError> {
        let mut map =
            PerCpuHashMap::<&mut MapData, [u8; 16], RawHostCounter>::try_from(&mut self.map)
                .map_err(map_err(HOST_COUNTERS, "open"))?;
        for ip in hosts {
            match map.remove(&encode_addr(*ip)) {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(map_err(HOST_COUNTERS, format!("delete {ip}"))(e)),
            }
        }
        Ok(())
    }
}

/// Per-interface configuration (role, stick VLANs and offset), keyed by ifindex.
#[derive(Debug)]
pub struct InterfaceConfig {
    map: Map,
}

impl InterfaceConfig {
    pub(crate) fn new(map: Map) -> Self {
        InterfaceConfig { map }
    }

    /// Sets the role of an ifindex.
    pub fn set(&mut self, ifindex: u32, role: InterfaceRole) -> Result<(), BpfError> {
        let mut m = HashMap::<&mut MapData, u32, IfConfig>::try_from(&mut self.map)
            .map_err(map_err(IF_CONFIG, "open"))?;
        m.insert(ifindex, role.to_raw(), 0)
            .map_err(map_err(IF_CONFIG, format!("set ifindex {ifindex}")))
    }

    /// Forgets an ifindex (its programs then pass everything).
    pub fn remove(&mut self, ifindex: u32) -> Result<(), BpfError> {
        let mut m = HashMap::<&mut MapData, u32, IfConfig>::try_from(&mut self.map)
            .map_err(map_err(IF_CONFIG, "open"))?;
        match m.remove(&ifindex) {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(map_err(IF_CONFIG, format!("remove ifindex {ifindex}"))(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_is_twelve_ff_bytes_then_address_with_prefix_plus_96() {
        let net: IpNet = "198.18.0.0/24".parse().expect("net");
        let key = encode_net(&net);
        assert_eq!(key.prefix_len(), 120);
        let data = key.data();
        assert_eq!(&data[..12], &[0xff; 12]);
        assert_eq!(&data[12..], &[198, 18, 0, 0]);
        assert_eq!(decode_net(&key), Some(net));
    }

    #[test]
    fn ipv6_prefix_round_trips_and_host_bits_are_cleared() {
        let net: IpNet = "2001:db8:1::5/48".parse().expect("net");
        let key = encode_net(&net);
        assert_eq!(key.prefix_len(), 48);
        assert_eq!(decode_net(&key), Some("2001:db8:1::/48".parse().expect("net")));
    }

    #[test]
    fn decode_addr_recognises_ipv4() {
        let ip: IpAddr = "198.18.0.7".parse().expect("ip");
        assert_eq!(decode_addr(encode_addr(ip)), ip);
        let ip6: IpAddr = "2001:db8::7".parse().expect("ip");
        assert_eq!(decode_addr(encode_addr(ip6)), ip6);
    }

    #[test]
    fn host_counter_sum_takes_class_of_newest_cpu() {
        let mut sum = HostCounter::default();
        sum.add(&RawHostCounter {
            download_bytes: 10,
            download_packets: 1,
            last_seen_ns: 5,
            class_handle: 1,
            ..Default::default()
        });
        sum.add(&RawHostCounter {
            download_bytes: 20,
            download_packets: 2,
            last_seen_ns: 9,
            class_handle: 2,
            ..Default::default()
        });
        sum.add(&RawHostCounter {
            upload_bytes: 7,
            upload_packets: 1,
            last_seen_ns: 3,
            class_handle: 3,
            ..Default::default()
        });
        assert_eq!(sum.download_bytes, 30);
        assert_eq!(sum.download_packets, 3);
        assert_eq!(sum.upload_bytes, 7);
        assert_eq!(sum.last_seen_ns, 9);
        assert_eq!(sum.class_handle, 2);
    }
}
