//! Face detection with YuNet 2023mar through tract.
//!
//! YuNet is fully convolutional, so one file serves every input size that is a multiple of 32.
//! tract wants concrete shapes for its fastest plans, so we keep one optimised plan per padded
//! input size (a door camera uses one size; a photo import a handful).
//!
//! Pre- and post-processing follow `shared/reference/README.md` exactly: never upscale, resize
//! with OpenCV's half-pixel bilinear rule (no antialiasing; an antialiased resize moved
//! landmarks by up to 1.5 px), pad black at the bottom-right, BGR 0..255, one prior per cell.

use std::sync::{Arc, Mutex};

use image::RgbImage;
use serde::{Deserialize, Serialize};
use tract_onnx::prelude::*;

use crate::geometry::{BBox, nms};
use crate::{Error, Result};

const MODEL: &str = "YuNet";
const STRIDES: [usize; 3] = [8, 16, 32];
/// Plans kept at once; each is a few MB of packed weights.
const MAX_PLANS: usize = 6;

/// One detected face in original image pixels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Face box.
    pub bbox: BBox,
    /// Detector confidence, 0..1.
    pub score: f32,
    /// Eye (image left), eye (image right), nose tip, mouth corner left, mouth corner right.
    pub landmarks: [[f32; 2]; 5],
}

/// Detector settings. The defaults are YuNet's published ones.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectorConfig {
    /// Keep candidates whose score is strictly above this.
    pub score_threshold: f32,
    /// Suppress a candidate whose IoU with a better one is above this.
    pub nms_iou: f32,
    /// Longest side of the network input; larger images are shrunk to it, smaller ones are
    /// never enlarged (tight crops are not detected when upscaled).
    pub max_side: u32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            score_threshold: 0.6,
            nms_iou: 0.3,
            max_side: 640,
        }
    }
}

impl DetectorConfig {
    /// Whether the settings are sane for a door: they arrive in signed bundles, and a typo
    /// (a score threshold of 0, an input side of 100000) must be refused, not run.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(0.3..=0.99).contains(&self.score_threshold) {
            return Err(format!(
                "detector score threshold {} is outside 0.3 to 0.99",
                self.score_threshold
            ));
        }
        if !(0.1..=0.9).contains(&self.nms_iou) {
            return Err(format!(
                "detector NMS IoU {} is outside 0.1 to 0.9",
                self.nms_iou
            ));
        }
        if !(160..=1920).contains(&self.max_side) {
            return Err(format!(
                "detector input side {} is outside 160 to 1920 pixels",
                self.max_side
            ));
        }
        Ok(())
    }
}

/// The detector network input for one image: padded BGR tensor and the shrink factor.
pub struct DetectorInput {
    /// 1x3xHxW, H and W multiples of 32.
    pub tensor: Tensor,
    /// Original-to-input scale `s` (<= 1).
    pub scale: f64,
}

/// Padded network input (height, width).
type InputSize = (usize, usize);
/// An optimised tract plan for one input size.
type Plan = Arc<TypedRunnableModel>;

/// YuNet through tract, with one cached plan per input size.
pub struct Detector {
    /// YuNet typed for any padded input size ([`decluttered_any_size`], read from its door
    /// form): each size's plan fixes the size and optimises.
    model: TypedModel,
    config: DetectorConfig,
    plans: Mutex<Vec<(InputSize, Plan)>>,
}

impl Detector {
    /// Reads YuNet's door form (NNEF, see [`crate::model_files::YUNET_DOOR`]) from verified
    /// bytes. A graph that is not a detector for any padded size (one 1x3x32h x 32w input,
    /// twelve outputs) is refused here rather than at the first frame.
    pub fn from_bytes(bytes: &[u8], config: DetectorConfig) -> Result<Self> {
        let model = crate::nnef::from_bytes(bytes).map_err(|e| Error::load(MODEL, e))?;
        let sized = |m: TypedModel| {
            let f = m.input_fact(0).ok()?;
            Some(f.datum_type == f32::datum_type() && f.shape.as_concrete()? == [1, 3, 32, 32])
        };
        let fits = model.inputs.len() == 1
            && model.outputs.len() == 4 * STRIDES.len()
            && crate::nnef::with_input_size(&model, 32, 32)
                .ok()
                .and_then(sized)
                == Some(true);
        if !fits {
            return Err(Error::load(
                MODEL,
                "not YuNet's door form: one 1x3x(32h)x(32w) input and twelve outputs expected",
            ));
        }
        Ok(Self {
            model,
            config,
            plans: Mutex::new(Vec::new()),
        })
    }

    /// The settings in force.
    pub fn config(&self) -> DetectorConfig {
        self.config
    }

