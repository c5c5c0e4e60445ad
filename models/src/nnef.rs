//! facegate's networks in tract's own NNEF form: a tar of `graph.nnef` (the typed graph as
//! text) and one `.dat` file per tensor.
//!
//! Why: a door that reads NNEF needs neither the ONNX parser, its inference rules nor protobuf
//! (issue #25: the door binary's size and start-up). The laptop does everything ONNX-specific
//! (the protobuf rewrites, parsing, typing, decluttering) and writes the decluttered typed
//! model; reading it back gives the same model, so the door's swaps and tract's optimiser
//! run on the same graph either way (`ops::optimised_typed`). facegate's own operator that
//! exists before optimisation ([`LayerNormLast`], from the LayerNorm fusion) is carried as
//! `facegate_layer_norm_last` in a registry of its own; the others are swapped in after
//! loading and never written. int8 weights stay int8 in the file (`facegate_dequantize_int8`,
//! folded back to the same f32 values when read), so a converted embedder is about the size
//! of its int8 ONNX file rather than four times it.
//!
//! Status: the door reads every network in this form. The detector and the pinned embedders
//! are pinned files of the models folder ([`crate::model_files::YUNET_DOOR`] and the others,
//! made by `facegate models fetch` with [`door_form`]); the networks facegate trains travel
//! in a bundle (format 5) or the models folder as door forms the laptop wrote.
//! `models/examples/nnef_both_ways.rs` measures both ways (docs/PERFORMANCE.md, "NNEF on the
//! door, measured both ways").

use tract_nnef::internal::*;
use tract_nnef::tract_core::ops::nn::GeluExact;

use crate::ops::LayerNormLast;

/// The NNEF name of [`LayerNormLast`].
const LAYER_NORM_LAST: &str = "facegate_layer_norm_last";

/// tract's NNEF reader and writer with facegate's operators.
pub fn nnef() -> Nnef {
    tract_nnef::nnef().with_registry(registry())
}

fn registry() -> Registry {
    let mut registry =
        Registry::new("facegate").with_doc("facegate's own operators (models/src/ops.rs)");
    // tract-core's exact GELU (EdgeFace's, from ONNX's Erf formula) has no NNEF name of its own.
    registry.register_unit_element_wise("facegate_gelu_exact", &GeluExact {});
    registry.register_dumper(ser_layer_norm_last);
    registry.register_dumper(ser_dequantize_int8);
    registry.register_primitive(
        DEQUANTIZE_INT8,
        &[
            TypeName::Integer.tensor().named("q"),
            TypeName::Scalar.tensor().named("scale"),
        ],
        &[("output", TypeName::Scalar.tensor())],
        de_dequantize_int8,
    );
    registry.register_primitive(
        LAYER_NORM_LAST,
        &[
            TypeName::Scalar.tensor().named("x"),
            TypeName::Scalar.tensor().named("weight"),
            TypeName::Scalar.tensor().named("bias"),
            // The bits, so the value read back is the value written.
            TypeName::Integer.named("epsilon_bits"),
        ],
        &[("output", TypeName::Scalar.tensor())],
        de_layer_norm_last,
    );
    registry
}

fn ser_layer_norm_last(
    ast: &mut IntoAst,
    node: &TypedNode,
    op: &LayerNormLast,
) -> TractResult<Option<Arc<RValue>>> {
    Ok(Some(invocation(
        LAYER_NORM_LAST,
        &input_wires(ast, node),
        &[("epsilon_bits", numeric(op.epsilon_bits as i64))],
    )))
}

fn de_layer_norm_last(
    builder: &mut ModelBuilder,
    invocation: &ResolvedInvocation,
) -> TractResult<Value> {
    let x = invocation.named_arg_as(builder, "x")?;
    let weight = invocation.named_arg_as(builder, "weight")?;
    let bias = invocation.named_arg_as(builder, "bias")?;
    let bits: i64 = invocation.named_arg_as(builder, "epsilon_bits")?;
    let bits = u32::try_from(bits).context("epsilon_bits is not a 32-bit pattern")?;
    builder.wire(LayerNormLast::new(f32::from_bits(bits)), &[x, weight, bias])
}

/// The symbol of [`crate::detect::decluttered_any_size`]'s input height over 32.
pub const HEIGHT_32: &str = "h32";
/// The symbol of its input width over 32.
pub const WIDTH_32: &str = "w32";

/// A detector read with [`from_bytes`] fixed to a `height x width` input (multiples of 32, as
/// [`crate::detect::prepare`] pads them).
pub fn with_input_size(model: &TypedModel, height: usize, width: usize) -> TractResult<TypedModel> {
    ensure!(
        height.is_multiple_of(32) && width.is_multiple_of(32) && height > 0 && width > 0,
        "the detector's input is {height}x{width}, not a multiple of 32"
    );
    let values = [(HEIGHT_32, height / 32), (WIDTH_32, width / 32)]
        .map(|(name, v)| (model.symbols.sym(name), TDim::Val(v as i64)));
    model.set_symbols(&values.into_iter().collect())
}

