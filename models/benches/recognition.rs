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
use facegate_models::model_files::{YUNET, YUNET_DOOR, default_dir};
use image::imageops::{FilterType, resize};

fn shared() -> PathBuf {
    facegate_models::testdata::for_crate(env!("CARGO_MANIFEST_DIR"))
}

fn bench(c: &mut Criterion) {
    let models = default_dir();
    let photo = image_io::open(&shared().join("faces/deepface/img1.jpg")).expect("photo");
    let detector = Detector::from_bytes(
        &YUNET_DOOR
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
    // What the door does before YuNet on each frame: shrink 640x480 to 320x240 and lay it
    // out as the network's planes.
    let frame = resize(&photo, 640, 480, FilterType::Triangle);
    g.bench_function("prepare_640x480_to_320", |b| {
        b.iter(|| facegate_models::detect::prepare(&frame, 320))
    });
    g.finish();
    pools(c, &models);
    yunet_own_ops(c, &models);

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
    liveness(c, &frame, &det.bbox);

    layer_norms(c, &models, &crop);

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

/// YuNet's max-pools at the door's detection size, as tract runs them and as facegate's own
/// operator does (`facegate_models::ops`), side by side in one run.
fn pools(c: &mut Criterion, models: &std::path::Path) {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::ops::cnn::{MaxPool, OptMaxPool};
    let bytes = YUNET.read_verified(models).expect("YuNet");
    let yunet = tract_onnx::onnx()
        .with_ignore_output_shapes(true)
        .with_ignore_value_info(true)
        .model_for_read(&mut &bytes[..])
        .and_then(|m| m.with_input_fact(0, f32::fact([1, 3, 256, 320]).into()))
        .and_then(|m| m.into_optimized())
        .expect("YuNet plan");
    let mut tract_plans = Vec::new();
    let mut own_plans = Vec::new();
    for node in yunet.nodes() {
        let Some(pool) = node.op_as::<OptMaxPool>() else {
            continue;
        };
        let fact = yunet.outlet_fact(node.inputs[0]).expect("fact").clone();
        let shape = fact.shape.as_concrete().expect("concrete").to_vec();
        let input = Tensor::zero::<f32>(&shape).expect("tensor");
        for own in [false, true] {
            let mut m = TypedModel::default();
            let src = m.add_source("x", fact.clone()).expect("source");
            let op = MaxPool::new(pool.pool_spec.clone(), None);
            let out = m.wire_node("pool", op, &[src]).expect("wire");
            m.select_output_outlets(&out).expect("outputs");
            let mut m = m.into_optimized().expect("optimise");
            if own {
                assert_eq!(
                    facegate_models::ops::swap_max_pools(&mut m).expect("swap"),
                    1
                );
            }
            let plan = m.into_runnable().expect("plan");
            let slot = if own {
                &mut own_plans
            } else {
                &mut tract_plans
            };
            slot.push((plan, input.clone()));
        }
    }
    assert!(!own_plans.is_empty(), "YuNet has max-pools");
    let input = Tensor::zero::<f32>(&[1, 3, 256, 320]).expect("tensor");
    let mut swapped = yunet.clone();
    facegate_models::ops::swap_max_pools(&mut swapped).expect("swap");
    let whole = [
        ("tract", yunet.into_runnable().expect("plan")),
        ("facegate", swapped.into_runnable().expect("plan")),
    ];
    let mut g = c.benchmark_group("maxpool");
    for (name, plan) in &whole {
        g.bench_function(format!("yunet_320x256_whole_{name}"), |b| {
            b.iter(|| plan.run(tvec![input.clone().into()]).expect("YuNet"))
        });
    }
    for (name, plans) in [("tract", &tract_plans), ("facegate", &own_plans)] {
        g.bench_function(format!("yunet_320x256_all_pools_{name}"), |b| {
            b.iter(|| {
                for (plan, input) in plans.iter() {
                    plan.run(tvec![input.clone().into()]).expect("pool");
                }
            })
        });
    }
    g.finish();
}

/// YuNet at the door's detection sizes with facegate's depthwise convolutions (the door) and
/// with tract's, side by side in one run.
fn yunet_own_ops(c: &mut Criterion, models: &std::path::Path) {
    use facegate_models::ops::{optimised, optimised_by_tract};
    use tract_onnx::prelude::*;
    let bytes = YUNET.read_verified(models).expect("YuNet");
    let mut g = c.benchmark_group("depthwise");
    for (w, h) in [(320, 256), (640, 480)] {
        let input = Tensor::zero::<f32>(&[1, 3, h, w]).expect("tensor");
        for (name, optimise) in [
            ("tract", optimised_by_tract as fn(_) -> _),
            ("facegate", optimised),
        ] {
            let plan = facegate_models::ops::onnx()
                .with_ignore_value_info(true)
                .model_for_read(&mut &bytes[..])
                .and_then(|m| m.with_input_fact(0, f32::fact([1, 3, h, w]).into()))
                .and_then(optimise)
                .and_then(|m| m.into_runnable())
                .expect("YuNet plan");
            g.bench_function(format!("yunet_{w}x{h}_{name}"), |b| {
                b.iter(|| plan.run(tvec![input.clone().into()]).expect("YuNet"))
            });
        }
    }
    g.finish();
}

/// EdgeFace (int8 weights, as the door runs it) with its LayerNorms fused into facegate's
/// operator and without (tract's own chain), and with tract's depthwise convolutions and
/// GELUs instead of facegate's, side by side in one run.
fn layer_norms(c: &mut Criterion, models: &std::path::Path, crop: &image::RgbImage) {
    use tract_onnx::prelude::*;
    let bytes = facegate_models::model_files::EDGEFACE_INT8
        .read_verified(models)
        .expect("EdgeFace int8: run `facegate models fetch`");
    let plans = facegate_models::embed::plans_for_the_bench(&bytes).expect("plans");
    let side = crop.width() as usize;
    let input = Tensor::zero::<f32>(&[1, 3, side, side]).expect("tensor");
    let mut g = c.benchmark_group("layernorm");
    for (name, plan) in &plans {
        g.bench_function(format!("edgeface_int8_{name}"), |b| {
            b.iter(|| plan.run(tvec![input.clone().into()]).expect("EdgeFace"))
        });
    }
    g.finish();
}

/// The liveness check's work per face at the door's 640x480: cropping and shrinking each view
/// of the face, and the network on them, for one view and for two, and the door's two views as
/// an ensemble of two networks and as a network with a second opinion (the network's cost does not depend on its weights, so a fixed
/// pattern stands in for trained ones).
fn liveness(c: &mut Criterion, frame: &image::RgbImage, face: &facegate_models::geometry::BBox) {
    use facegate_models::liveness::{Levels, Liveness, input, net};
    let mut g = c.benchmark_group("liveness");
    for views in [&[2.0][..], &[2.0, 3.0], &[2.0, 1.0]] {
        let name = views
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("_");
        g.bench_function(format!("input_640x480_views_{name}"), |b| {
            b.iter(|| input(frame, face, views))
        });
        let spec = net(views.len());
        let weights: Vec<Vec<f32>> = spec
            .weight_shapes()
            .into_iter()
            .map(|(_, d)| {
                let n: usize = d.iter().product();
                (0..n).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect()
            })
            .collect();
        let bytes = spec.graph(&weights).expect("graph");
        for levels in [Levels::AsCaptured, Levels::PerPlane] {
            let check = Liveness::from_bytes(&bytes, views, levels).expect("load");
            let levelled = if levels == Levels::PerPlane {
                "_per_plane"
            } else {
                ""
            };
            g.bench_function(format!("score_640x480_views_{name}{levelled}"), |b| {
                b.iter(|| check.score(frame, face).expect("score"))
            });
        }
        // The door's views as an ensemble of two trainings (`models liveness --ensemble 2`),
        // and as the shipped pair: a brightness-levelled second opinion in the same file
        // (`models liveness --second brightness`).
        if views == [2.0, 3.0] {
            let both = spec
                .ensemble(&[weights.clone(), weights.clone()])
                .expect("ensemble");
            let check = Liveness::from_bytes(&both, views, Levels::AsCaptured).expect("load");
            g.bench_function(format!("score_640x480_views_{name}_ensemble_2"), |b| {
                b.iter(|| check.score(frame, face).expect("score"))
            });
            let pair = facegate_models::liveness::lower_of(
                views.len(),
                &weights,
                &weights,
                Levels::Brightness,
                0.0,
            )
            .expect("pair");
            let check = Liveness::from_bytes(&pair, views, Levels::AsCaptured).expect("load");
            g.bench_function(
                format!("score_640x480_views_{name}_second_brightness"),
                |b| b.iter(|| check.score(frame, face).expect("score")),
            );
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
