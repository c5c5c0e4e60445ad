//! `facegate models mask-state`: trains the mask-state classifier
//! ([`facegate_models::maskstate`]) on the same crops as the landmark refiner: every photo
//! plain and with synthetic masks (surgical, cloth, patterned in turn, each in any colour:
//! [`MaskStyle::any_colour`], half the cloth ones of real fabric cut from other photos),
//! detected again and aligned as the door would align it; the
//! answer is whether a mask was painted. One photo in ten is held back to report the accuracy
//! on crops it never trained on; real masks are measured separately
//! (`facegate eval MFR2 --protocol mask-state`).

use std::path::Path;

use anyhow::Result;
use candle_core::{Device, Tensor};
use facegate_models::detect::Detector;
use facegate_models::mask::MaskStyle;
use facegate_models::maskstate::{self, Manifest, NET, SIDE};
use facegate_models::model_files::sha256_hex;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::files::write_model;
use crate::train::cnn::Cnn;
use crate::train::fit::{Schedule, minibatches};
use crate::train::refiner::{Crops, collect};

/// Training settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Masked copies per photo (kinds cycle surgical, cloth, patterned).
    pub masks: usize,
    /// Passes over the crops.
    pub epochs: usize,
    /// Crops per step.
    pub batch: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// Leave out the people `facegate eval --protocol open-set` evaluates on this folder.
    pub hold_out_open_set: bool,
    /// Use at most this many photos.
    pub max_photos: Option<usize>,
    /// Seed of the weights, the order and the augmentation.
    pub seed: u64,
    /// Half the cloth masks of real fabric cut from other photos (see `refiner::fabric`).
    pub fabric: bool,
    /// Share of training crops shown in grey.
    pub grey: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            masks: 1,
            epochs: 4,
            batch: 64,
            lr: 1e-3,
            hold_out_open_set: true,
            max_photos: Some(3000),
            seed: 1,
            fabric: true,
            grey: 0.1,
        }
    }
}

const PER: usize = (3 * SIDE * SIDE) as usize;

/// A batch, each crop mirrored at random, its contrast scaled a little and each colour channel
/// a little more (a colour cast, as from the door's light), and a share `grey` of the crops in
/// grey (a door camera's infrared night mode). (Putting the colour channels in a random order
/// as well, so that the painter's few colours would not be the cue, was tried: MFR2 accuracy
/// fell from 91.8% to 74.6%.)
fn batch(
    crops: &Crops,
    idx: &[usize],
    rng: Option<&mut Xoshiro256PlusPlus>,
    grey: f64,
    dev: &Device,
) -> Result<(Tensor, Tensor)> {
    let s = SIDE as usize;
    let plane = s * s;
    let mut x = Vec::with_capacity(idx.len() * PER);
    let mut rng = rng;
    for &i in idx {
        let src = &crops.inputs[i * PER..(i + 1) * PER];
        let (flip, gain, cast, mono) = match rng.as_deref_mut() {
            Some(r) => (
                r.random_bool(0.5),
                r.random_range(0.8f32..1.2),
                [(); 3].map(|_| r.random_range(0.85f32..1.15)),
                r.random_bool(grey.clamp(0.0, 1.0)),
            ),
            None => (false, 1.0, [1.0; 3], false),
        };
        for (c, cast) in cast.iter().enumerate() {
            for row in 0..s {
                for col in 0..s {
                    let at = row * s + if flip { s - 1 - col } else { col };
                    let v = if mono {
                        // ITU-R BT.601 luma, as a grey camera would see the three channels.
                        0.299 * src[at] + 0.587 * src[plane + at] + 0.114 * src[2 * plane + at]
                    } else {
                        src[c * plane + at] * cast
                    };
                    x.push(v * gain);
                }
            }
        }
    }
    let y: Vec<f32> = idx
        .iter()
        .map(|&i| if crops.masked[i] { 1.0 } else { 0.0 })
        .collect();
    Ok((
        Tensor::from_vec(x, (idx.len(), 3, s, s), dev)?,
        Tensor::from_vec(y, (idx.len(), 1), dev)?,
    ))
}

