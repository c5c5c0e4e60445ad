//! Presentation-attack evaluation (ISO/IEC 30107-3), per attempt, as the door decides.
//!
//! A folder holds `<species>/<attempt>/<frames in name order>`: species `real` are live people,
//! any other folder name is an attack species. Each frame's subject (the door's choice of face)
//! is scored by the liveness network; an attempt's score is the mean of its frames' logits, and
//! it is accepted as live at or above the threshold. Reported: BPCER (live attempts refused),
//! APCER per species (attacks accepted) and the worst of them, the attempt counts, attempts in
//! which no face was found (refused, as at the door), and a DET curve.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use facegate_models::detect::Detector;
use facegate_models::image_io;
use facegate_models::liveness::{Liveness, attempt_score, input};
use facegate_models::motion::{self, MotionTrack, attempt_motion};
use facegate_models::pipeline::subject;
use image::RgbImage;
use serde::Serialize;

use crate::faceset::folders::images_in;

/// The species of live people.
pub const REAL: &str = "real";

/// One attempt: a species, a name, its frames in order.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// `real` or an attack species.
    pub species: String,
    /// The attempt's folder name.
    pub name: String,
    /// Its frames, in name order.
    pub frames: Vec<PathBuf>,
}

impl Attempt {
    /// Whether this is a live person.
    pub fn live(&self) -> bool {
        self.species == REAL
    }
}

/// The attempts under `dir` (`<species>/<attempt>/<frames>`), sorted; a clear error for a
/// folder without live people or without attacks.
pub fn attempts(dir: &Path) -> Result<Vec<Attempt>> {
    let mut out = Vec::new();
    let sub = |d: &Path| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .with_context(|| format!("reading {}", d.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        v.sort();
        Ok(v)
    };
    for species in sub(dir)? {
        let name = species
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for attempt in sub(&species)? {
            let frames = images_in(&attempt)?;
            if frames.is_empty() {
                continue;
            }
            out.push(Attempt {
                species: name.clone(),
                name: attempt
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                frames,
            });
        }
    }
    if !out.iter().any(Attempt::live) {
        bail!(
            "{} has no `{REAL}` folder of live attempts: lay it out as \
             <species>/<attempt>/<frames>, with `{REAL}` for live people",
            dir.display()
        );
    }
    if out.iter().all(Attempt::live) {
        bail!(
            "{} has only live attempts: add a folder per attack species (print, mobile_photo, \
             ...)",
            dir.display()
        );
    }
    Ok(out)
}

/// The network inputs (with `views`) of an attempt's frames (one per frame with a face).
pub fn attempt_inputs(detector: &Detector, attempt: &Attempt, views: &[f32]) -> Vec<Vec<f32>> {
    attempt_inputs_as(detector, attempt, views, |img, _| Some(img))
}

/// [`attempt_inputs`] with each frame first changed by `capture` (given the frame and its
/// index), as another camera would have taken it (`examples/liveness_capture.rs`); a frame
/// `capture` cannot change is left out like one that does not open.
pub fn attempt_inputs_as(
    detector: &Detector,
    attempt: &Attempt,
    views: &[f32],
    capture: impl Fn(RgbImage, usize) -> Option<RgbImage>,
) -> Vec<Vec<f32>> {
    // Training and the capture changes need no motion: no patches are taken.
    attempt_frames_as(detector, attempt, views, None, capture)
        .into_iter()
        .map(|(input, _)| input)
        .collect()
}

/// How an evaluation pairs an attempt's frames for the motion cue, and whether it refuses by
/// it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MotionRule {
    /// Seconds between consecutive frames.
    pub interval: f32,
    /// Refuse an attempt whose motion score is above this (`None`: the network alone).
    pub threshold: Option<f32>,
}

impl Default for MotionRule {
    /// The door's default (passive): frames [`FRAME_INTERVAL`] apart, scored but not refused
    /// by motion.
    fn default() -> Self {
        Self {
            interval: FRAME_INTERVAL,
            threshold: None,
        }
    }
}

impl MotionRule {
    /// A strict door's: refused above [`motion::THRESHOLD`].
    pub fn strict(interval: f32) -> Self {
        Self {
            interval,
            threshold: Some(motion::THRESHOLD),
        }
    }
}

/// Seconds between an attempt's frames when a folder does not say (Replay-Attack as shared:
/// frames about 0.5 s apart).
pub const FRAME_INTERVAL: f32 = 0.5;

