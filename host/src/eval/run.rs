//! Runs a protocol split through the real pipeline and builds the report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use facegate_models::embed::{EmbedderKind, Embedding};
use facegate_models::gallery::{Gallery, MaskedTemplates};
use facegate_models::image_io;
use facegate_models::mask::{MaskStyle, file_seed};
use facegate_models::pipeline::{Pipeline, Route, subject};
use serde::Serialize;

use super::metrics::{BestMatch, FixedPoint, at_threshold, operating_point, rank1};
use super::protocol::Split;
use crate::templates::{EnrolSettings, PhotoTemplates, enrol_photo, photo_file_templates};

/// FAR targets reported, with their JSON keys.
pub const FAR_TARGETS: [(&str, f64); 3] = [("1e-2", 1e-2), ("1e-3", 1e-3), ("1e-4", 1e-4)];

/// One probe image to recognise, as the door's camera would show it.
#[derive(Clone, Debug)]
pub struct Job {
    /// The image.
    pub path: PathBuf,
    /// Paint a synthetic mask of this style before recognition.
    pub mask: Option<MaskStyle>,
    /// Show it to the pipeline as a camera frame of this size (letterboxed, as the door's
    /// image-folder camera does), not as the photo it is.
    pub frame: Option<[u32; 2]>,
}

/// What came out of one image.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The main face's embedding, and whether it came from the masked path.
    Face(Embedding, bool),
    /// Decoded, but no face found.
    NoFace,
    /// The file could not be used (unreadable, corrupt, too small...).
    Error(String),
}

/// Recognises the main face of one image, optionally wearing a synthetic mask, routed by its
/// mask state as the door routes it.
pub fn embed_one(pipeline: &Pipeline, job: &Job) -> Outcome {
    let img = match image_io::open(&job.path) {
        Ok(i) => i,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    let img = match job.frame {
        Some([w, h]) => facegate_camera::files::letterbox(&img, w, h),
        None => img,
    };
    if let Some(style) = &job.mask {
        // Find the face unmasked, then let the pipeline paint the mask and see that same face
        // as the door would (detection included): a lost face is a failure, not a bystander.
        let plain = match pipeline.detector().detect(&img) {
            Ok(dets) => match subject(&dets, img.width(), img.height()) {
                Some(d) => d.clone(),
                None => return Outcome::NoFace,
            },
            Err(e) => return Outcome::Error(e.to_string()),
        };
        return match pipeline.masked_face_as(&img, &plain, style, Route::Auto) {
            Ok(Some(f)) => Outcome::Face(f.embedding, f.masked),
            Ok(None) => Outcome::NoFace,
            Err(e) => Outcome::Error(e.to_string()),
        };
    }
    let face = pipeline.detector().detect(&img).and_then(|dets| {
        match subject(&dets, img.width(), img.height()) {
            Some(d) => pipeline.embed_as(&img, d.clone(), Route::Auto),
            None => Ok(None),
        }
    });
    match face {
        Ok(Some(f)) => Outcome::Face(f.embedding, f.masked),
        Ok(None) => Outcome::NoFace,
        Err(e) => Outcome::Error(e.to_string()),
    }
}

/// Counts of the split.
#[derive(Clone, Debug, Serialize)]
pub struct Counts {
    /// People enrolled.
    pub enrolled: usize,
    /// Gallery images.
    pub gallery_images: usize,
    /// Templates made from them (with masked copies).
    pub gallery_templates: usize,
    /// Genuine probes.
    pub genuine: usize,
    /// Impostor probes.
    pub impostor: usize,
    /// Impostor probes with a face, i.e. the FAR denominator.
    pub impostor_scored: usize,
}

/// How a routed evaluation sent its probes.
#[derive(Clone, Debug, Serialize)]
pub struct MaskRouteCounts {
    /// The masked path's embedder.
    pub embedder: String,
    /// Its scores' offset onto the gallery's scale (see [`MaskedTemplates::offset`]).
    pub offset: f32,
    /// Templates on the masked path, all people together (as `facegate inspect` counts a
    /// bundle's).
    pub templates: usize,
    /// Genuine probes routed to the masked path.
    pub genuine_masked: usize,
    /// Impostor probes routed to the masked path.
    pub impostor_masked: usize,
}

/// Images where no face was found, per role.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Failures {
    /// In gallery images (the person has fewer templates).
    pub gallery: usize,
    /// In genuine probes (counted as rejects).
    pub genuine: usize,
    /// In impostor probes (left out of the FAR denominator).
    pub impostor: usize,
}

