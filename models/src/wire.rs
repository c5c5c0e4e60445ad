//! The update protocol between `facegate push|status` and the door, over TCP.
//!
//! ```text
//! request  = "FGP1" | kind (1 = push, 2 = status) | [push: length u64 LE | bundle bytes]
//! response = one UTF-8 line, at most MAX_REPLY bytes: "ok ..." | "refused: ..." | "busy: ..."
//!            (status: a JSON object on one line)
//! ```
//!
//! Both sides bound what they read: the door reads at most the declared length, refuses a
//! declared length above [`crate::bundle::MAX_BUNDLE`] before reading any of it, and gives the
//! whole request a deadline so a slow sender cannot hold the update slot.

use std::io::{Read, Write};

/// Request magic.
pub const MAGIC: [u8; 4] = *b"FGP1";
/// Request kinds.
pub const PUSH: u8 = 1;
/// Ask for the door's status.
pub const STATUS: u8 = 2;
/// Longest reply line.
pub const MAX_REPLY: usize = 64 * 1024;

/// Sends a push request.
pub fn write_push(w: &mut impl Write, bundle: &[u8]) -> std::io::Result<()> {
    w.write_all(&MAGIC)?;
    w.write_all(&[PUSH])?;
    w.write_all(&(bundle.len() as u64).to_le_bytes())?;
    w.write_all(bundle)?;
    w.flush()
}

/// Sends a status request.
pub fn write_status(w: &mut impl Write) -> std::io::Result<()> {
    w.write_all(&MAGIC)?;
    w.write_all(&[STATUS])?;
    w.flush()
}

/// Reads one reply line (bounded).
pub fn read_reply(r: &mut impl Read) -> std::io::Result<String> {
    let mut buf = Vec::new();
    r.take(MAX_REPLY as u64).read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).trim_end().to_owned())
}
