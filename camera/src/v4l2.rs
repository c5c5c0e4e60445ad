//! A V4L2 camera (USB webcam, or the Pi camera through libcamera's V4L2 compatibility or the
//! bcm2835 driver): chosen pixel format, size and rate, mmap streaming.
//!
//! MJPEG frames are decoded by the same libjpeg-turbo path as photos on the host, so the door
//! and `facegate eval` see identical pixels; YUYV is converted with the BT.601 limited-range
//! matrix webcams use. Any streaming error means the device is gone: the caller
//! (the door's `hw::reconnect`) reopens it.

use std::path::{Path, PathBuf};

use facegate_models::image_io;
use image::RgbImage;
use v4l::buffer::Type;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, FourCC};

use crate::{CameraError, Frame, FrameSource};

/// Pixel formats facegate reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// Motion JPEG: what most USB webcams deliver at 640x480 and above.
    Mjpeg,
    /// Packed YUV 4:2:2: uncompressed, cheap to convert, bandwidth-limited on USB 2.
    Yuyv,
}

impl PixelFormat {
    fn fourcc(self) -> FourCC {
        FourCC::new(match self {
            PixelFormat::Mjpeg => b"MJPG",
            PixelFormat::Yuyv => b"YUYV",
        })
    }
}

/// What to ask the camera for.
#[derive(Clone, Debug)]
pub struct V4l2Settings {
    /// Device node, e.g. `/dev/video0`.
    pub device: PathBuf,
    /// Pixel format.
    pub format: PixelFormat,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
}

/// An open, streaming camera.
pub struct V4l2Camera {
    // Field order matters: the stream (unmapping buffers) goes before the device handle.
    stream: Stream<'static>,
    _device: Device,
    format: PixelFormat,
    width: u32,
    height: u32,
    id: u64,
}

fn lost(device: &Path, what: &str, e: std::io::Error) -> CameraError {
    CameraError::Lost(format!("{} {what}: {e}", device.display()))
}

impl V4l2Camera {
    /// Opens the device and starts streaming with 4 mmap buffers. The driver may adjust size
    /// and rate (the actual ones are used); a different pixel format is an error naming the
    /// formats the camera offers.
    pub fn open(settings: &V4l2Settings) -> Result<Self, CameraError> {
        let path = &settings.device;
        let device = Device::with_path(path).map_err(|e| {
            lost(
                path,
                "cannot be opened (is the camera plugged in, and the user in the video group?)",
                e,
            )
        })?;
        let mut format = device.format().map_err(|e| lost(path, "format query", e))?;
        format.width = settings.width;
        format.height = settings.height;
        format.fourcc = settings.format.fourcc();
        let format = device
            .set_format(&format)
            .map_err(|e| lost(path, "set format", e))?;
        if format.fourcc != settings.format.fourcc() {
            let offered = device
                .enum_formats()
                .map(|f| {
                    f.iter()
                        .map(|d| d.fourcc.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            return Err(CameraError::Lost(format!(
                "{} does not deliver {:?} (it offers: {offered}); set camera.format accordingly",
                path.display(),
                settings.format
            )));
        }
        // Not every driver can set the rate; the camera's own rate is fine then.
        let _ = device.set_params(&v4l::video::capture::Parameters::with_fps(settings.fps));
        let stream = Stream::with_buffers(&device, Type::VideoCapture, 4)
            .map_err(|e| lost(path, "start streaming", e))?;
        Ok(Self {
            stream,
            _device: device,
            format: settings.format,
            width: format.width,
            height: format.height,
            id: 0,
        })
    }

    /// The frame size the driver settled on.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

impl FrameSource for V4l2Camera {
    fn next_frame(&mut self) -> Result<Option<Frame>, CameraError> {
        let (buf, meta) = self
            .stream
            .next()
            .map_err(|e| CameraError::Lost(format!("reading a frame: {e}")))?;
        self.id += 1;
        let id = self.id;
        let used = (meta.bytesused as usize).min(buf.len());
        let data = &buf[..if used == 0 { buf.len() } else { used }];
        let image = match self.format {
            // A frame is decoded only when its header is the negotiated size: a camera (or a
            // device pretending to be one) cannot make the door allocate more than a frame.
            PixelFormat::Mjpeg => match image_io::dimensions(data) {
                Ok(size) if size == (self.width, self.height) => {
                    image_io::decode(data).map_err(|e| e.to_string())
                }
                Ok((w, h)) => Err(format!(
                    "frame header says {w}x{h}, the camera was set to {}x{}",
                    self.width, self.height
                )),
                Err(e) => Err(e.to_string()),
            },
            PixelFormat::Yuyv => yuyv_to_rgb(data, self.width, self.height),
        };
        image
            .map(|image| Some(Frame { id, image }))
            .map_err(|reason| CameraError::BadFrame { id, reason })
    }
}

/// Converts packed YUYV (Y0 U Y1 V per two pixels) to RGB with BT.601 limited-range
/// coefficients, in integer arithmetic.
pub fn yuyv_to_rgb(data: &[u8], width: u32, height: u32) -> Result<RgbImage, String> {
    let need = width as usize * height as usize * 2;
    if !width.is_multiple_of(2) || data.len() < need {
        return Err(format!(
            "YUYV frame of {} bytes, expected {need} for {width}x{height}",
            data.len()
        ));
    }
    let mut out = Vec::with_capacity(need / 2 * 3);
    for quad in data[..need].chunks_exact(4) {
        let (u, v) = (i32::from(quad[1]) - 128, i32::from(quad[3]) - 128);
        for y in [quad[0], quad[2]] {
            let c = 298 * (i32::from(y) - 16);
            let px = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
            out.push(px(c + 409 * v));
            out.push(px(c - 100 * u - 208 * v));
            out.push(px(c + 516 * u));
        }
    }
    RgbImage::from_raw(width, height, out).ok_or_else(|| "YUYV conversion size".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuyv_greys_and_primaries_convert() {
        // Black (Y=16), white (Y=235), grey, and a saturated red (Y=81, U=90, V=240).
        let data = [16, 128, 235, 128, 126, 128, 126, 128, 81, 90, 81, 240];
        let img = yuyv_to_rgb(&data, 6, 1).expect("convert");
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(1, 0).0, [255, 255, 255]);
        let g = img.get_pixel(2, 0).0;
        assert!(g.iter().all(|&c| (127..=129).contains(&c)), "{g:?}");
        let r = img.get_pixel(4, 0).0;
        assert!(r[0] > 240 && r[1] < 10 && r[2] < 10, "{r:?}");
    }

    #[test]
    fn a_short_yuyv_frame_is_a_bad_frame_not_a_panic() {
        assert!(yuyv_to_rgb(&[0; 10], 4, 4).is_err());
        assert!(yuyv_to_rgb(&[0; 12], 3, 2).is_err());
    }

    #[test]
    fn a_missing_device_is_reported_as_lost_with_a_hint() {
        let err = V4l2Camera::open(&V4l2Settings {
            device: "/dev/video-does-not-exist".into(),
            format: PixelFormat::Mjpeg,
            width: 640,
            height: 480,
            fps: 15,
        })
        .err()
        .expect("no such camera");
        let msg = err.to_string();
        assert!(matches!(err, CameraError::Lost(_)));
        assert!(msg.contains("video group"), "{msg}");
    }
}
