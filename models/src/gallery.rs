//! Open-set identification: enrolled people, each with several templates, and a threshold.
//!
//! A person's score for a probe is the best cosine over that person's templates (several
//! photos cover pose, light and glasses better than one averaged vector); on a routed door's
//! masked path, whose templates are mostly synthetic copies of a few photos, half of it is
//! the cosine to their mean instead ([`MaskedScoring`]). The answer is the
//! best-scoring person only if that score reaches the threshold, which is calibrated on faces
//! of people who are NOT enrolled, to a chosen false-accept rate. Below it the probe is a
//! stranger: a door must never force an unknown face onto the nearest enrolled person.

use serde::{Deserialize, Serialize};

use crate::embed::{EmbedderKind, Embedding, cosine};
use crate::head::Head;
use crate::{Error, Result};

/// Cosine thresholds a door accepts. Every calibrated default lies in 0.45 to 0.69; below 0.3
/// the embedders admit several strangers in a hundred, above 0.95 not even the enrolment
/// photo itself reliably passes.
pub const COSINE_THRESHOLDS: std::ops::RangeInclusive<f32> = 0.3..=0.95;

/// Longest enrolled name, in characters.
pub const MAX_NAME: usize = 64;

/// A name goes on a screen, into logs and terminals: printable, bounded, no control characters
/// (a newline or an escape sequence in a name could forge a log line or retitle a terminal).
pub fn check_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::Gallery {
            reason: format!("name {name:?} {why}"),
        })
    };
    if name.trim().is_empty() {
        return bad("is empty");
    }
    if name.chars().count() > MAX_NAME {
        return bad(&format!("is longer than {MAX_NAME} characters"));
    }
    if name.chars().any(char::is_control) {
        return bad("holds control characters (newlines, escapes): rename the folder");
    }
    Ok(())
}

/// How a gallery's templates were made, as far as its calibrated threshold depends on it:
/// more templates per person can only bring strangers closer, so each way of enrolling has its
/// own calibration ([`default_threshold`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Enrolment {
    /// Each photo also gave templates of itself wearing synthetic masks (`enrol
    /// --enrol-masks`).
    pub masked_copies: bool,
    /// Each photo's mirror image gave the same templates again (a routed door's default).
    pub mirrored: bool,
}

impl Enrolment {
    /// The photos as they are, one template each.
    pub const PHOTOS: Self = Self {
        masked_copies: false,
        mirrored: false,
    };
    /// The photos and their synthetic-masked copies.
    pub const MASKED_COPIES: Self = Self {
        masked_copies: true,
        mirrored: false,
    };
}

