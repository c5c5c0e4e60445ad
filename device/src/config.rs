//! The door's configuration: one TOML file, checked completely at start.
//!
//! Unknown keys are errors (a misspelt `baudrate` must not silently fall back to a default on a
//! door), and every check names the key and says what to put there. Hardware choices are enums
//! (`camera.source = "v4l2"`), not free strings, so the validated [`Config`] is all the binary
//! needs to build its drivers.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::hw::v4l2::PixelFormat;
use crate::logout::LogFormat;
use crate::ui::PanelModel;

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Model bundles and keys.
    pub model: ModelConfig,
    /// Where frames come from.
    pub camera: CameraConfig,
    /// The unlock rule.
    #[serde(default)]
    pub door: DoorSection,
    /// The relay (may be left out when `[wiegand]` reports to an access controller instead).
    #[serde(default)]
    pub relay: Option<RelayConfig>,
    /// The screen.
    #[serde(default)]
    pub display: DisplayConfig,
    /// The recognition log.
    pub log: LogConfig,
    /// Network updates.
    #[serde(default)]
    pub update: UpdateConfig,
    /// The presentation-attack check.
    #[serde(default)]
    pub liveness: LivenessConfig,
    /// Events, state, Home Assistant and fleet updates through an MQTT broker (absent: none).
    #[serde(default)]
    pub mqtt: Option<MqttConfig>,
    /// A Wiegand credential output to an existing access controller (absent: none).
    #[serde(default)]
    pub wiegand: Option<WiegandConfig>,
}

/// `[mqtt]`: the door on a broker. See `docs/FLEET.md`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host[:port]` or `mqtts://host[:port]`.
    pub url: String,
    /// The broker user this door logs in as.
    pub username: Option<String>,
    /// File with its password (one line; keep it 0600).
    pub password_file: Option<PathBuf>,
    /// PEM CA of the broker's certificate (`mqtts://`; default: the system's CAs).
    pub ca: Option<PathBuf>,
    /// PEM client certificate, if the broker asks for one.
    pub client_cert: Option<PathBuf>,
    /// Its private key.
    pub client_key: Option<PathBuf>,
    /// First topic level(s).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// The door's id on the broker (default: `model.door`).
    pub door: Option<String>,
    /// Announce the door to Home Assistant.
    #[serde(default = "yes")]
    pub discovery: bool,
    /// Home Assistant's discovery prefix.
    #[serde(default = "default_discovery_prefix")]
    pub discovery_prefix: String,
    /// Accept unlock commands (off by default; needs `mqtts://` and a broker ACL, see
    /// `docs/FLEET.md`).
    #[serde(default)]
    pub remote_unlock: bool,
    /// Broker users whose unlock commands are obeyed (the last topic level, which the ACL
    /// pattern `%u` ties to the login).
    #[serde(default = "default_unlock_users")]
    pub remote_unlock_users: Vec<String>,
    /// Events kept while the broker is unreachable (the oldest go first, counted).
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Publish a small JPEG of the face with each decision (`<prefix>/<door>/snapshot`). Off
    /// by default: faces are personal data, and events carry none.
    #[serde(default)]
    pub snapshot: bool,
}

impl MqttConfig {
    /// The broker settings.
    pub fn broker(&self) -> facegate_fleet::Broker {
        facegate_fleet::Broker {
            url: self.url.clone(),
            username: self.username.clone(),
            password_file: self.password_file.clone(),
            ca: self.ca.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        }
    }
}

fn default_prefix() -> String {
    facegate_fleet::topics::DEFAULT_PREFIX.into()
}
fn default_discovery_prefix() -> String {
    facegate_fleet::topics::DEFAULT_DISCOVERY_PREFIX.into()
}
fn default_unlock_users() -> Vec<String> {
    vec!["homeassistant".into()]
}
fn default_queue() -> usize {
    1000
}

/// `[wiegand]`: each unlock also (or instead of the relay) sends the person's card number to
/// an access controller, as a card reader would.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WiegandConfig {
    /// 26 or 34 bits.
    #[serde(default = "default_wiegand_bits")]
    pub format: u8,
    /// Facility (site) code: 0-255 for 26-bit, 0-65535 for 34-bit.
    #[serde(default)]
    pub facility: u32,
    /// Low pulse width, microseconds.
    #[serde(default = "default_pulse_us")]
    pub pulse_us: u32,
    /// From one pulse's start to the next one's, microseconds.
    #[serde(default = "default_interval_us")]
    pub interval_us: u32,
    /// The two data lines on a GPIO chip...
    pub gpio: Option<WiegandGpio>,
    /// ...or a file recording the pulse train (simulation).
    pub record: Option<PathBuf>,
    /// Card number per enrolled name.
    #[serde(default)]
    pub cards: std::collections::BTreeMap<String, u32>,
}

