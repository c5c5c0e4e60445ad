//! `facegate train`: a dataset of enrolled people (and one of impostors) -> a signed bundle
//! with gallery templates, a trained head and a stranger threshold calibrated to a target
//! false-accept rate.
//!
//! Transfer learning, open-set: the embedder stays frozen (the door's int8 file), a softmax head
//! is fitted on each person's photos plus augmented and masked copies, and the threshold is set
//! on faces of people who are NOT enrolled (each also with a synthetic mask, since masked
//! strangers come to doors too). Copies of one photo never straddle the train/validation split.

use crate::cmd::opts::ModelsDir;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

use std::time::Instant;

use anyhow::{Context, Result, bail};
use facegate_models::bundle::{Bundle, SelfTest};
use facegate_models::embed::Embedder;
use facegate_models::gallery::{Decision, Enrolment, Gallery, default_threshold};
use facegate_models::model_files::YUNET_DOOR;
use serde::Serialize;

use crate::cmd::keys::read_secret;
use crate::faceset::Dataset;
use crate::files::{now_ms, write_atomically};
use crate::train::fit::Epoch;
use crate::train::head::{self, Examples, HeadConfig};
use crate::train::{
    View, augmented_views, calibrate, enrolled_among_impostors, impostor_scores, probe_views,
    threshold_to_ship, validation_split,
};

/// What `facegate train --report` writes.
#[derive(Debug, Serialize)]
pub struct TrainReport {
    /// Enrolled people, in class order.
    pub people: Vec<String>,
    /// Photos per person used for training / validation.
    pub photos: Vec<(usize, usize)>,
    /// Training examples (photos and augmented copies).
    pub train_examples: usize,
    /// Validation examples.
    pub val_examples: usize,
    /// Epochs run and the one kept.
    pub epochs_run: usize,
    /// The kept epoch.
    pub best_epoch: usize,
    /// Validation accuracy of the head alone (closed set) at the kept epoch.
    pub val_accuracy: f32,
    /// Impostor views used for calibration (unmasked + masked).
    pub impostor_views: usize,
    /// Target FAR.
    pub far_target: f64,
    /// Calibrated threshold.
    pub threshold: f32,
    /// Impostor views accepted at that threshold.
    pub impostors_accepted: usize,
    /// Validation photos (unmasked) accepted as the right person.
    pub val_tar_unmasked: f64,
    /// Validation photos with a synthetic mask accepted as the right person.
    pub val_tar_masked: f64,
    /// Seconds spent embedding augmented views.
    pub embed_seconds: f64,
    /// Seconds spent fitting the head.
    pub fit_seconds: f64,
    /// Per-epoch numbers.
    pub history: Vec<Epoch>,
}

/// Runs `facegate train`.
pub fn run(cmd: TrainCmd) -> Result<()> {
    let key = read_secret(&crate::home::secret_key_path(cmd.key.as_deref())?)?;
    let version = crate::home::next_version(cmd.version, &key)?;
    let signer = Signer { key, version };
    let ds = Dataset::open(&cmd.dataset)?;
    let m = &ds.manifest;
    let models = cmd.models.resolve();
    let embedder = Embedder::load(&models, m.embedder, m.quantised)
        .with_context(|| format!("loading the embedder from {}", models.display()))?;

    let people = enrolled_people(&cmd, &ds)?;
    if cmd.arch == Arch::Scratch {
        return scratch(&cmd, &ds, &people, &signer);
    }
    let Split {
        train_idx,
        val_idx,
        photos,
    } = split_photos(&cmd, &ds, &people);
    let class_of = |sample: usize| {
        people
            .iter()
            .position(|(n, _)| n == &m.samples[sample].person)
            .unwrap_or(0) as u32
    };
    let fitted = fit_head(
        &cmd,
        &ds,
        &embedder,
        people.len(),
        &train_idx,
        &val_idx,
        &class_of,
    )?;

    let mut gallery = photo_gallery(&ds, &people, fitted.head)?;

    let (impostor_views, threshold) = stranger_threshold(&cmd, &ds, &people, &embedder, &gallery)?;
    gallery.threshold = threshold;
    gallery.validate()?;
    let impostors_accepted = impostor_scores(&gallery, &impostor_views)
        .iter()
        .filter(|s| **s >= threshold)
        .count();

    // Validation TAR with the final gallery, unmasked and masked.
    let val_probe = probe_views(&embedder, &ds, &val_idx, "checking")?;
    let (val_tar_unmasked, val_tar_masked) = (
        validation_tar(&gallery, &val_probe, false, &class_of),
        validation_tar(&gallery, &val_probe, true, &class_of),
    );
    refuse_a_door_that_rarely_opens(&cmd, val_tar_unmasked, gallery.threshold)?;

    let bytes = head_bundle(&cmd, &signer, &ds, &people, &gallery, &models)?;

    let history = &fitted.history;
    let best = &history.epochs[history.best_epoch - 1];
    let report = TrainReport {
        people: people.iter().map(|(n, _)| n.clone()).collect(),
        photos,
        train_examples: fitted.train_views.len(),
        val_examples: fitted.val_views.len(),
        epochs_run: history.epochs.len(),
        best_epoch: history.best_epoch,
        val_accuracy: best.val_accuracy,
        impostor_views: impostor_views.len(),
        far_target: cmd.far,
        threshold,
        impostors_accepted,
        val_tar_unmasked,
        val_tar_masked,
        embed_seconds: fitted.embed_seconds,
        fit_seconds: fitted.fit_seconds,
        history: history.epochs.clone(),
    };
    print_summary(&report, history.stopped_early);
    finish(&cmd, &ds, bytes.len(), version, &report)
}

