//! Any bytes on the serial line: the frame reader and the record decoder must never panic,
//! never hold more than one frame's worth of bytes, and re-encode what they accept.
#![no_main]

use facegate_models::logrecord::{FrameReader, LogRecord, MAX_FRAME};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = FrameReader::new();
    for chunk in data.chunks(7) {
        for record in reader.push(chunk).into_iter().flatten() {
            let frame = record.encode();
            assert_eq!(LogRecord::decode(&frame[..frame.len() - 1]).as_ref(), Ok(&record));
        }
        assert!(reader.pending() <= data.len());
    }
    let _ = LogRecord::decode(&data[..data.len().min(MAX_FRAME + 8)]);
});
