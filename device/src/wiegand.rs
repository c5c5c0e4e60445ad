//! Wiegand output: the door as a card reader for an existing access controller.
//!
//! Each unlock sends the recognised person's card number as a 26-bit (H10301: even parity,
//! 8-bit facility, 16-bit card, odd parity) or 34-bit (even parity, 16-bit facility, 16-bit
//! card, odd parity) frame on two open-collector lines, DATA0 and DATA1, idle high: a 0 bit is
//! a low pulse on DATA0, a 1 bit one on DATA1, by convention about 50 us wide and 2 ms apart.
//! Pulses are timed by spinning on the monotonic clock (a sleep can overshoot a 50 us pulse by
//! milliseconds) on a worker thread of their own, so the door loop never waits for a frame
//! (about 52 ms for 26 bits). The controller decides whether the card opens the door; the
//! relay may then be left out of the config.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use embedded_hal::digital::OutputPin;

/// A frame format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// 26-bit H10301.
    W26,
    /// 34-bit.
    W34,
}

impl Format {
    /// The format with `bits` bits.
    pub fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            26 => Some(Format::W26),
            34 => Some(Format::W34),
            _ => None,
        }
    }

    /// Total bits, parity included.
    pub fn bits(self) -> usize {
        match self {
            Format::W26 => 26,
            Format::W34 => 34,
        }
    }

    fn facility_bits(self) -> usize {
        self.bits() - 2 - 16
    }

    /// Largest facility code.
    pub fn max_facility(self) -> u32 {
        (1 << self.facility_bits()) - 1
    }

    /// Largest card number.
    pub fn max_card(self) -> u32 {
        0xFFFF
    }
}

/// Why a frame does not decode.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WiegandError {
    /// Not 26 or 34 bits.
    #[error("{0} bits is not a supported frame")]
    Length(usize),
    /// A parity bit is wrong.
    #[error("{0} parity bit is wrong")]
    Parity(&'static str),
    /// A code does not fit the format.
    #[error("facility {facility} or card {card} does not fit {bits} bits")]
    Range {
        /// Facility code.
        facility: u32,
        /// Card number.
        card: u32,
        /// Frame bits.
        bits: usize,
    },
}

/// The bits of one frame, first sent first.
pub fn encode(format: Format, facility: u32, card: u32) -> Result<Vec<bool>, WiegandError> {
    if facility > format.max_facility() || card > format.max_card() {
        return Err(WiegandError::Range {
            facility,
            card,
            bits: format.bits(),
        });
    }
    let data_bits = format.bits() - 2;
    let data = (u64::from(facility) << 16) | u64::from(card);
    let payload: Vec<bool> = (0..data_bits).rev().map(|i| (data >> i) & 1 == 1).collect();
    let half = data_bits / 2;
    let ones = |s: &[bool]| s.iter().filter(|b| **b).count();
    let even = ones(&payload[..half]) % 2 == 1;
    let odd = ones(&payload[half..]) % 2 == 0;
    let mut bits = Vec::with_capacity(format.bits());
    bits.push(even);
    bits.extend(payload);
    bits.push(odd);
    Ok(bits)
}

/// The facility and card of a frame, with both parities checked.
pub fn decode(bits: &[bool]) -> Result<(u32, u32), WiegandError> {
    if bits.len() != 26 && bits.len() != 34 {
        return Err(WiegandError::Length(bits.len()));
    }
    let payload = &bits[1..bits.len() - 1];
    let half = payload.len() / 2;
    let ones = |s: &[bool]| s.iter().filter(|b| **b).count();
    if (ones(&payload[..half]) + usize::from(bits[0])) % 2 != 0 {
        return Err(WiegandError::Parity("leading (even)"));
    }
    if (ones(&payload[half..]) + usize::from(bits[bits.len() - 1])) % 2 != 1 {
        return Err(WiegandError::Parity("trailing (odd)"));
    }
    let value = payload.iter().fold(0u64, |v, b| (v << 1) | u64::from(*b));
    Ok(((value >> 16) as u32, (value & 0xFFFF) as u32))
}

/// Pulse timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Low pulse width.
    pub pulse: Duration,
    /// From one pulse's start to the next one's.
    pub interval: Duration,
}

/// Drives DATA0 and DATA1.
pub struct Lines<P: OutputPin> {
    d0: P,
    d1: P,
    timing: Timing,
    after_frame: Option<Box<dyn FnMut() + Send>>,
}

