//! What the data plane measures, read in batches: per-slot counters ([`SlotCounterMap`]),
//! per-slot RTT histograms ([`RttHistograms`]), the flow table ([`FlowTable`], aged out by
//! [`FlowAger`]), the sampled unknown-address table ([`UnknownTable`]) and the programs' own
//! health counters ([`DataplaneStats`]).
//!
//! Index conventions: `[_; 2]` direction arrays are `[DOWN, UP]` ([`abi::DOWN`], [`abi::UP`]);
//! RTT arrays are `[ACCESS, UPSTREAM]` ([`abi::PATH_ACCESS`], [`abi::PATH_UPSTREAM`]).

use std::{net::IpAddr, ops::Range, os::fd::BorrowedFd};

use aya::maps::{Array, Map, MapData, PerCpuArray};

use crate::{
    BpfError,
    abi::{
        self, MmapRegion, RawFlowEntry, RawFlowKey, RawRttHist, RawSlotCounters, RawStats,
        RawUnknown,
    },
    maps::{
        FLOW_GEN, FLOWS, RTT_HIST, SLOT_COUNTERS, STATS, UNKNOWN, decode_addr, encode_addr,
        fd_or_err, map_err, max_entries,
    },
};

/// Entries fetched per `BPF_MAP_LOOKUP_BATCH` call.
const BATCH: usize = 4096;

/// Counters of one slot, summed over CPUs. Monotonic (wrapping) until the slot is reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotCounters {
    /// L2 bytes seen by XDP (before shaping), `[down, up]`.
    pub bytes: [u64; 2],
    /// Packets, `[down, up]`.
    pub packets: [u64; 2],
    /// TCP packets, `[down, up]`.
    pub tcp_packets: [u64; 2],
    /// TCP retransmits (a data segment whose sequence number is at or below the highest
    /// already seen in that flow direction), `[down, up]`.
    pub retransmits: [u64; 2],
}

impl SlotCounters {
    fn add(&mut self, r: &RawSlotCounters) {
        for d in 0..2 {
            self.bytes[d] = self.bytes[d].wrapping_add(r.bytes[d]);
            self.packets[d] = self.packets[d].wrapping_add(r.packets[d]);
            self.tcp_packets[d] = self.tcp_packets[d].wrapping_add(r.tcp_packets[d]);
            self.retransmits[d] = self.retransmits[d].wrapping_add(r.retransmits[d]);
        }
    }

    /// `self - older`, field by field (wrapping), for rates between two reads.
    pub fn delta(&self, older: &SlotCounters) -> SlotCounters {
        let mut out = SlotCounters::default();
        for d in 0..2 {
            out.bytes[d] = self.bytes[d].wrapping_sub(older.bytes[d]);
            out.packets[d] = self.packets[d].wrapping_sub(older.packets[d]);
            out.tcp_packets[d] = self.tcp_packets[d].wrapping_sub(older.tcp_packets[d]);
            out.retransmits[d] = self.retransmits[d].wrapping_sub(older.retransmits[d]);
        }
        out
    }
}

