//! The recognition log's way out: a worker thread that writes each record to the serial line
//! (binary frames or text lines) and to the on-disk ring, and answers history requests.
//!
//! The loop hands records over with [`LogSender::send`], which never blocks: if the worker is
//! stuck (a serial line with hardware flow control and nobody listening), records beyond the
//! queue are counted as dropped rather than stalling the door. The ring always gets every
//! record the worker receives, even while the serial port is absent or full, and a reader that
//! sends the line `history` gets the ring replayed before live records continue.

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use facegate_models::logrecord::{FrameReader, LogRecord};

use crate::ring::RingFile;

/// How records are written on the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// COBS frames of postcard records with a CRC-32: decoded by `facegate logs`.
    Binary,
    /// One human-readable line per record, for a plain serial terminal.
    Text,
}

/// What a reader sends to get the kept history.
pub const HISTORY_REQUEST: &[u8] = b"history";

/// Where the log goes.
#[derive(Clone, Debug)]
pub struct LogSettings {
    /// Serial device or pty; a regular file path appends to that file instead.
    pub port: Option<PathBuf>,
    /// Line speed.
    pub baud: u32,
    /// Binary frames or text.
    pub format: LogFormat,
    /// On-disk history, and its size bound in bytes.
    pub ring: Option<(PathBuf, u64)>,
}

/// The loop's end of the log: queue records without blocking.
pub struct LogSender {
    tx: Option<SyncSender<LogRecord>>,
    worker: Option<JoinHandle<()>>,
    dropped: u64,
}

/// Records the queue holds before the loop starts dropping them.
const QUEUE: usize = 256;

impl LogSender {
    /// Starts the worker. Opening the port happens there (and again after an error), so a
    /// missing serial adapter delays nothing.
    pub fn spawn(settings: LogSettings) -> std::io::Result<Self> {
        let ring = match &settings.ring {
            Some((path, cap)) => Some(RingFile::open(path, *cap)?),
            None => None,
        };
        let (tx, rx) = sync_channel(QUEUE);
        let worker = std::thread::Builder::new()
            .name("log".into())
            .spawn(move || Worker::new(settings, ring).run(&rx))?;
        Ok(Self {
            tx: Some(tx),
            worker: Some(worker),
            dropped: 0,
        })
    }

    /// Queues `record`; false if it had to be dropped.
    pub fn send(&mut self, record: &LogRecord) -> bool {
        let ok = match &self.tx {
            Some(tx) => match tx.try_send(record.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
            },
            None => false,
        };
        self.dropped += u64::from(!ok);
        ok
    }

    /// Records dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Writes out everything queued, then stops the worker.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.tx.take());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Drop for LogSender {
    fn drop(&mut self) {
        self.shutdown();
    }
}

trait Port: Read + Write + Send {}
impl<T: Read + Write + Send> Port for T {}

/// A regular file: appended to, never read from.
struct AppendFile(std::fs::File);

impl Read for AppendFile {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(ErrorKind::WouldBlock.into())
    }
}

impl Write for AppendFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

fn is_char_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path)
        .map(|m| m.file_type().is_char_device())
        .unwrap_or(false)
}

fn open_port(path: &Path, baud: u32) -> std::io::Result<Box<dyn Port>> {
    if is_char_device(path) {
        // Short timeouts: a read only checks for a history request, and a write to a line
        // nobody drains gives up instead of holding the worker.
        let port = serialport::new(path.to_string_lossy(), baud)
            .timeout(Duration::from_millis(20))
            .open_native()
            .map_err(std::io::Error::other)?;
        Ok(Box::new(port))
    } else {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Box::new(AppendFile(file)))
    }
}

struct Worker {
    settings: LogSettings,
    ring: Option<RingFile>,
    port: Option<Box<dyn Port>>,
    retry_at: Instant,
    request: Vec<u8>,
}

impl Worker {
    fn new(settings: LogSettings, ring: Option<RingFile>) -> Self {
        Self {
            settings,
            ring,
            port: None,
            retry_at: Instant::now(),
            request: Vec::new(),
        }
    }

    fn run(mut self, rx: &Receiver<LogRecord>) {
        loop {
            self.ensure_port();
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(record) => self.write(&record),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.poll_requests();
        }
        if let Some(p) = self.port.as_mut() {
            let _ = p.flush();
        }
    }

    fn ensure_port(&mut self) {
        let Some(path) = &self.settings.port else {
            return;
        };
        if self.port.is_none() && Instant::now() >= self.retry_at {
            match open_port(path, self.settings.baud) {
                Ok(p) => self.port = Some(p),
                Err(e) => {
                    eprintln!("log: cannot open {}: {e}; retrying", path.display());
                    self.retry_at = Instant::now() + Duration::from_secs(5);
                }
            }
        }
    }

    fn format(&self, record: &LogRecord) -> Vec<u8> {
        match self.settings.format {
            LogFormat::Binary => record.encode(),
            LogFormat::Text => format!("{record}\r\n").into_bytes(),
        }
    }