/// The acceptance threshold used when none has been calibrated for a gallery: the one
/// `facegate eval` chose at FAR 1e-3 on the LFW open-set protocol (shared half, unmasked;
/// `scripts/eval-all`, the table in docs/RESULTS.md), per embedder, weight format and alignment
/// (`refined`: landmarks re-placed by the refiner), and per [`Enrolment`]. A gallery with
/// masked copies has its own: a masked stranger comes closer to someone's masked template than
/// to their photos, so its threshold is the stricter of the two calibrations, on unmasked
/// strangers and on strangers wearing synthetic masks, each at FAR 1e-3. A mirrored gallery's
/// is measured where a door enrols one (the masked path of a routed door); elsewhere the
/// photos' own applies. Calibrate on your own impostor photos when you can.
pub fn default_threshold(
    kind: EmbedderKind,
    quantised: bool,
    refined: bool,
    enrolment: Enrolment,
) -> f32 {
    if enrolment.masked_copies {
        // Measured as a door runs them (int8 weights; `scripts/eval-all`, `*-em3` rows) and
        // used for fp32 too, which no door runs. The masked strangers set each of them; the
        // unmasked ones alone would give, refined, EdgeFace 0.5367, SFace 0.4803, fused 0.4624
        // and the mask-adapted SFace 0.4638, and on the detector's landmarks EdgeFace 0.6503,
        // SFace 0.4848 and fused 0.5305. Each is rounded up above the score of the stranger it
        // must keep out, as a threshold at the last decimal must be.
        return match (kind, refined) {
            (EmbedderKind::EdgeFace, true) => 0.6803,
            (EmbedderKind::SFace, true) => 0.5463,
            (EmbedderKind::Fused, true) => 0.5678,
            // On the detector's landmarks a masked face is aligned worse and its masked copies
            // draw masked strangers much closer: 0.76091, 0.64953 and 0.66427 measured (the
            // refined thresholds above let 12, 11 and 9 of 1,414 masked strangers in).
            (EmbedderKind::EdgeFace, false) => 0.7610,
            (EmbedderKind::SFace, false) => 0.6496,
            (EmbedderKind::Fused, false) => 0.6643,
            (EmbedderKind::Scratch, _) => 0.5,
            // 0.48043 measured (0.4804 let that stranger in). Trained and measured on refined
            // landmarks only.
            (EmbedderKind::SFaceMasked, _) => 0.4805,
        };
    }
    // A routed door's main path with mirror images measured the same as without (EdgeFace
    // int8 0.49918 against 0.4992), so the photos' thresholds serve it.
    match (kind, quantised, refined) {
        (EmbedderKind::EdgeFace, false, false) => 0.4963,
        (EmbedderKind::EdgeFace, true, false) => 0.4992,
        (EmbedderKind::EdgeFace, false, true) => 0.4950,
        (EmbedderKind::EdgeFace, true, true) => 0.4968,
        (EmbedderKind::SFace, false, false) => 0.4817,
        (EmbedderKind::SFace, true, false) => 0.4848,
        (EmbedderKind::SFace, false, true) => 0.4766,
        (EmbedderKind::SFace, true, true) => 0.4803,
        (EmbedderKind::Fused, false, false) => 0.4578,
        (EmbedderKind::Fused, true, false) => 0.4664,
        (EmbedderKind::Fused, false, true) => 0.4547,
        (EmbedderKind::Fused, true, true) => 0.4624,
        // A probability: below one half another class could be more likely.
        (EmbedderKind::Scratch, _, _) => 0.5,
        // The committed layer (models/trained/sface_masked_layer.bin), trained on refined
        // alignment and measured that way only, with the stranger term (it lowers every
        // cosine to another person). A layer retrained here comes with other cosines: its
        // owner should calibrate (`eval ... --json`, then `enrol --threshold`).
        (EmbedderKind::SFaceMasked, false, _) => 0.4464,
        (EmbedderKind::SFaceMasked, true, _) => 0.4496,
    }
}

/// The masked path's own threshold on a routed door (the mask-adapted embedder on refined
/// landmarks, people scored by [`MaskedScoring::BestAndMean`]), per weight format and [`Enrolment`]:
/// the one `facegate eval` chose at FAR 1e-3 among LFW strangers wearing synthetic masks
/// (shared half; `scripts/eval-all OUT door`, taken off the gallery's scale by the report's
/// `mask_route.offset`), rounded up above the score of the stranger it must keep out. The
/// bare path's is [`default_threshold`]'s; the difference is the masked path's offset.
pub fn masked_path_threshold(quantised: bool, enrolment: Enrolment) -> f32 {
    // Measured 2026-12-07 (docs/MASKS.md, "One masked score per person"), each the score of
    // the stranger it must keep out (int8 / fp32): with masked copies and mirror images (a
    // routed door's default) 0.46733 / 0.46415; masked copies alone 0.46626 / 0.45657;
    // mirror images alone (`--enrol-masks 0`) 0.44145 / 0.44292; the photos alone 0.42561 /
    // 0.42959.
    match (enrolment.masked_copies, enrolment.mirrored, quantised) {
        (true, true, true) => 0.4674,
        (true, true, false) => 0.4642,
        (true, false, true) => 0.4663,
        (true, false, false) => 0.4566,
        (false, true, true) => 0.4415,
        (false, true, false) => 0.4430,
        (false, false, true) => 0.4257,
        (false, false, false) => 0.4296,
    }
}

