//! `lqos-lab`: build, run and remove the network-namespace lab around lqosd.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = lqos_lab::cli::Cli::parse();
    lqos_log::init(&args.log, "info");
    match lqos_lab::cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(2)
        }
    }
}
