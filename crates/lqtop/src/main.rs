//! lqtop: terminal live view of lqosd (see the library for the logic).
use std::process::ExitCode;

fn main() -> ExitCode {
    match lqtop::run(&lqos_bus::bus_path()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("lqtop: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{msg}");
            }
            ExitCode::from(2)
        }
    }
}
