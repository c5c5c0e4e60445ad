//! The whole door loop on simulated hardware: people enrolled from unmasked photos, then a
//! sequence of frames (an enrolled person, a stranger, a corrupt frame, another enrolled
//! person, a masked enrolled person). Checks the decoded recognition log and the relay pulses.

use std::path::PathBuf;
use std::time::Duration;

use std::sync::atomic::AtomicBool;

use facegate_device::app::{self, DoorConfig};
use facegate_device::live::{Live, Shared};
use facegate_device::policy::PolicyConfig;
use facegate_device::sim::camera::FileCamera;
use facegate_device::sim::relay::RecordingPin;
use facegate_device::ui::Screen;
use facegate_models::gallery::{Enrolment, Gallery, default_threshold};
use facegate_models::image_io;
use facegate_models::logrecord::{Event, FrameReader, LogRecord};
use facegate_models::pipeline::{Pipeline, PipelineConfig};
use facegate_tests::{models_dir, shared_dir};

fn mfr2(name: &str, n: u32) -> PathBuf {
    shared_dir().join(format!("faces/mfr2/{name}/{name}_{n:04}.png"))
}

#[test]
fn door_unlocks_for_enrolled_people_only_and_logs_every_decision() {
    let pipeline = Pipeline::load(
        &models_dir(),
        PipelineConfig {
            quantised: true,
            ..Default::default()
        },
    )
    .expect("pipeline");
    let kind = pipeline.config().embedder;
    let mut gallery = Gallery::new(
        kind,
        default_threshold(kind, true, false, Enrolment::PHOTOS),
    );
    for (name, n) in [("AdrianDunbar", 2), ("ArifAlvi", 3), ("BenAffleck", 3)] {
        let img = image_io::open(&mfr2(name, n)).expect("photo");
        let face = pipeline.main_face(&img).expect("pipeline").expect("a face");
        gallery.enrol(name, face.embedding).expect("enrol");
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let corrupt = tmp.path().join("corrupt.jpg");
    std::fs::write(&corrupt, b"\xff\xd8\xff\xe0 this camera frame got cut").expect("write");
    let frames = vec![
        mfr2("AdrianDunbar", 4),                      // enrolled, another photo
        shared_dir().join("faces/deepface/img3.jpg"), // never enrolled
        corrupt,                                      // a glitching camera
        mfr2("BenAffleck", 7),                        // enrolled, another photo
        mfr2("ArifAlvi", 1),                          // enrolled, wearing a mask
    ];
    let mut camera = FileCamera::new(frames, 3);
    let (pin, levels) = RecordingPin::new();
    let mut log = Vec::new();
    let config = DoorConfig {
        policy: PolicyConfig {
            window: 3,
            agree: 2,
            cooldown: Duration::ZERO,
        },
        unlock_for: Duration::ZERO,
        active_high: true,
        hold: Duration::ZERO,
        liveness: None,
        still_frames: 0,
    };
    let shared = Shared::new(Live {
        pipeline,
        gallery,
        version: 9,
    });
    let stop = AtomicBool::new(false);
    let mut screens: Vec<Screen> = Vec::new();
    let summary = app::run(
        &shared,
        &mut camera,
        pin,
        &mut log,
        &mut screens,
        &config,
        &stop,
    );

    let records: Vec<LogRecord> = FrameReader::new()
        .push(&log)
        .into_iter()
        .map(|r| r.expect("every frame decodes"))
        .collect();
    assert_eq!(summary.frames, 12);
    assert_eq!(summary.faults, 3);
    assert_eq!(records.len() as u64, summary.decisions + summary.faults);
    assert!(records.iter().all(|r| r.model_version == 9));
    let events: Vec<&Event> = records.iter().map(|r| &r.event).collect();

    // Adrian: seen (held, and the log says why), then unlocked on the second agreeing frame.
    assert!(
        matches!(events[0], Event::Held { person, reason, .. }
            if person == "AdrianDunbar" && reason.contains("confirming: 1 of 2")),
        "{:?}",
        events[0]
    );
    assert!(
        matches!(events[1], Event::Known { person, unlocked: true, .. } if person == "AdrianDunbar")
    );
    // The stranger: three attempts, counted, never unlocked.
    for (i, attempt) in (3..6).zip(1..) {
        assert!(
            matches!(events[i], Event::Stranger { attempt: a, .. } if *a == attempt),
            "{:?}",
            events[i]
        );
    }
    // The corrupt frame: three faults, loop carries on.
    for e in &events[6..9] {
        assert!(
            matches!(e, Event::Fault { message } if message.contains("unusable")),
            "{e:?}"
        );
    }
    // Ben: unlocked.
    assert!(events[9..12].iter().any(
        |e| matches!(e, Event::Known { person, unlocked: true, .. } if person == "BenAffleck")
    ));
    // Arif in a mask: whatever the score, never anyone else.
    for e in &events[12..] {
        assert!(
            !matches!(e, Event::Known { person, .. } | Event::Held { person, .. }
                if person != "ArifAlvi"),
            "{e:?}"
        );
    }
    // No unlock ever for a stranger record, and the relay pulsed once per unlock, ending locked.
    let unlocks = events
        .iter()
        .filter(|e| matches!(e, Event::Known { unlocked: true, .. }))
        .count() as u64;
    assert_eq!(unlocks, summary.unlocks);
    let levels = levels.lock().expect("levels").clone();
    assert_eq!(
        levels.iter().filter(|&&l| l).count() as u64,
        summary.unlocks
    );
    assert_eq!(levels.last(), Some(&false));

    // The screen: idle, then a welcome for each person let in, and "not recognised" for the
    // stranger, in that order.
    assert_eq!(screens.first(), Some(&Screen::Idle));
    let shown: Vec<String> = screens
        .iter()
        .filter(|s| matches!(s, Screen::Welcome { .. } | Screen::NotRecognised))
        .map(|s| {
            s.describe()
                .split(' ')
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(
        &shown[..3],
        [
            "welcome AdrianDunbar",
            "not-recognised",
            "welcome BenAffleck"
        ],
        "{screens:?}"
    );
}