/// `model` as an NNEF tar, byte for byte the same for the same model (fixed timestamps,
/// tensors in name order), so a converted file can be pinned by its SHA-256. Weights that
/// are int8 values times one scale per channel (the door's int8 files, expanded when they
/// are read) are written as int8 again, see [`as_int8`].
pub fn to_bytes(model: &TypedModel) -> TractResult<Vec<u8>> {
    let mut model = with_int8_weights(model)?.into_compact()?;
    // Node names are made unique by tract's passes with numeric suffixes whose order varies
    // from run to run (EdgeFace's fp32 graph came out with `..._MoveAxis_0_1` in one process
    // and `..._MoveAxis_0_2` in the next): name each node by its place in evaluation order,
    // so the same graph is the same bytes and its SHA-256 can be pinned.
    for node in &mut model.nodes {
        node.name = format!("n{}", node.id);
    }
    nnef().write_to_tar_with_config(&model, Vec::new(), false, true)
}

/// The typed model in an NNEF tar (from [`to_bytes`]), not yet optimised, its int8 weights
/// expanded to the f32 values they were written from.
pub fn from_bytes(bytes: &[u8]) -> TractResult<TypedModel> {
    check_entries(bytes)?;
    let mut model = READER.model_for_read(&mut &bytes[..])?;
    check_sizes(&model, false)?;
    fold_int8_weights(&mut model)?;
    Ok(model)
}

/// Most files a door form may hold (EdgeFace int8's has 361).
const MAX_ENTRIES: usize = 4096;
/// Largest `graph.nnef` (EdgeFace int8's is 73 KB): tract checks each new node's name against
/// every earlier one, so the text's length bounds the reading time.
const MAX_GRAPH_BYTES: u64 = 1 << 20;
/// Largest tensor anywhere in a door network, in elements (SFace's last weight, the largest
/// in facegate's networks, has 6.4 million).
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 25;

/// Checks a door form's files before tract reads them. Why: tract allocates each tensor at
/// the size its `.dat` header declares before it reads the data, so a header declaring 4 GB
/// in a 200-byte file would abort a 32-bit door (an allocation failure is not an error in
/// Rust). The networks a bundle carries are vouched for by its signature, but a faulty
/// laptop must not be able to take a door down. Each tensor must be of a type facegate writes
/// (plain integers or floats, 8 to 64 bits) and declare exactly the bytes it holds, so no
/// tensor is larger than the file it came in.
fn check_entries(bytes: &[u8]) -> TractResult<()> {
    use std::io::Read;
    let mut archive = tar::Archive::new(bytes);
    for (n, entry) in archive.entries()?.enumerate() {
        ensure!(
            n < MAX_ENTRIES,
            "more than {MAX_ENTRIES} files in the network"
        );
        let mut entry = entry?;
        let size = entry.header().size()?;
        let path = entry.path()?.to_string_lossy().into_owned();
        if path.ends_with(".nnef") {
            ensure!(
                size <= MAX_GRAPH_BYTES,
                "{path} is {size} bytes, more than {MAX_GRAPH_BYTES}"
            );
        }
        if !path.ends_with(".dat") {
            continue;
        }
        let mut head = [0u8; 128];
        entry
            .read_exact(&mut head)
            .with_context(|| format!("{path}: shorter than a tensor header"))?;
        let u32_at =
            |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let u16_at = |i: usize| u16::from_le_bytes([head[i], head[i + 1]]);
        let (declared, bits, item_type, vendor) = (u32_at(4), u32_at(44), u16_at(48), u16_at(50));
        ensure!(
            vendor == 0 && item_type <= 4 && matches!(bits, 8 | 16 | 32 | 64),
            "{path}: a tensor type facegate never writes (type {item_type}, vendor {vendor}, \
             {bits} bits)"
        );
        ensure!(
            u64::from(declared) + 128 == size,
            "{path}: declares {declared} bytes of data and holds {}",
            size.saturating_sub(128)
        );
    }
    Ok(())
}

