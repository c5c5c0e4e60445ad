//! `facegate models refine`: trains the landmark refiner ([`facegate_models::refine`]).
//!
//! Every photo is detected once without a mask: those landmarks are the answer. The photo is
//! then seen plain and with `masks` synthetic masks; each view is detected again, aligned on
//! its own (worse) landmarks as the door would, and the network learns to find the plain
//! landmarks in that crop. No names are needed. One photo in ten is held back to report the
//! error on crops it never trained on.

use std::path::Path;

use anyhow::Result;
use candle_core::{Device, Tensor};
use facegate_models::align;
use facegate_models::detect::Detector;
use facegate_models::image_io;
use facegate_models::mask::{self, MaskStyle};
use facegate_models::model_files::sha256_hex;
use facegate_models::pipeline::{same_face, subject};
use facegate_models::refine::{self, Manifest, OUT_SCALE, SIDE};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::files::write_model;
use crate::train::cnn::Cnn;
use crate::train::fit::{Schedule, minibatches};
use facegate_models::mask::file_seed;

/// Training settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Masked copies per photo (kinds cycle surgical, cloth, patterned).
    pub masks: usize,
    /// Passes over the crops.
    pub epochs: usize,
    /// AdamW learning rate (divided by 3 for the last third of the epochs).
    pub lr: f64,
    /// Crops per step.
    pub batch: usize,
    /// Leave out the people `facegate eval --protocol open-set` evaluates on this folder.
    pub hold_out_open_set: bool,
    /// Use at most this many photos, for quick runs.
    pub max_photos: Option<usize>,
    /// Initialisation and shuffling seed.
    pub seed: u64,
    /// Worker threads for detection.
    pub threads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            masks: 3,
            epochs: 8,
            lr: 1e-3,
            batch: 64,
            hold_out_open_set: false,
            max_photos: None,
            seed: 0,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Training crops: network inputs, targets (the plain landmarks in the crop, as the network
/// outputs them), and where each came from. The mask-state trainer uses the same crops (its
/// own inputs, and `masked` as the answer).
#[derive(Default)]
pub(crate) struct Crops {
    pub(crate) inputs: Vec<f32>,
    targets: Vec<f32>,
    /// Detector's own landmarks in the crop, for the baseline error.
    detected: Vec<f32>,
    pub(crate) masked: Vec<bool>,
    pub(crate) photo: Vec<usize>,
}

impl Crops {
    pub(crate) fn len(&self) -> usize {
        self.masked.len()
    }
}

/// A network's input made from an aligned 112x112 crop.
pub(crate) type Input = fn(&image::RgbImage) -> Vec<f32>;

/// Picks the k-th mask painted on a photo from the photo's seed.
pub(crate) type Styles = fn(u64, usize) -> MaskStyle;

/// Photos whose clothes and backgrounds give masks a real fabric ([`fabric`]); `None`: every
/// mask is painted by its style alone (the landmark refiner).
pub(crate) type Fabrics<'a> = Option<&'a [std::path::PathBuf]>;

/// The fabric for the k-th mask of a photo (mask seed `seed`), or `None` for the painter's
/// surface: half the cloth and patterned masks (never a surgical one) take a square patch from
/// a lower corner of another photo in `fabrics`, chosen by the seed. A portrait's lower corners
/// are mostly shirts, jackets, ties and scenery: real prints and weaves that no painter
/// imitates, so the mask-state classifier learns the mask's outline rather than its print.
fn fabric(seed: u64, k: usize, style: &MaskStyle, fabrics: Fabrics) -> Option<image::RgbImage> {
    let list = fabrics.filter(|l| !l.is_empty())?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ (k as u64).wrapping_mul(0xF4B1_C0DE));
    if style.kind == mask::MaskKind::Surgical || rng.random_bool(0.5) {
        return None;
    }
    let donor = image_io::open(&list[rng.random_range(0..list.len())]).ok()?;
    let (w, h) = (donor.width(), donor.height());
    if w == 0 || h == 0 {
        return None;
    }
    let side = (w.min(h) * 3 / 10).max(1);
    let x = if rng.random_bool(0.5) { 0 } else { w - side };
    let patch = image::imageops::crop_imm(&donor, x, h - side, side, side).to_image();
    Some(if rng.random_bool(0.5) {
        image::imageops::flip_horizontal(&patch)
    } else {
        patch
    })
}

