//! Many doors on one real broker (mosquitto, started here on loopback ports): a published
//! bundle reaches every door of its group and no other; tampered or foreign bundles are
//! refused by all while the old model serves; Home Assistant discovery and availability; a
//! broker restart loses no event; remote unlock only as the config and the broker's ACL allow.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use facegate_fleet::{Broker, discovery};
use facegate_models::logrecord::{Event, FrameReader, LogRecord};
use facegate_tests::broker::Mosquitto;
use facegate_tests::mqttwatch::Watcher;
use facegate_tests::{device_bin, facegate_bin, models_dir, run_ok, shared_dir, test_config_home};

fn lfw(person: &str, n: usize) -> Vec<PathBuf> {
    let dir = shared_dir().join("faces/lfw/images").join(person);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v.truncate(n);
    v
}

/// Keys, a folder of two enrolled people and a camera folder (a stranger, then one of them).
fn setup(dir: &Path) {
    run_ok(&facegate_bin(), dir, &["keygen", "--dir", "."]);
    for (person, photos) in [("Colin_Powell", 3), ("Tony_Blair", 3)] {
        let d = dir.join("people").join(person);
        std::fs::create_dir_all(&d).expect("mkdir");
        for p in lfw(person, photos) {
            std::fs::copy(&p, d.join(p.file_name().expect("name"))).expect("copy");
        }
    }
    let camera = dir.join("camera");
    std::fs::create_dir_all(&camera).expect("mkdir");
    for (i, p) in lfw("George_W_Bush", 3)
        .into_iter()
        .chain(lfw("Colin_Powell", 6).into_iter().skip(4))
        .enumerate()
    {
        std::fs::copy(&p, camera.join(format!("{i:02}.jpg"))).expect("copy");
    }
}

fn enrol(dir: &Path, door: &str, version: u32, key: &str, out: &str) {
    run_ok(
        &facegate_bin(),
        dir,
        &[
            "enrol",
            "people",
            "--key",
            key,
            "--door",
            door,
            "--version",
            &version.to_string(),
            "-o",
            out,
        ],
    );
}

/// A simulated door on the broker, cycling through the camera folder until stopped.
fn door(dir: &Path, name: &str, group: &str, bundle: &str, url: &str) -> Child {
    door_with(dir, name, group, bundle, url, &[])
}

fn door_with(
    dir: &Path,
    name: &str,
    group: &str,
    bundle: &str,
    url: &str,
    extra: &[&str],
) -> Child {
    spawn_door(
        dir,
        name,
        group,
        url,
        &[&["--bundle", bundle], extra].concat(),
    )
}

/// [`door_with`] without a first bundle: `extra` says what the door starts with.
fn spawn_door(dir: &Path, name: &str, group: &str, url: &str, extra: &[&str]) -> Child {
    Command::new(device_bin())
        .current_dir(dir)
        .env("FACEGATE_MODELS", models_dir())
        .env("XDG_CONFIG_HOME", test_config_home())
        .args([
            "simulate",
            "--trust",
            "facegate.pub",
            "--store",
            &format!("store-{name}"),
            "--camera-dir",
            "camera",
            "--cycle",
            "--fps",
            "4",
            "--log",
            &format!("{name}.log"),
            "--relay",
            &format!("{name}.relay"),
            "--door",
            name,
            "--group",
            group,
            "--mqtt",
            url,
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).expect("stderr file"))
        .spawn()
        .expect("start facegate-device")
}

