//! The signed model bundle: everything a door needs to recognise its people, in one file that
//! the laptop signs and the door verifies before it looks at anything else.
//!
//! ```text
//! MAGIC "FGBUNDL1" (8) | key id (8) | Ed25519 signature (64) | body length u64 LE (8) | body
//! body = header length u32 LE | postcard(Header) | payload
//! payload = postcard(Payload): enrolled people (templates) and the networks' door forms
//! ```
//!
//! The signature covers every byte except itself (magic, key id, length and body). Order of
//! checks in [`verify`]: size bounds, magic, declared length, a trusted key with that id, the
//! signature (strict Ed25519), and only then any parsing: the header, the payload's SHA-256
//! against the header, the payload. A byte flipped anywhere, a truncation or an unknown key is
//! refused before postcard ever runs on attacker-controlled bytes.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::detect::DetectorConfig;
use crate::embed::EmbedderKind;
use crate::gallery::{Gallery, MaskedScoring, MaskedTemplates, Person};
use crate::head::Head;

/// File magic and layout version.
pub const MAGIC: [u8; 8] = *b"FGBUNDL1";
/// Version of the header and payload layout.
/// 2 added the trained classification head; 3 the door or group a bundle is for, and a
/// self-test without a face picture; 4 the masked path's templates (faces routed by mask
/// state, [`crate::maskroute`]); 5 carries every network as its door form (tract NNEF,
/// [`crate::nnef`]) instead of ONNX, which the door no longer parses (issue #25); 6 says how
/// the masked path scores a person ([`MaskedScoring`]). Format 5 is served as it was made
/// (its masked path by the best template, at the threshold it was calibrated for); older
/// formats are refused with what to do: make the bundle again.
pub const FORMAT_VERSION: u16 = 6;
/// The oldest format served: the same networks, the masked path scored by its best template.
pub const FORMAT_BEST_TEMPLATE: u16 = 5;
/// Largest bundle accepted: two int8 embedders plus a large gallery fit well under it.
pub const MAX_BUNDLE: usize = 64 << 20;
const PREFIX: usize = 8 + 8 + 64 + 8;

/// What a bundle declares about itself (signed, read before the payload).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// [`FORMAT_VERSION`].
    pub format: u16,
    /// Monotonic model version: a door refuses anything not newer than what it runs.
    pub model_version: u32,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// The embedder the templates were made with.
    pub embedder: EmbedderKind,
    /// Whether the embedder files are the int8-weight ones.
    pub quantised: bool,
    /// Acceptance threshold (cosine).
    pub threshold: f32,
    /// Enrolled names, in gallery order.
    pub labels: Vec<String>,
    /// Detector settings.
    pub detector: DetectorConfig,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// SHA-256 of the payload.
    pub payload_sha256: [u8; 32],
    /// The door (or group of doors) this bundle is for; a door with an id refuses bundles
    /// made for others, and one without refuses bundles that name a door.
    pub door: Option<String>,
}

/// The bulk of a bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// Enrolled people and their templates.
    pub people: Vec<Person>,
    /// The networks' door forms (NNEF, [`crate::nnef::door_name`] of each ONNX file's name,
    /// bytes): the embedder's, and the refiner's and masked path's when they are used.
    pub models: Vec<(String, Vec<u8>)>,
    /// What the door checks before it switches over (see [`SelfTest`]).
    pub self_test: Option<SelfTest>,
    /// The trained classification head, if `facegate train` made this bundle.
    pub head: Option<Head>,
    /// The masked path's templates, when the door routes faces by mask state; its network
    /// files travel in `models`.
    pub masked: Option<MaskedTemplates>,
    /// With `masked`: what the masked path's networks make of the self-test pattern on the
    /// laptop, for the door to compare before it switches over.
    pub masked_self_test: Option<MaskedSelfTest>,
}

/// [`Payload`] as format 5 laid it out: the masked templates had no [`MaskedScoring`] and
/// were scored by their best template.
#[derive(Serialize, Deserialize)]
struct PayloadV5 {
    people: Vec<Person>,
    models: Vec<(String, Vec<u8>)>,
    self_test: Option<SelfTest>,
    head: Option<Head>,
    masked: Option<MaskedTemplatesV5>,
    masked_self_test: Option<MaskedSelfTest>,
}

