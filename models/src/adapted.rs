//! The mask-adapted SFace: the pinned SFace 2021dec whose last layer is retrained on the host
//! so that a face behind a mask lands where the same face without one does.
//!
//! SFace ends in one linear map from its 7x7x1024 feature map (`bn1`) to the 128-d embedding,
//! followed by a fixed batch norm. That map still knows *where* each feature came from, so it
//! can learn to lean on the eyes and brows a mask leaves visible. `facegate models adapt`
//! retrains only that map by distillation: the pinned SFace on an unmasked photo is the
//! teacher, the adapted one must give the same direction for the photo with a synthetic mask
//! and without it. No labels are needed, and the backbone (every other weight) is the pinned
//! network, untouched.
//!
//! Training is not bit-reproducible across machines (thread counts change the order of float
//! sums), so the result cannot be pinned by a constant SHA-256 like the fetched files. A
//! manifest beside it records the digests of the fp32 and int8 files, the pinned base and how it
//! was trained; loading from the models folder checks the file against it. Inside a model
//! bundle, the bundle's signature vouches for it, as for any trained part.

use std::path::Path;
use std::sync::Arc;

use prost::Message;
use serde::{Deserialize, Serialize};
use tract_onnx::pb::{ModelProto, TensorProto, tensor_proto::DataType};
use tract_onnx::prelude::*;

use crate::model_files::{SFACE, sha256_hex};
use crate::quantise::float_values;
use crate::{Error, Result};

/// The adapted network, fp32 weights.
pub const FILE: &str = "face_recognition_sface_2021dec.masked.onnx";
/// The adapted network with int8 weights (what the door runs).
pub const FILE_INT8: &str = "face_recognition_sface_2021dec.masked.int8.onnx";
/// What was trained, and the digests of both files.
pub const MANIFEST: &str = "sface_masked.json";
/// SFace's feature map before its last layer (7x7x1024, flattened by the graph).
pub const FEATURES: &str = "bn1";
const WEIGHT: &str = "pre_fc1_weight";
const BIAS: &str = "pre_fc1_bias";
const NORM: &str = "fc1";

/// Written by `facegate models adapt` beside the two files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// SHA-256 of the pinned SFace the layer was trained on.
    pub base_sha256: String,
    /// SHA-256 of [`FILE`].
    pub sha256: String,
    /// SHA-256 of [`FILE_INT8`].
    pub sha256_int8: String,
    /// The photo folder it was trained on.
    pub faces: String,
    /// People and photos used, and training views (plain + masked copies).
    pub people: usize,
    /// Photos with a face.
    pub photos: usize,
    /// Training views.
    pub views: usize,
    /// Mean distillation loss (1 - cosine to the teacher) after each epoch.
    pub loss: Vec<f32>,
    /// When, ms since the Unix epoch.
    pub created_ms: u64,
    /// The landmark refiner the training views were aligned with, if any (SHA-256): the layer
    /// is best used with the same alignment.
    #[serde(default)]
    pub refiner_sha256: Option<String>,
    /// How hard masked views were pushed away from other people's faces (0: not at all, as
    /// before this setting existed), and from what cosine on.
    #[serde(default)]
    pub stranger: Stranger,
    /// Mean stranger term after each epoch (empty when its weight is 0).
    #[serde(default)]
    pub stranger_loss: Vec<f32>,
    /// SHA-256 of the door form of [`FILE`] ([`door_file`]), recorded when it is written
    /// ([`install_door_forms`]); whoever rewrites the network clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door_sha256: Option<String>,
    /// SHA-256 of the door form of [`FILE_INT8`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door_sha256_int8: Option<String>,
}

/// The door form's name of the adapted network (what a bundle carries and what
/// `Embedder::load` reads): [`crate::nnef::door_name`] of [`FILE`] or [`FILE_INT8`].
pub fn door_file(quantised: bool) -> String {
    crate::nnef::door_name(if quantised { FILE_INT8 } else { FILE })
}

