//! Weight-only int8 quantisation of an ONNX model, done in Rust on the host.
//!
//! Every large float weight feeding a Conv, ConvTranspose, Gemm or MatMul is replaced by int8
//! values, one f32 scale per output channel (symmetric) and two nodes, `Cast` to float and `Mul`
//! by the scale, that restore the original tensor name, so the rest of the graph is untouched.
//! (Per-axis `DequantizeLinear` would need opset 13, and bumping the opset of these opset-11
//! graphs changes the meaning of their Squeeze, Split and Softmax nodes; Cast and Mul are valid
//! in every opset, so the file still loads in onnxruntime for side-by-side checks.) The file
//! shrinks about 4x (EdgeFace-S: 15 MB -> 4 MB), which is what crosses the network in a model
//! update and what the Pi's SD card holds. tract folds the dequantisation into the weights at
//! load time, so compute stays f32 and accuracy loss is limited to weight rounding.
//!
//! Why not int8 compute? On this kind of machine tract ran onnxruntime's QDQ int8 graph about 2x
//! slower and with an accuracy loss (see shared/README.md), and its fast int8 kernels need the
//! ARMv8.2 dot-product extension that the Pi 4 lacks.
//!
//! The output is deterministic (same input bytes -> same output bytes), so it is pinned by
//! SHA-256 like the downloaded files.

use std::collections::HashMap;

use prost::Message;
use serde::Serialize;
use tract_onnx::pb::{
    AttributeProto, ModelProto, NodeProto, TensorProto, attribute_proto::AttributeType,
    tensor_proto::DataType,
};

use crate::{Error, Result};

/// Weights smaller than this stay f32: biases and norms are tiny and sensitive.
const MIN_ELEMENTS: usize = 512;

/// Marks "the tensor's last axis" before its rank is known.
const LAST_AXIS: usize = usize::MAX;

/// What quantisation did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QuantiseReport {
    /// Weight tensors turned into int8.
    pub tensors: usize,
    /// Values in those tensors.
    pub values: usize,
    /// Size of the input file.
    pub bytes_before: usize,
    /// Size of the output file.
    pub bytes_after: usize,
    /// Largest absolute rounding error, relative to the channel's largest weight.
    pub worst_relative_error: f32,
}

fn bad(reason: impl Into<String>) -> Error {
    Error::OnnxRewrite {
        reason: reason.into(),
    }
}

/// Quantises the weights of an ONNX model given as bytes; returns the new file's bytes.
pub fn quantise_weights(onnx: &[u8]) -> Result<(Vec<u8>, QuantiseReport)> {
    let mut model =
        ModelProto::decode(onnx).map_err(|e| bad(format!("not an ONNX model file: {e}")))?;
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| bad("the model has no graph"))?;
    let axes = weight_axes(&graph.node);
    let mut report = QuantiseReport {
        bytes_before: onnx.len(),
        ..Default::default()
    };
    let mut dq_nodes = Vec::new();
    let mut kept = Vec::with_capacity(graph.initializer.len());
    let mut replaced = Vec::new();
    for init in std::mem::take(&mut graph.initializer) {
        let Some(&Some(axis)) = axes.get(init.name.as_str()) else {
            kept.push(init);
            continue;
        };
        // MatMul's B is [.., K, N]: its channels are the last axis.
        let axis = if axis == LAST_AXIS {
            init.dims.len().saturating_sub(1)
        } else {
            axis
        };
        let values = float_values(&init)?;
        if init.data_type != DataType::Float as i32
            || values.len() < MIN_ELEMENTS
            || axis >= init.dims.len()
        {
            kept.push(init);
            continue;
        }
        let (q, scales, err) = quantise_per_channel(&values, &init.dims, axis);
        report.tensors += 1;
        report.values += values.len();
        report.worst_relative_error = report.worst_relative_error.max(err);
        let name = init.name.clone();
        let (tensors, nodes) = dequantised(&name, &init.dims, axis, &q, &scales);
        kept.extend(tensors);
        dq_nodes.extend(nodes);
        replaced.push(name);
    }
    graph.initializer = kept;
    // Old exporters also list initializers as graph inputs; the new value comes from a node.
    graph.input.retain(|i| !replaced.contains(&i.name));
    dq_nodes.append(&mut graph.node);
    graph.node = dq_nodes;
    let out = model.encode_to_vec();
    report.bytes_after = out.len();
    Ok((out, report))
}

