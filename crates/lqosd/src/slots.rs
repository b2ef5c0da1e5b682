//! Dense slot ids per circuit: the index of a circuit's counters, RTT histograms and
//! retransmit counts in the data plane's per-slot arrays.
//!
//! Rules:
//! - slot 0 is the unshaped slot (traffic of unmapped addresses) and is never given out;
//! - a circuit keeps its slot across reloads for as long as it stays in the plan, so its
//!   counters and histograms continue without a jump;
//! - a new circuit takes the lowest free slot (slots of removed circuits are reused), so the
//!   used slots stay dense and the arrays lqosd reads stay short;
//! - when the arrays are full, the circuits that do not fit get no slot (counted as unshaped)
//!   and [`SlotTable::assign`] says how many.
//!
//! The table is stored beside the applied plan (`slots.json` in `state_directory`), written
//! only after a successful apply, so a restart keeps every circuit on its slot.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// File (in `state_directory`) holding the slot table.
pub const SLOTS_FILE: &str = "slots.json";

/// Circuit ID → slot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotTable {
    slots: BTreeMap<String, u32>,
}

/// The outcome of [`SlotTable::assign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    /// The new table.
    pub table: SlotTable,
    /// Circuits that got no slot because `capacity` was reached.
    pub without_slot: usize,
}

impl SlotTable {
    /// The slot of `circuit`, if it has one.
    pub fn get(&self, circuit: &str) -> Option<u32> {
        self.slots.get(circuit).copied()
    }

    /// Number of circuits with a slot.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no circuit has a slot.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The highest slot in use (0 when none): arrays are read up to here.
    pub fn max_slot(&self) -> u32 {
        self.slots.values().copied().max().unwrap_or(0)
    }

    /// Every (circuit, slot).
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.slots.iter().map(|(c, s)| (c.as_str(), *s))
    }

    /// Slot → circuit.
    pub fn by_slot(&self) -> HashMap<u32, &str> {
        self.slots.iter().map(|(c, s)| (*s, c.as_str())).collect()
    }

    /// The table for `circuits` (in plan order): kept circuits keep their slot, removed ones
    /// free theirs, new ones take the lowest free slot in `1..capacity`.
    pub fn assign<'a>(
        &self,
        circuits: impl IntoIterator<Item = &'a str>,
        capacity: u32,
    ) -> Assigned {
        let wanted: Vec<&str> = circuits.into_iter().collect();
        let mut slots = BTreeMap::new();
        let mut used = BTreeSet::new();
        for c in &wanted {
            if let Some(s) = self.slots.get(*c)
                && *s != 0
                && *s < capacity
                && used.insert(*s)
            {
                slots.insert((*c).to_owned(), *s);
            }
        }
        let mut next = 1u32;
        let mut without_slot = 0;
        for c in wanted {
            if slots.contains_key(c) {
                continue;
            }
            while used.contains(&next) {
                next = next.saturating_add(1);
            }
            if next >= capacity {
                without_slot += 1;
                continue;
            }
            used.insert(next);
            slots.insert(c.to_owned(), next);
        }
        Assigned { table: SlotTable { slots }, without_slot }
    }
}

/// Failure to read or write the slot table.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    /// The file exists but cannot be read or decoded.
    #[error("cannot read slot table {}", path.display())]
    Read {
        /// `state_directory/slots.json`.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing failed.
    #[error("cannot store slot table {}", path.display())]
    Write {
        /// `state_directory/slots.json`.
        path: PathBuf,
        /// Why.
        #[source]
        source: lqos_config::ConfigError,
    },
}

/// Loads the slot table from `dir` (empty when there is none; an unreadable one is an error
/// the caller logs before starting from an empty table).
pub fn load(dir: &std::path::Path) -> Result<SlotTable, SlotError> {
    let path = dir.join(SLOTS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| SlotError::Read { path, source: std::io::Error::other(e) }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SlotTable::default()),
        Err(source) => Err(SlotError::Read { path, source }),
    }
}

/// Stores `table` in `dir` atomically.
pub fn save(dir: &std::path::Path, table: &SlotTable) -> Result<(), SlotError> {
    let path = dir.join(SLOTS_FILE);
    let bytes = serde_json::to_vec(table).map_err(|e| SlotError::Write {
        path: path.clone(),
        source: lqos_config::ConfigError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        },
    })?;
    std::fs::create_dir_all(dir).map_err(|e| SlotError::Write {
        path: path.clone(),
        source: lqos_config::ConfigError::Write { path: dir.to_path_buf(), source: e },
    })?;
    lqos_config::write_atomic(&path, &bytes).map_err(|source| SlotError::Write { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_circuits_keep_their_slot_and_new_ones_fill_holes() {
        let a = SlotTable::default().assign(["a", "b", "c"], 100).table;
        assert_eq!((a.get("a"), a.get("b"), a.get("c")), (Some(1), Some(2), Some(3)));
        // b leaves, d arrives: d takes b's slot, a and c stay.
        let b = a.assign(["a", "c", "d"], 100).table;
        assert_eq!((b.get("a"), b.get("c"), b.get("d")), (Some(1), Some(3), Some(2)));
        assert_eq!(b.get("b"), None);
        assert_eq!(b.max_slot(), 3);
        // Order of the input does not move anybody.
        let c = b.assign(["d", "c", "a"], 100).table;
        assert_eq!(c, b);
    }

    #[test]
    fn slot_zero_is_never_given_and_capacity_is_respected() {
        let r = SlotTable::default().assign(["a", "b", "c"], 3);
        assert_eq!(r.without_slot, 1);
        assert_eq!(r.table.len(), 2);
        assert!(r.table.iter().all(|(_, s)| (1..3).contains(&s)));
        // A table from a bigger capacity shrinks without duplicates.
        let big = SlotTable::default().assign(["a", "b", "c", "d"], 100).table;
        let small = big.assign(["d", "c", "b", "a"], 3);
        let mut seen: Vec<u32> = small.table.iter().map(|(_, s)| s).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), small.table.len());
        assert_eq!(small.without_slot, 2);
    }

    #[test]
    fn a_corrupt_stored_slot_zero_or_duplicate_is_reassigned() {
        let bad: SlotTable =
            serde_json::from_str(r#"{"slots":{"a":0,"b":5,"c":5}}"#).expect("parse");
        let t = bad.assign(["a", "b", "c"], 100).table;
        let mut s: Vec<u32> = t.iter().map(|(_, s)| s).collect();
        s.sort_unstable();
        assert_eq!(s, vec![1, 2, 5]);
        assert_eq!(t.get("b"), Some(5));
    }

    #[test]
    fn stored_table_survives_a_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(load(dir.path()).expect("empty").is_empty());
        let t = SlotTable::default().assign(["x", "y"], 10).table;
        save(dir.path(), &t).expect("save");
        assert_eq!(load(dir.path()).expect("load"), t);
        std::fs::write(dir.path().join(SLOTS_FILE), b"{nope").expect("write");
        assert!(load(dir.path()).is_err());
    }
}
