//! The trained classification head: a linear softmax layer over the frozen embedder's output.
//!
//! `facegate train` fits it on (augmented, partly masked) photos of the enrolled people, as a
//! transfer-learning classifier on top of the embedder. On its own a softmax classifier is
//! closed-set: it names *somebody* for every face. So the door never uses it alone: the head
//! picks *who*, and the gallery's cosine score for that person must still clear the threshold
//! calibrated on impostor faces ([`crate::gallery::Gallery::identify`]). The head only ever
//! makes the door stricter or more precise, never more permissive than its threshold.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Weights of a linear softmax head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// Input size (the embedding dimension).
    pub dim: usize,
    /// Row-major `classes x dim` weights; class `i` is the gallery's person `i`.
    pub weights: Vec<f32>,
    /// One bias per class.
    pub bias: Vec<f32>,
    /// The head's pick is accepted only with at least this probability.
    pub min_prob: f32,
}

impl Head {
    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.bias.len()
    }

    /// Softmax probabilities for one L2-normalised embedding.
    pub fn probabilities(&self, embedding: &[f32]) -> Vec<f32> {
        let logits: Vec<f32> = self
            .weights
            .chunks_exact(self.dim.max(1))
            .zip(&self.bias)
            .map(|(row, b)| row.iter().zip(embedding).map(|(w, x)| w * x).sum::<f32>() + b)
            .collect();
        softmax(&logits)
    }

    /// The most probable class and its probability.
    pub fn pick(&self, embedding: &[f32]) -> Option<(usize, f32)> {
        self.probabilities(embedding)
            .into_iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// Checks the shapes against a gallery of `classes` people and `dim`-value embeddings.
    pub fn validate(&self, classes: usize, dim: usize) -> Result<()> {
        let bad = |reason: String| Err(Error::Gallery { reason });
        if self.dim != dim {
            return bad(format!(
                "head takes {} values, embedder makes {dim}",
                self.dim
            ));
        }
        if self.classes() != classes || self.weights.len() != classes * dim {
            return bad(format!(
                "head has {} classes and {} weights for {classes} people of {dim} values",
                self.classes(),
                self.weights.len()
            ));
        }
        if !(0.0..=1.0).contains(&self.min_prob)
            || self
                .weights
                .iter()
                .chain(&self.bias)
                .any(|w| !w.is_finite())
        {
            return bad(
                "head holds a value that is not finite or a probability out of range".into(),
            );
        }
        Ok(())
    }
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_class_whose_row_matches() {
        let head = Head {
            dim: 3,
            weights: vec![5.0, 0.0, 0.0, 0.0, 5.0, 0.0],
            bias: vec![0.0, 0.0],
            min_prob: 0.5,
        };
        let (class, p) = head.pick(&[0.0, 1.0, 0.0]).expect("pick");
        assert_eq!(class, 1);
        assert!(p > 0.99);
        let probs = head.probabilities(&[1.0, 1.0, 0.0]);
        assert!((probs[0] - 0.5).abs() < 1e-6 && (probs.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn wrong_shapes_are_refused() {
        let head = Head {
            dim: 3,
            weights: vec![0.0; 6],
            bias: vec![0.0; 2],
            min_prob: 0.5,
        };
        assert!(head.validate(2, 3).is_ok());
        assert!(head.validate(3, 3).is_err());
        assert!(head.validate(2, 4).is_err());
        let nan = Head {
            bias: vec![f32::NAN, 0.0],
            ..head
        };
        assert!(nan.validate(2, 3).is_err());
    }
}
