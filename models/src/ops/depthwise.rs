//! A stride-1 depthwise convolution over channel-first planes, as facegate's own operator.
//!
//! Why: YuNet (20 of them) and EdgeFace (21, kernels 3x3 to 9x9) spend much of their time in
//! depthwise convolutions, and tract-core's driver for them (a zone walk around a small
//! kernel) is no longer vectorised once tract-core is built for size, which the door profile
//! wants (tract-core is 40% of the door's code; it was 10.4% of the door's samples that way,
//! docs/PERFORMANCE.md). Here each plane is copied once into a zero-bordered buffer and every
//! kernel tap is one multiply-add of a contiguous input row into the output row, a loop the
//! compiler vectorises for x86 and NEON; this crate is always built at full optimisation.
//! The taps are summed in another order than tract's, so values differ in the last bits;
//! a property test bounds that against tract's own operator.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Inputs: `x` as `[C, H, W]` or `[N, C, H, W]` (or, `channel_last`, `[H, W, C]` or `[N, H, W,
/// C]`), the kernel `[C, 1, kh, kw]`, the bias `[C]` or a scalar. Stride 1, no dilation, zero
/// padding of `pad` rows and columns (top, left, bottom, right).
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct DepthwiseConv {
    kernel: [usize; 2],
    pad: [usize; 4],
    /// Channels last: YuNet's head, where decluttering moved the layout change in front of its
    /// 4- and 10-channel convolutions (tract's generic depthwise loop took 3.7% of YuNet's time
    /// there). Computed through a channel-first copy: those tensors are small.
    channel_last: bool,
}

impl Op for DepthwiseConv {
    fn name(&self) -> StaticName {
        "facegate.DepthwiseConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "kernel {:?}, padding {:?}, channels {}",
            self.kernel,
            self.pad,
            if self.channel_last { "last" } else { "first" }
        )])
    }

    op_as_typed_op!();
}

impl DepthwiseConv {
    /// `[N, C, H, W]` of an input shape (N is 1 for `[C, H, W]`) and the output's `[OH, OW]`.
    fn geometry(&self, shape: &[usize]) -> TractResult<([usize; 4], [usize; 2])> {
        let nchw = match (shape, self.channel_last) {
            (&[c, h, w], false) | (&[h, w, c], true) => [1, c, h, w],
            (&[n, c, h, w], false) | (&[n, h, w, c], true) => [n, c, h, w],
            _ => bail!("DepthwiseConv wants a 3-D or 4-D input, got {shape:?}"),
        };
        let [kh, kw] = self.kernel;
        let [top, left, bottom, right] = self.pad;
        let (ph, pw) = (nchw[2] + top + bottom, nchw[3] + left + right);
        ensure!(
            nchw[2] > 0 && nchw[3] > 0 && kh > 0 && kw > 0 && ph >= kh && pw >= kw,
            "DepthwiseConv: a {kh}x{kw} kernel does not fit {shape:?} padded by {:?}",
            self.pad
        );
        Ok((nchw, [ph - kh + 1, pw - kw + 1]))
    }
}

impl DepthwiseConv {
    /// A 1x1 kernel on channel-first planes without padding: a scale per channel (what the
    /// PReLU rewrite writes, which `super::prelu` takes whole).
    pub(super) fn is_channel_scale(&self) -> bool {
        self.kernel == [1, 1] && self.pad == [0; 4] && !self.channel_last
    }

    /// The output shape of an input shape whose geometry gave `[oh, ow]`.
    fn output_shape(&self, shape: &[usize], [oh, ow]: [usize; 2]) -> TVec<usize> {
        let mut out: TVec<usize> = shape.into();
        let rank = out.len();
        let at = if self.channel_last {
            rank - 3
        } else {
            rank - 2
        };
        out[at] = oh;
        out[at + 1] = ow;
        out
    }

