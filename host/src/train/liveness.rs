//! `facegate models liveness`: trains the presentation-attack network
//! ([`facegate_models::liveness`]) on a folder laid out `<species>/<attempt>/<frames>` (the
//! Replay-Attack train split), with candle on the CPU.
//!
//! The threshold is chosen on attempts of people the network scoring them never saw, as the
//! door decides them (mean logit per attempt), where the larger of BPCER and the worst
//! species' APCER is smallest. People are told apart by client id. Two ways:
//!
//! * by default one client in three is held out: never trained on, it chooses the threshold;
//! * with `folds` = K >= 2, cross-validation: the clients are dealt into K folds, each fold is
//!   scored by a network trained on the others, so every attempt is scored by a network that
//!   never saw the person; those scores choose the threshold, and the shipped network is
//!   trained on every client. K + 1 trainings, but the threshold rests on every attempt, and
//!   the per-species figures say how well the settings generalise (which is how settings are
//!   compared without looking at the development split).
//!
//! The development split is never looked at. Live frames are rarer than attacks (one species
//! against five): their loss is weighted to balance.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use candle_core::{Device, Tensor};
use facegate_models::detect::Detector;
use facegate_models::liveness::{
    self, Levels, Liveness, Manifest, SIDE, SecondOpinion, attempt_score,
};
use facegate_models::model_files::sha256_hex;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::eval::liveness::{
    Attempt, REAL, Rates, Scored, attempt_inputs, attempts, balanced_threshold, rates,
};
use crate::files::write_model;
use crate::train::cnn::{Cnn, bce};
use crate::train::fit::{Schedule, minibatches};

/// Training settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Passes over the training frames.
    pub epochs: usize,
    /// Frames per step.
    pub batch: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// Seed of the initial weights, the order and the augmentation.
    pub seed: u64,
    /// The views the network sees ([`liveness::VIEWS`] by default).
    pub views: Vec<f32>,
    /// Cross-validation folds for the threshold (0: one client in three held out instead).
    pub folds: usize,
    /// Trainings averaged into the shipped network (seeds `seed`, `seed + 1`, ...), 1 to
    /// [`MAX_MEMBERS`].
    pub members: usize,
    /// Re-expose every training frame at random ([`Exposure`]).
    pub exposure: bool,
    /// How the network's input planes are levelled ([`Levels`]).
    pub levels: Levels,
    /// Also train a second network on inputs levelled so, and ship both in one file whose
    /// answer is the lower of the two ([`liveness::lower_of`]).
    pub second: Option<Levels>,
    /// Re-expose the second network's training frames at random ([`Exposure`]) even when the
    /// first's are not: its levelling takes a camera's exposure out exactly, this teaches it
    /// to ignore the tone curve and white balance too.
    pub second_exposure: bool,
}

/// Most trainings in an ensemble: each adds about a millisecond per face at the door (two
/// views: 2.33 ms for one network, 3.55 ms for two; docs/LIVENESS.md).
pub const MAX_MEMBERS: usize = 4;

impl Default for Config {
    fn default() -> Self {
        Self {
            epochs: 8,
            batch: 32,
            lr: 1e-3,
            seed: 1,
            views: liveness::VIEWS.to_vec(),
            folds: 0,
            members: 1,
            exposure: false,
            levels: Levels::AsCaptured,
            second: None,
            second_exposure: false,
        }
    }
}

