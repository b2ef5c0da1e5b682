//! Network namespaces and commands run inside them. Everything created here is removed by
//! the guards' `Drop`, also when a test panics.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A lab failure.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A command could not be started.
    #[error("cannot run {command}")]
    Spawn {
        /// The command line.
        command: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A command failed.
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Something else.
    #[error("{0}")]
    Other(String),
}

/// Runs a command, returning its output, failing on a non-zero exit.
pub fn run(program: &str, args: &[&str]) -> Result<Output, LabError> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    output_of(cmd, format!("{program} {}", args.join(" ")))
}

/// Runs `cmd` with no stdin; a non-zero exit becomes [`LabError::Failed`] with its stderr.
fn output_of(mut cmd: Command, command: String) -> Result<Output, LabError> {
    tracing::debug!(%command, "run");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn { command: command.clone(), source })?;
    if !out.status.success() {
        return Err(LabError::Failed {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out)
}

/// Runs a command, ignoring failures (cleanup paths).
pub fn run_quiet(program: &str, args: &[&str]) {
    let _ = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// True when running as root.
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    keep: bool,
}

impl Netns {
    /// Creates `name` (deleting a stale one first) and brings its loopback up.
    pub fn create(name: &str) -> Result<Self, LabError> {
        run_quiet("ip", &["netns", "del", name]);
        run("ip", &["netns", "add", name])?;
        let ns = Netns { name: name.to_owned(), keep: false };
        ns.exec("ip", &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Adopts an existing namespace (for `lqos-lab down`).
    pub fn adopt(name: &str) -> Self {
        Netns { name: name.to_owned(), keep: false }
    }

    /// Leaves the namespace in place when dropped (`lqos-lab up`).
    pub fn keep(mut self) -> Self {
        self.keep = true;
        self
    }

    /// Leaves the namespace in place when dropped.
    pub fn set_keep(&mut self) {
        self.keep = true;
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// A `Command` that runs `program` inside the namespace through `nsenter --net=…`, which
    /// (unlike `ip netns exec`) keeps the host's /sys and bpffs visible.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display())).arg("--").arg(program);
        c
    }

    /// Runs `program args…` inside the namespace, failing on a non-zero exit.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<Output, LabError> {
        let mut cmd = self.command(program);
        cmd.args(args);
        output_of(cmd, format!("[{}] {program} {}", self.name, args.join(" ")))
    }

    /// Runs inside the namespace and returns stdout as text.
    pub fn exec_stdout(&self, program: &str, args: &[&str]) -> Result<String, LabError> {
        Ok(String::from_utf8_lossy(&self.exec(program, args)?.stdout).into_owned())
    }

    /// Deletes the namespace now.
    pub fn delete(&mut self) {
        // Kill anything still running inside (iperf3, lqosd) so the namespace really goes.
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.name]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                run_quiet("kill", &["-9", pid]);
            }
        }
        run_quiet("ip", &["netns", "del", &self.name]);
        self.keep = true;
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.keep {
            self.delete();
        }
    }
}
