//! One image into one dataset sample: detect, pick the face, check size and sharpness, align,
//! embed, store the context crop. Shared by `facegate import` (photos) and `facegate capture`
//! (camera or video frames) so both obey the same rules.

use anyhow::{Context, Result};
use clap::ValueEnum;
use facegate_models::align;
use facegate_models::pipeline::{Pipeline, largest};
use image::RgbImage;
use sha2::{Digest, Sha256};

use super::quality::sharpness;
use super::{CONTEXT, Dataset, Origin, Sample, safe_name, to_context};

/// What to do with a photo showing several faces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Multi {
    /// Take the largest face.
    Largest,
    /// Skip the photo.
    Skip,
}

/// The checks a face must pass.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// Several faces.
    pub multi: Multi,
    /// Smallest face width, source pixels.
    pub min_face: f32,
    /// Smallest [`sharpness`] of the aligned face.
    pub min_sharpness: f32,
}

impl Rules {
    /// A stable text for these rules, kept with every skipped photo: the same photo is judged
    /// again when the rules change (a larger --min-face once, the default later).
    pub fn fingerprint(&self) -> String {
        format!(
            "multi={:?} min_face={} min_sharpness={}",
            self.multi, self.min_face, self.min_sharpness
        )
    }
}

/// Which image this is and whose face it should show.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// SHA-256 (hex) of the file or frame.
    pub id: &'a str,
    /// The label.
    pub person: &'a str,
    /// The file or frame, for reports.
    pub name: &'a str,
    /// Photo or frame.
    pub origin: Origin,
}

/// SHA-256 of bytes, hex: a sample's ID.
pub fn content_id(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Runs the pipeline on `image` and stores the face as a sample of `person`. `Ok(Err(reason))`
/// when the image is unusable (no face, too small, too blurred, several faces).
pub fn ingest(
    pipeline: &Pipeline,
    ds: &Dataset,
    image: &RgbImage,
    src: Source<'_>,
    rules: Rules,
) -> Result<std::result::Result<Sample, String>> {
    let Source {
        id,
        person,
        name: source,
        origin,
    } = src;
    let dets = pipeline.detector().detect(image)?;
    if dets.is_empty() {
        return Ok(Err("no face found".into()));
    }
    if dets.len() > 1 && rules.multi == Multi::Skip {
        return Ok(Err(format!(
            "{} faces (--multi largest takes the largest)",
            dets.len()
        )));
    }
    let Some(det) = largest(&dets) else {
        return Ok(Err("no face found".into()));
    };
    if det.bbox.w < rules.min_face {
        return Ok(Err(format!(
            "face is {:.0} px wide, below --min-face {:.0}: use a closer or larger photo",
            det.bbox.w, rules.min_face
        )));
    }
    let Some((transform, crop)) = align::align(image, det) else {
        return Ok(Err("face landmarks are degenerate".into()));
    };
    let sharp = sharpness(&crop);
    if sharp < rules.min_sharpness {
        return Ok(Err(format!(
            "face is too blurred (sharpness {sharp:.1}, below --min-sharpness {:.1})",
            rules.min_sharpness
        )));
    }
    let embedding = pipeline.embedder().embed(&crop)?;
    let to_ctx = to_context(&transform);
    let Some(context) = align::warp_sized(image, &to_ctx, CONTEXT) else {
        return Ok(Err("face landmarks are degenerate".into()));
    };
    let rel = format!("crops/{}/{}.png", safe_name(person), &id[..16]);
    let path = ds.dir.join(&rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    context
        .save(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    let landmarks = det.landmarks.map(|[x, y]| {
        let p = to_ctx.apply([x as f64, y as f64]);
        [p[0] as f32, p[1] as f32]
    });
    Ok(Ok(Sample {
        id: id.to_owned(),
        person: person.to_owned(),
        source: source.to_owned(),
        origin,
        crop: rel,
        landmarks,
        embedding,
        face_px: det.bbox.w,
        sharpness: sharp,
    }))
}

/// Opens (or starts) the dataset of `embedder` (int8 weights when `quantised`, as the door)
/// and loads the matching pipeline from `models`.
pub fn open_with_pipeline(
    dir: &std::path::Path,
    models: &std::path::Path,
    embedder: facegate_models::embed::EmbedderKind,
    quantised: bool,
) -> Result<(Dataset, Pipeline)> {
    let ds = Dataset::open_or_create(dir, embedder, quantised)?;
    let pipeline = Pipeline::load(
        models,
        facegate_models::pipeline::PipelineConfig {
            embedder,
            quantised,
            ..Default::default()
        },
    )
    .with_context(|| format!("loading models from {}", models.display()))?;
    Ok((ds, pipeline))
}
