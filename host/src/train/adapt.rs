//! `facegate models adapt`: retrains SFace's last layer so that masked faces embed like the
//! same faces unmasked (see [`facegate_models::adapted`] for why this layer and why no labels).
//!
//! Each photo gives one plain view and `masks` views with a synthetic mask (surgical, cloth,
//! patterned in turn), each run through the door's own detection and alignment (the masked
//! photo is detected again, as the door would see it). SFace's backbone turns every view into
//! its 7x7x1024 feature map once; the teacher's embedding of the plain view is the target for
//! all views of that photo. The layer starts from SFace's own weights and is trained with
//! AdamW on 1 - cosine, so unmasked faces keep their place while masked ones move towards it.
//!
//! Distillation alone pulls each masked view towards its own face but says nothing about
//! everyone else's, and a mask hides much of what tells two people apart: the strangers a door
//! must refuse are the masked faces that land close to an enrolled one. So a second term uses
//! the one label the folder layout gives (which photos are the same person): within each batch,
//! every view's cosine to the teacher embedding of a *different* person above
//! [`Stranger::margin`] is penalised by its squared excess, weighted by [`Stranger::weight`].

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor, Var};
use facegate_models::adapted::{self, LastLayer, Manifest, Stranger};
use facegate_models::align;
use facegate_models::detect::{Detection, Detector, DetectorConfig};
use facegate_models::image_io;
use facegate_models::mask::{self, MaskStyle};
use facegate_models::model_files::{SFACE, YUNET_DOOR, sha256_hex};
use facegate_models::pipeline::{same_face, subject};
use facegate_models::quantise::quantise_weights;
use facegate_models::refine::Refiner;
use half::f16;
use image::RgbImage;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

use crate::eval::protocol;
use crate::train::fit;
use facegate_models::mask::file_seed;

/// Training settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Masked copies per photo.
    pub masks: usize,
    /// Passes over the views.
    pub epochs: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// Views per step.
    pub batch: usize,
    /// Use at most this many photos (spread over people), for quick runs.
    pub max_photos: Option<usize>,
    /// Leave out the people `facegate eval --protocol open-set` evaluates on this folder.
    pub hold_out_open_set: bool,
    /// Shuffling seed.
    pub seed: u64,
    /// Worker threads for detection and features.
    pub threads: usize,
    /// Align every view on refined landmarks (as `--refine-landmarks` does at evaluation and
    /// at the door), with the refiner in the models folder.
    pub refine_landmarks: bool,
    /// The stranger term (weight 0 turns it off).
    pub stranger: Stranger,
}

/// The stranger term's default: measured on the LFW open-set protocol with synthetic masks
/// (docs/MASKS.md, "the mask-adapted SFace"); weight 300 from cosine 0.15 pushed harder and cost
/// MFR2 probes, weight 20 from 0.25 changed little.
pub const STRANGER: Stranger = Stranger {
    weight: 100.0,
    margin: 0.2,
};

impl Default for Config {
    fn default() -> Self {
        Self {
            masks: 2,
            epochs: 3,
            lr: 1e-4,
            batch: 256,
            max_photos: None,
            hold_out_open_set: false,
            seed: 0,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            refine_landmarks: false,
            stranger: STRANGER,
        }
    }
}

/// The photos to learn from: every image of every person folder, minus the open-set
/// protocol's people when asked, capped evenly.
pub fn photos(faces: &Path, cfg: &Config) -> Result<(usize, Vec<PathBuf>)> {
    let mut people = crate::faceset::folders::people(faces)?;
    if cfg.hold_out_open_set {
        let split = protocol::open_set(faces)?;
        let used: HashSet<&PathBuf> = split
            .gallery
            .iter()
            .map(|(_, p)| p)
            .chain(split.genuine.iter().chain(&split.impostor).map(|p| &p.path))
            .collect();
        people.retain(|p| !p.images.iter().any(|i| used.contains(i)));
    }
    let mut out: Vec<PathBuf> = people.iter().flat_map(|p| p.images.clone()).collect();
    if let Some(max) = cfg.max_photos
        && out.len() > max
    {
        let step = out.len() as f64 / max as f64;
        out = (0..max)
            .map(|i| out[(i as f64 * step) as usize].clone())
            .collect();
    }
    let kept: HashSet<&PathBuf> = out.iter().collect();
    let people = people
        .iter()
        .filter(|p| p.images.iter().any(|i| kept.contains(i)))
        .count();
    Ok((people, out))
}

