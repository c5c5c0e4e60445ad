//! Helpers shared by facegate's end-to-end tests: where the shared test data and the model
//! files are. Missing data is a failure with instructions, never a silent skip.

use std::path::PathBuf;

pub mod broker;
pub mod mqttwatch;

/// The shared data folder: `$FACEGATE_SHARED`, default `../shared` beside the checkout.
///
/// # Panics
/// When the folder does not exist, naming the variable to set.
pub fn shared_dir() -> PathBuf {
    facegate_models::testdata::for_crate(env!("CARGO_MANIFEST_DIR"))
}

/// The models folder (as `facegate` resolves it).
///
/// # Panics
/// When the pinned files are not all there, saying how to fetch them.
pub fn models_dir() -> PathBuf {
    let dir = facegate_models::model_files::default_dir();
    for f in facegate_models::model_files::ALL {
        if let Err(e) = f.read_verified(&dir) {
            panic!("{e} (tests use FACEGATE_MODELS or the default models folder)");
        }
    }
    dir
}

/// Path of the built `facegate` binary (cargo builds it for integration tests of this crate).
pub fn facegate_bin() -> PathBuf {
    let mut p = std::env::current_exe().expect("test binary path");
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    p.join("facegate")
}

/// A scratch configuration folder for the `facegate` runs of this test process (set as
/// `XDG_CONFIG_HOME`), so tests never write the real `~/.config/facegate` (default keys, the
/// version ledger, pinned doors).
pub fn test_config_home() -> PathBuf {
    std::env::temp_dir().join(format!("facegate-test-config-{}", std::process::id()))
}

/// Runs `bin` (`facegate` or `facegate-device`) in `dir` with the models folder and this test
/// process's configuration folder, and insists that it succeeded; returns its output.
///
/// # Panics
/// When it cannot start or exits non-zero (with its stderr).
pub fn run_ok(bin: &std::path::Path, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(bin)
        .current_dir(dir)
        .env("FACEGATE_MODELS", models_dir())
        .env("XDG_CONFIG_HOME", test_config_home())
        .args(args)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Path of the built `facegate-device` binary.
pub fn device_bin() -> PathBuf {
    facegate_bin().with_file_name("facegate-device")
}
