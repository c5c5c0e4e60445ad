//! Where the shared photos live (the test, benchmark and demo data beside the checkout). One
//! definition for the demo, the tests and the benchmarks, so they all honour the same variable
//! and fail with the same instructions.

use std::path::{Path, PathBuf};

/// The environment variable that overrides the location.
pub const ENV: &str = "FACEGATE_SHARED";

/// `$FACEGATE_SHARED`, else `default`; an error naming the variable when the folder holds no
/// `faces/`.
pub fn shared_dir(default: &Path) -> Result<PathBuf, String> {
    let dir = std::env::var_os(ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| default.to_owned());
    if dir.join("faces").is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "shared test data not found at {}: set {ENV} to the folder that holds faces/ and reference/",
            dir.display()
        ))
    }
}

/// The shared folder as seen from a crate of this workspace (`CARGO_MANIFEST_DIR/../../shared`).
///
/// # Panics
/// When it is missing: tests must fail, not skip, without their data.
pub fn for_crate(manifest_dir: &str) -> PathBuf {
    shared_dir(&Path::new(manifest_dir).join("../../shared")).unwrap_or_else(|e| panic!("{e}"))
}
