//! `lqos-gen-docs OUT_DIR`: writes the man pages and shell completions of every shipped binary
//! (see the library). Run by `packaging/build-deb.sh`; not installed.
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        #[expect(clippy::print_stderr, reason = "usage line of a build tool")]
        {
            eprintln!("usage: lqos-gen-docs OUT_DIR");
        }
        return ExitCode::from(2);
    };
    match lqos_pkg::generate(&out) {
        Ok(done) => {
            #[expect(clippy::print_stderr, reason = "build tool summary")]
            {
                eprintln!(
                    "lqos-gen-docs: {} man pages, {} completion scripts in {}",
                    done.man_pages.len(),
                    done.completions.len(),
                    out.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            #[expect(clippy::print_stderr, reason = "the binary's one error line")]
            {
                eprintln!("lqos-gen-docs: {e}");
            }
            ExitCode::from(1)
        }
    }
}
