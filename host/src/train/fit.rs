//! The training loops every trainer here shares, so that shuffling, stepping, loss bookkeeping,
//! early stopping and "keep the best epoch" are written once and a fix reaches every model:
//!
//! * [`epoch`]: one shuffled pass of mini-batches (the small CNNs, the adapted SFace layer and
//!   the from-scratch CNN all step through it);
//! * [`minibatches`]: whole runs of [`epoch`]s on a [`Schedule`] (the small CNNs);
//! * [`keep_best`]: epochs with validation, early stopping on the validation loss and the
//!   checkpoint with the best validation accuracy kept (the head and the from-scratch CNN).

use anyhow::{Context, Result};
use candle_core::{Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use indicatif::ProgressBar;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use serde::Serialize;

/// AdamW with `weight_decay`; the head, the adapted layer and the from-scratch CNN use 0 (they
/// regularise by early stopping, dropout or by starting from pretrained weights instead).
pub fn adamw(vars: Vec<Var>, lr: f64, weight_decay: f64) -> candle_core::Result<AdamW> {
    AdamW::new(
        vars,
        ParamsAdamW {
            lr,
            weight_decay,
            ..Default::default()
        },
    )
}

/// One pass over `order` (shuffled in place with `rng` first) in batches of `batch`: for each
/// batch `loss` (given its items and the same `rng`, for augmentation or dropout) returns the
/// loss to step on. Returns the mean loss per item; each batch ticks `pb` once.
pub fn epoch(
    opt: &mut AdamW,
    order: &mut [usize],
    batch: usize,
    rng: &mut Xoshiro256PlusPlus,
    pb: &ProgressBar,
    mut loss: impl FnMut(&[usize], &mut Xoshiro256PlusPlus) -> Result<Tensor>,
) -> Result<f32> {
    order.shuffle(rng);
    let mut total = 0.0f64;
    for chunk in order.chunks(batch.max(1)) {
        let l = loss(chunk, rng)?;
        opt.backward_step(&l)?;
        total += f64::from(l.to_scalar::<f32>()?) * chunk.len() as f64;
        pb.inc(1);
    }
    Ok((total / order.len().max(1) as f64) as f32)
}

/// How a small CNN is trained: AdamW, shuffled mini-batches, optionally a third of the
/// learning rate for the last third of the epochs.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Passes over the training items.
    pub epochs: usize,
    /// Items per step.
    pub batch: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Divide the learning rate by 3 for the last third of the epochs.
    pub anneal: bool,
}

/// Trains `vars` on `items` for the whole `schedule`, one [`epoch`] at a time (the order
/// reshuffled each epoch). Returns the mean loss of each epoch; `what` labels the progress.
pub fn minibatches(
    vars: &[Var],
    schedule: &Schedule,
    items: &[usize],
    rng: &mut Xoshiro256PlusPlus,
    what: &str,
    mut loss: impl FnMut(&[usize], &mut Xoshiro256PlusPlus) -> Result<Tensor>,
) -> Result<Vec<f32>> {
    let mut opt = adamw(vars.to_vec(), schedule.lr, schedule.weight_decay)?;
    let mut order = items.to_vec();
    let pb = crate::progress::bar(
        (schedule.epochs * order.len().div_ceil(schedule.batch.max(1))) as u64,
        what,
        "batches",
    );
    let mut losses = Vec::with_capacity(schedule.epochs);
    for e in 0..schedule.epochs {
        if schedule.anneal && e == schedule.epochs * 2 / 3 {
            opt.set_learning_rate(schedule.lr / 3.0);
        }
        losses.push(epoch(
            &mut opt,
            &mut order,
            schedule.batch,
            rng,
            &pb,
            &mut loss,
        )?);
    }
    pb.finish_and_clear();
    Ok(losses)
}

/// One epoch's numbers.
#[derive(Clone, Debug, Serialize)]
pub struct Epoch {
    /// 1-based.
    pub epoch: usize,
    /// Training loss.
    pub train_loss: f32,
    /// Validation loss (NaN without a validation set).
    pub val_loss: f32,
    /// Validation accuracy (NaN without a validation set).
    pub val_accuracy: f32,
}

/// What [`keep_best`] did, with what it kept.
pub struct Best<S> {
    /// Every epoch run.
    pub epochs: Vec<Epoch>,
    /// The epoch whose checkpoint was kept.
    pub best_epoch: usize,
    /// Its checkpoint.
    pub kept: S,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
}