    /// Detects faces, best first.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>> {
        let input = prepare(image, self.config.max_side);
        let shape = input.tensor.shape();
        let (h, w) = (shape[2], shape[3]);
        let plan = self.plan(h, w)?;
        let outputs = plan
            .run(tvec![input.tensor.into()])
            .map_err(|e| Error::inference(MODEL, e))?;
        let mut slices = Vec::with_capacity(12);
        for out in outputs.iter() {
            slices.push(
                out.try_as_plain_ram()
                    .and_then(|v| v.as_slice::<f32>())
                    .map_err(|e| Error::inference(MODEL, e))?,
            );
        }
        Ok(decode(&slices, h, w, input.scale, &self.config))
    }

    /// Returns the plan for an `h`x`w` input, building it on first use.
    fn plan(&self, h: usize, w: usize) -> Result<Arc<TypedRunnableModel>> {
        {
            let plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, p)) = plans.iter().find(|(k, _)| *k == (h, w)) {
                return Ok(p.clone());
            }
        }
        // Built outside the lock: optimising takes ~100 ms and other threads may want other sizes.
        let plan = crate::nnef::with_input_size(&self.model, h, w)
            .and_then(crate::ops::optimised_typed)
            .and_then(|m| m.into_runnable())
            .map_err(|e| Error::load(MODEL, e))?;
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if plans.len() >= MAX_PLANS {
            plans.remove(0);
        }
        plans.push(((h, w), plan.clone()));
        Ok(plan)
    }
}

/// YuNet's ONNX graph with its twelve outputs (scores, objectness, boxes, landmarks per stride).
fn read_onnx(bytes: &[u8]) -> TractResult<InferenceModel> {
    let names: Vec<String> = STRIDES
        .iter()
        .flat_map(|s| ["cls", "obj", "bbox", "kps"].map(|k| format!("{k}_{s}")))
        .collect();
    crate::ops::onnx()
        .with_ignore_output_shapes(true)
        .with_ignore_value_info(true)
        .model_for_read(&mut &bytes[..])
        .and_then(|m| m.with_outputs_by_name(&names))
}

/// YuNet typed and decluttered for any padded input size, `1 x 3 x 32h x 32w` (every input
/// [`prepare`] makes), the form [`crate::nnef`] writes; [`crate::nnef::with_input_size`] fixes
/// `h` and `w`. Why multiples of 32 in the symbols themselves: with a bare height and width,
/// tract's shapes after each stride-2 stage carry rounding terms that its NNEF writer cannot
/// write (a `todo!` in tract-nnef 0.23.9).
pub fn decluttered_any_size(bytes: &[u8]) -> Result<TypedModel> {
    let load = |e| Error::load(MODEL, e);
    let model = read_onnx(bytes).map_err(load)?;
    let (h, w) = (
        model.symbols.sym(crate::nnef::HEIGHT_32),
        model.symbols.sym(crate::nnef::WIDTH_32),
    );
    for s in [&h, &w] {
        model
            .symbols
            .add_assertion(format!("{s}>=1"))
            .map_err(load)?;
    }
    let fact = f32::fact([1.to_dim(), 3.to_dim(), h.to_dim() * 32, w.to_dim() * 32]);
    model
        .with_input_fact(0, fact.into())
        .and_then(crate::ops::decluttered)
        .map_err(load)
}

/// Shrinks (never enlarges) `image` so its longest side is at most `max_side`, pads it to
/// multiples of 32 and lays it out as YuNet wants: 1x3xHxW, B,G,R, raw 0..255.
///
/// The resize writes each finished row straight into the three colour planes: on a door
/// this runs on every frame, and an intermediate image plus per-pixel accessors cost nearly
/// as much as YuNet itself at 320x256 (4.8 against 5.4 ms for a 640x480 frame, one machine).
/// The values are those of [`resize_bilinear`], bit for bit.
pub fn prepare(image: &RgbImage, max_side: u32) -> DetectorInput {
    let (w, h) = image.dimensions();
    let scale = (max_side as f64 / w.max(h) as f64).min(1.0);
    let (nw, nh) = if scale < 1.0 {
        (
            ((w as f64 * scale + 0.5).floor() as u32).max(1),
            ((h as f64 * scale + 0.5).floor() as u32).max(1),
        )
    } else {
        (w, h)
    };
    let (pw, ph) = (
        (nw as usize).div_ceil(32).max(1) * 32,
        (nh as usize).div_ceil(32).max(1) * 32,
    );
    let plane = ph * pw;
    let mut data = vec![0f32; 3 * plane];
    {
        let (b, rest) = data.split_at_mut(plane);
        let (g, r) = rest.split_at_mut(plane);
        let mut put = |y: usize, row: &[u8]| {
            let at = y * pw..y * pw + row.len() / 3;
            let planes = b[at.clone()]
                .iter_mut()
                .zip(&mut g[at.clone()])
                .zip(&mut r[at]);
            for (((b, g), r), p) in planes.zip(row.chunks_exact(3)) {
                *b = p[2] as f32;
                *g = p[1] as f32;
                *r = p[0] as f32;
            }
        };
        if w == 0 || h == 0 {
            // Nothing to lay out: the planes stay black.
        } else if (nw, nh) == (w, h) {
            for (y, row) in image.as_raw().chunks_exact(3 * w as usize).enumerate() {
                put(y, row);
            }
        } else {
            resample_rows(image, nw, nh, put);
        }
    }
    let tensor = tract_ndarray::Array4::from_shape_vec((1, 3, ph, pw), data)
        .map(|a| a.into_tensor())
        .unwrap_or_else(|_| Tensor::zero::<f32>(&[1, 3, ph, pw]).expect("zero tensor"));
    DetectorInput { tensor, scale }
}

