//! The store: three tiers of blocks in one redb file, plus the in-memory part (samples not yet
//! written, buckets not yet complete).
//!
//! Layout: one table per tier, key `(block_start, "c:<id>" | "n:<name>")`, value a block: the
//! 4-byte marker [`BLOCK_V2`], then 44-byte records (4-byte offset from the block start + a
//! [`Sample`]), sorted by time. Blocks written before the marker existed hold 36-byte records
//! without TCP packet counts and are still read (rewritten in the new layout when touched). Time
//! comes first in the key so retention is one range delete per tier, and a query is one point
//! lookup per block (blocks are aligned, so their keys are known).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use lqos_bus::{HistoryKind, HistoryPoint, HistoryRange};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::sample::{Acc, BLOCK_V2, RECORD_BYTES, RECORD_BYTES_V1, Sample};

/// One storage tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    /// Seconds between points.
    pub step: u64,
    /// Seconds covered by one stored block.
    pub span: u64,
    /// How long points are kept (before the disk bound shortens it).
    pub keep: u64,
    name: &'static str,
}

impl Tier {
    fn table(self) -> TableDefinition<'static, (u64, &'static str), &'static [u8]> {
        TableDefinition::new(self.name)
    }
}

/// 1 s points for 10 minutes (1-minute blocks).
pub const TIER_1S: Tier = Tier { step: 1, span: 60, keep: 600, name: "h1s" };
/// 1 min points for 48 hours (1-hour blocks).
pub const TIER_1M: Tier = Tier { step: 60, span: 3_600, keep: 48 * 3_600, name: "h1m" };
/// 15 min points for 90 days (1-day blocks).
pub const TIER_15M: Tier = Tier { step: 900, span: 86_400, keep: 90 * 86_400, name: "h15m" };
/// The tiers, finest first.
pub const TIERS: [Tier; 3] = [TIER_1S, TIER_1M, TIER_15M];

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Layout version; a file with another one is moved aside and a new one started.
pub const FORMAT: u64 = 1;
/// Shortest retention the disk bound may cut a tier to (seconds), per tier: 1 min of 1 s
/// points, 1 h of 1 min points, 1 day of 15 min points. A budget too small for even these
/// is logged and the floors are kept.
const MIN_KEEP: [u64; 3] = [60, 3_600, 86_400];

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The database refused an operation.
    #[error("history store {path}: {what}: {message}")]
    Db {
        /// File.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The database's message.
        message: String,
    },
    /// The file or its directory could not be handled.
    #[error("history store {path}: {what}")]
    Io {
        /// File.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// The key of a series: `c:<circuit id>` or `n:<node name>`.
pub fn series_key(kind: HistoryKind, id: &str) -> String {
    match kind {
        HistoryKind::Circuit => format!("c:{id}"),
        HistoryKind::Node => format!("n:{id}"),
    }
}

/// The tier a range is answered from.
pub fn tier_for(range: HistoryRange) -> Tier {
    match range {
        HistoryRange::Minutes10 => TIER_1S,
        HistoryRange::Hour1 | HistoryRange::Hours24 => TIER_1M,
        _ => TIER_15M,
    }
}

/// One series' points for [`Store::import`]: (series key from [`series_key`], (unix time,
/// sample) each).
pub type SeriesPoints = (Arc<str>, Vec<(u64, Sample)>);

/// Points of one series in one tier not yet written: (tier index, key) → time → sample.
/// The in-memory maps are touched for every series on every tick: foldhash (seeded per
/// process) instead of SipHash, which showed up as a fifth of the writer's time.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

type Pending = FastMap<(usize, Arc<str>), BTreeMap<u64, Sample>>;

/// The series of the ticks themselves: one point per [`Store::record`] call (per bucket in the
/// coarse tiers). Series keys of circuits and nodes start with `c:` / `n:`, so it cannot clash.
pub const TICKS_KEY: &str = "t:";

#[derive(Debug)]
struct Mem {
    /// Points per tier not yet written.
    pending: Pending,
    /// Open buckets of the 1 min and 15 min tiers.
    acc: [FastMap<Arc<str>, Acc>; 2],
    /// The last batch's time.
    last_ts: Option<u64>,
    /// [`TICKS_KEY`], allocated once.
    ticks_key: Arc<str>,
}

impl Default for Mem {
    fn default() -> Mem {
        Mem {
            pending: Pending::default(),
            acc: Default::default(),
            last_ts: None,
            ticks_key: Arc::from(TICKS_KEY),
        }
    }
}

/// The history store. `&self` everywhere: one writer (the history thread) and any number of
/// readers (the apply task answering `History`).
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    db: RwLock<Database>,
    mem: Mutex<Mem>,
    budget: u64,
    /// Current retention per tier (shortened by the disk bound).
    keep: Mutex<[u64; 3]>,
    /// Series answered with zero points on quiet ticks ([`Store::set_known`]).
    known: RwLock<FastSet<Arc<str>>>,
}

