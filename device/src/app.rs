//! The door loop: frame -> subject's face and identity -> [`Door::step`] -> relay, screen, log.
//!
//! The decisions are [`crate::door`]'s; this loop only feeds it and carries out its actions.
//! Generic over the hardware traits, so the same code drives the Pi and the simulation. The
//! relay is held by a guard that releases it when the loop ends for any reason (including a
//! panic unwinding through it), and pulses are timed by deadlines checked every iteration, never
//! by sleeping in the loop. The screen and the log are hand-offs to their own threads
//! ([`crate::display`], [`crate::logout`]): nothing here waits on a panel or a serial line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use embedded_hal::digital::OutputPin;
use facegate_models::logrecord::{Event, LogRecord};

use crate::display::Display;
use crate::door::{Action, Door, DoorRules, Observation, Seen};
use crate::hw::{CameraError, FrameSource};
use crate::live::Shared;
use crate::logout::LogSender;
use crate::policy::PolicyConfig;
use crate::still::Still;
use crate::ui::Screen;

/// Where log records go (the serial worker, or a byte buffer in tests).
pub trait RecordSink {
    /// Hands over one record; false if it was lost.
    fn record(&mut self, record: &LogRecord) -> bool;

    /// Whether a picture of the face should follow each decision (`[mqtt] snapshot`).
    fn wants_snapshots(&self) -> bool {
        false
    }

    /// The face of the decision just recorded (a small crop; called only when
    /// [`RecordSink::wants_snapshots`]). Must not block.
    fn snapshot(&mut self, _face: image::RgbImage) {}
}

impl RecordSink for Vec<u8> {
    fn record(&mut self, record: &LogRecord) -> bool {
        self.extend(record.encode());
        true
    }
}

impl RecordSink for LogSender {
    fn record(&mut self, record: &LogRecord) -> bool {
        self.send(record)
    }
}

/// Where screens go.
pub trait Screens {
    /// Asks for `screen` (must not block).
    fn show(&mut self, screen: Screen);
}

impl Screens for Display {
    fn show(&mut self, screen: Screen) {
        Display::show(self, screen);
    }
}

/// Tests collect the screens asked for, without repeats.
impl Screens for Vec<Screen> {
    fn show(&mut self, screen: Screen) {
        if self.last() != Some(&screen) {
            self.push(screen);
        }
    }
}

/// No display fitted.
impl Screens for () {
    fn show(&mut self, _screen: Screen) {}
}

/// The presentation-attack check: the network and the threshold an attempt's mean logit must
/// reach.
#[derive(Clone, Debug)]
pub struct LivenessCheck {
    /// The network.
    pub net: facegate_models::liveness::Liveness,
    /// The threshold (the manifest's, or the config's).
    pub threshold: f32,
    /// The motion cue's threshold (`[liveness] mode = "strict"`), `None` when it is off.
    pub motion: Option<f32>,
}

/// Door settings.
#[derive(Clone, Debug)]
pub struct DoorConfig {
    /// When to unlock.
    pub policy: PolicyConfig,
    /// How long the relay stays energised per unlock.
    pub unlock_for: Duration,
    /// Relay energised by a high level (else low).
    pub active_high: bool,
    /// How long "Welcome" and "Not recognised" stay on screen.
    pub hold: Duration,
    /// The presentation-attack check, `None` when off.
    pub liveness: Option<LivenessCheck>,
    /// Frames in a row that may reuse the subject's detection while it stands still
    /// ([`crate::still`]; 0: detect every frame).
    pub still_frames: u32,
}

impl DoorConfig {
    /// The rules the door's state machine decides by.
    pub fn rules(&self) -> DoorRules {
        DoorRules {
            policy: self.policy,
            unlock_for: self.unlock_for,
            hold: self.hold,
            liveness: self.liveness.as_ref().map(|l| l.threshold),
            motion: self.liveness.as_ref().and_then(|l| l.motion),
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Frames read.
    pub frames: u64,
    /// Decisions logged (frames with a face).
    pub decisions: u64,
    /// Door openings.
    pub unlocks: u64,
    /// Stranger decisions.
    pub strangers: u64,
    /// Bad frames and other recovered faults.
    pub faults: u64,
    /// Frames that reused the still subject's detection instead of detecting.
    pub detections_skipped: u64,
    /// Log records that could not be handed to the log.
    pub log_errors: u64,
    /// Time from the loop's start to its first decision.
    pub first_decision: Option<Duration>,
    /// Per-stage latencies.
    pub stages: Stages,
}

/// Latency samples per stage (the first [`Stages::CAP`] frames with a face), for the bench.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stages {
    /// Face detection (YuNet) per frame.
    pub detect: Vec<Duration>,
    /// Alignment and embedding of the subject.
    pub embed: Vec<Duration>,
    /// Gallery search, tracking and policy.
    pub decide: Vec<Duration>,
    /// Whole frame, from taking it to handing off the log record.
    pub frame: Vec<Duration>,
}

impl Stages {
    /// Samples kept per stage: a door runs for months, its memory must not grow.
    pub const CAP: usize = 10_000;

