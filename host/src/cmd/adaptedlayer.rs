//! The committed mask-adapted SFace (`models/trained/sface_masked_layer.bin`): `models fetch`
//! puts the committed last layer back into the pinned SFace
//! ([`facegate_models::adapted::splice`]) instead of a fresh machine spending a quarter of an
//! hour in `models adapt`; `models pack-adapted` turns a layer trained here into that
//! committed form. The spliced files are deterministic, so the committed manifest pins both
//! their digests: a splice that came out different is refused, never installed.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use clap::Args;
use facegate_models::adapted::{self, LAYER_FILE, LAYER_MANIFEST, Manifest};
use facegate_models::model_files::{SFACE, sha256_hex};
use serde::{Deserialize, Serialize};

use crate::cmd::opts::ModelsDir;
use crate::files::write_atomically;

/// `models/trained/sface_masked_layer.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct LayerManifest {
    /// SHA-256 of the layer file.
    pub sha256: String,
    /// What it was trained on.
    pub data: String,
    /// The command that trained it (then `models pack-adapted`).
    pub command: String,
    /// Shuffling seed of the training.
    pub seed: u64,
    /// The adapted manifest the splice must reproduce: both files' digests and how the layer
    /// was trained (the refiner it was aligned with included).
    pub adapted: Manifest,
}

const BYTES: &[u8] = include_bytes!("../../../models/trained/sface_masked_layer.bin");
const JSON: &[u8] = include_bytes!("../../../models/trained/sface_masked_layer.json");

/// Installs the committed adapted SFace into `dir` (which must hold the pinned SFace) unless
/// it holds a valid one already: a layer its owner trained is kept.
pub fn install(dir: &Path) -> Result<()> {
    if adapted::read_verified(dir, false).is_ok() && adapted::read_verified(dir, true).is_ok() {
        return Ok(());
    }
    let m: LayerManifest =
        serde_json::from_slice(JSON).context("reading the committed sface_masked_layer.json")?;
    ensure!(
        sha256_hex(BYTES) == m.sha256,
        "the committed {LAYER_FILE} does not match its manifest"
    );
    let sface = SFACE.read_verified(dir)?;
    let (fp32, int8) = adapted::splice(&sface, BYTES)?;
    ensure!(
        sha256_hex(&fp32) == m.adapted.sha256 && sha256_hex(&int8) == m.adapted.sha256_int8,
        "the adapted SFace spliced from the committed layer is not the pinned one \
         (fp32 {}, int8 {})",
        sha256_hex(&fp32),
        sha256_hex(&int8)
    );
    // The manifest last: a crash before it leaves files that no manifest vouches for, which
    // the next fetch replaces.
    write_atomically(&dir.join(adapted::FILE), &fp32)?;
    write_atomically(&dir.join(adapted::FILE_INT8), &int8)?;
    write_atomically(
        &dir.join(adapted::MANIFEST),
        serde_json::to_string_pretty(&m.adapted)?.as_bytes(),
    )?;
    println!(
        "installed {:>9} B  {} (the committed layer in the pinned SFace)",
        int8.len(),
        adapted::FILE_INT8
    );
    Ok(())
}

/// `facegate models pack-adapted`: the adapted layer trained in the models folder, in the form
/// `models/trained/` commits. The models folder's adapted files are replaced by the splice of
/// the packed layer (the weight rounded to int8 per row, as the door's file already was), so
/// that what is measured here is what `models fetch` installs elsewhere.
#[derive(Debug, Args)]
pub struct PackAdaptedCmd {
    /// Where to write `sface_masked_layer.bin` and `.json` (the repository's
    /// `models/trained`).
    #[arg(long, value_name = "DIR")]
    pub out: std::path::PathBuf,
    /// The `models adapt` command that trained the layer, recorded in the manifest.
    #[arg(long, value_name = "COMMAND")]
    pub trained_with: String,
    /// Where the trained layer is.
    #[command(flatten)]
    pub models: ModelsDir,
}

