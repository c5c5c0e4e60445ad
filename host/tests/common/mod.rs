//! Helpers shared by the CLI tests: where the shared photos are, running the real `facegate`
//! binary and insisting that it succeeded, and reading the JSON reports it writes.

#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The shared data folder (`$FACEGATE_SHARED`); panics naming the variable when missing.
pub fn shared() -> PathBuf {
    facegate_models::testdata::for_crate(env!("CARGO_MANIFEST_DIR"))
}

/// The `facegate` binary, ready for arguments.
pub fn facegate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_facegate"))
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
