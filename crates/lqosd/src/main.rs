//! `lqosd`: the lqos daemon. Thin: arguments, logging, then [`lqosd::daemon::run`].
//! Exit codes: 0 stopped cleanly, 1 invalid configuration, 2 runtime failure.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = lqosd::daemon::Args::parse();
    lqos_log::init(&args.log, "info");
    match lqosd::daemon::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("lqosd stopped: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
