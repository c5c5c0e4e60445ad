//! Follows the subject's face from frame to frame, so the door's K-of-N vote only counts
//! frames of one person standing there.
//!
//! Without it, two people taking turns in front of the camera (or a photo held up beside a
//! face) could pool frames into one vote. A track continues while the subject's box overlaps
//! the previous one (IoU at least [`Tracker::min_iou`]) and survives a few frames without a
//! detection (a blink of motion blur); otherwise a new track starts and the vote starts afresh.

use facegate_models::geometry::BBox;

/// Track identity.
pub type TrackId = u64;

/// What the tracker made of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nobody in view (the current track, if any, may still come back).
    Empty,
    /// The same face as before.
    Continued(TrackId),
    /// A new face: a different person, or the same one after leaving.
    Started(TrackId),
}

/// IoU tracker of the single subject.
#[derive(Debug)]
pub struct Tracker {
    last: Option<(TrackId, BBox)>,
    missed: u32,
    next_id: TrackId,
    /// Overlap needed to continue a track.
    pub min_iou: f32,
    /// Frames without a face after which a track ends.
    pub max_missed: u32,
}

impl Default for Tracker {
    fn default() -> Self {
        Self {
            last: None,
            missed: 0,
            next_id: 1,
            min_iou: 0.3,
            max_missed: 3,
        }
    }
}

impl Tracker {
    /// Takes the subject's box in this frame (`None`: no face).
    pub fn step(&mut self, subject: Option<&BBox>) -> Step {
        let Some(bbox) = subject else {
            self.missed += 1;
            if self.missed > self.max_missed {
                self.last = None;
            }
            return Step::Empty;
        };
        self.missed = 0;
        match self.last {
            Some((id, prev)) if prev.iou(bbox) >= self.min_iou => {
                self.last = Some((id, *bbox));
                Step::Continued(id)
            }
            _ => {
                let id = self.next_id;
                self.next_id += 1;
                self.last = Some((id, *bbox));
                Step::Started(id)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: f32) -> BBox {
        BBox {
            x,
            y: 50.0,
            w: 100.0,
            h: 120.0,
        }
    }

    #[test]
    fn a_face_moving_slowly_is_one_track() {
        let mut t = Tracker::default();
        assert_eq!(t.step(Some(&b(0.0))), Step::Started(1));
        for x in [10.0, 25.0, 40.0] {
            assert_eq!(t.step(Some(&b(x))), Step::Continued(1));
        }
    }

    #[test]
    fn a_jump_to_another_place_is_a_new_track() {
        let mut t = Tracker::default();
        t.step(Some(&b(0.0)));
        assert_eq!(t.step(Some(&b(300.0))), Step::Started(2));
    }

    #[test]
    fn short_gaps_keep_the_track_and_long_ones_end_it() {
        let mut t = Tracker::default();
        t.step(Some(&b(0.0)));
        for _ in 0..3 {
            assert_eq!(t.step(None), Step::Empty);
        }
        assert_eq!(t.step(Some(&b(5.0))), Step::Continued(1));
        for _ in 0..4 {
            t.step(None);
        }
        assert_eq!(t.step(Some(&b(5.0))), Step::Started(2));
    }
}
