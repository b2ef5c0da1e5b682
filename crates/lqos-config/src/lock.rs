//! One advisory lock on the input files of a `lqos_directory`, shared by every writer
//! (lqos_scheduler's publish, the web editor): `flock` on `<lqos_directory>/.lqos-inputs.lock`,
//! held while a writer reads, checks and replaces network.json or ShapedDevices.csv, so two
//! writers never interleave a read-modify-write. Readers (lqosd) do not take it: every file is
//! replaced atomically (rename), so a reader sees the old or the new file, never half of one.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lock file's name inside `lqos_directory`.
pub const INPUTS_LOCK_FILE: &str = ".lqos-inputs.lock";

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct InputsLock {
    _file: File,
    path: PathBuf,
}

impl InputsLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes the exclusive lock of `lqos_directory`, waiting at most `wait`. Times out with
/// `ErrorKind::WouldBlock`.
pub fn lock_inputs(lqos_directory: &Path, wait: Duration) -> std::io::Result<InputsLock> {
    let path = lqos_directory.join(INPUTS_LOCK_FILE);
    let file =
        OpenOptions::new().create(true).truncate(false).write(true).mode(0o660).open(&path)?;
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(InputsLock { _file: file, path }),
            Err(TryLockError::Error(e)) => return Err(e),
            Err(TryLockError::WouldBlock) if start.elapsed() >= wait => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!(
                        "{} is held by another writer (lqos_scheduler or the web editor) for more than {} s",
                        path.display(),
                        wait.as_secs()
                    ),
                ));
            }
            Err(TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_writer_waits_then_gives_up_and_gets_it_after_release() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = lock_inputs(dir.path(), Duration::ZERO).expect("first");
        let err = lock_inputs(dir.path(), Duration::from_millis(60)).expect_err("busy");
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        assert!(err.to_string().contains(INPUTS_LOCK_FILE), "{err}");
        drop(held);
        lock_inputs(dir.path(), Duration::ZERO).expect("free again");
    }
}
