//! The one error type of the recognition core. Messages say what to do next, because the person
//! reading them is usually setting up a door, not debugging Rust.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Boxed cause from a dependency whose error type does not implement `std::error::Error`
/// (tract reports through `anyhow`).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error with its causes, one after another ("reading x.jpg: No such file or directory"),
/// for places that print an error on one line rather than through anyhow's chain.
pub fn full(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// Everything that can go wrong in the recognition core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model file is not in the models directory.
    #[error(
        "model file {path} is missing: run `facegate models fetch` (or point --models-dir / \
         FACEGATE_MODELS at the folder that holds it)"
    )]
    ModelMissing {
        /// Where the file was expected.
        path: PathBuf,
    },
    /// A model file exists but its bytes are not the pinned ones.
    #[error(
        "model file {path} has SHA-256 {actual} but {expected} is pinned: the file is corrupt or \
         a different version; delete it and run `facegate models fetch`"
    )]
    ModelHash {
        /// The file that failed the check.
        path: PathBuf,
        /// The pinned digest, hex.
        expected: String,
        /// The digest of the bytes on disk, hex.
        actual: String,
    },
    /// Reading or writing a file failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done ("reading", "writing").
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// tract could not turn the model file into a runnable plan.
    #[error("cannot prepare the {model} network")]
    ModelLoad {
        /// Which network.
        model: &'static str,
        /// tract's explanation.
        #[source]
        source: Cause,
    },
    /// Running a network failed (shape mismatch, out of memory).
    #[error("running the {model} network failed")]
    Inference {
        /// Which network.
        model: &'static str,
        /// tract's explanation.
        #[source]
        source: Cause,
    },
    /// The bytes are not an image this build can decode.
    #[cfg_attr(
        feature = "webp",
        error("cannot decode the image: use a JPEG, PNG, WebP or PGM/PPM file")
    )]
    #[cfg_attr(
        not(feature = "webp"),
        error("cannot decode the image: use a JPEG, PNG or PGM/PPM file")
    )]
    ImageDecode {
        /// The decoder's explanation.
        #[source]
        source: image::ImageError,
    },
    /// The file is a known image format but damaged: cut short (a copy or download that
    /// stopped), or its data is broken. Said plainly, so it is not mistaken for a photo
    /// without a face.
    #[error("damaged {format} image: {reason}")]
    ImageCorrupt {
        /// "JPEG", "PNG", ...
        format: String,
        /// What is wrong.
        reason: String,
    },
    /// The image header announces a size beyond what a door camera or photo needs.
    #[error("image is {width}x{height} pixels, above the {max}x{max} limit: scale it down first")]
    ImageTooLarge {
        /// Width in the header.
        width: u32,
        /// Height in the header.
        height: u32,
        /// The largest side accepted.
        max: u32,
    },
    /// The header asks for far more memory than a file of this size can honestly hold.
    #[error(
        "image declares {width}x{height} pixels ({needed_mb} MB to decode) in a {file_bytes}-byte \
         file: refused as a decompression bomb (limit {budget_mb} MB for this size)"
    )]
    ImageBomb {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Size of the file.
        file_bytes: usize,
        /// Memory the decode would take.
        needed_mb: u64,
        /// Memory allowed for a file of this size.
        budget_mb: u64,
    },
    /// The image is too small to hold a detectable face.
    #[error("image is {width}x{height} pixels: too small to hold a face (at least {min}x{min})")]
    ImageTooSmall {
        /// Width of the image.
        width: u32,
        /// Height of the image.
        height: u32,
        /// The smallest side accepted.
        min: u32,
    },
    /// An ONNX file could not be rewritten (quantisation).
    #[error("cannot rewrite the ONNX model: {reason}")]
    OnnxRewrite {
        /// What was wrong with the graph.
        reason: String,
    },
    /// The mask-adapted SFace file is missing, or is not the file its manifest describes.
    #[error(
        "mask-adapted SFace in {path}: {reason}: run `facegate models adapt --faces DIR` \
         (see the README) to train it again"
    )]
    Adapted {
        /// The file or folder concerned.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A network facegate trains (landmark refiner, liveness, mask state) is missing or does
    /// not match its manifest.
    #[error("{what} network {path}: {reason}: {fix}")]
    TrainedNet {
        /// Which network.
        what: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        reason: String,
        /// What to do.
        fix: &'static str,
    },
    /// A gallery file is unreadable or inconsistent.
    #[error("gallery is invalid: {reason}")]
    Gallery {
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    /// Wraps a tract error raised while preparing `model`.
    pub(crate) fn load(model: &'static str, source: impl Into<Cause>) -> Self {
        Self::ModelLoad {
            model,
            source: source.into(),
        }
    }

    /// Wraps a tract error raised while running `model`.
    pub(crate) fn inference(model: &'static str, source: impl Into<Cause>) -> Self {
        Self::Inference {
            model,
            source: source.into(),
        }
    }
}
