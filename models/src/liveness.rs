//! Presentation-attack detection: is the face in front of the camera a live person, or a
//! photo on paper or a screen?
//!
//! A small CNN looks at the face *with its surroundings* ([`CONTEXT`] times the face box), so
//! that paper edges, screen borders, moire, glare and the flat lighting of a print are in view,
//! at [`SIDE`]x[`SIDE`] RGB. It answers one logit per frame (above 0: live); the door averages
//! the logits of the frames of one attempt and compares the mean with the threshold calibrated
//! at training ([`Manifest::threshold`]), so one lucky frame cannot open the door. Trained by
//! `facegate models liveness` (candle), exported to ONNX with the same builders as the landmark
//! refiner, run by tract.

use std::path::Path;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::geometry::BBox;
use crate::onnx_build::SmallCnn;
use crate::small_cnn::{self, Pinned, Runner};
use crate::{Error, Result};

/// The network file.
pub const FILE: &str = "liveness.onnx";
/// What it was trained on, its threshold, and the file's digest.
pub const MANIFEST: &str = "liveness.json";
/// Side of the network's RGB input.
pub const SIDE: u32 = 64;
/// The input covers the face box's larger side times this, centred on the face.
pub const CONTEXT: f32 = 2.0;
/// Channels of the four 3x3 convolutions, each followed by a 2x2 max-pool.
pub const CHANNELS: [usize; 4] = [16, 32, 32, 64];
/// Width of the hidden dense layer.
pub const HIDDEN: usize = 64;

/// Written by `facegate models liveness` beside the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// SHA-256 of [`FILE`].
    pub sha256: String,
    /// Mean frame logit of an attempt at or above which it is live.
    pub threshold: f32,
    /// What it was trained on, and under which terms.
    pub data: String,
    /// The command that made it.
    pub command: String,
    /// Seed of the run.
    pub seed: u64,
    /// Training and calibration attempts (videos).
    pub attempts: [usize; 2],
    /// Calibration figures at the threshold: BPCER, worst APCER.
    pub calibration: [f64; 2],
    /// Mean training loss after each epoch.
    pub loss: Vec<f32>,
}

/// The square region the network sees around `face`: [`CONTEXT`] times its larger side,
/// centred on it, moved inside the frame where it would stick out (and shrunk to the frame
/// when larger). `(x, y, side)` in whole pixels.
pub fn region(face: &BBox, width: u32, height: u32) -> (u32, u32, u32) {
    // Never larger than the frame, never 0 (and no clamp whose bounds could cross on a frame
    // smaller than 8 pixels, or on a NaN box).
    let side = (face.w.max(face.h) * CONTEXT)
        .round()
        .max(8.0)
        .min(width.min(height) as f32)
        .max(1.0) as u32;
    let cx = face.x + face.w / 2.0;
    let cy = face.y + face.h / 2.0;
    let x = (cx - side as f32 / 2.0)
        .round()
        .clamp(0.0, (width - side) as f32) as u32;
    let y = (cy - side as f32 / 2.0)
        .round()
        .clamp(0.0, (height - side) as f32) as u32;
    (x, y, side)
}

/// The network input for `face` in `frame`: the [`region`] shrunk to [`SIDE`] with a triangle
/// filter, channels first, values about -1..1. Training, evaluation and the door call this.
pub fn input(frame: &RgbImage, face: &BBox) -> Vec<f32> {
    let (x, y, side) = region(face, frame.width(), frame.height());
    // Shrunk straight from a view of the frame: no copy of the region on every frame.
    let region = image::imageops::crop_imm(frame, x, y, side, side);
    let small =
        image::imageops::resize(&*region, SIDE, SIDE, image::imageops::FilterType::Triangle);
    let n = (SIDE * SIDE) as usize;
    let mut out = vec![0.0; 3 * n];
    for (i, p) in small.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = p.0[c] as f32 / 128.0 - 1.0;
        }
    }
    out
}

/// The network: RGB 64x64 in, four pooled convolutions, one logit out.
pub const NET: SmallCnn = SmallCnn {
    name: "facegate_liveness",
    input: [3, SIDE as usize, SIDE as usize],
    channels: &CHANNELS,
    pools: 4,
    hidden: HIDDEN,
    outputs: 1,
    output_name: "logit",
};

