//! A relay output that records every level change, for tests and the simulated door.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use embedded_hal::digital::{ErrorType, OutputPin};

/// Shared record of the pin's level changes (true = energised).
pub type Levels = Arc<Mutex<Vec<bool>>>;

/// An `OutputPin` that remembers what it was told.
#[derive(Debug, Clone, Default)]
pub struct RecordingPin {
    levels: Levels,
}

impl RecordingPin {
    /// A pin and a handle to read its history.
    pub fn new() -> (Self, Levels) {
        let levels = Levels::default();
        (
            Self {
                levels: levels.clone(),
            },
            levels,
        )
    }

    fn push(&self, level: bool) {
        if let Ok(mut l) = self.levels.lock() {
            l.push(level);
        }
    }
}

impl ErrorType for RecordingPin {
    type Error = Infallible;
}

impl OutputPin for RecordingPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.push(false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        self.push(true);
        Ok(())
    }
}
