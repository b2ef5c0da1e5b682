//! The `tc -batch` baseline behind the same [`Transport`] door, for benchmarks only: every
//! operation becomes its `tc` line and one `tc -batch -` process runs them. Queries and probes
//! go through netlink.

use std::io::Write;
use std::process::{Command, Stdio};

use lqos_config::LeafQdisc;

use crate::error::TcError;
use crate::transport::{Ack, NetlinkTransport, Query, Request, Transport};
use crate::wire::NlMsg;

/// Runs batches through `tc -batch -` (in the caller's network namespace: the child process
/// inherits the namespace of the thread that spawns it).
#[derive(Debug)]
pub struct TcBatchTransport {
    netlink: NetlinkTransport,
    tc: String,
}

impl TcBatchTransport {
    /// Uses `tc` from `PATH`.
    pub fn open() -> Result<Self, TcError> {
        Ok(TcBatchTransport { netlink: NetlinkTransport::open()?, tc: "tc".into() })
    }

    /// The text `tc -batch` would read for `batch`.
    pub fn script(batch: &[Request]) -> String {
        let mut s = String::with_capacity(batch.len() * 96);
        for r in batch {
            s.push_str(&r.op.tc_line());
            s.push('\n');
        }
        s
    }
}

impl Transport for TcBatchTransport {
    /// All-or-error: tc stops at the first failing line, so a failure is reported for the whole
    /// batch rather than per request.
    fn send_batch(&mut self, batch: &[Request]) -> Result<Vec<Ack>, TcError> {
        let script = Self::script(batch);
        let batch_err =
            |source| TcError::Batch { status: -1, stderr: String::new(), source: Some(source) };
        let mut child = Command::new(&self.tc)
            .args(["-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(batch_err)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes()).map_err(batch_err)?;
        }
        let out = child.wait_with_output().map_err(batch_err)?;
        if !out.status.success() {
            return Err(TcError::Batch {
                status: out.status.code().unwrap_or(-1),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                source: None,
            });
        }
        Ok(batch.iter().map(|_| Ok(())).collect())
    }

    fn query(&mut self, q: &Query, sink: &mut dyn FnMut(&NlMsg<'_>)) -> Result<(), TcError> {
        self.netlink.query(q, sink)
    }

    fn probe_qdisc(&mut self, leaf: &LeafQdisc) -> Result<bool, TcError> {
        self.netlink.probe_qdisc(leaf)
    }
}
