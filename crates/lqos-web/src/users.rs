//! The web users file (`<lqos_directory>/lqusers.toml`): usernames, Argon2id password hashes
//! and roles. Shared by lqos_web's login and the `lqusers` CLI. Written atomically (temp file +
//! rename, mode 0600); a missing file means "no users yet".
//!
//! ```toml
//! version = 1
//! [[users]]
//! username = "alice"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$…"
//! role = "admin"
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use serde::{Deserialize, Serialize};

/// The users file's name inside `lqos_directory`.
pub const USERS_FILE_NAME: &str = "lqusers.toml";

/// Shortest accepted password.
pub const MIN_PASSWORD_LEN: usize = 8;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including edits and reloads.
    Admin,
    /// View only.
    ReadOnly,
}

impl Role {
    /// Parses `admin` / `read-only` (also `read_only`, `readonly`).
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Some(Role::Admin),
            "read-only" | "read_only" | "readonly" | "ro" => Some(Role::ReadOnly),
            _ => None,
        }
    }

    /// `admin` or `read-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ReadOnly => "read-only",
        }
    }
}

/// One user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login name.
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
}

#[derive(Debug, Serialize, Deserialize)]
struct UsersFile {
    version: u32,
    #[serde(default)]
    users: Vec<User>,
}

/// Users-file failures.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// Reading the file failed.
    #[error("cannot read users file {}", path.display())]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("users file {} is invalid", path.display())]
    Parse {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: toml::de::Error,
    },
    /// Writing the file failed.
    #[error("cannot write users file {}", path.display())]
    Write {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Username rules.
    #[error("invalid username {username:?}: use 1-64 letters, digits, '.', '_', '-' or '@'")]
    BadUsername {
        /// As given.
        username: String,
    },
    /// Password rules.
    #[error("password too short: at least {MIN_PASSWORD_LEN} characters")]
    WeakPassword,
    /// Duplicate.
    #[error("user {username:?} already exists")]
    Exists {
        /// Name.
        username: String,
    },
    /// Missing.
    #[error("no user {username:?}")]
    NoSuchUser {
        /// Name.
        username: String,
    },
    /// Hashing failed.
    #[error("cannot hash password: {message}")]
    Hash {
        /// argon2's message.
        message: String,
    },
}

/// The users file in memory.
#[derive(Debug, Clone)]
pub struct UserStore {
    path: PathBuf,
    users: Vec<User>,
}

impl UserStore {
    /// Loads `path`; a missing file gives an empty store.
    pub fn load(path: &Path) -> Result<UserStore, UsersError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(UsersError::Read { path: path.into(), source }),
        };
        let users = if text.trim().is_empty() {
            Vec::new()
        } else {
            toml::from_str::<UsersFile>(&text)
                .map_err(|source| UsersError::Parse { path: path.into(), source })?
                .users
        };
        Ok(UserStore { path: path.into(), users })
    }

    /// A store with no users for `path` (what an unusable file is treated as: nobody).
    pub fn empty(path: &Path) -> UserStore {
        UserStore { path: path.into(), users: Vec::new() }
    }

    /// Writes the store back atomically (0600).
    pub fn save(&self) -> Result<(), UsersError> {
        let file = UsersFile { version: 1, users: self.users.clone() };
        let text = toml::to_string(&file).map_err(|e| UsersError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        write_atomic_private(&self.path, text.as_bytes())
            .map_err(|source| UsersError::Write { path: self.path.clone(), source })
    }

    /// The file this store belongs to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All users.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// True when no user exists (first run).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// One user.
    pub fn get(&self, username: &str) -> Option<&User> {
        self.users.iter().find(|u| u.username == username)
    }

    /// Adds a user (not saved yet).
    pub fn add(&mut self, username: &str, password: &str, role: Role) -> Result<(), UsersError> {
        check_username(username)?;
        if self.get(username).is_some() {
            return Err(UsersError::Exists { username: username.into() });
        }
        let password_hash = hash_password(password)?;
        self.users.push(User { username: username.into(), password_hash, role });
        Ok(())
    }

    /// Removes a user (not saved yet).
    pub fn remove(&mut self, username: &str) -> Result<(), UsersError> {
        let before = self.users.len();
        self.users.retain(|u| u.username != username);
        if self.users.len() == before {
            return Err(UsersError::NoSuchUser { username: username.into() });
        }
        Ok(())
    }

    /// Changes a password (not saved yet). Existing sessions of that user end.
    pub fn set_password(&mut self, username: &str, password: &str) -> Result<(), UsersError> {
        let hash = hash_password(password)?;
        let user = self
            .users
            .iter_mut()
            .find(|u| u.username == username)
            .ok_or_else(|| UsersError::NoSuchUser { username: username.into() })?;
        user.password_hash = hash;
        Ok(())
    }

    /// Changes a role (not saved yet).
    pub fn set_role(&mut self, username: &str, role: Role) -> Result<(), UsersError> {
        let user = self
            .users
            .iter_mut()
            .find(|u| u.username == username)
            .ok_or_else(|| UsersError::NoSuchUser { username: username.into() })?;
        user.role = role;
        Ok(())
    }

    /// The user if `password` matches (slow: Argon2id).
    pub fn verify(&self, username: &str, password: &str) -> Option<&User> {
        let user = self.get(username);
        let dummy;
        let hash = match user {
            Some(u) => u.password_hash.as_str(),
            None => {
                dummy = DUMMY_HASH
                    .get_or_init(|| hash_password("not-a-real-password").unwrap_or_default());
                dummy.as_str()
            }
        };
        let ok = verify_password(hash, password);
        if ok { user } else { None }
    }
}