/// One enrolled person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// Display name (folder name at enrolment).
    pub name: String,
    /// L2-normalised embeddings of this person's enrolment photos.
    pub templates: Vec<Embedding>,
}

/// The enrolled people and the acceptance threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gallery {
    /// The embedder the templates came from; probes must use the same one.
    pub embedder: EmbedderKind,
    /// Accept when the best person's score is at least this.
    pub threshold: f32,
    /// Enrolled people, in a stable order.
    pub people: Vec<Person>,
    /// A trained classification head (`facegate train`), one class per person. With it the
    /// head picks the person and that person's cosine score must clear the threshold.
    pub head: Option<Head>,
    /// The masked path's templates, when the door routes faces by mask state (see
    /// [`crate::maskroute`]).
    #[serde(default)]
    pub masked: Option<MaskedTemplates>,
}

/// Largest shift of the masked path's scores: the calibrated thresholds of the two paths lie
/// within a few hundredths of each other, so anything larger is a malformed gallery.
pub const MAX_MASKED_OFFSET: f32 = 0.2;

/// What a gallery holds for masked faces: templates made by the masked path from each
/// person's photos (and synthetic-masked copies of them), and how its scores are placed on the
/// gallery's scale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskedTemplates {
    /// The masked path's embedder.
    pub embedder: EmbedderKind,
    /// Added to every masked cosine before the gallery's one threshold applies: the gallery's
    /// threshold minus the masked path's own (calibrated on masked strangers), so each
    /// condition is held to its own calibration and a door shows one score scale.
    pub offset: f32,
    /// Per person, in [`Gallery::people`] order.
    pub templates: Vec<Vec<Embedding>>,
    /// How a person's masked templates make one score.
    pub scoring: MaskedScoring,
}

/// How the masked path scores a person from their masked templates (the photos' masked-path
/// embeddings, their synthetic-masked copies and mirror images: a dozen or more per person).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaskedScoring {
    /// The best cosine over the templates, as on the main path: bundles of format 5 and
    /// before, served so with the offset they were calibrated for.
    Best,
    /// Half the best template's cosine plus half the cosine to the direction of the
    /// templates' mean. Why: with many templates made from a few photos (each photo's masked
    /// copies and mirror images), the best one alone is often a lucky match for a stranger;
    /// the mean keeps what the person's templates agree on, and the best one keeps a bare face
    /// that the mask-state classifier sent here close to its photo's own template. Measured on
    /// the masked path against the best template alone, each at its own calibration
    /// (docs/MASKS.md, "One masked score per person"): MFR2's real masks 91.86% -> 97.67% at
    /// FAR 1e-2, synthetic-masked LFW 95.14% -> 96.19% at 1e-3, bare LFW unchanged.
    BestAndMean,
}

impl MaskedTemplates {
    /// No masked template yet for any of `people` people, scored as a gallery made today is
    /// ([`MaskedScoring::BestAndMean`], which [`masked_path_threshold`] is calibrated for).
    pub fn empty(embedder: EmbedderKind, offset: f32, people: usize) -> Self {
        Self {
            embedder,
            offset,
            templates: vec![Vec::new(); people],
            scoring: MaskedScoring::BestAndMean,
        }
    }
}

