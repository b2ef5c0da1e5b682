//! `lqos_web`: the lqos web server. Thin: arguments, logging, then [`lqos_web::app::run`].
//! Exit codes: 0 stopped cleanly, 1 invalid configuration, 2 runtime failure.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = lqos_web::app::Args::parse();
    lqos_log::init(&args.log, "info");
    match lqos_web::app::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("lqos_web stopped: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
