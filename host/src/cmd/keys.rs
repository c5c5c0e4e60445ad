//! `facegate keygen` and reading key files. Keys are stored as hex text: the secret in
//! NAME.key (mode 0600, never overwritten), the public half in NAME.pub for the door's config.

use clap::Args;
use std::path::PathBuf;

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use ed25519_dalek::{SigningKey, VerifyingKey};
use facegate_models::bundle::{Bundle, key_id, verify};

/// Runs `facegate keygen`.
pub fn keygen(cmd: KeygenCmd) -> Result<()> {
    let dir = cmd.dir.unwrap_or_else(crate::home::config_dir);
    let secret_path = dir.join(format!("{}.key", cmd.name));
    let public_path = dir.join(format!("{}.pub", cmd.name));
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| anyhow::anyhow!("the system random source failed: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    write_new(
        &secret_path,
        &facegate_models::keys::secret_text(&key),
        0o600,
    )?;
    write_new(
        &public_path,
        &hex::encode(key.verifying_key().to_bytes()),
        0o644,
    )?;
    println!(
        "wrote {} (keep it secret) and {} (key id {})",
        secret_path.display(),
        public_path.display(),
        hex::encode(key_id(&key.verifying_key()))
    );
    Ok(())
}

/// Creates `path` with `text`, refusing to replace an existing file.
fn write_new(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| {
            format!(
                "creating {} (an existing key is never overwritten)",
                path.display()
            )
        })?;
    writeln!(f, "{text}").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Reads a secret key file.
pub fn read_secret(path: &Path) -> Result<SigningKey> {
    Ok(facegate_models::keys::read_secret(path)?)
}

/// Reads a public key file.
pub fn read_public(path: &Path) -> Result<VerifyingKey> {
    Ok(facegate_models::keys::read_public(path)?)
}

/// Reads and verifies a bundle against the trusted public key files, as the door would.
pub fn open_bundle(path: &Path, trust: &[std::path::PathBuf]) -> Result<Bundle> {
    let trusted = trust
        .iter()
        .map(|p| read_public(p))
        .collect::<Result<Vec<_>>>()?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    verify(&bytes, &trusted).with_context(|| format!("{} refused", path.display()))
}

// --- command-line arguments ---

/// `facegate keygen [--dir DIR]`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate keygen                              # ~/.config/facegate/facegate.key + .pub
  facegate keygen --dir keys --name office")]
pub struct KeygenCmd {
    /// Folder for NAME.key (secret, mode 0600) and NAME.pub (give this one to the door)
    /// [default: ~/.config/facegate, where the other commands look].
    #[arg(long, alias = "out")]
    pub dir: Option<PathBuf>,
    /// Base name of the two files.
    #[arg(long, default_value = "facegate")]
    pub name: String,
}
