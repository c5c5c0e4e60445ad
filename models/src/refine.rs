//! Landmark refinement for faces behind a mask.
//!
//! YuNet finds a masked face but places its landmarks worse: with the nose and mouth hidden,
//! even the eyes move (median 5 px in the 112x112 crop on the shared LFW half, nose and mouth
//! 7 px). A crop aligned on those points differs from the gallery's crop of the same person,
//! and that, more than the missing pixels, is what masks cost: aligning masked probes on the
//! landmarks of the same photo *without* the mask lifts SFace's masked TAR at FAR 1e-3 from
//! 69% to 90%.
//!
//! The refiner is a small CNN trained on the host (`facegate models refine`): it looks at the
//! face crop aligned on the detector's landmarks (grey, 56x56) and says where the five points
//! really are, as the detector places them on the same face without a mask. The crop is then
//! aligned again on those points. It is trained on unmasked crops too (where the answer is the
//! detector's own points), so it runs on every face, gallery and door alike: both sides of a
//! comparison are aligned by the same procedure.
//!
//! Like the mask-adapted SFace it is trained here rather than fetched, so a manifest records
//! its digest and how it was made; inside a bundle the signature vouches for it.

use std::path::Path;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::align::{self, TEMPLATE};
use crate::detect::Detection;
use crate::model_files::sha256_hex;
use crate::onnx_build::SmallCnn;
use crate::small_cnn::{self, Pinned, Runner};

/// The refiner network (fp32: 1.9 MB, small beside the embedder a bundle carries anyway).
pub const FILE: &str = "landmark_refiner.onnx";
/// What was trained, and the file's digest.
pub const MANIFEST: &str = "landmark_refiner.json";
/// Side of the refiner's grey input.
pub const SIDE: u32 = 56;
/// Channels of the four 3x3 convolutions (the first three followed by a 2x2 max-pool).
pub const CHANNELS: [usize; 4] = [16, 32, 64, 64];
/// Width of the hidden dense layer.
pub const HIDDEN: usize = 128;
/// The network predicts (landmark - template) / OUT_SCALE, in crop pixels: outputs near 1.
pub const OUT_SCALE: f32 = 8.0;

/// Written by `facegate models refine` beside the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// SHA-256 of [`FILE`].
    pub sha256: String,
    /// The photo folder it was trained on.
    pub faces: String,
    /// Photos it was given (those without a face give no crops).
    pub photos: usize,
    /// Training and held-back crops (plain and masked).
    pub crops: usize,
    /// Median landmark error on held-back masked crops, crop pixels: detector alone, refined.
    pub median_error_px: [f32; 2],
    /// Mean absolute training error after each epoch (in units of OUT_SCALE pixels).
    pub loss: Vec<f32>,
    /// What it was trained on, in words (the committed refiner's manifest says it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The command that trains it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Initialisation and shuffling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// The grey network input of a 112x112 face crop: shrunk to [`SIDE`] with a triangle filter,
/// luma scaled to about -1..1. Training and the door both call this.
pub fn input(crop: &RgbImage) -> Vec<f32> {
    let small = image::imageops::resize(crop, SIDE, SIDE, image::imageops::FilterType::Triangle);
    small
        .pixels()
        .map(|p| {
            let [r, g, b] = p.0;
            (0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32) / 128.0 - 1.0
        })
        .collect()
}

/// The template as the network's flat output order (x0, y0, x1, y1, ...).
pub fn template_flat() -> [f32; 10] {
    let mut t = [0.0; 10];
    for (i, [x, y]) in TEMPLATE.iter().enumerate() {
        t[2 * i] = *x as f32;
        t[2 * i + 1] = *y as f32;
    }
    t
}

/// The refiner network: grey 56x56 in, four convolutions (the first three pooled), 10 out.
pub const NET: SmallCnn = SmallCnn {
    name: "facegate_landmark_refiner",
    input: [1, SIDE as usize, SIDE as usize],
    channels: &CHANNELS,
    pools: 3,
    hidden: HIDDEN,
    outputs: 10,
    output_name: "offsets",
};

/// Names and shapes of the weights, in the order [`graph`] and the trainer use.
pub fn weight_shapes() -> Vec<(String, Vec<usize>)> {
    NET.weight_shapes()
}

/// The ONNX bytes of the refiner with these weights (in [`weight_shapes`] order): input
/// `input` [1, 1, 56, 56], output `offsets` [1, 10].
pub fn graph(weights: &[Vec<f32>]) -> Result<Vec<u8>> {
    NET.graph(weights)
}

/// A refiner whose output layer is zero: it always answers the template, so a face ends up
/// aligned on the best similarity fit of the detector's own points, as without a refiner. The
/// tests use it to exercise the plumbing (bundles, the door) without training one.
pub fn template_graph() -> Result<Vec<u8>> {
    let weights: Vec<Vec<f32>> = weight_shapes()
        .into_iter()
        .map(|(name, dims)| {
            let n = dims.iter().product();
            if name.starts_with("fc2") {
                vec![0.0; n]
            } else {
                (0..n).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect()
            }
        })
        .collect();
    graph(&weights)
}

/// Where the refiner is read from.
pub const FILES: small_cnn::Files = small_cnn::Files {
    what: "landmark refiner",
    file: FILE,
    manifest: MANIFEST,
    fix: "run `facegate models fetch` to install the committed one (or `facegate models refine --faces DIR` to train one)",
};

