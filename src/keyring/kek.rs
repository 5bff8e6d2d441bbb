//! Where the key-encryption key comes from: `AUTH_SERVER_KEK`, else the file
//! named by `token.kek_file`, else (development only) `<key_dir>/kek`,
//! created with mode 0600 on first run. Errors name the source, never the
//! key.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::{KEK_VAR, Secret};
use crate::keys::sealed::Kek;

/// Name of the development KEK file in `token.key_dir`.
pub const DEV_KEK_FILE: &str = "kek";

/// Where the KEK in use came from (for the log: never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    /// `AUTH_SERVER_KEK`.
    Environment,
    /// A file: `token.kek_file`, or the development file.
    File(PathBuf),
    /// The development file, created now.
    Created(PathBuf),
}

impl std::fmt::Display for KekSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Environment => f.write_str(KEK_VAR),
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Created(path) => write!(f, "{} (created now)", path.display()),
        }
    }
}

/// Why no KEK could be had. Never carries the key or any part of it.
#[derive(Debug, thiserror::Error)]
pub enum KekError {
    /// None is configured and none may be created (production).
    #[error("no key-encryption key: set {KEK_VAR} or token.kek_file")]
    Missing,
    /// The value is not base64 of 32 bytes.
    #[error("the key-encryption key from {0} is not base64 of 32 random bytes")]
    Malformed(KekSource),
    /// The file could not be read or created.
    #[error("key-encryption key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (its message carries no file content).
        source: std::io::Error,
    },
}

/// The KEK to use: `env` (`AUTH_SERVER_KEK`), else `kek_file`, else, when
/// `dev_dir` is given (development mode), `<dev_dir>/kek`, created if absent.
pub fn resolve(
    env: Option<&Secret>,
    kek_file: &str,
    dev_dir: Option<&Path>,
) -> Result<(Kek, KekSource), KekError> {
    if let Some(value) = env {
        let source = KekSource::Environment;
        return Kek::from_base64(&value.0)
            .map(|kek| (kek, source.clone()))
            .map_err(|_| KekError::Malformed(source));
    }
    let (path, created) = if !kek_file.is_empty() {
        (PathBuf::from(kek_file), false)
    } else if let Some(dir) = dev_dir {
        let path = dir.join(DEV_KEK_FILE);
        let created = create_if_absent(&path)?;
        (path, created)
    } else {
        return Err(KekError::Missing);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| KekError::Io {
        path: path.clone(),
        source,
    })?;
    warn_if_readable_by_others(&path);
    let source = if created {
        KekSource::Created(path)
    } else {
        KekSource::File(path)
    };
    Kek::from_base64(&text)
        .map(|kek| (kek, source.clone()))
        .map_err(|_| KekError::Malformed(source))
}

/// Writes a new KEK to `path` unless a file is there; true if it wrote one.
/// The file appears whole or not at all (written aside, then linked), so an
/// instance starting at the same moment never reads half a key.
fn create_if_absent(path: &Path) -> Result<bool, KekError> {
    if path.exists() {
        return Ok(false);
    }
    let io = |source| KekError::Io {
        path: path.to_owned(),
        source,
    };
    let text = Kek::generate_base64().map_err(|_| io(std::io::Error::other("no randomness")))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let aside = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&aside)?;
        file.write_all(format!("{text}\n").as_bytes())?;
        file.sync_all()?;
        std::fs::hard_link(&aside, path)
    })();
    let _ = std::fs::remove_file(&aside);
    match written {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(e)),
    }
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            "the key-encryption key file is readable by other users; chmod 600 it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_wins_then_the_file_then_the_development_file() {
        let dir = tempfile::tempdir().unwrap();
        let env_text = Kek::generate_base64().unwrap();
        let file_text = Kek::generate_base64().unwrap();
        let file = dir.path().join("kek.b64");
        std::fs::write(&file, &file_text).unwrap();
        let file_name = file.display().to_string();
        let env = Secret(env_text.clone());

        let (kek, source) = resolve(Some(&env), &file_name, Some(dir.path())).unwrap();
        assert_eq!(source, KekSource::Environment);
        assert_eq!(kek.id(), Kek::from_base64(&env_text).unwrap().id());

        let (kek, source) = resolve(None, &file_name, Some(dir.path())).unwrap();
        assert_eq!(source, KekSource::File(file.clone()));
        assert_eq!(kek.id(), Kek::from_base64(&file_text).unwrap().id());

        assert!(matches!(resolve(None, "", None), Err(KekError::Missing)));
        assert!(!dir.path().join(DEV_KEK_FILE).exists(), "nothing created");
    }

    #[test]
    fn development_creates_a_private_kek_once() {
        let dir = tempfile::tempdir().unwrap();
        let (first, source) = resolve(None, "", Some(dir.path())).unwrap();
        let path = dir.path().join(DEV_KEK_FILE);
        assert_eq!(source, KekSource::Created(path.clone()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, source) = resolve(None, "", Some(dir.path())).unwrap();
        assert_eq!(source, KekSource::File(path));
        assert_eq!(first.id(), again.id());
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left behind");
    }

    #[test]
    fn a_bad_kek_is_named_by_its_source_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kek");
        std::fs::write(&file, "c2VjcmV0LWJ1dC1zaG9ydA==").unwrap();
        let err = resolve(None, &file.display().to_string(), None).unwrap_err();
        assert!(
            matches!(err, KekError::Malformed(KekSource::File(_))),
            "{err}"
        );
        assert!(!err.to_string().contains("c2VjcmV0"), "{err}");
        let env = Secret("c2VjcmV0LWJ1dC1zaG9ydA==".into());
        let err = resolve(Some(&env), "", None).unwrap_err();
        assert!(!err.to_string().contains("c2VjcmV0"), "{err}");
        let err = resolve(None, "/nonexistent/kek", None).unwrap_err();
        assert!(matches!(err, KekError::Io { .. }), "{err}");
    }
}
