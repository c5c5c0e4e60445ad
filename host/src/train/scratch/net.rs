//! The from-scratch CNN, as the original design had it: a Conv2D + MaxPool stack, Flatten,
//! Dense, Dropout 0.2, and a softmax over the enrolled people plus one "other people" class.
//!
//! ```text
//! 3x112x112 aligned crop -> AvgPool 2 (56) -> [Conv 3x3 + ReLU + MaxPool 2] x3 (16, 32, 64
//! channels: 28, 14, 7) -> Flatten 3136 -> Dense 128 + ReLU -> Dropout 0.2 -> Dense K+1
//! ```
//!
//! The input is the door's own 112x112 crop with EdgeFace's normalisation, so the door feeds it
//! exactly like an embedder; the first average pool halves it (a from-scratch net on a few
//! hundred photos gains nothing from the full resolution and trains four times faster). Weights
//! start from a seeded Kaiming-uniform draw and dropout uses seeded masks, so a run is
//! reproducible.

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Conv2d, Conv2dConfig, Linear, Module};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// Channels of the three convolutions.
pub const CHANNELS: [usize; 3] = [16, 32, 64];
/// Width of the hidden dense layer.
pub const HIDDEN: usize = 128;
/// Dropout rate before the output layer.
pub const DROPOUT: f32 = 0.2;
/// Values after the last pool (64 x 7 x 7).
pub const FLAT: usize = 64 * 7 * 7;

/// One exported weight tensor.
pub struct Weight {
    /// ONNX initializer name.
    pub name: String,
    /// Shape.
    pub dims: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

/// Named weight tensors, in a fixed order (export and checkpoints rely on it).
pub struct Net {
    /// (name, variable) pairs: conv{1,2,3}.{weight,bias}, fc{1,2}.{weight,bias}.
    pub vars: Vec<(String, Var)>,
    classes: usize,
}

fn uniform(rng: &mut Xoshiro256PlusPlus, n: usize, bound: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
}

impl Net {
    /// A freshly initialised net for `classes` outputs.
    pub fn new(classes: usize, seed: u64, dev: &Device) -> Result<Self> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut vars = Vec::new();
        let mut cin = 3;
        for (i, &cout) in CHANNELS.iter().enumerate() {
            let fan_in = cin * 9;
            let bound = (6.0 / fan_in as f32).sqrt();
            let w = uniform(&mut rng, cout * fan_in, bound);
            vars.push((
                format!("conv{}.weight", i + 1),
                Var::from_tensor(&Tensor::from_vec(w, (cout, cin, 3, 3), dev)?)?,
            ));
            vars.push((
                format!("conv{}.bias", i + 1),
                Var::zeros(cout, DType::F32, dev)?,
            ));
            cin = cout;
        }
        for (name, fan_in, out) in [("fc1", FLAT, HIDDEN), ("fc2", HIDDEN, classes)] {
            let bound = (6.0 / fan_in as f32).sqrt();
            let w = uniform(&mut rng, out * fan_in, bound);
            vars.push((
                format!("{name}.weight"),
                Var::from_tensor(&Tensor::from_vec(w, (out, fan_in), dev)?)?,
            ));
            vars.push((format!("{name}.bias"), Var::zeros(out, DType::F32, dev)?));
        }
        Ok(Self { vars, classes })
    }

    /// Output classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    fn t(&self, i: usize) -> Tensor {
        self.vars[i].1.as_tensor().clone()
    }

    /// Logits for a batch `[n, 3, 112, 112]`. `dropout` is `Some(rng)` while training.
    pub fn forward(&self, x: &Tensor, dropout: Option<&mut Xoshiro256PlusPlus>) -> Result<Tensor> {
        let cfg = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let mut x = x.avg_pool2d(2)?;
        for i in 0..3 {
            let conv = Conv2d::new(self.t(2 * i), Some(self.t(2 * i + 1)), cfg);
            x = conv.forward(&x)?.relu()?.max_pool2d(2)?;
        }
        let x = x.flatten_from(1)?;
        let x = Linear::new(self.t(6), Some(self.t(7)))
            .forward(&x)?
            .relu()?;
        let x = match dropout {
            Some(rng) => {
                let keep = 1.0 - DROPOUT;
                let mask: Vec<f32> = (0..x.elem_count())
                    .map(|_| {
                        if rng.random_range(0.0f32..1.0) < keep {
                            1.0 / keep
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let mask = Tensor::from_vec(mask, x.shape(), x.device())?;
                (x * mask)?
            }
            None => x,
        };
        Ok(Linear::new(self.t(8), Some(self.t(9))).forward(&x)?)
    }

    /// A copy of every weight (a checkpoint).
    pub fn snapshot(&self) -> Result<Vec<Vec<f32>>> {
        self.vars
            .iter()
            .map(|(_, v)| Ok(v.as_tensor().flatten_all()?.to_vec1::<f32>()?))
            .collect()
    }

    /// Restores a checkpoint from [`Net::snapshot`].
    pub fn restore(&self, snap: &[Vec<f32>]) -> Result<()> {
        for ((_, v), values) in self.vars.iter().zip(snap) {
            let t = Tensor::from_vec(
                values.clone(),
                v.as_tensor().shape(),
                v.as_tensor().device(),
            )?;
            v.set(&t)?;
        }
        Ok(())
    }

    /// Every weight, for export.
    pub fn weights(&self) -> Result<Vec<Weight>> {
        self.vars
            .iter()
            .map(|(n, v)| {
                let t = v.as_tensor();
                Ok(Weight {
                    name: n.clone(),
                    dims: t.dims().to_vec(),
                    values: t.flatten_all()?.to_vec1::<f32>()?,
                })
            })
            .collect()
    }
}