impl Pinned for Manifest {
    fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// The bytes of [`FILE`] in the models folder, checked against its manifest.
pub fn read_verified(models_dir: &Path) -> Result<Vec<u8>> {
    Ok(small_cnn::read_verified::<Manifest>(models_dir, FILES)?.1)
}

/// The refiner a bundle carries among its model files, if any. A bundle made with
/// `--refine-landmarks` has its templates aligned on refined landmarks, so the door must refine
/// too; its signature vouches for the file.
pub fn from_files(files: &[(String, Vec<u8>)]) -> Result<Option<Refiner>> {
    let name = crate::nnef::door_name(FILE);
    files
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| Refiner::from_door_form(bytes))
        .transpose()
}

/// The door form of the refiner in these ONNX bytes: what a bundle carries.
pub fn door_form(onnx: &[u8]) -> Result<Vec<u8>> {
    Runner::door_form(NET, "landmark refiner", onnx)
}

/// The loaded refiner.
#[derive(Clone)]
pub struct Refiner {
    net: Runner,
    sha256: String,
}

impl std::fmt::Debug for Refiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refiner")
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl Refiner {
    /// Loads the refiner from ONNX bytes (already vouched for by the caller: a manifest or a
    /// bundle signature).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Ok(Self {
            net: Runner::from_bytes(NET, "landmark refiner", bytes)?,
            sha256: sha256_hex(bytes),
        })
    }

    /// Loads the refiner from its door form ([`door_form`], vouched for by a bundle's
    /// signature): how the door reads it.
    pub fn from_door_form(bytes: &[u8]) -> Result<Self> {
        Ok(Self {
            net: Runner::from_door_form(NET, "landmark refiner", bytes)?,
            sha256: sha256_hex(bytes),
        })
    }

    /// Loads [`FILE`] from the models folder, checking it against its manifest.
    pub fn load(models_dir: &Path) -> Result<Self> {
        Self::from_bytes(&read_verified(models_dir)?)
    }

    /// SHA-256 of the network file.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The raw network outputs for one input made by [`input`].
    pub fn run(&self, input: Vec<f32>) -> Result<Vec<f32>> {
        self.net.run(input)
    }

    /// The five landmarks in crop coordinates for a crop aligned on the detector's points.
    pub fn predict(&self, crop: &RgbImage) -> Result<[[f32; 2]; 5]> {
        let flat = self.run(input(crop))?;
        let t = template_flat();
        let mut lm = [[0.0; 2]; 5];
        for (i, p) in lm.iter_mut().enumerate() {
            *p = [
                t[2 * i] + OUT_SCALE * flat[2 * i],
                t[2 * i + 1] + OUT_SCALE * flat[2 * i + 1],
            ];
        }
        Ok(lm)
    }

    /// The detection with its landmarks refined (image coordinates), or `None` when its
    /// landmarks are degenerate.
    pub fn refine(&self, image: &RgbImage, det: &Detection) -> Result<Option<Detection>> {
        let Some((t, crop)) = align::align(image, det) else {
            return Ok(None);
        };
        let Some(inv) = t.inverse() else {
            return Ok(None);
        };
        let lm = self.predict(&crop)?;
        let mut out = det.clone();
        for (o, p) in out.landmarks.iter_mut().zip(lm) {
            let q = inv.apply([p[0] as f64, p[1] as f64]);
            *o = [q[0] as f32, q[1] as f32];
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BBox;

    #[test]
    fn wrong_weight_shapes_are_refused() {
        let mut weights: Vec<Vec<f32>> = weight_shapes()
            .into_iter()
            .map(|(_, d)| vec![0.0; d.iter().product()])
            .collect();
        weights[3].pop();
        assert!(graph(&weights).is_err());
        assert!(graph(&weights[..4]).is_err());
    }

    #[test]
    fn refined_points_are_mapped_back_to_the_image() {
        // A refiner that always answers the template moves the landmarks to where the
        // template sits under the detection's own transform: a least-squares fit of the
        // detected points, so a perfect similarity of the template stays where it is.
        let refiner = Refiner::from_bytes(&template_graph().expect("graph")).expect("load");
        let image = RgbImage::from_pixel(300, 300, image::Rgb([120, 110, 100]));
        let k = 1.7;
        let landmarks = TEMPLATE.map(|[x, y]| [(x * k + 40.0) as f32, (y * k + 25.0) as f32]);
        let det = Detection {
            bbox: BBox {
                x: 40.0,
                y: 25.0,
                w: 190.0,
                h: 190.0,
            },
            score: 0.9,
            landmarks,
        };
        let out = refiner.refine(&image, &det).expect("run").expect("face");
        for (a, b) in out.landmarks.iter().zip(&landmarks) {
            assert!(
                (a[0] - b[0]).abs() < 1e-3 && (a[1] - b[1]).abs() < 1e-3,
                "{a:?} vs {b:?}"
            );
        }
        assert_eq!(out.bbox, det.bbox);
    }

    #[test]
    fn a_file_that_does_not_match_its_manifest_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = Refiner::load(dir.path()).expect_err("nothing there");
        assert!(missing.to_string().contains("models fetch"), "{missing}");
        let bytes = template_graph().expect("graph");
        let manifest = Manifest {
            sha256: sha256_hex(&bytes),
            faces: "test".into(),
            photos: 0,
            crops: 0,
            median_error_px: [0.0, 0.0],
            loss: vec![],
            data: None,
            command: None,
            seed: None,
        };
        std::fs::write(
            dir.path().join(MANIFEST),
            serde_json::to_string(&manifest).expect("json"),
        )
        .expect("write");
        std::fs::write(dir.path().join(FILE), &bytes).expect("write");
        Refiner::load(dir.path()).expect("matching file loads");
        let mut tampered = bytes.clone();
        let n = tampered.len();
        tampered[n - 5] ^= 1;
        std::fs::write(dir.path().join(FILE), &tampered).expect("write");
        let err = Refiner::load(dir.path()).expect_err("tampered");
        assert!(err.to_string().contains("SHA-256"), "{err}");
    }
}
