//! The update protocol between `facegate push|status` and the door, over TCP.
//!
//! ```text
//! door    -> client  on connect: "FGD2" | challenge (32 random bytes)
//! client  -> door    "FGP2" | kind (1 = push, 2 = status, 3 = recover) | key id (8)
//!                    | length u64 LE (push: bundle bytes; recover: the new version floor)
//!                    | Ed25519 signature (64) over CONTEXT | challenge | kind | key id | length
//!                    [push: then `length` bundle bytes]
//! door    -> client  one UTF-8 line, at most MAX_REPLY bytes: "ok ..." | "refused: ..." |
//!                    "busy: ..." (status: a JSON object on one line)
//! ```
//!
//! Every request is signed by a key the door trusts, over a challenge the door chose for this
//! connection: only a holder of a trusted key can ask for status or take the update slot, and a
//! recorded request cannot be replayed. The header has a fixed size, so the door reads exactly
//! [`REQUEST_LEN`] bytes under a short deadline before it decides anything; the bundle that may
//! follow is signed on its own (the door checks that signature before parsing it).
//!
//! Both sides bound what they read: the door refuses a declared length above
//! [`crate::bundle::MAX_BUNDLE`] before reading any of it and gives the body a deadline that
//! follows its declared size at a minimum rate, so a slow sender cannot hold the update slot.

use std::io::{Read, Write};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::bundle::key_id;

/// What the door sends first.
pub const HELLO: [u8; 4] = *b"FGD2";
/// Request magic.
pub const MAGIC: [u8; 4] = *b"FGP2";
/// Request kinds.
pub const PUSH: u8 = 1;
/// Ask for the door's status.
pub const STATUS: u8 = 2;
/// Recovery: set the door's version floor to `length` (a door that confirmed a runaway
/// version). Signed like every request, so only a trusted key holder, who could sign any model
/// anyway, can ask.
pub const RECOVER: u8 = 3;
/// Longest reply line.
pub const MAX_REPLY: usize = 64 * 1024;
/// Bytes of the door's challenge.
pub const CHALLENGE_LEN: usize = 32;
/// Bytes of the hello (magic and challenge).
pub const HELLO_LEN: usize = 4 + CHALLENGE_LEN;
/// Bytes of a request header (magic, kind, key id, length, signature).
pub const REQUEST_LEN: usize = 4 + 1 + 8 + 8 + 64;
/// Domain separation: a request signature can never pass for a bundle signature.
const CONTEXT: &[u8] = b"facegate update request v2";

/// A request header as read off the wire, before its signature is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// [`PUSH`] or [`STATUS`].
    pub kind: u8,
    /// Id of the key that signed it.
    pub key_id: [u8; 8],
    /// Bytes that follow (the bundle, for a push).
    pub length: u64,
    signature: [u8; 64],
}

/// Why a request header was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// Not this protocol (or an older `facegate`).
    #[error("not a facegate request (update the laptop's facegate: the door speaks FGP2)")]
    BadMagic,
    /// Signed by no trusted key.
    #[error("request signed by key {key_id}, which this door does not trust (its `trust` list)")]
    UnknownKey {
        /// Hex key id.
        key_id: String,
    },
    /// The signature does not match this connection's challenge.
    #[error("request signature does not verify (wrong key, replayed or altered)")]
    BadSignature,
}

fn signed_message(challenge: &[u8; CHALLENGE_LEN], kind: u8, id: &[u8; 8], length: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + CHALLENGE_LEN + 17);
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(challenge);
    m.push(kind);
    m.extend_from_slice(id);
    m.extend_from_slice(&length.to_le_bytes());
    m
}

/// Encodes the door's hello.
pub fn hello(challenge: &[u8; CHALLENGE_LEN]) -> [u8; HELLO_LEN] {
    let mut h = [0u8; HELLO_LEN];
    h[..4].copy_from_slice(&HELLO);
    h[4..].copy_from_slice(challenge);
    h
}

/// Reads the door's hello and returns its challenge.
pub fn read_hello(r: &mut impl Read) -> std::io::Result<[u8; CHALLENGE_LEN]> {
    let mut h = [0u8; HELLO_LEN];
    r.read_exact(&mut h)?;
    if h[..4] != HELLO {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the peer is not a facegate door of this version (no FGD2 hello)",
        ));
    }
    let mut c = [0u8; CHALLENGE_LEN];
    c.copy_from_slice(&h[4..]);
    Ok(c)
}