/// The door form of the adapted network in `dir`, checked against the digest its manifest
/// records (which [`install_door_forms`] writes: `facegate models fetch`).
pub fn read_door_form(dir: &Path, quantised: bool) -> Result<Vec<u8>> {
    let manifest = read_manifest(dir)?;
    let recorded = if quantised {
        manifest.door_sha256_int8
    } else {
        manifest.door_sha256
    };
    let path = dir.join(door_file(quantised));
    let Some(expected) = recorded else {
        return Err(Error::Adapted {
            path,
            reason: format!("{MANIFEST} records no door form; `facegate models fetch` writes it"),
        });
    };
    read_recorded(
        path,
        &expected,
        " (`facegate models fetch` writes the door form again from the checked network)",
    )
}

/// The bytes at `path` if their SHA-256 is `expected` (what the manifest records); `fix` ends
/// the reason when they are not.
fn read_recorded(path: std::path::PathBuf, expected: &str, fix: &str) -> Result<Vec<u8>> {
    let bytes = std::fs::read(&path).map_err(|e| Error::Adapted {
        path: path.clone(),
        reason: format!("cannot read it ({e}){fix}"),
    })?;
    let actual = sha256_hex(&bytes);
    if actual != expected {
        return Err(Error::Adapted {
            path,
            reason: format!("SHA-256 {actual}, but the manifest says {expected}{fix}"),
        });
    }
    Ok(bytes)
}

/// Writes the door forms of both adapted files in `dir` from their checked ONNX bytes and
/// records their digests in the manifest, unless both are there and agree. Returns the int8
/// door form's length when they were (re)written.
pub fn install_door_forms(dir: &Path) -> Result<Option<usize>> {
    if read_door_form(dir, false).is_ok() && read_door_form(dir, true).is_ok() {
        return Ok(None);
    }
    let mut manifest = read_manifest(dir)?;
    let fp32 = crate::embed::door_form(&read_verified(dir, false)?, "mask-adapted SFace")?;
    let int8 = crate::embed::door_form(&read_verified(dir, true)?, "mask-adapted SFace")?;
    manifest.door_sha256 = Some(sha256_hex(&fp32));
    manifest.door_sha256_int8 = Some(sha256_hex(&int8));
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Adapted {
        path: dir.join(MANIFEST),
        reason: e.to_string(),
    })?;
    // The door forms first, then the manifest that names them (see `write_synced`).
    crate::model_files::write_synced(dir, &door_file(false), &fp32)?;
    crate::model_files::write_synced(dir, &door_file(true), &int8)?;
    crate::model_files::write_synced(dir, MANIFEST, &json)?;
    Ok(Some(int8.len()))
}

/// The stranger term of `facegate models adapt`: a masked view whose cosine to another
/// person's unmasked face exceeds `margin` is penalised by `weight` times the squared excess,
/// so that masks stop making strangers look alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stranger {
    /// Weight of the term against the distillation loss.
    pub weight: f32,
    /// Cosine above which a pair of different people is penalised.
    pub margin: f32,
}

/// SFace's last layer, `embedding = (weight . features + bias) * scale + shift`.
#[derive(Clone, Debug, PartialEq)]
pub struct LastLayer {
    /// Row-major `outputs x inputs`.
    pub weight: Vec<f32>,
    /// One per output.
    pub bias: Vec<f32>,
    /// The following batch norm folded to a scale...
    pub scale: Vec<f32>,
    /// ...and a shift per output.
    pub shift: Vec<f32>,
    /// Feature length (50,176 for SFace).
    pub inputs: usize,
    /// Embedding length (128).
    pub outputs: usize,
}

impl LastLayer {
    /// The L2-normalised embedding of one flattened feature map.
    pub fn apply(&self, features: &[f32]) -> Vec<f32> {
        let e = self
            .weight
            .chunks_exact(self.inputs)
            .zip(self.bias.iter().zip(self.scale.iter().zip(&self.shift)))
            .map(|(row, (b, (scale, shift)))| {
                let z: f32 = row.iter().zip(features).map(|(w, x)| w * x).sum::<f32>() + b;
                z * scale + shift
            })
            .collect();
        crate::embed::l2_normalise(e)
    }
}

