//! Mask state: is the aligned face wearing a face mask?
//!
//! A small CNN ([`NET`]) looks at the 112x112 crop the embedder sees, shrunk to 56x56 RGB, and
//! answers one logit (above 0: masked). It is what lets a door treat a masked face differently
//! from a bare one (issue #21: each condition its own embedder, templates and threshold).
//! Trained by `facegate models mask-state` on photos with the project's synthetic masks, checked
//! on MFR2's real masks (`facegate eval DIR --protocol mask-state`).

use std::path::Path;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::onnx_build::SmallCnn;
use crate::small_cnn::{self, Pinned, Runner};

/// The network file.
pub const FILE: &str = "mask_state.onnx";
/// What it was trained on, and the file's digest.
pub const MANIFEST: &str = "mask_state.json";
/// Side of the network's RGB input.
pub const SIDE: u32 = 56;

/// The network: RGB 56x56 in, three pooled convolutions, one logit out.
pub const NET: SmallCnn = SmallCnn {
    name: "facegate_mask_state",
    input: [3, SIDE as usize, SIDE as usize],
    channels: &[16, 32, 64],
    pools: 3,
    hidden: 64,
    outputs: 1,
    output_name: "masked",
};

/// Written by `facegate models mask-state` beside the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// SHA-256 of [`FILE`].
    pub sha256: String,
    /// What it was trained on.
    pub data: String,
    /// The command that made it.
    pub command: String,
    /// Seed of the run.
    pub seed: u64,
    /// Training crops (bare and masked).
    pub crops: usize,
    /// Accuracy on held-back crops (one photo in ten), bare and masked.
    pub held_back_accuracy: [f64; 2],
    /// Mean training loss after each epoch.
    pub loss: Vec<f32>,
}

/// The network input of a 112x112 aligned crop: shrunk to [`SIDE`] with a triangle filter,
/// channels first, values about -1..1. Training, evaluation and the door call this.
pub fn input(crop: &RgbImage) -> Vec<f32> {
    let small = image::imageops::resize(crop, SIDE, SIDE, image::imageops::FilterType::Triangle);
    let n = (SIDE * SIDE) as usize;
    let mut out = vec![0.0; 3 * n];
    for (i, p) in small.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = p.0[c] as f32 / 128.0 - 1.0;
        }
    }
    out
}

/// Where the network is read from.
pub const FILES: small_cnn::Files = small_cnn::Files {
    what: "mask-state",
    file: FILE,
    manifest: MANIFEST,
    fix: "run `facegate models fetch` (or `facegate models mask-state` to train it again)",
};

impl Pinned for Manifest {
    fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// The manifest and the bytes of [`FILE`] in the models folder, checked against each other.
pub fn read_verified(models_dir: &Path) -> Result<(Manifest, Vec<u8>)> {
    small_cnn::read_verified::<Manifest>(models_dir, FILES)
}

/// The door form of the network in these ONNX bytes: what a bundle carries.
pub fn door_form(onnx: &[u8]) -> Result<Vec<u8>> {
    Runner::door_form(NET, "mask state", onnx)
}

/// The loaded network.
#[derive(Clone, Debug)]
pub struct MaskState {
    net: Runner,
}

impl MaskState {
    /// Loads the network from ONNX bytes (vouched for by the caller).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Ok(Self {
            net: Runner::from_bytes(NET, "mask state", bytes)?,
        })
    }

    /// Loads the network from its door form (NNEF bytes from [`door_form`], vouched for by
    /// a bundle's signature): how the door reads it.
    pub fn from_door_form(bytes: &[u8]) -> Result<Self> {
        Ok(Self {
            net: Runner::from_door_form(NET, "mask state", bytes)?,
        })
    }

    /// The logit for one input made by [`input`] (above 0: masked).
    pub fn run(&self, input: Vec<f32>) -> Result<f32> {
        Ok(self.net.run(input)?[0])
    }

    /// Whether the face in this aligned 112x112 crop wears a mask.
    pub fn is_masked(&self, crop: &RgbImage) -> Result<bool> {
        Ok(self.run(input(crop))? > 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_graph_loads_in_tract_and_answers_one_value() {
        let weights: Vec<Vec<f32>> = NET
            .weight_shapes()
            .into_iter()
            .map(|(_, d)| {
                let n: usize = d.iter().product();
                (0..n).map(|i| ((i % 5) as f32 - 2.0) * 0.01).collect()
            })
            .collect();
        let net = MaskState::from_bytes(&NET.graph(&weights).expect("graph")).expect("load");
        let crop = RgbImage::from_fn(112, 112, |x, y| image::Rgb([x as u8, y as u8, 7]));
        assert!(net.run(input(&crop)).expect("run").is_finite());
    }
}