    fn push(v: &mut Vec<Duration>, d: Duration) {
        if v.len() < Self::CAP {
            v.push(d);
        }
    }

    /// One frame with a face: detection and embedding from the pipeline's own timing, then the
    /// decision and the whole frame.
    fn record(
        &mut self,
        r: &facegate_models::pipeline::Recognition,
        decide: Duration,
        frame: Duration,
    ) {
        Self::push(&mut self.detect, r.detect);
        Self::push(&mut self.embed, r.embed);
        Self::push(&mut self.decide, decide);
        Self::push(&mut self.frame, frame);
    }
}

/// The relay with its pulse deadline; released on drop.
pub struct Relay<P: OutputPin> {
    pin: P,
    active_high: bool,
    release_at: Option<Instant>,
}

impl<P: OutputPin> Relay<P> {
    /// Takes the pin and makes sure the door is locked.
    pub fn new(pin: P, active_high: bool) -> Self {
        let mut r = Self {
            pin,
            active_high,
            release_at: None,
        };
        r.set(false);
        r
    }

    fn set(&mut self, open: bool) {
        // A relay error cannot be recovered here; the next tick retries the level.
        let _ = if open == self.active_high {
            self.pin.set_high()
        } else {
            self.pin.set_low()
        };
    }

    /// Opens until `now + duration` (extends a pulse already running). The open level is
    /// driven again even during a pulse: the relay keeper ([`crate::hw::keeper`]) ends each
    /// pulse on its own clock and counts its length from the latest command.
    pub fn pulse(&mut self, now: Instant, duration: Duration) {
        self.set(true);
        self.release_at = Some(now + duration);
    }

    /// Releases the relay once its pulse has run out.
    pub fn tick(&mut self, now: Instant) {
        if self.release_at.is_some_and(|t| now >= t) {
            self.release();
        }
    }

    /// Locks the door now.
    pub fn release(&mut self) {
        if self.release_at.take().is_some() {
            self.set(false);
        }
    }

    /// Whether a pulse is running.
    pub fn is_open(&self) -> bool {
        self.release_at.is_some()
    }
}

impl<P: OutputPin> Drop for Relay<P> {
    fn drop(&mut self) {
        self.release();
    }
}

/// How often a door without a model looks whether one was installed.
const WAITING_POLL: Duration = Duration::from_millis(50);

/// Runs the loop until the frame source ends or `stop` is set: read a frame, recognise it with
/// the model current when it arrives (an update swaps it between frames), let [`Door::step`]
/// decide, hand its actions to the relay, the screens and the log.
pub fn run<S, P, L, D>(
    shared: &Shared,
    camera: &mut S,
    relay: P,
    log: &mut L,
    screens: &mut D,
    config: &DoorConfig,
    stop: &AtomicBool,
) -> Summary
where
    S: FrameSource,
    P: OutputPin,
    L: RecordSink,
    D: Screens,
{
    let started = Instant::now();
    let mut relay = Relay::new(relay, config.active_high);
    let mut door = Door::new(config.rules());
    let mut still = Still::new(config.still_frames);
    // Strict liveness: the subject's earlier frame for the motion cue.
    let mut motion = facegate_models::motion::MotionTrack::new();
    let mut out = Outputs {
        shared,
        log,
        screens,
        summary: Summary::default(),
    };
    out.apply(&door.start(), &mut relay, started, 0);
    while !stop.load(Ordering::Relaxed) {
        shared.heartbeat.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        relay.tick(now);
        out.between_frames(&mut door, &mut relay, now);
        let Some(live) = shared.current() else {
            // Nothing to recognise with: the relay stays as it is (locked, or a remote
            // unlock's pulse running out), frames are left unread, and the screen says why
            // until an update installs a model ("Updating" while one does).
            if shared.installing.load(Ordering::Relaxed) == 0 {
                let actions = door.step(now, Observation::NoModel);
                out.apply(&actions, &mut relay, now, 0);
            }
            std::thread::sleep(WAITING_POLL);
            continue;
        };
        let frame = match camera.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(CameraError::Waiting) => continue,
            Err(e) => {
                let actions = door.step(now, camera_fault(&e));
                out.apply(&actions, &mut relay, now, live.version);
                continue;
            }
        };
        out.summary.frames += 1;
        let t_frame = Instant::now();
        let recognised = recognise(&mut still, &live, &frame.image, &mut out.summary);
        let t_recognised = Instant::now();
        let at = t_frame.saturating_duration_since(started).as_secs_f64();
        let observation = observe(
            &live,
            (&frame.image, frame.id, at),
            &recognised,
            config,
            &mut motion,
        );
        let actions = door.step(now, observation);
        out.apply(&actions, &mut relay, now, live.version);
        if let Ok(r) = &recognised {
            out.decided(&actions, &frame.image, r, [started, t_frame, t_recognised]);
        }
    }
    relay.release();
    out.summary
}

