//! The masked path of a door that routes each face by its mask state (issue #21).
//!
//! One embedder cannot serve both conditions well: EdgeFace is the best on bare faces (99.5%
//! at FAR 1e-3 on the shared LFW half) and poor behind a mask (67%), while the mask-adapted
//! SFace on refined landmarks is the best behind a mask and worse on bare faces. So the door
//! asks the mask-state classifier about each face, aligned on the detector's landmarks as
//! it was trained: a bare face goes on to the door's main embedder, a masked one to this path
//! (landmarks re-placed by the refiner, then the mask-adapted SFace), each compared with
//! templates made by the same path from the person's ordinary photos.

use std::path::Path;

use image::RgbImage;

use crate::align;
use crate::detect::Detection;
use crate::embed::{Embedder, EmbedderKind, Embedding};
use crate::geometry::Similarity;
use crate::maskstate::{self, MaskState};
use crate::nnef::door_name;
use crate::refine::{self, Refiner};
use crate::{Error, Result};

/// The masked path's embedder.
pub const EMBEDDER: EmbedderKind = EmbedderKind::SFaceMasked;

/// The masked path's landmark refiner inside a bundle (as its [`door_name`]): the same
/// network as [`refine::FILE`], under its own name, because a bundle's [`refine::FILE`]
/// means the *main* path aligns on refined landmarks too (`enrol --refine-landmarks`).
pub const REFINER_FILE: &str = "masked.landmark_refiner.onnx";

/// Mask-state classifier, landmark refiner and mask-adapted embedder, ready to run.
pub struct MaskRoute {
    state: MaskState,
    refiner: Refiner,
    embedder: Embedder,
}

impl MaskRoute {
    /// Loads the three parts from a models folder, each checked against its manifest.
    pub fn load(models_dir: &Path, quantised: bool) -> Result<Self> {
        let (_, state) = maskstate::read_verified(models_dir)?;
        Ok(Self {
            state: MaskState::from_bytes(&state)?,
            refiner: Refiner::load(models_dir)?,
            embedder: Embedder::load(models_dir, EMBEDDER, quantised)?,
        })
    }

    /// The files a bundle carries for this path: each network's door form, made from the
    /// checked files of `models_dir`.
    pub fn read_files(models_dir: &Path, quantised: bool) -> Result<Vec<(String, Vec<u8>)>> {
        let mut files = vec![
            (
                door_name(maskstate::FILE),
                maskstate::door_form(&maskstate::read_verified(models_dir)?.1)?,
            ),
            (
                door_name(REFINER_FILE),
                refine::door_form(&refine::read_verified(models_dir)?)?,
            ),
        ];
        files.extend(EMBEDDER.read_files(models_dir, quantised)?);
        Ok(files)
    }

    /// The path from the door forms in a bundle (vouched for by its signature); every part
    /// must be there.
    pub fn from_files(files: &[(String, Vec<u8>)], quantised: bool) -> Result<Self> {
        let file = |onnx_name: &str| {
            let name = door_name(onnx_name);
            files
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, bytes)| bytes)
                .ok_or_else(|| Error::ModelMissing { path: name.into() })
        };
        Ok(Self {
            state: MaskState::from_door_form(file(maskstate::FILE)?)?,
            refiner: Refiner::from_door_form(file(REFINER_FILE)?)?,
            embedder: Embedder::from_files(EMBEDDER, quantised, files)?,
        })
    }

    /// What this path's networks make of the bundle self-test's pattern (see
    /// [`crate::bundle::MaskedSelfTest`]).
    pub fn self_test(&self, seed: u64) -> Result<crate::bundle::MaskedSelfTest> {
        let pattern = crate::bundle::self_test_pattern(seed);
        Ok(crate::bundle::MaskedSelfTest {
            mask_state: self.state.run(maskstate::input(&pattern))?,
            embedding: self.embedder.embed(&pattern)?,
        })
    }

    /// Whether the face in this crop (aligned on the detector's landmarks) wears a mask.
    pub fn is_masked(&self, crop: &RgbImage) -> Result<bool> {
        self.state.is_masked(crop)
    }

    /// The refiner the path aligns with.
    pub fn refiner(&self) -> &Refiner {
        &self.refiner
    }

    /// Refines, aligns and embeds one detection as a masked face; `None` when its landmarks
    /// are degenerate.
    pub fn embed(
        &self,
        image: &RgbImage,
        detection: &Detection,
    ) -> Result<Option<(Detection, Similarity, Embedding)>> {
        let Some(refined) = self.refiner.refine(image, detection)? else {
            return Ok(None);
        };
        let Some((transform, crop)) = align::align(image, &refined) else {
            return Ok(None);
        };
        let embedding = self.embedder.embed(&crop)?;
        Ok(Some((refined, transform, embedding)))
    }

    /// A face already aligned (a 112x112 crop on the detector's landmarks, as an imported
    /// dataset stores it): its mask state and its embedding on the path that state chooses,
    /// `main` for a bare face. The masked path refines and re-aligns within the crop, so a
    /// refined face reaching past the crop's edge sees black there where the door would see
    /// the frame: close to the door's answer, not bit for bit.
    pub fn embed_aligned(&self, crop: &RgbImage, main: &Embedder) -> Result<(Embedding, bool)> {
        if !self.is_masked(crop)? {
            return Ok((main.embed(crop)?, false));
        }
        let on_template = Detection {
            bbox: crate::geometry::BBox {
                x: 0.0,
                y: 0.0,
                w: crop.width() as f32,
                h: crop.height() as f32,
            },
            score: 1.0,
            landmarks: align::TEMPLATE.map(|[x, y]| [x as f32, y as f32]),
        };
        match self.embed(crop, &on_template)? {
            Some((_, _, e)) => Ok((e, true)),
            None => Ok((main.embed(crop)?, false)),
        }
    }
}