/// Feature maps of all views, as f16 to halve the memory (50,176 values per view).
struct Views {
    features: Vec<f16>,
    /// Photo index of each view (its teacher).
    photo: Vec<usize>,
    /// Teacher embedding of each photo, L2-normalised.
    teacher: Vec<Vec<f32>>,
    /// Person (sub-folder) of each photo, for the stranger term.
    person: Vec<usize>,
}

impl Views {
    /// The feature maps (`[k, d]`), the teachers (`[k, o]`) and the persons of the views in
    /// `chunk`.
    fn batch(
        &self,
        chunk: &[usize],
        d: usize,
        o: usize,
        dev: &Device,
    ) -> Result<(Tensor, Tensor, Vec<usize>)> {
        let mut x = Vec::with_capacity(chunk.len() * d);
        let mut t = Vec::with_capacity(chunk.len() * o);
        let mut person = Vec::with_capacity(chunk.len());
        for &v in chunk {
            x.extend(self.features[v * d..(v + 1) * d].iter().map(|h| h.to_f32()));
            t.extend_from_slice(&self.teacher[self.photo[v]]);
            person.push(self.person[self.photo[v]]);
        }
        Ok((
            Tensor::from_vec(x, (chunk.len(), d), dev)?,
            Tensor::from_vec(t, (chunk.len(), o), dev)?,
            person,
        ))
    }
}

/// Detects, masks, aligns and runs the backbone on every photo.
fn extract(
    photos: &[PathBuf],
    cfg: &Config,
    detector: &Detector,
    sface: &[u8],
    layer: &LastLayer,
    refiner: Option<&Refiner>,
) -> Result<Views> {
    let plan = adapted::feature_plan(sface)?;
    let pb = crate::progress::bar(photos.len() as u64, "features", "photos");
    let done = crate::pool::map(photos, cfg.threads, &pb, |path| {
        photo_views(path, cfg.masks, detector, refiner, &plan)
    });
    pb.finish_and_clear();
    let mut views = Views {
        features: Vec::new(),
        photo: Vec::new(),
        teacher: Vec::new(),
        person: Vec::new(),
    };
    let mut folders: HashMap<&Path, usize> = HashMap::new();
    for (i, fs) in done
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| Some((i, v?)))
    {
        let p = views.teacher.len();
        let next = folders.len();
        let folder = photos[i].parent().unwrap_or(Path::new(""));
        views.person.push(*folders.entry(folder).or_insert(next));
        views.teacher.push(layer.apply(&fs[0]));
        for f in fs {
            views.features.extend(f.iter().map(|&x| f16::from_f32(x)));
            views.photo.push(p);
        }
    }
    Ok(views)
}

/// The plain view's features first, then one per masked copy that is still detected; `None`
/// when the photo is unreadable or has no face.
fn photo_views(
    path: &Path,
    masks: usize,
    detector: &Detector,
    refiner: Option<&Refiner>,
    plan: &std::sync::Arc<tract_onnx::prelude::TypedRunnableModel>,
) -> Option<Vec<Vec<f32>>> {
    // The door's alignment: the detector's landmarks, refined when asked.
    let align_view = |img: &RgbImage, det: &Detection| -> Option<RgbImage> {
        let det = match refiner {
            Some(r) => r.refine(img, det).ok()??,
            None => det.clone(),
        };
        Some(align::align(img, &det)?.1)
    };
    let img = image_io::open(path).ok()?;
    let dets = detector.detect(&img).ok()?;
    let det = subject(&dets, img.width(), img.height())?.clone();
    let crop = align_view(&img, &det)?;
    let mut out = vec![adapted::features(plan, &crop).ok()?];
    for k in 0..masks {
        let mut masked = img.clone();
        mask::paint(
            &mut masked,
            &det.landmarks,
            &MaskStyle::for_enrolment(file_seed(path), k),
        );
        let Ok(dets) = detector.detect(&masked) else {
            continue;
        };
        let Some(d) = same_face(&dets, &det) else {
            continue;
        };
        if let Some(crop) = align_view(&masked, d)
            && let Ok(f) = adapted::features(plan, &crop)
        {
            out.push(f);
        }
    }
    Some(out)
}

/// The trained layer and the mean of each loss term per epoch.
struct Fitted {
    weight: Vec<f32>,
    bias: Vec<f32>,
    loss: Vec<f32>,
    stranger_loss: Vec<f32>,
}

