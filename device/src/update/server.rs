//! The update server: one TCP listener, a fixed pool of connection handlers, one update at a
//! time, everything bounded.
//!
//! Built for a hostile network. The accept loop never spawns: connections go to a fixed pool
//! through a bounded queue, and one that finds the queue full is answered `busy` and closed at
//! once, so a flood of idle connections costs neither threads nor file descriptors (a door with
//! its camera, panel and serial line open must never run out of them). Every connection first
//! sets up the encrypted channel ([`facegate_models::channel`], unless `update.plaintext`) and
//! must send, within [`Limits::head`] of connecting, a request signed by a trusted key over the
//! channel's handshake hash (plain TCP: a fresh random challenge) ([`facegate_models::wire`]): a
//! peer without a key learns nothing (not even status) and can never take the update slot. Only then, for a push: the declared length
//! is checked against the limit, the update slot is taken, and the bundle must arrive at no
//! less than [`Limits::min_rate`]; then the one update flow ([`crate::update::install`]).
//!
//! Refusals are logged at a bounded rate (one record per [`Limits::refusal_interval`] with a
//! count of the others), so a flood of bad requests cannot wash the door's decisions out of
//! its log ring.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use facegate_models::bundle::MAX_BUNDLE;
use facegate_models::channel::{DoorKeys, NoiseStream};
use facegate_models::logrecord::{Event, LogRecord};
use facegate_models::wire::{self, Request};

use crate::live::Shared;
use crate::update::install::{Installer, Refused};

/// Limits of the server and of one connection.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The signed request header must arrive within this time of the connection.
    pub head: Duration,
    /// Longest wait for any single read.
    pub read: Duration,
    /// Slowest accepted bundle upload, bytes per second (the body's deadline follows the
    /// declared size at this rate, plus [`Limits::head`]).
    pub min_rate: u64,
    /// Largest bundle accepted.
    pub max_bundle: usize,
    /// Connections served at once; more wait in a queue of the same size, the rest are told
    /// `busy`.
    pub connections: usize,
    /// At most one refusal record per this interval (the others are counted in it).
    pub refusal_interval: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            head: Duration::from_secs(5),
            read: Duration::from_secs(10),
            min_rate: 64 * 1024,
            max_bundle: MAX_BUNDLE,
            connections: 4,
            refusal_interval: Duration::from_secs(60),
        }
    }
}

/// Refusals, logged at a bounded rate.
#[derive(Debug, Default)]
struct RefusalLog {
    last: Option<Instant>,
    suppressed: u32,
}

impl RefusalLog {
    /// Whether this refusal gets a record now, and how many were held back before it.
    fn admit(&mut self, now: Instant, interval: Duration) -> Option<u32> {
        if self.last.is_some_and(|t| now.duration_since(t) < interval) {
            self.suppressed = self.suppressed.saturating_add(1);
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// How requests travel.
#[derive(Clone, Debug)]
pub enum Transport {
    /// Encrypted and bound to the door's key ([`facegate_models::channel`]): the default.
    Noise(DoorKeys),
    /// Plain TCP: requests are still signed, but bundles (templates, a face crop) and status
    /// cross the network readable by anyone on it. Only with `update.plaintext = true`.
    Plain,
}

/// A connection with a deadline: every read waits at most until it (and at most the
/// per-read limit), whatever layer asks, so a sender dripping bytes inside a frame is cut off
/// on time too.
struct Timed {
    tcp: TcpStream,
    read: Duration,
    deadline: Instant,
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(ErrorKind::TimedOut.into());
        }
        let wait = self
            .read
            .min(self.deadline - now)
            .max(Duration::from_millis(1));
        self.tcp.set_read_timeout(Some(wait))?;
        self.tcp.read(buf)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.tcp.flush()
    }
}

/// A connection whose read deadline the server moves between the phases of a request.
trait Deadlined: Read + Write {
    fn set_deadline(&mut self, deadline: Instant);
}

impl Deadlined for Timed {
    fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }
}

