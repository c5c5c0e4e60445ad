//! Face embedders (EdgeFace-S, SFace) through tract: aligned 112x112 crop in, L2-normalised
//! vector out. Two faces are compared by the dot product of their embeddings (cosine).

use std::path::Path;
use std::sync::Arc;

use image::RgbImage;
use serde::{Deserialize, Serialize};
use tract_onnx::prelude::*;

use crate::adapted;
use crate::align::CROP;
use crate::model_files::{self, ModelFile};
use crate::{Error, Result};

/// Which embedding network(s).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderKind {
    /// EdgeFace-S gamma 0.5: 512-d, 15 MB fp32 (4 MB int8), the default.
    #[default]
    EdgeFace,
    /// SFace 2021dec: 128-d, 39 MB fp32 (10 MB int8), OpenCV's recogniser.
    SFace,
    /// Both, score-averaged: the two networks fail on different faces, so their mean cosine
    /// separates people better, above all behind a mask, for about 3x the compute.
    Fused,
    /// A small CNN trained from scratch on the laptop (`facegate train --arch scratch`): not an
    /// embedder but a classifier, whose "embedding" is its class probabilities (the enrolled
    /// people, then "other people"). Its ONNX file travels only inside a signed bundle.
    Scratch,
    /// SFace with its last layer retrained for masked faces (`facegate models adapt`, see
    /// [`crate::adapted`]): same size and speed as SFace.
    #[serde(rename = "sface-masked")]
    SFaceMasked,
}

/// File name of a from-scratch CNN inside a bundle (int8 weights).
pub const SCRATCH_FILE: &str = "scratch_cnn.int8.onnx";

/// One network inside an embedder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Network {
    EdgeFace,
    SFace,
    Scratch,
    SFaceMasked,
}

impl Network {
    /// The pinned file; `None` for a from-scratch CNN, which is trained per door.
    fn model_file(self, quantised: bool) -> Option<&'static ModelFile> {
        match (self, quantised) {
            (Self::EdgeFace, false) => Some(&model_files::EDGEFACE),
            (Self::EdgeFace, true) => Some(&model_files::EDGEFACE_INT8),
            (Self::SFace, false) => Some(&model_files::SFACE),
            (Self::SFace, true) => Some(&model_files::SFACE_INT8),
            (Self::Scratch | Self::SFaceMasked, _) => None,
        }
    }

    /// The pinned door form; `None` for a network facegate trains (the laptop converts it
    /// when it makes a bundle).
    fn door_file(self, quantised: bool) -> Option<&'static ModelFile> {
        match (self, quantised) {
            (Self::EdgeFace, false) => Some(&model_files::EDGEFACE_DOOR),
            (Self::EdgeFace, true) => Some(&model_files::EDGEFACE_INT8_DOOR),
            (Self::SFace, false) => Some(&model_files::SFACE_DOOR),
            (Self::SFace, true) => Some(&model_files::SFACE_INT8_DOOR),
            (Self::Scratch | Self::SFaceMasked, _) => None,
        }
    }

    /// The ONNX file's name in a models folder (its door form's is [`crate::nnef::door_name`]
    /// of it).
    fn file_name(self, quantised: bool) -> &'static str {
        match (self, quantised) {
            (Self::Scratch, _) => SCRATCH_FILE,
            (Self::SFaceMasked, false) => adapted::FILE,
            (Self::SFaceMasked, true) => adapted::FILE_INT8,
            _ => self.model_file(quantised).map_or("", |f| f.file_name),
        }
    }

    /// The network's door form, from a models folder, checked: a pinned network's pinned
    /// file, the mask-adapted SFace's against the digest its manifest records.
    fn read_door_form(self, dir: &Path, quantised: bool) -> Result<Vec<u8>> {
        match (self, self.door_file(quantised)) {
            (_, Some(file)) => file.read_verified(dir),
            (Self::SFaceMasked, None) => adapted::read_door_form(dir, quantised),
            _ => Err(Error::ModelMissing {
                path: dir.join(self.file_name(quantised)),
            }),
        }
    }

    /// The network planned from a models folder as the door plans it from a bundle: from
    /// the door form [`Network::read_door_form`] reads. No ONNX is parsed here, so a binary
    /// that loads embedders only this way and from bundles links no ONNX parser.
    fn plan_from(self, dir: &Path, quantised: bool) -> Result<Arc<TypedRunnableModel>> {
        plan_door_form(&self.read_door_form(dir, quantised)?, self.label(quantised))
    }

    /// Name in messages.
    fn label(self, quantised: bool) -> &'static str {
        match self {
            Self::Scratch => "scratch CNN",
            Self::SFaceMasked => "mask-adapted SFace",
            _ => self.model_file(quantised).map_or("", |f| f.name),
        }
    }

    /// Maps an 8-bit channel value to the network's input range.
    fn normalise(self, p: u8) -> f32 {
        match self {
            // (p / 255 - 0.5) / 0.5
            Self::EdgeFace | Self::Scratch => p as f32 / 127.5 - 1.0,
            // SFace normalises inside its graph.
            Self::SFace | Self::SFaceMasked => p as f32,
        }
    }
}

