//! Graph rewrites applied before tract loads a network, where tract's own translation is slow.
//!
//! PReLU: tract-onnx expands `PRelu(x, slope)` into three full-tensor passes (`x > 0`, a
//! per-channel multiply on a generic path, a select); in SFace that was 67% of the run time
//! (tract's per-operator profile). The same function written as
//! `Relu(x) + Conv1x1_depthwise(Min(x, 0), slope)` lands on tract's vectorised kernels and
//! fused element-wise chains: SFace went from 44 to 17 ms per face. The values are the same
//! (for x > 0: x + slope·0 = x; otherwise 0 + slope·x), so embeddings do not change. When the
//! plan is made, facegate's own PReLU takes the four nodes back as one in-place pass
//! (`ops/prelu.rs`); the rewrite stays because it is also the form the door's NNEF files hold.
//!
//! LayerNorm centering: EdgeFace's 26 LayerNorms over the channel axis start with
//! `x - ReduceMean(x, axis=-1)`, which tract runs as a reduction plus a broadcast subtraction on
//! a generic path (together about 15% of EdgeFace's time in its profile). The same values are
//! `x · (I - 1/C)`, one C×C matrix product on tract's optimised matrix kernels (C ≤ 304):
//! `tract bench` went from 9.1 to 8.6 ms on this machine.
//!
//! LayerNorm fused: the whole nine-node LayerNorm becomes one node of facegate's own operator
//! (`ops::LayerNormLast`, one pass per row); it runs first, so the centring rewrite above only
//! meets LayerNorms the fusion does not recognise.

use std::collections::HashMap;

use tract_onnx::pb::{
    AttributeProto, ModelProto, NodeProto, TensorProto, attribute_proto::AttributeType,
    tensor_proto::DataType,
};

/// Rewrites every `PRelu` whose slope is a per-channel float initializer (`[C, 1, 1]` or
/// `[1, C, 1, 1]`, broadcasting over an NCHW tensor's channels); returns how many. Others are
/// left as they are.
pub fn prelu_as_relu_and_depthwise(model: &mut ModelProto) -> usize {
    let Some(graph) = model.graph.as_mut() else {
        return 0;
    };
    let slopes: HashMap<String, Vec<f32>> = graph
        .initializer
        .iter()
        .filter(|t| t.data_type == DataType::Float as i32 && per_channel(&t.dims))
        .map(|t| (t.name.clone(), floats(t)))
        .collect();
    let zero = "facegate_rewrite_zero".to_string();
    let mut added = Vec::new();
    let mut nodes = Vec::with_capacity(graph.node.len());
    let mut count = 0;
    for node in std::mem::take(&mut graph.node) {
        let slope = (node.op_type == "PRelu" && node.input.len() == 2 && node.output.len() == 1)
            .then(|| slopes.get(&node.input[1]))
            .flatten()
            .filter(|s| !s.is_empty());
        let Some(slope) = slope else {
            nodes.push(node);
            continue;
        };
        count += 1;
        let p = format!("facegate_prelu{count}");
        let (x, y) = (node.input[0].clone(), node.output[0].clone());
        let c = slope.len() as i64;
        added.push(TensorProto {
            name: format!("{p}_w"),
            dims: vec![c, 1, 1, 1],
            data_type: DataType::Float as i32,
            float_data: slope.clone(),
            ..Default::default()
        });
        let op = |op: &str, inputs: &[&str], out: &str, attrs: Vec<AttributeProto>| NodeProto {
            name: format!("{out}_{op}"),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.to_string()],
            attribute: attrs,
            ..Default::default()
        };
        let ints = |name: &str, v: Vec<i64>| AttributeProto {
            name: name.into(),
            r#type: AttributeType::Ints as i32,
            ints: v,
            ..Default::default()
        };
        let int = |name: &str, v: i64| AttributeProto {
            name: name.into(),
            r#type: AttributeType::Int as i32,
            i: v,
            ..Default::default()
        };
        let (pos, neg, scaled) = (
            format!("{p}_pos"),
            format!("{p}_neg"),
            format!("{p}_scaled"),
        );
        nodes.push(op("Relu", &[&x], &pos, vec![]));
        nodes.push(op("Min", &[&x, &zero], &neg, vec![]));
        nodes.push(op(
            "Conv",
            &[&neg, &format!("{p}_w")],
            &scaled,
            vec![int("group", c), ints("kernel_shape", vec![1, 1])],
        ));
        nodes.push(op("Add", &[&pos, &scaled], &y, vec![]));
    }
    if count > 0 {
        added.push(TensorProto {
            name: zero,
            dims: vec![],
            data_type: DataType::Float as i32,
            float_data: vec![0.0],
            ..Default::default()
        });
        graph.initializer.extend(added);
    }
    graph.node = nodes;
    count
}