fn bad(reason: impl Into<String>) -> Error {
    Error::OnnxRewrite {
        reason: reason.into(),
    }
}

fn decode(onnx: &[u8]) -> Result<ModelProto> {
    ModelProto::decode(onnx).map_err(|e| bad(format!("not an ONNX model file: {e}")))
}

fn initializer<'a>(model: &'a ModelProto, name: &str) -> Result<&'a TensorProto> {
    model
        .graph
        .as_ref()
        .and_then(|g| g.initializer.iter().find(|t| t.name == name))
        .ok_or_else(|| {
            bad(format!(
                "the model has no tensor {name}: is this SFace 2021dec?"
            ))
        })
}

fn values(model: &ModelProto, name: &str) -> Result<Vec<f32>> {
    let v = float_values(initializer(model, name)?)?;
    if v.is_empty() {
        return Err(bad(format!("{name} is not a float tensor")));
    }
    Ok(v)
}

/// Reads SFace's last layer (and folds the batch norm after it) from the ONNX file.
pub fn last_layer(sface: &[u8]) -> Result<LastLayer> {
    let model = decode(sface)?;
    let weight = values(&model, WEIGHT)?;
    let bias = values(&model, BIAS)?;
    let dims = &initializer(&model, WEIGHT)?.dims;
    let (outputs, inputs) = match dims.as_slice() {
        [o, i] => (*o as usize, *i as usize),
        _ => return Err(bad(format!("{WEIGHT} has shape {dims:?}, expected 2-D"))),
    };
    let norm = |part: &str| values(&model, &format!("{NORM}_{part}"));
    let (gamma, beta, mean, var) = (
        norm("gamma")?,
        norm("beta")?,
        norm("moving_mean")?,
        norm("moving_var")?,
    );
    let eps = model
        .graph
        .as_ref()
        .and_then(|g| g.node.iter().find(|n| n.output.iter().any(|o| o == NORM)))
        .and_then(|n| n.attribute.iter().find(|a| a.name == "epsilon"))
        .map_or(1e-5, |a| a.f);
    if bias.len() != outputs
        || [&gamma, &beta, &mean, &var]
            .iter()
            .any(|v| v.len() != outputs)
    {
        return Err(bad(
            "SFace's last layer and its batch norm disagree in size",
        ));
    }
    let scale: Vec<f32> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + eps).sqrt())
        .collect();
    let shift = beta
        .iter()
        .zip(&mean)
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    Ok(LastLayer {
        weight,
        bias,
        scale,
        shift,
        inputs,
        outputs,
    })
}

/// The SFace file with its last layer's weight and bias replaced; nothing else changes.
pub fn with_last_layer(sface: &[u8], weight: &[f32], bias: &[f32]) -> Result<Vec<u8>> {
    let mut model = decode(sface)?;
    let old = last_layer(sface)?;
    if weight.len() != old.weight.len() || bias.len() != old.bias.len() {
        return Err(bad(format!(
            "new last layer has {} weights and {} biases, SFace has {} and {}",
            weight.len(),
            bias.len(),
            old.weight.len(),
            old.bias.len()
        )));
    }
    let graph = model.graph.as_mut().ok_or_else(|| bad("no graph"))?;
    for t in &mut graph.initializer {
        let new = match t.name.as_str() {
            WEIGHT => weight,
            BIAS => bias,
            _ => continue,
        };
        t.data_type = DataType::Float as i32;
        t.float_data.clear();
        t.raw_data = new.iter().flat_map(|v| v.to_le_bytes()).collect();
    }
    Ok(model.encode_to_vec())
}

