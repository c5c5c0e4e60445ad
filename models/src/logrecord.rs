//! The recognition log: one record per decision the door makes, written by the device to a
//! serial line and a local ring file, read back by `facegate logs` on the laptop.
//!
//! Wire format of one frame: `COBS(postcard(record) ++ crc32(postcard(record)) as LE) ++ 0x00`.
//! COBS guarantees the only zero byte is the frame delimiter, so a reader that starts mid-stream,
//! or meets line noise, a cut cable or a reset device, throws away bytes up to the next zero and
//! is back in step with the very next frame. The CRC catches corruption that COBS alone would
//! decode into a plausible-looking record. Frames are bounded ([`MAX_FRAME`]): a reader never
//! buffers more than that, whatever arrives.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Version of the record layout; bumped on any incompatible change.
pub const FORMAT_VERSION: u8 = 1;

/// Largest encoded frame (without the delimiter) a reader accepts.
pub const MAX_FRAME: usize = 512;

/// Longest name or message kept in a record, in bytes (longer ones are cut at a char
/// boundary). Enough for a whole refusal reason (they were cut at 96, mid-sentence); with the
/// other fields, COBS and the CRC a record stays well under [`MAX_FRAME`].
pub const MAX_TEXT: usize = 400;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// One logged decision or event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// [`FORMAT_VERSION`] of the writer.
    pub format: u8,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Camera frame number the decision was made on.
    pub frame: u64,
    /// Version of the model bundle that made it.
    pub model_version: u32,
    /// What happened.
    pub event: Event,
}

/// What a record reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// An enrolled person was recognised.
    Known {
        /// Their name.
        person: String,
        /// Cosine score that cleared the threshold.
        score: f32,
        /// Whether the door was opened (false during a cooldown, for instance).
        unlocked: bool,
    },
    /// A face matched nobody well enough. Never unlocks.
    Stranger {
        /// Best score seen, against anyone.
        best_score: f32,
        /// How many stranger decisions in a row, to spot someone trying repeatedly.
        attempt: u32,
    },
    /// A model update was tried.
    ModelUpdate {
        /// Version offered.
        version: u32,
        /// Whether it is now active.
        accepted: bool,
        /// Why not, or "ok".
        reason: String,
    },
    /// Something went wrong and was recovered from (camera lost, display error).
    Fault {
        /// What happened.
        message: String,
    },
    /// An enrolled person was recognised and the door stayed shut, with the reason (still
    /// confirming over frames, a cooldown after an unlock). Added after the first four
    /// variants, so logs written before it still read; `Known` is then always `unlocked`.
    Held {
        /// Their name.
        person: String,
        /// Cosine score that cleared the threshold.
        score: f32,
        /// Why the door stayed shut.
        reason: String,
    },
    /// A face that matched an enrolled person but did not look live (a photo or a screen held
    /// up to the camera): refused, and counted as an attempt. Added after `Held`.
    NotLive {
        /// Whom the face matched.
        person: String,
        /// Its identity score.
        score: f32,
        /// The attempt's liveness score (mean frame logit), below the threshold.
        liveness: f32,
        /// Consecutive refused attempts, as for strangers.
        attempt: u32,
    },
    /// The door was opened by a remote command (`[mqtt] remote_unlock`), not by a face.
    /// Added after `NotLive`.
    RemoteUnlock {
        /// Who sent it: the broker user name the command's topic names (the broker's ACL ties
        /// that level to the login).
        by: String,
    },
    /// A face that matched an enrolled person but whose surroundings moved with it (a photo or
    /// a phone held up by hand, `[liveness] mode = "strict"`): refused, and counted as an
    /// attempt. Added after `RemoteUnlock`.
    MovedAsOne {
        /// Whom the face matched.
        person: String,
        /// Its identity score.
        score: f32,
        /// The attempt's motion score (`crate::motion`), above the threshold.
        motion: f32,
        /// Consecutive refused attempts, as for strangers.
        attempt: u32,
    },
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrameError {
    /// More than [`MAX_FRAME`] bytes without a delimiter: line noise or a foreign protocol.
    #[error("{len} bytes without a frame delimiter (limit {MAX_FRAME}): skipped to the next frame")]
    TooLong {
        /// Bytes skipped.
        len: usize,
    },
    /// The bytes are not valid COBS.
    #[error("{len} bytes of garbage (not a COBS frame): skipped")]
    NotCobs {
        /// Bytes skipped.
        len: usize,
    },
    /// The checksum does not match: bits were flipped or the frame was cut.
    #[error("checksum mismatch in a {len}-byte frame: corrupted or cut, skipped")]
    Checksum {
        /// Frame length.
        len: usize,
    },
    /// The payload is not a record of this format.
    #[error("frame passed its checksum but is not a version-{FORMAT_VERSION} record: {reason}")]
    Payload {
        /// Decoder's explanation.
        reason: String,
    },
}