impl MaskedScoring {
    /// How the rule scores a person, in words, for `facegate inspect`: a household that
    /// keeps an old bundle sees that it is served as it was made.
    pub fn describe(self) -> &'static str {
        match self {
            MaskedScoring::BestAndMean => "half their best template, half their templates' mean",
            MaskedScoring::Best => {
                "their best template (a bundle of format 5, served as it was made)"
            }
        }
    }

    /// `probe`'s score against one person's templates; minus infinity without any (or when
    /// they cancel out, so that no direction is left to match).
    pub fn score(self, templates: &[Embedding], probe: &[f32]) -> f32 {
        let best = templates
            .iter()
            .map(|t| cosine(t, probe))
            .fold(f32::NEG_INFINITY, f32::max);
        match self {
            MaskedScoring::Best => best,
            MaskedScoring::BestAndMean => {
                // The templates' sum, one value at a time: its length, and its dot product
                // with the probe as the sum of the cosines, so the door allocates nothing per
                // face for it.
                let norm = (0..probe.len())
                    .map(|k| {
                        let s: f32 = templates.iter().filter_map(|t| t.get(k)).sum();
                        s * s
                    })
                    .sum::<f32>()
                    .sqrt();
                if templates.is_empty() || norm.is_nan() || norm <= 1e-6 {
                    return f32::NEG_INFINITY;
                }
                let along: f32 = templates.iter().map(|t| cosine(t, probe)).sum();
                0.5 * (best + along / norm)
            }
        }
    }
}

/// What the gallery says about one probe face.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Decision {
    /// An enrolled person, with the score that cleared the threshold.
    Known {
        /// Index into [`Gallery::people`].
        person: usize,
        /// Best cosine against that person.
        score: f32,
    },
    /// Nobody scored high enough.
    Stranger {
        /// The best score seen (for logs and calibration), and whom it was against.
        best: Option<(usize, f32)>,
    },
}

impl Decision {
    /// The accepted person's index, if any.
    pub fn person(&self) -> Option<usize> {
        match self {
            Self::Known { person, .. } => Some(*person),
            Self::Stranger { .. } => None,
        }
    }
}

impl Gallery {
    /// Empty gallery for `embedder` with threshold `threshold`.
    pub fn new(embedder: EmbedderKind, threshold: f32) -> Self {
        Self {
            embedder,
            threshold,
            people: Vec::new(),
            head: None,
            masked: None,
        }
    }

    /// Adds a masked-path template for `name`, who must be enrolled already (the masked
    /// templates start empty with `offset`, made for `embedder`).
    pub fn enrol_masked(
        &mut self,
        name: &str,
        embedder: EmbedderKind,
        offset: f32,
        template: Embedding,
    ) -> Result<()> {
        let Some(person) = self.people.iter().position(|p| p.name == name) else {
            return Err(Error::Gallery {
                reason: format!("{name} has no photo template, so no masked one either"),
            });
        };
        if template.len() != embedder.dim() {
            return Err(Error::Gallery {
                reason: format!(
                    "masked template for {name} has {} values, {} expects {}",
                    template.len(),
                    embedder.as_str(),
                    embedder.dim()
                ),
            });
        }
        let people = self.people.len();
        let masked = self
            .masked
            .get_or_insert_with(|| MaskedTemplates::empty(embedder, offset, people));
        if masked.embedder != embedder {
            return Err(Error::Gallery {
                reason: format!(
                    "masked templates come from {}, not {}",
                    masked.embedder.as_str(),
                    embedder.as_str()
                ),
            });
        }
        masked.templates.resize(self.people.len(), Vec::new());
        masked.templates[person].push(template);
        Ok(())
    }

    /// Each person's score for a probe face: [`Gallery::scores`] for a bare face, the masked
    /// templates' score ([`MaskedScoring`]) plus the offset for a face from the masked path.
    /// A gallery without masked templates scores every face on its main templates.
    pub fn scores_for(&self, probe: &[f32], masked: bool) -> Vec<f32> {
        match (&self.masked, masked) {
            (Some(m), true) => (0..self.people.len())
                .map(|i| {
                    m.templates.get(i).map_or(f32::NEG_INFINITY, |ts| {
                        m.scoring.score(ts, probe) + m.offset
                    })
                })
                .collect(),
            _ => self.scores(probe),
        }
    }

