//! lqusers: manage the lqos web users file (`<lqos_directory>/lqusers.toml`) from the shell —
//! `add`, `del`, `list`, `passwd`. It uses lqos-web's user store (Argon2id hashes, atomic 0600
//! writes under the users file's lock, the same the GUI's user management takes); lqos_web
//! picks changes up within a second, and a changed password ends that user's sessions. When
//! the file changed after it was read (an admin edited users in the GUI while the password
//! prompt waited), nothing is written and it asks to run the command again. It talks to
//! neither lqosd nor lqos_web.
//!
//! Passwords come from `--password-stdin` (first line of stdin) or from a prompt without echo,
//! asked twice; without a terminal and without `--password-stdin` it refuses.
//!
//! Main items: [`Cli`] (arguments), [`run`] (does the work, returns what to print),
//! [`PasswordPrompt`] + [`prompt_new_password`] (the interactive prompt, testable).
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use lqos_web::users::{MIN_PASSWORD_LEN, Role, USERS_FILE_NAME, UserStore, UsersError};

/// Manage lqos web users.
#[derive(Debug, Parser)]
#[command(name = "lqusers", version)]
pub struct Cli {
    /// Users file (default: `<lqos_directory>/lqusers.toml` from /etc/lqos.conf or $LQOS_CONFIG).
    #[arg(long, env = "LQOS_USERS_FILE", global = true)]
    pub file: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Add a user.
    Add {
        /// Login name.
        #[arg(long, short)]
        username: String,
        /// `admin` or `read-only`.
        #[arg(long, short, default_value = "read-only")]
        role: String,
        /// Read the password from the first line of stdin instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user.
    Del {
        /// Login name.
        username: String,
    },
    /// List users and roles.
    List,
    /// Set a new password (ends the user's sessions).
    Passwd {
        /// Login name.
        username: String,
        /// Read the password from the first line of stdin instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Finds the users file: `--file`, else `<lqos_directory>/lqusers.toml` from lqos.conf.
pub fn users_file(cli: &Cli) -> anyhow::Result<PathBuf> {
    if let Some(f) = &cli.file {
        return Ok(f.clone());
    }
    let conf = lqos_config::config_path_from_env(None);
    let (config, _) = lqos_config::load_config(&conf).with_context(|| {
        format!("cannot find the users file: give --file or fix {}", conf.display())
    })?;
    Ok(config.lqos_directory.join(USERS_FILE_NAME))
}

/// Reads one password line from `input` (trailing newline removed).
pub fn read_password(input: &mut impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input.read_line(&mut line).context("cannot read the password from stdin")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    if pw.is_empty() {
        bail!("empty password");
    }
    Ok(pw)
}

/// An interactive password source (the terminal in the binary, a fake in tests).
pub trait PasswordPrompt {
    /// True when a person can answer (stdin is a terminal).
    fn is_interactive(&self) -> bool;
    /// Shows `prompt` and reads one line without echoing it (newline removed).
    fn read_hidden(&mut self, prompt: &str) -> std::io::Result<String>;
}

/// Asks for a new password twice without echo. Refuses when `prompt` is not interactive
/// (pointing at `--password-stdin`), on an empty or too short password, and when the two
/// entries differ.
pub fn prompt_new_password(prompt: &mut impl PasswordPrompt) -> anyhow::Result<String> {
    if !prompt.is_interactive() {
        bail!(
            "stdin is not a terminal: cannot prompt for the password; \
             pipe it in with --password-stdin"
        );
    }
    let first = prompt
        .read_hidden(&format!("Password ({MIN_PASSWORD_LEN}+ characters): "))
        .context("cannot read the password from the terminal")?;
    if first.is_empty() {
        bail!("empty password");
    }
    if first.chars().count() < MIN_PASSWORD_LEN {
        return Err(UsersError::WeakPassword.into());
    }
    let second = prompt
        .read_hidden("Repeat password: ")
        .context("cannot read the password from the terminal")?;
    if first != second {
        bail!("passwords do not match; nothing changed");
    }
    Ok(first)
}

/// Runs one command against `file`; `password` is asked for only when needed. Returns the
/// lines to print.
pub fn run(
    cmd: &Cmd,
    file: &std::path::Path,
    password: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<Vec<String>> {
    let mut store = UserStore::load(file)?;
    match cmd {
        Cmd::Add { username, role, .. } => {
            let role = Role::parse(role)
                .with_context(|| format!("unknown role {role:?}: use admin or read-only"))?;
            if store.get(username).is_some() {
                bail!("user {username:?} already exists");
            }
            store.add(username, &password()?, role)?;
            store.save()?;
            Ok(vec![format!("added {username} ({})", role.as_str())])
        }
        Cmd::Del { username } => {
            store.remove(username)?;
            store.save()?;
            Ok(vec![format!("deleted {username}")])
        }
        Cmd::List => Ok(if store.is_empty() {
            vec![format!("no users in {}", file.display())]
        } else {
            store.users().iter().map(|u| format!("{}\t{}", u.username, u.role.as_str())).collect()
        }),
        Cmd::Passwd { username, .. } => {
            if store.get(username).is_none() {
                bail!("no user {username:?}");
            }
            store.set_password(username, &password()?)?;
            store.save()?;
            Ok(vec![format!("password changed for {username}")])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_list_passwd_del_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("lqusers.toml");
        let add = Cmd::Add { username: "ops".into(), role: "admin".into(), password_stdin: true };
        let out = run(&add, &f, || read_password(&mut "first-password\n".as_bytes())).expect("add");
        assert_eq!(out, ["added ops (admin)"]);
        assert!(run(&add, &f, || Ok("first-password".into())).is_err(), "duplicate");
        let bad = Cmd::Add { username: "x".into(), role: "root".into(), password_stdin: true };
        assert!(run(&bad, &f, || Ok("whatever-12".into())).is_err());
        assert_eq!(run(&Cmd::List, &f, || unreachable!()).expect("list"), ["ops\tadmin"]);
        let store = UserStore::load(&f).expect("load");
        assert!(store.verify("ops", "first-password").is_some());
        run(&Cmd::Passwd { username: "ops".into(), password_stdin: true }, &f, || {
            Ok("second-password".into())
        })
        .expect("passwd");
        let store = UserStore::load(&f).expect("load");
        assert!(store.verify("ops", "first-password").is_none());
        assert!(store.verify("ops", "second-password").is_some());
        run(&Cmd::Del { username: "ops".into() }, &f, || unreachable!()).expect("del");
        assert!(run(&Cmd::Del { username: "ops".into() }, &f, || unreachable!()).is_err());
        assert_eq!(run(&Cmd::List, &f, || unreachable!()).expect("list").len(), 1);
        assert!(read_password(&mut "\n".as_bytes()).is_err());
    }

    /// Answers prompts from a list and records what was asked.
    struct FakePrompt {
        interactive: bool,
        answers: Vec<&'static str>,
        asked: Vec<String>,
    }

    impl FakePrompt {
        fn new(interactive: bool, answers: &[&'static str]) -> Self {
            FakePrompt {
                interactive,
                answers: answers.iter().rev().copied().collect(),
                asked: vec![],
            }
        }
    }

    impl PasswordPrompt for FakePrompt {
        fn is_interactive(&self) -> bool {
            self.interactive
        }
        fn read_hidden(&mut self, prompt: &str) -> std::io::Result<String> {
            self.asked.push(prompt.to_owned());
            self.answers
                .pop()
                .map(str::to_owned)
                .ok_or_else(|| std::io::ErrorKind::UnexpectedEof.into())
        }
    }

    #[test]
    fn prompt_asks_twice_and_accepts_a_match() {
        let mut p = FakePrompt::new(true, &["good-password", "good-password"]);
        assert_eq!(prompt_new_password(&mut p).expect("match"), "good-password");
        assert_eq!(p.asked.len(), 2);
        assert!(p.asked[1].starts_with("Repeat"), "{:?}", p.asked);
    }

    #[test]
    fn prompt_refuses_a_mismatch_and_nothing_is_saved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("lqusers.toml");
        let add = Cmd::Add { username: "ops".into(), role: "admin".into(), password_stdin: false };
        let mut p = FakePrompt::new(true, &["good-password", "good-passwprd"]);
        let err = run(&add, &f, || prompt_new_password(&mut p)).expect_err("mismatch");
        assert!(err.to_string().contains("do not match"), "{err}");
        assert!(UserStore::load(&f).expect("load").is_empty());
        // A short first entry is refused before the second question.
        let mut p = FakePrompt::new(true, &["short", "short"]);
        assert!(prompt_new_password(&mut p).is_err());
        assert_eq!(p.asked.len(), 1);
        let mut p = FakePrompt::new(true, &["", ""]);
        assert!(prompt_new_password(&mut p).is_err());
    }

    #[test]
    fn prompt_refuses_without_a_terminal() {
        let mut p = FakePrompt::new(false, &["good-password", "good-password"]);
        let err = prompt_new_password(&mut p).expect_err("not a terminal");
        assert!(err.to_string().contains("--password-stdin"), "{err}");
        assert!(p.asked.is_empty(), "nothing is read when there is no terminal");
    }
}
