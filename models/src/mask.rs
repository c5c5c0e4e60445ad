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
    /// A busy three-tone print (waves crossing at random angles, as in floral or camouflage
    /// fabric), its shape drawn from the accent colour's bytes.
    Print,
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

/// A stable mask seed for an image file: its file name's hash, so every run and machine
/// paints the same mask on the same photo (`eval`'s probes, enrolment's masked copies, the
/// training sets), wherever the folder lives.
pub fn file_seed(path: &std::path::Path) -> u64 {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let h = crate::model_files::sha256_hex(name.as_bytes());
    u64::from_str_radix(&h[..16], 16).unwrap_or(0)
}

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

    /// The k-th mask of a training set for the mask-state classifier: kinds cycle as in
    /// [`Self::for_enrolment`]; half of them keep the painter's colours, the other half are
    /// any colour (hue, saturation and brightness drawn uniformly), and half the patterned
    /// ones a busy [`Pattern::Print`]. A classifier trained only on the painter's eleven
    /// colours learns the colours, not the mask: real red or purple cloth masks then pass as
    /// bare faces.
    pub fn any_colour(seed: u64, k: usize) -> Self {
        let mut style = Self::for_enrolment(seed, k);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(
            seed ^ (k as u64).wrapping_mul(0xA24B_AED4_963E_E407),
        );
        if style.kind == MaskKind::Patterned && rng.random_bool(0.5) {
            style.pattern = Pattern::Print;
        }
        if rng.random_bool(0.5) {
            style.colour = hsv(
                rng.random_range(0.0..360.0),
                rng.random_range(0.0..1.0),
                rng.random_range(0.08..1.0),
            );
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
                    Pattern::Print => return self.print(u, v),
                };
                if on { self.accent } else { self.colour }
            }
        }
    }
}

impl MaskStyle {
    /// The [`Pattern::Print`] surface: three waves whose angles, wavelengths (4 to 14 template
    /// pixels) and phases come from the accent's bytes, summed and cut into three tones.
    fn print(&self, u: f32, v: f32) -> [u8; 3] {
        let [a, b, c] = self.accent.map(f32::from);
        let sum: f32 = [(a, b), (b, c), (c, a)]
            .iter()
            .map(|&(x, y)| {
                let angle = x / 255.0 * std::f32::consts::PI;
                let k = std::f32::consts::TAU / (4.0 + y / 255.0 * 10.0);
                (k * (u * angle.cos() + v * angle.sin()) + x + y).sin()
            })
            .sum();
        if sum > 0.8 {
            self.accent
        } else if sum < -0.8 {
            [0, 1, 2].map(|i| ((self.colour[i] as u16 + self.accent[i] as u16) / 2) as u8)
        } else {
            self.colour
        }
    }
}

/// Paints a mask of `style` onto the face whose landmarks are given (image coordinates).
/// Returns false (and paints nothing) if the landmarks are degenerate.
pub fn paint(image: &mut RgbImage, landmarks: &[[f32; 2]; 5], style: &MaskStyle) -> bool {
    paint_surface(image, landmarks, style, |u, v| style.surface(u, v))
}

/// Paints a mask of `style`'s shape whose surface is `fabric`, stretched over the mask (its
/// own shading and ear loops kept). Real cloth masks come in prints no painter imitates
/// (florals, logos, camouflage, tartans); a patch of real cloth or of any real scene teaches a
/// classifier the mask's shape over the lower face rather than its print. An empty `fabric`
/// paints `style`'s own surface.
pub fn paint_fabric(
    image: &mut RgbImage,
    landmarks: &[[f32; 2]; 5],
    style: &MaskStyle,
    fabric: &RgbImage,
) -> bool {
    let (fw, fh) = (fabric.width(), fabric.height());
    if fw == 0 || fh == 0 {
        return paint(image, landmarks, style);
    }
    // The outline spans template x 14..98 and y 55..125 at most.
    let sample = |u: f32, v: f32| {
        let x = ((u - 14.0) / 84.0 * fw as f32).clamp(0.0, (fw - 1) as f32) as u32;
        let y = ((v - 55.0) / 70.0 * fh as f32).clamp(0.0, (fh - 1) as f32) as u32;
        fabric.get_pixel(x, y).0
    };
    paint_surface(image, landmarks, style, sample)
}