    /// Channels last through a channel-first copy of the input and of the output.
    fn eval_channel_last(&self, x: &Tensor, taps: &[f32], bias: &[f32]) -> TractResult<Tensor> {
        let ([n, c, h, w], [oh, ow]) = self.geometry(x.shape())?;
        let x_plain = x.try_as_plain_ram()?;
        let src = x_plain.as_slice::<f32>()?;
        let mut planar = vec![0f32; n * c * h * w];
        for (b, image) in src.chunks_exact(h * w * c).enumerate() {
            for (p, pixel) in image.chunks_exact(c).enumerate() {
                for (ch, v) in pixel.iter().enumerate() {
                    planar[(b * c + ch) * h * w + p] = *v;
                }
            }
        }
        // A padded 3x3 keeps the plane's size: then the copy is convolved in place, one
        // allocation fewer per node and frame.
        let mut out = Vec::new();
        let out = if (oh, ow) == (h, w) {
            self.planes(None, &mut planar, [n, c, h, w], [oh, ow], taps, bias);
            &planar
        } else {
            out.resize(n * c * oh * ow, 0f32);
            self.planes(Some(&planar), &mut out, [n, c, h, w], [oh, ow], taps, bias);
            &out
        };
        let mut y = Tensor::zero::<f32>(&self.output_shape(x.shape(), [oh, ow]))?;
        let mut y_plain = y.try_as_plain_ram_mut()?;
        let dst = y_plain.as_slice_mut::<f32>()?;
        for (b, image) in dst.chunks_exact_mut(oh * ow * c).enumerate() {
            for (p, pixel) in image.chunks_exact_mut(c).enumerate() {
                for (ch, v) in pixel.iter_mut().enumerate() {
                    *v = out[(b * c + ch) * oh * ow + p];
                }
            }
        }
        Ok(y)
    }

    /// Channel-first planes: `out` (`n * c` planes of `oh x ow`) from `src` (planes of `h x w`),
    /// or from `out` itself when `src` is `None` (in place, same size).
    fn planes(
        &self,
        src: Option<&[f32]>,
        out: &mut [f32],
        [n, c, h, w]: [usize; 4],
        [oh, ow]: [usize; 2],
        taps: &[f32],
        bias: &[f32],
    ) {
        let [kh, kw] = self.kernel;
        let bias_of = inlined(
            #[inline(always)]
            |ch: usize| if bias.len() == 1 { bias[0] } else { bias[ch] },
        );
        if self.kernel == [1, 1] && self.pad == [0; 4] {
            // A per-channel scale and shift (what is left of a PReLU rewrite that `super::prelu`
            // did not take whole). Stride 1 without padding keeps the shape, so both callers
            // run it in place; a source is copied in first.
            if let Some(src) = src {
                out.copy_from_slice(&src[..n * c * h * w]);
            }
            for (i, values) in out.chunks_exact_mut(oh * ow).enumerate().take(n * c) {
                let (tap, b) = (taps[i % c], bias_of(i % c));
                values.iter_mut().for_each(|v| *v = b + tap * *v);
            }
        } else {
            let mut plane = Plane::new([h, w], self.pad);
            // The widest vectors this CPU has (AVX2 on x86, where the build's baseline is
            // SSE2), see [`super::Widest`]: every function and closure the loop calls is
            // inlined into each instruction set's entry (a closure left as a call is built for
            // the baseline, which is why an earlier AVX2 entry measured no faster).
            pulp::Arch::new().dispatch(super::Widest(
                #[inline(always)]
                || {
                    for (i, values) in out.chunks_exact_mut(oh * ow).enumerate().take(n * c) {
                        let ch = i % c;
                        match src {
                            Some(src) => plane.fill(&src[i * h * w..][..h * w]),
                            None => plane.fill(values),
                        }
                        let taps = &taps[ch * kh * kw..][..kh * kw];
                        plane.convolve(taps, self.kernel, bias_of(ch), values, [oh, ow]);
                    }
                },
            ));
        }
    }
}

