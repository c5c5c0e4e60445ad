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
/// Bilinear, black outside the image, as OpenCV's `warpAffine` does, and like it in fixed
/// point: source coordinates are rounded to 1/1024 pixel (OpenCV: 1/32) and the four taps are
/// weighed and summed in integers. That is within one grey level of the exact float warp (a
/// test holds it there) and several times faster: this runs for every face of every frame.
pub fn warp(image: &RgbImage, to_crop: &Similarity) -> Option<RgbImage> {
    warp_sized(image, to_crop, CROP)
}

/// Fractional bits of the fixed-point source coordinates.
const FRAC_BITS: u32 = 10;
/// One pixel in fixed point.
const ONE: i64 = 1 << FRAC_BITS;
/// Offset that keeps coordinates positive before truncation, so truncation is floor for any
/// source coordinate a warp can meet (|x| < 2^40 pixels). At 2^50 an f64 resolves 1/4 of a
/// fixed-point step, so the rounding to 1/1024 pixel is itself good to 1/4096 pixel.
const BIAS: f64 = (1u64 << 50) as f64;

/// [`warp`] into a `side`x`side` output: the host keeps a wider crop around each face (the
/// template shifted into its middle) so that augmentation can rotate and shift it later without
/// black corners, and without the original photo.
pub fn warp_sized(image: &RgbImage, to_crop: &Similarity, side: u32) -> Option<RgbImage> {
    let m = to_crop.inverse()?.m;
    let (w, h) = (image.width() as i64, image.height() as i64);
    let raw = image.as_raw();
    let n = side as usize;
    let mut out = vec![0u8; n * n * 3];
    let stride = 3 * w as usize;
    // round(v * ONE) without a libm call: truncation after a large positive shift.
    let fixed = |v: f64| ((v * ONE as f64 + 0.5 + BIAS) as i64) - BIAS as i64;
    // As OpenCV does: each source coordinate is a per-row part plus a per-column part, both
    // rounded to fixed point once, so the inner loop only adds integers.
    let cols: Vec<[i64; 2]> = (0..n)
        .map(|u| [fixed(m[0][0] * u as f64), fixed(m[1][0] * u as f64)])
        .collect();
    for (v, row) in out.chunks_exact_mut(n * 3).enumerate() {
        let vf = v as f64;
        let (rx, ry) = (fixed(m[0][1] * vf + m[0][2]), fixed(m[1][1] * vf + m[1][2]));
        for (px, [cx, cy]) in row.chunks_exact_mut(3).zip(&cols) {
            let (sx, sy) = (rx + cx, ry + cy);
            let (x0, y0) = (sx >> FRAC_BITS, sy >> FRAC_BITS);
            let (fx, fy) = ((sx & (ONE - 1)) as u32, (sy & (ONE - 1)) as u32);
            let (gx, gy) = (ONE as u32 - fx, ONE as u32 - fy);
            let mut acc = [0u32; 3];
            if x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h {
                let i = (y0 as usize * w as usize + x0 as usize) * 3;
                let top = &raw[i..i + 6];
                let bottom = &raw[i + stride..i + stride + 6];
                for c in 0..3 {
                    let t = top[c] as u32 * gx + top[c + 3] as u32 * fx;
                    let b = bottom[c] as u32 * gx + bottom[c + 3] as u32 * fx;
                    acc[c] = t * gy + b * fy;
                }
            } else {
                let taps = [
                    (0, 0, gx * gy),
                    (1, 0, fx * gy),
                    (0, 1, gx * fy),
                    (1, 1, fx * fy),
                ];
                for (dx, dy, wt) in taps {
                    let (x, y) = (x0 + dx, y0 + dy);
                    if x < 0 || y < 0 || x >= w || y >= h {
                        continue; // constant black border
                    }
                    let i = ((y * w + x) * 3) as usize;
                    for c in 0..3 {
                        acc[c] += wt * raw[i + c] as u32;
                    }
                }
            }
            // The weights sum to 2^20: round half up and drop the fraction (never above 255).
            for c in 0..3 {
                px[c] = ((acc[c] + (1 << (2 * FRAC_BITS - 1))) >> (2 * FRAC_BITS)) as u8;
            }
        }
    }
    RgbImage::from_raw(side, side, out)
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

    /// The exact float warp (four taps, each bounds-checked), kept as the reference the
    /// fixed-point one must stay within one grey level of.
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
        fn fixed_point_warp_is_within_one_level_of_the_exact_one(
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
            let fast = warp(&img, &t).expect("warp");
            let exact = warp_reference(&img, &t).expect("warp");
            let mut off = 0;
            for (a, b) in fast.as_raw().iter().zip(exact.as_raw()) {
                prop_assert!(a.abs_diff(*b) <= 1, "{a} vs {b}");
                off += usize::from(a != b);
            }
            // Rounding ties aside, nearly every value is the exact one.
            prop_assert!(off * 20 <= fast.as_raw().len(), "{off} values off by one");
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
