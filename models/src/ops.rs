//! facegate's own tract operators, swapped into a plan after tract has optimised it.
//!
//! Why: tract 0.23.9 has a vectorised 2x2 max-pool only for stride 1; the stride-2 pools of
//! YuNet (and of the liveness and mask-state networks) fall to a scalar loop with bounds checks
//! on every tap, 20% of YuNet's time in tract's own profile (docs/PERFORMANCE.md). The
//! replacement is plain safe Rust written so the compiler vectorises it for x86 and NEON:
//! the two rows of each window are folded first (contiguous, one `max` per lane), then each
//! pair of neighbours in the folded row (a de-interleave the compiler turns into shuffles).
//! Checked in the emitted assembly (docs/PERFORMANCE.md): `maxps` and `shufps` on x86_64,
//! `ld2`, `fcmgt` and `bsl` on four lanes on aarch64 NEON; on armv7 (Rust's target has no
//! NEON by default) a scalar compare and move per value, still without tract's bounds checks.

mod depthwise;
mod gelu;
mod pointwise;
mod prelu;

use depthwise::swap_depthwise;
use gelu::swap_gelus;
use pointwise::swap_pointwise;
use prelu::swap_prelus;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{OptMaxPool, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_hir::internal::{
    Expansion, InferenceOp, InferenceResult, Solver, TensorProxy, check_input_arity,
    check_output_arity, expand,
};

/// The ONNX op type `rewrite::layernorm_as_fused` writes for a LayerNorm over the last axis.
pub const LAYER_NORM_LAST: &str = "FacegateLayerNormLast";

/// tract's ONNX loader that also reads the node types facegate's rewrites write.
pub fn onnx() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    onnx.op_register
        .insert(LAYER_NORM_LAST, parse_layer_norm_last);
    onnx
}

/// `(x - mean) / sqrt(var + epsilon) * weight + bias` over the last axis of an f32 tensor in
/// one pass per row (the row is contiguous), where the ONNX graph had nine nodes and tract
/// ran a reduction, a broadcast subtraction, a second reduction and an element-wise chain.
/// Inputs: x, weight and bias of the last axis' length. `epsilon` is kept as its bits so the
/// op can be `Eq` and `Hash`.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct LayerNormLast {
    pub(crate) epsilon_bits: u32,
}

impl LayerNormLast {
    /// The op for this epsilon.
    pub fn new(epsilon: f32) -> Self {
        Self {
            epsilon_bits: epsilon.to_bits(),
        }
    }
}

impl Op for LayerNormLast {
    fn name(&self) -> StaticName {
        "facegate.LayerNormLast".into()
    }

    op_as_typed_op!();
}

impl EvalOp for LayerNormLast {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, weight, bias) = args_3!(inputs);
        let c = *x
            .shape()
            .last()
            .context("LayerNormLast wants a rank >= 1 input")?;
        let (weight, bias) = (weight.try_as_plain_ram()?, bias.try_as_plain_ram()?);
        let (weight, bias) = (weight.as_slice::<f32>()?, bias.as_slice::<f32>()?);
        ensure!(
            weight.len() == c && bias.len() == c,
            "LayerNormLast: weight {} and bias {} for {c} channels",
            weight.len(),
            bias.len()
        );
        let plain = x.try_as_plain_ram()?;
        let src = plain.as_slice::<f32>()?;
        let epsilon = f32::from_bits(self.epsilon_bits);
        let y = written_f32(x.shape(), |out| {
            if c > 0 {
                layer_norm_rows(src, out, weight, bias, epsilon);
            }
            Ok(())
        })?;
        Ok(tvec!(y))
    }
}

impl TypedOp for LayerNormLast {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 3, "LayerNormLast wants x, weight and bias");
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// Normalises each row of `weight.len()` values of `src` into `out`.
fn layer_norm_rows(src: &[f32], out: &mut [f32], weight: &[f32], bias: &[f32], epsilon: f32) {
    let c = weight.len();
    let n = c as f32;
    for (row, out_row) in src.chunks_exact(c).zip(out.chunks_exact_mut(c)) {
        let mean = sum8(row, |v| v) / n;
        for (o, &v) in out_row.iter_mut().zip(row) {
            *o = v - mean;
        }
        let var = sum8(out_row, |d| d * d) / n;
        let scale = (var + epsilon).sqrt();
        for ((o, &w), &b) in out_row.iter_mut().zip(weight).zip(bias) {
            *o = *o / scale * w + b;
        }
    }
}