/// An unusable file.
#[derive(Clone, Debug, Serialize)]
pub struct FileError {
    /// The file.
    pub file: String,
    /// Why.
    pub reason: String,
}

/// The evaluation report (`--json`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The dataset folder.
    pub dataset: String,
    /// Protocol name.
    pub protocol: String,
    /// Masks painted on probes.
    pub masks: String,
    /// Embedder name.
    pub embedder: String,
    /// Whether the int8-weight embedder was used.
    pub quantised: bool,
    /// SHA-256 of the landmark refiner, when faces were aligned on refined landmarks.
    pub refiner_sha256: Option<String>,
    /// With faces routed by mask state (`--mask-route`): the masked path's embedder, and how
    /// many genuine and impostor probes the classifier sent down it.
    pub mask_route: Option<MaskRouteCounts>,
    /// Sizes.
    pub counts: Counts,
    /// No face found.
    pub detection_failures: Failures,
    /// Unreadable files.
    pub errors: Vec<FileError>,
    /// Genuine probes whose best match is the right person, no threshold (failures count wrong).
    pub rank1: f64,
    /// The threshold at FAR 1e-3 (the door's default operating point).
    pub threshold: f32,
    /// TAR (accepted and correctly identified) at each FAR target.
    pub tar_at_far: BTreeMap<String, f64>,
    /// Threshold chosen for each FAR target.
    pub threshold_at_far: BTreeMap<String, f32>,
    /// FAR actually reached for each target.
    pub far_achieved: BTreeMap<String, f64>,
    /// Genuine probes accepted as the wrong enrolled person, per target.
    pub misidentified_at_far: BTreeMap<String, usize>,
    /// The impostor probes that scored highest: where a door would let the wrong person in.
    pub hardest_impostors: Vec<ScoredProbe>,
    /// The genuine probes that scored lowest or matched the wrong person.
    pub hardest_genuine: Vec<ScoredProbe>,
    /// Fixed thresholds a user might pick instead of a calibrated one: `"door"` (the threshold
    /// facegate ships for this embedder), `"opencv_0.363"` (OpenCV's documented cosine
    /// threshold for SFace), and `"closed_set"` (no threshold: the nearest person always wins,
    /// as a plain classifier does).
    pub at_threshold: BTreeMap<String, FixedPoint>,
    /// Smallest FAR step this many impostors can resolve (1 / impostors scored).
    pub far_resolution: f64,
    /// Wall-clock seconds for the whole evaluation.
    pub seconds: f64,
}

/// A probe, its best match and score (for the lists of mistakes).
#[derive(Clone, Debug, Serialize)]
pub struct ScoredProbe {
    /// The probe image.
    pub file: String,
    /// Who it really is (genuine probes).
    pub truth: Option<String>,
    /// The best-matching enrolled person.
    pub best: Option<String>,
    /// That person's score.
    pub score: f32,
}

/// OpenCV's cosine threshold for SFace (its `face_recognizer` sample and model card: "same
/// identity" when cosine >= 0.363).
pub const OPENCV_SFACE_COSINE: f32 = 0.363;

/// How many mistakes each list keeps.
const HARDEST: usize = 10;

/// Settings that label the report.
pub struct Labels<'a> {
    /// Dataset folder.
    pub dataset: &'a Path,
    /// Protocol name.
    pub protocol: &'a str,
    /// Masks name.
    pub masks: &'a str,
}