/// Wiegand wiring.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WiegandGpio {
    /// GPIO chip.
    #[serde(default = "default_chip")]
    pub chip: PathBuf,
    /// DATA0 line offset.
    pub d0: u32,
    /// DATA1 line offset.
    pub d1: u32,
}

fn default_wiegand_bits() -> u8 {
    26
}
fn default_pulse_us() -> u32 {
    50
}
fn default_interval_us() -> u32 {
    2000
}

/// `[liveness]`: is the face at the camera a live person, or a photo or a screen?
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LivenessConfig {
    /// `passive` (every attempt is checked by the liveness network, which the models folder
    /// holds: `facegate models fetch`), `strict` (passive, and a face whose surroundings move
    /// with it is refused) or `off` (a printed photo of someone enrolled opens the door). Default: passive with a camera; off with a folder of images as the camera,
    /// since those are photos, which is what the check refuses.
    pub mode: Option<LivenessMode>,
    /// The attempt's mean logit must reach this (default: the network's calibrated
    /// threshold, from its manifest). Lower lets more photos in.
    pub threshold: Option<f32>,
    /// With `mode = "strict"`: an attempt whose mean motion pair score is above this is
    /// refused (default `facegate_models::motion::THRESHOLD`, 0: the surroundings fit better
    /// moved with the face than left in place). Higher lets more held-up phones in.
    pub motion_threshold: Option<f32>,
}

impl Config {
    /// The liveness mode in force (see [`LivenessConfig::mode`]).
    pub fn liveness_mode(&self) -> LivenessMode {
        self.liveness.mode.unwrap_or(match self.camera {
            CameraConfig::V4l2 { .. } => LivenessMode::Passive,
            CameraConfig::Images { .. } => LivenessMode::Off,
        })
    }
}

/// How the door checks liveness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LivenessMode {
    /// No check.
    Off,
    /// The network on every frame of an attempt, averaged.
    Passive,
    /// Passive, and the motion cue (`facegate_models::motion`): a face whose surroundings
    /// move with it (a photo or a phone held up by hand) is refused, and an unlock waits for
    /// about 0.8 s of the face. It also refuses more live people (docs/LIVENESS.md, "Motion").
    Strict,
}

/// `[model]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Folder holding the active and previous bundles (writable by the service).
    pub store: PathBuf,
    /// Folder with the detector model (YuNet); default: the user's models folder.
    pub models_dir: Option<PathBuf>,
    /// Public keys trusted to sign bundles.
    pub trust: Vec<PathBuf>,
    /// A bundle to install at start if newer than the stored one.
    pub bundle: Option<PathBuf>,
    /// This door's id: bundles must be made for it (`enrol --door ID`) or for one of its
    /// groups. Without an id the door refuses bundles that name a door.
    #[serde(default)]
    pub door: Option<String>,
    /// Groups this door belongs to (a bundle for a group installs on each of its doors).
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `[camera]`
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase", deny_unknown_fields)]
pub enum CameraConfig {
    /// A V4L2 device.
    V4l2 {
        /// Device node.
        #[serde(default = "default_video")]
        device: PathBuf,
        /// `mjpeg` or `yuyv`.
        #[serde(default = "default_format")]
        format: PixelFormat,
        /// Frame width.
        #[serde(default = "default_width")]
        width: u32,
        /// Frame height.
        #[serde(default = "default_height")]
        height: u32,
        /// Frames per second.
        #[serde(default = "default_fps")]
        fps: u32,
    },
    /// Image files played as frames (simulation, demos).
    Images {
        /// Folder of images, played in name order.
        dir: PathBuf,
        /// Frames per image.
        #[serde(default = "default_repeat")]
        repeat: usize,
        /// Start over at the end.
        #[serde(default)]
        cycle: bool,
        /// Frame rate (0: as fast as recognition goes).
        #[serde(default)]
        fps: f64,
        /// Deliver frames of this size, `[width, height]` (photos are letterboxed into it),
        /// like a camera of that resolution.
        size: Option<[u32; 2]>,
    },
}