/// Signs the transfer model's bundle: `gallery` with the dataset's embedder files and a
/// self-test from one of the enrolled photos.
fn head_bundle(
    cmd: &TrainCmd,
    signer: &Signer,
    ds: &Dataset,
    people: &[(String, Vec<usize>)],
    gallery: &Gallery,
    models: &std::path::Path,
) -> Result<Vec<u8>> {
    let m = &ds.manifest;
    let (sample, index) = self_test_sample(ds, people, gallery)?;
    let known = m.samples[index].embedding.clone();
    let files = m.embedder.read_files(models, m.quantised)?;
    write_bundle(cmd, signer, gallery, m.quantised, files, sample, |_| {
        Ok(known)
    })
}

/// `--arch scratch`: the CNN, its bundle and report.
fn scratch(
    cmd: &TrainCmd,
    ds: &Dataset,
    people: &[(String, Vec<usize>)],
    signer: &Signer,
) -> Result<()> {
    let Some(imp_dir) = &cmd.impostors else {
        bail!(
            "--arch scratch needs --impostors DATASET: its \"other people\" class and its threshold are learnt from faces of people who are not enrolled"
        );
    };
    let impostors = Dataset::open(imp_dir)?;
    let cfg = crate::train::scratch::ScratchConfig {
        epochs: cmd.epochs.unwrap_or(60),
        patience: cmd.patience.unwrap_or(10),
        lr: cmd.lr.unwrap_or(0.001),
        augment: cmd.augment,
        mask_fraction: cmd.mask_fraction,
        val_fraction: cmd.val_fraction,
        far: cmd.far,
        seed: cmd.seed,
    };
    let crate::train::scratch::Trained {
        gallery,
        onnx,
        report,
        self_test: (label, crop),
    } = crate::train::scratch::train(ds, people, &impostors, cfg)?;
    // The door reads the CNN's door form, as every network a bundle carries.
    let files = vec![(
        facegate_models::nnef::door_name(facegate_models::embed::SCRATCH_FILE),
        facegate_models::embed::door_form(&onnx, "scratch CNN")?,
    )];
    // The known sample: the class probabilities of one of the person's photos.
    let bytes = write_bundle(cmd, signer, &gallery, true, files, &label, |e| {
        Ok(e.embed(&crop)?)
    })?;
    println!(
        "trained a CNN from scratch ({} weights) for {} + other on {} examples ({} validation) in {:.1} s: best epoch {} of {}, validation accuracy {:.2}%",
        report.parameters,
        facegate_models::gallery::people_count(report.people.len()),
        report.train_examples,
        report.val_examples,
        report.train_seconds,
        report.best_epoch,
        report.epochs_run,
        100.0 * report.val_accuracy
    );
    println!(
        "threshold {:.4} for FAR {}: {} of {} impostor views accepted; validation TAR {:.2}% unmasked, {:.2}% masked; model {} bytes int8 ({} fp32), export max diff {:.2e}",
        report.threshold,
        cmd.far,
        report.impostors_accepted,
        report.calibration_views,
        100.0 * report.val_tar_unmasked,
        100.0 * report.val_tar_masked,
        report.model_bytes_int8,
        report.model_bytes_fp32,
        report.export_max_diff
    );
    finish(cmd, ds, bytes.len(), signer.version, &report)
}

