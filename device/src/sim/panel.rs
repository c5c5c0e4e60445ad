//! The simulated panel: every screen becomes a numbered PNG (as the chosen panel would show
//! it), and a line in `screens.txt` says what it was, so tests and people can follow a run.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use embedded_graphics::pixelcolor::{BinaryColor, Rgb565, Rgb888};
use embedded_graphics::prelude::*;
use embedded_graphics_simulator::{OutputSettings, SimulatorDisplay};
use image::RgbImage;

use crate::display::Panel;
use crate::ui::{self, Screen};

/// The panels facegate drives, with their pixel geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PanelModel {
    /// 240x240 colour TFT over SPI.
    St7789,
    /// 320x240 colour TFT over SPI.
    Ili9341,
    /// 128x64 mono OLED over I2C.
    Ssd1306,
}

impl PanelModel {
    /// Width and height in pixels, as mounted (landscape for the ILI9341).
    pub fn size(self) -> Size {
        match self {
            PanelModel::St7789 => Size::new(240, 240),
            PanelModel::Ili9341 => Size::new(320, 240),
            PanelModel::Ssd1306 => Size::new(128, 64),
        }
    }

    /// Short name (file names, config).
    pub fn as_str(self) -> &'static str {
        match self {
            PanelModel::St7789 => "st7789",
            PanelModel::Ili9341 => "ili9341",
            PanelModel::Ssd1306 => "ssd1306",
        }
    }
}

/// Renders `screen` exactly as `model` would show it: RGB565 colours on the TFTs, on/off pixels
/// on the OLED.
pub fn render(screen: &Screen, model: PanelModel) -> RgbImage {
    let settings = OutputSettings::default();
    let output = match model {
        PanelModel::Ssd1306 => {
            let mut display = SimulatorDisplay::<BinaryColor>::new(model.size());
            // The simulator cannot fail to draw.
            let _ = ui::draw(screen, &mut display.color_converted::<Rgb565>());
            display.to_rgb_output_image(&settings)
        }
        _ => {
            let mut display = SimulatorDisplay::<Rgb565>::new(model.size());
            let _ = ui::draw(screen, &mut display);
            display.to_rgb_output_image(&settings)
        }
    };
    let buffer = output.as_image_buffer();
    RgbImage::from_fn(buffer.width(), buffer.height(), |x, y| {
        *buffer.get_pixel(x, y)
    })
}

/// Writes screens as PNG files into a folder.
#[derive(Debug)]
pub struct PngPanel {
    dir: PathBuf,
    model: PanelModel,
    count: u32,
}

impl PngPanel {
    /// Creates `dir` if needed; screens are numbered from 1 after any already there.
    pub fn new(dir: PathBuf, model: PanelModel) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the screens folder {}", dir.display()))?;
        let count = std::fs::read_dir(&dir)?
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "png"))
            })
            .count() as u32;
        Ok(Self { dir, model, count })
    }
}

impl Panel for PngPanel {
    fn show(&mut self, screen: &Screen) -> anyhow::Result<()> {
        self.count += 1;
        let name = format!("{:04}-{}.png", self.count, screen.kind());
        let path = self.dir.join(&name);
        render(screen, self.model)
            .save(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        let mut index = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("screens.txt"))?;
        writeln!(index, "{name} {}", screen.describe())?;
        Ok(())
    }
}

/// Pixels (as RGB888) of a colour, for tests that look at rendered screens.
pub fn rgb(color: Rgb565) -> [u8; 3] {
    let c = Rgb888::from(color);
    [c.r(), c.g(), c.b()]
}
