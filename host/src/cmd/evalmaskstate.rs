//! `facegate eval MFR2_DIR --protocol mask-state`: the mask-state classifier on MFR2's real
//! masks. Each photo's subject is detected and aligned as the door aligns it, then classified;
//! the answer is MFR2's own label (`no-mask`, or the mask's kind). A folder without MFR2's
//! label file is taken as bare faces, every image below it: how often the classifier calls a
//! bare face masked, on people and cameras it never trained on (AT&T's grey faces, say).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use facegate_models::align;
use facegate_models::detect::Detector;
use facegate_models::image_io;
use facegate_models::maskstate::{MaskState, input, read_verified};
use facegate_models::pipeline::subject;
use serde::Serialize;

use crate::cmd::eval::EvalCmd;
use crate::faceset::folders::{MFR2_LABELS, images_below, mfr2_labels};

/// The `--protocol mask-state` report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The folder.
    pub dataset: String,
    /// Always "mask-state".
    pub protocol: String,
    /// Photos classified (a face found and aligned).
    pub faces: usize,
    /// Photos without a usable face.
    pub no_face: usize,
    /// Share classified right, all photos.
    pub accuracy: f64,
    /// Share right among bare faces, and among masked ones.
    pub accuracy_bare: f64,
    /// Share right among masked faces.
    pub accuracy_masked: f64,
    /// Share right per MFR2 mask kind (and `no-mask`).
    pub per_kind: BTreeMap<String, f64>,
    /// Milliseconds per face for the classifier alone (one thread, mean over the run).
    pub ms_per_face: f64,
    /// SHA-256 of the network evaluated.
    pub model_sha256: String,
}

/// The report on stdout; `n` counts the bare and the masked faces.
fn print(report: &Report, n: [usize; 2]) {
    println!(
        "mask state on {} faces ({} without a face): {:.2}% right ({:.2}% of {} bare, {:.2}% of {} \
         masked); {:.2} ms per face",
        report.faces,
        report.no_face,
        100.0 * report.accuracy,
        100.0 * report.accuracy_bare,
        n[0],
        100.0 * report.accuracy_masked,
        n[1],
        report.ms_per_face
    );
    for (kind, acc) in &report.per_kind {
        println!("  {kind:<20} {:.2}%", 100.0 * acc);
    }
}

/// Each photo with its mask kind (`None`: bare): MFR2's labels when the folder has them,
/// otherwise every image below `dir`, bare.
fn labels(dir: &Path) -> Result<Vec<(PathBuf, Option<String>)>> {
    if dir.join(MFR2_LABELS).is_file() {
        return Ok(mfr2_labels(dir)?
            .into_iter()
            .map(|l| (l.path(dir), l.mask))
            .collect());
    }
    let images = images_below(dir)?;
    anyhow::ensure!(
        !images.is_empty(),
        "no images below {} (and no {MFR2_LABELS} saying which faces wear masks)",
        dir.display()
    );
    println!(
        "no {MFR2_LABELS} in {}: its {} images are taken as bare faces",
        dir.display(),
        images.len()
    );
    Ok(images.into_iter().map(|p| (p, None)).collect())
}

/// Runs the protocol.
pub fn run(cmd: &EvalCmd) -> Result<()> {
    let models = cmd.net.models.resolve();
    let (manifest, bytes) = read_verified(&models)?;
    let net = MaskState::from_bytes(&bytes)?;
    let yunet = facegate_models::model_files::YUNET_DOOR.read_verified(&models)?;
    let detector = Detector::from_bytes(&yunet, Default::default())?;
    let labels = labels(&cmd.dataset)?;
    let pb = crate::progress::bar(labels.len() as u64, "mask state", "photos");
    let (mut right, mut n) = ([0usize; 2], [0usize; 2]);
    let mut kinds: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let (mut no_face, mut net_time) = (0usize, std::time::Duration::ZERO);
    for label in &labels {
        pb.inc(1);
        let (path, mask) = label;
        let crop = image_io::open(path).ok().and_then(|img| {
            let dets = detector.detect(&img).ok()?;
            let face = subject(&dets, img.width(), img.height())?;
            align::align(&img, face).map(|(_, crop)| crop)
        });
        let Some(crop) = crop else {
            no_face += 1;
            continue;
        };
        let started = std::time::Instant::now();
        let logit = net.run(input(&crop))?;
        net_time += started.elapsed();
        let masked = mask.is_some();
        let ok = (logit > 0.0) == masked;
        let m = usize::from(masked);
        n[m] += 1;
        right[m] += usize::from(ok);
        let k = kinds
            .entry(mask.clone().unwrap_or_else(|| "no-mask".into()))
            .or_default();
        k.0 += usize::from(ok);
        k.1 += 1;
    }
    pb.finish_and_clear();
    let share = |k: usize, n: usize| {
        if n == 0 {
            f64::NAN
        } else {
            k as f64 / n as f64
        }
    };
    let faces = n[0] + n[1];
    let report = Report {
        dataset: cmd.dataset.display().to_string(),
        protocol: "mask-state".into(),
        faces,
        no_face,
        accuracy: share(right[0] + right[1], faces),
        accuracy_bare: share(right[0], n[0]),
        accuracy_masked: share(right[1], n[1]),
        per_kind: kinds
            .into_iter()
            .map(|(k, (a, b))| (k, share(a, b)))
            .collect(),
        ms_per_face: net_time.as_secs_f64() * 1000.0 / faces.max(1) as f64,
        model_sha256: manifest.sha256,
    };
    print(&report, n);
    if let Some(path) = &cmd.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