/// The last words of both architectures: where the bundle went, the optional preview and
/// report.
fn finish(
    cmd: &TrainCmd,
    ds: &Dataset,
    bytes: usize,
    version: u32,
    report: &impl Serialize,
) -> Result<()> {
    println!(
        "wrote {} ({bytes} bytes, version {})",
        cmd.out.display(),
        version
    );
    if let Some(path) = &cmd.preview {
        crate::cmd::augment::preview(ds, path, 8, cmd.augment, cmd.mask_fraction, cmd.seed)?;
        println!(
            "wrote {} (training photos and their augmented copies)",
            path.display()
        );
    }
    if let Some(path) = &cmd.report {
        write_atomically(path, &serde_json::to_vec_pretty(report)?)?;
    }
    Ok(())
}

/// People to enrol: the dataset's (or `--only` those), sorted by name; at least two.
fn enrolled_people(cmd: &TrainCmd, ds: &Dataset) -> Result<Vec<(String, Vec<usize>)>> {
    let m = &ds.manifest;
    let mut people: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, s) in m.samples.iter().enumerate() {
        if !cmd.only.is_empty() && !cmd.only.iter().any(|n| n == &s.person) {
            continue;
        }
        match people.iter_mut().find(|(n, _)| n == &s.person) {
            Some((_, v)) => v.push(i),
            None => people.push((s.person.clone(), vec![i])),
        }
    }
    people.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    if let Some(missing) = cmd
        .only
        .iter()
        .find(|n| !people.iter().any(|(p, _)| p == *n))
    {
        bail!(
            "--only {missing}: nobody of that name in {}",
            cmd.dataset.display()
        );
    }
    if people.len() < 2 {
        bail!(
            "{} holds {} person(s); training a head needs at least two (import more people)",
            cmd.dataset.display(),
            people.len()
        );
    }
    Ok(people)
}

/// Photos for training and for validation, split per person by photo (never a photo's
/// copies on both sides).
struct Split {
    train_idx: Vec<usize>,
    val_idx: Vec<usize>,
    /// (training, validation) photos per person.
    photos: Vec<(usize, usize)>,
}

fn split_photos(cmd: &TrainCmd, ds: &Dataset, people: &[(String, Vec<usize>)]) -> Split {
    let m = &ds.manifest;
    let mut split = Split {
        train_idx: Vec::new(),
        val_idx: Vec::new(),
        photos: Vec::new(),
    };
    for (_, idx) in people {
        let ids: Vec<&str> = idx.iter().map(|&i| m.samples[i].id.as_str()).collect();
        let val = validation_split(&ids, cmd.val_fraction, cmd.seed);
        let nv = val.iter().filter(|v| **v).count();
        split.photos.push((idx.len() - nv, nv));
        for (&i, v) in idx.iter().zip(val) {
            if v {
                split.val_idx.push(i)
            } else {
                split.train_idx.push(i)
            }
        }
    }
    split
}