/// The sum of `f` over `values` in eight running sums: a float sum in one running total
/// cannot be reordered, so the compiler would add one value at a time; eight independent
/// totals become one vector register's lanes.
#[inline(always)]
fn sum8(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += f(v);
        }
    }
    acc.iter().sum::<f32>() + rest.iter().map(|&v| f(v)).sum::<f32>()
}

/// The ONNX side of [`LayerNormLast`]: reads `epsilon` from the node written by the rewrite.
fn parse_layer_norm_last(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let epsilon: f32 = node.get_attr("epsilon")?;
    Ok((
        expand(LayerNormLastExpansion(LayerNormLast::new(epsilon))),
        vec![],
    ))
}

/// How tract's inference model carries [`LayerNormLast`] until it becomes typed.
#[derive(Debug, Clone, Hash)]
struct LayerNormLastExpansion(LayerNormLast);

impl Expansion for LayerNormLastExpansion {
    fn name(&self) -> StaticName {
        "facegate.LayerNormLast".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 3)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.0.clone(), inputs)
    }
}

/// A 2x2 max-pool with stride 2 and no padding over f32 NCHW: output `[n, c, h/2, w/2]`
/// (an odd last row or column is dropped, as tract's `Valid` padding does).
#[derive(Debug, Clone, Default, Hash, PartialEq, Eq)]
pub struct MaxPool2x2;

impl Op for MaxPool2x2 {
    fn name(&self) -> StaticName {
        "facegate.MaxPool2x2".into()
    }

    op_as_typed_op!();
}

impl EvalOp for MaxPool2x2 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let &[n, c, h, w] = input.shape() else {
            bail!(
                "MaxPool2x2 wants a rank-4 NCHW input, got {:?}",
                input.shape()
            );
        };
        let plain = input.try_as_plain_ram()?;
        let src = plain.as_slice::<f32>()?;
        let (oh, ow) = (h / 2, w / 2);
        let y = written_f32(&[n, c, oh, ow], |out| {
            maxpool_2x2_s2(src, out, h, w);
            Ok(())
        })?;
        Ok(tvec!(y))
    }
}

impl TypedOp for MaxPool2x2 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = &inputs[0].shape;
        ensure!(shape.rank() == 4, "MaxPool2x2 wants a rank-4 NCHW input");
        let out = [
            shape[0].clone(),
            shape[1].clone(),
            shape[2].clone() / 2,
            shape[3].clone() / 2,
        ];
        Ok(tvec!(f32::fact(out)))
    }

    as_op!();
}

/// Max over each 2x2 window at stride 2 of every `h x w` plane in `src` (planes back to back),
/// into `out` (planes of `h/2 x w/2`, back to back).
fn maxpool_2x2_s2(src: &[f32], out: &mut [f32], h: usize, w: usize) {
    let (oh, ow) = (h / 2, w / 2);
    if oh == 0 || ow == 0 {
        return;
    }
    let mut folded = vec![0f32; 2 * ow];
    for (plane, out_plane) in src.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
        for (pair, out_row) in plane
            .chunks_exact(2 * w)
            .zip(out_plane.chunks_exact_mut(ow))
        {
            let (top, bottom) = pair.split_at(w);
            for ((f, &a), &b) in folded.iter_mut().zip(top).zip(bottom) {
                *f = max(a, b);
            }
            for (o, p) in out_row.iter_mut().zip(folded.chunks_exact(2)) {
                *o = max(p[0], p[1]);
            }
        }
    }
}

/// A loaded network typed, optimised and with facegate's operators swapped in where they
/// compute the same: the depthwise and small 1x1 convolutions before tract's optimiser (it
/// would make them its own operators, whose fields are private), the max-pools and GELUs
/// after it.
pub fn optimised(model: InferenceModel) -> TractResult<TypedModel> {
    optimised_typed(model.into_typed()?)
}