impl EvalOp for DepthwiseConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, kernel, bias) = args_3!(inputs);
        let ([n, c, h, w], [oh, ow]) = self.geometry(x.shape())?;
        let [kh, kw] = self.kernel;
        let (k_plain, b_plain) = (kernel.try_as_plain_ram()?, bias.try_as_plain_ram()?);
        let (taps, bias) = (k_plain.as_slice::<f32>()?, b_plain.as_slice::<f32>()?);
        ensure!(
            taps.len() == c * kh * kw && (bias.len() == c || bias.len() == 1),
            "DepthwiseConv: {} taps and {} biases for {c} channels of {kh}x{kw}",
            taps.len(),
            bias.len()
        );
        if self.channel_last {
            return Ok(tvec!(self.eval_channel_last(&x, taps, bias)?.into_tvalue()));
        }
        let shape = self.output_shape(x.shape(), [oh, ow]);
        // Written in place when the output has the input's shape (a padded 3x3, a 1x1): each
        // plane is read (into the bordered copy, or value by value for a 1x1) before its
        // outputs overwrite it, and tract hands over an input that only this node reads
        // without copying it, so a frame-sized output needs no allocation. (A tensor built
        // from a vector is a copy of it, `Tensor::from_datum`.)
        let (mut y, input) = if (oh, ow) == (h, w) {
            (x.into_tensor(), None)
        } else {
            (Tensor::zero::<f32>(&shape)?, Some(x))
        };
        let x_plain = input.as_ref().map(|x| x.try_as_plain_ram()).transpose()?;
        let src = x_plain.as_ref().map(|p| p.as_slice::<f32>()).transpose()?;
        let mut y_plain = y.try_as_plain_ram_mut()?;
        let out = y_plain.as_slice_mut::<f32>()?;
        self.planes(src, out, [n, c, h, w], [oh, ow], taps, bias);
        Ok(tvec!(y.into_tvalue()))
    }
}

impl TypedOp for DepthwiseConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 3, "DepthwiseConv wants x, kernel and bias");
        let shape = inputs[0]
            .shape
            .as_concrete()
            .context("DepthwiseConv wants a concrete input shape")?;
        let (_, out) = self.geometry(shape)?;
        Ok(tvec!(f32::fact(self.output_shape(shape, out))))
    }

    as_op!();
}

/// Output values computed together: two 4-lane vectors (SSE, NEON) or one 8-lane (AVX).
const LANES: usize = 8;

/// One input plane inside a zero border, reused for every plane of a tensor (the border is
/// written once; each plane overwrites only the inside). Each row has `LANES` more zeros on
/// the right, so the last block of a row reads whole blocks too.
struct Plane {
    values: Vec<f32>,
    inner: [usize; 2],
    top_left: [usize; 2],
    width: usize,
}

impl Plane {
    fn new([h, w]: [usize; 2], [top, left, bottom, right]: [usize; 4]) -> Self {
        let width = w + left + right + LANES;
        Self {
            values: vec![0f32; (h + top + bottom) * width],
            inner: [h, w],
            top_left: [top, left],
            width,
        }
    }

    /// Copies an `h x w` plane inside the border.
    #[inline(always)]
    fn fill(&mut self, input: &[f32]) {
        let [_, w] = self.inner;
        let [top, left] = self.top_left;
        for (y, row) in input.chunks_exact(w).enumerate() {
            let start = (top + y) * self.width + left;
            copy_row(&mut self.values[start..start + w], row);
        }
    }