impl LogRecord {
    /// A record stamped with the current time.
    pub fn now(frame: u64, model_version: u32, event: Event) -> Self {
        let time_ms = UNIX_EPOCH
            .elapsed()
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self {
            format: FORMAT_VERSION,
            time_ms,
            frame,
            model_version,
            event,
        }
    }

    /// Encodes the record as one delimited frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut record = self.clone();
        record.event.truncate_text();
        // Serialising owned strings and numbers into a Vec cannot fail.
        let mut payload = postcard::to_allocvec(&record).unwrap_or_default();
        payload.extend_from_slice(&CRC.checksum(&payload).to_le_bytes());
        let mut frame = cobs::encode_vec(&payload);
        frame.push(0);
        frame
    }

    /// Decodes one frame (without its delimiter).
    pub fn decode(frame: &[u8]) -> Result<Self, FrameError> {
        if frame.len() > MAX_FRAME {
            return Err(FrameError::TooLong { len: frame.len() });
        }
        let payload =
            cobs::decode_vec(frame).map_err(|_| FrameError::NotCobs { len: frame.len() })?;
        if payload.len() < 5 {
            return Err(FrameError::NotCobs { len: frame.len() });
        }
        let (body, crc) = payload.split_at(payload.len() - 4);
        if CRC.checksum(body).to_le_bytes() != crc {
            return Err(FrameError::Checksum { len: frame.len() });
        }
        let (record, rest): (LogRecord, _) =
            postcard::take_from_bytes(body).map_err(|e| FrameError::Payload {
                reason: e.to_string(),
            })?;
        if !rest.is_empty() {
            return Err(FrameError::Payload {
                reason: format!("{} trailing bytes", rest.len()),
            });
        }
        if record.format != FORMAT_VERSION {
            return Err(FrameError::Payload {
                reason: format!("format version {}", record.format),
            });
        }
        Ok(record)
    }
}

/// Longest name kept in a [`Event::Held`] record, which also carries a reason: both at
/// [`MAX_TEXT`] would not fit a frame.
const MAX_HELD_NAME: usize = 128;

/// Longest reason kept in a [`Event::Held`] record.
const MAX_HELD_REASON: usize = 256;

impl Event {
    fn truncate_text(&mut self) {
        let cut_to = |s: &mut String, max: usize| {
            if s.len() > max {
                let mut end = max;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.truncate(end);
            }
        };
        let cut = |s: &mut String| cut_to(s, MAX_TEXT);
        match self {
            Event::Known { person, .. } => cut(person),
            Event::ModelUpdate { reason, .. } => cut(reason),
            Event::Fault { message } => cut(message),
            Event::Held { person, reason, .. } => {
                cut_to(person, MAX_HELD_NAME);
                cut_to(reason, MAX_HELD_REASON);
            }
            Event::NotLive { person, .. } | Event::MovedAsOne { person, .. } => cut(person),
            Event::RemoteUnlock { by } => cut(by),
            Event::Stranger { .. } => {}
        }
    }
}