/// Rewrites every `Sub(x, ReduceMean(x, axes=[-1]))` whose result is then scaled by a float
/// initializer of last dimension C (the LayerNorm's weight, after the division by the standard
/// deviation) into `MatMul(x, I - 1/C)`; returns how many. The `ReduceMean` is left for tract
/// to prune. Anything else is left as it is.
pub fn layernorm_centering_as_matmul(model: &mut ModelProto) -> usize {
    let Some(graph) = model.graph.as_mut() else {
        return 0;
    };
    let dims: HashMap<&str, &[i64]> = graph
        .initializer
        .iter()
        .filter(|t| t.data_type == DataType::Float as i32)
        .map(|t| (t.name.as_str(), t.dims.as_slice()))
        .collect();
    let producer: HashMap<&str, &NodeProto> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    // Channel count per centred tensor: Mul(Div(sub, _), weight[.., C]).
    let mut channels: HashMap<String, i64> = HashMap::new();
    for n in graph
        .node
        .iter()
        .filter(|n| n.op_type == "Mul" && n.input.len() == 2)
    {
        let (Some(div), Some(w)) = (
            producer.get(n.input[0].as_str()),
            dims.get(n.input[1].as_str()),
        ) else {
            continue;
        };
        if div.op_type == "Div"
            && let Some(&c) = w.last()
        {
            channels.insert(div.input[0].clone(), c);
        }
    }
    let centring: Vec<(usize, i64)> = graph
        .node
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            if n.op_type != "Sub" || n.input.len() != 2 || n.output.len() != 1 {
                return None;
            }
            let mean = producer.get(n.input[1].as_str())?;
            let last_axis_mean = mean.op_type == "ReduceMean"
                && mean.input.len() == 1
                && mean.input[0] == n.input[0]
                && mean
                    .attribute
                    .iter()
                    .any(|a| a.name == "axes" && a.ints == [-1])
                && !mean
                    .attribute
                    .iter()
                    .any(|a| a.name == "keepdims" && a.i == 0);
            let c = *channels.get(&n.output[0])?;
            (last_axis_mean && c > 1).then_some((i, c))
        })
        .collect();
    // One matrix per channel count, shared by every LayerNorm of that width.
    for &(i, c) in &centring {
        let name = format!("facegate_centre_{c}");
        if !graph.initializer.iter().any(|t| t.name == name) {
            let cu = c as usize;
            let values = (0..cu * cu)
                .map(|j| f32::from(j / cu == j % cu) - 1.0 / c as f32)
                .collect();
            graph.initializer.push(TensorProto {
                name: name.clone(),
                dims: vec![c, c],
                data_type: DataType::Float as i32,
                float_data: values,
                ..Default::default()
            });
        }
        let node = &mut graph.node[i];
        node.op_type = "MatMul".into();
        node.input[1] = name;
    }
    centring.len()
}