/// The int8 tensor `{name}__int8` and per-channel scales `{name}__scale` that replace the
/// f32 initializer `name`, and the Cast and Mul nodes that turn them back into `name`.
fn dequantised(
    name: &str,
    dims: &[i64],
    axis: usize,
    q: &[i8],
    scales: &[f32],
) -> ([TensorProto; 2], [NodeProto; 2]) {
    // Scale shaped to broadcast along `axis` (1 everywhere else).
    let mut scale_dims = vec![1i64; dims.len()];
    scale_dims[axis] = scales.len() as i64;
    let int8 = TensorProto {
        name: format!("{name}__int8"),
        dims: dims.to_vec(),
        data_type: DataType::Int8 as i32,
        raw_data: q.iter().map(|&v| v as u8).collect(),
        ..Default::default()
    };
    let scale = TensorProto {
        name: format!("{name}__scale"),
        dims: scale_dims,
        data_type: DataType::Float as i32,
        raw_data: scales.iter().flat_map(|s| s.to_le_bytes()).collect(),
        ..Default::default()
    };
    let cast = NodeProto {
        input: vec![format!("{name}__int8")],
        output: vec![format!("{name}__float")],
        name: format!("{name}__cast"),
        op_type: "Cast".into(),
        attribute: vec![AttributeProto {
            name: "to".into(),
            r#type: AttributeType::Int as i32,
            i: DataType::Float as i64,
            ..Default::default()
        }],
        ..Default::default()
    };
    let mul = NodeProto {
        input: vec![format!("{name}__float"), format!("{name}__scale")],
        output: vec![name.to_owned()],
        name: format!("{name}__dequantize"),
        op_type: "Mul".into(),
        ..Default::default()
    };
    ([int8, scale], [cast, mul])
}

/// Turns the int8 weights written by [`quantise_weights`] back into f32 initializers, in
/// memory, ready for tract. tract would fold the Cast and Mul itself, but only for tensors
/// whose f32 form is at most 4 MiB (its constant-folding budget); larger ones (SFace's 6.4M-
/// weight Gemm) would be dequantised on every inference, about 25% slower. Expanding here keeps
/// int8 on disk and on the wire and f32 speed at run time, with exactly the rounded weights.
/// A graph without such weights comes back unchanged.
pub fn expand_int8_weights(onnx: &[u8]) -> Result<ModelProto> {
    let mut model =
        ModelProto::decode(onnx).map_err(|e| bad(format!("not an ONNX model file: {e}")))?;
    let Some(graph) = model.graph.as_mut() else {
        return Ok(model);
    };
    let mut inits: HashMap<String, TensorProto> = std::mem::take(&mut graph.initializer)
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let mut nodes = Vec::with_capacity(graph.node.len());
    let mut restored = Vec::new();
    for node in std::mem::take(&mut graph.node) {
        let is_cast = node.op_type == "Cast" && node.name.ends_with("__cast");
        let is_scale = node.op_type == "Mul" && node.name.ends_with("__dequantize");
        if is_cast {
            continue; // its output is only read by the matching Mul, handled below
        }
        if !is_scale {
            nodes.push(node);
            continue;
        }
        let name = node
            .output
            .first()
            .cloned()
            .ok_or_else(|| bad("dequantize node without output"))?;
        let q = inits
            .remove(&format!("{name}__int8"))
            .ok_or_else(|| bad(format!("{name}: int8 weights missing")))?;
        let scale = inits
            .remove(&format!("{name}__scale"))
            .ok_or_else(|| bad(format!("{name}: scales missing")))?;
        let scales = float_values(&scale)?;
        let axis = scale
            .dims
            .iter()
            .position(|&d| d as usize == scales.len() && d > 1)
            .unwrap_or(0);
        if scale.dims.len() != q.dims.len()
            || q.raw_data.len() != q.dims.iter().product::<i64>() as usize
        {
            return Err(bad(format!("{name}: int8 weights and scales do not match")));
        }
        let inner: usize = q.dims[axis + 1..]
            .iter()
            .map(|&d| d.max(1) as usize)
            .product();
        let channels = scales.len().max(1);
        let values: Vec<u8> = q
            .raw_data
            .iter()
            .enumerate()
            .flat_map(|(i, &b)| ((b as i8) as f32 * scales[(i / inner) % channels]).to_le_bytes())
            .collect();
        restored.push(TensorProto {
            name: name.clone(),
            dims: q.dims.clone(),
            data_type: DataType::Float as i32,
            raw_data: values,
            ..Default::default()
        });
    }
    let mut initializer: Vec<TensorProto> = inits.into_values().collect();
    initializer.append(&mut restored);
    initializer.sort_by(|a, b| a.name.cmp(&b.name));
    graph.initializer = initializer;
    graph.node = nodes;
    Ok(model)
}

