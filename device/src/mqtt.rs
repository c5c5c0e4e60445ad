//! The door on an MQTT broker: events out, state and Home Assistant discovery kept, group
//! bundles and (when allowed) unlock commands in. See `facegate_fleet` for the topics.
//!
//! The door loop never waits on the network: it hands each log record to [`MqttSender`],
//! which only pushes it onto a bounded queue (the oldest dropped and counted when full). One
//! thread owns the connection: it publishes queued records at QoS 1 while connected, keeps
//! each until the broker acknowledges it, and puts unacknowledged ones back at the head of
//! the queue when the connection drops, so an outage loses nothing the queue can hold; it
//! reconnects with backoff and says in the log how many records were dropped. Retained topics
//! (availability, lock state, model version, last person, discovery) are published again on
//! every connect, so a restarted broker or Home Assistant gets them back.
//!
//! Incoming, bytes on a group's bundle topic go to a second thread and through
//! [`Installer::apply`], the same flow as a push (signature before parsing, version floor,
//! self-test, atomic store, swap); the outcome is logged and so published. A retained bundle
//! comes again on each reconnect: the version already running is ignored quietly. A remote
//! unlock is obeyed only when the config allows it, over TLS, from a listed broker user whose
//! name is the command topic's last level (the broker's ACL ties it to the login).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use facegate_fleet::topics::{self, LOCKED, OFFLINE, ONLINE, UNLOCK, UNLOCKED};
use facegate_fleet::{Broker, FleetError, Topics, discovery, json};
use facegate_models::logrecord::{Event, LogRecord};
use rumqttc::{Client, Connection, LastWill, Outgoing, Packet, QoS, RecvTimeoutError};

use crate::live::Shared;
use crate::update::install::{Installer, Refused, UpdateError};

/// What the link needs to know.
#[derive(Clone, Debug)]
pub struct LinkSettings {
    /// The broker.
    pub broker: Broker,
    /// This door's topics.
    pub topics: Topics,
    /// Topic prefix (for group bundle topics).
    pub prefix: String,
    /// Groups whose bundles this door takes (its own id is always one).
    pub groups: Vec<String>,
    /// Home Assistant's discovery prefix, `None` for no discovery.
    pub discovery_prefix: Option<String>,
    /// Broker users allowed to unlock, `None` when remote unlock is off.
    pub unlock_users: Option<Vec<String>>,
    /// Records kept while the broker is away.
    pub queue: usize,
    /// How long an unlock keeps the door open (the lock state goes back to locked after it).
    pub unlock_for: Duration,
    /// Face pictures are published (`[mqtt] snapshot`).
    pub snapshot: bool,
}

/// The loop's side: hands over records without waiting.
#[derive(Clone)]
pub struct MqttSender {
    outbox: Arc<Mutex<Outbox>>,
}

struct Outbox {
    records: VecDeque<LogRecord>,
    cap: usize,
    dropped: u64,
    /// The newest face picture not yet published (older ones are replaced, never queued).
    snapshot: Option<image::RgbImage>,
}

impl Outbox {
    fn push_back(&mut self, record: LogRecord) {
        if self.records.len() >= self.cap {
            self.records.pop_front();
            self.dropped += 1;
        }
        self.records.push_back(record);
    }
}

impl MqttSender {
    /// Queues a record for the broker; the oldest is dropped (and counted) when the queue is
    /// full.
    pub fn send(&self, record: &LogRecord) {
        lock(&self.outbox).push_back(record.clone());
    }

    /// Hands over the face of the latest decision (replacing one not yet sent); it is
    /// encoded as JPEG on the link's thread, never in the loop.
    pub fn snapshot(&self, face: image::RgbImage) {
        lock(&self.outbox).snapshot = Some(face);
    }

