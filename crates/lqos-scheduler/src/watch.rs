//! Detecting manual edits of the input files: a cheap poll of size, mtime and a content hash
//! every couple of seconds (no inotify dependency, works on any filesystem). A change is
//! reported once it has been stable for one poll, so an editor's multi-step save or a copy in
//! progress gives one reload, not several.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What we remember of a file: `None` when it does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    mtime: Option<SystemTime>,
    hash: u64,
}

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let meta = std::fs::metadata(path).ok()?;
    let bytes = std::fs::read(path).ok()?;
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    Some(Fingerprint { len: meta.len(), mtime: meta.modified().ok(), hash: h.finish() })
}

/// Watches a set of files for changes.
#[derive(Debug)]
pub struct InputWatcher {
    paths: Vec<PathBuf>,
    last: Vec<Option<Fingerprint>>,
    pending: Option<Vec<Option<Fingerprint>>>,
}

impl InputWatcher {
    /// Starts watching `paths`, taking their current state as the baseline.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        let last = paths.iter().map(|p| fingerprint(p)).collect();
        InputWatcher { paths, last, pending: None }
    }

    /// The watched files.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.paths.clone()
    }

    /// Takes the current state as the baseline (after our own writes).
    pub fn rebaseline(&mut self) {
        self.last = self.paths.iter().map(|p| fingerprint(p)).collect();
        self.pending = None;
    }

    /// Polls once. Returns the first changed file when a change has been stable since the
    /// previous poll; `None` otherwise. Content that is back to the baseline is no change.
    pub fn poll(&mut self) -> Option<PathBuf> {
        let now: Vec<Option<Fingerprint>> = self.paths.iter().map(|p| fingerprint(p)).collect();
        let differs = |a: &Option<Fingerprint>, b: &Option<Fingerprint>| match (a, b) {
            (Some(a), Some(b)) => a.hash != b.hash || a.len != b.len,
            (None, None) => false,
            _ => true,
        };
        if !now.iter().zip(&self.last).any(|(a, b)| differs(a, b)) {
            self.pending = None;
            return None;
        }
        if self.pending.as_ref() == Some(&now) {
            let changed = now
                .iter()
                .zip(&self.last)
                .position(|(a, b)| differs(a, b))
                .and_then(|i| self.paths.get(i).cloned());
            self.last = now;
            self.pending = None;
            return changed;
        }
        self.pending = Some(now);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_is_reported_once_after_it_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ShapedDevices.csv");
        std::fs::write(&f, "a").unwrap();
        let mut w = InputWatcher::new(vec![f.clone()]);
        assert_eq!(w.poll(), None);
        std::fs::write(&f, "b").unwrap();
        assert_eq!(w.poll(), None, "first sight only arms the debounce");
        std::fs::write(&f, "bc").unwrap();
        assert_eq!(w.poll(), None, "still changing");
        assert_eq!(w.poll(), Some(f.clone()));
        assert_eq!(w.poll(), None, "reported once");
        std::fs::write(&f, "x").unwrap();
        w.rebaseline();
        assert_eq!(w.poll(), None, "own writes are not edits");
    }
}