/// Reads `count` consecutive entries of an array map starting at index `first`, in
/// `BPF_MAP_LOOKUP_BATCH` chunks; calls `f(index, value_bytes)` for each.
pub(crate) fn read_array(
    fd: BorrowedFd<'_>,
    name: &'static str,
    range: Range<u32>,
    stride: usize,
    mut f: impl FnMut(u32, &[u8]),
) -> Result<(), BpfError> {
    if range.is_empty() {
        return Ok(());
    }
    let chunk = BATCH.min(range.len());
    let mut keys = vec![0u8; chunk * 4];
    let mut values = vec![0u8; chunk * stride];
    let mut next = range.start;
    // Bounded: each round advances `next` by ≥ 1 or stops.
    while next < range.end {
        let want = ((range.end - next) as usize).min(chunk);
        let mut token_in = [0u8; 8];
        let mut token_out = [0u8; 8];
        let prev = next.checked_sub(1);
        if let Some(p) = prev {
            token_in[..4].copy_from_slice(&p.to_ne_bytes());
        }
        let res = abi::lookup_batch(
            fd,
            prev.map(|_| &token_in),
            &mut token_out,
            &mut keys[..want * 4],
            4,
            &mut values[..want * stride],
            stride,
        )
        .map_err(|source| BpfError::MapSyscall {
            map: name,
            operation: format!("batch lookup from index {next}"),
            source,
        })?;
        if res.count == 0 {
            break;
        }
        for i in 0..res.count {
            let idx = u32::from_ne_bytes([
                keys[i * 4],
                keys[i * 4 + 1],
                keys[i * 4 + 2],
                keys[i * 4 + 3],
            ]);
            if idx >= range.end {
                return Ok(());
            }
            f(idx, &values[i * stride..(i + 1) * stride]);
            next = idx.saturating_add(1);
        }
        if res.done {
            break;
        }
    }
    Ok(())
}

/// Reads every entry of a hash map in batches; calls `f(key_bytes, value_bytes)`.
fn read_hash(
    fd: BorrowedFd<'_>,
    name: &'static str,
    key_size: usize,
    stride: usize,
    max_entries: u32,
    mut f: impl FnMut(&[u8], &[u8]),
) -> Result<(), BpfError> {
    let mut keys = vec![0u8; BATCH * key_size];
    let mut values = vec![0u8; BATCH * stride];
    let mut token_in = [0u8; 8];
    let mut token_out = [0u8; 8];
    let mut first = true;
    // Bounded: the map never holds more than max_entries, and every round returns ≥ 1 entry
    // or ends; hash buckets are walked once.
    for _ in 0..=max_entries {
        let chunk = abi::lookup_batch(
            fd,
            if first { None } else { Some(&token_in) },
            &mut token_out,
            &mut keys,
            key_size,
            &mut values,
            stride,
        )
        .map_err(|source| BpfError::MapSyscall {
            map: name,
            operation: "batch lookup".into(),
            source,
        })?;
        for i in 0..chunk.count {
            f(&keys[i * key_size..(i + 1) * key_size], &values[i * stride..(i + 1) * stride]);
        }
        if chunk.done {
            break;
        }
        token_in = token_out;
        first = false;
    }
    Ok(())
}

/// Per-slot, per-CPU counters: an `ARRAY` of `possible CPUs × slots` entries, index
/// `cpu × slots + slot` (one load in the program instead of a `PERCPU_ARRAY`'s pointer table
/// + value, and each CPU's counters in one block of pages).
#[derive(Debug)]
pub struct SlotCounterMap {
    map: Map,
    possible_cpus: u32,
    max_slots: u32,
}

impl SlotCounterMap {
    pub(crate) fn new(map: Map, possible_cpus: usize) -> Result<Self, BpfError> {
        let entries = Array::<&MapData, RawSlotCounters>::try_from(&map)
            .map_err(map_err(SLOT_COUNTERS, "open"))?
            .len();
        let ncpu = u32::try_from(possible_cpus.max(1)).unwrap_or(u32::MAX);
        Ok(SlotCounterMap { map, possible_cpus: ncpu, max_slots: entries / ncpu })
    }

    /// Number of slots (`LoadOptions::max_slots`).
    pub fn max_slots(&self) -> u32 {
        self.max_slots
    }

    /// Reads slots `range` (clamped to `max_slots`), summed over CPUs, into `out` (cleared
    /// first; `out[i]` is slot `range.start + i`). One `BPF_MAP_LOOKUP_BATCH` per CPU and
    /// 4096 slots.
    pub fn read(&self, range: Range<u32>, out: &mut Vec<SlotCounters>) -> Result<(), BpfError> {
        out.clear();
        let range = range.start.min(self.max_slots)..range.end.min(self.max_slots);
        out.resize(range.len(), SlotCounters::default());
        let fd = fd_or_err(&self.map, SLOT_COUNTERS)?;
        for cpu in 0..self.possible_cpus {
            // Cannot overflow: possible CPUs × max_slots is the map's u32 length.
            let base = cpu * self.max_slots;
            let start = base + range.start;
            read_array(
                fd,
                SLOT_COUNTERS,
                start..base + range.end,
                std::mem::size_of::<RawSlotCounters>(),
                |idx, bytes| {
                    let Some(sum) = out.get_mut((idx - start) as usize) else { return };
                    if let Some(raw) = abi::pod_from_bytes::<RawSlotCounters>(bytes) {
                        sum.add(&raw);
                    }
                },
            )?;
        }
        Ok(())
    }

