//! Home Assistant MQTT discovery, device-based (one retained message per door under
//! `<discovery prefix>/device/facegate_<door>/config`, with `dev`, `o` and `cmps`).
//!
//! The door appears as one device with: the lock (a `lock` entity when remote unlock is on,
//! whose command goes to the topic of Home Assistant's own broker user; a `binary_sensor` of
//! class `lock` otherwise, so Home Assistant cannot even offer a button), the last person, the
//! model version, and an `event` entity for decisions. All share the door's availability
//! topic, which its last will turns `offline`. An empty retained payload on the same topic
//! removes the device (`facegate fleet retire`).

use serde_json::{Map, Value, json};

use crate::json::DECISIONS;
use crate::topics::{self, LOCKED, OFFLINE, ONLINE, Topics, UNLOCK, UNLOCKED};

/// What the discovery message describes.
#[derive(Clone, Debug)]
pub struct Door<'a> {
    /// The door's topics.
    pub topics: &'a Topics,
    /// The broker user Home Assistant sends unlock commands as, when remote unlock is on.
    pub unlock_user: Option<&'a str>,
    /// The door publishes face pictures (an image entity shows the last one).
    pub snapshot: bool,
    /// facegate's version.
    pub sw_version: &'a str,
}

/// The discovery payload.
pub fn payload(door: &Door) -> Value {
    let t = door.topics;
    let id = topics::discovery_id(t.door());
    let cmps = components(door, &id);
    json!({
        "dev": {
            "ids": [id],
            "name": format!("facegate {}", t.door()),
            "mf": "facegate",
            "mdl": "facegate-device",
            "sw": door.sw_version,
        },
        "o": {
            "name": "facegate",
            "sw": door.sw_version,
        },
        "avty_t": t.availability(),
        "pl_avail": ONLINE,
        "pl_not_avail": OFFLINE,
        "qos": 1,
        "cmps": cmps,
    })
}

/// The door's entities, keyed by their unique IDs (`id` is the door's discovery ID): the lock
/// (a command only when remote unlock is on, else a read-only lock sensor), the last person,
/// the model version, the decision event and, when sent, the last face.
fn components(door: &Door, id: &str) -> Map<String, Value> {
    let t = door.topics;
    let mut cmps = Map::new();
    let lock = match door.unlock_user {
        Some(user) => json!({
            "p": "lock",
            "unique_id": format!("{id}_lock"),
            "name": "Door",
            "state_topic": t.state(),
            "state_locked": LOCKED,
            "state_unlocked": UNLOCKED,
            "command_topic": t.unlock_for(user),
            "payload_unlock": UNLOCK,
            // facegate locks by itself when the pulse ends; a lock command is accepted and
            // ignored rather than refused by Home Assistant's form.
            "payload_lock": "LOCK",
            "optimistic": false,
        }),
        None => json!({
            "p": "binary_sensor",
            "unique_id": format!("{id}_lock"),
            "name": "Door",
            "device_class": "lock",
            "state_topic": t.state(),
            // device_class lock: on means unlocked.
            "payload_on": UNLOCKED,
            "payload_off": LOCKED,
        }),
    };
    cmps.insert(format!("{id}_lock"), lock);
    cmps.insert(
        format!("{id}_person"),
        json!({
            "p": "sensor",
            "unique_id": format!("{id}_person"),
            "name": "Last person",
            "icon": "mdi:account",
            "state_topic": t.person(),
        }),
    );
    cmps.insert(
        format!("{id}_model"),
        json!({
            "p": "sensor",
            "unique_id": format!("{id}_model"),
            "name": "Model version",
            "entity_category": "diagnostic",
            "state_topic": t.model(),
        }),
    );
    cmps.insert(
        format!("{id}_decision"),
        json!({
            "p": "event",
            "unique_id": format!("{id}_decision"),
            "name": "Decision",
            "state_topic": t.decision(),
            "event_types": DECISIONS,
        }),
    );
    if door.snapshot {
        cmps.insert(
            format!("{id}_snapshot"),
            json!({
                "p": "image",
                "unique_id": format!("{id}_snapshot"),
                "name": "Last face",
                "image_topic": t.snapshot(),
                "content_type": "image/jpeg",
            }),
        );
    }
    cmps
}

/// Checks a discovery payload against what Home Assistant's device-based discovery requires
/// (its documentation: `dev` with identifiers, `o` with a name, `cmps` whose entries each have
/// a platform `p` and a `unique_id`, and the topics each platform needs). Returns the problems.
pub fn problems(payload: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut need = |ok: bool, what: &str| {
        if !ok {
            out.push(what.to_owned());
        }
    };
    let ids = &payload["dev"]["ids"];
    need(
        ids.is_string() || ids.as_array().is_some_and(|a| !a.is_empty()),
        "dev.ids (identifiers) missing",
    );
    need(payload["o"]["name"].is_string(), "o.name (origin) missing");
    let Some(cmps) = payload["cmps"].as_object().filter(|c| !c.is_empty()) else {
        need(false, "cmps missing or empty");
        return out;
    };
    for (key, c) in cmps {
        let p = c["p"].as_str().unwrap_or("");
        need(!p.is_empty(), &format!("cmps.{key}.p (platform) missing"));
        need(
            c["unique_id"].is_string(),
            &format!("cmps.{key}.unique_id missing"),
        );
        let required: &[&str] = match p {
            "lock" => &["command_topic"],
            "binary_sensor" | "sensor" => &["state_topic"],
            "event" => &["state_topic", "event_types"],
            "image" => &["image_topic", "content_type"],
            _ => &[],
        };
        for field in required {
            need(
                !c[field].is_null(),
                &format!("cmps.{key}.{field} missing ({p})"),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_lock_kinds_satisfy_the_schema() {
        let t = Topics::new("facegate", "front").expect("valid");
        for (user, snapshot) in [(None, false), (Some("homeassistant"), true)] {
            let p = payload(&Door {
                topics: &t,
                unlock_user: user,
                snapshot,
                sw_version: "0.1.0",
            });
            assert_eq!(problems(&p), Vec::<String>::new());
            let lock = &p["cmps"]["facegate_front_lock"];
            assert_eq!(
                lock["p"],
                if user.is_some() {
                    "lock"
                } else {
                    "binary_sensor"
                }
            );
        }
    }

    #[test]
    fn the_checker_finds_what_is_missing() {
        let mut p = payload(&Door {
            topics: &Topics::new("facegate", "front").expect("valid"),
            unlock_user: None,
            snapshot: false,
            sw_version: "0.1.0",
        });
        p["cmps"]["facegate_front_person"]
            .as_object_mut()
            .expect("object")
            .remove("state_topic");
        p.as_object_mut().expect("object").remove("o");
        let found = problems(&p);
        assert_eq!(found.len(), 2, "{found:?}");
    }
}
