//! A size-rotated log file: `auth-server.log` is renamed to
//! `auth-server.log.1` (and older files shift up) once it would pass
//! `max_bytes`; at most `keep` rotated files are kept. It is written only by
//! the log writer thread, so it needs no locking of its own, and it receives
//! whole batches of lines, so it rotates between batches.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A log file that rotates by size.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: File,
    written: u64,
}

impl RotatingFile {
    /// Opens (appending to) `dir/name`.
    pub fn open(dir: &Path, name: &str, max_bytes: u64, keep: usize) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let path = dir.join(name);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let written = file.metadata()?.len();
        Ok(Self {
            path,
            max_bytes: max_bytes.max(1024),
            keep,
            file,
            written,
        })
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        // The live file may be gone: deleted by an operator freeing a full
        // disk, or renamed by an earlier rotation whose reopen failed. Then
        // there is nothing to shift, only a new file to open; insisting on
        // the rename would fail every write from here on.
        if !self.path.exists() {
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
        } else if self.keep == 0 {
            self.file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&self.path)?;
        } else {
            let _ = fs::remove_file(self.rotated(self.keep));
            for n in (1..self.keep).rev() {
                let from = self.rotated(n);
                if from.exists() {
                    fs::rename(&from, self.rotated(n + 1))?;
                }
            }
            fs::rename(&self.path, self.rotated(1))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
        }
        self.written = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written > 0 && self.written + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RotatingFile::open(dir.path(), "a.log", 1024, 2).unwrap();
        let line = [b'x'; 300];
        for i in 0..20u8 {
            let mut l = line;
            l[0] = b'a' + i;
            log.write_all(&l).unwrap();
        }
        log.flush().unwrap();
        let size = |p: &str| fs::metadata(dir.path().join(p)).map(|m| m.len());
        assert!(size("a.log").unwrap() <= 1024);
        assert!(size("a.log.1").unwrap() <= 1024);
        assert!(size("a.log.2").unwrap() <= 1024);
        assert!(size("a.log.3").is_err(), "only two rotated files are kept");
        let newest = fs::read(dir.path().join("a.log")).unwrap();
        assert_eq!(newest.last(), Some(&b'x'));
        assert!(
            newest.contains(&(b'a' + 19)),
            "the last line is in the live file"
        );
    }

    #[test]
    fn a_deleted_live_file_is_created_again_at_the_next_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RotatingFile::open(dir.path(), "a.log", 1024, 2).unwrap();
        let line = [b'x'; 300];
        log.write_all(&line).unwrap();
        fs::remove_file(dir.path().join("a.log")).unwrap();
        for i in 0..3u8 {
            let mut l = line;
            l[0] = b'a' + i;
            log.write_all(&l).unwrap();
        }
        let live = fs::read(dir.path().join("a.log")).unwrap();
        assert!(
            live.contains(&(b'a' + 2)),
            "the last line is in a new live file"
        );
        assert!(!dir.path().join("a.log.1").exists(), "nothing was rotated");
    }

    #[test]
    fn appends_to_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.log"), b"old\n").unwrap();
        let mut log = RotatingFile::open(dir.path(), "a.log", 1 << 20, 3).unwrap();
        log.write_all(b"new\n").unwrap();
        log.flush().unwrap();
        assert_eq!(fs::read(dir.path().join("a.log")).unwrap(), b"old\nnew\n");
    }
}