/// What a training made and measured.
#[derive(Clone, Debug)]
pub struct Trained {
    /// The manifest written beside the network.
    pub manifest: Manifest,
    /// Per attack species, on the calibration attempts: the share of (live, attack) pairs of
    /// attempts whose scores are in the right order (1 = separable at some threshold). Finer
    /// than APCER on a few dozen attempts, for comparing settings.
    pub auc: BTreeMap<String, f64>,
    /// Per attack species, on the calibration attempts at the chosen threshold: the share
    /// accepted as live.
    pub apcer: BTreeMap<String, f64>,
    /// With cross-validation: the same attempts and threshold as if another camera had
    /// captured them ([`CAPTURES`]), each scored by the fold that never saw the person.
    pub captured: Vec<(&'static str, Rates)>,
    /// With cross-validation: every attempt's score by the fold that never saw the person, as
    /// recorded and then under each of [`CAPTURES`], so that trainings can be compared and
    /// combined attempt by attempt (`--scores`).
    pub fold_scores: Vec<(&'static str, Vec<Scored>)>,
}

/// A change of one input value of colour channel `c` ([`CAPTURES`]).
pub type Recapture = fn(f32, usize) -> f32;

/// Another camera's levels, as a change of one input value (`p / 128 - 1` of level `p`) of
/// colour channel `c`: the two changes that moved the shipped network most on the development
/// split (`examples/liveness_capture.rs`, which changes whole frames before detection). Here
/// they change the held-out folds' inputs, so that settings are compared on the training people
/// without the development split: exact for a gain (the shrink is linear), close for a tone
/// curve (the shrink averages before the curve instead of after).
pub const CAPTURES: [(&str, Recapture); 2] = [
    ("darker (60% light)", |x, _| {
        level_value((value_level(x) * 0.6).round())
    }),
    ("other colour (warm, gamma 0.8)", |x, c| {
        let gain = [1.08, 1.0, 0.88][c];
        level_value(
            ((value_level(x) / 255.0).powf(0.8) * gain * 255.0)
                .clamp(0.0, 255.0)
                .floor(),
        )
    }),
];

fn value_level(x: f32) -> f32 {
    ((x + 1.0) * 128.0).clamp(0.0, 255.0)
}

fn level_value(p: f32) -> f32 {
    p / 128.0 - 1.0
}

/// `list` as if captured by `change` ([`CAPTURES`]).
fn recaptured<'a>(list: &[&Prepared<'a>], change: Recapture) -> Vec<Prepared<'a>> {
    let plane = (SIDE * SIDE) as usize;
    list.iter()
        .map(|p| Prepared {
            attempt: p.attempt,
            inputs: p
                .inputs
                .iter()
                .map(|x| {
                    x.iter()
                        .enumerate()
                        .map(|(i, &v)| change(v, (i / plane) % 3))
                        .collect()
                })
                .collect(),
        })
        .collect()
}

/// The client an attempt shows (`clientNNN` in its name), so that no person is on both sides
/// of the split.
fn client(a: &Attempt) -> String {
    a.name
        .find("client")
        .map(|i| {
            a.name[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect()
        })
        .unwrap_or_else(|| a.name.clone())
}

/// An attempt's network inputs (one per frame with a face), computed once for every fold.
struct Prepared<'a> {
    attempt: &'a Attempt,
    inputs: Vec<Vec<f32>>,
}

struct Frames {
    /// Inputs, `per` values each.
    x: Vec<f32>,
    /// 1 live, 0 attack.
    y: Vec<f32>,
    /// Values per input.
    per: usize,
}

impl Frames {
    fn len(&self) -> usize {
        self.y.len()
    }

    fn of(list: &[&Prepared], per: usize) -> Self {
        let mut f = Frames {
            x: Vec::new(),
            y: Vec::new(),
            per,
        };
        for p in list {
            for x in &p.inputs {
                f.x.extend_from_slice(x);
                f.y.push(if p.attempt.live() { 1.0 } else { 0.0 });
            }
        }
        f
    }
}

fn prepare<'a>(detector: &Detector, all: &'a [Attempt], views: &[f32]) -> Vec<Prepared<'a>> {
    let pb = crate::progress::bar(all.len() as u64, "frames", "attempts");
    let out = all
        .iter()
        .map(|attempt| {
            let inputs = attempt_inputs(detector, attempt, views);
            pb.inc(1);
            Prepared { attempt, inputs }
        })
        .collect();
    pb.finish_and_clear();
    out
}

/// How a frame is re-exposed in training: another camera's exposure, tone curve and white
/// balance. Without it the network learnt the recordings' brightness and colour as cues: the
/// shipped network of 2026-12-02 let 93% of the development prints in when the frames were
/// darkened to 60% of the light, and 58% under a warmer white balance with a brighter tone
/// curve (`examples/liveness_capture.rs`, docs/LIVENESS.md). Ranges: about a stop and a half
/// of exposure (0.5-1.4), tone curves of gamma 0.7-1.4, and each colour's gain within 12%, what
/// a door camera's automatic exposure and white balance leave between halls and light.
#[derive(Clone, Copy, Debug)]
struct Exposure {
    brightness: f32,
    gamma: f32,
    colour: [f32; 3],
}

