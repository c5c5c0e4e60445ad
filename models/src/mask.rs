//! Synthetic face masks painted from the five landmarks.
//!
//! Used to test (and, on the host, to train for) recognition of people wearing masks without
//! any mask image assets. Shapes are defined once in the 112x112 template frame and mapped onto
//! the face with the inverse of the alignment similarity, so a mask follows head roll and size
//! exactly as a real one would. Each pixel is tested in template space, which keeps the outline
//! exact at any rotation and makes patterns (stripes, checks, dots) trivial.

use image::RgbImage;
use imageproc::drawing::draw_line_segment_mut;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::align::transform_for;

/// The kind of mask, which sets its outline and surface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskKind {
    /// Pleated surgical mask: straight top over the nose bridge, pleat lines.
    Surgical,
    /// Rounded fabric mask reaching further under the chin.
    Cloth,
    /// Fabric mask with a printed pattern.
    Patterned,
}

/// Surface pattern of a patterned mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    /// Horizontal stripes.
    Stripes,
    /// Checkerboard.
    Checks,
    /// Dots on a plain ground.
    Dots,
}

/// A fully specified mask: drawing the same style twice gives the same pixels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskStyle {
    /// Outline and surface.
    pub kind: MaskKind,
    /// Main colour.
    pub colour: [u8; 3],
    /// Second colour for patterns.
    pub accent: [u8; 3],
    /// Pattern of a [`MaskKind::Patterned`] mask.
    pub pattern: Pattern,
    /// Template-space y of the top edge (the nose bridge is around 60).
    pub top: f32,
    /// Extra template-space height below the chin.
    pub drop: f32,
    /// Horizontal half-width scale (1.0 = cheek to cheek).
    pub width: f32,
}

const SURGICAL_COLOURS: [[u8; 3]; 5] = [
    [150, 190, 225],
    [236, 236, 232],
    [140, 200, 170],
    [40, 40, 44],
    [230, 180, 200],
];
const CLOTH_COLOURS: [[u8; 3]; 6] = [
    [25, 25, 30],
    [90, 90, 95],
    [30, 50, 110],
    [120, 30, 40],
    [200, 190, 170],
    [60, 100, 60],
];