/// Embeds the split's images and computes the report.
pub fn evaluate(
    pipeline: &Pipeline,
    split: &Split,
    synthetic_masks: bool,
    enrol: &EnrolSettings,
    threads: usize,
    labels: Labels<'_>,
    probe_frames: Option<[u32; 2]>,
) -> Report {
    let start = Instant::now();
    let probes = probe_jobs(split, synthetic_masks, probe_frames);
    let pb = crate::progress::bar(
        (split.gallery.len() + probes.len()) as u64,
        "embedding",
        "photos",
    );
    // The gallery exactly as `enrol` makes it, photo by photo; then the probes as the door's
    // camera shows them.
    let enrolled = crate::pool::map(&split.gallery, threads, &pb, |(_, path)| {
        photo_file_templates(pipeline, path, enrol.enrol_masks, enrol.mirror)
    });
    let outcomes = crate::pool::map(&probes, threads, &pb, |job| embed_one(pipeline, job));
    pb.finish_and_clear();

    let nq = split.genuine.len();
    let mut errors = Vec::new();
    let mut failures = Failures::default();
    let kind: EmbedderKind = pipeline.config().embedder;
    let offset = enrol.offset;
    let gallery = build_gallery((kind, offset), split, enrolled, &mut failures, &mut errors);
    let genuine = score_genuine(&gallery, split, &outcomes[..nq], &mut failures, &mut errors);
    let hardest_genuine = hardest_genuine(split, &genuine);
    let (impostor, hardest_impostors) =
        score_impostors(&gallery, split, &outcomes[nq..], &mut failures, &mut errors);
    let mut report = Report {
        dataset: labels.dataset.display().to_string(),
        protocol: labels.protocol.to_owned(),
        masks: labels.masks.to_owned(),
        embedder: kind.as_str().to_owned(),
        quantised: pipeline.config().quantised,
        refiner_sha256: pipeline.refiner().map(|r| r.sha256().to_owned()),
        mask_route: offset.map(|offset| {
            let masked = |o: &[Outcome]| {
                o.iter()
                    .filter(|o| matches!(o, Outcome::Face(_, true)))
                    .count()
            };
            MaskRouteCounts {
                embedder: facegate_models::maskroute::EMBEDDER.as_str().to_owned(),
                offset,
                templates: gallery
                    .masked
                    .as_ref()
                    .map_or(0, |m| m.templates.iter().map(Vec::len).sum()),
                genuine_masked: masked(&outcomes[..nq]),
                impostor_masked: masked(&outcomes[nq..]),
            }
        }),
        counts: Counts {
            enrolled: split.enrolled.len(),
            gallery_images: split.gallery.len(),
            gallery_templates: gallery.people.iter().map(|p| p.templates.len()).sum(),
            genuine: nq,
            impostor: split.impostor.len(),
            impostor_scored: impostor.len(),
        },
        detection_failures: failures,
        errors,
        rank1: rank1(&genuine),
        threshold: f32::NAN,
        tar_at_far: BTreeMap::new(),
        threshold_at_far: BTreeMap::new(),
        far_achieved: BTreeMap::new(),
        misidentified_at_far: BTreeMap::new(),
        hardest_impostors,
        hardest_genuine,
        at_threshold: door_and_reference_points(enrol.threshold, &genuine, &impostor),
        far_resolution: if impostor.is_empty() {
            1.0
        } else {
            1.0 / impostor.len() as f64
        },
        seconds: 0.0,
    };
    fill_far_targets(&mut report, &genuine, &impostor);
    report.seconds = start.elapsed().as_secs_f64();
    report
}

/// The probes in the order [`evaluate`] slices their outcomes: the genuine ones, then the
/// impostors, each as the door's camera sees it (masked with `synthetic_masks`, placed in a
/// frame of `probe_frames`).
fn probe_jobs(split: &Split, synthetic_masks: bool, probe_frames: Option<[u32; 2]>) -> Vec<Job> {
    let probe_job = |p: &PathBuf| Job {
        path: p.clone(),
        mask: synthetic_masks.then(|| MaskStyle::from_seed(file_seed(p))),
        frame: probe_frames,
    };
    let genuine = split.genuine.iter().map(|p| probe_job(&p.path));
    genuine
        .chain(split.impostor.iter().map(|p| probe_job(&p.path)))
        .collect()
}

