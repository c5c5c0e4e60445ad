//! The door's decisions as a pure state machine: [`Door::step`] takes what happened (a frame's
//! subject and identity, a camera fault, an update being installed) at a time and returns what
//! to do (pulse the relay, show a screen, log an event). It owns the tracker, the unlock policy
//! and how long a screen stays up; it touches no hardware, thread or clock of its own, so every
//! rule of the door is unit-tested here with made-up times. The loop ([`crate::app::run`])
//! only reads frames, recognises them, calls `step` and hands the actions to the workers.

use std::time::{Duration, Instant};

use facegate_models::gallery::Decision;
use facegate_models::geometry::BBox;
use facegate_models::logrecord::Event;

use crate::policy::{Hold, Policy, PolicyConfig, Verdict};
use crate::track::{Step, Tracker};
use crate::ui::Screen;

/// The door's rules.
#[derive(Clone, Copy, Debug)]
pub struct DoorRules {
    /// When to unlock.
    pub policy: PolicyConfig,
    /// How long the relay stays energised per unlock.
    pub unlock_for: Duration,
    /// How long "Welcome" and "Not recognised" stay on screen.
    pub hold: Duration,
    /// The liveness threshold (mean frame logit of an attempt), `None` when the check is off.
    pub liveness: Option<f32>,
    /// The motion cue's threshold (mean pair score of an attempt, `[liveness] mode =
    /// "strict"`), `None` when it is off.
    pub motion: Option<f32>,
}

/// The subject of a frame, recognised.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    /// Where the face is (for tracking).
    pub bbox: BBox,
    /// What the gallery said.
    pub decision: Decision,
    /// The name of the person `decision` names (empty for a stranger).
    pub name: String,
    /// The gallery's threshold (shown beside the score on the welcome screen).
    pub threshold: f32,
    /// The liveness network's logit for this frame (`None` when the check is off).
    pub liveness: Option<f32>,
    /// The motion cue's score of the frame pair this frame closes (`None` when it closes none
    /// or the cue is off).
    pub motion: Option<f32>,
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// No model runs yet: nothing can be recognised, so the door stays shut and says why.
    NoModel,
    /// A signed update is being installed.
    Installing {
        /// Its version.
        version: u32,
    },
    /// The camera gave no frame: a bad frame, or the camera is gone.
    CameraFault {
        /// The bad frame's number (0 when unknown).
        frame: u64,
        /// Why the camera is gone, when it is (not one bad frame): an error screen until
        /// frames come again.
        lost: Option<String>,
        /// What the camera said, for the log.
        message: String,
    },
    /// A remote unlock command, allowed by the config (`[mqtt] remote_unlock`).
    RemoteUnlock {
        /// The broker user who sent it.
        by: String,
    },
    /// A frame was read and analysed with the model of `version`.
    Frame {
        /// Frame number.
        frame: u64,
        /// Model version that analysed it.
        version: u32,
        /// The subject, `None` when nobody is in view, `Err` when analysis failed.
        subject: Result<Option<Seen>, String>,
    },
}

/// What to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Energise the relay for this long (from now).
    Unlock(Duration),
    /// Show this screen.
    Show(Screen),
    /// Log this event for frame `frame`.
    Log {
        /// Frame number (0 when not about a frame).
        frame: u64,
        /// The event.
        event: Event,
    },
}

/// The screen of a door waiting for its first usable model.
pub const NO_MODEL: &str = "no model: push a signed bundle";

/// A screen kept up after a camera loss until frames arrive again.
const UNTIL_FRAMES: Duration = Duration::from_secs(3600);

/// The door's memory between frames.
#[derive(Debug)]
pub struct Door {
    rules: DoorRules,
    policy: Policy,
    tracker: Tracker,
    seen_version: Option<u32>,
    /// A screen that stays up until this time whatever the next frames show.
    sticky_until: Option<Instant>,
    /// Liveness logits of the current subject's frames (the last [`LIVENESS_FRAMES`]).
    liveness: Vec<f32>,
    /// Motion pair scores of the current subject (the last [`MOTION_PAIRS`]).
    motion: Vec<f32>,
}