impl Exposure {
    fn random(rng: &mut Xoshiro256PlusPlus) -> Self {
        let log_uniform = |rng: &mut Xoshiro256PlusPlus, lo: f32, hi: f32| {
            rng.random_range(lo.ln()..hi.ln()).exp()
        };
        Self {
            brightness: log_uniform(rng, 0.5, 1.4),
            gamma: log_uniform(rng, 0.7, 1.4),
            colour: [(); 3].map(|_| rng.random_range(0.88f32..1.12)),
        }
    }

    /// One network input value (`p / 128 - 1` of channel `c`'s level `p`), re-exposed.
    fn apply(&self, x: f32, c: usize) -> f32 {
        let level = ((x + 1.0) * (128.0 / 255.0)).clamp(0.0, 1.0);
        let out = (self.colour[c] * self.brightness * level.powf(self.gamma)).clamp(0.0, 1.0);
        out * (255.0 / 128.0) - 1.0
    }
}

/// A batch, each frame re-exposed when asked ([`Exposure`]), mirrored left-right at random, shifted by up
/// to 4 pixels (edges repeated) and its contrast scaled a little: lighting, the camera, where
/// the face sits and which side the attacker holds the phone vary; the cues do not. Every view
/// of a frame changes alike.
fn batch(
    f: &Frames,
    idx: &[usize],
    exposure: bool,
    levels: Levels,
    rng: &mut Xoshiro256PlusPlus,
    dev: &Device,
) -> Result<(Tensor, Tensor)> {
    let s = SIDE as usize;
    let planes = f.per / (s * s);
    let mut x = Vec::with_capacity(idx.len() * f.per);
    for &i in idx {
        let src = &f.x[i * f.per..(i + 1) * f.per];
        // Drawn first, and only when asked: without it the random stream is the one the
        // networks before it were trained with.
        let exposure = exposure.then(|| Exposure::random(rng));
        let flip = rng.random_bool(0.5);
        let gain = rng.random_range(0.85f32..1.15);
        let (dx, dy) = (rng.random_range(-4i64..=4), rng.random_range(-4i64..=4));
        let at = |v: usize, d: i64| (v as i64 + d).clamp(0, s as i64 - 1) as usize;
        for c in 0..planes {
            for row in 0..s {
                for col in 0..s {
                    let from = at(if flip { s - 1 - col } else { col }, dx);
                    let v = src[c * s * s + at(row, dy) * s + from];
                    let v = exposure.map_or(v, |e| e.apply(v, c % 3));
                    x.push(v * gain);
                }
            }
        }
        // Levelled after the changes, as the door levels what its camera gives.
        let at = x.len() - f.per;
        levels.apply(&mut x[at..]);
    }
    let y: Vec<f32> = idx.iter().map(|&i| f.y[i]).collect();
    Ok((
        Tensor::from_vec(x, (idx.len(), planes, s, s), dev)?,
        Tensor::from_vec(y, (idx.len(), 1), dev)?,
    ))
}

/// Trains the network on `train` (an ensemble of `cfg.members` trainings with seeds `cfg.seed`,
/// `cfg.seed + 1`, ...: their mean logit, exported as one network by [`Nets::bytes`]); returns
/// each member's weights and the loss per epoch (the members' mean).
fn fit(train: &Frames, cfg: &Config, what: &str) -> Result<(Members, Vec<f32>)> {
    anyhow::ensure!(
        train.len() >= 20 && train.y.contains(&1.0) && train.y.contains(&0.0),
        "only {} frames with a face to train on (live and attacks both needed)",
        train.len()
    );
    let members = cfg.members.max(1);
    let mut weights = Vec::with_capacity(members);
    let mut losses = vec![0.0f32; cfg.epochs];
    for m in 0..members {
        let label = match members {
            1 => what.to_owned(),
            n => format!("{what}, member {} of {n}", m + 1),
        };
        let (w, l) = fit_one(train, cfg, cfg.seed.wrapping_add(m as u64), &label)?;
        weights.push(w);
        losses.iter_mut().zip(l).for_each(|(sum, l)| *sum += l);
    }
    losses.iter_mut().for_each(|l| *l /= members as f32);
    Ok((weights, losses))
}

/// The weights of each training of one network (an ensemble's members).
type Members = Vec<Vec<Vec<f32>>>;

/// One fold's networks (or the shipped ones): the first, and the second opinion if any.
struct Nets {
    first: Members,
    second: Option<Members>,
    losses: [Vec<f32>; 2],
}

