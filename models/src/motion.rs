//! Does the face move on its own, or with its surroundings? A liveness cue from two frames.
//!
//! Why: a photo or a phone held up by hand moves as one flat thing, so what is printed around
//! the face (the photo's background, the screen's border) moves with it; a live person moves
//! in front of a room that stays put. The network (`crate::liveness`) sees one frame at a
//! time and lets the odd hand-held phone screen in; this cue looks at the *ring* around the
//! face (between [`INNER`] and [`OUTER`] face sides) in two frames about [`GAP`] seconds apart
//! and asks which explains the second frame better: the first frame's ring moved with the face
//! ("follow"), or left where it was ("still"). The score is `ln(e_still + c) - ln(e_follow +
//! c)` over the ring's mean absolute grey differences: above zero the surroundings follow the
//! face. A face that does not move scores about zero (both hypotheses are the same), so the
//! cue says nothing about a photo on a stand or a video replayed on a fixed screen; those are
//! the network's (docs/LIVENESS.md, "Motion").
//!
//! Cost: three grey patches of [`PATCH`]² cells by area averaging (one kept from the earlier
//! frame), a fraction of a millisecond per face.

use image::RgbImage;

use crate::geometry::BBox;

/// Cells per side of a patch.
pub const PATCH: usize = 48;

/// A patch's side, in face-box sides (the larger of width and height).
pub const OUTER: f32 = 2.2;

/// The ring's inner edge, in face-box sides: inside it is the face itself (and hair, ears),
/// which moves with the face whether it is live or not.
pub const INNER: f32 = 1.3;

/// Seconds between the two frames of a pair: about the spacing of the frames the cue was
/// measured on (Replay-Attack as shared: 0.5 s); closer frames move too little to tell.
pub const GAP: f64 = 0.4;

/// The door's default: an attempt whose mean pair score is above this is refused. Zero by
/// construction (the surroundings fit better moved with the face than left in place), not
/// tuned: on Replay-Attack's training people every live attempt scored -0.049 or lower
/// (docs/LIVENESS.md, "Motion").
pub const THRESHOLD: f32 = 0.0;

/// Pairs an attempt needs before a strict door may open (about 0.8 s of the face): one pair
/// of a hand-held phone can catch the hand at rest.
pub const MIN_PAIRS: usize = 2;

/// A reference older than this (seconds) is replaced rather than compared: the subject left.
pub const MAX_AGE: f64 = 3.0;

/// Grey levels added to each error before the logarithm, so that two near-perfect fits (a
/// frozen frame) score about zero rather than noise divided by noise.
const FLOOR: f32 = 0.5;

/// A grey patch around a face: [`PATCH`]² cells, each the mean grey of the frame pixels it
/// covers (the frame's edge pixels repeated outside it).
#[derive(Clone, Debug, PartialEq)]
pub struct Patch {
    cells: Vec<f32>,
}

impl Patch {
    /// The square of `side` pixels centred on `(cx, cy)` in `frame`. A degenerate frame or
    /// side gives a flat patch; nothing here panics on a box from a hostile frame.
    pub fn take(frame: &RgbImage, (cx, cy): (f32, f32), side: f32) -> Patch {
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let mut cells = vec![0f32; PATCH * PATCH];
        if w == 0 || h == 0 || !(side.is_finite() && cx.is_finite() && cy.is_finite()) {
            return Patch { cells };
        }
        let side = side.clamp(1.0, 4.0 * (w.max(h) as f32));
        let cell = side / PATCH as f32;
        let (x0, y0) = (cx - side / 2.0, cy - side / 2.0);
        // Pixel spans of each column and row of cells, clamped into the frame (an empty span
        // takes the nearest pixel).
        let span = |start: f32, i: usize, len: usize| {
            let a = (start + i as f32 * cell).floor();
            let b = (start + (i + 1) as f32 * cell).ceil();
            let last = (len - 1) as f32;
            let (a, b) = (
                a.clamp(0.0, last) as usize,
                b.clamp(0.0, last + 1.0) as usize,
            );
            (a, b.max(a + 1))
        };
        let cols: Vec<(usize, usize)> = (0..PATCH).map(|i| span(x0, i, w)).collect();
        for (r, row) in cells.chunks_exact_mut(PATCH).enumerate() {
            let (ya, yb) = span(y0, r, h);
            for (c, v) in row.iter_mut().enumerate() {
                let (xa, xb) = cols[c];
                let mut sum = 0u64;
                for y in ya..yb {
                    for x in xa..xb {
                        let [r, g, b] = frame.get_pixel(x as u32, y as u32).0;
                        sum += 299 * u64::from(r) + 587 * u64::from(g) + 114 * u64::from(b);
                    }
                }
                *v = sum as f32 / (1000 * (yb - ya) * (xb - xa)) as f32;
            }
        }
        Patch { cells }
    }
}

