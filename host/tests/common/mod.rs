//! Helpers shared by the CLI tests: where the shared photos are, running the real `facegate`
//! binary and insisting that it succeeded, and reading the JSON reports it writes.

#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The shared data folder (`$FACEGATE_SHARED`); panics naming the variable when missing.
pub fn shared() -> PathBuf {
    facegate_models::testdata::for_crate(env!("CARGO_MANIFEST_DIR"))
}

/// The `facegate` binary, ready for arguments. Its configuration folder (default keys, the
/// version ledger, pinned doors) is a scratch folder of this test process, never the real
/// `~/.config/facegate` of whoever runs the tests.
pub fn facegate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_facegate"));
    cmd.env(
        "XDG_CONFIG_HOME",
        std::env::temp_dir().join(format!("facegate-test-config-{}", std::process::id())),
    );
    cmd
}

/// Runs `cmd`, failing the test with its stderr unless it exits 0.
pub fn succeed(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run facegate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A JSON file written by the binary.
pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("report")).expect("json")
}

/// A models folder with the pinned files and the committed networks (linked, not copied), as
/// `models fetch` leaves it.
pub fn pinned_models_folder() -> tempfile::TempDir {
    use facegate_models::model_files::{self, default_dir};
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
    // The committed networks, which `models fetch` installs too.
    use facegate_models::{liveness, maskstate, refine};
    for name in [
        liveness::FILE,
        liveness::MANIFEST,
        liveness::DOOR_FILE,
        maskstate::FILE,
        maskstate::MANIFEST,
        refine::FILE,
        refine::MANIFEST,
    ] {
        std::os::unix::fs::symlink(default_dir().join(name), dir.path().join(name)).expect("link");
    }
    dir
}

/// `enrol people -o OUT --version VERSION` signed by `facegate.key` (as `keygen` writes it in
/// the working folder), then `extra`.
pub fn enrol_args<'a>(version: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "enrol",
        "people",
        "--key",
        "facegate.key",
        "--version",
        version,
        "-o",
        out,
    ];
    args.extend_from_slice(extra);
    args
}

/// Enrols one MFR2 person (one unmasked photo) into `dir/door.fgb`, signed by a fresh key in
/// `dir`, with the models in `models` and `extra` enrol arguments; returns what `inspect`
/// prints about the bundle.
pub fn enrol_one(models: &Path, dir: &Path, extra: &[&str]) -> String {
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
                .env("FACEGATE_MODELS", models)
                .current_dir(dir)
                .args(args),
        )
    };
    in_dir(&["keygen", "--dir", "."]);
    in_dir(&enrol_args("1", "door.fgb", extra));
    let shown = in_dir(&["inspect", "door.fgb", "--trust", "facegate.pub"]);
    String::from_utf8_lossy(&shown.stdout).into_owned()
}

/// The per-epoch `loss` list of a training manifest, checked to have `epochs` entries and to
/// end lower than it started.
pub fn falling_loss(manifest: &serde_json::Value, epochs: usize) -> Vec<f64> {
    let loss: Vec<f64> = manifest["loss"]
        .as_array()
        .expect("loss")
        .iter()
        .map(|l| l.as_f64().expect("number"))
        .collect();
    assert_eq!(loss.len(), epochs);
    assert!(
        loss[epochs - 1] < loss[0],
        "training loss did not fall: {loss:?}"
    );
    loss
}

/// Flips one byte of the trained file `name` in `models`, then checks that `facegate eval` with
/// `eval_args` on MFR2 refuses it with a message naming the SHA-256 check and `fix`, and that
/// `models verify` fails too.
pub fn tampering_is_refused(models: &Path, name: &str, eval_args: &[&str], fix: &str) {
    let path = models.join(name);
    let mut bytes = std::fs::read(&path).expect("trained file");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).expect("write");
    let run = facegate()
        .env("FACEGATE_MODELS", models)
        .args(["eval", "--protocol", "mfr2"])
        .args(eval_args)
        .arg(shared().join("faces/mfr2"))
        .output()
        .expect("run facegate");
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains(fix) && err.contains("SHA-256"), "{err}");
    let verify = facegate()
        .env("FACEGATE_MODELS", models)
        .args(["models", "verify"])
        .output()
        .expect("run facegate");
    assert!(!verify.status.success(), "verify passed an altered {name}");
}