    fn write(&mut self, record: &LogRecord) {
        if let Some(ring) = self.ring.as_mut()
            && let Err(e) = ring.append(&record.encode())
        {
            eprintln!("log: ring file: {e}");
        }
        let bytes = self.format(record);
        self.emit(&bytes);
    }

    fn emit(&mut self, bytes: &[u8]) {
        let Some(port) = self.port.as_mut() else {
            return;
        };
        match port.write_all(bytes).and_then(|_| port.flush()) {
            Ok(()) => {}
            // Nobody is draining the line: this record is only in the ring.
            Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => {
                eprintln!("log: writing to the port: {e}; reopening");
                self.port = None;
                self.retry_at = Instant::now() + Duration::from_secs(1);
            }
        }
    }

    fn poll_requests(&mut self) {
        let Some(port) = self.port.as_mut() else {
            return;
        };
        let mut buf = [0u8; 64];
        let n = match port.read(&mut buf) {
            Ok(n) => n,
            Err(_) => return,
        };
        self.request.extend_from_slice(&buf[..n]);
        let found = self
            .request
            .windows(HISTORY_REQUEST.len())
            .any(|w| w == HISTORY_REQUEST);
        if found {
            self.request.clear();
            self.replay();
        } else if self.request.len() > 256 {
            // Whatever the line carries besides requests is ignored, in bounded memory.
            let keep = self.request.len() - HISTORY_REQUEST.len();
            self.request.drain(..keep);
        }
    }

    fn replay(&mut self) {
        let Some(ring) = &self.ring else { return };
        let Ok(bytes) = ring.history() else { return };
        match self.settings.format {
            LogFormat::Binary => {
                for chunk in bytes.chunks(1024) {
                    self.emit(chunk);
                }
            }
            LogFormat::Text => {
                let records: Vec<LogRecord> = FrameReader::new()
                    .push(&bytes)
                    .into_iter()
                    .flatten()
                    .collect();
                for r in records {
                    let line = format!("{r}\r\n");
                    self.emit(line.as_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use facegate_models::logrecord::Event;
    use serialport::{SerialPort, TTYPort};

    fn known(frame: u64) -> LogRecord {
        LogRecord::now(
            frame,
            3,
            Event::Known {
                person: "Ann".into(),
                score: 0.7,
                unlocked: frame.is_multiple_of(2),
            },
        )
    }

    fn read_for(port: &mut TTYPort, how_long: Duration) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let end = Instant::now() + how_long;
        while Instant::now() < end {
            match port.read(&mut buf) {
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        out
    }

    #[test]
    fn records_reach_a_pty_and_a_late_reader_gets_the_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut master, slave) = TTYPort::pair().expect("pty pair");
        master
            .set_timeout(Duration::from_millis(50))
            .expect("timeout");
        let path = PathBuf::from(slave.name().expect("pty name"));
        let mut log = LogSender::spawn(LogSettings {
            port: Some(path),
            baud: 115_200,
            format: LogFormat::Binary,
            ring: Some((dir.path().join("log.ring"), 1 << 20)),
        })
        .expect("spawn");
        for i in 0..5 {
            assert!(log.send(&known(i)));
        }
        let live = read_for(&mut master, Duration::from_millis(400));
        let frames: Vec<u64> = FrameReader::new()
            .push(&live)
            .into_iter()
            .map(|r| r.expect("frame").frame)
            .collect();
        assert_eq!(frames, vec![0, 1, 2, 3, 4]);

        master.write_all(b"history\n").expect("request");
        let replay = read_for(&mut master, Duration::from_millis(400));
        let frames: Vec<u64> = FrameReader::new()
            .push(&replay)
            .into_iter()
            .map(|r| r.expect("frame").frame)
            .collect();
        assert_eq!(frames, vec![0, 1, 2, 3, 4]);
        log.close();
        drop(slave);
    }

    #[test]
    fn text_mode_writes_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("log.txt");
        let mut log = LogSender::spawn(LogSettings {
            port: Some(out.clone()),
            baud: 0,
            format: LogFormat::Text,
            ring: None,
        })
        .expect("spawn");
        log.send(&known(2));
        log.close();
        let text = std::fs::read_to_string(&out).expect("read");
        assert!(
            text.contains("KNOWN \"Ann\" score=0.700 UNLOCKED"),
            "{text}"
        );
        assert!(text.ends_with("\r\n"));
    }

    #[test]
    fn a_missing_port_loses_nothing_from_the_ring() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = dir.path().join("log.ring");
        let mut log = LogSender::spawn(LogSettings {
            port: Some("/dev/ttyDOESNOTEXIST".into()),
            baud: 115_200,
            format: LogFormat::Binary,
            ring: Some((ring.clone(), 1 << 20)),
        })
        .expect("spawn");
        for i in 0..3 {
            log.send(&known(i));
        }
        log.close();
        let kept = std::fs::read(&ring).expect("ring");
        assert_eq!(FrameReader::new().push(&kept).len(), 3);
    }
}
