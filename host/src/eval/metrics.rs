//! Open-set metrics: thresholds at a target false-accept rate, true-accept rate, rank-1.
//!
//! Conventions (stated in the report too): a probe is accepted when its best score is >= the
//! threshold. The threshold for a FAR target f is the lowest that lets at most floor(f * N) of
//! the N impostors in. A genuine probe counts as a true accept only if it is accepted AND the
//! best person is the right one; a genuine probe with no detected face counts as a reject. An
//! impostor with no detected face cannot be accepted and is left out of N.

use serde::Serialize;

/// A probe's best match: (person index, score); `None` when no face was found.
pub type BestMatch = Option<(usize, f32)>;

/// The smallest threshold that admits at most floor(far * n) impostor scores.
pub fn threshold_at_far(impostor_scores: &[f32], far: f64) -> f32 {
    let mut s: Vec<f32> = impostor_scores
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    if s.is_empty() {
        return f32::NEG_INFINITY;
    }
    s.sort_by(|a, b| b.total_cmp(a));
    let k = (far * s.len() as f64).floor() as usize;
    if k >= s.len() {
        return f32::NEG_INFINITY;
    }
    // Reject scores[k] (and everything below) by sitting just above it.
    s[k].next_up()
}

/// Operating point at one FAR target.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OperatingPoint {
    /// The target FAR.
    pub far_target: f64,
    /// Threshold chosen.
    pub threshold: f32,
    /// FAR actually reached on the impostors.
    pub far: f64,
    /// Genuine probes accepted as the right person / all genuine probes.
    pub tar: f64,
    /// Genuine probes accepted as the wrong person (counts).
    pub misidentified: usize,
}

/// Computes the operating point for `far_target`.
pub fn operating_point(
    genuine: &[(usize, BestMatch)],
    impostor: &[f32],
    far_target: f64,
) -> OperatingPoint {
    let threshold = threshold_at_far(impostor, far_target);
    let fixed = at_threshold(genuine, impostor, threshold);
    OperatingPoint {
        far_target,
        threshold,
        far: fixed.far,
        tar: fixed.tar,
        misidentified: fixed.misidentified,
    }
}

/// What a fixed threshold gives on this data.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FixedPoint {
    /// The threshold.
    pub threshold: f32,
    /// Impostors accepted / impostors scored.
    pub far: f64,
    /// Impostors accepted (counts).
    pub accepted_impostors: usize,
    /// Genuine probes accepted as the right person / all genuine probes.
    pub tar: f64,
    /// Genuine probes accepted as the wrong person (counts).
    pub misidentified: usize,
}

/// Accepts every score at or above `threshold` (a negative-infinity threshold is a closed-set
/// classifier: everyone gets a name).
pub fn at_threshold(
    genuine: &[(usize, BestMatch)],
    impostor: &[f32],
    threshold: f32,
) -> FixedPoint {
    let accepted_impostors = impostor.iter().filter(|&&s| s >= threshold).count();
    let mut correct = 0;
    let mut wrong = 0;
    for (truth, best) in genuine {
        if let Some((who, score)) = best
            && *score >= threshold
        {
            if who == truth {
                correct += 1
            } else {
                wrong += 1
            }
        }
    }
    FixedPoint {
        threshold,
        far: ratio(accepted_impostors, impostor.len()),
        accepted_impostors,
        tar: ratio(correct, genuine.len()),
        misidentified: wrong,
    }
}

/// Fraction of genuine probes whose best person is right (no threshold).
pub fn rank1(genuine: &[(usize, BestMatch)]) -> f64 {
    ratio(
        genuine
            .iter()
            .filter(|(t, b)| b.is_some_and(|(w, _)| w == *t))
            .count(),
        genuine.len(),
    )
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn threshold_admits_exactly_the_allowed_count() {
        let imp: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        let t = threshold_at_far(&imp, 1e-2);
        assert_eq!(imp.iter().filter(|&&s| s >= t).count(), 10);
        let t = threshold_at_far(&imp, 1e-4);
        assert_eq!(imp.iter().filter(|&&s| s >= t).count(), 0);
    }

    #[test]
    fn ties_at_the_boundary_are_rejected() {
        let imp = vec![0.5; 100];
        let t = threshold_at_far(&imp, 0.05);
        assert_eq!(imp.iter().filter(|&&s| s >= t).count(), 0);
    }

    #[test]
    fn a_closed_set_classifier_accepts_every_impostor() {
        let genuine = vec![(0, Some((0, 0.9))), (1, Some((0, 0.2))), (1, None)];
        let imp = [0.1, -0.3, 0.5];
        let closed = at_threshold(&genuine, &imp, f32::NEG_INFINITY);
        assert_eq!(closed.far, 1.0);
        assert_eq!(closed.accepted_impostors, 3);
        assert_eq!(closed.misidentified, 1);
        let opencv = at_threshold(&genuine, &imp, 0.363);
        assert_eq!(opencv.accepted_impostors, 1);
        assert!((opencv.tar - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn wrong_person_above_threshold_is_not_a_true_accept() {
        let genuine = vec![(0, Some((1, 0.9))), (0, Some((0, 0.9))), (1, None)];
        let p = operating_point(&genuine, &[0.1, 0.2], 1e-3);
        assert!((p.tar - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(p.misidentified, 1);
    }

    proptest! {
        #[test]
        fn far_never_exceeds_target(scores in prop::collection::vec(-1f32..1.0, 1..500), far in 0.0f64..0.5) {
            let t = threshold_at_far(&scores, far);
            let n = scores.iter().filter(|&&s| s >= t).count();
            prop_assert!(n as f64 <= far * scores.len() as f64 + 1e-9);
        }
    }
}