/// The stranger threshold: `--threshold`, or calibrated on `--impostors` (never looser than
/// the embedder's calibrated default when too few to resolve the FAR, and refused when the
/// impostors hold the household's own faces). Returns the impostor views it was measured on.
fn stranger_threshold(
    cmd: &TrainCmd,
    ds: &Dataset,
    people: &[(String, Vec<usize>)],
    embedder: &Embedder,
    gallery: &Gallery,
) -> Result<(Vec<View>, f32)> {
    let m = &ds.manifest;
    Ok(match (&cmd.impostors, cmd.threshold) {
        (_, Some(t)) => (Vec::new(), t),
        (Some(dir), None) => {
            let imp = Dataset::open(dir)?;
            if imp.manifest.embedder != m.embedder || imp.manifest.quantised != m.quantised {
                bail!(
                    "{} was imported with a different embedder than {}",
                    dir.display(),
                    cmd.dataset.display()
                );
            }
            let enrolled: Vec<&str> = people.iter().map(|(n, _)| n.as_str()).collect();
            let idx: Vec<usize> = (0..imp.manifest.samples.len())
                .filter(|&i| !enrolled.contains(&imp.manifest.samples[i].person.as_str()))
                .collect();
            if idx.is_empty() {
                bail!(
                    "{} has no faces of people outside the enrolled ones",
                    dir.display()
                );
            }
            let views = probe_views(embedder, &imp, &idx, "impostors")?;
            let same = enrolled_among_impostors(gallery, &views, SAME_FACE);
            if let Some((i, name, score)) = same.first() {
                let sample = &imp.manifest.samples[views[*i].sample];
                bail!(
                    "{} of the impostor faces are enrolled people's own faces (the first: {}'s \
                     photo {} is {name} at cosine {score:.3}): a threshold above them would \
                     never open the door. Remove those photos from {} (`facegate import` \
                     keeps one folder per person), then train again",
                    same.len(),
                    sample.person,
                    sample.source,
                    dir.display()
                );
            }
            let t = calibrate(gallery, &views, cmd.far);
            let floor = default_threshold(m.embedder, m.quantised, false, Enrolment::PHOTOS);
            let (t, note) = threshold_to_ship(t, views.len(), cmd.far, floor);
            if let Some(note) = note {
                eprintln!("note: {note}");
            }
            (views, t)
        }
        (None, None) => bail!(
            "give --impostors DATASET (faces of people who are not enrolled, from `facegate import`) to calibrate the stranger threshold, or --threshold"
        ),
    })
}

/// The head and what fitting it took.
struct Fitted {
    head: facegate_models::head::Head,
    history: head::History,
    train_views: Vec<View>,
    val_views: Vec<View>,
    embed_seconds: f64,
    fit_seconds: f64,
}

/// Augments and embeds the training and validation photos, then fits the head on them.
fn fit_head(
    cmd: &TrainCmd,
    ds: &Dataset,
    embedder: &Embedder,
    classes: usize,
    train_idx: &[usize],
    val_idx: &[usize],
    class_of: &dyn Fn(usize) -> u32,
) -> Result<Fitted> {
    let t0 = Instant::now();
    let train_views = augmented_views(
        embedder,
        ds,
        train_idx,
        cmd.augment,
        cmd.mask_fraction,
        cmd.seed,
        "augmenting",
    )?;
    let val_views = augmented_views(
        embedder,
        ds,
        val_idx,
        cmd.augment,
        cmd.mask_fraction,
        cmd.seed ^ 1,
        "validation",
    )?;
    let embed_seconds = t0.elapsed().as_secs_f64();
    let examples = |views: &[View]| Examples {
        x: views
            .iter()
            .flat_map(|v| v.embedding.iter().copied())
            .collect(),
        y: views.iter().map(|v| class_of(v.sample)).collect(),
    };
    let t1 = Instant::now();
    let cfg = HeadConfig {
        epochs: cmd.epochs.unwrap_or(400),
        patience: cmd.patience.unwrap_or(30),
        lr: cmd.lr.unwrap_or(0.002),
        min_prob: cmd.min_prob,
    };
    let dim = ds.manifest.embedder.dim();
    let (head, history) = head::train(
        &examples(&train_views),
        &examples(&val_views),
        classes,
        dim,
        cfg,
    )?;
    let fit_seconds = t1.elapsed().as_secs_f64();
    Ok(Fitted {
        head,
        history,
        train_views,
        val_views,
        embed_seconds,
        fit_seconds,
    })
}

/// The gallery: every photo of each person (not the augmented copies: masked templates would
/// draw masked strangers towards them), with the trained head.
fn photo_gallery(
    ds: &Dataset,
    people: &[(String, Vec<usize>)],
    head: facegate_models::head::Head,
) -> Result<Gallery> {
    let mut gallery = Gallery::new(ds.manifest.embedder, 0.0);
    for (name, idx) in people {
        for &i in idx {
            gallery.enrol(name, ds.manifest.samples[i].embedding.clone())?;
        }
    }
    gallery.head = Some(head);
    Ok(gallery)
}

