//! Skip frames rather than queue them: a grabber thread reads the camera as fast as it
//! delivers and keeps only the newest frame. When recognition is slower than the camera, the
//! loop always works on what the camera sees now, never on a backlog seconds old (and a V4L2
//! driver never runs out of buffers because nobody dequeued them).

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::hw::{CameraError, Frame, FrameSource};

#[derive(Default)]
struct Slot {
    frame: Option<Result<Option<Frame>, CameraError>>,
    skipped: u64,
    stop: bool,
}

/// The newest frame of a source read on its own thread.
pub struct Latest {
    slot: Arc<(Mutex<Slot>, Condvar)>,
    poll: Duration,
    worker: Option<JoinHandle<()>>,
}

impl Latest {
    /// Starts reading `source`. [`FrameSource::next_frame`] waits at most `poll` for a frame,
    /// then answers [`CameraError::Waiting`].
    pub fn spawn<S: FrameSource + Send + 'static>(mut source: S, poll: Duration) -> Self {
        let slot: Arc<(Mutex<Slot>, Condvar)> = Arc::default();
        let theirs = slot.clone();
        let worker = std::thread::Builder::new()
            .name("camera".into())
            .spawn(move || {
                loop {
                    let got = source.next_frame();
                    let end = matches!(got, Ok(None));
                    let waiting = matches!(got, Err(CameraError::Waiting));
                    let (lock, cv) = &*theirs;
                    let mut s = lock.lock().unwrap_or_else(|p| p.into_inner());
                    if s.stop {
                        return;
                    }
                    if !waiting {
                        // A newer frame replaces a frame not yet taken: that is the skip.
                        // Errors and the end are news: they wait until the pending item is
                        // taken, and nothing replaces them.
                        let fresh = matches!(got, Ok(Some(_)));
                        let pending_frame = matches!(s.frame, Some(Ok(Some(_))));
                        if s.frame.is_some() && fresh && pending_frame {
                            s.skipped += 1;
                        } else {
                            while s.frame.is_some() && !s.stop {
                                s = cv.wait(s).unwrap_or_else(|p| p.into_inner());
                            }
                            if s.stop {
                                return;
                            }
                        }
                        s.frame = Some(got);
                        cv.notify_all();
                    }
                    if end {
                        return;
                    }
                }
            })
            .ok();
        Self { slot, poll, worker }
    }

    /// Frames dropped because a newer one arrived before the loop took them.
    pub fn skipped(&self) -> u64 {
        self.skip_counter().get()
    }

    /// A handle that reads the skip count after the reader has been handed to the loop.
    pub fn skip_counter(&self) -> SkipCounter {
        SkipCounter(self.slot.clone())
    }
}

/// Reads a [`Latest`]'s skip count from elsewhere (the report at the end of a run).
#[derive(Clone)]
pub struct SkipCounter(Arc<(Mutex<Slot>, Condvar)>);

impl SkipCounter {
    /// Frames skipped so far.
    pub fn get(&self) -> u64 {
        self.0.0.lock().map(|s| s.skipped).unwrap_or(0)
    }
}

impl FrameSource for Latest {
    fn next_frame(&mut self) -> Result<Option<Frame>, CameraError> {
        let (lock, cv) = &*self.slot;
        let s = lock.lock().unwrap_or_else(|p| p.into_inner());
        let (mut s, _) = cv
            .wait_timeout_while(s, self.poll, |s| s.frame.is_none())
            .unwrap_or_else(|p| p.into_inner());
        let got = s.frame.take();
        let end = matches!(got, Some(Ok(None)));
        if end {
            // Keep reporting the end.
            s.frame = Some(Ok(None));
        }
        cv.notify_all();
        got.unwrap_or(Err(CameraError::Waiting))
    }
}

impl Drop for Latest {
    fn drop(&mut self) {
        if let Ok(mut s) = self.slot.0.lock() {
            s.stop = true;
        }
        self.slot.1.notify_all();
        // A grabber blocked in the driver finishes its read, sees `stop` and exits; it is not
        // joined so that a hung camera cannot hang shutdown.
        drop(self.worker.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;
    use std::time::Instant;

    /// A camera delivering numbered frames every `interval`, `n` of them.
    struct Paced {
        next: u64,
        n: u64,
        interval: Duration,
    }

    impl FrameSource for Paced {
        fn next_frame(&mut self) -> Result<Option<Frame>, CameraError> {
            if self.next == self.n {
                return Ok(None);
            }
            std::thread::sleep(self.interval);
            self.next += 1;
            Ok(Some(Frame {
                id: self.next,
                image: RgbImage::new(1, 1),
            }))
        }
    }

    #[test]
    fn a_slow_consumer_gets_the_newest_frame_and_the_rest_are_skipped() {
        let camera = Paced {
            next: 0,
            n: 40,
            interval: Duration::from_millis(5),
        };
        let mut latest = Latest::spawn(camera, Duration::from_millis(100));
        let mut ids = Vec::new();
        let start = Instant::now();
        loop {
            match latest.next_frame() {
                Ok(Some(f)) => ids.push(f.id),
                Ok(None) => break,
                Err(CameraError::Waiting) => {}
                Err(e) => panic!("{e}"),
            }
            // "Recognition" takes four camera intervals.
            std::thread::sleep(Duration::from_millis(20));
            assert!(start.elapsed() < Duration::from_secs(5));
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(ids.len() < 25, "frames were queued, not skipped: {ids:?}");
        assert!(latest.skipped() > 10);
        assert_eq!(ids.len() as u64 + latest.skipped(), 40);
    }

    #[test]
    fn errors_are_never_skipped() {
        struct Glitchy(u64);
        impl FrameSource for Glitchy {
            fn next_frame(&mut self) -> Result<Option<Frame>, CameraError> {
                self.0 += 1;
                match self.0 {
                    1 => Err(CameraError::BadFrame {
                        id: 1,
                        reason: "cut".into(),
                    }),
                    2 => Ok(Some(Frame {
                        id: 2,
                        image: RgbImage::new(1, 1),
                    })),
                    _ => Ok(None),
                }
            }
        }
        let mut latest = Latest::spawn(Glitchy(0), Duration::from_millis(500));
        std::thread::sleep(Duration::from_millis(50));
        assert!(matches!(
            latest.next_frame(),
            Err(CameraError::BadFrame { id: 1, .. })
        ));
        assert!(matches!(latest.next_frame(), Ok(Some(f)) if f.id == 2));
        assert!(matches!(latest.next_frame(), Ok(None)));
        assert!(matches!(latest.next_frame(), Ok(None)));
    }
}