    /// Zeroes slots (before a freed slot is given to another circuit).
    pub fn reset(&mut self, slots: &[u32]) -> Result<(), BpfError> {
        let (ncpu, max_slots) = (self.possible_cpus, self.max_slots);
        let mut m = Array::<&mut MapData, RawSlotCounters>::try_from(&mut self.map)
            .map_err(map_err(SLOT_COUNTERS, "open"))?;
        for s in slots.iter().filter(|s| **s < max_slots) {
            for cpu in 0..ncpu {
                m.set(cpu * max_slots + s, RawSlotCounters::default(), 0)
                    .map_err(map_err(SLOT_COUNTERS, format!("reset slot {s} cpu {cpu}")))?;
            }
        }
        Ok(())
    }
}

/// RTT histogram of one slot: per path, sample counts in the buckets of
/// [`abi::RTT_BUCKET_UPPER_US`] plus the sum of all samples. Cumulative; subtract an older
/// read ([`RttHistogram::delta`]) for a window (lqosd keeps 10 s and 60 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttHistogram {
    /// `[path][bucket]` sample counts.
    pub buckets: [[u32; abi::RTT_BUCKETS]; 2],
    /// `[path]` sum of samples in microseconds.
    pub sum_us: [u64; 2],
}

impl Default for RttHistogram {
    fn default() -> Self {
        RttHistogram { buckets: [[0; abi::RTT_BUCKETS]; 2], sum_us: [0; 2] }
    }
}

impl RttHistogram {
    /// Samples on `path` (0 = access, 1 = upstream; anything else gives 0).
    pub fn count(&self, path: usize) -> u64 {
        self.buckets.get(path).map_or(0, |b| b.iter().map(|c| u64::from(*c)).sum())
    }

    /// `self - older` (wrapping), for a window between two reads.
    pub fn delta(&self, older: &RttHistogram) -> RttHistogram {
        let mut out = RttHistogram::default();
        for p in 0..2 {
            for b in 0..abi::RTT_BUCKETS {
                out.buckets[p][b] = self.buckets[p][b].wrapping_sub(older.buckets[p][b]);
            }
            out.sum_us[p] = self.sum_us[p].wrapping_sub(older.sum_us[p]);
        }
        out
    }

    /// Adds another histogram (e.g. the circuits of a node).
    pub fn merge(&mut self, other: &RttHistogram) {
        for p in 0..2 {
            for b in 0..abi::RTT_BUCKETS {
                self.buckets[p][b] = self.buckets[p][b].wrapping_add(other.buckets[p][b]);
            }
            self.sum_us[p] = self.sum_us[p].wrapping_add(other.sum_us[p]);
        }
    }