fn default_video() -> PathBuf {
    "/dev/video0".into()
}
fn default_format() -> PixelFormat {
    PixelFormat::Mjpeg
}
fn default_width() -> u32 {
    640
}
fn default_height() -> u32 {
    480
}
fn default_fps() -> u32 {
    15
}
fn default_repeat() -> usize {
    3
}

/// `[door]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DoorSection {
    /// Frames considered by the unlock rule (N).
    pub window: usize,
    /// Frames that must agree on one person (K).
    pub agree: usize,
    /// No second unlock within this many milliseconds.
    pub cooldown_ms: u64,
    /// Relay pulse length in milliseconds.
    pub unlock_ms: u64,
    /// How long "Welcome" / "Not recognised" stay on screen, in milliseconds.
    pub hold_ms: u64,
    /// Drive the relay from the relay keeper process (locks when the door dies). Only an
    /// emulator that cannot start a second process (qemu-user) turns it off.
    pub relay_keeper: bool,
    /// Longest side of the copy of each frame the detector sees (faces at a door are large;
    /// alignment and embedding use the full frame). 320 cuts detection about 3x on 640x480
    /// frames; raise it for a camera mounted far from where people stand.
    pub detect_side: u32,
    /// Frames in a row that may reuse the subject's detection while it stands still (its
    /// face region unchanged); alignment and embedding still run on every frame. 0 detects on
    /// every frame.
    pub still_frames: u32,
}

/// The door's default detector input side (see [`DoorSection::detect_side`]).
pub const DEFAULT_DETECT_SIDE: u32 = 320;
/// The door's default for [`DoorSection::still_frames`].
pub const DEFAULT_STILL_FRAMES: u32 = 4;

impl Default for DoorSection {
    fn default() -> Self {
        Self {
            window: 5,
            agree: 3,
            cooldown_ms: 5000,
            unlock_ms: 3000,
            hold_ms: 3000,
            relay_keeper: true,
            detect_side: DEFAULT_DETECT_SIDE,
            still_frames: DEFAULT_STILL_FRAMES,
        }
    }
}

/// `[relay]`
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum RelayConfig {
    /// A GPIO line through `/dev/gpiochipN`.
    Gpio {
        /// GPIO chip.
        #[serde(default = "default_chip")]
        chip: PathBuf,
        /// Line offset (BCM number on a Pi).
        line: u32,
        /// Energised by a high level (false: active-low relay boards).
        #[serde(default = "yes")]
        active_high: bool,
    },
    /// Level changes appended to a file (simulation).
    Simulated {
        /// The file.
        record: PathBuf,
    },
}

fn default_chip() -> PathBuf {
    "/dev/gpiochip0".into()
}
fn yes() -> bool {
    true
}

/// `[display]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(tag = "panel", rename_all = "lowercase", deny_unknown_fields)]
pub enum DisplayConfig {
    /// No screen.
    #[default]
    None,
    /// ST7789 240x240 over SPI.
    St7789(SpiPanel),
    /// ILI9341 320x240 over SPI.
    Ili9341(SpiPanel),
    /// SSD1306 128x64 over I2C.
    Ssd1306 {
        /// I2C bus.
        #[serde(default = "default_i2c")]
        i2c: PathBuf,
        /// Address (0x3c or 0x3d).
        #[serde(default = "default_address")]
        address: u8,
    },
    /// PNG files (simulation).
    Png {
        /// Folder for the screens.
        dir: PathBuf,
        /// Which panel to imitate.
        #[serde(default = "default_model")]
        model: PanelModel,
    },
}

fn default_i2c() -> PathBuf {
    "/dev/i2c-1".into()
}
fn default_address() -> u8 {
    0x3c
}
fn default_model() -> PanelModel {
    PanelModel::St7789
}

/// Wiring of an SPI panel.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpiPanel {
    /// spidev node.
    #[serde(default = "default_spi")]
    pub spi: PathBuf,
    /// SPI clock.
    #[serde(default = "default_hz")]
    pub spi_hz: u32,
    /// GPIO chip of the control lines.
    #[serde(default = "default_chip")]
    pub gpio_chip: PathBuf,
    /// Data/command line.
    pub dc: u32,
    /// Reset line.
    pub reset: Option<u32>,
    /// Backlight line.
    pub backlight: Option<u32>,
}

fn default_spi() -> PathBuf {
    "/dev/spidev0.0".into()
}
fn default_hz() -> u32 {
    32_000_000
}

