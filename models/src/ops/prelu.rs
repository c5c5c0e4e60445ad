//! PReLU as one in-place pass over channel-first planes, as facegate's own operator.
//!
//! Why: `rewrite.rs` writes each PReLU as `Relu(x) + Conv1x1_depthwise(Min(x, 0), slope)`, which
//! tract runs on its vectorised kernels (SFace went from 44 to 17 ms per face). But `x` then
//! has two readers, so tract's `Min` cannot work in place and copies the whole tensor first
//! (`Tensor::deep_clone` under `OptMinByScalar`: 4.4% of SFace's profile, its first planes are
//! 64x112x112), and the `Max` and the `Add` make more passes. The three nodes and the 1x1
//! depthwise convolution between them are one operator here: `x` stays in place when this is
//! its only reader, and each value is read and written once.
//!
//! The same values, bit for bit: for `x > 0` the rewrite gives `x + slope * 0 = x`, otherwise
//! `0 + slope * x` (the convolution's bias is zero), which is what `slope * x` gives here.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;

use super::depthwise::DepthwiseConv;

/// Inputs: `x` as `[C, H, W]` or `[N, C, H, W]`, the slope `[C]`.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct ChannelPrelu;

impl Op for ChannelPrelu {
    fn name(&self) -> StaticName {
        "facegate.PRelu".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ChannelPrelu {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, slope) = args_2!(inputs);
        let shape = x.shape();
        ensure!(
            matches!(shape.len(), 3 | 4),
            "PRelu wants [C, H, W] or [N, C, H, W], got {shape:?}"
        );
        let (c, plane) = (
            shape[shape.len() - 3],
            shape[shape.len() - 2..].iter().product(),
        );
        let slope_plain = slope.try_as_plain_ram()?;
        let slope = slope_plain.as_slice::<f32>()?;
        ensure!(
            slope.len() == c && plane > 0,
            "PRelu: {} slopes for {c} channels",
            slope.len()
        );
        // In place: tract hands over an input that only this node reads without copying it.
        let mut y = x.into_tensor();
        {
            let mut y_plain = y.try_as_plain_ram_mut()?;
            for (i, values) in y_plain
                .as_slice_mut::<f32>()?
                .chunks_exact_mut(plane)
                .enumerate()
            {
                let a = slope[i % c];
                values
                    .iter_mut()
                    .for_each(|v| *v = if *v < 0.0 { a * *v } else { *v });
            }
        }
        Ok(tvec!(y.into_tvalue()))
    }
}

impl TypedOp for ChannelPrelu {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 2, "PRelu wants x and the slope");
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// A node's only reader, if it has exactly one.
fn only_reader(model: &TypedModel, node: usize) -> Option<&TypedNode> {
    let succ = model.outlet_successors(node.into());
    (succ.len() == 1).then(|| model.node(succ[0].node))
}

/// Whether `node` is the f32 binary `name` (tract's `TypedBinOp`, no output type change).
fn is_bin(node: &TypedNode, name: &str) -> bool {
    node.op_as::<TypedBinOp>()
        .is_some_and(|bin| bin.0.name() == name && bin.1.is_none())
}

/// Whether `outlet` is a constant whose every value is f32 zero.
fn is_zero(model: &TypedModel, outlet: OutletId) -> TractResult<bool> {
    let fact = model.outlet_fact(outlet)?;
    let Some(k) = &fact.konst else {
        return Ok(false);
    };
    if k.datum_type() != f32::datum_type() {
        return Ok(false);
    }
    let plain = k.try_as_plain_ram()?;
    Ok(plain.as_slice::<f32>()?.iter().all(|&v| v == 0.0))
}

/// `(x, slope)` when `add` is the rewrite's PReLU: `Add(Max(x, 0), DepthwiseConv1x1(Min(x, 0),
/// slope, 0))` (either order), every inner node read only by the next, `x` f32 channel-first.
fn prelu_at(model: &TypedModel, add: &TypedNode) -> TractResult<Option<(OutletId, Tensor)>> {
    if !is_bin(add, "Add") || add.inputs.len() != 2 {
        return Ok(None);
    }
    for (relu, conv) in [(0, 1), (1, 0)] {
        let (relu, conv) = (
            model.node(add.inputs[relu].node),
            model.node(add.inputs[conv].node),
        );
        let Some(dw) = conv.op_as::<DepthwiseConv>() else {
            continue;
        };
        if !dw.is_channel_scale() || conv.inputs.len() != 3 || !is_bin(relu, "Max") {
            continue;
        }
        let min = model.node(conv.inputs[0].node);
        if !is_bin(min, "Min") || relu.inputs.len() != 2 || min.inputs.len() != 2 {
            continue;
        }
        let x = relu.inputs[0];
        let reads_once = [relu.id, conv.id, min.id]
            .iter()
            .all(|&n| only_reader(model, n).is_some());
        let fits = reads_once
            && min.inputs[0] == x
            && is_zero(model, relu.inputs[1])?
            && is_zero(model, min.inputs[1])?
            && is_zero(model, conv.inputs[2])?
            && model.outlet_fact(x)?.datum_type == f32::datum_type();
        let (Some(shape), Some(slope)) = (
            model.outlet_fact(x)?.shape.as_concrete(),
            model.outlet_fact(conv.inputs[1])?.konst.clone(),
        ) else {
            continue;
        };
        let c = match shape.len() {
            3 | 4 => shape[shape.len() - 3],
            _ => continue,
        };
        if fits
            && slope.datum_type() == f32::datum_type()
            && slope.len() == c
            && model.outlet_fact(add.id.into())?.shape == model.outlet_fact(x)?.shape
        {
            let slope = slope.clone().into_tensor().into_shape(&[c])?;
            return Ok(Some((x, slope)));
        }
    }
    Ok(None)
}

