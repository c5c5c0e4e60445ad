//! The door's decision policy: when does a stream of per-frame identifications open the door?
//!
//! * Unlock only when at least `agree` of the last `window` frames with a face named the same
//!   enrolled person, the current frame included: one lucky frame (motion blur, a lookalike at a
//!   bad angle) must not open a door.
//! * After an unlock, a `cooldown` during which the same person is logged but not re-unlocked,
//!   and the window starts afresh.
//! * Strangers never unlock. Consecutive stranger frames are counted, so the log shows someone
//!   trying repeatedly; the count resets when nobody is in view for `window` frames.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use facegate_models::gallery::Decision;

/// Policy settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PolicyConfig {
    /// Frames considered (N).
    pub window: usize,
    /// Frames that must agree (K <= N).
    pub agree: usize,
    /// No second unlock within this time.
    pub cooldown: Duration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            window: 5,
            agree: 3,
            cooldown: Duration::from_secs(5),
        }
    }
}

/// What the policy concludes for one frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Nobody in view.
    Nobody,
    /// An enrolled person, and whether to open now.
    Known {
        /// Gallery index.
        person: usize,
        /// Score on this frame.
        score: f32,
        /// Open the door now.
        unlock: bool,
        /// Why not, when `unlock` is false: the log says it, so a household reading "locked"
        /// next to their own name knows the door was not wrong.
        held: Option<Hold>,
    },
    /// A face that matched nobody.
    Stranger {
        /// Best score against anyone.
        best_score: f32,
        /// Consecutive stranger frames so far, this one included.
        attempt: u32,
    },
}

/// Why a recognised person did not open the door on this frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Hold {
    /// Not yet enough agreeing frames.
    Confirming {
        /// Frames of the window that named this person.
        agreeing: usize,
        /// Frames needed.
        needed: usize,
    },
    /// The door opened for someone moments ago.
    Cooldown {
        /// Time until another unlock is allowed.
        left: Duration,
    },
    /// The face does not look live (a photo, a screen): presentation-attack check.
    NotLive {
        /// The attempt's liveness score (mean frame logit).
        score: f32,
        /// The score it had to reach.
        threshold: f32,
        /// Consecutive refused attempts (set by the policy, as for strangers).
        attempt: u32,
    },
    /// The face's surroundings move with it (a photo or a phone held up by hand): the motion
    /// cue of `[liveness] mode = "strict"`.
    MovesWithSurroundings {
        /// The attempt's motion score.
        motion: f32,
        /// The score it must not exceed.
        threshold: f32,
        /// Consecutive refused attempts (set by the policy, as for strangers).
        attempt: u32,
    },
    /// The motion cue has not seen enough of the face yet (strict mode): a live person is
    /// held a moment, not refused.
    Watching {
        /// Frame pairs so far.
        pairs: usize,
        /// Pairs needed.
        needed: usize,
    },
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hold::Confirming { agreeing, needed } => {
                write!(f, "confirming: {agreeing} of {needed} frames agree")
            }
            Hold::Cooldown { left } => write!(
                f,
                "cooldown: opened moments ago, next unlock in {:.1} s",
                left.as_secs_f32()
            ),
            Hold::NotLive {
                score, threshold, ..
            } => write!(
                f,
                "not live: liveness {score:.2} below {threshold:.2} (a photo or a screen?)"
            ),
            Hold::MovesWithSurroundings {
                motion, threshold, ..
            } => write!(
                f,
                "not live: the surroundings move with the face (motion {motion:.3} above \
                 {threshold:.3}: a photo or a phone held up?)"
            ),
            Hold::Watching { pairs, needed } => {
                write!(f, "watching: {pairs} of {needed} motion pairs")
            }
        }
    }
}

/// The policy's memory.
#[derive(Debug)]
pub struct Policy {
    config: PolicyConfig,
    recent: VecDeque<Option<usize>>,
    last_unlock: Option<Instant>,
    stranger_streak: u32,
    empty_frames: usize,
}