/// OpenCV `INTER_LINEAR` resize: 2-tap bilinear with half-pixel centres, edges clamped, no
/// antialiasing, rounded to u8.
pub fn resize_bilinear(src: &RgbImage, nw: u32, nh: u32) -> RgbImage {
    let mut out = RgbImage::new(nw, nh);
    let stride = 3 * nw as usize;
    let buf: &mut [u8] = &mut out;
    resample_rows(src, nw, nh, |y, row| {
        buf[y * stride..(y + 1) * stride].copy_from_slice(row)
    });
    out
}

/// The taps of one axis of [`resize_bilinear`]: for each output index the two source indices
/// and the weight of the second.
fn taps(dst: u32, src_len: u32) -> Vec<(usize, usize, f32)> {
    let ratio = src_len as f64 / dst as f64;
    let last = src_len.max(1) as i64 - 1;
    (0..dst)
        .map(|d| {
            let s = (d as f64 + 0.5) * ratio - 0.5;
            let mut i0 = s.floor() as i64;
            let mut f = (s - i0 as f64) as f32;
            if i0 < 0 {
                i0 = 0;
                f = 0.0;
            }
            if i0 >= last {
                i0 = last;
                f = 0.0;
            }
            let i1 = (i0 + 1).min(last);
            (i0 as usize, i1 as usize, f)
        })
        .collect()
}

/// Resizes `src` to `nw`x`nh` (see [`resize_bilinear`]) one output row at a time, handing
/// each finished row of RGB bytes to `emit` with its index. Blends each source row across
/// first, then the two rows down, in the same order of operations as the formula, so every
/// value is the same as the per-pixel form's. An empty source gives nothing.
fn resample_rows(src: &RgbImage, nw: u32, nh: u32, mut emit: impl FnMut(usize, &[u8])) {
    if src.width() == 0 || src.height() == 0 {
        return;
    }
    let (xt, yt) = (taps(nw, src.width()), taps(nh, src.height()));
    let line = 3 * src.width() as usize;
    let raw = src.as_raw();
    let n = 3 * nw as usize;
    let mut row = vec![0u8; n];
    if xt.iter().chain(&yt).all(|&(_, _, f)| f == 0.5) {
        return halves(raw, line, &xt, &yt, &mut row, emit);
    }
    let (mut top, mut bot) = (vec![0f32; n], vec![0f32; n]);
    let across = |y: usize, out: &mut [f32]| {
        let line = &raw[y * line..(y + 1) * line];
        for (o, &(x0, x1, fx)) in out.chunks_exact_mut(3).zip(&xt) {
            let (a, b) = (&line[3 * x0..3 * x0 + 3], &line[3 * x1..3 * x1 + 3]);
            for c in 0..3 {
                o[c] = a[c] as f32 * (1.0 - fx) + b[c] as f32 * fx;
            }
        }
    };
    for (dy, &(y0, y1, fy)) in yt.iter().enumerate() {
        across(y0, &mut top);
        across(y1, &mut bot);
        for ((r, t), b) in row.iter_mut().zip(&top).zip(&bot) {
            *r = round_to_u8(t * (1.0 - fy) + b * fy);
        }
        emit(dy, &row);
    }
}

