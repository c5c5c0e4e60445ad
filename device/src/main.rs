//! `facegate-device`: parse the command line, read the config, call [`start::run`].
//!
//! `run --config FILE` is the door service (real camera, relay, panel and serial line, as the
//! config says); `simulate` builds the same door from flags with an image-folder camera, a
//! relay recorded to a file and PNG screens; `check` is the start-up self-check (models
//! verified, one frame through the pipeline). SIGTERM and SIGINT stop the loop cleanly, so
//! `systemctl stop` always leaves the door locked.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use facegate_device::config::{
    CameraConfig, Config, DisplayConfig, DoorSection, LivenessConfig, LivenessMode, LogConfig,
    ModelConfig, MqttConfig, RelayConfig, UpdateConfig,
};
use facegate_device::logout::LogFormat;
use facegate_device::start::{self, Outcome};
use facegate_device::ui::PanelModel;
use facegate_models::model_files::default_dir;
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
    /// Run the door as the config file describes (the systemd service).
    Run {
        /// The TOML config (see packaging/device.toml).
        #[arg(long, default_value = "/etc/facegate/device.toml")]
        config: PathBuf,
        /// Check the config and exit.
        #[arg(long)]
        check_config: bool,
    },
    /// Run the door on simulated hardware: frames from an image folder, relay levels to a
    /// file, screens as PNG files, the log to a serial device, pty or file.
    Simulate(Box<SimArgs>),
    /// Drive the relay the config names to its locked level and exit (systemd's
    /// ExecStopPost: the door is locked after the service stops, however it stopped).
    Lock {
        /// The TOML config.
        #[arg(long, default_value = "/etc/facegate/device.toml")]
        config: PathBuf,
    },
    /// The relay keeper (started by the door itself; see hw/keeper.rs).
    #[command(hide = true)]
    RelayKeeper(KeeperArgs),
    /// Recovery, on the door itself (root): set the version floor, the highest version the
    /// door accepts updates above. Only for a door that confirmed a runaway version; stop the
    /// service first.
    ResetFloor {
        /// The store folder (model.store in the config).
        #[arg(long, default_value = "/var/lib/facegate/store")]
        store: PathBuf,
        /// The new floor: updates must be above it.
        #[arg(long)]
        to: u32,
    },
}

