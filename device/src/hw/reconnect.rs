//! A camera that comes back: when the source reports it is lost (USB cable pulled, driver
//! reset), it is dropped and reopened with exponential backoff, without ending the door loop.
//!
//! The loss is reported once (the loop logs it and shows an error screen); while reopening,
//! [`CameraError::Waiting`] keeps the loop's timers running. A successful frame resets the
//! backoff.

use std::time::{Duration, Instant};

use crate::hw::{CameraError, Frame, FrameSource};

/// Backoff bounds.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// First wait after a loss.
    pub first: Duration,
    /// Longest wait between attempts.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

/// Reopens a source with `open` whenever it is lost.
pub struct Reconnecting<S, F> {
    open: F,
    source: Option<S>,
    backoff: Backoff,
    wait: Duration,
    next_try: Instant,
    /// The last reopen error, reported when it changes.
    last_error: Option<String>,
}

impl<S, F> Reconnecting<S, F>
where
    S: FrameSource,
    F: FnMut() -> Result<S, CameraError>,
{
    /// Opens lazily on the first frame request.
    pub fn new(open: F, backoff: Backoff) -> Self {
        Self {
            open,
            source: None,
            backoff,
            wait: backoff.first,
            next_try: Instant::now(),
            last_error: None,
        }
    }

    /// Whether the camera is open now.
    pub fn is_open(&self) -> bool {
        self.source.is_some()
    }

    fn lost(&mut self, why: String) -> CameraError {
        self.source = None;
        self.next_try = Instant::now() + self.wait;
        self.wait = (self.wait * 2).min(self.backoff.max);
        CameraError::Lost(format!(
            "{why}; retrying in {:.1} s",
            self.next_try
                .saturating_duration_since(Instant::now())
                .as_secs_f64()
        ))
    }
}

impl<S, F> FrameSource for Reconnecting<S, F>
where
    S: FrameSource,
    F: FnMut() -> Result<S, CameraError>,
{
    fn next_frame(&mut self) -> Result<Option<Frame>, CameraError> {
        if self.source.is_none() {
            let now = Instant::now();
            if now < self.next_try {
                // Short naps keep a caller's polling cheap without delaying a reopen much.
                std::thread::sleep((self.next_try - now).min(Duration::from_millis(50)));
                return Err(CameraError::Waiting);
            }
            match (self.open)() {
                Ok(s) => {
                    self.source = Some(s);
                    self.last_error = None;
                }
                Err(e) => {
                    let why = e.to_string();
                    let repeat = self.last_error.as_deref() == Some(why.as_str());
                    self.last_error = Some(why.clone());
                    let err = self.lost(why);
                    return Err(if repeat { CameraError::Waiting } else { err });
                }
            }
        }
        let Some(source) = self.source.as_mut() else {
            return Err(CameraError::Waiting);
        };
        match source.next_frame() {
            Ok(Some(frame)) => {
                self.wait = self.backoff.first;
                Ok(Some(frame))
            }
            Err(CameraError::Lost(why)) => Err(self.lost(why)),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A camera that delivers `frames` frames, then is unplugged.
    struct Flaky {
        left: u32,
    }

    impl FrameSource for Flaky {
        fn next_frame(&mut self) -> Result<Option<Frame>, CameraError> {
            if self.left == 0 {
                return Err(CameraError::Lost("VIDIOC_DQBUF: No such device".into()));
            }
            self.left -= 1;
            Ok(Some(Frame {
                id: 0,
                image: RgbImage::new(2, 2),
            }))
        }
    }

    #[test]
    fn an_unplugged_camera_is_reported_once_then_reopened_with_growing_waits() {
        // Plugged in, 2 frames, unplugged for two reopen attempts, back with 1 frame.
        let attempts = Rc::new(RefCell::new(Vec::new()));
        let log = attempts.clone();
        let mut plan = vec![Ok(2), Err("no /dev/video0"), Err("no /dev/video0"), Ok(1)].into_iter();
        let mut cam = Reconnecting::new(
            move || {
                log.borrow_mut().push(Instant::now());
                match plan.next() {
                    Some(Ok(n)) => Ok(Flaky { left: n }),
                    Some(Err(e)) => Err(CameraError::Lost(e.into())),
                    None => Err(CameraError::Lost("gone for good".into())),
                }
            },
            Backoff {
                first: Duration::from_millis(20),
                max: Duration::from_millis(50),
            },
        );
        let mut outcomes = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(400) && outcomes.len() < 200 {
            outcomes.push(match cam.next_frame() {
                Ok(Some(_)) => "frame",
                Ok(None) => "end",
                Err(CameraError::Lost(_)) => "lost",
                Err(CameraError::Waiting) => "wait",
                Err(CameraError::BadFrame { .. }) => "bad",
            });
            if attempts.borrow().len() >= 5 {
                break;
            }
        }
        let frames = outcomes.iter().filter(|o| **o == "frame").count();
        let lost = outcomes.iter().filter(|o| **o == "lost").count();
        assert_eq!(frames, 3, "{outcomes:?}");
        // Lost after the first 2 frames; the first failed reopen is news (its reason), the
        // identical second is not; lost again after the last frame; the final reopen fails
        // with a new reason.
        assert_eq!(lost, 4, "{outcomes:?}");
        let t = attempts.borrow();
        assert!(t.len() >= 4);
        let gaps: Vec<Duration> = t.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[0] >= Duration::from_millis(20), "{gaps:?}");
        assert!(gaps[1] >= Duration::from_millis(40), "{gaps:?}");
        assert!(gaps[2] >= Duration::from_millis(50), "{gaps:?}");
    }
}