/// Each frame with a face: its network input and, with an `interval`, the motion pair score
/// it closes ([`MotionTrack`], frame `i` taken at `i * interval` seconds), as the door pairs
/// frames.
pub fn attempt_frames_as(
    detector: &Detector,
    attempt: &Attempt,
    views: &[f32],
    interval: Option<f32>,
    capture: impl Fn(RgbImage, usize) -> Option<RgbImage>,
) -> Vec<(Vec<f32>, Option<f32>)> {
    let mut motion = MotionTrack::new();
    attempt
        .frames
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let img = capture(image_io::open(f).ok()?, i)?;
            let dets = detector.detect(&img).ok()?;
            let face = subject(&dets, img.width(), img.height())?;
            let pair =
                interval.and_then(|dt| motion.observe(i as f64 * f64::from(dt), &img, &face.bbox));
            Some((input(&img, &face.bbox, views), pair))
        })
        .collect()
}

/// One attempt's result.
#[derive(Clone, Debug, Serialize)]
pub struct Scored {
    /// Species.
    pub species: String,
    /// Attempt name.
    pub name: String,
    /// Mean logit; `None` when no frame had a face.
    pub score: Option<f32>,
    /// Each frame's logit, in name order (frames without a face left out).
    pub frames: Vec<f32>,
    /// The attempt's motion score (mean of its pairs, [`facegate_models::motion`]); `None`
    /// without a pair.
    pub motion: Option<f32>,
    /// Refused by the motion cue (strict: its score above the threshold, or fewer than
    /// [`motion::MIN_PAIRS`] pairs), whatever the network says.
    pub motion_refused: bool,
}

impl Scored {
    /// Accepted as live at `threshold`: the network's mean logit reaches it and the motion
    /// cue did not refuse.
    pub fn accepted(&self, threshold: f32) -> bool {
        !self.motion_refused && self.score.is_some_and(|v| v >= threshold)
    }
}

/// Scores every attempt; an attempt whose motion score is above `motion`'s threshold is
/// refused as the door refuses it.
pub fn score_all(
    detector: &Detector,
    net: &Liveness,
    attempts: &[Attempt],
    motion: MotionRule,
) -> Result<Vec<Scored>> {
    let pb = crate::progress::bar(attempts.len() as u64, "liveness", "attempts");
    let mut out = Vec::with_capacity(attempts.len());
    for a in attempts {
        out.push(score(detector, net, a, motion)?);
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(out)
}

/// One attempt as the door decides it: the mean logit of `net` over the frames with a face,
/// and the motion cue's score of its frame pairs (a refusal above `motion`'s threshold).
pub fn score(
    detector: &Detector,
    net: &Liveness,
    a: &Attempt,
    motion: MotionRule,
) -> Result<Scored> {
    score_as(detector, net, a, motion, |img, _| Some(img))
}

/// [`score`] with each frame changed by `capture` first (see [`attempt_inputs_as`]).
pub fn score_as(
    detector: &Detector,
    net: &Liveness,
    a: &Attempt,
    motion: MotionRule,
    capture: impl Fn(RgbImage, usize) -> Option<RgbImage>,
) -> Result<Scored> {
    let mut logits = Vec::new();
    let mut pairs = Vec::new();
    for (x, pair) in attempt_frames_as(detector, a, net.views(), Some(motion.interval), capture) {
        logits.push(net.run(x)?);
        pairs.extend(pair);
    }
    Ok(Scored {
        species: a.species.clone(),
        name: a.name.clone(),
        score: attempt_score(&logits),
        frames: logits,
        motion: attempt_motion(&pairs),
        // As a strict door: held until enough pairs are in (an attempt that ends first never
        // opens), then refused above the threshold.
        motion_refused: motion.threshold.is_some_and(|t| {
            pairs.len() < motion::MIN_PAIRS || attempt_motion(&pairs).is_some_and(|m| m > t)
        }),
    })
}

/// The figures at one threshold.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rates {
    /// Live attempts refused (no face counts as refused).
    pub bpcer: f64,
    /// Per attack species: attempts accepted as live.
    pub apcer: BTreeMap<String, f64>,
    /// The worst species' APCER.
    pub apcer_max: f64,
}

/// BPCER and APCER per species at `threshold`.
pub fn rates(scored: &[Scored], threshold: f32) -> Rates {
    let accepted = |s: &Scored| s.accepted(threshold);
    let mut by: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for s in scored {
        let e = by.entry(s.species.as_str()).or_default();
        e.0 += 1;
        e.1 += usize::from(accepted(s));
    }
    let share = |(n, k): (usize, usize)| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    let bpcer = by.get(REAL).map(|&(n, k)| share((n, n - k))).unwrap_or(0.0);
    let apcer: BTreeMap<String, f64> = by
        .iter()
        .filter(|(s, _)| **s != REAL)
        .map(|(s, &c)| (s.to_string(), share(c)))
        .collect();
    let apcer_max = apcer.values().copied().fold(0.0, f64::max);
    Rates {
        bpcer,
        apcer,
        apcer_max,
    }
}

