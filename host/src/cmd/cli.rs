//! The command line: the command enum only. Each command's arguments live beside its code in
//! `cmd/<name>.rs`; options shared by several commands in `cmd/opts.rs`.

use clap::{Parser, Subcommand};

use crate::cmd::augment::AugmentCmd;
use crate::cmd::bench::BenchCmd;
use crate::cmd::capture::CaptureCmd;
use crate::cmd::demo::DemoCmd;
use crate::cmd::enrol::EnrolCmd;
use crate::cmd::enrol::InspectCmd;
use crate::cmd::eval::EvalCmd;
use crate::cmd::fleet::{FleetCmd, PublishCmd};
use crate::cmd::import::ImportCmd;
use crate::cmd::keys::KeygenCmd;
use crate::cmd::logs::LogsCmd;
use crate::cmd::lookalikes::LookalikesCmd;
use crate::cmd::models::ModelsCmd;
use crate::cmd::people::PeopleCmd;
use crate::cmd::predict::PredictCmd;
use crate::cmd::push::PushCmd;
use crate::cmd::push::RecoverCmd;
use crate::cmd::push::StatusCmd;
use crate::cmd::train::TrainCmd;

/// facegate: open face-unlock for small Linux boards (laptop tool).
#[derive(Debug, Parser)]
#[command(name = "facegate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch, verify and quantise the pinned networks.
    #[command(
        subcommand,
        after_help = "Examples:\n  facegate models fetch\n  facegate models verify --models-dir /srv/facegate/models"
    )]
    Models(ModelsCmd),
    /// Evaluate open-set recognition on a folder of people (one sub-folder each), or a bundle
    /// on imported test datasets (--bundle).
    Eval(EvalCmd),
    /// Time each pipeline stage (1 thread and all cores), optionally against a peer report.
    Bench(BenchCmd),
    /// Enrol people from one folder and recognise the photos of another (no camera needed).
    Demo(DemoCmd),
    /// Read and decode the door's recognition log from a serial port (or a saved log file).
    Logs(LogsCmd),
    /// Make a signing key pair for model bundles.
    Keygen(KeygenCmd),
    /// Enrol people from photos into a signed model bundle for the door.
    Enrol(EnrolCmd),
    /// Verify a bundle's signature and show what it holds.
    Inspect(InspectCmd),
    /// Send a signed bundle to a door.
    Push(PushCmd),
    /// Show a door's active model version and recent decisions.
    Status(StatusCmd),
    /// Recover a door that confirmed a runaway version: set its version floor (signed).
    Recover(RecoverCmd),
    /// Add photos of people to a dataset folder: detect, check, align, embed (incremental).
    Import(ImportCmd),
    /// Take diverse face frames of one person from a webcam or a recording into a dataset.
    Capture(CaptureCmd),
    /// Preview the training augmentation of a dataset as a contact sheet.
    Augment(AugmentCmd),
    /// Train the classification head and calibrate the stranger threshold into a signed bundle.
    Train(TrainCmd),
    /// Recognise the faces in photos with a bundle; optionally draw boxes and names on them.
    Predict(PredictCmd),
    /// The pairs of people in a dataset that the embedder confuses most.
    Lookalikes(LookalikesCmd),
    /// List, rename or remove people in a dataset or in a door's bundle.
    People(PeopleCmd),
    /// Put a signed bundle on an MQTT broker for every door of a group.
    Publish(PublishCmd),
    /// The doors on an MQTT broker: status, retire.
    #[command(subcommand)]
    Fleet(FleetCmd),
}