/// No bundle when it would recognise fewer than [`MIN_VAL_TAR`] of the held-out photos,
/// unless `--force`.
fn refuse_a_door_that_rarely_opens(cmd: &TrainCmd, val_tar: f64, threshold: f32) -> Result<()> {
    if val_tar < MIN_VAL_TAR && !cmd.force {
        bail!(
            "this door would recognise only {:.0}% of the held-out photos of the people it \
             enrols (threshold {threshold:.4}): no bundle written. Check the photos and the \
             impostors, or pass --force to write it anyway",
            100.0 * val_tar
        );
    }
    Ok(())
}

/// Share of the validation views (masked or not) the final gallery names correctly.
fn validation_tar(
    gallery: &Gallery,
    views: &[View],
    masked: bool,
    class_of: &dyn Fn(usize) -> u32,
) -> f64 {
    let views: Vec<&View> = views.iter().filter(|v| v.masked == masked).collect();
    let ok = views
        .iter()
        .filter(|v| {
            matches!(gallery.identify(&v.embedding),
                Decision::Known { person, .. } if person as u32 == class_of(v.sample))
        })
        .count();
    if views.is_empty() {
        f64::NAN
    } else {
        ok as f64 / views.len() as f64
    }
}

/// The self-test's person and photo: the first photo the final gallery names correctly.
fn self_test_sample<'a>(
    ds: &Dataset,
    people: &'a [(String, Vec<usize>)],
    gallery: &Gallery,
) -> Result<(&'a String, usize)> {
    people
        .iter()
        .flat_map(|(name, idx)| idx.iter().map(move |&i| (name, i)))
        .find(|(name, i)| {
            let s = &ds.manifest.samples[*i];
            matches!(gallery.identify(&s.embedding),
                Decision::Known { person, .. } if gallery.people[person].name == **name)
        })
        .context("no enrolled photo is recognised by the trained model: check the dataset")
}

/// The two lines `train` ends with.
fn print_summary(r: &TrainReport, stopped_early: bool) {
    println!(
        "trained {} on {} examples ({} validation) in {:.1} s (+{:.1} s embedding): best epoch {} of {}{}, validation accuracy {:.2}%",
        facegate_models::gallery::people_count(r.people.len()),
        r.train_examples,
        r.val_examples,
        r.fit_seconds,
        r.embed_seconds,
        r.best_epoch,
        r.epochs_run,
        if stopped_early {
            " (stopped early)"
        } else {
            ""
        },
        100.0 * r.val_accuracy
    );
    println!(
        "threshold {:.4} for FAR {}: {} of {} impostor views accepted; validation TAR {:.2}% unmasked, {:.2}% masked",
        r.threshold,
        r.far_target,
        r.impostors_accepted,
        r.impostor_views,
        100.0 * r.val_tar_unmasked,
        100.0 * r.val_tar_masked
    );
}

/// The key that signs the bundle and the version it gets (given, or the next for the key).
struct Signer {
    key: ed25519_dalek::SigningKey,
    version: u32,
}

/// Cosine at which an impostor face is one of the enrolled faces (the same photo, or nearly).
const SAME_FACE: f32 = 0.9;

/// Share of the enrolled people's held-out photos a bundle must recognise to be written.
const MIN_VAL_TAR: f64 = 0.8;

/// Signs and writes the bundle (checking first that the door's detector file is there too).
fn write_bundle(
    cmd: &TrainCmd,
    signer: &Signer,
    gallery: &Gallery,
    quantised: bool,
    files: Vec<(String, Vec<u8>)>,
    label: &str,
    known: impl FnOnce(&Embedder) -> Result<Vec<f32>>,
) -> Result<Vec<u8>> {
    YUNET_DOOR.read_verified(&cmd.models.resolve())?; // the door needs it: fail here, not there
    // The self-test carries no face: a pattern embedded with the very files the bundle holds,
    // and one embedding (a vector, not a picture) the door must name as `label`.
    let embedder = Embedder::from_files(gallery.embedder, quantised, &files)?;
    let self_test = SelfTest::pattern(label, known(&embedder)?, &embedder)?;
    let bundle = Bundle::new(
        gallery,
        quantised,
        signer.version,
        now_ms(),
        Default::default(),
        files,
        Some(self_test),
    )
    .for_door(cmd.door.clone());
    let bytes = bundle.sign(&signer.key);
    write_atomically(&cmd.out, &bytes)?;
    crate::home::record_version(&signer.key, signer.version)?;
    Ok(bytes)
}

