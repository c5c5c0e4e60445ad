//! A bounded on-disk history of the recognition log, so a reader that connects late (or after
//! a reboot) can ask for what happened.
//!
//! Two append-only segments, `PATH` (current) and `PATH.old`: when the current one would pass
//! half the capacity it becomes the old one (a rename, atomic) and a new current starts. Disk
//! use stays under the capacity, the newest half is always complete, and a crash mid-append
//! leaves at most one torn frame, which the COBS reader skips like line noise.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The two-segment ring.
#[derive(Debug)]
pub struct RingFile {
    current: PathBuf,
    old: PathBuf,
    file: File,
    len: u64,
    half: u64,
}

impl RingFile {
    /// Opens (or creates) the ring at `path`, keeping what it already holds.
    pub fn open(path: &Path, capacity: u64) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut old = path.as_os_str().to_owned();
        old.push(".old");
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let mut len = file.metadata()?.len();
        let mut last = [0u8; 1];
        if len > 0 && {
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut last, len - 1)?;
            last[0] != 0
        } {
            // A frame torn by a crash: end it, so that it is skipped alone instead of merging
            // with the next record.
            file.write_all(&[0])?;
            len += 1;
        }
        Ok(Self {
            current: path.to_path_buf(),
            old: old.into(),
            file,
            len,
            half: (capacity / 2).max(1),
        })
    }

    /// Appends one encoded record.
    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.len > 0 && self.len + bytes.len() as u64 > self.half {
            std::fs::rename(&self.current, &self.old)?;
            self.file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&self.current)?;
            self.len = 0;
        }
        self.file.write_all(bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Everything kept, oldest first.
    pub fn history(&self) -> std::io::Result<Vec<u8>> {
        let mut out = match std::fs::read(&self.old) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        out.extend(std::fs::read(&self.current)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use facegate_models::logrecord::{Event, FrameReader, LogRecord};

    fn record(frame: u64) -> Vec<u8> {
        LogRecord::now(
            frame,
            1,
            Event::Stranger {
                best_score: 0.1,
                attempt: 1,
            },
        )
        .encode()
    }

    #[test]
    fn stays_bounded_keeps_the_newest_and_survives_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.ring");
        let cap = 4096;
        let mut ring = RingFile::open(&path, cap).expect("open");
        for i in 0..1000 {
            ring.append(&record(i)).expect("append");
        }
        drop(ring);
        let ring = RingFile::open(&path, cap).expect("reopen");
        let bytes = ring.history().expect("history");
        assert!(bytes.len() as u64 <= cap);
        let frames: Vec<u64> = FrameReader::new()
            .push(&bytes)
            .into_iter()
            .map(|r| r.expect("whole frames").frame)
            .collect();
        assert_eq!(frames.last(), Some(&999));
        assert!(frames.windows(2).all(|w| w[1] == w[0] + 1));
        assert!(frames.len() > 40, "kept only {}", frames.len());
    }

    #[test]
    fn a_torn_last_frame_is_skipped_by_the_reader() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.ring");
        let mut ring = RingFile::open(&path, 1 << 16).expect("open");
        ring.append(&record(1)).expect("append");
        let torn = record(2);
        ring.append(&torn[..torn.len() / 2]).expect("append");
        drop(ring);
        let mut ring = RingFile::open(&path, 1 << 16).expect("reopen");
        ring.append(&record(3)).expect("append");
        let results = FrameReader::new().push(&ring.history().expect("history"));
        let ok: Vec<u64> = results.iter().flatten().map(|r| r.frame).collect();
        assert_eq!(ok, vec![1, 3]);
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    }
}