    /// The `q`-quantile (0..=1) of `path` in microseconds, interpolated linearly inside its
    /// bucket (the open last bucket reports its lower bound). `None` without samples.
    pub fn quantile_us(&self, path: usize, q: f64) -> Option<f64> {
        let buckets = self.buckets.get(path)?;
        let total = self.count(path);
        if total == 0 || !q.is_finite() {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
        let mut seen = 0u64;
        for (i, c) in buckets.iter().enumerate() {
            let c = u64::from(*c);
            if c == 0 {
                continue;
            }
            if (seen + c) as f64 >= rank {
                let lo = if i == 0 { 0.0 } else { f64::from(abi::RTT_BUCKET_UPPER_US[i - 1]) };
                if i + 1 == abi::RTT_BUCKETS {
                    return Some(lo);
                }
                let hi = f64::from(abi::RTT_BUCKET_UPPER_US[i]);
                let frac = (rank - seen as f64) / c as f64;
                return Some(lo + (hi - lo) * frac.clamp(0.0, 1.0));
            }
            seen += c;
        }
        None
    }

    /// Mean of `path` in microseconds. `None` without samples.
    pub fn mean_us(&self, path: usize) -> Option<f64> {
        let n = self.count(path);
        (n > 0).then(|| self.sum_us.get(path).copied().unwrap_or(0) as f64 / n as f64)
    }
}

/// Per-slot RTT histograms (`ARRAY`, index = slot, updated with atomic adds).
#[derive(Debug)]
pub struct RttHistograms {
    map: Map,
    max_slots: u32,
}

impl RttHistograms {
    pub(crate) fn new(map: Map) -> Result<Self, BpfError> {
        let max_slots =
            Array::<&MapData, RawRttHist>::try_from(&map).map_err(map_err(RTT_HIST, "open"))?.len();
        Ok(RttHistograms { map, max_slots })
    }

    /// Reads slots `range` (clamped to `max_slots`) into `out` (cleared first; `out[i]` is
    /// slot `range.start + i`), in batches.
    pub fn read(&self, range: Range<u32>, out: &mut Vec<RttHistogram>) -> Result<(), BpfError> {
        out.clear();
        let range = range.start.min(self.max_slots)..range.end.min(self.max_slots);
        out.resize(range.len(), RttHistogram::default());
        let start = range.start;
        read_array(
            fd_or_err(&self.map, RTT_HIST)?,
            RTT_HIST,
            range,
            std::mem::size_of::<RawRttHist>(),
            |idx, bytes| {
                if let (Some(slot), Some(raw)) =
                    (out.get_mut((idx - start) as usize), abi::pod_from_bytes::<RawRttHist>(bytes))
                {
                    *slot = RttHistogram { buckets: raw.buckets, sum_us: raw.sum_us };
                }
            },
        )
    }

    /// Zeroes slots (before a freed slot is given to another circuit).
    pub fn reset(&mut self, slots: &[u32]) -> Result<(), BpfError> {
        let mut m = Array::<&mut MapData, RawRttHist>::try_from(&mut self.map)
            .map_err(map_err(RTT_HIST, "open"))?;
        for s in slots {
            m.set(*s, RawRttHist::default(), 0)
                .map_err(map_err(RTT_HIST, format!("reset slot {s}")))?;
        }
        Ok(())
    }
}

/// A flow as seen from the subscriber: whatever the packet's direction, `subscriber` is the
/// shaped side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// Subscriber address.
    pub subscriber: IpAddr,
    /// Internet-side address.
    pub remote: IpAddr,
    /// Subscriber port.
    pub subscriber_port: u16,
    /// Remote port.
    pub remote_port: u16,
    /// IP protocol (6 TCP, 17 UDP).
    pub protocol: u8,
}

impl FlowKey {
    fn to_raw(self) -> RawFlowKey {
        RawFlowKey {
            subscriber: encode_addr(self.subscriber),
            remote: encode_addr(self.remote),
            subscriber_port: self.subscriber_port,
            remote_port: self.remote_port,
            protocol: self.protocol,
            pad: [0; 3],
        }
    }

    fn from_raw(r: &RawFlowKey) -> Self {
        FlowKey {
            subscriber: decode_addr(r.subscriber),
            remote: decode_addr(r.remote),
            subscriber_port: r.subscriber_port,
            remote_port: r.remote_port,
            protocol: r.protocol,
        }
    }
}