impl Deadlined for &mut Timed {
    fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }
}

impl<S: Deadlined> Deadlined for NoiseStream<S> {
    fn set_deadline(&mut self, deadline: Instant) {
        self.get_mut().set_deadline(deadline);
    }
}

/// What the server needs.
pub struct UpdateServer {
    /// Keys allowed to sign requests and bundles.
    trusted: Vec<VerifyingKey>,
    /// The one update flow (shared with the broker link).
    installer: Arc<Installer>,
    /// The loop's state.
    shared: Arc<Shared>,
    /// Connection limits.
    limits: Limits,
    transport: Transport,
    refusals: Mutex<RefusalLog>,
}

/// One reply line and what the log should say of it.
struct Reply {
    text: String,
    log: Logged,
}

/// What a request leaves in the log.
enum Logged {
    /// Nothing (status answers are not news).
    Quiet,
    /// A refusal: at a bounded rate.
    Refusal,
    /// An update that got as far as its version: always.
    Update { version: u32, accepted: bool },
    /// A recovery: always, as a fault record naming the key.
    Notice(String),
}

impl Reply {
    fn refused(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            log: Logged::Refusal,
        }
    }
}

impl UpdateServer {
    /// A server over these parts.
    pub fn new(
        trusted: Vec<VerifyingKey>,
        installer: impl Into<Arc<Installer>>,
        shared: Arc<Shared>,
        limits: Limits,
        transport: Transport,
    ) -> Self {
        Self {
            trusted,
            installer: installer.into(),
            shared,
            limits,
            transport,
            refusals: Mutex::default(),
        }
    }

