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

/// An `OutputPin` that appends each level change to a text file (`<unix ms> high|low`), so a
/// simulated door run in another process can be checked afterwards.
#[derive(Debug)]
pub struct FilePin {
    file: std::fs::File,
}

impl FilePin {
    /// Appends to `path`, creating it.
    pub fn create(path: &std::path::Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self { file })
    }

    fn push(&mut self, level: &str) -> std::io::Result<()> {
        use std::io::Write;
        let ms = std::time::UNIX_EPOCH
            .elapsed()
            .map(|d| d.as_millis())
            .unwrap_or(0);
        writeln!(self.file, "{ms} {level}")
    }
}

impl ErrorType for FilePin {
    type Error = embedded_hal::digital::ErrorKind;
}

impl OutputPin for FilePin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.push("low")
            .map_err(|_| embedded_hal::digital::ErrorKind::Other)
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.push("high")
            .map_err(|_| embedded_hal::digital::ErrorKind::Other)
    }
}
