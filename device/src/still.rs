//! Skipping detection while the subject stands still.
//!
//! Faces at a door stay put for several frames while the vote gathers, and detection is the
//! dearest stage. When the subject's box region of a new frame looks like the one its
//! detection was made on (mean absolute difference of a 16x16 grid of luma averages below
//! [`STILL_DIFF`] grey levels: averaging over cells keeps sensor noise well under it, a step,
//! a turn of the head or another face does not), the door reuses that detection and only
//! aligns and embeds, on the new frame's own pixels, so who it is always comes from the frame
//! itself. At most `max_reuse` frames in a row, and never across a model change: then the
//! detector runs again.

use facegate_models::detect::Detection;
use facegate_models::geometry::BBox;
use image::RgbImage;

/// Largest mean luma difference (0-255) of the face's grid that still counts as still.
pub const STILL_DIFF: f32 = 3.0;

const GRID: u32 = 16;

/// What the last detection saw.
#[derive(Debug)]
struct Seen {
    detection: Detection,
    grid: Vec<f32>,
    reused: u32,
    version: u32,
}

/// The door's memory of its subject's last detection.
#[derive(Debug, Default)]
pub struct Still {
    max_reuse: u32,
    last: Option<Seen>,
}

impl Still {
    /// Reuses a detection for at most `max_reuse` frames in a row (0: detect every frame).
    pub fn new(max_reuse: u32) -> Self {
        Self {
            max_reuse,
            last: None,
        }
    }

    /// The detection to use for `image` without detecting, if the subject barely moved.
    pub fn reusable(&mut self, image: &RgbImage, version: u32) -> Option<Detection> {
        let last = self.last.as_mut()?;
        if last.version != version || last.reused >= self.max_reuse {
            return None;
        }
        let grid = grid(image, &last.detection.bbox)?;
        let diff = grid
            .iter()
            .zip(&last.grid)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / grid.len() as f32;
        if diff >= STILL_DIFF {
            return None;
        }
        last.reused += 1;
        Some(last.detection.clone())
    }

    /// After a frame that ran the detector: remember its subject (or forget, with none).
    pub fn detected(&mut self, image: &RgbImage, subject: Option<&Detection>, version: u32) {
        self.last = subject.and_then(|d| {
            Some(Seen {
                grid: grid(image, &d.bbox)?,
                detection: d.clone(),
                reused: 0,
                version,
            })
        });
    }
}

/// Mean luma of each cell of a 16x16 grid over `bbox` (sampled 4x4 per cell); `None` when
/// the box is off the image or too small.
fn grid(image: &RgbImage, bbox: &BBox) -> Option<Vec<f32>> {
    let (w, h) = (image.width() as f32, image.height() as f32);
    let (x0, y0) = (bbox.x.max(0.0), bbox.y.max(0.0));
    let (x1, y1) = ((bbox.x + bbox.w).min(w), (bbox.y + bbox.h).min(h));
    if !(x1 - x0 >= GRID as f32 && y1 - y0 >= GRID as f32) {
        return None;
    }
    let (cw, ch) = ((x1 - x0) / GRID as f32, (y1 - y0) / GRID as f32);
    let mut out = Vec::with_capacity((GRID * GRID) as usize);
    for gy in 0..GRID {
        for gx in 0..GRID {
            let mut sum = 0.0;
            for sy in 0..4 {
                for sx in 0..4 {
                    let x = x0 + (gx as f32 + (sx as f32 + 0.5) / 4.0) * cw;
                    let y = y0 + (gy as f32 + (sy as f32 + 0.5) / 4.0) * ch;
                    let [r, g, b] = image
                        .get_pixel(
                            (x as u32).min(image.width() - 1),
                            (y as u32).min(image.height() - 1),
                        )
                        .0;
                    sum += 0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32;
                }
            }
            out.push(sum / 16.0);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face_image(shift: u32, brightness: u8) -> RgbImage {
        RgbImage::from_fn(320, 240, |x, y| {
            let (x, y) = (x.wrapping_sub(shift), y);
            let v = ((x / 7 + y / 5) % 5) as u8 * 40;
            image::Rgb([v.saturating_add(brightness), v / 2, 255 - v])
        })
    }

    fn det() -> Detection {
        Detection {
            bbox: BBox {
                x: 100.0,
                y: 60.0,
                w: 100.0,
                h: 120.0,
            },
            landmarks: [
                [130.0, 100.0],
                [170.0, 100.0],
                [150.0, 120.0],
                [135.0, 150.0],
                [165.0, 150.0],
            ],
            score: 0.9,
        }
    }

    #[test]
    fn a_still_face_is_reused_a_few_frames_then_detected_again() {
        let mut s = Still::new(2);
        let img = face_image(0, 0);
        s.detected(&img, Some(&det()), 1);
        assert!(s.reusable(&img, 1).is_some());
        assert!(s.reusable(&img, 1).is_some());
        assert!(s.reusable(&img, 1).is_none(), "at most 2 in a row");
        s.detected(&img, Some(&det()), 1);
        assert!(s.reusable(&img, 2).is_none(), "a new model detects again");
    }

    #[test]
    fn movement_light_or_nobody_means_detecting_again() {
        let mut s = Still::new(10);
        s.detected(&face_image(0, 0), Some(&det()), 1);
        assert!(s.reusable(&face_image(9, 0), 1).is_none(), "moved");
        assert!(
            s.reusable(&face_image(0, 30), 1).is_none(),
            "lit differently"
        );
        s.detected(&face_image(0, 0), None, 1);
        assert!(s.reusable(&face_image(0, 0), 1).is_none(), "nobody seen");
        assert!(Still::new(0).reusable(&face_image(0, 0), 1).is_none());
    }
}
