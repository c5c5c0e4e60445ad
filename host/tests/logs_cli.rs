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
    let got: Vec<LogRecord> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(got, vec![a, b]);
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