/// The text form: one line per record, for `--text` logs and humans.
impl fmt::Display for LogRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(self.time_ms));
        write!(f, "{t} frame={} model={} ", self.frame, self.model_version)?;
        match &self.event {
            Event::Known {
                person,
                score,
                unlocked,
            } => write!(
                f,
                "KNOWN {person:?} score={score:.3} {}",
                if *unlocked { "UNLOCKED" } else { "locked" }
            ),
            Event::Stranger {
                best_score,
                attempt,
            } => {
                write!(f, "STRANGER best={best_score:.3} attempt={attempt} locked")
            }
            Event::ModelUpdate {
                version,
                accepted,
                reason,
            } => write!(
                f,
                "UPDATE version={version} {} {reason:?}",
                if *accepted { "accepted" } else { "refused" }
            ),
            Event::Fault { message } => write!(f, "FAULT {message:?}"),
            Event::Held {
                person,
                score,
                reason,
            } => write!(f, "KNOWN {person:?} score={score:.3} locked ({reason})"),
            Event::NotLive {
                person,
                score,
                liveness,
                attempt,
            } => write!(
                f,
                "NOT LIVE looks like {person:?} score={score:.3} liveness={liveness:.2} \
                 attempt={attempt} locked"
            ),
            Event::RemoteUnlock { by } => write!(f, "REMOTE UNLOCK by {by:?} UNLOCKED"),
            Event::MovedAsOne {
                person,
                score,
                motion,
                attempt,
            } => write!(
                f,
                "NOT LIVE looks like {person:?} score={score:.3} moves with its surroundings \
                 motion={motion:.3} attempt={attempt} locked"
            ),
        }
    }
}

/// Splits a byte stream into frames and decodes them, resynchronising after garbage. Feed it
/// whatever the serial port returns; it holds at most [`MAX_FRAME`] bytes.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// Bytes dropped since the buffer overflowed (until the next delimiter).
    overflow: usize,
}

