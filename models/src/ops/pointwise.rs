//! A 1x1 convolution over channel-first planes (a pointwise convolution), as facegate's own
//! operator.
//!
//! Why: YuNet's 1x1 convolutions have 16 to 64 channels on frame-sized planes. tract turns each
//! into a matrix product whose input it first copies into panels (`pack_t`, 12.7% of YuNet's
//! samples at 640x480) and whose kernel tile is taller than the layer (an 80-row tile for 16 to
//! 64 output channels), so most of each tile's work is thrown away. Here the input is read in
//! place: for each block of 16 positions the layer's input column (every input channel, a few
//! KiB) stays in the first-level cache while every block of 4 output channels is summed from it
//! in registers, a loop the compiler vectorises for x86 and NEON. The products are summed in
//! another order than tract's, so values differ in the last bits; a property test bounds that
//! against tract's own operator.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::axes::Axis;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::einsum::EinSum;

/// Output channels summed together from one read of the input column.
const ROWS: usize = 4;
/// Positions summed together: two 8-lane vectors (AVX) or four 4-lane ones (SSE, NEON).
const COLS: usize = 16;
/// The largest kernel swapped in (`Co * Ci`, 16 KiB): every block of positions reads the whole
/// kernel, which must stay in the first-level cache beside the input column. SFace's wide
/// layers (up to 512 by 1024 on 7x7 planes) are left to tract, whose packed product blocks
/// the kernel too; swapped in, they made SFace 1.3x slower.
const MAX_KERNEL: usize = 64 * 64;
/// Where the compiler vectorises [`tile`]: x86 (SSE2, and AVX2 with fused multiply-adds
/// through [`super::WidestLanes`]) and aarch64 (NEON, fused multiply-adds). The 32-bit door's target allows NEON, but the compiler
/// keeps f32 arithmetic scalar there (NEON's f32 is not IEEE: subnormals flush to zero), so
/// the 32-bit door keeps tract's hand-written NEON kernels.
const ENABLED: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// Inputs: `x` with its channels on axis `channel` (every axis after it is a position), the
/// kernel `[Co, Ci]`, the bias (`Co` values in any shape, or one). Output: `out_shape`, which
/// holds the same values as `x`'s shape with `Co` channels (tract's decluttering may have
/// added or dropped axes of length 1 around the product).
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct PointwiseConv {
    channel: usize,
    out_shape: TVec<usize>,
}

impl Op for PointwiseConv {
    fn name(&self) -> StaticName {
        "facegate.PointwiseConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "channels on axis {}, output {:?}",
            self.channel, self.out_shape
        )])
    }

    op_as_typed_op!();
}

impl PointwiseConv {
    /// `[outer, Ci, positions]` of an input shape and the kernel's `Co`, checked against the
    /// output shape.
    fn geometry(&self, x: &[usize], kernel: &[usize]) -> TractResult<([usize; 3], usize)> {
        ensure!(
            self.channel < x.len() && kernel.len() == 2 && kernel[1] == x[self.channel],
            "PointwiseConv: a {kernel:?} kernel does not fit {x:?} (channels on axis {})",
            self.channel
        );
        let outer: usize = x[..self.channel].iter().product();
        let positions: usize = x[self.channel + 1..].iter().product();
        ensure!(
            self.out_shape.iter().product::<usize>() == outer * kernel[0] * positions,
            "PointwiseConv: {x:?} by {kernel:?} does not give {:?}",
            self.out_shape
        );
        Ok(([outer, x[self.channel], positions], kernel[0]))
    }
}

