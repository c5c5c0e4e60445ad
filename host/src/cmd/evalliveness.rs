//! `facegate eval DIR --protocol liveness`: the liveness network on attempts laid out
//! `<species>/<attempt>/<frames>`, decided as the door decides (mean logit per attempt, the
//! threshold from the network's manifest), reported as ISO/IEC 30107-3 figures.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use facegate_models::detect::Detector;
use facegate_models::liveness::{Liveness, read_door_form};

use crate::cmd::eval::EvalCmd;
use crate::eval::liveness::{MotionRule, Report, attempts, det_curves, rates, score_all};
use crate::files::write_png;

/// Runs the liveness protocol.
pub fn run(cmd: &EvalCmd) -> Result<()> {
    let models = cmd.net.models.resolve();
    // The door form, as the door loads it.
    let (manifest, bytes) = read_door_form(&models)?;
    let net = Liveness::from_door_form(&manifest, &bytes)?;
    let yunet = facegate_models::model_files::YUNET_DOOR.read_verified(&models)?;
    let detector = Detector::from_bytes(&yunet, Default::default())?;
    let list = attempts(&cmd.dataset)?;
    anyhow::ensure!(
        cmd.frame_interval.is_finite() && cmd.frame_interval > 0.0,
        "--frame-interval must be a positive number of seconds, got {}",
        cmd.frame_interval
    );
    let motion = if cmd.strict {
        MotionRule::strict(cmd.frame_interval)
    } else {
        MotionRule {
            interval: cmd.frame_interval,
            threshold: None,
        }
    };
    let scored = score_all(&detector, &net, &list, motion)?;
    let at = rates(&scored, manifest.threshold);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut no_face: BTreeMap<String, usize> = BTreeMap::new();
    for s in &scored {
        *counts.entry(s.species.clone()).or_default() += 1;
        *no_face.entry(s.species.clone()).or_default() += usize::from(s.score.is_none());
    }
    let report = Report {
        dataset: cmd.dataset.display().to_string(),
        protocol: "liveness".into(),
        threshold: manifest.threshold,
        bpcer: at.bpcer,
        apcer: at.apcer.clone(),
        apcer_max: at.apcer_max,
        attempts: counts,
        no_face,
        model_sha256: manifest.sha256.clone(),
        motion_threshold: motion.threshold,
        motion_refused: scored.iter().fold(BTreeMap::new(), |mut m, s| {
            *m.entry(s.species.clone()).or_default() += usize::from(s.motion_refused);
            m
        }),
        ms_per_face: ms_per_face(&net)?,
        motion_ms_per_face: motion_ms_per_face(),
        scored,
    };
    print_table(&report);
    if let Some(path) = &cmd.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        let det = match &cmd.out_dir {
            Some(dir) => dir.join("liveness-det.png"),
            None => path.with_extension("det.png"),
        };
        if let Some(parent) = det.parent() {
            std::fs::create_dir_all(parent).ok();
        }
        let chart = crate::report::plots::det_with_axes(
            &det_curves(&report.scored),
            &[(
                "door (worst species)".into(),
                report.apcer_max,
                report.bpcer,
            )],
            0.03,
            "DET: attacks accepted vs live people refused",
            ("APCER (attacks accepted)", "BPCER (live people refused)"),
        )?;
        write_png(&det, &chart)?;
        println!("wrote {} and {}", path.display(), det.display());
    }
    Ok(())
}

/// The network's own time per face, one thread: what liveness adds to the door's frame.
fn ms_per_face(net: &Liveness) -> Result<f64> {
    let frame = image::RgbImage::from_fn(640, 480, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let face = facegate_models::geometry::BBox {
        x: 250.0,
        y: 150.0,
        w: 140.0,
        h: 170.0,
    };
    let n = 50;
    let started = std::time::Instant::now();
    for _ in 0..n {
        net.score(&frame, &face)?;
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0 / n as f64)
}

/// The motion cue's time per face, one thread, at 640x480 (every frame closes a pair: its
/// most expensive case).
fn motion_ms_per_face() -> f64 {
    let frame = image::RgbImage::from_fn(640, 480, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let mut track = facegate_models::motion::MotionTrack::new();
    let n = 50;
    let started = std::time::Instant::now();
    for i in 0..n {
        let face = facegate_models::geometry::BBox {
            x: 250.0 + (i % 3) as f32,
            y: 150.0,
            w: 140.0,
            h: 170.0,
        };
        let at = f64::from(i) * facegate_models::motion::GAP;
        std::hint::black_box(track.observe(at, &frame, &face));
    }
    started.elapsed().as_secs_f64() * 1000.0 / n as f64
}

fn print_table(r: &Report) {
    println!(
        "liveness at threshold {:.3} (mean logit per attempt; {:.2} ms per face)",
        r.threshold, r.ms_per_face
    );
    match r.motion_threshold {
        Some(t) => println!(
            "motion cue: refused when the surroundings follow the face (mean pair score above \
             {t:.3}; {:.2} ms per face)",
            r.motion_ms_per_face
        ),
        None => println!("motion cue off (passive, as the door ships; --strict adds it)"),
    }
    println!(
        "{:<16} {:>8} {:>8} {:>8} {:>10}",
        "species", "attempts", "no face", "moved", "error"
    );
    for (species, n) in &r.attempts {
        let (what, rate) = if species == crate::eval::liveness::REAL {
            ("BPCER", r.bpcer)
        } else {
            ("APCER", r.apcer.get(species).copied().unwrap_or(0.0))
        };
        println!(
            "{species:<16} {n:>8} {:>8} {:>8} {what} {:>5.2}%",
            r.no_face.get(species).copied().unwrap_or(0),
            r.motion_refused.get(species).copied().unwrap_or(0),
            100.0 * rate
        );
    }
    println!(
        "BPCER {:.2}%, worst APCER {:.2}%",
        100.0 * r.bpcer,
        100.0 * r.apcer_max
    );
}