/// Names and shapes of the weights, in the order [`graph`] and the trainer use.
pub fn weight_shapes() -> Vec<(String, Vec<usize>)> {
    NET.weight_shapes()
}

/// The ONNX bytes of the network with these weights (in [`weight_shapes`] order): input
/// `input` [1, 3, 64, 64], output `logit` [1, 1].
pub fn graph(weights: &[Vec<f32>]) -> Result<Vec<u8>> {
    NET.graph(weights)
}

/// Where the network is read from.
pub const FILES: small_cnn::Files = small_cnn::Files {
    what: "liveness",
    file: FILE,
    manifest: MANIFEST,
    fix: "run `facegate models fetch` (or `facegate models liveness` to train it again)",
};

impl Pinned for Manifest {
    fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// The manifest and the bytes of [`FILE`] in the models folder, checked against each other.
pub fn read_verified(models_dir: &Path) -> Result<(Manifest, Vec<u8>)> {
    let (manifest, bytes) = small_cnn::read_verified::<Manifest>(models_dir, FILES)?;
    if !manifest.threshold.is_finite() {
        return Err(Error::TrainedNet {
            what: FILES.what,
            path: models_dir.join(MANIFEST),
            reason: "the threshold is not a number".into(),
            fix: FILES.fix,
        });
    }
    Ok((manifest, bytes))
}

/// The loaded network.
#[derive(Clone, Debug)]
pub struct Liveness {
    net: Runner,
}

impl Liveness {
    /// Loads the network from ONNX bytes (vouched for by the caller: a manifest or a bundle
    /// signature).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Ok(Self {
            net: Runner::from_bytes(NET, "liveness", bytes)?,
        })
    }

    /// The logit for one input made by [`input`] (above 0: live).
    pub fn run(&self, input: Vec<f32>) -> Result<f32> {
        Ok(self.net.run(input)?[0])
    }

    /// The logit of `face` in `frame`.
    pub fn score(&self, frame: &RgbImage, face: &BBox) -> Result<f32> {
        self.run(input(frame, face))
    }
}

/// An attempt's score: the mean of its frames' logits (`None` without any frame).
pub fn attempt_score(logits: &[f32]) -> Option<f32> {
    (!logits.is_empty()).then(|| logits.iter().sum::<f32>() / logits.len() as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_stays_inside_the_frame() {
        let face = BBox {
            x: 250.0,
            y: 150.0,
            w: 60.0,
            h: 80.0,
        };
        let (x, y, side) = region(&face, 320, 240);
        assert_eq!(side, 160);
        assert!(x + side <= 320 && y + side <= 240);
        let huge = BBox {
            x: 0.0,
            y: 0.0,
            w: 300.0,
            h: 240.0,
        };
        assert_eq!(region(&huge, 320, 240).2, 240);
        // Degenerate boxes and frames give a region inside the frame, never a panic.
        let nan = BBox {
            x: f32::NAN,
            y: f32::NAN,
            w: f32::NAN,
            h: f32::NAN,
        };
        for (w, h) in [(4, 3), (1, 1), (320, 240)] {
            let (x, y, side) = region(&nan, w, h);
            assert!(side >= 1 && x + side <= w && y + side <= h, "{w}x{h}");
            let (x, y, side) = region(&face, w, h);
            assert!(side >= 1 && x + side <= w && y + side <= h, "{w}x{h}");
        }
        let frame = RgbImage::new(320, 240);
        assert_eq!(input(&frame, &face).len(), 3 * 64 * 64);
    }

    #[test]
    fn an_attempt_is_the_mean_of_its_frames() {
        assert_eq!(attempt_score(&[]), None);
        assert_eq!(attempt_score(&[1.0, -3.0]), Some(-1.0));
    }

    #[test]
    fn the_graph_loads_in_tract_and_answers_one_value() {
        let weights: Vec<Vec<f32>> = weight_shapes()
            .into_iter()
            .map(|(_, d)| {
                let n: usize = d.iter().product();
                (0..n).map(|i| ((i % 5) as f32 - 2.0) * 0.01).collect()
            })
            .collect();
        let net = Liveness::from_bytes(&graph(&weights).expect("graph")).expect("load");
        let frame = RgbImage::from_fn(320, 240, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let face = BBox {
            x: 100.0,
            y: 60.0,
            w: 90.0,
            h: 110.0,
        };
        assert!(net.score(&frame, &face).expect("score").is_finite());
    }
}
