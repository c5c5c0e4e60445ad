//! Fitting the linear softmax head with candle: full-batch Adam on categorical cross-entropy,
//! early stopping on the validation loss, and the checkpoint with the best validation accuracy
//! kept (ties go to the lower loss). The problem is convex and starts from zero weights, so a
//! run is reproducible bit for bit on one machine.

use anyhow::{Result, bail};
use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::{Module, Optimizer, linear::Linear, loss};
use facegate_models::head::Head;
use serde::Serialize;

use super::fit;

/// Training settings.
#[derive(Clone, Copy, Debug)]
pub struct HeadConfig {
    /// Most epochs (full passes; one Adam step each).
    pub epochs: usize,
    /// Stop after this many epochs without a lower validation loss.
    pub patience: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// The head's `min_prob`.
    pub min_prob: f32,
}

/// What training did.
#[derive(Clone, Debug, Serialize)]
pub struct History {
    /// Every epoch run.
    pub epochs: Vec<fit::Epoch>,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
}

/// Embeddings (L2-normalised, `dim` values each) with class labels.
pub struct Examples {
    /// Row-major `n x dim`.
    pub x: Vec<f32>,
    /// Class per row.
    pub y: Vec<u32>,
}

impl Examples {
    /// Rows.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// Inputs are scaled by sqrt(dim) during training (unit variance per value, so Adam's steps
/// suit them) and the scale is folded into the stored weights.
fn scale(dim: usize) -> f32 {
    (dim as f32).sqrt()
}

fn tensors(ex: &Examples, dim: usize, dev: &Device) -> Result<(Tensor, Tensor)> {
    let s = scale(dim);
    let x: Vec<f32> = ex.x.iter().map(|v| v * s).collect();
    let x = Tensor::from_vec(x, (ex.len(), dim), dev)?;
    let y = Tensor::from_vec(ex.y.clone(), ex.len(), dev)?;
    Ok((x, y))
}

fn accuracy(logits: &Tensor, y: &Tensor) -> Result<f32> {
    let pred = logits.argmax(D::Minus1)?;
    let right = pred
        .eq(y)?
        .to_dtype(DType::F32)?
        .mean_all()?
        .to_scalar::<f32>()?;
    Ok(right)
}

/// Trains a head for `classes` classes on `train`, early-stopping on `val` (may be empty).
pub fn train(
    train: &Examples,
    val: &Examples,
    classes: usize,
    dim: usize,
    cfg: HeadConfig,
) -> Result<(Head, History)> {
    if train.is_empty() || classes < 2 {
        bail!(
            "training needs at least two people with photos (have {classes} people, {} examples)",
            train.len()
        );
    }
    let dev = Device::Cpu;
    let w = Var::zeros((classes, dim), DType::F32, &dev)?;
    let b = Var::zeros(classes, DType::F32, &dev)?;
    let model = Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
    let mut opt = fit::adamw(vec![w.clone(), b.clone()], cfg.lr, 0.0)?;
    let (xt, yt) = tensors(train, dim, &dev)?;
    let validation = if val.is_empty() {
        None
    } else {
        Some(tensors(val, dim, &dev)?)
    };
    let run = |epoch| {
        let logits = model.forward(&xt)?;
        let l = loss::cross_entropy(&logits, &yt)?;
        opt.backward_step(&l)?;
        let train_loss = l.to_scalar::<f32>()?;
        let (val_loss, val_accuracy) = match &validation {
            Some((xv, yv)) => {
                let logits = model.forward(xv)?;
                (
                    loss::cross_entropy(&logits, yv)?.to_scalar::<f32>()?,
                    accuracy(&logits, yv)?,
                )
            }
            None => (f32::NAN, f32::NAN),
        };
        Ok(fit::Epoch {
            epoch,
            train_loss,
            val_loss,
            val_accuracy,
        })
    };
    let checkpoint = || -> Result<(Vec<f32>, Vec<f32>)> {
        Ok((
            w.as_tensor().flatten_all()?.to_vec1()?,
            b.as_tensor().to_vec1()?,
        ))
    };
    let best = fit::keep_best(
        cfg.epochs,
        cfg.patience,
        validation.is_some(),
        run,
        checkpoint,
    )?;
    let (weights, bias) = best.kept;
    let s = scale(dim);
    let head = Head {
        dim,
        weights: weights.into_iter().map(|v| v * s).collect(),
        bias,
        min_prob: cfg.min_prob,
    };
    head.validate(classes, dim)?;
    Ok((
        head,
        History {
            epochs: best.epochs,
            best_epoch: best.best_epoch,
            stopped_early: best.stopped_early,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two clusters around two directions, with noise, in 16 dimensions.
    fn clusters(n: usize, seed: u32) -> Examples {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let class = (i % 2) as u32;
            let mut v: Vec<f32> = (0..16)
                .map(|d| {
                    let h = (i as u32 * 31 + d * 7 + seed).wrapping_mul(2_654_435_761);
                    (h >> 16) as f32 / 65536.0 - 0.5
                })
                .collect();
            v[class as usize] += 2.0;
            let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
            x.extend(v.iter().map(|a| a / norm));
            y.push(class);
        }
        Examples { x, y }
    }

    #[test]
    fn learns_separable_classes_and_keeps_the_best_epoch() {
        let cfg = HeadConfig {
            epochs: 300,
            patience: 20,
            lr: 0.05,
            min_prob: 0.5,
        };
        let (head, history) =
            train(&clusters(60, 1), &clusters(20, 99), 2, 16, cfg).expect("train");
        let best = &history.epochs[history.best_epoch - 1];
        assert_eq!(best.val_accuracy, 1.0, "{best:?}");
        let test = clusters(10, 5);
        for (row, class) in test.x.chunks(16).zip(&test.y) {
            assert_eq!(head.pick(row).map(|p| p.0 as u32), Some(*class));
        }
        // Deterministic.
        let (again, _) = train(&clusters(60, 1), &clusters(20, 99), 2, 16, cfg).expect("train");
        assert_eq!(head, again);
    }

    #[test]
    fn one_person_is_refused() {
        let ex = clusters(4, 1);
        let cfg = HeadConfig {
            epochs: 5,
            patience: 2,
            lr: 0.1,
            min_prob: 0.5,
        };
        assert!(train(&ex, &ex, 1, 16, cfg).is_err());
    }
}
