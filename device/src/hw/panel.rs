//! Real panels: ST7789 / ILI9341 TFTs through mipidsi over a spidev device and GPIO lines, and
//! an SSD1306 OLED over I2C. Each is opened on the display thread (see [`crate::display`]).

use std::path::Path;

use anyhow::{Context, Result};
use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use embedded_hal::spi::SpiDevice;
use linux_embedded_hal::spidev::{SpiModeFlags, SpidevOptions};
use linux_embedded_hal::{Delay, I2cdev, SpidevDevice};
use mipidsi::interface::SpiInterface;
use mipidsi::models::{ILI9341Rgb565, ST7789};
use mipidsi::options::{ColorInversion, Orientation, Rotation};
use ssd1306::mode::DisplayConfig;
use ssd1306::prelude::*;
use ssd1306::{I2CDisplayInterface, Ssd1306};

use crate::display::Panel;
use crate::framebuf::FrameBuf;
use crate::hw::gpio;
use crate::ui::PanelModel;
use crate::ui::{self, Screen};

/// Where an SPI panel is wired.
#[derive(Clone, Debug)]
pub struct SpiWiring {
    /// spidev node, e.g. `/dev/spidev0.0`.
    pub spi: std::path::PathBuf,
    /// SPI clock in Hz.
    pub hz: u32,
    /// GPIO chip of the control lines.
    pub chip: std::path::PathBuf,
    /// Data/command line.
    pub dc: u32,
    /// Reset line, if wired.
    pub reset: Option<u32>,
    /// Backlight line, if wired (switched on at start).
    pub backlight: Option<u32>,
}

/// A mipidsi panel: any RGB565 draw target, fed one full frame per screen.
struct Tft<D> {
    display: D,
    frame: FrameBuf,
}

impl<D> Panel for Tft<D>
where
    D: DrawTarget<Color = Rgb565>,
    D::Error: std::fmt::Debug,
{
    fn show(&mut self, screen: &Screen) -> Result<()> {
        let _ = ui::draw(screen, &mut self.frame);
        let area = Rectangle::new(Point::zero(), self.frame.size());
        self.display
            .fill_contiguous(&area, self.frame.pixels().iter().copied())
            .map_err(|e| anyhow::anyhow!("SPI panel: {e:?}"))
    }
}

/// Builds an ST7789 (240x240) or ILI9341 (320x240, landscape) panel over any embedded-hal SPI
/// device and pins, and initialises it. The real one is [`open_tft`]; tests pass recording
/// doubles and check the bytes on the wire.
pub fn tft_panel<SPI, DC, RST, DELAY>(
    model: PanelModel,
    spi: SPI,
    dc: DC,
    reset: Option<RST>,
    delay: &mut DELAY,
) -> Result<Box<dyn Panel>>
where
    SPI: SpiDevice + 'static,
    DC: OutputPin + 'static,
    RST: OutputPin + 'static,
    DELAY: DelayNs,
{
    // The interface borrows its buffer for as long as the panel lives, which is the process.
    let buffer: &'static mut [u8] = Box::leak(vec![0u8; 4096].into_boxed_slice());
    let di = SpiInterface::new(spi, dc, buffer);
    let frame = FrameBuf::new(model.size());
    macro_rules! build {
        ($builder:expr) => {
            match reset {
                Some(rst) => Box::new(Tft {
                    display: $builder.reset_pin(rst).init(delay).map_err(|e| {
                        anyhow::anyhow!("initialising the {} panel: {e:?}", model.as_str())
                    })?,
                    frame,
                }) as Box<dyn Panel>,
                None => Box::new(Tft {
                    display: $builder.init(delay).map_err(|e| {
                        anyhow::anyhow!("initialising the {} panel: {e:?}", model.as_str())
                    })?,
                    frame,
                }),
            }
        };
    }
    Ok(match model {
        PanelModel::St7789 => build!(
            mipidsi::Builder::new(ST7789, di)
                .display_size(240, 240)
                .invert_colors(ColorInversion::Inverted)
        ),
        PanelModel::Ili9341 => build!(
            mipidsi::Builder::new(ILI9341Rgb565, di)
                .orientation(Orientation::new().rotate(Rotation::Deg90))
        ),
        PanelModel::Ssd1306 => anyhow::bail!("the SSD1306 is an I2C panel: set display.i2c"),
    })
}

/// Opens an ST7789 or ILI9341 on a spidev node and GPIO lines, and clears it.
pub fn open_tft(model: PanelModel, wiring: &SpiWiring) -> Result<Box<dyn Panel>> {
    let mut spi = SpidevDevice::open(&wiring.spi).with_context(|| {
        format!(
            "opening {} (enable SPI with raspi-config and add the user to the spi group)",
            wiring.spi.display()
        )
    })?;
    spi.configure(
        &SpidevOptions::new()
            .bits_per_word(8)
            .max_speed_hz(wiring.hz)
            .mode(SpiModeFlags::SPI_MODE_0)
            .build(),
    )
    .with_context(|| format!("configuring {}", wiring.spi.display()))?;
    let dc = gpio::output(&wiring.chip, wiring.dc, false, "facegate-dc")?;
    if let Some(line) = wiring.backlight {
        // Held for the life of the process: dropping the handle would release the line.
        let mut bl = gpio::output(&wiring.chip, line, true, "facegate-backlight")?;
        let _ = bl.set_high();
        std::mem::forget(bl);
    }
    let reset = match wiring.reset {
        Some(line) => Some(gpio::output(&wiring.chip, line, true, "facegate-reset")?),
        None => None,
    };
    tft_panel(model, spi, dc, reset, &mut Delay)
}

/// A buffered SSD1306: draw into RAM, then flush over I2C.
struct Oled<DI: WriteOnlyDataCommand>(
    Ssd1306<DI, DisplaySize128x64, ssd1306::mode::BufferedGraphicsMode<DisplaySize128x64>>,
);

impl<DI: WriteOnlyDataCommand> Panel for Oled<DI> {
    fn show(&mut self, screen: &Screen) -> Result<()> {
        let _ = ui::draw(screen, &mut self.0.color_converted::<Rgb565>());
        self.0
            .flush()
            .map_err(|e| anyhow::anyhow!("OLED flush: {e:?}"))
    }
}

/// Opens a 128x64 SSD1306 at `address` on the I2C bus `bus` (e.g. `/dev/i2c-1`, 0x3c).
pub fn open_oled(bus: &Path, address: u8) -> Result<Box<dyn Panel>> {
    let i2c = I2cdev::new(bus).with_context(|| {
        format!(
            "opening {} (enable I2C with raspi-config and add the user to the i2c group)",
            bus.display()
        )
    })?;
    let interface = I2CDisplayInterface::new_custom_address(i2c, address);
    let mut display = Ssd1306::new(interface, DisplaySize128x64, DisplayRotation::Rotate0)
        .into_buffered_graphics_mode();
    display
        .init()
        .map_err(|e| anyhow::anyhow!("initialising the OLED at {address:#04x}: {e:?}"))?;
    Ok(Box::new(Oled(display)))
}
