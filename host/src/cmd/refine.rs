//! `facegate models refine`: trains the landmark refiner ([`crate::refine`]) into the models
//! folder, unless `--if-missing` finds a valid one there.

use anyhow::Result;

use crate::cli::RefineCmd;
use crate::cmd::models::per_epoch;

/// Runs `facegate models refine`.
pub fn run(cmd: &RefineCmd) -> Result<()> {
    let cfg = crate::refine::Config {
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
    let m = crate::refine::train(&cmd.faces, &dir, &cfg)?;
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