/// Encodes a request header signed with `key` over `challenge`.
pub fn request(
    key: &SigningKey,
    challenge: &[u8; CHALLENGE_LEN],
    kind: u8,
    length: u64,
) -> [u8; REQUEST_LEN] {
    let id = key_id(&key.verifying_key());
    let signature = key.sign(&signed_message(challenge, kind, &id, length));
    let mut out = [0u8; REQUEST_LEN];
    out[..4].copy_from_slice(&MAGIC);
    out[4] = kind;
    out[5..13].copy_from_slice(&id);
    out[13..21].copy_from_slice(&length.to_le_bytes());
    out[21..].copy_from_slice(&signature.to_bytes());
    out
}

impl Request {
    /// Splits a header into its fields (nothing is trusted yet).
    pub fn parse(bytes: &[u8; REQUEST_LEN]) -> Result<Self, RequestError> {
        if bytes[..4] != MAGIC {
            return Err(RequestError::BadMagic);
        }
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&bytes[5..13]);
        let mut length = [0u8; 8];
        length.copy_from_slice(&bytes[13..21]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[21..]);
        Ok(Self {
            kind: bytes[4],
            key_id,
            length: u64::from_le_bytes(length),
            signature,
        })
    }

    /// Checks the signature against the trusted keys for this connection's challenge; returns
    /// the key that signed.
    pub fn verify<'k>(
        &self,
        challenge: &[u8; CHALLENGE_LEN],
        trusted: &'k [VerifyingKey],
    ) -> Result<&'k VerifyingKey, RequestError> {
        let key = trusted
            .iter()
            .find(|k| key_id(k) == self.key_id)
            .ok_or_else(|| RequestError::UnknownKey {
                key_id: hex::encode(self.key_id),
            })?;
        let message = signed_message(challenge, self.kind, &self.key_id, self.length);
        key.verify_strict(&message, &Signature::from_bytes(&self.signature))
            .map_err(|_| RequestError::BadSignature)?;
        Ok(key)
    }
}

/// Sends a push request on a connection whose hello has been read.
pub fn write_push(
    w: &mut impl Write,
    key: &SigningKey,
    challenge: &[u8; CHALLENGE_LEN],
    bundle: &[u8],
) -> std::io::Result<()> {
    w.write_all(&request(key, challenge, PUSH, bundle.len() as u64))?;
    w.write_all(bundle)?;
    w.flush()
}

/// Sends a status request on a connection whose hello has been read.
pub fn write_status(
    w: &mut impl Write,
    key: &SigningKey,
    challenge: &[u8; CHALLENGE_LEN],
) -> std::io::Result<()> {
    w.write_all(&request(key, challenge, STATUS, 0))?;
    w.flush()
}

/// Sends a recovery request (set the version floor to `floor`).
pub fn write_recover(
    w: &mut impl Write,
    key: &SigningKey,
    challenge: &[u8; CHALLENGE_LEN],
    floor: u32,
) -> std::io::Result<()> {
    w.write_all(&request(key, challenge, RECOVER, u64::from(floor)))?;
    w.flush()
}

/// Reads one reply line (bounded).
pub fn read_reply(r: &mut impl Read) -> std::io::Result<String> {
    let mut buf = Vec::new();
    r.take(MAX_REPLY as u64).read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn a_signed_request_verifies_for_its_challenge_only() {
        let challenge = [3u8; CHALLENGE_LEN];
        let bytes = request(&key(1), &challenge, PUSH, 1234);
        let req = Request::parse(&bytes).expect("parse");
        assert_eq!((req.kind, req.length), (PUSH, 1234));
        let trusted = [key(1).verifying_key()];
        assert!(req.verify(&challenge, &trusted).is_ok());
        // Replayed on another connection.
        assert_eq!(
            req.verify(&[4u8; CHALLENGE_LEN], &trusted),
            Err(RequestError::BadSignature)
        );
        // Signed by a stranger's key.
        let other = Request::parse(&request(&key(2), &challenge, STATUS, 0)).expect("parse");
        assert!(matches!(
            other.verify(&challenge, &trusted),
            Err(RequestError::UnknownKey { .. })
        ));
    }

    #[test]
    fn any_altered_field_is_refused() {
        let challenge = [9u8; CHALLENGE_LEN];
        let trusted = [key(1).verifying_key()];
        let good = request(&key(1), &challenge, PUSH, 77);
        for pos in 4..REQUEST_LEN {
            let mut bytes = good;
            bytes[pos] ^= 0x10;
            let req = Request::parse(&bytes).expect("parse");
            assert!(req.verify(&challenge, &trusted).is_err(), "byte {pos}");
        }
        let mut bytes = good;
        bytes[0] = b'X';
        assert_eq!(Request::parse(&bytes), Err(RequestError::BadMagic));
    }
}
