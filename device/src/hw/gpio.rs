//! GPIO outputs through the kernel's character device (`/dev/gpiochipN`), the interface that
//! replaced sysfs: a line is requested with its initial level, so the relay never glitches open
//! while the program starts, and the kernel frees it if the process dies.

use std::path::Path;

use anyhow::{Context, Result};
use linux_embedded_hal::CdevPin;
use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};

/// Requests `line` on `chip` as an output starting at `high`, labelled `consumer` (shown by
/// `gpioinfo`).
pub fn output(chip: &Path, line: u32, high: bool, consumer: &str) -> Result<CdevPin> {
    let hint =
        "check the chip and line numbers with `gpioinfo`, and that the user is in the gpio group";
    let mut c = Chip::new(chip).with_context(|| format!("opening {}: {hint}", chip.display()))?;
    let handle = c
        .get_line(line)
        .and_then(|l| l.request(LineRequestFlags::OUTPUT, u8::from(high), consumer))
        .with_context(|| format!("requesting line {line} of {}: {hint}", chip.display()))?;
    CdevPin::new(handle).with_context(|| format!("line {line} of {}", chip.display()))
}
