//! `facegate bench` through the real binary: every stage timed for one thread and all cores,
//! JSON written, and facegate / peer ratios printed from a peer report.

mod common;
use common::{facegate, json as json_file, shared, succeed};

#[test]
fn bench_times_every_stage_and_prints_ratios_against_a_peer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let peer = dir.path().join("peer.json");
    // A peer that is exactly 2 ms on YuNet 320x256 (single thread), 8 ms without its
    // channel-blocked layout.
    std::fs::write(
        &peer,
        r#"{"onnxruntime": {"threads": {"1": {"yunet_320x256": 2.0}}},
            "onnxruntime_nchw": {"threads": {"1": {"yunet_320x256": 8.0}}},
            "peak_rss_mib": 100.0}"#,
    )
    .expect("write");
    let json = dir.path().join("bench.json");
    let run = succeed(
        facegate()
            .args(["bench", "--rounds", "1", "--warmup", "0", "--photo"])
            .arg(shared().join("faces/deepface/img1.jpg"))
            .arg("--json")
            .arg(&json)
            .arg("--peer")
            .arg(&peer),
    );
    let r = json_file(&json);
    let one = &r["threads"]["1"];
    for stage in [
        "yunet_320x256",
        "yunet_640x480",
        "align",
        "edgeface_fp32",
        "edgeface_int8",
        "sface_fp32",
        "sface_int8",
        "frame_to_decision",
        "frame_to_decision_sface",
    ] {
        assert!(
            one[stage].as_f64().is_some_and(|ms| ms > 0.0),
            "{stage}: {one}"
        );
    }
    assert!(r["peak_rss_mib"].as_f64().is_some_and(|m| m > 10.0));
    let out = String::from_utf8_lossy(&run.stdout);
    let line = out
        .lines()
        .find(|l| l.starts_with("yunet_320x256"))
        .expect("yunet line");
    let ms = one["yunet_320x256"].as_f64().expect("ms");
    assert!(line.contains("2.00ms"), "{line}");
    assert!(line.contains(&format!("{:.2}x", ms / 2.0)), "{line}");
    assert!(line.contains("8.00ms"), "{line}");
    assert!(line.contains(&format!("{:.2}x", ms / 8.0)), "{line}");
    assert!(out.contains("ort nchw"), "{out}");
    assert!(out.contains("peer process 100.0 MiB"), "{out}");
}