    /// Open-set decision for a face, routed by its path (see [`Gallery::scores_for`]); the
    /// head, trained on the main embedder, takes part for bare faces only.
    pub fn identify_face(&self, probe: &[f32], masked: bool) -> Decision {
        if !masked || self.masked.is_none() {
            return self.identify(probe);
        }
        let best = self
            .scores_for(probe, true)
            .into_iter()
            .enumerate()
            .filter(|(_, s)| s.is_finite())
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((person, score)) if score >= self.threshold => Decision::Known { person, score },
            best => Decision::Stranger { best },
        }
    }

    /// Adds templates for `name`, creating the person if needed.
    pub fn enrol(&mut self, name: &str, template: Embedding) -> Result<()> {
        check_name(name)?;
        if template.len() != self.embedder.dim() {
            return Err(Error::Gallery {
                reason: format!(
                    "template for {name} has {} values, {} expects {}",
                    template.len(),
                    self.embedder.as_str(),
                    self.embedder.dim()
                ),
            });
        }
        match self.people.iter_mut().find(|p| p.name == name) {
            Some(p) => p.templates.push(template),
            None => self.people.push(Person {
                name: name.to_owned(),
                templates: vec![template],
            }),
        }
        Ok(())
    }

    /// Each person's score for `probe`, in gallery order. For a from-scratch classifier the
    /// probe *is* the scores: the probability of each enrolled person (then "other").
    pub fn scores(&self, probe: &[f32]) -> Vec<f32> {
        if self.embedder == EmbedderKind::Scratch {
            let mut s = probe
                .iter()
                .take(self.people.len())
                .copied()
                .collect::<Vec<_>>();
            s.resize(self.people.len(), f32::NEG_INFINITY);
            return s;
        }
        self.people
            .iter()
            .map(|p| {
                p.templates
                    .iter()
                    .map(|t| cosine(t, probe))
                    .fold(f32::NEG_INFINITY, f32::max)
            })
            .collect()
    }

    /// The best person and score, if anyone is enrolled.
    pub fn best(&self, probe: &[f32]) -> Option<(usize, f32)> {
        self.scores(probe)
            .into_iter()
            .enumerate()
            .filter(|(_, s)| s.is_finite())
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// The person this gallery would name for `probe` before the threshold, and that person's
    /// cosine score: the head's pick when there is a head and it is confident enough, else
    /// (no head) the best-scoring person. `None` when the head is unsure or nobody is enrolled.
    pub fn candidate(&self, probe: &[f32]) -> Option<(usize, f32)> {
        match &self.head {
            None => self.best(probe),
            Some(_) if self.embedder == EmbedderKind::Scratch => None,
            Some(head) => {
                let (person, p) = head.pick(probe)?;
                if p < head.min_prob {
                    return None;
                }
                let score = self.people.get(person).map(|q| {
                    q.templates
                        .iter()
                        .map(|t| cosine(t, probe))
                        .fold(f32::NEG_INFINITY, f32::max)
                })?;
                Some((person, score))
            }
        }
    }

    /// Open-set decision for one probe embedding.
    pub fn identify(&self, probe: &[f32]) -> Decision {
        match self.candidate(probe) {
            Some((person, score)) if score >= self.threshold => Decision::Known { person, score },
            Some(best) => Decision::Stranger { best: Some(best) },
            None => Decision::Stranger {
                best: self.best(probe),
            },
        }
    }

    /// Checks internal consistency (after loading from disk).
    pub fn validate(&self) -> Result<()> {
        if !self.threshold.is_finite() {
            return Err(Error::Gallery {
                reason: "threshold is not a finite number".into(),
            });
        }
        if self.embedder == EmbedderKind::Scratch {
            // A classifier: names only, and a probability threshold of at least one half, so
            // that an accepted person is always the most probable class ("other" included).
            if self.head.is_some()
                || self.masked.is_some()
                || self.people.iter().any(|p| !p.templates.is_empty())
            {
                return Err(Error::Gallery {
                    reason: "a from-scratch classifier carries no templates and no head".into(),
                });
            }
            if !(0.5..=1.0).contains(&self.threshold) {
                return Err(Error::Gallery {
                    reason: format!(
                        "a classifier threshold must be a probability of at least 0.5, not {}",
                        self.threshold
                    ),
                });
            }
            return Ok(());
        }
        if let Some(head) = &self.head {
            head.validate(self.people.len(), self.embedder.dim())?;
        }
        // A head picks the person; the threshold is still on the cosine to their templates.
        if !COSINE_THRESHOLDS.contains(&self.threshold) {
            return Err(Error::Gallery {
                reason: format!(
                    "a cosine threshold of {} is outside {:?}: below it a door lets strangers \
                     in, above it nobody; calibrate one with `facegate eval`",
                    self.threshold, COSINE_THRESHOLDS
                ),
            });
        }
        if let Some(m) = &self.masked {
            self.validate_masked(m)?;
        }
        for p in &self.people {
            check_name(&p.name)?;
            if p.templates.is_empty() {
                return Err(Error::Gallery {
                    reason: format!("{} has no templates", p.name),
                });
            }
            if let Some(t) = p.templates.iter().find(|t| t.len() != self.embedder.dim()) {
                return Err(Error::Gallery {
                    reason: format!(
                        "{} has a template of {} values; {} makes {}",
                        p.name,
                        t.len(),
                        self.embedder.as_str(),
                        self.embedder.dim()
                    ),
                });
            }
        }
        Ok(())
    }
}