/// `facegate publish` of `bundle` to `group`, checked with the key `trust`.
fn publish(dir: &Path, url: &str, group: &str, trust: &str, bundle: &str) {
    run_ok(
        &facegate_bin(),
        dir,
        &[
            "publish", "--broker", url, "--group", group, "--trust", trust, bundle,
        ],
    );
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

fn records(dir: &Path, name: &str) -> Vec<LogRecord> {
    let bytes = std::fs::read(dir.join(format!("{name}.log"))).unwrap_or_default();
    FrameReader::new()
        .push(&bytes)
        .into_iter()
        .filter_map(Result::ok)
        .collect()
}

fn plain(url: String) -> Broker {
    Broker {
        url,
        ..Broker::default()
    }
}

fn model_is(w: &Watcher, door: &str, version: u32) -> bool {
    w.last(&format!("facegate/{door}/model")).as_deref() == Some(&version.to_string())
}

#[test]
fn one_publish_updates_a_group_and_nothing_else_gets_in() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    setup(dir);
    enrol(dir, "home", 1, "facegate.key", "home-v1.fgb");
    enrol(dir, "home", 2, "facegate.key", "home-v2.fgb");
    enrol(dir, "barn", 1, "facegate.key", "barn-v1.fgb");
    let broker = Mosquitto::plain();
    let w = Watcher::start(
        &plain(broker.url()),
        "test-watcher",
        &["facegate/#", "homeassistant/#"],
        false,
    );
    let mut doors = vec![
        door(dir, "front", "home", "home-v1.fgb", &broker.url()),
        door_with(
            dir,
            "back",
            "home",
            "home-v1.fgb",
            &broker.url(),
            &["--mqtt-snapshot"],
        ),
        door(dir, "side", "home", "home-v1.fgb", &broker.url()),
        door(dir, "garage", "barn", "barn-v1.fgb", &broker.url()),
    ];
    let all_online = |w: &Watcher| {
        ["front", "back", "side", "garage"].iter().all(|d| {
            w.last(&format!("facegate/{d}/availability")).as_deref() == Some("online")
                && model_is(w, d, 1)
        })
    };
    assert!(
        w.wait_for(Duration::from_secs(60), |_| all_online(&w)),
        "doors did not come online: {:?}",
        std::fs::read_to_string(dir.join("front.err"))
    );

    // Discovery: one device per door, with what Home Assistant requires.
    let config = w
        .last("homeassistant/device/facegate_front/config")
        .expect("discovery payload");
    let payload: serde_json::Value = serde_json::from_str(&config).expect("JSON");
    assert_eq!(discovery::problems(&payload), Vec::<String>::new());
    assert_eq!(payload["avty_t"], "facegate/front/availability");
    assert_eq!(payload["cmps"]["facegate_front_lock"]["p"], "binary_sensor");
    // Home Assistant's birth message makes every door announce itself again.
    let before = w.messages().len();
    w.publish("homeassistant/status", false, b"online");
    assert!(w.wait_for(Duration::from_secs(5), |m| {
        m[before..]
            .iter()
            .filter(|m| m.topic.ends_with("/config"))
            .count()
            >= 4
    }));

    // One publish: the three doors of the group run version 2 within 5 s; the barn door
    // ignores it.
    let t0 = Instant::now();
    publish(dir, &broker.url(), "home", "facegate.pub", "home-v2.fgb");
    // Three doors each build the new model (both paths) on a 2-core machine, beside the other
    // tests: 2-4 s here when idle. The bound is for a door that never updates, not a speed
    // target (docs/FLEET.md has the measured time).
    assert!(
        w.wait_for(Duration::from_secs(30), |_| model_is(&w, "front", 2)
            && model_is(&w, "back", 2)
            && model_is(&w, "side", 2)),
        "not updated within 30 s: front {:?} back {:?} side {:?}",
        w.last("facegate/front/model"),
        w.last("facegate/back/model"),
        w.last("facegate/side/model")
    );
    let took = t0.elapsed();
    println!("publish -> the three home doors on version 2: {took:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(model_is(&w, "garage", 1));

    // A tampered bundle on the group topic (sent raw: `publish` itself refuses it) and one
    // signed by another key: refused by every door, version 2 still running.
    let mut tampered = std::fs::read(dir.join("home-v2.fgb")).expect("bundle");
    let n = tampered.len();
    tampered[n - 100] ^= 0x40;
    w.publish("facegate/group/home/bundle", true, &tampered);
    run_ok(&facegate_bin(), dir, &["keygen", "--dir", "other"]);
    enrol(dir, "home", 3, "other/facegate.key", "home-v3-other.fgb");
    publish(
        dir,
        &broker.url(),
        "home",
        "other/facegate.pub",
        "home-v3-other.fgb",
    );
    let refusals = |door: &str| {
        w.messages()
            .iter()
            .filter(|m| m.topic == format!("facegate/{door}/event"))
            .filter(|m| m.text().contains("\"accepted\":false"))
            .count()
    };
    assert!(
        w.wait_for(Duration::from_secs(10), |_| refusals("front") >= 1
            && refusals("back") >= 1
            && refusals("side") >= 1),
        "no refusal reported"
    );
    std::thread::sleep(Duration::from_secs(1));
    for d in ["front", "back", "side"] {
        assert!(model_is(&w, d, 2), "{d}");
        let recs = records(dir, d);
        assert!(
            recs.iter().any(|r| matches!(&r.event,
                Event::ModelUpdate { accepted: false, reason, .. } if reason.contains("signature") || reason.contains("key"))),
            "{d}: {recs:?}"
        );
    }
    assert!(refusals("garage") == 0);

    // Face pictures only from the door configured to send them, and never inside events.
    assert!(w.wait_for(Duration::from_secs(10), |_| {
        w.last("facegate/back/snapshot").is_some()
    }));
    let jpeg = w
        .messages()
        .into_iter()
        .rev()
        .find(|m| m.topic == "facegate/back/snapshot")
        .expect("snapshot");
    let face = image::load_from_memory_with_format(&jpeg.payload, image::ImageFormat::Jpeg)
        .expect("a JPEG");
    assert!(face.width() <= 256 && face.height() <= 256 && face.width() > 16);
    let back_disc = w
        .last("homeassistant/device/facegate_back/config")
        .expect("discovery");
    assert!(back_disc.contains("\"p\":\"image\""), "{back_disc}");
    assert!(w.last("facegate/front/snapshot").is_none());
    assert!(
        w.messages()
            .iter()
            .filter(|m| m.topic.ends_with("/event"))
            .all(|m| m.payload.len() < 1024 && !m.payload.starts_with(&[0xFF, 0xD8]))
    );

    // `fleet status` reads it all back.
    let out = run_ok(
        &facegate_bin(),
        dir,
        &["fleet", "status", "--broker", &broker.url(), "--json"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(rows.len(), 4, "{text}");
    assert!(rows.iter().all(|r| r["availability"] == "online"));
    assert_eq!(
        rows.iter().find(|r| r["door"] == "back").expect("back")["model"],
        2
    );

    // A killed door goes offline (its last will); a retired one leaves Home Assistant.
    let mut garage = doors.pop().expect("garage");
    garage.kill().expect("kill");
    let _ = garage.wait();
    assert!(w.wait_for(Duration::from_secs(10), |_| {
        w.last("facegate/garage/availability").as_deref() == Some("offline")
    }));
    run_ok(
        &facegate_bin(),
        dir,
        &["fleet", "retire", "--broker", &broker.url(), "garage"],
    );
    assert!(w.wait_for(Duration::from_secs(5), |_| {
        w.last("homeassistant/device/facegate_garage/config")
            .as_deref()
            == Some("")
    }));
    for mut d in doors {
        terminate(&mut d);
    }
    // A door stopped on purpose says so too.
    assert_eq!(
        w.last("facegate/front/availability").as_deref(),
        Some("offline")
    );
}

/// A new door (or one whose stored bundles an upgrade refuses) starts with no model on the
/// broker: it stays shut, says model 0, and runs the group's retained bundle as soon as it
/// connects, through the same checks as any update.
#[test]
fn a_door_with_no_model_takes_its_groups_bundle_from_the_broker() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    setup(dir);
    enrol(dir, "home", 3, "facegate.key", "home-v3.fgb");
    let broker = Mosquitto::plain();
    let w = Watcher::start(&plain(broker.url()), "test-watcher", &["facegate/#"], false);
    publish(dir, &broker.url(), "home", "facegate.pub", "home-v3.fgb");
    let mut new = spawn_door(dir, "new", "home", &broker.url(), &[]);
    let updated = w.wait_for(Duration::from_secs(60), |_| model_is(&w, "new", 3));
    let known = w.wait_for(Duration::from_secs(60), |_| {
        records(dir, "new")
            .iter()
            .any(|r| r.model_version == 3 && matches!(r.event, Event::Known { .. }))
    });
    terminate(&mut new);
    let err = std::fs::read_to_string(dir.join("new.err")).unwrap_or_default();
    assert!(updated && known, "{err}");
    assert!(err.contains("the door stays shut"), "{err}");
    // It said it had no model before it had one, and decided nothing without it.
    let models: Vec<String> = w
        .messages()
        .iter()
        .filter(|m| m.topic == "facegate/new/model")
        .map(|m| m.text())
        .collect();
    assert_eq!(models.first().map(String::as_str), Some("0"), "{models:?}");
    let recs = records(dir, "new");
    assert!(
        recs.iter().all(|r| r.model_version == 3
            || matches!(r.event, Event::Fault { .. } | Event::ModelUpdate { .. })),
        "{recs:#?}"
    );
}

#[test]
fn a_broker_restart_loses_no_event() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    setup(dir);
    enrol(dir, "home", 1, "facegate.key", "home-v1.fgb");
    let mut broker = Mosquitto::plain();
    let b = plain(broker.url());
    // A persistent session: the broker keeps what the door sends while this client is away.
    let w = Watcher::start(
        &b,
        "test-events",
        &["facegate/front/event", "facegate/tiny/event"],
        true,
    );
    let mut front = door(dir, "front", "home", "home-v1.fgb", &broker.url());
    // A door whose queue holds only 3 events: the outage overflows it.
    let mut tiny = door_with(
        dir,
        "tiny",
        "home",
        "home-v1.fgb",
        &broker.url(),
        &["--mqtt-queue", "3"],
    );
    assert!(w.wait_for(Duration::from_secs(60), |m| m.len() >= 3));
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64
    };
    broker.stop();
    let down = Instant::now();
    let down_ms = now_ms();
    std::thread::sleep(Duration::from_secs(4));
    let up_ms = now_ms();
    broker.restart();
    let up_at = down.elapsed();
    // Decisions keep coming while the broker is away; give the door time to reconnect.
    assert!(
        w.wait_for(Duration::from_secs(30), |m| m
            .iter()
            .any(
                |m| m.text().contains("mqtt: connected to") || m.text().contains("reconnected")
            )),
        "the door did not report its reconnection: {}",
        std::fs::read_to_string(dir.join("front.err")).unwrap_or_default()
    );
    std::thread::sleep(Duration::from_secs(2));
    terminate(&mut front);
    terminate(&mut tiny);
    std::thread::sleep(Duration::from_millis(500));
    // The small queue lost events, and said how many once the broker was back.
    let tiny_dropped = w.messages().iter().any(|m| {
        m.topic == "facegate/tiny/event"
            && m.text()
                .contains("events were dropped while it was unreachable (queue of 3)")
    });
    assert!(
        tiny_dropped,
        "no dropped-events report from the small queue"
    );
    assert!(records(dir, "tiny").iter().any(|r| matches!(&r.event,
        Event::Fault { message } if message.contains("events were dropped"))));

    let serial = records(dir, "front");
    let events: Vec<serde_json::Value> = w
        .messages()
        .iter()
        .filter(|m| m.topic == "facegate/front/event")
        .filter_map(|m| serde_json::from_slice(&m.payload).ok())
        .collect();
    let published = |r: &LogRecord| {
        events
            .iter()
            .any(|e| e["time_ms"] == r.time_ms && e["frame"] == r.frame)
    };
    let missing: Vec<&LogRecord> = serial.iter().filter(|r| !published(r)).collect();
    // The door kept deciding while the broker was away.
    let during: Vec<&LogRecord> = serial
        .iter()
        .filter(|r| (down_ms..up_ms).contains(&r.time_ms))
        .filter(|r| {
            matches!(
                r.event,
                Event::Stranger { .. } | Event::Known { .. } | Event::Held { .. }
            )
        })
        .collect();
    assert!(!during.is_empty(), "no decision logged during the outage");
    println!(
        "serial records {}, decisions during the outage {}, events received {}, missing {}; broker down {up_at:?}",
        serial.len(),
        during.len(),
        events.len(),
        missing.len()
    );
    // The only records allowed to miss the broker are those it had no chance to carry:
    // the door's last words after its link closed (none expected), so: none.
    assert!(missing.is_empty(), "not published: {missing:?}");
    assert!(
        serial.iter().any(
            |r| matches!(&r.event, Event::Fault { message } if message.contains("unreachable"))
        ),
        "the outage is not in the serial log"
    );
}

