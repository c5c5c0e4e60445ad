//! The encrypted update channel: Noise NX (X25519, ChaCha20-Poly1305, BLAKE2s, via `snow`),
//! generic over any byte stream, so the same code runs on a socket, in tests and in fuzzing.
//!
//! ```text
//! door   -> laptop  "FGN1"                       (this door speaks Noise)
//! laptop -> door    frame(-> e)
//! door   -> laptop  frame(<- e, ee, s, es)       (the door's static key, encrypted)
//! then every byte of the update protocol ([`crate::wire`]) travels in frames:
//! frame = length u16 BE | Noise transport message (at most 65535 bytes)
//! ```
//!
//! Why this shape: the laptop must know it talks to *its* door before it sends the enrolled
//! people's templates, so the door proves a static key that the laptop pins (trust on first
//! use, or given with `--door-key`). The laptop proves nothing at the Noise level: its
//! authority is the Ed25519 signature of [`crate::wire`], taken over this handshake's hash (the
//! door's challenge *is* the hash), so a request signed on one connection is worthless on
//! another, and a man in the middle, who has two different handshakes, cannot relay one.

use std::io::{ErrorKind, Read, Write};

use snow::{Builder, HandshakeState, TransportState};

/// What a Noise door sends first.
pub const NOISE_HELLO: [u8; 4] = *b"FGN1";
/// The Noise protocol name.
const PARAMS: &str = "Noise_NX_25519_ChaChaPoly_BLAKE2s";
/// Longest Noise message.
const MAX_MESSAGE: usize = 65_535;
/// Authentication tag bytes per message.
const TAG: usize = 16;
/// Most plaintext one frame carries.
const MAX_PAYLOAD: usize = MAX_MESSAGE - TAG;

/// A door's static key pair (X25519).
#[derive(Clone)]
pub struct DoorKeys {
    /// The secret half.
    pub private: [u8; 32],
    /// The public half: what the laptop pins.
    pub public: [u8; 32],
}

impl std::fmt::Debug for DoorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DoorKeys({})", hex::encode(self.public))
    }
}

fn io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(ErrorKind::InvalidData, format!("update channel: {e}"))
}

fn params() -> std::io::Result<snow::params::NoiseParams> {
    PARAMS.parse().map_err(io)
}

impl DoorKeys {
    /// A fresh key pair from the system's random source.
    pub fn generate() -> std::io::Result<Self> {
        let pair = Builder::new(params()?).generate_keypair().map_err(io)?;
        let mut keys = Self {
            private: [0; 32],
            public: [0; 32],
        };
        keys.private.copy_from_slice(&pair.private);
        keys.public.copy_from_slice(&pair.public);
        Ok(keys)
    }

    /// Text form for a key file: the private then the public half, hex, one per line.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n",
            hex::encode(self.private),
            hex::encode(self.public)
        )
    }

    /// Parses [`DoorKeys::to_text`].
    pub fn from_text(text: &str) -> Option<Self> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let mut half = || -> Option<[u8; 32]> { hex::decode(lines.next()?).ok()?.try_into().ok() };
        let (private, public) = (half()?, half()?);
        Some(Self { private, public })
    }
}

/// An established channel: reads and writes plaintext, sends and receives Noise frames.
pub struct NoiseStream<S> {
    inner: S,
    transport: TransportState,
    /// Decrypted bytes not yet read.
    pending: Vec<u8>,
    at: usize,
    /// The handshake hash: the session's identity, signed by the laptop's requests.
    binding: [u8; 32],
    /// The door's static public key.
    remote: Option<[u8; 32]>,
}

/// One write per frame: a length written apart from its message would wait on TCP's delayed
/// acknowledgement (Nagle), 40 ms a frame.
fn write_frame(w: &mut impl Write, message: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(message.len()).map_err(io)?;
    let mut frame = Vec::with_capacity(2 + message.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(message);
    w.write_all(&frame)
}

fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len)?;
    buf.resize(usize::from(u16::from_be_bytes(len)), 0);
    r.read_exact(buf)
}

fn binding(hs: &HandshakeState) -> [u8; 32] {
    let mut b = [0u8; 32];
    let h = hs.get_handshake_hash();
    let n = h.len().min(32);
    b[..n].copy_from_slice(&h[..n]);
    b
}

impl<S: Read + Write> NoiseStream<S> {
    /// The door's side: sends [`NOISE_HELLO`], answers the laptop's handshake.
    pub fn accept(mut inner: S, keys: &DoorKeys) -> std::io::Result<Self> {
        inner.write_all(&NOISE_HELLO)?;
        inner.flush()?;
        let mut hs = Builder::new(params()?)
            .local_private_key(&keys.private)
            .map_err(io)?
            .build_responder()
            .map_err(io)?;
        let mut frame = Vec::new();
        let mut out = vec![0u8; MAX_MESSAGE];
        read_frame(&mut inner, &mut frame)?;
        hs.read_message(&frame, &mut out).map_err(io)?;
        let n = hs.write_message(&[], &mut out).map_err(io)?;
        write_frame(&mut inner, &out[..n])?;
        inner.flush()?;
        Self::established(inner, hs)
    }