/// One entry of the flow table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// The 5-tuple.
    pub key: FlowKey,
    /// Slot of the subscriber's circuit (0 = unshaped) at its last packet.
    pub slot: u32,
    /// Bytes `[down, up]`.
    pub bytes: [u64; 2],
    /// Packets `[down, up]`.
    pub packets: [u64; 2],
    /// TCP retransmits `[down, up]`.
    pub retransmits: [u32; 2],
    /// Last RTT sample in µs `[access, upstream]` (0 = none yet).
    pub rtt_us: [u32; 2],
    /// RTT samples `[access, upstream]`.
    pub rtt_samples: [u32; 2],
    /// `CLOCK_MONOTONIC` ns when the flow was created.
    pub first_seen_ns: u64,
    /// `CLOCK_MONOTONIC` ns of the last clock read for it (creation or an RTT timestamp);
    /// activity in between shows as packet-count changes and in [`Flow::idle_sweeps`].
    pub last_seen_ns: u64,
    /// Flow-table sweeps ([`FlowAger::sweep`]) since its last packet (0: seen since the
    /// last sweep).
    pub idle_sweeps: u32,
}

impl Flow {
    /// Total bytes both ways.
    pub fn total_bytes(&self) -> u64 {
        self.bytes[0].wrapping_add(self.bytes[1])
    }

    fn from_raw(e: &RawFlowEntry, gen_now: u32) -> Flow {
        let [down, up] = e.dir;
        Flow {
            key: FlowKey::from_raw(&e.key),
            slot: e.slot,
            bytes: [down.bytes, up.bytes],
            packets: [down.packets, up.packets],
            retransmits: [down.retransmits, up.retransmits],
            // The access path is timed by the subscriber's echoes (up), upstream by the
            // Internet host's (down).
            rtt_us: [up.rtt_us, down.rtt_us],
            rtt_samples: [up.rtt_samples, down.rtt_samples],
            first_seen_ns: e.first_seen_ns,
            last_seen_ns: e.first_seen_ns.max(down.last_ts_ns).max(up.last_ts_ns),
            idle_sweeps: gen_now.wrapping_sub(e.gen_),
        }
    }
}

/// The bounded flow table: an `ARRAY` of `LoadOptions::max_flows` entries in 4-way sets,
/// indexed by a hash of the 5-tuple. A new flow takes an empty way of its set, else one idle
/// for at least one whole sweep interval (two generations), else it is not tracked
/// ([`DataplaneStats::flows_dropped`]). Nothing is ever deleted from userspace while the
/// programs run: [`FlowAger::sweep`] advances the generation, which is what makes idle flows
/// replaceable, and lists only the flows seen recently.
#[derive(Debug)]
pub struct FlowTable {
    map: Map,
    gen_map: Map,
    max_entries: u32,
    /// The table's values, read in place (`None`: the map is not mmapable, read in batches).
    region: Option<MmapRegion>,
}

/// Bytes of one flow entry, and the offset of its state word.
const FLOW_ENTRY: usize = std::mem::size_of::<RawFlowEntry>();
const FLOW_STATE_OFF: usize = std::mem::offset_of!(RawFlowEntry, state);

impl FlowTable {
    pub(crate) fn new(map: Map, gen_map: Map) -> Result<Self, BpfError> {
        Array::<&MapData, RawFlowEntry>::try_from(&map).map_err(map_err(FLOWS, "open"))?;
        Array::<&MapData, u32>::try_from(&gen_map).map_err(map_err(FLOW_GEN, "open"))?;
        let max_entries = max_entries(&map, FLOWS)?;
        let region = (max_entries as usize)
            .checked_mul(FLOW_ENTRY)
            .and_then(|len| MmapRegion::map(fd_or_err(&map, FLOWS).ok()?, len).ok());
        Ok(FlowTable { map, gen_map, max_entries, region })
    }

    /// Capacity of the table.
    pub fn capacity(&self) -> u32 {
        self.max_entries
    }

    /// The current flow generation.
    pub fn generation(&self) -> Result<u32, BpfError> {
        Array::<&MapData, u32>::try_from(&self.gen_map)
            .map_err(map_err(FLOW_GEN, "open"))?
            .get(&0, 0)
            .map_err(map_err(FLOW_GEN, "read"))
    }

