//! lqos-bpf owns lqos's eBPF data plane: the C programs in `bpf/` (compiled by `build.rs`
//! with clang and embedded), loading them with aya, attaching XDP (ingress) and the tc
//! classifier (egress, TCX), and typed access to their maps. It must not touch qdiscs or
//! classes (lqos-tc does) and never decides *what* to map (lqosd/lqos-plan do).
//!
//! Main types: [`Dataplane`] (load, attach, detach, test-run), [`IpMap`] (IP → CPU/class
//! trie with an epoch-checked hot cache), [`CpuMap`], [`HostCounters`], [`InterfaceRole`],
//! the kernel seam [`BpfKernel`] and, behind `cfg(any(test, feature = "fake"))`,
//! `fake::FakeKernel`. Shared layouts live in `bpf/lqos_abi.h` and are mirrored in [`abi`].
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
mod maps;

pub use dataplane::{
    BPFFS_PATH, DEFAULT_PIN_DIR, Dataplane, LoadOptions, PINNED_MAPS, TC_ACT_OK, TC_ACT_REDIRECT,
    TcTestResult, XDP_PASS, XDP_REDIRECT, XdpAttachMode, XdpTestResult, ensure_bpffs,
    ensure_bpffs_at, remove_pins,
};
pub use error::BpfError;
pub use kernel::BpfKernel;
pub use maps::{
    CpuMap, DEFAULT_CPUMAP_QUEUE_SIZE, HostCounter, HostCounters, InterfaceConfig, InterfaceRole,
    IpMap, IpMapping, MappingBatch, decode_addr, decode_net, encode_addr, encode_net,
};
