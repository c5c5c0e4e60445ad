//! A camera that plays image files as frames, each shown `repeat` times (a person standing in
//! front of the door for a moment). Unreadable files become bad frames, as a glitching camera's
//! would.

use std::path::PathBuf;

use facegate_models::image_io;

use crate::{CameraError, Frame, FrameSource};

/// Image files played in order.
#[derive(Debug)]
pub struct FileCamera {
    files: Vec<PathBuf>,
    repeat: usize,
    next: usize,
    id: u64,
    cycle: bool,
    interval: Option<std::time::Duration>,
    size: Option<(u32, u32)>,
}

impl FileCamera {
    /// Plays `files` in order, each `repeat` times (at least once).
    pub fn new(files: Vec<PathBuf>, repeat: usize) -> Self {
        Self {
            files,
            repeat: repeat.max(1),
            next: 0,
            id: 0,
            cycle: false,
            interval: None,
            size: None,
        }
    }

    /// Starts over after the last file instead of ending (a door that never closes).
    pub fn cycling(mut self) -> Self {
        self.cycle = !self.files.is_empty();
        self
    }

    /// Paces frames like a camera running at `fps` frames per second.
    pub fn at_fps(mut self, fps: f64) -> Self {
        self.interval = (fps > 0.0).then(|| std::time::Duration::from_secs_f64(1.0 / fps));
        self
    }

    /// Delivers frames of `width` x `height`, as a camera of that resolution would: each photo
    /// is scaled to fit and centred on a grey background.
    pub fn frame_size(mut self, width: u32, height: u32) -> Self {
        self.size = Some((width.max(1), height.max(1)));
        self
    }

    /// Every image in `dir` (not recursive), sorted by name.
    pub fn from_dir(dir: &std::path::Path, repeat: usize) -> std::io::Result<Self> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        Ok(Self::new(files, repeat))
    }
}

impl FrameSource for FileCamera {
    fn next_frame(&mut self) -> Result<Option<Frame>, CameraError> {
        if self.cycle && self.next >= self.files.len() * self.repeat {
            self.next = 0;
        }
        if let Some(i) = self.interval {
            std::thread::sleep(i);
        }
        let Some(path) = self.files.get(self.next / self.repeat) else {
            return Ok(None);
        };
        self.next += 1;
        self.id += 1;
        match image_io::open(path) {
            Ok(image) => Ok(Some(Frame {
                id: self.id,
                image: match self.size {
                    Some((w, h)) => letterbox(&image, w, h),
                    None => image,
                },
            })),
            Err(e) => Err(CameraError::BadFrame {
                id: self.id,
                reason: format!("{}: {e}", path.display()),
            }),
        }
    }
}

/// `image` scaled to fit `width` x `height` (keeping its aspect) and centred on mid-grey.
pub fn letterbox(image: &image::RgbImage, width: u32, height: u32) -> image::RgbImage {
    let k = (width as f64 / image.width() as f64).min(height as f64 / image.height() as f64);
    let (w, h) = (
        ((image.width() as f64 * k).round() as u32).clamp(1, width),
        ((image.height() as f64 * k).round() as u32).clamp(1, height),
    );
    let scaled = image::imageops::resize(image, w, h, image::imageops::FilterType::Triangle);
    let mut frame = image::RgbImage::from_pixel(width, height, image::Rgb([128, 128, 128]));
    image::imageops::overlay(
        &mut frame,
        &scaled,
        i64::from((width - w) / 2),
        i64::from((height - h) / 2),
    );
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_keeps_the_aspect_and_centres() {
        let photo = image::RgbImage::from_pixel(250, 250, image::Rgb([255, 0, 0]));
        let frame = letterbox(&photo, 640, 480);
        assert_eq!(frame.dimensions(), (640, 480));
        assert_eq!(frame.get_pixel(320, 240).0, [255, 0, 0]);
        assert_eq!(frame.get_pixel(5, 240).0, [128, 128, 128]);
        assert_eq!(frame.get_pixel(80, 0).0, [255, 0, 0]);
    }
}