    /// Moves to the next generation (one per sweep). Returns it.
    pub fn next_generation(&mut self) -> Result<u32, BpfError> {
        let next = self.generation()?.wrapping_add(1);
        Array::<&mut MapData, u32>::try_from(&mut self.gen_map)
            .map_err(map_err(FLOW_GEN, "open"))?
            .set(0, next, 0)
            .map_err(map_err(FLOW_GEN, "write"))?;
        Ok(next)
    }

    fn read_raw(&self, mut f: impl FnMut(u32, &RawFlowEntry)) -> Result<(), BpfError> {
        if let Some(region) = &self.region {
            read_flows_in_place(region, self.max_entries, f);
            return Ok(());
        }
        read_array(
            fd_or_err(&self.map, FLOWS)?,
            FLOWS,
            0..self.max_entries,
            std::mem::size_of::<RawFlowEntry>(),
            |idx, bytes| {
                if let Some(e) = abi::pod_from_bytes::<RawFlowEntry>(bytes)
                    && e.is_live()
                {
                    f(idx, &e);
                }
            },
        )
    }

    /// Every flow in the table, idle ones included (unordered), in batches.
    pub fn read_all(&self) -> Result<Vec<Flow>, BpfError> {
        let now = self.generation()?;
        let mut out = Vec::new();
        self.read_raw(|_, e| out.push(Flow::from_raw(e, now)))?;
        Ok(out)
    }

    /// Empties the entries of these flows (missing ones are ignored). Returns how many were
    /// emptied. Meant for flows that are idle: a packet of a flow counted while it is being
    /// emptied may be lost, and a flow that took the way in between is emptied too.
    pub fn remove(&mut self, keys: &[FlowKey]) -> Result<usize, BpfError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let want: std::collections::HashSet<RawFlowKey> = keys.iter().map(|k| k.to_raw()).collect();
        let mut hits = Vec::new();
        self.read_raw(|idx, e| {
            if want.contains(&e.key) {
                hits.push(idx);
            }
        })?;
        let mut m = Array::<&mut MapData, RawFlowEntry>::try_from(&mut self.map)
            .map_err(map_err(FLOWS, "open"))?;
        for idx in &hits {
            m.set(*idx, RawFlowEntry::default(), 0)
                .map_err(map_err(FLOWS, format!("empty entry {idx}")))?;
        }
        Ok(hits.len())
    }
}

/// Every live entry of a mapped flow table, read in place: the state word first (an empty or
/// half-written way costs one line and is skipped), then the entry word by word, then the
/// state again; an entry whose state changed meanwhile (another flow took the way) is skipped
/// and seen by the next read. At 2^20 entries a sweep of an idle table reads 64 MiB instead of
/// copying 192 MiB through `BPF_MAP_LOOKUP_BATCH` (measured: lqosd idle at 100k circuits).
fn read_flows_in_place(region: &MmapRegion, entries: u32, mut f: impl FnMut(u32, &RawFlowEntry)) {
    use std::sync::atomic::Ordering;
    const WORDS: usize = FLOW_ENTRY / 8;
    for idx in 0..entries {
        let base = idx as usize * FLOW_ENTRY;
        let Some(state) = region.u64_at(base + FLOW_STATE_OFF) else { return };
        let s1 = state.load(Ordering::Acquire);
        if s1 < 2 || s1 % 2 == 1 {
            continue;
        }
        let mut words = [0u64; WORDS];
        for (i, w) in words.iter_mut().enumerate() {
            match region.u64_at(base + i * 8) {
                Some(a) => *w = a.load(Ordering::Relaxed),
                None => return,
            }
        }
        std::sync::atomic::fence(Ordering::Acquire);
        if state.load(Ordering::Relaxed) != s1 {
            continue;
        }
        let mut bytes = [0u8; FLOW_ENTRY];
        for (chunk, w) in bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        if let Some(e) = abi::pod_from_bytes::<RawFlowEntry>(&bytes) {
            f(idx, &e);
        }
    }
}