impl EmbedderKind {
    fn networks(self) -> &'static [Network] {
        match self {
            Self::EdgeFace => &[Network::EdgeFace],
            Self::SFace => &[Network::SFace],
            Self::Fused => &[Network::EdgeFace, Network::SFace],
            Self::Scratch => &[Network::Scratch],
            Self::SFaceMasked => &[Network::SFaceMasked],
        }
    }

    /// The door form of every network this embedder runs, read from `dir` and checked, with
    /// its name: what a model bundle carries.
    pub fn read_files(self, dir: &Path, quantised: bool) -> Result<Vec<(String, Vec<u8>)>> {
        self.networks()
            .iter()
            .map(|n| {
                let name = crate::nnef::door_name(n.file_name(quantised));
                Ok((name, n.read_door_form(dir, quantised)?))
            })
            .collect()
    }

    /// Embedding length.
    pub fn dim(self) -> usize {
        match self {
            Self::EdgeFace => 512,
            Self::SFace | Self::SFaceMasked => 128,
            Self::Fused => 640,
            // Depends on the bundle (people + 1).
            Self::Scratch => 0,
        }
    }

    /// Short lower-case name, as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdgeFace => "edgeface",
            Self::SFace => "sface",
            Self::Fused => "fused",
            Self::Scratch => "scratch",
            Self::SFaceMasked => "sface-masked",
        }
    }
}

/// An L2-normalised face embedding.
pub type Embedding = Vec<f32>;

/// Cosine similarity of two L2-normalised embeddings.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The embedding network(s), ready to run.
pub struct Embedder {
    kind: EmbedderKind,
    quantised: bool,
    plans: Vec<(Network, &'static str, Arc<TypedRunnableModel>)>,
}

impl Embedder {
    /// Loads and verifies the network(s) from `dir`, planned as the door plans them from a
    /// bundle (see [`EmbedderKind::read_files`]).
    pub fn load(dir: &Path, kind: EmbedderKind, quantised: bool) -> Result<Self> {
        let mut plans = Vec::new();
        for &net in kind.networks() {
            let name = net.label(quantised);
            plans.push((net, name, net.plan_from(dir, quantised)?));
        }
        Ok(Self {
            kind,
            quantised,
            plans,
        })
    }

    /// Builds the embedder from the door forms carried in a model bundle: each network's must
    /// be there, and a pinned network's bytes must have the pinned SHA-256, whatever signed
    /// the bundle.
    pub fn from_files(
        kind: EmbedderKind,
        quantised: bool,
        files: &[(String, Vec<u8>)],
    ) -> Result<Self> {
        let mut plans = Vec::new();
        for &net in kind.networks() {
            let file_name = crate::nnef::door_name(net.file_name(quantised));
            let path = Path::new(&file_name);
            let (_, bytes) = files
                .iter()
                .find(|(name, _)| *name == file_name)
                .ok_or_else(|| Error::ModelMissing {
                    path: path.to_owned(),
                })?;
            // A pinned network must be the pinned bytes; a trained one (scratch CNN,
            // mask-adapted SFace) is vouched for by the bundle's signature alone.
            if let Some(file) = net.door_file(quantised) {
                file.verify(path, bytes)?;
            }
            let name = net.label(quantised);
            plans.push((net, name, plan_door_form(bytes, name)?));
        }
        Ok(Self {
            kind,
            quantised,
            plans,
        })
    }

    /// Which network(s) this is.
    pub fn kind(&self) -> EmbedderKind {
        self.kind
    }

    /// Whether the int8-weight files are in use.
    pub fn quantised(&self) -> bool {
        self.quantised
    }

