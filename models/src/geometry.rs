//! Pure geometry: boxes, overlap, non-maximum suppression and the similarity transform that
//! aligns a face. No images, no models; everything here is property-tested.

use nalgebra::{Matrix2, Vector2};
use serde::{Deserialize, Serialize};

/// An axis-aligned box: top-left corner and size, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width (non-negative).
    pub w: f32,
    /// Height (non-negative).
    pub h: f32,
}

impl BBox {
    /// Area; zero for degenerate boxes.
    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    /// Intersection over union, OpenCV convention (no +1 on sizes). Zero when either box is
    /// empty, so that degenerate detections never suppress real ones.
    ///
    /// Computed in f64: in f32, `(x + w) - x` for a thin box far from the origin loses most of
    /// `w` and a box's IoU with itself drifts from 1 (found by proptest, pinned below).
    pub fn iou(&self, other: &BBox) -> f32 {
        let (ax, ay, aw, ah) = (
            self.x as f64,
            self.y as f64,
            self.w.max(0.0) as f64,
            self.h.max(0.0) as f64,
        );
        let (bx, by, bw, bh) = (
            other.x as f64,
            other.y as f64,
            other.w.max(0.0) as f64,
            other.h.max(0.0) as f64,
        );
        let ix = (ax + aw).min(bx + bw) - ax.max(bx);
        let iy = (ay + ah).min(by + bh) - ay.max(by);
        if ix <= 0.0 || iy <= 0.0 {
            return 0.0;
        }
        let inter = ix * iy;
        let union = aw * ah + bw * bh - inter;
        if union <= 0.0 {
            0.0
        } else {
            (inter / union) as f32
        }
    }

    /// The box scaled by `k` about the origin (mapping between resized and original pixels).
    pub fn scaled(&self, k: f32) -> BBox {
        BBox {
            x: self.x * k,
            y: self.y * k,
            w: self.w * k,
            h: self.h * k,
        }
    }
}

/// Greedy non-maximum suppression. Returns the indices of the kept boxes in descending score
/// order. Ties keep the earlier candidate (stable sort), as `cv2.dnn.NMSBoxes` does; a box is
/// suppressed when its IoU with a kept box is strictly above `iou_threshold`.
pub fn nms(boxes: &[BBox], scores: &[f32], iou_threshold: f32) -> Vec<usize> {
    debug_assert_eq!(boxes.len(), scores.len());
    let mut order: Vec<usize> = (0..boxes.len().min(scores.len())).collect();
    // Descending; NaN scores sink to the end and are never kept first.
    order.sort_by(|&a, &b| {
        scores[b]
            .partial_cmp(&scores[a])
            .unwrap_or_else(|| scores[a].is_nan().cmp(&scores[b].is_nan()))
    });
    let mut kept: Vec<usize> = Vec::new();
    for i in order {
        if scores[i].is_nan() {
            continue;
        }
        if kept
            .iter()
            .all(|&k| boxes[k].iou(&boxes[i]) <= iou_threshold)
        {
            kept.push(i);
        }
    }
    kept
}

/// A 2x3 similarity transform `[[a, b, tx], [c, d, ty]]` (rotation, uniform scale,
/// translation) mapping source points to destination points.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Similarity {
    /// Row-major 2x3 matrix.
    pub m: [[f64; 3]; 2],
}

impl Similarity {
    /// Applies the transform to a point.
    pub fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        let m = &self.m;
        [
            m[0][0] * p[0] + m[0][1] * p[1] + m[0][2],
            m[1][0] * p[0] + m[1][1] * p[1] + m[1][2],
        ]
    }

    /// The inverse transform, or `None` when the matrix is singular (all landmarks on one
    /// point).
    pub fn inverse(&self) -> Option<Similarity> {
        let m = &self.m;
        let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
        if det.abs() < 1e-12 || !det.is_finite() {
            return None;
        }
        let (a, b, c, d) = (m[1][1] / det, -m[0][1] / det, -m[1][0] / det, m[0][0] / det);
        let tx = -(a * m[0][2] + b * m[1][2]);
        let ty = -(c * m[0][2] + d * m[1][2]);
        Some(Similarity {
            m: [[a, b, tx], [c, d, ty]],
        })
    }

    /// Uniform scale factor of the transform.
    pub fn scale(&self) -> f64 {
        (self.m[0][0] * self.m[1][1] - self.m[0][1] * self.m[1][0])
            .abs()
            .sqrt()
    }
}