/// `[log]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Serial device (or pty, or a file).
    pub port: Option<PathBuf>,
    /// Line speed.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// `binary` or `text`.
    #[serde(default = "default_log_format")]
    pub format: LogFormat,
    /// On-disk history.
    pub ring: Option<PathBuf>,
    /// Its size bound in KiB.
    #[serde(default = "default_ring_kib")]
    pub ring_kib: u64,
}

fn default_baud() -> u32 {
    115_200
}
fn default_log_format() -> LogFormat {
    LogFormat::Binary
}
fn default_ring_kib() -> u64 {
    1024
}

/// `[update]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// Address to accept signed bundles on (absent: no network updates).
    pub listen: Option<String>,
    /// Largest jump of a new bundle's version past the highest one confirmed here: a typo
    /// such as 4294967295 must not freeze the door.
    #[serde(default = "default_max_version_step")]
    pub max_version_step: u32,
    /// Accept requests over plain TCP instead of the encrypted channel. Requests stay signed,
    /// but bundles (templates, a face crop) and status are readable on the network.
    #[serde(default)]
    pub plaintext: bool,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        Self {
            listen: None,
            max_version_step: default_max_version_step(),
            plaintext: false,
        }
    }
}

fn default_max_version_step() -> u32 {
    crate::update::install::DEFAULT_MAX_STEP
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, or a key is unknown, missing or of the wrong type.
    #[error("config {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line, column and the expected keys).
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("config {path}: {key} {problem}: {fix}")]
    Value {
        /// The file.
        path: PathBuf,
        /// Dotted key, e.g. `door.agree`.
        key: &'static str,
        /// What is wrong.
        problem: String,
        /// What to do.
        fix: &'static str,
    },
}

/// A problem found in one key: (key, what is wrong, how to fix it).
type Problem = (&'static str, String, &'static str);

