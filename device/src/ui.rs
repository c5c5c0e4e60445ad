//! What the door's little screen shows, drawn with embedded-graphics.
//!
//! One drawing function for every panel: it lays the screen out for the target's size (a
//! 240x240 or 320x240 colour TFT, a 128x64 mono OLED) and draws in RGB565. Mono panels take the
//! same drawing through a colour conversion, so every background is dark and every text light:
//! a colour screen and an OLED say the same thing. Screens are pure data ([`Screen`]), so tests
//! render each one to a PNG and compare it with a golden image.

use embedded_graphics::mono_font::MonoFont;
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::mono_font::ascii::{FONT_6X10, FONT_10X20};
use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Circle, PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};

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

/// One screen of the door UI.
#[derive(Clone, Debug, PartialEq)]
pub enum Screen {
    /// Nobody in view.
    Idle,
    /// A face is in view and being recognised.
    Looking,
    /// An enrolled person was let in.
    Welcome {
        /// Their name.
        name: String,
        /// The cosine score that let them in (not a probability: shown as it is, beside the
        /// threshold it had to clear).
        score: f32,
        /// The door's threshold.
        threshold: f32,
    },
    /// A face that matched nobody.
    NotRecognised,
    /// A face that looks like a photo or a screen, not a live person.
    NotLive,
    /// A signed model update is being installed.
    Updating {
        /// Version being installed.
        version: u32,
    },
    /// Something needs attention (camera lost, ...); the door stays locked.
    Error {
        /// Short description.
        message: String,
    },
}

impl Screen {
    /// A short stable name, used for PNG file names and the simulated panel's index.
    pub fn kind(&self) -> &'static str {
        match self {
            Screen::Idle => "idle",
            Screen::Looking => "looking",
            Screen::Welcome { .. } => "welcome",
            Screen::NotRecognised => "not-recognised",
            Screen::NotLive => "not-live",
            Screen::Updating { .. } => "updating",
            Screen::Error { .. } => "error",
        }
    }

    /// One line describing the screen (the simulated panel writes it beside each PNG).
    pub fn describe(&self) -> String {
        match self {
            Screen::Welcome {
                name,
                score,
                threshold,
            } => format!("welcome {name} score {score:.2} (threshold {threshold:.2})"),
            Screen::Updating { version } => format!("updating v{version}"),
            Screen::Error { message } => format!("error {message}"),
            other => other.kind().to_string(),
        }
    }
}

/// How far a cosine score sits above the threshold, 0..1 for the welcome screen's bar: 0 at
/// the threshold, 1 at `threshold + 0.3` and above (where genuine pairs sit well clear of it).
/// A bar, not a percentage: a cosine is no probability, and "100% sure" at 0.78 misled.
pub fn margin(score: f32, threshold: f32) -> f32 {
    ((score - threshold) / 0.3).clamp(0.0, 1.0)
}

const BG_IDLE: Rgb565 = Rgb565::new(2, 6, 8);
const BG_LOOKING: Rgb565 = Rgb565::new(6, 12, 4);
const BG_WELCOME: Rgb565 = Rgb565::new(0, 24, 4);
const BG_DENIED: Rgb565 = Rgb565::new(18, 4, 2);
const BG_UPDATE: Rgb565 = Rgb565::new(2, 8, 16);
const BG_ERROR: Rgb565 = Rgb565::new(12, 0, 0);
const ACCENT: Rgb565 = Rgb565::new(31, 50, 0);

/// Draws `screen` filling the whole target.
pub fn draw<D>(screen: &Screen, target: &mut D) -> Result<(), D::Error>
where
    D: DrawTarget<Color = Rgb565>,
{
    let bg = match screen {
        Screen::Idle => BG_IDLE,
        Screen::Looking => BG_LOOKING,
        Screen::Welcome { .. } => BG_WELCOME,
        Screen::NotRecognised | Screen::NotLive => BG_DENIED,
        Screen::Updating { .. } => BG_UPDATE,
        Screen::Error { .. } => BG_ERROR,
    };
    target.clear(bg)?;
    let mut c = Canvas::new(target);
    let (title, body) = (c.title, c.body);
    match screen {
        Screen::Idle => {
            c.line("facegate", title, c.row(0.35))?;
            c.line("Look at the camera", body, c.row(0.65))?;
        }
        Screen::Looking => {
            let d = (c.size.height as i32 / 3).max(8) as u32;
            Circle::with_center(Point::new(c.centre_x, c.row(0.38)), d)
                .into_styled(PrimitiveStyle::with_stroke(ACCENT, (d / 12).max(1)))
                .draw(c.target)?;
            c.line("Hold still", body, c.row(0.78))?;
        }
        Screen::Welcome {
            name,
            score,
            threshold,
        } => {
            c.line("Welcome", title, c.row(0.22))?;
            c.line(name, title, c.row(0.48))?;
            c.bar(margin(*score, *threshold), c.row(0.70))?;
            let text = format!("score {score:.2} > {threshold:.2}");
            c.line(&text, body, c.row(0.88))?;
        }
        Screen::NotRecognised => {
            c.line("Not", title, c.row(0.32))?;
            c.line("recognised", title, c.row(0.52))?;
            c.line("Door stays locked", body, c.row(0.78))?;
        }
        Screen::NotLive => {
            c.line("Look at", title, c.row(0.32))?;
            c.line("the camera", title, c.row(0.52))?;
            c.line("No photos or screens", body, c.row(0.78))?;
        }
        Screen::Updating { version } => {
            c.line("Updating", title, c.row(0.35))?;
            c.line(&format!("model v{version}"), body, c.row(0.62))?;
        }
        Screen::Error { message } => {
            c.line("Out of order", title, c.row(0.25))?;
            for (i, part) in wrap(message, c.chars(body)).iter().take(3).enumerate() {
                let y = c.row(0.50) + i as i32 * body.character_size.height as i32;
                c.line(part, body, y)?;
            }
        }
    }
    Ok(())
}