    /// The laptop's side, after it has read [`NOISE_HELLO`]: runs the handshake and returns
    /// the channel; the caller checks [`NoiseStream::remote_key`] against its pin.
    pub fn connect(mut inner: S) -> std::io::Result<Self> {
        let mut hs = Builder::new(params()?).build_initiator().map_err(io)?;
        let mut out = vec![0u8; MAX_MESSAGE];
        let n = hs.write_message(&[], &mut out).map_err(io)?;
        write_frame(&mut inner, &out[..n])?;
        inner.flush()?;
        let mut frame = Vec::new();
        read_frame(&mut inner, &mut frame)?;
        hs.read_message(&frame, &mut out).map_err(io)?;
        Self::established(inner, hs)
    }

    fn established(inner: S, hs: HandshakeState) -> std::io::Result<Self> {
        let binding = binding(&hs);
        let remote = hs
            .get_remote_static()
            .and_then(|k| <[u8; 32]>::try_from(k).ok());
        Ok(Self {
            inner,
            transport: hs.into_transport_mode().map_err(io)?,
            pending: Vec::new(),
            at: 0,
            binding,
            remote,
        })
    }

    /// The handshake hash both sides share (the laptop signs it).
    pub fn binding(&self) -> [u8; 32] {
        self.binding
    }

    /// The door's static public key (on the laptop's side).
    pub fn remote_key(&self) -> Option<[u8; 32]> {
        self.remote
    }

    /// The stream underneath (to set timeouts, or shut it down).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: Read + Write> Read for NoiseStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.at >= self.pending.len() {
            let mut frame = Vec::new();
            match read_frame(&mut self.inner, &mut frame) {
                Ok(()) => {}
                // A clean end between frames is the end of the stream.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            self.pending.resize(frame.len(), 0);
            let n = self
                .transport
                .read_message(&frame, &mut self.pending)
                .map_err(io)?;
            self.pending.truncate(n);
            self.at = 0;
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl<S: Read + Write> Write for NoiseStream<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(MAX_PAYLOAD);
        let mut out = vec![0u8; n + TAG];
        let len = self
            .transport
            .write_message(&buf[..n], &mut out)
            .map_err(io)?;
        write_frame(&mut self.inner, &out[..len])?;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn both_sides_agree_and_bytes_cross_encrypted() {
        let keys = DoorKeys::generate().expect("keys");
        assert_eq!(
            DoorKeys::from_text(&keys.to_text()).map(|k| k.public),
            Some(keys.public)
        );
        let (a, b) = UnixStream::pair().expect("pair");
        let door_keys = keys.clone();
        let door = std::thread::spawn(move || {
            let mut s = NoiseStream::accept(a, &door_keys).expect("accept");
            let mut got = vec![0u8; 200_000];
            s.read_exact(&mut got).expect("read");
            s.write_all(b"ok").expect("write");
            (s.binding(), got)
        });
        let mut b = b;
        let mut hello = [0u8; 4];
        b.read_exact(&mut hello).expect("hello");
        assert_eq!(hello, NOISE_HELLO);
        // Watch the bytes go by: the payload must not appear in clear.
        let mut laptop = NoiseStream::connect(b).expect("connect");
        assert_eq!(laptop.remote_key(), Some(keys.public));
        let secret: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        laptop.write_all(&secret).expect("send");
        let mut answer = [0u8; 2];
        laptop.read_exact(&mut answer).expect("answer");
        assert_eq!(&answer, b"ok");
        let (door_binding, got) = door.join().expect("door");
        assert_eq!(got, secret);
        assert_eq!(door_binding, laptop.binding());
    }

    #[test]
    fn a_tampered_frame_is_refused() {
        let keys = DoorKeys::generate().expect("keys");
        let (a, b) = UnixStream::pair().expect("pair");
        let door = std::thread::spawn(move || {
            let mut s = NoiseStream::accept(a, &keys).expect("accept");
            let mut got = [0u8; 4];
            s.read_exact(&mut got).map(|()| got)
        });
        let mut b = b;
        let mut hello = [0u8; 4];
        b.read_exact(&mut hello).expect("hello");
        let mut laptop = NoiseStream::connect(b.try_clone().expect("clone")).expect("connect");
        // Encrypt a frame into a buffer, flip a bit, send it raw.
        let mut out = vec![0u8; 64];
        let n = laptop
            .transport
            .write_message(b"push", &mut out)
            .expect("encrypt");
        out[3] ^= 1;
        write_frame(&mut b, &out[..n]).expect("send");
        assert!(door.join().expect("door").is_err());
    }
}