impl MaskStyle {
    /// A random but reproducible style: the same seed always gives the same mask.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let kind = match rng.random_range(0..3) {
            0 => MaskKind::Surgical,
            1 => MaskKind::Cloth,
            _ => MaskKind::Patterned,
        };
        let colour = match kind {
            MaskKind::Surgical => SURGICAL_COLOURS[rng.random_range(0..SURGICAL_COLOURS.len())],
            _ => CLOTH_COLOURS[rng.random_range(0..CLOTH_COLOURS.len())],
        };
        let accent = [
            rng.random_range(0..=255),
            rng.random_range(0..=255),
            rng.random_range(0..=255),
        ];
        let pattern = match rng.random_range(0..3) {
            0 => Pattern::Stripes,
            1 => Pattern::Checks,
            _ => Pattern::Dots,
        };
        Self {
            kind,
            colour,
            accent,
            pattern,
            top: rng.random_range(58.0..63.0),
            drop: rng.random_range(0.0..6.0),
            width: rng.random_range(0.95..1.08),
        }
    }

    /// The k-th mask of an enrolment set: kinds cycle surgical, cloth, patterned so that a
    /// few templates cover the masks people actually wear; colours and fit vary by seed.
    pub fn for_enrolment(seed: u64, k: usize) -> Self {
        let mut style = Self::from_seed(
            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(k as u64),
        );
        style.kind = [MaskKind::Surgical, MaskKind::Cloth, MaskKind::Patterned][k % 3];
        if style.kind == MaskKind::Surgical {
            style.colour = SURGICAL_COLOURS[(seed as usize + k) % SURGICAL_COLOURS.len()];
        }
        style
    }

    /// The outline in template coordinates, clockwise from the left of the top edge.
    fn outline(&self) -> Vec<[f32; 2]> {
        let (t, d, k) = (self.top, self.drop, self.width);
        let x = |u: f32| 56.0 + (u - 56.0) * k;
        match self.kind {
            MaskKind::Surgical => vec![
                [x(18.0), t + 6.0],
                [x(38.0), t + 1.0],
                [56.0, t - 1.0],
                [x(74.0), t + 1.0],
                [x(94.0), t + 6.0],
                [x(96.0), 86.0],
                [x(90.0), 104.0 + d],
                [x(74.0), 114.0 + d],
                [56.0, 118.0 + d],
                [x(38.0), 114.0 + d],
                [x(22.0), 104.0 + d],
                [x(16.0), 86.0],
            ],
            MaskKind::Cloth | MaskKind::Patterned => vec![
                [x(20.0), t + 8.0],
                [x(36.0), t + 1.0],
                [56.0, t - 2.0],
                [x(76.0), t + 1.0],
                [x(92.0), t + 8.0],
                [x(97.0), 84.0],
                [x(92.0), 104.0 + d],
                [x(76.0), 117.0 + d],
                [56.0, 122.0 + d],
                [x(36.0), 117.0 + d],
                [x(20.0), 104.0 + d],
                [x(15.0), 84.0],
            ],
        }
    }

    /// Colour of the mask surface at template point (u, v), before shading.
    fn surface(&self, u: f32, v: f32) -> [u8; 3] {
        match self.kind {
            MaskKind::Surgical => {
                // Pleats: thin darker bands across the mask.
                let pleat = [78.0, 90.0, 102.0].iter().any(|&p| (v - p).abs() < 0.9);
                if pleat {
                    self.colour.map(|c| (c as f32 * 0.8) as u8)
                } else {
                    self.colour
                }
            }
            MaskKind::Cloth => self.colour,
            MaskKind::Patterned => {
                let on = match self.pattern {
                    Pattern::Stripes => ((v / 5.0).floor() as i32) % 2 == 0,
                    Pattern::Checks => {
                        ((u / 7.0).floor() as i32 + (v / 7.0).floor() as i32) % 2 == 0
                    }
                    Pattern::Dots => {
                        let (cu, cv) = ((u / 8.0).round() * 8.0, (v / 8.0).round() * 8.0);
                        (u - cu).powi(2) + (v - cv).powi(2) < 5.0
                    }
                };
                if on { self.accent } else { self.colour }
            }
        }
    }
}

/// Paints a mask of `style` onto the face whose landmarks are given (image coordinates).
/// Returns false (and paints nothing) if the landmarks are degenerate.
pub fn paint(image: &mut RgbImage, landmarks: &[[f32; 2]; 5], style: &MaskStyle) -> bool {
    let Some(to_template) = transform_for(landmarks) else {
        return false;
    };
    let Some(to_image) = to_template.inverse() else {
        return false;
    };
    let outline = style.outline();
    // Bounding box of the outline in image pixels.
    let corners: Vec<[f64; 2]> = outline
        .iter()
        .map(|p| to_image.apply([p[0] as f64, p[1] as f64]))
        .collect();
    let (w, h) = (image.width() as f64, image.height() as f64);
    let x0 = corners
        .iter()
        .map(|p| p[0])
        .fold(f64::INFINITY, f64::min)
        .floor()
        .max(0.0);
    let x1 = corners
        .iter()
        .map(|p| p[0])
        .fold(f64::NEG_INFINITY, f64::max)
        .ceil()
        .min(w - 1.0);
    let y0 = corners
        .iter()
        .map(|p| p[1])
        .fold(f64::INFINITY, f64::min)
        .floor()
        .max(0.0);
    let y1 = corners
        .iter()
        .map(|p| p[1])
        .fold(f64::NEG_INFINITY, f64::max)
        .ceil()
        .min(h - 1.0);
    if !(x0 <= x1 && y0 <= y1) {
        return true; // entirely outside the picture
    }
    for y in y0 as u32..=y1 as u32 {
        for x in x0 as u32..=x1 as u32 {
            let [u, v] = to_template.apply([x as f64, y as f64]);
            let (u, v) = (u as f32, v as f32);
            if !inside(&outline, u, v) {
                continue;
            }
            // Curvature shading: a mask is darker where it turns away from the camera.
            let side = ((u - 56.0) / 44.0).clamp(-1.0, 1.0);
            let shade = 1.0 - 0.28 * side * side;
            let c = style
                .surface(u, v)
                .map(|c| (c as f32 * shade).round().clamp(0.0, 255.0) as u8);
            image.put_pixel(x, y, image::Rgb(c));
        }
    }
    // Ear loops from the upper corners towards the ears.
    let loop_colour = image::Rgb(style.colour.map(|c| c.saturating_sub(30)));
    for (from, to) in [([18.0, 66.0], [4.0, 54.0]), ([94.0, 66.0], [108.0, 54.0])] {
        let a = to_image.apply(from);
        let b = to_image.apply(to);
        draw_line_segment_mut(
            image,
            (a[0] as f32, a[1] as f32),
            (b[0] as f32, b[1] as f32),
            loop_colour,
        );
    }
    true
}

