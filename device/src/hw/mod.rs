//! The hardware the loop needs, as small traits, and their real Linux implementations: a V4L2
//! camera, GPIO lines through the character device, SPI/I2C panels, and the serial log. The
//! simulated ones live in [`crate::sim`].

pub mod gpio;
pub mod keeper;
pub mod latest;
pub mod panel;
pub mod reconnect;

/// The camera types live in `facegate-camera` (shared with the laptop's `capture`).
pub use facegate_camera::v4l2;
pub use facegate_camera::{CameraError, Frame, FrameSource};
