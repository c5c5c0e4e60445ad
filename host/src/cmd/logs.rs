//! `facegate logs`: decodes the door's recognition log (framed postcard records, see
//! `facegate_models::logrecord`) from a serial port, a pty or a saved file. Garbage and cut
//! frames are reported on stderr and skipped; reading goes on at the next frame.

use clap::Args;
use std::path::PathBuf;

use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use facegate_models::logrecord::FrameReader;

/// Tallies of one read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Records decoded.
    pub records: usize,
    /// Frames or runs of bytes skipped.
    pub skipped: usize,
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One text line per record.
    Text,
    /// One flat JSON object per record ([`flat`]).
    Json,
}

/// A record as one flat JSON object (the same as the door publishes on its event topic).
pub use facegate_fleet::json::flat;

/// Runs `facegate logs`.
pub fn run(cmd: LogsCmd) -> Result<()> {
    let format = if cmd.json { Format::Json } else { Format::Text };
    let stdout = std::io::stdout();
    let tally = if is_char_device(&cmd.port) {
        // A serial line: reads time out so that a quiet line ends a non-following read.
        let timeout = Duration::from_millis(if cmd.follow { 500 } else { cmd.idle_ms.max(1) });
        let mut port = serialport::new(cmd.port.to_string_lossy(), cmd.baud)
            .timeout(timeout)
            .open_native()
            .with_context(|| {
                format!(
                    "opening {}: check the path and that you are in the dialout group",
                    cmd.port.display()
                )
            })?;
        if cmd.history {
            // The door replays its ring file when it reads this line.
            port.write_all(b"history\n")
                .and_then(|_| port.flush())
                .context("asking the door for its history")?;
        }
        decode_stream(&mut port, &mut stdout.lock(), format, cmd.follow, false)?
    } else {
        anyhow::ensure!(
            !cmd.history,
            "--history needs a serial port or pty; {} is a file (it already holds what it holds)",
            cmd.port.display()
        );
        let mut file = std::fs::File::open(&cmd.port)
            .with_context(|| format!("opening {}", cmd.port.display()))?;
        decode_stream(&mut file, &mut stdout.lock(), format, cmd.follow, true)?
    };
    eprintln!("{} records, {} skipped", tally.records, tally.skipped);
    Ok(())
}

fn is_char_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path)
        .map(|m| m.file_type().is_char_device())
        .unwrap_or(false)
}

/// Bytes of a saved file read without a single record before it is called "not a log".
const PROBE: usize = 64 * 1024;

/// Reads frames from `input` and writes decoded records to `out` until end of file (or, for a
/// serial port, a read timeout), or forever with `follow`. Skipped frames go to stderr. A saved
/// file (`file`) whose first 64 KiB hold no record is refused with one error, not thousands of
/// "skipped" lines: it is some other file. A serial line may start with noise, so it is not.
pub fn decode_stream(
    input: &mut dyn Read,
    out: &mut dyn Write,
    format: Format,
    follow: bool,
    file: bool,
) -> Result<Tally> {
    let mut reader = FrameReader::new();
    let mut tally = Tally::default();
    let mut buf = [0u8; 4096];
    let mut read = 0usize;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) if follow => {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {
                if follow {
                    continue;
                }
                break;
            }
            Err(e) => return Err(e).context("reading the log"),
        };
        read += n;
        let items = reader.push(&buf[..n]);
        if file && tally.records == 0 && read >= PROBE && !items.iter().any(Result::is_ok) {
            bail!(
                "not a facegate log: the first {} KiB hold no record (give the door's serial \
                 port, a capture of it, or its ring file)",
                read / 1024
            );
        }
        for item in items {
            match item {
                Ok(record) => {
                    tally.records += 1;
                    match format {
                        Format::Text => writeln!(out, "{record}")?,
                        Format::Json => writeln!(out, "{}", flat(&record))?,
                    }
                }
                Err(e) => {
                    tally.skipped += 1;
                    eprintln!("skipped: {e}");
                }
            }
        }
        out.flush()?;
    }
    if file && tally.records == 0 && (tally.skipped > 0 || reader.pending() > 0) {
        bail!(
            "not a facegate log: {} KiB and no record (give the door's serial port, a capture of \
             it, or its ring file)",
            read.div_ceil(1024)
        );
    }
    if reader.pending() > 0 {
        tally.skipped += 1;
        eprintln!(
            "skipped: {} bytes of a frame cut off at the end",
            reader.pending()
        );
    }
    Ok(tally)
}