/// Refuses a graph with a tensor larger than [`MAX_TENSOR_ELEMENTS`] (a constant folded from
/// a small one, or an activation), before anything is evaluated; with `concrete`, also one
/// whose size is not known (a network read for a fixed input has none).
fn check_sizes(model: &TypedModel, concrete: bool) -> TractResult<()> {
    for node in model.nodes() {
        for output in &node.outputs {
            match output.fact.shape.as_concrete() {
                Some(shape) => {
                    let elements = shape
                        .iter()
                        .try_fold(1usize, |n, &d| n.checked_mul(d))
                        .unwrap_or(usize::MAX);
                    ensure!(
                        elements <= MAX_TENSOR_ELEMENTS,
                        "{}: a tensor of {shape:?}, more than {MAX_TENSOR_ELEMENTS} values",
                        node.name
                    );
                }
                None => ensure!(
                    !concrete,
                    "{}: a tensor of unknown size {:?}",
                    node.name,
                    output.fact.shape
                ),
            }
        }
    }
    Ok(())
}

/// The door's form of the pinned file `source` from its bytes: the same typed, decluttered
/// model the ONNX load makes, as deterministic NNEF bytes (pinned in turn by
/// [`crate::model_files`]). Bytes that are not `source`'s pinned ones are refused first:
/// another network typed as this one could trip tract's writer.
pub fn door_form(source: &crate::model_files::ModelFile, bytes: &[u8]) -> crate::Result<Vec<u8>> {
    use crate::model_files::{EDGEFACE, EDGEFACE_INT8, SFACE, SFACE_INT8, YUNET};
    source.verify(std::path::Path::new(source.file_name), bytes)?;
    let typed = if source == &YUNET {
        crate::detect::decluttered_any_size(bytes)?
    } else if [&EDGEFACE, &EDGEFACE_INT8, &SFACE, &SFACE_INT8].contains(&source) {
        crate::embed::decluttered(bytes, source.name)?
    } else {
        return Err(crate::Error::load(
            "door form",
            format!("no door form is defined for {}", source.name),
        ));
    };
    to_bytes(&typed).map_err(|e| crate::Error::load(source.name, e))
}

/// The name a network's door form goes by, in a models folder or a bundle: its ONNX file's
/// name with `.nnef.tar` for `.onnx` (`edgeface_s_gamma_05.int8.onnx` ->
/// `edgeface_s_gamma_05.int8.nnef.tar`).
pub fn door_name(onnx_name: &str) -> String {
    format!(
        "{}.nnef.tar",
        onnx_name.strip_suffix(".onnx").unwrap_or(onnx_name)
    )
}

/// A door form (from [`to_bytes`]) whose one input is `f32` of exactly `shape` and which has
/// one output, typed and ready for [`crate::ops::optimised_typed`]. Anything else (another
/// network's form, bytes that are not NNEF) is refused before it is planned.
pub fn read_checked(
    bytes: &[u8],
    shape: &[usize],
    what: &'static str,
) -> crate::Result<TypedModel> {
    let model = from_bytes(bytes).map_err(|e| crate::Error::load(what, e))?;
    check_sizes(&model, true).map_err(|e| crate::Error::load(what, e))?;
    let fits = model.inputs.len() == 1
        && model.outputs.len() == 1
        && model.input_fact(0).is_ok_and(|f| {
            f.datum_type == f32::datum_type() && f.shape.as_concrete() == Some(shape)
        });
    if !fits {
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        return Err(crate::Error::load(
            what,
            format!("the file's input is not {} with one output", dims.join("x")),
        ));
    }
    Ok(model)
}

/// One reader for every load: making one parses NNEF's standard library and builds the
/// registries, about 10 ms each time on this machine, as long as reading a small network.
static READER: std::sync::LazyLock<Nnef> = std::sync::LazyLock::new(nnef);

/// Weights smaller than this stay f32 (as in [`crate::quantise`]: biases and norms).
const MIN_INT8_ELEMENTS: usize = 512;
/// The NNEF name of [`DequantizeInt8`].
const DEQUANTIZE_INT8: &str = "facegate_dequantize_int8";

/// `q as f32 * scale` for an int8 weight `q` and its scales (shaped to broadcast along the
/// weight's channel axis): how a weight written as int8 ([`with_int8_weights`]) reads back.
/// Its own operator rather than tract's cast and multiplication because tract's NNEF writer
/// folds constants first and would write the f32 product again; this one is not evaluated
/// outside a plan, so it stays in the file, and [`fold_int8_weights`] folds it on reading.
#[derive(Debug, Clone, Default, Hash, PartialEq, Eq)]
struct DequantizeInt8;

impl Op for DequantizeInt8 {
    fn name(&self) -> StaticName {
        "facegate.DequantizeInt8".into()
    }

    op_as_typed_op!();
}

impl EvalOp for DequantizeInt8 {
    not_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (q, scale) = args_2!(inputs);
        Ok(tvec!(dequantize(&q, &scale)?.into_tvalue()))
    }
}

