//! The one update flow, for start-up and the network alike (the embassy-boot / RAUC shape):
//!
//! ```text
//!   offered bytes ──verify signature──▶ parse ──version rules──▶ build + self-test
//!        │ refused        │ refused          │ refused                │ refused
//!        ▼                ▼                  ▼                        ▼
//!   (running model and store unchanged, the reason returned as an UpdateError)
//!
//!   build + self-test ──store (atomic, marked good, floor raised)──▶ swap into the loop
//! ```
//!
//! Version rules: an offered version must be above the **floor** (the highest version this
//! door ever confirmed good, kept by the store apart from the bundles) and above the running
//! one, and may not jump more than `max_step` past the floor, so a typo such as 4294967295
//! cannot freeze the door. A door that got a runaway version anyway is recovered locally with
//! `facegate-device reset-floor` (root on the door, never the network).
//!
//! At start-up the active bundle must verify, be at or above the floor and pass its
//! self-test; if it does not, the door falls back to the previous bundle only when the store
//! marked it good, and says so in a fault record (a silent rollback could let a revoked person
//! in). Nothing else is ever used.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ed25519_dalek::VerifyingKey;
use facegate_models::bundle::{self, Bundle, BundleError};
use facegate_models::model_files::sha256_hex;

use crate::live::{Live, LiveError, Shared};
use crate::update::store::ModelStore;

/// How far past the floor a new version may jump, unless the config says otherwise.
pub const DEFAULT_MAX_STEP: u32 = 1000;

/// Why an offered bundle was not installed. The running model and the store are unchanged.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// Signature, key or structure.
    #[error("{0}")]
    Bundle(#[from] BundleError),
    /// A replay, or an older bundle.
    #[error("version {offered} is not newer than the active version {floor}")]
    NotNewer {
        /// Version offered.
        offered: u32,
        /// Highest version confirmed here (or running).
        floor: u32,
    },
    /// A version far beyond the floor: most likely a typo that would freeze the door.
    #[error(
        "version {offered} jumps more than {max_step} past {floor}, the highest this door has \
         confirmed: sign it again as {next} (or raise update.max_version_step)",
        next = floor.saturating_add(1)
    )]
    TooFarAhead {
        /// Version offered.
        offered: u32,
        /// Highest version confirmed here.
        floor: u32,
        /// The configured step.
        max_step: u32,
    },
    /// Made for another door (or group), or for a door when this one has no id.
    #[error(
        "the bundle is for {wanted}, and this door is {this}: make it with `enrol --door` \
         naming this door or one of its groups",
        wanted = bundle_door.as_deref().map_or("any door without an id".to_owned(), |d| format!("door {d:?}")),
        this = door.as_deref().map_or("a door without an id (model.door)".to_owned(), |d| format!("{d:?}"))
    )]
    WrongDoor {
        /// The door the bundle names.
        bundle_door: Option<String>,
        /// This door's id.
        door: Option<String>,
    },
    /// The bundle's networks do not load or its self-test failed.
    #[error("{0}")]
    Model(#[from] LiveError),
    /// Another update is being installed right now.
    #[error("busy: another update is in progress, try again")]
    Busy,
    /// The store could not keep it (full disk, failing card).
    #[error("cannot store the bundle ({source}); still on version {active}")]
    Store {
        /// The write that failed.
        #[source]
        source: std::io::Error,
        /// The version still running.
        active: u32,
    },
}

/// What the rules allow.
#[derive(Clone, Debug)]
pub struct Rules {
    /// Largest jump past the floor.
    pub max_step: u32,
    /// This door's id, if it has one.
    pub door: Option<String>,
    /// Groups it belongs to.
    pub groups: Vec<String>,
    /// The detector's input side on this door (`door.detect_side`), `None` for the bundle's.
    pub detect_side: Option<u32>,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            max_step: DEFAULT_MAX_STEP,
            door: None,
            groups: Vec::new(),
            detect_side: None,
        }
    }
}

