//! `lqos_scheduler`: runs the enabled CRM integration and asks lqosd to reload, at start-up,
//! every `queue_refresh_interval_mins` and when the input files are edited.
//! Exit codes: 0 ok, 1 invalid input (configuration, refused import or reload), 2 runtime
//! failure (CRM or lqosd unreachable, I/O).

use std::process::ExitCode;

use clap::Parser;
use lqos_log::EnvFilter;

fn main() -> ExitCode {
    let args = lqos_scheduler::Args::parse();
    let filter = if args.debug {
        EnvFilter::new("info,lqos_scheduler=debug,lqos_integrations=debug,reqwest=debug")
    } else {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
    };
    lqos_log::init_with_filter(&args.log, filter);
    match lqos_scheduler::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", lqos_integrations::error_chain(&e));
            ExitCode::from(e.exit_code())
        }
    }
}
