//! `facegate train --arch scratch`: the original design's second model, a small CNN trained from
//! nothing on the dataset's aligned crops (same augmentation as the transfer model), with an
//! explicit "other people" class learnt from impostor faces and a probability threshold
//! calibrated on *other* impostors. Exported to ONNX, int8 weights, and shipped in the same
//! signed bundle the door already loads: the door runs it through tract as an "embedder" whose
//! output is the class probabilities (see `EmbedderKind::Scratch`).

pub mod net;
pub mod onnx;

use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::{D, DType, Device, Tensor};
use candle_nn::loss;
use facegate_models::embed::{Embedder, EmbedderKind, SCRATCH_FILE};
use facegate_models::gallery::{Decision, Gallery, Person};
use facegate_models::quantise::quantise_weights;
use image::RgbImage;
use indicatif::ProgressBar;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use serde::Serialize;

use crate::eval::metrics::threshold_at_far;
use crate::faceset::Dataset;
use crate::progress::bar;
use crate::train::augment::{self, Params};
use crate::train::fit::{self, Epoch};
use crate::train::validation_split;
use net::Net;

/// Settings for one training run.
#[derive(Clone, Copy, Debug)]
pub struct ScratchConfig {
    /// Most epochs.
    pub epochs: usize,
    /// Early stopping patience (epochs without a lower validation loss).
    pub patience: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Augmented copies per training photo.
    pub augment: usize,
    /// Share of them with a mask.
    pub mask_fraction: f32,
    /// Validation share of each class's photos.
    pub val_fraction: f64,
    /// Target FAR for the threshold.
    pub far: f64,
    /// Seed for weights, dropout, augmentation, splits.
    pub seed: u64,
}

/// What training produced and measured.
#[derive(Debug, Serialize)]
pub struct ScratchReport {
    /// Enrolled people (classes 0..K-1; class K is "other people").
    pub people: Vec<String>,
    /// Training examples (photos and copies), all classes.
    pub train_examples: usize,
    /// Validation examples (each photo plain and masked).
    pub val_examples: usize,
    /// Impostor photos used as the "other people" class.
    pub other_photos: usize,
    /// Impostor views (plain + masked) of *other* people, for the threshold.
    pub calibration_views: usize,
    /// Epochs run.
    pub epochs_run: usize,
    /// The kept epoch.
    pub best_epoch: usize,
    /// Validation accuracy (all classes, "other" included) at the kept epoch.
    pub val_accuracy: f32,
    /// Target FAR.
    pub far_target: f64,
    /// Probability threshold.
    pub threshold: f32,
    /// Calibration views accepted at it.
    pub impostors_accepted: usize,
    /// Validation photos of enrolled people accepted as the right person, plain / masked, by
    /// the exported int8 model through tract (what the door runs).
    pub val_tar_unmasked: f64,
    /// The same with a synthetic mask.
    pub val_tar_masked: f64,
    /// Largest difference between candle's and the door's (int8, tract) probabilities on the
    /// validation crops.
    pub export_max_diff: f32,
    /// ONNX size, fp32 weights.
    pub model_bytes_fp32: usize,
    /// ONNX size, int8 weights (what the bundle carries).
    pub model_bytes_int8: usize,
    /// Weights in the network.
    pub parameters: usize,
    /// Wall-clock seconds of the training loop.
    pub train_seconds: f64,
    /// Per-epoch numbers.
    pub history: Vec<Epoch>,
}

/// A trained CNN, ready to bundle.
pub struct Trained {
    /// Names (no templates) and the probability threshold.
    pub gallery: Gallery,
    /// The int8-weight ONNX file.
    pub onnx: Vec<u8>,
    /// What training measured.
    pub report: ScratchReport,
    /// A validation crop it names correctly, and the name: the door's self-test.
    pub self_test: (String, RgbImage),
}

/// One training or validation example: a crop (RGB, 112x112) and its class.
struct Example {
    crop: RgbImage,
    class: u32,
    masked: bool,
}

fn batch(examples: &[&Example], dev: &Device) -> Result<(Tensor, Tensor)> {
    let side = facegate_models::align::CROP as usize;
    let plane = side * side;
    let mut x = vec![0f32; examples.len() * 3 * plane];
    for (n, e) in examples.iter().enumerate() {
        for (i, p) in e.crop.pixels().enumerate() {
            for c in 0..3 {
                x[n * 3 * plane + c * plane + i] = p[c] as f32 / 127.5 - 1.0;
            }
        }
    }
    let y: Vec<u32> = examples.iter().map(|e| e.class).collect();
    Ok((
        Tensor::from_vec(x, (examples.len(), 3, side, side), dev)?,
        Tensor::from_vec(y, examples.len(), dev)?,
    ))
}

