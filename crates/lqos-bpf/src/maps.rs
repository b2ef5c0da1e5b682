//! Typed handles over the data plane's control maps: [`IpMap`] (prefix → CPU, class, slot),
//! [`CpuMap`], [`InterfaceConfig`], [`Settings`], plus the 16-byte address encoding shared
//! with the eBPF side. Counters, RTT histograms, flows and unknown addresses are in
//! `crate::stats`.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd, BorrowedFd},
};

use aya::maps::{Array, LpmTrie, Map, MapData, lpm_trie::Key};
use ipnet::IpNet;

use crate::{
    BpfError,
    abi::{self, CacheSet, IfConfig, IpInfo, RawSettings},
    pfx::{PfxKey, PfxValue, PrefixHashInfo, PrefixIndex},
};

/// Map names in `lqos_kern.c`.
pub(crate) const IP_MAP: &str = "lqos_ip_map";
pub(crate) const CACHE: &str = "lqos_cache";
pub(crate) const EPOCH: &str = "lqos_epoch";
pub(crate) const CPU_MAP: &str = "lqos_cpu_map";
pub(crate) const IF_CONFIG: &str = "lqos_if_config";
pub(crate) const SETTINGS: &str = "lqos_settings";
pub(crate) const SLOT_COUNTERS: &str = "lqos_slot_counters";
pub(crate) const RTT_HIST: &str = "lqos_rtt_hist";
/// New flows per slot in the current generation (not pinned).
pub(crate) const SLOT_FLOWS: &str = "lqos_slot_flows";
pub(crate) const FLOWS: &str = "lqos_flows";
pub(crate) const FLOW_GEN: &str = "lqos_flow_gen";
pub(crate) const UNKNOWN: &str = "lqos_unknown";
pub(crate) const STATS: &str = "lqos_stats";

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
    /// Dense counter slot of the circuit: index into the slot counters and RTT histograms.
    /// Slot 0 is the unshaped slot (unmapped traffic); lqosd gives circuits 1..max_slots.
    /// A slot at or beyond `max_slots` is counted in slot 0.
    pub slot: u32,
    /// Circuit hash (kept for lqosd's reconcile and listings).
    pub circuit_hash: u64,
    /// Device hash.
    pub device_hash: u64,
}

impl From<IpMapping> for IpInfo {
    fn from(m: IpMapping) -> Self {
        IpInfo {
            cpu: m.cpu,
            class_handle: m.class_handle,
            slot: m.slot,
            flags: 0,
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
            slot: i.slot,
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
    /// One NIC with two VLANs (`[single_interface]`). With two tags (QinQ) the inner tag
    /// decides the direction and is the one swapped.
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
    pub(crate) fn to_raw(self, ifindex: u32) -> IfConfig {
        match self {
            InterfaceRole::ToInternet => {
                IfConfig { ifindex, direction: abi::DIR_TO_INTERNET, ..IfConfig::default() }
            }
            InterfaceRole::ToNetwork => {
                IfConfig { ifindex, direction: abi::DIR_TO_NETWORK, ..IfConfig::default() }
            }
            InterfaceRole::Stick { internet_vlan, network_vlan, stick_offset } => IfConfig {
                ifindex,
                direction: abi::DIR_STICK,
                internet_vid: internet_vlan & 0x0fff,
                isp_vid: network_vlan & 0x0fff,
                stick_offset,
            },
        }
    }
}

pub(crate) fn map_fd(map: &Map) -> Option<BorrowedFd<'_>> {
    match map {
        Map::Array(d)
        | Map::PerCpuArray(d)
        | Map::LpmTrie(d)
        | Map::HashMap(d)
        | Map::PerCpuHashMap(d)
        | Map::CpuMap(d) => Some(d.fd().as_fd()),
        _ => None,
    }
}

pub(crate) fn fd_or_err<'a>(map: &'a Map, name: &'static str) -> Result<BorrowedFd<'a>, BpfError> {
    map_fd(map).ok_or_else(|| BpfError::MapSyscall {
        map: name,
        operation: "get file descriptor".into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "unexpected map type"),
    })
}

pub(crate) fn max_entries(map: &Map, name: &'static str) -> Result<u32, BpfError> {
    let data = match map {
        Map::Array(d)
        | Map::PerCpuArray(d)
        | Map::LpmTrie(d)
        | Map::HashMap(d)
        | Map::PerCpuHashMap(d)
        | Map::CpuMap(d) => d,
        _ => {
            return Err(BpfError::MapSyscall {
                map: name,
                operation: "read map info".into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "unexpected map type",
                ),
            });
        }
    };
    data.info().map(|i| i.max_entries()).map_err(map_err(name, "read map info"))
}

