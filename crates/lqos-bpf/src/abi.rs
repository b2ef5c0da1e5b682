//! Rust mirrors of `bpf/lqos_abi.h` and the few raw `bpf(2)` calls aya 0.14 lacks
//! (`BPF_MAP_{LOOKUP,UPDATE,DELETE}_BATCH`). This is the only module with `unsafe` code.

use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd, BorrowedFd},
};

/// Interface role: not configured (the programs pass everything).
pub const DIR_UNSET: u32 = 0;
/// Interface faces the Internet: its XDP sees downloads (subscriber = destination).
pub const DIR_TO_INTERNET: u32 = 1;
/// Interface faces the subscribers: its XDP sees uploads (subscriber = source).
pub const DIR_TO_NETWORK: u32 = 2;
/// One interface, two VLANs: direction from the VLAN tag (the inner one of two).
pub const DIR_STICK: u32 = 3;
/// Index of download (towards the subscriber) in every `[_; 2]` direction array.
pub const DOWN: usize = 0;
/// Index of upload (from the subscriber).
pub const UP: usize = 1;
/// Index of the access path (shaper → subscriber → shaper) in RTT arrays.
pub const PATH_ACCESS: usize = 0;
/// Index of the upstream path (shaper → Internet host → shaper) in RTT arrays.
pub const PATH_UPSTREAM: usize = 1;
/// Magic in [`XdpMeta::magic`] ("LQOS").
pub const META_MAGIC: u32 = 0x4c51_4f53;
/// Entries of the interface role array (`index = ifindex & (IF_SLOTS - 1)`).
pub const IF_SLOTS: u32 = 1024;
/// Default entries per CPU of the classification cache (2-way sets of [`CacheSet`]).
pub const CACHE_ENTRIES: u32 = 65536;
/// Buckets per path of an RTT histogram.
pub const RTT_BUCKETS: usize = 32;
/// Ways per set of the flow table (`LQOS_FLOW_WAYS`).
pub const FLOW_WAYS: u32 = 4;
/// Upper bound (inclusive, microseconds) of each RTT bucket; the last one is open-ended.
/// Must match `lqos_rtt_bucket()` in `lqos_kern.c`.
pub const RTT_BUCKET_UPPER_US: [u32; RTT_BUCKETS] = [
    50,
    100,
    150,
    200,
    300,
    400,
    500,
    750,
    1_000,
    1_500,
    2_000,
    3_000,
    4_000,
    5_000,
    7_500,
    10_000,
    15_000,
    20_000,
    30_000,
    40_000,
    50_000,
    75_000,
    100_000,
    150_000,
    200_000,
    300_000,
    400_000,
    500_000,
    750_000,
    1_000_000,
    2_000_000,
    u32::MAX,
];
/// Cache entry flag: entry holds a result.
pub const CACHE_VALID: u16 = 1;
/// Cache entry flag: the address is mapped (else a negative result).
pub const CACHE_MAPPED: u16 = 2;
/// Cache entry flag: the way of its set filled last.
pub const CACHE_NEWER: u16 = 4;
/// `LQOS_CACHE_REF`: the entry was used since an unmapped address last found both ways mapped.
pub const CACHE_REF: u16 = 8;
/// Settings flag: observe mode (count and measure, never redirect or set a class).
pub const SET_OBSERVE: u32 = 1;
/// Flow direction flag: `high_seq` is valid.
pub const FLOW_SEQ_VALID: u8 = 1;
/// Flow direction flag: `last_tsval` is valid.
pub const FLOW_TS_VALID: u8 = 2;

/// `struct lqos_ip_info`: the value of the IP mapping trie.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpInfo {
    /// CPU (cpumap index) serving the class's queue.
    pub cpu: u32,
    /// `major << 16 | minor`.
    pub class_handle: u32,
    /// Dense counter slot (0 = unshaped).
    pub slot: u32,
    /// Reserved, 0.
    pub flags: u32,
    /// Circuit hash.
    pub circuit_hash: u64,
    /// Device hash.
    pub device_hash: u64,
}
const _: () = assert!(size_of::<IpInfo>() == 32);

