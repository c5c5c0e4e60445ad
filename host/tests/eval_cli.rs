//! The `facegate eval` contract, through the real binary on the shared MFR2 half: the JSON
//! keys other work relies on, the split sizes, and accuracy floors that catch regressions.

mod common;
use common::{facegate, json as json_file, shared, succeed};

#[test]
fn eval_mfr2_writes_the_contract_json() {
    let out = tempfile::tempdir().expect("tempdir");
    let json = out.path().join("report.json");
    let run = succeed(
        facegate()
            .args(["eval", "--protocol", "mfr2", "--quantised", "--json"])
            .arg(&json)
            .arg(shared().join("faces/mfr2")),
    );
    let r = json_file(&json);
    for key in ["1e-2", "1e-3", "1e-4"] {
        let tar = r["tar_at_far"][key].as_f64().expect("tar_at_far key");
        assert!((0.0..=1.0).contains(&tar));
    }
    assert_eq!(r["counts"]["enrolled"], 27);
    assert_eq!(r["counts"]["gallery_images"], 48);
    assert_eq!(r["counts"]["genuine"], 86);
    assert!(r["threshold"].as_f64().is_some());
    assert!(r["detection_failures"]["genuine"].as_u64().is_some());
    assert!(
        r["rank1"].as_f64().expect("rank1") >= 0.9,
        "rank-1 regressed: {}",
        r["rank1"]
    );
    assert_eq!(r["quantised"], true);
    // Fixed thresholds side by side: a closed-set classifier names every impostor, OpenCV's
    // 0.363 lets in at least as many as the door's stricter threshold.
    let fixed = &r["at_threshold"];
    assert_eq!(fixed["closed_set"]["far"], 1.0);
    let far = |k: &str| fixed[k]["far"].as_f64().expect("far");
    assert!(far("opencv_0.363") >= far("door"));
    assert!((fixed["opencv_0.363"]["threshold"].as_f64().expect("t") - 0.363).abs() < 1e-6);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("TAR"), "{stdout}");
}

#[test]
fn eval_on_a_missing_folder_says_what_is_wrong() {
    let run = facegate()
        .args(["eval", "/nonexistent/people"])
        .output()
        .expect("run facegate");
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("not a folder") && err.contains("sub-folder"),
        "{err}"
    );
}
