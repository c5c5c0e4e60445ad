//! Helpers for tests that build small ONNX graphs by hand (quantisation, rewrites).

use prost::Message;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{ModelProto, TypeProto, ValueInfoProto, tensor_shape_proto, type_proto};
use tract_onnx::prelude::*;

/// A float tensor input or output of fixed shape.
pub fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(tract_onnx::pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| tensor_shape_proto::Dimension {
                            value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Runs an encoded model on one f32 input of `shape`, returning the first output.
pub fn run_bytes(bytes: &[u8], shape: &[usize], x: &[f32]) -> Vec<f32> {
    let plan = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
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
