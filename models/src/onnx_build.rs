//! Pieces for writing ONNX graphs: the host's from-scratch CNN export and the tests' hand-built
//! graphs describe their inputs and outputs the same way.

use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{TypeProto, ValueInfoProto, tensor_shape_proto, type_proto};

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