/// The accuracy on bare and on masked crops of the `held` items, through the exported file
/// `bytes` as the door runs it (NaN for a kind with no crop).
fn held_back(bytes: &[u8], crops: &Crops, held: &[usize]) -> Result<[f64; 2]> {
    let door = maskstate::MaskState::from_bytes(bytes)?;
    let mut right = [(0usize, 0usize); 2];
    for &i in held {
        let logit = door.run(crops.inputs[i * PER..(i + 1) * PER].to_vec())?;
        let m = usize::from(crops.masked[i]);
        right[m].1 += 1;
        right[m].0 += usize::from((logit > 0.0) == crops.masked[i]);
    }
    let acc = |(k, n): (usize, usize)| {
        if n == 0 {
            f64::NAN
        } else {
            k as f64 / n as f64
        }
    };
    Ok([acc(right[0]), acc(right[1])])
}

/// Trains on the photos under `faces` and writes the network and its manifest into `models`.
pub fn train(faces: &Path, models: &Path, cfg: &Config, command: &str) -> Result<Manifest> {
    let yunet = facegate_models::model_files::YUNET_DOOR.read_verified(models)?;
    let detector = Detector::from_bytes(&yunet, Default::default())?;
    let adapt_cfg = crate::train::adapt::Config {
        hold_out_open_set: cfg.hold_out_open_set,
        max_photos: cfg.max_photos,
        ..Default::default()
    };
    let (_, photos) = crate::train::adapt::photos(faces, &adapt_cfg)?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let crops = collect(
        &photos,
        cfg.masks,
        threads,
        &detector,
        maskstate::input,
        MaskStyle::any_colour,
        cfg.fabric.then_some(photos.as_slice()),
    );
    anyhow::ensure!(
        crops.len() >= 20 && crops.masked.contains(&true) && crops.masked.contains(&false),
        "only {} face crops in {}: bare and masked ones are needed",
        crops.len(),
        faces.display()
    );
    let (held, train): (Vec<usize>, Vec<usize>) =
        (0..crops.len()).partition(|&i| crops.photo[i] % 10 == 9);
    let dev = Device::Cpu;
    let net = Cnn::new(NET, cfg.seed, 1.0, &dev)?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed ^ 0x3A5C);
    let schedule = Schedule {
        epochs: cfg.epochs,
        batch: cfg.batch,
        lr: cfg.lr,
        weight_decay: 1e-4,
        anneal: false,
    };
    let losses = minibatches(
        &net.vars,
        &schedule,
        &train,
        &mut rng,
        "mask state",
        |chunk, rng| {
            let (x, y) = batch(&crops, chunk, Some(rng), cfg.grey, &dev)?;
            crate::train::cnn::bce(&net.forward(&x)?, &y, 1.0)
        },
    )?;
    let bytes = NET.graph(&net.weights()?)?;
    // Held-back accuracy through the exported file, as the door runs it.
    let held_back_accuracy = held_back(&bytes, &crops, &held)?;
    let manifest = Manifest {
        sha256: sha256_hex(&bytes),
        data: format!(
            "{} ({} photos, each plain and with {} synthetic mask(s){})",
            faces.display(),
            photos.len(),
            cfg.masks,
            if cfg.fabric {
                ", half the cloth ones of fabric cut from the photos' lower corners"
            } else {
                ""
            }
        ),
        command: command.to_owned(),
        seed: cfg.seed,
        crops: crops.len(),
        held_back_accuracy,
        loss: losses,
    };
    write_model(
        models,
        maskstate::FILE,
        &bytes,
        maskstate::MANIFEST,
        &manifest,
    )?;
    Ok(manifest)
}