impl Rules {
    /// Whether a bundle made for `wanted` may run here: one naming this door or one of its
    /// groups; one naming no door only on a door without an id.
    fn admits(&self, wanted: Option<&str>) -> bool {
        match (wanted, &self.door) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some(w), _) => self.door.as_deref() == Some(w) || self.groups.iter().any(|g| g == w),
        }
    }
}

/// What start-up found.
pub struct Started {
    /// The model to run, if any bundle passed.
    pub live: Option<Live>,
    /// What went wrong on the way, for the log (fallbacks, unusable bundles).
    pub faults: Vec<String>,
}

/// Trusted keys, the store, the detector and the rules: everything the flow needs.
pub struct Installer {
    trusted: Vec<VerifyingKey>,
    store: Arc<dyn ModelStore>,
    yunet: Vec<u8>,
    rules: Rules,
    /// One update at a time, whichever way it came (a push, the broker).
    busy: std::sync::Mutex<()>,
}

/// The update slot, held while one update is received and installed.
pub struct Reservation<'a>(#[allow(dead_code)] std::sync::MutexGuard<'a, ()>);

/// A bundle now running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Its version.
    pub version: u32,
    /// Enrolled people.
    pub people: usize,
}

/// Why [`Installer::apply`] left the running model in place.
#[derive(Debug)]
pub struct Refused {
    /// The version offered, once the signature was checked (`None` before: nothing of an
    /// unverified bundle is believed, not even its version).
    pub version: Option<u32>,
    /// Why.
    pub error: UpdateError,
}

impl Installer {
    /// An installer over these parts.
    pub fn new(
        trusted: Vec<VerifyingKey>,
        store: Arc<dyn ModelStore>,
        yunet: Vec<u8>,
        rules: Rules,
    ) -> Self {
        Self {
            trusted,
            store,
            yunet,
            rules,
            busy: std::sync::Mutex::new(()),
        }
    }