impl Config {
    /// Reads and validates `path`. Relative paths in the file are taken relative to the file's
    /// folder, so a config and its data can move together.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text, path)?;
        if let Some(base) = path.parent() {
            config.resolve(base);
        }
        Ok(config)
    }

    /// Parses and validates TOML text (`path` is for messages).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        self.check_door()
            .and_then(|()| self.check_camera())
            .and_then(|()| self.check_display())
            .and_then(|()| self.check_model_log_update())
            .and_then(|()| self.check_mqtt())
            .and_then(|()| self.check_wiegand())
            .map_err(|(key, problem, fix)| ConfigError::Value {
                path: path.to_path_buf(),
                key,
                problem,
                fix,
            })
    }

    /// `[door]`: the unlock rule, the pulse and how long screens stay up.
    fn check_door(&self) -> Result<(), Problem> {
        let bad = |key, problem: String, fix| Err((key, problem, fix));
        let d = &self.door;
        if d.window == 0 || d.window > 100 {
            return bad(
                "door.window",
                format!("= {} is out of range", d.window),
                "use 1 to 100 frames (5 is a good start)",
            );
        }
        if d.agree == 0 || d.agree > d.window {
            return bad(
                "door.agree",
                format!("= {} with door.window = {}", d.agree, d.window),
                "agree must be at least 1 and at most window",
            );
        }
        if d.still_frames > 30 {
            return bad(
                "door.still_frames",
                format!("= {} is out of range", d.still_frames),
                "use 0 (detect every frame) to 30",
            );
        }
        if !(160..=1920).contains(&d.detect_side) {
            return bad(
                "door.detect_side",
                format!("= {} is out of range", d.detect_side),
                "use 160 to 1920 pixels (320 suits a door camera at 640x480)",
            );
        }
        if !(100..=60_000).contains(&d.unlock_ms) {
            return bad(
                "door.unlock_ms",
                format!("= {} is out of range", d.unlock_ms),
                "use 100 to 60000 ms; a door strike needs about 3000",
            );
        }
        // Durations are added to clock readings: an absurd one must be refused here, not
        // overflow an Instant later.
        if d.cooldown_ms > 86_400_000 {
            return bad(
                "door.cooldown_ms",
                format!("= {} is out of range", d.cooldown_ms),
                "use 0 to 86400000 ms (a day); 5000 is usual",
            );
        }
        if d.hold_ms > 600_000 {
            return bad(
                "door.hold_ms",
                format!("= {} is out of range", d.hold_ms),
                "use 0 to 600000 ms; 3000 is usual",
            );
        }
        Ok(())
    }

    /// `[camera]`: sizes, rates and repeats a camera or a folder can honour.
    fn check_camera(&self) -> Result<(), Problem> {
        let bad = |key, problem: String, fix| Err((key, problem, fix));
        match &self.camera {
            CameraConfig::V4l2 {
                width, height, fps, ..
            } => {
                if !(64..=4096).contains(width) || !(64..=4096).contains(height) {
                    return bad(
                        "camera.width",
                        format!("x camera.height = {width}x{height} is out of range"),
                        "use a size the camera offers, e.g. 640x480 (see `v4l2-ctl --list-formats-ext`)",
                    );
                }
                if !(1..=120).contains(fps) {
                    return bad(
                        "camera.fps",
                        format!("= {fps} is out of range"),
                        "use 1 to 120",
                    );
                }
            }
            CameraConfig::Images {
                fps, size, repeat, ..
            } => {
                if !(1..=10_000).contains(repeat) {
                    return bad(
                        "camera.repeat",
                        format!("= {repeat} is out of range"),
                        "use 1 to 10000 frames per image",
                    );
                }
                if let Some([w, h]) = size
                    && (!(64..=4096).contains(w) || !(64..=4096).contains(h))
                {
                    return bad(
                        "camera.size",
                        format!("= [{w}, {h}] is out of range"),
                        "use 64 to 4096 pixels a side, e.g. [640, 480]",
                    );
                }
                // 1e-300 once passed here and made the run panic on a frame interval of 1e300 s.
                if !fps.is_finite() || !(*fps == 0.0 || (0.01..=1000.0).contains(fps)) {
                    return bad(
                        "camera.fps",
                        format!("= {fps} is not a rate"),
                        "use 0 (as fast as possible) or 0.01 to 1000 frames a second",
                    );
                }
            }
        }
        Ok(())
    }

    /// `[display]`: the SPI clock and the I2C address.
    fn check_display(&self) -> Result<(), Problem> {
        let bad = |key, problem: String, fix| Err((key, problem, fix));
        if let DisplayConfig::St7789(w) | DisplayConfig::Ili9341(w) = &self.display
            && !(1..=125_000_000).contains(&w.spi_hz)
        {
            return bad(
                "display.spi_hz",
                format!("= {} is out of range", w.spi_hz),
                "use up to 125000000; 32000000 suits most panels",
            );
        }
        if let DisplayConfig::Ssd1306 { address, .. } = &self.display
            && !(0x08..=0x77).contains(address)
        {
            return bad(
                "display.address",
                format!("= {address:#04x} is not a 7-bit I2C address"),
                "SSD1306 boards use 0x3c or 0x3d",
            );
        }
        Ok(())
    }

    /// `[model]`, `[log]` and `[update]`: trusted keys, door ids, ring size, line speed, the
    /// listening address and the version step.
    fn check_model_log_update(&self) -> Result<(), Problem> {
        let bad = |key, problem: String, fix| Err((key, problem, fix));
        if self.model.trust.is_empty() {
            return bad(
                "model.trust",
                "is empty".into(),
                "list at least one public key from `facegate keygen`",
            );
        }
        // 2^54 KiB once wrapped to 0 bytes when turned into bytes.
        if self.log.ring.is_some() && !(16..=1 << 20).contains(&self.log.ring_kib) {
            return bad(
                "log.ring_kib",
                format!("= {} is out of range", self.log.ring_kib),
                "use 16 KiB to 1048576 KiB (1 GiB)",
            );
        }
        if self.log.port.is_some() && !(300..=4_000_000).contains(&self.log.baud) {
            return bad(
                "log.baud",
                format!("= {} is not a serial speed", self.log.baud),
                "use a standard rate such as 115200",
            );
        }
        if let Some(addr) = &self.update.listen
            && addr.parse::<std::net::SocketAddr>().is_err()
        {
            return bad(
                "update.listen",
                format!("= {addr:?} is not an address"),
                "use IP:PORT, e.g. \"0.0.0.0:7700\", or remove the key to refuse updates",
            );
        }
        for id in self.model.door.iter().chain(&self.model.groups) {
            if let Err(why) = facegate_models::bundle::check_door_id(id) {
                return bad("model.door", why, "use a short name such as \"front\"");
            }
        }
        if let Some(t) = self.liveness.threshold
            && !(t.is_finite() && (-50.0..=50.0).contains(&t))
        {
            return bad(
                "liveness.threshold",
                format!("= {t} is not a usable threshold"),
                "leave it out to use the network's calibrated one",
            );
        }
        if let Some(t) = self.liveness.motion_threshold
            && !(t.is_finite() && (-1.0..=5.0).contains(&t))
        {
            return bad(
                "liveness.motion_threshold",
                format!("= {t} is not a usable threshold"),
                "leave it out to use the default (0)",
            );
        }
        if self.update.max_version_step == 0 {
            return bad(
                "update.max_version_step",
                "= 0 would refuse every update".into(),
                "use at least 1 (the default is 1000)",
            );
        }
        Ok(())
    }

    /// Whether a bundle can reach this door without a shell on it (`update.listen`, or a
    /// broker): such a door with no usable bundle starts shut and waits for one.
    pub fn can_receive_bundles(&self) -> bool {
        self.update.listen.is_some() || self.mqtt.is_some()
    }

    /// The door's id on the broker: `mqtt.door`, else `model.door`.
    pub fn mqtt_door(&self) -> Option<&str> {
        self.mqtt
            .as_ref()
            .and_then(|m| m.door.as_deref())
            .or(self.model.door.as_deref())
    }

    /// `[mqtt]`: the broker settings, ids that are topic levels, remote unlock only over TLS.
    fn check_mqtt(&self) -> Result<(), Problem> {
        let Some(m) = &self.mqtt else {
            return Ok(());
        };
        let bad = |key, problem: String, fix| Err((key, problem, fix));
        let endpoint = match m.broker().check() {
            Ok(e) => e,
            Err(e) => return bad("mqtt.url", e.to_string(), "see docs/FLEET.md"),
        };
        let Some(door) = self.mqtt_door() else {
            return bad(
                "mqtt.door",
                "is missing (and model.door too)".into(),
                "name the door, e.g. door = \"front\" in [model] or [mqtt]",
            );
        };
        if let Err(e) = facegate_fleet::topics::check_id("door id", door) {
            return bad(
                "mqtt.door",
                e.to_string(),
                "use a short name such as \"front\"",
            );
        }
        for (key, prefix) in [
            ("mqtt.prefix", &m.prefix),
            ("mqtt.discovery_prefix", &m.discovery_prefix),
        ] {
            if let Err(e) = facegate_fleet::topics::check_prefix(prefix) {
                return bad(key, e.to_string(), "use levels of letters and digits");
            }
        }
        if !(1..=100_000).contains(&m.queue) {
            return bad(
                "mqtt.queue",
                format!("= {} is out of range", m.queue),
                "use 1 to 100000 events (1000 is about an hour of a busy door)",
            );
        }
        if m.remote_unlock {
            if !endpoint.tls {
                return bad(
                    "mqtt.remote_unlock",
                    "= true over plain mqtt://".into(),
                    "remote unlock needs TLS: use an mqtts:// broker URL (and the ACL in \
                     docs/FLEET.md), or set remote_unlock = false",
                );
            }
            if m.username.is_none() {
                return bad(
                    "mqtt.remote_unlock",
                    "= true without mqtt.username".into(),
                    "the door must log in to a broker that authenticates every client",
                );
            }
            if m.remote_unlock_users.is_empty() {
                return bad(
                    "mqtt.remote_unlock_users",
                    "is empty".into(),
                    "list the broker users allowed to unlock, e.g. [\"homeassistant\"]",
                );
            }
            for u in &m.remote_unlock_users {
                if let Err(e) = facegate_fleet::topics::check_id("user", u) {
                    return bad("mqtt.remote_unlock_users", e.to_string(), "list user names");
                }
            }
        }
        Ok(())
    }

    /// `[wiegand]`: format, codes within the format, one output, sane timing.
    fn check_wiegand(&self) -> Result<(), Problem> {
        let bad = |key, problem: String, fix| Err((key, problem, fix));
        let Some(w) = &self.wiegand else {
            if self.relay.is_none() {
                return bad(
                    "relay",
                    "is missing".into(),
                    "add a [relay] table (or [wiegand] for an access controller)",
                );
            }
            return Ok(());
        };
        let Some(format) = crate::wiegand::Format::from_bits(w.format) else {
            return bad(
                "wiegand.format",
                format!("= {} is not supported", w.format),
                "use 26 or 34",
            );
        };
        if w.facility > format.max_facility() {
            return bad(
                "wiegand.facility",
                format!("= {} does not fit the format", w.facility),
                "26-bit: 0 to 255; 34-bit: 0 to 65535",
            );
        }
        if let Some((name, card)) = w.cards.iter().find(|(_, c)| **c > format.max_card()) {
            return bad(
                "wiegand.cards",
                format!("{name} = {card} does not fit the format"),
                "card numbers are 0 to 65535",
            );
        }
        if !(20..=500).contains(&w.pulse_us)
            || !(200..=20_000).contains(&w.interval_us)
            || w.interval_us < 2 * w.pulse_us
        {
            return bad(
                "wiegand.pulse_us",
                format!("= {} with interval_us = {}", w.pulse_us, w.interval_us),
                "use pulses of 20-500 us, 200-20000 us apart (50 and 2000 are common)",
            );
        }
        if w.gpio.is_some() == w.record.is_some() {
            return bad(
                "wiegand.gpio",
                "and wiegand.record: give exactly one".into(),
                "gpio = { chip = \"/dev/gpiochip0\", d0 = 17, d1 = 27 } on a Pi",
            );
        }
        Ok(())
    }

    fn resolve(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.starts_with("/dev") {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.model.store);
        self.model.models_dir.iter_mut().for_each(fix);
        self.model.trust.iter_mut().for_each(fix);
        self.model.bundle.iter_mut().for_each(fix);
        if let CameraConfig::Images { dir, .. } = &mut self.camera {
            fix(dir);
        }
        if let Some(RelayConfig::Simulated { record }) = &mut self.relay {
            fix(record);
        }
        if let Some(m) = &mut self.mqtt {
            for p in [
                &mut m.password_file,
                &mut m.ca,
                &mut m.client_cert,
                &mut m.client_key,
            ] {
                p.iter_mut().for_each(fix);
            }
        }
        if let Some(w) = &mut self.wiegand {
            w.record.iter_mut().for_each(fix);
        }
        if let DisplayConfig::Png { dir, .. } = &mut self.display {
            fix(dir);
        }
        self.log.port.iter_mut().for_each(fix);
        self.log.ring.iter_mut().for_each(fix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../packaging/device.toml");

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("device.toml"))
    }

    /// The example with `extra` appended (tables after the last one).
    fn example_with(extra: &str) -> Result<Config, ConfigError> {
        parse(&format!("{EXAMPLE}\n{extra}"))
    }

    #[test]
    fn mqtt_settings_are_checked_and_remote_unlock_needs_tls() {
        let err = |extra: &str| {
            example_with(extra)
                .expect_err("must be refused")
                .to_string()
        };
        let e = err("[mqtt]\nurl = \"mqtt://broker.lan\"\n");
        assert!(e.contains("mqtt.door"), "{e}");
        let e = err(
            "[mqtt]\nurl = \"mqtt://broker.lan\"\ndoor = \"front\"\nremote_unlock = true\nusername = \"front\"\n",
        );
        assert!(e.contains("needs TLS") && e.contains("mqtts://"), "{e}");
        let e =
            err("[mqtt]\nurl = \"mqtts://broker.lan\"\ndoor = \"front\"\nremote_unlock = true\n");
        assert!(e.contains("mqtt.username"), "{e}");
        let e = err("[mqtt]\nurl = \"http://broker.lan\"\ndoor = \"front\"\n");
        assert!(e.contains("mqtt://"), "{e}");
        let e = err("[mqtt]\nurl = \"mqtt://broker.lan\"\ndoor = \"front/#\"\n");
        assert!(e.contains("mqtt.door"), "{e}");
        let ok = example_with("[mqtt]\nurl = \"mqtts://broker.lan\"\ndoor = \"front\"\nusername = \"front\"\nremote_unlock = true\n")
            .expect("valid");
        assert_eq!(ok.mqtt_door(), Some("front"));
    }

    #[test]
    fn wiegand_codes_must_fit_the_format() {
        let err = |extra: &str| {
            example_with(extra)
                .expect_err("must be refused")
                .to_string()
        };
        let e = err("[wiegand]\nformat = 30\nrecord = \"w.txt\"\n");
        assert!(e.contains("26 or 34"), "{e}");
        let e = err("[wiegand]\nfacility = 300\nrecord = \"w.txt\"\n");
        assert!(e.contains("wiegand.facility"), "{e}");
        let e = err("[wiegand]\nrecord = \"w.txt\"\n[wiegand.cards]\nann = 70000\n");
        assert!(e.contains("ann = 70000"), "{e}");
        let e = err("[wiegand]\n");
        assert!(e.contains("exactly one"), "{e}");
        example_with("[wiegand]\nformat = 34\nfacility = 300\nrecord = \"w.txt\"\n")
            .expect("valid");
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let c = parse(EXAMPLE).expect("example config");
        assert!(matches!(c.camera, CameraConfig::V4l2 { .. }));
        assert!(matches!(
            c.relay,
            Some(RelayConfig::Gpio {
                line: 17,
                active_high: true,
                ..
            })
        ));
        assert!(matches!(c.display, DisplayConfig::St7789(_)));
    }

    #[test]
    fn a_misspelt_key_is_named_with_the_keys_expected() {
        let text = EXAMPLE.replace("baud = ", "baudrate = ");
        let msg = parse(&text).expect_err("misspelt").to_string();
        assert!(msg.contains("baudrate"), "{msg}");
        assert!(msg.contains("expected one of"), "{msg}");
        assert!(msg.contains("`baud`"), "{msg}");
    }

    #[test]
    fn an_unknown_panel_lists_the_choices() {
        let text = EXAMPLE.replace("panel = \"st7789\"", "panel = \"st7735\"");
        let msg = parse(&text).expect_err("unknown panel").to_string();
        assert!(msg.contains("st7735") && msg.contains("ili9341"), "{msg}");
    }

    #[test]
    fn inconsistent_values_name_the_key_and_the_fix() {
        let text = EXAMPLE.replace("agree = 3", "agree = 9");
        let msg = parse(&text).expect_err("agree > window").to_string();
        assert!(msg.contains("door.agree = 9"), "{msg}");
        assert!(msg.contains("at most window"), "{msg}");
        let text = EXAMPLE.replace("listen = \"127.0.0.1:7700\"", "listen = \"port 7700\"");
        let msg = parse(&text).expect_err("bad address").to_string();
        assert!(msg.contains("update.listen"), "{msg}");
        // Findings: fps = 1e-300 passed and then panicked; ring_kib = 2^54 wrapped to 0.
        let (camera, door) = (
            EXAMPLE.find("[camera]").expect("camera"),
            EXAMPLE.find("[door]").expect("door"),
        );
        let tiny_fps = format!(
            "{}[camera]\nsource = \"images\"\ndir = \"frames\"\nfps = 1e-300\n\n{}",
            &EXAMPLE[..camera],
            &EXAMPLE[door..]
        );
        for (key, text) in [
            ("camera.fps", tiny_fps),
            (
                "log.ring_kib",
                EXAMPLE.replace("ring_kib = 1024", "ring_kib = 18014398509481984"),
            ),
            (
                "update.max_version_step",
                EXAMPLE.replace("max_version_step = 1000", "max_version_step = 0"),
            ),
            (
                "door.cooldown_ms",
                EXAMPLE.replace("cooldown_ms = 5000", "cooldown_ms = 18446744073709551615"),
            ),
            (
                "door.hold_ms",
                EXAMPLE.replace("hold_ms = 3000", "hold_ms = 99999999999"),
            ),
            (
                "display.spi_hz",
                EXAMPLE.replace("spi_hz = 32000000", "spi_hz = 0"),
            ),
            (
                "liveness.motion_threshold",
                EXAMPLE.replace("# motion_threshold = 0.0", "motion_threshold = nan"),
            ),
        ] {
            let msg = parse(&text).expect_err(key).to_string();
            assert!(msg.contains(key), "{key}: {msg}");
        }
    }

    #[test]
    fn strict_liveness_reads_with_its_motion_threshold() {
        let text = EXAMPLE
            .replace("mode = \"passive\"", "mode = \"strict\"")
            .replace("# motion_threshold = 0.0", "motion_threshold = 0.1");
        let c = parse(&text).expect("strict");
        assert_eq!(c.liveness_mode(), LivenessMode::Strict);
        assert_eq!(c.liveness.motion_threshold, Some(0.1));
    }

    #[test]
    fn a_missing_relay_line_is_reported() {
        let text: String = EXAMPLE
            .lines()
            .filter(|l| !l.starts_with("line = "))
            .map(|l| format!("{l}\n"))
            .collect();
        let msg = parse(&text).expect_err("no line").to_string();
        assert!(msg.contains("missing field `line`"), "{msg}");
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let text = r#"
[model]
store = "store"
trust = ["keys/door.pub"]
[camera]
source = "images"
dir = "frames"
[relay]
kind = "simulated"
record = "relay.txt"
[log]
port = "/dev/pts/7"
"#;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sim.toml");
        std::fs::write(&path, text).expect("write");
        let c = Config::load(&path).expect("load");
        assert_eq!(c.model.store, dir.path().join("store"));
        assert_eq!(c.model.trust[0], dir.path().join("keys/door.pub"));
        assert_eq!(c.log.port.as_deref(), Some(Path::new("/dev/pts/7")));
        assert!(matches!(c.display, DisplayConfig::None));
    }
}