/// Crops of the given samples: each photo plain plus `copies` augmented ones (training), or
/// plain plus masked (validation, `copies == 0`).
fn crops(
    ds: &Dataset,
    idx: &[(usize, u32)],
    copies: usize,
    mask_fraction: f32,
    seed: u64,
) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    for &(i, class) in idx {
        let s = &ds.manifest.samples[i];
        let ctx = ds.crop(s)?;
        out.push(Example {
            crop: augment::apply(&ctx, &s.landmarks, &Params::identity()),
            class,
            masked: false,
        });
        if copies == 0 {
            out.push(Example {
                crop: crate::train::masked_crop(ds, s)?,
                class,
                masked: true,
            });
        }
        for k in 0..copies {
            let p = Params::random(augment::sample_seed(seed, &s.id, k), mask_fraction);
            out.push(Example {
                crop: augment::apply(&ctx, &s.landmarks, &p),
                class,
                masked: p.mask.is_some(),
            });
        }
    }
    Ok(out)
}

/// Trains the CNN on `people` (name, sample indices) of `ds`, with `impostors` split by person
/// into "other people" training faces and calibration faces. Returns the bundle's gallery, the
/// int8 ONNX file, the report and a self-test sample.
pub fn train(
    ds: &Dataset,
    people: &[(String, Vec<usize>)],
    impostors: &Dataset,
    cfg: ScratchConfig,
) -> Result<Trained> {
    let names: Vec<String> = people.iter().map(|(n, _)| n.clone()).collect();
    let (other_idx, calib_idx) = impostor_halves(people, impostors)?;
    let (train_ex, val_ex) = examples(ds, people, impostors, &other_idx, &cfg)?;
    let dev = Device::Cpu;
    let net = Net::new(people.len() + 1, cfg.seed, &dev)?;
    let t0 = Instant::now();
    let (history, best_epoch, val_accuracy) = fit(&net, &train_ex, &val_ex, &cfg, &dev)?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let exported = export(&net, &val_ex, &dev)?;
    let (gallery, calibration_views, impostors_accepted) =
        calibrate(people, impostors, &calib_idx, &exported.door, &cfg)?;
    let (tar, self_test) = check_on_validation(people, &val_ex, &gallery, &exported.door)?;
    let ratio = |a: usize, b: usize| {
        if b == 0 {
            f64::NAN
        } else {
            a as f64 / b as f64
        }
    };
    let report = ScratchReport {
        people: names,
        train_examples: train_ex.len(),
        val_examples: val_ex.len(),
        other_photos: other_idx.len(),
        calibration_views,
        epochs_run: history.len(),
        best_epoch,
        val_accuracy,
        far_target: cfg.far,
        threshold: gallery.threshold,
        impostors_accepted,
        val_tar_unmasked: ratio(tar.0[0], tar.1[0]),
        val_tar_masked: ratio(tar.0[1], tar.1[1]),
        export_max_diff: exported.max_diff,
        model_bytes_fp32: exported.fp32_bytes,
        model_bytes_int8: exported.int8.len(),
        parameters: net
            .vars
            .iter()
            .map(|(_, v)| v.as_tensor().elem_count())
            .sum(),
        train_seconds,
        history,
    };
    Ok(Trained {
        gallery,
        onnx: exported.int8,
        report,
        self_test,
    })
}

/// Impostor people in two halves by name order (alternating), so no face both trains "other"
/// and sets the threshold: the photos that train "other" (at most three times a person's
/// share, at least 30) and those that calibrate.
fn impostor_halves(
    people: &[(String, Vec<usize>)],
    impostors: &Dataset,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let k = people.len();
    let names: Vec<String> = people.iter().map(|(n, _)| n.clone()).collect();
    let mut imp_people: Vec<&str> = impostors
        .manifest
        .samples
        .iter()
        .map(|s| s.person.as_str())
        .filter(|p| !names.iter().any(|n| n == p))
        .collect();
    imp_people.sort_unstable();
    imp_people.dedup();
    if imp_people.len() < 4 {
        bail!("the impostor dataset needs faces of at least 4 people who are not enrolled");
    }
    let is_other = |p: &str| {
        imp_people
            .binary_search(&p)
            .map(|i| i % 2 == 0)
            .unwrap_or(false)
    };
    let per_person = people.iter().map(|(_, v)| v.len()).sum::<usize>() / k.max(1);
    let other_cap = (3 * per_person).max(30);
    let other_idx: Vec<usize> = (0..impostors.manifest.samples.len())
        .filter(|&i| is_other(&impostors.manifest.samples[i].person))
        .take(other_cap)
        .collect();
    let calib_idx: Vec<usize> = (0..impostors.manifest.samples.len())
        .filter(|&i| {
            let p = impostors.manifest.samples[i].person.as_str();
            imp_people.binary_search(&p).is_ok() && !is_other(p)
        })
        .collect();

    Ok((other_idx, calib_idx))
}

