//! The door loop: frame -> subject's face -> track -> identity -> policy -> relay, screen, log.
//!
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
use crate::hw::{CameraError, FrameSource};
use crate::live::Shared;
use crate::logout::LogSender;
use crate::policy::{Policy, PolicyConfig, Verdict};
use crate::track::{Step, Tracker};
use crate::ui::Screen;

/// Where log records go (the serial worker, or a byte buffer in tests).
pub trait RecordSink {
    /// Hands over one record; false if it was lost.
    fn record(&mut self, record: &LogRecord) -> bool;
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

/// Door settings.
#[derive(Clone, Copy, Debug)]
pub struct DoorConfig {
    /// When to unlock.
    pub policy: PolicyConfig,
    /// How long the relay stays energised per unlock.
    pub unlock_for: Duration,
    /// Relay energised by a high level (else low).
    pub active_high: bool,
    /// How long "Welcome" and "Not recognised" stay on screen.
    pub hold: Duration,
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

/// Runs the loop until the frame source ends or `stop` is set. Each frame is recognised with
/// the model current when it arrives (an update swaps it between frames).
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
    let mut policy = Policy::new(config.policy);
    let mut tracker = Tracker::default();
    let mut summary = Summary::default();
    let mut seen_version: Option<u32> = None;
    // A screen that stays up until this time whatever the next frames show.
    let mut sticky_until: Option<Instant> = None;
    let mut write = |record: LogRecord, summary: &mut Summary| {
        if !log.record(&record) {
            summary.log_errors += 1;
        }
        shared.remember(&record);
    };
    screens.show(Screen::Idle);
    while !stop.load(Ordering::Relaxed) {
        shared.heartbeat.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        relay.tick(now);
        let posted = std::mem::take(&mut *shared.outbox.lock().unwrap_or_else(|p| p.into_inner()));
        for record in posted {
            write(record, &mut summary);
        }
        let installing = shared.installing.load(Ordering::Relaxed);
        if installing != 0 {
            screens.show(Screen::Updating {
                version: installing,
            });
            sticky_until = Some(now);
        }
        let live = shared.current();
        let (pipeline, gallery, version) = (&live.pipeline, &live.gallery, live.version);
        if seen_version.replace(version).is_some_and(|v| v != version) {
            policy.forget_identities();
        }
        let frame = match camera.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(CameraError::Waiting) => continue,
            Err(e) => {
                summary.faults += 1;
                let id = match &e {
                    CameraError::BadFrame { id, .. } => *id,
                    _ => 0,
                };
                if let CameraError::Lost(why) = &e {
                    screens.show(Screen::Error {
                        message: format!("camera lost: {why}"),
                    });
                    // Shown until a frame arrives again.
                    sticky_until = Some(now + Duration::from_secs(3600));
                }
                write(
                    LogRecord::now(
                        id,
                        version,
                        Event::Fault {
                            message: e.to_string(),
                        },
                    ),
                    &mut summary,
                );
                continue;
            }
        };
        if matches!(sticky_until, Some(t) if t > now + Duration::from_secs(60)) {
            sticky_until = None;
        }
        summary.frames += 1;
        let t_frame = Instant::now();
        // Detect, pick the subject, align and embed it; any error is one fault record.
        let analysed = (|| -> facegate_models::error::Result<_> {
            let detections = pipeline.detector().detect(&frame.image)?;
            let t_detected = Instant::now();
            let subject = facegate_models::pipeline::subject(
                &detections,
                frame.image.width(),
                frame.image.height(),
            )
            .cloned();
            let face = match subject {
                Some(d) => pipeline.embed_detection(&frame.image, d)?,
                None => None,
            };
            Ok((face, t_detected))
        })();
        let (face, t_detected) = match analysed {
            Ok(done) => done,
            Err(e) => {
                summary.faults += 1;
                write(
                    LogRecord::now(
                        frame.id,
                        version,
                        Event::Fault {
                            message: e.to_string(),
                        },
                    ),
                    &mut summary,
                );
                continue;
            }
        };
        let t_embedded = Instant::now();
        if let Step::Started(_) = tracker.step(face.as_ref().map(|f| &f.detection.bbox)) {
            policy.new_subject();
        }
        let decision = face.map(|f| gallery.identify(&f.embedding));
        let verdict = policy.observe(decision.as_ref(), now);
        let sticky = sticky_until.is_some_and(|t| now < t);
        let event = match verdict {
            Verdict::Nobody => {
                if !sticky {
                    screens.show(Screen::Idle);
                }
                continue;
            }
            Verdict::Known {
                person,
                score,
                unlock,
            } => {
                let name = gallery
                    .people
                    .get(person)
                    .map(|p| p.name.clone())
                    .unwrap_or_default();
                if unlock {
                    relay.pulse(now, config.unlock_for);
                    summary.unlocks += 1;
                    screens.show(Screen::Welcome {
                        name: name.clone(),
                        score,
                        threshold: gallery.threshold,
                    });
                    sticky_until = Some(now + config.hold.max(config.unlock_for));
                } else if !sticky {
                    screens.show(Screen::Looking);
                }
                Event::Known {
                    person: name,
                    score,
                    unlocked: unlock,
                }
            }
            Verdict::Stranger {
                best_score,
                attempt,
            } => {
                summary.strangers += 1;
                // One odd frame of an enrolled person is not news: say "not recognised" only
                // after as many stranger frames as it takes to let someone in.
                if attempt as usize >= config.policy.agree {
                    screens.show(Screen::NotRecognised);
                    sticky_until = Some(now + config.hold);
                } else if !sticky {
                    screens.show(Screen::Looking);
                }
                Event::Stranger {
                    best_score,
                    attempt,
                }
            }
        };
        summary.decisions += 1;
        write(LogRecord::now(frame.id, version, event), &mut summary);
        let t_done = Instant::now();
        summary.first_decision.get_or_insert(t_done - started);
        Stages::push(&mut summary.stages.detect, t_detected - t_frame);
        Stages::push(&mut summary.stages.embed, t_embedded - t_detected);
        Stages::push(&mut summary.stages.decide, t_done - t_embedded);
        Stages::push(&mut summary.stages.frame, t_done - t_frame);
    }
    relay.release();
    summary
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
