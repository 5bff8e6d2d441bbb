//! Online backup and restore of the embedded store through SQLite's backup
//! API. A backup copies every page inside one read transaction: in WAL mode
//! writers carry on meanwhile and the copy is the database as of one
//! commit. A restore copies a checked backup back page by page through
//! SQLite (never by file copy, which would race the write-ahead log).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{MIGRATIONS, SqliteStore, unavailable};
use crate::store::{StoreError, Unavailable};

/// What a backup or restore copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyReport {
    /// Database pages copied.
    pub pages: i32,
    /// Clients in the copy.
    pub clients: u64,
    /// Schema version of the copy.
    pub schema_version: u32,
}

/// Why a backup or restore was refused.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The destination exists; a backup never overwrites one.
    #[error("{0} exists; choose a new file")]
    Exists(PathBuf),
    /// The file is not a usable backup.
    #[error("{path} is not a usable backup: {reason}")]
    BadBackup {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A server is using the store.
    #[error("{0} instance(s) are serving from this store (a recent heartbeat); stop them first")]
    InUse(u32),
    /// Writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Copies every page of `from` into `to` in one step (one read
/// transaction), retrying for a while when the database is locked.
fn copy(from: &Connection, to: &mut Connection) -> Result<i32, StoreError> {
    let backup = Backup::new(from, to).map_err(unavailable)?;
    for _ in 0..COPY_ATTEMPTS {
        match backup.step(-1).map_err(unavailable)? {
            StepResult::Done => return Ok(backup.progress().pagecount),
            StepResult::More => {}
            _ => std::thread::sleep(COPY_RETRY),
        }
    }
    Err(Unavailable::Timeout(COPY_RETRY * COPY_ATTEMPTS).into())
}

/// How often a locked copy is retried, and how far apart.
const COPY_ATTEMPTS: u32 = 200;
const COPY_RETRY: Duration = Duration::from_millis(50);

/// Checks a copy: intact, and of a schema this binary knows.
fn inspect(conn: &Connection, path: &Path, pages: i32) -> Result<CopyReport, BackupError> {
    let bad = |reason: String| BackupError::BadBackup {
        path: path.to_owned(),
        reason,
    };
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| bad(e.to_string()))?;
    if check != "ok" {
        return Err(bad(format!("integrity check: {check}")));
    }
    let schema_version: u32 = conn
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
            r.get::<_, Option<u32>>(0)
        })
        .map_err(|e| bad(format!("no auth-server schema ({e})")))?
        .ok_or_else(|| bad("no auth-server schema".into()))?;
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if schema_version > known {
        return Err(bad(format!(
            "schema version {schema_version} is newer than this binary's {known}"
        )));
    }
    let clients: u64 = conn
        .query_row("SELECT COUNT(*) FROM clients", [], |r| r.get(0))
        .map_err(|e| bad(e.to_string()))?;
    Ok(CopyReport {
        pages,
        clients,
        schema_version,
    })
}

impl SqliteStore {
    /// Writes a consistent copy of the store to `dest` (a new file) while
    /// servers keep reading and writing. The copy is written beside `dest`,
    /// checked, synced and then renamed into place, so `dest` is either
    /// complete or absent.
    pub async fn backup_to(&self, dest: &Path) -> Result<CopyReport, BackupError> {
        if dest.exists() {
            return Err(BackupError::Exists(dest.to_owned()));
        }
        let dest = dest.to_owned();
        let partial = dest.with_extension("partial");
        let conn = std::sync::Arc::clone(&self.conn);
        let task = tokio::task::spawn_blocking(move || {
            if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
            }
            let _ = std::fs::remove_file(&partial);
            let mut out = Connection::open(&partial).map_err(|e| BackupError::Io {
                path: partial.clone(),
                source: std::io::Error::other(e),
            })?;
            let pages = {
                let source = conn
                    .lock()
                    .map_err(|_| StoreError::from(Unavailable::LockPoisoned))?;
                copy(&source, &mut out)?
            };
            // A single file: no write-ahead log beside it.
            out.execute_batch("PRAGMA journal_mode = DELETE;")
                .map_err(unavailable)?;
            let report = inspect(&out, &partial, pages)?;
            drop(out);
            std::fs::File::open(&partial)
                .and_then(|f| f.sync_all())
                .map_err(io(&partial))?;
            std::fs::rename(&partial, &dest).map_err(io(&dest))?;
            Ok::<_, BackupError>(report)
        });
        task.await
            .map_err(|e| StoreError::from(Unavailable::Task(e)))?
    }

    /// Replaces the store's contents with the backup `src`, after checking
    /// it. Refused while an instance's heartbeat in the store is younger
    /// than `live_after` (Unix seconds): stop the servers first.
    pub async fn restore_from(
        &self,
        src: &Path,
        live_after: i64,
    ) -> Result<CopyReport, BackupError> {
        let src = src.to_owned();
        let conn = std::sync::Arc::clone(&self.conn);
        let task = tokio::task::spawn_blocking(move || {
            let backup = Connection::open_with_flags(&src, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|e| BackupError::BadBackup {
                    path: src.clone(),
                    reason: e.to_string(),
                })?;
            inspect(&backup, &src, 0)?;
            let mut live = conn
                .lock()
                .map_err(|_| StoreError::from(Unavailable::LockPoisoned))?;
            let serving: Option<u32> = live
                .query_row(
                    "SELECT COUNT(*) FROM instances WHERE last_seen >= ?1",
                    [live_after],
                    |r| r.get(0),
                )
                .ok();
            if let Some(n) = serving.filter(|n| *n > 0) {
                return Err(BackupError::InUse(n));
            }
            let pages = copy(&backup, &mut live)?;
            // The instances that were serving when the backup was taken are
            // gone; the next start counts itself alone.
            live.execute("DELETE FROM instances", [])
                .map_err(unavailable)?;
            inspect(&live, &src, pages)
        });
        task.await
            .map_err(|e| StoreError::from(Unavailable::Task(e)))?
    }
}