/// [`optimised`] for a network that is typed already (one read from tract's NNEF form,
/// [`crate::nnef`]).
pub fn optimised_typed(model: TypedModel) -> TractResult<TypedModel> {
    let mut model = decluttered_typed(model)?;
    swap_depthwise(&mut model)?;
    swap_prelus(&mut model)?;
    swap_pointwise(&mut model)?;
    let mut model = model.into_optimized()?;
    swap_max_pools(&mut model)?;
    swap_gelus(&mut model)?;
    Ok(model)
}

/// A loaded network typed and decluttered, the form [`crate::nnef`] writes: what every door
/// network is before facegate's swaps and tract's optimiser.
pub fn decluttered(model: InferenceModel) -> TractResult<TypedModel> {
    decluttered_typed(model.into_typed()?)
}

fn decluttered_typed(model: TypedModel) -> TractResult<TypedModel> {
    // Before decluttering, which would evaluate one on constants (decluttering never adds one).
    refuse_spectral(&model)?;
    model.into_decluttered()
}

/// Refuses a network with a spectral operator (ONNX DFT or STFT). Why: facegate builds tract
/// without rustfft's transforms (patches/rustfft: 1.1 MiB of the door's code for operators no
/// facegate network has), so such a network would only ever answer NaN; it is better named
/// when it is loaded than refused at its first face.
fn refuse_spectral(model: &TypedModel) -> TractResult<()> {
    use tract_onnx::tract_core::ops::fft::{Fft, Stft};
    match model
        .nodes()
        .iter()
        .find(|n| n.op_is::<Fft>() || n.op_is::<Stft>())
    {
        Some(node) => bail!(
            "node {:?} is a spectral operator ({}), which facegate does not carry: no face \
             network needs one",
            node.name,
            node.op.name()
        ),
        None => Ok(()),
    }
}

/// As [`optimised`], but leaving depthwise convolutions and GELUs to tract (the door before
/// they were facegate's), for the benches to time both in one run.
#[cfg(feature = "testdata")]
pub fn optimised_by_tract(model: InferenceModel) -> TractResult<TypedModel> {
    let mut model = model.into_optimized()?;
    swap_max_pools(&mut model)?;
    Ok(model)
}

/// A loop body run by `pulp::Arch::dispatch`, compiled once per instruction set so it gets the
/// widest vectors the CPU has (AVX2 on x86, where the build's baseline is SSE2).
///
/// Why a wrapper: a closure handed to `dispatch` directly is called through its `FnOnce`
/// shim, which the compiler kept as one function built for the baseline (the AVX2 entry
/// just jumped to it: no `ymm` register in the loop, seen in the disassembly). Called as
/// `FnMut` from inside the always-inlined `with_simd`, the closure's body (which must be
/// `#[inline(always)]`, as must every function and closure it calls in the hot loop) is
/// inlined into each instruction set's entry. The depthwise loop is written without fused
/// multiply-adds (the compiler may not contract a multiply and an add), so every set gives the
/// same values; the 1x1 loop fuses them where the set has them ([`WidestLanes`]).
pub(crate) struct Widest<F>(pub F);

impl<F: FnMut()> pulp::WithSimd for Widest<F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let mut body = self.0;
        body()
    }
}

/// [`Widest`] for a body that picks its arithmetic by the instruction set it was compiled for:
/// it is handed the number of f32 lanes (4 for SSE2 and NEON, 8 for AVX2, which comes with
/// fused multiply-adds), a constant in each entry, so the branches on it fold away.
pub(crate) struct WidestLanes<F>(pub F);

impl<F: FnMut(usize)> pulp::WithSimd for WidestLanes<F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let mut body = self.0;
        body(S::F32_LANES)
    }
}