/// Paints `style`'s outline filled with `surface(u, v)` (template coordinates), shaded.
fn paint_surface(
    image: &mut RgbImage,
    landmarks: &[[f32; 2]; 5],
    style: &MaskStyle,
    surface: impl Fn(f32, f32) -> [u8; 3],
) -> bool {
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
            let c = surface(u, v).map(|c| (c as f32 * shade).round().clamp(0.0, 255.0) as u8);
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

/// An RGB colour from hue (degrees), saturation and value (0..1).
fn hsv(h: f32, s: f32, v: f32) -> [u8; 3] {
    let c = v * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r, g, b].map(|t| ((t + m) * 255.0).round().clamp(0.0, 255.0) as u8)
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
    fn hsv_corners_are_the_primaries() {
        assert_eq!(hsv(0.0, 1.0, 1.0), [255, 0, 0]);
        assert_eq!(hsv(120.0, 1.0, 1.0), [0, 255, 0]);
        assert_eq!(hsv(240.0, 1.0, 1.0), [0, 0, 255]);
        assert_eq!(hsv(300.0, 1.0, 0.5), [128, 0, 128]);
        assert_eq!(hsv(200.0, 0.0, 1.0), [255, 255, 255]);
    }

    #[test]
    fn any_colour_masks_cover_the_colour_wheel() {
        // Red and purple masks must be among them (the painter's own colours have neither).
        // Half the masks get a colour from the whole HSV cube and a saturated red is a small
        // corner of it (about 0.3%), hence many draws.
        let hues: Vec<[u8; 3]> = (0..5000)
            .map(|k| MaskStyle::any_colour(7, k).colour)
            .collect();
        assert!(
            hues.iter().any(|c| c[0] > 150 && c[1] < 60 && c[2] < 60),
            "no red"
        );
        assert!(
            hues.iter().any(|c| c[0] > 100 && c[2] > 100 && c[1] < 60),
            "no purple"
        );
        assert_eq!(MaskStyle::any_colour(7, 3), MaskStyle::any_colour(7, 3));
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
    fn a_fabric_mask_takes_the_fabric_and_the_same_outline() {
        let lm = template_landmarks();
        let style = MaskStyle::for_enrolment(3, 1);
        let mut plain = RgbImage::from_pixel(112, 112, image::Rgb([128, 128, 128]));
        let mut fabric_mask = plain.clone();
        assert!(paint(&mut plain, &lm, &style));
        // Left half red, right half blue.
        let fabric = RgbImage::from_fn(20, 10, |x, _| {
            image::Rgb(if x < 10 { [250, 0, 0] } else { [0, 0, 250] })
        });
        assert!(paint_fabric(&mut fabric_mask, &lm, &style, &fabric));
        let grey = image::Rgb([128, 128, 128]);
        // Same outline: a pixel is painted in one exactly when in the other (loops aside).
        for (x, y) in [(56, 90), (30, 85), (80, 85), (56, 20), (5, 100)] {
            assert_eq!(
                *plain.get_pixel(x, y) == grey,
                *fabric_mask.get_pixel(x, y) == grey,
                "({x}, {y})"
            );
        }
        let left = fabric_mask.get_pixel(40, 90).0;
        let right = fabric_mask.get_pixel(72, 90).0;
        assert!(left[0] > 150 && left[2] < 50, "{left:?}");
        assert!(right[2] > 150 && right[0] < 50, "{right:?}");
        // An empty fabric falls back to the style's own surface.
        let mut fallback = RgbImage::from_pixel(112, 112, image::Rgb([128, 128, 128]));
        assert!(paint_fabric(
            &mut fallback,
            &lm,
            &style,
            &RgbImage::new(0, 0)
        ));
        assert_eq!(fallback, plain);
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
