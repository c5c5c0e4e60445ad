//! The README's household path, run as written. Every fenced block in README.md preceded by
//! `<!-- household -->` is run by bash (`set -euo pipefail`), in order, in one folder laid out
//! as the README's examples assume, filled from the shared photos: a household of three LFW
//! people (`family/ann`, `family/bob`, `family/cid`), more of ann, a "video" of ben, strangers,
//! test photos, a group photo and the door camera's frames. HOME is a fresh folder, so the keys
//! land where the README says. If the README changes its commands this test runs the new ones;
//! if it loses its marked blocks, the test fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use facegate_tests::{facegate_bin, models_dir, shared_dir};

const MARK: &str = "<!-- household -->";

/// The marked `sh` blocks of the README, in order.
fn household_blocks() -> Vec<String> {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(&readme).expect("README.md");
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() != MARK {
            continue;
        }
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```sh"),
            "{MARK} must precede a ```sh block"
        );
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        blocks.push(body.join("\n"));
    }
    blocks
}

/// LFW photos of `person`, sorted, `range` of them.
fn lfw(person: &str, range: std::ops::Range<usize>) -> Vec<PathBuf> {
    let dir = shared_dir().join("faces/lfw/images").join(person);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files[range].to_vec()
}

/// LFW people with exactly one photo, sorted, `n` of them from `skip`.
fn lfw_singles(skip: usize, n: usize) -> Vec<PathBuf> {
    let root = shared_dir().join("faces/lfw/images");
    let mut people: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("lfw")
        .map(|e| e.expect("entry").path())
        .filter(|p| std::fs::read_dir(p).is_ok_and(|d| d.count() == 1))
        .collect();
    people.sort();
    people.into_iter().skip(skip).step_by(7).take(n).collect()
}

fn link_all(files: &[PathBuf], into: &Path) {
    std::fs::create_dir_all(into).expect("mkdir");
    for f in files {
        let name = f.file_name().expect("name");
        std::os::unix::fs::symlink(f, into.join(name)).expect("symlink");
    }
}

fn link_people(people: &[PathBuf], into: &Path) {
    std::fs::create_dir_all(into).expect("mkdir");
    for p in people {
        std::os::unix::fs::symlink(p, into.join(p.file_name().expect("name"))).expect("symlink");
    }
}

/// The folder the README's commands expect.
fn lay_out(dir: &Path) {
    let household = [
        ("ann", "Ariel_Sharon"),
        ("bob", "Hugo_Chavez"),
        ("cid", "Junichiro_Koizumi"),
    ];
    for (name, who) in household {
        link_all(&lfw(who, 0..8), &dir.join("family").join(name));
        link_all(&lfw(who, 12..16), &dir.join("test-photos").join(name));
    }
    link_all(&lfw("Ariel_Sharon", 8..12), &dir.join("more-of-ann"));
    link_all(&lfw("Jean_Chretien", 0..12), &dir.join("ben-video"));
    link_all(&lfw("Jean_Chretien", 12..16), &dir.join("test-photos/ben"));
    link_people(&lfw_singles(0, 60), &dir.join("strangers"));
    link_people(&lfw_singles(3, 30), &dir.join("other-strangers"));
    std::os::unix::fs::symlink(
        shared_dir().join("faces/deepface/couple.jpg"),
        dir.join("group.jpg"),
    )
    .expect("symlink");
    // The door camera: ann (enrolled in both bundles), then a stranger.
    let camera = dir.join("door-camera");
    std::fs::create_dir_all(&camera).expect("mkdir");
    let mut frames = lfw("Ariel_Sharon", 16..18);
    frames.extend(lfw_singles(5, 2).iter().flat_map(|p| {
        std::fs::read_dir(p)
            .expect("dir")
            .map(|e| e.expect("e").path())
    }));
    for (i, f) in frames.iter().enumerate() {
        std::os::unix::fs::symlink(f, camera.join(format!("{i:02}.jpg"))).expect("symlink");
    }
}

#[test]
fn the_readme_household_path_runs_as_written() {
    let blocks = household_blocks();
    assert_eq!(
        blocks.len(),
        3,
        "README.md should mark three household blocks with {MARK}"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("house");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    lay_out(&dir);
    let bin_dir = facegate_bin().parent().expect("bin dir").to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut transcript = String::new();
    for block in &blocks {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("set -euo pipefail\n{block}"))
            .current_dir(&dir)
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .env("PATH", &path)
            .env("FACEGATE_MODELS", models_dir())
            .output()
            .expect("bash");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "README block failed:\n{block}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
        transcript.push_str(&stdout);
        transcript.push_str(&stderr);
    }
    eprintln!("{transcript}"); // shown with --nocapture
    let has = |s: &str| assert!(transcript.contains(s), "no {s:?} in:\n{transcript}");
    // Keys where the README says, and each bundle the next version for the key.
    assert!(home.join(".config/facegate/facegate.key").exists());
    has("enrolled 3 people");
    has("version 1 (the first bundle signed with this key");
    has("version 2 (the last bundle signed with this key was 1");
    // inspect names the signer, templates and the threshold's origin.
    has("signature ok: signed by key");
    has("threshold 0.4992: the embedder's calibrated default");
    // The trained door knows ben too, checked with charts and an annotated photo.
    has("trained 4 people on");
    for f in [
        "report/confusion.png",
        "report/det.png",
        "report/report.html",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    assert!(dir.join("annotated/group.png").exists());
    has("ben: ");
    // The door took the push, says so in its status, and logged ann by name.
    has("ok: version 2 active (4 people)");
    has("model version 2");
    has("KNOWN \"ann\"");
    if let Some(keep) = std::env::var_os("FACEGATE_KEEP_HOUSEHOLD") {
        // To look at the charts and pictures: copy the folder out.
        let _ = Command::new("cp").arg("-r").arg(&dir).arg(keep).status();
    }
}