/// A new f32 tensor of `shape`, filled by `write`. facegate's operators write straight into the
/// tensor they return because a tensor made from a vector is a copy of it
/// (`Tensor::from_datum`); it is zeroed first, as safe Rust has no uninitialised tensor.
pub(crate) fn written_f32(
    shape: &[usize],
    write: impl FnOnce(&mut [f32]) -> TractResult<()>,
) -> TractResult<TValue> {
    let mut y = Tensor::zero::<f32>(shape)?;
    {
        let mut plain = y.try_as_plain_ram_mut()?;
        write(plain.as_slice_mut::<f32>()?)?;
    }
    Ok(y.into_tvalue())
}

/// The larger of two values, as a comparison rather than `f32::max`: the same for every
/// number, and it compiles to one vector instruction where `f32::max` (IEEE maxNum, NaN
/// handling included) needs extra ones on x86 and a libm call per value on 32-bit ARM.
#[inline(always)]
fn max(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

/// Replaces every `OptMaxPool` of `model` that [`MaxPool2x2`] computes exactly (f32, NCHW,
/// 2x2 kernel, stride 2, no dilation, no padding, no index output, concrete shape) with it.
/// Returns how many were replaced.
pub fn swap_max_pools(model: &mut TypedModel) -> TractResult<usize> {
    swap_each(model, |model, node| {
        let Some(pool) = node.op_as::<OptMaxPool>() else {
            return Ok(None);
        };
        let fact = model.outlet_fact(node.inputs[0])?;
        let spec = &pool.pool_spec;
        let fits = pool.with_index_outputs.is_none()
            && fact.datum_type == f32::datum_type()
            && fact.shape.as_concrete().is_some_and(|s| s.len() == 4)
            && spec.data_format == DataFormat::NCHW
            && spec.kernel_shape[..] == [2, 2]
            && spec.strides.as_deref().is_some_and(|s| s == [2, 2])
            && spec.dilations.as_deref().is_none_or(|d| d == [1, 1])
            && match &spec.padding {
                PaddingSpec::Valid => true,
                PaddingSpec::ExplicitOnnxPool(b, a, _) | PaddingSpec::Explicit(b, a) => {
                    b.iter().chain(a).all(|&p| p == 0)
                }
                _ => false,
            }
            // The output shape settles ceil mode on odd sides: ours drops the odd row.
            && MaxPool2x2.output_facts(&[fact])?[0].shape == model.outlet_fact(node.id.into())?.shape;
        Ok(fits.then_some(MaxPool2x2))
    })
}

/// Replaces each node of `model` for which `choose` names an operator by that operator, on the
/// same inputs; returns how many. Every swap of facegate's operators goes through here or
/// through [`patch_each`].
pub(crate) fn swap_each<O: TypedOp>(
    model: &mut TypedModel,
    choose: impl Fn(&TypedModel, &TypedNode) -> TractResult<Option<O>>,
) -> TractResult<usize> {
    patch_each(model, |model, node| {
        choose(model, node)?
            .map(|op| TypedModelPatch::replace_single_op(model, node, &node.inputs, op))
            .transpose()
    })
}

/// Applies, node by node in evaluation order, the patch `patch` makes for it (if any), for a
/// swap that replaces more than one node; returns how many were applied.
pub(crate) fn patch_each(
    model: &mut TypedModel,
    patch: impl Fn(&TypedModel, &TypedNode) -> TractResult<Option<TypedModelPatch>>,
) -> TractResult<usize> {
    let mut swapped = 0;
    for id in model.eval_order()? {
        let Some(patch) = patch(model, model.node(id))? else {
            continue;
        };
        patch.apply(model)?;
        swapped += 1;
    }
    if swapped > 0 {
        model.compact()?;
    }
    Ok(swapped)
}

/// What the operators' tests share: a convolution as tract builds it, running a plan, inputs.
#[cfg(test)]
pub(crate) mod test_util {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;

    /// A decluttered model of one f32 `Conv` (`[C, H, W]` or `[N, C, H, W]` input, an OIHW
    /// kernel of `group`s, stride 1, zero padding top, left, bottom, right) as tract builds it.
    pub fn conv_model(
        shape: &[usize],
        kernel: &Tensor,
        bias: &Tensor,
        pad: [usize; 4],
        group: usize,
    ) -> TypedModel {
        let format = if shape.len() == 4 {
            DataFormat::NCHW
        } else {
            DataFormat::CHW
        };
        conv_model_in(format, shape, kernel, bias, pad, group)
    }

    /// [`conv_model`] with the input in `format` (channels first or last).
    pub fn conv_model_in(
        format: DataFormat,
        shape: &[usize],
        kernel: &Tensor,
        bias: &Tensor,
        pad: [usize; 4],
        group: usize,
    ) -> TypedModel {
        let mut model = TypedModel::default();
        let src = model.add_source("x", f32::fact(shape)).expect("tract");
        let k = model.add_const("k", kernel.clone()).expect("tract");
        let b = model.add_const("b", bias.clone()).expect("tract");
        let spec = PoolSpec {
            data_format: format,
            kernel_shape: kernel.shape()[2..].into(),
            padding: PaddingSpec::Explicit(tvec![pad[0], pad[1]], tvec![pad[2], pad[3]]),
            dilations: None,
            strides: None,
            input_channels: kernel.shape()[1] * group,
            output_channels: kernel.shape()[0],
        };
        let conv = Conv {
            pool_spec: spec,
            kernel_fmt: KernelFormat::OIHW,
            group,
            q_params: None,
        };
        let out = model.wire_node("conv", conv, &[src, k, b]).expect("tract");
        model.select_output_outlets(&out).expect("tract");
        model.into_decluttered().expect("tract")
    }

    /// `model` optimised by tract, run on `input`: its first output.
    pub fn run_optimised(model: TypedModel, input: &Tensor) -> Tensor {
        model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .expect("tract")
            .run(tvec![input.clone().into()])
            .expect("tract")
            .remove(0)
            .into_tensor()
    }

    /// `len` values spread over [-1, 1), different for each seed.
    pub fn values(len: usize, seed: u64) -> Vec<f32> {
        (0..len as u64)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5) - 1.0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tract_onnx::tract_core::ops::cnn::{MaxPool, PoolSpec};

    #[test]
    fn a_network_with_a_spectral_operator_is_refused_when_it_is_loaded() {
        use tract_onnx::pb::{GraphProto, ModelProto, OperatorSetIdProto};
        let value_info = crate::onnx_test_util::value_info;
        let model = ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            }],
            graph: Some(GraphProto {
                node: vec![NodeProto {
                    input: vec!["x".into()],
                    output: vec!["y".into()],
                    op_type: "DFT".into(),
                    ..Default::default()
                }],
                input: vec![value_info("x", &[1, 8, 1])],
                output: vec![value_info("y", &[1, 8, 2])],
                ..Default::default()
            }),
            ..Default::default()
        };
        let bytes = prost::Message::encode_to_vec(&model);
        let loaded = onnx()
            .model_for_read(&mut &bytes[..])
            .and_then(|m| m.with_input_fact(0, f32::fact([1, 8, 1]).into()))
            .expect("tract reads a DFT");
        let err = optimised(loaded).expect_err("refused").to_string();
        assert!(err.contains("spectral operator"), "{err}");
    }

    /// tract's own max-pool, optimised the way a plan is, on `input`.
    fn tract_pool(input: &Tensor) -> Tensor {
        let mut model = TypedModel::default();
        let shape: TVec<usize> = input.shape().into();
        let src = model.add_source("x", f32::fact(&shape)).expect("tract");
        let spec = PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![2, 2],
            padding: PaddingSpec::Valid,
            dilations: None,
            strides: Some(tvec![2, 2]),
            input_channels: shape[1],
            output_channels: shape[1],
        };
        let out = model
            .wire_node("pool", MaxPool::new(spec, None), &[src])
            .expect("tract");
        model.select_output_outlets(&out).expect("tract");
        let plan = model
            .into_optimized()
            .expect("tract")
            .into_runnable()
            .expect("tract");
        let mut result = plan.run(tvec![input.clone().into()]).expect("tract");
        result.remove(0).into_tensor()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Same values and shape as tract's operator, odd sizes and negative values included
        /// (sides from 2: tract's own operator panics on a side of 1).
        #[test]
        fn matches_tract(
            n in 1usize..3, c in 1usize..5, h in 2usize..19, w in 2usize..19, seed in any::<u64>()
        ) {
            let mut state = seed | 1;
            let data: Vec<f32> = (0..n * c * h * w)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % 20_001) as f32 / 100.0 - 100.0
                })
                .collect();
            let input = tract_ndarray::Array4::from_shape_vec((n, c, h, w), data)
                .expect("tract")
                .into_tensor();
            let expected = tract_pool(&input);
            let ours = MaxPool2x2
                .eval(&EvalContext::out_of_plan(), tvec![input.into()])
                .expect("tract")
                .remove(0)
                .into_tensor();
            prop_assert_eq!(ours.shape(), expected.shape());
            let a = ours.try_as_plain_ram().expect("tract").as_slice::<f32>().expect("tract").to_vec();
            let b = expected.try_as_plain_ram().expect("tract").as_slice::<f32>().expect("tract").to_vec();
            prop_assert_eq!(a, b);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The fused LayerNorm against the textbook formula in f64, rows of 1 to 80 values.
        #[test]
        fn layer_norm_matches_the_formula(
            rows in 1usize..6,
            c in 1usize..80,
            values in proptest::collection::vec(-50f32..50.0, 6 * 80 * 3),
        ) {
            let (x, rest) = values.split_at(rows * c);
            let (weight, bias) = (&rest[..c], &rest[c..2 * c]);
            let input = Tensor::from_shape(&[rows, c], x).expect("tract");
            let op = LayerNormLast::new(1e-5);
            let out = op
                .eval(
                    &EvalContext::out_of_plan(),
                    tvec![
                        input.into(),
                        Tensor::from_shape(&[c], weight).expect("tract").into(),
                        Tensor::from_shape(&[c], bias).expect("tract").into(),
                    ],
                )
                .expect("tract")
                .remove(0)
                .into_tensor();
            let got = out.try_as_plain_ram().expect("tract").as_slice::<f32>().expect("tract").to_vec();
            for (r, row) in x.chunks(c).enumerate() {
                let mean = row.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
                let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / c as f64;
                for (i, &v) in row.iter().enumerate() {
                    let want = (v as f64 - mean) / (var + 1e-5).sqrt() * weight[i] as f64 + bias[i] as f64;
                    let have = got[r * c + i] as f64;
                    // f32 rounding of v - mean, amplified by the division when a row is flat.
                    let (w, b) = (weight[i].abs() as f64, bias[i].abs() as f64);
                    let tol = 1e-4 * (1.0 + b + w * (v.abs() as f64 + mean.abs() + 1.0) / (var + 1e-5).sqrt());
                    prop_assert!((have - want).abs() <= tol, "{have} vs {want} (tolerance {tol})");
                }
            }
        }
    }

    /// The swap finds the pool in an optimised plan and the plan computes the same.
    #[test]
    fn swaps_into_an_optimised_model() {
        let input = tract_ndarray::Array4::from_shape_fn((1, 3, 8, 10), |(_, c, y, x)| {
            ((c * 31 + y * 7 + x * 3) % 17) as f32
        })
        .into_tensor();
        let mut model = TypedModel::default();
        let src = model
            .add_source("x", f32::fact([1, 3, 8, 10]))
            .expect("tract");
        let spec = PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![2, 2],
            padding: PaddingSpec::Valid,
            dilations: None,
            strides: Some(tvec![2, 2]),
            input_channels: 3,
            output_channels: 3,
        };
        let out = model
            .wire_node("pool", MaxPool::new(spec, None), &[src])
            .expect("tract");
        model.select_output_outlets(&out).expect("tract");
        let mut optimised = model.into_optimized().expect("tract");
        assert_eq!(swap_max_pools(&mut optimised).expect("tract"), 1);
        let plan = optimised.into_runnable().expect("tract");
        let got = plan
            .run(tvec![input.clone().into()])
            .expect("tract")
            .remove(0)
            .into_tensor();
        assert_eq!(got, tract_pool(&input));
    }
}
