//! A log record as JSON: the same object for `facegate logs --json` and the door's event
//! topic, so a script written against one reads the other.

use std::time::Duration;

use facegate_models::logrecord::{Event, LogRecord};
use serde_json::{Value, json};

/// A record as one flat JSON object, easy to filter with jq: `kind` ("known", "stranger",
/// "not-live", "remote-unlock", "update", "fault"), the time both as RFC 3339 and in ms, and
/// the event's own fields at the top level (a "not-live" record says which `cue` refused:
/// "network" or "motion"). A recognised person the door held back is
/// `"kind": "known", "unlocked": false` with the `reason`.
pub fn flat(record: &LogRecord) -> Value {
    let time = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + Duration::from_millis(record.time_ms),
    )
    .to_string();
    let mut v = json!({
        "time": time,
        "time_ms": record.time_ms,
        "frame": record.frame,
        "model_version": record.model_version,
    });
    let event = match &record.event {
        Event::Known {
            person,
            score,
            unlocked,
        } => json!({"kind": "known", "person": person, "score": score, "unlocked": unlocked}),
        Event::Held {
            person,
            score,
            reason,
        } => json!({"kind": "known", "person": person, "score": score, "unlocked": false,
                    "reason": reason}),
        Event::Stranger {
            best_score,
            attempt,
        } => json!({"kind": "stranger", "best_score": best_score, "attempt": attempt,
                    "unlocked": false}),
        Event::ModelUpdate {
            version,
            accepted,
            reason,
        } => json!({"kind": "update", "version": version, "accepted": accepted,
                    "reason": reason}),
        Event::Fault { message } => json!({"kind": "fault", "message": message}),
        Event::NotLive {
            person,
            score,
            liveness,
            attempt,
        } => json!({"kind": "not-live", "cue": "network", "person": person, "score": score,
                    "liveness": liveness, "attempt": attempt, "unlocked": false}),
        Event::MovedAsOne {
            person,
            score,
            motion,
            attempt,
        } => json!({"kind": "not-live", "cue": "motion", "person": person, "score": score,
                    "motion": motion, "attempt": attempt, "unlocked": false}),
        Event::RemoteUnlock { by } => {
            json!({"kind": "remote-unlock", "by": by, "unlocked": true})
        }
    };
    if let (Some(obj), Value::Object(fields)) = (v.as_object_mut(), event) {
        obj.extend(fields);
    }
    v
}

/// The decision types Home Assistant's event entity is told about.
pub const DECISIONS: [&str; 3] = ["unlocked", "stranger", "refused"];

/// A decision as Home Assistant's event entity reads it (`event_type` one of [`DECISIONS`]
/// plus the record's fields), or `None` for records that are not decisions (updates, faults,
/// frames still being confirmed).
pub fn decision(record: &LogRecord) -> Option<Value> {
    let event_type = match &record.event {
        Event::Known { unlocked: true, .. } | Event::RemoteUnlock { .. } => "unlocked",
        Event::Stranger { .. } => "stranger",
        Event::NotLive { .. } | Event::MovedAsOne { .. } => "refused",
        _ => return None,
    };
    let mut v = flat(record);
    v.as_object_mut()?
        .insert("event_type".into(), Value::from(event_type));
    Some(v)
}

/// The person a record names, when it is a recognition that opened the door.
pub fn unlocked_person(record: &LogRecord) -> Option<&str> {
    match &record.event {
        Event::Known {
            person,
            unlocked: true,
            ..
        } => Some(person),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(event: Event) -> LogRecord {
        LogRecord {
            format: facegate_models::logrecord::FORMAT_VERSION,
            time_ms: 1_700_000_000_000,
            frame: 7,
            model_version: 3,
            event,
        }
    }

    #[test]
    fn decisions_carry_an_event_type_and_other_records_none() {
        let known = decision(&rec(Event::Known {
            person: "ann".into(),
            score: 0.7,
            unlocked: true,
        }))
        .expect("a decision");
        assert_eq!(known["event_type"], "unlocked");
        assert_eq!(known["person"], "ann");
        assert_eq!(known["frame"], 7);
        let stranger = decision(&rec(Event::Stranger {
            best_score: 0.2,
            attempt: 1,
        }))
        .expect("a decision");
        assert_eq!(stranger["event_type"], "stranger");
        assert!(
            decision(&rec(Event::Fault {
                message: "x".into()
            }))
            .is_none()
        );
        for t in DECISIONS {
            assert!(!t.is_empty());
        }
    }
}
