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

/// Pixel memory any file may cost, however small: a 1 MB file decodes within 64 MB.
const MIN_BUDGET: u64 = 56 * 1024 * 1024;

/// Pixel memory per byte of file beyond that. Real photos compress about 3 to 20 times (a 12
/// megapixel phone JPEG of 3 MB needs 72 MB with its EXIF rotation, well within 3 MB x 48);
/// a decompression bomb claims thousands of times its size and is refused from its header.
/// At 48, every file under 1 MB stays within the 56 MB floor.
const BUDGET_PER_FILE_BYTE: u64 = 48;

/// The pixel memory decoding `file_len` bytes may take.
pub fn pixel_budget(file_len: usize) -> u64 {
    (file_len as u64)
        .saturating_mul(BUDGET_PER_FILE_BYTE)
        .clamp(MIN_BUDGET, MAX_ALLOC)
}

/// Memory a decode of `w` x `h` pixels takes at its peak: the decoder's own pixels
/// (`bytes_per_pixel` each), the RGB copy when the decoder's format is not RGB8, and the copy
/// a rotating EXIF orientation makes.
fn decode_cost(w: u32, h: u32, bytes_per_pixel: u64, rgb8: bool, rotates: bool) -> u64 {
    let px = u64::from(w) * u64::from(h);
    let copies = bytes_per_pixel + if rgb8 { 0 } else { 3 } + if rotates { 3 } else { 0 };
    px.saturating_mul(copies)
}

/// Decodes an encoded image (JPEG, PNG, PGM/PPM) from memory into 8-bit RGB, honouring the
/// EXIF orientation, so that a phone photo taken sideways is upright before detection.
///
/// JPEG pixels come from libjpeg-turbo's decoder (the one OpenCV and PIL use, and so the one
/// the reference outputs and the embedders' training crops were made with); the `image` crate
/// reads headers, EXIF and the other formats, and decodes the rare JPEG libjpeg refuses (CMYK).
pub fn decode(bytes: &[u8]) -> Result<RgbImage> {
    let reader = header_reader(bytes)?;
    let Some(format) = reader.format() else {
        return Err(Error::ImageDecode {
            source: image::ImageError::Unsupported(image::error::ImageFormatHint::Unknown.into()),
        });
    };
    let is_jpeg = format == ImageFormat::Jpeg;
    let corrupt = |e: image::ImageError| match e {
        image::ImageError::Decoding(_) | image::ImageError::IoError(_) => Error::ImageCorrupt {
            format: format_name(format),
            reason: e.to_string(),
        },
        other => classify(other),
    };
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
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
    let orientation = decoder.orientation().map_err(classify)?;
    // Every path (libjpeg, the image crate, colour conversion, the EXIF rotation copy) is
    // bounded here, from the header, before a single pixel is decoded.
    let budget = pixel_budget(bytes.len());
    let colour = decoder.color_type();
    let rgb8 = is_jpeg || colour == image::ColorType::Rgb8;
    let bpp = if is_jpeg {
        3
    } else {
        u64::from(colour.bytes_per_pixel())
    };
    let rotates = orientation != image::metadata::Orientation::NoTransforms;
    let cost = decode_cost(w, h, bpp, rgb8, rotates);
    if cost > budget {
        return Err(Error::ImageBomb {
            width: w,
            height: h,
            file_bytes: bytes.len(),
            needed_mb: cost.div_ceil(1 << 20),
            budget_mb: budget >> 20,
        });
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(budget);
    decoder.set_limits(limits).map_err(classify)?;
    let libjpeg = if is_jpeg {
        decode_jpeg(bytes, w, h)
    } else {
        None
    };
    let mut img = match libjpeg {
        Some(rgb) => DynamicImage::ImageRgb8(rgb),
        None => DynamicImage::from_decoder(decoder).map_err(corrupt)?,
    };
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

/// JPEG through libjpeg-turbo. libjpeg reports fatal errors by unwinding out of the C code
/// (mozjpeg's documented contract, hence `panic = "unwind"` in every profile); they are caught
/// here and become `None`, so a corrupt file is an error, never a crash. libjpeg reads its own
/// header: it must agree with the size the budget was checked on, or nothing is decoded.
fn decode_jpeg(bytes: &[u8], checked_w: u32, checked_h: u32) -> Option<RgbImage> {
    std::panic::catch_unwind(|| {
        let mut img = mozjpeg::Decompress::new_mem(bytes).ok()?.rgb().ok()?;
        let (w, h) = (img.width() as u32, img.height() as u32);
        if (w, h) != (checked_w, checked_h) {
            return None;
        }
        let px: Vec<[u8; 3]> = img.read_scanlines().ok()?;
        img.finish().ok()?;
        RgbImage::from_raw(w, h, px.into_flattened())
    })
    .ok()
    .flatten()
}

/// "JPEG", "PNG": how a format is named in messages.
fn format_name(format: ImageFormat) -> String {
    format!("{format:?}").to_uppercase()
}

/// Whether a JPEG holds its end-of-image marker after its first scan. libjpeg pads a file that
/// was cut short with grey and says nothing, so a truncated photo would otherwise read as "no
/// face found". The marker segments are walked up to the first scan (an EXIF thumbnail has an
/// end marker of its own, inside a segment, and must not count); in the scan data a 0xFF byte
/// is always followed by 0x00 or a marker, so an end marker found there is the real one.
/// Anything that does not parse as markers is left to the decoder to judge (true).
fn jpeg_complete(b: &[u8]) -> bool {
    if b.len() < 4 || b[0] != 0xFF || b[1] != 0xD8 {
        return true;
    }
    let mut i = 2;
    loop {
        if i >= b.len() {
            return false;
        }
        if b[i] != 0xFF {
            return true;
        }
        while i < b.len() && b[i] == 0xFF {
            i += 1;
        }
        let Some(&marker) = b.get(i) else {
            return false;
        };
        i += 1;
        match marker {
            0xD9 => return true,
            0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        let Some(len) = b
            .get(i..i + 2)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
        else {
            return false;
        };
        if len < 2 || i + len > b.len() {
            return false;
        }
        i += len;
        if marker == 0xDA {
            return b[i..].windows(2).any(|w| w == [0xFF, 0xD9]);
        }
    }
}

/// The size an encoded image declares in its header, without decoding any pixel (the door
/// checks camera frames against the negotiated size with it).
pub fn dimensions(bytes: &[u8]) -> Result<(u32, u32)> {
    header_reader(bytes)?.into_dimensions().map_err(classify)
}

/// A reader for the header only. It reads without limits so an oversized image is reported
/// with its real size; the limits are imposed before a single pixel is decoded.
fn header_reader(bytes: &[u8]) -> Result<ImageReader<Cursor<&[u8]>>> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::ImageDecode {
            source: image::ImageError::IoError(e),
        })?;
    reader.no_limits();
    Ok(reader)
}

/// Reads and decodes an image file.
pub fn open(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })?;
    decode_file(&bytes)
}

