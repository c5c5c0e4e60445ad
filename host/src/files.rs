//! File helpers every command and library module shares: atomic writes (a crash never leaves
//! half a model, bundle or manifest), PNG encoding, the wall clock for creation times.

use std::path::Path;

use anyhow::{Context, Result};

/// Writes via a temporary file in the same directory and a rename, so a crash never leaves a
/// half-written model that a later start would trip over.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    // Readable by others as any file a tool writes (tempfile's 0600 default is for secrets;
    // the only secret, the key, is written by `keygen` with 0600 itself).
    let mut tmp = tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

/// An image as PNG bytes.
pub fn png_bytes(img: &image::RgbImage) -> Result<Vec<u8>> {
    let mut b = std::io::Cursor::new(Vec::new());
    img.write_to(&mut b, image::ImageFormat::Png)
        .context("encoding a PNG")?;
    Ok(b.into_inner())
}

/// Writes an image as a PNG file (atomically).
pub fn write_png(path: &Path, img: &image::RgbImage) -> Result<()> {
    write_atomically(path, &png_bytes(img)?)
}

/// Now, in ms since the Unix epoch (a bundle's creation time).
pub fn now_ms() -> u64 {
    std::time::UNIX_EPOCH
        .elapsed()
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Writes a trained network and its manifest (pretty JSON) into `dir`, each atomically: the
/// network first, so a crash between the two leaves a manifest that does not match (refused
/// at load), never a manifest vouching for a half-written network.
pub fn write_model(
    dir: &Path,
    file: &str,
    bytes: &[u8],
    manifest_file: &str,
    manifest: &impl serde::Serialize,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_atomically(&dir.join(file), bytes)?;
    write_atomically(
        &dir.join(manifest_file),
        (serde_json::to_string_pretty(manifest)? + "\n").as_bytes(),
    )
}