/// Ages the flow table without a per-packet clock: every [`FlowAger::sweep`] advances the
/// table's generation; the programs stamp each flow with the generation of its last packet.
/// A flow idle for `idle_sweeps` sweeps is no longer listed (and the programs may give its
/// way to a new flow once it has been idle for a whole sweep interval).
#[derive(Debug, Default)]
pub struct FlowAger {
    _private: (),
}

impl FlowAger {
    /// New ager.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the table, advances the generation and returns the flows that had a packet in
    /// the last `idle_sweeps` (≥ 1) sweep intervals.
    pub fn sweep(
        &mut self,
        table: &mut FlowTable,
        idle_sweeps: u32,
    ) -> Result<Vec<Flow>, BpfError> {
        let flows = table.read_all()?;
        table.next_generation()?;
        Ok(flows.into_iter().filter(|f| f.idle_sweeps < idle_sweeps.max(1)).collect())
    }
}

/// One sampled unmapped address. Counts are estimates (samples × sample rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownAddress {
    /// The address (the subscriber side of an unmapped packet).
    pub addr: IpAddr,
    /// Estimated bytes `[down, up]`.
    pub bytes: [u64; 2],
    /// Estimated packets `[down, up]`.
    pub packets: [u64; 2],
}

/// The bounded unknown-address table (`HASH`, 4096 entries): one in
/// `unknown_sample_every` unmapped packets per CPU adds to its address. lqosd reads it and
/// clears it every window, so it holds the busiest unknown addresses of that window.
#[derive(Debug)]
pub struct UnknownTable {
    map: Map,
}

/// Entries of the unknown-address table.
pub const UNKNOWN_ENTRIES: u32 = 4096;

impl UnknownTable {
    pub(crate) fn new(map: Map) -> Result<Self, BpfError> {
        aya::maps::HashMap::<&MapData, [u8; 16], RawUnknown>::try_from(&map)
            .map_err(map_err(UNKNOWN, "open"))?;
        Ok(UnknownTable { map })
    }

    /// Every recorded address, busiest (bytes both ways) first.
    pub fn read_all(&self) -> Result<Vec<UnknownAddress>, BpfError> {
        let mut out = Vec::new();
        read_hash(
            fd_or_err(&self.map, UNKNOWN)?,
            UNKNOWN,
            16,
            std::mem::size_of::<RawUnknown>(),
            UNKNOWN_ENTRIES,
            |k, v| {
                if let (Ok(k), Some(v)) =
                    (<[u8; 16]>::try_from(k), abi::pod_from_bytes::<RawUnknown>(v))
                {
                    out.push(UnknownAddress {
                        addr: decode_addr(k),
                        bytes: v.bytes,
                        packets: v.packets,
                    });
                }
            },
        )?;
        out.sort_by_key(|u| std::cmp::Reverse(u.bytes[0].saturating_add(u.bytes[1])));
        Ok(out)
    }

    /// Empties the table (start of a new window).
    pub fn clear(&mut self) -> Result<(), BpfError> {
        let keys: Vec<IpAddr> = self.read_all()?.into_iter().map(|u| u.addr).collect();
        let mut m =
            aya::maps::HashMap::<&mut MapData, [u8; 16], RawUnknown>::try_from(&mut self.map)
                .map_err(map_err(UNKNOWN, "open"))?;
        for k in keys {
            match m.remove(&encode_addr(k)) {
                Ok(()) => {}
                Err(e) if crate::maps::is_not_found(&e) => {}
                Err(e) => return Err(map_err(UNKNOWN, format!("delete {k}"))(e)),
            }
        }
        Ok(())
    }
}

