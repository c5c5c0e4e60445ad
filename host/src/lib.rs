//! # facegate (host CLI)
//!
//! The laptop side: fetch and pin the networks, evaluate recognition on labelled photo folders
//! with the same pipeline the door runs, and run the photo-folder demo. One module per
//! subcommand under [`cmd`]; the evaluation protocol and its metrics live in [`eval`] so that
//! tests and other commands reuse them.

pub mod cli;
pub mod cmd;
pub mod dataset;
pub mod eval;
pub mod progress;

/// Runs one parsed command line.
pub fn run(cli: cli::Cli) -> anyhow::Result<()> {
    match cli.command {
        cli::Command::Models(c) => cmd::models::run(c),
        cli::Command::Eval(c) => cmd::eval::run(c),
        cli::Command::Bench(c) => cmd::bench::run(c),
        cli::Command::Demo(c) => cmd::demo::run(c),
        cli::Command::Logs(c) => cmd::logs::run(c),
        cli::Command::Keygen(c) => cmd::keys::keygen(c),
        cli::Command::Enrol(c) => cmd::enrol::run(c),
        cli::Command::Inspect(c) => cmd::enrol::inspect(c),
        cli::Command::Push(c) => cmd::push::push(c),
        cli::Command::Status(c) => cmd::push::status(c),
    }
}
