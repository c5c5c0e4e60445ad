//! `facegate models liveness`: trains the presentation-attack network
//! ([`facegate_models::liveness`]) on a folder laid out `<species>/<attempt>/<frames>` (the
//! Replay-Attack train split), with candle on the CPU.
//!
//! The people are split by client id (the `clientNNN` in an attempt's name, else the attempt):
//! one client in three is held out, never trained on, and the threshold is chosen on their
//! attempts, as the door decides them (mean logit per attempt), where the larger of BPCER and
//! the worst species' APCER is smallest. The development split is never looked at. Live frames
//! are rarer than attacks (one species against five): their loss is weighted to balance.

use std::path::Path;

use anyhow::Result;
use candle_core::{Device, Tensor};
use facegate_models::detect::Detector;
use facegate_models::liveness::{self, Liveness, Manifest, SIDE};
use facegate_models::model_files::sha256_hex;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::eval::liveness::{
    Attempt, Scored, attempt_inputs, attempts, balanced_threshold, rates, score,
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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            epochs: 8,
            batch: 32,
            lr: 1e-3,
            seed: 1,
        }
    }
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

struct Frames {
    /// Inputs, `3 x SIDE x SIDE` each.
    x: Vec<f32>,
    /// 1 live, 0 attack.
    y: Vec<f32>,
}

impl Frames {
    fn len(&self) -> usize {
        self.y.len()
    }
}

const PER: usize = (3 * SIDE * SIDE) as usize;

fn frames(detector: &Detector, list: &[&Attempt]) -> Frames {
    let mut f = Frames {
        x: Vec::new(),
        y: Vec::new(),
    };
    let pb = crate::progress::bar(list.len() as u64, "frames", "attempts");
    for a in list {
        for x in attempt_inputs(detector, a) {
            f.x.extend(x);
            f.y.push(if a.live() { 1.0 } else { 0.0 });
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    f
}

/// A batch, each frame mirrored left-right at random, shifted by up to 4 pixels (edges
/// repeated) and its contrast scaled a little: lighting, where the face sits and which side the
/// attacker holds the phone vary; the cues do not.
fn batch(
    f: &Frames,
    idx: &[usize],
    rng: &mut Xoshiro256PlusPlus,
    dev: &Device,
) -> Result<(Tensor, Tensor)> {
    let s = SIDE as usize;
    let mut x = Vec::with_capacity(idx.len() * PER);
    for &i in idx {
        let src = &f.x[i * PER..(i + 1) * PER];
        let flip = rng.random_bool(0.5);
        let gain = rng.random_range(0.85f32..1.15);
        let (dx, dy) = (rng.random_range(-4i64..=4), rng.random_range(-4i64..=4));
        let at = |v: usize, d: i64| (v as i64 + d).clamp(0, s as i64 - 1) as usize;
        for c in 0..3 {
            for row in 0..s {
                for col in 0..s {
                    let from = at(if flip { s - 1 - col } else { col }, dx);
                    x.push(src[c * s * s + at(row, dy) * s + from] * gain);
                }
            }
        }
    }
    let y: Vec<f32> = idx.iter().map(|&i| f.y[i]).collect();
    Ok((
        Tensor::from_vec(x, (idx.len(), 3, s, s), dev)?,
        Tensor::from_vec(y, (idx.len(), 1), dev)?,
    ))
}

/// Trains on the attempts under `data` and writes the network and its manifest into `models`.
pub fn train(data: &Path, models: &Path, cfg: &Config, command: &str) -> Result<Manifest> {
    let yunet = facegate_models::model_files::YUNET.read_verified(models)?;
    let detector = Detector::from_bytes(&yunet, Default::default())?;
    let all = attempts(data)?;
    let mut clients: Vec<String> = all.iter().map(client).collect();
    clients.sort();
    clients.dedup();
    let held = |a: &Attempt| clients.binary_search(&client(a)).is_ok_and(|i| i % 3 == 2);
    let (calib, fit): (Vec<&Attempt>, Vec<&Attempt>) = all.iter().partition(|a| held(a));
    let train = frames(&detector, &fit);
    anyhow::ensure!(
        train.len() >= 20 && train.y.contains(&1.0) && train.y.contains(&0.0),
        "only {} frames with a face (live and attacks both needed) in {}",
        train.len(),
        data.display()
    );
    let live = train.y.iter().filter(|y| **y > 0.5).count();
    let live_weight = (train.len() - live) as f64 / live.max(1) as f64;

    let dev = Device::Cpu;
    let net = Cnn::new(liveness::NET, cfg.seed, 1.0, &dev)?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed ^ 0x11FE);
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
        "liveness",
        |chunk, rng| {
            let (x, y) = batch(&train, chunk, rng, &dev)?;
            bce(&net.forward(&x)?, &y, live_weight)
        },
    )?;

    // The threshold, on the held-out clients, through the exported file as the door runs it.
    let bytes = liveness::graph(&net.weights()?)?;
    let scored = score_held_out(&detector, &Liveness::from_bytes(&bytes)?, &calib)?;
    let threshold = balanced_threshold(&scored);
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
        attempts: [fit.len(), calib.len()],
        calibration: [at.bpcer, at.apcer_max],
        loss: losses,
    };
    write_model(
        models,
        liveness::FILE,
        &bytes,
        liveness::MANIFEST,
        &manifest,
    )?;
    Ok(manifest)
}

/// The liveness score of each held-out attempt, through the exported network `door` as the
/// door runs it.
fn score_held_out(detector: &Detector, door: &Liveness, calib: &[&Attempt]) -> Result<Vec<Scored>> {
    let scored = calib
        .iter()
        .map(|a| score(detector, door, a))
        .collect::<Result<Vec<Scored>>>()?;
    anyhow::ensure!(
        scored
            .iter()
            .any(|s| s.species == crate::eval::liveness::REAL),
        "no live attempt among the held-out clients: more clients are needed"
    );
    Ok(scored)
}

#[cfg(test)]
mod tests {
    use super::*;

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
