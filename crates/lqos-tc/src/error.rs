//! [`TcError`]: everything that can go wrong between a plan and the kernel.

use std::io;

use lqos_plan::Owner;

/// A kernel's answer to one request: errno plus the extended-ack text, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelError {
    /// Positive errno (`ENOENT` = 2, …).
    pub errno: i32,
    /// `NLMSGERR_ATTR_MSG`, e.g. "Specified qdisc kind is unknown".
    pub extack: Option<String>,
}

impl KernelError {
    /// The errno as an `io::Error` (for `#[source]`).
    pub fn io(&self) -> io::Error {
        io::Error::from_raw_os_error(self.errno)
    }
}

/// The lqos-tc error.
#[derive(Debug, thiserror::Error)]
pub enum TcError {
    /// Opening or configuring the netlink socket failed.
    #[error("open netlink route socket")]
    Socket {
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Sending or receiving on the netlink socket failed.
    #[error("netlink {what}")]
    Io {
        /// `send` or `receive`.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The kernel refused an operation.
    #[error("{op}{}: {}", owner.as_ref().map(|o| format!(" for {o}")).unwrap_or_default(), extack.as_deref().unwrap_or("kernel refused"))]
    Kernel {
        /// The operation, as `add class 3:1f (parent 3:1) on eth1`.
        op: String,
        /// The plan object that caused it, when there is one.
        owner: Option<Owner>,
        /// Positive errno.
        errno: i32,
        /// The kernel's extended-ack message.
        extack: Option<String>,
        /// Further operations of the same batch that failed too (often cascades).
        more_failures: usize,
        /// The errno as an OS error.
        #[source]
        source: io::Error,
    },
    /// No such network interface.
    #[error("interface {name:?} does not exist")]
    NoSuchInterface {
        /// The name looked up.
        name: String,
    },
    /// A leaf qdisc kind the plan needs is not available in this kernel.
    #[error("this kernel cannot create {kind:?} qdiscs (module {module} is missing); {hint}")]
    UnsupportedQdisc {
        /// The qdisc kind (`cake`).
        kind: String,
        /// The kernel module that provides it (`sch_cake`).
        module: String,
        /// What to change in the configuration.
        hint: String,
    },
    /// The kernel sent something this crate cannot parse.
    #[error("malformed netlink reply: {what}")]
    Protocol {
        /// What was wrong.
        what: String,
    },
    /// The `tc -batch` baseline failed.
    #[error("tc -batch failed (exit {status}): {stderr}")]
    Batch {
        /// Exit status (-1 when killed).
        status: i32,
        /// tc's error output.
        stderr: String,
        /// Spawning or feeding tc failed.
        #[source]
        source: Option<io::Error>,
    },
    /// The throw-away namespace for probing qdisc kinds could not be made.
    #[error("probe qdisc kind {kind:?} in a scratch network namespace")]
    Probe {
        /// The kind probed.
        kind: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl TcError {
    /// The errno of a kernel refusal, if this is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            TcError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// The kernel module that provides a qdisc kind.
pub fn module_for(kind: &str) -> String {
    format!("sch_{kind}")
}

/// What to change in lqos.conf when a leaf kind is missing.
pub fn hint_for(kind: &str) -> String {
    let alternative = match kind {
        "cake" => "\"fq_codel\" or \"none\"",
        "fq_codel" => "\"cake diffserv4\" or \"none\"",
        _ => "\"none\"",
    };
    format!(
        "set default_sqm = {alternative} in /etc/lqos.conf [queues] (and check the sqm column of \
         ShapedDevices.csv), or install the kernel module {}",
        module_for(kind)
    )
}

/// Builds [`TcError::UnsupportedQdisc`] for `kind`.
pub fn unsupported(kind: &str) -> TcError {
    TcError::UnsupportedQdisc {
        kind: kind.to_string(),
        module: module_for(kind),
        hint: hint_for(kind),
    }
}
