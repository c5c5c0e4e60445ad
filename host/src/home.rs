//! The laptop's own facegate folder: `$XDG_CONFIG_HOME/facegate`, else `~/.config/facegate`.
//!
//! A household has one signing key. `facegate keygen` writes it here, and every command that
//! signs (`train`, `enrol`, `push`, `status`, `recover`) or checks a signature (`inspect`,
//! `predict`, `eval --bundle`) uses it when no `--key`/`--trust` is given, so the household path
//! needs no key flags. The same folder keeps the doors' pinned channel keys (`known_doors`) and
//! the last bundle version made with each key (`versions`), from which the next version is
//! offered, so a user never numbers bundles by hand (and never reuses one the door refuses).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ed25519_dalek::SigningKey;

/// Base name of the default key pair.
pub const KEY_NAME: &str = "facegate";

/// The facegate configuration folder.
pub fn config_dir() -> PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })
        .unwrap_or_else(|| PathBuf::from("."))
        .join("facegate")
}

/// Where `keygen` puts the secret key by default.
pub fn default_secret() -> PathBuf {
    config_dir().join(format!("{KEY_NAME}.key"))
}

/// Where `keygen` puts the public key by default.
pub fn default_public() -> PathBuf {
    config_dir().join(format!("{KEY_NAME}.pub"))
}

/// The secret key to sign with: `given`, else the default one, with an error that says how to
/// make it when there is none.
pub fn secret_key_path(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_owned());
    }
    let p = default_secret();
    if !p.exists() {
        bail!(
            "no --key given and no key at {}: run `facegate keygen` once (or pass --key FILE)",
            p.display()
        );
    }
    Ok(p)
}

/// The public keys to trust: `given`, else the default one.
pub fn trusted_paths(given: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let p = default_public();
    if !p.exists() {
        bail!(
            "no --trust given and no key at {}: pass the public key the bundle was signed with \
             (--trust NAME.pub), or run `facegate keygen` once",
            p.display()
        );
    }
    Ok(vec![p])
}

/// The version ledger: one line per key, "KEY_ID VERSION", the last bundle version it signed.
pub fn versions_path() -> PathBuf {
    config_dir().join("versions")
}

fn read_ledger(path: &Path) -> Vec<(String, u32)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (id, v) = l.split_once(' ')?;
            Some((id.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

fn key_hex(key: &SigningKey) -> String {
    hex::encode(facegate_models::bundle::key_id(&key.verifying_key()))
}

/// The version for a new bundle: `given`, else one past the last bundle this key signed (1 for
/// a new key). Says which it chose.
pub fn next_version(given: Option<u32>, key: &SigningKey) -> Result<u32> {
    if let Some(v) = given {
        return Ok(v);
    }
    let id = key_hex(key);
    let last = read_ledger(&versions_path())
        .into_iter()
        .filter(|(k, _)| *k == id)
        .map(|(_, v)| v)
        .max();
    let next = match last {
        Some(v) => v
            .checked_add(1)
            .context("the last version made with this key is u32::MAX; pass --version")?,
        None => 1,
    };
    eprintln!(
        "version {next} ({}; --version N to choose)",
        match last {
            Some(v) => format!("the last bundle signed with this key was {v}"),
            None => "the first bundle signed with this key".to_owned(),
        }
    );
    Ok(next)
}

/// Records that `key` signed a bundle of `version`.
pub fn record_version(key: &SigningKey, version: u32) -> Result<()> {
    let path = versions_path();
    let id = key_hex(key);
    let mut ledger = read_ledger(&path);
    match ledger.iter_mut().find(|(k, _)| *k == id) {
        Some(entry) => entry.1 = entry.1.max(version),
        None => ledger.push((id, version)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text: String = ledger.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
    // A temporary file of its own (two commands may record at once), renamed over the ledger.
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_lines_round_trip_and_junk_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("versions");
        std::fs::write(&p, "abcd 7\nnot a line\nef01 x\n0123 9\n").expect("write");
        assert_eq!(
            read_ledger(&p),
            vec![("abcd".to_owned(), 7), ("0123".to_owned(), 9)]
        );
    }
}