/// Verified against when the user does not exist, so that timing does not tell.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn check_username(username: &str) -> Result<(), UsersError> {
    let ok = !username.is_empty()
        && username.len() <= 64
        && username.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok { Ok(()) } else { Err(UsersError::BadUsername { username: username.into() }) }
}

/// Hashes a password with Argon2id (default parameters, random salt).
pub fn hash_password(password: &str) -> Result<String, UsersError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(UsersError::WeakPassword);
    }
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| UsersError::Hash { message: e.to_string() })?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Hash { message: e.to_string() })
}

/// Largest Argon2 memory a stored hash may ask for (256 MiB); larger ones never verify.
const MAX_ARGON2_BLOCKS: usize = 256 * 1024;

thread_local! {
    /// Argon2's working memory, kept per thread and reused: a hashing thread holds one
    /// buffer (19 MiB with the default parameters) instead of allocating one per attempt,
    /// so memory stays bounded by the number of hashing threads.
    static ARGON2_MEMORY: std::cell::RefCell<Vec<argon2::Block>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// True when `password` matches the PHC string `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    let (Ok(algorithm), Some(salt), Some(expected)) =
        (argon2::Algorithm::try_from(parsed.algorithm), parsed.salt, parsed.hash)
    else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = argon2::Params::try_from(&parsed) else { return false };
    let blocks = params.block_count();
    if blocks > MAX_ARGON2_BLOCKS {
        return false;
    }
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else { return false };
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    let hashed = ARGON2_MEMORY.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() < blocks {
            m.resize(blocks, argon2::Block::default());
        }
        argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut m[..blocks])
    });
    hashed.is_ok()
        && out.len() == expected.as_bytes().len()
        && out.iter().zip(expected.as_bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Writes `bytes` to a temp file next to `path` (mode 0600), fsyncs and renames it over `path`.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // A fresh random name, created with O_EXCL: two writers (lqos_web and lqusers, or two
    // threads) never share a temp file, and a planted file or symlink is never followed.
    let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(rand::random::<[u8; 8]>())));
    let result = (|| {
        let mut f =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        keep_owner(&f, path, dir);
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Gives the new file the owner of the file it replaces, or for a new file the owner of its
/// directory: `lqusers` runs as root, but `lqos_web` (user `lqos`) must still read the file.
/// Only root can change owners; for anyone else this changes nothing.
fn keep_owner(f: &std::fs::File, path: &Path, dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Some(want) = std::fs::metadata(path).or_else(|_| std::fs::metadata(dir)).ok() else {
        return;
    };
    let Ok(have) = f.metadata() else { return };
    if (have.uid(), have.gid()) != (want.uid(), want.gid())
        && let Err(e) = std::os::unix::fs::fchown(f, Some(want.uid()), Some(want.gid()))
    {
        tracing::debug!(file = %path.display(), error = %e, "cannot give the users file its owner");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[expect(clippy::print_stderr, reason = "says when it skips without root")]
    fn a_file_written_by_root_belongs_to_the_directory_owner() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tempdir");
        if std::fs::metadata(dir.path()).expect("stat").uid() != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).expect("chown dir");
        let path = dir.path().join(USERS_FILE_NAME);
        let mut store = UserStore::load(&path).expect("load");
        store.add("alice", "long-password", Role::Admin).expect("add");
        store.save().expect("save");
        let md = std::fs::metadata(&path).expect("stat");
        assert_eq!((md.uid(), md.gid(), md.mode() & 0o777), (65534, 65534, 0o600));
        // A later write keeps the file's owner, even if the directory changes hands.
        std::os::unix::fs::chown(dir.path(), Some(0), Some(0)).expect("chown dir back");
        store.add("bob", "long-password", Role::ReadOnly).expect("add");
        store.save().expect("save");
        let md = std::fs::metadata(&path).expect("stat");
        assert_eq!((md.uid(), md.gid()), (65534, 65534));
    }

    #[test]
    fn round_trip_and_verify() {
        let dir = tempfile::tempdir().expect("test");
        let path = dir.path().join(USERS_FILE_NAME);
        let mut store = UserStore::load(&path).expect("test");
        assert!(store.is_empty());
        store.add("alice", "correct horse", Role::Admin).expect("test");
        store.add("bob", "battery staple", Role::ReadOnly).expect("test");
        assert!(matches!(
            store.add("bob", "whatever12", Role::Admin),
            Err(UsersError::Exists { .. })
        ));
        assert!(matches!(
            store.add("x y", "whatever12", Role::Admin),
            Err(UsersError::BadUsername { .. })
        ));
        assert!(matches!(store.add("carol", "short", Role::Admin), Err(UsersError::WeakPassword)));
        store.save().expect("test");
        let again = UserStore::load(&path).expect("test");
        assert_eq!(again.users().len(), 2);
        assert!(again.get("alice").expect("test").password_hash.starts_with("$argon2id$"));
        assert_eq!(again.verify("alice", "correct horse").map(|u| u.role), Some(Role::Admin));
        assert!(again.verify("alice", "wrong password").is_none());
        assert!(again.verify("nobody", "correct horse").is_none());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).expect("test").permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn role_parse() {
        assert_eq!(Role::parse("Admin"), Some(Role::Admin));
        assert_eq!(Role::parse("read-only"), Some(Role::ReadOnly));
        assert_eq!(Role::parse("root"), None);
    }
}