impl TypedOp for DequantizeInt8 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(
            inputs.len() == 2
                && inputs[0].datum_type == i8::datum_type()
                && inputs[1].datum_type == f32::datum_type()
                && inputs[0].rank() == inputs[1].rank(),
            "DequantizeInt8 wants an int8 weight and f32 scales of its rank"
        );
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// `q as f32 * scale[channel]`, one f32 product per value (the arithmetic of
/// `quantise::expand_int8_weights`). The scales have `q`'s rank and length 1 on every axis
/// but the channel axis, where they have `q`'s length: anything else is refused, so a file
/// cannot make the door allocate more than the weight it holds.
fn dequantize(q: &Tensor, scale: &Tensor) -> TractResult<Tensor> {
    let shape = q.shape();
    ensure!(
        scale.rank() == q.rank(),
        "int8 weight {shape:?} with scales {:?}",
        scale.shape()
    );
    let axes: Vec<usize> = (0..shape.len())
        .filter(|&a| scale.shape()[a] != 1)
        .collect();
    ensure!(
        axes.len() <= 1 && axes.iter().all(|&a| scale.shape()[a] == shape[a]),
        "int8 weight {shape:?} with scales {:?}",
        scale.shape()
    );
    let (q_plain, s_plain) = (q.try_as_plain_ram()?, scale.try_as_plain_ram()?);
    let (q_values, scales) = (q_plain.as_slice::<i8>()?, s_plain.as_slice::<f32>()?);
    let (inner, channels) = match axes.first() {
        Some(&a) => (shape[a + 1..].iter().product::<usize>(), shape[a]),
        None => (1, 1),
    };
    // Written in place: a vector copied into a tensor would hold the largest weight (SFace's
    // 25.7 MB last layer) twice at the door's peak of memory.
    let mut weight = Tensor::zero::<f32>(shape)?;
    {
        let mut view = weight.try_as_plain_ram_mut()?;
        let values = view.as_slice_mut::<f32>()?;
        for (i, (out, &v)) in values.iter_mut().zip(q_values).enumerate() {
            *out = v as f32 * scales[(i / inner.max(1)) % channels.max(1)];
        }
    }
    Ok(weight)
}

fn ser_dequantize_int8(
    ast: &mut IntoAst,
    node: &TypedNode,
    _op: &DequantizeInt8,
) -> TractResult<Option<Arc<RValue>>> {
    Ok(Some(invocation(
        DEQUANTIZE_INT8,
        &input_wires(ast, node),
        &[],
    )))
}

/// The names the writer gave `node`'s inputs, for an invocation of facegate's operators.
fn input_wires(ast: &IntoAst, node: &TypedNode) -> TVec<Arc<RValue>> {
    node.inputs.iter().map(|i| ast.mapping[i].clone()).collect()
}

fn de_dequantize_int8(
    builder: &mut ModelBuilder,
    invocation: &ResolvedInvocation,
) -> TractResult<Value> {
    let q = invocation.named_arg_as(builder, "q")?;
    let scale = invocation.named_arg_as(builder, "scale")?;
    builder.wire(DequantizeInt8, &[q, scale])
}

/// `values` (of `shape`) as int8 values and one f32 scale per index along `axis`, if
/// `q as f32 * scale` gives every value back bit for bit; `None` otherwise. Why: the door's
/// int8 embedders are expanded to f32 before tract parses them (`quantise::expand_int8_weights`),
/// so the typed graph NNEF is written from holds f32 weights; written as they are, an
/// EdgeFace file would be 15 MB instead of 4. The check makes this lossless by construction:
/// a tensor that is not exactly int8 times a scale stays f32.
fn as_int8(values: &[f32], shape: &[usize], axis: usize) -> Option<(Vec<i8>, Vec<f32>)> {
    let channels = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let outer: usize = shape[..axis].iter().product();
    let mut q = vec![0i8; values.len()];
    let mut scales = Vec::with_capacity(channels);
    for c in 0..channels {
        let indices = || {
            (0..outer).flat_map(move |o| {
                let start = (o * channels + c) * inner;
                start..start + inner
            })
        };
        let max = indices().map(|i| values[i].abs()).fold(0f32, f32::max);
        if !max.is_finite() {
            return None;
        }
        // The quantiser's scale was max / 127 before the product rounded: try it and its
        // neighbours.
        let base = if max > 0.0 { max / 127.0 } else { 1.0 };
        let scale = [0i32, 1, -1, 2, -2].into_iter().find_map(|step| {
            let s = f32::from_bits(base.to_bits().checked_add_signed(step)?);
            indices()
                .all(|i| {
                    let r = (values[i] / s).round();
                    // Checked as the door computes it: from the stored int8 (-0.0 becomes 0).
                    r.abs() <= 127.0 && ((r as i8) as f32 * s).to_bits() == values[i].to_bits()
                })
                .then_some(s)
        })?;
        for i in indices() {
            q[i] = (values[i] / scale).round() as i8;
        }
        scales.push(scale);
    }
    Some((q, scales))
}

