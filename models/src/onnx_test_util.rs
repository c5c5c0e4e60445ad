//! Helpers for tests that build small ONNX graphs by hand (quantisation, rewrites).

use prost::Message;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

pub use crate::onnx_build::value_info;

/// Runs an encoded model on one f32 input of `shape`, returning the first output. Stored
/// shape annotations are ignored (real exported models carry some tract rejects): the input's
/// shape is the one given.
pub fn run_bytes(bytes: &[u8], shape: &[usize], x: &[f32]) -> Vec<f32> {
    let plan = crate::ops::onnx()
        .with_ignore_value_info(true)
        .model_for_read(&mut &bytes[..])
        .and_then(|m| m.with_input_fact(0, f32::fact(shape).into()))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .expect("plan");
    let input = Tensor::from_shape(shape, x).expect("tensor");
    let out = plan.run(tvec![input.into()]).expect("run");
    out[0]
        .try_as_plain_ram()
        .and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec()))
        .expect("f32")
}

/// [`run_bytes`] on a model.
pub fn run_model(model: &ModelProto, shape: &[usize], x: &[f32]) -> Vec<f32> {
    run_bytes(&model.encode_to_vec(), shape, x)
}