/// `struct lqos_cache_entry`: one entry of the per-CPU direct-mapped cache.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheEntry {
    /// Tag: the encoded address.
    pub addr: [u8; 16],
    /// Epoch the entry was filled in.
    pub epoch: u32,
    /// Class handle (mapped entries).
    pub class_handle: u32,
    /// Slot (mapped entries).
    pub slot: u32,
    /// CPU (mapped entries).
    pub cpu: u16,
    /// [`CACHE_VALID`] | [`CACHE_MAPPED`].
    pub flags: u16,
}
const _: () = assert!(size_of::<CacheEntry>() == 32);

/// `struct lqos_cache_set`: one 2-way set (one cache line). The cache map holds possible
/// CPUs × sets of them, CPU-major.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheSet {
    /// The two ways.
    pub way: [CacheEntry; 2],
}
const _: () = assert!(size_of::<CacheSet>() == 64);

/// `struct lqos_if_config`: the role of one interface.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfConfig {
    /// The interface this entry belongs to (the array index is `ifindex & (IF_SLOTS - 1)`).
    pub ifindex: u32,
    /// One of the `DIR_*` constants.
    pub direction: u32,
    /// Stick: VLAN facing the Internet.
    pub internet_vid: u16,
    /// Stick: VLAN facing the subscribers.
    pub isp_vid: u16,
    /// Stick: added to CPU and class major for uploads.
    pub stick_offset: u32,
}
const _: () = assert!(size_of::<IfConfig>() == 16);

/// `struct lqos_settings`: global switches.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawSettings {
    /// `SET_*` flags.
    pub flags: u32,
    /// One in N new TSvals per flow direction is timed (0 = 1).
    pub rtt_sample_every: u32,
    /// One in N unmapped packets per CPU is recorded (0 = 16).
    pub unknown_sample_every: u32,
    /// Reserved.
    pub reserved: u32,
}
const _: () = assert!(size_of::<RawSettings>() == 16);

/// `struct lqos_slot_counters`: one CPU's counters of one slot.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawSlotCounters {
    /// L2 bytes per direction.
    pub bytes: [u64; 2],
    /// Packets per direction.
    pub packets: [u64; 2],
    /// TCP packets per direction.
    pub tcp_packets: [u64; 2],
    /// TCP retransmits per direction.
    pub retransmits: [u64; 2],
}
const _: () = assert!(size_of::<RawSlotCounters>() == 64);

/// `struct lqos_rtt_hist`: RTT histogram of one slot.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRttHist {
    /// `[path][bucket]` sample counts.
    pub buckets: [[u32; RTT_BUCKETS]; 2],
    /// `[path]` sum of samples in microseconds.
    pub sum_us: [u64; 2],
}
const _: () = assert!(size_of::<RawRttHist>() == 272);

impl Default for RawRttHist {
    fn default() -> Self {
        RawRttHist { buckets: [[0; RTT_BUCKETS]; 2], sum_us: [0; 2] }
    }
}

/// `struct lqos_flow_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawFlowKey {
    /// Subscriber address (encoded).
    pub subscriber: [u8; 16],
    /// Remote address (encoded).
    pub remote: [u8; 16],
    /// Subscriber port.
    pub subscriber_port: u16,
    /// Remote port.
    pub remote_port: u16,
    /// IP protocol.
    pub protocol: u8,
    /// Padding, 0.
    pub pad: [u8; 3],
}
const _: () = assert!(size_of::<RawFlowKey>() == 40);