fn db_err(path: &Path, what: &'static str, e: impl std::fmt::Display) -> HistoryError {
    HistoryError::Db { path: path.to_owned(), what, message: e.to_string() }
}

impl Store {
    /// Opens (or creates) the store at `path`, bounded to `budget_bytes` on disk. A file of
    /// another layout version, or one redb cannot open, is moved aside (`<path>.old`) with a
    /// warning and a new one started: history is worth less than a running daemon.
    pub fn open(path: &Path, budget_bytes: u64) -> Result<Store, HistoryError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| HistoryError::Io {
                path: path.to_owned(),
                what: "create the directory",
                source,
            })?;
        }
        let db = match Self::open_checked(path) {
            Ok(db) => db,
            Err(e) => {
                tracing::warn!(error = %e, "history store unusable; moving it aside and starting a new one");
                let aside = path.with_extension("redb.old");
                std::fs::rename(path, &aside).map_err(|source| HistoryError::Io {
                    path: path.to_owned(),
                    what: "move the old file aside",
                    source,
                })?;
                Self::open_checked(path)?
            }
        };
        Ok(Store {
            path: path.to_owned(),
            db: RwLock::new(db),
            mem: Mutex::new(Mem::default()),
            budget: budget_bytes,
            keep: Mutex::new(TIERS.map(|t| t.keep)),
            known: RwLock::new(FastSet::default()),
        })
    }

    fn open_checked(path: &Path) -> Result<Database, HistoryError> {
        let db = Database::builder()
            .set_cache_size(32 << 20)
            .create(path)
            .map_err(|e| db_err(path, "open", e))?;
        let tx = db.begin_write().map_err(|e| db_err(path, "begin", e))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| db_err(path, "meta", e))?;
            let found = meta.get("format").map_err(|e| db_err(path, "meta", e))?.map(|v| v.value());
            match found {
                Some(FORMAT) => {}
                None => {
                    meta.insert("format", FORMAT).map_err(|e| db_err(path, "meta", e))?;
                }
                Some(other) => {
                    return Err(db_err(
                        path,
                        "format",
                        format!("version {other}, expected {FORMAT}"),
                    ));
                }
            }
            for t in TIERS {
                tx.open_table(t.table()).map_err(|e| db_err(path, "create tables", e))?;
            }
        }
        tx.commit().map_err(|e| db_err(path, "commit", e))?;
        Ok(db)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes on disk.
    pub fn disk_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Current retention per tier, seconds (shorter than the tier's own when the disk bound
    /// had to cut).
    pub fn retention(&self) -> [u64; 3] {
        self.keep.lock().map(|k| *k).unwrap_or(TIERS.map(|t| t.keep))
    }

    /// Records one tick's samples taken at unix time `ts`: kept in memory for the 1 s tier
    /// and folded into the open 1 min and 15 min buckets; a bucket is closed (becomes a point)
    /// by the first batch of a later bucket. Nothing is written here: see [`Store::flush`].
    ///
    /// Quiet samples ([`Sample::is_quiet`]) are skipped: with most subscribers idle (a night,
    /// or a box just set up) recording costs what the busy ones cost, and their points cost no
    /// disk. Every call also records the tick itself (series [`TICKS_KEY`]), so that a query
    /// can tell "quiet" (a zero point) from "lqosd was not recording" (no point), and a coarse
    /// bucket's mean rate is over all of its ticks.
    pub fn record(&self, ts: u64, rows: &[(Arc<str>, Sample)]) {
        let Ok(mut mem) = self.mem.lock() else { return };
        let mem = &mut *mem;
        let ticks_key = mem.ticks_key.clone();
        for (i, tier) in [TIER_1M, TIER_15M].iter().enumerate() {
            let bucket = ts - ts % tier.step;
            if mem.last_ts.is_some_and(|l| l - l % tier.step != bucket) {
                let acc = std::mem::take(&mut mem.acc[i]);
                // Ticks of the bucket being closed: the tick series' sample count.
                let ticks = acc.get(&ticks_key).map_or(0, Acc::count);
                for (key, a) in acc {
                    if a.bucket < bucket
                        && let Some(s) = a.get_over(ticks)
                    {
                        mem.pending.entry((i + 1, key)).or_default().insert(a.bucket, s);
                    } else if a.bucket >= bucket {
                        mem.acc[i].insert(key, a);
                    }
                }
            }
        }
        let tick = (ticks_key, Sample::default());
        for (key, s) in rows.iter().filter(|(_, s)| !s.is_quiet()).chain(std::iter::once(&tick)) {
            mem.pending.entry((0, key.clone())).or_default().insert(ts, *s);
            for (i, tier) in [TIER_1M, TIER_15M].iter().enumerate() {
                let bucket = ts - ts % tier.step;
                let a = mem.acc[i].entry(key.clone()).or_insert_with(|| Acc::new(bucket));
                if a.bucket != bucket {
                    if a.bucket < bucket
                        && let Some(done) = a.get()
                    {
                        mem.pending.entry((i + 1, key.clone())).or_default().insert(a.bucket, done);
                    }
                    *a = Acc::new(bucket);
                }
                a.add(s);
            }
        }
        mem.last_ts = Some(mem.last_ts.map_or(ts, |l| l.max(ts)));
    }

    /// Sets the series a query answers zero points for on quiet ticks even when they have no
    /// point in the range (lqosd: the circuits and nodes of the applied plan). Others (a
    /// removed circuit, a mistyped id) answer only the points they have.
    pub fn set_known(&self, keys: impl IntoIterator<Item = Arc<str>>) {
        let known: FastSet<Arc<str>> = keys.into_iter().collect();
        if let Ok(mut k) = self.known.write() {
            *k = known;
        }
    }

    /// Writes every pending point in one transaction (read-modify-write of each touched
    /// block), then forgets them. Readers see a point either in memory or on disk, never
    /// neither: the memory copy is dropped only after the commit.
    pub fn flush(&self) -> Result<usize, HistoryError> {
        let pending: Pending = match self.mem.lock() {
            Ok(m) => m.pending.clone(),
            Err(_) => return Ok(0),
        };
        if pending.is_empty() {
            return Ok(0);
        }
        let path = &self.path;
        let mut written = 0usize;
        {
            let db = self.db.read().map_err(|_| db_err(path, "lock", "poisoned"))?;
            let tx = db.begin_write().map_err(|e| db_err(path, "begin", e))?;
            {
                let mut tables = Vec::with_capacity(3);
                for t in TIERS {
                    tables
                        .push(tx.open_table(t.table()).map_err(|e| db_err(path, "open table", e))?);
                }
                let mut buf = Vec::new();
                for ((tier_i, key), points) in &pending {
                    let table = &mut tables[*tier_i];
                    written += merge_points(
                        path,
                        table,
                        TIERS[*tier_i],
                        key,
                        points.iter().map(|(t, s)| (*t, *s)),
                        &mut buf,
                    )?;
                }
            }
            tx.commit().map_err(|e| db_err(path, "commit", e))?;
        }
        if let Ok(mut m) = self.mem.lock() {
            for (k, points) in pending {
                if let Some(cur) = m.pending.get_mut(&k) {
                    for t in points.keys() {
                        cur.remove(t);
                    }
                    if cur.is_empty() {
                        m.pending.remove(&k);
                    }
                }
            }
        }
        Ok(written)
    }

    /// Deletes blocks older than each tier's retention at unix time `now`; then, while the
    /// file is over the budget, shortens the coarsest tier's retention that can still give
    /// (by a quarter, down to a floor), deletes again and compacts. Returns the bytes on disk.
    pub fn prune(&self, now: u64) -> Result<u64, HistoryError> {
        self.delete_old(now)?;
        let mut size = self.disk_bytes();
        for _ in 0..32 {
            if size <= self.budget {
                break;
            }
            let cut = {
                let Ok(mut keep) = self.keep.lock() else { break };
                let mut cut = false;
                for i in (0..3).rev() {
                    if keep[i] > MIN_KEEP[i] {
                        keep[i] = (keep[i] - keep[i] / 4).max(MIN_KEEP[i]);
                        tracing::warn!(
                            tier_step_secs = TIERS[i].step,
                            keep_secs = keep[i],
                            bytes = size,
                            budget = self.budget,
                            "history store over its disk budget; keeping less"
                        );
                        cut = true;
                        break;
                    }
                }
                cut
            };
            self.delete_old(now)?;
            self.compact()?;
            size = self.disk_bytes();
            if !cut {
                break;
            }
        }
        Ok(size)
    }

    fn delete_old(&self, now: u64) -> Result<(), HistoryError> {
        let path = &self.path;
        let keep = self.retention();
        let db = self.db.read().map_err(|_| db_err(path, "lock", "poisoned"))?;
        let tx = db.begin_write().map_err(|e| db_err(path, "begin", e))?;
        for (i, t) in TIERS.iter().enumerate() {
            // A block goes when its last point is older than the retention.
            let cutoff = now.saturating_sub(keep[i]).saturating_sub(t.span) + 1;
            let cutoff = cutoff - cutoff % t.span;
            let mut table = tx.open_table(t.table()).map_err(|e| db_err(path, "open table", e))?;
            table
                .retain_in((0u64, "")..(cutoff, ""), |_, _| false)
                .map_err(|e| db_err(path, "delete old blocks", e))?;
        }
        tx.commit().map_err(|e| db_err(path, "commit", e))?;
        Ok(())
    }

    /// Writes points straight into the tier whose step is `step_secs` (1, 60 or 900), merged
    /// into the blocks already stored, all in one transaction: for importing history from
    /// elsewhere, and for seeding tests and benchmarks with days of data without simulating
    /// every second. `series` holds (series key from [`series_key`], points as (unix time,
    /// sample)); a point at a time that already has one replaces it. Returns the points
    /// written. The disk bound is applied by the next [`Store::prune`].
    pub fn import(&self, step_secs: u64, series: &[SeriesPoints]) -> Result<usize, HistoryError> {
        let path = &self.path;
        let Some(tier) = TIERS.iter().copied().find(|t| t.step == step_secs) else {
            return Err(db_err(
                path,
                "import",
                format!("no tier has a step of {step_secs} s (1, 60 or 900)"),
            ));
        };
        let db = self.db.read().map_err(|_| db_err(path, "lock", "poisoned"))?;
        let tx = db.begin_write().map_err(|e| db_err(path, "begin", e))?;
        let mut written = 0;
        {
            let mut table =
                tx.open_table(tier.table()).map_err(|e| db_err(path, "open table", e))?;
            let mut buf = Vec::new();
            for (key, points) in series {
                written +=
                    merge_points(path, &mut table, tier, key, points.iter().copied(), &mut buf)?;
            }
        }
        tx.commit().map_err(|e| db_err(path, "commit", e))?;
        Ok(written)
    }

    fn compact(&self) -> Result<(), HistoryError> {
        let path = &self.path;
        let mut db = self.db.write().map_err(|_| db_err(path, "lock", "poisoned"))?;
        // Compaction needs several passes to move every page to the front.
        for _ in 0..8 {
            match db.compact() {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => return Err(db_err(path, "compact", e)),
            }
        }
        Ok(())
    }

    /// The points of `kind`/`id` in the `range` ending at unix time `now`, oldest first, from
    /// the range's tier: what is on disk plus what is still in memory. A tick on which the
    /// series was quiet answers a zero point when the series has points in the range or is
    /// known ([`Store::set_known`]); a time lqosd was not recording answers no point.
    pub fn query(
        &self,
        kind: HistoryKind,
        id: &str,
        range: HistoryRange,
        now: u64,
    ) -> Result<Vec<HistoryPoint>, HistoryError> {
        let tier = tier_for(range);
        let from = now.saturating_sub(range.secs());
        let key = series_key(kind, id);
        let mut out = self.points(tier, &key, from, now)?;
        let known = self.known.read().is_ok_and(|k| k.contains(key.as_str()));
        if !out.is_empty() || known {
            for t in self.points(tier, TICKS_KEY, from, now)?.into_keys() {
                out.entry(t).or_default();
            }
        }
        Ok(out.into_iter().map(|(t, s)| s.point(t)).collect())
    }

    /// The stored points of series `key` in `tier` within `from..=now`, memory and disk.
    fn points(
        &self,
        tier: Tier,
        key: &str,
        from: u64,
        now: u64,
    ) -> Result<BTreeMap<u64, Sample>, HistoryError> {
        let tier_i = TIERS.iter().position(|t| *t == tier).unwrap_or(0);
        let mut out: BTreeMap<u64, Sample> = BTreeMap::new();
        // Memory first, then disk: a flush in between shows the points in both (deduplicated
        // by time), never in neither.
        if let Ok(m) = self.mem.lock() {
            let k: Arc<str> = Arc::from(key);
            if let Some(p) = m.pending.get(&(tier_i, k)) {
                out.extend(p.range(from..=now).map(|(t, s)| (*t, *s)));
            }
        }
        let path = &self.path;
        let db = self.db.read().map_err(|_| db_err(path, "lock", "poisoned"))?;
        let tx = db.begin_read().map_err(|e| db_err(path, "begin read", e))?;
        let table = tx.open_table(tier.table()).map_err(|e| db_err(path, "open table", e))?;
        let mut start = from - from % tier.span;
        while start <= now {
            if let Some(block) =
                table.get((start, key)).map_err(|e| db_err(path, "read block", e))?
            {
                decode_block(start, block.value(), |t, s| {
                    if (from..=now).contains(&t) {
                        out.entry(t).or_insert(s);
                    }
                });
            }
            start = start.saturating_add(tier.span);
            if start == u64::MAX {
                break;
            }
        }
        Ok(out)
    }
}

