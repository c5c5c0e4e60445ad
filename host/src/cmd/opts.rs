//! Options shared by several commands: where the models are, which embedder, dataset
//! networks and photo-quality rules.

use clap::{Args, ValueEnum};
use facegate_models::embed::EmbedderKind;
use std::path::PathBuf;

// --- command-line arguments ---

/// The door's embedder, for dataset commands.
#[derive(Debug, Args, Clone)]
pub struct DatasetNet {
    /// Where the model files are.
    #[command(flatten)]
    pub models: ModelsDir,
    /// Embedding network.
    #[arg(long, value_enum, default_value_t = EmbedderArg::Edgeface)]
    pub embedder: EmbedderArg,
    /// Use the fp32 embedder instead of the door's int8-weight one.
    #[arg(long)]
    pub fp32: bool,
}

/// Which faces are good enough to keep (import and capture).
#[derive(Debug, Args, Clone)]
pub struct QualityOpts {
    /// Skip faces narrower than this, in pixels of the photo or frame.
    #[arg(long, default_value_t = 40.0)]
    pub min_face: f32,
    /// Skip faces less sharp than this (variance of the Laplacian over the aligned face).
    #[arg(long, default_value_t = 25.0)]
    pub min_sharpness: f32,
}

/// Where the model files are.
#[derive(Debug, Args, Clone)]
pub struct ModelsDir {
    /// Models directory [default: $FACEGATE_MODELS, else ~/.local/share/facegate/models].
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
}

impl ModelsDir {
    /// The directory to use.
    pub fn resolve(&self) -> PathBuf {
        self.models_dir
            .clone()
            .unwrap_or_else(facegate_models::model_files::default_dir)
    }
}

/// Which embedder, as on the command line.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum EmbedderArg {
    /// EdgeFace-S gamma 0.5 (512-d), the default.
    Edgeface,
    /// SFace 2021dec (128-d).
    Sface,
    /// Both networks, cosines averaged: best behind masks, about 3x the compute.
    Fused,
    /// SFace with its last layer retrained for masks (`facegate models adapt` first).
    SfaceMasked,
}

impl From<EmbedderArg> for EmbedderKind {
    fn from(a: EmbedderArg) -> Self {
        match a {
            EmbedderArg::Edgeface => EmbedderKind::EdgeFace,
            EmbedderArg::Sface => EmbedderKind::SFace,
            EmbedderArg::Fused => EmbedderKind::Fused,
            EmbedderArg::SfaceMasked => EmbedderKind::SFaceMasked,
        }
    }
}

/// Whether faces are routed by mask state: the door's default, for the commands that build or
/// measure what the door runs (`enrol`, `eval`, `demo`).
#[derive(Debug, Args, Clone, Copy)]
pub struct RouteOpts {
    /// Send every face to --embedder, masked or not. By default the mask-state classifier
    /// sends masked faces to the mask-adapted SFace on refined landmarks, with templates and
    /// a calibration of their own (needs `facegate models fetch`).
    #[arg(long)]
    pub no_mask_route: bool,
    /// Enrol each photo as it is only. By default a routed door also enrols each photo's
    /// mirror image (same face, the other way round): more of the person's poses at no cost
    /// at the door (docs/MASKS.md).
    #[arg(long)]
    pub no_mirror: bool,
}

impl RouteOpts {
    /// Whether to route, for `embedder` (the mask-adapted SFace is the masked path itself).
    pub fn routed(&self, embedder: EmbedderArg) -> bool {
        !self.no_mask_route && embedder != EmbedderArg::SfaceMasked
    }

    /// Whether to enrol mirror images too: on a routed door, unless told not to (the
    /// thresholds of unrouted galleries were calibrated on photos alone).
    pub fn mirrored(&self, embedder: EmbedderArg) -> bool {
        self.routed(embedder) && !self.no_mirror
    }
}

/// Network choice shared by commands that run the pipeline.
#[derive(Debug, Args, Clone)]
pub struct NetworkOpts {
    /// Where the model files are.
    #[command(flatten)]
    pub models: ModelsDir,
    /// Embedding network.
    #[arg(long, value_enum, default_value_t = EmbedderArg::Edgeface)]
    pub embedder: EmbedderArg,
    /// Use the fp32 embedder instead of the door's int8-weight one (the default, so that
    /// what is measured is what the door runs).
    #[arg(long)]
    pub fp32: bool,
    /// Accepted for old scripts: int8 is the default now.
    #[arg(long, hide = true)]
    pub quantised: bool,
    /// Re-place landmarks with the trained refiner before alignment (`models refine`).
    #[arg(long)]
    pub refine_landmarks: bool,
    /// Worker threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Longest side of the image the detector sees [default: 640]; a door detects at
    /// `door.detect_side` (320).
    #[arg(long, value_parser = clap::value_parser!(u32).range(160..=1920))]
    pub detect_side: Option<u32>,
}
