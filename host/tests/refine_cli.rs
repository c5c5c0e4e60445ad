//! `facegate models refine` through the real binary: a short training run on shared LFW photos
//! (the open-set protocol's people held out) writes the landmark refiner and its manifest, it
//! places masked landmarks better than the detector on held-back crops, `--refine-landmarks`
//! evaluates with it and puts it into a signed bundle, and an altered file is refused with a
//! message that says how to fix it.

mod common;
use common::{
    enrol_one, facegate, falling_loss, json, pinned_models_folder, shared, succeed,
    tampering_is_refused,
};
use facegate_models::refine::{FILE, MANIFEST};

#[test]
fn refine_trains_writes_and_is_used_by_eval_and_enrol() {
    let models = pinned_models_folder();
    let lfw = shared().join("faces/lfw/images");
    let run = succeed(
        facegate()
            .env("FACEGATE_MODELS", models.path())
            .args(["models", "refine", "--hold-out-open-set"])
            .args(["--max-photos", "400", "--epochs", "5", "--faces"])
            .arg(&lfw),
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("landmark refiner"), "{stdout}");
    let m = json(&models.path().join(MANIFEST));
    let photos = m["photos"].as_u64().expect("photos");
    assert!((380..=400).contains(&photos), "photos {photos}");
    // The plain view and three masked copies, nearly always detected.
    assert!(m["crops"].as_u64().expect("crops") > 3 * photos);
    falling_loss(&m, 5);
    let [detector, refined] = [0, 1].map(|i| m["median_error_px"][i].as_f64().expect("error"));
    assert!(
        refined < detector,
        "refined landmarks ({refined} px) are no better than the detector's ({detector} px)"
    );
    // Set-up scripts re-run it: a valid refiner is kept as it is.
    let again = succeed(
        facegate()
            .env("FACEGATE_MODELS", models.path())
            .args(["models", "refine", "--if-missing", "--faces"])
            .arg(&lfw),
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains("already"));
    assert_eq!(json(&models.path().join(MANIFEST)), m);

    // The evaluation aligns on refined landmarks and says so in its report.
    let out = tempfile::tempdir().expect("tempdir");
    let report = out.path().join("mfr2.json");
    succeed(
        facegate()
            .env("FACEGATE_MODELS", models.path())
            .args(["eval", "--protocol", "mfr2", "--embedder", "sface"])
            // This folder holds the pinned networks and the new refiner only: one embedder.
            .args(["--refine-landmarks", "--no-mask-route", "--json"])
            .arg(&report)
            .arg(shared().join("faces/mfr2")),
    );
    let r = json(&report);
    assert_eq!(r["refiner_sha256"], m["sha256"]);
    let rank1 = r["rank1"].as_f64().expect("rank1");
    assert!(rank1 >= 0.85, "rank-1 {rank1}");

    // A bundle enrolled on refined landmarks carries the refiner for the door.
    let dir = out.path();
    let shown = enrol_one(
        models.path(),
        dir,
        &["--refine-landmarks", "--no-mask-route"],
    );
    assert!(
        shown.contains(&facegate_models::nnef::door_name(FILE)),
        "{shown}"
    );
    // The door's path: the bundle's photo is recognised through the bundle's refiner.
    let predicted = succeed(
        facegate()
            .env("FACEGATE_MODELS", models.path())
            .current_dir(dir)
            .args(["predict", "--bundle", "door.fgb", "--trust", "facegate.pub"])
            .arg("people/AdrianDunbar/a.png"),
    );
    let predicted = String::from_utf8_lossy(&predicted.stdout);
    assert!(predicted.contains("AdrianDunbar"), "{predicted}");

    // One byte changed: refused, and the message names the fix.
    tampering_is_refused(
        models.path(),
        FILE,
        &["--refine-landmarks"],
        "models refine",
    );
}