/// A door config on the secure listener (TLS, a password, the ACL), cycling `camera`.
fn tls_config(dir: &Path, broker: &Mosquitto, name: &str, remote: bool, extra: &str) -> PathBuf {
    let text = format!(
        r#"
[model]
store = "store-{name}"
trust = ["facegate.pub"]
bundle = "home-v1.fgb"
door = "{name}"
groups = ["home"]

[camera]
source = "images"
dir = "strangers"
cycle = true
fps = 4.0

[relay]
kind = "simulated"
record = "{name}.relay"

[log]
port = "{name}.log"

[mqtt]
url = "{url}"
username = "{name}"
password_file = "{pass}"
ca = "{ca}"
remote_unlock = {remote}
remote_unlock_users = ["homeassistant"]
{extra}"#,
        url = broker.tls_url(),
        pass = broker.password_file(name).display(),
        ca = broker.ca().display(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("config");
    path
}

fn run_door(dir: &Path, config: &Path, name: &str) -> Child {
    Command::new(device_bin())
        .current_dir(dir)
        .env("FACEGATE_MODELS", models_dir())
        .args(["run", "--config", config.to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).expect("stderr file"))
        .spawn()
        .expect("start facegate-device")
}

fn tls_client(broker: &Mosquitto, user: &str) -> Watcher {
    let b = Broker {
        url: broker.tls_url(),
        username: Some(user.into()),
        password_file: Some(broker.password_file(user)),
        ca: Some(broker.ca()),
        ..Broker::default()
    };
    Watcher::start(
        &b,
        &format!("test-{user}"),
        &["homeassistant/status"],
        false,
    )
}

fn remote_unlocks(dir: &Path, name: &str) -> Vec<String> {
    records(dir, name)
        .into_iter()
        .filter_map(|r| match r.event {
            Event::RemoteUnlock { by } => Some(by),
            _ => None,
        })
        .collect()
}

#[test]
fn remote_unlock_only_when_enabled_and_allowed_by_the_acl() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    setup(dir);
    let strangers = dir.join("strangers");
    std::fs::create_dir_all(&strangers).expect("mkdir");
    for p in lfw("George_W_Bush", 2) {
        std::fs::copy(&p, strangers.join(p.file_name().expect("name"))).expect("copy");
    }
    enrol(dir, "home", 1, "facegate.key", "home-v1.fgb");
    let broker = Mosquitto::secure();
    // Everything the doors say, read on the plain listener.
    let w = Watcher::start(
        &plain(broker.url()),
        "test-watch",
        &["facegate/#", "homeassistant/#"],
        false,
    );
    let front_cfg = tls_config(dir, &broker, "front", true, "");
    let side_cfg = tls_config(dir, &broker, "side", false, "");
    let mut front = run_door(dir, &front_cfg, "front");
    let mut side = run_door(dir, &side_cfg, "side");
    assert!(
        w.wait_for(Duration::from_secs(60), |_| ["front", "side"].iter().all(
            |d| w.last(&format!("facegate/{d}/availability")).as_deref() == Some("online")
        )),
        "doors not online over TLS: {} / broker: {}",
        std::fs::read_to_string(dir.join("front.err")).unwrap_or_default(),
        broker.log()
    );
    // Home Assistant sees a lock it may command on the door that allows it.
    let front_disc: serde_json::Value = serde_json::from_str(
        &w.last("homeassistant/device/facegate_front/config")
            .expect("discovery"),
    )
    .expect("JSON");
    let lock = &front_disc["cmps"]["facegate_front_lock"];
    assert_eq!(lock["p"], "lock");
    assert_eq!(lock["command_topic"], "facegate/front/unlock/homeassistant");
    assert_eq!(discovery::problems(&front_disc), Vec::<String>::new());

    let ha = tls_client(&broker, "homeassistant");
    let intruder = tls_client(&broker, "intruder");
    // Disabled: the side door does not listen at all.
    ha.publish("facegate/side/unlock/homeassistant", false, b"UNLOCK");
    // Not allowed by the ACL: the broker drops it, the door never hears it.
    intruder.publish("facegate/front/unlock/homeassistant", false, b"UNLOCK");
    // Allowed by the ACL (its own name) but not by the door: refused and logged.
    intruder.publish("facegate/front/unlock/intruder", false, b"UNLOCK");
    assert!(
        w.wait_for(Duration::from_secs(10), |m| m
            .iter()
            .any(|m| m.topic == "facegate/front/event"
                && m.text()
                    .contains("remote unlock from \\\"intruder\\\" refused"))),
        "the refusal was not reported"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(remote_unlocks(dir, "front").is_empty());
    assert!(remote_unlocks(dir, "side").is_empty());
    let relay =
        |name: &str| std::fs::read_to_string(dir.join(format!("{name}.relay"))).unwrap_or_default();
    assert!(!relay("front").contains("high"), "{}", relay("front"));

    // Home Assistant, allowed by both: the door opens, and the log names the sender.
    ha.publish("facegate/front/unlock/homeassistant", false, b"UNLOCK");
    assert!(
        w.wait_for(Duration::from_secs(10), |_| w
            .last("facegate/front/state")
            .as_deref()
            == Some("UNLOCKED")),
        "no UNLOCKED state"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        remote_unlocks(dir, "front"),
        vec!["homeassistant".to_owned()]
    );
    assert!(relay("front").contains("high"), "{}", relay("front"));
    assert!(remote_unlocks(dir, "side").is_empty());
    terminate(&mut front);
    terminate(&mut side);
}

#[test]
fn a_wiegand_reader_sends_the_card_of_the_person_let_in() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    setup(dir);
    enrol(dir, "front", 1, "facegate.key", "front.fgb");
    for (bits, facility, card) in [(26u8, 12u32, 4242u32), (34, 513, 65000)] {
        let name = format!("w{bits}");
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                r#"
[model]
store = "store-{name}"
trust = ["facegate.pub"]
bundle = "front.fgb"
door = "front"

[camera]
source = "images"
dir = "camera"
repeat = 6

[log]
port = "{name}.log"

[wiegand]
format = {bits}
facility = {facility}
record = "{name}.wiegand"
[wiegand.cards]
Colin_Powell = {card}
"#
            ),
        )
        .expect("config");
        run_ok(
            &device_bin(),
            dir,
            &["run", "--config", config.to_str().expect("utf-8")],
        );
        let unlocked: Vec<String> = records(dir, &name)
            .into_iter()
            .filter_map(|r| match r.event {
                Event::Known {
                    person,
                    unlocked: true,
                    ..
                } => Some(person),
                _ => None,
            })
            .collect();
        assert!(!unlocked.is_empty(), "nobody let in");
        let text = std::fs::read_to_string(dir.join(format!("{name}.wiegand"))).expect("record");
        let frames = decode_record(&text);
        assert_eq!(frames.len(), unlocked.len(), "{text}");
        for f in &frames {
            let (fac, c) = facegate_device::wiegand::decode(&f.bits).expect("parity");
            assert_eq!((f.bits.len(), fac, c), (bits as usize, facility, card));
            // Timing on the simulated pins: pulses at least 50 us, under 0.5 ms; starts about
            // 2 ms apart (never sooner).
            let median = |v: &[u64]| {
                let mut v = v.to_vec();
                v.sort_unstable();
                v[v.len() / 2]
            };
            assert!(f.widths.iter().all(|w| *w >= 50), "{:?}", f.widths);
            assert!(median(&f.widths) < 500, "{:?}", f.widths);
            assert!(f.gaps.iter().all(|g| *g >= 2000), "{:?}", f.gaps);
            assert!(median(&f.gaps) < 2500, "{:?}", f.gaps);
        }
    }
}