    /// `output` (rows of `ow`) = `bias` + the kernel's taps over the bordered plane, `LANES`
    /// outputs at a time: the running sums stay in registers across all taps. The square
    /// kernels the door's networks have get a version where the kernel's size is a constant,
    /// so the taps live in registers and every loop but the one over blocks unrolls.
    #[inline(always)]
    fn convolve(
        &self,
        taps: &[f32],
        kernel: [usize; 2],
        bias: f32,
        output: &mut [f32],
        out_size: [usize; 2],
    ) {
        match kernel {
            [1, 1] => self.convolve_k::<1, 1, { LANES }, 2, true>(taps, bias, output, out_size),
            [3, 3] => self.convolve_k::<3, 3, { LANES + 2 }, 4, true>(taps, bias, output, out_size),
            [5, 5] => {
                self.convolve_k::<5, 5, { LANES + 4 }, 6, false>(taps, bias, output, out_size)
            }
            [7, 7] => {
                self.convolve_k::<7, 7, { LANES + 6 }, 8, false>(taps, bias, output, out_size)
            }
            [9, 9] => {
                self.convolve_k::<9, 9, { LANES + 8 }, 10, false>(taps, bias, output, out_size)
            }
            _ => self.convolve_any(taps, kernel, bias, output, out_size),
        }
    }

    /// [`Self::convolve`] for a `KH x KW` kernel; `WIN` is `LANES + KW - 1`, the inputs one
    /// block of outputs reads from a row, and `RIN` is `KH + 1`. With `PAIRS`, output rows go
    /// in pairs read from the `KH + 1` input rows they share: two independent sums per block
    /// (one alone is a chain of `KH * KW` dependent additions, which the CPU waits on) and
    /// each input block loaded once for both. Measured (docs/PERFORMANCE.md): pairs made
    /// YuNet's 3x3s 1.2x faster and EdgeFace's 5x5 to 9x9s on small planes slower, so the
    /// larger kernels go a row at a time. Each output sums its taps in the same order either
    /// way, so the values are the same.
    #[inline(always)]
    fn convolve_k<
        const KH: usize,
        const KW: usize,
        const WIN: usize,
        const RIN: usize,
        const PAIRS: bool,
    >(
        &self,
        taps: &[f32],
        bias: f32,
        output: &mut [f32],
        [oh, ow]: [usize; 2],
    ) {
        debug_assert_eq!((WIN, RIN), (LANES + KW - 1, KH + 1));
        let mut k = [[0f32; KW]; KH];
        for (row, src) in k.iter_mut().zip(taps.chunks_exact(KW)) {
            row.copy_from_slice(src);
        }
        let row_at = |y: usize| &self.values[y * self.width..][..self.width];
        let pairs = if PAIRS { oh / 2 } else { 0 };
        for (pair, out_rows) in output.chunks_exact_mut(2 * ow).take(pairs).enumerate() {
            let rows: [&[f32]; RIN] = std::array::from_fn(|ky| row_at(2 * pair + ky));
            let (first, second) = out_rows.split_at_mut(ow);
            put_rows(
                first,
                second,
                #[inline(always)]
                |x: usize| {
                    let mut sums = [[bias; LANES]; 2];
                    for (ky, row) in rows.iter().enumerate() {
                        let win: &[f32; WIN] = row[x..x + WIN].try_into().expect("WIN values");
                        for (out, sum) in sums.iter_mut().enumerate() {
                            // Input row `ky` is kernel row `ky` for the first output row and
                            // `ky - 1` for the second.
                            let Some(row_taps) = ky.checked_sub(out).and_then(|r| k.get(r)) else {
                                continue;
                            };
                            for (kx, &tap) in row_taps.iter().enumerate() {
                                for (l, a) in sum.iter_mut().enumerate() {
                                    *a += tap * win[kx + l];
                                }
                            }
                        }
                    }
                    sums
                },
            );
        }
        // The rows left: all of them without pairs, the last of an odd height with.
        for y in 2 * pairs..oh {
            let rows: [&[f32]; KH] = std::array::from_fn(|ky| row_at(y + ky));
            let out_row = &mut output[y * ow..][..ow];
            put_row(
                out_row,
                #[inline(always)]
                |x: usize| {
                    let mut acc = [bias; LANES];
                    for (row, row_taps) in rows.iter().zip(&k) {
                        let win: &[f32; WIN] = row[x..x + WIN].try_into().expect("WIN values");
                        for (kx, &tap) in row_taps.iter().enumerate() {
                            for (l, a) in acc.iter_mut().enumerate() {
                                *a += tap * win[kx + l];
                            }
                        }
                    }
                    acc
                },
            );
        }
    }