/// The centre of a box and the side of the patch around it.
fn frame_of(face: &BBox) -> ((f32, f32), f32) {
    (
        (face.x + face.w / 2.0, face.y + face.h / 2.0),
        OUTER * face.w.max(face.h),
    )
}

/// Whether cell `(r, c)` lies in the ring (outside [`INNER`] face sides).
fn in_ring(r: usize, c: usize) -> bool {
    let at = |i: usize| ((i as f32 + 0.5) / PATCH as f32 - 0.5).abs() * OUTER;
    at(r).max(at(c)) >= INNER / 2.0
}

/// The pair score: how much better the ring of `reference` (the earlier frame) explains
/// `follow` (the later frame around the face's new place) than `still` (the later frame at the
/// face's old place). Positive: the surroundings moved with the face.
pub fn pair_score(reference: &Patch, follow: &Patch, still: &Patch) -> f32 {
    let error = |p: &Patch| {
        let (mut sum, mut n) = (0f32, 0usize);
        for (i, (a, b)) in reference.cells.iter().zip(&p.cells).enumerate() {
            if in_ring(i / PATCH, i % PATCH) {
                sum += (a - b).abs();
                n += 1;
            }
        }
        sum / n.max(1) as f32
    };
    (error(still) + FLOOR).ln() - (error(follow) + FLOOR).ln()
}

/// The earlier frame of the next pair: when, where and what.
#[derive(Clone, Debug)]
struct Reference {
    at: f64,
    face: BBox,
    patch: Patch,
}

/// Pairs up the frames of the face in front of the camera, [`GAP`] seconds or more apart, and
/// scores each pair. One per door (or per evaluated attempt); it holds one patch.
#[derive(Clone, Debug, Default)]
pub struct MotionTrack {
    reference: Option<Reference>,
}

impl MotionTrack {
    /// A track with no frame yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the earlier frame (a new subject).
    pub fn reset(&mut self) {
        self.reference = None;
    }

    /// The face `face` in `frame` at `at` seconds: the score of the pair it closes with the
    /// earlier frame, if one is [`GAP`] or more before it and the face still overlaps where it
    /// was; otherwise `None` (it may become the earlier frame of the next pair). Seconds in
    /// f64: a door runs for years, and f32 seconds since its start would be 4 s apart after
    /// one (no pair would ever close).
    pub fn observe(&mut self, at: f64, frame: &RgbImage, face: &BBox) -> Option<f32> {
        let (centre, _) = frame_of(face);
        let fresh = |r: &Reference| {
            let age = at - r.at;
            (0.0..=MAX_AGE).contains(&age) && r.face.iou(face) > 0.0
        };
        match self.reference.take().filter(fresh) {
            Some(r) if at - r.at < GAP => {
                self.reference = Some(r);
                None
            }
            Some(r) => {
                let (old_centre, side) = frame_of(&r.face);
                let follow = Patch::take(frame, centre, side);
                let still = Patch::take(frame, old_centre, side);
                let score = pair_score(&r.patch, &follow, &still);
                let (_, own_side) = frame_of(face);
                let patch = if own_side == side {
                    follow
                } else {
                    Patch::take(frame, centre, own_side)
                };
                self.reference = Some(Reference {
                    at,
                    face: *face,
                    patch,
                });
                score.is_finite().then_some(score)
            }
            None => {
                let (_, side) = frame_of(face);
                self.reference = Some(Reference {
                    at,
                    face: *face,
                    patch: Patch::take(frame, centre, side),
                });
                None
            }
        }
    }
}