/// Frames of one attempt whose liveness is averaged (about 3 s at 10 frames a second).
pub const LIVENESS_FRAMES: usize = 32;

/// Motion pairs of one attempt that are averaged (about 3 s at a pair each 0.4 s).
pub const MOTION_PAIRS: usize = 8;

/// When a decision is made: the time, the frame's number, and whether a screen shown earlier
/// (welcome, refused) is still being held and must not be replaced by "looking".
#[derive(Clone, Copy)]
struct Moment {
    now: Instant,
    frame: u64,
    sticky: bool,
}

impl Moment {
    /// `event` as a log record of this frame.
    fn log(self, event: Event) -> Action {
        Action::Log {
            frame: self.frame,
            event,
        }
    }
}

impl Door {
    /// A door that has seen nothing yet.
    pub fn new(rules: DoorRules) -> Self {
        Self {
            rules,
            policy: Policy::new(rules.policy),
            tracker: Tracker::default(),
            seen_version: None,
            sticky_until: None,
            liveness: Vec::new(),
            motion: Vec::new(),
        }
    }

    /// The first screen.
    pub fn start(&self) -> Vec<Action> {
        vec![Action::Show(Screen::Idle)]
    }

    /// Takes one observation at `now`; returns what to do, in order.
    pub fn step(&mut self, now: Instant, observation: Observation) -> Vec<Action> {
        match observation {
            Observation::NoModel => vec![Action::Show(Screen::Error {
                message: NO_MODEL.into(),
            })],
            Observation::Installing { version } => {
                self.sticky_until = Some(now);
                vec![Action::Show(Screen::Updating { version })]
            }
            Observation::RemoteUnlock { by } => vec![
                Action::Unlock(self.rules.unlock_for),
                Action::Log {
                    frame: 0,
                    event: Event::RemoteUnlock { by },
                },
            ],
            Observation::CameraFault {
                frame,
                lost,
                message,
            } => {
                let mut out = Vec::new();
                if let Some(why) = lost {
                    out.push(Action::Show(Screen::Error {
                        message: format!("camera lost: {why}"),
                    }));
                    self.sticky_until = Some(now + UNTIL_FRAMES);
                }
                out.push(Action::Log {
                    frame,
                    event: Event::Fault { message },
                });
                out
            }
            Observation::Frame {
                frame,
                version,
                subject,
            } => {
                if self
                    .seen_version
                    .replace(version)
                    .is_some_and(|v| v != version)
                {
                    // A new gallery may order its people differently.
                    self.policy.forget_identities();
                }
                // Frames again: a camera-lost screen goes.
                if self
                    .sticky_until
                    .is_some_and(|t| t > now + Duration::from_secs(60))
                {
                    self.sticky_until = None;
                }
                match subject {
                    Err(message) => vec![Action::Log {
                        frame,
                        event: Event::Fault { message },
                    }],
                    Ok(seen) => self.decide(now, frame, seen),
                }
            }
        }
    }

    fn decide(&mut self, now: Instant, frame: u64, seen: Option<Seen>) -> Vec<Action> {
        if let Step::Started(_) = self.tracker.step(seen.as_ref().map(|s| &s.bbox)) {
            self.policy.new_subject();
            self.liveness.clear();
            self.motion.clear();
        }
        let veto = self.liveness_veto(seen.as_ref());
        let verdict = self
            .policy
            .observe_with(seen.as_ref().map(|s| &s.decision), now, veto);
        let at = Moment {
            now,
            frame,
            sticky: self.sticky_until.is_some_and(|t| now < t),
        };
        match verdict {
            Verdict::Nobody if at.sticky => Vec::new(),
            Verdict::Nobody => vec![Action::Show(Screen::Idle)],
            Verdict::Known {
                score,
                unlock,
                held,
                ..
            } => {
                let (name, threshold) = seen.map(|s| (s.name, s.threshold)).unwrap_or_default();
                self.known(at, name, threshold, score, unlock, held)
            }
            Verdict::Stranger {
                best_score,
                attempt,
            } => self.stranger(at, best_score, attempt),
        }
    }