    /// [`Self::convolve`] for any kernel size.
    #[inline(always)]
    fn convolve_any(
        &self,
        taps: &[f32],
        [kh, kw]: [usize; 2],
        bias: f32,
        output: &mut [f32],
        [oh, ow]: [usize; 2],
    ) {
        for (y, out_row) in output.chunks_exact_mut(ow).take(oh).enumerate() {
            let rows = &self.values[y * self.width..(y + kh) * self.width];
            let block = inlined(
                #[inline(always)]
                |x: usize| {
                    let mut acc = [bias; LANES];
                    for (row, row_taps) in rows.chunks_exact(self.width).zip(taps.chunks_exact(kw))
                    {
                        for (kx, &tap) in row_taps.iter().enumerate() {
                            let src = &row[x + kx..x + kx + LANES];
                            for (a, &v) in acc.iter_mut().zip(src) {
                                *a += tap * v;
                            }
                        }
                    }
                    acc
                },
            );
            put_row(out_row, block);
        }
    }
}

/// `dst.copy_from_slice(src)` without a call: the rows are short (3 to 80 values) and there
/// are one per row of every channel, so `copy_from_slice`'s `memcpy` of a run-time length
/// cost more in its call than in its copying (about 7% of EdgeFace's samples). Whole blocks
/// of fixed size are moved as such and the row's end as one more block that overlaps the
/// last (the same values written twice).
#[inline(always)]
fn copy_row(dst: &mut [f32], src: &[f32]) {
    fn blocks<const B: usize>(dst: &mut [f32], src: &[f32]) {
        let n = src.len();
        let mut x = 0;
        while x + B <= n {
            let block: &[f32; B] = src[x..x + B].try_into().expect("B values");
            let out: &mut [f32; B] = (&mut dst[x..x + B]).try_into().expect("B values");
            *out = *block;
            x += B;
        }
        if x < n {
            let block: &[f32; B] = src[n - B..n].try_into().expect("B values");
            let out: &mut [f32; B] = (&mut dst[n - B..n]).try_into().expect("B values");
            *out = *block;
        }
    }
    debug_assert_eq!(dst.len(), src.len());
    match src.len() {
        n if n >= LANES => blocks::<LANES>(dst, src),
        n if n >= 4 => blocks::<4>(dst, src),
        _ => dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s),
    }
}

/// Fills a row of outputs with `block(x)`, the `LANES` outputs from column `x`. Whole blocks
/// are stored as such (two or one vector stores). The row's end is one more whole block that
/// overlaps the last (its first outputs computed twice, the same values), or, in a row
/// shorter than a block, the block's first values: a store of a run-time length became a
/// `memcpy` call per row, about a tenth of YuNet's samples and of EdgeFace's.
#[inline(always)]
fn put_row(out_row: &mut [f32], block: impl Fn(usize) -> [f32; LANES]) {
    let ow = out_row.len();
    if ow < LANES {
        copy_row(out_row, &block(0)[..ow]);
        return;
    }
    let whole = ow - ow % LANES;
    for (i, out) in out_row[..whole].chunks_exact_mut(LANES).enumerate() {
        let out: &mut [f32; LANES] = out.try_into().expect("LANES values");
        *out = block(i * LANES);
    }
    if whole < ow {
        let out: &mut [f32; LANES] = (&mut out_row[ow - LANES..])
            .try_into()
            .expect("LANES values");
        *out = block(ow - LANES);
    }
}