impl Nets {
    /// Trains what `cfg` asks for on `train`.
    fn fit(train: &Frames, cfg: &Config, what: &str) -> Result<Self> {
        let (first, l1) = fit(train, cfg, what)?;
        let (second, l2) = match cfg.second {
            None => (None, Vec::new()),
            Some(levels) => {
                let (w, l) = fit(
                    train,
                    &Config {
                        levels,
                        exposure: cfg.exposure || cfg.second_exposure,
                        ..cfg.clone()
                    },
                    &format!("{what}, second opinion"),
                )?;
                (Some(w), l)
            }
        };
        Ok(Self {
            first,
            second,
            losses: [l1, l2],
        })
    }

    /// Each network alone, as ONNX bytes, with the levels it reads.
    fn alone(&self, cfg: &Config) -> Result<Vec<(Vec<u8>, Levels)>> {
        let spec = liveness::net(cfg.views.len());
        let mut out = vec![(spec.ensemble(&self.first)?, cfg.levels)];
        if let (Some(w), Some(levels)) = (&self.second, cfg.second) {
            out.push((spec.ensemble(w)?, levels));
        }
        Ok(out)
    }

    /// What ships: the first network, or with a second opinion both in one file
    /// ([`liveness::lower_of`], the second's logit shifted by `offset`).
    fn bytes(&self, cfg: &Config, offset: f32) -> Result<Vec<u8>> {
        let spec = liveness::net(cfg.views.len());
        match (&self.second, cfg.second) {
            (Some(w), Some(levels)) => {
                let [first, second] = [&self.first, w].map(|m| match m.as_slice() {
                    [one] => Ok(one),
                    _ => Err(anyhow::anyhow!("--second needs --ensemble 1")),
                });
                Ok(liveness::lower_of(
                    cfg.views.len(),
                    first?,
                    second?,
                    levels,
                    offset,
                )?)
            }
            _ => Ok(spec.ensemble(&self.first)?),
        }
    }
}

/// One training with `seed` (initial weights, order, augmentation); returns its weights and
/// the loss per epoch.
fn fit_one(
    train: &Frames,
    cfg: &Config,
    seed: u64,
    what: &str,
) -> Result<(Vec<Vec<f32>>, Vec<f32>)> {
    let live = train.y.iter().filter(|y| **y > 0.5).count();
    let live_weight = (train.len() - live) as f64 / live.max(1) as f64;
    let dev = Device::Cpu;
    let spec = liveness::net(cfg.views.len());
    let net = Cnn::new(spec, seed, 1.0, &dev)?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x11FE);
    let schedule = Schedule {
        epochs: cfg.epochs,
        batch: cfg.batch,
        lr: cfg.lr,
        weight_decay: 1e-3,
        anneal: true,
    };
    let items: Vec<usize> = (0..train.len()).collect();
    let losses = minibatches(
        &net.vars,
        &schedule,
        &items,
        &mut rng,
        what,
        |chunk, rng| {
            let (x, y) = batch(train, chunk, cfg.exposure, cfg.levels, rng, &dev)?;
            bce(&net.forward(&x)?, &y, live_weight)
        },
    )?;
    Ok((net.weights()?, losses))
}

/// Each attempt's score through the exported network `bytes`, as the door runs it.
fn score_with(
    bytes: &[u8],
    views: &[f32],
    levels: Levels,
    list: &[&Prepared],
) -> Result<Vec<Scored>> {
    let door = Liveness::from_bytes(bytes, views, levels)?;
    list.iter()
        .map(|p| {
            let logits = p
                .inputs
                .iter()
                .map(|x| door.run(x.clone()))
                .collect::<facegate_models::Result<Vec<f32>>>()?;
            Ok(Scored {
                species: p.attempt.species.clone(),
                name: p.attempt.name.clone(),
                score: attempt_score(&logits),
                frames: logits,
                motion: None,
                motion_refused: false,
            })
        })
        .collect()
}