#[derive(Debug, Args)]
struct KeeperArgs {
    /// Longest pulse: the keeper locks after this whatever the door says.
    #[arg(long)]
    max_open_ms: u64,
    /// GPIO chip of the relay line.
    #[arg(long)]
    chip: Option<PathBuf>,
    /// GPIO line of the relay.
    #[arg(long)]
    line: Option<u32>,
    /// The relay is energised by a high level.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    active_high: bool,
    /// Simulated relay: append level changes to this file.
    #[arg(long)]
    record: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct SimArgs {
    /// Folder holding the active and previous bundles.
    #[arg(long)]
    store: PathBuf,
    /// A signed bundle to install first (if newer than the stored one, or none is stored).
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// This door's id (bundles must be made for it with `enrol --door`).
    #[arg(long)]
    door: Option<String>,
    /// A group this door belongs to (bundles for the group install here); repeatable.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Publish events and take group bundles through this MQTT broker (mqtt://HOST:PORT;
    /// the door id is --door). For TLS, users and remote unlock, use a config file's [mqtt].
    #[arg(long)]
    mqtt: Option<String>,
    /// Longest side of the copy of each frame the detector sees (door.detect_side).
    #[arg(long, default_value_t = facegate_device::config::DEFAULT_DETECT_SIDE)]
    detect_side: u32,
    /// Frames in a row that may reuse a still subject's detection (door.still_frames; 0:
    /// detect every frame).
    #[arg(long, default_value_t = facegate_device::config::DEFAULT_STILL_FRAMES)]
    still_frames: u32,
    /// With --mqtt: publish a small JPEG of the face with each decision.
    #[arg(long)]
    mqtt_snapshot: bool,
    /// With --mqtt: events kept while the broker is unreachable (mqtt.queue).
    #[arg(long, default_value_t = 1000)]
    mqtt_queue: usize,
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
    /// Simulated camera resolution, WIDTHxHEIGHT (photos are letterboxed into it).
    #[arg(long, value_parser = parse_size)]
    frame_size: Option<[u32; 2]>,
    /// Where the recognition log goes: a serial device, a pty or a file.
    #[arg(long)]
    log: PathBuf,
    /// Write text lines instead of binary records.
    #[arg(long)]
    text_log: bool,
    /// Keep a bounded history here for late readers.
    #[arg(long)]
    ring: Option<PathBuf>,
    /// Write the screens as PNG files into this folder.
    #[arg(long)]
    screens: Option<PathBuf>,
    /// Panel to imitate.
    #[arg(long, value_enum, default_value = "st7789")]
    panel: SimPanel,
    /// Append relay level changes to this file [default: relay.txt beside the log].
    #[arg(long)]
    relay: Option<PathBuf>,
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
    /// Drive the relay from this process instead of the relay keeper (only for emulators
    /// such as qemu-user, which cannot start the keeper; a killed door then stays as it was).
    #[arg(long)]
    in_process_relay: bool,
    /// The presentation-attack check. Off by default here, because a simulated camera plays
    /// photos, which is exactly what the check refuses; the door's own default (`run`) is
    /// passive.
    #[arg(long, value_enum, default_value_t = LivenessArg::Off)]
    liveness: LivenessArg,
    /// Models directory (for the detector).
    #[arg(long)]
    models_dir: Option<PathBuf>,
    /// Write a performance report (rate, stage latencies, peak memory) as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum SimPanel {
    St7789,
    Ili9341,
    Ssd1306,
}

impl SimPanel {
    /// The panel whose screens `--screens` writes.
    fn model(self) -> PanelModel {
        match self {
            SimPanel::St7789 => PanelModel::St7789,
            SimPanel::Ili9341 => PanelModel::Ili9341,
            SimPanel::Ssd1306 => PanelModel::Ssd1306,
        }
    }
}

impl SimArgs {
    /// The same config a file would give, with simulated hardware.
    fn into_config(self) -> Config {
        let relay = self.relay.unwrap_or_else(|| {
            self.log
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join("relay.txt")
        });
        Config {
            model: ModelConfig {
                store: self.store,
                models_dir: self.models_dir,
                trust: self.trust,
                bundle: self.bundle,
                door: self.door,
                groups: self.groups,
            },
            camera: CameraConfig::Images {
                dir: self.camera_dir,
                repeat: self.repeat,
                cycle: self.cycle,
                fps: self.fps,
                size: self.frame_size,
            },
            door: DoorSection {
                window: self.window,
                agree: self.agree,
                cooldown_ms: self.cooldown_ms,
                unlock_ms: self.unlock_ms,
                relay_keeper: !self.in_process_relay,
                detect_side: self.detect_side,
                still_frames: self.still_frames,
                ..DoorSection::default()
            },
            relay: Some(RelayConfig::Simulated { record: relay }),
            display: match self.screens {
                Some(dir) => DisplayConfig::Png {
                    dir,
                    model: self.panel.model(),
                },
                None => DisplayConfig::None,
            },
            log: LogConfig {
                port: Some(self.log),
                baud: 115_200,
                format: if self.text_log {
                    LogFormat::Text
                } else {
                    LogFormat::Binary
                },
                ring: self.ring,
                ring_kib: 1024,
            },
            update: UpdateConfig {
                listen: self.listen,
                ..UpdateConfig::default()
            },
            liveness: LivenessConfig {
                mode: Some(match self.liveness {
                    LivenessArg::Off => LivenessMode::Off,
                    LivenessArg::Passive => LivenessMode::Passive,
                    LivenessArg::Strict => LivenessMode::Strict,
                }),
                ..LivenessConfig::default()
            },
            mqtt: self
                .mqtt
                .map(|url| simulated_mqtt(url, self.mqtt_queue, self.mqtt_snapshot)),
            wiegand: None,
        }
    }
}

/// The `[mqtt]` section for `--mqtt URL`: the defaults of a config file without credentials
/// (a simulated door on a test broker), discovery on and remote unlock off.
fn simulated_mqtt(url: String, queue: usize, snapshot: bool) -> MqttConfig {
    MqttConfig {
        url,
        username: None,
        password_file: None,
        ca: None,
        client_cert: None,
        client_key: None,
        prefix: facegate_fleet::topics::DEFAULT_PREFIX.into(),
        door: None,
        discovery: true,
        discovery_prefix: facegate_fleet::topics::DEFAULT_DISCOVERY_PREFIX.into(),
        remote_unlock: false,
        remote_unlock_users: Vec::new(),
        queue,
        snapshot,
    }
}

/// `--liveness`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LivenessArg {
    /// No presentation-attack check.
    Off,
    /// The liveness network on every attempt.
    Passive,
    /// The network, and the motion cue: a face whose surroundings move with it is refused.
    Strict,
}

