//! A full-screen RGB565 frame in memory. Screens are drawn here first and sent to a panel in
//! one window write: text drawn straight onto an SPI panel costs a command sequence per pixel
//! run, while one full-frame transfer of a 240x240 panel is 115 KB, about 30 ms at 32 MHz.

use std::convert::Infallible;

use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::*;

/// The frame.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameBuf {
    size: Size,
    pixels: Vec<Rgb565>,
}

impl FrameBuf {
    /// A black frame of `size`.
    pub fn new(size: Size) -> Self {
        Self {
            size,
            pixels: vec![Rgb565::BLACK; (size.width * size.height) as usize],
        }
    }

    /// Pixels in row-major order.
    pub fn pixels(&self) -> &[Rgb565] {
        &self.pixels
    }
}

impl OriginDimensions for FrameBuf {
    fn size(&self) -> Size {
        self.size
    }
}

impl DrawTarget for FrameBuf {
    type Color = Rgb565;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Infallible>
    where
        I: IntoIterator<Item = Pixel<Rgb565>>,
    {
        let (w, h) = (self.size.width as i32, self.size.height as i32);
        for Pixel(p, c) in pixels {
            if (0..w).contains(&p.x) && (0..h).contains(&p.y) {
                self.pixels[(p.y * w + p.x) as usize] = c;
            }
        }
        Ok(())
    }

    fn clear(&mut self, color: Rgb565) -> Result<(), Infallible> {
        self.pixels.fill(color);
        Ok(())
    }
}
