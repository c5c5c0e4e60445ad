//! Bring-up: from a validated [`Config`] to running threads and the loop.
//!
//! Builds the real or simulated hardware the config names, loads the stored model (falling back
//! to the previous bundle; with none usable, a door that can be sent one starts shut and waits
//! for it), starts the update listener, the display and log workers, and runs
//! [`app::run`] until the frames end or `stop` is set (SIGTERM from systemd). Whatever ends the
//! loop, the relay guard has released the door before this returns.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use ed25519_dalek::VerifyingKey;
use embedded_hal::digital::{Error as _, ErrorKind, OutputPin};
use facegate_models::logrecord::{Event, LogRecord};
use facegate_models::model_files::{YUNET_DOOR, default_dir};

use crate::app::{self, DoorConfig, Summary};
use crate::config::{CameraConfig, Config, DisplayConfig, RelayConfig};
use crate::display::{Display, NoPanel, Panel};
use crate::hw::keeper::{self, KeeperPin};
use crate::hw::latest::{Latest, SkipCounter};
use crate::hw::reconnect::{Backoff, Reconnecting};
use crate::hw::v4l2::{V4l2Camera, V4l2Settings};
use crate::hw::{FrameSource, gpio, panel};
use crate::live::Shared;
use crate::logout::{LogSender, LogSettings};
use crate::mqtt::{LinkSettings, MqttLink};
use crate::policy::PolicyConfig;
use crate::sim::camera::FileCamera;
use crate::sim::panel::PngPanel;
use crate::sim::relay::FilePin;
use crate::sinks::{CardReader, Sinks};
use crate::ui::PanelModel;
use crate::update::install::{Installer, Rules};
use crate::update::server::{Limits, Transport, UpdateServer};
use crate::update::store::{FileStore, ModelStore};
use facegate_models::channel::DoorKeys;

/// Reads a public key file written by `facegate keygen` (64 hex digits).
pub fn read_key(path: &std::path::Path) -> Result<VerifyingKey> {
    Ok(facegate_models::keys::read_public(path)?)
}

/// Everything `run` reports.
pub struct Outcome {
    /// The loop's tallies and timings.
    pub summary: Summary,
    /// Frames the camera delivered that the loop never saw (it was busy).
    pub skipped_frames: u64,
    /// From entering [`run`] (keys, models, store, threads) to the loop's start.
    pub startup: Duration,
    /// The loop's own running time.
    pub looped: Duration,
    /// Peak resident memory (KiB) when the loop started: loading the model is the door's
    /// largest transient, and this says whether a run's peak came from it or from the loop.
    pub startup_peak_rss_kib: Option<u64>,
}

/// Runs the door described by `config` until the frames end or `stop` is set.
pub fn run(config: &Config, stop: Arc<AtomicBool>) -> Result<Outcome> {
    let entered = std::time::Instant::now();
    let trusted = config
        .model
        .trust
        .iter()
        .map(|p| read_key(p))
        .collect::<Result<Vec<_>>>()?;
    let (installer, shared) = load_model(config, &trusted)?;
    let installer = Arc::new(installer);
    if let Some(addr) = &config.update.listen {
        serve_updates(config, addr, trusted, installer.clone(), &shared, &stop)?;
    }
    let mqtt = start_mqtt(config, &shared, installer)?;
    let log = LogSender::spawn(LogSettings {
        port: config.log.port.clone(),
        baud: config.log.baud,
        format: config.log.format,
        ring: config
            .log
            .ring
            .clone()
            .map(|p| (p, config.log.ring_kib * 1024)),
    })
    .context("starting the log")?;
    let mut sinks = Sinks {
        log,
        mqtt: mqtt.as_ref().map(|m| m.sender()),
        snapshots: config.mqtt.as_ref().is_some_and(|m| m.snapshot),
        wiegand: card_reader(config)?,
        shared: shared.clone(),
    };
    let faults = shared.clone();
    let mut display = Display::spawn(open_panel(&config.display), move |message| {
        faults.post(LogRecord::now(0, 0, Event::Fault { message }));
    });
    let (mut camera, latest) = open_camera(&config.camera)?;
    let (pin, door) = door_relay(config)?;
    let startup_peak_rss_kib = crate::report::peak_rss_kib();
    let loop_start = std::time::Instant::now();
    watchdog(&shared, &stop);
    let summary = app::run(
        &shared,
        &mut camera,
        pin,
        &mut sinks,
        &mut display,
        &door,
        &stop,
    );
    let looped = loop_start.elapsed();
    stop.store(true, Ordering::Relaxed);
    display.close();
    sinks.close();
    if let Some(m) = mqtt {
        m.close();
    }
    Ok(Outcome {
        summary,
        skipped_frames: latest.map(|l| l.get()).unwrap_or(0),
        startup: loop_start - entered,
        looped,
        startup_peak_rss_kib,
    })
}

