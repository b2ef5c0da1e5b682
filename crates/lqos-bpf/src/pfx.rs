//! The exact-prefix hash in front of the LPM trie (`lqos_pfx_hash` + `lqos_pfx_lens`, see
//! `bpf/lqos_abi.h`): lets a classification-cache miss cost one or two cache-line loads per
//! listed prefix length instead of a walk of the kernel trie (~18 dependent DRAM misses in a
//! 200k-prefix trie), and answers "unmapped" for Internet scans without touching the trie.
//!
//! The trie stays the single source of truth: [`PrefixIndex`] mirrors it (every change of
//! [`crate::IpMap`] is applied here too, and a failed trie batch resynchronises from the
//! trie). Both maps are written through `mmap`, word by word, with a sequence word per entry
//! (odd while written); the program falls back to the trie on any odd or changed word, so it
//! never returns a mix of two entries.
//!
//! Update order within a batch (readers may hold the old length list throughout):
//! 1. upserts (in place for a replaced prefix; a new prefix takes a free way of one of its two
//!    buckets, possibly after moving one occupant to its other bucket: copy first, then erase,
//!    so a reader always finds it in one of them),
//! 2. deletes, 3. prefixes that found no way earlier, 4. the new length lists.
//!
//! A reader with the old list sees each prefix either as before or as after the batch (a
//! prefix of a length the old list does not show is not probed; a new prefix without a way is
//! absent, as before). Results computed mid-batch are cached under the old epoch, which the
//! batch's epoch bump (after step 4) invalidates.

use std::{
    collections::{HashMap, HashSet},
    sync::atomic::{Ordering, fence},
};

use aya::maps::Map;

use crate::{
    BpfError,
    abi::{MmapRegion, PFX_FAM_V4, PFX_FAM_V6, PFX_LENS, PFX_NEAR_WORDS, PFX_WAYS},
    maps::fd_or_err,
};

/// Map names in `lqos_kern.c`.
pub(crate) const PFX_HASH: &str = "lqos_pfx_hash";
pub(crate) const PFX_LENS_MAP: &str = "lqos_pfx_lens";

const BUCKET_SIZE: usize = 64;
const ENTRY_SIZE: usize = 32;
const LENS_SIZE: usize = NEAR_OFF + 2 * PFX_NEAR_WORDS * 8;
/// Offset of the near bitmaps in `lqos_pfx_lens`.
const NEAR_OFF: usize = 40;
/// Bits of one family's near bitmap.
const NEAR_BITS: usize = PFX_NEAR_WORDS * 64;

/// Buckets of the prefix hash for a trie of `max_mappings` prefixes: a power of two ≥ that
/// (two ways each, so the load factor stays ≤ 50 %), at least 2. `None` if it does not fit.
pub fn buckets_for(max_mappings: u32) -> Option<u32> {
    max_mappings.max(2).checked_next_power_of_two()
}

/// A prefix as the hash stores it: the 128-bit key (IPv4 = twelve 0xFF bytes + address)
/// with the bits past `len` cleared, and the length in bits (IPv4 + 96).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PfxKey {
    /// Prefix length in bits, 0..=128.
    pub len: u8,
    /// The masked address as a big-endian number.
    pub bits: u128,
}

impl PfxKey {
    /// From an LPM key (prefix length, 16 address bytes). `None` for a length over 128.
    pub fn new(prefixlen: u32, addr: [u8; 16]) -> Option<Self> {
        let len = u8::try_from(prefixlen).ok().filter(|l| *l <= 128)?;
        Some(PfxKey { len, bits: mask(u128::from_be_bytes(addr), len) })
    }

    fn k0(&self) -> u64 {
        (self.bits >> 64) as u64
    }

    fn k1(&self) -> u64 {
        self.bits as u64
    }

    /// Which families' addresses this prefix can match: `[IPv4, other]`.
    fn families(&self) -> [bool; 2] {
        let ones96: u128 = (1u128 << 96) - 1;
        let l = u32::from(self.len.min(96));
        let v4 = l == 0 || (self.bits >> (128 - l)) == (1u128 << l) - 1;
        let v6 = self.len < 96 || (self.bits >> 32) != ones96;
        [v4, v6]
    }
}

