//! `lqos-lab`: build, run and remove the network-namespace lab around lqosd.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = lqos_lab::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match lqos_lab::cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(2)
        }
    }
}