    /// The actions for a recognised face: a liveness refusal on its own screen, an unlock, or
    /// "looking" while the policy holds, each logged.
    fn known(
        &mut self,
        at: Moment,
        person: String,
        threshold: f32,
        score: f32,
        unlock: bool,
        held: Option<Hold>,
    ) -> Vec<Action> {
        // A photo or a screen of someone enrolled (the network), or one held up by hand (the
        // motion cue): refused, on its own screen.
        match held {
            Some(Hold::NotLive {
                score: liveness,
                attempt,
                ..
            }) => {
                let event = Event::NotLive {
                    person,
                    score,
                    liveness,
                    attempt,
                };
                return self.refused(at, event);
            }
            Some(Hold::MovesWithSurroundings {
                motion, attempt, ..
            }) => {
                let event = Event::MovedAsOne {
                    person,
                    score,
                    motion,
                    attempt,
                };
                return self.refused(at, event);
            }
            _ => {}
        }
        let mut out = Vec::new();
        if unlock {
            out.push(Action::Unlock(self.rules.unlock_for));
            out.push(Action::Show(Screen::Welcome {
                name: person.clone(),
                score,
                threshold,
            }));
            self.sticky_until = Some(at.now + self.rules.hold.max(self.rules.unlock_for));
        } else if !at.sticky {
            out.push(Action::Show(Screen::Looking));
        }
        out.push(at.log(match held {
            Some(hold) => Event::Held {
                person,
                score,
                reason: hold.to_string(),
            },
            None => Event::Known {
                person,
                score,
                unlocked: unlock,
            },
        }));
        out
    }

    /// The actions for a face refused as not live: its own screen, held, and the record.
    fn refused(&mut self, at: Moment, event: Event) -> Vec<Action> {
        self.sticky_until = Some(at.now + self.rules.hold);
        vec![Action::Show(Screen::NotLive), at.log(event)]
    }

    /// The actions for a face that matched nobody. One odd frame of an enrolled person is not
    /// news: "not recognised" shows only after as many stranger frames as it takes to let
    /// someone in.
    fn stranger(&mut self, at: Moment, best_score: f32, attempt: u32) -> Vec<Action> {
        let mut out = Vec::new();
        if attempt as usize >= self.rules.policy.agree {
            out.push(Action::Show(Screen::NotRecognised));
            self.sticky_until = Some(at.now + self.rules.hold);
        } else if !at.sticky {
            out.push(Action::Show(Screen::Looking));
        }
        out.push(at.log(Event::Stranger {
            best_score,
            attempt,
        }));
        out
    }

