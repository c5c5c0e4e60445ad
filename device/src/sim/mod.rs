//! Simulated hardware for tests and the demo: an image-folder camera, a relay that records its
//! pulses, and a panel that writes PNG files.

pub mod camera;
pub mod panel;
pub mod relay;
