//! lqtop: terminal live view of lqosd (see the library for the logic).
use std::process::ExitCode;

use clap::Parser;
use lqtop::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    match lqtop::run(&args.bus.unwrap_or_else(lqos_bus::bus_path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("lqtop: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            #[expect(clippy::print_stderr, reason = "the binary's one error line")]
            {
                eprintln!("{msg}");
            }
            ExitCode::from(2)
        }
    }
}