/// The threshold that makes the larger of BPCER and the worst APCER smallest (the lower one
/// when tied), chosen among the attempts' own scores: how training calibrates on attempts it
/// did not train on.
pub fn balanced_threshold(scored: &[Scored]) -> f32 {
    let mut candidates: Vec<f32> = scored.iter().filter_map(|s| s.score).collect();
    candidates.sort_by(f32::total_cmp);
    candidates.dedup();
    let mut best = (f64::INFINITY, 0.0f32);
    for &t in &candidates {
        let r = rates(scored, t);
        let worst = r.bpcer.max(r.apcer_max);
        if worst < best.0 {
            best = (worst, t);
        }
    }
    best.1
}

/// The `--protocol liveness` report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The folder.
    pub dataset: String,
    /// Always "liveness".
    pub protocol: String,
    /// The threshold used (the shipped one from the model's manifest).
    pub threshold: f32,
    /// Live attempts refused.
    pub bpcer: f64,
    /// Attacks accepted, per species.
    pub apcer: BTreeMap<String, f64>,
    /// The worst species.
    pub apcer_max: f64,
    /// Attempts per species.
    pub attempts: BTreeMap<String, usize>,
    /// Attempts without a face in any frame, per species (refused).
    pub no_face: BTreeMap<String, usize>,
    /// SHA-256 of the network evaluated.
    pub model_sha256: String,
    /// The motion cue's threshold (`--strict`; `None`: the network alone, as the door ships).
    pub motion_threshold: Option<f32>,
    /// Attempts per species the motion cue refused (their surroundings moved with the face),
    /// whatever the network said.
    pub motion_refused: BTreeMap<String, usize>,
    /// Milliseconds per face for the network alone (mean over the run).
    pub ms_per_face: f64,
    /// Milliseconds per face for the motion cue (640x480, a pair every frame).
    pub motion_ms_per_face: f64,
    /// Every attempt's score.
    pub scored: Vec<Scored>,
}

/// DET points per attack species: (APCER, BPCER) over every distinct threshold.
pub fn det_curves(scored: &[Scored]) -> Vec<crate::report::plots::Curve> {
    let live: Vec<Option<f32>> = scored
        .iter()
        .filter(|s| s.species == REAL)
        .map(|s| s.score.filter(|_| !s.motion_refused))
        .collect();
    let mut species: Vec<&str> = scored
        .iter()
        .map(|s| s.species.as_str())
        .filter(|s| *s != REAL)
        .collect();
    species.sort_unstable();
    species.dedup();
    species
        .into_iter()
        .map(|sp| {
            let attacks: Vec<f32> = scored
                .iter()
                .filter(|s| s.species == sp)
                .map(|s| match s.score {
                    // Refused at every threshold.
                    Some(v) if !s.motion_refused => v,
                    _ => f32::NEG_INFINITY,
                })
                .collect();
            crate::report::plots::Curve {
                name: sp.to_owned(),
                points: crate::report::plots::det_points(&live, &attacks),
            }
        })
        .collect()
}

/// An attempt of `species` with this score, for tests.
#[cfg(test)]
pub(crate) fn scored(species: &str, score: Option<f32>) -> Scored {
    Scored {
        species: species.into(),
        name: String::new(),
        score,
        frames: Vec::new(),
        motion: None,
        motion_refused: false,
    }
}

#[cfg(test)]
mod tests {
    use super::scored as s;
    use super::*;

    #[test]
    fn rates_count_attempts_and_a_faceless_live_attempt_is_refused() {
        let scored = vec![
            s("real", Some(2.0)),
            s("real", Some(-1.0)),
            s("real", None),
            s("real", Some(0.5)),
            s("print", Some(-3.0)),
            s("print", Some(0.7)),
            s("mobile", Some(-2.0)),
        ];
        let r = rates(&scored, 0.0);
        assert_eq!(r.bpcer, 0.5);
        assert_eq!(r.apcer["print"], 0.5);
        assert_eq!(r.apcer["mobile"], 0.0);
        assert_eq!(r.apcer_max, 0.5);
        // The balanced threshold separates what can be separated.
        let t = balanced_threshold(&scored);
        let b = rates(&scored, t);
        assert!(b.bpcer.max(b.apcer_max) <= r.bpcer.max(r.apcer_max));
    }

    #[test]
    fn a_folder_without_live_people_or_without_attacks_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let frame = dir.path().join("print/a1");
        std::fs::create_dir_all(&frame).expect("mkdir");
        image::RgbImage::new(32, 32)
            .save(frame.join("frame_0.png"))
            .expect("save");
        let err = attempts(dir.path()).expect_err("no real").to_string();
        assert!(err.contains("no `real` folder"), "{err}");
        std::fs::rename(dir.path().join("print"), dir.path().join("real")).expect("rename");
        let err = attempts(dir.path()).expect_err("no attacks").to_string();
        assert!(err.contains("only live attempts"), "{err}");
    }
}