/// Merges `points` of series `key` into their blocks of `tier` in `table` (read, merge by
/// time, write back); returns how many points were given.
fn merge_points(
    path: &Path,
    table: &mut redb::Table<'_, (u64, &'static str), &'static [u8]>,
    tier: Tier,
    key: &str,
    points: impl Iterator<Item = (u64, Sample)>,
    buf: &mut Vec<u8>,
) -> Result<usize, HistoryError> {
    let mut written = 0;
    // Group the points by block.
    let mut by_block: BTreeMap<u64, Vec<(u64, Sample)>> = BTreeMap::new();
    for (t, s) in points {
        by_block.entry(t - t % tier.span).or_default().push((t, s));
    }
    for (start, new) in by_block {
        let mut merged: BTreeMap<u64, Sample> = BTreeMap::new();
        if let Some(old) = table.get((start, key)).map_err(|e| db_err(path, "read block", e))? {
            decode_block(start, old.value(), |t, s| {
                merged.insert(t, s);
            });
        }
        for (t, s) in new {
            merged.insert(t, s);
            written += 1;
        }
        buf.clear();
        buf.extend_from_slice(&BLOCK_V2);
        for (t, s) in &merged {
            let off = u32::try_from(t - start).unwrap_or(u32::MAX);
            buf.extend_from_slice(&off.to_le_bytes());
            s.encode(buf);
        }
        table.insert((start, key), buf.as_slice()).map_err(|e| db_err(path, "write block", e))?;
    }
    Ok(written)
}