/// Recognises the subject of `image` with the live pipeline, reusing the last detection
/// while the face stands still (counted in `summary`).
fn recognise(
    still: &mut Still,
    live: &crate::live::Live,
    image: &image::RgbImage,
    summary: &mut Summary,
) -> facegate_models::Result<facegate_models::pipeline::Recognition> {
    match still.reusable(image, live.version) {
        Some(detection) => {
            summary.detections_skipped += 1;
            live.pipeline.recognise_at(image, detection)
        }
        None => {
            let r = live.pipeline.recognise(image);
            let subject = r.as_ref().ok().and_then(|r| r.subject.as_ref());
            still.detected(image, subject, live.version);
            r
        }
    }
}

/// Whether an action logs a decision (an unlock, a stranger, a face that was not live).
fn is_decision(action: &Action) -> bool {
    matches!(
        action,
        Action::Log {
            event: Event::Known { unlocked: true, .. }
                | Event::Stranger { .. }
                | Event::NotLive { .. }
                | Event::MovedAsOne { .. },
            ..
        }
    )
}

/// The face with a margin of half its size, at most [`SNAPSHOT_SIDE`] pixels a side: enough
/// to see who it was, not the whole hallway.
fn face_crop(image: &image::RgbImage, bbox: &facegate_models::geometry::BBox) -> image::RgbImage {
    let (w, h) = (image.width() as f32, image.height() as f32);
    let x0 = (bbox.x - bbox.w * 0.5).clamp(0.0, w - 1.0);
    let y0 = (bbox.y - bbox.h * 0.5).clamp(0.0, h - 1.0);
    let x1 = (bbox.x + bbox.w * 1.5).clamp(x0 + 1.0, w);
    let y1 = (bbox.y + bbox.h * 1.5).clamp(y0 + 1.0, h);
    let crop = image::imageops::crop_imm(
        image,
        x0 as u32,
        y0 as u32,
        (x1 - x0) as u32,
        (y1 - y0) as u32,
    )
    .to_image();
    let side = crop.width().max(crop.height());
    if side <= SNAPSHOT_SIDE {
        return crop;
    }
    let scale = SNAPSHOT_SIDE as f32 / side as f32;
    image::imageops::resize(
        &crop,
        ((crop.width() as f32 * scale) as u32).max(1),
        ((crop.height() as f32 * scale) as u32).max(1),
        image::imageops::FilterType::Triangle,
    )
}

/// Largest side of a snapshot, pixels.
pub const SNAPSHOT_SIDE: u32 = 256;

/// What the door sees in a camera error.
fn camera_fault(e: &CameraError) -> Observation {
    Observation::CameraFault {
        frame: match e {
            CameraError::BadFrame { id, .. } => *id,
            _ => 0,
        },
        lost: match e {
            CameraError::Lost(why) => Some(why.clone()),
            _ => None,
        },
        message: e.to_string(),
    }
}

/// What the door sees in a recognised frame: the subject's box and who the gallery says it is.
///
/// `(image, frame, at)`: the frame, its number and its time in seconds since the start (the
/// motion cue pairs frames by time).
fn observe(
    live: &crate::live::Live,
    (image, frame, at): (&image::RgbImage, u64, f64),
    recognised: &facegate_models::Result<facegate_models::pipeline::Recognition>,
    config: &DoorConfig,
    motion: &mut facegate_models::motion::MotionTrack,
) -> Observation {
    let gallery = &live.gallery;
    let subject = match recognised {
        Ok(r) => Ok(r.face.as_ref().map(|f| {
            let decision = gallery.identify_face(&f.embedding, f.masked);
            Seen {
                bbox: f.detection.bbox,
                name: decision
                    .person()
                    .and_then(|i| gallery.people.get(i))
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                decision,
                threshold: gallery.threshold,
                // A failing network scores nothing, and nothing counts as not live.
                liveness: config
                    .liveness
                    .as_ref()
                    .and_then(|l| l.net.score(image, &f.detection.bbox).ok()),
                motion: config
                    .liveness
                    .as_ref()
                    .and_then(|l| l.motion)
                    .and_then(|_| motion.observe(at, image, &f.detection.bbox)),
            }
        })),
        Err(e) => Err(e.to_string()),
    };
    Observation::Frame {
        frame,
        version: live.version,
        subject,
    }
}

