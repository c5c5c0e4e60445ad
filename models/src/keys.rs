//! Key files, read the same way by the laptop and the door.
//!
//! `facegate keygen` writes the secret half as `NAME.key` (64 hex digits, mode 0600) and the
//! public half as `NAME.pub` (64 hex digits). Both are one line of hex, so a secret key given
//! where a public one belongs would parse as a (different) public key and fail later with a
//! puzzling "not trusted": a `.key` path is refused where a public key belongs, with an error
//! that names the mix-up.

use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

/// Why a key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("reading {what} {path}: {source}")]
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

fn read_hex32(path: &Path, what: &'static str) -> Result<[u8; 32], KeyError> {
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
    let bytes = read_hex32(path, "public key")?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Invalid {
        path: path.to_owned(),
    })
}

/// Reads a secret key file (`NAME.key`).
pub fn read_secret(path: &Path) -> Result<SigningKey, KeyError> {
    Ok(SigningKey::from_bytes(&read_hex32(path, "secret key")?))
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
        assert!(matches!(
            read_public(&dir.path().join("missing.pub")),
            Err(KeyError::Read { .. })
        ));
    }
}
