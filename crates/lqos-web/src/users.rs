//! The web users file (`<lqos_directory>/lqusers.toml`): usernames, Argon2id password hashes
//! and roles. Shared by lqos_web's login and user management and the `lqusers` CLI. Written
//! atomically (temp file + rename, mode 0600, owner kept); a missing file means "no users yet".
//!
//! Two writers (lqos_web and `lqusers`, or two admins) never lose each other's change: every
//! write holds an exclusive `flock` on `.lqusers.toml.lock` beside the file, and
//! [`UserStore::save`] refuses ([`UsersError::Changed`]) when the file is no longer what
//! [`UserStore::load`] read. [`UserStore::update`] re-reads the file under the lock, applies
//! a change and writes it before letting go, which is what the web API uses.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

/// One user. Its `Debug` shows no hash, so a stray `{:?}` cannot log one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login name.
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Bumped by every role change and password reset. Sessions are bound to it (with the
    /// hash and the role), so a session ended by a change stays ended even when the change is
    /// undone (role changed back). Absent (0) in files written before it existed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("role", &self.role)
            .field("generation", &self.generation)
            .finish()
    }
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
    /// The file is not a valid users file. Only the place and the parser's message are kept:
    /// the offending line may hold a password hash, which is never shown nor logged.
    #[error("users file {}:{line} is invalid: {message}", path.display())]
    Parse {
        /// The users file.
        path: PathBuf,
        /// 1-based line of the problem (1 when the parser gave no place).
        line: usize,
        /// The parser's message, without the quoted line.
        message: String,
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
    /// The change would leave no admin (nobody could manage users from the GUI any more).
    #[error("{username:?} is the last admin: make another user admin first")]
    LastAdmin {
        /// The user the change was about.
        username: String,
    },
    /// Someone else wrote the file after it was read; nothing was written.
    #[error(
        "users file {} changed since it was read (another lqusers or the web GUI saved it); nothing written: run the command again",
        path.display()
    )]
    Changed {
        /// The users file.
        path: PathBuf,
    },
    /// Another writer holds the users file's lock for longer than [`LOCK_WAIT`].
    #[error("users file {} is locked by another writer ({}); nothing written", path.display(), lock.display())]
    Busy {
        /// The users file.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// The lock file cannot be opened or locked.
    #[error("cannot lock users file {} through {}", path.display(), lock.display())]
    Lock {
        /// The users file.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The users file in memory.
#[derive(Debug, Clone)]
pub struct UserStore {
    path: PathBuf,
    users: Vec<User>,
    /// SHA-256 of the file as read (or last written); `None` when it did not exist.
    loaded: Option<[u8; 32]>,
}

/// How long a writer waits for another one's lock before giving up.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

impl UserStore {
    /// Loads `path`; a missing file gives an empty store.
    pub fn load(path: &Path) -> Result<UserStore, UsersError> {
        let (text, loaded) = match read_file(path)? {
            Some((text, digest)) => (text, Some(digest)),
            None => (String::new(), None),
        };
        let users = if text.trim().is_empty() {
            Vec::new()
        } else {
            toml::from_str::<UsersFile>(&text)
                .map_err(|e| UsersError::Parse {
                    path: path.into(),
                    line: e.span().map_or(1, |s| {
                        text.get(..s.start).map_or(1, |t| t.matches('\n').count() + 1)
                    }),
                    message: e.message().trim().to_owned(),
                })?
                .users
        };
        Ok(UserStore { path: path.into(), users, loaded })
    }

    /// A store with no users for `path` (what an unusable file is treated as: nobody).
    pub fn empty(path: &Path) -> UserStore {
        UserStore { path: path.into(), users: Vec::new(), loaded: None }
    }

    /// Writes the store back atomically (0600, owner kept) under the users file's lock.
    /// Refuses with [`UsersError::Changed`] when the file on disk is no longer the one this
    /// store was loaded from (or last saved as), so a concurrent edit is never overwritten.
    pub fn save(&mut self) -> Result<(), UsersError> {
        let _lock = lock(&self.path)?;
        let now = read_file(&self.path)?.map(|(_, digest)| digest);
        if now != self.loaded {
            return Err(UsersError::Changed { path: self.path.clone() });
        }
        self.write_locked()
    }

    /// Re-reads `path` under its lock, applies `change` and writes the result before the
    /// lock is released: the way to change the file from a long-running process, where the
    /// copy in memory may be old. Nothing is written when `change` fails.
    pub fn update<T>(
        path: &Path,
        change: impl FnOnce(&mut UserStore) -> Result<T, UsersError>,
    ) -> Result<(T, UserStore), UsersError> {
        let _lock = lock(path)?;
        let mut store = UserStore::load(path)?;
        let out = change(&mut store)?;
        store.write_locked()?;
        Ok((out, store))
    }

    /// Writes the file; the caller holds the lock.
    fn write_locked(&mut self) -> Result<(), UsersError> {
        let file = UsersFile { version: 1, users: self.users.clone() };
        let text = toml::to_string(&file).map_err(|e| UsersError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        write_atomic_private(&self.path, text.as_bytes())
            .map_err(|source| UsersError::Write { path: self.path.clone(), source })?;
        self.loaded = Some(digest(text.as_bytes()));
        Ok(())
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

    /// True when at least one user is an admin.
    pub fn has_admin(&self) -> bool {
        self.users.iter().any(|u| u.role == Role::Admin)
    }

    /// Refuses ([`UsersError::LastAdmin`]) when no admin is left after a change to
    /// `username`, for the callers that must keep one (the web API).
    pub fn require_admin(&self, username: &str) -> Result<(), UsersError> {
        if self.has_admin() {
            Ok(())
        } else {
            Err(UsersError::LastAdmin { username: username.into() })
        }
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
        self.users.push(User { username: username.into(), password_hash, role, generation: 0 });
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
        user.generation = user.generation.wrapping_add(1);
        Ok(())
    }

    /// Changes a role (not saved yet); the same role again changes nothing. Existing
    /// sessions of that user end.
    pub fn set_role(&mut self, username: &str, role: Role) -> Result<(), UsersError> {
        let user = self
            .users
            .iter_mut()
            .find(|u| u.username == username)
            .ok_or_else(|| UsersError::NoSuchUser { username: username.into() })?;
        if user.role != role {
            user.role = role;
            user.generation = user.generation.wrapping_add(1);
        }
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

/// The file's text and SHA-256, `None` when it does not exist.
fn read_file(path: &Path) -> Result<Option<(String, [u8; 32])>, UsersError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let d = digest(&bytes);
            let text = String::from_utf8(bytes).map_err(|e| UsersError::Read {
                path: path.into(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()),
            })?;
            Ok(Some((text, d)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(UsersError::Read { path: path.into(), source }),
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// The lock file of `path`: `.<name>.lock` beside it.
pub fn lock_path(path: &Path) -> PathBuf {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir.join(format!(".{name}.lock"))
}

/// Takes the exclusive lock of `path` (an `flock` on [`lock_path`]), waiting at most
/// [`LOCK_WAIT`]. The lock ends when the returned file is dropped. The lock file is created
/// 0644 (it holds nothing): `lqusers` running as root and `lqos_web` as `lqos` can both open
/// it, read-only when it belongs to the other.
fn lock(path: &Path) -> Result<std::fs::File, UsersError> {
    use std::os::unix::fs::OpenOptionsExt;
    let lock = lock_path(path);
    let err = |source| UsersError::Lock { path: path.into(), lock: lock.clone(), source };
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(&lock)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            std::fs::File::open(&lock).map_err(err)?
        }
        Err(e) => return Err(err(e)),
    };
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(UsersError::Busy { path: path.into(), lock });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(err(e)),
        }
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
    fn save_refuses_a_copy_older_than_the_file_and_update_rereads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(USERS_FILE_NAME);
        let mut a = UserStore::load(&path).expect("load");
        let mut b = UserStore::load(&path).expect("load");
        a.add("alice", "long-password", Role::Admin).expect("add");
        a.save().expect("first writer");
        b.add("bob", "long-password", Role::ReadOnly).expect("add");
        assert!(matches!(b.save(), Err(UsersError::Changed { .. })), "stale copy refused");
        // The first writer may save again: its copy is what it wrote.
        a.add("carol", "long-password", Role::ReadOnly).expect("add");
        a.save().expect("own write is not a change by someone else");
        let ((), store) =
            UserStore::update(&path, |s| s.add("bob", "long-password", Role::ReadOnly))
                .expect("update");
        let names: Vec<&str> = store.users().iter().map(|u| u.username.as_str()).collect();
        assert_eq!(names, ["alice", "carol", "bob"]);
        // A failed change writes nothing.
        let before = std::fs::read(&path).expect("read");
        let failed = UserStore::update(&path, |s| {
            s.remove("alice")?;
            s.require_admin("alice")
        });
        assert!(matches!(failed, Err(UsersError::LastAdmin { .. })));
        assert_eq!(std::fs::read(&path).expect("read"), before);
        assert!(lock_path(&path).ends_with(".lqusers.toml.lock"));
        let debug = format!("{store:?}");
        assert!(debug.contains("bob") && !debug.contains("argon2"), "{debug}");
    }

    #[test]
    fn a_broken_file_is_reported_by_line_without_its_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(USERS_FILE_NAME);
        std::fs::write(
            &path,
            "version = 1\n[[users]]\nusername = \"a\"\npassword_hash = \"$argon2id$SECRETHASH\"\nrole = \"god\"\n",
        )
        .expect("write");
        let err = UserStore::load(&path).expect_err("invalid role");
        let text = format!("{err}");
        assert!(text.contains("lqusers.toml:5"), "{text}");
        assert!(!text.contains("SECRETHASH") && !text.contains("argon2"), "{text}");
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            assert!(!s.to_string().contains("SECRETHASH"));
            source = s.source();
        }
    }

    #[test]
    fn role_parse() {
        assert_eq!(Role::parse("Admin"), Some(Role::Admin));
        assert_eq!(Role::parse("read-only"), Some(Role::ReadOnly));
        assert_eq!(Role::parse("root"), None);
    }
}
