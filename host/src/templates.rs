//! The templates one enrolment photo gives: its face as it is and, when asked, the same face
//! wearing synthetic masks (surgical, cloth, patterned in turn), each seen as the door would see
//! it (painted, detected again, aligned, embedded). Masked templates let a door that only has
//! unmasked photos of a person know them behind a mask; `facegate eval --enrol-masks` measures
//! exactly this, with the same masks on the same photos.
//!
//! A pipeline that routes faces by mask state ([`facegate_models::maskroute`]) makes the photo's
//! bare template on its main embedder and its masked templates (the photo itself, then the
//! masked copies) on the masked path; [`enrol_photo`] files each where the door looks for it.
//! With `mirror`, the photo's mirror image gives the same templates again: a door sees a
//! person turned either way, an enrolment photo shows one.

use std::path::Path;

use anyhow::Result;
use facegate_models::embed::Embedding;
use facegate_models::gallery::{Enrolment, Gallery, default_threshold, masked_path_threshold};
use facegate_models::image_io;
use facegate_models::mask::{MaskStyle, file_seed};
use facegate_models::maskroute;
use facegate_models::pipeline::{Pipeline, Route, subject};
use image::RgbImage;

/// What one enrolment photo gives.
pub struct PhotoTemplates {
    /// The subject's face, unmasked, on the main embedder.
    pub bare: Embedding,
    /// The same face in the photo's mirror image, when asked and found.
    pub mirrored: Option<Embedding>,
    /// Its masked copies' embeddings (fewer than asked when the detector lost a masked face);
    /// on a routed pipeline, first the photo itself through the masked path.
    pub masked: Vec<Embedding>,
    /// Whether `masked` came from the masked path (a routed pipeline).
    pub masked_path: bool,
}

/// [`photo_templates`] of the photo file at `path`, decoded within `image_io`'s limits: what
/// `enrol` makes of each photo, and `eval` of each gallery photo.
pub fn photo_file_templates(
    pipeline: &Pipeline,
    path: &Path,
    masks: usize,
    mirror: bool,
) -> Result<Option<PhotoTemplates>> {
    let image = image_io::open(path)?;
    photo_templates(pipeline, &image, path, masks, mirror)
}

/// The subject's templates in the photo at `path` (already decoded as `image`), with `masks`
/// masked copies, and with `mirror` those of its mirror image too; `None` when there is no
/// face. The masks depend only on the file name, so enrolling the same photo again gives the
/// same templates.
fn photo_templates(
    pipeline: &Pipeline,
    image: &RgbImage,
    path: &Path,
    masks: usize,
    mirror: bool,
) -> Result<Option<PhotoTemplates>> {
    let Some(mut t) = one_way(pipeline, image, path, masks)? else {
        return Ok(None);
    };
    if mirror {
        let flipped = image::imageops::flip_horizontal(image);
        // A face the detector misses in the mirror image costs only its extra templates.
        if let Some(m) = one_way(pipeline, &flipped, path, masks)? {
            t.mirrored = Some(m.bare);
            t.masked.extend(m.masked);
        }
    }
    Ok(Some(t))
}

/// [`photo_templates`] of the image as it is.
fn one_way(
    pipeline: &Pipeline,
    image: &RgbImage,
    path: &Path,
    masks: usize,
) -> Result<Option<PhotoTemplates>> {
    let dets = pipeline.detector().detect(image)?;
    let Some(plain) = subject(&dets, image.width(), image.height()).cloned() else {
        return Ok(None);
    };
    let Some(face) = pipeline.embed_as(image, plain.clone(), Route::Bare)? else {
        return Ok(None);
    };
    let routed = pipeline.mask_route().is_some();
    let mut masked = Vec::with_capacity(masks + 1);
    if routed && let Some(f) = pipeline.embed_as(image, plain.clone(), Route::Masked)? {
        masked.push(f.embedding);
    }
    let route = if routed { Route::Masked } else { Route::Auto };
    let seed = file_seed(path);
    for k in 0..masks {
        let style = MaskStyle::for_enrolment(seed, k);
        if let Some(f) = pipeline.masked_face_as(image, &plain, &style, route)? {
            masked.push(f.embedding);
        }
    }
    Ok(Some(PhotoTemplates {
        bare: face.embedding,
        mirrored: None,
        masked,
        masked_path: routed,
    }))
}

/// How a gallery is enrolled for a pipeline: its threshold, the masked path's offset and how
/// many masked copies of each photo.
#[derive(Clone, Copy, Debug)]
pub struct EnrolSettings {
    /// The acceptance threshold.
    pub threshold: f32,
    /// The masked path's offset onto the main path's scale ([`Self::for_pipeline`]), on a
    /// routed pipeline.
    pub offset: Option<f32>,
    /// Masked copies per photo.
    pub enrol_masks: usize,
    /// Whether each photo's mirror image is enrolled too.
    pub mirror: bool,
}

/// Masked copies per photo on a routed pipeline unless asked otherwise: with them the masked
/// path accepts 95.0% of the masked LFW open-set probes at FAR 1e-3, against 92.1% with the
/// photos alone (docs/RESULTS.md).
pub const ROUTED_ENROL_MASKS: usize = 3;

impl EnrolSettings {
    /// The calibrated defaults for `pipeline`, unless given: a routed pipeline keeps its main
    /// templates photo-only (its masked copies go to the masked path) and gets
    /// [`ROUTED_ENROL_MASKS`] copies; `mirror` (asked for) holds on a routed pipeline only.
    /// Each path's threshold is the one calibrated for the templates it holds
    /// ([`default_threshold`] of their [`Enrolment`] for the bare path,
    /// [`masked_path_threshold`] for the masked one).
    pub fn for_pipeline(
        pipeline: &Pipeline,
        threshold: Option<f32>,
        enrol_masks: Option<usize>,
        mirror: bool,
    ) -> Self {
        let routed = pipeline.mask_route().is_some();
        let mirror = mirror && routed;
        let enrol_masks = enrol_masks.unwrap_or(if routed { ROUTED_ENROL_MASKS } else { 0 });
        let c = pipeline.config();
        let refined = pipeline.refiner().is_some();
        let main = default_threshold(
            c.embedder,
            c.quantised,
            refined,
            Enrolment {
                masked_copies: enrol_masks > 0 && !routed,
                mirrored: mirror,
            },
        );
        // The masked path: the mask-adapted embedder on refined landmarks, holding the
        // photos' masked-path templates and every masked copy. Its offset is the difference
        // of the two calibrated thresholds (each at FAR 1e-3 among its own condition's
        // strangers), so that one threshold holds each condition to its own calibration.
        let offset = routed.then(|| {
            let masked = Enrolment {
                masked_copies: enrol_masks > 0,
                mirrored: mirror,
            };
            main - masked_path_threshold(c.quantised, masked)
        });
        Self {
            threshold: threshold.unwrap_or(main),
            offset,
            enrol_masks,
            mirror,
        }
    }
}

/// Files one photo's templates into `gallery` for `name`: bare ones on the main templates,
/// the masked path's on the masked ones (with `offset`).
pub fn enrol_photo(
    gallery: &mut Gallery,
    name: &str,
    t: PhotoTemplates,
    offset: Option<f32>,
) -> Result<()> {
    gallery.enrol(name, t.bare)?;
    if let Some(e) = t.mirrored {
        gallery.enrol(name, e)?;
    }
    for e in t.masked {
        match (t.masked_path, offset) {
            (true, Some(offset)) => gallery.enrol_masked(name, maskroute::EMBEDDER, offset, e)?,
            _ => gallery.enrol(name, e)?,
        }
    }
    Ok(())
}
