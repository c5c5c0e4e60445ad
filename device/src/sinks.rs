//! Where each log record goes besides the serial log: the broker link and the Wiegand output.
//! The loop writes one record to [`Sinks`]; the serial log's answer alone says whether it was
//! logged (the broker and Wiegand have their own bounded queues and never block).

use std::collections::BTreeMap;
use std::sync::Arc;

use facegate_models::logrecord::{Event, LogRecord};

use crate::app::RecordSink;
use crate::live::Shared;
use crate::logout::LogSender;
use crate::mqtt::MqttSender;
use crate::wiegand::WiegandSender;

/// The Wiegand output and each person's card number.
pub struct CardReader {
    /// The worker.
    pub sender: WiegandSender,
    /// Card number per enrolled name.
    pub cards: BTreeMap<String, u32>,
}

/// The serial log, and the optional others.
pub struct Sinks {
    /// The serial log.
    pub log: LogSender,
    /// The broker link.
    pub mqtt: Option<MqttSender>,
    /// Send a picture of the face with each decision to the broker (`[mqtt] snapshot`).
    pub snapshots: bool,
    /// The Wiegand output.
    pub wiegand: Option<CardReader>,
    /// For faults found on the way (a person without a card).
    pub shared: Arc<Shared>,
}

impl RecordSink for Sinks {
    fn record(&mut self, record: &LogRecord) -> bool {
        let logged = self.log.record(record);
        if let Some(m) = &self.mqtt {
            m.send(record);
        }
        if let (
            Some(w),
            Event::Known {
                person,
                unlocked: true,
                ..
            },
        ) = (&self.wiegand, &record.event)
        {
            let problem = match w.cards.get(person) {
                Some(card) if w.sender.send(*card) => None,
                Some(card) => Some(format!(
                    "wiegand: card {card} of {person:?} not sent (output busy or stopped)"
                )),
                None => Some(format!(
                    "wiegand: {person:?} has no card number in [wiegand.cards]: nothing sent"
                )),
            };
            if let Some(message) = problem {
                self.shared.post(LogRecord::now(
                    record.frame,
                    record.model_version,
                    Event::Fault { message },
                ));
            }
        }
        logged
    }

    fn wants_snapshots(&self) -> bool {
        self.snapshots && self.mqtt.is_some()
    }

    fn snapshot(&mut self, face: image::RgbImage) {
        if let Some(m) = &self.mqtt {
            m.snapshot(face);
        }
    }
}

impl Sinks {
    /// Stops the workers after what they hold has gone out.
    pub fn close(self) {
        if let Some(w) = self.wiegand {
            w.sender.close();
        }
        self.log.close();
    }
}