pub(crate) fn map_err(
    map: &'static str,
    operation: impl Into<String>,
) -> impl FnOnce(aya::maps::MapError) -> BpfError {
    let operation = operation.into();
    move |source| BpfError::Map { map, operation, source }
}

pub(crate) fn is_not_found(e: &aya::maps::MapError) -> bool {
    matches!(e, aya::maps::MapError::KeyNotFound)
        || matches!(e, aya::maps::MapError::SyscallError(s) if s.io_error.raw_os_error() == Some(libc::ENOENT))
}

pub(crate) fn is_batch_unsupported(e: &std::io::Error) -> bool {
    // ENOTSUPP (524) is the kernel-internal code the bpf syscall leaks for missing map ops.
    matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP | 524))
}

/// The IP → (CPU, class, slot) table: LPM trie behind a per-CPU 2-way set-associative cache
/// whose entries carry the epoch they were filled in, with an exact-prefix hash
/// ([`crate::pfx`]) answering cache misses before the trie.
///
/// Every change updates the trie, then the prefix hash (from the change itself, or re-read
/// from the trie when the trie step failed half-way), then bumps the epoch with
/// [`IpMap::bump_epoch`] — also when the change failed — so no cached result from before a
/// change survives it.
#[derive(Debug)]
pub struct IpMap {
    trie: Map,
    cache: Map,
    epoch: Map,
    pfx: PrefixIndex,
}

fn pfx_key(net: &IpNet) -> Option<PfxKey> {
    let k = encode_net(net);
    PfxKey::new(k.prefix_len(), k.data())
}

fn pfx_value(m: &IpMapping) -> PfxValue {
    PfxValue { class_handle: m.class_handle, slot: m.slot, cpu: m.cpu }
}

impl IpMap {
    /// Opens the maps and fills the prefix hash from the trie (which may hold the mappings
    /// of an earlier lqosd when pinned).
    pub(crate) fn new(
        trie: Map,
        cache: Map,
        epoch: Map,
        pfx_hash: Map,
        pfx_lens: Map,
    ) -> Result<Self, BpfError> {
        // Check key/value sizes once.
        LpmTrie::<&MapData, [u8; 16], IpInfo>::try_from(&trie).map_err(map_err(IP_MAP, "open"))?;
        Array::<&MapData, CacheSet>::try_from(&cache).map_err(map_err(CACHE, "open"))?;
        Array::<&MapData, u32>::try_from(&epoch).map_err(map_err(EPOCH, "open"))?;
        Array::<&MapData, abi::PfxBucket>::try_from(&pfx_hash)
            .map_err(map_err(crate::pfx::PFX_HASH, "open"))?;
        Array::<&MapData, abi::PfxLens>::try_from(&pfx_lens)
            .map_err(map_err(crate::pfx::PFX_LENS_MAP, "open"))?;
        let pfx = PrefixIndex::new(&pfx_hash, &pfx_lens)?;
        let mut me = IpMap { trie, cache, epoch, pfx };
        // The cache is not pinned (empty) and the hash is fresh: no epoch bump needed. A trie
        // that cannot be read leaves the hash out of use (every miss walks the trie) until a
        // later batch resynchronises it; the load itself goes on.
        if let Err(e) = me.resync_pfx() {
            tracing::warn!(error = %e, "prefix hash not filled from the trie; misses walk the trie");
        }
        Ok(me)
    }

    /// Re-reads the trie into the prefix hash. On failure every miss walks the trie until
    /// a later resync succeeds.
    fn resync_pfx(&mut self) -> Result<(), BpfError> {
        match self.list() {
            Ok(list) => {
                let all: Vec<(PfxKey, PfxValue)> =
                    list.iter().filter_map(|(n, m)| Some((pfx_key(n)?, pfx_value(m)))).collect();
                self.pfx.sync(&all)
            }
            Err(e) => {
                self.pfx.invalidate()?;
                Err(e)
            }
        }
    }

    /// Brings the prefix hash in step with a trie change: from the change when the trie
    /// took all of it (and the hash is trusted), else from the trie itself.
    fn follow_pfx(
        &mut self,
        trie_ok: bool,
        upserts: &[(IpNet, IpMapping)],
        deletes: &[IpNet],
    ) -> Result<(), BpfError> {
        if trie_ok && self.pfx.info().trusted {
            let up: Vec<(PfxKey, PfxValue)> =
                upserts.iter().filter_map(|(n, m)| Some((pfx_key(n)?, pfx_value(m)))).collect();
            let del: Vec<PfxKey> = deletes.iter().filter_map(pfx_key).collect();
            if self.pfx.apply(&up, &del).is_ok() {
                return Ok(());
            }
        }
        self.resync_pfx()
    }

