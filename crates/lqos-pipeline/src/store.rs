//! The applied plan on disk (`state_directory/applied_plan.json`): what lqosd last put in the
//! kernel, with its class-ID identities. lqosd writes it after every successful apply;
//! `libreqos --dry-run` reads it to show what would change.

use std::path::{Path, PathBuf};

use lqos_config::Config;
use lqos_plan::Plan;

/// File (in `state_directory`) holding the applied plan and its identities.
pub const APPLIED_PLAN_FILE: &str = "applied_plan.json";

/// Reads and writes the applied plan.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

/// Failure to read or write the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The applied-plan file exists but cannot be read.
    #[error("cannot read applied plan {}", path.display())]
    Read {
        /// The applied-plan file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a plan (written by another version?).
    #[error("applied plan {} is unreadable; it will be rebuilt from the inputs", path.display())]
    Decode {
        /// The applied-plan file.
        path: PathBuf,
        /// What serde could not decode.
        #[source]
        source: serde_json::Error,
    },
    /// Writing failed.
    #[error("cannot store applied plan in {}", path.display())]
    Write {
        /// The applied-plan file.
        path: PathBuf,
        /// The write error (directory creation, encoding or the atomic write).
        #[source]
        source: lqos_config::ConfigError,
    },
}

impl StateStore {
    /// A store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateStore { dir: dir.into() }
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The applied-plan file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(APPLIED_PLAN_FILE)
    }

    /// Loads the applied plan, `Ok(None)` when there is none yet.
    pub fn load(&self) -> Result<Option<Plan>, StateError> {
        let path = self.path();
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Read { path, source }),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|source| StateError::Decode { path, source })
    }

    /// Stores `plan` atomically.
    pub fn save(&self, plan: &Plan) -> Result<(), StateError> {
        let path = self.path();
        std::fs::create_dir_all(&self.dir).map_err(|e| StateError::Write {
            path: path.clone(),
            source: lqos_config::ConfigError::Write { path: self.dir.clone(), source: e },
        })?;
        let bytes = serde_json::to_vec(plan).map_err(|e| StateError::Write {
            path: path.clone(),
            source: lqos_config::ConfigError::Write {
                path: path.clone(),
                source: std::io::Error::other(e),
            },
        })?;
        lqos_config::write_atomic(&path, &bytes)
            .map_err(|source| StateError::Write { path: path.clone(), source })
    }

    /// Removes the stored plan (after `ClearTree`).
    pub fn remove(&self) -> Result<(), StateError> {
        let path = self.path();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Read { path, source }),
        }
    }
}

/// The state directory's store for `config`.
pub fn store_for(config: &Config) -> StateStore {
    StateStore::new(Path::new(&config.state_directory))
}