impl<P: OutputPin> Lines<P> {
    /// Takes both lines and sets them idle (high).
    pub fn new(mut d0: P, mut d1: P, timing: Timing) -> Self {
        let _ = d0.set_high();
        let _ = d1.set_high();
        Self {
            d0,
            d1,
            timing,
            after_frame: None,
        }
    }

    /// Runs `f` after each frame, once the lines are idle (the simulation writes its record).
    pub fn after_frame(mut self, f: impl FnMut() + Send + 'static) -> Self {
        self.after_frame = Some(Box::new(f));
        self
    }

    /// Sends one frame. Blocks for about `bits x interval`.
    pub fn send(&mut self, bits: &[bool]) {
        let mut next = Instant::now();
        for &bit in bits {
            wait_until(next);
            let line = if bit { &mut self.d1 } else { &mut self.d0 };
            let _ = line.set_low();
            // Timed from when the line is low, so no pulse is ever shorter than asked.
            let start = Instant::now();
            wait_until(start + self.timing.pulse);
            let _ = line.set_high();
            next = start + self.timing.interval;
        }
        // The frame ends with both lines idle for at least one interval.
        wait_until(next);
        if let Some(f) = &mut self.after_frame {
            f();
        }
    }
}

/// Sleeps for most of the wait, then spins: a sleep alone can overshoot by a scheduler tick.
fn wait_until(t: Instant) {
    const SPIN: Duration = Duration::from_micros(300);
    let now = Instant::now();
    if t > now + SPIN {
        std::thread::sleep(t - now - SPIN);
    }
    while Instant::now() < t {
        std::hint::spin_loop();
    }
}

/// Hands frames to the Wiegand worker thread without waiting.
pub struct WiegandSender {
    tx: SyncSender<Vec<bool>>,
    format: Format,
    facility: u32,
    worker: Option<std::thread::JoinHandle<()>>,
}

/// Frames waiting for the lines: a few unlocks in a row at most.
const QUEUE: usize = 4;

impl WiegandSender {
    /// Starts the worker over `lines`.
    pub fn spawn<P: OutputPin + Send + 'static>(
        lines: Lines<P>,
        format: Format,
        facility: u32,
    ) -> Self {
        let (tx, rx) = sync_channel(QUEUE);
        let worker = std::thread::Builder::new()
            .name("wiegand".into())
            .spawn(move || worker(lines, rx))
            .ok();
        Self {
            tx,
            format,
            facility,
            worker,
        }
    }

    /// Sends what is queued, then stops the worker.
    pub fn close(self) {
        let Self { tx, worker, .. } = self;
        drop(tx);
        if let Some(w) = worker {
            let _ = w.join();
        }
    }

    /// Queues `card`'s frame; false when it could not be (worker gone or queue full).
    pub fn send(&self, card: u32) -> bool {
        let Ok(bits) = encode(self.format, self.facility, card) else {
            return false;
        };
        match self.tx.try_send(bits) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

fn worker<P: OutputPin>(mut lines: Lines<P>, rx: Receiver<Vec<bool>>) {
    while let Ok(bits) = rx.recv() {
        lines.send(&bits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_known_26_bit_frame() {
        // Facility 1, card 1: 0 00000001 0000000000000001 0 -> parities: first 12 data
        // bits hold one 1 (even parity 1), last 12 hold one 1 (odd parity 0).
        let bits = encode(Format::W26, 1, 1).expect("fits");
        let s: String = bits.iter().map(|b| if *b { '1' } else { '0' }).collect();
        assert_eq!(s, "10000000100000000000000010");
        assert_eq!(decode(&bits), Ok((1, 1)));
    }

    #[test]
    fn a_flipped_bit_fails_parity() {
        let mut bits = encode(Format::W34, 513, 4242).expect("fits");
        bits[5] = !bits[5];
        assert!(matches!(decode(&bits), Err(WiegandError::Parity(_))));
        assert!(encode(Format::W26, 256, 1).is_err());
    }

    proptest! {
        #[test]
        fn frames_round_trip(facility in 0u32..=0xFFFF, card in 0u32..=0xFFFF, w34 in any::<bool>()) {
            let format = if w34 { Format::W34 } else { Format::W26 };
            let facility = facility & format.max_facility();
            let bits = encode(format, facility, card).expect("fits");
            prop_assert_eq!(bits.len(), format.bits());
            prop_assert_eq!(decode(&bits), Ok((facility, card)));
        }
    }
}