impl EvalOp for PointwiseConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, kernel, bias) = args_3!(inputs);
        let ([_, ci, p], co) = self.geometry(x.shape(), kernel.shape())?;
        let (k_plain, b_plain) = (kernel.try_as_plain_ram()?, bias.try_as_plain_ram()?);
        let (weights, bias) = (k_plain.as_slice::<f32>()?, b_plain.as_slice::<f32>()?);
        ensure!(
            bias.len() == co || bias.len() == 1,
            "PointwiseConv: {} biases for {co} output channels",
            bias.len()
        );
        let x_plain = x.try_as_plain_ram()?;
        let src = x_plain.as_slice::<f32>()?;
        let y = super::written_f32(&self.out_shape, |out| {
            if ci == 0 || co == 0 || p == 0 {
                out.chunks_exact_mut(p.max(1))
                    .zip(bias.iter().cycle())
                    .for_each(|(plane, &b)| plane.fill(b));
                return Ok(());
            }
            // The widest vectors this CPU has (AVX2 on x86, where the build's baseline is
            // SSE2), see [`super::WidestLanes`].
            let geometry = [ci, co, p];
            pulp::Arch::new().dispatch(super::WidestLanes(
                #[inline(always)]
                |lanes: usize| {
                    for (src, out) in src.chunks_exact(ci * p).zip(out.chunks_exact_mut(co * p)) {
                        if lanes >= 8 {
                            pointwise::<true>(geometry, weights, bias, src, out);
                        } else {
                            pointwise::<false>(geometry, weights, bias, src, out);
                        }
                    }
                },
            ));
            Ok(())
        })?;
        Ok(tvec!(y))
    }
}

impl TypedOp for PointwiseConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 3, "PointwiseConv wants x, kernel and bias");
        let (x, kernel) = (&inputs[0].shape, &inputs[1].shape);
        let x = x
            .as_concrete()
            .context("PointwiseConv wants a concrete input shape")?;
        let kernel = kernel
            .as_concrete()
            .context("PointwiseConv wants a concrete kernel")?;
        self.geometry(x, kernel)?;
        Ok(tvec!(f32::fact(&*self.out_shape)))
    }

    as_op!();
}

/// `out[o][q] = bias[o] + sum over i of weights[o][i] * src[i][q]` for one `[Ci, P]` input and
/// its `[Co, P]` output (`bias` has `Co` values or one). Positions go in blocks of [`COLS`] (the last block overlapping the one
/// before, so it is whole too), and within each block output channels in fours (likewise), so
/// the block of input read for them stays in the first-level cache.
#[inline(always)]
fn pointwise<const FUSED: bool>(
    [ci, co, p]: [usize; 3],
    weights: &[f32],
    bias: &[f32],
    src: &[f32],
    out: &mut [f32],
) {
    if p < COLS {
        // Too few positions for one block: through a zero-padded copy.
        let mut padded = vec![0f32; ci * COLS];
        for (row, from) in padded.chunks_exact_mut(COLS).zip(src.chunks_exact(p)) {
            row[..p].copy_from_slice(from);
        }
        let mut wide = vec![0f32; co * COLS];
        blocks::<FUSED>([ci, co, COLS], weights, bias, &padded, &mut wide);
        for (to, row) in out.chunks_exact_mut(p).zip(wide.chunks_exact(COLS)) {
            to.copy_from_slice(&row[..p]);
        }
    } else {
        blocks::<FUSED>([ci, co, p], weights, bias, src, out);
    }
}

/// [`pointwise`] for at least [`COLS`] positions.
#[inline(always)]
fn blocks<const FUSED: bool>(
    [ci, co, p]: [usize; 3],
    weights: &[f32],
    bias: &[f32],
    src: &[f32],
    out: &mut [f32],
) {
    let starts = |len: usize, block: usize| {
        (0..len.div_ceil(block)).map(move |b| (b * block).min(len - block))
    };
    for q in starts(p, COLS) {
        if co < ROWS {
            for o in 0..co {
                tile::<1, FUSED>([ci, p], o, q, weights, bias, src, out);
            }
        } else {
            for o in starts(co, ROWS) {
                tile::<ROWS, FUSED>([ci, p], o, q, weights, bias, src, out);
            }
        }
    }
}