fn mask(bits: u128, len: u8) -> u128 {
    if len == 0 { 0 } else { bits & (u128::MAX << (128 - u32::from(len.min(128)))) }
}

/// What a prefix maps to, as the hash stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PfxValue {
    /// Class handle.
    pub class_handle: u32,
    /// Counter slot.
    pub slot: u32,
    /// CPU (a CPU over 65535 cannot be stored: such a prefix stays in the trie only).
    pub cpu: u32,
}

/// Same function as `lqos_pfx_hash_key` in `lqos_kern.c`.
fn hash_key(k0: u64, k1: u64, len: u8) -> u64 {
    let mut h = k0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ k1.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
        ^ (u64::from(len) + 1).wrapping_mul(0x1656_67b1_9e37_79f9);
    h ^= h >> 31;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 29;
    h
}

/// The two candidate buckets of a prefix (same as `lqos_pfx_probe` in `lqos_kern.c`).
fn bucket_pair(key: &PfxKey, mask: u32) -> (u32, u32) {
    let h = hash_key(key.k0(), key.k1(), key.len);
    ((h as u32) & mask, ((h >> 32) as u32) & mask)
}

/// Ways examined at most when looking for room by moving entries.
const MAX_SEARCH: usize = 512;

/// Where a new prefix goes: `[s0, …, sn]` with `s0` in one of its buckets, each `s(i+1)` in
/// the other bucket of the occupant of `s(i)`, and `sn` free (a breadth-first search over
/// moves, bounded by [`MAX_SEARCH`] ways). A free way of the emptier bucket is a path of one.
/// `None`: no room found.
fn find_path<E>(
    key: &PfxKey,
    mask: u32,
    occupant: &mut impl FnMut(u32, u8) -> Result<Option<PfxKey>, E>,
) -> Result<Option<Vec<(u32, u8)>>, E> {
    let (b1, b2) = bucket_pair(key, mask);
    let mut best: Option<(u32, u8, usize)> = None;
    for b in [b1, b2] {
        let mut free = None;
        let mut used = 0;
        for w in 0..PFX_WAYS as u8 {
            if occupant(b, w)?.is_some() {
                used += 1;
            } else if free.is_none() {
                free = Some(w);
            }
        }
        if let Some(w) = free
            && best.is_none_or(|(_, _, u)| used < u)
        {
            best = Some((b, w, used));
        }
    }
    if let Some((b, w, _)) = best {
        return Ok(Some(vec![(b, w)]));
    }
    // (slot, index of the slot whose occupant moves into it)
    let mut nodes: Vec<((u32, u8), usize)> = Vec::new();
    let mut seen: HashSet<(u32, u8)> = HashSet::new();
    for b in [b1, b2] {
        for w in 0..PFX_WAYS as u8 {
            if seen.insert((b, w)) {
                nodes.push(((b, w), usize::MAX));
            }
        }
    }
    let mut i = 0;
    while i < nodes.len() && nodes.len() < MAX_SEARCH {
        let ((b, w), _) = nodes[i];
        if let Some(occ) = occupant(b, w)? {
            let (o1, o2) = bucket_pair(&occ, mask);
            let alt = if o1 == b { o2 } else { o1 };
            if alt != b {
                for aw in 0..PFX_WAYS as u8 {
                    if !seen.insert((alt, aw)) {
                        continue;
                    }
                    nodes.push(((alt, aw), i));
                    if occupant(alt, aw)?.is_none() {
                        let mut path = Vec::new();
                        let mut j = nodes.len() - 1;
                        loop {
                            path.push(nodes[j].0);
                            if nodes[j].1 == usize::MAX {
                                break;
                            }
                            j = nodes[j].1;
                        }
                        path.reverse();
                        return Ok(Some(path));
                    }
                }
            }
        }
        i += 1;
    }
    Ok(None)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    At { bucket: u32, way: u8 },
    Unplaced,
}

