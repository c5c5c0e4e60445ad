//! What a hostile peer sends the door's update server, byte for byte. First byte even: the
//! bytes are a signed request header and what follows it (`wire::Request::parse`, then the
//! signature against a trusted key over a fixed challenge). Odd: the bytes are the client's
//! side of the encrypted channel, so the door's Noise handshake and frame reader
//! (`channel::NoiseStream`) meet arbitrary frames. Nothing may panic; a header that verifies
//! must carry the trusted key's id.
#![no_main]

use std::io::{Cursor, Read, Write};

use ed25519_dalek::SigningKey;
use facegate_models::bundle::key_id;
use facegate_models::channel::{DoorKeys, NoiseStream};
use facegate_models::wire::{self, Request};
use libfuzzer_sys::fuzz_target;

/// A peer that sends `input` and swallows what the door says.
struct Peer {
    input: Cursor<Vec<u8>>,
}

impl Read for Peer {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Peer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_bytes(&[42; 32]);
    let trusted = [key.verifying_key()];
    let challenge = [7u8; wire::CHALLENGE_LEN];
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let mut head = [0u8; wire::REQUEST_LEN];
        let n = rest.len().min(head.len());
        head[..n].copy_from_slice(&rest[..n]);
        if let Ok(request) = Request::parse(&head)
            && request.verify(&challenge, &trusted).is_ok()
        {
            assert_eq!(request.key_id, key_id(&key.verifying_key()));
        }
    } else {
        let keys = DoorKeys {
            private: [9; 32],
            public: [0; 32],
        };
        let peer = Peer {
            input: Cursor::new(rest.to_vec()),
        };
        if let Ok(mut channel) = NoiseStream::accept(peer, &keys) {
            let mut head = [0u8; wire::REQUEST_LEN];
            let _ = channel.read_exact(&mut head);
            let mut rest = Vec::new();
            let _ = channel.take(1 << 20).read_to_end(&mut rest);
        }
    }
});
