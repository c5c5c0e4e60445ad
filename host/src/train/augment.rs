//! Training-time augmentation of a stored face, deterministic by seed.
//!
//! Works on the dataset's 160x160 context crop (see [`crate::faceset`]): a synthetic mask is
//! painted from the landmarks first (so it sits on the face and moves with it), then light
//! (brightness, contrast, saturation) changes the whole picture, mask included, and finally a
//! similarity (rotation, scale, shift, optional mirror) cuts the 112x112 crop the embedder
//! sees. Geometry is applied to the *alignment*, not the photo: rotating a photo and
//! re-aligning it would undo the rotation, while a perturbed alignment is what the door's
//! detector actually produces from a tilted head or noisy landmarks.

use facegate_models::align::{CROP, warp_sized};
use facegate_models::geometry::Similarity;
use facegate_models::mask::{self, MaskStyle};
use image::RgbImage;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use crate::faceset::MARGIN;

/// One augmentation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {
    /// Added to every channel, levels.
    pub brightness: f32,
    /// Contrast factor around mid-grey.
    pub contrast: f32,
    /// Saturation factor around each pixel's grey.
    pub saturation: f32,
    /// Rotation, degrees.
    pub angle_deg: f32,
    /// Scale factor.
    pub scale: f32,
    /// Shift in crop pixels.
    pub shift: [f32; 2],
    /// Mirror left-right.
    pub flip: bool,
    /// A synthetic mask, if any.
    #[serde(skip)]
    pub mask: Option<MaskStyle>,
}

impl Params {
    /// No change: the aligned crop as the door would see it.
    pub fn identity() -> Self {
        Self {
            brightness: 0.0,
            contrast: 1.0,
            saturation: 1.0,
            angle_deg: 0.0,
            scale: 1.0,
            shift: [0.0, 0.0],
            flip: false,
            mask: None,
        }
    }

    /// Random but reproducible: the same seed gives the same augmentation. A mask is drawn
    /// with probability `mask_prob`.
    pub fn random(seed: u64, mask_prob: f32) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut p = Self {
            brightness: rng.random_range(-35.0..35.0),
            contrast: rng.random_range(0.7..1.3),
            saturation: rng.random_range(0.6..1.4),
            angle_deg: rng.random_range(-12.0..12.0),
            scale: rng.random_range(0.9..1.1),
            shift: [rng.random_range(-4.0..4.0), rng.random_range(-4.0..4.0)],
            flip: rng.random_bool(0.5),
            mask: None,
        };
        if rng.random_range(0.0f32..1.0) < mask_prob {
            p.mask = Some(MaskStyle::from_seed(rng.random()));
        }
        p
    }

    /// Only a mask (the seed picks its kind, colour and fit): how a masked probe is made.
    pub fn mask_only(seed: u64) -> Self {
        Self {
            mask: Some(MaskStyle::from_seed(seed)),
            ..Self::identity()
        }
    }
}