/// The installer over the store, and the model the door starts with (the stored one, or the
/// config's first bundle when newer); faults found on the way are printed and logged.
fn load_model(config: &Config, trusted: &[VerifyingKey]) -> Result<(Installer, Arc<Shared>)> {
    let models = config.model.models_dir.clone().unwrap_or_else(default_dir);
    let yunet = YUNET_DOOR.read_verified(&models)?;
    let files = FileStore::open(&config.model.store)
        .with_context(|| format!("opening the store {}", config.model.store.display()))?;
    let has_active = files.active_path().exists();
    let store: Arc<dyn ModelStore> = Arc::new(files);
    let installer = Installer::new(
        trusted.to_vec(),
        store.clone(),
        yunet,
        Rules {
            max_step: config.update.max_version_step,
            door: config.model.door.clone(),
            groups: config.model.groups.clone(),
            detect_side: Some(config.door.detect_side),
        },
    );
    let mut started = installer.start_stored();
    // A door that can be sent a bundle (update listener, broker) waits for one rather than
    // refusing to start: after an upgrade that refuses the stored bundles, the fix is a push,
    // not a shell on the Pi.
    let can_receive = config.can_receive_bundles();
    // The first bundle may be gone once the store holds a model (cleaned up after install).
    // Read only now: the stored model was built without its bytes in memory.
    if let Some(path) = &config.model.bundle
        && (path.exists() || !has_active)
    {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        if let Err(e) = installer.offer_first(&mut started, bytes) {
            let message = format!("bundle {} refused: {e}", path.display());
            // Refused with nothing else to run and no way to receive a model: the door cannot
            // work, and says so by not starting. Otherwise the refusal is news in the log, and
            // the stored model (or the wait for a push) goes on.
            anyhow::ensure!(started.live.is_some() || can_receive, message);
            started.faults.push(message);
        }
    }
    for fault in &started.faults {
        eprintln!("warning: {fault}");
    }
    let shared = match started.live {
        Some(live) => {
            eprintln!(
                "model version {} ({}, {}{})",
                live.version,
                facegate_models::gallery::people_count(live.gallery.people.len()),
                live.pipeline.config().embedder.as_str(),
                if live.pipeline.config().quantised {
                    " int8"
                } else {
                    ""
                },
            );
            Arc::new(Shared::new(live))
        }
        None if can_receive => {
            let how = match (config.update.listen.is_some(), config.mqtt.is_some()) {
                (true, true) => "pushed (`facegate push`) or published to its group",
                (true, false) => "pushed (`facegate push`)",
                _ => "published to its group on the broker",
            };
            let message =
                format!("no usable model: the door stays shut until a signed bundle is {how}");
            eprintln!("warning: {message}");
            started.faults.push(message);
            Arc::new(Shared::without_model())
        }
        None => anyhow::bail!(
            "no valid model bundle in the store: set model.bundle, or set update.listen (or \
             [mqtt]) and push one with `facegate push`"
        ),
    };
    // Fallbacks and unusable bundles are news for whoever reads the door's log.
    for message in started.faults {
        shared.post(LogRecord::now(0, 0, Event::Fault { message }));
    }
    Ok((installer, shared))
}

/// Starts the update server on `addr` (its own threads), encrypted unless the config says
/// otherwise.
fn serve_updates(
    config: &Config,
    addr: &str,
    trusted: Vec<VerifyingKey>,
    installer: Arc<Installer>,
    shared: &Arc<Shared>,
    stop: &Arc<AtomicBool>,
) -> Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
    eprintln!("accepting signed updates on {}", listener.local_addr()?);
    let transport = if config.update.plaintext {
        eprintln!(
            "warning: update.plaintext = true: bundles and status cross the network unencrypted"
        );
        Transport::Plain
    } else {
        let keys = channel_keys(&config.model.store)?;
        eprintln!(
            "update channel key {} (the laptop pins it on first contact, or give it \
             with --door-key)",
            hex::encode(keys.public)
        );
        Transport::Noise(keys)
    };
    let server = Arc::new(UpdateServer::new(
        trusted,
        installer,
        shared.clone(),
        Limits::default(),
        transport,
    ));
    let stop = stop.clone();
    std::thread::spawn(move || server.serve(listener, stop));
    Ok(())
}