/// Least-squares similarity from `src` to `dst` (Umeyama 1991), without reflection: the face
/// template has a left and a right eye, and mirroring a face to fit would align the wrong
/// features. Returns `None` for degenerate input (all source points equal).
pub fn umeyama(src: &[[f64; 2]], dst: &[[f64; 2]]) -> Option<Similarity> {
    let n = src.len().min(dst.len());
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let mean = |pts: &[[f64; 2]]| {
        pts[..n]
            .iter()
            .fold(Vector2::zeros(), |acc, p| acc + Vector2::new(p[0], p[1]))
            / nf
    };
    let (ms, md) = (mean(src), mean(dst));
    let mut cov = Matrix2::<f64>::zeros();
    let mut src_var = 0.0;
    for i in 0..n {
        let s = Vector2::new(src[i][0], src[i][1]) - ms;
        let d = Vector2::new(dst[i][0], dst[i][1]) - md;
        cov += d * s.transpose();
        src_var += s.norm_squared();
    }
    cov /= nf;
    src_var /= nf;
    if src_var <= 1e-12 || !src_var.is_finite() {
        return None;
    }
    let svd = cov.svd(true, true);
    let (u, v_t) = (svd.u?, svd.v_t?);
    let mut d = Matrix2::identity();
    if u.determinant() * v_t.determinant() < 0.0 {
        d[(1, 1)] = -1.0;
    }
    let r = u * d * v_t;
    let scale = (Matrix2::from_diagonal(&svd.singular_values) * d).trace() / src_var;
    let t = md - scale * r * ms;
    let sr = r * scale;
    Some(Similarity {
        m: [
            [sr[(0, 0)], sr[(0, 1)], t[0]],
            [sr[(1, 0)], sr[(1, 1)], t[1]],
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_box() -> impl Strategy<Value = BBox> {
        (-100f32..500.0, -100f32..500.0, 0f32..300.0, 0f32..300.0).prop_map(|(x, y, w, h)| BBox {
            x,
            y,
            w,
            h,
        })
    }

    proptest! {
        #[test]
        fn iou_is_symmetric_and_bounded(a in arb_box(), b in arb_box()) {
            let (ab, ba) = (a.iou(&b), b.iou(&a));
            prop_assert!((ab - ba).abs() < 1e-5);
            prop_assert!((0.0..=1.0 + 1e-5).contains(&ab));
        }

        #[test]
        fn iou_with_self_is_one(a in arb_box()) {
            prop_assume!(a.area() > 1e-3);
            prop_assert!((a.iou(&a) - 1.0).abs() < 1e-4);
        }

        #[test]
        fn nms_keeps_non_overlapping_in_descending_order(
            boxes in prop::collection::vec(arb_box(), 0..40),
            seed in prop::collection::vec(0f32..1.0, 40),
            thr in 0.05f32..0.9,
        ) {
            let scores: Vec<f32> = seed[..boxes.len()].to_vec();
            let kept = nms(&boxes, &scores, thr);
            // Descending scores.
            for w in kept.windows(2) {
                prop_assert!(scores[w[0]] >= scores[w[1]]);
            }
            // No two kept boxes overlap above the threshold.
            for (i, &a) in kept.iter().enumerate() {
                for &b in &kept[i + 1..] {
                    prop_assert!(boxes[a].iou(&boxes[b]) <= thr);
                }
            }
            // Every dropped box is covered by a kept box with a score at least as high.
            for i in 0..boxes.len() {
                if !kept.contains(&i) {
                    prop_assert!(kept.iter().any(|&k| scores[k] >= scores[i]
                        && boxes[k].iou(&boxes[i]) > thr));
                }
            }
            // The best box always survives.
            if let Some(best) = (0..boxes.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b])) {
                prop_assert!(kept.iter().any(|&k| scores[k] == scores[best]));
            }
        }

        #[test]
        fn umeyama_recovers_a_known_similarity(
            angle in -3.1f64..3.1, scale in 0.1f64..5.0, tx in -200f64..200.0, ty in -200f64..200.0,
            pts in prop::collection::vec((-100f64..100.0, -100f64..100.0), 5),
        ) {
            let src: Vec<[f64; 2]> = pts.iter().map(|&(x, y)| [x, y]).collect();
            let spread: f64 = src.iter().map(|p| (p[0] - src[0][0]).abs() + (p[1] - src[0][1]).abs()).sum();
            prop_assume!(spread > 10.0);
            let (c, s) = (angle.cos() * scale, angle.sin() * scale);
            let truth = Similarity { m: [[c, -s, tx], [s, c, ty]] };
            let dst: Vec<[f64; 2]> = src.iter().map(|&p| truth.apply(p)).collect();
            let est = umeyama(&src, &dst).expect("non-degenerate");
            for (p, q) in src.iter().zip(&dst) {
                let e = est.apply(*p);
                prop_assert!((e[0] - q[0]).abs() < 1e-6 && (e[1] - q[1]).abs() < 1e-6);
            }
        }

        #[test]
        fn umeyama_never_reflects(
            pts in prop::collection::vec((-100f64..100.0, -100f64..100.0), 5),
        ) {
            // Mirror image target: the best similarity must still be a proper rotation.
            let src: Vec<[f64; 2]> = pts.iter().map(|&(x, y)| [x, y]).collect();
            let dst: Vec<[f64; 2]> = src.iter().map(|p| [-p[0], p[1]]).collect();
            if let Some(t) = umeyama(&src, &dst) {
                let det = t.m[0][0] * t.m[1][1] - t.m[0][1] * t.m[1][0];
                prop_assert!(det >= -1e-9);
            }
        }

        #[test]
        fn inverse_round_trips(angle in -3.1f64..3.1, scale in 0.1f64..5.0, x in -50f64..50.0, y in -50f64..50.0) {
            let (c, s) = (angle.cos() * scale, angle.sin() * scale);
            let t = Similarity { m: [[c, -s, 3.0], [s, c, -7.0]] };
            let back = t.inverse().expect("invertible").apply(t.apply([x, y]));
            prop_assert!((back[0] - x).abs() < 1e-6 && (back[1] - y).abs() < 1e-6);
        }
    }

    /// proptest found this: a 0.05 px-wide box at x = 387 had IoU 0.9994 with itself in f32.
    #[test]
    fn thin_box_far_from_origin_has_iou_one_with_itself() {
        let a = BBox {
            x: 387.22403,
            y: 0.0,
            w: 0.05123316,
            h: 257.65512,
        };
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn disjoint_boxes_have_zero_iou() {
        let a = BBox {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        let b = BBox {
            x: 10.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        assert_eq!(a.iou(&b), 0.0);
    }

    #[test]
    fn nms_ties_keep_the_earlier_candidate() {
        let a = BBox {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        let kept = nms(&[a, a, a], &[0.9, 0.9, 0.8], 0.3);
        assert_eq!(kept, vec![0]);
    }

    #[test]
    fn nms_drops_nan_scores() {
        let a = BBox {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        let b = BBox {
            x: 50.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        assert_eq!(nms(&[a, b], &[f32::NAN, 0.7], 0.3), vec![1]);
    }

    #[test]
    fn degenerate_landmarks_have_no_transform() {
        let p = [[5.0, 5.0]; 5];
        assert!(umeyama(&p, &p).is_none());
    }
}
