//! The signing key file of a data directory from before keys were stored
//! (`<key_dir>/signing-eddsa.pem`, `-es256`, `-rs256`). It is imported once
//! so tokens it signed stay valid, then no longer read. It is never deleted:
//! a rollback to the previous binary signs with it again.

use std::path::{Path, PathBuf};

use crate::keys::{Algorithm, KeyError, SigningKey, pem_to_pkcs8};

/// Why the file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("signing key file {path}: {reason}")]
pub struct LegacyKeyError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it (never its content).
    pub reason: String,
}

/// A key read from the file.
pub struct LegacyKey {
    /// The file it came from.
    pub path: PathBuf,
    /// The parsed key.
    pub key: SigningKey,
    /// Its PKCS#8 DER, for sealing into the store.
    pub pkcs8: Vec<u8>,
}

/// The file name the previous binary used for `alg`, if it had one.
pub fn file_name(alg: Algorithm) -> Option<&'static str> {
    match alg {
        Algorithm::EdDSA => Some("signing-eddsa.pem"),
        Algorithm::ES256 => Some("signing-es256.pem"),
        Algorithm::RS256 => Some("signing-rs256.pem"),
        Algorithm::HS256 => None,
    }
}

/// Reads the file for `alg` in `dir`; `Ok(None)` when there is none.
pub fn read(dir: &Path, alg: Algorithm) -> Result<Option<LegacyKey>, LegacyKeyError> {
    let Some(name) = file_name(alg) else {
        return Ok(None);
    };
    let path = dir.join(name);
    let fail = |reason: String| LegacyKeyError {
        path: path.clone(),
        reason,
    };
    let pem = match std::fs::read(&path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e.to_string())),
    };
    let pkcs8 = pem_to_pkcs8(&pem).map_err(|e| fail(e.to_string()))?;
    let key = SigningKey::from_pkcs8(alg, &pkcs8)
        .map_err(|_| fail(KeyError::WrongKind(alg.name()).to_string()))?;
    Ok(Some(LegacyKey { path, key, pkcs8 }))
}
