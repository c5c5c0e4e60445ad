//! Simulated hardware for tests and the demo: an image-folder camera and a relay that records
//! its pulses.

pub mod camera;
pub mod relay;