// --- command-line arguments ---

/// `facegate logs --port PATH ...`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate logs --port /dev/ttyUSB0 --follow
  facegate logs --port door.log --json | jq 'select(.kind == \"stranger\")'")]
pub struct LogsCmd {
    /// Serial device (/dev/ttyUSB0, /dev/ttyACM0, a pty) or a file holding a saved log.
    #[arg(long, value_name = "PATH")]
    pub port: PathBuf,
    /// Line speed of a serial device.
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// Keep reading as records arrive (until Ctrl-C).
    #[arg(long)]
    pub follow: bool,
    /// First ask the door for the history it keeps (its ring file), then read on.
    #[arg(long)]
    pub history: bool,
    /// Without --follow, stop after this long without data from a serial device.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub idle_ms: u64,
    /// One JSON object per record instead of text lines.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use facegate_models::logrecord::{Event, LogRecord};
    use serde_json::Value;

    /// Finding (#23): `logs` on a PNG printed about 8,500 "skipped" lines and exited 0.
    #[test]
    fn a_file_that_is_not_a_log_is_one_clear_error() {
        let png: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let mut out = Vec::new();
        let err = decode_stream(&mut &png[..], &mut out, Format::Text, false, true)
            .expect_err("not a log");
        assert!(err.to_string().contains("not a facegate log"), "{err}");
        assert!(out.is_empty());
    }
    use serialport::SerialPort;

    fn sample() -> Vec<LogRecord> {
        vec![
            LogRecord::now(
                1,
                2,
                Event::Known {
                    person: "Ann".into(),
                    score: 0.71,
                    unlocked: true,
                },
            ),
            LogRecord::now(
                2,
                2,
                Event::Stranger {
                    best_score: 0.2,
                    attempt: 1,
                },
            ),
            LogRecord::now(
                3,
                2,
                Event::Stranger {
                    best_score: 0.25,
                    attempt: 2,
                },
            ),
        ]
    }

    #[test]
    fn decodes_through_garbage_and_a_cut_frame() {
        let recs = sample();
        let mut bytes = b"boot noise \xff\xfe".to_vec();
        bytes.push(0);
        bytes.extend(recs[0].encode());
        let cut = recs[1].encode();
        bytes.extend_from_slice(&cut[..cut.len() / 2]);
        bytes.push(0);
        bytes.extend(recs[2].encode());
        bytes.extend_from_slice(&recs[0].encode()[..5]); // cut at the end
        let mut out = Vec::new();
        let tally =
            decode_stream(&mut &bytes[..], &mut out, Format::Json, false, true).expect("decode");
        assert_eq!(
            tally,
            Tally {
                records: 2,
                skipped: 3
            }
        );
        let lines: Vec<Value> = String::from_utf8(out)
            .expect("utf8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines, vec![flat(&recs[0]), flat(&recs[2])]);
        assert_eq!(lines[0]["kind"], "known");
        assert_eq!(lines[0]["person"], "Ann");
        assert_eq!(lines[0]["unlocked"], true);
        assert_eq!(lines[1]["kind"], "stranger");
        assert_eq!(lines[1]["attempt"], 2);
        assert_eq!(lines[1]["frame"], 3);
    }

    #[test]
    fn reads_from_a_real_pseudo_terminal() {
        let (mut master, mut slave) = serialport::TTYPort::pair().expect("pty pair");
        slave
            .set_timeout(Duration::from_millis(2000))
            .expect("timeout");
        let recs = sample();
        let writer = std::thread::spawn(move || {
            for r in sample() {
                master.write_all(&r.encode()).expect("write");
                master.write_all(b"\x01\x02garbage\x00").expect("write");
                std::thread::sleep(Duration::from_millis(20));
            }
            master // keep the master open until the reader is done
        });
        let mut out = Vec::new();
        let tally =
            decode_stream(&mut slave, &mut out, Format::Text, false, false).expect("decode");
        drop(writer.join());
        assert_eq!(tally.records, 3);
        assert_eq!(tally.skipped, 3);
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            text.lines()
                .next()
                .expect("line")
                .contains("KNOWN \"Ann\" score=0.710 UNLOCKED"),
            "{text}"
        );
        assert_eq!(text.lines().count(), recs.len());
    }
}
