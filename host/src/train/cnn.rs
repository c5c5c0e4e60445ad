//! The candle side of the small CNNs facegate trains (the landmark refiner, the liveness
//! network): weights created in the order and shapes of their [`SmallCnn`] description, a
//! forward pass that computes what the exported ONNX graph computes, and the weights handed
//! back for the export. One implementation for both, so a fix reaches both.

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Conv2d, Conv2dConfig, Linear, Module};
use facegate_models::onnx_build::SmallCnn;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// A small CNN being trained.
pub struct Cnn {
    spec: SmallCnn,
    /// The weights, in [`SmallCnn::weight_shapes`] order (for the optimiser).
    pub vars: Vec<Var>,
}

impl Cnn {
    /// Kaiming-uniform weights from `seed`, zero biases; the output layer's weights scaled by
    /// `out_gain` (the refiner starts near its template with 0.1).
    pub fn new(spec: SmallCnn, seed: u64, out_gain: f32, dev: &Device) -> Result<Self> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut vars = Vec::new();
        for (name, dims) in spec.weight_shapes() {
            let v = if name.ends_with("bias") {
                Var::zeros(dims[0], DType::F32, dev)?
            } else {
                let fan_in: usize = dims[1..].iter().product();
                let gain = if name == "fc2.weight" { out_gain } else { 1.0 };
                let bound = gain * (6.0 / fan_in as f32).sqrt();
                let n: usize = dims.iter().product();
                let w: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
                Var::from_tensor(&Tensor::from_vec(w, dims, dev)?)?
            };
            vars.push(v);
        }
        Ok(Self { spec, vars })
    }

    fn t(&self, i: usize) -> Tensor {
        self.vars[i].as_tensor().clone()
    }

    /// Outputs `[n, outputs]` for a batch `[n, C, H, W]`, as the exported graph computes them.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let cfg = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let mut x = x.clone();
        let convs = self.spec.channels.len();
        for i in 0..convs {
            x = Conv2d::new(self.t(2 * i), Some(self.t(2 * i + 1)), cfg)
                .forward(&x)?
                .relu()?;
            if i < self.spec.pools {
                x = x.max_pool2d(2)?;
            }
        }
        let n = 2 * convs;
        let x = Linear::new(self.t(n), Some(self.t(n + 1)))
            .forward(&x.flatten_from(1)?)?
            .relu()?;
        Ok(Linear::new(self.t(n + 2), Some(self.t(n + 3))).forward(&x)?)
    }

    /// The weights as flat vectors, for [`SmallCnn::graph`].
    pub fn weights(&self) -> Result<Vec<Vec<f32>>> {
        self.vars
            .iter()
            .map(|v| Ok(v.as_tensor().flatten_all()?.to_vec1::<f32>()?))
            .collect()
    }
}

/// Binary cross-entropy on logits `z` `[n, 1]` against 0/1 answers `y`, the answers 1
/// weighted by `positive_weight` (to balance a rare class), averaged.
pub fn bce(z: &Tensor, y: &Tensor, positive_weight: f64) -> Result<Tensor> {
    // max(z, 0) - z y + log(1 + exp(-|z|)): stable for any z.
    let per = ((z.relu()? - (z * y)?)? + ((z.abs()?.neg()?.exp()? + 1.0)?.log()?))?;
    let w = ((y * (positive_weight - 1.0))? + 1.0)?;
    Ok(((per * &w)?.sum_all()? / w.sum_all()?.to_scalar::<f32>()? as f64)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use facegate_models::small_cnn::Runner;

    /// Every small CNN the project trains: what candle computes is what tract computes from
    /// the exported graph (the door runs the latter).
    #[test]
    fn tract_runs_each_export_as_candle_trains_it() {
        let dev = Device::Cpu;
        for (spec, gain) in [
            (facegate_models::refine::NET, 0.1),
            (facegate_models::liveness::NET, 1.0),
            (facegate_models::maskstate::NET, 1.0),
        ] {
            let net = Cnn::new(spec, 3, gain, &dev).expect("net");
            let bytes = spec.graph(&net.weights().expect("weights")).expect("graph");
            let n: usize = spec.input.iter().product();
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0)
                .collect();
            let [c, h, w] = spec.input;
            let want = net
                .forward(&Tensor::from_vec(x.clone(), (1, c, h, w), &dev).expect("tensor"))
                .expect("forward")
                .flatten_all()
                .expect("flat")
                .to_vec1::<f32>()
                .expect("vec");
            let got = Runner::from_bytes(spec, spec.name, &bytes)
                .expect("tract loads the export")
                .run(x)
                .expect("run");
            assert_eq!(got.len(), spec.outputs, "{}", spec.name);
            for (a, b) in want.iter().zip(&got) {
                assert!(
                    (a - b).abs() < 1e-4,
                    "{}: candle {want:?} vs tract {got:?}",
                    spec.name
                );
            }
        }
    }
}