/// One batch's two loss terms: distillation (mean 1 - cosine of each view `s` to its own
/// teacher row of `t`, both `k x o`; `s` need not be normalised, `t` must be) and the stranger
/// term (mean over pairs of views of different people, `person[i] != person[j]`, of the squared
/// excess of cosine(s_i, t_j) over the margin; zero for a batch of one person).
fn batch_loss(
    s: &Tensor,
    t: &Tensor,
    person: &[usize],
    stranger: Stranger,
) -> candle_core::Result<(Tensor, Tensor)> {
    let k = person.len();
    let norm = s.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-6, f64::MAX)?;
    let s = s.broadcast_div(&norm)?;
    let distil = (1.0 - s.mul(t)?.sum(1)?)?.mean_all()?;
    let others: Vec<f32> = person
        .iter()
        .flat_map(|a| person.iter().map(move |b| f32::from(u8::from(a != b))))
        .collect();
    let pairs = others.iter().sum::<f32>().max(1.0);
    let others = Tensor::from_vec(others, (k, k), s.device())?;
    let excess = (s.matmul(&t.t()?)? - f64::from(stranger.margin))?.relu()?;
    let term = (excess.sqr()?.mul(&others)?.sum_all()? / f64::from(pairs))?;
    Ok((distil, term))
}

/// Trains the layer.
fn fit(views: &Views, layer: &LastLayer, cfg: &Config) -> Result<Fitted> {
    let dev = Device::Cpu;
    let (o, d) = (layer.outputs, layer.inputs);
    let w = Var::from_tensor(&Tensor::from_slice(&layer.weight, (o, d), &dev)?)?;
    let b = Var::from_tensor(&Tensor::from_slice(&layer.bias, o, &dev)?)?;
    let scale = Tensor::from_slice(&layer.scale, (1, o), &dev)?;
    let shift = Tensor::from_slice(&layer.shift, (1, o), &dev)?;
    let mut opt = fit::adamw(vec![w.clone(), b.clone()], cfg.lr, 0.0)?;
    let n = views.photo.len();
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let (mut loss, mut stranger_loss) = (Vec::new(), Vec::new());
    let pb = crate::progress::bar(
        (cfg.epochs * n.div_ceil(cfg.batch)) as u64,
        "training",
        "batches",
    );
    for _ in 0..cfg.epochs {
        let (mut distil_sum, mut stranger_sum) = (0.0f64, 0.0f64);
        fit::epoch(
            &mut opt,
            &mut order,
            cfg.batch,
            &mut rng,
            &pb,
            |chunk, _| {
                let (x, t, person) = views.batch(chunk, d, o, &dev)?;
                let s = x
                    .matmul(&w.as_tensor().t()?)?
                    .broadcast_add(b.as_tensor())?
                    .broadcast_mul(&scale)?
                    .broadcast_add(&shift)?;
                let (distil, term) = batch_loss(&s, &t, &person, cfg.stranger)?;
                let k = chunk.len() as f64;
                distil_sum += f64::from(distil.to_scalar::<f32>()?) * k;
                stranger_sum += f64::from(term.to_scalar::<f32>()?) * k;
                Ok((&distil + (&term * f64::from(cfg.stranger.weight))?)?)
            },
        )?;
        loss.push((distil_sum / n as f64) as f32);
        if cfg.stranger.weight > 0.0 {
            stranger_loss.push((stranger_sum / n as f64) as f32);
        }
    }
    pb.finish_and_clear();
    Ok(Fitted {
        weight: w.as_tensor().flatten_all()?.to_vec1::<f32>()?,
        bias: b.as_tensor().to_vec1::<f32>()?,
        loss,
        stranger_loss,
    })
}

