//! Face embedders (EdgeFace-S, SFace) through tract: aligned 112x112 crop in, L2-normalised
//! vector out. Two faces are compared by the dot product of their embeddings (cosine).

use std::path::Path;
use std::sync::Arc;

use image::RgbImage;
use serde::{Deserialize, Serialize};
use tract_onnx::prelude::*;

use crate::align::CROP;
use crate::model_files::{self, ModelFile};
use crate::{Error, Result};

/// Which embedding network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderKind {
    /// EdgeFace-S gamma 0.5: 512-d, 15 MB fp32, the default (better under masks, smaller).
    #[default]
    EdgeFace,
    /// SFace 2021dec: 128-d, 39 MB fp32, OpenCV's recogniser.
    SFace,
}

impl EmbedderKind {
    /// The pinned file for this embedder, fp32 or int8-weight.
    pub fn model_file(self, quantised: bool) -> &'static ModelFile {
        match (self, quantised) {
            (Self::EdgeFace, false) => &model_files::EDGEFACE,
            (Self::EdgeFace, true) => &model_files::EDGEFACE_INT8,
            (Self::SFace, false) => &model_files::SFACE,
            (Self::SFace, true) => &model_files::SFACE_INT8,
        }
    }

    /// Embedding length.
    pub fn dim(self) -> usize {
        match self {
            Self::EdgeFace => 512,
            Self::SFace => 128,
        }
    }

    /// Maps an 8-bit channel value to the network's input range.
    fn normalise(self, p: u8) -> f32 {
        match self {
            // (p / 255 - 0.5) / 0.5
            Self::EdgeFace => p as f32 / 127.5 - 1.0,
            // SFace normalises inside its graph.
            Self::SFace => p as f32,
        }
    }

    /// Short lower-case name, as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdgeFace => "edgeface",
            Self::SFace => "sface",
        }
    }
}

/// An L2-normalised face embedding.
pub type Embedding = Vec<f32>;

/// Cosine similarity of two L2-normalised embeddings.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// An embedding network ready to run.
pub struct Embedder {
    kind: EmbedderKind,
    quantised: bool,
    plan: Arc<TypedRunnableModel>,
}

impl Embedder {
    /// Loads and verifies the pinned file from `dir`.
    pub fn load(dir: &Path, kind: EmbedderKind, quantised: bool) -> Result<Self> {
        let bytes = kind.model_file(quantised).read_verified(dir)?;
        Self::from_bytes(&bytes, kind, quantised)
    }

    /// Builds the plan from ONNX bytes the caller has already verified.
    pub fn from_bytes(bytes: &[u8], kind: EmbedderKind, quantised: bool) -> Result<Self> {
        let name = kind.model_file(quantised).name;
        let plan = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .model_for_read(&mut &bytes[..])
            .and_then(|m| {
                m.with_input_fact(0, f32::fact([1, 3, CROP as usize, CROP as usize]).into())
            })
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| Error::load(name, e))?;
        Ok(Self {
            kind,
            quantised,
            plan,
        })
    }

    /// Which network this is.
    pub fn kind(&self) -> EmbedderKind {
        self.kind
    }

    /// Whether the int8-weight file is in use.
    pub fn quantised(&self) -> bool {
        self.quantised
    }

    /// Embeds one aligned crop (must be `CROP`x`CROP`).
    pub fn embed(&self, crop: &RgbImage) -> Result<Embedding> {
        let name = self.kind.model_file(self.quantised).name;
        let side = CROP as usize;
        let plane = side * side;
        let mut data = vec![0f32; 3 * plane];
        for (x, y, p) in crop.enumerate_pixels().take(plane) {
            let i = y as usize * side + x as usize;
            for c in 0..3 {
                data[c * plane + i] = self.kind.normalise(p[c]);
            }
        }
        let input = tract_ndarray::Array4::from_shape_vec((1, 3, side, side), data)
            .map_err(|e| Error::inference(name, e))?
            .into_tensor();
        let out = self
            .plan
            .run(tvec![input.into()])
            .map_err(|e| Error::inference(name, e))?;
        let v = out[0]
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec()))
            .map_err(|e| Error::inference(name, e))?;
        Ok(l2_normalise(v))
    }
}

/// Divides by the L2 norm (a zero vector stays zero rather than becoming NaN).
pub fn l2_normalise(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 && n.is_finite() {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}