/// `model` with every f32 constant that [`as_int8`] can write exactly replaced by an int8
/// constant, a cast and a multiplication by its scales.
fn with_int8_weights(model: &TypedModel) -> TractResult<TypedModel> {
    use tract_nnef::tract_core::ops::konst::Const;
    let mut model = model.clone();
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(konst) = node.op_as::<Const>() else {
            continue;
        };
        let tensor = konst.val();
        if tensor.datum_type() != f32::datum_type()
            || tensor.len() < MIN_INT8_ELEMENTS
            || tensor.rank() < 2
        {
            continue;
        }
        let shape = tensor.shape().to_vec();
        let plain = tensor.try_as_plain_ram()?;
        let values = plain.as_slice::<f32>()?;
        let Some((axis, (q, scales))) = (0..shape.len())
            .filter(|&a| shape[a] > 1)
            .find_map(|a| as_int8(values, &shape, a).map(|found| (a, found)))
        else {
            continue;
        };
        let mut scale_shape = vec![1; shape.len()];
        scale_shape[axis] = shape[axis];
        let name = node.name.clone();
        let mut patch = TypedModelPatch::default();
        let q = patch.add_const(format!("{name}.int8"), Tensor::from_shape(&shape, &q)?)?;
        let s = patch.add_const(
            format!("{name}.scale"),
            Tensor::from_shape(&scale_shape, &scales)?,
        )?;
        let weight = patch.wire_node(format!("{name}.dequantize"), DequantizeInt8, &[q, s])?;
        patch.shunt_outside(&model, id.into(), weight[0])?;
        patch.apply(&mut model)?;
    }
    model.compact()?;
    Ok(model)
}

/// Folds the int8 weights [`with_int8_weights`] wrote back into f32 constants, whatever
/// their size (tract's own constant folding stops at 4 MiB, and SFace's last layer would be
/// dequantised on every face), so the weights are those of the ONNX path bit for bit.
fn fold_int8_weights(model: &mut TypedModel) -> TractResult<()> {
    for id in model.eval_order()? {
        let node = model.node(id);
        if !node.op_is::<DequantizeInt8>() {
            continue;
        }
        let konst = |slot: usize| -> TractResult<_> {
            Ok(model.outlet_fact(node.inputs[slot])?.konst.clone())
        };
        let (Some(q), Some(scale)) = (konst(0)?, konst(1)?) else {
            bail!("{}: an int8 weight that is not a constant", node.name);
        };
        let mut weight = dequantize(&q, &scale).with_context(|| node.name.clone())?;
        let name = node.name.clone();
        let end = reshape_in_place(model, id.into(), &mut weight)?;
        let mut patch = TypedModelPatch::default();
        let wire = patch.add_const(name, weight)?;
        patch.shunt_outside(model, end, wire)?;
        patch.apply(model)?;
    }
    model.compact()
}