/// [`MaskedTemplates`] as format 5 laid it out.
#[derive(Serialize, Deserialize)]
struct MaskedTemplatesV5 {
    embedder: EmbedderKind,
    offset: f32,
    templates: Vec<Vec<crate::embed::Embedding>>,
}

impl From<PayloadV5> for Payload {
    fn from(p: PayloadV5) -> Self {
        Payload {
            people: p.people,
            models: p.models,
            self_test: p.self_test,
            head: p.head,
            masked: p.masked.map(|m| MaskedTemplates {
                embedder: m.embedder,
                offset: m.offset,
                templates: m.templates,
                scoring: MaskedScoring::Best,
            }),
            masked_self_test: p.masked_self_test,
        }
    }
}

impl From<&Payload> for PayloadV5 {
    fn from(p: &Payload) -> Self {
        PayloadV5 {
            people: p.people.clone(),
            models: p.models.clone(),
            self_test: p.self_test.clone(),
            head: p.head.clone(),
            masked: p.masked.as_ref().map(|m| MaskedTemplatesV5 {
                embedder: m.embedder,
                offset: m.offset,
                templates: m.templates.clone(),
            }),
            masked_self_test: p.masked_self_test.clone(),
        }
    }
}

/// The masked path's part of the self-test: the [`self_test_pattern`] of
/// [`SelfTest::Pattern`]'s seed through the mask-state classifier and the masked embedder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskedSelfTest {
    /// The mask-state logit.
    pub mask_state: f32,
    /// The masked embedder's embedding.
    pub embedding: Vec<f32>,
}

/// The self-test of a bundle: proof, on the door, that its runtime computes what the laptop
/// did and that the gallery decides sanely, before the door switches over.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SelfTest {
    /// No face picture travels (format 2's self-test was a face crop). A synthetic pattern
    /// ([`self_test_pattern`]) must embed as the laptop embedded it and must be refused as a
    /// stranger, and `known` (the embedding of one of `label`'s photos, a vector, not a
    /// picture) must be identified as `label`.
    Pattern {
        /// An enrolled person.
        label: String,
        /// An embedding of one of their photos.
        known: Vec<f32>,
        /// Seed of the pattern.
        seed: u64,
        /// The pattern's embedding as made on the laptop with the bundle's files.
        embedding: Vec<f32>,
    },
}

impl SelfTest {
    /// The face-free self-test for `label`, with the pattern embedded by `embedder` (which
    /// must load the files the bundle carries).
    pub fn pattern(
        label: &str,
        known: Vec<f32>,
        embedder: &crate::embed::Embedder,
    ) -> crate::Result<Self> {
        const SEED: u64 = 0x00FA_CE6A_7E00_0003;
        Ok(SelfTest::Pattern {
            label: label.to_owned(),
            known,
            seed: SEED,
            embedding: embedder.embed(&self_test_pattern(SEED))?,
        })
    }

    /// The pattern's seed.
    pub fn seed(&self) -> u64 {
        match self {
            SelfTest::Pattern { seed, .. } => *seed,
        }
    }

    /// The enrolled person the test names.
    pub fn label(&self) -> &str {
        match self {
            SelfTest::Pattern { label, .. } => label,
        }
    }
}

/// A 112x112 picture that is no face: smooth colour bands and a few blocks, the same on every
/// machine for a seed (integer arithmetic only).
pub fn self_test_pattern(seed: u64) -> image::RgbImage {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let k: Vec<u32> = (0..9).map(|_| (next() % 7 + 1) as u32).collect();
    image::RgbImage::from_fn(112, 112, |x, y| {
        let c = |i: usize| ((x * k[i] + y * k[i + 1] + (x / 16) * (y / 16) * k[i + 2]) % 256) as u8;
        image::Rgb([c(0), c(3), c(6)])
    })
}

/// A door id or group name: printable, at most 64 characters.
pub fn check_door_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.chars().count() > 64
        || id.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(format!(
            "door id {id:?} must be 1 to 64 printable characters without spaces"
        ));
    }
    Ok(())
}

