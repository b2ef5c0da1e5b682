//! lqusers: manage lqos web users (see the library).
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

#[allow(clippy::print_stdout, clippy::print_stderr)]
fn main() -> ExitCode {
    let cli = lqusers::Cli::parse();
    let stdin_pw = matches!(
        cli.command,
        lqusers::Cmd::Add { password_stdin: true, .. }
            | lqusers::Cmd::Passwd { password_stdin: true, .. }
    );
    let result = lqusers::users_file(&cli).and_then(|file| {
        lqusers::run(&cli.command, &file, || {
            if !stdin_pw {
                eprint!(
                    "Password (8+ characters; it is echoed, use --password-stdin to pipe it): "
                );
                let _ = std::io::stderr().flush();
            }
            lqusers::read_password(&mut std::io::stdin().lock())
        })
    });
    match result {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lqusers: {e:#}");
            ExitCode::from(2)
        }
    }
}