    /// Takes the one update slot, or `None` when another update holds it. A push takes it
    /// before reading the bundle's body, so a second push is answered "busy" at once, however
    /// slowly the first one sends.
    pub fn try_reserve(&self) -> Option<Reservation<'_>> {
        self.busy.try_lock().ok().map(Reservation)
    }

    /// The whole flow on a running door, for every way a bundle arrives: the signature and
    /// version rules ([`Installer::check`]), then the "Updating" screen while the model is
    /// built, self-tested and stored ([`Installer::activate`]), then the swap into the loop.
    /// One at a time: a second bundle arriving meanwhile is refused as busy.
    pub fn apply(&self, shared: &Shared, bytes: Vec<u8>) -> Result<Applied, Refused> {
        let Some(slot) = self.try_reserve() else {
            return Err(Refused {
                version: None,
                error: UpdateError::Busy,
            });
        };
        self.apply_reserved(&slot, shared, bytes)
    }

    /// [`Installer::apply`] with the slot already taken.
    pub fn apply_reserved(
        &self,
        _slot: &Reservation<'_>,
        shared: &Shared,
        bytes: Vec<u8>,
    ) -> Result<Applied, Refused> {
        let running = shared.version();
        let bundle = self.check(&bytes, running).map_err(|error| Refused {
            version: None,
            error,
        })?;
        let offered = bundle.header.model_version;
        // Signature checked: the door may say it is updating while the model loads.
        shared.installing.store(offered, Ordering::Relaxed);
        let result = self.activate(bytes, &bundle, running);
        shared.installing.store(0, Ordering::Relaxed);
        let live = result.map_err(|error| Refused {
            version: Some(offered),
            error,
        })?;
        shared.swap(live);
        Ok(Applied {
            version: offered,
            people: bundle.header.labels.len(),
        })
    }

    /// The store behind this installer.
    pub fn store(&self) -> &Arc<dyn ModelStore> {
        &self.store
    }

    /// First half of an update: the signature (before anything is parsed), then the version
    /// rules against the floor and the running version.
    pub fn check(&self, bytes: &[u8], running: u32) -> Result<Bundle, UpdateError> {
        let bundle = bundle::verify(bytes, &self.trusted)?;
        if !self.rules.admits(bundle.header.door.as_deref()) {
            return Err(UpdateError::WrongDoor {
                bundle_door: bundle.header.door.clone(),
                door: self.rules.door.clone(),
            });
        }
        let offered = bundle.header.model_version;
        let state = self.store.state();
        let floor = if state.recovered {
            state.floor
        } else {
            state.floor.max(running)
        };
        if offered <= floor {
            return Err(UpdateError::NotNewer { offered, floor });
        }
        if offered - floor > self.rules.max_step {
            return Err(UpdateError::TooFarAhead {
                offered,
                floor,
                max_step: self.rules.max_step,
            });
        }
        Ok(bundle)
    }

    /// Second half: stage the bundle in the store (so its bytes are not held while the model
    /// is built: the door's peak memory), build the model and self-test it, then install the
    /// staged bundle (marked good, floor raised). Returns the model for the caller to swap in.
    pub fn activate(
        &self,
        bytes: Vec<u8>,
        bundle: &Bundle,
        running: u32,
    ) -> Result<Live, UpdateError> {
        let store_error = |source| UpdateError::Store {
            source,
            active: running,
        };
        let staged = self.store.stage(bytes).map_err(store_error)?;
        let live = Live::from_bundle_with(bundle, &self.yunet, self.rules.detect_side)?;
        self.store
            .install_staged(staged, bundle.header.model_version)
            .map_err(store_error)?;
        Ok(live)
    }

    /// Both halves.
    pub fn install(&self, bytes: Vec<u8>, running: u32) -> Result<Live, UpdateError> {
        let bundle = self.check(&bytes, running)?;
        self.activate(bytes, &bundle, running)
    }

    /// Recovery (a signed request, or `facegate-device reset-floor`): the next update must be
    /// above `floor`, whatever version runs now.
    pub fn recover(&self, floor: u32) -> std::io::Result<()> {
        self.store.reset_floor(floor)
    }

    /// A stored bundle, checked again: signature, structure, self-test. Its bytes are let go
    /// once parsed, before the model is built.
    fn load(&self, bytes: Vec<u8>) -> Result<Live, UpdateError> {
        let bundle = bundle::verify(&bytes, &self.trusted)?;
        drop(bytes);
        Ok(Live::from_bundle_with(
            &bundle,
            &self.yunet,
            self.rules.detect_side,
        )?)
    }

    /// Start-up: the stored model (active, else the previous one if it was marked good), then
    /// the config's first bundle when it is newer. An error only when a first bundle the config
    /// names is refused and nothing else can run.
    pub fn start(&self, first: Option<Vec<u8>>) -> Result<Started, UpdateError> {
        let mut started = self.start_stored();
        if let Some(bytes) = first {
            self.offer_first(&mut started, bytes)?;
        }
        Ok(started)
    }

    /// The first half of [`Installer::start`]: the stored model, checked again. Each bundle's
    /// bytes are let go before its model is built.
    pub fn start_stored(&self) -> Started {
        let state = self.store.state();
        let mut faults = Vec::new();
        let mut live = None;
        if let Some(bytes) = self.store.active() {
            let sha256 = sha256_hex(&bytes);
            match self.load(bytes) {
                Ok(l) if l.version < state.floor => faults.push(format!(
                    "the active bundle is version {}, below {}, the highest this door \
                     confirmed: not used",
                    l.version, state.floor
                )),
                Ok(l) => {
                    if !state.is_good_digest(&sha256)
                        && let Err(e) = self.store.mark_good(&sha256, l.version)
                    {
                        faults.push(format!("cannot mark the active bundle good: {e}"));
                    }
                    live = Some(l);
                }
                Err(e) => faults.push(format!("the active bundle is unusable: {e}")),
            }
        }
        if live.is_none()
            && let Some(bytes) = self.store.previous()
        {
            if !state.is_good(&bytes) {
                faults.push("the previous bundle was never marked good here: not used".into());
            } else {
                match self.load(bytes) {
                    Ok(l) => {
                        if !faults.is_empty() {
                            faults.push(format!(
                                "FELL BACK to the previous bundle, version {} (marked good): \
                                 people removed since may be let in; push a version above {}",
                                l.version, state.floor
                            ));
                        }
                        live = Some(l);
                    }
                    Err(e) => faults.push(format!("the previous bundle is unusable: {e}")),
                }
            }
        }
        Started { live, faults }
    }

    /// The second half of [`Installer::start`]: the config's first bundle, installed when it
    /// is newer than the stored model. The first bundle stays in the config after it was
    /// installed, so "not newer" is normal while a model runs; any other refusal is an error.
    pub fn offer_first(&self, started: &mut Started, bytes: Vec<u8>) -> Result<(), UpdateError> {
        let running = started.live.as_ref().map_or(0, |l| l.version);
        // One check (the signature once, then the rules).
        match self.check(&bytes, running) {
            Ok(bundle) => started.live = Some(self.activate(bytes, &bundle, running)?),
            Err(UpdateError::NotNewer { .. }) if started.live.is_some() => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::store::MemoryStore;

    #[test]
    fn version_rules() {
        let store = Arc::new(MemoryStore::default());
        let key = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        let installer = Installer::new(
            vec![key.verifying_key()],
            store.clone(),
            Vec::new(),
            Rules {
                max_step: 10,
                ..Rules::default()
            },
        );
        let make = |v: u32| {
            let mut g = facegate_models::gallery::Gallery::new(
                facegate_models::embed::EmbedderKind::SFace,
                0.48,
            );
            let mut t = vec![0.0; 128];
            t[0] = 1.0;
            g.enrol("ann", t).expect("enrol");
            Bundle::new(&g, true, v, 0, Default::default(), Vec::new(), None).sign(&key)
        };
        store.mark_good(&sha256_hex(b"v5"), 5).expect("floor");
        assert!(matches!(
            installer.check(&make(5), 3),
            Err(UpdateError::NotNewer { floor: 5, .. })
        ));
        assert!(matches!(
            installer.check(&make(7), 8),
            Err(UpdateError::NotNewer { floor: 8, .. })
        ));
        let err = installer.check(&make(u32::MAX), 5).expect_err("runaway");
        assert!(matches!(err, UpdateError::TooFarAhead { .. }));
        assert!(err.to_string().contains("sign it again as 6"), "{err}");
        assert!(installer.check(&make(15), 5).is_ok());
        assert!(installer.check(&make(16), 5).is_err());
        // A door that confirmed a runaway version is frozen until recovered...
        store.reset_floor(u32::MAX - 1).expect("floor");
        store
            .install(&make(u32::MAX), u32::MAX)
            .expect("the runaway version was confirmed");
        assert!(installer.check(&make(6), u32::MAX).is_err());
        // ...then the next honest version installs, even though the runaway one still runs.
        installer.recover(5).expect("recover");
        assert!(installer.check(&make(6), u32::MAX).is_ok());
        assert!(installer.check(&make(5), u32::MAX).is_err());
    }

    /// Finding: a bundle named no door, so one made for another door installed on any door
    /// with the same key.
    #[test]
    fn bundles_run_only_on_the_door_or_group_they_name() {
        let rules = |door: Option<&str>| Rules {
            door: door.map(str::to_owned),
            groups: vec!["house".into()],
            ..Rules::default()
        };
        assert!(rules(Some("front")).admits(Some("front")));
        assert!(rules(Some("front")).admits(Some("house")));
        assert!(!rules(Some("front")).admits(Some("garage")));
        assert!(!rules(Some("front")).admits(None));
        let anonymous = Rules::default();
        assert!(anonymous.admits(None));
        assert!(!anonymous.admits(Some("front")));
    }
}
