//! The whole recognition chain for one image: detect -> align -> embed. The host's evaluation
//! and the device's loop both call this, so they cannot drift apart.

use std::path::Path;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::align;
use crate::detect::{Detection, Detector, DetectorConfig};
use crate::embed::{Embedder, EmbedderKind, Embedding};
use crate::geometry::Similarity;
use crate::mask::{self, MaskStyle};
use crate::maskroute::MaskRoute;
use crate::model_files;
use crate::refine::Refiner;

/// Faces embedded per image at most: a crowd photo must not stall a door for seconds.
pub const MAX_FACES: usize = 16;

/// Which networks and settings to run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct PipelineConfig {
    /// The embedder.
    pub embedder: EmbedderKind,
    /// Use the int8-weight embedder file (the device's default).
    pub quantised: bool,
    /// Detector settings.
    pub detector: DetectorConfig,
}

/// One recognised face: where it is, how it was aligned, and its embedding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Face {
    /// The detector's output.
    pub detection: Detection,
    /// Image -> 112x112 crop transform.
    pub transform: Similarity,
    /// L2-normalised embedding.
    pub embedding: Embedding,
    /// Whether it came from the masked path (see [`crate::maskroute`]): the mask-state
    /// classifier called the face masked, so `embedding` is the masked path's and must be
    /// compared with the gallery's masked templates.
    #[serde(default)]
    pub masked: bool,
}

/// Which path a face takes through a pipeline with a [`MaskRoute`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// As the mask-state classifier says: what the door does with every face it sees.
    Auto,
    /// The main embedder, whatever the face wears (enrolment's bare templates).
    Bare,
    /// The masked path, whatever the face wears (enrolment's masked templates). Without a
    /// [`MaskRoute`] it is the main embedder.
    Masked,
}

/// The subject of one frame (see [`subject`]), found and embedded, with what each half took:
/// the door's loop reports the stages without re-assembling the pipeline to time them.
#[derive(Clone, Debug)]
pub struct Recognition {
    /// The subject's face, `None` when nobody is in view.
    pub face: Option<Face>,
    /// Time spent detecting.
    pub detect: std::time::Duration,
    /// Time spent aligning and embedding the subject.
    pub embed: std::time::Duration,
    /// The detector's own answer for the subject (before any landmark refinement), so that a
    /// caller may reuse it on a next frame that barely changed ([`Pipeline::recognise_at`]).
    pub subject: Option<Detection>,
}

/// Detector plus embedder.
pub struct Pipeline {
    detector: Detector,
    embedder: Embedder,
    refiner: Option<Refiner>,
    route: Option<MaskRoute>,
    config: PipelineConfig,
}

impl Pipeline {
    /// Loads the pinned networks from `models_dir`, verifying each file's SHA-256.
    pub fn load(models_dir: &Path, config: PipelineConfig) -> Result<Self> {
        let yunet = model_files::YUNET_DOOR.read_verified(models_dir)?;
        let detector = Detector::from_bytes(&yunet, config.detector)?;
        let embedder = Embedder::load(models_dir, config.embedder, config.quantised)?;
        Ok(Self {
            detector,
            embedder,
            refiner: None,
            route: None,
            config,
        })
    }

    /// Assembles a pipeline from parts already loaded (the door: detector from its models
    /// folder, embedder from the verified bundle).
    pub fn from_parts(detector: Detector, embedder: Embedder) -> Self {
        let config = PipelineConfig {
            embedder: embedder.kind(),
            quantised: embedder.quantised(),
            detector: detector.config(),
        };
        Self {
            detector,
            embedder,
            refiner: None,
            route: None,
            config,
        }
    }

    /// The pipeline a verified bundle describes, on `detector`: its embedder, its landmark
    /// refiner when its templates were made on refined landmarks, and its masked path when
    /// it carries masked templates. The door and `facegate predict` both build it here.
    pub fn from_bundle(detector: Detector, bundle: &crate::bundle::Bundle) -> Result<Self> {
        let (h, files) = (&bundle.header, &bundle.payload.models);
        // The larger network first: the smaller one's load then reuses the memory its
        // transient copies freed, which lowers the door's peak.
        let route = match bundle.payload.masked {
            Some(_) => Some(MaskRoute::from_files(files, h.quantised)?),
            None => None,
        };
        let embedder = Embedder::from_files(h.embedder, h.quantised, files)?;
        let mut pipeline = Self::from_parts(detector, embedder);
        if let Some(r) = crate::refine::from_files(files)? {
            pipeline = pipeline.with_refiner(r);
        }
        if let Some(route) = route {
            pipeline = pipeline.with_mask_route(route);
        }
        Ok(pipeline)
    }

    /// Re-places every face's landmarks with `refiner` before alignment (see [`crate::refine`]).
    pub fn with_refiner(mut self, refiner: Refiner) -> Self {
        self.refiner = Some(refiner);
        self
    }

