//! Key files, read the same way by the laptop and the door.
//!
//! `facegate keygen` writes the secret half as `NAME.key` (64 hex digits, mode 0600) and the
//! public half as `NAME.pub` (64 hex digits). A secret key given where a public one belongs
//! would parse as a (different) public key and fail later with a puzzling "not trusted", so the
//! secret file starts with [`SECRET_TAG`] and a file with that tag, or named `.key`, is refused
//! where a public key belongs, with an error that names the mix-up. Secret files written before
//! the tag existed (bare hex) are still read as secret keys.

use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

/// Why a key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("reading {what} {path}")]
    Read {
        /// "public key" or "secret key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not 64 hex digits.
    #[error("{path} is not a facegate {what} (64 hex digits, as `facegate keygen` writes)")]
    Format {
        /// "public key" or "secret key".
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The bytes are not a valid Ed25519 public key.
    #[error("{path} is not a valid Ed25519 public key")]
    Invalid {
        /// The file.
        path: PathBuf,
    },
    /// A secret key where a public key belongs.
    #[error(
        "{path} is a secret key (NAME.key): give the door its public half, NAME.pub, and keep \
         the secret one on the laptop"
    )]
    SecretGivenAsPublic {
        /// The file.
        path: PathBuf,
    },
}

/// The first word of a secret key file.
pub const SECRET_TAG: &str = "facegate-secret-key";

/// The text of a secret key file.
pub fn secret_text(key: &SigningKey) -> String {
    format!("{SECRET_TAG} {}", hex::encode(key.to_bytes()))
}

fn read_text(path: &Path, what: &'static str) -> Result<String, KeyError> {
    // A key file is one short line: never read more than a few hundred bytes of whatever the
    // path names.
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(512).read_to_string(&mut text))
        .map_err(|source| KeyError::Read {
            what,
            path: path.to_owned(),
            source,
        })?;
    Ok(text)
}

fn hex32(text: &str, path: &Path, what: &'static str) -> Result<[u8; 32], KeyError> {
    hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| KeyError::Format {
            what,
            path: path.to_owned(),
        })
}

/// Reads a public key file (`NAME.pub`).
pub fn read_public(path: &Path) -> Result<VerifyingKey, KeyError> {
    if path.extension().is_some_and(|e| e == "key") {
        return Err(KeyError::SecretGivenAsPublic {
            path: path.to_owned(),
        });
    }
    let text = read_text(path, "public key")?;
    if text.trim_start().starts_with(SECRET_TAG) {
        return Err(KeyError::SecretGivenAsPublic {
            path: path.to_owned(),
        });
    }
    let bytes = hex32(&text, path, "public key")?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Invalid {
        path: path.to_owned(),
    })
}

/// Reads a secret key file (`NAME.key`).
pub fn read_secret(path: &Path) -> Result<SigningKey, KeyError> {
    let text = read_text(path, "secret key")?;
    let hex = text.trim_start();
    let hex = hex.strip_prefix(SECRET_TAG).unwrap_or(hex);
    Ok(SigningKey::from_bytes(&hex32(hex, path, "secret key")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_mix_ups_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SigningKey::from_bytes(&[5; 32]);
        let (sk, pk) = (dir.path().join("a.key"), dir.path().join("a.pub"));
        std::fs::write(&sk, hex::encode(key.to_bytes()) + "\n").expect("write");
        std::fs::write(&pk, hex::encode(key.verifying_key().to_bytes())).expect("write");
        assert_eq!(read_secret(&sk).expect("secret").to_bytes(), key.to_bytes());
        assert_eq!(read_public(&pk).expect("public"), key.verifying_key());
        let err = read_public(&sk).expect_err("secret as public").to_string();
        assert!(err.contains("secret key"), "{err}");
        std::fs::write(&pk, "not hex").expect("write");
        assert!(matches!(read_public(&pk), Err(KeyError::Format { .. })));
        // A tagged secret key under any name is named as one, and read back as a secret.
        let renamed = dir.path().join("renamed.pub");
        std::fs::write(&renamed, secret_text(&key) + "\n").expect("write");
        assert!(matches!(
            read_public(&renamed),
            Err(KeyError::SecretGivenAsPublic { .. })
        ));
        assert_eq!(
            read_secret(&renamed).expect("tagged").to_bytes(),
            key.to_bytes()
        );
        assert!(matches!(
            read_public(&dir.path().join("missing.pub")),
            Err(KeyError::Read { .. })
        ));
    }
}