/// [`resample_rows`] when every tap weighs one half (even shrink factors, the door's 640x480
/// to 320x240 among them): then each value is exactly the mean of four bytes, `(a + b + c +
/// d) / 4` in f32 with no rounding on the way, and rounding it half away from zero is
/// `(a + b + c + d + 2) / 4` in integers: the same byte, and a 640x480 frame prepared in
/// 0.50 ms instead of 2.35 ms.
fn halves(
    raw: &[u8],
    line: usize,
    xt: &[(usize, usize, f32)],
    yt: &[(usize, usize, f32)],
    row: &mut [u8],
    mut emit: impl FnMut(usize, &[u8]),
) {
    for (dy, &(y0, y1, _)) in yt.iter().enumerate() {
        let (a, b) = (
            &raw[y0 * line..(y0 + 1) * line],
            &raw[y1 * line..(y1 + 1) * line],
        );
        for (o, &(x0, x1, _)) in row.chunks_exact_mut(3).zip(xt) {
            for (c, o) in o.iter_mut().enumerate() {
                let (l, r) = (3 * x0 + c, 3 * x1 + c);
                let sum = u16::from(a[l]) + u16::from(a[r]) + u16::from(b[l]) + u16::from(b[r]);
                *o = ((sum + 2) >> 2) as u8;
            }
        }
        emit(dy, row);
    }
}

/// `v.round().clamp(0.0, 255.0) as u8` (halves away from zero) without `f32::round`, which
/// x86_64's baseline instruction set lacks: it was a library call per value, a quarter of the
/// resize's time. Clamping first changes nothing: every value that rounds outside 0..=255
/// clamps to the same end.
fn round_to_u8(v: f32) -> u8 {
    let v = v.clamp(0.0, 255.0);
    let whole = v as u32;
    (whole + u32::from(v - whole as f32 >= 0.5)) as u8
}

