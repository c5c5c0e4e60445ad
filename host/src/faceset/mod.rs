//! The dataset folder that `facegate import` and `facegate capture` fill and `facegate train`,
//! `augment` and `eval` read:
//!
//! ```text
//! DATASET/manifest.json          every sample and every skipped file, with reasons
//! DATASET/crops/PERSON/ID.png    the face aligned into a 160x160 context crop
//! ```
//!
//! A sample keeps a *context* crop, not just the 112x112 crop the embedder sees: the ArcFace
//! template sits in its middle with a 24 px margin, so augmentation can rotate, scale and shift
//! the face (landmark jitter, head pose) without black corners and without the original photo.
//! The manifest also keeps the sample's landmarks in crop coordinates (masks are drawn from
//! them) and its embedding from the door's own embedder, so training never re-runs the
//! detector. IDs are the SHA-256 of the photo file (or frame), which is what makes re-imports
//! incremental and duplicate-free.

pub mod folders;
pub mod ingest;
pub mod quality;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use facegate_models::embed::EmbedderKind;
use facegate_models::geometry::Similarity;
use serde::{Deserialize, Serialize};

use crate::files::write_atomically;

/// Side of the stored context crop.
pub const CONTEXT: u32 = 160;
/// Offset of the 112x112 template inside the context crop.
pub const MARGIN: u32 = (CONTEXT - facegate_models::align::CROP) / 2;
/// Manifest layout version.
pub const FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";

/// Where a sample came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// A photo file.
    Photo,
    /// A frame of a camera or a video file (`facegate capture`).
    Frame,
}

/// One face in the dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// SHA-256 (hex) of the source file or frame.
    pub id: String,
    /// Person label.
    pub person: String,
    /// Where it came from, as given on the command line (for reports only).
    pub source: String,
    /// Photo or frame.
    pub origin: Origin,
    /// The context crop, relative to the dataset folder.
    pub crop: String,
    /// The five landmarks in context-crop pixels.
    pub landmarks: [[f32; 2]; 5],
    /// Embedding of the aligned face by the dataset's embedder (L2-normalised).
    pub embedding: Vec<f32>,
    /// Face width in the source, pixels.
    pub face_px: f32,
    /// Sharpness of the aligned face (variance of the Laplacian).
    pub sharpness: f32,
}

/// A file that did not become a sample, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// SHA-256 (hex) of the file.
    pub id: String,
    /// The label it was meant for.
    pub person: String,
    /// The file.
    pub source: String,
    /// Why, in words a user can act on.
    pub reason: String,
    /// The rules it was judged by (`Rules::fingerprint`): under other rules it is judged
    /// again. Empty in datasets made before this was kept (judged again once).
    #[serde(default)]
    pub rules: String,
}

/// The dataset's index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// Embedder of every stored embedding.
    pub embedder: EmbedderKind,
    /// Whether it was the int8-weight file (the door's).
    pub quantised: bool,
    /// Samples, in import order.
    pub samples: Vec<Sample>,
    /// Files that were looked at and not taken.
    pub skipped: Vec<Skipped>,
}

/// An open dataset folder.
pub struct Dataset {
    /// The folder.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

impl Dataset {
    /// Opens `dir`, or starts an empty dataset there for `embedder` if it has no manifest.
    pub fn open_or_create(dir: &Path, embedder: EmbedderKind, quantised: bool) -> Result<Self> {
        if dir.join(MANIFEST).exists() {
            let ds = Self::open(dir)?;
            if ds.manifest.embedder != embedder || ds.manifest.quantised != quantised {
                bail!(
                    "{} was made with {}{}; import with the same embedder (--embedder {}{}) or use a new --dataset folder",
                    dir.display(),
                    ds.manifest.embedder.as_str(),
                    if ds.manifest.quantised { " int8" } else { "" },
                    ds.manifest.embedder.as_str(),
                    if ds.manifest.quantised { "" } else { " --fp32" },
                );
            }
            return Ok(ds);
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_owned(),
            manifest: Manifest {
                format: FORMAT,
                embedder,
                quantised,
                samples: Vec::new(),
                skipped: Vec::new(),
            },
        })
    }

    /// Opens an existing dataset.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {}: is {} a dataset made by `facegate import`?",
                path.display(),
                dir.display()
            )
        })?;
        let manifest: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a facegate manifest", path.display()))?;
        if manifest.format != FORMAT {
            bail!(
                "{} has manifest format {}, this facegate reads {FORMAT}",
                path.display(),
                manifest.format
            );
        }
        let dim = manifest.embedder.dim();
        if let Some(s) = manifest.samples.iter().find(|s| s.embedding.len() != dim) {
            bail!(
                "{}: sample {} has {} values, {} makes {dim}",
                path.display(),
                s.crop,
                s.embedding.len(),
                manifest.embedder.as_str()
            );
        }
        Ok(Self {
            dir: dir.to_owned(),
            manifest,
        })
    }

    /// Writes the manifest (temp file + rename: an interrupted import keeps the last one).
    pub fn save(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.manifest).context("encoding the manifest")?;
        write_atomically(&self.dir.join(MANIFEST), &json)
    }

    /// Samples grouped by person, people sorted by name.
    pub fn by_person(&self) -> BTreeMap<&str, Vec<&Sample>> {
        let mut out: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
        for s in &self.manifest.samples {
            out.entry(s.person.as_str()).or_default().push(s);
        }
        out
    }

    /// Loads a sample's context crop.
    pub fn crop(&self, sample: &Sample) -> Result<image::RgbImage> {
        let path = self.dir.join(&sample.crop);
        facegate_models::image_io::open(&path)
            .with_context(|| format!("reading the crop {}", path.display()))
    }
}

/// The transform from image pixels to context-crop pixels, given the image -> 112 crop one.
pub fn to_context(to_crop: &Similarity) -> Similarity {
    let mut m = to_crop.m;
    m[0][2] += MARGIN as f64;
    m[1][2] += MARGIN as f64;
    Similarity { m }
}

/// The transform from context-crop pixels to the 112x112 crop.
pub fn context_to_crop() -> Similarity {
    let d = -(MARGIN as f64);
    Similarity {
        m: [[1.0, 0.0, d], [0.0, 1.0, d]],
    }
}

/// A file-system-safe version of a label (for crop folders).
pub fn safe_name(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_owned();
    if s.is_empty() { "_".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_become_safe_folder_names() {
        assert_eq!(safe_name("Ann Lee"), "Ann_Lee");
        assert_eq!(safe_name("../etc"), "_etc");
        assert_eq!(safe_name(""), "_");
        assert_eq!(safe_name("José"), "José");
    }

    #[test]
    fn the_context_crop_holds_the_template_in_its_middle() {
        let id = Similarity {
            m: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
        };
        let p = to_context(&id).apply([10.0, 20.0]);
        assert_eq!(p, [34.0, 44.0]);
        assert_eq!(context_to_crop().apply(p), [10.0, 20.0]);
    }
}
