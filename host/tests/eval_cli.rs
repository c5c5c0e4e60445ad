//! The `facegate eval` contract, through the real binary on the shared MFR2 half: the JSON
//! keys other work relies on, the split sizes, and accuracy floors that catch regressions; and
//! that `eval` measures the gallery `enrol` builds.

mod common;
use common::{enrol_args, facegate, json as json_file, shared, succeed};

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

/// `eval` with no flag measures the door: on the same photos its gallery is the one `enrol`
/// signs into a bundle (the same templates on each path, the same threshold, the same offset
/// of the masked path), so its figures are the door's.
#[test]
fn eval_measures_the_gallery_enrol_builds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lfw = shared().join("faces/lfw/images");
    // Open set: people with six photos or more are enrolled from their first three (sorted);
    // the others are strangers.
    let chosen = [
        ("Al_Sharpton", true),
        ("Angela_Bassett", true),
        ("AJ_Cook", false),
        ("Aaron_Eckhart", false),
    ];
    for (name, enrolled) in chosen {
        let mut photos: Vec<_> = std::fs::read_dir(lfw.join(name))
            .expect("an LFW person of the shared half")
            .map(|e| e.expect("entry").path())
            .collect();
        photos.sort();
        for (k, photo) in photos.iter().enumerate() {
            let file = photo.file_name().expect("name");
            let copy = |folder: &str| {
                let to = dir.path().join(folder).join(name);
                std::fs::create_dir_all(&to).expect("mkdir");
                std::fs::copy(photo, to.join(file)).expect("copy");
            };
            copy("data");
            if enrolled && k < 3 {
                copy("people");
            }
        }
    }
    let in_dir = |args: &[&str]| succeed(facegate().current_dir(dir.path()).args(args));
    in_dir(&["eval", "data", "--protocol", "open-set", "--json", "r.json"]);
    in_dir(&["keygen", "--dir", "."]);
    in_dir(&enrol_args("1", "door.fgb", &[]));
    let shown = in_dir(&["inspect", "door.fgb", "--trust", "facegate.pub"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    let r = json_file(&dir.path().join("r.json"));

    // "threshold 0.4992: ...", "Al_Sharpton (6 templates), ...", "masked faces: ..., 24
    // templates, each person scored by ..., scores shifted by +0.0318 (...)"
    let number_after = |text: &str, label: &str| -> f64 {
        let at = text
            .find(label)
            .unwrap_or_else(|| panic!("{label:?} in {text}"))
            + label.len();
        let digits: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || "+-.".contains(*c))
            .collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("a number after {label:?} in {text}"))
    };
    let threshold = number_after(&shown, "threshold ");
    let door = r["at_threshold"]["door"]["threshold"]
        .as_f64()
        .expect("door");
    assert!(
        (door - threshold).abs() < 5e-5,
        "eval {door}, bundle {threshold}"
    );
    let main: f64 = ["Al_Sharpton (", "Angela_Bassett ("]
        .iter()
        .map(|p| number_after(&shown, p))
        .sum();
    assert_eq!(
        r["counts"]["gallery_templates"].as_f64(),
        Some(main),
        "{shown}"
    );
    // Three photos each, and their mirror images: the default gallery is not photos alone.
    assert!(main > 6.0, "{shown}");
    let route = &r["mask_route"];
    let masked = number_after(&shown, "on refined landmarks, ");
    assert_eq!(route["templates"].as_f64(), Some(masked), "{shown}");
    let offset = number_after(&shown, "scores shifted by ");
    let eval_offset = route["offset"].as_f64().expect("offset");
    assert!(
        (eval_offset - offset).abs() < 5e-5,
        "eval {eval_offset}, bundle {offset}"
    );
}