/// Replaces every LayerNorm over the last axis written out as nine nodes (`ReduceMean`, `Sub`,
/// `Pow 2`, `ReduceMean`, `Add epsilon`, `Sqrt`, `Div`, `Mul weight`, `Add bias`, as PyTorch
/// exports EdgeFace's) by one [`crate::ops::LAYER_NORM_LAST`] node; returns how many. Only
/// chains whose intermediate values nobody else reads, whose reductions are over axis -1 and
/// whose weight and bias are 1-D float initializers of one length are replaced.
pub fn layernorm_as_fused(model: &mut ModelProto) -> usize {
    let Some(graph) = model.graph.as_mut() else {
        return 0;
    };
    let chains = layernorm_chains(graph);
    if chains.is_empty() {
        return 0;
    }
    let removed: std::collections::HashSet<usize> = chains.iter().flat_map(|c| c.nodes).collect();
    let mut fused: HashMap<usize, NodeProto> = chains
        .iter()
        .map(|c| {
            let node = NodeProto {
                input: vec![c.x.clone(), c.weight.clone(), c.bias.clone()],
                output: vec![c.output.clone()],
                name: format!("{}_fused", c.output),
                op_type: crate::ops::LAYER_NORM_LAST.into(),
                attribute: vec![AttributeProto {
                    name: "epsilon".into(),
                    r#type: AttributeType::Float as i32,
                    f: c.epsilon,
                    ..Default::default()
                }],
                ..Default::default()
            };
            // The first node of the chain: its input is ready there, its output read later.
            (c.nodes[0], node)
        })
        .collect();
    let count = fused.len();
    graph.node = std::mem::take(&mut graph.node)
        .into_iter()
        .enumerate()
        .filter_map(|(i, n)| match fused.remove(&i) {
            Some(f) => Some(f),
            None => (!removed.contains(&i)).then_some(n),
        })
        .collect();
    count
}

/// One LayerNorm found by [`layernorm_chains`]: its nine nodes (the first one first) and what
/// the fused node needs.
struct LayerNormChain {
    nodes: [usize; 9],
    x: String,
    weight: String,
    bias: String,
    epsilon: f32,
    output: String,
}

/// Every LayerNorm over the last axis in `graph` that [`layernorm_as_fused`] may replace.
fn layernorm_chains(graph: &tract_onnx::pb::GraphProto) -> Vec<LayerNormChain> {
    let index = GraphIndex::new(graph);
    (0..graph.node.len())
        .filter_map(|i| index.layernorm_ending_at(i))
        .collect()
}

/// Who writes and who reads each value of a graph, for matching node chains.
struct GraphIndex<'a> {
    graph: &'a tract_onnx::pb::GraphProto,
    producer: HashMap<&'a str, usize>,
    readers: HashMap<&'a str, usize>,
}

impl<'a> GraphIndex<'a> {
    fn new(graph: &'a tract_onnx::pb::GraphProto) -> Self {
        let producer = graph
            .node
            .iter()
            .enumerate()
            .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
            .collect();
        let mut readers: HashMap<&str, usize> = HashMap::new();
        for name in graph.node.iter().flat_map(|n| &n.input) {
            *readers.entry(name.as_str()).or_default() += 1;
        }
        // A graph output has a reader outside the graph: never part of a replaced chain.
        for o in &graph.output {
            *readers.entry(o.name.as_str()).or_default() += 100;
        }
        Self {
            graph,
            producer,
            readers,
        }
    }

