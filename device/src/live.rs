//! The model the door is using right now, and what the loop shares with the update server.
//!
//! The loop takes a cheap `Arc` snapshot of [`Live`] for each frame; the update server builds a
//! complete new `Live`, self-tests it, and swaps the pointer. A frame is always recognised by
//! one consistent model, and the switch needs no restart.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};

use facegate_models::bundle::{Bundle, MaskedSelfTest, SelfTest, self_test_pattern};
use facegate_models::detect::Detector;
use facegate_models::embed::{EmbedderKind, cosine};
use facegate_models::gallery::{Decision, Gallery};
use facegate_models::logrecord::LogRecord;
use facegate_models::pipeline::Pipeline;

/// How many recent records `facegate status` can show.
pub const RECENT: usize = 20;

/// Most records other threads may have waiting for the loop.
pub const OUTBOX: usize = 256;

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
    pub fn from_bundle(bundle: &Bundle, yunet: &[u8]) -> Result<Live, LiveError> {
        Self::from_bundle_with(bundle, yunet, None)
    }

    /// [`Live::from_bundle`], with the detector's input side set by the door
    /// (`door.detect_side`): a door detects on a reduced copy of each frame (faces at a door
    /// are large) and aligns from the full-resolution frame; photos keep the bundle's side.
    pub fn from_bundle_with(
        bundle: &Bundle,
        yunet: &[u8],
        detect_side: Option<u32>,
    ) -> Result<Live, LiveError> {
        let h = &bundle.header;
        let mut settings = h.detector;
        if let Some(side) = detect_side {
            settings.max_side = side;
        }
        let detector = Detector::from_bytes(yunet, settings).map_err(LiveError::Detector)?;
        // Templates made on refined landmarks need the door to refine the same way; masked
        // templates need the masked path.
        let pipeline = Pipeline::from_bundle(detector, bundle).map_err(LiveError::Embedder)?;
        let live = Live {
            pipeline,
            gallery: bundle.gallery(),
            version: h.model_version,
        };
        let test = bundle
            .payload
            .self_test
            .as_ref()
            .ok_or(LiveError::NoSelfTest)?;
        live.self_test(test)?;
        live.masked_self_test(test, bundle.payload.masked_self_test.as_ref())?;
        Ok(live)
    }

    /// With a masked path: its networks must make of the self-test pattern what they made on
    /// the laptop (mask state and embedding), or the door keeps its current model.
    fn masked_self_test(
        &self,
        test: &SelfTest,
        expected: Option<&MaskedSelfTest>,
    ) -> Result<(), LiveError> {
        let Some(route) = self.pipeline.mask_route() else {
            return Ok(());
        };
        let fail = |got: String| LiveError::SelfTest {
            expected: "the masked path computing as on the laptop".into(),
            got,
        };
        let (seed, Some(expected)) = (test.seed(), expected) else {
            return Err(fail(
                "no masked self-test in the bundle: make it again with `facegate enrol`".into(),
            ));
        };
        let got = route.self_test(seed).map_err(LiveError::SelfTestRun)?;
        let agreement = if got.embedding.len() == expected.embedding.len() {
            cosine(&got.embedding, &expected.embedding)
        } else {
            0.0
        };
        // The logit is a sum over thousands of products: a few thousandths between machines.
        let state_diff = (got.mask_state - expected.mask_state).abs();
        if agreement.is_nan()
            || agreement < PATTERN_AGREEMENT
            || state_diff.is_nan()
            || state_diff > 0.05
        {
            return Err(fail(format!(
                "embedding cosine {agreement:.4}, mask-state logit {:.4} against {:.4}",
                got.mask_state, expected.mask_state
            )));
        }
        Ok(())
    }

    /// Runs the bundle's self-test (see [`SelfTest`]) on this door's runtime.
    pub fn self_test(&self, test: &SelfTest) -> Result<(), LiveError> {
        let embedder = self.pipeline.embedder();
        let fail = |expected: &str, got: String| LiveError::SelfTest {
            expected: expected.to_owned(),
            got,
        };
        match test {
            SelfTest::Pattern {
                label,
                known,
                seed,
                embedding,
            } => {
                let got = embedder
                    .embed(&self_test_pattern(*seed))
                    .map_err(LiveError::SelfTestRun)?;
                let agreement = if got.len() == embedding.len() {
                    cosine(&got, embedding)
                } else {
                    0.0
                };
                if agreement.is_nan() || agreement < PATTERN_AGREEMENT {
                    return Err(fail(
                        "the test pattern embedded as on the laptop",
                        format!("cosine {agreement:.4} (the networks differ)"),
                    ));
                }
                // A classifier (the scratch CNN) may name anyone for a pattern it never saw:
                // for it, the pattern only checks that the network computes as on the laptop.
                if self.gallery.embedder != EmbedderKind::Scratch
                    && let Decision::Known { person, .. } = self.gallery.identify(&got)
                {
                    let name = self.gallery.people.get(person).map(|p| p.name.clone());
                    return Err(fail(
                        "a face-free pattern refused as a stranger",
                        format!("accepted as {name:?}: the threshold lets anything in"),
                    ));
                }
                self.expect_known(label, known)
            }
        }
    }

    /// `embedding` must be identified as `label`.
    fn expect_known(&self, label: &str, embedding: &[f32]) -> Result<(), LiveError> {
        match self.gallery.identify(embedding) {
            Decision::Known { person, .. }
                if self.gallery.people.get(person).map(|p| p.name.as_str()) == Some(label) =>
            {
                Ok(())
            }
            other => Err(LiveError::SelfTest {
                expected: label.to_owned(),
                got: format!("{other:?}"),
            }),
        }
    }
}

