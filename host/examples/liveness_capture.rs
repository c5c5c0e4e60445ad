//! Measurement for docs/LIVENESS.md: the shipped liveness check on attempts as if another
//! camera had captured them. Issue #22 asks that a printed photo captured differently (another
//! camera, other prints, other rooms) still be refused most of the time; no other recordings
//! are shared, so this replays one folder of attempts through deterministic changes of what a
//! camera does (resolution, lens, colour, compression, noise, exposure) and decides each
//! attempt as the door does (mean logit of its frames, the manifest's threshold). Nothing is
//! tuned on it: the network and the threshold are the committed ones.
//!
//! `cargo run --release -p facegate --example liveness_capture -- DIR [MODELS_DIR] [--strict]`
//! (`--strict`: as a door with `[liveness] mode = "strict"`, the motion cue too)
//! (DIR laid out `<species>/<attempt>/<frames>`, e.g. `$FACEGATE_SHARED/liveness/replay_attack/devel`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use facegate::eval::liveness::{FRAME_INTERVAL, MotionRule, attempts, rates, score_as};
use facegate_models::detect::Detector;
use facegate_models::liveness::{Liveness, read_verified};
use facegate_models::model_files::{YUNET_DOOR, default_dir};
use image::RgbImage;
use rand::{RngExt, SeedableRng};

/// One way a camera may differ from the one that recorded the attempts.
struct Capture {
    name: &'static str,
    change: fn(RgbImage, u64) -> Result<RgbImage>,
}

fn as_recorded(img: RgbImage, _: u64) -> Result<RgbImage> {
    Ok(img)
}

/// A camera of twice the resolution (the Pi camera's 640x480 against the webcam's 320x240):
/// the same scene, more pixels per face (no detail is added; scale is what changes).
fn twice_the_pixels(img: RgbImage, _: u64) -> Result<RgbImage> {
    let (w, h) = (img.width() * 2, img.height() * 2);
    Ok(image::imageops::resize(
        &img,
        w,
        h,
        image::imageops::FilterType::Triangle,
    ))
}

/// A softer lens or a slightly missed focus.
fn softer_lens(img: RgbImage, _: u64) -> Result<RgbImage> {
    Ok(image::imageops::blur(&img, 1.2))
}

/// Another sensor's colour: warmer white balance and a brighter tone curve.
fn other_colour(img: RgbImage, _: u64) -> Result<RgbImage> {
    let curve =
        |v: u8, gain: f32| ((v as f32 / 255.0).powf(0.8) * gain * 255.0).clamp(0.0, 255.0) as u8;
    Ok(RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let p = img.get_pixel(x, y).0;
        image::Rgb([curve(p[0], 1.08), curve(p[1], 1.0), curve(p[2], 0.88)])
    }))
}

/// Heavier JPEG compression (a cheap camera, a busy link).
fn heavy_jpeg(img: RgbImage, _: u64) -> Result<RgbImage> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 30).encode_image(&img)?;
    Ok(image::load_from_memory(&bytes)?.to_rgb8())
}

/// A noisier sensor (Gaussian-like noise of about 6 levels, seeded by the frame).
fn sensor_noise(img: RgbImage, seed: u64) -> Result<RgbImage> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = img;
    for p in out.pixels_mut() {
        for c in p.0.iter_mut() {
            // Sum of four uniforms: close to Gaussian, standard deviation 6.
            let n: f32 = (0..4).map(|_| rng.random_range(-1.0f32..1.0)).sum::<f32>() * 5.2;
            *c = (*c as f32 + n).round().clamp(0.0, 255.0) as u8;
        }
    }
    Ok(out)
}

/// A darker hall: 60% of the light.
fn darker(img: RgbImage, _: u64) -> Result<RgbImage> {
    let mut out = img;
    for p in out.pixels_mut() {
        for c in p.0.iter_mut() {
            *c = (*c as f32 * 0.6).round() as u8;
        }
    }
    Ok(out)
}

const CAPTURES: [Capture; 7] = [
    Capture {
        name: "as recorded",
        change: as_recorded,
    },
    Capture {
        name: "twice the pixels",
        change: twice_the_pixels,
    },
    Capture {
        name: "softer lens (blur 1.2 px)",
        change: softer_lens,
    },
    Capture {
        name: "other colour (warm, gamma 0.8)",
        change: other_colour,
    },
    Capture {
        name: "JPEG quality 30",
        change: heavy_jpeg,
    },
    Capture {
        name: "sensor noise (sd 6)",
        change: sensor_noise,
    },
    Capture {
        name: "darker (60% light)",
        change: darker,
    },
];

fn main() -> Result<()> {
    // `--strict`: as a door with `[liveness] mode = "strict"` (the motion cue too).
    let mut args: Vec<String> = std::env::args().collect();
    let strict = args.iter().any(|a| a == "--strict");
    args.retain(|a| a != "--strict");
    let rule = if strict {
        MotionRule::strict(FRAME_INTERVAL)
    } else {
        MotionRule::default()
    };
    let dir = PathBuf::from(
        args.get(1)
            .context("usage: liveness_capture DIR [MODELS_DIR] [--strict]")?,
    );
    let models = args.get(2).map(PathBuf::from).unwrap_or_else(default_dir);
    let (manifest, bytes) = read_verified(&models)?;
    let net = Liveness::from_manifest(&manifest, &bytes)?;
    let detector = Detector::from_bytes(&YUNET_DOOR.read_verified(&models)?, Default::default())?;
    let list = attempts(&dir)?;
    println!(
        "{} attempts, threshold {} (network {})",
        list.len(),
        manifest.threshold,
        &manifest.sha256[..12]
    );
    let mut species: Vec<String> = list.iter().map(|a| a.species.clone()).collect();
    species.sort();
    species.dedup();
    species.retain(|s| s != "real");
    println!(
        "| capture | BPCER | {} | worst APCER | attempts without a face |",
        species.join(" | ")
    );
    println!("|---|---|{}---|---|", "---|".repeat(species.len()));
    for capture in &CAPTURES {
        let scored = list
            .iter()
            .enumerate()
            .map(|(i, a)| {
                // A change that fails (a JPEG that does not encode) drops the frame, as an
                // unreadable one is dropped; the count of faceless attempts shows it.
                score_as(&detector, &net, a, rule, |img, j| {
                    (capture.change)(img, (i * 1000 + j) as u64).ok()
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let at = rates(&scored, manifest.threshold);
        let pct = |v: f64| format!("{:.2}%", v * 100.0);
        let per: Vec<String> = species
            .iter()
            .map(|s| at.apcer.get(s).copied().map_or("-".into(), pct))
            .collect();
        println!(
            "| {} | {} | {} | {} | {} |",
            capture.name,
            pct(at.bpcer),
            per.join(" | "),
            pct(at.apcer_max),
            scored.iter().filter(|s| s.score.is_none()).count()
        );
    }
    Ok(())
}