/// `struct lqos_flow_dir`: one direction of a flow.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawFlowDir {
    /// Bytes.
    pub bytes: u64,
    /// Packets.
    pub packets: u64,
    /// Internal: pending TSval << 32 | µs clock (0 = none).
    pub pending: u64,
    /// Last clock read by this direction (`CLOCK_MONOTONIC` ns, 0 = none).
    pub last_ts_ns: u64,
    /// Internal: newest TSval.
    pub last_tsval: u32,
    /// Internal: highest data sequence number.
    pub high_seq: u32,
    /// Retransmits.
    pub retransmits: u32,
    /// Internal: new TSvals seen.
    pub ts_counter: u32,
    /// Last RTT sample (µs) timed by this direction's echoes (down: upstream, up: access).
    pub rtt_us: u32,
    /// RTT samples timed by this direction's echoes.
    pub rtt_samples: u32,
    /// Internal: `FLOW_*` flags.
    pub flags: u32,
    /// Reserved.
    pub reserved: u32,
}
const _: () = assert!(size_of::<RawFlowDir>() == 64);

/// `struct lqos_flow_entry`: one way of the flow table.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawFlowEntry {
    /// The 5-tuple.
    pub key: RawFlowKey,
    /// 0 empty, odd being written, even ≥ 2 live.
    pub state: u64,
    /// Creation time (`CLOCK_MONOTONIC` ns).
    pub first_seen_ns: u64,
    /// Flow generation of the last packet.
    pub gen_: u32,
    /// Circuit slot.
    pub slot: u32,
    /// `[down, up]`.
    pub dir: [RawFlowDir; 2],
}
const _: () = assert!(size_of::<RawFlowEntry>() == 192);

impl RawFlowEntry {
    /// True when the entry holds a flow (not empty, not half-written).
    pub fn is_live(&self) -> bool {
        self.state >= 2 && self.state.is_multiple_of(2)
    }
}

/// `struct lqos_unknown`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawUnknown {
    /// Estimated bytes per direction.
    pub bytes: [u64; 2],
    /// Estimated packets per direction.
    pub packets: [u64; 2],
}
const _: () = assert!(size_of::<RawUnknown>() == 32);

/// `struct lqos_stats`: one CPU's health counters.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawStats {
    /// Flows created.
    pub flows_created: u64,
    /// Flows not tracked because the table was full.
    pub flows_dropped: u64,
    /// Unknown addresses not recorded because the table was full.
    pub unknown_dropped: u64,
    /// RTT samples taken.
    pub rtt_samples: u64,
    /// Classification cache misses (LPM lookups).
    pub cache_misses: u64,
    /// Frames the XDP program could not attach metadata to.
    pub no_metadata: u64,
    /// Internal.
    pub sample_counter: u64,
    /// Internal (benchmark).
    pub bench_counter: u64,
    /// Cache misses the prefix hash could not answer (LPM trie walks).
    pub trie_lookups: u64,
    /// Prefix-hash reads that met a concurrent write (answered by the trie instead).
    pub pfx_torn: u64,
    /// Cache misses the near bitmap answered "unmapped" without probing the hash.
    pub pfx_dark: u64,
    /// New flows refused because their slot used its budget for this generation.
    pub flows_over_budget: u64,
}
const _: () = assert!(size_of::<RawStats>() == 96);

/// Entries per bucket of the exact-prefix hash (`LQOS_PFX_WAYS`).
pub const PFX_WAYS: usize = 2;
/// Prefix lengths listed per family in `lqos_pfx_lens` (`LQOS_PFX_LENS`).
pub const PFX_LENS: usize = 8;
/// Family index of addresses whose first 96 bits are all ones (IPv4).
pub const PFX_FAM_V4: usize = 0;
/// Family index of every other address.
pub const PFX_FAM_V6: usize = 1;

