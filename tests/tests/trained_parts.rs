//! The small networks the project trains and commits (`models/trained/`), as `facegate models
//! fetch` installs them, measured through the real CLI on the shared data: the figures the docs
//! report must hold, and the reports carry the fields the issues ask for.

use std::process::Command;

use facegate_tests::{facegate_bin, models_dir, shared_dir};

fn eval(args: &[&str], json: &std::path::Path) -> serde_json::Value {
    let out = Command::new(facegate_bin())
        .env("FACEGATE_MODELS", models_dir())
        .arg("eval")
        .args(args)
        .arg("--json")
        .arg(json)
        .output()
        .expect("run facegate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(json).expect("report")).expect("json")
}

#[test]
fn the_liveness_network_keeps_its_devel_figures() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let devel = shared_dir().join("liveness/replay_attack/devel");
    let r = eval(
        &[devel.to_str().expect("utf-8"), "--protocol", "liveness"],
        &tmp.path().join("r.json"),
    );
    // docs/LIVENESS.md: BPCER 0.00%, worst APCER 3.33% on 60 attempts per species (one
    // attempt of slack each: a rebuilt tract may round a logit differently).
    assert!(r["bpcer"].as_f64().expect("bpcer") <= 0.017, "{r}");
    assert!(r["apcer_max"].as_f64().expect("apcer_max") <= 0.05, "{r}");
    for species in [
        "print",
        "mobile_photo",
        "mobile_video",
        "highdef_photo",
        "highdef_video",
    ] {
        assert!(r["apcer"][species].is_number(), "{species}: {r}");
        assert_eq!(r["attempts"][species], 60, "{r}");
    }
    assert_eq!(r["attempts"]["real"], 60);
    assert!(r["threshold"].is_number());
    assert!(tmp.path().join("r.det.png").exists());
    // Passive, as the door ships: the motion cue scores but refuses nothing.
    assert!(r["motion_threshold"].is_null(), "{r}");
    assert_eq!(r["motion_refused"]["print"], 0, "{r}");
}

#[test]
fn a_strict_door_refuses_most_hand_held_attacks_by_motion() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let devel = shared_dir().join("liveness/replay_attack/devel");
    let r = eval(
        &[
            devel.to_str().expect("utf-8"),
            "--protocol",
            "liveness",
            "--strict",
        ],
        &tmp.path().join("s.json"),
    );
    // docs/LIVENESS.md, "Motion": BPCER 5.00%, worst APCER 1.67%; the cue alone refuses 24 of
    // the 30 hand-held prints and none of the 30 on a stand. One attempt of slack.
    assert_eq!(r["motion_threshold"], 0.0, "{r}");
    assert!(r["bpcer"].as_f64().expect("bpcer") <= 0.067, "{r}");
    assert!(r["apcer_max"].as_f64().expect("apcer_max") <= 0.034, "{r}");
    let moved = r["motion_refused"]["print"].as_u64().expect("print");
    assert!((23..=30).contains(&moved), "{r}");
    let fixed_print_moved = r["scored"]
        .as_array()
        .expect("scored")
        .iter()
        .filter(|s| s["species"] == "print")
        .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with("fixed__")))
        .filter(|s| s["motion_refused"] == true)
        .count();
    assert_eq!(fixed_print_moved, 0, "{r}");
}

/// The development split's live and print attempts as a camera in a hall with 60% of the light
/// would capture them (`host/examples/liveness_capture.rs`, "darker"), written losslessly into
/// `dir/<species>/<attempt>/`.
fn darker_devel(dir: &std::path::Path) {
    let devel = shared_dir().join("liveness/replay_attack/devel");
    for species in ["real", "print"] {
        for attempt in std::fs::read_dir(devel.join(species)).expect("the shared devel split") {
            let attempt = attempt.expect("entry").path();
            let out = dir.join(species).join(attempt.file_name().expect("name"));
            std::fs::create_dir_all(&out).expect("mkdir");
            for frame in std::fs::read_dir(&attempt).expect("attempt") {
                let frame = frame.expect("entry").path();
                let mut img = image::open(&frame).expect("frame").to_rgb8();
                img.pixels_mut()
                    .flat_map(|p| p.0.iter_mut())
                    .for_each(|c| *c = (f32::from(*c) * 0.6).round() as u8);
                let name = frame.with_extension("png");
                img.save(out.join(name.file_name().expect("name")))
                    .expect("write");
            }
        }
    }
}

