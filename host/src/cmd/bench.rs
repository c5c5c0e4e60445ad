//! `facegate bench`: the time of each stage, single-threaded and on all cores, medians over
//! repeated runs after warm-up, and the peak memory; with `--peer`, the same stages measured by
//! `scripts/peer_bench.py` (onnxruntime and OpenCV) in the same run, as facegate / peer ratios:
//! onnxruntime as it runs by default, and without its x86 channel-blocked layout (`ort nchw`),
//! which is the form tract computes in, so the two ratios separate the layout from the rest.
//!
//! Stages: YuNet at 320x256 and 640x480 (resize, pad, network, decode, NMS), 5-point alignment,
//! each embedder (EdgeFace-S and SFace, fp32 and int8 weights), and the whole frame-to-decision
//! path at 640x480 (detect, pick the subject, align, embed, search a 10-person gallery). Tract
//! runs on one thread unless told otherwise; "all cores" gives its matrix products a thread pool.

use crate::cmd::opts::ModelsDir;
use clap::Args;
use std::path::PathBuf;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};
use facegate_models::align;
use facegate_models::detect::{Detector, DetectorConfig};
use facegate_models::embed::{Embedder, EmbedderKind};
use facegate_models::gallery::{Enrolment, Gallery, default_threshold};
use facegate_models::image_io;
use facegate_models::model_files::YUNET_DOOR;
use facegate_models::pipeline::subject;
use image::imageops::{FilterType, resize};
use serde_json::{Value, json};
use tract_linalg::multithread::{Executor, multithread_tract_scope};

/// Stage name -> median milliseconds.
pub type Timings = BTreeMap<String, f64>;

/// Median of `rounds` timed calls of `f`, after `warmup` untimed ones, in milliseconds.
fn median_ms<T>(warmup: usize, rounds: usize, mut f: impl FnMut() -> T) -> f64 {
    for _ in 0..warmup {
        std::hint::black_box(f());
    }
    let mut ms: Vec<f64> = (0..rounds.max(1))
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

/// Everything loaded once and shared by both thread settings.
struct Fixture {
    detector: Detector,
    embedders: Vec<(String, EmbedderKind, Embedder)>,
    frames: Vec<(u32, u32, image::RgbImage)>,
    gallery: Vec<(EmbedderKind, Gallery)>,
    /// The landmark refiner, when `models refine` has trained one.
    refiner: Option<facegate_models::refine::Refiner>,
}

fn load(cmd: &BenchCmd) -> Result<Fixture> {
    let models = cmd.models.resolve();
    let detector = Detector::from_bytes(
        &YUNET_DOOR.read_verified(&models)?,
        DetectorConfig::default(),
    )?;
    let mut embedders = Vec::new();
    for kind in [EmbedderKind::EdgeFace, EmbedderKind::SFace] {
        for quantised in [false, true] {
            let name = format!(
                "{}_{}",
                kind.as_str(),
                if quantised { "int8" } else { "fp32" }
            );
            embedders.push((name, kind, Embedder::load(&models, kind, quantised)?));
        }
    }
    let photo = image_io::open(&cmd.photo)
        .with_context(|| format!("reading the bench photo {}", cmd.photo.display()))?;
    let frames = [(320, 256), (640, 480)]
        .into_iter()
        .map(|(w, h)| (w, h, resize(&photo, w, h, FilterType::Triangle)))
        .collect();
    // A 10-person gallery of 3 templates each: the search cost of a small office's door.
    let mut gallery = Vec::new();
    for kind in [EmbedderKind::EdgeFace, EmbedderKind::SFace] {
        let dim = kind.dim();
        let mut g = Gallery::new(
            kind,
            default_threshold(kind, true, false, Enrolment::PHOTOS),
        );
        for p in 0..10 {
            for t in 0..3 {
                let mut v: Vec<f32> = (0..dim)
                    .map(|i| ((i * 31 + p * 7 + t) % 17) as f32 - 8.0)
                    .collect();
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= n);
                g.enrol(&format!("person{p}"), v)?;
            }
        }
        gallery.push((kind, g));
    }
    Ok(Fixture {
        detector,
        embedders,
        frames,
        gallery,
        refiner: facegate_models::refine::Refiner::load(&models).ok(),
    })
}

