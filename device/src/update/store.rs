//! Where the door keeps its model bundles: `active.fgb`, `previous.fgb` and `state.json` in one
//! folder.
//!
//! Installing writes the new bundle to a temporary file and fsyncs it, copies the current one
//! to `previous.fgb` the same way (only if it was marked good: an unverified or corrupt file
//! never reaches the fallback slot), then renames the new file over `active.fgb`, records it as
//! good and raises the version floor in `state.json` (written the same atomic way), and fsyncs
//! the folder. A rename is atomic, so whenever power fails `active.fgb` is a whole bundle, old
//! or new. A full disk fails the temporary write and leaves every file as it was.
//!
//! The state is what makes rollbacks visible and replays impossible: the **floor** is the
//! highest version this door ever confirmed (no update goes to or below it, whatever the
//! bundle files say after a crash or a tampering), and **good** lists the SHA-256 of the
//! bundles that passed verification and their self-test here, the only ones the door may fall
//! back to.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use facegate_models::model_files::sha256_hex;
use serde::{Deserialize, Serialize};

/// What the store remembers beside the bundles.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreState {
    /// Highest version ever confirmed good on this door.
    pub floor: u32,
    /// SHA-256 (hex) of the bundles marked good (the active one and the fallback).
    pub good: Vec<String>,
    /// The floor was set by a recovery: until the next install it alone counts, not the
    /// (runaway) version still running.
    #[serde(default)]
    pub recovered: bool,
}

impl StoreState {
    /// Whether `bytes` are a bundle marked good.
    pub fn is_good(&self, bytes: &[u8]) -> bool {
        self.is_good_digest(&sha256_hex(bytes))
    }

    /// Whether the bundle with SHA-256 (hex) `sha256` is marked good.
    pub fn is_good_digest(&self, sha256: &str) -> bool {
        self.good.iter().any(|g| g == sha256)
    }

    /// Marks the bundle with SHA-256 (hex) `sha256` good and raises the floor to `version`.
    fn mark_good(&mut self, sha256: &str, version: u32) {
        if !self.is_good_digest(sha256) {
            self.good.push(sha256.to_owned());
        }
        self.floor = self.floor.max(version);
    }
}

/// A verified bundle written to the store (synced) but not installed yet. The door stages a
/// bundle before it builds the model from it, so it need not hold the bundle's bytes while
/// it builds: building is the largest transient of the door's memory. Dropped without being
/// installed (the build or its self-test failed), the staged copy is removed.
#[derive(Debug)]
pub struct Staged {
    sha256: String,
    place: Place,
}

#[derive(Debug)]
enum Place {
    /// A temporary file in a [`FileStore`]'s folder (`None` once it became the active one).
    File(Option<PathBuf>),
    /// The bytes, in a [`MemoryStore`].
    Memory(Vec<u8>),
}

impl Staged {
    /// SHA-256 (hex) of the staged bundle.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Place::File(Some(path)) = &self.place {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn not_staged_here() -> std::io::Error {
    std::io::Error::other("the bundle was staged in another store")
}

/// Where bundles are kept: the real one is [`FileStore`]; [`MemoryStore`] can fail on demand.
pub trait ModelStore: Send + Sync {
    /// The active bundle's bytes, if any.
    fn active(&self) -> Option<Vec<u8>>;
    /// The previous bundle's bytes, if any.
    fn previous(&self) -> Option<Vec<u8>>;
    /// The floor and the good marks (defaults when none were written yet).
    fn state(&self) -> StoreState;
    /// Writes `bytes` (a verified bundle) beside the slots without installing it; nothing
    /// changes for the door until [`ModelStore::install_staged`].
    fn stage(&self, bytes: Vec<u8>) -> std::io::Result<Staged>;
    /// Makes a staged bundle (self-tested here, at `version`) the active one, marked good; the
    /// old active one becomes the fallback only if it was marked good. On error nothing
    /// changes (and the staged copy is removed).
    fn install_staged(&self, staged: Staged, version: u32) -> std::io::Result<()>;
    /// [`ModelStore::stage`] and [`ModelStore::install_staged`] in one step.
    fn install(&self, bytes: &[u8], version: u32) -> std::io::Result<()> {
        let staged = self.stage(bytes.to_vec())?;
        self.install_staged(staged, version)
    }
    /// Marks the active bundle (SHA-256 hex `sha256`) good at `version` (it passed its checks
    /// at start-up).
    fn mark_good(&self, sha256: &str, version: u32) -> std::io::Result<()>;
    /// Sets the floor to exactly `floor` (the local recovery command; never the network).
    fn reset_floor(&self, floor: u32) -> std::io::Result<()>;
}

