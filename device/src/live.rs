//! The model the door is using right now, and what the loop shares with the update server.
//!
//! The loop takes a cheap `Arc` snapshot of [`Live`] for each frame; the update server builds a
//! complete new `Live`, self-tests it, and swaps the pointer. A frame is always recognised by
//! one consistent model, and the switch needs no restart.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};

use facegate_models::bundle::{Bundle, SelfTest};
use facegate_models::detect::Detector;
use facegate_models::embed::Embedder;
use facegate_models::gallery::{Decision, Gallery};
use facegate_models::image_io;
use facegate_models::logrecord::LogRecord;
use facegate_models::pipeline::Pipeline;
use facegate_models::refine;

/// How many recent records `facegate status` can show.
pub const RECENT: usize = 20;

/// A ready-to-run model: pipeline, gallery and version.
pub struct Live {
    /// Detector and embedder.
    pub pipeline: Pipeline,
    /// Enrolled people and threshold.
    pub gallery: Gallery,
    /// Bundle version.
    pub version: u32,
}

impl Live {
    /// Builds a model from a verified bundle and the detector file's bytes, and runs the
    /// bundle's self-test. Any failure leaves the caller's current model untouched.
    pub fn from_bundle(bundle: &Bundle, yunet: &[u8]) -> Result<Live, String> {
        let h = &bundle.header;
        let detector =
            Detector::from_bytes(yunet, h.detector).map_err(|e| format!("detector: {e}"))?;
        let embedder = Embedder::from_files(h.embedder, h.quantised, &bundle.payload.models)
            .map_err(|e| format!("embedder: {e}"))?;
        let mut pipeline = Pipeline::from_parts(detector, embedder);
        // Templates made on refined landmarks need the door to refine the same way.
        if let Some(r) = refine::from_files(&bundle.payload.models)
            .map_err(|e| format!("landmark refiner: {e}"))?
        {
            pipeline = pipeline.with_refiner(r);
        }
        let live = Live {
            pipeline,
            gallery: bundle.gallery(),
            version: h.model_version,
        };
        let test = bundle
            .payload
            .self_test
            .as_ref()
            .ok_or("the bundle has no self-test sample")?;
        live.self_test(test)?;
        Ok(live)
    }

    /// Embeds the known crop and checks it is identified as the expected person.
    pub fn self_test(&self, test: &SelfTest) -> Result<(), String> {
        let crop = image_io::decode(&test.crop_png).map_err(|e| format!("self-test image: {e}"))?;
        let embedding = self
            .pipeline
            .embedder()
            .embed(&crop)
            .map_err(|e| format!("self-test: {e}"))?;
        match self.gallery.identify(&embedding) {
            Decision::Known { person, .. } if self.gallery.people[person].name == test.label => {
                Ok(())
            }
            other => Err(format!(
                "self-test failed: expected {}, got {other:?}",
                test.label
            )),
        }
    }
}

/// State shared by the loop and the update server.
pub struct Shared {
    live: RwLock<Arc<Live>>,
    /// Records the loop has written, newest last (for status).
    pub recent: Mutex<VecDeque<LogRecord>>,
    /// Records other threads want logged; the loop writes them (it owns the log).
    pub outbox: Mutex<Vec<LogRecord>>,
    /// Version of a verified bundle being installed right now (0: none), for the screen.
    pub installing: std::sync::atomic::AtomicU32,
}

impl Shared {
    /// Shared state around a first model.
    pub fn new(live: Live) -> Self {
        Self {
            live: RwLock::new(Arc::new(live)),
            recent: Mutex::default(),
            outbox: Mutex::default(),
            installing: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// The model in use now.
    pub fn current(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Switches to a new model.
    pub fn swap(&self, live: Live) {
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(live);
    }

    /// Queues a record for the loop to write.
    pub fn post(&self, record: LogRecord) {
        self.outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
    }

    /// Remembers a written record for status.
    pub fn remember(&self, record: &LogRecord) {
        let mut r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        r.push_back(record.clone());
        while r.len() > RECENT {
            r.pop_front();
        }
    }
}