/// The programs' health counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataplaneStats {
    /// Flows created.
    pub flows_created: u64,
    /// Flows not tracked because the flow table was full.
    pub flows_dropped: u64,
    /// Unmapped-address samples lost because the unknown table was full.
    pub unknown_dropped: u64,
    /// RTT samples taken.
    pub rtt_samples: u64,
    /// Classification cache misses (LPM trie lookups).
    pub cache_misses: u64,
    /// Frames that left XDP without metadata (tc classified them itself).
    pub no_metadata: u64,
    /// Cache misses the prefix hash could not answer (LPM trie walks).
    pub trie_lookups: u64,
    /// Prefix-hash reads that met a concurrent write (answered by the trie instead).
    pub pfx_torn: u64,
    /// Cache misses answered "unmapped" by the near bitmap alone (scans of space no prefix
    /// covers).
    pub pfx_dark: u64,
    /// New flows refused because their circuit's slot had opened its budget of flows for the
    /// current generation (`LoadOptions::max_flows` / 16 per sweep interval).
    pub flows_over_budget: u64,
}

/// The per-CPU health counter array.
#[derive(Debug)]
pub struct StatsMap {
    map: Map,
}

impl StatsMap {
    pub(crate) fn new(map: Map) -> Result<Self, BpfError> {
        PerCpuArray::<&MapData, RawStats>::try_from(&map).map_err(map_err(STATS, "open"))?;
        Ok(StatsMap { map })
    }

    /// Reads the counters.
    pub fn read(&self) -> Result<DataplaneStats, BpfError> {
        let m = PerCpuArray::<&MapData, RawStats>::try_from(&self.map)
            .map_err(map_err(STATS, "open"))?;
        let v = m.get(&0, 0).map_err(map_err(STATS, "read"))?;
        let mut s = DataplaneStats::default();
        for r in v.iter() {
            s.flows_created = s.flows_created.wrapping_add(r.flows_created);
            s.flows_dropped = s.flows_dropped.wrapping_add(r.flows_dropped);
            s.unknown_dropped = s.unknown_dropped.wrapping_add(r.unknown_dropped);
            s.rtt_samples = s.rtt_samples.wrapping_add(r.rtt_samples);
            s.cache_misses = s.cache_misses.wrapping_add(r.cache_misses);
            s.no_metadata = s.no_metadata.wrapping_add(r.no_metadata);
            s.trie_lookups = s.trie_lookups.wrapping_add(r.trie_lookups);
            s.pfx_torn = s.pfx_torn.wrapping_add(r.pfx_torn);
            s.pfx_dark = s.pfx_dark.wrapping_add(r.pfx_dark);
            s.flows_over_budget = s.flows_over_budget.wrapping_add(r.flows_over_budget);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(path: usize, samples: &[(usize, u32)]) -> RttHistogram {
        let mut h = RttHistogram::default();
        for (b, c) in samples {
            h.buckets[path][*b] = *c;
        }
        h
    }

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        // 100 samples in bucket 8 (750..1000 µs].
        let h = hist(0, &[(8, 100)]);
        let p50 = h.quantile_us(0, 0.5).expect("p50");
        assert!((p50 - 875.0).abs() < 1e-9, "{p50}");
        assert_eq!(h.quantile_us(1, 0.5), None);
        // 90 fast (≤ 50 µs) and 10 slow (1.5–2 ms): p50 fast, p99 slow.
        let h = hist(1, &[(0, 90), (10, 10)]);
        assert!(h.quantile_us(1, 0.5).expect("p50") <= 50.0);
        let p99 = h.quantile_us(1, 0.99).expect("p99");
        assert!((1500.0..=2000.0).contains(&p99), "{p99}");
    }

    #[test]
    fn delta_and_merge_are_inverse() {
        let a = hist(0, &[(3, 5), (4, 7)]);
        let mut b = a;
        b.merge(&hist(0, &[(4, 1)]));
        let d = b.delta(&a);
        assert_eq!(d.count(0), 1);
        assert_eq!(d.buckets[0][4], 1);
    }

    #[test]
    fn slot_counter_delta_wraps() {
        let old = SlotCounters { bytes: [u64::MAX, 0], ..Default::default() };
        let new = SlotCounters { bytes: [4, 10], ..Default::default() };
        assert_eq!(new.delta(&old).bytes, [5, 10]);
    }
}
