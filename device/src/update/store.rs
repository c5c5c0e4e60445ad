//! Where the door keeps its model bundles: `active.fgb` and `previous.fgb` in one folder.
//!
//! Installing writes the new bundle to a temporary file and fsyncs it, copies the current one
//! to `previous.fgb` the same way, then renames the new file over `active.fgb` and fsyncs the
//! folder. A rename is atomic, so whenever power fails `active.fgb` is a whole bundle, old or
//! new; at start-up the door falls back to `previous.fgb` if `active.fgb` does not verify. A
//! full disk fails the temporary write and leaves both files as they were.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where bundles are kept: the real one is [`FileStore`]; [`MemoryStore`] can fail on demand.
pub trait ModelStore: Send + Sync {
    /// The active bundle's bytes, if any.
    fn active(&self) -> Option<Vec<u8>>;
    /// The previous bundle's bytes, if any.
    fn previous(&self) -> Option<Vec<u8>>;
    /// Makes `bytes` the active bundle, keeping the old one as previous; on error nothing
    /// changes.
    fn install(&self, bytes: &[u8]) -> std::io::Result<()>;
}

/// (active, previous) bundle bytes.
type Slots = (Option<Vec<u8>>, Option<Vec<u8>>);

/// An in-memory store for tests, which can be told to fail every write as a full disk does.
#[derive(Debug, Default)]
pub struct MemoryStore {
    slots: std::sync::Mutex<Slots>,
    full: std::sync::atomic::AtomicBool,
}

impl MemoryStore {
    /// Makes every later install fail with "no space left on device" (or succeed again).
    pub fn set_full(&self, full: bool) {
        self.full.store(full, std::sync::atomic::Ordering::Relaxed);
    }
}

impl ModelStore for MemoryStore {
    fn active(&self) -> Option<Vec<u8>> {
        self.slots.lock().ok()?.0.clone()
    }

    fn previous(&self) -> Option<Vec<u8>> {
        self.slots.lock().ok()?.1.clone()
    }

    fn install(&self, bytes: &[u8]) -> std::io::Result<()> {
        if self.full.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
        }
        let mut slots = self
            .slots
            .lock()
            .map_err(|_| std::io::Error::other("store lock poisoned"))?;
        let old = slots.0.replace(bytes.to_vec());
        if old.is_some() {
            slots.1 = old;
        }
        Ok(())
    }
}

impl ModelStore for FileStore {
    fn active(&self) -> Option<Vec<u8>> {
        FileStore::active(self)
    }

    fn previous(&self) -> Option<Vec<u8>> {
        FileStore::previous(self)
    }

    fn install(&self, bytes: &[u8]) -> std::io::Result<()> {
        FileStore::install(self, bytes)
    }
}

/// The bundle store on disk.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// Opens (creating) the store folder, removing temporary files left by an install that a
    /// crash or power cut interrupted (only one process uses a store, and it is just starting).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".staging-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// Path of the active bundle.
    pub fn active_path(&self) -> PathBuf {
        self.dir.join("active.fgb")
    }

    /// Path of the previous bundle.
    pub fn previous_path(&self) -> PathBuf {
        self.dir.join("previous.fgb")
    }

    /// The active bundle's bytes, if any.
    pub fn active(&self) -> Option<Vec<u8>> {
        std::fs::read(self.active_path()).ok()
    }

    /// The previous bundle's bytes, if any.
    pub fn previous(&self) -> Option<Vec<u8>> {
        std::fs::read(self.previous_path()).ok()
    }

    /// Makes `bytes` the active bundle, keeping the old one as previous. On error the staged
    /// copy is removed: a disk that fills while the old bundle is copied aside must not also
    /// lose the space the new one took.
    pub fn install(&self, bytes: &[u8]) -> std::io::Result<()> {
        let staged = self.write_temp(bytes)?;
        let result = (|| {
            if let Some(old) = self.active() {
                let prev = self.write_temp(&old)?;
                std::fs::rename(&prev, self.previous_path())?;
            }
            std::fs::rename(&staged, self.active_path())
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&staged);
            return Err(e);
        }
        File::open(&self.dir)?.sync_all()
    }

    fn write_temp(&self, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let path = self
            .dir
            .join(format!(".staging-{}-{}", std::process::id(), rand_suffix()));
        let result = (|| {
            let mut f = File::create(&path)?;
            f.write_all(bytes)?;
            f.sync_all()
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(path)
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staging_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .expect("dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".staging"))
            .count()
    }

    #[test]
    fn install_keeps_the_previous_bundle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::open(dir.path()).expect("open");
        assert_eq!(store.active(), None);
        store.install(b"one").expect("install");
        store.install(b"two").expect("install");
        assert_eq!(store.active().as_deref(), Some(&b"two"[..]));
        assert_eq!(store.previous().as_deref(), Some(&b"one"[..]));
        assert_eq!(staging_files(dir.path()), 0);
    }

    /// A store whose writes fail (here: its folder is gone) reports the error and leaves the
    /// real store untouched.
    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::open(dir.path()).expect("open");
        store.install(b"good").expect("install");
        let full = FileStore {
            dir: dir.path().join("vanished"),
        };
        assert!(full.install(b"new").is_err());
        assert_eq!(store.active().as_deref(), Some(&b"good"[..]));
    }

    /// Set in the child process of [`writes_that_fail_midway_change_nothing`].
    const CHILD: &str = "FACEGATE_STORE_FSIZE_CHILD";

    /// The real store on a real file system whose writes stop partway: the test runs itself
    /// again under a file-size limit (`ulimit -f`, with SIGXFSZ ignored so that the write
    /// fails instead of killing the process), which cuts every write at 2 KiB as a full disk
    /// does. Both ways an install can meet it: the new bundle does not fit, or it fits and
    /// copying the old one aside does not. Each time the old bundles stay exactly as they
    /// were and no staging file is left behind.
    #[test]
    fn writes_that_fail_midway_change_nothing() {
        let big = vec![0xB5u8; 16 * 1024];
        let small = vec![0x5Au8; 1024];
        if let Ok(dir) = std::env::var(CHILD) {
            let store = FileStore::open(Path::new(&dir)).expect("open");
            let err = store.install(&big).expect_err("does not fit");
            assert!(err.raw_os_error() == Some(27), "EFBIG expected: {err}");
            let err = store
                .install(&small)
                .expect_err("the old one does not fit aside");
            assert!(err.raw_os_error() == Some(27), "EFBIG expected: {err}");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::open(dir.path()).expect("open");
        let old: Vec<u8> = (0..12 * 1024).map(|i| (i % 251) as u8).collect();
        store.install(b"older").expect("install");
        store.install(&old).expect("install");
        let exe = std::env::current_exe().expect("test binary");
        // Output through pipes: the limit would also cut a log file the test output goes to.
        let out = std::process::Command::new("sh")
            .args(["-c", "trap '' XFSZ; ulimit -f 4; exec \"$0\" \"$@\""])
            .arg(exe)
            .args([
                "update::store::tests::writes_that_fail_midway_change_nothing",
                "--exact",
                "--test-threads=1",
            ])
            .env(CHILD, dir.path())
            .output()
            .expect("run the limited child");
        assert!(
            out.status.success(),
            "the child's checks failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(log.contains("1 passed"), "the child ran no test: {log}");
        assert_eq!(store.active().as_deref(), Some(&old[..]));
        assert_eq!(store.previous().as_deref(), Some(&b"older"[..]));
        assert_eq!(staging_files(dir.path()), 0);
    }
}