/// [`put_row`] for two rows at once: `block(x)` gives both rows' `LANES` outputs from column
/// `x`.
#[inline(always)]
fn put_rows(first: &mut [f32], second: &mut [f32], block: impl Fn(usize) -> [[f32; LANES]; 2]) {
    let ow = first.len();
    if ow < LANES {
        let [a, b] = block(0);
        copy_row(first, &a[..ow]);
        copy_row(second, &b[..ow]);
        return;
    }
    // Whole blocks, then the row's end as one more block overlapping the last.
    let last = ow - LANES;
    let mut x = 0;
    loop {
        let at = x.min(last);
        let [a, b] = block(at);
        let out: &mut [f32; LANES] = (&mut first[at..at + LANES]).try_into().expect("LANES");
        *out = a;
        let out: &mut [f32; LANES] = (&mut second[at..at + LANES]).try_into().expect("LANES");
        *out = b;
        if at == last {
            break;
        }
        x += LANES;
    }
}

/// `f` itself: a closure can carry `#[inline(always)]` only where it is an argument, and one
/// the loop calls must be inlined into each instruction set's entry ([`super::Widest`]).
#[inline(always)]
fn inlined<A, T>(f: impl Fn(A) -> T) -> impl Fn(A) -> T {
    f
}

/// The op for a decluttered tract `Conv` node that [`DepthwiseConv`] computes, if it is one:
/// f32, one input and one output channel per group, channel-first planes, stride 1, no
/// dilation, explicit padding, an OIHW kernel and a bias that are constants.
fn fits(model: &TypedModel, node: &TypedNode) -> TractResult<Option<DepthwiseConv>> {
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    let (x, kernel, bias) = match node.inputs[..] {
        [x, k, b] => (
            model.outlet_fact(x)?,
            model.outlet_fact(k)?,
            model.outlet_fact(b)?,
        ),
        _ => return Ok(None),
    };
    let channels = spec.input_channels;
    let form_fits = conv.q_params.is_none()
        && conv.kernel_fmt == KernelFormat::OIHW
        && conv.group == channels
        && spec.output_channels == channels
        && matches!(
            spec.data_format,
            DataFormat::NCHW | DataFormat::CHW | DataFormat::NHWC | DataFormat::HWC
        )
        && spec.kernel_shape.len() == 2
        && spec.strides.as_deref().is_none_or(|s| s == [1, 1])
        && spec.dilations.as_deref().is_none_or(|d| d == [1, 1])
        && [x, kernel, bias]
            .iter()
            .all(|f| f.datum_type == f32::datum_type())
        && kernel.konst.is_some()
        && bias.konst.is_some()
        && kernel.shape.as_concrete()
            == Some(&[channels, 1, spec.kernel_shape[0], spec.kernel_shape[1]][..])
        && (bias.rank() == 0 || bias.shape.as_concrete() == Some(&[channels][..]));
    if !form_fits {
        return Ok(None);
    }
    let pad = match &spec.padding {
        PaddingSpec::Valid => [0; 4],
        PaddingSpec::Explicit(b, a) | PaddingSpec::ExplicitOnnxPool(b, a, _)
            if b.len() == 2 && a.len() == 2 =>
        {
            [b[0], b[1], a[0], a[1]]
        }
        _ => return Ok(None),
    };
    let op = DepthwiseConv {
        kernel: [spec.kernel_shape[0], spec.kernel_shape[1]],
        pad,
        channel_last: matches!(spec.data_format, DataFormat::NHWC | DataFormat::HWC),
    };
    // The output shape settles the padding's rounding: ours must be tract's.
    let tracts = &model.outlet_fact(node.id.into())?.shape;
    let same = op
        .output_facts(&[x, kernel, bias])
        .is_ok_and(|f| &f[0].shape == tracts);
    Ok(same.then_some(op))
}

