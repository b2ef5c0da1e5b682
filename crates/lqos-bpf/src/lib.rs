//! lqos-bpf owns lqos's eBPF data plane: the C programs in `bpf/` (compiled by `build.rs`
//! with clang and embedded), loading them with aya, attaching XDP (ingress) and the tc
//! classifier (egress, TCX), and typed access to their maps. It must not touch qdiscs or
//! classes (lqos-tc does) and never decides *what* to map (lqosd/lqos-plan do).
//!
//! Main types: [`Dataplane`] (load, attach, detach, test-run), [`IpMap`] (IP → CPU/class/slot
//! trie behind a per-CPU epoch-checked cache), [`CpuMap`], [`InterfaceRole`], what the
//! programs measure ([`SlotCounterMap`], [`RttHistograms`], [`FlowTable`] + [`FlowAger`],
//! [`UnknownTable`], [`DataplaneStats`]), [`DataplaneSettings`] (observe mode), the
//! pinned-map layout check ([`check_pinned_layouts`]), the kernel seam [`BpfKernel`] and,
//! behind `cfg(any(test, feature = "fake"))`, `fake::FakeKernel`. Shared layouts live in
//! `bpf/lqos_abi.h` and are mirrored in [`abi`]. The API lqosd uses is described in
//! `docs/qoe-api.md`.
//!
//! Queue mapping: the tc classifier writes `skb->priority = class handle` and
//! `skb->queue_mapping = major`. With XPS disabled the kernel then picks TX queue
//! `major - 1`, which is `mq` child `7FFF:major`, whose HTB has handle `major:`.
#![warn(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

#[expect(unsafe_code, reason = "Pod impls and the raw bpf(2) batch calls aya 0.14 lacks")]
pub mod abi;
mod dataplane;
mod error;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod frames;
mod kernel;
mod layout;
mod maps;
mod pfx;
mod stats;

pub use dataplane::{
    BPFFS_PATH, DEFAULT_CACHE_ENTRIES, DEFAULT_MAX_FLOWS, DEFAULT_MAX_MAPPINGS, DEFAULT_MAX_SLOTS,
    DEFAULT_PIN_DIR, Dataplane, LoadOptions, PINNED_MAPS, TC_ACT_OK, TC_ACT_REDIRECT, TcTestResult,
    XDP_PASS, XDP_REDIRECT, XdpAttachMode, XdpRunner, XdpTestResult, ensure_bpffs, ensure_bpffs_at,
    remove_pins,
};
pub use error::BpfError;
pub use kernel::BpfKernel;
pub use layout::{LEGACY_PINS, LayoutMismatch, MapLayout, check_pinned_layouts, pinned_layouts};
pub use maps::{
    CpuMap, DEFAULT_CPUMAP_QUEUE_SIZE, DataplaneSettings, InterfaceConfig, InterfaceRole, IpMap,
    IpMapping, MappingBatch, Settings, decode_addr, decode_net, encode_addr, encode_net,
};
pub use pfx::PrefixHashInfo;
pub use stats::{
    DataplaneStats, Flow, FlowAger, FlowKey, FlowTable, RttHistogram, RttHistograms,
    SlotCounterMap, SlotCounters, StatsMap, UNKNOWN_ENTRIES, UnknownAddress, UnknownTable,
};
