//! `facegate`: the laptop side of facegate. Parses the command line and hands over to
//! [`facegate::run`]; everything else lives in the library so tests can call it.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = facegate::cli::Cli::parse();
    match facegate::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