/// An attempt's motion score: the mean of its pairs' scores (`None` without a pair).
pub fn attempt_motion(pairs: &[f32]) -> Option<f32> {
    (!pairs.is_empty()).then(|| pairs.iter().sum::<f32>() / pairs.len() as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A textured scene (`seed`), with a face-sized disc pasted at `face` shifted by `shift`,
    /// and the disc's surroundings shifted by `ring_shift`.
    fn scene(ring_shift: (i32, i32), face_shift: (i32, i32)) -> RgbImage {
        let texture = |x: i32, y: i32| {
            let v =
                (x.wrapping_mul(73) ^ y.wrapping_mul(151)).wrapping_mul(2_654_435_761u32 as i32);
            ((v >> 13) & 0xff) as u8
        };
        RgbImage::from_fn(320, 240, |x, y| {
            let (x, y) = (x as i32, y as i32);
            let (fx, fy) = (x - face_shift.0, y - face_shift.1);
            if (fx - 160).pow(2) + (fy - 120).pow(2) < 40 * 40 {
                Rgb([200, 150, (fx * 3 + fy) as u8])
            } else {
                // Coarse texture (8 px blocks), so a few pixels of shift stay visible after
                // the patch's averaging.
                let (sx, sy) = (x - ring_shift.0, y - ring_shift.1);
                let v = texture(sx.div_euclid(8), sy.div_euclid(8));
                Rgb([v, v, v])
            }
        })
    }

    fn face_at(dx: f32, dy: f32) -> BBox {
        BBox {
            x: 120.0 + dx,
            y: 80.0 + dy,
            w: 80.0,
            h: 80.0,
        }
    }

    fn score_of(ring_shift: (i32, i32), face_shift: (i32, i32)) -> Option<f32> {
        let mut track = MotionTrack::new();
        assert_eq!(
            track.observe(0.0, &scene((0, 0), (0, 0)), &face_at(0.0, 0.0)),
            None
        );
        let moved = face_at(face_shift.0 as f32, face_shift.1 as f32);
        track.observe(0.5, &scene(ring_shift, face_shift), &moved)
    }

    #[test]
    fn surroundings_that_move_with_the_face_score_above_zero() {
        let held = score_of((6, 3), (6, 3)).expect("a pair");
        assert!(held > 0.5, "{held}");
    }

    #[test]
    fn a_face_moving_in_front_of_a_still_room_scores_below_zero() {
        let live = score_of((0, 0), (6, 3)).expect("a pair");
        assert!(live < -0.5, "{live}");
    }

    #[test]
    fn a_still_face_scores_zero() {
        let frozen = score_of((0, 0), (0, 0)).expect("a pair");
        assert!(frozen.abs() < 1e-6, "{frozen}");
    }

    #[test]
    fn pairs_need_the_gap_and_the_same_place() {
        let frame = scene((0, 0), (0, 0));
        let mut track = MotionTrack::new();
        assert_eq!(track.observe(0.0, &frame, &face_at(0.0, 0.0)), None);
        assert_eq!(track.observe(GAP / 2.0, &frame, &face_at(0.0, 0.0)), None);
        assert!(track.observe(GAP, &frame, &face_at(0.0, 0.0)).is_some());
        // Somewhere else entirely: a new reference, no pair.
        assert_eq!(track.observe(2.0 * GAP, &frame, &face_at(150.0, 0.0)), None);
        // Too late: the subject left and came back.
        assert_eq!(
            track.observe(2.0 * GAP + MAX_AGE + 1.0, &frame, &face_at(150.0, 0.0)),
            None
        );
        track.reset();
        assert_eq!(track.observe(100.0, &frame, &face_at(150.0, 0.0)), None);
    }

    #[test]
    fn pairs_still_close_after_years_of_uptime() {
        let frame = scene((0, 0), (0, 0));
        let mut track = MotionTrack::new();
        let years = 5.0 * 365.0 * 24.0 * 3600.0;
        assert_eq!(track.observe(years, &frame, &face_at(0.0, 0.0)), None);
        assert_eq!(
            track.observe(years + GAP / 2.0, &frame, &face_at(0.0, 0.0)),
            None
        );
        assert!(
            track
                .observe(years + GAP, &frame, &face_at(0.0, 0.0))
                .is_some()
        );
    }

    #[test]
    fn hostile_boxes_and_frames_do_not_panic() {
        let frame = scene((0, 0), (0, 0));
        let mut track = MotionTrack::new();
        for (i, b) in [
            BBox {
                x: f32::NAN,
                y: 0.0,
                w: 10.0,
                h: 10.0,
            },
            BBox {
                x: -1e9,
                y: 1e9,
                w: 1e9,
                h: 1e9,
            },
            BBox {
                x: 319.5,
                y: 239.5,
                w: 0.0,
                h: 0.0,
            },
            BBox {
                x: 0.0,
                y: 0.0,
                w: f32::INFINITY,
                h: 1.0,
            },
        ]
        .iter()
        .enumerate()
        {
            let _ = track.observe(i as f64, &frame, b);
            let _ = track.observe(i as f64 + 0.5, &frame, b);
        }
        let empty = RgbImage::new(0, 0);
        let _ = Patch::take(&empty, (0.0, 0.0), 10.0);
        assert_eq!(attempt_motion(&[]), None);
        assert_eq!(attempt_motion(&[1.0, -1.0, 0.5]), Some(0.5 / 3.0));
    }
}