/// The figures at the door's threshold for this gallery (`door`: the one `enrol` would give
/// it), at OpenCV's SFace threshold, and closed-set (no threshold).
fn door_and_reference_points(
    door: f32,
    genuine: &[(usize, BestMatch)],
    impostor: &[f32],
) -> BTreeMap<String, FixedPoint> {
    [
        ("door", door),
        ("opencv_0.363", OPENCV_SFACE_COSINE),
        ("closed_set", f32::NEG_INFINITY),
    ]
    .into_iter()
    .map(|(k, t)| (k.to_owned(), at_threshold(genuine, impostor, t)))
    .collect()
}

/// TAR, threshold, FAR achieved and misidentifications at each FAR target.
fn fill_far_targets(report: &mut Report, genuine: &[(usize, BestMatch)], impostor: &[f32]) {
    for (key, far) in FAR_TARGETS {
        let op = operating_point(genuine, impostor, far);
        if key == "1e-3" {
            report.threshold = op.threshold;
        }
        report.tar_at_far.insert(key.into(), op.tar);
        report.threshold_at_far.insert(key.into(), op.threshold);
        report.far_achieved.insert(key.into(), op.far);
        report
            .misidentified_at_far
            .insert(key.into(), op.misidentified);
    }
}

/// The gallery from each gallery photo's templates (in `split.gallery`'s order), filed as
/// `enrol` files them; photos without a face are counted, errors kept. `kind`: the main
/// embedder, and the masked path's offset when faces are routed.
fn build_gallery(
    (kind, offset): (EmbedderKind, Option<f32>),
    split: &Split,
    enrolled: Vec<anyhow::Result<Option<PhotoTemplates>>>,
    failures: &mut Failures,
    errors: &mut Vec<FileError>,
) -> Gallery {
    // Everyone the protocol enrols, in its order, even a person none of whose photos gave a
    // face: scores are indexed by the split's person numbers (`enrol` just leaves such a
    // person out). The routed masked path likewise exists before its first template.
    let mut gallery = Gallery::new(kind, 0.0);
    for name in &split.enrolled {
        gallery.people.push(facegate_models::gallery::Person {
            name: name.clone(),
            templates: vec![],
        });
    }
    gallery.masked = offset.map(|offset| {
        MaskedTemplates::empty(
            facegate_models::maskroute::EMBEDDER,
            offset,
            split.enrolled.len(),
        )
    });
    for ((person, path), out) in split.gallery.iter().zip(enrolled) {
        let filed = match (out, split.enrolled.get(*person)) {
            (Ok(Some(t)), Some(name)) => enrol_photo(&mut gallery, name, t, offset),
            (Ok(Some(_)), None) => Err(anyhow::anyhow!("no enrolled person {person}")),
            (Ok(None), _) => {
                failures.gallery += 1;
                Ok(())
            }
            (Err(e), _) => Err(e),
        };
        if let Err(e) = filed {
            errors.push(FileError {
                file: path.display().to_string(),
                reason: format!("{e:#}"),
            });
        }
    }
    gallery
}

