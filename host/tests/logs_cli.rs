//! `facegate logs` through the real binary on a saved log file with noise in it.

use std::process::Command;

use facegate_models::logrecord::{Event, LogRecord};

#[test]
fn logs_decodes_a_saved_file_and_reports_garbage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ring.log");
    let a = LogRecord::now(
        10,
        4,
        Event::Known {
            person: "Ann".into(),
            score: 0.66,
            unlocked: true,
        },
    );
    let b = LogRecord::now(
        11,
        4,
        Event::Stranger {
            best_score: 0.31,
            attempt: 3,
        },
    );
    let mut bytes = a.encode();
    bytes.extend_from_slice(b"\x13\x37 line noise \x00");
    bytes.extend(b.encode());
    std::fs::write(&path, bytes).expect("write");

    let run = Command::new(env!("CARGO_BIN_EXE_facegate"))
        .args(["logs", "--json", "--port"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let got: Vec<serde_json::Value> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    // One flat object per record, `kind` first-class (jq: select(.kind == "stranger")).
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["kind"], "known");
    assert_eq!(got[0]["person"], "Ann");
    assert_eq!(got[0]["unlocked"], true);
    assert_eq!(got[0]["frame"], a.frame);
    assert_eq!(got[0]["time_ms"], a.time_ms);
    assert_eq!(got[1]["kind"], "stranger");
    assert_eq!(got[1]["attempt"], 3);
    assert_eq!(got[1]["model_version"], b.model_version);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("skipped") && err.contains("2 records, 1 skipped"),
        "{err}"
    );

    let text = Command::new(env!("CARGO_BIN_EXE_facegate"))
        .args(["logs", "--port"])
        .arg(&path)
        .output()
        .expect("run");
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(
        out.contains("STRANGER best=0.310 attempt=3 locked"),
        "{out}"
    );
}

#[test]
fn logs_history_asks_the_door_and_decodes_the_replay() {
    use serialport::{SerialPort, TTYPort};
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    // The test plays the door on the master side of a pty.
    let (mut door, line) = TTYPort::pair().expect("pty pair");
    door.set_timeout(Duration::from_millis(50))
        .expect("timeout");
    let path = line.name().expect("pty name");
    let reader = Command::new(env!("CARGO_BIN_EXE_facegate"))
        .args([
            "logs",
            "--json",
            "--history",
            "--idle-ms",
            "1500",
            "--port",
            &path,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let mut asked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&asked).contains("history") {
        assert!(Instant::now() < deadline, "no history request: {asked:?}");
        let mut buf = [0u8; 64];
        if let Ok(n) = door.read(&mut buf) {
            asked.extend_from_slice(&buf[..n]);
        }
    }
    let kept = LogRecord::now(
        3,
        1,
        Event::Fault {
            message: "camera lost".into(),
        },
    );
    door.write_all(&kept.encode()).expect("replay");
    let out = reader.wait_with_output().expect("wait");
    drop(line);
    let got: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["kind"], "fault");
    assert_eq!(got[0]["message"], "camera lost");
    assert_eq!(got[0]["frame"], kept.frame);
}
