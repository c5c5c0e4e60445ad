//! `facegate models refine`: trains the landmark refiner ([`crate::train::refiner`]) into the models
//! folder, unless `--if-missing` finds a valid one there.

use crate::cmd::opts::ModelsDir;
use clap::Args;
use std::path::PathBuf;

use anyhow::Result;

use crate::progress::per_epoch;

/// Runs `facegate models refine`.
pub fn run(cmd: &RefineCmd) -> Result<()> {
    let cfg = crate::train::refiner::Config {
        masks: cmd.masks,
        epochs: cmd.epochs.max(1),
        max_photos: cmd.max_photos,
        hold_out_open_set: cmd.hold_out_open_set,
        ..Default::default()
    };
    let dir = cmd.models.resolve();
    if cmd.if_missing && facegate_models::refine::Refiner::load(&dir).is_ok() {
        println!("landmark refiner already in {}", dir.display());
        return Ok(());
    }
    let start = std::time::Instant::now();
    let m = crate::train::refiner::train(&cmd.faces, &dir, &cfg)?;
    println!(
        "landmark refiner from {} photos ({} crops) in {:.0} s",
        m.photos,
        m.crops,
        start.elapsed().as_secs_f64()
    );
    println!(
        "mean training error per epoch (x{} px): {}",
        facegate_models::refine::OUT_SCALE,
        per_epoch(&m.loss)
    );
    println!(
        "held-back masked crops, median landmark error: detector {:.2} px, refined {:.2} px",
        m.median_error_px[0], m.median_error_px[1]
    );
    println!(
        "wrote {} into {}",
        facegate_models::refine::FILE,
        dir.display()
    );
    Ok(())
}

// --- command-line arguments ---

/// `facegate models refine`.
#[derive(Debug, Args)]
pub struct RefineCmd {
    /// Photos to learn from: one sub-folder per person (names are not used, only faces).
    #[arg(long, value_name = "DIR")]
    pub faces: PathBuf,
    /// Leave out the people that `facegate eval DIR --protocol open-set` evaluates.
    #[arg(long)]
    pub hold_out_open_set: bool,
    /// Masked copies of each photo (kinds cycle surgical, cloth, patterned).
    #[arg(long, default_value_t = 3)]
    pub masks: usize,
    /// Passes over the training crops.
    #[arg(long, default_value_t = 8)]
    pub epochs: usize,
    /// Use at most this many photos (spread over the folder), for a quick run.
    #[arg(long)]
    pub max_photos: Option<usize>,
    /// Do nothing when a valid refiner is already there (for setup scripts).
    #[arg(long)]
    pub if_missing: bool,
    /// Where the models are (the result is written there too).
    #[command(flatten)]
    pub models: ModelsDir,
}