// --- command-line arguments ---

/// Model architecture for `facegate train`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Arch {
    /// Softmax head on the frozen EdgeFace embedder, gallery templates, cosine threshold.
    Transfer,
    /// A small CNN trained from nothing, with an "other people" class and a probability
    /// threshold.
    Scratch,
}

/// `facegate train DATASET --impostors DATASET --key K --version N -o door.fgb`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate train facegate-data --impostors strangers-data -o door.fgb
  facegate train facegate-data --only ann,bob --door front -o front.fgb")]
pub struct TrainCmd {
    /// The dataset of the people to enrol (from `facegate import`).
    pub dataset: PathBuf,
    /// A dataset of people who must NOT get in, for the stranger threshold.
    #[arg(long)]
    pub impostors: Option<PathBuf>,
    /// Target false-accept rate for the threshold.
    #[arg(long, default_value_t = 1e-3)]
    pub far: f64,
    /// Use this threshold instead of calibrating one.
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Write the bundle even when it recognises fewer than 80% of the held-out photos of the
    /// enrolled people (a door that rarely opens).
    #[arg(long)]
    pub force: bool,
    /// Enrol only these people of the dataset.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Secret key from `facegate keygen` [default: ~/.config/facegate/facegate.key].
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Model version; the door only accepts versions newer than the one it runs [default: one
    /// past the last bundle signed with the key].
    #[arg(long)]
    pub version: Option<u32>,
    /// The bundle file to write.
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
    /// Augmented copies per photo.
    #[arg(long, default_value_t = 6)]
    pub augment: usize,
    /// Share of augmented copies with a synthetic mask.
    #[arg(long, default_value_t = 0.5)]
    pub mask_fraction: f32,
    /// Share of each person's photos held out for validation.
    #[arg(long, default_value_t = 0.2)]
    pub val_fraction: f64,
    /// What to train: a head on the frozen pretrained embedder, or a CNN from scratch.
    #[arg(long, value_enum, default_value_t = Arch::Transfer)]
    pub arch: Arch,
    /// Most training epochs [default: 400 transfer, 60 scratch].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Early stopping: epochs without a lower validation loss [default: 30 transfer, 10 scratch].
    #[arg(long)]
    pub patience: Option<usize>,
    /// Adam learning rate [default: 0.002 transfer, 0.001 scratch].
    #[arg(long)]
    pub lr: Option<f64>,
    /// The head's pick must have at least this probability.
    #[arg(long, default_value_t = 0.5)]
    pub min_prob: f32,
    /// Seed for augmentation and the split.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the training report (JSON) here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Also write a contact sheet of training photos and their augmented copies here.
    #[arg(long)]
    pub preview: Option<PathBuf>,
    /// Models folder.
    #[command(flatten)]
    pub models: ModelsDir,
    /// The door (or group of doors) this bundle is for, as set in the door's `model.door` or
    /// `model.groups`; a door refuses bundles made for another.
    #[arg(long)]
    pub door: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cmd(extra: &[&str]) -> TrainCmd {
        let mut args = vec!["facegate", "train", "data", "-o", "door.fgb"];
        args.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(args)
            .expect("parse")
            .command
        {
            crate::cli::Command::Train(c) => c,
            other => panic!("{other:?}"),
        }
    }

    /// Finding (#23): a bundle that recognised 40% of the household was written with exit 0.
    #[test]
    fn a_door_that_rarely_opens_is_not_written_unless_forced() {
        let err = refuse_a_door_that_rarely_opens(&cmd(&[]), 0.4, 1.0)
            .expect_err("40% is refused")
            .to_string();
        assert!(err.contains("only 40%") && err.contains("--force"), "{err}");
        assert!(refuse_a_door_that_rarely_opens(&cmd(&[]), 0.8, 0.5).is_ok());
        assert!(refuse_a_door_that_rarely_opens(&cmd(&["--force"]), 0.4, 1.0).is_ok());
    }
}