fn parse_size(text: &str) -> Result<[u32; 2], String> {
    let (w, h) = text
        .split_once('x')
        .ok_or_else(|| format!("{text:?}: give WIDTHxHEIGHT, e.g. 640x480"))?;
    let n = |v: &str| {
        v.parse::<u32>()
            .map_err(|_| format!("{text:?}: give WIDTHxHEIGHT, e.g. 640x480"))
    };
    Ok([n(w)?, n(h)?])
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
        Command::Run {
            config,
            check_config,
        } => {
            let config = Config::load(&config)?;
            if check_config {
                // The files the config names are read too: a trusted key that does not exist
                // or is a secret key fails here, not at the first update.
                let trusted = config
                    .model
                    .trust
                    .iter()
                    .map(|p| start::read_key(p))
                    .collect::<Result<Vec<_>>>()?;
                if let Some(path) = config.model.bundle.as_ref().filter(|p| p.exists()) {
                    let bytes = std::fs::read(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    if let Err(e) = facegate_models::bundle::verify(&bytes, &trusted) {
                        let message = format!("bundle {} refused: {e}", path.display());
                        // As at start-up: a door that can be sent a bundle starts shut and
                        // waits for one (systemd runs this check before every start, and an
                        // upgrade can leave a first bundle this build refuses).
                        anyhow::ensure!(config.can_receive_bundles(), message);
                        eprintln!(
                            "warning: {message}; the door runs its stored model, or starts \
                             shut and waits for a signed bundle"
                        );
                    }
                }
                // The liveness network the door would load (when the check is on).
                start::liveness_check(&config)?;
                println!("config ok");
                return Ok(());
            }
            door(&config, None)
        }
        Command::Simulate(args) => {
            let report = args.report.clone();
            door(&(*args).into_config(), report.as_deref())
        }
        Command::Lock { config } => {
            let config = Config::load(&config)?;
            let Some(relay) = &config.relay else {
                println!("no [relay] in the config: nothing to lock");
                return Ok(());
            };
            let (mut pin, active_high) = start::relay_pin(relay)?;
            use embedded_hal::digital::OutputPin;
            let locked = if active_high {
                pin.set_low()
            } else {
                pin.set_high()
            };
            locked.map_err(|e| anyhow::anyhow!("driving the relay locked: {e:?}"))?;
            println!("relay locked");
            Ok(())
        }
        Command::RelayKeeper(args) => relay_keeper(args),
        Command::ResetFloor { store, to } => {
            use facegate_device::update::store::{FileStore, ModelStore};
            let store = FileStore::open(&store)
                .with_context(|| format!("opening the store {}", store.display()))?;
            let was = store.state().floor;
            store.reset_floor(to).context("writing the store state")?;
            println!("version floor {was} -> {to}: the next update must be above {to}");
            Ok(())
        }
    }
}

fn relay_keeper(args: KeeperArgs) -> Result<()> {
    use facegate_device::config::RelayConfig;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
    }
    let relay = match (args.record, args.chip, args.line) {
        (Some(record), None, None) => RelayConfig::Simulated { record },
        (None, Some(chip), Some(line)) => RelayConfig::Gpio {
            chip,
            line,
            active_high: args.active_high,
        },
        _ => anyhow::bail!("relay-keeper: give --record FILE, or --chip and --line"),
    };
    let (pin, active_high) = start::relay_pin(&relay)?;
    facegate_device::hw::keeper::keep(
        pin,
        active_high,
        std::time::Duration::from_millis(args.max_open_ms),
        std::io::stdin(),
        &stop,
    );
    Ok(())
}

fn door(config: &Config, report: Option<&std::path::Path>) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
    }
    let start = Instant::now();
    let outcome = start::run(config, stop)?;
    if let Some(path) = report {
        let json = serde_json::to_string_pretty(&facegate_device::report::report(&outcome))?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    let Outcome {
        summary,
        skipped_frames,
        ..
    } = outcome;
    println!(
        "{} frames in {:.1} s ({skipped_frames} skipped while busy): {} decisions, {} unlocks, {} strangers, {} faults, {} log records dropped",
        summary.frames,
        start.elapsed().as_secs_f64(),
        summary.decisions,
        summary.unlocks,
        summary.strangers,
        summary.faults,
        summary.log_errors
    );
    Ok(())
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