    /// Routes each face by its mask state: masked faces go to `route`'s path.
    pub fn with_mask_route(mut self, route: MaskRoute) -> Self {
        self.route = Some(route);
        self
    }

    /// The masked path, when faces are routed.
    pub fn mask_route(&self) -> Option<&MaskRoute> {
        self.route.as_ref()
    }

    /// The landmark refiner, when one is in use.
    pub fn refiner(&self) -> Option<&Refiner> {
        self.refiner.as_ref()
    }

    /// The configuration in force.
    pub fn config(&self) -> PipelineConfig {
        self.config
    }

    /// The detector, for callers that only need boxes.
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// The embedder, for callers that align themselves.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// All faces in the image, best detection first, at most [`MAX_FACES`].
    pub fn faces(&self, image: &RgbImage) -> Result<Vec<Face>> {
        let dets = self.detector.detect(image)?;
        let mut out = Vec::new();
        for det in dets.into_iter().take(MAX_FACES) {
            if let Some(face) = self.embed_detection(image, det)? {
                out.push(face);
            }
        }
        Ok(out)
    }

    /// The subject's face only (see [`subject`]), or `None` when no face is found.
    pub fn main_face(&self, image: &RgbImage) -> Result<Option<Face>> {
        Ok(self.recognise(image)?.face)
    }

    /// [`Pipeline::main_face`], timed: what the door does with each frame.
    pub fn recognise(&self, image: &RgbImage) -> Result<Recognition> {
        let started = std::time::Instant::now();
        let dets = self.detector.detect(image)?;
        let detected = std::time::Instant::now();
        let subject = subject(&dets, image.width(), image.height()).cloned();
        let face = match &subject {
            Some(det) => self.embed_detection(image, det.clone())?,
            None => None,
        };
        Ok(Recognition {
            face,
            detect: detected - started,
            embed: detected.elapsed(),
            subject,
        })
    }

    /// [`Pipeline::recognise`] without the detector: `detection` (the subject found on an
    /// earlier frame that barely changed since) is aligned and embedded on this frame's
    /// pixels, so who it is always comes from the frame itself.
    pub fn recognise_at(&self, image: &RgbImage, detection: Detection) -> Result<Recognition> {
        let started = std::time::Instant::now();
        let face = self.embed_detection(image, detection.clone())?;
        Ok(Recognition {
            face,
            detect: std::time::Duration::ZERO,
            embed: started.elapsed(),
            subject: Some(detection),
        })
    }

    /// The face `plain` (detected on `image`) wearing a synthetic mask of `style`, seen as the
    /// door would see it: the mask is painted on a copy of the photo, which is detected again
    /// and the same face (see [`same_face`]) aligned and embedded. `None` when the detector
    /// loses the masked face. How enrolment adds masked templates and evaluation masks probes.
    pub fn masked_face(
        &self,
        image: &RgbImage,
        plain: &Detection,
        style: &MaskStyle,
    ) -> Result<Option<Face>> {
        self.masked_face_as(image, plain, style, Route::Auto)
    }

    /// [`Pipeline::masked_face`] through the chosen path.
    pub fn masked_face_as(
        &self,
        image: &RgbImage,
        plain: &Detection,
        style: &MaskStyle,
        route: Route,
    ) -> Result<Option<Face>> {
        let mut masked = image.clone();
        if !mask::paint(&mut masked, &plain.landmarks, style) {
            return Ok(None);
        }
        let dets = self.detector.detect(&masked)?;
        match same_face(&dets, plain) {
            Some(det) => self.embed_as(&masked, det.clone(), route),
            None => Ok(None),
        }
    }

    /// Aligns and embeds one detection; `None` if its landmarks are degenerate. With a
    /// [`MaskRoute`] the face's mask state chooses the path.
    pub fn embed_detection(&self, image: &RgbImage, detection: Detection) -> Result<Option<Face>> {
        self.embed_as(image, detection, Route::Auto)
    }

    /// [`Pipeline::embed_detection`] through the chosen path.
    pub fn embed_as(
        &self,
        image: &RgbImage,
        detection: Detection,
        route: Route,
    ) -> Result<Option<Face>> {
        let Some(masked_path) = &self.route else {
            return self.embed_bare(image, detection, None);
        };
        let masked = match route {
            Route::Bare => false,
            Route::Masked => true,
            Route::Auto => {
                // The classifier was trained on crops aligned on the detector's own points.
                let Some(aligned) = align::align(image, &detection) else {
                    return Ok(None);
                };
                if !masked_path.is_masked(&aligned.1)? {
                    return self.embed_bare(image, detection, Some(aligned));
                }
                true
            }
        };
        if !masked {
            return self.embed_bare(image, detection, None);
        }
        Ok(masked_path
            .embed(image, &detection)?
            .map(|(detection, transform, embedding)| Face {
                detection,
                transform,
                embedding,
                masked: true,
            }))
    }