/// A seed for the `k`-th augmentation of the sample with hex ID `id` under the run's `seed`.
pub fn sample_seed(seed: u64, id: &str, k: usize) -> u64 {
    let head = u64::from_str_radix(id.get(..16).unwrap_or("0"), 16).unwrap_or(0);
    splitmix(seed ^ splitmix(head ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 112x112 crop of `context` (landmarks in its pixels) under `p`.
pub fn apply(context: &RgbImage, landmarks: &[[f32; 2]; 5], p: &Params) -> RgbImage {
    let mut img = context.clone();
    if let Some(style) = &p.mask {
        mask::paint(&mut img, landmarks, style);
    }
    if p.brightness != 0.0 || p.contrast != 1.0 || p.saturation != 1.0 {
        for px in img.pixels_mut() {
            let [r, g, b] = px.0.map(f32::from);
            let grey = 0.299 * r + 0.587 * g + 0.114 * b;
            px.0 = [r, g, b].map(|c| {
                let c = grey + (c - grey) * p.saturation;
                let c = 128.0 + (c - 128.0) * p.contrast + p.brightness;
                c.round().clamp(0.0, 255.0) as u8
            });
        }
    }
    let side = CROP;
    let out = warp_sized(&img, &geometry(p), side);
    out.unwrap_or_else(|| RgbImage::new(side, side))
}

/// Context pixels -> crop pixels: rotate and scale about the face centre, shift, mirror.
fn geometry(p: &Params) -> Similarity {
    let c = (CROP as f64 - 1.0) / 2.0;
    let cc = c + MARGIN as f64;
    let (s, a) = (p.scale as f64, (p.angle_deg as f64).to_radians());
    let (m00, m01, m10, m11) = (s * a.cos(), -s * a.sin(), s * a.sin(), s * a.cos());
    let tx = c + p.shift[0] as f64 - (m00 * cc + m01 * cc);
    let ty = c + p.shift[1] as f64 - (m10 * cc + m11 * cc);
    let mut m = [[m00, m01, tx], [m10, m11, ty]];
    if p.flip {
        // x' = 2c - x
        m[0] = [-m[0][0], -m[0][1], 2.0 * c - m[0][2]];
    }
    Similarity { m }
}

/// A contact sheet: one row per (title, original crop, augmented crops), tiles side by side.
pub fn contact_sheet(rows: &[Vec<RgbImage>]) -> RgbImage {
    let tile = CROP + 4;
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let mut sheet = RgbImage::from_pixel(
        cols.max(1) * tile,
        (rows.len() as u32).max(1) * tile,
        image::Rgb([255, 255, 255]),
    );
    for (r, row) in rows.iter().enumerate() {
        for (c, img) in row.iter().enumerate() {
            image::imageops::overlay(
                &mut sheet,
                img,
                (c as u32 * tile + 2) as i64,
                (r as u32 * tile + 2) as i64,
            );
        }
    }
    sheet
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faceset::CONTEXT;

    fn context() -> (RgbImage, [[f32; 2]; 5]) {
        let img = RgbImage::from_fn(CONTEXT, CONTEXT, |x, y| {
            image::Rgb([
                (x * 3 % 256) as u8,
                (y * 5 % 256) as u8,
                ((x + y) % 256) as u8,
            ])
        });
        let m = MARGIN as f64;
        let lm = facegate_models::align::TEMPLATE.map(|[x, y]| [(x + m) as f32, (y + m) as f32]);
        (img, lm)
    }

    #[test]
    fn identity_is_the_centre_of_the_context_crop() {
        let (img, lm) = context();
        let out = apply(&img, &lm, &Params::identity());
        let centre = image::imageops::crop_imm(&img, MARGIN, MARGIN, CROP, CROP).to_image();
        assert_eq!(out, centre);
    }

    #[test]
    fn same_seed_same_picture_and_seeds_differ() {
        let (img, lm) = context();
        let a = apply(&img, &lm, &Params::random(7, 0.5));
        let b = apply(&img, &lm, &Params::random(7, 0.5));
        let c = apply(&img, &lm, &Params::random(8, 0.5));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(sample_seed(1, "ab12", 0), sample_seed(1, "ab12", 1));
    }

    #[test]
    fn flip_mirrors_the_crop() {
        let (img, lm) = context();
        let flipped = apply(
            &img,
            &lm,
            &Params {
                flip: true,
                ..Params::identity()
            },
        );
        let plain = apply(&img, &lm, &Params::identity());
        assert_eq!(flipped, image::imageops::flip_horizontal(&plain));
    }

    #[test]
    fn a_mask_covers_the_mouth_but_not_the_eyes() {
        let (img, lm) = context();
        let plain = apply(&img, &lm, &Params::identity());
        let masked = apply(&img, &lm, &Params::mask_only(3));
        let (mouth, eye) = ((56, 92), (38, 51));
        assert_ne!(
            masked.get_pixel(mouth.0, mouth.1),
            plain.get_pixel(mouth.0, mouth.1)
        );
        assert_eq!(
            masked.get_pixel(eye.0, eye.1),
            plain.get_pixel(eye.0, eye.1)
        );
    }
}