/// Training and validation crops: each person's photos split by photo (training ones
/// augmented), and the "other" impostors as class `people.len()`.
fn examples(
    ds: &Dataset,
    people: &[(String, Vec<usize>)],
    impostors: &Dataset,
    other_idx: &[usize],
    cfg: &ScratchConfig,
) -> Result<(Vec<Example>, Vec<Example>)> {
    let other = people.len() as u32;
    let split = |d: &Dataset, idx: &[usize], class: u32| {
        let ids: Vec<&str> = idx
            .iter()
            .map(|&i| d.manifest.samples[i].id.as_str())
            .collect();
        let val = validation_split(&ids, cfg.val_fraction, cfg.seed);
        let (mut t, mut v) = (Vec::new(), Vec::new());
        for (&i, is_val) in idx.iter().zip(val) {
            if is_val {
                v.push((i, class))
            } else {
                t.push((i, class))
            }
        }
        (t, v)
    };
    let pb = bar(4, "preparing", "steps");
    let mut train_ex = Vec::new();
    let mut val_ex = Vec::new();
    let mut val_people = Vec::new();
    for (c, (_, idx)) in people.iter().enumerate() {
        let (t, v) = split(ds, idx, c as u32);
        train_ex.extend(crops(ds, &t, cfg.augment, cfg.mask_fraction, cfg.seed)?);
        val_ex.extend(crops(ds, &v, 0, 0.0, cfg.seed)?);
        val_people.extend(v);
    }
    pb.inc(2);
    let (t, v) = split(impostors, other_idx, other);
    train_ex.extend(crops(
        impostors,
        &t,
        cfg.augment,
        cfg.mask_fraction,
        cfg.seed,
    )?);
    val_ex.extend(crops(impostors, &v, 0, 0.0, cfg.seed)?);
    pb.finish_and_clear();
    if val_ex.is_empty() {
        bail!("no validation photos: each person needs at least 3 photos");
    }

    Ok((train_ex, val_ex))
}

/// Trains `net` with early stopping; leaves it at the best epoch. Returns the history, the
/// best epoch and its validation accuracy.
fn fit(
    net: &Net,
    train_ex: &[Example],
    val_ex: &[Example],
    cfg: &ScratchConfig,
    dev: &Device,
) -> Result<(Vec<Epoch>, usize, f32)> {
    let mut opt = fit::adamw(
        net.vars.iter().map(|(_, v)| v.clone()).collect(),
        cfg.lr,
        0.0,
    )?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed ^ 0xD1);
    let mut order: Vec<usize> = (0..train_ex.len()).collect();
    let pb = bar(cfg.epochs as u64, "training", "epochs");
    let batches = ProgressBar::hidden();
    let run = |epoch| {
        let train_loss = fit::epoch(
            &mut opt,
            &mut order,
            32,
            &mut rng,
            &batches,
            |chunk, rng| {
                let refs: Vec<&Example> = chunk.iter().map(|&i| &train_ex[i]).collect();
                let (x, y) = batch(&refs, dev)?;
                Ok(loss::cross_entropy(&net.forward(&x, Some(rng))?, &y)?)
            },
        )?;
        let (val_loss, val_accuracy) = validate(net, val_ex, dev)?;
        pb.inc(1);
        pb.set_message(format!("val acc {:.1}%", 100.0 * val_accuracy));
        Ok(Epoch {
            epoch,
            train_loss,
            val_loss,
            val_accuracy,
        })
    };
    let best = fit::keep_best(cfg.epochs, cfg.patience, true, run, || net.snapshot())?;
    pb.finish_and_clear();
    net.restore(&best.kept)?;
    let val_accuracy = best.epochs[best.best_epoch - 1].val_accuracy;
    Ok((best.epochs, best.best_epoch, val_accuracy))
}

/// Validation loss and accuracy of `net` (no dropout) on `val_ex`.
fn validate(net: &Net, val_ex: &[Example], dev: &Device) -> Result<(f32, f32)> {
    let (mut vloss, mut right) = (0.0, 0usize);
    for chunk in val_ex.chunks(64) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let (x, y) = batch(&refs, dev)?;
        let logits = net.forward(&x, None)?;
        vloss += loss::cross_entropy(&logits, &y)?.to_scalar::<f32>()? * chunk.len() as f32;
        let pred = logits.argmax(D::Minus1)?;
        right += pred
            .eq(&y)?
            .to_dtype(DType::F32)?
            .sum_all()?
            .to_scalar::<f32>()? as usize;
    }
    Ok((
        vloss / val_ex.len() as f32,
        right as f32 / val_ex.len() as f32,
    ))
}

