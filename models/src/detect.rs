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
    model: InferenceModel,
    config: DetectorConfig,
    plans: Mutex<Vec<(InputSize, Plan)>>,
}

impl Detector {
    /// Parses YuNet from verified bytes (see [`crate::model_files::YUNET`]).
    pub fn from_bytes(bytes: &[u8], config: DetectorConfig) -> Result<Self> {
        let names: Vec<String> = STRIDES
            .iter()
            .flat_map(|s| ["cls", "obj", "bbox", "kps"].map(|k| format!("{k}_{s}")))
            .collect();
        let model = crate::ops::onnx()
            .with_ignore_output_shapes(true)
            .with_ignore_value_info(true)
            .model_for_read(&mut &bytes[..])
            .and_then(|m| m.with_outputs_by_name(&names))
            .map_err(|e| Error::load(MODEL, e))?;
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
        let plan = self
            .model
            .clone()
            .with_input_fact(0, f32::fact([1, 3, h, w]).into())
            .and_then(|m| m.into_optimized())
            .and_then(crate::ops::with_own_ops)
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

/// Shrinks (never enlarges) `image` so its longest side is at most `max_side`, pads it to
/// multiples of 32 and lays it out as YuNet wants: 1x3xHxW, B,G,R, raw 0..255.
pub fn prepare(image: &RgbImage, max_side: u32) -> DetectorInput {
    let (w, h) = image.dimensions();
    let scale = (max_side as f64 / w.max(h) as f64).min(1.0);
    let resized;
    let src = if scale < 1.0 {
        let nw = ((w as f64 * scale + 0.5).floor() as u32).max(1);
        let nh = ((h as f64 * scale + 0.5).floor() as u32).max(1);
        resized = resize_bilinear(image, nw, nh);
        &resized
    } else {
        image
    };
    let (nw, nh) = (src.width() as usize, src.height() as usize);
    let (pw, ph) = (nw.div_ceil(32) * 32, nh.div_ceil(32) * 32);
    let mut data = vec![0f32; 3 * ph * pw];
    let plane = ph * pw;
    for (x, y, p) in src.enumerate_pixels() {
        let i = y as usize * pw + x as usize;
        data[i] = p[2] as f32;
        data[plane + i] = p[1] as f32;
        data[2 * plane + i] = p[0] as f32;
    }
    let tensor = tract_ndarray::Array4::from_shape_vec((1, 3, ph, pw), data)
        .map(|a| a.into_tensor())
        .unwrap_or_else(|_| Tensor::zero::<f32>(&[1, 3, ph, pw]).expect("zero tensor"));
    DetectorInput { tensor, scale }
}

/// OpenCV `INTER_LINEAR` resize: 2-tap bilinear with half-pixel centres, edges clamped, no
/// antialiasing, rounded to u8.
pub fn resize_bilinear(src: &RgbImage, nw: u32, nh: u32) -> RgbImage {
    let taps = |dst: u32, src_len: u32| -> Vec<(usize, usize, f32)> {
        let ratio = src_len as f64 / dst as f64;
        (0..dst)
            .map(|d| {
                let s = (d as f64 + 0.5) * ratio - 0.5;
                let mut i0 = s.floor() as i64;
                let mut f = (s - i0 as f64) as f32;
                if i0 < 0 {
                    i0 = 0;
                    f = 0.0;
                }
                let last = src_len as i64 - 1;
                if i0 >= last {
                    i0 = last;
                    f = 0.0;
                }
                let i1 = (i0 + 1).min(last);
                (i0 as usize, i1 as usize, f)
            })
            .collect()
    };
    let (xt, yt) = (taps(nw, src.width()), taps(nh, src.height()));
    let sw = src.width() as usize;
    let raw = src.as_raw();
    let mut out = RgbImage::new(nw, nh);
    for (dy, &(y0, y1, fy)) in yt.iter().enumerate() {
        for (dx, &(x0, x1, fx)) in xt.iter().enumerate() {
            let px = out.get_pixel_mut(dx as u32, dy as u32);
            for c in 0..3 {
                let at = |x: usize, y: usize| raw[(y * sw + x) * 3 + c] as f32;
                let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
                let bot = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
                px[c] = (top * (1.0 - fy) + bot * fy).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
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
}