/// Counts the writer keeps per family and length.
#[derive(Debug, Clone)]
struct Lengths {
    count: [[u32; 129]; 2],
    unplaced: [[u32; 129]; 2],
}

/// Prefixes per near index of each family, and the prefixes of other addresses shorter than
/// /32 (which make that family's near bitmap unusable).
#[derive(Debug, Clone)]
struct Near {
    count: [Vec<u32>; 2],
    v6_short: u32,
}

/// The near indices (`lqos_abi.h`, near bitmaps) a prefix covers in family `fam`: a range of
/// IPv4 /16s, or one hashed /32 of other addresses; `None` for a prefix of other addresses
/// shorter than /32 (it covers too much to list).
fn near_range(key: &PfxKey, fam: usize) -> Option<std::ops::Range<usize>> {
    if fam == PFX_FAM_V4 {
        let v4len = key.len.saturating_sub(96);
        let addr = if key.len >= 96 { (key.bits & 0xffff_ffff) as u32 } else { 0 };
        let top = (addr >> 16) as usize;
        if v4len >= 16 {
            return Some(top..top + 1);
        }
        let span = 1usize << (16 - u32::from(v4len));
        let first = top & !(span - 1);
        Some(first..first + span)
    } else if key.len < 32 {
        None
    } else {
        let top32 = (key.bits >> 96) as u32;
        let idx = (top32.wrapping_mul(0x9e37_79b1) >> 16) as usize;
        Some(idx..idx + 1)
    }
}

/// Userspace side of the prefix hash: a mirror of the trie's prefixes and where each sits.
#[derive(Debug)]
pub(crate) struct PrefixIndex {
    hash: MmapRegion,
    lens: MmapRegion,
    bucket_mask: u32,
    entries: HashMap<PfxKey, (PfxValue, Place)>,
    unplaced: HashSet<PfxKey>,
    lengths: Box<Lengths>,
    near: Near,
    trusted: bool,
    moves: u64,
}

/// Statistics of the prefix hash (tests, diagnostics, the benchmark).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefixHashInfo {
    /// Buckets (two ways each).
    pub buckets: u32,
    /// Prefixes mirrored.
    pub prefixes: usize,
    /// Prefixes without a way (their lengths fall back to the trie on a miss).
    pub unplaced: usize,
    /// False after a failure to read the trie: the length lists then send every miss to
    /// the trie until the next successful resynchronisation.
    pub trusted: bool,
    /// Entries moved to their other bucket to make room, since load.
    pub moves: u64,
}

fn internal(map: &'static str, what: &str) -> BpfError {
    BpfError::MapSyscall {
        map,
        operation: what.to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "offset outside the mapping"),
    }
}

impl PrefixIndex {
    /// Maps both arrays and sets the length lists to "always the trie" (the hash is empty;
    /// [`PrefixIndex::sync`] fills it).
    pub(crate) fn new(hash: &Map, lens: &Map) -> Result<Self, BpfError> {
        let buckets = crate::maps::max_entries(hash, PFX_HASH)?;
        if buckets < 2 || !buckets.is_power_of_two() {
            return Err(BpfError::InvalidOption {
                option: "lqos_pfx_hash max_entries",
                reason: "must be a power of two, at least 2",
            });
        }
        let hash_len = (buckets as usize).saturating_mul(BUCKET_SIZE);
        let hash_region =
            MmapRegion::map(fd_or_err(hash, PFX_HASH)?, hash_len).map_err(|source| {
                BpfError::MapSyscall { map: PFX_HASH, operation: "mmap".into(), source }
            })?;
        let lens_region =
            MmapRegion::map(fd_or_err(lens, PFX_LENS_MAP)?, LENS_SIZE).map_err(|source| {
                BpfError::MapSyscall { map: PFX_LENS_MAP, operation: "mmap".into(), source }
            })?;
        let mut me = PrefixIndex {
            hash: hash_region,
            lens: lens_region,
            bucket_mask: buckets - 1,
            entries: HashMap::new(),
            unplaced: HashSet::new(),
            lengths: Box::new(Lengths { count: [[0; 129]; 2], unplaced: [[0; 129]; 2] }),
            near: Near { count: [vec![0; NEAR_BITS], vec![0; NEAR_BITS]], v6_short: 0 },
            trusted: false,
            moves: 0,
        };
        me.write_fallback()?;
        me.erase_all()?;
        Ok(me)
    }

