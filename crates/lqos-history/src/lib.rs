//! lqos-history is lqosd's embedded history: per circuit and per node, throughput each way,
//! RTT p50/p90/p99 per path (access / upstream), TCP retransmits and queue drops, kept in one
//! [redb](https://www.redb.org) file in `state_directory` and downsampled into three tiers:
//! 1 s points for 10 minutes, 1 min points for 48 hours, 15 min points for 90 days. Disk use
//! is bounded by `[history] max_disk_mb` (the coarse tiers keep less when it is reached).
//!
//! lqosd's stats tick hands each tick's samples to [`History::offer`] (a bounded channel; a
//! full channel drops the tick rather than slow the apply task); a dedicated thread folds them
//! into the tiers, writes every [`FLUSH_EVERY_SECS`] in one transaction and prunes every
//! [`PRUNE_EVERY_SECS`]. Queries ([`History::query`]) run on the caller's thread.
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod sample;
pub mod store;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use lqos_bus::{HistoryKind, HistoryRange, HistorySeries};

pub use sample::Sample;
pub use store::{HistoryError, SeriesPoints, Store, TIERS, WindowSummary, series_key, tier_for};

/// The file name in `state_directory`.
pub const FILE_NAME: &str = "history.redb";
/// Seconds between writes (30: each 60 s block of the 1 s tier is rewritten twice, not six
/// times; a crash loses at most the last 30 s of 1 s points; a clean stop writes them).
pub const FLUSH_EVERY_SECS: u64 = 30;
/// Seconds between retention passes.
pub const PRUNE_EVERY_SECS: u64 = 60;
/// Ticks the channel holds before the stats tick's batches are dropped.
pub const QUEUE_DEPTH: usize = 8;

/// One tick's samples.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Unix time (seconds) of the tick.
    pub ts: u64,
    /// (series key from [`series_key`], sample).
    pub rows: Vec<(Arc<str>, Sample)>,
}

/// The handle lqosd keeps: feeds the writer thread, answers queries, reports the size.
#[derive(Debug)]
pub struct History {
    store: Arc<Store>,
    tx: Mutex<Option<SyncSender<Batch>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    bytes: Arc<AtomicU64>,
    dropped: AtomicU64,
}

impl History {
    /// Opens the store at `path` (budget in bytes) and starts the writer thread.
    pub fn start(path: &Path, budget_bytes: u64) -> Result<History, HistoryError> {
        let store = Arc::new(Store::open(path, budget_bytes)?);
        let bytes = Arc::new(AtomicU64::new(store.disk_bytes()));
        let (tx, rx) = sync_channel(QUEUE_DEPTH);
        let s2 = store.clone();
        let b2 = bytes.clone();
        let thread = std::thread::Builder::new()
            .name("lqos-history".into())
            .spawn(move || writer(&s2, &rx, &b2))
            .map_err(|source| HistoryError::Io {
                path: path.to_owned(),
                what: "start the writer thread",
                source,
            })?;
        Ok(History {
            store,
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            bytes,
            dropped: AtomicU64::new(0),
        })
    }

    /// Hands one tick to the writer without waiting; `false` (and the tick is lost) when the
    /// writer is behind or gone.
    pub fn offer(&self, batch: Batch) -> bool {
        let Ok(tx) = self.tx.lock() else { return false };
        let Some(tx) = tx.as_ref() else { return false };
        match tx.try_send(batch) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Ticks dropped because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Bytes on disk as of the last write.
    pub fn disk_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The store (tests, benchmarks).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The series of `kind`/`id` over `range` ending at unix time `now`.
    pub fn query(
        &self,
        kind: HistoryKind,
        id: &str,
        range: HistoryRange,
        now: u64,
    ) -> Result<HistorySeries, HistoryError> {
        let points = self.store.query(kind, id, range, now)?;
        Ok(HistorySeries {
            kind,
            id: id.to_owned(),
            range,
            step_secs: tier_for(range).step,
            now,
            points,
        })
    }

    /// Stops the writer after it wrote what it had (also done on drop).
    pub fn shutdown(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Ok(mut t) = self.thread.lock()
            && let Some(t) = t.take()
            && t.join().is_err()
        {
            tracing::warn!("history writer thread panicked");
        }
    }
}

impl Drop for History {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn writer(store: &Store, rx: &Receiver<Batch>, bytes: &AtomicU64) {
    let mut last_flush: Option<u64> = None;
    let mut last_prune: Option<u64> = None;
    while let Ok(batch) = rx.recv() {
        let ts = batch.ts;
        store.record(ts, &batch.rows);
        if last_flush.is_none_or(|l| ts.saturating_sub(l) >= FLUSH_EVERY_SECS) {
            if let Err(e) = store.flush() {
                tracing::warn!(error = %e, "history write failed");
            }
            last_flush = Some(ts);
            if last_prune.is_none_or(|l| ts.saturating_sub(l) >= PRUNE_EVERY_SECS) {
                match store.prune(ts) {
                    Ok(b) => bytes.store(b, Ordering::Relaxed),
                    Err(e) => tracing::warn!(error = %e, "history retention pass failed"),
                }
                last_prune = Some(ts);
            } else {
                bytes.store(store.disk_bytes(), Ordering::Relaxed);
            }
        }
    }
    if let Err(e) = store.flush() {
        tracing::warn!(error = %e, "history write at shutdown failed");
    }
    bytes.store(store.disk_bytes(), Ordering::Relaxed);
}

/// Unix time now, seconds (0 before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
