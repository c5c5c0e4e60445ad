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

/// The small CNNs facegate trains itself (the landmark refiner, the liveness network): padded
/// 3x3 convolutions with ReLU, a 2x2 max-pool after each of the first `pools`, then a dense
/// layer of `hidden` (ReLU) and `outputs` values. One description gives the weight names and
/// shapes the trainer creates and the ONNX graph the door runs, so the two cannot drift apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmallCnn {
    /// Graph name, and the network's name in errors.
    pub name: &'static str,
    /// Input channels, height and width.
    pub input: [usize; 3],
    /// Channels of each convolution.
    pub channels: &'static [usize],
    /// How many of the first convolutions a max-pool follows.
    pub pools: usize,
    /// Width of the hidden dense layer.
    pub hidden: usize,
    /// Number of outputs.
    pub outputs: usize,
    /// Name of the graph's output.
    pub output_name: &'static str,
}

impl SmallCnn {
    /// Values after the last convolution (and pool), flattened.
    pub fn flat(&self) -> usize {
        let shrink = 1 << self.pools;
        self.channels.last().copied().unwrap_or(self.input[0])
            * (self.input[1] / shrink)
            * (self.input[2] / shrink)
    }

    /// Names and shapes of the weights, in the order [`SmallCnn::graph`] takes them.
    pub fn weight_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let mut cin = self.input[0];
        for (i, &c) in self.channels.iter().enumerate() {
            out.push((format!("conv{}.weight", i + 1), vec![c, cin, 3, 3]));
            out.push((format!("conv{}.bias", i + 1), vec![c]));
            cin = c;
        }
        out.push(("fc1.weight".into(), vec![self.hidden, self.flat()]));
        out.push(("fc1.bias".into(), vec![self.hidden]));
        out.push(("fc2.weight".into(), vec![self.outputs, self.hidden]));
        out.push(("fc2.bias".into(), vec![self.outputs]));
        out
    }

    /// The ONNX bytes of the network with these weights: input `input` `[1, C, H, W]`, output
    /// [`SmallCnn::output_name`] `[1, outputs]`.
    pub fn graph(&self, weights: &[Vec<f32>]) -> crate::Result<Vec<u8>> {
        let (nodes, initializer) = self.body(weights)?;
        Ok(self.encode(nodes, initializer))
    }

    /// One network whose outputs are the mean of several trainings of this one (`members`,
    /// each a weight list as [`SmallCnn::graph`] takes it): the members read the same input,
    /// their outputs are summed and scaled by 1/n. Seeds disagree most on the few inputs a
    /// single network gets wrong, so the mean is steadier than any one of them; the door runs
    /// it as it runs one network (same input, same output). One member gives exactly
    /// [`SmallCnn::graph`]'s bytes.
    pub fn ensemble(&self, members: &[Vec<Vec<f32>>]) -> crate::Result<Vec<u8>> {
        match members {
            [] => Err(crate::Error::OnnxRewrite {
                reason: format!("an ensemble of no {} networks", self.name),
            }),
            [one] => self.graph(one),
            _ => {
                let (mut nodes, mut initializer) = (Vec::new(), Vec::new());
                let mut sum = String::new();
                for (k, weights) in members.iter().enumerate() {
                    let (n, i, out) = self.member(k, weights, "input")?;
                    nodes.extend(n);
                    initializer.extend(i);
                    sum = if k == 0 {
                        out
                    } else {
                        let next = format!("sum{k}");
                        nodes.push(node("Add", &[&sum, &out], &next, vec![]));
                        next
                    };
                }
                let scale = 1.0 / members.len() as f32;
                initializer.push(float_initializer("ensemble.scale", &[1], &[scale]));
                nodes.push(node(
                    "Mul",
                    &[&sum, "ensemble.scale"],
                    self.output_name,
                    vec![],
                ));
                Ok(self.encode(nodes, initializer))
            }
        }
    }

    /// One network that answers the *lower* of two trainings of this one (a second opinion
    /// that can only refuse): `first` reads the input as given; `second` reads it divided by
    /// its mean level ([`MeanOver`]: over the whole input or per plane, as
    /// `(x + 1) / max(mean(x + 1), 1/64) - 1` on the `level / 128 - 1` scale, a mean under two
    /// grey levels counting as two), and `offset` is added to its outputs to put them on the
    /// first's scale (`None`: the second reads the input as given too). The door runs it as
    /// one network: same input, same output, and never a higher score than `first` alone.
    pub fn lower_of(
        &self,
        first: &[Vec<f32>],
        second: &[Vec<f32>],
        mean_over: Option<MeanOver>,
        offset: f32,
    ) -> crate::Result<Vec<u8>> {
        if !offset.is_finite() {
            return Err(crate::Error::OnnxRewrite {
                reason: format!("{}: the second opinion's offset is not a number", self.name),
            });
        }
        let (mut nodes, mut initializer, a) = self.member(0, first, "input")?;
        initializer.push(float_initializer("lower.offset", &[1], &[offset]));
        let second_input = match mean_over {
            None => "input",
            Some(over) => {
                let axes = match over {
                    MeanOver::Whole => vec![1, 2, 3],
                    MeanOver::Plane => vec![2, 3],
                };
                initializer.push(float_initializer("lower.one", &[1], &[1.0]));
                initializer.push(float_initializer("lower.floor", &[1], &[2.0 / 128.0]));
                // The levelling comes before the second network's nodes (ONNX wants each
                // node's inputs made before it).
                nodes.extend([
                    node("Add", &["input", "lower.one"], "level", vec![]),
                    node(
                        "ReduceMean",
                        &["level"],
                        "mean",
                        vec![ints("axes", &axes), int("keepdims", 1)],
                    ),
                    node("Max", &["mean", "lower.floor"], "mean_floored", vec![]),
                    node("Div", &["level", "mean_floored"], "ratio", vec![]),
                    node("Sub", &["ratio", "lower.one"], "levelled", vec![]),
                ]);
                "levelled"
            }
        };
        let (n, i, b) = self.member(1, second, second_input)?;
        nodes.extend(n);
        initializer.extend(i);
        nodes.push(node("Add", &[&b, "lower.offset"], "second_shifted", vec![]));
        nodes.push(node(
            "Min",
            &[&a, "second_shifted"],
            self.output_name,
            vec![],
        ));
        Ok(self.encode(nodes, initializer))
    }

    /// Member `k` of a combined graph: the network's nodes with every name prefixed `m{k}/`,
    /// reading `input` instead of the graph's input, its weights, and its output's name.
    fn member(&self, k: usize, weights: &[Vec<f32>], input: &str) -> crate::Result<Member> {
        let (n, i) = self.body(weights)?;
        let prefix = format!("m{k}/");
        let n = n
            .into_iter()
            .map(|n| {
                let mut n = prefixed_node(n, &prefix);
                n.input
                    .iter_mut()
                    .filter(|s| *s == "input")
                    .for_each(|s| *s = input.to_owned());
                n
            })
            .collect();
        let i = i
            .into_iter()
            .map(|mut t| {
                t.name = format!("{prefix}{}", t.name);
                t
            })
            .collect();
        Ok((n, i, format!("{prefix}{}", self.output_name)))
    }

    /// The nodes and weights of one network (input `input`, output [`SmallCnn::output_name`]).
    fn body(&self, weights: &[Vec<f32>]) -> crate::Result<(Vec<NodeProto>, Vec<TensorProto>)> {
        let shapes = self.weight_shapes();
        if weights.len() != shapes.len()
            || weights
                .iter()
                .zip(&shapes)
                .any(|(w, (_, s))| w.len() != s.iter().product::<usize>())
        {
            return Err(crate::Error::OnnxRewrite {
                reason: format!("{} weights do not match the network's shapes", self.name),
            });
        }
        let initializer = shapes
            .iter()
            .zip(weights)
            .map(|((name, dims), w)| float_initializer(name, dims, w))
            .collect();
        let mut nodes = Vec::new();
        let mut prev = "input".to_owned();
        for i in 1..=self.channels.len() {
            let (conv, out) = conv3x3_relu(&prev, i);
            nodes.extend(conv);
            prev = out;
            if i <= self.pools {
                let p = format!("pool{i}");
                nodes.push(node(
                    "MaxPool",
                    &[&prev],
                    &p,
                    vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
                ));
                prev = p;
            }
        }
        nodes.extend(dense_head(&prev, self.output_name));
        Ok((nodes, initializer))
    }

    fn encode(&self, nodes: Vec<NodeProto>, initializer: Vec<TensorProto>) -> Vec<u8> {
        let [c, h, w] = self.input.map(|v| v as i64);
        encode_model(
            self.name,
            nodes,
            initializer,
            value_info("input", &[1, c, h, w]),
            value_info(self.output_name, &[1, self.outputs as i64]),
        )
    }
}

/// One member of a combined graph: its nodes, its weights, its output's name.
type Member = (Vec<NodeProto>, Vec<TensorProto>, String);

/// What [`SmallCnn::lower_of`]'s second network divides its input by the mean of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeanOver {
    /// Every value of the input: one gain for all planes (the camera's exposure).
    Whole,
    /// Each plane (one colour of one view) alone: each colour's gain.
    Plane,
}

/// `n` with every value name but the graph's input prefixed: one member of an ensemble.
fn prefixed_node(mut n: NodeProto, prefix: &str) -> NodeProto {
    let rename = |s: &mut String| {
        if s != "input" {
            *s = format!("{prefix}{s}");
        }
    };
    rename(&mut n.name);
    n.input.iter_mut().for_each(rename);
    n.output.iter_mut().for_each(rename);
    n
}