    pub(crate) fn info(&self) -> PrefixHashInfo {
        PrefixHashInfo {
            buckets: self.bucket_mask + 1,
            prefixes: self.entries.len(),
            unplaced: self.unplaced.len(),
            trusted: self.trusted,
            moves: self.moves,
        }
    }

    fn entry_off(bucket: u32, way: u8) -> usize {
        bucket as usize * BUCKET_SIZE + usize::from(way) * ENTRY_SIZE
    }

    /// The key stored at a way (`None` = empty).
    fn read_key(&self, bucket: u32, way: u8) -> Result<Option<PfxKey>, BpfError> {
        let off = Self::entry_off(bucket, way);
        let lc = self.hash.u32_at(off + 4).ok_or_else(|| internal(PFX_HASH, "read entry"))?;
        let len1 = (lc.load(Ordering::Relaxed) & 0xff) as u8;
        if len1 == 0 {
            return Ok(None);
        }
        let k0 = self.hash.u64_at(off + 8).ok_or_else(|| internal(PFX_HASH, "read entry"))?;
        let k1 = self.hash.u64_at(off + 16).ok_or_else(|| internal(PFX_HASH, "read entry"))?;
        let bits =
            (u128::from(k0.load(Ordering::Relaxed)) << 64) | u128::from(k1.load(Ordering::Relaxed));
        Ok(Some(PfxKey { len: len1 - 1, bits }))
    }