impl Policy {
    /// A policy with no history. `agree` is clamped to 1..=`window`.
    pub fn new(mut config: PolicyConfig) -> Self {
        config.window = config.window.max(1);
        config.agree = config.agree.clamp(1, config.window);
        Self {
            config,
            recent: VecDeque::new(),
            last_unlock: None,
            stranger_streak: 0,
            empty_frames: 0,
        }
    }

    /// Forgets which people recent frames showed, keeping the cooldown. Called when the model
    /// changes: a new gallery may order its people differently, and an index from the old one
    /// must never count as an agreeing frame for someone else.
    pub fn forget_identities(&mut self) {
        self.recent.clear();
        self.stranger_streak = 0;
    }

    /// A different face is in front of the camera: its frames must not vote together with the
    /// previous face's. Stranger attempts keep counting (someone stepping out and back in is
    /// still trying).
    pub fn new_subject(&mut self) {
        self.recent.clear();
    }

    /// Takes the decision for the frame's subject (`None`: no face) at time `now`.
    pub fn observe(&mut self, decision: Option<&Decision>, now: Instant) -> Verdict {
        self.observe_with(decision, now, None)
    }

    /// [`Policy::observe`] with a `veto` from another check (liveness): a recognised person
    /// whose frames agree is still held by it, the cooldown does not start, and the attempt
    /// counts as a stranger's would (someone holding up a photo is trying to get in).
    pub fn observe_with(
        &mut self,
        decision: Option<&Decision>,
        now: Instant,
        veto: Option<Hold>,
    ) -> Verdict {
        let Some(decision) = decision else {
            self.empty_frames += 1;
            if self.empty_frames >= self.config.window {
                self.stranger_streak = 0;
                self.recent.clear();
            }
            return Verdict::Nobody;
        };
        self.empty_frames = 0;
        let who = decision.person();
        self.recent.push_back(who);
        while self.recent.len() > self.config.window {
            self.recent.pop_front();
        }
        match decision {
            Decision::Stranger { best } => {
                self.stranger_streak += 1;
                Verdict::Stranger {
                    best_score: best.map(|b| b.1).unwrap_or(-1.0),
                    attempt: self.stranger_streak,
                }
            }
            Decision::Known { person, score } => {
                let agreeing = self.recent.iter().filter(|p| **p == Some(*person)).count();
                let cooling = self
                    .last_unlock
                    .map(|t| now.saturating_duration_since(t))
                    .filter(|since| *since < self.config.cooldown)
                    .map(|since| self.config.cooldown - since);
                let mut held = if agreeing < self.config.agree {
                    Some(Hold::Confirming {
                        agreeing,
                        needed: self.config.agree,
                    })
                } else {
                    cooling.map(|left| Hold::Cooldown { left }).or(veto)
                };
                if let Some(
                    Hold::NotLive { attempt, .. } | Hold::MovesWithSurroundings { attempt, .. },
                ) = &mut held
                {
                    self.stranger_streak += 1;
                    *attempt = self.stranger_streak;
                } else {
                    self.stranger_streak = 0;
                }
                let unlock = held.is_none();
                if unlock {
                    self.last_unlock = Some(now);
                    self.recent.clear();
                }
                Verdict::Known {
                    person: *person,
                    score: *score,
                    unlock,
                    held,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn known(p: usize) -> Decision {
        Decision::Known {
            person: p,
            score: 0.7,
        }
    }
    fn stranger() -> Decision {
        Decision::Stranger {
            best: Some((0, 0.2)),
        }
    }

    #[test]
    fn needs_k_of_n_agreeing_frames() {
        let mut p = Policy::new(PolicyConfig {
            window: 3,
            agree: 2,
            cooldown: Duration::ZERO,
        });
        let t = Instant::now();
        assert_eq!(
            p.observe(Some(&known(0)), t),
            Verdict::Known {
                person: 0,
                score: 0.7,
                unlock: false,
                held: Some(Hold::Confirming {
                    agreeing: 1,
                    needed: 2
                })
            }
        );
        assert_eq!(
            p.observe(Some(&known(1)), t),
            Verdict::Known {
                person: 1,
                score: 0.7,
                unlock: false,
                held: Some(Hold::Confirming {
                    agreeing: 1,
                    needed: 2
                })
            }
        );
        assert_eq!(
            p.observe(Some(&known(0)), t),
            Verdict::Known {
                person: 0,
                score: 0.7,
                unlock: true,
                held: None
            }
        );
    }

    #[test]
    fn cooldown_blocks_a_second_unlock() {
        let mut p = Policy::new(PolicyConfig {
            window: 2,
            agree: 2,
            cooldown: Duration::from_secs(5),
        });
        let t = Instant::now();
        p.observe(Some(&known(0)), t);
        assert!(matches!(
            p.observe(Some(&known(0)), t),
            Verdict::Known { unlock: true, .. }
        ));
        p.observe(Some(&known(0)), t + Duration::from_secs(1));
        assert_eq!(
            p.observe(Some(&known(0)), t + Duration::from_secs(2)),
            Verdict::Known {
                person: 0,
                score: 0.7,
                unlock: false,
                held: Some(Hold::Cooldown {
                    left: Duration::from_secs(3)
                })
            }
        );
        // The window still holds two agreeing frames: the first frame after the cooldown opens.
        assert!(matches!(
            p.observe(Some(&known(0)), t + Duration::from_secs(6)),
            Verdict::Known { unlock: true, .. }
        ));
        assert!(matches!(
            p.observe(Some(&known(0)), t + Duration::from_secs(7)),
            Verdict::Known { unlock: false, .. }
        ));
    }

    #[test]
    fn stranger_attempts_are_counted_and_reset_when_nobody_is_there() {
        let mut p = Policy::new(PolicyConfig {
            window: 2,
            agree: 1,
            cooldown: Duration::ZERO,
        });
        let t = Instant::now();
        for n in 1..=3 {
            assert_eq!(
                p.observe(Some(&stranger()), t),
                Verdict::Stranger {
                    best_score: 0.2,
                    attempt: n
                }
            );
        }
        p.observe(None, t);
        p.observe(None, t);
        assert_eq!(
            p.observe(Some(&stranger()), t),
            Verdict::Stranger {
                best_score: 0.2,
                attempt: 1
            }
        );
    }

    #[test]
    fn frames_seen_under_an_old_model_do_not_count_after_a_swap() {
        let mut p = Policy::new(PolicyConfig {
            window: 3,
            agree: 2,
            cooldown: Duration::ZERO,
        });
        let t = Instant::now();
        assert!(matches!(
            p.observe(Some(&known(0)), t),
            Verdict::Known { unlock: false, .. }
        ));
        p.forget_identities();
        // Index 0 now means someone else: one frame of them must not unlock.
        assert!(matches!(
            p.observe(Some(&known(0)), t),
            Verdict::Known { unlock: false, .. }
        ));
        assert!(matches!(
            p.observe(Some(&known(0)), t),
            Verdict::Known { unlock: true, .. }
        ));
    }

    proptest! {
        /// Whatever the sequence, strangers never unlock and an unlock always has K agreeing
        /// frames among the last N behind it.
        #[test]
        fn unlocks_are_always_backed_by_k_of_n(seq in prop::collection::vec(prop::option::of(0usize..4), 0..200),
                                                 window in 1usize..8, agree in 1usize..8) {
            let cfg = PolicyConfig { window, agree, cooldown: Duration::ZERO };
            let mut p = Policy::new(cfg);
            let k = agree.clamp(1, window);
            let t = Instant::now();
            let mut since_unlock: Vec<Option<usize>> = Vec::new();
            for who in seq {
                // 3 is "stranger", None is "no face".
                let d = who.map(|w| if w == 3 { stranger() } else { known(w) });
                let v = p.observe(d.as_ref(), t);
                if let Some(d) = &d { since_unlock.push(d.person()); }
                match v {
                    Verdict::Known { person, unlock: true, .. } => {
                        let tail = &since_unlock[since_unlock.len().saturating_sub(window)..];
                        prop_assert!(tail.iter().filter(|x| **x == Some(person)).count() >= k);
                        since_unlock.clear();
                    }
                    Verdict::Stranger { .. } => prop_assert_eq!(d.as_ref().and_then(|d| d.person()), None),
                    _ => {}
                }
            }
        }
    }
}
