//! Five-point face alignment to the 112x112 ArcFace template.
//!
//! Both embedders were trained on faces warped so that eyes, nose and mouth corners land on the
//! same template pixels; the warp is a similarity (no shear, no reflection) fitted by least
//! squares, sampled bilinearly from the ORIGINAL image (never the detector's shrunken copy, which
//! would throw away resolution) with a black border, as OpenCV's `warpAffine` does.

use image::RgbImage;

use crate::detect::Detection;
use crate::geometry::{Similarity, umeyama};

/// Side of the aligned crop.
pub const CROP: u32 = 112;

/// Template landmark positions in the 112x112 crop, same order as YuNet's landmarks.
pub const TEMPLATE: [[f64; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// The similarity mapping image coordinates to crop coordinates for these landmarks, or `None`
/// when the landmarks are degenerate.
pub fn transform_for(landmarks: &[[f32; 2]; 5]) -> Option<Similarity> {
    let src = landmarks.map(|[x, y]| [x as f64, y as f64]);
    umeyama(&src, &TEMPLATE)
}

/// Warps `image` into a `CROP`x`CROP` face crop with `to_crop` (image -> crop coordinates).
/// Returns `None` when the transform is singular.
///
/// Bilinear, black outside the image. Pixels whose four neighbours are all inside (nearly all
/// of them) take a branch-free path; both paths add the same products in the same order, so
/// the result is bit-identical whichever path a pixel takes.
pub fn warp(image: &RgbImage, to_crop: &Similarity) -> Option<RgbImage> {
    warp_sized(image, to_crop, CROP)
}

/// [`warp`] into a `side`x`side` output: the host keeps a wider crop around each face (the
/// template shifted into its middle) so that augmentation can rotate and shift it later without
/// black corners, and without the original photo.
pub fn warp_sized(image: &RgbImage, to_crop: &Similarity, side: u32) -> Option<RgbImage> {
    let inv = to_crop.inverse()?;
    let m = inv.m;
    let (w, h) = (image.width() as i64, image.height() as i64);
    let raw = image.as_raw();
    let n = side as usize;
    let mut out = vec![0u8; n * n * 3];
    let stride = 3 * w as usize;
    for v in 0..n {
        let vf = v as f64;
        for u in 0..n {
            let uf = u as f64;
            let sx = m[0][0] * uf + m[0][1] * vf + m[0][2];
            let sy = m[1][0] * uf + m[1][1] * vf + m[1][2];
            let (x0, y0) = (floor(sx), floor(sy));
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let weights = [
                (1.0 - fx) * (1.0 - fy),
                fx * (1.0 - fy),
                (1.0 - fx) * fy,
                fx * fy,
            ];
            let mut acc = [0f64; 3];
            if x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h {
                let i = (y0 as usize * w as usize + x0 as usize) * 3;
                let taps = [i, i + 3, i + stride, i + stride + 3];
                for (t, wt) in taps.iter().zip(weights) {
                    let p = &raw[*t..*t + 3];
                    for c in 0..3 {
                        acc[c] += wt * p[c] as f64;
                    }
                }
            } else {
                for (k, wt) in weights.into_iter().enumerate() {
                    let (x, y) = (x0 + (k as i64 & 1), y0 + (k as i64 >> 1));
                    if x < 0 || y < 0 || x >= w || y >= h {
                        continue; // constant black border
                    }
                    let i = ((y * w + x) * 3) as usize;
                    for c in 0..3 {
                        acc[c] += wt * raw[i + c] as f64;
                    }
                }
            }
            let o = (v * n + u) * 3;
            for c in 0..3 {
                out[o + c] = round_non_negative(acc[c]).min(255.0) as u8;
            }
        }
    }
    RgbImage::from_raw(side, side, out)
}

/// `x.floor()` without a libm call (x86-64's baseline has no rounding instruction, and the
/// call dominated the warp). Exact for the coordinates a warp sees (|x| < 2^52).
#[inline]
fn floor(x: f64) -> f64 {
    let t = x as i64 as f64;
    if t > x { t - 1.0 } else { t }
}

/// `x.round()` (half away from zero) for `x >= 0`, without a libm call; bit-identical to it.
#[inline]
fn round_non_negative(x: f64) -> f64 {
    let t = x as i64 as f64;
    if x - t >= 0.5 { t + 1.0 } else { t }
}

/// Aligns one detection: fits the transform and warps.
pub fn align(image: &RgbImage, det: &Detection) -> Option<(Similarity, RgbImage)> {
    let t = transform_for(&det.landmarks)?;
    let crop = warp(image, &t)?;
    Some((t, crop))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The straightforward warp (four taps, each bounds-checked), kept as the reference the
    /// fast one must match bit for bit.
    fn warp_reference(image: &RgbImage, to_crop: &Similarity) -> Option<RgbImage> {
        let inv = to_crop.inverse()?;
        let (w, h) = (image.width() as i64, image.height() as i64);
        let raw = image.as_raw();
        let mut out = RgbImage::new(CROP, CROP);
        for v in 0..CROP {
            for u in 0..CROP {
                let [sx, sy] = inv.apply([u as f64, v as f64]);
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = (sx - x0, sy - y0);
                let (x0, y0) = (x0 as i64, y0 as i64);
                let mut acc = [0f64; 3];
                for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
                    for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
                        let (x, y) = (x0 + dx, y0 + dy);
                        if x < 0 || y < 0 || x >= w || y >= h {
                            continue;
                        }
                        let i = ((y * w + x) * 3) as usize;
                        for c in 0..3 {
                            acc[c] += wx * wy * raw[i + c] as f64;
                        }
                    }
                }
                out.put_pixel(
                    u,
                    v,
                    image::Rgb(acc.map(|a| a.round().clamp(0.0, 255.0) as u8)),
                );
            }
        }
        Some(out)
    }

    proptest! {
        #[test]
        fn fast_warp_is_bit_identical_to_the_reference(
            scale in 0.2f64..3.0,
            angle in -1.0f64..1.0,
            tx in -150.0f64..150.0,
            ty in -150.0f64..150.0,
            seed in 0u32..1000,
        ) {
            let img = RgbImage::from_fn(97, 83, |x, y| {
                image::Rgb([(x * 7 + seed) as u8, (y * 13 + seed * 3) as u8, (x * y + seed) as u8])
            });
            let (c, s) = (scale * angle.cos(), scale * angle.sin());
            let t = Similarity { m: [[c, -s, tx], [s, c, ty]] };
            prop_assert_eq!(warp(&img, &t), warp_reference(&img, &t));
        }

        #[test]
        fn floor_and_round_match_the_library(x in -1e6f64..1e6) {
            prop_assert_eq!(floor(x), x.floor());
            if x >= 0.0 {
                prop_assert_eq!(round_non_negative(x), x.round());
            }
        }
    }

    #[test]
    fn template_landmarks_map_to_themselves() {
        let lm = TEMPLATE.map(|[x, y]| [x as f32, y as f32]);
        let t = transform_for(&lm).expect("transform");
        for p in TEMPLATE {
            let q = t.apply(p);
            assert!((q[0] - p[0]).abs() < 1e-4 && (q[1] - p[1]).abs() < 1e-4);
        }
    }

    #[test]
    fn identity_warp_copies_pixels() {
        let mut img = RgbImage::new(112, 112);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([x as u8, y as u8, (x ^ y) as u8]);
        }
        let id = Similarity {
            m: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
        };
        assert_eq!(warp(&img, &id).expect("warp"), img);
    }

    #[test]
    fn outside_the_image_is_black() {
        let img = RgbImage::from_pixel(20, 20, image::Rgb([255, 255, 255]));
        let shift = Similarity {
            m: [[1.0, 0.0, 50.0], [0.0, 1.0, 50.0]],
        };
        let crop = warp(&img, &shift).expect("warp");
        assert_eq!(crop.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(crop.get_pixel(60, 60).0, [255, 255, 255]);
    }
}