/// The state after installing `new` over `old`: the floor raised, `new` good, and `old` kept
/// good only when it is the fallback now.
fn state_after_install(
    state: &StoreState,
    new_sha256: &str,
    kept: Option<&[u8]>,
    version: u32,
) -> StoreState {
    let mut good = vec![new_sha256.to_owned()];
    if let Some(old) = kept {
        good.push(sha256_hex(old));
    }
    StoreState {
        floor: state.floor.max(version),
        good,
        recovered: false,
    }
}

/// (active, previous) bundle bytes.
type Slots = (Option<Vec<u8>>, Option<Vec<u8>>);

/// An in-memory store for tests, which can be told to fail every write as a full disk does.
#[derive(Debug, Default)]
pub struct MemoryStore {
    slots: std::sync::Mutex<(Slots, StoreState)>,
    full: std::sync::atomic::AtomicBool,
}

impl MemoryStore {
    /// Makes every later install fail with "no space left on device" (or succeed again).
    pub fn set_full(&self, full: bool) {
        self.full.store(full, std::sync::atomic::Ordering::Relaxed);
    }

    fn check_space(&self) -> std::io::Result<()> {
        if self.full.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
        }
        Ok(())
    }

    fn lock(&self) -> std::io::Result<std::sync::MutexGuard<'_, (Slots, StoreState)>> {
        self.slots
            .lock()
            .map_err(|_| std::io::Error::other("store lock poisoned"))
    }
}

impl ModelStore for MemoryStore {
    fn active(&self) -> Option<Vec<u8>> {
        self.slots.lock().ok()?.0.0.clone()
    }

    fn previous(&self) -> Option<Vec<u8>> {
        self.slots.lock().ok()?.0.1.clone()
    }

    fn state(&self) -> StoreState {
        self.slots.lock().map(|s| s.1.clone()).unwrap_or_default()
    }

    fn stage(&self, bytes: Vec<u8>) -> std::io::Result<Staged> {
        self.check_space()?;
        Ok(Staged {
            sha256: sha256_hex(&bytes),
            place: Place::Memory(bytes),
        })
    }

    fn install_staged(&self, mut staged: Staged, version: u32) -> std::io::Result<()> {
        self.check_space()?;
        let Place::Memory(bytes) = &mut staged.place else {
            return Err(not_staged_here());
        };
        let bytes = std::mem::take(bytes);
        let mut guard = self.lock()?;
        let (slots, state) = &mut *guard;
        let old = slots.0.take().filter(|old| state.is_good(old));
        *state = state_after_install(state, &staged.sha256, old.as_deref(), version);
        slots.0 = Some(bytes);
        if old.is_some() {
            slots.1 = old;
        }
        Ok(())
    }

    fn mark_good(&self, sha256: &str, version: u32) -> std::io::Result<()> {
        self.check_space()?;
        self.lock()?.1.mark_good(sha256, version);
        Ok(())
    }

