//! Bad input through the real pipeline: each case gives a clear per-file result and never a
//! panic. Cases: corrupt image, empty file, 1x1 image, a 20000x20000 header, a photo with no
//! face, a photo with 10 faces.

use std::path::Path;

use facegate_models::Error;
use facegate_models::image_io;
use facegate_models::pipeline::{MAX_FACES, Pipeline, PipelineConfig};
use facegate_tests::{models_dir, shared_dir};
use image::{GenericImage, RgbImage};

fn pipeline() -> Pipeline {
    Pipeline::load(
        &models_dir(),
        PipelineConfig {
            quantised: true,
            ..Default::default()
        },
    )
    .expect("pipeline")
}

/// What the door would log for one file.
fn recognise(p: &Pipeline, bytes: &[u8]) -> Result<usize, Error> {
    let img = image_io::decode(bytes)?;
    Ok(p.faces(&img)?.len())
}

fn png(img: &RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}

#[test]
fn corrupt_empty_tiny_and_huge_files_are_clear_errors() {
    let p = pipeline();
    let lfw =
        std::fs::read(shared_dir().join("faces/lfw/images/Aaron_Peirsol/Aaron_Peirsol_0001.jpg"))
            .expect("read");
    let mut corrupt = lfw.clone();
    corrupt.truncate(300); // header survives, image data does not
    corrupt.extend_from_slice(&[0x12; 64]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("garbage", b"this is a text file, not a photo".to_vec()),
        ("corrupt jpeg", corrupt),
        ("1x1", png(&RgbImage::new(1, 1))),
        (
            "20000x20000 header",
            b"P6\n20000 20000\n255\n\x00\x00\x00".to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        match recognise(&p, &bytes) {
            Err(e) => {
                let msg = e.to_string();
                assert!(!msg.is_empty(), "{what}: empty message");
                eprintln!("{what}: {msg}");
                match what {
                    "1x1" => assert!(matches!(e, Error::ImageTooSmall { .. }), "{what}: {e:?}"),
                    "20000x20000 header" => {
                        assert!(
                            matches!(e, Error::ImageTooLarge { width: 20000, .. }),
                            "{what}: {e:?}"
                        )
                    }
                    // A JPEG with its data cut off is called damaged, not "not an image".
                    "corrupt jpeg" => {
                        assert!(matches!(e, Error::ImageCorrupt { .. }), "{what}: {e:?}")
                    }
                    _ => assert!(matches!(e, Error::ImageDecode { .. }), "{what}: {e:?}"),
                }
            }
            // libjpeg recovers a truncated JPEG as a partly grey picture; that is a result, not
            // a crash, and it must not invent a face.
            Ok(n) => assert!(
                what == "corrupt jpeg" && n <= 1,
                "{what}: decoded with {n} faces"
            ),
        }
    }
}

#[test]
fn a_photo_without_a_face_has_no_faces() {
    let p = pipeline();
    let img = RgbImage::from_fn(320, 240, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    assert_eq!(recognise(&p, &png(&img)).expect("decodes"), 0);
}

#[test]
fn a_photo_with_ten_faces_gives_ten_faces() {
    let p = pipeline();
    let root = shared_dir().join("faces/lfw/images");
    let mut people: Vec<_> = std::fs::read_dir(&root)
        .expect("lfw")
        .map(|e| e.expect("entry").path())
        .collect();
    people.sort();
    // A 5x2 contact sheet of the central 150x150 of ten different people's photos.
    let mut sheet = RgbImage::new(750, 300);
    for (i, dir) in people.iter().take(10).enumerate() {
        let first = first_image(dir);
        let img = image_io::open(&first).expect("decode");
        let crop = image::imageops::crop_imm(&img, 50, 50, 150, 150).to_image();
        sheet
            .copy_from(&crop, (i as u32 % 5) * 150, (i as u32 / 5) * 150)
            .expect("copy");
    }
    let img = image_io::decode(&png(&sheet)).expect("decode");
    let faces = p.faces(&img).expect("faces");
    assert_eq!(
        faces.len(),
        10,
        "{:?}",
        faces.iter().map(|f| f.detection.bbox).collect::<Vec<_>>()
    );
    assert!(faces.len() <= MAX_FACES);
    // Ten different people: no two embeddings should be near-identical.
    for (i, a) in faces.iter().enumerate() {
        for b in &faces[i + 1..] {
            let c: f32 = a
                .embedding
                .iter()
                .zip(&b.embedding)
                .map(|(x, y)| x * y)
                .sum();
            assert!(c < 0.9, "two faces of the sheet look identical ({c})");
        }
    }
}

fn first_image(dir: &Path) -> std::path::PathBuf {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v.remove(0)
}