/// Replaces every PReLU that `rewrite.rs` wrote, once facegate's depthwise convolution is in
/// (`ops::optimised_typed`), by [`ChannelPrelu`]; returns how many.
pub fn swap_prelus(model: &mut TypedModel) -> TractResult<usize> {
    super::patch_each(model, |model, node| {
        let Some((x, slope)) = prelu_at(model, node)? else {
            return Ok(None);
        };
        let mut patch = TypedModelPatch::new("facegate.PRelu");
        let x = patch.tap_model(model, x)?;
        let s = patch.add_const(format!("{}.slope", node.name), slope)?;
        let wire = patch.wire_node(&node.name, ChannelPrelu, &[x, s])?[0];
        patch.shunt_outside(model, node.id.into(), wire)?;
        Ok(Some(patch))
    })
}

#[cfg(test)]
mod tests {
    use super::super::depthwise::swap_depthwise;
    use super::super::test_util::{run_optimised as run, values};
    use super::*;
    use proptest::prelude::*;
    use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::math;
    use tract_onnx::tract_core::ops::nn::DataFormat;

    /// The rewrite's PReLU (`Relu(x) + Conv1x1_depthwise(Min(x, 0), slope)`) as tract declutters
    /// it, with facegate's depthwise convolution swapped in: what `swap_prelus` meets.
    fn rewritten(shape: &[usize], slope: &[f32], add_swapped: bool, min_at: f32) -> TypedModel {
        let c = slope.len();
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(shape)).expect("tract");
        let ones = vec![1usize; shape.len()];
        let zero = model
            .add_const("zero", Tensor::zero::<f32>(&ones).expect("tract"))
            .expect("tract");
        let relu = model
            .wire_node("relu", math::max(), &[x, zero])
            .expect("tract");
        let bound = model
            .add_const(
                "bound",
                tensor0(min_at)
                    .broadcast_into_rank(shape.len())
                    .expect("tract"),
            )
            .expect("tract");
        let neg = model
            .wire_node("neg", math::min(), &[x, bound])
            .expect("tract");
        let k = model
            .add_const(
                "k",
                Tensor::from_shape(&[c, 1, 1, 1], slope).expect("tract"),
            )
            .expect("tract");
        let b = model.add_const("b", tensor0(0f32)).expect("tract");
        let spec = PoolSpec {
            data_format: if shape.len() == 4 {
                DataFormat::NCHW
            } else {
                DataFormat::CHW
            },
            kernel_shape: tvec![1, 1],
            padding: PaddingSpec::Valid,
            dilations: None,
            strides: None,
            input_channels: c,
            output_channels: c,
        };
        let conv = Conv {
            pool_spec: spec,
            kernel_fmt: KernelFormat::OIHW,
            group: c,
            q_params: None,
        };
        let scaled = model
            .wire_node("scaled", conv, &[neg[0], k, b])
            .expect("tract");
        let inputs = if add_swapped {
            [scaled[0], relu[0]]
        } else {
            [relu[0], scaled[0]]
        };
        let y = model.wire_node("y", math::add(), &inputs).expect("tract");
        model.select_output_outlets(&y).expect("tract");
        let mut model = model.into_decluttered().expect("tract");
        swap_depthwise(&mut model).expect("tract");
        model
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Swapped in, the plan computes exactly what the rewrite computes, bit for bit.
        #[test]
        fn equals_the_rewrite_bit_for_bit(
            batch in prop::option::of(1usize..3),
            c in 2usize..9, h in 1usize..9, w in 1usize..9,
            add_swapped in any::<bool>(),
            seed in 0u64..1000,
        ) {
            let shape: Vec<usize> = batch.map(|n| vec![n, c, h, w]).unwrap_or(vec![c, h, w]);
            let volume: usize = shape.iter().product();
            let input = Tensor::from_shape(&shape, &values(volume, seed)).expect("tract");
            let slope = values(c, seed + 1);
            let want = run(rewritten(&shape, &slope, add_swapped, 0.0), &input);
            let mut swapped = rewritten(&shape, &slope, add_swapped, 0.0);
            prop_assert_eq!(swap_prelus(&mut swapped).expect("tract"), 1);
            prop_assert_eq!(swapped.nodes().iter().filter(|n| n.op_is::<ChannelPrelu>()).count(), 1);
            prop_assert_eq!(run(swapped, &input), want);
        }
    }

    /// A `Min` against another value than zero is not the rewrite's PReLU: left alone.
    #[test]
    fn leaves_other_graphs_alone() {
        let mut model = rewritten(&[1, 3, 4, 4], &[0.5, -0.25, 0.1], false, 1.0);
        assert_eq!(swap_prelus(&mut model).expect("tract"), 0);
        let mut model = rewritten(&[1, 3, 4, 4], &[0.5, -0.25, 0.1], false, 0.0);
        assert_eq!(swap_prelus(&mut model).expect("tract"), 1);
    }
}
