//! `facegate models adapt` through the real binary: a short training run on shared LFW photos
//! (the open-set protocol's people held out) writes the mask-adapted SFace and its manifest, the
//! loss falls, `facegate eval --embedder sface-masked` runs on it, and an altered file is
//! refused with a message that says how to fix it.

mod common;
use common::{facegate, json, shared, succeed};
use facegate_models::adapted::{FILE_INT8, MANIFEST};
use facegate_models::model_files::{self, default_dir};

/// A models folder with the pinned files (linked, not copied) and nothing adapted yet.
fn models_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for file in model_files::ALL {
        let src = file.path_in(&default_dir());
        assert!(
            src.exists(),
            "{} missing: run `facegate models fetch` first",
            src.display()
        );
        std::os::unix::fs::symlink(&src, file.path_in(dir.path())).expect("link");
    }
    dir
}

#[test]
fn adapt_trains_writes_and_is_used_by_eval() {
    let models = models_folder();
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
    let loss: Vec<f64> = m["loss"]
        .as_array()
        .expect("loss")
        .iter()
        .map(|l| l.as_f64().expect("number"))
        .collect();
    assert_eq!(loss.len(), 3);
    assert!(
        loss[2] < loss[0],
        "distillation loss did not fall: {loss:?}"
    );
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

    // A signed bundle carries the adapted int8 file, and verifies.
    let dir = out.path();
    let person = dir.join("people/AdrianDunbar");
    std::fs::create_dir_all(&person).expect("mkdir");
    std::fs::copy(
        shared().join("faces/mfr2/AdrianDunbar/AdrianDunbar_0002.png"),
        person.join("a.png"),
    )
    .expect("copy");
    let in_dir = |args: &[&str]| {
        succeed(
            facegate()
                .env("FACEGATE_MODELS", models.path())
                .current_dir(dir)
                .args(args),
        )
    };
    in_dir(&["keygen"]);
    in_dir(&[
        "enrol",
        "people",
        "--key",
        "facegate.key",
        "--version",
        "1",
        "-o",
        "door.fgb",
        "--embedder",
        "sface-masked",
    ]);
    let shown = in_dir(&["inspect", "door.fgb", "--trust", "facegate.pub"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains(FILE_INT8), "{shown}");

    // One byte changed: refused, and the message names the fix.
    let path = models.path().join(FILE_INT8);
    let mut bytes = std::fs::read(&path).expect("int8 file");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).expect("write");
    let run = facegate()
        .env("FACEGATE_MODELS", models.path())
        .args([
            "eval",
            "--protocol",
            "mfr2",
            "--embedder",
            "sface-masked",
            "--quantised",
        ])
        .arg(shared().join("faces/mfr2"))
        .output()
        .expect("run facegate");
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("models adapt") && err.contains("SHA-256"),
        "{err}"
    );
    let verify = facegate()
        .env("FACEGATE_MODELS", models.path())
        .args(["models", "verify"])
        .output()
        .expect("run facegate");
    assert!(!verify.status.success(), "verify passed an altered file");
}
