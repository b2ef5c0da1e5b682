//! `libreqos`: validate the inputs, show what would be built, or ask lqosd to apply them.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = libreqos::Args::parse();
    let filter = if args.debug { "debug" } else { "warn" };
    lqos_log::init(&args.log, filter);
    match libreqos::run(&args, &mut std::io::stdout()) {
        Ok(code) => code.into(),
        Err(e) => {
            #[expect(clippy::print_stderr, reason = "the binary's one error line")]
            {
                eprintln!("libreqos: {e:#}");
            }
            libreqos::Outcome::CannotRun.into()
        }
    }
}