/// A panel being drawn on, with the fonts and geometry every screen lays its text out by.
struct Canvas<'a, D> {
    target: &'a mut D,
    area: Rectangle,
    size: Size,
    centre_x: i32,
    /// Headlines.
    title: &'static MonoFont<'static>,
    /// Everything else: the large font on panels at least 200 pixels wide.
    body: &'static MonoFont<'static>,
}

impl<'a, D> Canvas<'a, D>
where
    D: DrawTarget<Color = Rgb565>,
{
    fn new(target: &'a mut D) -> Self {
        let area = target.bounding_box();
        let size = area.size;
        let body = if size.width >= 200 {
            &FONT_10X20
        } else {
            &FONT_6X10
        };
        Self {
            target,
            area,
            size,
            centre_x: area.top_left.x + size.width as i32 / 2,
            title: &FONT_10X20,
            body,
        }
    }

    /// The y of a point `fraction` of the way down the panel.
    fn row(&self, fraction: f32) -> i32 {
        self.area.top_left.y + (self.size.height as f32 * fraction) as i32
    }

    /// Characters of `font` that fit across the panel.
    fn chars(&self, font: &MonoFont) -> usize {
        (self.size.width / font.character_size.width).max(1) as usize
    }

    /// `text` centred on `y`, cut to the panel's width.
    fn line(&mut self, text: &str, font: &MonoFont, y: i32) -> Result<(), D::Error> {
        let style = MonoTextStyle::new(font, Rgb565::WHITE);
        let layout = TextStyleBuilder::new()
            .alignment(Alignment::Center)
            .baseline(Baseline::Middle)
            .build();
        let fitted = fit(text, self.chars(font));
        Text::with_text_style(&fitted, Point::new(self.centre_x, y), style, layout)
            .draw(self.target)
            .map(|_| ())
    }

    /// A bar across three quarters of the panel at `y`, filled to `share` (0..1).
    fn bar(&mut self, share: f32, y: i32) -> Result<(), D::Error> {
        let bar_w = self.size.width * 3 / 4;
        let bar_h = (self.size.height / 16).max(3);
        let x = self.centre_x - bar_w as i32 / 2;
        Rectangle::new(Point::new(x, y), Size::new(bar_w, bar_h))
            .into_styled(PrimitiveStyle::with_stroke(Rgb565::WHITE, 1))
            .draw(self.target)?;
        let filled = (bar_w as f32 * share).round() as u32;
        Rectangle::new(Point::new(x, y), Size::new(filled, bar_h))
            .into_styled(PrimitiveStyle::with_fill(Rgb565::WHITE))
            .draw(self.target)
    }
}

/// Cuts `text` to `width` characters, marking the cut with a '~'.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('~');
    out
}

/// Greedy word wrap to lines of at most `width` characters (long words are cut by [`fit`]).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_cut_and_marked() {
        assert_eq!(fit("Arnold Schwarzenegger", 10), "Arnold Sc~");
        assert_eq!(fit("Ann", 10), "Ann");
    }

    #[test]
    fn messages_wrap_on_words() {
        assert_eq!(
            wrap("camera lost: retrying in 4 s", 12),
            vec!["camera lost:", "retrying in", "4 s"]
        );
    }

    #[test]
    fn margin_is_zero_at_threshold_and_saturates() {
        assert_eq!(margin(0.5, 0.5), 0.0);
        assert_eq!(margin(0.95, 0.5), 1.0);
        assert!((margin(0.65, 0.5) - 0.5).abs() < 1e-6);
        assert_eq!(margin(0.2, 0.5), 0.0);
    }
}