    /// Records waiting, and records dropped since the last report (for tests and status).
    pub fn backlog(&self) -> (usize, u64) {
        let o = lock(&self.outbox);
        (o.records.len(), o.dropped)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running link: its threads and the sender for the loop.
pub struct MqttLink {
    sender: MqttSender,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Largest message the door accepts: a bundle and a little.
const MAX_INCOMING: usize = facegate_models::bundle::MAX_BUNDLE + 4096;
/// Publishes handed to the client and not yet acknowledged, at most.
const WINDOW: usize = 16;
/// At most one refusal record per this interval (the others are counted).
const REFUSAL_INTERVAL: Duration = Duration::from_secs(10);

impl MqttLink {
    /// Connects in the background (never fails on the network: an unreachable broker is
    /// retried); fails only on settings, such as a password file that cannot be read.
    pub fn spawn(
        settings: LinkSettings,
        shared: Arc<Shared>,
        installer: Arc<Installer>,
    ) -> Result<Self, FleetError> {
        let t = &settings.topics;
        let will = LastWill::new(t.availability(), OFFLINE, QoS::AtLeastOnce, true);
        let options =
            settings
                .broker
                .options(&format!("facegate-{}", t.door()), Some(will), MAX_INCOMING)?;
        let (client, connection) = Client::new(options, 128);
        let outbox = Arc::new(Mutex::new(Outbox {
            records: VecDeque::new(),
            cap: settings.queue.max(1),
            dropped: 0,
            snapshot: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let bundles = BundleSlot::spawn(installer, shared.clone());
        let link = Link {
            client,
            settings,
            shared,
            outbox: outbox.clone(),
            connected: false,
            ever_connected: false,
            told_unreachable: false,
            sent: VecDeque::new(),
            inflight: HashMap::new(),
            seq: 0,
            lock_until: None,
            published_version: None,
            bundles,
            refusals: Refusals::default(),
        };
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || link.run(connection, &stop2))
            .ok();
        Ok(Self {
            sender: MqttSender { outbox },
            stop,
            thread,
        })
    }

    /// The loop's handle.
    pub fn sender(&self) -> MqttSender {
        self.sender.clone()
    }

    /// Flushes what is queued (for at most about two seconds), says `offline`, disconnects.
    pub fn close(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One publish handed to the client.
#[derive(Debug)]
enum Item {
    /// A log record's event message: kept until acknowledged, re-queued on a drop.
    Record(u64, LogRecord),
    /// Anything else (state, discovery): published again on the next connect anyway.
    Other,
}

struct Link {
    client: Client,
    settings: LinkSettings,
    shared: Arc<Shared>,
    outbox: Arc<Mutex<Outbox>>,
    connected: bool,
    ever_connected: bool,
    told_unreachable: bool,
    /// Handed to the client, not yet seen going out (in order).
    sent: VecDeque<Item>,
    /// Gone out, waiting for the broker's acknowledgement.
    inflight: HashMap<u16, Item>,
    seq: u64,
    lock_until: Option<Instant>,
    published_version: Option<u32>,
    bundles: BundleSlot,
    refusals: Refusals,
}

impl Link {
    fn run(mut self, mut connection: Connection, stop: &AtomicBool) {
        let mut backoff = Duration::from_millis(250);
        let mut closing: Option<Instant> = None;
        loop {
            if stop.load(Ordering::Relaxed) && closing.is_none() {
                closing = Some(Instant::now() + Duration::from_secs(2));
            }
            if let Some(deadline) = closing {
                let drained = lock(&self.outbox).records.is_empty()
                    && self.sent.is_empty()
                    && self.inflight.is_empty();
                if !self.connected || drained || Instant::now() >= deadline {
                    self.goodbye(&mut connection);
                    return;
                }
            }
            if self.connected {
                self.tick();
            }
            match connection.recv_timeout(Duration::from_millis(50)) {
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
                Ok(Ok(rumqttc::Event::Incoming(Packet::ConnAck(_)))) => {
                    backoff = Duration::from_millis(250);
                    self.on_connect();
                }
                Ok(Ok(rumqttc::Event::Outgoing(Outgoing::Publish(pkid)))) => {
                    if let Some(item) = self.sent.pop_front() {
                        self.inflight.insert(pkid, item);
                    }
                }
                Ok(Ok(rumqttc::Event::Incoming(Packet::PubAck(ack)))) => {
                    self.inflight.remove(&ack.pkid);
                }
                Ok(Ok(rumqttc::Event::Incoming(Packet::Publish(p)))) => {
                    self.on_message(&p.topic, &p.payload);
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    self.on_disconnect(&e.to_string());
                    if closing.is_some() {
                        return;
                    }
                    sleep_unless(stop, backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn publish(&mut self, topic: String, retain: bool, payload: Vec<u8>, item: Item) -> bool {
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
        {
            Ok(()) => {
                self.sent.push_back(item);
                true
            }
            Err(_) => {
                if let Item::Record(_, r) = item {
                    lock(&self.outbox).records.push_front(r);
                }
                false
            }
        }
    }

    fn text(&mut self, topic: String, retain: bool, payload: &str) {
        self.publish(topic, retain, payload.as_bytes().to_vec(), Item::Other);
    }

    /// While connected: queued records out, the lock state and model version kept current.
    fn tick(&mut self) {
        let now = Instant::now();
        if self.lock_until.is_some_and(|t| now >= t) {
            self.lock_until = None;
            self.text(self.settings.topics.state(), true, LOCKED);
        }
        let version = self.shared.version();
        if self.published_version != Some(version) {
            self.published_version = Some(version);
            self.text(self.settings.topics.model(), true, &version.to_string());
        }
        let snapshot = lock(&self.outbox).snapshot.take();
        if let Some(face) = snapshot {
            let mut jpeg = Vec::new();
            let encoded = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
                .encode_image(&face);
            if encoded.is_ok() {
                self.publish(self.settings.topics.snapshot(), true, jpeg, Item::Other);
            }
        }
        while self.sent.len() + self.inflight.len() < WINDOW {
            let Some(record) = lock(&self.outbox).records.pop_front() else {
                break;
            };
            if !self.publish_record(record) {
                break;
            }
        }
    }

    fn publish_record(&mut self, record: LogRecord) -> bool {
        let t = self.settings.topics.clone();
        if let Some(d) = json::decision(&record) {
            self.publish(t.decision(), false, d.to_string().into_bytes(), Item::Other);
            self.publish(t.last(), true, d.to_string().into_bytes(), Item::Other);
        }
        if let Some(person) = json::unlocked_person(&record) {
            self.text(t.person(), true, person);
        }
        if matches!(
            record.event,
            Event::Known { unlocked: true, .. } | Event::RemoteUnlock { .. }
        ) {
            self.text(t.state(), true, UNLOCKED);
            self.lock_until = Some(Instant::now() + self.settings.unlock_for);
        }
        let body = json::flat(&record).to_string().into_bytes();
        self.seq += 1;
        let seq = self.seq;
        self.publish(t.event(), false, body, Item::Record(seq, record))
    }

    fn on_connect(&mut self) {
        self.connected = true;
        self.told_unreachable = false;
        let first = !self.ever_connected;
        self.ever_connected = true;
        let t = self.settings.topics.clone();
        let mut filters = Vec::new();
        for g in &self.settings.groups {
            if let Ok(topic) = topics::group_bundle(&self.settings.prefix, g) {
                filters.push(topic);
            }
        }
        if let Some(dp) = &self.settings.discovery_prefix {
            filters.push(format!("{dp}/{}", topics::HA_STATUS));
        }
        if self.settings.unlock_users.is_some() {
            filters.push(t.unlock_filter());
        }
        for f in filters {
            let _ = self.client.try_subscribe(f, QoS::AtLeastOnce);
        }
        self.text(t.availability(), true, ONLINE);
        self.announce();
        self.published_version = None;
        let state = if self.lock_until.is_some() {
            UNLOCKED
        } else {
            LOCKED
        };
        self.text(t.state(), true, state);
        let dropped = std::mem::take(&mut lock(&self.outbox).dropped);
        let message = match (first, dropped) {
            (_, d) if d > 0 => Some(format!(
                "mqtt: connected to {}; {d} events were dropped while it was unreachable \
                 (queue of {})",
                self.settings.broker.url, self.settings.queue
            )),
            (true, _) => None,
            (false, _) => Some(format!("mqtt: reconnected to {}", self.settings.broker.url)),
        };
        if let Some(message) = message {
            self.shared
                .post(LogRecord::now(0, 0, Event::Fault { message }));
        }
    }

    fn announce(&mut self) {
        let Some(dp) = self.settings.discovery_prefix.clone() else {
            return;
        };
        let t = self.settings.topics.clone();
        let user = self
            .settings
            .unlock_users
            .as_ref()
            .and_then(|u| u.first().cloned());
        let payload = discovery::payload(&discovery::Door {
            topics: &t,
            unlock_user: user.as_deref(),
            snapshot: self.settings.snapshot,
            sw_version: env!("CARGO_PKG_VERSION"),
        });
        self.publish(
            t.discovery(&dp),
            true,
            payload.to_string().into_bytes(),
            Item::Other,
        );
    }

    fn on_disconnect(&mut self, why: &str) {
        // Unacknowledged records go back to the head of the queue, oldest first.
        let mut back: Vec<(u64, LogRecord)> = self
            .inflight
            .drain()
            .map(|(_, i)| i)
            .chain(self.sent.drain(..))
            .filter_map(|i| match i {
                Item::Record(seq, r) => Some((seq, r)),
                Item::Other => None,
            })
            .collect();
        back.sort_by_key(|(seq, _)| *seq);
        {
            let mut o = lock(&self.outbox);
            for (_, r) in back.into_iter().rev() {
                o.records.push_front(r);
            }
            while o.records.len() > o.cap {
                o.records.pop_front();
                o.dropped += 1;
            }
        }
        // Said once per outage: on losing the broker, or on not reaching it at start.
        if self.connected || !std::mem::replace(&mut self.told_unreachable, true) {
            let message = format!(
                "mqtt: {} unreachable ({why}); deciding locally, events queued",
                self.settings.broker.url
            );
            self.shared
                .post(LogRecord::now(0, 0, Event::Fault { message }));
        }
        self.connected = false;
        self.told_unreachable = true;
    }

    fn on_message(&mut self, topic: &str, payload: &[u8]) {
        let t = &self.settings.topics;
        if let Some(user) = t.unlock_user(topic) {
            let user = user.to_owned();
            self.on_unlock(&user, payload);
            return;
        }
        if let Some(dp) = &self.settings.discovery_prefix
            && topic == format!("{dp}/{}", topics::HA_STATUS)
        {
            if payload == ONLINE.as_bytes() {
                // Home Assistant restarted: it needs the discovery and the states again.
                self.announce();
                self.published_version = None;
                let state = if self.lock_until.is_some() {
                    UNLOCKED
                } else {
                    LOCKED
                };
                self.text(self.settings.topics.state(), true, state);
                self.text(self.settings.topics.availability(), true, ONLINE);
            }
            return;
        }
        if topic.ends_with("/bundle") && !payload.is_empty() {
            self.bundles.offer(topic, payload);
        }
    }

    fn on_unlock(&mut self, user: &str, payload: &[u8]) {
        if payload != UNLOCK.as_bytes() {
            return; // "LOCK" and anything else: the door locks by itself.
        }
        let allowed = self
            .settings
            .unlock_users
            .as_ref()
            .is_some_and(|users| users.iter().any(|u| u == user));
        if allowed {
            self.shared.request_remote_unlock(user);
        } else if let Some(more) = self.refusals.admit(Instant::now()) {
            let message = format!(
                "remote unlock from {user:?} refused: not in mqtt.remote_unlock_users{}",
                if more > 0 {
                    format!(" ({more} more refused since the last such record)")
                } else {
                    String::new()
                }
            );
            self.shared
                .post(LogRecord::now(0, 0, Event::Fault { message }));
        }
    }

    fn goodbye(&mut self, connection: &mut Connection) {
        if self.connected {
            self.text(self.settings.topics.availability(), true, OFFLINE);
            let _ = self.client.try_disconnect();
            let end = Instant::now() + Duration::from_millis(500);
            while Instant::now() < end {
                match connection.recv_timeout(Duration::from_millis(50)) {
                    Ok(Ok(_)) | Err(RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
        }
    }
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Refusal records at a bounded rate: a flood on a topic must not wash the log.
#[derive(Default)]
struct Refusals {
    last: Option<Instant>,
    skipped: u32,
}

impl Refusals {
    /// `Some(skipped since the last record)` when a record may be written now.
    fn admit(&mut self, now: Instant) -> Option<u32> {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < REFUSAL_INTERVAL)
        {
            self.skipped = self.skipped.saturating_add(1);
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.skipped))
    }
}

/// The newest bundle offered and not yet taken; a second thread installs it (building and
/// self-testing a model takes seconds, and the connection must keep turning meanwhile).
struct BundleSlot {
    slot: Arc<Slot>,
}

/// A bundle offered on a topic (topic, bytes), and the bell that rings when one arrives.
type Slot = (Mutex<Option<(String, Vec<u8>)>>, Condvar);

impl BundleSlot {
    fn spawn(installer: Arc<Installer>, shared: Arc<Shared>) -> Self {
        let slot: Arc<Slot> = Arc::default();
        let s = slot.clone();
        let _ = std::thread::Builder::new()
            .name("mqtt-bundles".into())
            .spawn(move || {
                let mut refusals = Refusals::default();
                loop {
                    let (topic, bytes) = {
                        let mut g = lock(&s.0);
                        loop {
                            if let Some(b) = g.take() {
                                break b;
                            }
                            g = s.1.wait(g).unwrap_or_else(|p| p.into_inner());
                        }
                    };
                    install(&installer, &shared, &topic, bytes, &mut refusals);
                }
            });
        Self { slot }
    }

    /// Offers a bundle (a newer offer replaces one not yet taken).
    fn offer(&self, topic: &str, bytes: &[u8]) {
        *lock(&self.slot.0) = Some((topic.to_owned(), bytes.to_vec()));
        self.slot.1.notify_one();
    }
}

fn install(
    installer: &Installer,
    shared: &Shared,
    topic: &str,
    bytes: Vec<u8>,
    refusals: &mut Refusals,
) {
    let running = shared.version();
    let event = match installer.apply(shared, bytes) {
        Ok(a) => Event::ModelUpdate {
            version: a.version,
            accepted: true,
            reason: format!(
                "ok: version {} active ({}), from {topic}",
                a.version,
                facegate_models::gallery::people_count(a.people)
            ),
        },
        // The retained bundle again (a reconnect): the one running, nothing to say.
        Err(Refused {
            error: UpdateError::NotNewer { offered, .. },
            ..
        }) if offered == running => return,
        Err(Refused { version, error }) => {
            let Some(more) = refusals.admit(Instant::now()) else {
                return;
            };
            let mut reason = format!("refused from {topic}: {error}");
            if more > 0 {
                reason.push_str(&format!(
                    " ({more} more refused since the last such record)"
                ));
            }
            Event::ModelUpdate {
                version: version.unwrap_or(0),
                accepted: false,
                reason,
            }
        }
    };
    shared.post(LogRecord::now(0, running, event));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(frame: u64) -> LogRecord {
        LogRecord::now(
            frame,
            1,
            Event::Fault {
                message: String::new(),
            },
        )
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts() {
        let sender = MqttSender {
            outbox: Arc::new(Mutex::new(Outbox {
                records: VecDeque::new(),
                cap: 3,
                dropped: 0,
                snapshot: None,
            })),
        };
        for frame in 1..=5 {
            sender.send(&record(frame));
        }
        assert_eq!(sender.backlog(), (3, 2));
        let frames: Vec<u64> = lock(&sender.outbox)
            .records
            .iter()
            .map(|r| r.frame)
            .collect();
        assert_eq!(frames, vec![3, 4, 5]);
    }

    #[test]
    fn refusals_are_admitted_once_per_interval_with_a_count() {
        let mut r = Refusals::default();
        let t = Instant::now();
        assert_eq!(r.admit(t), Some(0));
        assert_eq!(r.admit(t + Duration::from_secs(1)), None);
        assert_eq!(r.admit(t + Duration::from_secs(2)), None);
        assert_eq!(
            r.admit(t + REFUSAL_INTERVAL + Duration::from_secs(1)),
            Some(2)
        );
    }
}
