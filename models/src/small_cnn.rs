//! Running the small CNNs facegate trains itself (the landmark refiner, the liveness network,
//! the mask-state classifier) with tract, and reading them from the models folder with their
//! manifests. One loader and one runner for all three, so a check added here (the input shape
//! fixed at load, the output's length, non-finite outputs refused) protects each of them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use tract_onnx::prelude::*;

use crate::model_files::sha256_hex;
use crate::onnx_build::SmallCnn;
use crate::{Error, Result};

/// A loaded small CNN.
#[derive(Clone)]
pub struct Runner {
    plan: Arc<TypedRunnableModel>,
    spec: SmallCnn,
    what: &'static str,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("what", &self.what).finish()
    }
}

/// `spec`'s network parsed from its ONNX bytes, at its one input size.
fn read_onnx(spec: SmallCnn, bytes: &[u8]) -> TractResult<InferenceModel> {
    let [c, h, w] = spec.input;
    crate::ops::onnx()
        .model_for_read(&mut &bytes[..])?
        .with_input_fact(0, f32::fact([1, c, h, w]).into())
}

impl Runner {
    /// Loads `spec`'s network from ONNX bytes the caller vouches for (a manifest's SHA-256 or a
    /// bundle's signature); `what` names it in errors.
    pub fn from_bytes(spec: SmallCnn, what: &'static str, bytes: &[u8]) -> Result<Self> {
        let model_err = |e: TractError| Error::load(what, e);
        let plan = read_onnx(spec, bytes)
            .and_then(crate::ops::optimised)
            .map_err(model_err)?
            .into_runnable()
            .map_err(model_err)?;
        Ok(Self { plan, spec, what })
    }

    /// Loads `spec`'s network from its door form (NNEF, [`crate::nnef`]) the caller vouches
    /// for; a graph whose input is not `spec`'s is refused.
    pub fn from_door_form(spec: SmallCnn, what: &'static str, bytes: &[u8]) -> Result<Self> {
        let [c, h, w] = spec.input;
        let model = crate::nnef::read_checked(bytes, &[1, c, h, w], what)?;
        let plan = crate::ops::optimised_typed(model)
            .and_then(|m| m.into_runnable())
            .map_err(|e| Error::load(what, e))?;
        Ok(Self { plan, spec, what })
    }

    /// `spec`'s network typed and decluttered at its input size: the form [`crate::nnef`]
    /// writes, which [`crate::ops::optimised_typed`] turns into the same plan as
    /// [`Runner::from_bytes`].
    pub fn decluttered(spec: SmallCnn, what: &'static str, bytes: &[u8]) -> Result<TypedModel> {
        read_onnx(spec, bytes)
            .and_then(crate::ops::decluttered)
            .map_err(|e| Error::load(what, e))
    }

    /// `spec`'s door form (NNEF bytes, [`crate::nnef::to_bytes`]) made from its ONNX bytes:
    /// what the laptop puts in a bundle and the door reads with [`Runner::from_door_form`].
    pub fn door_form(spec: SmallCnn, what: &'static str, onnx: &[u8]) -> Result<Vec<u8>> {
        let typed = Self::decluttered(spec, what, onnx)?;
        crate::nnef::to_bytes(&typed).map_err(|e| Error::load(what, e))
    }

    /// The outputs for one input (`C x H x W` values, channels first).
    pub fn run(&self, input: Vec<f32>) -> Result<Vec<f32>> {
        let [c, h, w] = self.spec.input;
        let x = tract_ndarray::Array4::from_shape_vec((1, c, h, w), input)
            .map_err(|e| Error::inference(self.what, e))?;
        let out = self
            .plan
            .run(tvec![x.into_tensor().into()])
            .map_err(|e| Error::inference(self.what, e))?;
        let v: Vec<f32> = out[0]
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec()))
            .map_err(|e| Error::inference(self.what, e))?;
        if v.len() != self.spec.outputs || v.iter().any(|x| !x.is_finite()) {
            return Err(Error::inference(
                self.what,
                format!("output is not {} finite values", self.spec.outputs),
            ));
        }
        Ok(v)
    }
}

/// A manifest that records its network's SHA-256.
pub trait Pinned: DeserializeOwned {
    /// Lower-case hex SHA-256 of the network file.
    fn sha256(&self) -> &str;
}

/// Where a trained network is read from, and what to say when it is not usable.
#[derive(Clone, Copy, Debug)]
pub struct Files {
    /// The network's name in errors.
    pub what: &'static str,
    /// The network file.
    pub file: &'static str,
    /// Its manifest.
    pub manifest: &'static str,
    /// What to do when either is missing or they disagree.
    pub fix: &'static str,
}

/// The manifest and the network of `files` in `dir`, checked against each other.
pub fn read_verified<M: Pinned>(dir: &Path, files: Files) -> Result<(M, Vec<u8>)> {
    let m: M = read_manifest(dir, files)?;
    let bytes = read_pinned(dir, files, files.file, m.sha256())?;
    Ok((m, bytes))
}

impl Files {
    /// The error for `path`, saying why and what to do.
    pub fn refused(&self, path: PathBuf, reason: String) -> Error {
        Error::TrainedNet {
            what: self.what,
            path,
            reason,
            fix: self.fix,
        }
    }
}

/// The manifest of `files` in `dir`, parsed but not yet checked against any file.
pub fn read_manifest<M: DeserializeOwned>(dir: &Path, files: Files) -> Result<M> {
    let path = dir.join(files.manifest);
    std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| files.refused(path, format!("no usable manifest ({e})")))
}

/// The bytes of `file` in `dir` if their SHA-256 is `sha256` (what the manifest of `files`
/// records for it).
pub fn read_pinned(dir: &Path, files: Files, file: &str, sha256: &str) -> Result<Vec<u8>> {
    let path = dir.join(file);
    let bytes = std::fs::read(&path).map_err(|e| files.refused(path.clone(), e.to_string()))?;
    if sha256_hex(&bytes) != sha256 {
        return Err(files.refused(
            path,
            format!("its SHA-256 is not the one {} records", files.manifest),
        ));
    }
    Ok(bytes)
}