impl Gallery {
    fn validate_masked(&self, m: &MaskedTemplates) -> Result<()> {
        let bad = |reason: String| Err(Error::Gallery { reason });
        if !m.offset.is_finite() || m.offset.abs() > MAX_MASKED_OFFSET {
            return bad(format!(
                "masked score offset {} is outside ±{MAX_MASKED_OFFSET}",
                m.offset
            ));
        }
        if m.templates.len() != self.people.len() {
            return bad(format!(
                "{} people but masked templates for {}",
                self.people.len(),
                m.templates.len()
            ));
        }
        let dim = m.embedder.dim();
        if dim == 0 || m.templates.iter().flatten().any(|t| t.len() != dim) {
            return bad(format!(
                "a masked template does not have the {dim} values {} makes",
                m.embedder.as_str()
            ));
        }
        Ok(())
    }
}

/// "1 person", "3 people": how many people a gallery, a bundle or a dataset holds, in words.
pub fn people_count(n: usize) -> String {
    if n == 1 {
        "1 person".to_owned()
    } else {
        format!("{n} people")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::l2_normalise;

    fn unit(dim: usize, hot: &[(usize, f32)]) -> Vec<f32> {
        let mut v = vec![0.0; dim];
        for &(i, x) in hot {
            v[i] = x;
        }
        l2_normalise(v)
    }

    #[test]
    fn more_templates_never_loosen_the_default_threshold() {
        // More templates per person can only bring strangers closer, so a gallery with masked
        // copies or mirror images must never default to a lower bar than one without them.
        use EmbedderKind::*;
        let ways = |masked_copies, mirrored| Enrolment {
            masked_copies,
            mirrored,
        };
        for kind in [EdgeFace, SFace, Fused, Scratch, SFaceMasked] {
            for quantised in [false, true] {
                for refined in [false, true] {
                    let t = |e| default_threshold(kind, quantised, refined, e);
                    let at = format!("{kind:?} {quantised} {refined}");
                    assert!(t(ways(true, false)) >= t(ways(false, false)), "{at}");
                    assert!(t(ways(false, true)) >= t(ways(false, false)), "{at}");
                    assert!(t(ways(true, true)) >= t(ways(true, false)), "{at}");
                    assert!(t(ways(true, true)) >= t(ways(false, true)), "{at}");
                }
            }
        }
    }

    #[test]
    fn below_threshold_is_a_stranger_even_if_someone_is_closest() {
        let mut g = Gallery::new(EmbedderKind::SFace, 0.5);
        g.enrol("ann", unit(128, &[(0, 1.0)])).expect("enrol");
        g.enrol("bob", unit(128, &[(1, 1.0)])).expect("enrol");
        let probe = unit(128, &[(0, 0.4), (2, 1.0)]);
        match g.identify(&probe) {
            Decision::Stranger { best: Some((0, s)) } => assert!(s < 0.5),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn best_template_wins() {
        let mut g = Gallery::new(EmbedderKind::SFace, 0.5);
        g.enrol("ann", unit(128, &[(0, 1.0)])).expect("enrol");
        g.enrol("ann", unit(128, &[(3, 1.0)])).expect("enrol");
        g.enrol("bob", unit(128, &[(1, 1.0)])).expect("enrol");
        assert_eq!(
            g.identify(&unit(128, &[(3, 1.0), (1, 0.2)])).person(),
            Some(0)
        );
    }

    #[test]
    fn the_head_picks_the_person_and_the_threshold_still_applies() {
        let mut g = Gallery::new(EmbedderKind::SFace, 0.5);
        g.enrol("ann", unit(128, &[(0, 1.0)])).expect("enrol");
        g.enrol("bob", unit(128, &[(0, 0.8), (1, 0.6)]))
            .expect("enrol");
        // Without a head, a probe between the two goes to ann (higher cosine).
        let probe = unit(128, &[(0, 0.95), (1, 0.2)]);
        assert_eq!(g.identify(&probe).person(), Some(0));
        // A head that learnt that dimension 1 means bob names bob.
        let mut weights = vec![0.0; 2 * 128];
        weights[128 + 1] = 40.0;
        g.head = Some(Head {
            dim: 128,
            weights,
            bias: vec![0.0, 0.0],
            min_prob: 0.6,
        });
        g.validate().expect("valid");
        assert_eq!(g.identify(&probe).person(), Some(1));
        // The head never lets in what the threshold refuses.
        let far = unit(128, &[(1, 0.3), (5, 1.0)]);
        assert!(matches!(g.identify(&far), Decision::Stranger { .. }));
        // An unsure head is a stranger even when a cosine clears the threshold.
        let unsure = unit(128, &[(0, 1.0)]);
        assert!(matches!(g.identify(&unsure), Decision::Stranger { .. }));
    }

    #[test]
    fn a_scratch_classifier_names_the_most_probable_enrolled_class_above_threshold() {
        let mut g = Gallery::new(EmbedderKind::Scratch, 0.8);
        for name in ["ann", "bob"] {
            g.people.push(Person {
                name: name.into(),
                templates: Vec::new(),
            });
        }
        g.validate().expect("valid");
        assert_eq!(g.identify(&[0.05, 0.9, 0.05]).person(), Some(1));
        // "other people" most likely, or unsure: a stranger.
        assert!(matches!(
            g.identify(&[0.1, 0.05, 0.85]),
            Decision::Stranger { .. }
        ));
        assert!(matches!(
            g.identify(&[0.6, 0.3, 0.1]),
            Decision::Stranger { .. }
        ));
        g.threshold = 0.3;
        assert!(
            g.validate().is_err(),
            "below one half another class may win"
        );
    }

    #[test]
    fn masked_faces_meet_the_masked_templates_shifted_by_the_offset() {
        let mut g = Gallery::new(EmbedderKind::EdgeFace, 0.5);
        g.enrol("ann", unit(512, &[(0, 1.0)])).expect("enrol");
        g.enrol("bob", unit(512, &[(1, 1.0)])).expect("enrol");
        // Without masked templates every face is scored on the main ones.
        assert_eq!(
            g.identify_face(&unit(512, &[(1, 1.0)]), true).person(),
            Some(1)
        );
        let sm = EmbedderKind::SFaceMasked;
        g.enrol_masked("ann", sm, 0.05, unit(128, &[(7, 1.0)]))
            .expect("masked");
        assert!(
            g.enrol_masked("cy", sm, 0.05, unit(128, &[(7, 1.0)]))
                .is_err()
        );
        assert!(
            g.enrol_masked("ann", sm, 0.05, unit(512, &[(7, 1.0)]))
                .is_err()
        );
        assert!(
            g.enrol_masked("ann", EmbedderKind::SFace, 0.05, unit(128, &[(7, 1.0)]))
                .is_err()
        );
        // Bob has no masked template yet: the list still covers everyone.
        g.validate().expect("valid");
        // Cosine 0.46 on the masked path clears 0.5 only through the offset.
        let probe = unit(128, &[(7, 0.46), (9, (1.0f32 - 0.46 * 0.46).sqrt())]);
        match g.identify_face(&probe, true) {
            Decision::Known { person: 0, score } => assert!((score - 0.51).abs() < 1e-4),
            d => panic!("{d:?}"),
        }
        g.masked.as_mut().expect("masked").offset = 0.0;
        assert!(matches!(
            g.identify_face(&probe, true),
            Decision::Stranger { best: Some((0, _)) }
        ));
        // A bare face never meets the masked templates.
        assert_eq!(
            g.identify_face(&unit(512, &[(0, 1.0)]), false).person(),
            Some(0)
        );
    }

    /// Two templates either side of the probe's direction: their mean's direction is the
    /// probe's (cosine 1), the best alone 0.6, so half of each 0.8; none, or templates that
    /// cancel out, score nothing; the best template is what format 5 bundles are scored by.
    #[test]
    fn masked_scoring_by_the_best_template_and_the_templates_mean() {
        let (c, s) = (0.6f32, 0.8f32);
        let sides = [unit(128, &[(0, c), (1, s)]), unit(128, &[(0, c), (1, -s)])];
        let probe = unit(128, &[(0, 1.0)]);
        assert!((MaskedScoring::BestAndMean.score(&sides, &probe) - 0.8).abs() < 1e-6);
        assert!((MaskedScoring::Best.score(&sides, &probe) - c).abs() < 1e-6);
        let cancel = [unit(128, &[(3, 1.0)]), unit(128, &[(3, -1.0)])];
        for scoring in [MaskedScoring::BestAndMean, MaskedScoring::Best] {
            assert_eq!(scoring.score(&[], &probe), f32::NEG_INFINITY);
        }
        assert_eq!(
            MaskedScoring::BestAndMean.score(&cancel, &probe),
            f32::NEG_INFINITY
        );
        // One template: both rules are its cosine.
        let one = [sides[0].clone()];
        assert_eq!(
            MaskedScoring::BestAndMean.score(&one, &probe),
            MaskedScoring::Best.score(&one, &probe)
        );
        // A gallery made today scores by the mean.
        let mut g = Gallery::new(EmbedderKind::EdgeFace, 0.5);
        g.enrol("ann", unit(512, &[(0, 1.0)])).expect("enrol");
        for t in sides {
            g.enrol_masked("ann", EmbedderKind::SFaceMasked, 0.0, t)
                .expect("masked");
        }
        assert_eq!(
            g.masked.as_ref().map(|m| m.scoring),
            Some(MaskedScoring::BestAndMean)
        );
        assert!((g.scores_for(&probe, true)[0] - 0.8).abs() < 1e-6);
        // `facegate inspect` tells an old bundle's rule from today's.
        assert!(MaskedScoring::Best.describe().contains("format 5"));
        assert!(MaskedScoring::BestAndMean.describe().contains("mean"));
    }

    #[test]
    fn wrong_dimension_is_refused() {
        let mut g = Gallery::new(EmbedderKind::EdgeFace, 0.5);
        assert!(g.enrol("ann", vec![1.0; 128]).is_err());
    }

    #[test]
    fn empty_gallery_never_accepts() {
        let g = Gallery::new(EmbedderKind::SFace, -1.0);
        assert_eq!(
            g.identify(&unit(128, &[(0, 1.0)])),
            Decision::Stranger { best: None }
        );
    }
}