impl FrameReader {
    /// A reader at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes `bytes`; returns the records and errors completed by them, in stream order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<LogRecord, FrameError>> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == 0 {
                if self.overflow > 0 {
                    out.push(Err(FrameError::TooLong {
                        len: self.overflow + self.buf.len(),
                    }));
                } else if !self.buf.is_empty() {
                    out.push(LogRecord::decode(&self.buf));
                }
                self.buf.clear();
                self.overflow = 0;
            } else if self.overflow > 0 || self.buf.len() >= MAX_FRAME {
                self.overflow += 1 + std::mem::take(&mut self.buf).len();
            } else {
                self.buf.push(b);
            }
        }
        out
    }

    /// Bytes held waiting for a delimiter (a cut frame at the end of a stream).
    pub fn pending(&self) -> usize {
        self.buf.len() + self.overflow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (".{0,120}", -1f32..1.0, any::<bool>()).prop_map(|(person, score, unlocked)| {
                Event::Known {
                    person,
                    score,
                    unlocked,
                }
            }),
            (-1f32..1.0, any::<u32>()).prop_map(|(best_score, attempt)| Event::Stranger {
                best_score,
                attempt
            }),
            (any::<u32>(), any::<bool>(), ".{0,40}").prop_map(|(version, accepted, reason)| {
                Event::ModelUpdate {
                    version,
                    accepted,
                    reason,
                }
            }),
            ".{0,200}".prop_map(|message| Event::Fault { message }),
            (".{0,120}", -1f32..1.0, ".{0,200}").prop_map(|(person, score, reason)| {
                Event::Held {
                    person,
                    score,
                    reason,
                }
            }),
            (".{0,120}", -1f32..1.0, -20f32..20.0, any::<u32>()).prop_map(
                |(person, score, liveness, attempt)| Event::NotLive {
                    person,
                    score,
                    liveness,
                    attempt,
                }
            ),
            ".{0,64}".prop_map(|by| Event::RemoteUnlock { by }),
            (".{0,120}", -1f32..1.0, -2f32..2.0, any::<u32>()).prop_map(
                |(person, score, motion, attempt)| Event::MovedAsOne {
                    person,
                    score,
                    motion,
                    attempt,
                }
            ),
        ]
    }

    fn arb_record() -> impl Strategy<Value = LogRecord> {
        (any::<u64>(), any::<u64>(), any::<u32>(), arb_event()).prop_map(
            |(time_ms, frame, model_version, event)| LogRecord {
                format: FORMAT_VERSION,
                time_ms,
                frame,
                model_version,
                event,
            },
        )
    }

    fn expected(r: &LogRecord) -> LogRecord {
        let mut r = r.clone();
        r.event.truncate_text();
        r
    }

    proptest! {
        #[test]
        fn round_trip(r in arb_record()) {
            let frame = r.encode();
            prop_assert_eq!(frame.iter().filter(|&&b| b == 0).count(), 1);
            prop_assert!(frame.len() - 1 <= MAX_FRAME);
            prop_assert_eq!(LogRecord::decode(&frame[..frame.len() - 1]), Ok(expected(&r)));
        }

        #[test]
        fn garbage_between_frames_is_reported_and_frames_survive(
            records in prop::collection::vec(arb_record(), 1..6),
            garbage in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..700), 6),
            chunk in 1usize..64,
        ) {
            let mut stream = Vec::new();
            for (r, g) in records.iter().zip(&garbage) {
                stream.extend_from_slice(g);
                stream.push(0); // a reader resynchronises at any delimiter
                stream.extend(r.encode());
            }
            let mut reader = FrameReader::new();
            let mut got = Vec::new();
            for c in stream.chunks(chunk) {
                got.extend(reader.push(c));
            }
            let ok: Vec<LogRecord> = got.iter().filter_map(|r| r.clone().ok()).collect();
            let want: Vec<LogRecord> = records.iter().map(expected).collect();
            prop_assert_eq!(ok, want);
        }

        #[test]
        fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
            let mut reader = FrameReader::new();
            let _ = reader.push(&bytes);
            prop_assert!(reader.pending() <= bytes.len());
        }
    }

    #[test]
    fn a_flipped_bit_is_a_checksum_error() {
        let r = LogRecord::now(
            7,
            3,
            Event::Known {
                person: "ann".into(),
                score: 0.7,
                unlocked: true,
            },
        );
        let mut frame = r.encode();
        frame.pop();
        frame[5] ^= 0x10;
        if frame[5] == 0 {
            frame[5] = 1;
        }
        assert!(matches!(
            LogRecord::decode(&frame),
            Err(FrameError::Checksum { .. } | FrameError::NotCobs { .. })
        ));
    }

    #[test]
    fn a_cut_frame_resynchronises_at_the_next_one() {
        let a = LogRecord::now(
            1,
            1,
            Event::Stranger {
                best_score: 0.2,
                attempt: 1,
            },
        );
        let b = LogRecord::now(
            2,
            1,
            Event::Fault {
                message: "camera lost".into(),
            },
        );
        let fa = a.encode();
        let mut stream = fa[..fa.len() / 2].to_vec(); // cable pulled mid-frame
        stream.push(0);
        stream.extend(b.encode());
        let got = FrameReader::new().push(&stream);
        assert_eq!(got.len(), 2);
        assert!(got[0].is_err());
        assert_eq!(got[1], Ok(b));
    }

    #[test]
    fn overlong_noise_is_bounded_and_reported() {
        let mut reader = FrameReader::new();
        let got = reader.push(&vec![0x55; 10 * MAX_FRAME]);
        assert!(got.is_empty());
        assert!(reader.buf.len() <= MAX_FRAME);
        let got = reader.push(&[0]);
        assert_eq!(
            got,
            vec![Err(FrameError::TooLong {
                len: 10 * MAX_FRAME
            })]
        );
    }

    #[test]
    fn text_form_is_one_readable_line() {
        let r = LogRecord {
            format: 1,
            time_ms: 1_764_322_200_000,
            frame: 42,
            model_version: 3,
            event: Event::Known {
                person: "Ann".into(),
                score: 0.61,
                unlocked: true,
            },
        };
        assert_eq!(
            r.to_string(),
            "2025-11-28T09:30:00.000Z frame=42 model=3 KNOWN \"Ann\" score=0.610 UNLOCKED"
        );
    }
}