    /// The main path: refined landmarks when a refiner is in use, the main embedder.
    /// `aligned` is the crop on the detector's landmarks, when already made.
    fn embed_bare(
        &self,
        image: &RgbImage,
        detection: Detection,
        aligned: Option<(Similarity, RgbImage)>,
    ) -> Result<Option<Face>> {
        let (detection, aligned) = match &self.refiner {
            Some(r) => match r.refine(image, &detection)? {
                Some(d) => (d, None),
                None => return Ok(None),
            },
            None => (detection, aligned),
        };
        let Some((transform, crop)) = aligned.or_else(|| align::align(image, &detection)) else {
            return Ok(None);
        };
        let embedding = self.embedder.embed(&crop)?;
        Ok(Some(Face {
            detection,
            transform,
            embedding,
            masked: false,
        }))
    }
}

/// The photo's subject: among the faces at least half as large (in area) as the largest, the
/// one nearest the image centre. A door camera and an enrolment photo both frame the person
/// who matters in the middle; a bystander's face cut off at the edge can still be as large.
pub fn subject(dets: &[Detection], width: u32, height: u32) -> Option<&Detection> {
    let max_area = dets.iter().map(|d| d.bbox.area()).fold(0.0, f32::max);
    let (cx, cy) = (width as f32 / 2.0, height as f32 / 2.0);
    let dist = |d: &Detection| {
        let (x, y) = (d.bbox.x + d.bbox.w / 2.0, d.bbox.y + d.bbox.h / 2.0);
        (x - cx).powi(2) + (y - cy).powi(2)
    };
    dets.iter()
        .filter(|d| d.bbox.area() >= 0.5 * max_area)
        .reduce(|best, d| if dist(d) < dist(best) { d } else { best })
}

/// Least box overlap (intersection over union) for a detection on an edited copy of a photo
/// to count as the face that was edited. On the shared LFW photos with a synthetic mask, 97%
/// of masked faces come back with an overlap of 0.6 or more; the rest mostly with a box shrunk
/// to the upper face (0.3 to 0.6), while a neighbour's face hardly overlaps at all. (The
/// detector's eyes are no guide: behind a mask they can move by half the eye distance.)
pub const SAME_FACE_IOU: f32 = 0.3;

/// The face `original` again, found among `dets` detected on an edited copy of its photo (a
/// mask painted on it): the detection whose box overlaps `original`'s most, if by at least
/// [`SAME_FACE_IOU`]. Choosing by [`subject`] instead can answer with a bystander when the mask
/// makes the face smaller or the detector loses it (1% of the masked LFW probes): a masked
/// copy of one person's photo would then be another person's face, in training data and in
/// evaluation alike.
pub fn same_face<'a>(dets: &'a [Detection], original: &Detection) -> Option<&'a Detection> {
    dets.iter()
        .map(|d| (d, d.bbox.iou(&original.bbox)))
        .filter(|(_, iou)| *iou >= SAME_FACE_IOU)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(d, _)| d)
}

/// The detection with the largest box (ties: the earlier, i.e. higher-scoring, one).
pub fn largest(dets: &[Detection]) -> Option<&Detection> {
    dets.iter().reduce(|best, d| {
        if d.bbox.area() > best.bbox.area() {
            d
        } else {
            best
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BBox;

    fn det(x: f32, y: f32, side: f32) -> Detection {
        Detection {
            bbox: BBox {
                x,
                y,
                w: side,
                h: side,
            },
            score: 0.9,
            landmarks: [[0.0; 2]; 5],
        }
    }

    #[test]
    fn subject_prefers_the_centred_face_of_similar_size() {
        let dets = [det(0.0, 150.0, 100.0), det(80.0, 70.0, 90.0)];
        assert_eq!(subject(&dets, 250, 250), Some(&dets[1]));
    }

    #[test]
    fn subject_ignores_small_central_faces() {
        let dets = [det(0.0, 0.0, 100.0), det(120.0, 120.0, 20.0)];
        assert_eq!(subject(&dets, 250, 250), Some(&dets[0]));
    }

    #[test]
    fn same_face_is_the_overlapping_box_never_a_bystander() {
        let original = det(100.0, 80.0, 100.0);
        // The masked face came back with a box shrunk to the upper face; a bystander of the
        // same size is now nearer the centre.
        let mut masked = det(102.0, 78.0, 100.0);
        masked.bbox.h = 45.0;
        let dets = [det(20.0, 60.0, 110.0), masked];
        assert_eq!(subject(&dets, 250, 250), Some(&dets[0]));
        assert_eq!(same_face(&dets, &original), Some(&dets[1]));
        // The detector lost the masked face: no answer rather than the bystander.
        assert_eq!(same_face(&dets[..1], &original), None);
        assert_eq!(same_face(&[], &original), None);
    }

    #[test]
    fn no_faces_no_subject() {
        assert_eq!(subject(&[], 10, 10), None);
    }
}