/// Turns the 12 YuNet outputs (cls, obj, bbox, kps per stride 8, 16, 32) into detections in
/// original pixels.
pub fn decode(
    outputs: &[&[f32]],
    h: usize,
    w: usize,
    scale: f64,
    config: &DetectorConfig,
) -> Vec<Detection> {
    let mut boxes = Vec::new();
    let mut scores = Vec::new();
    let mut marks = Vec::new();
    for (si, &stride) in STRIDES.iter().enumerate() {
        let (cls, obj, bbox, kps) = (
            outputs[4 * si],
            outputs[4 * si + 1],
            outputs[4 * si + 2],
            outputs[4 * si + 3],
        );
        let cols = w / stride;
        let n = (h / stride) * cols;
        let st = stride as f32;
        for i in 0..n.min(cls.len()).min(obj.len()) {
            let score = (cls[i].clamp(0.0, 1.0) * obj[i].clamp(0.0, 1.0)).sqrt();
            if score.is_nan() || score <= config.score_threshold {
                continue;
            }
            let (r, c) = ((i / cols) as f32, (i % cols) as f32);
            let b = &bbox[4 * i..4 * i + 4];
            let (cx, cy) = ((c + b[0]) * st, (r + b[1]) * st);
            let (bw, bh) = (b[2].exp() * st, b[3].exp() * st);
            boxes.push(BBox {
                x: cx - bw / 2.0,
                y: cy - bh / 2.0,
                w: bw,
                h: bh,
            });
            scores.push(score);
            let k = &kps[10 * i..10 * i + 10];
            let mut lm = [[0f32; 2]; 5];
            for (j, p) in lm.iter_mut().enumerate() {
                *p = [(k[2 * j] + c) * st, (k[2 * j + 1] + r) * st];
            }
            marks.push(lm);
        }
    }
    let back = (1.0 / scale) as f32;
    nms(&boxes, &scores, config.nms_iou)
        .into_iter()
        .map(|i| Detection {
            bbox: boxes[i].scaled(back),
            score: scores[i],
            landmarks: marks[i].map(|[x, y]| [x * back, y * back]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_images_are_padded_not_scaled() {
        let img = RgbImage::from_pixel(250, 250, image::Rgb([1, 2, 3]));
        let input = prepare(&img, 640);
        assert_eq!(input.scale, 1.0);
        assert_eq!(input.tensor.shape(), &[1, 3, 256, 256]);
        let data = input
            .tensor
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec()))
            .expect("f32");
        // BGR order, padding black.
        assert_eq!(data[0], 3.0);
        assert_eq!(data[256 * 256], 2.0);
        assert_eq!(data[2 * 256 * 256], 1.0);
        assert_eq!(data[255], 0.0);
    }

    #[test]
    fn empty_images_give_black_planes() {
        for (w, h) in [(0, 0), (0, 700), (900, 0)] {
            let input = prepare(&RgbImage::new(w, h), 320);
            let shape = input.tensor.shape().to_vec();
            assert_eq!((shape[0], shape[1]), (1, 3), "{w}x{h}");
            assert!(shape[2] >= 32 && shape[3] >= 32, "{w}x{h}: {shape:?}");
        }
    }

    #[test]
    fn large_images_shrink_to_max_side() {
        let img = RgbImage::new(1280, 720);
        let input = prepare(&img, 640);
        assert_eq!(input.scale, 0.5);
        assert_eq!(input.tensor.shape(), &[1, 3, 384, 640]);
    }

    #[test]
    fn resize_of_constant_is_constant() {
        let img = RgbImage::from_pixel(100, 60, image::Rgb([9, 99, 199]));
        let out = resize_bilinear(&img, 37, 23);
        assert!(out.pixels().all(|p| p.0 == [9, 99, 199]));
    }

    #[test]
    fn halving_averages_pixel_pairs() {
        // Half-pixel centres: dst 0 samples src 0.5, i.e. the mean of pixels 0 and 1.
        let mut img = RgbImage::new(4, 2);
        for (x, _, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 10) as u8; 3]);
        }
        let out = resize_bilinear(&img, 2, 1);
        assert_eq!(out.get_pixel(0, 0).0[0], 5);
        assert_eq!(out.get_pixel(1, 0).0[0], 25);
    }

    /// The resize as first written, pixel by pixel: what the row-wise form must equal.
    fn resize_per_pixel(src: &RgbImage, nw: u32, nh: u32) -> RgbImage {
        let (xt, yt) = (taps(nw, src.width()), taps(nh, src.height()));
        let sw = src.width() as usize;
        let raw = src.as_raw();
        RgbImage::from_fn(nw, nh, |dx, dy| {
            let ((x0, x1, fx), (y0, y1, fy)) = (xt[dx as usize], yt[dy as usize]);
            image::Rgb(std::array::from_fn(|c| {
                let at = |x: usize, y: usize| raw[(y * sw + x) * 3 + c] as f32;
                let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
                let bot = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
                (top * (1.0 - fy) + bot * fy).round().clamp(0.0, 255.0) as u8
            }))
        })
    }

    #[test]
    fn rounding_to_bytes_matches_rounding_then_clamping() {
        let edge = [
            0.5 - f32::EPSILON / 4.0,
            0.5,
            2.5,
            254.5,
            254.49998,
            255.00002,
            -0.3,
            -0.5,
            -7.0,
            300.0,
            f32::NAN,
        ];
        let steps = (0..=2_600_000).map(|i| i as f32 * 1e-4 - 1.0);
        for v in edge.into_iter().chain(steps) {
            assert_eq!(round_to_u8(v), v.round().clamp(0.0, 255.0) as u8, "{v}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Row-wise resize and the fused planar layout give the per-pixel values exactly,
        /// shrinking or enlarging, odd sizes included.
        #[test]
        fn row_wise_resize_and_layout_equal_the_per_pixel_formula(
            w in 1u32..90, h in 1u32..90, nw in 1u32..70, nh in 1u32..70, seed in 0u32..1000,
        ) {
            let img = RgbImage::from_fn(w, h, |x, y| {
                let v = (x * 31 + y * 17 + seed * 7) ^ (x * y + seed);
                image::Rgb([v as u8, (v >> 3) as u8, (v >> 5) as u8])
            });
            let expected = resize_per_pixel(&img, nw, nh);
            proptest::prop_assert_eq!(&resize_bilinear(&img, nw, nh), &expected);
            // Halving and quartering (the integer path when the sides divide).
            for k in [2, 4] {
                let (kw, kh) = ((w / k).max(1), (h / k).max(1));
                proptest::prop_assert_eq!(&resize_bilinear(&img, kw, kh), &resize_per_pixel(&img, kw, kh));
            }
            let input = prepare(&img, 40);
            let shape = input.tensor.shape().to_vec();
            let (ph, pw) = (shape[2], shape[3]);
            let data = input.tensor.try_as_plain_ram().and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec())).expect("f32");
            let shrunk = if input.scale < 1.0 {
                let nw = ((w as f64 * input.scale + 0.5).floor() as u32).max(1);
                let nh = ((h as f64 * input.scale + 0.5).floor() as u32).max(1);
                resize_per_pixel(&img, nw, nh)
            } else {
                img.clone()
            };
            for y in 0..ph {
                for x in 0..pw {
                    let p = shrunk.get_pixel_checked(x as u32, y as u32).map_or([0; 3], |p| p.0);
                    for (c, v) in [p[2], p[1], p[0]].into_iter().enumerate() {
                        proptest::prop_assert_eq!(data[c * ph * pw + y * pw + x], v as f32);
                    }
                }
            }
        }
    }
}
