//! `libreqos`: validate the inputs, show what would be built, or ask lqosd to apply them.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = libreqos::Args::parse();
    let filter = if args.debug { "debug" } else { "warn" };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .init();
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