/// One training crop: network input, target, the detector's own points (both as the network
/// outputs them), masked or not.
struct Sample {
    input: Vec<f32>,
    target: [f32; 10],
    detected: [f32; 10],
    masked: bool,
}

/// The plain view first, then each masked view still detected; empty when the photo is
/// unreadable or has no face.
fn photo_crops(
    path: &Path,
    masks: usize,
    detector: &Detector,
    input: Input,
    styles: Styles,
    fabrics: Fabrics,
) -> Vec<Sample> {
    let Ok(img) = image_io::open(path) else {
        return Vec::new();
    };
    let Ok(dets) = detector.detect(&img) else {
        return Vec::new();
    };
    let Some(plain) = subject(&dets, img.width(), img.height()).cloned() else {
        return Vec::new();
    };
    let template = refine::template_flat();
    let mut out = Vec::new();
    for k in 0..=masks {
        let mut view = img.clone();
        if k > 0 {
            let seed = file_seed(path) ^ 0x5EED;
            let style = styles(seed, k - 1);
            match fabric(seed, k - 1, &style, fabrics) {
                Some(f) => mask::paint_fabric(&mut view, &plain.landmarks, &style, &f),
                None => mask::paint(&mut view, &plain.landmarks, &style),
            };
        }
        let Ok(dets) = detector.detect(&view) else {
            continue;
        };
        let Some(det) = same_face(&dets, &plain) else {
            continue;
        };
        let Some((t, crop)) = align::align(&view, det) else {
            continue;
        };
        let mut target = [0.0; 10];
        let mut detected = [0.0; 10];
        for i in 0..5 {
            let a = t.apply([plain.landmarks[i][0] as f64, plain.landmarks[i][1] as f64]);
            let b = t.apply([det.landmarks[i][0] as f64, det.landmarks[i][1] as f64]);
            for c in 0..2 {
                target[2 * i + c] = (a[c] as f32 - template[2 * i + c]) / OUT_SCALE;
                detected[2 * i + c] = (b[c] as f32 - template[2 * i + c]) / OUT_SCALE;
            }
        }
        out.push(Sample {
            input: input(&crop),
            target,
            detected,
            masked: k > 0,
        });
    }
    out
}

/// Each photo plain and with `masks` synthetic masks (the k-th of a photo from `styles`, some
/// of real fabric from `fabrics`), detected again and aligned as the door would, on `threads`
/// threads; `input` makes the network input of each aligned crop.
pub(crate) fn collect(
    photos: &[std::path::PathBuf],
    masks: usize,
    threads: usize,
    detector: &Detector,
    input: Input,
    styles: Styles,
    fabrics: Fabrics,
) -> Crops {
    let pb = crate::progress::bar(photos.len() as u64, "crops", "photos");
    let done = crate::pool::map(photos, threads, &pb, |path| {
        photo_crops(path, masks, detector, input, styles, fabrics)
    });
    pb.finish_and_clear();
    let mut crops = Crops::default();
    for (i, views) in done.into_iter().enumerate() {
        for v in views {
            crops.inputs.extend(v.input);
            crops.targets.extend(v.target);
            crops.detected.extend(v.detected);
            crops.masked.push(v.masked);
            crops.photo.push(i);
        }
    }
    crops
}

fn batch(crops: &Crops, idx: &[usize], dev: &Device) -> Result<(Tensor, Tensor)> {
    let s = (SIDE * SIDE) as usize;
    let x: Vec<f32> = idx
        .iter()
        .flat_map(|&i| crops.inputs[i * s..(i + 1) * s].iter().copied())
        .collect();
    let y: Vec<f32> = idx
        .iter()
        .flat_map(|&i| crops.targets[i * 10..(i + 1) * 10].iter().copied())
        .collect();
    Ok((
        Tensor::from_vec(x, (idx.len(), 1, SIDE as usize, SIDE as usize), dev)?,
        Tensor::from_vec(y, (idx.len(), 10), dev)?,
    ))
}

