//! `facegate augment --preview`: what training will show the model, as a contact sheet.

use clap::Args;
use std::path::PathBuf;

use std::path::Path;

use anyhow::{Result, bail};

use crate::faceset::Dataset;
use crate::files::write_png;
use crate::train::augment::{self, Params};

/// Runs `facegate augment`.
pub fn run(cmd: AugmentCmd) -> Result<()> {
    let ds = Dataset::open(&cmd.dataset)?;
    let rows = preview(
        &ds,
        &cmd.preview,
        cmd.photos,
        cmd.copies,
        cmd.mask_fraction,
        cmd.seed,
    )?;
    println!(
        "wrote {} ({} photos x {} copies; first column: as the door sees them)",
        cmd.preview.display(),
        rows,
        cmd.copies
    );
    Ok(())
}

/// Writes a contact sheet of `photos` photos (round-robin over people), each followed by
/// `copies` augmented copies exactly as training makes them with `seed`. Returns the rows.
pub fn preview(
    ds: &Dataset,
    path: &Path,
    photos: usize,
    copies: usize,
    mask_fraction: f32,
    seed: u64,
) -> Result<usize> {
    let people = ds.by_person();
    if people.is_empty() {
        bail!(
            "{} holds no faces yet: run `facegate import` first",
            ds.dir.display()
        );
    }
    // Round-robin over people so the sheet shows several of them.
    let mut picked = Vec::new();
    let mut round = 0;
    while picked.len() < photos {
        let before = picked.len();
        for samples in people.values() {
            if let Some(s) = samples.get(round)
                && picked.len() < photos
            {
                picked.push(*s);
            }
        }
        if picked.len() == before {
            break;
        }
        round += 1;
    }
    let mut rows = Vec::new();
    for s in &picked {
        let ctx = ds.crop(s)?;
        let mut row = vec![augment::apply(&ctx, &s.landmarks, &Params::identity())];
        for k in 0..copies {
            let p = Params::random(augment::sample_seed(seed, &s.id, k), mask_fraction);
            row.push(augment::apply(&ctx, &s.landmarks, &p));
        }
        rows.push(row);
    }
    let sheet = augment::contact_sheet(&rows);
    write_png(path, &sheet)?;
    Ok(rows.len())
}

// --- command-line arguments ---

/// `facegate augment DATASET --preview SHEET.png`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate augment facegate-data --preview sheet.png")]
pub struct AugmentCmd {
    /// The dataset folder.
    pub dataset: PathBuf,
    /// Write a contact sheet here: each row a photo as the door sees it, then its copies.
    #[arg(long)]
    pub preview: PathBuf,
    /// Photos shown (spread over the people).
    #[arg(long, default_value_t = 8)]
    pub photos: usize,
    /// Augmented copies per photo.
    #[arg(long, default_value_t = 7)]
    pub copies: usize,
    /// Share of copies with a synthetic mask.
    #[arg(long, default_value_t = 0.5)]
    pub mask_fraction: f32,
    /// Seed (the same seed gives the same copies).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}