    /// Applies upserts then deletes, then bumps the epoch once. The epoch is bumped even when
    /// a step fails (part of the batch may be in the trie); the first error is returned.
    pub fn apply(&mut self, batch: &MappingBatch) -> Result<u32, BpfError> {
        let res =
            self.upsert_no_bump(&batch.upsert).and_then(|()| self.delete_no_bump(&batch.delete));
        let followed = self.follow_pfx(res.is_ok(), &batch.upsert, &batch.delete);
        let bumped = self.bump_epoch();
        res?;
        followed?;
        bumped
    }

    /// Adds or replaces prefixes, then bumps the epoch (also on failure).
    pub fn insert_batch(&mut self, entries: &[(IpNet, IpMapping)]) -> Result<u32, BpfError> {
        let res = self.upsert_no_bump(entries);
        let followed = self.follow_pfx(res.is_ok(), entries, &[]);
        let bumped = self.bump_epoch();
        res?;
        followed?;
        bumped
    }

    /// Removes prefixes (missing ones are ignored), then bumps the epoch (also on failure).
    pub fn delete_batch(&mut self, nets: &[IpNet]) -> Result<u32, BpfError> {
        let res = self.delete_no_bump(nets);
        let followed = self.follow_pfx(res.is_ok(), &[], nets);
        let bumped = self.bump_epoch();
        res?;
        followed?;
        bumped
    }

    /// Removes every mapping, then bumps the epoch (also on failure).
    pub fn clear(&mut self) -> Result<u32, BpfError> {
        let res = self
            .list()
            .map(|l| l.into_iter().map(|(n, _)| n).collect::<Vec<_>>())
            .and_then(|nets| self.delete_no_bump(&nets));
        let followed = self.resync_pfx();
        let bumped = self.bump_epoch();
        res?;
        followed?;
        bumped
    }

    /// Size and state of the exact-prefix hash.
    pub fn prefix_hash_info(&self) -> PrefixHashInfo {
        self.pfx.info()
    }

    /// The prefix lengths the programs probe for IPv4 (`v4 = true`) or other addresses:
    /// longest first, whether the list is complete, and the overflow mask (bit i: a prefix of
    /// the i-th length has no place in the hash).
    pub fn prefix_lengths(&self, v4: bool) -> (Vec<u8>, bool, u8) {
        self.pfx.listed(if v4 { abi::PFX_FAM_V4 } else { abi::PFX_FAM_V6 })
    }

    /// Every mapping in the trie, sorted by prefix.
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

    /// Invalidates every cache entry by moving to the next epoch. Returns the new epoch.
    pub fn bump_epoch(&mut self) -> Result<u32, BpfError> {
        let next = self.epoch()?.wrapping_add(1);
        let mut arr = Array::<&mut MapData, u32>::try_from(&mut self.epoch)
            .map_err(map_err(EPOCH, "open"))?;
        arr.set(0, next, 0).map_err(map_err(EPOCH, "write"))?;
        Ok(next)
    }