/// Replaces every depthwise `Conv` of a decluttered `model` that [`DepthwiseConv`] computes;
/// returns how many. Run before tract's own optimisation, which would turn them into its
/// depthwise operator.
pub fn swap_depthwise(model: &mut TypedModel) -> TractResult<usize> {
    super::swap_each(model, fits)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{conv_model, conv_model_in, run_optimised as run, values};
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Swapped in, the plan computes what tract's own depthwise convolution computes, up to
        /// the rounding of another summation order.
        #[test]
        fn equals_tracts_depthwise(
            batch in prop::option::of(1usize..3),
            c in 1usize..9, h in 1usize..13, w in 1usize..13,
            (kh, kw) in prop_oneof![Just((1usize, 1usize)), Just((3, 3)), (1usize..10, 1usize..10)],
            pad in prop_oneof![Just([0usize; 4]), Just([1; 4]), prop::array::uniform4(0usize..5)],
            scalar_bias in any::<bool>(),
            channel_last in any::<bool>(),
            seed in 0u64..1000,
        ) {
            prop_assume!(h + pad[0] + pad[2] >= kh && w + pad[1] + pad[3] >= kw);
            let (shape, format) = match (batch, channel_last) {
                (Some(n), false) => (vec![n, c, h, w], DataFormat::NCHW),
                (None, false) => (vec![c, h, w], DataFormat::CHW),
                (Some(n), true) => (vec![n, h, w, c], DataFormat::NHWC),
                (None, true) => (vec![h, w, c], DataFormat::HWC),
            };
            let volume: usize = shape.iter().product();
            let input = Tensor::from_shape(&shape, &values(volume, seed)).expect("tract");
            let kernel = Tensor::from_shape(&[c, 1, kh, kw], &values(c * kh * kw, seed + 1)).expect("tract");
            let bias = if scalar_bias { tensor0(0.25f32) } else { tensor1(&values(c, seed + 2)) };
            let model = conv_model_in(format, &shape, &kernel, &bias, pad, c);
            let want = run(model.clone(), &input);
            // Decluttering turns a one-channel 1x1 convolution into a product: nothing to swap.
            let convs = model.nodes().iter().filter(|n| n.op_is::<Conv>()).count();
            prop_assert!(convs == 1 || (c == 1 && kh == 1 && kw == 1), "{convs} convolutions");
            let mut swapped = model;
            prop_assert_eq!(swap_depthwise(&mut swapped).expect("tract"), convs);
            let got = run(swapped, &input);
            prop_assert_eq!(got.shape(), want.shape());
            let (got, want) = (got.try_as_plain_ram().expect("plain"), want.try_as_plain_ram().expect("plain"));
            let (got, want) = (got.as_slice::<f32>().expect("f32"), want.as_slice::<f32>().expect("f32"));
            for (g, w) in got.iter().zip(want) {
                prop_assert!((g - w).abs() <= 1e-5 * (1.0 + (kh * kw) as f32), "{g} vs {w}");
            }
        }
    }

    /// Every row length copies exactly, the blocks' overlap included, and nothing beside it.
    #[test]
    fn copy_row_copies_every_length() {
        for n in 0..80 {
            let src = values(n, n as u64);
            let mut dst = vec![f32::NAN; n + 2];
            copy_row(&mut dst[1..n + 1], &src);
            assert_eq!(&dst[1..n + 1], &src[..], "length {n}");
            assert!(
                dst[0].is_nan() && dst[n + 1].is_nan(),
                "length {n} wrote outside"
            );
        }
    }

    /// A strided convolution is left to tract.
    #[test]
    fn leaves_strided_convolutions_alone() {
        let kernel = Tensor::from_shape(&[2, 1, 3, 3], &values(18, 3)).expect("tract");
        let mut model = conv_model(&[1, 2, 8, 8], &kernel, &tensor1(&[0f32, 1.0]), [1; 4], 2);
        let id = model
            .nodes()
            .iter()
            .find(|n| n.op_is::<Conv>())
            .expect("a conv")
            .id;
        let conv = model.node_mut(id).op_as_mut::<Conv>().expect("a conv");
        conv.pool_spec.strides = Some(tvec![2, 2]);
        assert_eq!(swap_depthwise(&mut model).expect("tract"), 0);
    }
}