/// Calls `f(time, sample)` for each whole record of a block starting at `start`, in either
/// layout; a truncated tail is ignored.
fn decode_block(start: u64, bytes: &[u8], mut f: impl FnMut(u64, Sample)) {
    type Decode = fn(&[u8]) -> Option<Sample>;
    let (records, size, decode): (&[u8], usize, Decode) = match bytes.strip_prefix(&BLOCK_V2[..]) {
        Some(rest) => (rest, RECORD_BYTES, Sample::decode),
        None => (bytes, RECORD_BYTES_V1, Sample::decode_v1),
    };
    for rec in records.chunks_exact(size) {
        let off = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
        if let Some(s) = decode(&rec[4..]) {
            f(start.saturating_add(u64::from(off)), s);
        }
    }
}

/// What the points of one series in a window add up to ([`Store::summarize`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WindowSummary {
    /// Points in the window.
    pub points: u32,
    /// Points with an access-path RTT.
    pub rtt_points: u32,
    /// Sum of those points' access p50, ms.
    pub access_p50_sum: f64,
    /// Sum of those points' access p90, ms.
    pub access_p90_sum: f64,
    /// TCP retransmits, down and up.
    pub retransmits: [u64; 2],
    /// TCP packets, down and up.
    pub tcp_packets: [u64; 2],
}