    fn reset_floor(&self, floor: u32) -> std::io::Result<()> {
        let mut guard = self.lock()?;
        guard.1.floor = floor;
        guard.1.recovered = true;
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

    fn state(&self) -> StoreState {
        FileStore::state(self)
    }

    fn stage(&self, bytes: Vec<u8>) -> std::io::Result<Staged> {
        FileStore::stage(self, bytes)
    }

    fn install_staged(&self, staged: Staged, version: u32) -> std::io::Result<()> {
        FileStore::install_staged(self, staged, version)
    }

    fn mark_good(&self, sha256: &str, version: u32) -> std::io::Result<()> {
        let mut state = self.state();
        state.mark_good(sha256, version);
        self.write_state(&state)?;
        File::open(&self.dir)?.sync_all()
    }

    fn reset_floor(&self, floor: u32) -> std::io::Result<()> {
        let mut state = self.state();
        state.floor = floor;
        state.recovered = true;
        self.write_state(&state)?;
        File::open(&self.dir)?.sync_all()
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

    /// Path of the floor and good marks.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// The active bundle's bytes, if any.
    pub fn active(&self) -> Option<Vec<u8>> {
        std::fs::read(self.active_path()).ok()
    }

    /// The previous bundle's bytes, if any.
    pub fn previous(&self) -> Option<Vec<u8>> {
        std::fs::read(self.previous_path()).ok()
    }

    /// The floor and good marks. A missing file is a new store. A file that does not parse
    /// (it is only ever replaced by an atomic rename, so this means tampering or a failing
    /// card) marks nothing good but keeps the highest floor it can still read, so a damaged
    /// state can cost the fallback, never open the door to a replay.
    pub fn state(&self) -> StoreState {
        let Ok(text) = std::fs::read(self.state_path()) else {
            return StoreState::default();
        };
        serde_json::from_slice(&text).unwrap_or_else(|_| StoreState {
            floor: u32::MAX,
            good: Vec::new(),
            recovered: false,
        })
    }

    /// Writes `bytes` to a temporary file in the folder (synced), not yet installed.
    pub fn stage(&self, bytes: Vec<u8>) -> std::io::Result<Staged> {
        let sha256 = sha256_hex(&bytes);
        let path = self.write_temp(&bytes)?;
        Ok(Staged {
            sha256,
            place: Place::File(Some(path)),
        })
    }

    /// Makes a staged bundle the active one (marked good at `version`), keeping the old one
    /// as previous if it was marked good. On error the staged copy is removed (when `staged`
    /// drops): a disk that fills while the old bundle is copied aside must not also lose the
    /// space the new one took.
    pub fn install_staged(&self, mut staged: Staged, version: u32) -> std::io::Result<()> {
        let Place::File(Some(path)) = &staged.place else {
            return Err(not_staged_here());
        };
        let path = path.clone();
        let state = self.state();
        let old = self.active().filter(|old| state.is_good(old));
        if let Some(old) = &old {
            let prev = self.write_temp(old)?;
            std::fs::rename(&prev, self.previous_path()).inspect_err(|_| {
                let _ = std::fs::remove_file(&prev);
            })?;
        }
        std::fs::rename(&path, self.active_path())?;
        staged.place = Place::File(None);
        self.write_state(&state_after_install(
            &state,
            &staged.sha256,
            old.as_deref(),
            version,
        ))?;
        File::open(&self.dir)?.sync_all()
    }

    fn write_state(&self, state: &StoreState) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
        let tmp = self.write_temp(&text)?;
        std::fs::rename(&tmp, self.state_path()).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
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
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        use std::time::{SystemTime, UNIX_EPOCH};
        return SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    }
    u64::from_le_bytes(b)
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
        store.install(b"one", 1).expect("install");
        store.install(b"two", 2).expect("install");
        assert_eq!(store.active().as_deref(), Some(&b"two"[..]));
        assert_eq!(store.previous().as_deref(), Some(&b"one"[..]));
        assert_eq!(staging_files(dir.path()), 0);
        assert_eq!(store.state().floor, 2);
        assert!(store.state().is_good(b"one") && store.state().is_good(b"two"));
    }

