//! `facegate-device`: parse the command line, build the hardware, call [`app::run`].
//!
//! `check` is the start-up self-check (models verified, one frame through the pipeline);
//! `run` drives the door loop. This build has the simulated hardware (image-folder camera,
//! recording relay, log to a file, serial device or pty); the V4L2/GPIO/SPI drivers plug into
//! the same traits.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use ed25519_dalek::VerifyingKey;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use facegate_device::app::{self, DoorConfig};
use facegate_device::live::{Live, Shared};
use facegate_device::policy::PolicyConfig;
use facegate_device::sim::camera::FileCamera;
use facegate_device::sim::relay::RecordingPin;
use facegate_device::update::server::{Limits, UpdateServer};
use facegate_device::update::store::FileStore;
use facegate_models::bundle;
use facegate_models::model_files::{YUNET, default_dir};
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
    /// Run the door loop on simulated hardware: frames from an image folder.
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Folder holding the active and previous bundles.
    #[arg(long)]
    store: PathBuf,
    /// A signed bundle to install first (if newer than the stored one, or none is stored).
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Public key(s) trusted to sign bundles.
    #[arg(long, required = true)]
    trust: Vec<PathBuf>,
    /// Accept signed model updates on this address (e.g. 127.0.0.1:7700).
    #[arg(long)]
    listen: Option<String>,
    /// Folder of images played as camera frames, in name order.
    #[arg(long)]
    camera_dir: PathBuf,
    /// Frames per image (a person stays in view for a moment).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Play the frames forever.
    #[arg(long)]
    cycle: bool,
    /// Simulated camera frame rate (0 = as fast as recognition goes).
    #[arg(long, default_value_t = 0.0)]
    fps: f64,
    /// Where the recognition log goes: a serial device, a pty or a file.
    #[arg(long)]
    log: PathBuf,
    /// Frames considered by the unlock rule.
    #[arg(long, default_value_t = 5)]
    window: usize,
    /// Frames that must agree on one person to unlock.
    #[arg(long, default_value_t = 3)]
    agree: usize,
    /// No second unlock within this many milliseconds.
    #[arg(long, default_value_t = 5000)]
    cooldown_ms: u64,
    /// Relay pulse length in milliseconds.
    #[arg(long, default_value_t = 3000)]
    unlock_ms: u64,
    /// Models directory (for the detector).
    #[arg(long)]
    models_dir: Option<PathBuf>,
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
        Command::Run(args) => run_door(args),
    }
}

fn read_key(path: &PathBuf) -> Result<VerifyingKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading trusted key {}", path.display()))?;
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| {
            format!(
                "{} is not a facegate public key (64 hex digits)",
                path.display()
            )
        })?;
    VerifyingKey::from_bytes(&bytes)
        .with_context(|| format!("{} is not a valid Ed25519 key", path.display()))
}

fn run_door(args: RunArgs) -> Result<()> {
    let trusted = args
        .trust
        .iter()
        .map(read_key)
        .collect::<Result<Vec<_>>>()?;
    let models = args.models_dir.clone().unwrap_or_else(default_dir);
    let yunet = YUNET.read_verified(&models)?;
    let store = FileStore::open(&args.store)
        .with_context(|| format!("opening the store {}", args.store.display()))?;
    let mut live = load_stored(&store, &trusted, &yunet);
    if let Some(path) = &args.bundle {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let bundle = bundle::verify(&bytes, &trusted)
            .with_context(|| format!("bundle {} refused", path.display()))?;
        if live
            .as_ref()
            .is_none_or(|l| bundle.header.model_version > l.version)
        {
            let fresh = Live::from_bundle(&bundle, &yunet)
                .map_err(|e| anyhow::anyhow!("bundle {}: {e}", path.display()))?;
            store.install(&bytes).context("storing the bundle")?;
            live = Some(fresh);
        }
    }
    let live = live.context("no valid model bundle in the store: give one with --bundle")?;
    eprintln!(
        "model version {} ({} people, {}{}), frames from {}",
        live.version,
        live.gallery.people.len(),
        live.pipeline.config().embedder.as_str(),
        if live.pipeline.config().quantised {
            " int8"
        } else {
            ""
        },
        args.camera_dir.display()
    );
    let shared = Arc::new(Shared::new(live));
    let stop = Arc::new(AtomicBool::new(false));
    if let Some(addr) = &args.listen {
        let listener = TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
        eprintln!("accepting signed updates on {}", listener.local_addr()?);
        let server = Arc::new(UpdateServer::new(
            trusted,
            Arc::new(store),
            shared.clone(),
            yunet,
            Limits::default(),
        ));
        let stop = stop.clone();
        std::thread::spawn(move || server.serve(listener, stop));
    }
    let mut camera = FileCamera::from_dir(&args.camera_dir, args.repeat)
        .with_context(|| format!("reading frames from {}", args.camera_dir.display()))?
        .at_fps(args.fps);
    if args.cycle {
        camera = camera.cycling();
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.log)
        .with_context(|| format!("opening the log {}", args.log.display()))?;
    let (pin, levels) = RecordingPin::new();
    let config = DoorConfig {
        policy: PolicyConfig {
            window: args.window,
            agree: args.agree,
            cooldown: Duration::from_millis(args.cooldown_ms),
        },
        unlock_for: Duration::from_millis(args.unlock_ms),
        active_high: true,
    };
    let start = Instant::now();
    let summary = app::run(&shared, &mut camera, pin, &mut log, &config, &stop);
    stop.store(true, Ordering::Relaxed);
    let pulses = levels
        .lock()
        .map(|l| l.iter().filter(|&&x| x).count())
        .unwrap_or(0);
    println!(
        "{} frames in {:.1} s: {} decisions, {} unlocks ({} relay pulses), {} strangers, {} faults, {} log errors",
        summary.frames,
        start.elapsed().as_secs_f64(),
        summary.decisions,
        summary.unlocks,
        pulses,
        summary.strangers,
        summary.faults,
        summary.log_errors
    );
    Ok(())
}

/// The stored model: the active bundle, else the previous one (an update cut off by a crash or
/// a bundle that no longer passes its checks must not leave the door without a model).
fn load_stored(store: &FileStore, trusted: &[VerifyingKey], yunet: &[u8]) -> Option<Live> {
    for (what, bytes) in [("active", store.active()), ("previous", store.previous())] {
        let Some(bytes) = bytes else { continue };
        match bundle::verify(&bytes, trusted)
            .map_err(|e| e.to_string())
            .and_then(|b| Live::from_bundle(&b, yunet))
        {
            Ok(live) => return Some(live),
            Err(e) => eprintln!("warning: {what} bundle unusable: {e}"),
        }
    }
    None
}

fn check(models_dir: Option<PathBuf>) -> Result<()> {
    let dir = models_dir.unwrap_or_else(default_dir);
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
