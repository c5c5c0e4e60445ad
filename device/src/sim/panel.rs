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
use crate::ui::{self, PanelModel, Screen};

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
