//! # facegate-device: the door unit
//!
//! The loop ([`app`]) is generic over small hardware traits ([`hw`]): a frame source, the relay
//! as an embedded-hal `OutputPin`, the recognition log as `std::io::Write`. Real Linux drivers
//! implement them on the Pi; the simulated side ([`sim`]) implements them with an image folder,
//! a recording relay and a file or pty, so the whole loop runs and is tested on any machine.
//! What opens the door is decided by [`policy`]: K agreeing frames out of N, a cooldown, and
//! never a stranger.

pub mod app;
pub mod config;
pub mod display;
pub mod door;
pub mod framebuf;
pub mod hw;
pub mod live;
pub mod logout;
pub mod mqtt;
pub mod policy;
pub mod report;
pub mod ring;
pub mod sim;
pub mod sinks;
pub mod start;
pub mod still;
pub mod track;
pub mod ui;
pub mod update;
pub mod wiegand;
