//! The hardware the loop needs, as small traits. Real implementations (V4L2, GPIO character
//! device, SPI panel) live beside the simulated ones in [`crate::sim`].

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
    /// The camera is gone (unplugged); the caller reconnects with backoff.
    #[error("camera lost: {0}")]
    Lost(String),
}

/// Anything that yields frames: a V4L2 camera, a folder of photos.
pub trait FrameSource {
    /// The next frame; `Ok(None)` when a finite source (a folder) is exhausted.
    fn next_frame(&mut self) -> Result<Option<Frame>, CameraError>;
}