    fn node(&self, i: usize) -> &'a NodeProto {
        &self.graph.node[i]
    }

    /// The node of `op_type` that wrote `name`, if exactly `uses` nodes read it.
    fn from(&self, name: &str, op_type: &str, uses: usize) -> Option<usize> {
        let i = *self.producer.get(name)?;
        (self.node(i).op_type == op_type && self.readers.get(name) == Some(&uses)).then_some(i)
    }

    /// The length of a 1-D float initializer.
    fn vector_len(&self, name: &str) -> Option<i64> {
        let t = self.graph.initializer.iter().find(|t| t.name == name)?;
        match t.dims[..] {
            [c] if t.data_type == DataType::Float as i32 => Some(c),
            _ => None,
        }
    }

    /// The value of a one-element float initializer or `Constant` node.
    fn scalar(&self, name: &str) -> Option<f32> {
        let tensor = match self.graph.initializer.iter().find(|t| t.name == name) {
            Some(t) => t,
            None => {
                let n = self.node(*self.producer.get(name)?);
                let value = n.attribute.iter().find(|a| a.name == "value")?;
                (n.op_type == "Constant").then_some(value.t.as_ref()?)?
            }
        };
        let values = (tensor.data_type == DataType::Float as i32).then(|| floats(tensor))?;
        (values.len() == 1).then(|| values[0])
    }

    /// Whether node `i` is a `ReduceMean` over the last axis that keeps it.
    fn last_axis_mean(&self, i: usize) -> bool {
        let n = self.node(i);
        n.input.len() == 1
            && n.attribute
                .iter()
                .any(|a| a.name == "axes" && a.ints == [-1])
            && !n.attribute.iter().any(|a| a.name == "keepdims" && a.i == 0)
    }

    /// The LayerNorm whose final `Add bias` is node `add_b`, walking back from it.
    fn layernorm_ending_at(&self, add_b: usize) -> Option<LayerNormChain> {
        let n = self.node(add_b);
        if n.op_type != "Add" || n.input.len() != 2 || n.output.len() != 1 {
            return None;
        }
        let mul = self.from(&n.input[0], "Mul", 1)?;
        let div = self.from(&self.node(mul).input[0], "Div", 1)?;
        let sub = self.from(&self.node(div).input[0], "Sub", 2)?;
        let sqrt = self.from(&self.node(div).input[1], "Sqrt", 1)?;
        let add_eps = self.from(&self.node(sqrt).input[0], "Add", 1)?;
        let var = self.from(&self.node(add_eps).input[0], "ReduceMean", 1)?;
        let pow = self.from(&self.node(var).input[0], "Pow", 1)?;
        let mean = self.from(&self.node(sub).input[1], "ReduceMean", 1)?;
        let x = &self.node(sub).input[0];
        let (weight, bias) = (&self.node(mul).input[1], &n.input[1]);
        let c = self.vector_len(weight)?;
        let fits = self.node(pow).input[0] == self.node(sub).output[0]
            && self.scalar(&self.node(pow).input[1]) == Some(2.0)
            && self.node(mean).input[0] == *x
            && self.last_axis_mean(mean)
            && self.last_axis_mean(var)
            && self.vector_len(bias) == Some(c);
        let epsilon = self.scalar(&self.node(add_eps).input[1])?;
        fits.then(|| LayerNormChain {
            nodes: [mean, sub, pow, var, add_eps, sqrt, div, mul, add_b],
            x: x.clone(),
            weight: weight.clone(),
            bias: bias.clone(),
            epsilon,
            output: n.output[0].clone(),
        })
    }
}

/// Whether a slope of these dims applies per channel of an NCHW tensor.
fn per_channel(dims: &[i64]) -> bool {
    matches!(dims, [_, 1, 1] | [1, _, 1, 1])
}

