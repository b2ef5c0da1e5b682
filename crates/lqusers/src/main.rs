//! lqusers: manage lqos web users (see the library).
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

/// The real terminal: stdin must be a TTY; input is read from the terminal without echo.
struct TerminalPrompt;

impl lqusers::PasswordPrompt for TerminalPrompt {
    fn is_interactive(&self) -> bool {
        std::io::stdin().is_terminal()
    }

    fn read_hidden(&mut self, prompt: &str) -> std::io::Result<String> {
        rpassword::prompt_password(prompt)
    }
}

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
            if stdin_pw {
                lqusers::read_password(&mut std::io::stdin().lock())
            } else {
                lqusers::prompt_new_password(&mut TerminalPrompt)
            }
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