/// `struct lqos_pfx_entry`: one exact prefix of the prefix hash. Written through mmap word by
/// word (see `crate::pfx`); this mirror documents the layout.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PfxEntry {
    /// Even: stable; odd: being written.
    pub seq: u32,
    /// Prefix length + 1; 0 = empty way.
    pub len1: u8,
    /// Zero.
    pub pad: u8,
    /// CPU of the class.
    pub cpu: u16,
    /// Address bits 0..63 (big-endian number), masked to the prefix.
    pub k0: u64,
    /// Address bits 64..127.
    pub k1: u64,
    /// Class handle.
    pub class_handle: u32,
    /// Counter slot.
    pub slot: u32,
}
const _: () = assert!(size_of::<PfxEntry>() == 32);

/// `struct lqos_pfx_bucket`: one cache line of the prefix hash.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PfxBucket {
    /// The ways.
    pub way: [PfxEntry; PFX_WAYS],
}
const _: () = assert!(size_of::<PfxBucket>() == 64);

/// `struct lqos_pfx_family`: the longest prefix lengths of one family.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PfxFamily {
    /// Lengths listed.
    pub n: u8,
    /// 1: no prefix of this family has an unlisted length.
    pub complete: u8,
    /// Bit i: a prefix of `lens[i]` is not in the hash.
    pub overflow: u8,
    /// 1: the family's near bitmap is exact (a clear bit answers "unmapped").
    pub near: u8,
    /// Zero.
    pub pad: [u8; 4],
    /// Longest first, in bits of the 128-bit key.
    pub lens: [u8; PFX_LENS],
}
const _: () = assert!(size_of::<PfxFamily>() == 16);

/// Words of one family's near bitmap (`LQOS_PFX_NEAR_WORDS`: 65,536 bits).
pub const PFX_NEAR_WORDS: usize = 1024;

/// `struct lqos_pfx_lens`: the length lists of both families and their near bitmaps.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PfxLens {
    /// Even: stable; odd: being written (`fam` only).
    pub seq: u32,
    /// Zero.
    pub pad: u32,
    /// `[PFX_FAM_V4]`, `[PFX_FAM_V6]`.
    pub fam: [PfxFamily; 2],
    /// Per family, bit i set while a prefix may cover addresses of near index i.
    pub near: [[u64; PFX_NEAR_WORDS]; 2],
}
const _: () = assert!(size_of::<PfxLens>() == 40 + 2 * PFX_NEAR_WORDS * 8);

impl Default for PfxLens {
    fn default() -> Self {
        PfxLens { seq: 0, pad: 0, fam: [PfxFamily::default(); 2], near: [[0; PFX_NEAR_WORDS]; 2] }
    }
}

/// `struct lqos_xdp_meta`: XDP metadata read by the tc egress classifier.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpMeta {
    /// [`META_MAGIC`].
    pub magic: u32,
    /// Class handle.
    pub class_handle: u32,
}
const _: () = assert!(size_of::<XdpMeta>() == 8);

/// `struct lqos_lpm_key` size (u32 prefixlen + 16 address bytes), as aya's `lpm_trie::Key<[u8; 16]>`.
pub const LPM_KEY_SIZE: usize = 20;
const _: () = assert!(size_of::<aya::maps::lpm_trie::Key<[u8; 16]>>() == LPM_KEY_SIZE);

// All impls below: each type is repr(C), Copy, made only of integers and integer arrays laid
// out without padding (the size asserts above pin the layout), so every bit pattern is valid.
// SAFETY: see above.
unsafe impl aya::Pod for IpInfo {}
// SAFETY: see above.
unsafe impl aya::Pod for CacheEntry {}
// SAFETY: see above.
unsafe impl aya::Pod for CacheSet {}
// SAFETY: see above.
unsafe impl aya::Pod for IfConfig {}
// SAFETY: see above.
unsafe impl aya::Pod for RawSettings {}
// SAFETY: see above.
unsafe impl aya::Pod for RawSlotCounters {}
// SAFETY: see above.
unsafe impl aya::Pod for RawRttHist {}
// SAFETY: see above.
unsafe impl aya::Pod for RawFlowKey {}
// SAFETY: see above.
unsafe impl aya::Pod for RawFlowDir {}
// SAFETY: see above.
unsafe impl aya::Pod for RawFlowEntry {}
// SAFETY: see above.
unsafe impl aya::Pod for RawUnknown {}
// SAFETY: see above.
unsafe impl aya::Pod for RawStats {}
// SAFETY: see above.
unsafe impl aya::Pod for PfxBucket {}
// SAFETY: see above.
unsafe impl aya::Pod for PfxLens {}