    /// Embeds one aligned crop (must be `CROP`x`CROP`). A fused embedder concatenates its
    /// networks' unit vectors scaled by 1/sqrt(n), so the result is a unit vector whose cosine
    /// with another is the mean of the networks' cosines.
    pub fn embed(&self, crop: &RgbImage) -> Result<Embedding> {
        let weight = 1.0 / (self.plans.len() as f32).sqrt();
        let mut out = Vec::with_capacity(self.kind.dim());
        for (net, name, plan) in &self.plans {
            let v = run(*net, name, plan, crop)?;
            if *net == Network::Scratch {
                out.extend(v); // class probabilities, not a direction
            } else {
                out.extend(l2_normalise(v).into_iter().map(|x| x * weight));
            }
        }
        Ok(out)
    }
}

/// The door form of an embedder from its verified ONNX bytes ([`decluttered`], written by
/// [`crate::nnef::to_bytes`]): what a bundle carries for a network facegate trained.
pub fn door_form(onnx: &[u8], name: &'static str) -> Result<Vec<u8>> {
    crate::nnef::to_bytes(&decluttered(onnx, name)?).map_err(|e| Error::load(name, e))
}

/// Builds the door's plan for an embedder from its door form (vouched for by a pin or a
/// bundle's signature); a graph that does not take one aligned crop is refused.
fn plan_door_form(bytes: &[u8], name: &'static str) -> Result<Arc<TypedRunnableModel>> {
    let side = CROP as usize;
    runnable(
        crate::nnef::read_checked(bytes, &[1, 3, side, side], name)?,
        name,
    )
}

/// A typed, decluttered embedder through the door's optimiser, ready to run.
fn runnable(typed: TypedModel, name: &'static str) -> Result<Arc<TypedRunnableModel>> {
    crate::ops::optimised_typed(typed)
        .and_then(|m| m.into_runnable())
        .map_err(|e| Error::load(name, e))
}

/// [`plan`], optionally stopping at the tensor named `output` instead of the graph's output.
pub(crate) fn plan_to(
    bytes: &[u8],
    name: &'static str,
    output: Option<&str>,
) -> Result<Arc<TypedRunnableModel>> {
    plan_with(bytes, name, output, true, crate::ops::optimised)
}

/// [`plan_to`], with or without fusing LayerNorms into facegate's own operator (without: the
/// centring rewrite alone, as before the fusion), optimised by `optimise` (the door's
/// [`crate::ops::optimised`]; the bench compares others side by side in one run).
fn plan_with(
    bytes: &[u8],
    name: &'static str,
    output: Option<&str>,
    fuse_layer_norms: bool,
    optimise: fn(InferenceModel) -> TractResult<TypedModel>,
) -> Result<Arc<TypedRunnableModel>> {
    model_with(bytes, name, output, fuse_layer_norms, optimise)?
        .into_runnable()
        .map_err(|e| Error::load(name, e))
}

/// An embedder as the door plans it, typed and decluttered but not yet optimised: the form
/// [`crate::nnef`] writes.
pub fn decluttered(bytes: &[u8], name: &'static str) -> Result<TypedModel> {
    model_with(bytes, name, None, true, crate::ops::decluttered)
}

/// [`plan_with`] up to its plan: the typed model `optimise` makes.
fn model_with(
    bytes: &[u8],
    name: &'static str,
    output: Option<&str>,
    fuse_layer_norms: bool,
    optimise: fn(InferenceModel) -> TractResult<TypedModel>,
) -> Result<TypedModel> {
    let mut proto = crate::quantise::expand_int8_weights(bytes)?;
    crate::rewrite::prelu_as_relu_and_depthwise(&mut proto);
    if fuse_layer_norms {
        crate::rewrite::layernorm_as_fused(&mut proto);
    }
    crate::rewrite::layernorm_centering_as_matmul(&mut proto);
    let model = crate::ops::onnx()
        .with_ignore_value_info(true)
        .model_for_proto_model(&proto);
    // tract holds its own copy of every weight now: free the expanded protobuf before the
    // optimiser packs a third (SFace's f32 weights are 39 MB; the door's peak RSS counts).
    drop(proto);
    model
        .and_then(|m| m.with_input_fact(0, f32::fact([1, 3, CROP as usize, CROP as usize]).into()))
        .and_then(|mut m| {
            if let Some(output) = output {
                m.select_outputs_by_name([output])?;
            }
            Ok(m)
        })
        .and_then(optimise)
        .map_err(|e| Error::load(name, e))
}

/// An embedder's plan as the door builds it, as it was built before LayerNorm fusion, and
/// with tract's own depthwise convolutions and GELUs instead of facegate's, for
/// `benches/recognition.rs` to time side by side in one run.
#[cfg(feature = "testdata")]
pub fn plans_for_the_bench(bytes: &[u8]) -> Result<[(&'static str, Arc<TypedRunnableModel>); 3]> {
    use crate::ops::{optimised, optimised_by_tract};
    Ok([
        (
            "unfused",
            plan_with(bytes, "embedder", None, false, optimised)?,
        ),
        (
            "fused",
            plan_with(bytes, "embedder", None, true, optimised)?,
        ),
        (
            "fused_tract_ops",
            plan_with(bytes, "embedder", None, true, optimised_by_tract)?,
        ),
    ])
}

/// Runs one network on a crop: NCHW, R,G,B, the network's own input scaling.
pub(crate) fn run(
    net: Network,
    name: &'static str,
    plan: &Arc<TypedRunnableModel>,
    crop: &RgbImage,
) -> Result<Vec<f32>> {
    let side = CROP as usize;
    let plane = side * side;
    let mut data = vec![0f32; 3 * plane];
    for (x, y, p) in crop.enumerate_pixels().take(plane) {
        let i = y as usize * side + x as usize;
        for c in 0..3 {
            data[c * plane + i] = net.normalise(p[c]);
        }
    }
    let input = tract_ndarray::Array4::from_shape_vec((1, 3, side, side), data)
        .map_err(|e| Error::inference(name, e))?
        .into_tensor();
    let out = plan
        .run(tvec![input.into()])
        .map_err(|e| Error::inference(name, e))?;
    out[0]
        .try_as_plain_ram()
        .and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec()))
        .map_err(|e| Error::inference(name, e))
}