/// Trains on the attempts under `data` and writes the network and its manifest into `models`.
pub fn train(data: &Path, models: &Path, cfg: &Config, command: &str) -> Result<Trained> {
    liveness::check_views(&cfg.views).map_err(|e| anyhow::anyhow!("--views: {e}"))?;
    anyhow::ensure!(
        (1..=MAX_MEMBERS).contains(&cfg.members),
        "--ensemble {}: 1 to {MAX_MEMBERS} trainings",
        cfg.members
    );
    anyhow::ensure!(
        cfg.folds != 1,
        "--folds 1 leaves nothing to train on: use 0 or at least 2"
    );
    if let Some(second) = cfg.second {
        anyhow::ensure!(
            cfg.members == 1 && cfg.levels == Levels::AsCaptured,
            "--second needs --ensemble 1 and --levels as-captured (the first network reads the \
             input as captured, the second levels it inside the same file)"
        );
        second
            .in_graph()
            .map_err(|e| anyhow::anyhow!("--second {}: {e}", second.name()))?;
    }
    anyhow::ensure!(
        !cfg.second_exposure || cfg.second.is_some(),
        "--second-exposure needs --second (it re-exposes the second network's frames)"
    );
    let yunet = facegate_models::model_files::YUNET_DOOR.read_verified(models)?;
    let detector = Detector::from_bytes(&yunet, Default::default())?;
    let all = attempts(data)?;
    let prepared = prepare(&detector, &all, &cfg.views);
    let mut clients: Vec<String> = all.iter().map(client).collect();
    clients.sort();
    clients.dedup();
    let fold_of = |p: &Prepared| clients.binary_search(&client(p.attempt)).unwrap_or(0);
    let per = 3 * (SIDE * SIDE) as usize * cfg.views.len();

    // The networks that score each held-out fold (with --folds, one per fold; otherwise the
    // one trained on two clients in three, which is also what ships).
    let mut folds: Vec<(Vec<&Prepared>, Nets)> = Vec::new();
    let mut counts = [all.len(), all.len()];
    if cfg.folds >= 2 {
        let k = cfg.folds;
        for fold in 0..k {
            let (out, fit_on): (Vec<&Prepared>, Vec<&Prepared>) =
                prepared.iter().partition(|p| fold_of(p) % k == fold);
            let what = format!("liveness fold {}/{k}", fold + 1);
            let nets = Nets::fit(&Frames::of(&fit_on, per), cfg, &what)?;
            folds.push((out, nets));
        }
    } else {
        let (calib, fit_on): (Vec<&Prepared>, Vec<&Prepared>) =
            prepared.iter().partition(|p| fold_of(p) % 3 == 2);
        let nets = Nets::fit(&Frames::of(&fit_on, per), cfg, "liveness")?;
        counts = [fit_on.len(), calib.len()];
        folds.push((calib, nets));
    }
    // With a second opinion, each network's own threshold first: the first's balanced as a
    // lone network's, the second's where it refuses no live attempt ([`veto_threshold`]); the
    // second's logit is shifted by the difference, so that each refuses at its own.
    let mut alone: Vec<(f32, Rates)> = Vec::new();
    if cfg.second.is_some() {
        let mut scores: [Vec<Scored>; 2] = Default::default();
        for (out, nets) in &folds {
            for (i, (bytes, levels)) in nets.alone(cfg)?.iter().enumerate() {
                scores[i].extend(score_with(bytes, &cfg.views, *levels, out)?);
            }
        }
        let [first, second] = &scores;
        let t = balanced_threshold(first);
        alone.push((t, rates(first, t)));
        let t = veto_threshold(second);
        alone.push((t, rates(second, t)));
    }
    let offset = match alone.as_slice() {
        [(t1, _), (t2, _)] => t1 - t2,
        _ => 0.0,
    };
    let mut scored = Vec::new();
    let mut captured_scores: [Vec<Scored>; CAPTURES.len()] = Default::default();
    for (out, nets) in &folds {
        let bytes = nets.bytes(cfg, offset)?;
        scored.extend(score_with(&bytes, &cfg.views, cfg.levels, out)?);
        if cfg.folds >= 2 {
            for (i, (_, change)) in CAPTURES.iter().enumerate() {
                let changed = recaptured(out, *change);
                let changed: Vec<&Prepared> = changed.iter().collect();
                captured_scores[i].extend(score_with(&bytes, &cfg.views, cfg.levels, &changed)?);
            }
        }
    }
    let shipped = if cfg.folds >= 2 {
        let everyone: Vec<&Prepared> = prepared.iter().collect();
        Nets::fit(&Frames::of(&everyone, per), cfg, "liveness")?
    } else {
        folds.pop().expect("one training").1
    };
    let bytes = shipped.bytes(cfg, offset)?;
    let [losses, second_losses] = shipped.losses;
    anyhow::ensure!(
        scored.iter().any(|s| s.species == REAL),
        "no live attempt among the calibration clients: more clients are needed"
    );
    // A pair's score is the first network's, lowered where the second vetoes: its threshold
    // is the first's own (choosing again on the pair's scores would only move it lower, to
    // where the first alone lets more in).
    let threshold = match alone.first() {
        Some((t, _)) => *t,
        None => balanced_threshold(&scored),
    };
    let at = rates(&scored, threshold);
    let manifest = Manifest {
        sha256: sha256_hex(&bytes),
        threshold,
        data: format!(
            "{} (Replay-Attack, Idiap research licence: the weights are trained on it)",
            data.display()
        ),
        command: command.to_owned(),
        seed: cfg.seed,
        attempts: counts,
        calibration: [at.bpcer, at.apcer_max],
        loss: losses,
        views: cfg.views.clone(),
        levels: cfg.levels,
        second: cfg
            .second
            .zip(alone.get(..2))
            .map(|(levels, alone)| SecondOpinion {
                levels,
                offset,
                thresholds: [alone[0].0, alone[1].0],
                calibration: [
                    [alone[0].1.bpcer, alone[0].1.apcer_max],
                    [alone[1].1.bpcer, alone[1].1.apcer_max],
                ],
                loss: second_losses,
                exposure: cfg.exposure || cfg.second_exposure,
            }),
        door_sha256: None,
    };
    write_model(
        models,
        liveness::FILE,
        &bytes,
        liveness::MANIFEST,
        &manifest,
    )?;
    // What the door runs: the door form, recorded in the manifest.
    liveness::install_door_form(models)?;
    let captured = CAPTURES
        .iter()
        .zip(&captured_scores)
        .filter(|(_, s)| !s.is_empty())
        .map(|((name, _), s)| (*name, rates(s, threshold)))
        .collect();
    let auc = separation(&scored);
    let fold_scores = if cfg.folds >= 2 {
        std::iter::once(("as recorded", scored))
            .chain(CAPTURES.iter().map(|(name, _)| *name).zip(captured_scores))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Trained {
        manifest,
        auc,
        apcer: at.apcer,
        captured,
        fold_scores,
    })
}

