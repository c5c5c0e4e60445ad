//! # facegate (host CLI)
//!
//! The laptop side: fetch and pin the networks, import photos (and camera frames) into a
//! dataset ([`faceset`]), augment them and train the head, the landmark refiner, the mask
//! adaptation and the scratch CNN ([`train`]), calibrate the stranger threshold, evaluate a bundle with charts and a mistakes page ([`report`]) or
//! labelled photo folders with a protocol ([`eval`]), all with the same pipeline the door runs. One module per
//! subcommand under [`cmd`]; the evaluation protocol and its metrics live in [`eval`] so that
//! tests and other commands reuse them.

pub mod cmd;
pub use cmd::cli;
pub mod eval;
pub mod faceset;
pub mod files;
pub mod home;
pub mod pool;
pub mod progress;
pub mod report;
pub mod templates;
pub mod train;

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
        cli::Command::Recover(c) => cmd::push::recover(c),
        cli::Command::Import(c) => cmd::import::run(c),
        cli::Command::Capture(c) => cmd::capture::run(c),
        cli::Command::Augment(c) => cmd::augment::run(c),
        cli::Command::Train(c) => cmd::train::run(c),
        cli::Command::Predict(c) => cmd::predict::run(c),
        cli::Command::Lookalikes(c) => cmd::lookalikes::run(c),
        cli::Command::People(c) => cmd::people::run(c),
        cli::Command::Publish(c) => cmd::fleet::publish(c),
        cli::Command::Fleet(c) => cmd::fleet::run(c),
    }
}
