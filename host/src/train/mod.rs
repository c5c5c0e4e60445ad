//! `facegate train`'s machinery: turn a dataset into training examples (each photo plus
//! augmented and masked copies, embedded by the frozen door embedder), split them by photo,
//! fit the head ([`head`]), and calibrate the stranger threshold on impostor faces. Every
//! other trained part lives here too: the augmentation ([`augment`]), the mask adaptation of
//! SFace ([`adapt`]), the landmark refiner ([`refiner`]), the mask-state classifier
//! ([`maskstate`]), the liveness network ([`liveness`]) and the CNN from scratch ([`scratch`]),
//! all stepping through the loops in [`fit`].

pub mod adapt;
pub mod augment;
pub mod cnn;
pub mod fit;
pub mod head;
pub mod liveness;
pub mod maskstate;
pub mod refiner;
pub mod scratch;

use anyhow::Result;
use facegate_models::embed::Embedder;
use facegate_models::gallery::Gallery;

use crate::eval::metrics::threshold_at_far;
use crate::faceset::{Dataset, Sample};
use crate::progress::bar;
use augment::Params;

/// One embedded view of a sample.
#[derive(Clone, Debug)]
pub struct View {
    /// Index into the dataset's samples.
    pub sample: usize,
    /// Whether a synthetic mask was drawn.
    pub masked: bool,
    /// L2-normalised embedding.
    pub embedding: Vec<f32>,
}