/// Output channels `o..o + R` at positions `q..q + COLS`, summed in registers.
#[inline(always)]
fn tile<const R: usize, const FUSED: bool>(
    [ci, p]: [usize; 2],
    o: usize,
    q: usize,
    weights: &[f32],
    bias: &[f32],
    src: &[f32],
    out: &mut [f32],
) {
    let rows: [&[f32]; R] = std::array::from_fn(|r| &weights[(o + r) * ci..][..ci]);
    let mut acc = [[0f32; COLS]; R];
    for (i, column) in src.chunks_exact(p).take(ci).enumerate() {
        let x: [f32; COLS] = column[q..q + COLS].try_into().expect("a whole block");
        let w: [f32; R] = std::array::from_fn(|r| rows[r][i]);
        for r in 0..R {
            for j in 0..COLS {
                acc[r][j] = multiply_add::<FUSED>(w[r], x[j], acc[r][j]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        // One bias per output channel, or one for all (read in place: no per-frame copy).
        let b = bias[if bias.len() == 1 { 0 } else { o + r }];
        let to: &mut [f32; COLS] = (&mut out[(o + r) * p + q..][..COLS])
            .try_into()
            .expect("a whole block");
        for (t, &a) in to.iter_mut().zip(acc) {
            *t = a + b;
        }
    }
}

/// `a * b + c`: one fused multiply-add where the instructions have them (`FUSED`: the AVX2
/// entry on x86; always on aarch64, where every core has them, as tract's own NEON kernels use
/// them), half the instructions of a multiply and an add (YuNet 0.9x, docs/PERFORMANCE.md);
/// a multiply and an add in x86's SSE2 baseline, which has none (`mul_add` would call the C
/// library there). Fused sums round once instead of twice, so the values differ from the
/// baseline's in the last bits; the property test bounds both against tract.
#[inline(always)]
fn multiply_add<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED || cfg!(target_arch = "aarch64") {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// What [`fits`] found: the op, which einsum input is `x` (the other is the kernel) and the
/// output's channel axis.
struct Found {
    op: PointwiseConv,
    x_input: usize,
    out_channel: usize,
}

/// The op for a decluttered tract `EinSum` that is a 1x1 convolution [`PointwiseConv`]
/// computes, if it is one: f32, not quantised, a constant `[Co, Ci]` kernel contracted with
/// one axis of `x`, and the axes of `x` before and after that one the same (those longer
/// than 1, in order) as the output's before and after its channels, so both are
/// `[outer, channels, positions]` in memory.
fn fits(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Found>> {
    let Some(einsum) = node.op_as::<EinSum>() else {
        return Ok(None);
    };
    if node.inputs.len() != 2
        || einsum.q_params.is_some()
        || einsum.operating_dt != f32::datum_type()
        || einsum.axes.input_count() != 2
        || einsum.axes.output_count() != 1
    {
        return Ok(None);
    }
    let facts = [
        model.outlet_fact(node.inputs[0])?,
        model.outlet_fact(node.inputs[1])?,
    ];
    let Some(x_input) = (0..2).find(|&i| facts[1 - i].konst.is_some() && facts[1 - i].rank() == 2)
    else {
        return Ok(None);
    };
    let (x, kernel) = (facts[x_input], facts[1 - x_input]);
    let out = model.outlet_fact(node.id.into())?;
    let (Some(x_shape), Some(out_shape)) = (x.shape.as_concrete(), out.shape.as_concrete()) else {
        return Ok(None);
    };
    if x.datum_type != f32::datum_type() || kernel.datum_type != f32::datum_type() {
        return Ok(None);
    }
    let k_slot = InOut::In(1 - x_input);
    let positions = |axis: &Axis, slot: InOut| -> Option<Option<usize>> {
        let at = match slot {
            InOut::In(i) => &axis.inputs[i],
            InOut::Out(i) => &axis.outputs[i],
        };
        match at[..] {
            [] => Some(None),
            [i] => Some(Some(i)),
            _ => None,
        }
    };
    let (mut channel, mut out_channel) = (None, None);
    // (position in x, repr) and (position in the output, repr) of the axes longer than 1.
    let (mut x_axes, mut out_axes) = (vec![], vec![]);
    for axis in einsum.axes.iter_all_axes() {
        let (Some(in_x), Some(in_k), Some(in_out)) = (
            positions(axis, InOut::In(x_input)),
            positions(axis, k_slot),
            positions(axis, InOut::Out(0)),
        ) else {
            return Ok(None);
        };
        match (in_x, in_k, in_out) {
            // The contracted axis: x's channels and the kernel's second axis.
            (Some(c), Some(1), None) => channel = Some(c),
            // The kernel's first axis becomes the output's channels.
            (None, Some(0), Some(c)) => out_channel = Some(c),
            (x_at, None, out_at) => {
                let long = |at: Option<usize>, shape: &[usize]| at.filter(|&i| shape[i] > 1);
                match (long(x_at, x_shape), long(out_at, out_shape)) {
                    (Some(i), Some(o)) => {
                        x_axes.push((i, axis.repr));
                        out_axes.push((o, axis.repr));
                    }
                    (None, None) => {}
                    // An axis longer than 1 on one side only: not a product.
                    _ => return Ok(None),
                }
            }
            _ => return Ok(None),
        }
    }
    let (Some(channel), Some(out_channel)) = (channel, out_channel) else {
        return Ok(None);
    };
    let split = |mut axes: Vec<(usize, char)>, at: usize| {
        axes.sort();
        let (before, after): (Vec<_>, Vec<_>) = axes.into_iter().partition(|&(i, _)| i < at);
        let reprs = |v: Vec<(usize, char)>| v.into_iter().map(|(_, r)| r).collect::<Vec<_>>();
        (reprs(before), reprs(after))
    };
    if split(x_axes, channel) != split(out_axes, out_channel) {
        return Ok(None);
    }
    let op = PointwiseConv {
        channel,
        out_shape: out_shape.into(),
    };
    let Some(kernel_shape) = kernel.shape.as_concrete() else {
        return Ok(None);
    };
    if op.geometry(x_shape, kernel_shape).is_err()
        || kernel_shape.iter().product::<usize>() > MAX_KERNEL
    {
        return Ok(None);
    }
    Ok(Some(Found {
        op,
        x_input,
        out_channel,
    }))
}

/// The bias of a 1x1 convolution as tract's decluttering leaves it: the einsum's only reader
/// is an `Add` of a constant with one value per output channel, on the channel axis (or one
/// value). Returns the `Add` node and the constant's outlet.
fn bias_after(
    model: &TypedModel,
    node: &TypedNode,
    channel: usize,
    co: usize,
) -> TractResult<Option<(usize, OutletId)>> {
    let Some(add) = model.single_succ(node.id)? else {
        return Ok(None);
    };
    let is_add = add
        .op_as::<TypedBinOp>()
        .is_some_and(|bin| bin.0.name() == "Add" && bin.1.is_none());
    if !is_add || add.inputs.len() != 2 || model.outlet_successors(node.id.into()).len() != 1 {
        return Ok(None);
    }
    let other = if add.inputs[0].node == node.id {
        add.inputs[1]
    } else {
        add.inputs[0]
    };
    let fact = model.outlet_fact(other)?;
    let out_rank = model.outlet_fact(add.id.into())?.rank();
    let Some(shape) = fact.shape.as_concrete() else {
        return Ok(None);
    };
    let per_channel = shape.len() <= out_rank && {
        let lead = out_rank - shape.len();
        shape
            .iter()
            .enumerate()
            .all(|(i, &d)| d == 1 || (i + lead == channel && d == co))
    };
    let fits = fact.datum_type == f32::datum_type()
        && fact.konst.is_some()
        && per_channel
        && model.outlet_fact(add.id.into())?.shape == model.outlet_fact(node.id.into())?.shape;
    Ok(fits.then_some((add.id, other)))
}

/// Replaces every 1x1 convolution of a decluttered `model` (an `EinSum` as tract declutters
/// one, see [`fits`]) by [`PointwiseConv`], taking its bias `Add` with it; returns how many.
/// Run before tract's own optimisation, which would turn them into packed matrix products.
pub fn swap_pointwise(model: &mut TypedModel) -> TractResult<usize> {
    if !ENABLED {
        return Ok(0);
    }
    super::patch_each(model, |model, node| {
        let Some(Found {
            op,
            x_input,
            out_channel,
        }) = fits(model, node)?
        else {
            return Ok(None);
        };
        let co = op.out_shape[out_channel];
        let bias = bias_after(model, node, out_channel, co)?;
        let mut patch = TypedModelPatch::new("facegate.PointwiseConv");
        let x = patch.tap_model(model, node.inputs[x_input])?;
        let k = patch.tap_model(model, node.inputs[1 - x_input])?;
        let (b, replaced) = match bias {
            Some((add, b)) => (patch.tap_model(model, b)?, add),
            None => (
                patch.add_const(format!("{}.zero_bias", node.name), tensor0(0f32))?,
                node.id,
            ),
        };
        let wire = patch.wire_node(&node.name, op, &[x, k, b])?[0];
        patch.shunt_outside(model, replaced.into(), wire)?;
        Ok(Some(patch))
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{conv_model, run_optimised as run, values};
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Swapped in, the plan computes what tract's own 1x1 convolution computes, up to the
        /// rounding of another summation order.
        #[test]
        fn equals_tracts_pointwise(
            batch in prop::option::of(1usize..3),
            ci in 2usize..70, co in 1usize..70, h in 1usize..13, w in 1usize..13,
            bias in 0usize..3,
            seed in 0u64..1000,
        ) {
            let shape: Vec<usize> = batch.map(|n| vec![n, ci, h, w]).unwrap_or(vec![ci, h, w]);
            let volume: usize = shape.iter().product();
            let input = Tensor::from_shape(&shape, &values(volume, seed)).expect("tract");
            let kernel = Tensor::from_shape(&[co, ci, 1, 1], &values(co * ci, seed + 1)).expect("tract");
            let bias = match bias {
                0 => tensor0(0f32),
                1 => tensor0(0.25f32),
                _ => tensor1(&values(co, seed + 2)),
            };
            let model = conv_model(&shape, &kernel, &bias, [0; 4], 1);
            let want = run(model.clone(), &input);
            let mut swapped = model;
            // Decluttering drops a single output channel's axis from the kernel, and a kernel
            // larger than `MAX_KERNEL` is better blocked by tract: both left to tract.
            let swaps = swap_pointwise(&mut swapped).expect("tract");
            let ours = ENABLED && co > 1 && co * ci <= MAX_KERNEL;
            prop_assert_eq!(swaps, usize::from(ours));
            prop_assume!(ours);
            let adds = swapped.nodes().iter().filter(|n| n.op_is::<TypedBinOp>()).count();
            prop_assert_eq!(adds, 0, "the bias was not taken in");
            let got = run(swapped, &input);
            prop_assert_eq!(got.shape(), want.shape());
            let (got, want) = (got.try_as_plain_ram().expect("plain"), want.try_as_plain_ram().expect("plain"));
            let (got, want) = (got.as_slice::<f32>().expect("f32"), want.as_slice::<f32>().expect("f32"));
            for (g, w) in got.iter().zip(want) {
                prop_assert!((g - w).abs() <= 1e-5 * (1.0 + ci as f32), "{g} vs {w}");
            }
        }
    }

    /// A grouped 1x1 convolution is not one product, and is left to tract.
    #[test]
    fn leaves_grouped_convolutions_alone() {
        let kernel = Tensor::from_shape(&[4, 1, 1, 1], &values(4, 3)).expect("tract");
        let mut model = conv_model(&[1, 2, 8, 8], &kernel, &tensor0(0f32), [0; 4], 2);
        assert_eq!(swap_pointwise(&mut model).expect("tract"), 0);
    }
}