/// The broker link the config asks for (`[mqtt]`), connecting in the background.
fn start_mqtt(
    config: &Config,
    shared: &Arc<Shared>,
    installer: Arc<Installer>,
) -> Result<Option<MqttLink>> {
    let Some(m) = &config.mqtt else {
        return Ok(None);
    };
    let door = config.mqtt_door().context("[mqtt] needs a door id")?;
    let mut groups = config.model.groups.clone();
    groups.extend(config.model.door.clone());
    let settings = LinkSettings {
        broker: m.broker(),
        topics: facegate_fleet::Topics::new(&m.prefix, door)?,
        prefix: m.prefix.clone(),
        groups,
        discovery_prefix: m.discovery.then(|| m.discovery_prefix.clone()),
        unlock_users: m.remote_unlock.then(|| m.remote_unlock_users.clone()),
        queue: m.queue,
        unlock_for: Duration::from_millis(config.door.unlock_ms),
        snapshot: m.snapshot,
    };
    eprintln!(
        "mqtt: {} as door {door:?}{}",
        m.url,
        if m.remote_unlock {
            format!(", remote unlock by {}", m.remote_unlock_users.join(", "))
        } else {
            String::new()
        }
    );
    let link = MqttLink::spawn(settings, shared.clone(), installer)
        .with_context(|| format!("[mqtt] {}", m.url))?;
    Ok(Some(link))
}

/// The Wiegand output the config asks for (`[wiegand]`).
fn card_reader(config: &Config) -> Result<Option<CardReader>> {
    use crate::wiegand::{Format, Lines, Timing, WiegandSender};
    let Some(w) = &config.wiegand else {
        return Ok(None);
    };
    let format = Format::from_bits(w.format).context("wiegand.format")?;
    let timing = Timing {
        pulse: Duration::from_micros(w.pulse_us.into()),
        interval: Duration::from_micros(w.interval_us.into()),
    };
    let sender = match (&w.gpio, &w.record) {
        (Some(g), _) => {
            let d0 = gpio::output(&g.chip, g.d0, true, "facegate-wiegand-d0")?;
            let d1 = gpio::output(&g.chip, g.d1, true, "facegate-wiegand-d1")?;
            WiegandSender::spawn(Lines::new(d0, d1, timing), format, w.facility)
        }
        (None, Some(path)) => {
            let (d0, d1, edges) = crate::sim::wiegand::EdgePin::pair();
            let path = path.clone();
            let lines = Lines::new(d0, d1, timing).after_frame(move || {
                if let Err(e) = crate::sim::wiegand::write_frame(&edges, &path) {
                    eprintln!("wiegand record {}: {e}", path.display());
                }
            });
            WiegandSender::spawn(lines, format, w.facility)
        }
        (None, None) => anyhow::bail!("[wiegand] needs gpio or record"),
    };
    eprintln!(
        "wiegand: {}-bit, facility {}, {} card(s)",
        w.format,
        w.facility,
        w.cards.len()
    );
    Ok(Some(CardReader {
        sender,
        cards: w.cards.clone(),
    }))
}

/// The relay line and the door's rules. The line belongs to the keeper process, which times
/// each pulse itself and locks when this process dies for any reason; it applies the relay's
/// polarity.
fn door_relay(config: &Config) -> Result<(DoorPin, DoorConfig)> {
    let d = &config.door;
    let unlock_for = Duration::from_millis(d.unlock_ms);
    let (pin, active_high) = match &config.relay {
        // Wiegand only: the access controller drives the lock.
        None => (DoorPin::None, true),
        Some(relay) if d.relay_keeper => {
            let pin = KeeperPin::spawn(
                &std::env::current_exe().context("finding facegate-device's own path")?,
                &keeper_args(relay, unlock_for),
            )
            .context("starting the relay keeper")?;
            keeper::prefer_oom_kill_of_self();
            (DoorPin::Keeper(pin), true)
        }
        Some(relay) => {
            let (pin, active_high) = relay_pin(relay)?;
            (DoorPin::Direct(pin), active_high)
        }
    };
    let door = DoorConfig {
        policy: PolicyConfig {
            window: d.window,
            agree: d.agree,
            cooldown: Duration::from_millis(d.cooldown_ms),
        },
        unlock_for,
        active_high,
        hold: Duration::from_millis(d.hold_ms),
        liveness: liveness_check(config)?,
        still_frames: d.still_frames,
    };
    Ok((pin, door))
}