/// A bundle whose signature, hashes and structure have been checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Bundle {
    /// The header.
    pub header: Header,
    /// The payload.
    pub payload: Payload,
}

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BundleError {
    /// Shorter than the fixed prefix, or than its declared length.
    #[error("bundle is truncated ({len} bytes): re-send it")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// Above [`MAX_BUNDLE`].
    #[error("bundle is {len} bytes, above the {MAX_BUNDLE}-byte limit")]
    TooLarge {
        /// Declared or received size.
        len: usize,
    },
    /// Not a facegate bundle (or a newer layout).
    #[error("not a facegate bundle (bad magic): was it made by `facegate enrol`?")]
    BadMagic,
    /// Trailing bytes after the declared body.
    #[error("bundle has {extra} bytes after its declared end")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// Signed by a key the door does not trust.
    #[error(
        "bundle is signed by key {key_id}, which is not in the trusted keys: on the door, add its \
         .pub to `model.trust`; on the laptop, pass it with --trust"
    )]
    UnknownKey {
        /// Hex key id.
        key_id: String,
    },
    /// The signature does not verify: the bundle was altered or corrupted.
    #[error("signature check failed: the bundle was altered or corrupted")]
    BadSignature,
    /// Signed but structurally wrong (a signer bug, never an attacker).
    #[error("signed bundle is malformed: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
}

/// The 8-byte id of a public key: the start of its SHA-256.
pub fn key_id(key: &VerifyingKey) -> [u8; 8] {
    let d = Sha256::digest(key.as_bytes());
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    id
}

impl Bundle {
    /// Builds a bundle from a gallery and the embedder files.
    pub fn new(
        gallery: &Gallery,
        quantised: bool,
        model_version: u32,
        created_ms: u64,
        detector: DetectorConfig,
        models: Vec<(String, Vec<u8>)>,
        self_test: Option<SelfTest>,
    ) -> Self {
        let payload = Payload {
            people: gallery.people.clone(),
            models,
            self_test,
            head: gallery.head.clone(),
            masked: gallery.masked.clone(),
            masked_self_test: None,
        };
        let header = Header {
            format: FORMAT_VERSION,
            model_version,
            created_ms,
            embedder: gallery.embedder,
            quantised,
            threshold: gallery.threshold,
            labels: gallery.people.iter().map(|p| p.name.clone()).collect(),
            detector,
            payload_len: 0,
            payload_sha256: [0; 32],
            door: None,
        };
        Self { header, payload }
    }

    /// Names the door (or group) this bundle is for.
    pub fn for_door(mut self, door: Option<String>) -> Self {
        self.header.door = door;
        self
    }

    /// The gallery this bundle carries.
    pub fn gallery(&self) -> Gallery {
        Gallery {
            embedder: self.header.embedder,
            threshold: self.header.threshold,
            people: self.payload.people.clone(),
            head: self.payload.head.clone(),
            masked: self.payload.masked.clone(),
        }
    }

    /// Serialises and signs the bundle.
    pub fn sign(&self, key: &SigningKey) -> Vec<u8> {
        self.sign_as_format(key, FORMAT_VERSION)
    }

    /// [`Bundle::sign`], declaring another format: for tests of how a door treats bundles
    /// that older or newer builds made.
    #[doc(hidden)]
    pub fn sign_as_format(&self, key: &SigningKey, format: u16) -> Vec<u8> {
        let payload = match format {
            FORMAT_BEST_TEMPLATE => postcard::to_allocvec(&PayloadV5::from(&self.payload)),
            _ => postcard::to_allocvec(&self.payload),
        }
        .unwrap_or_default();
        let mut header = self.header.clone();
        header.format = format;
        header.payload_len = payload.len() as u64;
        header.payload_sha256 = Sha256::digest(&payload).into();
        let header = postcard::to_allocvec(&header).unwrap_or_default();
        let mut body = Vec::with_capacity(4 + header.len() + payload.len());
        body.extend_from_slice(&(header.len() as u32).to_le_bytes());
        body.extend(header);
        body.extend(payload);
        seal(&body, key)
    }
}

/// Frames and signs a bundle body (`header length | header | payload`). Public for the fuzz
/// target, which must reach the parser behind the signature check with arbitrary bodies.
#[doc(hidden)]
pub fn seal(body: &[u8], key: &SigningKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&key_id(&key.verifying_key()));
    out.extend_from_slice(&[0; 64]);
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    let signature = key.sign(&signed_part(&out));
    out[16..80].copy_from_slice(&signature.to_bytes());
    out
}

/// Everything but the signature bytes, in order.
fn signed_part(bytes: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(bytes.len() - 64);
    m.extend_from_slice(&bytes[..16]);
    m.extend_from_slice(&bytes[80..]);
    m
}