fn median(mut v: Vec<f32>) -> f32 {
    if v.is_empty() {
        return f32::NAN;
    }
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

/// Median distance (crop pixels, over landmarks and crops) from the plain landmarks on the
/// held-back masked crops: the detector's own, and the network's.
fn held_back_error(net: &Cnn, crops: &Crops, held: &[usize], dev: &Device) -> Result<[f32; 2]> {
    let masked: Vec<usize> = held.iter().copied().filter(|&i| crops.masked[i]).collect();
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for chunk in masked.chunks(256) {
        let (x, _) = batch(crops, chunk, dev)?;
        let pred = net.forward(&x)?.to_vec2::<f32>()?;
        for (p, &i) in pred.iter().zip(chunk) {
            let t = &crops.targets[i * 10..(i + 1) * 10];
            let d = &crops.detected[i * 10..(i + 1) * 10];
            for k in 0..5 {
                let dist = |a: &[f32]| {
                    OUT_SCALE
                        * ((a[2 * k] - t[2 * k]).powi(2) + (a[2 * k + 1] - t[2 * k + 1]).powi(2))
                            .sqrt()
                };
                before.push(dist(d));
                after.push(dist(p));
            }
        }
    }
    Ok([median(before), median(after)])
}

/// Trains the refiner on the photos under `faces` and writes it (and its manifest) into
/// `models`.
pub fn train(faces: &Path, models: &Path, cfg: &Config) -> Result<Manifest> {
    let yunet = facegate_models::model_files::YUNET_DOOR.read_verified(models)?;
    let detector = Detector::from_bytes(&yunet, Default::default())?;
    let adapt_cfg = crate::train::adapt::Config {
        hold_out_open_set: cfg.hold_out_open_set,
        max_photos: cfg.max_photos,
        ..Default::default()
    };
    let (_, photos) = crate::train::adapt::photos(faces, &adapt_cfg)?;
    let crops = collect(
        &photos,
        cfg.masks,
        cfg.threads,
        &detector,
        refine::input,
        MaskStyle::for_enrolment,
        None,
    );
    anyhow::ensure!(
        crops.len() >= 20,
        "only {} face crops in {}: the refiner needs photos with faces",
        crops.len(),
        faces.display()
    );
    let (held, train): (Vec<usize>, Vec<usize>) =
        (0..crops.len()).partition(|&i| crops.photo[i] % 10 == 9);
    let dev = Device::Cpu;
    let net = Cnn::new(refine::NET, cfg.seed, 0.1, &dev)?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed ^ 0xBA7C);
    let schedule = Schedule {
        epochs: cfg.epochs,
        batch: cfg.batch,
        lr: cfg.lr,
        weight_decay: 1e-4,
        anneal: true,
    };
    let loss = minibatches(
        &net.vars,
        &schedule,
        &train,
        &mut rng,
        "refiner",
        |chunk, rng| {
            let (x, y) = batch(&crops, chunk, &dev)?;
            // Lighting varies at a door: scale the contrast of each batch a little.
            let x = (x * rng.random_range(0.8f64..1.2))?;
            Ok((net.forward(&x)? - y)?.abs()?.mean_all()?)
        },
    )?;
    let median_error_px = held_back_error(&net, &crops, &held, &dev)?;
    let bytes = refine::graph(&net.weights()?)?;
    let manifest = Manifest {
        sha256: sha256_hex(&bytes),
        faces: faces.display().to_string(),
        photos: photos.len(),
        crops: crops.len(),
        median_error_px,
        loss,
        data: None,
        command: None,
        seed: Some(cfg.seed),
    };
    write_model(models, refine::FILE, &bytes, refine::MANIFEST, &manifest)?;
    Ok(manifest)
}
