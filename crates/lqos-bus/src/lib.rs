//! lqos-bus is lqosd's local bus: the one typed list of [`Command`]s that tools may send to the
//! daemon, its [`Response`]s, the framing (length-prefixed, versioned JSON), a blocking
//! [`BusClient`] for the command-line tools, and (feature `server`) an async [`server`] that
//! turns every connection's requests into messages on one queue owned by lqosd's apply task.
//! It never touches the kernel and never decides anything: it only carries messages.
//!
//! ```no_run
//! use lqos_bus::{BusClient, Command, Response};
//! let mut bus = BusClient::connect(&lqos_bus::bus_path())?;
//! assert_eq!(bus.request(&Command::Ping)?, Response::Pong);
//! # Ok::<(), lqos_bus::BusError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod access;
pub mod frame;
mod messages;
mod queue;
#[cfg(feature = "server")]
pub mod server;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use access::Access;
pub use messages::*;
pub use queue::*;

/// Where lqosd listens unless `LQOS_BUS` says otherwise.
pub const DEFAULT_BUS_PATH: &str = "/run/lqos/bus";

/// The bus socket path: `LQOS_BUS`, else [`DEFAULT_BUS_PATH`].
pub fn bus_path() -> PathBuf {
    std::env::var_os("LQOS_BUS").map(PathBuf::from).unwrap_or_else(|| DEFAULT_BUS_PATH.into())
}

/// Bus failures.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// lqosd is not listening.
    #[error(
        "cannot reach lqosd at {}: is it running? (systemctl status lqosd; journalctl -u lqosd)",
        path.display()
    )]
    Connect {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("bus i/o failed")]
    Io {
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A frame could not be encoded.
    #[error("cannot encode bus message")]
    Encode {
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
    /// A frame could not be decoded.
    #[error("cannot decode bus message")]
    Decode {
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
    /// The peer speaks another protocol version.
    #[error(
        "bus protocol mismatch: we speak version {ours}, lqosd speaks {theirs}; upgrade both together"
    )]
    VersionMismatch {
        /// Ours.
        ours: u16,
        /// Theirs.
        theirs: u16,
    },
    /// A frame exceeds [`frame::MAX_FRAME`].
    #[error("bus frame of {len} bytes exceeds the limit")]
    FrameTooLarge {
        /// Announced length.
        len: usize,
    },
    /// lqosd closed the connection without answering.
    #[error("lqosd closed the connection without answering")]
    Closed,
}

/// A blocking connection to lqosd, for the command-line tools.
///
/// lqosd closes connections that stay idle for minutes; a request on such a connection
/// reconnects once, transparently (the request was never read, so it is not repeated).
#[derive(Debug)]
pub struct BusClient {
    path: PathBuf,
    stream: UnixStream,
    timeout: Option<Duration>,
    answered: bool,
}

impl BusClient {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Self, BusError> {
        let stream = UnixStream::connect(path)
            .map_err(|source| BusError::Connect { path: path.to_owned(), source })?;
        Ok(BusClient { path: path.to_owned(), stream, timeout: None, answered: false })
    }

    /// Sets how long a request may wait for its answer (`None` = forever). Reloads of large
    /// trees take seconds; the default is no limit.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), BusError> {
        self.stream.set_read_timeout(timeout).map_err(|source| BusError::Io { source })?;
        self.stream.set_write_timeout(timeout).map_err(|source| BusError::Io { source })?;
        self.timeout = timeout;
        Ok(())
    }

    /// Sends one command and waits for its answer.
    pub fn request(&mut self, command: &Command) -> Result<Response, BusError> {
        match self.request_once(command) {
            Err(e) if self.answered && closed_by_peer(&e) => {
                // lqosd closed this connection while it was idle: start a fresh one.
                let mut fresh = BusClient::connect(&self.path)?;
                fresh.set_timeout(self.timeout)?;
                *self = fresh;
                self.request_once(command)
            }
            other => other,
        }
    }

    fn request_once(&mut self, command: &Command) -> Result<Response, BusError> {
        frame::write_frame(&mut self.stream, command)?;
        let answer = frame::read_frame(&mut self.stream)?.ok_or(BusError::Closed)?;
        self.answered = true;
        Ok(answer)
    }
}

/// True for the errors a connection closed by lqosd before it read the request gives.
fn closed_by_peer(e: &BusError) -> bool {
    match e {
        BusError::Closed => true,
        BusError::Io { source } => matches!(
            source.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        _ => false,
    }
}
