//! Images as a camera, a photo folder or a hostile file hands them to the door and the laptop:
//! any bytes through `image_io::decode` (JPEG through libjpeg-turbo, PNG, WebP, PNM, EXIF
//! orientation). Nothing may panic, and whatever decodes must be within the size limits and no
//! larger than the memory budget the header was checked against.
#![no_main]

use facegate_models::image_io::{self, MAX_SIDE, MIN_SIDE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = image_io::decode(data) {
        let (w, h) = img.dimensions();
        assert!((MIN_SIDE..=MAX_SIDE).contains(&w) && (MIN_SIDE..=MAX_SIDE).contains(&h));
        assert!(u64::from(w) * u64::from(h) * 3 <= image_io::pixel_budget(data.len()));
    }
});
