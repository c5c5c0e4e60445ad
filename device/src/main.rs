//! `facegate-device`: the door unit.
//!
//! This slice carries the start-up self-check a door runs before it serves (and that systemd's
//! `ExecStartPre` will call): every pinned model file is verified by SHA-256, the networks are
//! prepared with tract, and one synthetic frame goes through the full pipeline, so a broken SD
//! card or a tampered model fails loudly at boot instead of at the door.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use facegate_models::pipeline::{Pipeline, PipelineConfig};

/// facegate door unit.
#[derive(Debug, Parser)]
#[command(name = "facegate-device", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify the model files and run one frame through the pipeline.
    Check {
        /// Models directory [default: $FACEGATE_MODELS, else ~/.local/share/facegate/models].
        #[arg(long)]
        models_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Check { models_dir } => check(models_dir),
    }
}

fn check(models_dir: Option<PathBuf>) -> Result<()> {
    let dir = models_dir.unwrap_or_else(facegate_models::model_files::default_dir);
    let start = Instant::now();
    // The door runs the int8-weight embedder.
    let config = PipelineConfig {
        quantised: true,
        ..Default::default()
    };
    let pipeline = Pipeline::load(&dir, config)
        .with_context(|| format!("loading models from {}", dir.display()))?;
    let loaded = start.elapsed();
    let frame = image::RgbImage::from_fn(320, 240, |x, y| {
        image::Rgb([(x / 2) as u8, (y / 2) as u8, 100])
    });
    let faces = pipeline
        .faces(&frame)
        .context("running the pipeline on a test frame")?;
    println!(
        "models ok in {} (loaded in {:.0} ms, test frame {:.0} ms, {} faces in a blank frame)",
        dir.display(),
        loaded.as_secs_f64() * 1e3,
        (start.elapsed() - loaded).as_secs_f64() * 1e3,
        faces.len()
    );
    anyhow::ensure!(
        faces.is_empty(),
        "the detector found a face in a blank test frame"
    );
    Ok(())
}