    /// Accepts connections until `stop` is set, handing them to a fixed pool of handlers.
    /// Never panics and never gives up: an accept error (out of file descriptors, say) is
    /// waited out.
    pub fn serve(self: Arc<Self>, listener: TcpListener, stop: Arc<AtomicBool>) {
        let _ = listener.set_nonblocking(true);
        let workers = self.limits.connections.max(1);
        let (queue, pending) = std::sync::mpsc::sync_channel::<TcpStream>(workers);
        let pending = Arc::new(Mutex::new(pending));
        let mut handles = Vec::new();
        for i in 0..workers {
            let (me, pending, stop) = (self.clone(), pending.clone(), stop.clone());
            match std::thread::Builder::new()
                .name(format!("update-{i}"))
                .spawn(move || me.work(&pending, &stop))
            {
                Ok(h) => handles.push(h),
                Err(e) => eprintln!("update server: handler {i} not started: {e}"),
            }
        }
        if handles.is_empty() {
            eprintln!("update server: no handler could start; refusing every connection");
        }
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((conn, _)) => self.dispatch(&queue, conn, handles.is_empty()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        drop(queue);
        for h in handles {
            let _ = h.join();
        }
    }

    /// Queues a connection for the pool, or answers `busy` and closes it at once.
    fn dispatch(&self, queue: &SyncSender<TcpStream>, conn: TcpStream, no_workers: bool) {
        let conn = if no_workers {
            conn
        } else {
            match queue.try_send(conn) {
                Ok(()) => return,
                Err(TrySendError::Full(c) | TrySendError::Disconnected(c)) => c,
            }
        };
        // Never block the accept loop on this peer: a short write into the socket buffer.
        let mut conn = conn;
        let _ = conn.set_nonblocking(true);
        let _ = conn.write_all(b"busy: too many connections, try again\n");
    }

    fn work(&self, pending: &Mutex<Receiver<TcpStream>>, stop: &AtomicBool) {
        loop {
            let next = {
                let rx = pending.lock().unwrap_or_else(|p| p.into_inner());
                rx.recv_timeout(Duration::from_millis(200))
            };
            match next {
                Ok(conn) => {
                    // A bug in one request must not take a handler away for good.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.handle(conn)
                    }));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Serves one connection: handshake (Noise), challenge, signed request, one answer line.
    pub fn handle(&self, tcp: TcpStream) {
        let _ = tcp.set_nonblocking(false);
        let _ = tcp.set_write_timeout(Some(self.limits.read));
        // Handshake and answer are several small messages in a row: without this, each waits
        // for the peer's delayed acknowledgement (40 ms).
        let _ = tcp.set_nodelay(true);
        let connected = Instant::now();
        let mut timed = Timed {
            tcp,
            read: self.limits.read,
            deadline: connected + self.limits.head,
        };
        match &self.transport {
            Transport::Plain => {
                let mut challenge = [0u8; wire::CHALLENGE_LEN];
                let reply = match getrandom::fill(&mut challenge) {
                    Ok(()) => self.request(&mut timed, &challenge, connected),
                    Err(_) => Reply::refused("refused: the door's random source failed"),
                };
                self.answer(&mut timed, reply);
            }
            Transport::Noise(keys) => match NoiseStream::accept(&mut timed, keys) {
                Ok(mut channel) => {
                    // The challenge is this session's handshake hash: a signature made for
                    // another connection (or relayed by a man in the middle) does not verify.
                    let challenge = channel.binding();
                    let reply = self.request(&mut channel, &challenge, connected);
                    self.answer(&mut channel, reply);
                }
                Err(e) => self.log_outcome(&Reply::refused(format!(
                    "refused: no encrypted channel ({e})"
                ))),
            },
        }
        let mut conn = timed.tcp;
        // Lingering close: a refused sender may still be uploading; closing with its bytes
        // unread would reset the connection and lose our answer. Half-close, then discard what
        // is left, bounded in bytes and time.
        let _ = conn.shutdown(std::net::Shutdown::Write);
        let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
        let until = Instant::now() + Duration::from_secs(2);
        let mut sink = [0u8; 64 * 1024];
        let mut left = self.limits.max_bundle + 64;
        while left > 0 && Instant::now() < until {
            match conn.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    }

    /// Logs the outcome and sends the answer line.
    fn answer(&self, conn: &mut impl Write, reply: Reply) {
        self.log_outcome(&reply);
        // One write: a second small one would wait on TCP's delayed acknowledgement.
        let _ = conn.write_all(format!("{}\n", reply.text).as_bytes());
        let _ = conn.flush();
    }

    /// Accepted updates always reach the log; refusals at a bounded rate, with a count.
    fn log_outcome(&self, reply: &Reply) {
        let active = self.shared.version();
        let event = match &reply.log {
            Logged::Quiet => return,
            Logged::Notice(message) => Event::Fault {
                message: message.clone(),
            },
            Logged::Update { version, accepted } => Event::ModelUpdate {
                version: *version,
                accepted: *accepted,
                reason: reply.text.clone(),
            },
            Logged::Refusal => {
                let admitted = self
                    .refusals
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .admit(Instant::now(), self.limits.refusal_interval);
                let mut reason = reply.text.clone();
                match admitted {
                    None => return,
                    Some(0) => {}
                    Some(n) => {
                        reason.push_str(&format!(" ({n} more refused since the last such record)"))
                    }
                }
                Event::ModelUpdate {
                    version: 0,
                    accepted: false,
                    reason,
                }
            }
        };
        self.shared.post(LogRecord::now(0, active, event));
    }

    fn request(
        &self,
        conn: &mut impl Deadlined,
        challenge: &[u8; wire::CHALLENGE_LEN],
        connected: Instant,
    ) -> Reply {
        if conn
            .write_all(&wire::hello(challenge))
            .and_then(|()| conn.flush())
            .is_err()
        {
            return Reply::refused("refused: the peer went away");
        }
        let mut head = [0u8; wire::REQUEST_LEN];
        if let Err(e) = read_exact_by(conn, &mut head) {
            return Reply::refused(e);
        }
        let request = match Request::parse(&head)
            .and_then(|r| r.verify(challenge, &self.trusted).map(|_| r))
        {
            Ok(r) => r,
            Err(e) => return Reply::refused(format!("refused: {e}")),
        };
        match request.kind {
            wire::STATUS => Reply {
                text: self.status(),
                log: Logged::Quiet,
            },
            wire::RECOVER => self.recover(&request),
            wire::PUSH => self.push(conn, &request, connected),
            k => Reply::refused(format!("refused: unknown request kind {k}")),
        }
    }

    fn push(&self, conn: &mut impl Deadlined, request: &Request, connected: Instant) -> Reply {
        let len = request.length;
        if len > self.limits.max_bundle as u64 {
            return Reply::refused(format!(
                "refused: bundle of {len} bytes is above the {}-byte limit",
                self.limits.max_bundle
            ));
        }
        let Some(slot) = self.installer.try_reserve() else {
            return Reply::refused("busy: another update is in progress, try again");
        };
        conn.set_deadline(
            connected
                + self.limits.head
                + Duration::from_secs_f64(len as f64 / self.limits.min_rate.max(1) as f64),
        );
        let mut bytes = vec![0u8; len as usize];
        if let Err(e) = read_exact_by(conn, &mut bytes) {
            return Reply::refused(e);
        }
        match self.installer.apply_reserved(&slot, &self.shared, bytes) {
            Ok(a) => Reply {
                text: format!(
                    "ok: version {} active ({})",
                    a.version,
                    facegate_models::gallery::people_count(a.people)
                ),
                log: Logged::Update {
                    version: a.version,
                    accepted: true,
                },
            },
            Err(Refused {
                version: Some(version),
                error,
            }) => Reply {
                text: format!("refused: {error}"),
                log: Logged::Update {
                    version,
                    accepted: false,
                },
            },
            Err(Refused { error, .. }) => Reply::refused(format!("refused: {error}")),
        }
    }

    fn recover(&self, request: &Request) -> Reply {
        let Ok(floor) = u32::try_from(request.length) else {
            return Reply::refused(format!(
                "refused: version floor {} is above the largest version",
                request.length
            ));
        };
        let key = hex::encode(request.key_id);
        match self.installer.recover(floor) {
            Ok(()) => Reply {
                text: format!("ok: version floor {floor}; the next update must be above it"),
                log: Logged::Notice(format!(
                    "version floor set to {floor} by a recovery request signed by key {key}"
                )),
            },
            Err(e) => Reply::refused(format!("refused: cannot write the store state: {e}")),
        }
    }

    fn status(&self) -> String {
        let live = self.shared.current();
        let recent: Vec<String> = self
            .shared
            .recent
            .lock()
            .map(|r| r.iter().map(|x| x.to_string()).collect())
            .unwrap_or_default();
        // No model yet: version 0 and nobody enrolled (the door is shut).
        let people: Vec<&str> = live
            .iter()
            .flat_map(|l| l.gallery.people.iter().map(|p| p.name.as_str()))
            .collect();
        serde_json::json!({
            "model_version": live.as_ref().map_or(0, |l| l.version),
            "floor": self.installer.store().state().floor,
            "people": people,
            "recent": recent,
        })
        .to_string()
    }
}

/// Reads exactly `buf.len()` bytes or fails with a reply (the connection enforces the
/// deadline: [`Timed`]).
fn read_exact_by(conn: &mut impl Read, buf: &mut [u8]) -> Result<(), String> {
    let mut done = 0;
    while done < buf.len() {
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
                return Err(format!(
                    "refused: sender too slow ({done} of {} bytes by the deadline)",
                    buf.len()
                ));
            }
            Err(e) => return Err(format!("refused: read failed: {e}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_once_per_interval_with_a_count() {
        let mut log = RefusalLog::default();
        let t = Instant::now();
        let i = Duration::from_secs(60);
        assert_eq!(log.admit(t, i), Some(0));
        for k in 1..=500 {
            assert_eq!(log.admit(t + Duration::from_millis(k), i), None);
        }
        assert_eq!(log.admit(t + i, i), Some(500));
        assert_eq!(log.admit(t + i + Duration::from_secs(1), i), None);
    }
}