/// Early stopping on validation loss: stop after `patience` epochs in a row without a new
/// lowest loss.
pub struct EarlyStop {
    patience: usize,
    best: f32,
    since: usize,
}

impl EarlyStop {
    /// A rule that tolerates `patience` epochs without improvement.
    pub fn new(patience: usize) -> Self {
        Self {
            patience,
            best: f32::INFINITY,
            since: 0,
        }
    }

    /// Records one epoch's validation loss; true when training should stop.
    pub fn should_stop(&mut self, val_loss: f32) -> bool {
        if val_loss < self.best {
            self.best = val_loss;
            self.since = 0;
            false
        } else {
            self.since += 1;
            self.since >= self.patience
        }
    }
}

/// Runs up to `epochs` epochs (`run` trains one and scores it, given its 1-based number),
/// keeping with `checkpoint` the weights of the epoch with the best validation accuracy (ties
/// to the lower validation loss). With `validated` false (no validation set) the lowest
/// training loss counts instead and the run never stops early; otherwise it stops after
/// `patience` epochs without a lower validation loss.
pub fn keep_best<S>(
    epochs: usize,
    patience: usize,
    validated: bool,
    mut run: impl FnMut(usize) -> Result<Epoch>,
    mut checkpoint: impl FnMut() -> Result<S>,
) -> Result<Best<S>> {
    let mut history: Vec<Epoch> = Vec::new();
    let mut best: Option<(f32, f32, usize, S)> = None;
    let mut stop = EarlyStop::new(patience);
    let mut stopped_early = false;
    for n in 1..=epochs {
        let e = run(n)?;
        let (acc, loss) = if validated {
            (e.val_accuracy, e.val_loss)
        } else {
            (0.0, e.train_loss)
        };
        let better = best
            .as_ref()
            .is_none_or(|(a, l, ..)| acc > *a || (acc == *a && loss < *l));
        if better {
            best = Some((acc, loss, n, checkpoint()?));
        }
        let val_loss = e.val_loss;
        history.push(e);
        if validated && stop.should_stop(val_loss) {
            stopped_early = true;
            break;
        }
    }
    let (_, _, best_epoch, kept) = best.context("no epoch was run (--epochs 0?)")?;
    Ok(Best {
        epochs: history,
        best_epoch,
        kept,
        stopped_early,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_stop_counts_epochs_since_the_lowest_loss() {
        let mut stop = EarlyStop::new(2);
        assert!(!stop.should_stop(1.0));
        assert!(!stop.should_stop(1.1)); // one epoch without a new low
        assert!(!stop.should_stop(0.9)); // new low: the count restarts
        assert!(!stop.should_stop(0.9)); // equal is not lower
        assert!(stop.should_stop(1.0));
    }

    fn scored(epoch: usize, val_loss: f32, val_accuracy: f32) -> Epoch {
        Epoch {
            epoch,
            train_loss: 1.0 / epoch as f32,
            val_loss,
            val_accuracy,
        }
    }

    /// The best accuracy wins, a tie goes to the lower loss, and the run stops `patience`
    /// epochs after the lowest validation loss.
    #[test]
    fn keeps_the_most_accurate_epoch_and_stops_on_patience() {
        let script = [(0.9, 0.5), (0.7, 0.8), (0.6, 0.8), (0.65, 0.7), (0.8, 0.7)];
        let mut seen = 0;
        let best = keep_best(
            10,
            2,
            true,
            |n| {
                let (l, a) = script[n - 1];
                Ok(scored(n, l, a))
            },
            || {
                seen += 1;
                Ok(seen)
            },
        )
        .expect("runs");
        assert_eq!(best.best_epoch, 3, "0.8 at the lower loss 0.6");
        assert_eq!(best.epochs.len(), 5);
        assert!(best.stopped_early);
        assert_eq!(best.kept, 3, "checkpoints taken at epochs 1, 2, 3");
    }

    #[test]
    fn without_validation_the_lowest_training_loss_wins_and_all_epochs_run() {
        let best = keep_best(
            6,
            1,
            false,
            |n| Ok(scored(n, f32::NAN, f32::NAN)),
            || Ok(()),
        )
        .expect("runs");
        assert_eq!((best.best_epoch, best.epochs.len()), (6, 6));
        assert!(!best.stopped_early);
        assert!(keep_best(0, 1, true, |n| Ok(scored(n, 0.0, 0.0)), || Ok(())).is_err());
    }
}