    /// Cache entries (summed over CPUs) filled in the current epoch: `(mapped, negative)`.
    /// For tests and diagnostics; reads the whole cache (every CPU's block).
    pub fn cache_entries(&self) -> Result<(usize, usize), BpfError> {
        let epoch = self.epoch()?;
        let (mut mapped, mut negative) = (0, 0);
        let len = max_entries(&self.cache, CACHE)?;
        crate::stats::read_array(
            fd_or_err(&self.cache, CACHE)?,
            CACHE,
            0..len,
            std::mem::size_of::<CacheSet>(),
            |_, bytes| {
                let Some(set) = abi::pod_from_bytes::<CacheSet>(bytes) else { return };
                for e in set.way {
                    if e.flags & abi::CACHE_VALID != 0 && e.epoch == epoch {
                        if e.flags & abi::CACHE_MAPPED != 0 {
                            mapped += 1;
                        } else {
                            negative += 1;
                        }
                    }
                }
            },
        )?;
        Ok((mapped, negative))
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
                let failed = entries.get(done).map(|e| e.0.to_string()).unwrap_or_default();
                return Err(BpfError::MapSyscall {
                    map: IP_MAP,
                    operation: format!(
                        "batch update ({done} of {} done, failed at {failed})",
                        entries.len()
                    ),
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

/// Interface roles: an array indexed by `ifindex & (IF_SLOTS - 1)`; each entry stores its
/// ifindex, which the programs compare, so a stale or colliding entry is never misread.
#[derive(Debug)]
pub struct InterfaceConfig {
    map: Map,
}

impl InterfaceConfig {
    pub(crate) fn new(map: Map) -> Result<Self, BpfError> {
        Array::<&MapData, IfConfig>::try_from(&map).map_err(map_err(IF_CONFIG, "open"))?;
        Ok(InterfaceConfig { map })
    }

    /// Sets the role of an ifindex. Fails if another configured interface uses the same
    /// array index (ifindexes equal modulo 1024).
    pub fn set(&mut self, ifindex: u32, role: InterfaceRole) -> Result<(), BpfError> {
        let mut m = Array::<&mut MapData, IfConfig>::try_from(&mut self.map)
            .map_err(map_err(IF_CONFIG, "open"))?;
        let idx = ifindex & (abi::IF_SLOTS - 1);
        let cur = m.get(&idx, 0).map_err(map_err(IF_CONFIG, format!("read index {idx}")))?;
        if cur.direction != abi::DIR_UNSET && cur.ifindex != ifindex {
            return Err(BpfError::IfindexCollision { ifindex, other: cur.ifindex });
        }
        m.set(idx, role.to_raw(ifindex), 0)
            .map_err(map_err(IF_CONFIG, format!("set ifindex {ifindex}")))
    }

    /// Forgets an ifindex (its programs then pass everything).
    pub fn remove(&mut self, ifindex: u32) -> Result<(), BpfError> {
        let mut m = Array::<&mut MapData, IfConfig>::try_from(&mut self.map)
            .map_err(map_err(IF_CONFIG, "open"))?;
        let idx = ifindex & (abi::IF_SLOTS - 1);
        let cur = m.get(&idx, 0).map_err(map_err(IF_CONFIG, format!("read index {idx}")))?;
        if cur.ifindex != ifindex {
            return Ok(());
        }
        m.set(idx, IfConfig::default(), 0)
            .map_err(map_err(IF_CONFIG, format!("remove ifindex {ifindex}")))
    }

    /// The role stored for an ifindex, if any.
    pub fn get(&self, ifindex: u32) -> Result<Option<IfConfig>, BpfError> {
        let m =
            Array::<&MapData, IfConfig>::try_from(&self.map).map_err(map_err(IF_CONFIG, "open"))?;
        let idx = ifindex & (abi::IF_SLOTS - 1);
        let cur = m.get(&idx, 0).map_err(map_err(IF_CONFIG, format!("read index {idx}")))?;
        Ok((cur.ifindex == ifindex && cur.direction != abi::DIR_UNSET).then_some(cur))
    }
}

/// Global data-plane switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataplaneSettings {
    /// `queue_mode = "observe"`: every mapped circuit is counted and measured, nothing is
    /// redirected to a CPU or put into an HTB class (the stick still swaps VLANs).
    pub observe: bool,
    /// Time one in N new TCP timestamps per flow direction (1 = every one while no other
    /// sample of that direction is outstanding).
    pub rtt_sample_every: u32,
    /// Record one in N unmapped packets per CPU in the unknown-address table.
    pub unknown_sample_every: u32,
}

impl Default for DataplaneSettings {
    fn default() -> Self {
        DataplaneSettings { observe: false, rtt_sample_every: 1, unknown_sample_every: 16 }
    }
}

/// The settings array (one entry).
#[derive(Debug)]
pub struct Settings {
    map: Map,
}

impl Settings {
    pub(crate) fn new(map: Map) -> Result<Self, BpfError> {
        Array::<&MapData, RawSettings>::try_from(&map).map_err(map_err(SETTINGS, "open"))?;
        Ok(Settings { map })
    }

    /// Writes the settings; the programs see them on their next packet.
    pub fn set(&mut self, s: &DataplaneSettings) -> Result<(), BpfError> {
        let mut m = Array::<&mut MapData, RawSettings>::try_from(&mut self.map)
            .map_err(map_err(SETTINGS, "open"))?;
        let raw = RawSettings {
            flags: if s.observe { abi::SET_OBSERVE } else { 0 },
            rtt_sample_every: s.rtt_sample_every.max(1),
            unknown_sample_every: s.unknown_sample_every.max(1),
            reserved: 0,
        };
        m.set(0, raw, 0).map_err(map_err(SETTINGS, "write"))
    }

    /// Reads the settings back.
    pub fn get(&self) -> Result<DataplaneSettings, BpfError> {
        let m = Array::<&MapData, RawSettings>::try_from(&self.map)
            .map_err(map_err(SETTINGS, "open"))?;
        let raw = m.get(&0, 0).map_err(map_err(SETTINGS, "read"))?;
        Ok(DataplaneSettings {
            observe: raw.flags & abi::SET_OBSERVE != 0,
            rtt_sample_every: raw.rtt_sample_every.max(1),
            unknown_sample_every: if raw.unknown_sample_every == 0 {
                16
            } else {
                raw.unknown_sample_every
            },
        })
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
}