fn measure(fx: &Fixture, warmup: usize, rounds: usize) -> Result<Timings> {
    let mut t = Timings::new();
    for (w, h, frame) in &fx.frames {
        fx.detector.detect(frame)?;
        t.insert(
            format!("yunet_{w}x{h}"),
            median_ms(warmup, rounds, || fx.detector.detect(frame)),
        );
    }
    let (_, _, frame) = fx.frames.last().context("frames")?;
    let dets = fx.detector.detect(frame)?;
    let det = subject(&dets, frame.width(), frame.height())
        .context("no face in the bench photo: pass --photo with one")?
        .clone();
    t.insert(
        "align".into(),
        median_ms(warmup, rounds, || align::align(frame, &det)),
    );
    if let Some(r) = &fx.refiner {
        t.insert(
            "refine_landmarks".into(),
            median_ms(warmup, rounds, || r.refine(frame, &det)),
        );
    }
    let (_, crop) = align::align(frame, &det).context("alignment failed")?;
    for (name, _, e) in &fx.embedders {
        t.insert(name.clone(), median_ms(warmup, rounds, || e.embed(&crop)));
    }
    for (name, kind) in [
        ("frame_to_decision", EmbedderKind::EdgeFace),
        ("frame_to_decision_sface", EmbedderKind::SFace),
    ] {
        let (_, _, embedder) = fx
            .embedders
            .iter()
            .find(|(n, k, _)| *k == kind && n.ends_with("int8"))
            .context("embedder")?;
        let (_, gallery) = fx
            .gallery
            .iter()
            .find(|(k, _)| *k == kind)
            .context("gallery")?;
        t.insert(
            name.into(),
            median_ms(warmup, rounds, || -> Result<_> {
                let dets = fx.detector.detect(frame)?;
                let Some(d) = subject(&dets, frame.width(), frame.height()) else {
                    return Ok(None);
                };
                let Some((_, crop)) = align::align(frame, d) else {
                    return Ok(None);
                };
                Ok(Some(gallery.identify(&embedder.embed(&crop)?)))
            }),
        );
    }
    Ok(t)
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// Runs `facegate bench`.
pub fn run(cmd: BenchCmd) -> Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let fx = load(&cmd)?;
    let mut results = BTreeMap::new();
    for threads in [1, cores] {
        if results.contains_key(&threads.to_string()) {
            continue;
        }
        eprintln!(
            "measuring with {threads} thread(s), {} rounds per stage",
            cmd.rounds
        );
        let timings = if threads == 1 {
            measure(&fx, cmd.warmup, cmd.rounds)?
        } else {
            multithread_tract_scope(Executor::multithread(threads), || {
                measure(&fx, cmd.warmup, cmd.rounds)
            })?
        };
        results.insert(threads.to_string(), timings);
    }
    let report = json!({
        "tool": "facegate",
        "cores": cores,
        "rounds": cmd.rounds,
        "photo": cmd.photo.display().to_string(),
        "threads": results,
        "peak_rss_mib": peak_rss_mib(),
    });
    if let Some(path) = &cmd.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let peer = match &cmd.peer {
        Some(p) => Some(
            serde_json::from_str::<Value>(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("{} is not a peer report", p.display()))?,
        ),
        None => None,
    };
    print_table(&report, peer.as_ref());
    Ok(())
}

/// The stage table, with facegate / peer ratios when a peer report is given.
fn print_table(report: &Value, peer: Option<&Value>) {
    let Some(threads) = report["threads"].as_object() else {
        return;
    };
    // onnxruntime as it runs by default, then without its x86 channel-blocked layout
    // (`ort nchw`: plain channel-first tensors, as tract runs them), then OpenCV.
    let peers: Vec<(&str, &str)> = [
        ("onnxruntime", "onnxruntime"),
        ("onnxruntime_nchw", "ort nchw"),
        ("opencv", "opencv"),
    ]
    .into_iter()
    .filter(|(p, _)| peer.is_some_and(|v| v[p].is_object()))
    .collect();
    for (n, stages) in threads {
        let mut head = format!("{:26} {:>10}", format!("stage ({n} thread(s))"), "facegate");
        for (_, label) in &peers {
            head += &format!(" {:>12} {:>7}", label, "ratio");
        }
        println!("{head}");
        let Some(stages) = stages.as_object() else {
            continue;
        };
        for (stage, ms) in stages {
            let ms = ms.as_f64().unwrap_or(f64::NAN);
            let mut line = format!("{stage:26} {ms:>8.2}ms");
            for (p, _) in &peers {
                let other = peer.and_then(|v| v[p]["threads"][n][stage].as_f64());
                match other {
                    Some(o) => line += &format!(" {o:>10.2}ms {:>6.2}x", ms / o),
                    None => line += &format!(" {:>12} {:>7}", "-", ""),
                }
            }
            println!("{line}");
        }
        println!();
    }
    let mut mem = format!(
        "peak RSS: facegate {:.1} MiB",
        report["peak_rss_mib"].as_f64().unwrap_or(f64::NAN)
    );
    if let Some(m) = peer.and_then(|v| v["peak_rss_mib"].as_f64()) {
        mem += &format!(", peer process {m:.1} MiB");
    }
    println!("{mem}");
}

// --- command-line arguments ---

/// `facegate bench [--peer PEER.json]`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate bench --photo face.jpg --json bench.json")]
pub struct BenchCmd {
    /// Photo with one face, resized to the camera sizes measured.
    #[arg(long)]
    pub photo: PathBuf,
    /// Timed runs per stage (the median is reported).
    #[arg(long, default_value_t = 30)]
    pub rounds: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Write the timings as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A report of `scripts/peer_bench.py` (onnxruntime, OpenCV) to compare with.
    #[arg(long)]
    pub peer: Option<PathBuf>,
    /// Models folder.
    #[command(flatten)]
    pub models: ModelsDir,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_rounds_is_the_middle_one() {
        let mut calls = 0u64;
        let m = median_ms(2, 5, || {
            calls += 1;
            std::thread::sleep(std::time::Duration::from_millis(if calls == 5 {
                30
            } else {
                1
            }));
        });
        assert_eq!(calls, 7);
        assert!(m < 20.0, "{m}");
    }
}
