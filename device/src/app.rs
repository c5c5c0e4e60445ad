//! The door loop: frame -> subject's face -> identity -> policy -> relay and log.
//!
//! Generic over the hardware traits, so the same code drives the Pi and the simulation. The
//! relay is held by a guard that releases it when the loop ends for any reason (including a
//! panic unwinding through it), and pulses are timed by deadlines checked every frame, never by
//! sleeping in the loop.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use embedded_hal::digital::OutputPin;
use facegate_models::logrecord::{Event, LogRecord};

use crate::hw::{CameraError, FrameSource};
use crate::live::Shared;
use crate::policy::{Policy, PolicyConfig, Verdict};

/// Door settings.
#[derive(Clone, Copy, Debug)]
pub struct DoorConfig {
    /// When to unlock.
    pub policy: PolicyConfig,
    /// How long the relay stays energised per unlock.
    pub unlock_for: Duration,
    /// Relay energised by a high level (else low).
    pub active_high: bool,
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
    /// Log records that could not be written.
    pub log_errors: u64,
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

    /// Opens until `now + duration` (extends a pulse already running).
    pub fn pulse(&mut self, now: Instant, duration: Duration) {
        if self.release_at.is_none() {
            self.set(true);
        }
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
pub fn run<S: FrameSource, P: OutputPin, W: Write>(
    shared: &Shared,
    camera: &mut S,
    relay: P,
    log: &mut W,
    config: &DoorConfig,
    stop: &AtomicBool,
) -> Summary {
    let mut relay = Relay::new(relay, config.active_high);
    let mut policy = Policy::new(config.policy);
    let mut summary = Summary::default();
    let mut seen_version: Option<u32> = None;
    let mut write = |record: LogRecord, summary: &mut Summary| {
        if log
            .write_all(&record.encode())
            .and_then(|_| log.flush())
            .is_err()
        {
            summary.log_errors += 1;
        }
        shared.remember(&record);
    };
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        relay.tick(now);
        let posted = std::mem::take(&mut *shared.outbox.lock().unwrap_or_else(|p| p.into_inner()));
        for record in posted {
            write(record, &mut summary);
        }
        let live = shared.current();
        let (pipeline, gallery, version) = (&live.pipeline, &live.gallery, live.version);
        if seen_version.replace(version).is_some_and(|v| v != version) {
            policy.forget_identities();
        }
        let frame = match camera.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                summary.faults += 1;
                let (lost, id) = match &e {
                    CameraError::Lost(_) => (true, 0),
                    CameraError::BadFrame { id, .. } => (false, *id),
                };
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
                if lost {
                    break;
                }
                continue;
            }
        };
        summary.frames += 1;
        let decision = match pipeline.main_face(&frame.image) {
            Ok(face) => face.map(|f| gallery.identify(&f.embedding)),
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
        let event = match policy.observe(decision.as_ref(), now) {
            Verdict::Nobody => continue,
            Verdict::Known {
                person,
                score,
                unlock,
            } => {
                if unlock {
                    relay.pulse(now, config.unlock_for);
                    summary.unlocks += 1;
                }
                let name = gallery
                    .people
                    .get(person)
                    .map(|p| p.name.clone())
                    .unwrap_or_default();
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
                Event::Stranger {
                    best_score,
                    attempt,
                }
            }
        };
        summary.decisions += 1;
        write(LogRecord::now(frame.id, version, event), &mut summary);
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