/// One recorded Wiegand frame: its bits, pulse widths and pulse-start spacing (us).
struct Frame {
    bits: Vec<bool>,
    widths: Vec<u64>,
    gaps: Vec<u64>,
}

/// Decodes the simulated lines' record (`frame`, then `line level nanoseconds` per edge);
/// widths and gaps in whole microseconds, rounded down.
fn decode_record(text: &str) -> Vec<Frame> {
    let mut frames = Vec::new();
    for block in text.split("frame\n").filter(|b| !b.trim().is_empty()) {
        let edges: Vec<(u8, u8, u64)> = block
            .lines()
            .map(|l| {
                let v: Vec<u64> = l.split(' ').map(|x| x.parse().expect("number")).collect();
                (v[0] as u8, v[1] as u8, v[2])
            })
            .collect();
        let mut f = Frame {
            bits: Vec::new(),
            widths: Vec::new(),
            gaps: Vec::new(),
        };
        let mut last_start: Option<u64> = None;
        for pair in edges.chunks(2) {
            let [(line, 0, down), (line2, 1, up)] = pair else {
                panic!("a low edge must be followed by its rising edge: {pair:?}");
            };
            assert_eq!(line, line2, "both edges on one line");
            f.bits.push(*line == 1);
            f.widths.push((up - down) / 1000);
            if let Some(s) = last_start {
                f.gaps.push((down - s) / 1000);
            }
            last_start = Some(*down);
        }
        frames.push(f);
    }
    frames
}