/// A second opinion's threshold: the lowest score of a live attempt, so that it refuses no
/// live person the calibration saw and vetoes only attacks it scores below all of them. Why
/// not balanced: measured by cross-validation (docs/LIVENESS.md, "A second opinion"), the
/// brightness-levelled network's balanced threshold refuses two live attempts of one person
/// that the first network accepts, which the pair then refuses too.
pub fn veto_threshold(scored: &[Scored]) -> f32 {
    scored
        .iter()
        .filter(|s| s.species == REAL)
        .filter_map(|s| s.score)
        .min_by(f32::total_cmp)
        .unwrap_or_else(|| balanced_threshold(scored))
}

/// Per attack species, the share of (live, attack) attempt pairs the scores order rightly
/// (ties count half; an attempt without a face scores lowest).
pub fn separation(scored: &[Scored]) -> BTreeMap<String, f64> {
    let value = |s: &Scored| s.score.unwrap_or(f32::NEG_INFINITY);
    let live: Vec<f32> = scored
        .iter()
        .filter(|s| s.species == REAL)
        .map(value)
        .collect();
    let mut by: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    for s in scored.iter().filter(|s| s.species != REAL) {
        by.entry(s.species.clone()).or_default().push(value(s));
    }
    by.into_iter()
        .map(|(species, attacks)| {
            let mut right = 0.0;
            for l in &live {
                for a in &attacks {
                    right += if l > a {
                        1.0
                    } else if l == a {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
            let pairs = (live.len() * attacks.len()).max(1) as f64;
            (species, right / pairs)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::liveness::scored as s;

    #[test]
    fn the_loss_is_cross_entropy_with_live_frames_weighted() {
        let dev = Device::Cpu;
        let z = Tensor::from_vec(vec![0.0f32, 0.0], (2, 1), &dev).expect("z");
        let y = Tensor::from_vec(vec![1.0f32, 0.0], (2, 1), &dev).expect("y");
        let l = bce(&z, &y, 3.0)
            .expect("loss")
            .to_scalar::<f32>()
            .expect("scalar");
        assert!((l - std::f32::consts::LN_2).abs() < 1e-5, "{l}");
    }

    /// The identity exposure keeps every input level; a darker one lowers each level by its
    /// factor (no gamma, no colour cast); values stay inside the input's range.
    #[test]
    fn exposure_maps_input_levels_as_a_camera_would() {
        let same = Exposure {
            brightness: 1.0,
            gamma: 1.0,
            colour: [1.0; 3],
        };
        let dark = Exposure {
            brightness: 0.6,
            ..same
        };
        for p in [0u8, 1, 64, 128, 200, 255] {
            let x = p as f32 / 128.0 - 1.0;
            assert!((same.apply(x, 0) - x).abs() < 1e-5, "{p}");
            let want = (p as f32 * 0.6) / 128.0 - 1.0;
            assert!((dark.apply(x, 1) - want).abs() < 1e-4, "{p}");
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        for _ in 0..200 {
            let e = Exposure::random(&mut rng);
            assert!((0.499..=1.401).contains(&e.brightness) && (0.699..=1.401).contains(&e.gamma));
            for x in [-1.0f32, -0.3, 0.5, 0.99] {
                let y = e.apply(x, 2);
                assert!(
                    (-1.0..=255.0 / 128.0 - 1.0).contains(&y),
                    "{e:?} {x} -> {y}"
                );
            }
        }
    }

    #[test]
    fn captures_change_levels_as_the_example_changes_frames() {
        let value = |p: u8| p as f32 / 128.0 - 1.0;
        let (darker, colour) = (CAPTURES[0].1, CAPTURES[1].1);
        // 60% of the light, rounded to a level like the example's frames.
        assert_eq!(darker(value(101), 0), value(61));
        assert_eq!(darker(value(0), 2), value(0));
        // Warmer: red up, blue down, through a brighter tone curve (level 128: 0.502^0.8).
        let curve = |p: f32, gain: f32| value(((p / 255.0).powf(0.8) * gain * 255.0) as u8);
        assert_eq!(colour(value(128), 0), curve(128.0, 1.08));
        assert_eq!(colour(value(128), 1), curve(128.0, 1.0));
        assert_eq!(colour(value(128), 2), curve(128.0, 0.88));
        assert_eq!(colour(value(255), 0), value(255), "clipped at full scale");
        // Each plane gets its own colour's change.
        let a = Attempt {
            species: REAL.into(),
            name: "x".into(),
            frames: Vec::new(),
        };
        let plane = (SIDE * SIDE) as usize;
        let p = Prepared {
            attempt: &a,
            inputs: vec![vec![value(128); 6 * plane]],
        };
        let out = recaptured(&[&p], colour);
        let x = &out[0].inputs[0];
        for (k, gain) in [1.08, 1.0, 0.88, 1.08, 1.0, 0.88].into_iter().enumerate() {
            assert_eq!(x[k * plane], curve(128.0, gain), "plane {k}");
        }
    }

    #[test]
    fn a_second_opinion_refuses_no_live_attempt_it_was_calibrated_on() {
        let scored = vec![
            s("real", Some(2.0)),
            s("real", Some(-3.0)),
            s("real", None),
            s("print", Some(-4.0)),
            s("print", Some(-1.0)),
        ];
        let t = veto_threshold(&scored);
        assert_eq!(t, -3.0);
        let r = rates(&scored, t);
        // The faceless live attempt is refused at any threshold; every scored one passes.
        assert!((r.bpcer - 1.0 / 3.0).abs() < 1e-9, "{r:?}");
        assert_eq!(r.apcer["print"], 0.5);
    }

    #[test]
    fn separation_counts_rightly_ordered_pairs() {
        let scored = vec![
            s("real", Some(2.0)),
            s("real", Some(0.0)),
            s("print", Some(-1.0)),
            s("print", Some(1.0)),
            s("mobile", Some(0.0)),
            s("mobile", None),
        ];
        let auc = separation(&scored);
        assert_eq!(auc["print"], 0.75);
        assert_eq!(auc["mobile"], 0.875);
    }

    #[test]
    fn clients_are_read_from_attempt_names() {
        let a = Attempt {
            species: "print".into(),
            name: "fixed__attack_print_client003_session01_highdef_photo_adverse".into(),
            frames: vec![],
        };
        assert_eq!(client(&a), "client003");
    }
}