impl WindowSummary {
    fn add(&mut self, s: &Sample) {
        self.points = self.points.saturating_add(1);
        if let Some(a) = s.rtt_access {
            self.rtt_points = self.rtt_points.saturating_add(1);
            self.access_p50_sum += a[0];
            self.access_p90_sum += a[1];
        }
        for d in 0..2 {
            self.retransmits[d] = self.retransmits[d].saturating_add(s.retransmits[d]);
            self.tcp_packets[d] = self.tcp_packets[d].saturating_add(s.tcp_packets[d]);
        }
    }

    /// Mean access p50 over the points with an RTT, ms.
    pub fn access_p50_ms(&self) -> Option<f64> {
        (self.rtt_points > 0).then(|| self.access_p50_sum / f64::from(self.rtt_points))
    }

    /// Mean access p90 over the points with an RTT, ms.
    pub fn access_p90_ms(&self) -> Option<f64> {
        (self.rtt_points > 0).then(|| self.access_p90_sum / f64::from(self.rtt_points))
    }
}

impl Store {
    /// Every series' points of `tier` in `from..=now` summed up, by series key (`c:<id>`,
    /// `n:<name>`; quiet ticks add nothing and are not counted in `points`): one range scan of the tier's table over the blocks that overlap the window
    /// (blocks are keyed by time first), plus the points still in memory. This is what a
    /// worst-first ranking over a long window reads; its cost grows with the series stored
    /// and the points per series in the window, not with the number of queries a caller makes
    /// (lqosd caches the result).
    pub fn summarize(
        &self,
        tier: Tier,
        from: u64,
        now: u64,
    ) -> Result<HashMap<String, WindowSummary>, HistoryError> {
        let tier_i = TIERS.iter().position(|t| *t == tier).unwrap_or(0);
        let mut out: HashMap<String, WindowSummary> = HashMap::new();
        // Points not yet written: counted from memory, skipped on disk if a flush wrote them
        // meanwhile (the same point is never counted twice).
        let mut in_mem: HashMap<Arc<str>, BTreeMap<u64, Sample>> = HashMap::new();
        if let Ok(m) = self.mem.lock() {
            for ((ti, key), points) in &m.pending {
                if *ti == tier_i {
                    let p: BTreeMap<u64, Sample> =
                        points.range(from..=now).map(|(t, s)| (*t, *s)).collect();
                    if !p.is_empty() {
                        in_mem.insert(key.clone(), p);
                    }
                }
            }
        }
        for (key, points) in &in_mem {
            let e = out.entry(key.to_string()).or_default();
            for s in points.values() {
                e.add(s);
            }
        }
        let path = &self.path;
        let db = self.db.read().map_err(|_| db_err(path, "lock", "poisoned"))?;
        let tx = db.begin_read().map_err(|e| db_err(path, "begin read", e))?;
        let table = tx.open_table(tier.table()).map_err(|e| db_err(path, "open table", e))?;
        let first = from - from % tier.span;
        let range = table
            .range((first, "")..(now.saturating_add(1), ""))
            .map_err(|e| db_err(path, "read blocks", e))?;
        for item in range {
            let (k, v) = item.map_err(|e| db_err(path, "read block", e))?;
            let (start, key) = k.value();
            let mem = in_mem.get(key);
            let entry = match out.get_mut(key) {
                Some(e) => e,
                None => out.entry(key.to_owned()).or_default(),
            };
            decode_block(start, v.value(), |t, s| {
                if (from..=now).contains(&t) && !mem.is_some_and(|m| m.contains_key(&t)) {
                    entry.add(&s);
                }
            });
        }
        out.retain(|k, s| s.points > 0 && k != TICKS_KEY);
        Ok(out)
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn blocks_of_the_first_layout_stay_readable_and_are_rewritten_when_touched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("h.redb"), 1 << 30).expect("open");
        let t0 = 1_800_000_000 - 1_800_000_000 % 86_400;
        let old = Sample {
            down_bps: 8_000,
            rtt_access: Some([1.0, 2.0, 3.0]),
            retransmits: [4, 0],
            ..Sample::default()
        };
        // A first-layout block (36-byte records, no marker) as lqos wrote it before.
        let mut block = Vec::new();
        for off in [0u32, 1] {
            block.extend_from_slice(&off.to_le_bytes());
            let mut enc = Vec::new();
            old.encode(&mut enc);
            block.extend_from_slice(&enc[..crate::sample::SAMPLE_BYTES_V1]);
        }
        {
            let db = s.db.read().expect("lock");
            let tx = db.begin_write().expect("begin");
            {
                let mut t = tx.open_table(TIER_1S.table()).expect("table");
                t.insert((t0, "c:c1"), block.as_slice()).expect("insert");
            }
            tx.commit().expect("commit");
        }
        let pts = s.query(HistoryKind::Circuit, "c1", HistoryRange::Minutes10, t0 + 5).expect("q");
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[0].retransmits.down, 4);
        assert_eq!(pts[0].tcp_packets.down, 0, "unknown in the old layout");
        // A new point in the same block: the block is rewritten in the new layout, old points
        // kept.
        let new = Sample { tcp_packets: [500, 20], ..old };
        s.record(t0 + 2, &[(Arc::from("c:c1"), new)]);
        s.flush().expect("flush");
        let pts = s.query(HistoryKind::Circuit, "c1", HistoryRange::Minutes10, t0 + 5).expect("q");
        assert_eq!(pts.len(), 3);
        assert_eq!((pts[0].tcp_packets.down, pts[2].tcp_packets.down), (0, 500));
        let db = s.db.read().expect("lock");
        let tx = db.begin_read().expect("read");
        let t = tx.open_table(TIER_1S.table()).expect("table");
        let raw = t.get((t0, "c:c1")).expect("get").expect("block");
        assert!(raw.value().starts_with(&BLOCK_V2));
        assert_eq!(raw.value().len(), 4 + 3 * RECORD_BYTES);
    }
}