/// The presentation-attack check the config asks for: the network from the models folder,
/// checked against its manifest, and its threshold (or the config's).
pub fn liveness_check(config: &Config) -> Result<Option<crate::app::LivenessCheck>> {
    use crate::config::LivenessMode;
    if config.liveness_mode() == LivenessMode::Off {
        match config.camera {
            crate::config::CameraConfig::V4l2 { .. } => eprintln!(
                "warning: liveness.mode = \"off\": a photo or a screen of someone enrolled opens \
                 the door"
            ),
            crate::config::CameraConfig::Images { .. } => {
                eprintln!("liveness: off (the camera is a folder of photos)")
            }
        }
        return Ok(None);
    }
    let models = config.model.models_dir.clone().unwrap_or_else(default_dir);
    let (manifest, bytes) = facegate_models::liveness::read_door_form(&models).context(
        "the liveness check needs its network: run `facegate models fetch` (or set \
         [liveness] mode = \"off\", which lets photos in)",
    )?;
    let net = facegate_models::liveness::Liveness::from_door_form(&manifest, &bytes)?;
    let threshold = config.liveness.threshold.unwrap_or(manifest.threshold);
    let motion = (config.liveness_mode() == LivenessMode::Strict).then(|| {
        config
            .liveness
            .motion_threshold
            .unwrap_or(facegate_models::motion::THRESHOLD)
    });
    match motion {
        Some(m) => eprintln!(
            "liveness: strict, threshold {threshold:.3}, motion threshold {m:.3} (a face whose \
             surroundings move with it is refused)"
        ),
        None => eprintln!("liveness: passive, threshold {threshold:.3}"),
    }
    Ok(Some(crate::app::LivenessCheck {
        net,
        threshold,
        motion,
    }))
}

/// The door's own key pair for the update channel, made on first start and kept beside the
/// bundles (`channel.key`, readable by the service only).
pub fn channel_keys(store: &std::path::Path) -> Result<DoorKeys> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = store.join("channel.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return DoorKeys::from_text(&text).with_context(|| {
            format!(
                "{} is not a channel key: remove it to make a new one (laptops that pinned the \
                 old one must then forget it)",
                path.display()
            )
        });
    }
    let keys = DoorKeys::generate().context("making the update channel key")?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(keys.to_text().as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(keys)
}

/// Under systemd (`Type=notify`, `WatchdogSec=`): says ready, then feeds the watchdog from a
/// thread, but only while the door loop turns. A loop stuck on a frame or a device stops the
/// feeding, systemd kills the service, the relay keeper locks the door, and systemd restarts it.
fn watchdog(shared: &Arc<Shared>, stop: &Arc<AtomicBool>) {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let (shared, stop) = (shared.clone(), stop.clone());
    std::thread::spawn(move || {
        let mut last = u64::MAX;
        while !stop.load(Ordering::Relaxed) {
            let beat = shared.heartbeat.load(Ordering::Relaxed);
            if beat != last {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                last = beat;
            }
            std::thread::sleep(period / 3);
        }
    });
}

/// The keeper's command line for the relay the config names (see [`relay_pin`]).
fn keeper_args(relay: &RelayConfig, max_open: Duration) -> Vec<String> {
    let mut args = vec!["--max-open-ms".to_owned(), max_open.as_millis().to_string()];
    match relay {
        RelayConfig::Gpio {
            chip,
            line,
            active_high,
        } => args.extend([
            "--chip".to_owned(),
            chip.display().to_string(),
            "--line".to_owned(),
            line.to_string(),
            "--active-high".to_owned(),
            active_high.to_string(),
        ]),
        RelayConfig::Simulated { record } => {
            args.extend(["--record".to_owned(), record.display().to_string()])
        }
    }
    args
}

/// The relay the config names, requested at the locked level (the door never glitches open at
/// start), and whether a high level energises it. Used by the keeper and by `lock`.
pub fn relay_pin(relay: &RelayConfig) -> Result<(RelayPin, bool)> {
    Ok(match relay {
        RelayConfig::Gpio {
            chip,
            line,
            active_high,
        } => (
            RelayPin::Gpio(gpio::output(chip, *line, !active_high, "facegate-relay")?),
            *active_high,
        ),
        RelayConfig::Simulated { record } => (
            RelayPin::Simulated(
                FilePin::create(record)
                    .with_context(|| format!("creating {}", record.display()))?,
            ),
            true,
        ),
    })
}

