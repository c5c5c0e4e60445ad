//! Photo quality checks at import: a face too small or too blurred makes a poor template and a
//! misleading training sample, so it is skipped with the reason rather than kept silently.

use image::RgbImage;

/// The part of a 112x112 aligned crop that is always face (eyes to mouth, cheek to cheek):
/// hair, background and the black fill beyond a photo's edge have edges of their own.
const FACE: (u32, u32, u32, u32) = (30, 40, 52, 60);

/// Sharpness of an aligned 112x112 face crop: the variance of the grey Laplacian (4-neighbour)
/// over the inner face. Sharp photos score in the hundreds; heavy defocus and motion blur drop
/// it five- to tenfold.
pub fn sharpness(crop: &RgbImage) -> f32 {
    let (x, y, w, h) = FACE;
    if crop.width() < x + w || crop.height() < y + h {
        return laplacian_variance(crop);
    }
    laplacian_variance(&image::imageops::crop_imm(crop, x, y, w, h).to_image())
}

fn laplacian_variance(crop: &RgbImage) -> f32 {
    let (w, h) = (crop.width() as usize, crop.height() as usize);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let grey: Vec<f32> = crop
        .pixels()
        .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
        .collect();
    let mut values = Vec::with_capacity((w - 2) * (h - 2));
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let c = grey[y * w + x];
            let lap = grey[(y - 1) * w + x]
                + grey[(y + 1) * w + x]
                + grey[y * w + x - 1]
                + grey[y * w + x + 1]
                - 4.0 * c;
            values.push(lap);
        }
    }
    let n = values.len() as f32;
    let mean = values.iter().sum::<f32>() / n;
    values.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blurring_lowers_sharpness_and_flat_is_zero() {
        let img = RgbImage::from_fn(112, 112, |x, y| {
            let v = if (x / 4 + y / 4) % 2 == 0 { 220 } else { 30 };
            image::Rgb([v, v, v])
        });
        let sharp = sharpness(&img);
        let blurred = sharpness(&image::imageops::blur(&img, 3.0));
        assert!(sharp > 10.0 * blurred, "{sharp} vs {blurred}");
        assert_eq!(
            sharpness(&RgbImage::from_pixel(50, 50, image::Rgb([9, 9, 9]))),
            0.0
        );
    }
}