    /// With the check on: the subject's frames so far (this one included) averaged, and a veto
    /// when the mean is below the threshold. A frame without a liveness score counts as not
    /// live: the check never passes by default.
    ///
    /// With the motion cue too (strict): the subject's frame pairs averaged, a veto when the
    /// mean is above its threshold, and a hold (not a refusal) until
    /// [`facegate_models::motion::MIN_PAIRS`] pairs are in.
    fn liveness_veto(&mut self, seen: Option<&Seen>) -> Option<Hold> {
        let threshold = self.rules.liveness?;
        let seen = seen?;
        if self.liveness.len() == LIVENESS_FRAMES {
            self.liveness.remove(0);
        }
        self.liveness
            .push(seen.liveness.filter(|l| l.is_finite()).unwrap_or(-1e6));
        if let (Some(_), Some(pair)) = (self.rules.motion, seen.motion) {
            if self.motion.len() == MOTION_PAIRS {
                self.motion.remove(0);
            }
            // A pair that could not be scored counts as moving with its surroundings.
            self.motion
                .push(if pair.is_finite() { pair } else { f32::MAX });
        }
        let score = facegate_models::liveness::attempt_score(&self.liveness)?;
        if score < threshold {
            return Some(Hold::NotLive {
                score,
                threshold,
                attempt: 0,
            });
        }
        let motion_threshold = self.rules.motion?;
        if self.motion.len() < facegate_models::motion::MIN_PAIRS {
            return Some(Hold::Watching {
                pairs: self.motion.len(),
                needed: facegate_models::motion::MIN_PAIRS,
            });
        }
        let motion = facegate_models::motion::attempt_motion(&self.motion)?;
        (motion > motion_threshold).then_some(Hold::MovesWithSurroundings {
            motion,
            threshold: motion_threshold,
            attempt: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn rules() -> DoorRules {
        DoorRules {
            policy: PolicyConfig {
                window: 3,
                agree: 2,
                cooldown: Duration::from_secs(5),
            },
            unlock_for: Duration::from_secs(3),
            hold: Duration::from_secs(2),
            liveness: None,
            motion: None,
        }
    }

    fn face(x: f32, decision: Decision, name: &str) -> Option<Seen> {
        Some(Seen {
            bbox: BBox {
                x,
                y: 100.0,
                w: 120.0,
                h: 150.0,
            },
            decision,
            name: name.into(),
            threshold: 0.5,
            liveness: None,
            motion: None,
        })
    }

    fn ann(x: f32) -> Option<Seen> {
        face(
            x,
            Decision::Known {
                person: 0,
                score: 0.7,
            },
            "ann",
        )
    }

    fn stranger(x: f32) -> Option<Seen> {
        face(
            x,
            Decision::Stranger {
                best: Some((0, 0.2)),
            },
            "",
        )
    }

    fn frame(n: u64, subject: Option<Seen>) -> Observation {
        Observation::Frame {
            frame: n,
            version: 1,
            subject: Ok(subject),
        }
    }

    fn events(actions: &[Action]) -> Vec<&Event> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Log { event, .. } => Some(event),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_remote_unlock_opens_for_the_pulse_and_is_logged_with_its_sender() {
        let mut door = Door::new(rules());
        let actions = door.step(
            Instant::now(),
            Observation::RemoteUnlock {
                by: "homeassistant".into(),
            },
        );
        assert_eq!(
            actions,
            vec![
                Action::Unlock(Duration::from_secs(3)),
                Action::Log {
                    frame: 0,
                    event: Event::RemoteUnlock {
                        by: "homeassistant".into()
                    }
                }
            ]
        );
    }

    #[test]
    fn agreeing_frames_unlock_once_then_the_cooldown_holds_with_its_reason() {
        let mut door = Door::new(rules());
        let t = Instant::now();
        let first = door.step(t, frame(1, ann(100.0)));
        assert_eq!(first[0], Action::Show(Screen::Looking));
        assert!(
            matches!(events(&first)[0], Event::Held { reason, .. } if reason.contains("1 of 2"))
        );
        let second = door.step(t + SEC / 5, frame(2, ann(102.0)));
        assert_eq!(second[0], Action::Unlock(Duration::from_secs(3)));
        assert!(matches!(&second[1], Action::Show(Screen::Welcome { name, .. }) if name == "ann"));
        assert!(matches!(
            events(&second)[0],
            Event::Known { unlocked: true, .. }
        ));
        // Welcome stays up (no "looking" over it); the vote starts afresh, then the cooldown
        // holds the door, each time with its reason.
        let mut reasons = Vec::new();
        for k in 3..6 {
            let later = door.step(t + SEC * (k as u32) / 2, frame(k, ann(104.0)));
            assert!(
                !later
                    .iter()
                    .any(|a| matches!(a, Action::Unlock(_) | Action::Show(_)))
            );
            match events(&later)[0] {
                Event::Held { reason, .. } => reasons.push(reason.clone()),
                other => panic!("{other:?}"),
            }
        }
        assert!(reasons[0].contains("confirming: 1 of 2"), "{reasons:?}");
        assert!(
            reasons[1..].iter().all(|r| r.contains("cooldown")),
            "{reasons:?}"
        );
    }

    #[test]
    fn strangers_never_unlock_and_are_told_after_agree_frames() {
        let mut door = Door::new(rules());
        let t = Instant::now();
        let one = door.step(t, frame(1, stranger(100.0)));
        assert_eq!(one[0], Action::Show(Screen::Looking));
        let two = door.step(t + SEC, frame(2, stranger(100.0)));
        assert_eq!(two[0], Action::Show(Screen::NotRecognised));
        assert!(matches!(
            events(&two)[0],
            Event::Stranger { attempt: 2, .. }
        ));
        // The screen holds for `hold`, then nobody in view goes back to idle.
        assert!(door.step(t + SEC * 2, frame(3, None)).is_empty());
        assert_eq!(
            door.step(t + SEC * 4, frame(4, None)),
            vec![Action::Show(Screen::Idle)]
        );
        for k in 5..20 {
            let a = door.step(t + SEC * 5, frame(k, stranger(100.0)));
            assert!(!a.iter().any(|a| matches!(a, Action::Unlock(_))));
        }
    }

    fn with_liveness(seen: Option<Seen>, logit: f32) -> Option<Seen> {
        seen.map(|s| Seen {
            liveness: Some(logit),
            ..s
        })
    }

    #[test]
    fn a_face_that_is_not_live_never_opens_and_is_logged_as_such() {
        let mut door = Door::new(DoorRules {
            liveness: Some(0.5),
            ..rules()
        });
        let t = Instant::now();
        door.step(t, frame(1, with_liveness(ann(100.0), -6.0)));
        let refused = door.step(t + SEC / 5, frame(2, with_liveness(ann(101.0), -5.0)));
        assert!(!refused.iter().any(|a| matches!(a, Action::Unlock(_))));
        assert_eq!(refused[0], Action::Show(Screen::NotLive));
        assert!(matches!(
            events(&refused)[0],
            Event::NotLive { person, liveness, attempt: 1, .. } if person == "ann" && *liveness == -5.5
        ));
        // Still a photo: refused again, the attempts counted; no cooldown was started.
        let again = door.step(t + SEC, frame(3, with_liveness(ann(102.0), -4.0)));
        assert!(matches!(
            events(&again)[0],
            Event::NotLive { attempt: 2, .. }
        ));
        // A frame without a score never counts as live.
        let mut strict = Door::new(DoorRules {
            liveness: Some(-100.0),
            ..rules()
        });
        strict.step(t, frame(1, ann(100.0)));
        let none = strict.step(t + SEC / 5, frame(2, ann(100.0)));
        assert!(!none.iter().any(|a| matches!(a, Action::Unlock(_))));
    }

    #[test]
    fn a_live_face_opens_with_the_check_on() {
        let mut door = Door::new(DoorRules {
            liveness: Some(0.5),
            ..rules()
        });
        let t = Instant::now();
        door.step(t, frame(1, with_liveness(ann(100.0), 6.0)));
        let open = door.step(t + SEC / 5, frame(2, with_liveness(ann(101.0), 4.0)));
        assert_eq!(open[0], Action::Unlock(Duration::from_secs(3)));
        // A new face starts its own liveness: a photo after a live person is judged alone.
        let photo = door.step(t + SEC * 10, frame(3, with_liveness(ann(600.0), -9.0)));
        let photo2 = door.step(t + SEC * 11, frame(4, with_liveness(ann(601.0), -9.0)));
        assert!(
            ![photo, photo2]
                .concat()
                .iter()
                .any(|a| matches!(a, Action::Unlock(_)))
        );
    }

    fn live_moving(seen: Option<Seen>, pair: Option<f32>) -> Option<Seen> {
        seen.map(|s| Seen {
            liveness: Some(3.0),
            motion: pair,
            ..s
        })
    }

    fn strict() -> Door {
        Door::new(DoorRules {
            liveness: Some(0.5),
            motion: Some(0.0),
            ..rules()
        })
    }

    fn unlocks(actions: &[Action]) -> bool {
        actions.iter().any(|a| matches!(a, Action::Unlock(_)))
    }

    #[test]
    fn a_strict_door_waits_for_two_motion_pairs_then_opens_for_a_live_face() {
        let mut door = strict();
        let t = Instant::now();
        // The network says live and the frames agree, but no pair yet: held, not refused.
        door.step(t, frame(1, live_moving(ann(100.0), None)));
        let held = door.step(t + SEC / 5, frame(2, live_moving(ann(101.0), None)));
        assert!(!unlocks(&held));
        assert_eq!(held[0], Action::Show(Screen::Looking));
        assert!(matches!(
            events(&held)[0],
            Event::Held { reason, .. } if reason.contains("watching: 0 of 2")
        ));
        let one = door.step(t + SEC / 2, frame(3, live_moving(ann(102.0), Some(-0.4))));
        assert!(!unlocks(&one));
        let open = door.step(t + SEC, frame(4, live_moving(ann(103.0), Some(-0.2))));
        assert_eq!(open[0], Action::Unlock(Duration::from_secs(3)));
    }

    #[test]
    fn a_strict_door_refuses_a_face_whose_surroundings_follow_it() {
        let mut door = strict();
        let t = Instant::now();
        door.step(t, frame(1, live_moving(ann(100.0), None)));
        door.step(t + SEC / 2, frame(2, live_moving(ann(104.0), Some(0.3))));
        let refused = door.step(t + SEC, frame(3, live_moving(ann(108.0), Some(0.1))));
        assert!(!unlocks(&refused));
        assert_eq!(refused[0], Action::Show(Screen::NotLive));
        assert!(matches!(
            events(&refused)[0],
            Event::MovedAsOne { person, motion, attempt: 1, .. }
                if person == "ann" && (*motion - 0.2).abs() < 1e-6
        ));
        // A pair that could not be scored never lets it in.
        let mut door = strict();
        door.step(t, frame(1, live_moving(ann(100.0), Some(-0.5))));
        let nan = door.step(t + SEC, frame(2, live_moving(ann(101.0), Some(f32::NAN))));
        assert!(!unlocks(&nan));
        // The network's own refusal comes first.
        let mut door = strict();
        door.step(t, frame(1, with_liveness(ann(100.0), -6.0)));
        let photo = door.step(t + SEC, frame(2, with_liveness(ann(101.0), -6.0)));
        assert!(matches!(events(&photo)[0], Event::NotLive { .. }));
    }

    #[test]
    fn a_new_face_restarts_the_vote() {
        let mut door = Door::new(rules());
        let t = Instant::now();
        door.step(t, frame(1, ann(100.0)));
        // A face elsewhere in the frame is someone else's turn: no pooling with the first.
        let other = door.step(t + SEC / 5, frame(2, ann(600.0)));
        assert!(!other.iter().any(|a| matches!(a, Action::Unlock(_))));
    }

    #[test]
    fn a_lost_camera_shows_an_error_until_frames_return_and_faults_are_logged() {
        let mut door = Door::new(rules());
        let t = Instant::now();
        let lost = door.step(
            t,
            Observation::CameraFault {
                frame: 0,
                lost: Some("unplugged".into()),
                message: "camera lost: unplugged".into(),
            },
        );
        assert!(
            matches!(&lost[0], Action::Show(Screen::Error { message }) if message.contains("unplugged"))
        );
        assert!(matches!(events(&lost)[0], Event::Fault { .. }));
        // Frames again: the error screen gives way.
        assert_eq!(
            door.step(t + SEC, frame(1, None)),
            vec![Action::Show(Screen::Idle)]
        );
        let bad = door.step(
            t + SEC,
            Observation::Frame {
                frame: 2,
                version: 1,
                subject: Err("unusable frame".into()),
            },
        );
        assert!(matches!(events(&bad)[0], Event::Fault { message } if message == "unusable frame"));
    }

    #[test]
    fn an_update_shows_its_screen_and_a_new_model_forgets_who_was_seen() {
        let mut door = Door::new(rules());
        let t = Instant::now();
        door.step(t, frame(1, ann(100.0)));
        assert_eq!(
            door.step(t, Observation::Installing { version: 2 }),
            vec![Action::Show(Screen::Updating { version: 2 })]
        );
        // Version 2's person 0 may be someone else: the frame seen under version 1 no longer
        // counts, so one more frame does not open.
        let after = door.step(
            t + SEC / 5,
            Observation::Frame {
                frame: 2,
                version: 2,
                subject: Ok(ann(101.0)),
            },
        );
        assert!(!after.iter().any(|a| matches!(a, Action::Unlock(_))));
    }
}