/// Divides by the L2 norm (a zero vector stays zero rather than becoming NaN).
pub fn l2_normalise(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 && n.is_finite() {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_files::default_dir;

    fn crop() -> RgbImage {
        RgbImage::from_fn(CROP, CROP, |x, y| {
            image::Rgb([(x * 2) as u8, (y * 2) as u8, ((x + y) % 256) as u8])
        })
    }

    /// What a bundle carries is what the laptop measured: the door forms `read_files` puts in
    /// a bundle embed exactly as `Embedder::load` does from the models folder, and a bundle
    /// whose network is changed, missing, still ONNX, or another network's is refused.
    #[test]
    fn bundled_door_forms_embed_as_the_laptop_and_wrong_ones_are_refused() {
        let dir = default_dir();
        let kind = EmbedderKind::EdgeFace;
        let files = kind
            .read_files(&dir, true)
            .expect("run `facegate models fetch`");
        assert_eq!(files[0].0, "edgeface_s_gamma_05.int8.nnef.tar");
        let door = Embedder::from_files(kind, true, &files).expect("bundle");
        let laptop = Embedder::load(&dir, kind, true).expect("models folder");
        assert_eq!(
            door.embed(&crop()).expect("door"),
            laptop.embed(&crop()).expect("laptop")
        );
        let refused = |files: Vec<(String, Vec<u8>)>, kind: EmbedderKind| {
            let err = Embedder::from_files(kind, true, &files)
                .err()
                .expect("refused");
            // The message and its cause, as `anyhow`'s `{:#}` shows them to a user.
            let cause = std::error::Error::source(&err).map(|s| s.to_string());
            format!("{err}: {}", cause.unwrap_or_default())
        };
        // One byte changed: not the pinned file, whoever signed it.
        let mut changed = files.clone();
        let last = changed[0].1.len() - 1;
        changed[0].1[last] ^= 1;
        assert!(refused(changed, kind).contains("SHA-256"));
        // The ONNX file under its old name: the door form is missing, and named.
        let onnx = model_files::EDGEFACE_INT8
            .read_verified(&dir)
            .expect("onnx");
        let old = vec![(
            model_files::EDGEFACE_INT8.file_name.to_owned(),
            onnx.clone(),
        )];
        assert!(refused(old, kind).contains("edgeface_s_gamma_05.int8.nnef.tar"));
        // A trained network has no pin: its bytes must still be a door form of an embedder.
        let name = crate::nnef::door_name(SCRATCH_FILE);
        let as_onnx = vec![(name.clone(), onnx)];
        assert!(!refused(as_onnx, EmbedderKind::Scratch).is_empty());
        let refiner = crate::refine::door_form(&crate::refine::template_graph().expect("graph"))
            .expect("refiner");
        let other = vec![(name, refiner)];
        let err = refused(other, EmbedderKind::Scratch);
        assert!(err.contains("1x3x112x112"), "{err}");
    }
}
