//! Pieces for writing ONNX graphs: the host's from-scratch CNN export, the landmark refiner and
//! the tests' hand-built graphs describe their nodes, weights, inputs and outputs the same way.

use prost::Message;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TypeProto,
    ValueInfoProto, tensor_shape_proto, type_proto,
};

/// An integer-list attribute (`kernel_shape`, `pads`, `strides`).
pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// An integer attribute (`axis`, `transB`).
pub fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

/// A node with one output, named after that output.
pub fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        name: output.into(),
        op_type: op.into(),
        attribute,
        ..Default::default()
    }
}

/// A float weight tensor.
pub fn float_initializer(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

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

/// Layer `i` of a small CNN: a padded 3x3 `Conv` of `input` (weights `conv{i}.weight`,
/// `conv{i}.bias`) and its `Relu`; returns the nodes and the name of the Relu's output.
pub fn conv3x3_relu(input: &str, i: usize) -> (Vec<NodeProto>, String) {
    let (w, b) = (format!("conv{i}.weight"), format!("conv{i}.bias"));
    let (c, r) = (format!("conv{i}"), format!("relu{i}"));
    let nodes = vec![
        node(
            "Conv",
            &[input, &w, &b],
            &c,
            vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])],
        ),
        node("Relu", &[&c], &r, vec![]),
    ];
    (nodes, r)
}

/// `Flatten` of `input`, then `fc1` (+ `Relu`) and `fc2` into `output`: the dense end of the
/// small CNNs facegate trains (weights `fc1.weight`, `fc1.bias`, `fc2.weight`, `fc2.bias`,
/// stored `outputs x inputs`).
pub fn dense_head(input: &str, output: &str) -> Vec<NodeProto> {
    vec![
        node("Flatten", &[input], "flat", vec![int("axis", 1)]),
        node(
            "Gemm",
            &["flat", "fc1.weight", "fc1.bias"],
            "fc1",
            vec![int("transB", 1)],
        ),
        node("Relu", &["fc1"], "hidden", vec![]),
        node(
            "Gemm",
            &["hidden", "fc2.weight", "fc2.bias"],
            output,
            vec![int("transB", 1)],
        ),
    ]
}

/// The encoded model (ONNX IR 7, opset 13) of one graph.
pub fn encode_model(
    name: &str,
    node: Vec<NodeProto>,
    initializer: Vec<TensorProto>,
    input: ValueInfoProto,
    output: ValueInfoProto,
) -> Vec<u8> {
    ModelProto {
        ir_version: 7,
        producer_name: "facegate".into(),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(GraphProto {
            name: name.into(),
            node,
            initializer,
            input: vec![input],
            output: vec![output],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}
