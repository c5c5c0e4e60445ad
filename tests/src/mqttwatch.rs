//! A test's own MQTT client: subscribes, keeps every message it receives, and can publish.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use facegate_fleet::Broker;
use rumqttc::{Client, Event, Packet, QoS};

/// One message received.
#[derive(Clone, Debug)]
pub struct Message {
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Delivered as a retained message.
    pub retain: bool,
}

impl Message {
    /// The payload as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// A client collecting what it receives on its filters.
pub struct Watcher {
    /// The client (to publish with).
    pub client: Client,
    messages: Arc<Mutex<Vec<Message>>>,
    connected: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Watcher {
    /// Connects as `id` and subscribes to `filters` (again on each reconnect). With
    /// `persistent`, the broker keeps the session and queues QoS 1 messages while this
    /// client is away (for a broker restart).
    pub fn start(broker: &Broker, id: &str, filters: &[&str], persistent: bool) -> Self {
        let mut options = broker.options(id, None, 80 << 20).expect("broker options");
        options.set_clean_session(!persistent);
        let (client, mut connection) = Client::new(options, 64);
        let messages: Arc<Mutex<Vec<Message>>> = Arc::default();
        let connected = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let filters: Vec<String> = filters.iter().map(|f| (*f).to_owned()).collect();
        let (m, c, s, sub) = (
            messages.clone(),
            connected.clone(),
            stop.clone(),
            client.clone(),
        );
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match connection.recv_timeout(Duration::from_millis(100)) {
                    Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                        for f in &filters {
                            let _ = sub.try_subscribe(f.clone(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => c.store(true, Ordering::Relaxed),
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                        m.lock().expect("messages").push(Message {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        });
                    }
                    Ok(Ok(_)) | Err(rumqttc::RecvTimeoutError::Timeout) => {}
                    Ok(Err(_)) => {
                        c.store(false, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(rumqttc::RecvTimeoutError::Disconnected) => break,
                }
            }
        });
        let w = Self {
            client,
            messages,
            connected,
            stop,
        };
        assert!(
            w.wait(Duration::from_secs(10), |_| true, true),
            "the test client could not subscribe"
        );
        w
    }

    fn wait(&self, timeout: Duration, done: impl Fn(&[Message]) -> bool, subscribed: bool) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            // A copy: `done` may call back into this watcher.
            if (!subscribed || self.connected.load(Ordering::Relaxed)) && done(&self.messages()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits until `done` holds for the messages so far; false on timeout.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&[Message]) -> bool) -> bool {
        self.wait(timeout, done, false)
    }

    /// Every message so far.
    pub fn messages(&self) -> Vec<Message> {
        self.messages.lock().expect("messages").clone()
    }

    /// The last payload on `topic`, as text.
    pub fn last(&self, topic: &str) -> Option<String> {
        self.messages
            .lock()
            .expect("messages")
            .iter()
            .rev()
            .find(|m| m.topic == topic)
            .map(Message::text)
    }

    /// Publishes and gives the client a moment to send it.
    pub fn publish(&self, topic: &str, retain: bool, payload: &[u8]) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.to_vec())
            .expect("publish");
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
        self.stop.store(true, Ordering::Relaxed);
    }
}
