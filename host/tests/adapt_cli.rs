//! `facegate models adapt` through the real binary: a short training run on shared LFW photos
//! (the open-set protocol's people held out) writes the mask-adapted SFace and its manifest, the
//! loss falls, `facegate eval --embedder sface-masked` runs on it, and an altered file is
//! refused with a message that says how to fix it.

mod common;
use common::{
    enrol_one, facegate, falling_loss, json, pinned_models_folder, shared, succeed,
    tampering_is_refused,
};
use facegate_models::adapted::{self, FILE_INT8, MANIFEST};

#[test]
fn adapt_trains_writes_and_is_used_by_eval() {
    let models = pinned_models_folder();
    let lfw = shared().join("faces/lfw/images");
    let run = succeed(
        facegate()
            .env("FACEGATE_MODELS", models.path())
            .args([
                "models",
                "adapt",
                "--hold-out-open-set",
                "--max-photos",
                "120",
            ])
            .args(["--epochs", "3", "--faces"])
            .arg(&lfw),
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("adapted SFace"), "{stdout}");
    let m = json(&models.path().join(MANIFEST));
    let photos = m["photos"].as_u64().expect("photos");
    assert!((100..=120).contains(&photos), "photos {photos}");
    // Two masked copies each, nearly always detected again.
    assert!(m["views"].as_u64().expect("views") > 2 * photos);
    falling_loss(&m, 3);
    // The stranger term is on by default, and its per-epoch value is recorded.
    assert_eq!(m["stranger"]["weight"].as_f64(), Some(100.0), "{m}");
    assert_eq!(m["stranger_loss"].as_array().map(Vec::len), Some(3), "{m}");
    // Set-up scripts re-run it: a valid model is kept as it is.
    let again = succeed(
        facegate()
            .env("FACEGATE_MODELS", models.path())
            .args(["models", "adapt", "--if-missing", "--faces"])
            .arg(&lfw),
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains("already"));
    assert_eq!(json(&models.path().join(MANIFEST)), m);
    let verified = succeed(
        facegate()
            .env("FACEGATE_MODELS", models.path())
            .args(["models", "verify"]),
    );
    assert!(String::from_utf8_lossy(&verified.stdout).contains(FILE_INT8));

    // The door's int8 file runs the MFR2 protocol (real masks) as SFace does.
    let out = tempfile::tempdir().expect("tempdir");
    let report = out.path().join("mfr2.json");
    succeed(
        facegate()
            .env("FACEGATE_MODELS", models.path())
            .args(["eval", "--protocol", "mfr2", "--embedder", "sface-masked"])
            .args(["--quantised", "--json"])
            .arg(&report)
            .arg(shared().join("faces/mfr2")),
    );
    let r = json(&report);
    assert_eq!(r["embedder"], "sface-masked");
    let rank1 = r["rank1"].as_f64().expect("rank1");
    assert!(rank1 >= 0.9, "rank-1 {rank1}");

    // A signed bundle carries the adapted int8 network's door form, and verifies.
    let dir = out.path();
    let shown = enrol_one(models.path(), dir, &["--embedder", "sface-masked"]);
    assert!(shown.contains(&adapted::door_file(true)), "{shown}");

    // One byte changed in what runs: refused, and the message names the fix.
    tampering_is_refused(
        models.path(),
        &adapted::door_file(true),
        &["--embedder", "sface-masked", "--quantised"],
        "models fetch",
    );
}

#[test]
fn if_missing_trains_again_when_the_stranger_term_differs() {
    let models = pinned_models_folder();
    let lfw = shared().join("faces/lfw/images");
    let adapt = |extra: &[&str]| {
        let run = succeed(
            facegate()
                .env("FACEGATE_MODELS", models.path())
                .args(["models", "adapt", "--if-missing", "--hold-out-open-set"])
                .args(["--max-photos", "12", "--epochs", "1"])
                .args(extra)
                .arg("--faces")
                .arg(&lfw),
        );
        String::from_utf8_lossy(&run.stdout).into_owned()
    };
    assert!(adapt(&[]).contains("stranger term"));
    assert!(adapt(&[]).contains("already"));
    // A model trained without the term (as before it existed) is not what setup asks for.
    let off = adapt(&["--stranger-weight", "0"]);
    assert!(
        off.contains("adapted SFace for masks") && !off.contains("stranger term"),
        "{off}"
    );
    let m = json(&models.path().join(MANIFEST));
    assert_eq!(m["stranger"]["weight"].as_f64(), Some(0.0), "{m}");
    assert_eq!(m["stranger_loss"].as_array().map(Vec::len), Some(0), "{m}");
    assert!(adapt(&["--stranger-weight", "0"]).contains("already"));
    assert!(!adapt(&[]).contains("already"));
}
