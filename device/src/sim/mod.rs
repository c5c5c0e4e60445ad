//! Simulated hardware for tests and the demo: an image-folder camera, a relay that records its
//! pulses, and a panel that writes PNG files.

/// The image-folder camera lives in `facegate-camera` (shared with the laptop).
pub use facegate_camera::files as camera;
pub mod panel;
pub mod relay;
pub mod wiegand;