/// The committed form of an adapted last layer (`models/trained/`): the weight in int8, one
/// scale per output row (the same rounding the int8 door file uses), and the bias in f32, so
/// that 6.4 MB in the repository stand for the 38.7 MB network. [`splice`] puts it back into
/// the pinned SFace. Layout: [`LAYER_MAGIC`], outputs and inputs (u32 LE), bias and scales
/// (f32 LE, one per output), then the weight row by row (i8).
pub const LAYER_FILE: &str = "sface_masked_layer.bin";
/// The committed layer's manifest: its digest, how it was trained, and the adapted manifest
/// that [`splice`]'s two files must reproduce.
pub const LAYER_MANIFEST: &str = "sface_masked_layer.json";
/// First bytes of a [`LAYER_FILE`].
pub const LAYER_MAGIC: &[u8; 8] = b"FGLAYER1";

/// Packs `layer`'s weight and bias into the [`LAYER_FILE`] form.
pub fn pack_layer(layer: &LastLayer) -> Vec<u8> {
    // The door's quantiser, one channel per output row: the packed rows are what the int8
    // file holds.
    let dims = [layer.outputs as i64, layer.inputs as i64];
    let (q, scales, _) = crate::quantise::quantise_per_channel(&layer.weight, &dims, 0);
    let mut out = Vec::with_capacity(16 + 8 * layer.outputs + q.len());
    out.extend_from_slice(LAYER_MAGIC);
    out.extend_from_slice(&(layer.outputs as u32).to_le_bytes());
    out.extend_from_slice(&(layer.inputs as u32).to_le_bytes());
    for v in layer.bias.iter().chain(&scales) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend(q.iter().map(|&v| v as u8));
    out
}

/// Reads a [`LAYER_FILE`] made for a layer of `outputs` x `inputs`: the weight (dequantised)
/// and the bias. Anything else (another size, a truncated or padded file, a scale that is not
/// a positive finite number) is refused before anything is allocated from its header.
pub fn unpack_layer(bytes: &[u8], outputs: usize, inputs: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    let header = 16;
    let expected = header + 8 * outputs + outputs * inputs;
    if bytes.len() < header || &bytes[..8] != LAYER_MAGIC {
        return Err(bad("not a facegate layer file (no FGLAYER1 header)"));
    }
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let (o, i) = (word(8) as usize, word(12) as usize);
    if (o, i) != (outputs, inputs) || bytes.len() != expected {
        return Err(bad(format!(
            "the layer file is {o} x {i} in {} bytes; SFace's last layer is {outputs} x {inputs} \
             ({expected} bytes)",
            bytes.len()
        )));
    }
    let floats: Vec<f32> = bytes[header..header + 8 * outputs]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let (bias, scales) = floats.split_at(outputs);
    if bias.iter().any(|b| !b.is_finite()) || scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(bad(
            "the layer file has a bias or scale that is not a finite number",
        ));
    }
    let weight = bytes[header + 8 * outputs..]
        .chunks_exact(inputs.max(1))
        .zip(scales)
        .flat_map(|(row, s)| row.iter().map(move |&q| f32::from(q as i8) * s))
        .collect();
    Ok((weight, bias.to_vec()))
}

/// The pinned SFace with a committed layer put back: the fp32 file and its int8 twin (made by
/// the door's quantiser), both deterministic, so their digests can be pinned in a manifest.
pub fn splice(sface: &[u8], layer: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let base = last_layer(sface)?;
    let (weight, bias) = unpack_layer(layer, base.outputs, base.inputs)?;
    let fp32 = with_last_layer(sface, &weight, &bias)?;
    let (int8, _) = crate::quantise::quantise_weights(&fp32)?;
    Ok((fp32, int8))
}

/// A tract plan of SFace that stops at [`FEATURES`]: crop in (0..255 per channel, NCHW), the
/// flattened feature map out. The host runs it once per training view.
pub fn feature_plan(sface: &[u8]) -> Result<Arc<TypedRunnableModel>> {
    crate::embed::plan_to(sface, "SFace features", Some(FEATURES))
}

