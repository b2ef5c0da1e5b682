//! The crate's error type.

use std::{io, path::PathBuf};

/// Everything that can go wrong while loading, attaching or using the data plane.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// The embedded object could not be parsed or its maps created.
    #[error("load eBPF object lqos_kern.o")]
    Object {
        /// aya's error.
        #[source]
        source: aya::EbpfError,
    },
    /// A program was refused by the kernel; the source carries the verifier log.
    #[error("load eBPF program {program}")]
    ProgramLoad {
        /// Program name.
        program: &'static str,
        /// aya's error (its message includes the verifier output).
        #[source]
        source: aya::programs::ProgramError,
    },
    /// The object does not contain an expected program or map (build mismatch).
    #[error("{kind} {name} is missing from lqos_kern.o")]
    Missing {
        /// "program" or "map".
        kind: &'static str,
        /// Name looked up.
        name: &'static str,
    },
    /// A typed map operation failed.
    #[error("{operation} on map {map}")]
    Map {
        /// Map name.
        map: &'static str,
        /// What was being done (e.g. "insert 198.18.0.0/24").
        operation: String,
        /// aya's error.
        #[source]
        source: aya::maps::MapError,
    },
    /// A raw map syscall failed.
    #[error("{operation} on map {map}")]
    MapSyscall {
        /// Map name.
        map: &'static str,
        /// What was being done.
        operation: String,
        /// OS error.
        #[source]
        source: io::Error,
    },
    /// Filling a cpumap slot failed.
    #[error("set cpumap entry for cpu {cpu}")]
    CpuMap {
        /// CPU index.
        cpu: u32,
        /// aya's error.
        #[source]
        source: aya::maps::xdp::XdpMapError,
    },
    /// Reading the CPU lists from sysfs failed.
    #[error("read {path}")]
    Cpus {
        /// The sysfs file.
        path: &'static str,
        /// OS error.
        #[source]
        source: io::Error,
    },
    /// The interface name does not resolve to an ifindex.
    #[error("interface {ifname} not found")]
    NoInterface {
        /// Interface name.
        ifname: String,
        /// OS error.
        #[source]
        source: nix::Error,
    },
    /// Attaching a program failed.
    #[error("attach {program} to {ifname}")]
    Attach {
        /// Program name.
        program: &'static str,
        /// Interface.
        ifname: String,
        /// aya's error.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// Detaching a program failed.
    #[error("detach {program} from {ifname}")]
    Detach {
        /// Program name.
        program: &'static str,
        /// Interface.
        ifname: String,
        /// aya's error.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// `BPF_PROG_TEST_RUN` failed.
    #[error("test run of {program}")]
    TestRun {
        /// Program name.
        program: &'static str,
        /// aya's error.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// The pin directory could not be created or cleaned.
    #[error("pin directory {path}")]
    PinDir {
        /// Directory.
        path: PathBuf,
        /// OS error.
        #[source]
        source: io::Error,
    },
    /// Mounting bpffs failed.
    #[error("mount bpffs on {path}")]
    Mount {
        /// Mount point.
        path: PathBuf,
        /// OS error.
        #[source]
        source: nix::Error,
    },
    /// A mapping cannot be represented (e.g. stick offset pushes the major past 0xFFFF).
    #[error("invalid mapping for {net}: {reason}")]
    InvalidMapping {
        /// The prefix.
        net: ipnet::IpNet,
        /// Why.
        reason: &'static str,
    },
    /// Two configured interfaces share an index of the interface role array.
    #[error(
        "interface ifindex {ifindex} collides with configured ifindex {other} (equal modulo 1024)"
    )]
    IfindexCollision {
        /// The interface being configured.
        ifindex: u32,
        /// The one already there.
        other: u32,
    },
    /// A load option is out of range.
    #[error("load option {option}: {reason}")]
    InvalidOption {
        /// Option name.
        option: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A failure injected into the fake kernel by a test.
    #[error("injected failure in fake kernel during {operation}")]
    Injected {
        /// The faked call.
        operation: &'static str,
    },
}