/// For each initializer used as a weight, the axis of its output channels; `None` when uses
/// disagree (then it is left alone).
fn weight_axes(nodes: &[NodeProto]) -> HashMap<&str, Option<usize>> {
    let mut axes: HashMap<&str, Option<usize>> = HashMap::new();
    for n in nodes {
        let axis = match n.op_type.as_str() {
            "Conv" => 0,
            "ConvTranspose" => 1,
            "Gemm" => {
                let trans_b = n
                    .attribute
                    .iter()
                    .find(|a| a.name == "transB")
                    .map(|a| a.i)
                    .unwrap_or(0);
                if trans_b == 1 { 0 } else { 1 }
            }
            "MatMul" => LAST_AXIS,
            _ => continue,
        };
        if let Some(w) = n.input.get(1) {
            let e = axes.entry(w.as_str()).or_insert(Some(axis));
            if *e != Some(axis) {
                *e = None;
            }
        }
    }
    axes
}

/// The f32 values of a float initializer, from `raw_data` or `float_data`.
pub(crate) fn float_values(t: &TensorProto) -> Result<Vec<f32>> {
    if t.data_type != DataType::Float as i32 {
        return Ok(Vec::new());
    }
    if t.data_location == Some(1) {
        return Err(bad(format!(
            "{} uses external data, which is not supported",
            t.name
        )));
    }
    if !t.raw_data.is_empty() {
        if !t.raw_data.len().is_multiple_of(4) {
            return Err(bad(format!(
                "{} has raw data of {} bytes",
                t.name,
                t.raw_data.len()
            )));
        }
        return Ok(t
            .raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect());
    }
    Ok(t.float_data.clone())
}