/// Applies to `weight` (a fresh tensor, ours alone) the reshapes and added or removed axes
/// that follow `from` alone in `model`, and returns the outlet after the last of them. Why:
/// the NNEF form spells a linear layer's weight as the constant, a reshape and an added axis;
/// decluttering would fold each into a new copy of the constant while the old one is still
/// held, and SFace's last weight is 25.7 MB (two copies at once made the door's peak of
/// memory). Changing the shape of a tensor nobody else holds copies nothing.
fn reshape_in_place(
    model: &TypedModel,
    from: OutletId,
    weight: &mut Tensor,
) -> TractResult<OutletId> {
    use tract_nnef::tract_core::ops::change_axes::AxisOp;
    let mut end = from;
    loop {
        let next = model.outlet_successors(end);
        if next.len() != 1 || model.outputs.contains(&end) {
            return Ok(end);
        }
        let node = model.node(next[0].node);
        let Some(op) = node.op_as::<AxisOp>() else {
            return Ok(end);
        };
        // A moved axis copies whoever does it: left to the optimiser.
        if matches!(op.canonical().as_ref(), AxisOp::Move(..)) || node.outputs.len() != 1 {
            return Ok(end);
        }
        op.change_tensor(weight, false)?;
        ensure!(
            model.outlet_fact(node.id.into())?.shape.as_concrete() == Some(weight.shape()),
            "{}: reshaped weight {:?} does not fit",
            node.name,
            weight.shape()
        );
        end = node.id.into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_files::{EDGEFACE_INT8, SFACE_INT8, YUNET, default_dir};
    use crate::ops::optimised_typed;

    /// Reproducible values in `0..scale`, `n` of them.
    fn input(shape: &[usize], scale: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|i| (i * 7919 % 256) as f32 / 255.0 * scale)
            .collect();
        Tensor::from_shape(shape, &values).expect("shape")
    }

    /// Every output of both models' plans on `x`, as plain values.
    fn outputs(model: TypedModel, x: &Tensor) -> Vec<Vec<f32>> {
        let plan = optimised_typed(model)
            .and_then(|m| m.into_runnable())
            .expect("plan");
        plan.run(tvec![x.clone().into_tvalue()])
            .expect("run")
            .iter()
            .map(|t| {
                let plain = t.try_as_plain_ram().expect("plain");
                plain.as_slice::<f32>().expect("f32").to_vec()
            })
            .collect()
    }

    /// Writes `typed` as NNEF twice (same bytes), reads it back and checks that the plan the
    /// door would make from it answers exactly as the plan from the ONNX file.
    fn round_trip(
        name: &str,
        typed: TypedModel,
        x: &Tensor,
        fix: impl Fn(TypedModel) -> TypedModel,
    ) -> usize {
        let bytes = to_bytes(&typed).expect("write");
        assert_eq!(
            bytes,
            to_bytes(&typed).expect("write"),
            "{name}: not deterministic"
        );
        let back = fix(from_bytes(&bytes).expect("read"));
        assert_eq!(outputs(fix(typed), x), outputs(back, x), "{name}");
        bytes.len()
    }

    fn read(file: &str) -> Vec<u8> {
        std::fs::read(default_dir().join(file))
            .unwrap_or_else(|e| panic!("{file}: {e} (run `facegate models fetch`)"))
    }

    #[test]
    fn the_door_networks_answer_the_same_from_nnef() {
        let dir = default_dir();
        for (file, kind) in [(EDGEFACE_INT8, "edgeface"), (SFACE_INT8, "sface")] {
            let bytes = file
                .read_verified(&dir)
                .expect("run `facegate models fetch`");
            let typed = crate::embed::decluttered(&bytes, "embedder").expect(kind);
            let written = round_trip(kind, typed, &input(&[1, 3, 112, 112], 1.0), |m| m);
            // Its weights stay int8: the NNEF file is about the size of the int8 ONNX file.
            assert!(
                written < bytes.len() * 11 / 10,
                "{kind}: {written} bytes of NNEF for {} of ONNX",
                bytes.len()
            );
        }
        let yunet = YUNET
            .read_verified(&dir)
            .expect("run `facegate models fetch`");
        let typed = crate::detect::decluttered_any_size(&yunet).expect("yunet");
        for (h, w) in [(256, 320), (480, 640)] {
            round_trip("yunet", typed.clone(), &input(&[1, 3, h, w], 255.0), |m| {
                with_input_size(&m, h, w).expect("size")
            });
        }
        for (file, spec) in [
            (crate::liveness::FILE, crate::liveness::NET),
            (crate::maskstate::FILE, crate::maskstate::NET),
            (crate::refine::FILE, crate::refine::NET),
        ] {
            let typed =
                crate::small_cnn::Runner::decluttered(spec, "net", &read(file)).expect(file);
            let mut shape = vec![1];
            shape.extend(spec.input);
            round_trip(file, typed, &input(&shape, 1.0), |m| m);
        }
    }

    #[test]
    fn a_fused_layer_norm_keeps_its_epsilon() {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([2, 4])).expect("source");
        let weight = model
            .add_const("w", tensor1(&[1f32, 2., 3., 4.]))
            .expect("w");
        let bias = model
            .add_const("b", tensor1(&[0f32, 0.5, 1., 1.5]))
            .expect("b");
        let epsilon = 1.2345e-5f32;
        let y = model
            .wire_node("ln", LayerNormLast::new(epsilon), &[x, weight, bias])
            .expect("wire");
        model.select_output_outlets(&y).expect("output");
        let back = from_bytes(&to_bytes(&model).expect("write")).expect("read");
        let op = back
            .nodes()
            .iter()
            .find_map(|n| n.op_as::<LayerNormLast>())
            .expect("the fused operator is read back as itself");
        assert_eq!(op, &LayerNormLast::new(epsilon));
    }

    #[test]
    fn int8_weights_are_written_as_int8_and_read_back_bit_for_bit() {
        use tract_nnef::tract_core::ops::konst::Const;
        // One weight that is int8 times a scale per row (the quantiser's form: the largest
        // value of a row is 127 times its scale), one that is not.
        let scales = [0.013f32, 0.5, 1e-4, 2.0];
        let exact: Vec<f32> = (0..4 * 160)
            .map(|i| {
                let q = if i % 160 == 7 {
                    127
                } else {
                    (i * 37 % 255) as i32 - 127
                };
                q as i8 as f32 * scales[i / 160]
            })
            .collect();
        let inexact: Vec<f32> = (0..4 * 160).map(|i| (i as f32).sqrt() * 0.1).collect();
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([4, 160])).expect("source");
        let mut out = x;
        for (name, values) in [("exact", &exact), ("inexact", &inexact)] {
            let w = model
                .add_const(name, Tensor::from_shape(&[4, 160], values).expect("shape"))
                .expect("const");
            out = model
                .wire_node(
                    format!("{name}.add"),
                    tract_nnef::tract_core::ops::math::add(),
                    &[out, w],
                )
                .expect("add")[0];
        }
        model.select_output_outlets(&[out]).expect("output");
        let written = with_int8_weights(&model).expect("int8");
        let int8: Vec<&str> = written
            .nodes()
            .iter()
            .filter(|n| n.op_is::<DequantizeInt8>())
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(
            int8,
            ["exact.dequantize"],
            "only the exact weight is written as int8"
        );
        let back = from_bytes(&to_bytes(&model).expect("write")).expect("read");
        assert!(
            !back.nodes().iter().any(|n| n.op_is::<DequantizeInt8>()),
            "folded on reading"
        );
        let weights: Vec<Vec<f32>> = back
            .nodes()
            .iter()
            .filter_map(|n| n.op_as::<Const>())
            .filter(|k| k.val().len() == exact.len())
            .map(|k| {
                k.val()
                    .try_as_plain_ram()
                    .expect("plain")
                    .as_slice::<f32>()
                    .expect("f32")
                    .to_vec()
            })
            .collect();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        let mut expected = vec![bits(&exact), bits(&inexact)];
        let mut got: Vec<_> = weights.iter().map(|w| bits(w)).collect();
        expected.sort();
        got.sort();
        assert!(
            got == expected,
            "the weights read back differ from those written"
        );
        // A negative zero has no int8 form (the door's product gives +0): such a weight stays f32.
        assert!(as_int8(&[0.0, -0.0, 0.0, 0.0], &[1, 4], 0).is_none());
        assert!(as_int8(&[0.0, 0.0, 0.0, 0.0], &[1, 4], 0).is_some());
    }

    #[test]
    fn scales_that_do_not_fit_the_weight_are_refused() {
        let q = Tensor::from_shape(&[2, 3], &[1i8, 2, 3, 4, 5, 6]).expect("q");
        for shape in [&[2usize, 3][..], &[3, 1], &[2], &[1, 1, 2]] {
            let n: usize = shape.iter().product();
            let scale = Tensor::from_shape(shape, &vec![0.5f32; n]).expect("scale");
            assert!(dequantize(&q, &scale).is_err(), "{shape:?}");
        }
        let scale = Tensor::from_shape(&[2, 1], &[0.5f32, 2.0]).expect("scale");
        let w = dequantize(&q, &scale).expect("per row");
        let plain = w.try_as_plain_ram().expect("plain");
        assert_eq!(
            plain.as_slice::<f32>().expect("f32"),
            &[0.5, 1.0, 1.5, 8.0, 10.0, 12.0]
        );
    }

    /// A small network with each kind of node facegate writes: an int8 weight, a fused
    /// LayerNorm, an exact GELU.
    /// Finding: tract allocates a tensor at the size its `.dat` header declares before it
    /// reads it, so a 200-byte file in a signed bundle could ask a door for gigabytes (an
    /// abort on a 32-bit Pi). Refused before tract reads anything, and so is a graph whose
    /// tensors outgrow every facegate network.
    #[test]
    fn tensors_larger_than_their_files_or_any_network_are_refused() {
        let bytes = small_model();
        let mut archive = tar::Archive::new(&bytes[..]);
        let at = archive
            .entries()
            .expect("entries")
            .map(|e| e.expect("entry"))
            .find(|e| {
                e.path()
                    .is_ok_and(|p| p.to_string_lossy().ends_with(".dat"))
            })
            .map(|e| e.raw_file_position() as usize)
            .expect("a tensor");
        let mut big = bytes.clone();
        // 16384 x 16384 f32 declared: 1 GiB, consistent in itself, in a file of 8 KB.
        big[at + 4..at + 8].copy_from_slice(&(1u32 << 30).to_le_bytes());
        big[at + 8..at + 12].copy_from_slice(&2u32.to_le_bytes());
        big[at + 12..at + 16].copy_from_slice(&16384u32.to_le_bytes());
        big[at + 16..at + 20].copy_from_slice(&16384u32.to_le_bytes());
        let err = from_bytes(&big).expect_err("refused").to_string();
        assert!(err.contains("declares 1073741824 bytes"), "{err}");
        let mut odd = bytes.clone();
        odd[at + 50] = 1; // a vendor's tensor type
        let err = from_bytes(&odd).expect_err("refused").to_string();
        assert!(err.contains("never writes"), "{err}");

        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([2, 512])).expect("source");
        let shape = ShapeFact::from_dims([65536.to_dim(), 2.to_dim(), 512.to_dim()]);
        let y = model
            .wire_node(
                "grow",
                tract_nnef::tract_core::ops::array::MultiBroadcastTo { shape },
                &[x],
            )
            .expect("grow");
        model.select_output_outlets(&y).expect("output");
        let err = from_bytes(&to_bytes(&model).expect("write"))
            .expect_err("refused")
            .to_string();
        assert!(err.contains("more than 33554432 values"), "{err}");
        // The networks facegate ships are well inside both bounds.
        assert!(from_bytes(&bytes).is_ok());
    }

    fn small_model() -> Vec<u8> {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([2, 512])).expect("source");
        let w: Vec<f32> = (0..2 * 512)
            .map(|i| if i % 512 == 3 { 127.0 } else { (i % 200) as f32 - 100.0 } * 0.01)
            .collect();
        let w = model
            .add_const("w", Tensor::from_shape(&[2, 512], &w).expect("shape"))
            .expect("w");
        let y = model
            .wire_node("add", tract_nnef::tract_core::ops::math::add(), &[x, w])
            .expect("add");
        let g = model.add_const("g", tensor1(&[1f32; 512])).expect("g");
        let b = model.add_const("b", tensor1(&[0f32; 512])).expect("b");
        let y = model
            .wire_node("ln", LayerNormLast::new(1e-5), &[y[0], g, b])
            .expect("ln");
        let y = model
            .wire_node(
                "gelu",
                tract_nnef::tract_core::ops::element_wise::ElementWiseOp(
                    Box::new(GeluExact {}),
                    None,
                ),
                &y,
            )
            .expect("gelu");
        model.select_output_outlets(&y).expect("output");
        to_bytes(&model).expect("write")
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// A damaged file (bytes changed, the end cut off) is an error or a model, never a
        /// panic: the door would read these files from a signed bundle, but a bundle signed
        /// by a faulty laptop must not take the door down.
        #[test]
        fn a_damaged_file_never_panics(
            edits in proptest::collection::vec((0usize..1 << 16, proptest::prelude::any::<u8>()), 1..8),
            cut in 0usize..1 << 16,
        ) {
            let mut bytes = small_model();
            // Most of a tar is padding and tensor data: aim half the edits at graph.nnef's text.
            for (k, (at, value)) in edits.into_iter().enumerate() {
                let at = if k % 2 == 0 { 512 + at % 1024 } else { at % bytes.len() };
                bytes[at] = value;
            }
            bytes.truncate(bytes.len() - cut % (bytes.len() / 4));
            let _ = from_bytes(&bytes);
        }
    }

    #[test]
    fn bytes_that_are_not_a_model_are_an_error() {
        for bytes in [&b""[..], b"\x1f\x8b", b"not a tar at all", &[0u8; 1024]] {
            assert!(from_bytes(bytes).is_err());
        }
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1])).expect("source");
        model.select_output_outlets(&[x]).expect("output");
        let bytes = to_bytes(&model).expect("write");
        // Cut inside graph.nnef (after its 512-byte tar header): the text ends mid-graph.
        assert!(from_bytes(&bytes[..520]).is_err(), "a truncated tar");
        assert!(with_input_size(&model, 250, 320).is_err());
    }

    #[test]
    fn the_pinned_door_form_of_yunet_is_what_the_laptop_writes_and_only_yunet_loads_as_one() {
        use crate::detect::Detector;
        use crate::model_files::YUNET_DOOR;
        let dir = default_dir();
        let onnx = YUNET
            .read_verified(&dir)
            .expect("run `facegate models fetch`");
        let door = door_form(&YUNET, &onnx).expect("door form");
        assert_eq!(crate::model_files::sha256_hex(&door), YUNET_DOOR.sha256);
        assert!(Detector::from_bytes(&door, Default::default()).is_ok());
        // The ONNX file itself, and another network's door form, are not a detector.
        assert!(Detector::from_bytes(&onnx, Default::default()).is_err());
        let spec = crate::refine::NET;
        let other =
            crate::small_cnn::Runner::decluttered(spec, "refiner", &read(crate::refine::FILE))
                .and_then(|m| to_bytes(&m).map_err(|e| crate::Error::load("refiner", e)))
                .expect("refiner");
        assert!(Detector::from_bytes(&other, Default::default()).is_err());
        // ...nor a small network's door form for another input size.
        assert!(
            crate::small_cnn::Runner::from_door_form(crate::liveness::NET, "x", &other).is_err()
        );
        assert!(crate::small_cnn::Runner::from_door_form(spec, "refiner", &other).is_ok());
        // Another file's bytes, or a file with no door form, are refused.
        assert!(door_form(&crate::model_files::SFACE, &onnx).is_err());
        assert!(door_form(&YUNET_DOOR, &door).is_err());
    }
}
