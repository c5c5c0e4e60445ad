//! # facegate-models: the recognition core shared by the door unit and the laptop
//!
//! One definition of the pipeline, used by both binaries, so that what the host evaluates is
//! exactly what the device runs:
//!
//! ```text
//! image bytes --decode--> RGB --YuNet (tract)--> boxes + 5 landmarks --NMS-->
//!     --similarity warp--> 112x112 crop --EdgeFace-S / SFace (tract)--> L2-normalised embedding
//!     --gallery (several templates per person) + calibrated threshold--> person | stranger
//! ```
//!
//! Design choices worth knowing before changing anything:
//! * Every network is loaded from bytes whose SHA-256 was checked first ([`model_files`]): a
//!   silently swapped model on a door is a security bug, not a performance bug.
//! * The detector and aligner follow OpenCV's maths (half-pixel bilinear resize without
//!   antialiasing, Umeyama similarity, bilinear warp with a black border) because the reference
//!   outputs in `shared/reference` were made that way and the embedders were trained on such
//!   crops; small geometric differences cost several points of cosine similarity.
//! * Identification is open-set ([`gallery`]): the answer is a person only when the best score
//!   clears a threshold calibrated on impostor faces; otherwise it is a stranger.
//! * Nothing here touches hardware or the network; the crate builds for the Pi unchanged.

pub mod adapted;
pub mod align;
pub mod bundle;
pub mod channel;
pub mod detect;
pub mod embed;
pub mod error;
pub mod gallery;
pub mod geometry;
pub mod head;
pub mod image_io;
pub mod keys;
pub mod liveness;
pub mod logrecord;
pub mod mask;
pub mod maskroute;
pub mod maskstate;
pub mod model_files;
pub mod motion;
pub mod nnef;
// Graph builders and the quantiser: public for the laptop (feature `builders`), internal
// otherwise (the trained parts describe their graphs with them, the door expands int8 weights).
#[cfg(feature = "builders")]
pub mod onnx_build;
#[cfg(not(feature = "builders"))]
#[allow(dead_code)]
pub(crate) mod onnx_build;
#[cfg(test)]
mod onnx_test_util;
pub mod ops;
pub mod pipeline;
#[cfg(feature = "builders")]
pub mod quantise;
#[cfg(not(feature = "builders"))]
#[allow(dead_code)]
pub(crate) mod quantise;
pub mod refine;
mod rewrite;
pub mod shrink;
pub mod small_cnn;
/// Test helpers: where the shared data is (feature `testdata`).
#[cfg(any(test, feature = "testdata"))]
pub mod testdata;
pub mod wire;

pub use error::{Error, Result};