/// The flattened feature map of one aligned crop, through a [`feature_plan`].
pub fn features(plan: &Arc<TypedRunnableModel>, crop: &image::RgbImage) -> Result<Vec<f32>> {
    crate::embed::run(crate::embed::Network::SFace, "SFace features", plan, crop)
}

/// The manifest in `dir`.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let manifest_path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&manifest_path).map_err(|e| Error::Adapted {
        path: manifest_path.clone(),
        reason: format!("cannot read the manifest ({e})"),
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Adapted {
        path: manifest_path,
        reason: format!("unreadable manifest ({e})"),
    })
}

/// Reads the adapted file (int8 or fp32) from `dir` and checks it against the manifest.
pub fn read_verified(dir: &Path, quantised: bool) -> Result<Vec<u8>> {
    let manifest_path = dir.join(MANIFEST);
    let manifest = read_manifest(dir)?;
    if manifest.base_sha256 != SFACE.sha256 {
        return Err(Error::Adapted {
            path: manifest_path,
            reason: "trained on another SFace than the pinned one".into(),
        });
    }
    let (name, expected) = if quantised {
        (FILE_INT8, manifest.sha256_int8)
    } else {
        (FILE, manifest.sha256)
    };
    read_recorded(dir.join(name), &expected, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::CROP;
    use crate::model_files::default_dir;

    fn sface() -> Vec<u8> {
        SFACE
            .read_verified(&default_dir())
            .expect("SFace missing: run `facegate models fetch` (or set FACEGATE_MODELS)")
    }

    #[test]
    fn last_layer_roundtrips_and_replacing_changes_only_it() {
        let bytes = sface();
        let layer = last_layer(&bytes).expect("test step");
        assert_eq!((layer.outputs, layer.inputs), (128, 1024 * 7 * 7));
        let w2: Vec<f32> = layer.weight.iter().map(|w| w * 0.5).collect();
        let b2 = vec![0.25; layer.outputs];
        let out = with_last_layer(&bytes, &w2, &b2).expect("test step");
        let again = last_layer(&out).expect("test step");
        assert_eq!(again.weight, w2);
        assert_eq!(again.bias, b2);
        assert_eq!(again.scale, layer.scale);
        // Every other tensor is byte-identical.
        let (a, b) = (
            decode(&bytes).expect("test step"),
            decode(&out).expect("test step"),
        );
        let (ga, gb) = (a.graph.expect("test step"), b.graph.expect("test step"));
        assert_eq!(ga.node, gb.node);
        for (x, y) in ga.initializer.iter().zip(&gb.initializer) {
            if x.name != WEIGHT && x.name != BIAS {
                assert_eq!(x, y);
            }
        }
    }

    #[test]
    fn features_through_the_last_layer_give_sface_s_embedding() {
        let bytes = sface();
        let layer = last_layer(&bytes).expect("test step");
        let plan = feature_plan(&bytes).expect("test step");
        let embedder =
            crate::embed::Embedder::load(&default_dir(), crate::embed::EmbedderKind::SFace, false)
                .expect("test step");
        let crop = image::RgbImage::from_fn(CROP, CROP, |x, y| {
            image::Rgb([(x * 2) as u8, (y * 2) as u8, ((x + y) % 256) as u8])
        });
        let f = features(&plan, &crop).expect("test step");
        assert_eq!(f.len(), layer.inputs);
        let e = layer.apply(&f);
        let reference = embedder.embed(&crop).expect("test step");
        let cos = crate::embed::cosine(&e, &reference);
        assert!(cos > 0.9999, "cosine {cos}");
    }

    #[test]
    fn a_bundled_adapted_file_needs_no_pin() {
        use crate::embed::{Embedder, EmbedderKind, cosine};
        let bytes = sface();
        let layer = last_layer(&bytes).expect("test step");
        // Same weights, rewritten: a different file that must embed exactly as SFace.
        let same = with_last_layer(&bytes, &layer.weight, &layer.bias).expect("test step");
        let door = crate::embed::door_form(&same, "adapted").expect("test step");
        let adapted = Embedder::from_files(
            EmbedderKind::SFaceMasked,
            false,
            &[(crate::nnef::door_name(FILE), door)],
        )
        .expect("test step");
        let sface = Embedder::load(&default_dir(), EmbedderKind::SFace, false).expect("test step");
        let crop = image::RgbImage::from_fn(CROP, CROP, |x, y| {
            image::Rgb([(x * 2) as u8, 90, (y * 2) as u8])
        });
        let c = cosine(
            &adapted.embed(&crop).expect("test step"),
            &sface.embed(&crop).expect("test step"),
        );
        assert!(c > 0.99999, "cosine {c}");
        // Without the file the bundle is refused.
        assert!(Embedder::from_files(EmbedderKind::SFaceMasked, true, &[]).is_err());
    }

    #[test]
    fn a_packed_layer_splices_back_into_sface() {
        let bytes = sface();
        let layer = last_layer(&bytes).expect("test step");
        let packed = pack_layer(&layer);
        assert_eq!(packed.len(), 16 + 8 * 128 + 128 * 50_176);
        let (w, b) = unpack_layer(&packed, 128, 50_176).expect("test step");
        assert_eq!(b, layer.bias);
        // Each weight within half a step of its row's int8 scale.
        for (row, orig) in w
            .chunks_exact(50_176)
            .zip(layer.weight.chunks_exact(50_176))
        {
            let m = orig.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = row
                .iter()
                .zip(orig)
                .fold(0f32, |e, (a, o)| e.max((a - o).abs()));
            assert!(worst <= m / 127.0 * 0.5001, "{worst} vs step {}", m / 127.0);
        }
        let (fp32, int8) = splice(&bytes, &packed).expect("test step");
        assert_eq!(last_layer(&fp32).expect("test step").weight, w);
        // Deterministic, so a manifest can pin both digests.
        let (fp32b, int8b) = splice(&bytes, &packed).expect("test step");
        assert_eq!(
            (sha256_hex(&fp32), sha256_hex(&int8)),
            (sha256_hex(&fp32b), sha256_hex(&int8b))
        );
        // Bad layer files are refused with a reason, never a panic.
        for bad in [
            Vec::new(),
            b"FGLAYER1".to_vec(),
            packed[..packed.len() - 1].to_vec(),
            [packed.as_slice(), &[0]].concat(),
            {
                let mut p = packed.clone();
                p[8] = 64; // claims 64 outputs
                p
            },
            {
                let mut p = packed.clone();
                p[16 + 4 * 128..16 + 4 * 128 + 4].copy_from_slice(&f32::NAN.to_le_bytes());
                p
            },
        ] {
            assert!(
                splice(&bytes, &bad).is_err(),
                "{} bytes accepted",
                bad.len()
            );
        }
    }

    #[test]
    fn missing_or_altered_files_are_refused() {
        let dir = tempfile::tempdir().expect("test step");
        let err = read_verified(dir.path(), true)
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("models adapt"), "{err}");
        let m = Manifest {
            base_sha256: SFACE.sha256.into(),
            sha256: sha256_hex(b"fp32"),
            sha256_int8: sha256_hex(b"int8"),
            faces: "x".into(),
            people: 1,
            photos: 1,
            views: 2,
            loss: vec![0.1],
            created_ms: 0,
            refiner_sha256: None,
            stranger: Stranger::default(),
            stranger_loss: Vec::new(),
            door_sha256: None,
            door_sha256_int8: None,
        };
        std::fs::write(
            dir.path().join(MANIFEST),
            serde_json::to_string(&m).expect("test step"),
        )
        .expect("test step");
        std::fs::write(dir.path().join(FILE_INT8), b"int8").expect("test step");
        assert_eq!(read_verified(dir.path(), true).expect("test step"), b"int8");
        std::fs::write(dir.path().join(FILE_INT8), b"int9").expect("test step");
        let err = read_verified(dir.path(), true)
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("manifest says"), "{err}");
    }
}