    /// Finding: a later good push copied a corrupt `active.fgb` into `previous.fgb`. Only a
    /// bundle marked good reaches the fallback slot.
    #[test]
    fn an_unverified_active_file_never_becomes_the_fallback() {
        let memory = MemoryStore::default();
        memory.install(b"v1", 1).expect("install");
        memory.install(b"v2", 2).expect("install");
        memory.slots.lock().expect("lock").0.0 = Some(b"v2 with a flipped bit".to_vec());
        memory.install(b"v3", 3).expect("install");
        assert_eq!(memory.previous().as_deref(), Some(&b"v1"[..]));
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::open(dir.path()).expect("open");
        store.install(b"v1", 1).expect("install");
        store.install(b"v2", 2).expect("install");
        std::fs::write(store.active_path(), b"v2 with a flipped bit").expect("corrupt");
        store.install(b"v3", 3).expect("install");
        assert_eq!(
            store.previous().as_deref(),
            Some(&b"v1"[..]),
            "corrupt file kept aside"
        );
        assert_eq!(store.state().floor, 3);
        assert!(!store.state().is_good(b"v2 with a flipped bit"));
    }

    /// A staged bundle is on disk (so the door can let go of its bytes while it builds the
    /// model) but changes nothing until installed; dropped (its build or self-test failed),
    /// it leaves no file behind. Installed, it is the active bundle and marked good.
    #[test]
    fn a_staged_bundle_changes_nothing_until_installed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::open(dir.path()).expect("open");
        store.install(b"v1", 1).expect("install");
        let staged = store.stage(b"v2".to_vec()).expect("stage");
        assert_eq!(staged.sha256(), sha256_hex(b"v2"));
        assert_eq!(staging_files(dir.path()), 1);
        assert_eq!(store.active().as_deref(), Some(&b"v1"[..]));
        assert_eq!(store.state().floor, 1);
        drop(staged);
        assert_eq!(
            staging_files(dir.path()),
            0,
            "a failed build leaves nothing"
        );
        assert_eq!(store.active().as_deref(), Some(&b"v1"[..]));

        let staged = store.stage(b"v2".to_vec()).expect("stage");
        store.install_staged(staged, 2).expect("install");
        assert_eq!(staging_files(dir.path()), 0);
        assert_eq!(store.active().as_deref(), Some(&b"v2"[..]));
        assert_eq!(store.previous().as_deref(), Some(&b"v1"[..]));
        assert!(store.state().is_good(b"v2") && store.state().is_good(b"v1"));
        assert_eq!(store.state().floor, 2);

        // A bundle staged in one store cannot be installed in another.
        let memory = MemoryStore::default();
        let elsewhere = memory.stage(b"v3".to_vec()).expect("stage");
        assert!(store.install_staged(elsewhere, 3).is_err());
        assert_eq!(store.active().as_deref(), Some(&b"v2"[..]));
        let elsewhere = store.stage(b"v3".to_vec()).expect("stage");
        assert!(memory.install_staged(elsewhere, 3).is_err());
        assert_eq!(staging_files(dir.path()), 0);
        assert_eq!(memory.active(), None);
    }

    /// A state file that does not parse keeps the door from going backwards: the floor reads
    /// as the highest possible and nothing is marked good.
    #[test]
    fn a_damaged_state_never_lowers_the_floor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::open(dir.path()).expect("open");
        store.install(b"v1", 7).expect("install");
        std::fs::write(store.state_path(), b"{garbage").expect("damage");
        assert_eq!(store.state().floor, u32::MAX);
        assert!(!store.state().is_good(b"v1"));
        store.reset_floor(7).expect("recovery");
        assert_eq!(store.state().floor, 7);
    }

    /// A store whose writes fail (here: its folder is gone) reports the error and leaves the
    /// real store untouched.
    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::open(dir.path()).expect("open");
        store.install(b"good", 1).expect("install");
        let full = FileStore {
            dir: dir.path().join("vanished"),
        };
        assert!(full.install(b"new", 2).is_err());
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
            let err = store.install(&big, 3).expect_err("does not fit");
            assert!(err.raw_os_error() == Some(27), "EFBIG expected: {err}");
            let err = store
                .install(&small, 3)
                .expect_err("the old one does not fit aside");
            assert!(err.raw_os_error() == Some(27), "EFBIG expected: {err}");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::open(dir.path()).expect("open");
        let old: Vec<u8> = (0..12 * 1024).map(|i| (i % 251) as u8).collect();
        store.install(b"older", 1).expect("install");
        store.install(&old, 2).expect("install");
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
