//! `lqosd`: the lqos daemon. Thin: arguments, logging, then [`lqosd::daemon::run`].
//! Exit codes: 0 stopped cleanly, 1 invalid configuration, 2 runtime failure.
//! `--check`: 0 every start-up check passed, 1 at least one failed.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = lqosd::daemon::Args::parse();
    if args.check {
        // Only the report goes to stdout; library logs stay quiet unless asked for.
        lqos_log::init(&args.log, "warn");
        let report = lqosd::daemon::check(&args);
        #[expect(clippy::print_stdout, reason = "the report is the output of --check")]
        {
            print!("{report}");
        }
        return ExitCode::from(report.exit_code());
    }
    lqos_log::init(&args.log, "info");
    match lqosd::daemon::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("lqosd stopped: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