/// Checks the signature against the trusted keys, then parses. See the module docs for the
/// order of checks.
pub fn verify(bytes: &[u8], trusted: &[VerifyingKey]) -> Result<Bundle, BundleError> {
    if bytes.len() > MAX_BUNDLE {
        return Err(BundleError::TooLarge { len: bytes.len() });
    }
    if bytes.len() < PREFIX {
        return Err(BundleError::Truncated { len: bytes.len() });
    }
    if bytes[..8] != MAGIC {
        return Err(BundleError::BadMagic);
    }
    let body_len = u64::from_le_bytes(bytes[80..88].try_into().unwrap_or_default());
    let end = usize::try_from(body_len)
        .ok()
        .and_then(|l| l.checked_add(PREFIX));
    match end {
        None => return Err(BundleError::TooLarge { len: usize::MAX }),
        Some(end) if end > MAX_BUNDLE => return Err(BundleError::TooLarge { len: end }),
        Some(end) if end > bytes.len() => return Err(BundleError::Truncated { len: bytes.len() }),
        Some(end) if end < bytes.len() => {
            return Err(BundleError::TrailingBytes {
                extra: bytes.len() - end,
            });
        }
        Some(_) => {}
    }
    let id = &bytes[8..16];
    let key = trusted
        .iter()
        .find(|k| key_id(k) == id)
        .ok_or_else(|| BundleError::UnknownKey {
            key_id: hex::encode(id),
        })?;
    let signature = Signature::from_bytes(
        bytes[16..80]
            .try_into()
            .map_err(|_| BundleError::BadSignature)?,
    );
    key.verify_strict(&signed_part(bytes), &signature)
        .map_err(|_| BundleError::BadSignature)?;
    // Authenticated from here on.
    parse_body(&bytes[PREFIX..])
}

