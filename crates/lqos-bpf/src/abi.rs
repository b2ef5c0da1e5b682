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
/// One interface, two VLANs: direction from the VLAN tag.
pub const DIR_STICK: u32 = 3;
/// Magic in [`XdpMeta::magic`] ("LQOS").
pub const META_MAGIC: u32 = 0x4c51_4f53;
/// Hot-cache flag: negative entry.
pub const CACHE_NEGATIVE: u32 = 1;

/// `struct lqos_ip_info`: the value of the IP mapping trie.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpInfo {
    /// CPU (cpumap index) serving the class's queue.
    pub cpu: u32,
    /// `major << 16 | minor`.
    pub class_handle: u32,
    /// Circuit hash.
    pub circuit_hash: u64,
    /// Device hash.
    pub device_hash: u64,
}
const _: () = assert!(size_of::<IpInfo>() == 24);

/// `struct lqos_cache_entry`: hot-cache value.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheEntry {
    /// Cached mapping.
    pub info: IpInfo,
    /// Epoch the entry was found in.
    pub epoch: u32,
    /// [`CACHE_NEGATIVE`] or 0.
    pub flags: u32,
}
const _: () = assert!(size_of::<CacheEntry>() == 32);

/// `struct lqos_if_config`: per-interface configuration keyed by ifindex.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfConfig {
    /// One of the `DIR_*` constants.
    pub direction: u32,
    /// Stick: VLAN facing the Internet.
    pub internet_vid: u16,
    /// Stick: VLAN facing the subscribers.
    pub isp_vid: u16,
    /// Stick: added to CPU and class major for uploads.
    pub stick_offset: u32,
    /// Reserved, 0.
    pub flags: u32,
}
const _: () = assert!(size_of::<IfConfig>() == 16);

/// `struct lqos_host_counter`: one CPU's counters for one subscriber address.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawHostCounter {
    /// Download bytes (L2).
    pub download_bytes: u64,
    /// Download packets.
    pub download_packets: u64,
    /// Upload bytes (L2).
    pub upload_bytes: u64,
    /// Upload packets.
    pub upload_packets: u64,
    /// `bpf_ktime_get_boot_ns()` of the last packet.
    pub last_seen_ns: u64,
    /// Last class handle (0 = unmapped).
    pub class_handle: u32,
    /// Reserved.
    pub reserved: u32,
}
const _: () = assert!(size_of::<RawHostCounter>() == 48);

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

// SAFETY: IpInfo is repr(C), Copy, has no padding (u32, u32, u64, u64) and every bit pattern is valid.
unsafe impl aya::Pod for IpInfo {}
// SAFETY: CacheEntry is repr(C), Copy, 24 + 4 + 4 bytes without padding, all bit patterns valid.
unsafe impl aya::Pod for CacheEntry {}
// SAFETY: IfConfig is repr(C), Copy, 4 + 2 + 2 + 4 + 4 bytes without padding, all bit patterns valid.
unsafe impl aya::Pod for IfConfig {}
// SAFETY: RawHostCounter is repr(C), Copy, 5 × u64 + 2 × u32 without padding, all bit patterns valid.
unsafe impl aya::Pod for RawHostCounter {}

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
        let c = RawHostCounter {
            download_bytes: 1,
            download_packets: 2,
            upload_bytes: 3,
            upload_packets: 4,
            last_seen_ns: 5,
            class_handle: 0x0003_0010,
            reserved: 0,
        };
        let bytes = pod_bytes(&c).to_vec();
        assert_eq!(bytes.len(), 48);
        assert_eq!(pod_from_bytes::<RawHostCounter>(&bytes), Some(c));
        assert_eq!(pod_from_bytes::<RawHostCounter>(&bytes[..47]), None);
    }
}
