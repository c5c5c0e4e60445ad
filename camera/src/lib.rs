//! # facegate-camera
//!
//! Camera frames for both binaries: the [`FrameSource`] trait, a V4L2 camera ([`v4l2`]) and a
//! folder of images played as frames ([`files`]). The door reads its camera through it, and the
//! laptop's `facegate capture` through the very same code, so enrolment frames are decoded
//! exactly as the door decodes them; the laptop tool does not depend on the door for that.

pub mod files;
pub mod v4l2;

use image::RgbImage;

/// One camera frame.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Monotonic frame number (logged with every decision).
    pub id: u64,
    /// The picture.
    pub image: RgbImage,
}

/// Why a frame could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    /// This frame is unusable (corrupt data); the next one may be fine.
    #[error("frame {id} unusable: {reason}")]
    BadFrame {
        /// Frame number.
        id: u64,
        /// What was wrong.
        reason: String,
    },
    /// The camera is gone (unplugged); the door's reconnecting source reopens it with
    /// backoff.
    #[error("camera lost: {0}")]
    Lost(String),
    /// No frame is ready yet (the camera is slower than the loop, or is being reopened). Not a
    /// fault: the loop keeps its timers running and asks again.
    #[error("no frame ready")]
    Waiting,
}

impl<T: FrameSource + ?Sized> FrameSource for Box<T> {
    fn next_frame(&mut self) -> Result<Option<Frame>, CameraError> {
        (**self).next_frame()
    }
}

/// Anything that yields frames: a V4L2 camera, a folder of photos.
pub trait FrameSource {
    /// The next frame; `Ok(None)` when a finite source (a folder) is exhausted.
    fn next_frame(&mut self) -> Result<Option<Frame>, CameraError>;
}