/// Runs `models pack-adapted`.
pub fn pack(cmd: &PackAdaptedCmd) -> Result<()> {
    let dir = cmd.models.resolve();
    let mut manifest = adapted::read_manifest(&dir)?;
    let trained = adapted::read_verified(&dir, false)?;
    let packed = adapted::pack_layer(&adapted::last_layer(&trained)?);
    let sface = SFACE.read_verified(&dir)?;
    let (fp32, int8) = adapted::splice(&sface, &packed)?;
    manifest.sha256 = sha256_hex(&fp32);
    manifest.sha256_int8 = sha256_hex(&int8);
    // New networks: their door forms are written again below.
    manifest.door_sha256 = None;
    manifest.door_sha256_int8 = None;
    write_atomically(&dir.join(adapted::FILE), &fp32)?;
    write_atomically(&dir.join(adapted::FILE_INT8), &int8)?;
    let json = serde_json::to_string_pretty(&manifest)?;
    write_atomically(&dir.join(adapted::MANIFEST), json.as_bytes())?;
    adapted::install_door_forms(&dir)?;
    let layer = LayerManifest {
        sha256: sha256_hex(&packed),
        data: format!(
            "{} ({} photos of {} people, {} views)",
            manifest.faces, manifest.photos, manifest.people, manifest.views
        ),
        command: cmd.trained_with.clone(),
        seed: crate::train::adapt::Config::default().seed,
        adapted: manifest,
    };
    std::fs::create_dir_all(&cmd.out).with_context(|| format!("creating {}", cmd.out.display()))?;
    write_atomically(&cmd.out.join(LAYER_FILE), &packed)?;
    write_atomically(
        &cmd.out.join(LAYER_MANIFEST),
        (serde_json::to_string_pretty(&layer)? + "\n").as_bytes(),
    )?;
    println!(
        "packed the adapted layer ({} B, SHA-256 {}) into {}; {} now holds its splice",
        packed.len(),
        layer.sha256,
        cmd.out.display(),
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(fp32: &[u8], int8: &[u8]) -> Manifest {
        let mut m: LayerManifest = serde_json::from_slice(JSON).expect("committed json");
        m.adapted.sha256 = sha256_hex(fp32);
        m.adapted.sha256_int8 = sha256_hex(int8);
        m.adapted
    }

    #[test]
    fn the_committed_layer_matches_its_manifest() {
        let m: LayerManifest = serde_json::from_slice(JSON).expect("committed json");
        assert_eq!(sha256_hex(BYTES), m.sha256);
        assert_eq!(m.adapted.base_sha256, SFACE.sha256);
        assert!(
            m.command.starts_with("facegate models adapt"),
            "{}",
            m.command
        );
    }

    #[test]
    fn a_layer_trained_here_is_kept_and_a_broken_one_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (fp32, int8) = (b"trained here fp32".to_vec(), b"trained here int8".to_vec());
        std::fs::write(dir.path().join(adapted::FILE), &fp32).expect("write");
        std::fs::write(dir.path().join(adapted::FILE_INT8), &int8).expect("write");
        let json = serde_json::to_string(&manifest(&fp32, &int8)).expect("json");
        std::fs::write(dir.path().join(adapted::MANIFEST), json).expect("write");
        install(dir.path()).expect("a valid layer is kept");
        assert_eq!(
            std::fs::read(dir.path().join(adapted::FILE_INT8)).expect("read"),
            int8
        );
        // Altered: fetch must replace it, which needs the pinned SFace (absent here), and
        // says so rather than keeping the altered file.
        std::fs::write(dir.path().join(adapted::FILE_INT8), b"altered").expect("write");
        let err = format!("{:#}", install(dir.path()).expect_err("must not keep it"));
        assert!(err.contains("face_recognition_sface_2021dec"), "{err}");
    }
}