/// A shared, writable mapping of a `BPF_F_MMAPABLE` array's values (the programs read the
/// same memory). Accessed only through naturally aligned atomics, since the kernel side reads
/// concurrently; unmapped on drop.
#[derive(Debug)]
pub struct MmapRegion {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the region is plain shared memory owned by this value; every access goes through
// atomics (`u32_at`, `u64_at`), so sharing or sending it between threads is sound.
unsafe impl Send for MmapRegion {}
// SAFETY: as above.
unsafe impl Sync for MmapRegion {}

impl MmapRegion {
    /// Maps the first `len` bytes (rounded up to pages by the kernel) of the map behind `fd`
    /// read-write and shared. The map must be an ARRAY created with `BPF_F_MMAPABLE`.
    pub fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty mapping"));
        }
        // SAFETY: a fresh mapping (addr = NULL) of a file descriptor we borrow for the call; the
        // kernel checks that `len` fits the map and the fd is mmapable. Nothing aliases it yet.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(MmapRegion { ptr, len })
    }

    /// Mapped length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty region (never after a successful [`MmapRegion::map`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The 32-bit word at byte `off` (`None` if unaligned or out of range).
    pub fn u32_at(&self, off: usize) -> Option<&std::sync::atomic::AtomicU32> {
        if !off.is_multiple_of(4) || off.checked_add(4)? > self.len {
            return None;
        }
        // SAFETY: in bounds and 4-aligned (the mapping is page-aligned); the memory lives as long
        // as `self` and is only ever accessed through atomics from this process.
        Some(unsafe { &*self.ptr.as_ptr().add(off).cast::<std::sync::atomic::AtomicU32>() })
    }

    /// The 64-bit word at byte `off` (`None` if unaligned or out of range).
    pub fn u64_at(&self, off: usize) -> Option<&std::sync::atomic::AtomicU64> {
        if !off.is_multiple_of(8) || off.checked_add(8)? > self.len {
            return None;
        }
        // SAFETY: as in `u32_at`, 8-aligned.
        Some(unsafe { &*self.ptr.as_ptr().add(off).cast::<std::sync::atomic::AtomicU64>() })
    }
}

impl Drop for MmapRegion {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `map`, unmapped once here; no
        // reference into it outlives `self` (the accessors borrow `self`).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// `union bpf_attr` as used by the `BPF_MAP_*_BATCH` commands.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}
const _: () = assert!(size_of::<BatchAttr>() == 56);

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

fn bpf_batch(cmd: libc::c_long, attr: &mut BatchAttr) -> io::Result<()> {
    // SAFETY: `attr` is a valid, initialised BatchAttr for the duration of the call; the kernel
    // reads at most size_of::<BatchAttr>() bytes and writes back only `count`. Every pointer in it
    // was set by the callers below from live slices whose lengths match `count`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BatchAttr,
            size_of::<BatchAttr>() as libc::c_uint,
        )
    };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Outcome of one `BPF_MAP_LOOKUP_BATCH` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchChunk {
    /// Entries written to the key and value buffers.
    pub count: usize,
    /// True when the map has no more entries.
    pub done: bool,
}