/// Trains the mask-adapted SFace from the photos under `faces` and writes the fp32 file, the
/// int8 file and the manifest into `models`.
pub fn adapt(faces: &Path, models: &Path, cfg: &Config) -> Result<Manifest> {
    let (people, list) = photos(faces, cfg)?;
    if list.is_empty() {
        bail!(
            "no photos to learn from under {} (one sub-folder of photos per person)",
            faces.display()
        );
    }
    let sface = SFACE.read_verified(models)?;
    let detector = Detector::from_bytes(
        &YUNET_DOOR.read_verified(models)?,
        DetectorConfig::default(),
    )?;
    let layer = adapted::last_layer(&sface)?;
    let refiner = if cfg.refine_landmarks {
        Some(Refiner::load(models)?)
    } else {
        None
    };
    let views = extract(&list, cfg, &detector, &sface, &layer, refiner.as_ref())?;
    if views.teacher.is_empty() {
        bail!("no face found in any photo under {}", faces.display());
    }
    let fitted = fit(&views, &layer, cfg)?;
    let fp32 = adapted::with_last_layer(&sface, &fitted.weight, &fitted.bias)?;
    let (int8, _) = quantise_weights(&fp32)?;
    let manifest = Manifest {
        base_sha256: SFACE.sha256.to_owned(),
        sha256: sha256_hex(&fp32),
        sha256_int8: sha256_hex(&int8),
        faces: faces.display().to_string(),
        people,
        photos: views.teacher.len(),
        views: views.photo.len(),
        loss: fitted.loss,
        created_ms: crate::files::now_ms(),
        refiner_sha256: refiner.map(|r| r.sha256().to_owned()),
        stranger: cfg.stranger,
        stranger_loss: fitted.stranger_loss,
        door_sha256: None,
        door_sha256_int8: None,
    };
    let write = crate::files::write_atomically;
    write(&models.join(adapted::FILE), &fp32)?;
    write(&models.join(adapted::FILE_INT8), &int8)?;
    write(
        &models.join(adapted::MANIFEST),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )
    .with_context(|| format!("writing the manifest into {}", models.display()))?;
    // What the door and `Embedder::load` read: the new network's door forms.
    adapted::install_door_forms(models)?;
    Ok(adapted::read_manifest(models)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` person folders of `k` (empty) photos each, names sorted as created.
    fn folder(n: usize, k: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("test step");
        for p in 0..n {
            let person = dir.path().join(format!("person_{p:05}"));
            std::fs::create_dir(&person).expect("test step");
            for i in 0..k {
                std::fs::write(person.join(format!("{i}.jpg")), b"").expect("test step");
            }
        }
        dir
    }

    #[test]
    fn holding_out_leaves_out_exactly_the_protocol_people() {
        // 1,100 people: the protocol enrols the first 50 (>= 6 photos) and takes the next
        // 1,000 as impostors, so 50 remain for training.
        let dir = folder(1100, 6);
        let cfg = Config {
            hold_out_open_set: true,
            ..Default::default()
        };
        let (people, list) = photos(dir.path(), &cfg).expect("test step");
        assert_eq!((people, list.len()), (50, 300));
        assert!(
            list.iter()
                .all(|p| p.to_string_lossy().contains("person_010"))
        );
        let (all, _) = photos(dir.path(), &Config::default()).expect("test step");
        assert_eq!(all, 1100);
    }

    fn rows(v: &[[f32; 2]]) -> Tensor {
        let flat: Vec<f32> = v.iter().flatten().copied().collect();
        Tensor::from_vec(flat, (v.len(), 2), &Device::Cpu).expect("test step")
    }

    fn terms(s: &[[f32; 2]], t: &[[f32; 2]], person: &[usize]) -> (f32, f32) {
        let (d, x) = batch_loss(&rows(s), &rows(t), person, STRANGER).expect("test step");
        let f = |t: Tensor| t.to_scalar::<f32>().expect("test step");
        (f(d), f(x))
    }

    #[test]
    fn the_stranger_term_counts_only_other_people_above_the_margin() {
        let east = [1.0, 0.0];
        let north = [0.0, 1.0];
        let near_east = [0.8, 0.6]; // cosine 0.8 to east, 0.6 to north
        // Two people far apart, each view on its own teacher: nothing to pay.
        let (d, x) = terms(&[east, north], &[east, north], &[0, 1]);
        assert!(d.abs() < 1e-6 && x.abs() < 1e-6, "{d} {x}");
        // The same two views as one person: the cross pair is not a stranger pair.
        let (_, x) = terms(&[near_east, near_east], &[east, north], &[0, 0]);
        assert!(x.abs() < 1e-6, "{x}");
        // As two people: view 0 is 0.6 from north (person 1) and view 1 is 0.8 from east
        // (person 0); both exceed the margin 0.2, two stranger pairs in all.
        let (d, x) = terms(&[near_east, near_east], &[east, north], &[0, 1]);
        let want = ((0.6f32 - 0.2).powi(2) + (0.8f32 - 0.2).powi(2)) / 2.0;
        assert!((x - want).abs() < 1e-5, "{x} against {want}");
        // Distillation: 1 - 0.8 for view 0, 1 - 0.6 for view 1; the scale of `s` is ignored.
        let (d2, _) = terms(&[[8.0, 6.0], near_east], &[east, north], &[0, 1]);
        assert!((d - 0.3).abs() < 1e-5 && (d2 - d).abs() < 1e-6, "{d} {d2}");
    }

    #[test]
    fn a_cap_spreads_over_the_folder() {
        let dir = folder(10, 10);
        let cfg = Config {
            max_photos: Some(10),
            ..Default::default()
        };
        let (people, list) = photos(dir.path(), &cfg).expect("test step");
        assert_eq!((people, list.len()), (10, 10));
    }
}
