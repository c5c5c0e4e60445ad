//! The hardware the loop needs, as small traits, and their real Linux implementations: a V4L2
//! camera, GPIO lines through the character device, SPI/I2C panels, and the serial log. The
//! simulated ones live in [`crate::sim`].

pub mod gpio;
pub mod keeper;
pub mod latest;
pub mod panel;
pub mod reconnect;
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
    /// The camera is gone (unplugged); a [`reconnect::Reconnecting`] source reopens it with
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
