//! Decoding photos and frames into RGB, defensively: any common format, grey or colour, EXIF
//! orientation applied, and hard limits so that a hostile header cannot make us allocate
//! gigabytes.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use crate::{Error, Result};

/// Largest image side accepted. A 12000 px side covers any phone photo; beyond that it is
/// either a panorama nobody enrols from or a decompression bomb.
pub const MAX_SIDE: u32 = 12_000;

/// Smallest image side accepted: YuNet's smallest anchor is 8 px and a face needs more.
pub const MIN_SIDE: u32 = 16;

/// Most memory the decoder may allocate (a 12000x12000 RGB image is 432 MB).
const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// Decodes an encoded image (JPEG, PNG, PGM/PPM) from memory into 8-bit RGB, honouring the
/// EXIF orientation, so that a phone photo taken sideways is upright before detection.
///
/// JPEG pixels come from libjpeg-turbo's decoder (the one OpenCV and PIL use, and so the one
/// the reference outputs and the embedders' training crops were made with); the `image` crate
/// reads headers, EXIF and the other formats, and decodes the rare JPEG libjpeg refuses (CMYK).
pub fn decode(bytes: &[u8]) -> Result<RgbImage> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::ImageDecode {
            source: image::ImageError::IoError(e),
        })?;
    // Read the header without limits so an oversized image is reported with its real size,
    // then impose the limits before a single pixel is decoded.
    reader.no_limits();
    let is_jpeg = reader.format() == Some(ImageFormat::Jpeg);
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let (w, h) = decoder.dimensions();
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(Error::ImageTooLarge {
            width: w,
            height: h,
            max: MAX_SIDE,
        });
    }
    if w < MIN_SIDE || h < MIN_SIDE {
        return Err(Error::ImageTooSmall {
            width: w,
            height: h,
            min: MIN_SIDE,
        });
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    decoder.set_limits(limits).map_err(classify)?;
    let orientation = decoder.orientation().map_err(classify)?;
    let libjpeg = if is_jpeg { decode_jpeg(bytes) } else { None };
    let mut img = match libjpeg {
        Some(rgb) => DynamicImage::ImageRgb8(rgb),
        None => DynamicImage::from_decoder(decoder).map_err(classify)?,
    };
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

/// JPEG through libjpeg-turbo. libjpeg reports fatal errors by unwinding out of the C code
/// (mozjpeg's documented contract, hence `panic = "unwind"` in every profile); they are caught
/// here and become `None`, so a corrupt file is an error, never a crash.
fn decode_jpeg(bytes: &[u8]) -> Option<RgbImage> {
    std::panic::catch_unwind(|| {
        let mut img = mozjpeg::Decompress::new_mem(bytes).ok()?.rgb().ok()?;
        let (w, h) = (img.width() as u32, img.height() as u32);
        let px: Vec<[u8; 3]> = img.read_scanlines().ok()?;
        img.finish().ok()?;
        RgbImage::from_raw(w, h, px.into_flattened())
    })
    .ok()
    .flatten()
}

/// Reads and decodes an image file.
pub fn open(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })?;
    decode(&bytes)
}

/// Wraps a decoder error.
fn classify(err: image::ImageError) -> Error {
    Error::ImageDecode { source: err }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, codecs::png::PngEncoder};

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_pixel(w, h, image::Rgb([10, 20, 30]));
        let mut out = Vec::new();
        PngEncoder::new(&mut out)
            .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .expect("encode");
        out
    }

    #[test]
    fn empty_bytes_are_a_decode_error() {
        assert!(matches!(decode(&[]), Err(Error::ImageDecode { .. })));
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(matches!(
            decode(b"not an image at all"),
            Err(Error::ImageDecode { .. })
        ));
    }

    #[test]
    fn one_pixel_is_too_small() {
        assert!(matches!(
            decode(&png(1, 1)),
            Err(Error::ImageTooSmall { .. })
        ));
    }

    #[test]
    fn huge_header_is_refused_without_allocating() {
        // A PGM header announcing 20000x20000 with no pixel data.
        let bytes = b"P5\n20000 20000\n255\n".to_vec();
        assert!(
            matches!(decode(&bytes), Err(Error::ImageTooLarge { .. })),
            "{:?}",
            decode(&bytes)
        );
    }

    #[test]
    fn grey_pgm_becomes_rgb() {
        let mut bytes = b"P5\n20 20\n255\n".to_vec();
        bytes.extend(std::iter::repeat_n(77u8, 400));
        let img = decode(&bytes).expect("decode");
        assert_eq!(img.get_pixel(3, 3).0, [77, 77, 77]);
    }

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, 90]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .expect("encode");
        out
    }

    #[test]
    fn jpeg_decodes_through_libjpeg() {
        let img = decode(&jpeg(64, 48)).expect("decode");
        assert_eq!(img.dimensions(), (64, 48));
        let p = img.get_pixel(10, 10).0;
        assert!(
            (p[0] as i32 - 30).abs() <= 6 && (p[2] as i32 - 90).abs() <= 6,
            "{p:?}"
        );
    }

    /// A JPEG carrying an EXIF block with the given Orientation tag (big-endian TIFF).
    fn with_exif_orientation(jpeg: &[u8], orientation: u8) -> Vec<u8> {
        let mut app1 = vec![0xFF, 0xE1, 0x00, 0x22];
        app1.extend_from_slice(b"Exif\0\0MM\0\x2A\0\0\0\x08");
        app1.extend_from_slice(&[
            0,
            1,
            0x01,
            0x12,
            0,
            3,
            0,
            0,
            0,
            1,
            0,
            orientation,
            0,
            0,
            0,
            0,
            0,
            0,
        ]);
        let mut out = jpeg[..2].to_vec();
        out.extend(app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn exif_orientation_is_applied() {
        // 64x32, bright on the left half: a phone held sideways (orientation 6 = rotate 90
        // clockwise to view) must come out 32x64 with the bright half on top.
        let img = RgbImage::from_fn(64, 32, |x, _| {
            if x < 32 {
                image::Rgb([250; 3])
            } else {
                image::Rgb([5; 3])
            }
        });
        let mut plain = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 95)
            .write_image(img.as_raw(), 64, 32, image::ExtendedColorType::Rgb8)
            .expect("encode");
        let upright = decode(&plain).expect("decode");
        assert_eq!(upright.dimensions(), (64, 32));
        let rotated = decode(&with_exif_orientation(&plain, 6)).expect("decode");
        assert_eq!(rotated.dimensions(), (32, 64));
        assert!(rotated.get_pixel(16, 8).0[0] > 200 && rotated.get_pixel(16, 56).0[0] < 50);
    }

    #[test]
    fn corrupt_jpeg_is_an_error_not_a_crash() {
        let mut bytes = jpeg(64, 48);
        // Keep the header, destroy the entropy-coded data and the end marker.
        let n = bytes.len();
        for b in &mut bytes[n / 2..] {
            *b = 0xFF;
        }
        let _ = decode(&bytes); // may decode partially (as libjpeg does) or fail; must not panic
        assert!(decode(&bytes[..200.min(n)]).is_err() || decode(&bytes[..200.min(n)]).is_ok());
        assert!(decode(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0]).is_err());
    }

    #[test]
    fn truncated_png_is_a_decode_error() {
        let bytes = png(64, 64);
        assert!(decode(&bytes[..bytes.len() / 2]).is_err());
    }
}