/// Even-odd point-in-polygon test.
fn inside(poly: &[[f32; 2]], x: f32, y: f32) -> bool {
    let mut c = false;
    let n = poly.len();
    for i in 0..n {
        let (a, b) = (poly[i], poly[(i + n - 1) % n]);
        if (a[1] > y) != (b[1] > y) && x < (b[0] - a[0]) * (y - a[1]) / (b[1] - a[1]) + a[0] {
            c = !c;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::TEMPLATE;

    fn template_landmarks() -> [[f32; 2]; 5] {
        TEMPLATE.map(|[x, y]| [x as f32, y as f32])
    }

    #[test]
    fn same_seed_same_pixels() {
        let mut a = RgbImage::from_pixel(112, 112, image::Rgb([128, 100, 90]));
        let mut b = a.clone();
        assert!(paint(
            &mut a,
            &template_landmarks(),
            &MaskStyle::from_seed(7)
        ));
        assert!(paint(
            &mut b,
            &template_landmarks(),
            &MaskStyle::from_seed(7)
        ));
        assert_eq!(a, b);
    }

    #[test]
    fn mask_covers_mouth_and_spares_eyes() {
        for seed in 0..20 {
            let base = RgbImage::from_pixel(112, 112, image::Rgb([1, 2, 3]));
            let mut img = base.clone();
            paint(&mut img, &template_landmarks(), &MaskStyle::from_seed(seed));
            let (mx, my) = (56, 92);
            assert_ne!(
                img.get_pixel(mx, my),
                base.get_pixel(mx, my),
                "seed {seed}: mouth visible"
            );
            assert_ne!(
                img.get_pixel(56, 75),
                base.get_pixel(56, 75),
                "seed {seed}: nose tip visible"
            );
            for [ex, ey] in [TEMPLATE[0], TEMPLATE[1]] {
                let (ex, ey) = (ex as u32, ey as u32);
                assert_eq!(
                    img.get_pixel(ex, ey),
                    base.get_pixel(ex, ey),
                    "seed {seed}: eye covered"
                );
            }
        }
    }

    #[test]
    fn degenerate_landmarks_paint_nothing() {
        let mut img = RgbImage::new(50, 50);
        assert!(!paint(&mut img, &[[3.0, 3.0]; 5], &MaskStyle::from_seed(1)));
    }

    #[test]
    fn face_partly_outside_the_picture_is_clipped() {
        let mut img = RgbImage::new(60, 60);
        let lm = template_landmarks().map(|[x, y]| [x + 20.0, y + 10.0]);
        assert!(paint(&mut img, &lm, &MaskStyle::from_seed(3)));
    }
}