/// Decodes the bytes of a photo file: as [`decode`], and a JPEG cut short is refused as
/// damaged. A camera frame goes through [`decode`] without this check, since some webcams end
/// MJPEG frames without the end marker and a frame is gone in 100 ms anyway.
pub fn decode_file(bytes: &[u8]) -> Result<RgbImage> {
    if !jpeg_complete(bytes) {
        return Err(Error::ImageCorrupt {
            format: "JPEG".into(),
            reason: CUT_SHORT.into(),
        });
    }
    decode(bytes)
}

const CUT_SHORT: &str =
    "cut short: the file ends before its image data does (an interrupted copy or download?)";

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

    /// Finding (#23): a truncated JPEG was reported as "no face found".
    #[test]
    fn a_photo_cut_short_is_called_damaged() {
        let whole = jpeg(64, 48);
        assert!(jpeg_complete(&whole));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cut.jpg");
        for keep in [whole.len() - 2, whole.len() * 2 / 3, 700] {
            assert!(!jpeg_complete(&whole[..keep]), "{keep}");
            std::fs::write(&path, &whole[..keep]).expect("write");
            let err = open(&path).expect_err("cut short");
            assert!(matches!(err, Error::ImageCorrupt { .. }), "{err:?}");
            assert!(err.to_string().contains("damaged JPEG"), "{err}");
        }
        std::fs::write(&path, &whole).expect("write");
        assert!(open(&path).is_ok());
        // A PNG cut short is damaged too (its decoder says so).
        let p = png(64, 48);
        let err = decode(&p[..p.len() - 20]).expect_err("cut png");
        assert!(matches!(err, Error::ImageCorrupt { .. }), "{err:?}");
        // A missing file says why.
        let err = open(&dir.path().join("missing.jpg")).expect_err("missing");
        assert!(
            crate::error::full(&err).contains("No such file"),
            "{}",
            crate::error::full(&err)
        );
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

    /// A baseline JPEG header declaring `w` x `h` with almost no data: a decompression bomb.
    fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
        let mut bytes = jpeg(16, 16);
        // SOF0: FF C0, length, precision, height, width.
        let sof = bytes
            .windows(2)
            .position(|p| p == [0xFF, 0xC0])
            .expect("SOF0");
        bytes[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
        bytes[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
        bytes
    }

    /// Finding: an 8 KB JPEG whose header says 12000x12000 cost 516 MB (917 MB with EXIF
    /// orientation 6). Refused from the header now, on every path.
    #[test]
    fn decompression_bombs_are_refused_from_the_header() {
        let bomb = jpeg_claiming(12_000, 12_000);
        assert!(bomb.len() < 8192);
        for bytes in [bomb.clone(), with_exif_orientation(&bomb, 6)] {
            let err = decode(&bytes).expect_err("bomb");
            assert!(matches!(err, Error::ImageBomb { .. }), "{err}");
        }
        assert_eq!(dimensions(&bomb).expect("header"), (12_000, 12_000));
        // A real photo the same size as its header says, under the budget, still decodes.
        assert!(decode(&jpeg(1024, 768)).is_ok());
    }

    #[test]
    fn the_budget_follows_the_file_size() {
        assert_eq!(pixel_budget(1000), MIN_BUDGET);
        assert_eq!(pixel_budget(3 << 20), 144 << 20);
        assert_eq!(pixel_budget(1 << 20), MIN_BUDGET);
        assert_eq!(pixel_budget(usize::MAX), MAX_ALLOC);
        // 4000x3000 rotated: 72 MB, fine for a 3 MB phone photo, a bomb for a 8 KB file.
        let cost = decode_cost(4000, 3000, 3, true, true);
        assert!(cost <= pixel_budget(3 << 20) && cost > pixel_budget(8192));
    }

    /// Set in the child process of [`decoding_any_image_under_1_mb_peaks_under_64_mb`].
    const MEASURE: &str = "FACEGATE_DECODE_PEAK_CHILD";

    fn proc_status_kib(field: &str) -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .expect("/proc/self/status")
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("field")
    }

    /// The bound, measured: the largest images a file under 1 MB may declare (a
    /// 4320x4320 JPEG and PNG right at the budget, the same JPEG rotated by EXIF, a 16-bit
    /// RGBA PNG, a 12000x12000 bomb) are decoded in a fresh process, which reports its peak
    /// resident memory above what it held before decoding.
    #[test]
    fn decoding_any_image_under_1_mb_peaks_under_64_mb() {
        if let Ok(dir) = std::env::var(MEASURE) {
            let before = proc_status_kib("VmRSS:");
            let mut outcomes = Vec::new();
            let mut names: Vec<_> = std::fs::read_dir(&dir)
                .expect("dir")
                .map(|e| e.expect("entry").path())
                .collect();
            names.sort();
            for path in names {
                let bytes = std::fs::read(&path).expect("read");
                assert!(
                    bytes.len() < 1 << 20,
                    "{} is not under 1 MB",
                    path.display()
                );
                let ok = decode(&bytes).map(|img| img.dimensions()).is_ok();
                outcomes.push(format!("{}={ok}", path.display()));
            }
            let peak = proc_status_kib("VmHWM:");
            println!(
                "PEAK_KIB {} {}",
                peak.saturating_sub(before),
                outcomes.join(" ")
            );
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let side = 4320u32;
        let big = RgbImage::from_fn(side, side, |x, y| {
            image::Rgb([(x / 64) as u8, (y / 64) as u8, ((x + y) / 128) as u8])
        });
        let mut jpeg_bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg_bytes, 50)
            .write_image(big.as_raw(), side, side, image::ExtendedColorType::Rgb8)
            .expect("encode");
        let mut png_bytes = Vec::new();
        PngEncoder::new(&mut png_bytes)
            .write_image(big.as_raw(), side, side, image::ExtendedColorType::Rgb8)
            .expect("encode");
        let rgba16: Vec<u8> = vec![0; 2048 * 2048 * 8];
        let mut png16 = Vec::new();
        PngEncoder::new(&mut png16)
            .write_image(&rgba16, 2048, 2048, image::ExtendedColorType::Rgba16)
            .expect("encode");
        drop(big);
        for (name, bytes) in [
            ("a.jpg", jpeg_bytes.clone()),
            ("b-rotated.jpg", with_exif_orientation(&jpeg_bytes, 6)),
            ("c.png", png_bytes),
            ("d-rgba16.png", png16),
            ("e-bomb.jpg", jpeg_claiming(12_000, 12_000)),
        ] {
            std::fs::write(dir.path().join(name), bytes).expect("write");
        }
        let exe = std::env::current_exe().expect("test binary");
        let out = std::process::Command::new(exe)
            .args([
                "image_io::tests::decoding_any_image_under_1_mb_peaks_under_64_mb",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(MEASURE, dir.path())
            .output()
            .expect("run the child");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = text
            .lines()
            .find_map(|l| l.split_once("PEAK_KIB ").map(|(_, m)| m))
            .unwrap_or_else(|| panic!("no measurement: {text}"));
        let (kib, outcomes) = line.split_once(' ').expect("kib and outcomes");
        let kib: u64 = kib.parse().expect("kib");
        eprintln!(
            "decode peak above baseline: {:.1} MiB ({outcomes})",
            kib as f64 / 1024.0
        );
        assert!(outcomes.contains("a.jpg=true"), "{outcomes}");
        assert!(outcomes.contains("e-bomb.jpg=false"), "{outcomes}");
        assert!(kib * 1024 < 64_000_000, "peak {kib} KiB");
    }

    #[test]
    fn truncated_png_is_a_decode_error() {
        let bytes = png(64, 64);
        assert!(decode(&bytes[..bytes.len() / 2]).is_err());
    }
}
