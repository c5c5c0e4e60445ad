//! The relay keeper: a tiny child process that owns the relay line, so the door locks whatever
//! happens to the recogniser.
//!
//! The door process does heavy work (networks, image decoding, the network server); it can be
//! slow on a frame, run out of memory, be killed by the OOM killer or by `kill -9`. None of
//! that may leave the relay energised. So the line is held by `facegate-device relay-keeper`,
//! started first with the relay settings, which:
//! * starts locked and opens only on the parent's command (`1` on its stdin; `0` locks);
//! * ends every pulse itself after at most `max_open` (the configured unlock time), however
//!   late the parent is to say `0`: a 3-second frame cannot lengthen a pulse;
//! * locks and exits as soon as its stdin closes, which the kernel does when the parent dies
//!   for any reason (SIGKILL and the OOM killer included), and on SIGTERM / SIGINT.
//!
//! The parent raises its own `oom_score_adj` after starting the keeper, so under memory
//! pressure the kernel picks the large recogniser, never the small keeper. Wiring still matters
//! (see docs/SECURITY.md): use a relay that is open (locked) when undriven, so a dead board or a
//! cut wire also locks; systemd's `ExecStopPost=facegate-device lock` drives the line locked once
//! more after the service stops.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use embedded_hal::digital::{ErrorKind, ErrorType, OutputPin};

/// The keeper's loop: drives `pin` (`true` = energised = open) from the commands read on
/// `input` until it ends or `stop` is set; locked on every way out.
pub fn keep<P: OutputPin>(
    mut pin: P,
    active_high: bool,
    max_open: Duration,
    input: impl Read + Send + 'static,
    stop: &AtomicBool,
) {
    let mut set = |open: bool| {
        let _ = if open == active_high {
            pin.set_high()
        } else {
            pin.set_low()
        };
    };
    set(false);
    let (tx, rx) = std::sync::mpsc::sync_channel::<u8>(64);
    let mut input = input;
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        // A read returns as soon as any command arrives; end of input or an error is the
        // parent gone, which dropping the sender tells the loop.
        while let Ok(n) = input.read(&mut buf) {
            if n == 0 || buf[..n].iter().any(|&b| tx.send(b).is_err()) {
                break;
            }
        }
    });
    let mut open_until: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let now = Instant::now();
        if open_until.is_some_and(|t| now >= t) {
            open_until = None;
            set(false);
        }
        // Wake for the pulse's end, and often enough to see a signal.
        let wait = open_until
            .map_or(Duration::from_millis(100), |t| {
                t.saturating_duration_since(now)
            })
            .min(Duration::from_millis(100));
        match rx.recv_timeout(wait) {
            Ok(b'1') => {
                if open_until.is_none() {
                    set(true);
                }
                open_until = Some(Instant::now() + max_open);
            }
            Ok(b'0') => {
                if open_until.take().is_some() {
                    set(false);
                }
            }
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    set(false);
}

/// The door's side of the keeper: an `OutputPin` whose high level asks the keeper to open.
/// Locks (and waits briefly for the keeper to exit) on drop.
pub struct KeeperPin {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl KeeperPin {
    /// Starts `exe relay-keeper ARGS...` with a pipe to its stdin.
    pub fn spawn(exe: &std::path::Path, args: &[String]) -> std::io::Result<Self> {
        let mut child = Command::new(exe)
            .arg("relay-keeper")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take();
        Ok(Self { child, stdin })
    }

    fn send(&mut self, b: u8) -> Result<(), ErrorKind> {
        let stdin = self.stdin.as_mut().ok_or(ErrorKind::Other)?;
        stdin
            .write_all(&[b])
            .and_then(|()| stdin.flush())
            .map_err(|_| ErrorKind::Other)
    }
}

impl ErrorType for KeeperPin {
    type Error = ErrorKind;
}

impl OutputPin for KeeperPin {
    fn set_low(&mut self) -> Result<(), ErrorKind> {
        self.send(b'0')
    }

    fn set_high(&mut self) -> Result<(), ErrorKind> {
        self.send(b'1')
    }
}

impl Drop for KeeperPin {
    fn drop(&mut self) {
        let _ = self.send(b'0');
        // Closing stdin makes the keeper lock and exit.
        self.stdin.take();
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes this process the OOM killer's first choice over its children (the keeper), which
/// were started before this call and keep their own score. Raising one's own score needs no
/// privilege; failure (no /proc) is harmless.
pub fn prefer_oom_kill_of_self() {
    let _ = std::fs::write("/proc/self/oom_score_adj", "500");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::relay::RecordingPin;

    /// A pipe whose write end the test controls (dropping it is the parent dying).
    fn pipe() -> (std::io::PipeReader, std::io::PipeWriter) {
        std::io::pipe().expect("pipe")
    }

    #[test]
    fn a_pulse_ends_on_time_without_the_parent() {
        let (pin, levels) = RecordingPin::new();
        let (r, mut w) = pipe();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let keeper = std::thread::spawn(move || {
            keep(pin, true, Duration::from_millis(200), r, &flag);
        });
        w.write_all(b"1").expect("open");
        // The parent is stuck on a slow frame and never says 0: by the pulse's 200 ms plus
        // 100 ms the keeper has locked by itself.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(*levels.lock().expect("levels"), vec![false, true, false]);
        // A new unlock opens again (and only for its own pulse).
        w.write_all(b"1").expect("open");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            *levels.lock().expect("levels"),
            vec![false, true, false, true, false]
        );
        drop(w);
        keeper.join().expect("keeper");
        assert_eq!(levels.lock().expect("levels").last(), Some(&false));
    }

    #[test]
    fn the_keeper_locks_when_its_parent_goes_away_mid_pulse() {
        let (pin, levels) = RecordingPin::new();
        let (r, mut w) = pipe();
        let stop = AtomicBool::new(false);
        let t = std::thread::spawn(move || {
            w.write_all(b"1").expect("open");
            std::thread::sleep(Duration::from_millis(50));
            // Parent killed: its end of the pipe closes.
            drop(w);
        });
        let started = Instant::now();
        keep(pin, false, Duration::from_secs(60), r, &stop);
        t.join().expect("writer");
        assert!(started.elapsed() < Duration::from_secs(1));
        // Active low: the recorded pin levels are inverted (high = locked).
        assert_eq!(*levels.lock().expect("levels"), vec![true, false, true]);
    }
}