/// The loop's relay: the keeper (the default), or the line itself.
enum DoorPin {
    Keeper(KeeperPin),
    Direct(RelayPin),
    /// No relay fitted (`[wiegand]` only).
    None,
}

impl embedded_hal::digital::ErrorType for DoorPin {
    type Error = ErrorKind;
}

impl OutputPin for DoorPin {
    fn set_low(&mut self) -> Result<(), ErrorKind> {
        match self {
            DoorPin::Keeper(p) => p.set_low(),
            DoorPin::Direct(p) => p.set_low(),
            DoorPin::None => Ok(()),
        }
    }

    fn set_high(&mut self) -> Result<(), ErrorKind> {
        match self {
            DoorPin::Keeper(p) => p.set_high(),
            DoorPin::Direct(p) => p.set_high(),
            DoorPin::None => Ok(()),
        }
    }
}

/// The relay the config names: a GPIO line or the simulated file.
pub enum RelayPin {
    /// A GPIO line.
    Gpio(linux_embedded_hal::CdevPin),
    /// Level changes appended to a file.
    Simulated(FilePin),
}

impl embedded_hal::digital::ErrorType for RelayPin {
    type Error = ErrorKind;
}

impl OutputPin for RelayPin {
    fn set_low(&mut self) -> Result<(), ErrorKind> {
        match self {
            RelayPin::Gpio(p) => p.set_low().map_err(|e| e.kind()),
            RelayPin::Simulated(p) => p.set_low().map_err(|e| e.kind()),
        }
    }

    fn set_high(&mut self) -> Result<(), ErrorKind> {
        match self {
            RelayPin::Gpio(p) => p.set_high().map_err(|e| e.kind()),
            RelayPin::Simulated(p) => p.set_high().map_err(|e| e.kind()),
        }
    }
}

fn open_camera(config: &CameraConfig) -> Result<(Box<dyn FrameSource>, Option<SkipCounter>)> {
    let poll = Duration::from_millis(100);
    match config {
        CameraConfig::V4l2 {
            device,
            format,
            width,
            height,
            fps,
        } => {
            let settings = V4l2Settings {
                device: device.clone(),
                format: *format,
                width: *width,
                height: *height,
                fps: *fps,
            };
            let source = Reconnecting::new(move || V4l2Camera::open(&settings), Backoff::default());
            let cam = Latest::spawn(source, poll);
            let skips = cam.skip_counter();
            Ok((Box::new(cam), Some(skips)))
        }
        CameraConfig::Images {
            dir,
            repeat,
            cycle,
            fps,
            size,
        } => {
            let mut cam = FileCamera::from_dir(dir, *repeat)
                .with_context(|| format!("reading frames from {}", dir.display()))?
                .at_fps(*fps);
            if let Some([w, h]) = size {
                cam = cam.frame_size(*w, *h);
            }
            if *cycle {
                cam = cam.cycling();
            }
            if *fps > 0.0 {
                // A paced source behaves like a camera: read on its own thread, newest frame
                // wins.
                let latest = Latest::spawn(cam, poll);
                let skips = latest.skip_counter();
                Ok((Box::new(latest), Some(skips)))
            } else {
                Ok((Box::new(cam), None))
            }
        }
    }
}

type PanelOpener = Box<dyn FnOnce() -> Result<Box<dyn Panel>> + Send>;

fn open_panel(config: &DisplayConfig) -> PanelOpener {
    match config.clone() {
        DisplayConfig::None => Box::new(|| Ok(Box::new(NoPanel) as Box<dyn Panel>)),
        DisplayConfig::St7789(w) | DisplayConfig::Ili9341(w) => {
            let model = if matches!(config, DisplayConfig::St7789(_)) {
                PanelModel::St7789
            } else {
                PanelModel::Ili9341
            };
            Box::new(move || {
                panel::open_tft(
                    model,
                    &panel::SpiWiring {
                        spi: w.spi,
                        hz: w.spi_hz,
                        chip: w.gpio_chip,
                        dc: w.dc,
                        reset: w.reset,
                        backlight: w.backlight,
                    },
                )
            })
        }
        DisplayConfig::Ssd1306 { i2c, address } => {
            Box::new(move || panel::open_oled(&i2c, address))
        }
        DisplayConfig::Png { dir, model } => {
            Box::new(move || Ok(Box::new(PngPanel::new(dir, model)?) as Box<dyn Panel>))
        }
    }
}