/// The stored embedding of each sample plus `copies` augmented views (a share `mask_prob` of
/// them masked), embedded with `embedder`. Deterministic by `seed`.
pub fn augmented_views(
    embedder: &Embedder,
    ds: &Dataset,
    samples: &[usize],
    copies: usize,
    mask_prob: f32,
    seed: u64,
    what: &str,
) -> Result<Vec<View>> {
    let pb = bar((samples.len() * copies) as u64, what, "views");
    let mut out = Vec::with_capacity(samples.len() * (copies + 1));
    for &i in samples {
        let s = &ds.manifest.samples[i];
        out.push(View {
            sample: i,
            masked: false,
            embedding: s.embedding.clone(),
        });
        if copies == 0 {
            continue;
        }
        let ctx = ds.crop(s)?;
        for k in 0..copies {
            let p = Params::random(augment::sample_seed(seed, &s.id, k), mask_prob);
            let crop = augment::apply(&ctx, &s.landmarks, &p);
            out.push(View {
                sample: i,
                masked: p.mask.is_some(),
                embedding: embedder.embed(&crop)?,
            });
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    Ok(out)
}

/// Each sample as the door would see it unmasked (stored embedding) and with one synthetic
/// mask (re-embedded): how probes and impostors are scored.
pub fn probe_views(
    embedder: &Embedder,
    ds: &Dataset,
    samples: &[usize],
    what: &str,
) -> Result<Vec<View>> {
    let pb = bar(samples.len() as u64, what, "photos");
    let mut out = Vec::with_capacity(samples.len() * 2);
    for &i in samples {
        let s = &ds.manifest.samples[i];
        out.push(View {
            sample: i,
            masked: false,
            embedding: s.embedding.clone(),
        });
        out.push(View {
            sample: i,
            masked: true,
            embedding: embedder.embed(&masked_crop(ds, s)?)?,
        });
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(out)
}

/// The sample's aligned crop with its evaluation mask (seeded by its ID, so every run and
/// every command paints the same one).
pub fn masked_crop(ds: &Dataset, s: &Sample) -> Result<image::RgbImage> {
    let ctx = ds.crop(s)?;
    Ok(augment::apply(
        &ctx,
        &s.landmarks,
        &Params::mask_only(augment::sample_seed(0xA5C5, &s.id, 0)),
    ))
}

/// The validation photos of one person: a `fraction` of them (at least one when the person
/// has three or more), chosen by a hash of the photo ID so that all augmented copies of a
/// photo land on the same side and reruns choose the same photos.
pub fn validation_split(ids: &[&str], fraction: f64, seed: u64) -> Vec<bool> {
    let n = ids.len();
    let want = if n >= 3 {
        ((fraction * n as f64).round() as usize).clamp(1, n - 1)
    } else {
        0
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| augment::sample_seed(seed, ids[i], 0));
    let mut val = vec![false; n];
    for &i in order.iter().take(want) {
        val[i] = true;
    }
    val
}

/// The candidate score of each impostor view under `gallery` (head included); a view the
/// head is unsure about can never be accepted and scores -1.
pub fn impostor_scores(gallery: &Gallery, views: &[View]) -> Vec<f32> {
    views
        .iter()
        .map(|v| gallery.candidate(&v.embedding).map_or(-1.0, |(_, s)| s))
        .collect()
}

/// The threshold that lets at most floor(far * n) of the impostor views in.
pub fn calibrate(gallery: &Gallery, impostors: &[View], far: f64) -> f32 {
    threshold_at_far(&impostor_scores(gallery, impostors), far)
}

/// The threshold to ship from a calibration on `impostors` views at `far`, never looser than
/// `floor` (the embedder's threshold calibrated on thousands of strangers) when there are too
/// few impostors to resolve `far`: 160 views cannot tell FAR 1e-3 apart, and a threshold just
/// above the highest of them let 2.6 times the asked rate in. Returns the threshold and, when
/// it was raised, what to tell the user.
pub fn threshold_to_ship(
    calibrated: f32,
    impostors: usize,
    far: f64,
    floor: f32,
) -> (f32, Option<String>) {
    let resolvable = (impostors as f64) * far >= 1.0;
    if resolvable || calibrated >= floor {
        return (calibrated, None);
    }
    let needed = (10.0 / far).ceil() as u64;
    (
        floor,
        Some(format!(
            "{impostors} impostor views cannot resolve FAR {far}: keeping the embedder's \
             calibrated threshold {floor:.4} instead of the looser {calibrated:.4}; import \
             faces of about {needed} more strangers (at least {} views) to calibrate your own",
            (1.0 / far).ceil() as u64
        )),
    )
}

/// Impostor views that are one of the enrolled faces (the same photo, or the same face:
/// cosine at least `same`): (view index, enrolled name, cosine). A household's own photos among
/// the impostors make a threshold that nobody passes.
pub fn enrolled_among_impostors(
    gallery: &Gallery,
    impostors: &[View],
    same: f32,
) -> Vec<(usize, String, f32)> {
    impostors
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            let (person, score) = gallery.best(&v.embedding)?;
            (score >= same).then(|| (i, gallery.people[person].name.clone(), score))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding (#23): 160 impostor views at FAR 1e-3 shipped 0.4148 against the embedder's
    /// calibrated 0.4992.
    #[test]
    fn too_few_impostors_never_loosen_the_threshold() {
        let (t, note) = threshold_to_ship(0.4148, 160, 1e-3, 0.4992);
        assert_eq!(t, 0.4992);
        assert!(note.expect("said").contains("10000"));
        // Enough impostors: their calibration stands, looser or not.
        assert_eq!(threshold_to_ship(0.45, 5000, 1e-3, 0.4992), (0.45, None));
        // Too few but stricter already: kept.
        assert_eq!(threshold_to_ship(0.6, 160, 1e-3, 0.4992), (0.6, None));
    }

    /// Finding (#23): the household's own photos among the impostors gave threshold 1.0 and a
    /// door that never opens.
    #[test]
    fn enrolled_faces_among_impostors_are_found() {
        let mut g = Gallery::new(facegate_models::embed::EmbedderKind::SFace, 0.48);
        let unit = |i: usize| {
            let mut v = vec![0.0f32; 128];
            v[i] = 1.0;
            v
        };
        g.enrol("ann", unit(0)).expect("enrol");
        g.enrol("bob", unit(1)).expect("enrol");
        let view = |embedding| View {
            sample: 0,
            masked: false,
            embedding,
        };
        let mut near = unit(0);
        near[2] = 0.1;
        let n = near.iter().map(|x| x * x).sum::<f32>().sqrt();
        let near: Vec<f32> = near.iter().map(|x| x / n).collect();
        let found = enrolled_among_impostors(&g, &[view(unit(5)), view(near), view(unit(1))], 0.9);
        let names: Vec<&str> = found.iter().map(|(_, n, _)| n.as_str()).collect();
        assert_eq!(names, ["ann", "bob"]);
        assert_eq!(found[0].0, 1);
    }

    #[test]
    fn validation_takes_a_share_of_photos_never_all() {
        let ids: Vec<String> = (0..10).map(|i| format!("{i:016x}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let v = validation_split(&refs, 0.2, 1);
        assert_eq!(v.iter().filter(|b| **b).count(), 2);
        assert_eq!(v, validation_split(&refs, 0.2, 1));
        assert_eq!(validation_split(&refs[..2], 0.5, 1), vec![false, false]);
        assert_eq!(
            validation_split(&refs[..3], 0.9, 1)
                .iter()
                .filter(|b| **b)
                .count(),
            2
        );
    }
}