#[test]
fn the_liveness_network_refuses_prints_in_a_darker_hall() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dark = tmp.path().join("darker");
    darker_devel(&dark);
    let r = eval(
        &[dark.to_str().expect("utf-8"), "--protocol", "liveness"],
        &tmp.path().join("d.json"),
    );
    // docs/LIVENESS.md, "A second opinion": 10.00% of prints and 3.33% of live attempts
    // refused in error at 60% of the light (the network without its brightness-levelled second
    // opinion let 93% of these prints in). Slack for this test's own decoding and one attempt.
    assert_eq!(r["attempts"]["print"], 60, "{r}");
    assert!(r["apcer"]["print"].as_f64().expect("print") <= 0.15, "{r}");
    assert!(r["bpcer"].as_f64().expect("bpcer") <= 0.05, "{r}");
}

#[test]
fn the_mask_state_classifier_keeps_its_mfr2_figures() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mfr2 = shared_dir().join("faces/mfr2");
    let r = eval(
        &[mfr2.to_str().expect("utf-8"), "--protocol", "mask-state"],
        &tmp.path().join("m.json"),
    );
    // docs/MASKS.md: 99.25% of 134 faces (47 of 48 bare, 86 of 86 masked); one face of
    // slack on each side. The goal is 98%.
    assert_eq!(r["faces"], 134, "{r}");
    assert!(r["accuracy"].as_f64().expect("all") >= 0.98, "{r}");
    assert!(r["accuracy_bare"].as_f64().expect("bare") >= 0.95, "{r}");
    assert!(
        r["accuracy_masked"].as_f64().expect("masked") >= 0.98,
        "{r}"
    );
    assert!(r["ms_per_face"].as_f64().expect("ms") > 0.0);
}

#[test]
fn the_mask_state_classifier_calls_grey_bare_faces_bare() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let att = shared_dir().join("faces/att_faces");
    let r = eval(
        &[att.to_str().expect("utf-8"), "--protocol", "mask-state"],
        &tmp.path().join("a.json"),
    );
    // docs/MASKS.md: AT&T's 400 grey bare faces (people and a camera it never trained on),
    // 98.00% called bare; one face of slack.
    assert_eq!(r["faces"], 400, "{r}");
    assert!(r["accuracy_bare"].as_f64().expect("bare") >= 0.977, "{r}");
}

#[test]
fn the_committed_landmark_refiner_keeps_its_mfr2_gain() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mfr2 = shared_dir().join("faces/mfr2");
    let mfr2 = mfr2.to_str().expect("utf-8");
    // EdgeFace for every face, with and without the refiner (the door's default routes
    // masked faces elsewhere: tests/tests/masks_by_default.rs).
    let plain = eval(
        &[mfr2, "--protocol", "mfr2", "--no-mask-route"],
        &tmp.path().join("p.json"),
    );
    let refined = eval(
        &[
            mfr2,
            "--protocol",
            "mfr2",
            "--refine-landmarks",
            "--no-mask-route",
        ],
        &tmp.path().join("r.json"),
    );
    let tar = |r: &serde_json::Value| r["tar_at_far"]["1e-2"].as_f64().expect("tar");
    // docs/MASKS.md: EdgeFace int8 on MFR2's real masks, TAR @ 1e-2 86.05% -> 89.53% with the
    // committed refiner (one probe is 1.16 points).
    assert!(tar(&refined) >= 0.88, "{refined}");
    assert!(tar(&refined) > tar(&plain), "{plain} {refined}");
}

#[test]
fn the_committed_mask_adapted_sface_keeps_its_mfr2_figure() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mfr2 = shared_dir().join("faces/mfr2");
    let r = eval(
        &[
            mfr2.to_str().expect("utf-8"),
            "--protocol",
            "mfr2",
            "--embedder",
            "sface-masked",
            "--refine-landmarks",
        ],
        &tmp.path().join("s.json"),
    );
    // docs/RESULTS.md: the committed layer, int8, refined landmarks: TAR @ 1e-2 93.02% (80 of
    // 86 masked probes); one probe of slack.
    let tar = r["tar_at_far"]["1e-2"].as_f64().expect("tar");
    assert!(tar >= 0.918, "{r}");
}