fn parse_body(body: &[u8]) -> Result<Bundle, BundleError> {
    let bad = |reason: String| BundleError::Malformed { reason };
    let header_len = body
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| bad("no header length".into()))?;
    let header_bytes = body
        .get(4..4 + header_len)
        .ok_or_else(|| bad("header runs past the end".into()))?;
    let (format, _) =
        postcard::take_from_bytes::<u16>(header_bytes).map_err(|e| bad(format!("header: {e}")))?;
    let header: Header = match format {
        FORMAT_BEST_TEMPLATE..=FORMAT_VERSION => {
            postcard::from_bytes(header_bytes).map_err(|e| bad(format!("header: {e}")))?
        }
        2..FORMAT_BEST_TEMPLATE => {
            return Err(bad(format!(
                "format {format} carries ONNX networks, which this door no longer reads: make \
                 the bundle again with this version's `facegate enrol` or `train`"
            )));
        }
        other => {
            return Err(bad(format!(
                "format {other} (this build reads {FORMAT_VERSION}): make the bundle again \
                 with this version's `facegate enrol` or `train`"
            )));
        }
    };
    if let Some(door) = &header.door {
        check_door_id(door).map_err(bad)?;
    }
    header.detector.validate().map_err(bad)?;
    let payload = &body[4 + header_len..];
    if payload.len() as u64 != header.payload_len {
        return Err(bad(format!(
            "payload is {} bytes, header says {}",
            payload.len(),
            header.payload_len
        )));
    }
    if <[u8; 32]>::from(Sha256::digest(payload)) != header.payload_sha256 {
        return Err(bad("payload SHA-256 differs from the header's".into()));
    }
    let payload_err = |e: postcard::Error| bad(format!("payload: {e}"));
    let payload: Payload = match header.format {
        FORMAT_BEST_TEMPLATE => postcard::from_bytes::<PayloadV5>(payload)
            .map_err(payload_err)?
            .into(),
        _ => postcard::from_bytes(payload).map_err(payload_err)?,
    };
    let labels: Vec<&String> = payload.people.iter().map(|p| &p.name).collect();
    if labels != header.labels.iter().collect::<Vec<_>>() {
        return Err(bad("labels differ from the enrolled people".into()));
    }
    let bundle = Bundle { header, payload };
    bundle
        .gallery()
        .validate()
        .map_err(|e| bad(e.to_string()))?;
    Ok(bundle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn sample(version: u32, names: &[&str]) -> Bundle {
        let mut g = Gallery::new(EmbedderKind::SFace, 0.48);
        for (i, n) in names.iter().enumerate() {
            let mut t = vec![0.0; 128];
            t[i % 128] = 1.0;
            g.enrol(n, t).expect("enrol");
        }
        Bundle::new(
            &g,
            true,
            version,
            1_764_322_200_000,
            DetectorConfig::default(),
            vec![("m.onnx".into(), vec![7; 300])],
            None,
        )
    }

    fn signed(b: &Bundle) -> (Vec<u8>, Bundle) {
        let bytes = b.sign(&key(1));
        let back = verify(&bytes, &[key(1).verifying_key()]).expect("verify");
        (bytes, back)
    }

    #[test]
    fn round_trip() {
        let b = sample(3, &["ann", "bob"]);
        let (_, back) = signed(&b);
        assert_eq!(back.payload, b.payload);
        assert_eq!(back.header.model_version, 3);
        assert_eq!(back.header.labels, vec!["ann", "bob"]);
        assert_eq!(back.gallery().people.len(), 2);
    }

    #[test]
    fn unknown_key_is_refused_before_parsing() {
        let bytes = sample(1, &["ann"]).sign(&key(2));
        assert!(matches!(
            verify(&bytes, &[key(1).verifying_key()]),
            Err(BundleError::UnknownKey { .. })
        ));
    }

    #[test]
    fn every_truncation_is_refused() {
        let (bytes, _) = signed(&sample(1, &["ann"]));
        for len in 0..bytes.len() {
            assert!(
                verify(&bytes[..len], &[key(1).verifying_key()]).is_err(),
                "accepted {len} bytes"
            );
        }
    }

    #[test]
    fn oversized_declared_length_is_refused() {
        let (mut bytes, _) = signed(&sample(1, &["ann"]));
        bytes[80..88].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            verify(&bytes, &[key(1).verifying_key()]),
            Err(BundleError::TooLarge { .. })
        ));
    }

    /// Finding: `enrol --threshold=-1` made a door that let a stranger in at cosine 0.11. A
    /// signed bundle with a threshold outside the sane range, or a name with a newline or an
    /// escape sequence, is refused by the door's parser.
    #[test]
    fn out_of_range_thresholds_and_unprintable_names_are_refused() {
        for thr in [-1.0, 0.0, 0.11, 0.99, f32::NAN] {
            let mut b = sample(1, &["ann"]);
            b.header.threshold = thr;
            let err = verify(&b.sign(&key(1)), &[key(1).verifying_key()]).expect_err("refused");
            assert!(err.to_string().contains("threshold"), "{thr}: {err}");
        }
        for detector in [
            DetectorConfig {
                score_threshold: 0.0,
                ..DetectorConfig::default()
            },
            DetectorConfig {
                max_side: 100_000,
                ..DetectorConfig::default()
            },
            DetectorConfig {
                nms_iou: f32::NAN,
                ..DetectorConfig::default()
            },
        ] {
            let mut b = sample(1, &["ann"]);
            b.header.detector = detector;
            let err = verify(&b.sign(&key(1)), &[key(1).verifying_key()]).expect_err("refused");
            assert!(err.to_string().contains("detector"), "{err}");
        }
        for name in ["ann\nUNLOCKED bob", "\u{1b}]0;pwned\u{7}", ""] {
            let mut g = Gallery::new(EmbedderKind::SFace, 0.48);
            assert!(g.enrol(name, vec![0.1; 128]).is_err(), "{name:?}");
            let mut b = sample(1, &["ann"]);
            b.payload.people[0].name = name.into();
            b.header.labels = vec![name.into()];
            assert!(
                verify(&b.sign(&key(1)), &[key(1).verifying_key()]).is_err(),
                "{name:?}"
            );
        }
    }

    /// A bundle of an older format (ONNX networks) or of one this build does not know is
    /// refused after its signature, with what to do.
    #[test]
    fn other_formats_are_refused_with_what_to_do() {
        let b = sample(4, &["ann"]);
        for (format, says) in [(2u16, "ONNX"), (4, "ONNX"), (9, "reads 6")] {
            let err = verify(
                &b.sign_as_format(&key(1), format),
                &[key(1).verifying_key()],
            )
            .expect_err("refused");
            let text = err.to_string();
            assert!(
                text.contains(says) && text.contains("make the bundle again"),
                "{text}"
            );
        }
    }

    /// A format-5 bundle (made before the masked path scored by the templates' mean) is
    /// served as it was made: its masked path by the best template, with its own offset;
    /// today's carries its scoring rule.
    #[test]
    fn format_5_bundles_keep_their_best_template_scoring() {
        let mut g = Gallery::new(EmbedderKind::SFace, 0.48);
        g.enrol("ann", vec![0.1; 128]).expect("enrol");
        for t in [vec![0.3; 128], vec![-0.2; 128]] {
            g.enrol_masked("ann", EmbedderKind::SFaceMasked, 0.03, t)
                .expect("masked");
        }
        let b = Bundle::new(&g, true, 1, 0, DetectorConfig::default(), vec![], None);
        let keys = [key(1).verifying_key()];
        let now = verify(&b.sign(&key(1)), &keys).expect("format 6");
        let m = now.gallery().masked.expect("masked path");
        assert_eq!(m.scoring, MaskedScoring::BestAndMean);
        let old =
            verify(&b.sign_as_format(&key(1), FORMAT_BEST_TEMPLATE), &keys).expect("format 5");
        assert_eq!(old.header.format, FORMAT_BEST_TEMPLATE);
        let before = old.gallery().masked.expect("masked path");
        assert_eq!(before.scoring, MaskedScoring::Best);
        assert_eq!((before.offset, &before.templates), (m.offset, &m.templates));
        assert_eq!(old.payload.people, now.payload.people);
    }

    #[test]
    fn masked_templates_round_trip_and_malformed_ones_are_refused() {
        let mut g = Gallery::new(EmbedderKind::SFace, 0.48);
        g.enrol("ann", vec![0.1; 128]).expect("enrol");
        g.enrol("bob", vec![0.2; 128]).expect("enrol");
        g.enrol_masked("bob", EmbedderKind::SFaceMasked, 0.03, vec![0.3; 128])
            .expect("masked");
        let bundle = |g: &Gallery| {
            Bundle::new(g, true, 1, 0, DetectorConfig::default(), vec![], None).sign(&key(1))
        };
        let back = verify(&bundle(&g), &[key(1).verifying_key()]).expect("verify");
        let m = back.gallery().masked.expect("masked path");
        assert_eq!(m.templates, vec![vec![], vec![vec![0.3; 128]]]);
        assert_eq!(m.offset, 0.03);
        // A loosening offset beyond the bound, a template of the wrong length, or templates
        // for people who are not there: refused, never served.
        for spoil in [
            |m: &mut MaskedTemplates| m.offset = 0.5,
            |m: &mut MaskedTemplates| m.offset = f32::NAN,
            |m: &mut MaskedTemplates| m.templates[1][0].push(1.0),
            |m: &mut MaskedTemplates| m.templates.push(vec![]),
        ] {
            let mut bad = g.clone();
            spoil(bad.masked.as_mut().expect("masked"));
            let err = verify(&bundle(&bad), &[key(1).verifying_key()]).expect_err("refused");
            assert!(err.to_string().contains("masked"), "{err}");
        }
    }

    proptest! {
        #[test]
        fn any_flipped_byte_is_refused(pos in 0usize..10_000, bit in 0u8..8) {
            let (mut bytes, _) = signed(&sample(5, &["ann", "bob", "cy"]));
            let pos = pos % bytes.len();
            bytes[pos] ^= 1 << bit;
            prop_assert!(verify(&bytes, &[key(1).verifying_key()]).is_err());
        }

        #[test]
        fn header_fields_round_trip(version in any::<u32>(), created in any::<u64>(), thr in 0.3f32..0.95,
                                    names in prop::collection::vec("[a-z]{1,12}", 1..8)) {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut b = sample(version, &names);
            b.header.created_ms = created;
            b.header.threshold = thr;
            let bytes = b.sign(&key(9));
            let back = verify(&bytes, &[key(1).verifying_key(), key(9).verifying_key()]);
            // Duplicate names merge into one person at enrolment, so labels always match.
            let back = back.expect("verify");
            prop_assert_eq!(back.header.model_version, version);
            prop_assert_eq!(back.header.created_ms, created);
            prop_assert_eq!(back.header.threshold, thr);
            prop_assert_eq!(back.payload, b.payload);
        }
    }
}
