//! Speed of each pipeline stage, single-threaded, fp32 against int8 weights, on a real photo.
//! `cargo bench -p facegate-models --bench recognition` (models from the default folder,
//! photos from $FACEGATE_SHARED, default ../shared). Compare ratios within one run: these
//! machines are noisy.

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use facegate_models::align;
use facegate_models::detect::{Detector, DetectorConfig};
use facegate_models::embed::{Embedder, EmbedderKind};
use facegate_models::image_io;
use facegate_models::model_files::{YUNET, default_dir};
use image::imageops::{FilterType, resize};

fn shared() -> PathBuf {
    facegate_models::testdata::for_crate(env!("CARGO_MANIFEST_DIR"))
}

fn bench(c: &mut Criterion) {
    let models = default_dir();
    let photo = image_io::open(&shared().join("faces/deepface/img1.jpg")).expect("photo");
    let detector = Detector::from_bytes(
        &YUNET
            .read_verified(&models)
            .expect("run `facegate models fetch`"),
        DetectorConfig::default(),
    )
    .expect("detector");
    let mut g = c.benchmark_group("detect");
    for (w, h) in [(320, 256), (640, 480)] {
        let frame = resize(&photo, w, h, FilterType::Triangle);
        detector.detect(&frame).expect("warm-up");
        g.bench_function(format!("yunet_{w}x{h}"), |b| {
            b.iter(|| detector.detect(&frame).expect("detect"))
        });
    }
    g.finish();

    let frame = resize(&photo, 640, 480, FilterType::Triangle);
    let det = detector
        .detect(&frame)
        .expect("detect")
        .into_iter()
        .next()
        .expect("a face in img1.jpg");
    c.bench_function("align_112", |b| {
        b.iter(|| align::align(&frame, &det).expect("align"))
    });
    let (_, crop) = align::align(&frame, &det).expect("align");

    let mut g = c.benchmark_group("embed");
    for kind in [EmbedderKind::EdgeFace, EmbedderKind::SFace] {
        for quantised in [false, true] {
            let e = Embedder::load(&models, kind, quantised).expect("embedder");
            let name = format!(
                "{}_{}",
                kind.as_str(),
                if quantised { "int8" } else { "fp32" }
            );
            g.bench_function(name, |b| b.iter(|| e.embed(&crop).expect("embed")));
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_secs(2))
        .measurement_time(std::time::Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