/// The trained CNN as the door will run it.
struct Exported {
    /// Its int8 ONNX file.
    int8: Vec<u8>,
    /// Size of the fp32 ONNX file.
    fp32_bytes: usize,
    /// The int8 file loaded by tract.
    door: Embedder,
    /// Largest difference between candle's and tract's probabilities on validation crops.
    max_diff: f32,
}

/// Exports to ONNX, quantises, loads it as the door will, and measures how far it is from
/// candle's own answers.
fn export(net: &Net, val_ex: &[Example], dev: &Device) -> Result<Exported> {
    let fp32 = onnx::export(net)?;
    let (int8, _) = quantise_weights(&fp32).context("quantising the scratch CNN")?;
    let door = Embedder::from_files(
        EmbedderKind::Scratch,
        true,
        &[(
            facegate_models::nnef::door_name(SCRATCH_FILE),
            facegate_models::embed::door_form(&int8, "scratch CNN")?,
        )],
    )
    .context("the exported CNN does not load in tract")?;
    let mut export_max_diff = 0f32;
    for e in val_ex.iter().take(32) {
        let (x, _) = batch(&[e], dev)?;
        let want: Vec<f32> = candle_nn::ops::softmax(&net.forward(&x, None)?, D::Minus1)?
            .flatten_all()?
            .to_vec1()?;
        let got = door.embed(&e.crop)?;
        for (a, b) in want.iter().zip(&got) {
            export_max_diff = export_max_diff.max((a - b).abs());
        }
    }

    Ok(Exported {
        fp32_bytes: fp32.len(),
        int8,
        door,
        max_diff: export_max_diff,
    })
}

/// The gallery (one class per person, no templates) with its probability threshold set at the
/// target FAR on the calibration impostors. Returns it, the calibration views and how many of
/// them clear the threshold.
fn calibrate(
    people: &[(String, Vec<usize>)],
    impostors: &Dataset,
    calib_idx: &[usize],
    door: &Embedder,
    cfg: &ScratchConfig,
) -> Result<(Gallery, usize, usize)> {
    let other = people.len() as u32;
    let mut gallery = Gallery::new(EmbedderKind::Scratch, 0.5);
    for (name, _) in people {
        gallery.people.push(Person {
            name: name.clone(),
            templates: Vec::new(),
        });
    }
    let calib = crops(
        impostors,
        &calib_idx.iter().map(|&i| (i, other)).collect::<Vec<_>>(),
        0,
        0.0,
        cfg.seed,
    )?;
    let mut scores = Vec::with_capacity(calib.len());
    for e in &calib {
        let p = door.embed(&e.crop)?;
        scores.push(gallery.candidate(&p).map_or(0.0, |c| c.1));
    }
    let threshold = threshold_at_far(&scores, cfg.far).clamp(0.5, 1.0);
    gallery.threshold = threshold;
    gallery.validate()?;
    let impostors_accepted = scores.iter().filter(|s| **s >= threshold).count();

    Ok((gallery, calib.len(), impostors_accepted))
}

/// Right answers and counts on the validation photos of enrolled people (unmasked, masked),
/// and the self-test: the first unmasked crop the door names correctly.
#[allow(clippy::type_complexity)]
fn check_on_validation(
    people: &[(String, Vec<usize>)],
    val_ex: &[Example],
    gallery: &Gallery,
    door: &Embedder,
) -> Result<(([usize; 2], [usize; 2]), (String, RgbImage))> {
    let other = people.len() as u32;
    let mut ok = [0usize; 2];
    let mut n = [0usize; 2];
    let mut self_test = None;
    for e in val_ex.iter().filter(|e| e.class < other) {
        let m = e.masked as usize;
        n[m] += 1;
        let p = door.embed(&e.crop)?;
        if let Decision::Known { person, .. } = gallery.identify(&p)
            && person as u32 == e.class
        {
            ok[m] += 1;
            if self_test.is_none() && !e.masked {
                self_test = Some((people[person].0.clone(), e.crop.clone()));
            }
        }
    }
    let self_test = self_test.with_context(|| {
        format!(
            "the trained CNN names no unmasked validation photo correctly at its stranger \
             threshold {:.4}: it cannot keep these strangers out and let these people in (no \
             bundle written; --far raises the share of strangers let in)",
            gallery.threshold
        )
    })?;
    Ok(((ok, n), self_test))
}
