//! Pinned-map layout check: a map pinned by an older (or differently sized) build is reused
//! by the loader as is, so a changed value size would make the programs fail to load and a
//! smaller `max_entries` would silently cap the table. [`check_pinned_layouts`] compares each
//! pin with what this build creates; [`crate::Dataplane::load`] removes mismatching pins
//! (one warning each) so they are recreated.

use std::path::{Path, PathBuf};

use aya::maps::{MapInfo, MapType};

use crate::{
    BpfError, LoadOptions,
    abi::{IpInfo, RawFlowEntry, RawRttHist, RawSlotCounters},
    maps::{EPOCH, FLOW_GEN, FLOWS, IP_MAP, RTT_HIST, SLOT_COUNTERS},
};

/// Type, key size, value size and capacity of a map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapLayout {
    /// `BPF_MAP_TYPE_*` (as aya's enum).
    pub map_type: MapType,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Capacity.
    pub max_entries: u32,
}

impl std::fmt::Display for MapLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} key {} B value {} B max_entries {}",
            self.map_type, self.key_size, self.value_size, self.max_entries
        )
    }
}

/// A pin whose layout differs from this build's (or that could not be inspected).
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutMismatch {
    /// Map name.
    pub map: &'static str,
    /// Pin path.
    pub path: PathBuf,
    /// What this build creates.
    pub expected: MapLayout,
    /// What is pinned (`None`: the pin could not be opened as a map).
    pub found: Option<MapLayout>,
}

impl std::fmt::Display for LayoutMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.found {
            Some(found) => write!(
                f,
                "{}: pinned {found}, this build needs {}",
                self.path.display(),
                self.expected
            ),
            None => write!(
                f,
                "{}: not a readable map, this build needs {}",
                self.path.display(),
                self.expected
            ),
        }
    }
}

const fn size32<T>() -> u32 {
    std::mem::size_of::<T>() as u32
}

/// Possible CPUs (per-CPU arrays are `entries × CPUs` long); 1 if unreadable (the load
/// reports that error itself).
fn possible_cpus() -> u32 {
    aya::util::nr_cpus().map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// The maps [`crate::Dataplane::load`] pins, with the layout these options create on this
/// machine.
pub fn pinned_layouts(opts: &LoadOptions) -> Vec<(&'static str, MapLayout)> {
    layouts_for(opts, possible_cpus())
}

fn layouts_for(opts: &LoadOptions, possible_cpus: u32) -> Vec<(&'static str, MapLayout)> {
    vec![
        (
            IP_MAP,
            MapLayout {
                map_type: MapType::LpmTrie,
                key_size: crate::abi::LPM_KEY_SIZE as u32,
                value_size: size32::<IpInfo>(),
                max_entries: opts.max_mappings,
            },
        ),
        (EPOCH, MapLayout { map_type: MapType::Array, key_size: 4, value_size: 4, max_entries: 1 }),
        (
            SLOT_COUNTERS,
            MapLayout {
                map_type: MapType::Array,
                key_size: 4,
                value_size: size32::<RawSlotCounters>(),
                max_entries: opts.max_slots.saturating_mul(possible_cpus.max(1)),
            },
        ),
        (
            RTT_HIST,
            MapLayout {
                map_type: MapType::Array,
                key_size: 4,
                value_size: size32::<RawRttHist>(),
                max_entries: opts.max_slots,
            },
        ),
        (
            FLOWS,
            MapLayout {
                map_type: MapType::Array,
                key_size: 4,
                value_size: size32::<RawFlowEntry>(),
                max_entries: opts.max_flows,
            },
        ),
        (
            FLOW_GEN,
            MapLayout { map_type: MapType::Array, key_size: 4, value_size: 4, max_entries: 1 },
        ),
    ]
}

/// Pins of earlier builds that this build no longer uses.
pub const LEGACY_PINS: [&str; 2] = ["lqos_hot_cache", "lqos_host_counters"];

fn layout_of(info: &MapInfo) -> Option<MapLayout> {
    Some(MapLayout {
        map_type: info.map_type().ok()?,
        key_size: info.key_size(),
        value_size: info.value_size(),
        max_entries: info.max_entries(),
    })
}

/// Compares every existing pin under `dir` with the layout `opts` creates. Missing pins are
/// fine (they will be created). Reads only; see [`crate::Dataplane::load`] for the repair.
pub fn check_pinned_layouts(dir: &Path, opts: &LoadOptions) -> Vec<LayoutMismatch> {
    check_for(dir, opts, possible_cpus())
}

fn check_for(dir: &Path, opts: &LoadOptions, possible_cpus: u32) -> Vec<LayoutMismatch> {
    let mut out = Vec::new();
    for (name, expected) in layouts_for(opts, possible_cpus) {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let found = MapInfo::from_pin(&path).ok().and_then(|i| layout_of(&i));
        if found != Some(expected) {
            out.push(LayoutMismatch { map: name, path, expected, found });
        }
    }
    out
}

/// Removes mismatching and legacy pins so the loader recreates them. One warning per map.
pub(crate) fn repair_pins(
    dir: &Path,
    opts: &LoadOptions,
    possible_cpus: u32,
) -> Result<Vec<LayoutMismatch>, BpfError> {
    let mismatches = check_for(dir, opts, possible_cpus);
    for m in &mismatches {
        tracing::warn!(map = m.map, "pinned map has a different layout ({m}); recreating it empty");
        std::fs::remove_file(&m.path)
            .map_err(|source| BpfError::PinDir { path: m.path.clone(), source })?;
    }
    for legacy in LEGACY_PINS {
        let path = dir.join(legacy);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed pin of an earlier lqos build")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(BpfError::PinDir { path, source }),
        }
    }
    Ok(mismatches)
}
