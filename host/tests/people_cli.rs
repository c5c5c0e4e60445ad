//! `facegate people` through the real binary, with the default key folder: a household renames
//! and removes people in a dataset and in a bundle without re-importing or re-enrolling; the
//! changed bundle is signed as the next version and still verifies and self-tests.

use std::path::Path;
use std::process::Output;

mod common;
use common::shared;

/// `facegate` in `dir`, its configuration folder `dir/config` (keys, versions).
fn facegate(dir: &Path, args: &[&str]) -> Output {
    common::facegate()
        .current_dir(dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .args(args)
        .output()
        .expect("run facegate")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = facegate(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn refused(dir: &Path, args: &[&str]) -> String {
    let out = facegate(dir, args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn people_are_renamed_and_removed_in_a_dataset_and_a_bundle() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    for name in ["AdrianDunbar", "BenAffleck", "ArifAlvi"] {
        let folder = dir.join("people").join(name);
        std::fs::create_dir_all(&folder).expect("mkdir");
        for n in [1, 2] {
            let file = format!("{name}_000{n}.png");
            std::fs::copy(
                shared().join("faces/mfr2").join(name).join(&file),
                folder.join(file),
            )
            .expect("copy");
        }
    }
    ok(dir, &["keygen"]);
    assert!(dir.join("config/facegate/facegate.key").exists());
    // A secret key where a public one belongs is named as such, whatever the file is called.
    std::fs::copy(
        dir.join("config/facegate/facegate.key"),
        dir.join("innocent.pub"),
    )
    .expect("copy");

    // Dataset: list, rename (crops move), remove (crops go).
    ok(dir, &["import", "people", "-d", "data"]);
    let listed = ok(dir, &["people", "list", "data"]);
    assert!(
        listed.contains("3 people") && listed.contains("BenAffleck: 2 faces"),
        "{listed}"
    );
    ok(dir, &["people", "rename", "data", "BenAffleck", "Ben"]);
    let listed = ok(dir, &["people", "list", "data"]);
    assert!(
        listed.contains("Ben: 2 faces") && !listed.contains("BenAffleck"),
        "{listed}"
    );
    assert!(
        dir.join("data/crops/Ben")
            .read_dir()
            .expect("crops")
            .count()
            == 2
    );
    ok(dir, &["people", "remove", "data", "ArifAlvi"]);
    let listed = ok(dir, &["people", "list", "data"]);
    assert!(
        listed.contains("2 people") && !listed.contains("ArifAlvi"),
        "{listed}"
    );
    assert!(!dir.join("data/crops/ArifAlvi").exists());
    let err = refused(dir, &["people", "remove", "data", "Nobody"]);
    assert!(err.contains("nobody is called \"Nobody\""), "{err}");
    // The dataset still trains-ready: a re-import of the same photos is "unchanged" for Ben.
    let again = ok(
        dir,
        &[
            "import",
            "people/BenAffleck",
            "--label",
            "Ben",
            "-d",
            "data",
        ],
    );
    assert!(again.contains("2 unchanged"), "{again}");

    // Bundle: versions come from the key's ledger; remove and rename re-sign as the next one.
    let made = ok(dir, &["enrol", "people", "-o", "door.fgb"]);
    assert!(made.contains("version 1"), "{made}");
    let shown = ok(dir, &["inspect", "door.fgb"]);
    assert!(
        shown.contains("self-test: a face-free pattern, and AdrianDunbar's"),
        "{shown}"
    );
    let removed = ok(dir, &["people", "remove", "door.fgb", "AdrianDunbar"]);
    assert!(removed.contains("version 2"), "{removed}");
    let shown = ok(dir, &["inspect", "door.fgb"]);
    assert!(
        shown.contains("model version 2")
            && shown.contains("2 people: ArifAlvi (4 templates), BenAffleck (4 templates)")
            && !shown.contains("AdrianDunbar"),
        "{shown}"
    );
    ok(
        dir,
        &[
            "people",
            "rename",
            "door.fgb",
            "BenAffleck",
            "Ben",
            "-o",
            "door-v3.fgb",
        ],
    );
    let shown = ok(dir, &["inspect", "door-v3.fgb"]);
    assert!(
        shown.contains("model version 3") && shown.contains("Ben (4 templates)"),
        "{shown}"
    );
    let err = refused(dir, &["people", "rename", "door-v3.fgb", "Ben", "ArifAlvi"]);
    assert!(err.contains("already in the bundle"), "{err}");
    ok(dir, &["people", "remove", "door-v3.fgb", "ArifAlvi"]);
    let err = refused(dir, &["people", "remove", "door-v3.fgb", "Ben"]);
    assert!(err.contains("only person"), "{err}");
    let err = refused(dir, &["inspect", "door-v3.fgb", "--trust", "innocent.pub"]);
    assert!(err.contains("is a secret key"), "{err}");

    // The edited bundle still recognises who stays, under the new name.
    let predicted = ok(
        dir,
        &[
            "predict",
            "--bundle",
            "door-v3.fgb",
            "people/BenAffleck/BenAffleck_0002.png",
        ],
    );
    assert!(predicted.contains(": Ben (cosine"), "{predicted}");
}
