//! The attack of issue #22 against the real binaries: enrol Replay-Attack's `client003` from
//! one frame of a live video, then hold a paper print of them in front of the simulated door.
//! Without the liveness check the door opens (the finding); with it (the door's default with a
//! camera) it stays shut, shows "please look at the camera" and logs NOT LIVE with the score,
//! while the live person, from another video, still gets in; so does a strict door (the
//! motion cue too), which also keeps the print shut when it is held up by hand.

use std::path::{Path, PathBuf};

use facegate_tests::{device_bin, facegate_bin, run_ok, shared_dir};

fn devel(species: &str, attempt: &str) -> PathBuf {
    shared_dir()
        .join("liveness/replay_attack/devel")
        .join(species)
        .join(attempt)
}

fn frames(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

fn run(bin: &Path, dir: &Path, args: &[&str]) -> String {
    String::from_utf8_lossy(&run_ok(bin, dir, args).stderr).into_owned()
}

/// Plays `from`'s frames at the door with the check `liveness`; returns the text log.
fn door(dir: &Path, name: &str, from: &Path, liveness: &str) -> String {
    door_with(dir, name, from, liveness, &[])
}

/// [`door`] with more `simulate` arguments.
fn door_with(dir: &Path, name: &str, from: &Path, liveness: &str, more: &[&str]) -> String {
    let camera = dir.join(name);
    std::fs::create_dir_all(&camera).expect("mkdir");
    for f in frames(from) {
        std::os::unix::fs::symlink(&f, camera.join(f.file_name().expect("name"))).expect("link");
    }
    let log = dir.join(format!("{name}.log"));
    let store = format!("store-{name}");
    let relay = format!("{name}.relay");
    let mut args = vec![
        "simulate",
        "--bundle",
        "door.fgb",
        "--trust",
        "facegate.pub",
        "--store",
        &store,
        "--camera-dir",
        name,
        "--log",
        log.to_str().expect("utf-8"),
        "--text-log",
        "--relay",
        &relay,
        "--liveness",
        liveness,
    ];
    args.extend_from_slice(more);
    run(&device_bin(), dir, &args);
    std::fs::read_to_string(log).expect("log")
}

#[test]
fn a_printed_photo_of_an_enrolled_person_does_not_open_the_door() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let live = devel(
        "real",
        "real__client003_session01_webcam_authenticate_adverse_1",
    );
    let person = dir.join("people/client003");
    std::fs::create_dir_all(&person).expect("mkdir");
    std::fs::copy(frames(&live)[0].clone(), person.join("enrol.jpg")).expect("copy");
    run(&facegate_bin(), dir, &["keygen", "--dir", "."]);
    run(
        &facegate_bin(),
        dir,
        &[
            "enrol",
            "people",
            "--key",
            "facegate.key",
            "--version",
            "1",
            "-o",
            "door.fgb",
        ],
    );

    let print = devel(
        "print",
        "fixed__attack_print_client003_session01_highdef_photo_adverse",
    );
    // The finding: without the check the print is recognised and the door opens.
    let open = door(dir, "print-off", &print, "off");
    assert!(
        open.contains("KNOWN \"client003\"") && open.contains("UNLOCKED"),
        "{open}"
    );
    // With it: never opened, refused as not live, with the score.
    let shut = door(dir, "print-on", &print, "passive");
    assert!(!shut.contains("UNLOCKED"), "{shut}");
    assert!(
        shut.contains("NOT LIVE looks like \"client003\"") && shut.contains("liveness="),
        "{shut}"
    );
    // The relay file records "high" when energised: it was for the print without the check,
    // never with it.
    let relay = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    assert!(relay("print-off.relay").contains("high"));
    assert!(
        !relay("print-on.relay").contains("high"),
        "{}",
        relay("print-on.relay")
    );
    // The live person, from another video, still gets in.
    let real = devel(
        "real",
        "real__client003_session01_webcam_authenticate_adverse_2",
    );
    let welcome = door(dir, "real-on", &real, "passive");
    assert!(welcome.contains("UNLOCKED"), "{welcome}");
    assert!(!welcome.contains("NOT LIVE"), "{welcome}");

    // A strict door (the motion cue too), frames half a second apart as they were recorded:
    // the live person still gets in (the cue's two pairs are in by the third frame)...
    let paced = ["--repeat", "1", "--fps", "2"];
    let strict = door_with(dir, "real-strict", &real, "strict", &paced);
    assert!(strict.contains("UNLOCKED"), "{strict}");
    assert!(!strict.contains("NOT LIVE"), "{strict}");
    // ...and the same print held up by hand stays shut.
    let held = devel(
        "print",
        "hand__attack_print_client003_session01_highdef_photo_adverse",
    );
    let shut = door_with(dir, "held-strict", &held, "strict", &paced);
    assert!(!shut.contains("UNLOCKED"), "{shut}");
    assert!(shut.contains("NOT LIVE"), "{shut}");
}
