//! The templates one enrolment photo gives: its face as it is and, when asked, the same face
//! wearing synthetic masks (surgical, cloth, patterned in turn), each seen as the door would see
//! it (painted, detected again, aligned, embedded). Masked templates let a door that only has
//! unmasked photos of a person know them behind a mask; `facegate eval --enrol-masks` measures
//! exactly this, with the same masks on the same photos.

use std::path::Path;

use anyhow::Result;
use facegate_models::embed::Embedding;
use facegate_models::mask::MaskStyle;
use facegate_models::pipeline::{Face, Pipeline, subject};
use image::RgbImage;

use crate::eval::run::mask_seed;

/// What one enrolment photo gives.
pub struct PhotoTemplates {
    /// The subject's face, unmasked.
    pub face: Face,
    /// Its masked copies' embeddings (fewer than asked when the detector lost a masked face).
    pub masked: Vec<Embedding>,
}

impl PhotoTemplates {
    /// Every template, the unmasked one first.
    pub fn embeddings(self) -> impl Iterator<Item = Embedding> {
        std::iter::once(self.face.embedding).chain(self.masked)
    }
}

/// The subject's templates in the photo at `path` (already decoded as `image`), with `masks`
/// masked copies; `None` when there is no face. The masks depend only on the file name, so
/// enrolling the same photo again gives the same templates.
pub fn photo_templates(
    pipeline: &Pipeline,
    image: &RgbImage,
    path: &Path,
    masks: usize,
) -> Result<Option<PhotoTemplates>> {
    let dets = pipeline.detector().detect(image)?;
    let Some(plain) = subject(&dets, image.width(), image.height()).cloned() else {
        return Ok(None);
    };
    let Some(face) = pipeline.embed_detection(image, plain.clone())? else {
        return Ok(None);
    };
    let seed = mask_seed(path);
    let mut masked = Vec::with_capacity(masks);
    for k in 0..masks {
        let style = MaskStyle::for_enrolment(seed, k);
        if let Some(f) = pipeline.masked_face(image, &plain, &style)? {
            masked.push(f.embedding);
        }
    }
    Ok(Some(PhotoTemplates { face, masked }))
}