/// The values of a float initializer (raw little-endian or `float_data`).
fn floats(t: &TensorProto) -> Vec<f32> {
    if t.raw_data.is_empty() {
        return t.float_data.clone();
    }
    t.raw_data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx_test_util::value_info;
    use tract_onnx::pb::{GraphProto, OperatorSetIdProto};

    /// y = PRelu(x, slope) on 1x4x5x5 with four different slopes.
    fn prelu_model() -> ModelProto {
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(GraphProto {
                node: vec![NodeProto {
                    input: vec!["x".into(), "slope".into()],
                    output: vec!["y".into()],
                    op_type: "PRelu".into(),
                    ..Default::default()
                }],
                initializer: vec![TensorProto {
                    name: "slope".into(),
                    dims: vec![4, 1, 1],
                    data_type: DataType::Float as i32,
                    float_data: vec![0.25, -0.5, 0.0, 1.5],
                    ..Default::default()
                }],
                input: vec![value_info("x", &[1, 4, 5, 5])],
                output: vec![value_info("y", &[1, 4, 5, 5])],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn run(model: &ModelProto, x: &[f32]) -> Vec<f32> {
        crate::onnx_test_util::run_model(model, &[1, 4, 5, 5], x)
    }

    #[test]
    fn rewritten_prelu_gives_the_same_values() {
        let x: Vec<f32> = (0..100).map(|i| (i as f32 - 50.0) * 0.37).collect();
        let original = prelu_model();
        let mut rewritten = original.clone();
        assert_eq!(prelu_as_relu_and_depthwise(&mut rewritten), 1);
        let ops: Vec<&str> = rewritten
            .graph
            .as_ref()
            .map(|g| g.node.iter().map(|n| n.op_type.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(ops, ["Relu", "Min", "Conv", "Add"]);
        let (a, b) = (run(&original, &x), run(&rewritten, &x));
        for (i, (p, q)) in a.iter().zip(&b).enumerate() {
            let slope = [0.25f32, -0.5, 0.0, 1.5][i / 25];
            let expected = if x[i] > 0.0 { x[i] } else { slope * x[i] };
            assert_eq!(*p, expected, "original at {i}");
            assert!(
                (q - expected).abs() <= 1e-6 * expected.abs().max(1.0),
                "rewritten at {i}: {q} vs {expected}"
            );
        }
    }

    /// EdgeFace rewritten by `rewrite`, which must report `count` places; the embedding of a
    /// fixed input must not change.
    fn rewritten_edgeface(rewrite: fn(&mut ModelProto) -> usize, count: usize) -> ModelProto {
        use prost::Message;
        let bytes = crate::model_files::EDGEFACE
            .read_verified(&crate::model_files::default_dir())
            .expect("EdgeFace missing: run `facegate models fetch` (or set FACEGATE_MODELS)");
        let original = ModelProto::decode(bytes.as_slice()).expect("onnx");
        let mut rewritten = original.clone();
        assert_eq!(rewrite(&mut rewritten), count);
        let x: Vec<f32> = (0..3 * 112 * 112)
            .map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0)
            .collect();
        let shape = [1, 3, 112, 112];
        let run = |m: &ModelProto| crate::onnx_test_util::run_model(m, &shape, &x);
        let (a, b) = (run(&original), run(&rewritten));
        let cos = crate::embed::cosine(
            &crate::embed::l2_normalise(a),
            &crate::embed::l2_normalise(b),
        );
        assert!(cos > 0.99999, "cosine {cos}");
        rewritten
    }

    #[test]
    fn edgeface_layernorm_centring_becomes_matmul_with_the_same_embedding() {
        let mut rewritten = rewritten_edgeface(layernorm_centering_as_matmul, 26);
        // Once is enough: the rewritten graph has no centring left.
        assert_eq!(layernorm_centering_as_matmul(&mut rewritten), 0);
    }

    #[test]
    fn edgeface_layernorms_fuse_with_the_same_embedding() {
        let mut rewritten = rewritten_edgeface(layernorm_as_fused, 26);
        // Nothing left for either LayerNorm rewrite.
        assert_eq!(layernorm_as_fused(&mut rewritten), 0);
        assert_eq!(layernorm_centering_as_matmul(&mut rewritten), 0);
    }

    #[test]
    fn a_graph_without_prelu_is_unchanged() {
        let mut m = prelu_model();
        if let Some(g) = m.graph.as_mut() {
            g.node[0].op_type = "Relu".into();
            g.node[0].input.truncate(1);
        }
        let before = m.clone();
        assert_eq!(prelu_as_relu_and_depthwise(&mut m), 0);
        assert_eq!(m, before);
    }

    #[test]
    fn a_slope_over_the_last_axis_is_left_alone() {
        let mut m = prelu_model();
        if let Some(g) = m.graph.as_mut() {
            g.initializer[0].dims = vec![4];
        }
        let before = m.clone();
        assert_eq!(prelu_as_relu_and_depthwise(&mut m), 0);
        assert_eq!(m, before);
    }
}
