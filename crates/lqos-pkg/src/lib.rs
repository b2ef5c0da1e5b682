//! Packaging helpers for lqos.
//!
//! [`commands`] lists the clap definition of every binary the Debian package ships; [`generate`]
//! turns them into man pages (clap_mangen, one page per binary and per subcommand) and shell
//! completions (clap_complete: bash, zsh, fish) laid out as the package installs them:
//!
//! ```text
//! <out>/man/man1/<bin>.1[, <bin>-<sub>.1]
//! <out>/completions/bash/<bin>        -> /usr/share/bash-completion/completions/
//! <out>/completions/zsh/_<bin>        -> /usr/share/zsh/vendor-completions/
//! <out>/completions/fish/<bin>.fish   -> /usr/share/fish/vendor_completions.d/
//! ```
//!
//! Nothing here is written by hand: a changed flag changes the page on the next package build
//! (`bash packaging/build-deb.sh`).

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

/// A failure while writing the generated files.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// Creating a directory or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GenError + '_ {
    move |source| GenError::Io { path: path.to_path_buf(), source }
}

/// The clap command of every shipped binary, named as installed in /usr/bin.
pub fn commands() -> Vec<clap::Command> {
    vec![
        lqosd::daemon::Args::command(),
        lqos_web::app::Args::command(),
        lqos_scheduler::Args::command(),
        libreqos::Args::command(),
        lqtop::Args::command(),
        lqusers::Cli::command(),
    ]
}

/// What [`generate`] wrote, relative to its output directory.
#[derive(Debug, Default)]
pub struct Generated {
    /// Man pages (`man/man1/*.1`).
    pub man_pages: Vec<PathBuf>,
    /// Completion scripts (`completions/<shell>/*`).
    pub completions: Vec<PathBuf>,
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), GenError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(path, bytes).map_err(io(path))
}

/// Renders the page of `cmd` and of each of its (visible) subcommands, named `parent-sub.1`.
fn man_pages(
    cmd: &clap::Command,
    name: &str,
    dir: &Path,
    out: &mut Vec<PathBuf>,
) -> Result<(), GenError> {
    let mut buf = Vec::new();
    let path = dir.join(format!("{name}.1"));
    clap_mangen::Man::new(cmd.clone().bin_name(name.replace('-', " ")))
        .title(name.to_owned())
        .render(&mut buf)
        .map_err(io(&path))?;
    write(&path, &buf)?;
    out.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        man_pages(sub, &format!("{name}-{}", sub.get_name()), dir, out)?;
    }
    Ok(())
}

/// Where each shell looks for a completion of `bin` (relative to `completions/<shell>/`).
pub fn completion_file(shell: Shell, bin: &str) -> String {
    match shell {
        Shell::Zsh => format!("_{bin}"),
        Shell::Fish => format!("{bin}.fish"),
        _ => bin.to_owned(),
    }
}

/// Writes every man page and completion script under `out`.
pub fn generate(out: &Path) -> Result<Generated, GenError> {
    let mut done = Generated::default();
    let man_dir = out.join("man/man1");
    for cmd in commands() {
        let mut cmd = cmd;
        cmd.build();
        let name = cmd.get_name().to_owned();
        man_pages(&cmd, &name, &man_dir, &mut done.man_pages)?;
        for (shell, dir) in [(Shell::Bash, "bash"), (Shell::Zsh, "zsh"), (Shell::Fish, "fish")] {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, name.clone(), &mut buf);
            let path = out.join("completions").join(dir).join(completion_file(shell, &name));
            write(&path, &buf)?;
            done.completions.push(path);
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_binary_gets_a_man_page_and_three_completions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let done = generate(dir.path()).expect("generate");
        for bin in ["lqosd", "lqos_web", "lqos_scheduler", "libreqos", "lqtop", "lqusers"] {
            let page = dir.path().join(format!("man/man1/{bin}.1"));
            let text = std::fs::read_to_string(&page).expect("man page");
            assert!(text.contains(".TH") && text.contains(bin), "{}", page.display());
            for (shell, sub) in [(Shell::Bash, "bash"), (Shell::Zsh, "zsh"), (Shell::Fish, "fish")]
            {
                let p = dir.path().join("completions").join(sub).join(completion_file(shell, bin));
                let text = std::fs::read_to_string(&p).expect("completion");
                assert!(text.contains(bin), "{}", p.display());
            }
        }
        assert_eq!(done.completions.len(), 18);
    }

    #[test]
    fn man_pages_document_the_flags_operators_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        generate(dir.path()).expect("generate");
        let lqosd = std::fs::read_to_string(dir.path().join("man/man1/lqosd.1")).expect("page");
        assert!(lqosd.contains("\\-\\-config"), "{lqosd}");
        assert!(lqosd.contains("\\-\\-check"), "{lqosd}");
        let libreqos =
            std::fs::read_to_string(dir.path().join("man/man1/libreqos.1")).expect("page");
        assert!(libreqos.contains("\\-\\-validate") && libreqos.contains("\\-\\-clear"));
        // lqusers has subcommands: each gets its own page.
        let subs: Vec<_> = std::fs::read_dir(dir.path().join("man/man1"))
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("lqusers-"))
            .collect();
        assert!(!subs.is_empty(), "no lqusers subcommand pages");
    }
}