/// Symmetric per-channel int8: returns values, one scale per channel, and the worst rounding
/// error relative to its channel's largest magnitude.
pub(crate) fn quantise_per_channel(
    values: &[f32],
    dims: &[i64],
    axis: usize,
) -> (Vec<i8>, Vec<f32>, f32) {
    let channels = dims[axis].max(1) as usize;
    let inner: usize = dims[axis + 1..]
        .iter()
        .map(|&d| d.max(1) as usize)
        .product();
    let channel_of = |i: usize| (i / inner) % channels;
    let mut absmax = vec![0f32; channels];
    for (i, v) in values.iter().enumerate() {
        let c = channel_of(i);
        absmax[c] = absmax[c].max(v.abs());
    }
    let scales: Vec<f32> = absmax
        .iter()
        .map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 })
        .collect();
    let mut worst = 0f32;
    let q = values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = channel_of(i);
            let q = (v / scales[c]).round().clamp(-127.0, 127.0);
            if absmax[c] > 0.0 {
                worst = worst.max((q * scales[c] - v).abs() / absmax[c]);
            }
            q as i8
        })
        .collect();
    (q, scales, worst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx_test_util::value_info;
    use tract_onnx::pb::{GraphProto, OperatorSetIdProto};

    /// y = x · W with W 64x32: one MatMul whose weight must be quantised per output column.
    fn matmul_model() -> (Vec<u8>, Vec<f32>) {
        let w: Vec<f32> = (0..64 * 32)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / (1.0 + (i % 32) as f32))
            .collect();
        let graph = GraphProto {
            node: vec![NodeProto {
                input: vec!["x".into(), "w".into()],
                output: vec!["y".into()],
                op_type: "MatMul".into(),
                ..Default::default()
            }],
            initializer: vec![TensorProto {
                name: "w".into(),
                dims: vec![64, 32],
                data_type: DataType::Float as i32,
                raw_data: w.iter().flat_map(|v| v.to_le_bytes()).collect(),
                ..Default::default()
            }],
            input: vec![value_info("x", &[1, 64])],
            output: vec![value_info("y", &[1, 32])],
            ..Default::default()
        };
        let model = ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(graph),
            ..Default::default()
        };
        (model.encode_to_vec(), w)
    }

    fn run(bytes: &[u8], x: &[f32]) -> Vec<f32> {
        crate::onnx_test_util::run_bytes(bytes, &[1, 64], x)
    }

    #[test]
    fn quantised_matmul_stays_close_and_shrinks() {
        let (bytes, _) = matmul_model();
        let (q, report) = quantise_weights(&bytes).expect("quantise");
        assert_eq!(report.tensors, 1);
        assert!(report.bytes_after * 3 < report.bytes_before, "{report:?}");
        assert!(report.worst_relative_error <= 0.5 / 127.0 + 1e-6);
        let x: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
        let (a, b) = (run(&bytes, &x), run(&q, &x));
        let scale = a.iter().map(|v| v.abs()).fold(0.0, f32::max);
        for (p, r) in a.iter().zip(&b) {
            assert!((p - r).abs() <= scale * 0.02, "{p} vs {r}");
        }
    }

    #[test]
    fn expanded_weights_give_the_same_outputs_as_the_int8_graph() {
        let (bytes, _) = matmul_model();
        let (q, _) = quantise_weights(&bytes).expect("quantise");
        let expanded = expand_int8_weights(&q).expect("expand").encode_to_vec();
        let x: Vec<f32> = (0..64).map(|i| (i as f32 * 0.21).cos()).collect();
        assert_eq!(run(&q, &x), run(&expanded, &x));
        // No Cast/Mul left: tract sees a plain f32 graph.
        let m = ModelProto::decode(&expanded[..]).expect("decode");
        assert_eq!(m.graph.expect("graph").node.len(), 1);
    }

    #[test]
    fn expanding_a_float_graph_changes_nothing() {
        let (bytes, _) = matmul_model();
        assert_eq!(
            expand_int8_weights(&bytes).expect("expand"),
            ModelProto::decode(&bytes[..]).expect("decode")
        );
    }

    #[test]
    fn deterministic_output() {
        let (bytes, _) = matmul_model();
        assert_eq!(
            quantise_weights(&bytes).expect("a").0,
            quantise_weights(&bytes).expect("b").0
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert!(quantise_weights(b"\xff\xff\xff definitely not protobuf").is_err());
    }

    #[test]
    fn per_channel_scales_follow_the_axis() {
        // 2 channels on axis 0, very different magnitudes: each keeps full precision.
        let values = [100.0, -25.0, 0.015, -0.02];
        let (q, s, _) = quantise_per_channel(&values, &[2, 2], 0);
        assert_eq!(q, vec![127, -32, 95, -127]);
        assert!((s[0] - 100.0 / 127.0).abs() < 1e-6 && (s[1] - 0.02 / 127.0).abs() < 1e-9);
    }
}
