//! facegate over an MQTT broker: what doors and the laptop agree on.
//!
//! Doors publish every log record as JSON on `<prefix>/<door>/event`, keep retained state
//! topics (locked or unlocked, model version, last person, availability through a last will)
//! and announce themselves to Home Assistant by device-based discovery. The laptop publishes a
//! signed bundle on a group's retained topic (`<prefix>/group/<group>/bundle`) and every door
//! of the group installs it exactly as a push: the bytes reach the same installer, which checks
//! the signature before it parses anything. The broker is a transport, never a trust anchor:
//! a bundle is trusted for its signature, and a remote unlock for the broker-authenticated user
//! name in its topic, which the broker's ACL (`pattern write .../unlock/%u`) ties to the login.
//!
//! This crate holds only what both sides must agree on: topic names ([`topics`]), the JSON of
//! a record ([`json`]), the discovery payloads ([`discovery`]) and how to reach the broker
//! ([`broker`]). The door's link (queue, reconnects, incoming bundles) lives in the device
//! crate; the laptop's commands in the host crate.

pub mod broker;
pub mod discovery;
pub mod json;
pub mod topics;

pub use broker::{Broker, FleetError};
pub use topics::Topics;
