//! The Rust pipeline against the reference Python + onnxruntime outputs in
//! shared/reference/embeddings.jsonl: detections (landmarks and boxes within 1 px), the
//! alignment matrix, and embeddings (cosine >= 0.995 end to end, >= 0.9999 for the embedder
//! alone on the reference's own matrix).

use facegate_models::align;
use facegate_models::detect::{Detector, DetectorConfig};
use facegate_models::embed::{Embedder, EmbedderKind, cosine};
use facegate_models::geometry::Similarity;
use facegate_models::image_io;
use facegate_models::model_files::YUNET_DOOR;
use facegate_tests::{models_dir, shared_dir};
use serde_json::Value;

fn records() -> Vec<Value> {
    let path = shared_dir().join("reference/embeddings.jsonl");
    let text = std::fs::read_to_string(&path).expect("reading embeddings.jsonl");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn pair(v: &Value) -> [f32; 2] {
    let f = floats(v);
    [f[0], f[1]]
}

#[test]
fn detections_match_the_reference() {
    let models = models_dir();
    let det = Detector::from_bytes(
        &YUNET_DOOR.read_verified(&models).expect("yunet"),
        DetectorConfig::default(),
    )
    .expect("detector");
    let shared = shared_dir();
    let recs = records();
    assert_eq!(recs.len(), 40);
    let mut worst_lm = 0f32;
    for r in &recs {
        let file = r["file"].as_str().expect("file");
        let img = image_io::open(&shared.join(file)).expect("decode");
        assert_eq!(
            (img.width() as u64, img.height() as u64),
            (
                r["width"].as_u64().expect("w"),
                r["height"].as_u64().expect("h")
            )
        );
        let ours = det.detect(&img).expect("detect");
        let theirs = r["detections"].as_array().expect("detections");
        assert_eq!(ours.len(), theirs.len(), "{file}: number of detections");
        // Unscaled inputs see identical pixels, so they must agree much more tightly.
        let exact = r["yunet_input"]["scale"].as_f64() == Some(1.0);
        let (lm_tol, score_tol) = if exact { (0.05, 1e-3) } else { (1.0, 1e-2) };
        for (o, t) in ours.iter().zip(theirs) {
            let b = floats(&t["box"]);
            let ob = [o.bbox.x, o.bbox.y, o.bbox.w, o.bbox.h];
            for k in 0..4 {
                assert!((ob[k] - b[k]).abs() <= 1.0, "{file}: box {ob:?} vs {b:?}");
            }
            assert!(
                (o.score - t["score"].as_f64().expect("score") as f32).abs() <= score_tol,
                "{file}: score"
            );
            for (ol, tl) in o
                .landmarks
                .iter()
                .zip(t["landmarks"].as_array().expect("lm"))
            {
                let tl = pair(tl);
                let d = (ol[0] - tl[0]).abs().max((ol[1] - tl[1]).abs());
                worst_lm = worst_lm.max(d);
                assert!(d <= lm_tol, "{file}: landmark {ol:?} vs {tl:?}");
            }
        }
    }
    eprintln!("worst landmark error: {worst_lm:.4} px");
}

fn reference_matrix(v: &Value) -> Similarity {
    let rows = v.as_array().expect("rows");
    let row = |i: usize| {
        let f: Vec<f64> = rows[i]
            .as_array()
            .expect("row")
            .iter()
            .map(|x| x.as_f64().expect("n"))
            .collect();
        [f[0], f[1], f[2]]
    };
    Similarity {
        m: [row(0), row(1)],
    }
}

fn check_embedder(kind: EmbedderKind, key: &str) {
    let models = models_dir();
    let det = Detector::from_bytes(
        &YUNET_DOOR.read_verified(&models).expect("yunet"),
        DetectorConfig::default(),
    )
    .expect("detector");
    let emb = Embedder::load(&models, kind, false).expect("embedder");
    let shared = shared_dir();
    let (mut worst_alone, mut worst_e2e) = (1f32, 1f32);
    for r in records() {
        let best = &r["best"];
        if best.is_null() {
            continue;
        }
        let file = r["file"].as_str().expect("file");
        let img = image_io::open(&shared.join(file)).expect("decode");
        let reference = floats(&best[key]);
        // Embedder alone, on the reference's own alignment.
        let crop = align::warp(&img, &reference_matrix(&best["matrix"])).expect("warp");
        let alone = cosine(&emb.embed(&crop).expect("embed"), &reference);
        worst_alone = worst_alone.min(alone);
        assert!(alone >= 0.9999, "{file}: {key} alone cosine {alone}");
        // End to end: our detection, our matrix.
        let d = det
            .detect(&img)
            .expect("detect")
            .into_iter()
            .next()
            .expect("a face");
        let (m, crop) = align::align(&img, &d).expect("align");
        let rm = reference_matrix(&best["matrix"]);
        for i in 0..2 {
            for j in 0..3 {
                let tol = if j == 2 { 1.0 } else { 0.01 };
                assert!(
                    (m.m[i][j] - rm.m[i][j]).abs() <= tol,
                    "{file}: matrix {:?} vs {:?}",
                    m.m,
                    rm.m
                );
            }
        }
        let e2e = cosine(&emb.embed(&crop).expect("embed"), &reference);
        worst_e2e = worst_e2e.min(e2e);
        assert!(e2e >= 0.995, "{file}: {key} end-to-end cosine {e2e}");
    }
    eprintln!("{key}: worst cosine embedder-alone {worst_alone:.5}, end-to-end {worst_e2e:.5}");
}

#[test]
fn edgeface_embeddings_match_the_reference() {
    check_embedder(EmbedderKind::EdgeFace, "edgeface");
}

#[test]
fn sface_embeddings_match_the_reference() {
    check_embedder(EmbedderKind::SFace, "sface");
}