    /// Writes one way under its sequence word (`None` empties it).
    fn write_way(
        &self,
        bucket: u32,
        way: u8,
        e: Option<(&PfxKey, &PfxValue)>,
    ) -> Result<(), BpfError> {
        let off = Self::entry_off(bucket, way);
        let err = || internal(PFX_HASH, "write entry");
        let seq = self.hash.u32_at(off).ok_or_else(err)?;
        let lc = self.hash.u32_at(off + 4).ok_or_else(err)?;
        let k0 = self.hash.u64_at(off + 8).ok_or_else(err)?;
        let k1 = self.hash.u64_at(off + 16).ok_or_else(err)?;
        let cs = self.hash.u64_at(off + 24).ok_or_else(err)?;
        let s = seq.load(Ordering::Relaxed);
        // Odd (also when a previous writer died half-way and left it odd).
        let odd = s | 1;
        seq.store(odd, Ordering::Relaxed);
        fence(Ordering::Release);
        match e {
            Some((key, v)) => {
                k0.store(key.k0(), Ordering::Relaxed);
                k1.store(key.k1(), Ordering::Relaxed);
                cs.store(u64::from(v.class_handle) | (u64::from(v.slot) << 32), Ordering::Relaxed);
                let cpu = u16::try_from(v.cpu).unwrap_or(0);
                lc.store((u32::from(key.len) + 1) | (u32::from(cpu) << 16), Ordering::Relaxed);
            }
            None => {
                lc.store(0, Ordering::Relaxed);
                k0.store(0, Ordering::Relaxed);
                k1.store(0, Ordering::Relaxed);
                cs.store(0, Ordering::Relaxed);
            }
        }
        seq.store(odd.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    fn erase_all(&mut self) -> Result<(), BpfError> {
        for w in 0..2 * PFX_NEAR_WORDS {
            self.lens
                .u64_at(NEAR_OFF + 8 * w)
                .ok_or_else(|| internal(PFX_LENS_MAP, "write near bitmap"))?
                .store(0, Ordering::Relaxed);
        }
        for b in 0..=self.bucket_mask {
            for w in 0..PFX_WAYS as u8 {
                if self.read_key(b, w)?.is_some() {
                    self.write_way(b, w, None)?;
                }
            }
        }
        Ok(())
    }

    fn write_lens_words(&self, words: [u64; 4]) -> Result<(), BpfError> {
        let err = || internal(PFX_LENS_MAP, "write lengths");
        let seq = self.lens.u32_at(0).ok_or_else(err)?;
        let odd = seq.load(Ordering::Relaxed) | 1;
        seq.store(odd, Ordering::Relaxed);
        fence(Ordering::Release);
        for (i, w) in words.iter().enumerate() {
            self.lens.u64_at(8 + 8 * i).ok_or_else(err)?.store(*w, Ordering::Relaxed);
        }
        seq.store(odd.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    fn lens_seq(&self) -> Result<&std::sync::atomic::AtomicU32, BpfError> {
        self.lens.u32_at(0).ok_or_else(|| internal(PFX_LENS_MAP, "write lengths"))
    }

    /// Makes the length list's sequence word odd: lookups under way or starting now answer
    /// from the trie.
    fn lens_seq_odd(&self) -> Result<(), BpfError> {
        let seq = self.lens_seq()?;
        seq.store(seq.load(Ordering::Relaxed) | 1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        Ok(())
    }

    /// Makes it even again (a new value: lookups that started before see a change).
    fn lens_seq_even(&self) -> Result<(), BpfError> {
        let seq = self.lens_seq()?;
        let odd = seq.load(Ordering::Relaxed) | 1;
        seq.store(odd.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Nothing listed, not complete: every cache miss walks the trie.
    fn write_fallback(&mut self) -> Result<(), BpfError> {
        self.write_lens_words([0; 4])
    }

    /// Sends every miss to the trie until the next [`PrefixIndex::sync`] (used when the
    /// trie's contents are unknown).
    pub(crate) fn invalidate(&mut self) -> Result<(), BpfError> {
        self.trusted = false;
        self.write_fallback()
    }

    fn family_words(&self, fam: usize) -> [u64; 2] {
        let mut lens = [0u8; PFX_LENS];
        let mut n = 0usize;
        let mut overflow = 0u8;
        let mut complete = true;
        for len in (0..=128usize).rev() {
            if self.lengths.count[fam][len] == 0 {
                continue;
            }
            if n == PFX_LENS {
                complete = false;
                break;
            }
            lens[n] = len as u8;
            if self.lengths.unplaced[fam][len] > 0 {
                overflow |= 1 << n;
            }
            n += 1;
        }
        let near = fam == PFX_FAM_V4 || self.near.v6_short == 0;
        let head = n as u64
            | (u64::from(complete) << 8)
            | (u64::from(overflow) << 16)
            | (u64::from(near) << 24);
        [head, u64::from_le_bytes(lens)]
    }

    fn write_lengths(&mut self) -> Result<(), BpfError> {
        if !self.trusted {
            return self.write_fallback();
        }
        let [a, b] = self.family_words(PFX_FAM_V4);
        let [c, d] = self.family_words(PFX_FAM_V6);
        self.write_lens_words([a, b, c, d])
    }

    fn count(
        &mut self,
        key: &PfxKey,
        delta_count: i32,
        delta_unplaced: i32,
    ) -> Result<(), BpfError> {
        let l = usize::from(key.len);
        for (fam, on) in key.families().into_iter().enumerate() {
            if on {
                let c = &mut self.lengths.count[fam][l];
                *c = c.saturating_add_signed(delta_count);
                let u = &mut self.lengths.unplaced[fam][l];
                *u = u.saturating_add_signed(delta_unplaced);
                if delta_count != 0 {
                    self.count_near(key, fam, delta_count)?;
                }
            }
        }
        Ok(())
    }

    /// Counts a prefix in (or out of) its family's near bitmap and rewrites the words whose
    /// bits change: set when the first prefix arrives, clear when the last one left.
    fn count_near(&mut self, key: &PfxKey, fam: usize, delta: i32) -> Result<(), BpfError> {
        let Some(range) = near_range(key, fam) else {
            self.near.v6_short = self.near.v6_short.saturating_add_signed(delta);
            return Ok(());
        };
        let mut touched: Vec<usize> = Vec::new();
        for i in range {
            let Some(c) = self.near.count[fam].get_mut(i) else { continue };
            let before = *c > 0;
            *c = c.saturating_add_signed(delta);
            if before != (*c > 0) && touched.last() != Some(&(i / 64)) {
                touched.push(i / 64);
            }
        }
        for w in touched {
            let counts = &self.near.count[fam][w * 64..w * 64 + 64];
            let word = counts
                .iter()
                .enumerate()
                .fold(0u64, |acc, (b, c)| if *c > 0 { acc | (1 << b) } else { acc });
            self.lens
                .u64_at(NEAR_OFF + 8 * (fam * PFX_NEAR_WORDS + w))
                .ok_or_else(|| internal(PFX_LENS_MAP, "write near bitmap"))?
                .store(word, Ordering::Release);
        }
        Ok(())
    }

    /// Finds a way for a prefix (free way of the emptier bucket, else one occupant moved to
    /// its other bucket) and writes it there. `Unplaced` if neither works.
    fn place(&mut self, key: &PfxKey, v: &PfxValue) -> Result<Place, BpfError> {
        if v.cpu > u32::from(u16::MAX) {
            return Ok(Place::Unplaced);
        }
        let mask = self.bucket_mask;
        let path = find_path(key, mask, &mut |b, w| self.read_key(b, w))?;
        let Some(path) = path else { return Ok(Place::Unplaced) };
        // From the free end backwards: each occupant is copied into the next slot of the
        // path before its own slot is overwritten, so a reader finds it in one of its two
        // buckets at every moment. A reader's two probes are two moments, though: while
        // entries move the list's sequence word stays odd, and a lookup that saw it change
        // walks the trie instead (an error half-way leaves it odd: every miss walks the trie
        // until the next length list is written).
        let moving = path.len() > 1;
        if moving {
            self.lens_seq_odd()?;
        }
        for i in (1..path.len()).rev() {
            let (from_b, from_w) = path[i - 1];
            let (to_b, to_w) = path[i];
            let Some(occ) = self.read_key(from_b, from_w)? else { continue };
            let Some(&(ov, _)) = self.entries.get(&occ) else {
                return Err(internal(PFX_HASH, "move an unknown occupant"));
            };
            self.write_way(to_b, to_w, Some((&occ, &ov)))?;
            self.moves += 1;
            if let Some(e) = self.entries.get_mut(&occ) {
                e.1 = Place::At { bucket: to_b, way: to_w };
            }
        }
        let (b, w) = path[0];
        self.write_way(b, w, Some((key, v)))?;
        if moving {
            self.lens_seq_even()?;
        }
        Ok(Place::At { bucket: b, way: w })
    }

    fn upsert(&mut self, key: PfxKey, v: PfxValue) -> Result<(), BpfError> {
        match self.entries.get(&key).copied() {
            Some((old, _)) if old == v => Ok(()),
            Some((_, Place::At { bucket, way })) => {
                if v.cpu > u32::from(u16::MAX) {
                    // Cannot be stored any more: out of the hash, its length falls back. The
                    // lists say so before the entry goes (a reader must not miss it while
                    // its length still claims every prefix is in the hash); they match the
                    // hash as it is at this point of the batch.
                    self.entries.insert(key, (v, Place::Unplaced));
                    self.unplaced.insert(key);
                    self.count(&key, 0, 1)?;
                    self.write_lengths()?;
                    self.write_way(bucket, way, None)?;
                } else {
                    self.write_way(bucket, way, Some((&key, &v)))?;
                    self.entries.insert(key, (v, Place::At { bucket, way }));
                }
                Ok(())
            }
            Some((_, Place::Unplaced)) => {
                self.entries.insert(key, (v, Place::Unplaced));
                let p = self.place(&key, &v)?;
                if p != Place::Unplaced {
                    self.entries.insert(key, (v, p));
                    self.unplaced.remove(&key);
                    self.count(&key, 0, -1)?;
                }
                Ok(())
            }
            None => {
                // Recorded first so that a move in `place` never meets an unknown occupant.
                self.entries.insert(key, (v, Place::Unplaced));
                let p = self.place(&key, &v)?;
                self.entries.insert(key, (v, p));
                if p == Place::Unplaced {
                    self.unplaced.insert(key);
                    self.count(&key, 1, 1)?;
                } else {
                    self.count(&key, 1, 0)?;
                }
                Ok(())
            }
        }
    }

    fn delete(&mut self, key: &PfxKey) -> Result<(), BpfError> {
        let Some((_, place)) = self.entries.get(key).copied() else { return Ok(()) };
        match place {
            Place::At { bucket, way } => {
                self.write_way(bucket, way, None)?;
                self.count(key, -1, 0)?;
            }
            Place::Unplaced => {
                self.unplaced.remove(key);
                self.count(key, -1, -1)?;
            }
        }
        self.entries.remove(key);
        Ok(())
    }

    /// Applies one batch in the order described in the module documentation. On an error
    /// (which only a broken mapping can cause) the lists fall back to the trie.
    pub(crate) fn apply(
        &mut self,
        upserts: &[(PfxKey, PfxValue)],
        deletes: &[PfxKey],
    ) -> Result<(), BpfError> {
        let res = self.apply_inner(upserts, deletes);
        if res.is_err() {
            self.trusted = false;
            let _ = self.write_fallback();
        }
        res
    }

    fn apply_inner(
        &mut self,
        upserts: &[(PfxKey, PfxValue)],
        deletes: &[PfxKey],
    ) -> Result<(), BpfError> {
        for (k, v) in upserts {
            self.upsert(*k, *v)?;
        }
        for k in deletes {
            self.delete(k)?;
        }
        if !self.unplaced.is_empty() {
            let retry: Vec<PfxKey> = self.unplaced.iter().copied().collect();
            for k in retry {
                let Some(&(v, _)) = self.entries.get(&k) else { continue };
                let p = self.place(&k, &v)?;
                if p != Place::Unplaced {
                    self.entries.insert(k, (v, p));
                    self.unplaced.remove(&k);
                    self.count(&k, 0, -1)?;
                }
            }
        }
        self.write_lengths()
    }

    /// Makes the hash hold exactly `trie` (the trie's whole contents), then lists the lengths.
    pub(crate) fn sync(&mut self, trie: &[(PfxKey, PfxValue)]) -> Result<(), BpfError> {
        let want: HashMap<PfxKey, PfxValue> = trie.iter().copied().collect();
        let deletes: Vec<PfxKey> =
            self.entries.keys().filter(|k| !want.contains_key(k)).copied().collect();
        let upserts: Vec<(PfxKey, PfxValue)> = want
            .iter()
            .filter(|(k, v)| self.entries.get(k).is_none_or(|(old, _)| old != *v))
            .map(|(k, v)| (*k, *v))
            .collect();
        self.trusted = true;
        self.apply(&upserts, &deletes)
    }

    /// The list the program reads for a family (tests and diagnostics): lengths longest
    /// first, complete, overflow mask.
    pub(crate) fn listed(&self, fam: usize) -> (Vec<u8>, bool, u8) {
        let [head, lens] = self.family_words(fam.min(PFX_FAM_V6));
        let n = (head & 0xff) as usize;
        let bytes = lens.to_le_bytes();
        (bytes[..n.min(PFX_LENS)].to_vec(), (head >> 8) & 0xff != 0, ((head >> 16) & 0xff) as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> PfxKey {
        let net: ipnet::IpNet = s.parse().expect("net");
        let k = crate::maps::encode_net(&net);
        PfxKey::new(k.prefix_len(), k.data()).expect("key")
    }

    #[test]
    fn ipv4_prefixes_belong_to_the_ipv4_family_only() {
        assert_eq!(key("198.18.0.0/24").families(), [true, false]);
        assert_eq!(key("0.0.0.0/0").families(), [true, false]);
        assert_eq!(key("2001:db8::/32").families(), [false, true]);
        // Shorter than 96 bits: can cover both kinds of address.
        assert_eq!(key("::/0").families(), [true, true]);
        assert_eq!(key("ffff::/16").families(), [true, true]);
        assert_eq!(key("fffe::/16").families(), [false, true]);
    }

    #[test]
    fn mask_clears_bits_past_the_length() {
        assert_eq!(mask(u128::MAX, 0), 0);
        assert_eq!(mask(u128::MAX, 128), u128::MAX);
        assert_eq!(mask(u128::MAX, 1), 1u128 << 127);
        let k = key("198.18.0.77/24");
        assert_eq!(k.len, 120);
        assert_eq!(k.bits & 0xff, 0);
    }

    #[test]
    fn bucket_count_keeps_load_at_most_half() {
        assert_eq!(buckets_for(0), Some(2));
        assert_eq!(buckets_for(262_144), Some(262_144));
        assert_eq!(buckets_for(200_000), Some(262_144));
        assert_eq!(buckets_for(u32::MAX), None);
    }

    /// The placement of `PrefixIndex::place` on a model table; returns the keys left
    /// without a way.
    fn simulate(keys: &[PfxKey], buckets: u32) -> usize {
        let mask = buckets - 1;
        let mut table: Vec<[Option<PfxKey>; 2]> = vec![[None, None]; buckets as usize];
        let mut unplaced = 0;
        for k in keys {
            let path = find_path::<()>(k, mask, &mut |b, w| Ok(table[b as usize][w as usize]))
                .expect("model");
            let Some(path) = path else {
                unplaced += 1;
                continue;
            };
            for i in (1..path.len()).rev() {
                let (fb, fw) = path[i - 1];
                let (tb, tw) = path[i];
                table[tb as usize][tw as usize] = table[fb as usize][fw as usize];
            }
            table[path[0].0 as usize][path[0].1 as usize] = Some(*k);
        }
        // Every key sits in one of its two buckets, exactly once.
        let mut count = 0;
        for (b, ways) in table.iter().enumerate() {
            for k in ways.iter().flatten() {
                let (b1, b2) = bucket_pair(k, mask);
                assert!(b as u32 == b1 || b as u32 == b2, "{k:?} in bucket {b}");
                count += 1;
            }
        }
        assert_eq!(count + unplaced, keys.len());
        unplaced
    }

    #[test]
    fn a_dense_address_plan_at_the_default_size_places_every_prefix() {
        // The benchmark's plan: 100k subscribers spread over 131 072 IPv4 /32s and as many
        // IPv6 /64s, in a table sized for the default 262 144 mappings.
        let mut keys = Vec::new();
        for k in 0..100_000u64 {
            let off = (k * 131_072 / 100_000) as u32;
            let v4 =
                std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(198, 18, 0, 0)) + off);
            keys.push(key(&format!("{v4}/32")));
            let v6 = std::net::Ipv6Addr::from((0x2001_0db8u128 << 96) | (u128::from(off) << 64));
            keys.push(key(&format!("{v6}/64")));
        }
        let lost = simulate(&keys, buckets_for(262_144).expect("size"));
        assert_eq!(lost, 0, "{lost} of {} prefixes without a way", keys.len());
        // Random prefixes of mixed lengths at the 50 % limit: (almost) all placed.
        let mut x = 1u64;
        let random: Vec<PfxKey> = (0..4096)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                PfxKey {
                    len: 64 + (x >> 60) as u8,
                    bits: mask(
                        u128::from(x) << 64 | u128::from(x.rotate_left(17)),
                        64 + (x >> 60) as u8,
                    ),
                }
            })
            .collect();
        let lost = simulate(&random, 4096);
        assert_eq!(lost, 0, "{lost} of 4096 random prefixes without a way");
    }

    #[test]
    fn hash_spreads_neighbouring_prefixes() {
        let mut seen = HashSet::new();
        for i in 0..4096u32 {
            let k = PfxKey { len: 128, bits: (u128::MAX << 32) | u128::from(i) };
            seen.insert((hash_key(k.k0(), k.k1(), k.len) as u32) & 4095);
        }
        // Random placement of 4096 keys into 4096 buckets fills about 63 %.
        assert!(seen.len() > 2300, "{} buckets used", seen.len());
    }
}