/// How closely the door's embedding of the self-test pattern must match the laptop's: the
/// same files through the same tract, on x86 or ARM, agree to about 1e-5.
const PATTERN_AGREEMENT: f32 = 0.99;

/// Why a verified bundle could not become the running model.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The detector does not load with the bundle's settings.
    #[error("detector: {0}")]
    Detector(#[source] facegate_models::Error),
    /// The bundle's network files (embedder, refiner, masked path) do not load, are missing
    /// or are not the pinned ones.
    #[error("networks: {0}")]
    Embedder(#[source] facegate_models::Error),
    /// Made by a tool that adds no self-test sample.
    #[error("the bundle has no self-test sample: make it again with `facegate enrol`")]
    NoSelfTest,
    /// The self-test sample could not be decoded or embedded.
    #[error("self-test: {0}")]
    SelfTestRun(#[source] facegate_models::Error),
    /// The known face was not identified as the person it shows.
    #[error("self-test failed: expected {expected}, got {got}")]
    SelfTest {
        /// The enrolled name the sample must be identified as.
        expected: String,
        /// What the door decided instead.
        got: String,
    },
}

/// State shared by the loop and the update server.
pub struct Shared {
    /// `None` while the door waits for its first usable model (it stays shut).
    live: RwLock<Option<Arc<Live>>>,
    /// Records the loop has written, newest last (for status).
    pub recent: Mutex<VecDeque<LogRecord>>,
    /// Records other threads want logged; the loop writes them (it owns the log).
    pub outbox: Mutex<Vec<LogRecord>>,
    /// Version of a verified bundle being installed right now (0: none), for the screen.
    pub installing: std::sync::atomic::AtomicU32,
    /// Turns of the door loop so far: the systemd watchdog is fed only while it moves.
    pub heartbeat: std::sync::atomic::AtomicU64,
    /// A remote unlock allowed by the broker link, waiting for the loop (who sent it).
    remote_unlock: Mutex<Option<String>>,
}

impl Shared {
    /// Shared state around a first model.
    pub fn new(live: Live) -> Self {
        Self::with(Some(Arc::new(live)))
    }

    /// Shared state of a door that has no usable model yet (none stored, or only bundles this
    /// build refuses): it stays shut, and the update server or the broker may install one.
    pub fn without_model() -> Self {
        Self::with(None)
    }

    fn with(live: Option<Arc<Live>>) -> Self {
        Self {
            live: RwLock::new(live),
            recent: Mutex::default(),
            outbox: Mutex::default(),
            installing: std::sync::atomic::AtomicU32::new(0),
            heartbeat: std::sync::atomic::AtomicU64::new(0),
            remote_unlock: Mutex::default(),
        }
    }

    /// Asks the loop to open the door for a remote command from `by` (already checked against
    /// the config by the broker link). Commands arriving faster than the loop turns collapse
    /// into one.
    pub fn request_remote_unlock(&self, by: &str) {
        *self.remote_unlock.lock().unwrap_or_else(|p| p.into_inner()) = Some(by.to_owned());
    }

    /// The pending remote unlock, if any (taken).
    pub fn take_remote_unlock(&self) -> Option<String> {
        self.remote_unlock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The model in use now, `None` while the door waits for one.
    pub fn current(&self) -> Option<Arc<Live>> {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The running model's version, 0 while there is none (every bundle's version is above
    /// 0, and the store's floor still refuses old ones).
    pub fn version(&self) -> u32 {
        self.current().map_or(0, |l| l.version)
    }

    /// Switches to a new model.
    pub fn swap(&self, live: Live) {
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(live));
    }

    /// Queues a record for the loop to write. The queue is bounded: past [`OUTBOX`] records
    /// the oldest is dropped (a flood from another thread must not grow memory).
    pub fn post(&self, record: LogRecord) {
        let mut q = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= OUTBOX {
            q.remove(0);
        }
        q.push(record);
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