/// Where the door's actions go, and the tally of them.
struct Outputs<'a, L: RecordSink, D: Screens> {
    shared: &'a Shared,
    log: &'a mut L,
    screens: &'a mut D,
    summary: Summary,
}

impl<L: RecordSink, D: Screens> Outputs<'_, L, D> {
    /// What other threads asked for since the last frame: records to log, a remote unlock,
    /// the "Updating" screen.
    fn between_frames<P: OutputPin>(
        &mut self,
        door: &mut Door,
        relay: &mut Relay<P>,
        now: Instant,
    ) {
        let shared = self.shared;
        let posted = std::mem::take(&mut *shared.outbox.lock().unwrap_or_else(|p| p.into_inner()));
        for record in posted {
            self.write(record);
        }
        if let Some(by) = shared.take_remote_unlock() {
            let actions = door.step(now, Observation::RemoteUnlock { by });
            self.apply(&actions, relay, now, shared.version());
        }
        let installing = shared.installing.load(Ordering::Relaxed);
        if installing != 0 {
            let actions = door.step(
                now,
                Observation::Installing {
                    version: installing,
                },
            );
            self.apply(&actions, relay, now, 0);
        }
    }

    /// After a frame with a face: its snapshot for the sinks, the time to the first
    /// decision and the frame's stage times (`at`: the door's start, the frame's start, the
    /// end of recognition).
    fn decided(
        &mut self,
        actions: &[Action],
        image: &image::RgbImage,
        r: &facegate_models::pipeline::Recognition,
        [started, t_frame, t_recognised]: [Instant; 3],
    ) {
        let Some(face) = &r.face else {
            return;
        };
        self.snapshot(actions, image, face);
        let t_done = Instant::now();
        self.summary.first_decision.get_or_insert(t_done - started);
        self.summary
            .stages
            .record(r, t_done - t_recognised, t_done - t_frame);
    }

    /// The face of a decision, for sinks that want one (`[mqtt] snapshot`).
    fn snapshot(
        &mut self,
        actions: &[Action],
        image: &image::RgbImage,
        face: &facegate_models::pipeline::Face,
    ) {
        if self.log.wants_snapshots() && actions.iter().any(is_decision) {
            self.log.snapshot(face_crop(image, &face.detection.bbox));
        }
    }

    fn write(&mut self, record: LogRecord) {
        if !self.log.record(&record) {
            self.summary.log_errors += 1;
        }
        self.shared.remember(&record);
    }

    fn apply<P: OutputPin>(
        &mut self,
        actions: &[Action],
        relay: &mut Relay<P>,
        now: Instant,
        version: u32,
    ) {
        for action in actions {
            match action {
                Action::Unlock(d) => {
                    relay.pulse(now, *d);
                    self.summary.unlocks += 1;
                }
                Action::Show(screen) => self.screens.show(screen.clone()),
                Action::Log { frame, event } => {
                    match event {
                        Event::Fault { .. } => self.summary.faults += 1,
                        Event::Stranger { .. } => {
                            self.summary.strangers += 1;
                            self.summary.decisions += 1;
                        }
                        _ => self.summary.decisions += 1,
                    }
                    self.write(LogRecord::now(*frame, version, event.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::relay::RecordingPin;

    #[test]
    fn relay_pulses_by_deadline_and_releases_on_drop() {
        let (pin, levels) = RecordingPin::new();
        let t = Instant::now();
        {
            let mut r = Relay::new(pin, true);
            r.pulse(t, Duration::from_secs(3));
            r.tick(t + Duration::from_secs(1));
            assert!(r.is_open());
            r.tick(t + Duration::from_secs(3));
            assert!(!r.is_open());
            r.pulse(t + Duration::from_secs(4), Duration::from_secs(3));
            // dropped while open: must lock
        }
        assert_eq!(
            *levels.lock().expect("levels"),
            vec![false, true, false, true, false]
        );
    }

    #[test]
    fn active_low_relay_inverts_levels() {
        let (pin, levels) = RecordingPin::new();
        let mut r = Relay::new(pin, false);
        r.pulse(Instant::now(), Duration::ZERO);
        r.release();
        assert_eq!(*levels.lock().expect("levels"), vec![true, false, true]);
    }

    #[test]
    fn relay_is_released_when_a_panic_unwinds() {
        let (pin, levels) = RecordingPin::new();
        let result = std::panic::catch_unwind(move || {
            let mut r = Relay::new(pin, true);
            r.pulse(Instant::now(), Duration::from_secs(60));
            panic!("simulated crash in the loop");
        });
        assert!(result.is_err());
        assert_eq!(levels.lock().expect("levels").last(), Some(&false));
    }
}