/// `BPF_MAP_LOOKUP_BATCH`: reads up to `keys.len() / key_size` entries after the position in
/// `in_batch` (`None` = from the start); the next position is written to `out_batch`.
/// `values` must hold `count × value_stride` bytes (per-CPU maps: value rounded to 8 × CPUs).
pub fn lookup_batch(
    fd: BorrowedFd<'_>,
    in_batch: Option<&[u8; 8]>,
    out_batch: &mut [u8; 8],
    keys: &mut [u8],
    key_size: usize,
    values: &mut [u8],
    value_stride: usize,
) -> io::Result<BatchChunk> {
    let max = keys.len() / key_size.max(1);
    if values.len() < max * value_stride {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "value buffer too small"));
    }
    let mut attr = BatchAttr {
        in_batch: in_batch.map_or(0, |b| b.as_ptr() as u64),
        out_batch: out_batch.as_mut_ptr() as u64,
        keys: keys.as_mut_ptr() as u64,
        values: values.as_mut_ptr() as u64,
        count: u32::try_from(max).unwrap_or(u32::MAX),
        map_fd: fd.as_raw_fd() as u32,
        ..BatchAttr::default()
    };
    match bpf_batch(BPF_MAP_LOOKUP_BATCH, &mut attr) {
        Ok(()) => Ok(BatchChunk { count: attr.count as usize, done: false }),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            Ok(BatchChunk { count: attr.count as usize, done: true })
        }
        Err(e) => Err(e),
    }
}

/// `BPF_MAP_UPDATE_BATCH`: `keys` and `values` hold `count` packed entries. Returns how many
/// entries the kernel processed (all of them on success).
pub fn update_batch(
    fd: BorrowedFd<'_>,
    keys: &[u8],
    values: &[u8],
    count: usize,
) -> Result<(), (usize, io::Error)> {
    let mut attr = BatchAttr {
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count: u32::try_from(count).unwrap_or(u32::MAX),
        map_fd: fd.as_raw_fd() as u32,
        ..BatchAttr::default()
    };
    bpf_batch(BPF_MAP_UPDATE_BATCH, &mut attr).map_err(|e| (attr.count as usize, e))
}

/// `BPF_MAP_DELETE_BATCH`: `keys` holds `count` packed keys.
pub fn delete_batch(
    fd: BorrowedFd<'_>,
    keys: &[u8],
    count: usize,
) -> Result<(), (usize, io::Error)> {
    let mut attr = BatchAttr {
        keys: keys.as_ptr() as u64,
        count: u32::try_from(count).unwrap_or(u32::MAX),
        map_fd: fd.as_raw_fd() as u32,
        ..BatchAttr::default()
    };
    bpf_batch(BPF_MAP_DELETE_BATCH, &mut attr).map_err(|e| (attr.count as usize, e))
}

/// Packs a value into its in-memory bytes (for the batch calls).
pub fn pod_bytes<T: aya::Pod>(value: &T) -> &[u8] {
    // SAFETY: T: Pod is repr(C) plain data without padding (see the impls above), so viewing its
    // size_of::<T>() bytes as u8 is valid for the lifetime of the borrow.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
}

/// Reads a `T` from the start of `bytes` (unaligned). `None` if too short.
pub fn pod_from_bytes<T: aya::Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: the slice holds at least size_of::<T>() bytes and T: Pod accepts every bit pattern;
    // read_unaligned does not require alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_round_trip_keeps_every_field() {
        let c = RawSlotCounters {
            bytes: [1, 2],
            packets: [3, 4],
            tcp_packets: [5, 6],
            retransmits: [7, 8],
        };
        let bytes = pod_bytes(&c).to_vec();
        assert_eq!(bytes.len(), 64);
        assert_eq!(pod_from_bytes::<RawSlotCounters>(&bytes), Some(c));
        assert_eq!(pod_from_bytes::<RawSlotCounters>(&bytes[..63]), None);
    }

    #[test]
    fn rtt_bucket_bounds_increase() {
        assert!(RTT_BUCKET_UPPER_US.windows(2).all(|w| w[0] < w[1]));
    }
}
