//! Topic names. One place, so a door and the laptop cannot drift apart.
//!
//! Ids (doors, groups, users) become topic levels, so they are limited to letters, digits,
//! `-` and `_`: a `/`, `+` or `#` in an id would let one door's name reach another's topics.

use crate::FleetError;

/// The default first level of every facegate topic.
pub const DEFAULT_PREFIX: &str = "facegate";
/// Home Assistant's default discovery prefix.
pub const DEFAULT_DISCOVERY_PREFIX: &str = "homeassistant";
/// Home Assistant's birth and will topic (under its discovery prefix).
pub const HA_STATUS: &str = "status";
/// Payload of the availability topic while the door runs.
pub const ONLINE: &str = "online";
/// Payload of the availability topic once the door is gone (its last will).
pub const OFFLINE: &str = "offline";
/// State payloads of the door's lock.
pub const LOCKED: &str = "LOCKED";
/// See [`LOCKED`].
pub const UNLOCKED: &str = "UNLOCKED";
/// The command payload of a remote unlock.
pub const UNLOCK: &str = "UNLOCK";

/// Checks an id that becomes a topic level: 1 to 64 of `A-Z a-z 0-9 - _`.
pub fn check_id(what: &str, id: &str) -> Result<(), FleetError> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(FleetError::BadId {
            what: what.to_owned(),
            id: id.to_owned(),
        });
    }
    Ok(())
}

/// Checks a prefix: one or more ids joined by `/`.
pub fn check_prefix(prefix: &str) -> Result<(), FleetError> {
    prefix
        .split('/')
        .try_for_each(|level| check_id("topic prefix level", level))
}

/// The topics of one door.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
    door: String,
}

impl Topics {
    /// The topics of `door` under `prefix`; both checked.
    pub fn new(prefix: &str, door: &str) -> Result<Self, FleetError> {
        check_prefix(prefix)?;
        check_id("door id", door)?;
        Ok(Self {
            prefix: prefix.to_owned(),
            door: door.to_owned(),
        })
    }

    /// The door's id.
    pub fn door(&self) -> &str {
        &self.door
    }

    fn at(&self, leaf: &str) -> String {
        format!("{}/{}/{leaf}", self.prefix, self.door)
    }

    /// Every log record as JSON (QoS 1, not retained).
    pub fn event(&self) -> String {
        self.at("event")
    }

    /// Decisions only, as Home Assistant's event entity reads them (`event_type`).
    pub fn decision(&self) -> String {
        self.at("decision")
    }

    /// Retained: [`LOCKED`] or [`UNLOCKED`].
    pub fn state(&self) -> String {
        self.at("state")
    }

    /// Retained: the running model version.
    pub fn model(&self) -> String {
        self.at("model")
    }

    /// Retained: the last person the door recognised.
    pub fn person(&self) -> String {
        self.at("person")
    }

    /// Retained: a JPEG of the last decision's face, only when the door is configured to send
    /// one (`[mqtt] snapshot = true`).
    pub fn snapshot(&self) -> String {
        self.at("snapshot")
    }

    /// Retained: the last decision as JSON (for `facegate fleet status`).
    pub fn last(&self) -> String {
        self.at("last")
    }

    /// Retained: [`ONLINE`], or [`OFFLINE`] from the last will.
    pub fn availability(&self) -> String {
        self.at("availability")
    }

    /// Remote unlock commands: the last level is the sender's broker user name.
    pub fn unlock_filter(&self) -> String {
        self.at("unlock/+")
    }

    /// Where `user` sends a remote unlock.
    pub fn unlock_for(&self, user: &str) -> String {
        self.at(&format!("unlock/{user}"))
    }

    /// The user a remote-unlock topic names, if `topic` is one of this door's.
    pub fn unlock_user<'a>(&self, topic: &'a str) -> Option<&'a str> {
        let user = topic.strip_prefix(&self.at("unlock/"))?;
        check_id("user", user).ok().map(|()| user)
    }

    /// Home Assistant's discovery topic for this door.
    pub fn discovery(&self, discovery_prefix: &str) -> String {
        format!(
            "{discovery_prefix}/device/{}/config",
            discovery_id(&self.door)
        )
    }

    /// Every retained topic of this door (what retiring it clears).
    pub fn retained(&self) -> Vec<String> {
        vec![
            self.state(),
            self.model(),
            self.person(),
            self.last(),
            self.snapshot(),
            self.availability(),
        ]
    }
}

/// Home Assistant's id for a door.
pub fn discovery_id(door: &str) -> String {
    format!("facegate_{door}")
}

/// The retained bundle topic of `group`.
pub fn group_bundle(prefix: &str, group: &str) -> Result<String, FleetError> {
    check_prefix(prefix)?;
    check_id("group", group)?;
    Ok(format!("{prefix}/group/{group}/bundle"))
}

/// The filter `facegate fleet status` subscribes to for `leaf` of every door.
pub fn every_door(prefix: &str, leaf: &str) -> String {
    format!("{prefix}/+/{leaf}")
}

/// The door a topic under `prefix` belongs to, and its leaf (`("front", "model")`).
pub fn split_door_topic<'a>(prefix: &str, topic: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let (door, leaf) = rest.split_once('/')?;
    (door != "group").then_some((door, leaf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_reach_other_topics_are_refused() {
        for bad in ["", "a/b", "+", "#", "front door", "é", &"x".repeat(65)] {
            assert!(check_id("door id", bad).is_err(), "{bad:?}");
        }
        assert!(check_id("door id", "front-door_2").is_ok());
        assert!(Topics::new("site/a", "front").is_ok());
        assert!(Topics::new("site//a", "front").is_err());
    }

    #[test]
    fn topics_are_laid_out_per_door() {
        let t = Topics::new("facegate", "front").expect("valid");
        assert_eq!(t.event(), "facegate/front/event");
        assert_eq!(
            t.discovery("homeassistant"),
            "homeassistant/device/facegate_front/config"
        );
        assert_eq!(t.unlock_user("facegate/front/unlock/ha"), Some("ha"));
        assert_eq!(t.unlock_user("facegate/front/unlock/a/b"), None);
        assert_eq!(t.unlock_user("facegate/back/unlock/ha"), None);
        assert_eq!(
            group_bundle("facegate", "home").expect("valid"),
            "facegate/group/home/bundle"
        );
        assert_eq!(
            split_door_topic("facegate", "facegate/front/model"),
            Some(("front", "model"))
        );
        assert_eq!(
            split_door_topic("facegate", "facegate/group/home/bundle"),
            None
        );
    }
}
