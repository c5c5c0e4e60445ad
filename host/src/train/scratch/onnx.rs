//! Writes the from-scratch CNN as an ONNX graph that tract (on the door) runs: the same layers
//! as [`super::net`], ending in a Softmax so the door's "embedding" is the class probabilities.
//! Weights are then quantised to int8 by the same code as the pretrained embedders.

use anyhow::Result;
use facegate_models::onnx_build::{
    conv3x3_relu, dense_head, encode_model, float_initializer, int, ints, node, value_info,
};

use super::net::Net;

/// The ONNX bytes (fp32) of `net`: input `input` [1, 3, 112, 112], output `probabilities`
/// [1, classes].
pub fn export(net: &Net) -> Result<Vec<u8>> {
    let initializer = net
        .weights()?
        .into_iter()
        .map(|w| float_initializer(&w.name, &w.dims, &w.values))
        .collect();
    let pool = |input: &str, out: &str, op: &str| {
        node(
            op,
            &[input],
            out,
            vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
        )
    };
    let mut nodes = vec![pool("input", "pool0", "AveragePool")];
    let mut prev = "pool0".to_owned();
    for i in 1..=3 {
        let (conv, r) = conv3x3_relu(&prev, i);
        nodes.extend(conv);
        let p = format!("pool{i}");
        nodes.push(pool(&r, &p, "MaxPool"));
        prev = p;
    }
    nodes.extend(dense_head(&prev, "logits"));
    nodes.push(node(
        "Softmax",
        &["logits"],
        "probabilities",
        vec![int("axis", 1)],
    ));
    Ok(encode_model(
        "facegate_scratch_cnn",
        nodes,
        initializer,
        value_info("input", &[1, 3, 112, 112]),
        value_info("probabilities", &[1, net.classes() as i64]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{D, Device, Tensor};
    use tract_onnx::prelude::*;

    #[test]
    fn tract_runs_the_export_exactly_as_candle_does() {
        let dev = Device::Cpu;
        let net = Net::new(3, 7, &dev).expect("net");
        let bytes = export(&net).expect("export");
        let x: Vec<f32> = (0..3 * 112 * 112)
            .map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0)
            .collect();
        let want: Vec<f32> = candle_nn::ops::softmax(
            &net.forward(
                &Tensor::from_vec(x.clone(), (1, 3, 112, 112), &dev).expect("tensor"),
                None,
            )
            .expect("forward"),
            D::Minus1,
        )
        .expect("softmax")
        .flatten_all()
        .expect("flat")
        .to_vec1()
        .expect("vec");
        let plan = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .expect("tract loads the export");
        let input = tract_ndarray::Array4::from_shape_vec((1, 3, 112, 112), x)
            .expect("shape")
            .into_tensor();
        let out = plan.run(tvec![input.into()]).expect("run");
        let got: Vec<f32> = out[0]
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec()))
            .expect("f32");
        assert_eq!(got.len(), 3);
        for (a, b) in want.iter().zip(&got) {
            assert!((a - b).abs() < 1e-5, "candle {want:?} vs tract {got:?}");
        }
    }
}
