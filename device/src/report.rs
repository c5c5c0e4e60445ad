//! The door's performance report (`facegate-device simulate --report`): loop rate, per-stage
//! latency, peak memory and time to the first decision, as JSON for the bench script.

use std::time::Duration;

use serde_json::{Value, json};

use crate::start::Outcome;

/// Median and 95th percentile in milliseconds (`null` without samples).
fn stats(samples: &[Duration]) -> Value {
    if samples.is_empty() {
        return Value::Null;
    }
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    json!({ "median_ms": at(0.5), "p95_ms": at(0.95), "samples": ms.len() })
}

/// Peak resident memory of this process in KiB (Linux `VmHWM`), if known.
pub fn peak_rss_kib() -> Option<u64> {
    status_kib("VmHWM:")
}

/// Resident memory of this process now in KiB (Linux `VmRSS`), if known.
pub fn rss_kib() -> Option<u64> {
    status_kib("VmRSS:")
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The report for one run.
pub fn report(outcome: &Outcome) -> Value {
    let s = &outcome.summary;
    let secs = outcome.looped.as_secs_f64();
    json!({
        "frames": s.frames,
        "decisions": s.decisions,
        "unlocks": s.unlocks,
        "strangers": s.strangers,
        "faults": s.faults,
        "skipped_frames": outcome.skipped_frames,
        "detections_skipped": outcome.summary.detections_skipped,
        "loop_seconds": secs,
        "frames_per_second": if secs > 0.0 { s.frames as f64 / secs } else { 0.0 },
        "startup_ms": outcome.startup.as_secs_f64() * 1e3,
        "first_decision_ms": s.first_decision.map(|d| (outcome.startup + d).as_secs_f64() * 1e3),
        "stages": {
            "detect": stats(&s.stages.detect),
            "align_embed": stats(&s.stages.embed),
            "decide_log": stats(&s.stages.decide),
            "frame": stats(&s.stages.frame),
        },
        "peak_rss_mib": peak_rss_kib().map(mib),
        "startup_peak_rss_mib": outcome.startup_peak_rss_kib.map(mib),
        "rss_at_end_mib": rss_kib().map(mib),
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_sorted_samples() {
        let d: Vec<Duration> = [5, 1, 3, 2, 4].map(Duration::from_millis).to_vec();
        let v = stats(&d);
        assert_eq!(v["median_ms"], 3.0);
        assert_eq!(v["p95_ms"], 5.0);
        assert_eq!(stats(&[]), Value::Null);
    }

    #[test]
    fn peak_memory_is_read_on_linux() {
        assert!(peak_rss_kib().is_some_and(|k| k > 100));
        assert!(rss_kib().is_some_and(|k| k > 100 && k <= peak_rss_kib().unwrap_or(0)));
    }
}