/// The best-scoring enrolled person for `e`, leaving out `exclude` (a probe never matches its
/// own gallery entry in protocols that hold one person out).
fn best_excluding(
    gallery: &Gallery,
    (e, masked): (&[f32], bool),
    exclude: Option<usize>,
) -> BestMatch {
    gallery
        .scores_for(e, masked)
        .into_iter()
        .enumerate()
        .filter(|(i, s)| Some(*i) != exclude && s.is_finite())
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Each genuine probe's truth and best match (`None` without a usable face).
fn score_genuine(
    gallery: &Gallery,
    split: &Split,
    outcomes: &[Outcome],
    failures: &mut Failures,
    errors: &mut Vec<FileError>,
) -> Vec<(usize, BestMatch)> {
    let mut genuine = Vec::with_capacity(outcomes.len());
    for (probe, out) in split.genuine.iter().zip(outcomes) {
        let truth = probe.person.unwrap_or(usize::MAX);
        match out {
            Outcome::Face(e, m) => {
                genuine.push((truth, best_excluding(gallery, (e, *m), probe.exclude)));
            }
            Outcome::NoFace => {
                failures.genuine += 1;
                genuine.push((truth, None));
            }
            Outcome::Error(r) => {
                errors.push(FileError {
                    file: probe.path.display().to_string(),
                    reason: r.clone(),
                });
                genuine.push((truth, None));
            }
        }
    }
    genuine
}

/// The genuine probes that scored lowest for their own person (a wrong best match counts as
/// the worst score).
fn hardest_genuine(split: &Split, genuine: &[(usize, BestMatch)]) -> Vec<ScoredProbe> {
    let name = |i: usize| split.enrolled.get(i).cloned();
    let mut hardest_genuine: Vec<ScoredProbe> = split
        .genuine
        .iter()
        .zip(genuine)
        .map(|(p, (truth, best))| ScoredProbe {
            file: p.path.display().to_string(),
            truth: name(*truth),
            best: best.and_then(|(w, _)| name(w)),
            // A wrong best match ranks as the worst possible score.
            score: match best {
                Some((w, s)) if w == truth => *s,
                Some(_) => f32::NEG_INFINITY,
                None => f32::NEG_INFINITY,
            },
        })
        .collect();
    hardest_genuine.sort_by(|a, b| a.score.total_cmp(&b.score));
    hardest_genuine.truncate(HARDEST);
    for g in &mut hardest_genuine {
        if !g.score.is_finite() {
            g.score = -1.0;
        }
    }
    hardest_genuine
}

/// Each impostor probe's best score, and the highest-scoring impostors.
fn score_impostors(
    gallery: &Gallery,
    split: &Split,
    outcomes: &[Outcome],
    failures: &mut Failures,
    errors: &mut Vec<FileError>,
) -> (Vec<f32>, Vec<ScoredProbe>) {
    let name = |i: usize| split.enrolled.get(i).cloned();
    let mut impostor = Vec::new();
    let mut hardest_impostors = Vec::new();
    for (probe, out) in split.impostor.iter().zip(outcomes) {
        match out {
            Outcome::Face(e, m) => {
                if let Some((w, s)) = best_excluding(gallery, (e, *m), probe.exclude) {
                    impostor.push(s);
                    hardest_impostors.push(ScoredProbe {
                        file: probe.path.display().to_string(),
                        truth: probe.exclude.and_then(name),
                        best: name(w),
                        score: s,
                    });
                }
            }
            Outcome::NoFace => failures.impostor += 1,
            Outcome::Error(r) => errors.push(FileError {
                file: probe.path.display().to_string(),
                reason: r.clone(),
            }),
        }
    }
    hardest_impostors.sort_by(|a, b| b.score.total_cmp(&a.score));
    hardest_impostors.truncate(HARDEST);
    (impostor, hardest_impostors)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each gallery photo's templates are filed as `enrol` files them: the photo's and its
    /// mirror image's on the person, the masked ones on the masked path; a photo without a
    /// face is a failure, an unreadable one an error, and neither adds a template.
    #[test]
    fn the_gallery_files_each_photo_as_enrolment_does() {
        let split = Split {
            enrolled: vec!["ann".into(), "bob".into()],
            gallery: vec![
                (0, "a.png".into()),
                (0, "b.png".into()),
                (1, "c.png".into()),
                (1, "d.png".into()),
            ],
            ..Split::default()
        };
        let t = |mirrored: bool, masked: usize| PhotoTemplates {
            bare: vec![1.0; 512],
            mirrored: mirrored.then(|| vec![1.0; 512]),
            masked: vec![vec![1.0; 128]; masked],
            masked_path: true,
        };
        let enrolled = vec![
            Ok(Some(t(true, 8))),
            Ok(None),
            Ok(Some(t(false, 4))),
            Err(anyhow::anyhow!("unreadable")),
        ];
        let (mut failures, mut errors) = (Failures::default(), Vec::new());
        let g = build_gallery(
            (EmbedderKind::EdgeFace, Some(0.02)),
            &split,
            enrolled,
            &mut failures,
            &mut errors,
        );
        let main: Vec<usize> = g.people.iter().map(|p| p.templates.len()).collect();
        assert_eq!(main, [2, 1]);
        let masked = g.masked.as_ref().map(|m| {
            let counts: Vec<usize> = m.templates.iter().map(Vec::len).collect();
            (counts, m.offset)
        });
        assert_eq!(masked, Some((vec![8, 4], 0.02)));
        assert_eq!(failures.gallery, 1);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].file, "d.png");
    }
}
