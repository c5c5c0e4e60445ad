//! The update server: one TCP listener, one update at a time, everything bounded.
//!
//! For a push, in this order: read the 8-byte length and refuse anything above the bundle
//! limit before reading it; read the bundle under a whole-request deadline (a slow sender is
//! cut off, not waited for); verify the signature against the trusted keys (nothing is parsed
//! before that); refuse a version not newer than the active one (replay); build the new model
//! and run its self-test; store it atomically; switch the loop over; answer the pusher and log
//! the outcome. Any refusal leaves the running model and the store as they were.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use facegate_models::bundle::{self, MAX_BUNDLE};
use facegate_models::logrecord::{Event, LogRecord};
use facegate_models::wire;

use crate::live::{Live, Shared};
use crate::update::store::ModelStore;

/// Limits of one connection.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Whole-request deadline.
    pub request: Duration,
    /// Longest wait for any single read.
    pub read: Duration,
    /// Largest bundle accepted.
    pub max_bundle: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request: Duration::from_secs(60),
            read: Duration::from_secs(10),
            max_bundle: MAX_BUNDLE,
        }
    }
}

/// What the server needs.
pub struct UpdateServer {
    /// Keys allowed to sign bundles.
    pub trusted: Vec<VerifyingKey>,
    /// Where bundles are kept.
    pub store: Arc<dyn ModelStore>,
    /// The loop's state.
    pub shared: Arc<Shared>,
    /// The detector file's verified bytes (bundles carry the embedder, not the detector).
    pub yunet: Vec<u8>,
    /// Connection limits.
    pub limits: Limits,
    busy: Mutex<()>,
}

impl UpdateServer {
    /// A server over these parts.
    pub fn new(
        trusted: Vec<VerifyingKey>,
        store: Arc<dyn ModelStore>,
        shared: Arc<Shared>,
        yunet: Vec<u8>,
        limits: Limits,
    ) -> Self {
        Self {
            trusted,
            store,
            shared,
            yunet,
            limits,
            busy: Mutex::new(()),
        }
    }

    /// Accepts connections until `stop` is set, each on its own thread.
    pub fn serve(self: Arc<Self>, listener: TcpListener, stop: Arc<AtomicBool>) {
        let _ = listener.set_nonblocking(true);
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((conn, _)) => {
                    let me = self.clone();
                    std::thread::spawn(move || me.handle(conn));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Serves one connection: reads the request, answers one line.
    pub fn handle(&self, mut conn: TcpStream) {
        let _ = conn.set_nonblocking(false);
        let _ = conn.set_read_timeout(Some(self.limits.read));
        let _ = conn.set_write_timeout(Some(self.limits.read));
        let deadline = Instant::now() + self.limits.request;
        let reply = match self.request(&mut conn, deadline) {
            Ok(r) => r,
            Err(r) => r,
        };
        let _ = conn.write_all(reply.as_bytes());
        let _ = conn.write_all(b"\n");
        let _ = conn.flush();
        // Lingering close: a refused sender may still be uploading; closing with its bytes
        // unread would reset the connection and lose our answer. Half-close, then discard what
        // is left, bounded in bytes and time.
        let _ = conn.shutdown(std::net::Shutdown::Write);
        let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
        let until = Instant::now() + Duration::from_secs(5);
        let mut sink = [0u8; 64 * 1024];
        let mut left = self.limits.max_bundle + 64;
        while left > 0 && Instant::now() < until {
            match conn.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    }

    fn request(&self, conn: &mut TcpStream, deadline: Instant) -> Result<String, String> {
        let mut head = [0u8; 5];
        read_exact_by(conn, &mut head, deadline)?;
        if head[..4] != wire::MAGIC {
            return Err("refused: not a facegate request".into());
        }
        match head[4] {
            wire::STATUS => Ok(self.status()),
            wire::PUSH => {
                let Ok(_slot) = self.busy.try_lock() else {
                    return Err("busy: another update is in progress, try again".into());
                };
                let result = self.push(conn, deadline);
                let (accepted, reason) = match &result {
                    Ok(m) => (true, m.clone()),
                    Err(m) => (false, m.clone()),
                };
                let version = self.shared.current().version;
                self.shared.post(LogRecord::now(
                    0,
                    version,
                    Event::ModelUpdate {
                        version,
                        accepted,
                        reason,
                    },
                ));
                result
            }
            k => Err(format!("refused: unknown request kind {k}")),
        }
    }

    fn push(&self, conn: &mut TcpStream, deadline: Instant) -> Result<String, String> {
        let mut len = [0u8; 8];
        read_exact_by(conn, &mut len, deadline)?;
        let len = u64::from_le_bytes(len);
        if len > self.limits.max_bundle as u64 {
            return Err(format!(
                "refused: bundle of {len} bytes is above the {}-byte limit",
                self.limits.max_bundle
            ));
        }
        let mut bytes = vec![0u8; len as usize];
        read_exact_by(conn, &mut bytes, deadline)?;
        let bundle = bundle::verify(&bytes, &self.trusted).map_err(|e| format!("refused: {e}"))?;
        let active = self.shared.current().version;
        let offered = bundle.header.model_version;
        if offered <= active {
            return Err(format!(
                "refused: version {offered} is not newer than the active version {active}"
            ));
        }
        // Signature checked: the door may say it is updating while the model loads.
        let installing = &self.shared.installing;
        installing.store(offered, std::sync::atomic::Ordering::Relaxed);
        let result = Live::from_bundle(&bundle, &self.yunet)
            .map_err(|e| format!("refused: {e}"))
            .and_then(|live| {
                self.store.install(&bytes).map_err(|e| {
                    format!("refused: cannot store the bundle ({e}); still on version {active}")
                })?;
                Ok(live)
            });
        installing.store(0, std::sync::atomic::Ordering::Relaxed);
        self.shared.swap(result?);
        Ok(format!(
            "ok: version {offered} active ({} people)",
            bundle.header.labels.len()
        ))
    }

    fn status(&self) -> String {
        let live = self.shared.current();
        let recent: Vec<String> = self
            .shared
            .recent
            .lock()
            .map(|r| r.iter().map(|x| x.to_string()).collect())
            .unwrap_or_default();
        let people: Vec<&str> = live
            .gallery
            .people
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        serde_json::json!({ "model_version": live.version, "people": people, "recent": recent })
            .to_string()
    }
}

/// Reads exactly `buf.len()` bytes or fails with a reply, respecting the deadline.
fn read_exact_by(conn: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Result<(), String> {
    let mut done = 0;
    while done < buf.len() {
        if Instant::now() >= deadline {
            return Err("refused: request took too long (deadline passed)".into());
        }
        match conn.read(&mut buf[done..]) {
            Ok(0) => {
                return Err(format!(
                    "refused: stream ended after {done} of {} bytes",
                    buf.len()
                ));
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err("refused: sender too slow (read timed out)".into());
            }
            Err(e) => return Err(format!("refused: read failed: {e}")),
        }
    }
    Ok(())
}
