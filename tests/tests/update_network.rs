//! Signed model updates over TCP on 127.0.0.1, against the real server and the running loop:
//! tampered, truncated, wrong-key, oversized, slow and concurrent pushes are refused with a
//! clear answer and the old model keeps serving; a good push is used for the next frames; a
//! replay of an older version is refused; status reports the active version.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use facegate::cmd::push::push_bytes;
use facegate_device::app::{self, DoorConfig};
use facegate_device::live::{Live, Shared};
use facegate_device::policy::PolicyConfig;
use facegate_device::sim::camera::FileCamera;
use facegate_device::sim::relay::RecordingPin;
use facegate_device::ui::Screen;
use facegate_device::update::server::{Limits, UpdateServer};
use facegate_device::update::store::{FileStore, MemoryStore, ModelStore};
use facegate_models::bundle::{self, Bundle, SelfTest};
use facegate_models::gallery::{Gallery, default_threshold};
use facegate_models::image_io;
use facegate_models::logrecord::{Event, FrameReader};
use facegate_models::model_files::{EDGEFACE_INT8, YUNET};
use facegate_models::pipeline::{Pipeline, PipelineConfig};
use facegate_models::wire;
use facegate_tests::{models_dir, shared_dir};

fn mfr2(name: &str, n: u32) -> std::path::PathBuf {
    shared_dir().join(format!("faces/mfr2/{name}/{name}_{n:04}.png"))
}

/// A signed bundle enrolling `people` (name, unmasked photo number), version `version`.
fn make_bundle(
    pipeline: &Pipeline,
    people: &[(&str, u32)],
    version: u32,
    key: &SigningKey,
) -> Vec<u8> {
    let mut gallery = Gallery::new(
        pipeline.config().embedder,
        default_threshold(pipeline.config().embedder, true, false, false),
    );
    let mut self_test = None;
    for (name, n) in people {
        let img = image_io::open(&mfr2(name, *n)).expect("photo");
        let face = pipeline.main_face(&img).expect("pipeline").expect("face");
        if self_test.is_none() {
            let crop = facegate_models::align::warp(&img, &face.transform).expect("crop");
            let mut png = std::io::Cursor::new(Vec::new());
            crop.write_to(&mut png, image::ImageFormat::Png)
                .expect("png");
            self_test = Some(SelfTest {
                label: name.to_string(),
                crop_png: png.into_inner(),
            });
        }
        gallery.enrol(name, face.embedding).expect("enrol");
    }
    let models = vec![(
        EDGEFACE_INT8.file_name.to_owned(),
        EDGEFACE_INT8.read_verified(&models_dir()).expect("int8"),
    )];
    Bundle::new(
        &gallery,
        true,
        version,
        0,
        pipeline.config().detector,
        models,
        self_test,
    )
    .sign(key)
}

fn raw(addr: &str, bytes: &[u8], then_wait: Duration) -> String {
    let mut c = TcpStream::connect(addr).expect("connect");
    c.write_all(bytes).expect("send");
    std::thread::sleep(then_wait);
    let _ = c.shutdown(std::net::Shutdown::Write);
    let mut s = String::new();
    let _ = c.read_to_string(&mut s);
    s
}

fn push_header(len: u64) -> Vec<u8> {
    let mut v = wire::MAGIC.to_vec();
    v.push(wire::PUSH);
    v.extend_from_slice(&len.to_le_bytes());
    v
}

/// The pipeline a door runs (int8 weights).
fn door_pipeline(models: &std::path::Path) -> Pipeline {
    Pipeline::load(
        models,
        PipelineConfig {
            quantised: true,
            ..Default::default()
        },
    )
    .expect("pipeline")
}

/// Serves `server` on a free loopback port: (address, stop flag, thread).
fn serve(server: Arc<UpdateServer>) -> (String, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    (
        addr,
        stop,
        std::thread::spawn(move || server.serve(listener, flag)),
    )
}

#[test]
fn updates_over_tcp_are_verified_atomic_and_used_for_the_next_frame() {
    let models = models_dir();
    let pipeline = door_pipeline(&models);
    let (good, other) = (
        SigningKey::from_bytes(&[7; 32]),
        SigningKey::from_bytes(&[8; 32]),
    );
    let v1 = make_bundle(&pipeline, &[("AdrianDunbar", 2), ("ArifAlvi", 3)], 1, &good);
    let v2 = make_bundle(
        &pipeline,
        &[("AdrianDunbar", 2), ("ArifAlvi", 3), ("BenAffleck", 3)],
        2,
        &good,
    );
    let v2_other = make_bundle(&pipeline, &[("AdrianDunbar", 2)], 2, &other);
    let yunet = YUNET.read_verified(&models).expect("yunet");

    let tmp = tempfile::tempdir().expect("tempdir");
    let store = FileStore::open(&tmp.path().join("store")).expect("store");
    store.install(&v1).expect("install v1");
    let trusted = vec![good.verifying_key()];
    let first = bundle::verify(&v1, &trusted).expect("v1 verifies");
    let shared = Arc::new(Shared::new(
        Live::from_bundle(&first, &yunet).expect("v1 live"),
    ));
    let limits = Limits {
        request: Duration::from_secs(3),
        read: Duration::from_secs(1),
        max_bundle: 16 << 20,
    };
    let server = Arc::new(UpdateServer::new(
        trusted,
        Arc::new(store.clone()),
        shared.clone(),
        yunet,
        limits,
    ));
    let (addr, stop, serving) = serve(server.clone());
    // The door loop, watching Ben (enrolled only in v2) at 20 frames per second.
    let looping = {
        let (shared, stop) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut camera = FileCamera::new(vec![mfr2("BenAffleck", 7)], 1)
                .cycling()
                .at_fps(20.0);
            let (pin, _) = RecordingPin::new();
            let config = DoorConfig {
                policy: PolicyConfig {
                    window: 2,
                    agree: 2,
                    cooldown: Duration::ZERO,
                },
                unlock_for: Duration::from_millis(10),
                active_high: true,
                hold: Duration::ZERO,
            };
            let mut log = Vec::new();
            let mut screens: Vec<Screen> = Vec::new();
            app::run(
                &shared,
                &mut camera,
                pin,
                &mut log,
                &mut screens,
                &config,
                &stop,
            );
            (log, screens)
        })
    };
    let t = Duration::from_secs(20);
    let version = || shared.current().version;

    // Tampered: one bit flipped in the middle.
    let mut tampered = v2.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x04;
    let r = push_bytes(&addr, &tampered, t).expect("answer");
    assert!(r.contains("signature check failed"), "{r}");
    assert_eq!(version(), 1);

    // Signed by a key the door does not trust.
    let r = push_bytes(&addr, &v2_other, t).expect("answer");
    assert!(r.contains("not in the trusted keys"), "{r}");

    // Truncated stream: declares the full length, sends half.
    let mut cut = push_header(v2.len() as u64);
    cut.extend_from_slice(&v2[..v2.len() / 2]);
    let r = raw(&addr, &cut, Duration::ZERO);
    assert!(r.contains("stream ended"), "{r}");

    // Oversized: refused from the declared length, before reading.
    let r = raw(&addr, &push_header(1 << 40), Duration::ZERO);
    assert!(r.contains("above the"), "{r}");

    // Slow sender holding the update slot while a second push arrives.
    let slow = {
        let addr = addr.clone();
        let v2 = v2.clone();
        std::thread::spawn(move || {
            let mut c = TcpStream::connect(&addr).expect("connect");
            c.write_all(&push_header(v2.len() as u64)).expect("send");
            for chunk in v2.chunks(1000).take(8) {
                let _ = c.write_all(chunk);
                std::thread::sleep(Duration::from_millis(500));
            }
            let mut s = String::new();
            let _ = c.read_to_string(&mut s);
            s
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let r = push_bytes(&addr, &v2, t).expect("answer");
    assert!(r.starts_with("busy"), "two pushes at once: {r}");
    let r = slow.join().expect("slow sender");
    assert!(
        r.contains("too slow") || r.contains("too long"),
        "slow-loris: {r}"
    );
    assert_eq!(version(), 1, "the old model still serves");
    assert_eq!(store.active().as_deref(), Some(&v1[..]));

    // The good push.
    let r = push_bytes(&addr, &v2, t).expect("answer");
    assert!(r.starts_with("ok: version 2"), "{r}");
    assert_eq!(version(), 2);
    assert_eq!(store.active().as_deref(), Some(&v2[..]));
    assert_eq!(store.previous().as_deref(), Some(&v1[..]));

    // Replay of an older (or the same) version.
    let r = push_bytes(&addr, &v1, t).expect("answer");
    assert!(r.contains("not newer"), "{r}");

    // Status.
    let mut c = TcpStream::connect(&addr).expect("connect");
    wire::write_status(&mut c).expect("send");
    let status: serde_json::Value =
        serde_json::from_str(&wire::read_reply(&mut c).expect("reply")).expect("json");
    assert_eq!(status["model_version"], 2);

    std::thread::sleep(Duration::from_millis(600));
    stop.store(true, Ordering::Relaxed);
    let (log, screens) = looping.join().expect("loop");
    // While version 2 was verified, loaded and self-tested, the screen said so.
    assert!(
        screens.contains(&Screen::Updating { version: 2 }),
        "{screens:?}"
    );
    serving.join().expect("server");
    let records: Vec<_> = FrameReader::new()
        .push(&log)
        .into_iter()
        .map(|r| r.expect("decodes"))
        .collect();
    // Before the update Ben is a stranger to the door; after it, he is known, on version 2.
    assert!(
        records
            .iter()
            .any(|r| r.model_version == 1 && matches!(r.event, Event::Stranger { .. }))
    );
    assert!(records.iter().any(|r| r.model_version == 2
        && matches!(&r.event, Event::Known { person, .. } if person == "BenAffleck")));
    let updates: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::ModelUpdate {
                accepted, reason, ..
            } => Some((*accepted, reason.clone())),
            _ => None,
        })
        .collect();
    assert!(updates.iter().any(|(ok, _)| *ok), "{updates:?}");
    assert!(
        updates.iter().filter(|(ok, _)| !ok).count() >= 5,
        "{updates:?}"
    );
}

#[test]
fn a_full_disk_refuses_the_update_and_keeps_the_old_model() {
    let models = models_dir();
    let pipeline = door_pipeline(&models);
    let key = SigningKey::from_bytes(&[7; 32]);
    let v1 = make_bundle(&pipeline, &[("AdrianDunbar", 2)], 1, &key);
    let v2 = make_bundle(
        &pipeline,
        &[("AdrianDunbar", 2), ("BenAffleck", 3)],
        2,
        &key,
    );
    let yunet = YUNET.read_verified(&models).expect("yunet");
    let trusted = vec![key.verifying_key()];
    let store = Arc::new(MemoryStore::default());
    store.install(&v1).expect("v1");
    let first = bundle::verify(&v1, &trusted).expect("v1");
    let shared = Arc::new(Shared::new(
        Live::from_bundle(&first, &yunet).expect("live"),
    ));
    let server = Arc::new(UpdateServer::new(
        trusted,
        store.clone(),
        shared.clone(),
        yunet,
        Limits::default(),
    ));
    let (addr, stop, serving) = serve(server.clone());
    store.set_full(true);
    let r = push_bytes(&addr, &v2, Duration::from_secs(20)).expect("answer");
    assert!(
        r.contains("cannot store the bundle") && r.contains("still on version 1"),
        "{r}"
    );
    assert_eq!(shared.current().version, 1);
    assert_eq!(store.active().as_deref(), Some(&v1[..]));
    store.set_full(false);
    let r = push_bytes(&addr, &v2, Duration::from_secs(20)).expect("answer");
    assert!(r.starts_with("ok: version 2"), "{r}");
    stop.store(true, Ordering::Relaxed);
    serving.join().expect("server");
}

/// A bundle enrolled on refined landmarks carries the refiner: the door refines too, and a
/// refiner file it cannot load refuses the whole bundle (the old model keeps serving).
#[test]
fn a_bundle_with_a_landmark_refiner_makes_the_door_refine() {
    use facegate_models::refine;
    let models = models_dir();
    let key = SigningKey::from_bytes(&[7; 32]);
    let yunet = YUNET.read_verified(&models).expect("yunet");
    let refiner = refine::template_graph().expect("graph");
    let pipeline = door_pipeline(&models)
        .with_refiner(refine::Refiner::from_bytes(&refiner).expect("refiner"));
    let with = |file: Vec<u8>| {
        let signed = make_bundle(&pipeline, &[("AdrianDunbar", 2)], 1, &key);
        let mut b = bundle::verify(&signed, &[key.verifying_key()]).expect("verifies");
        b.payload.models.push((refine::FILE.to_owned(), file));
        let signed = b.sign(&key);
        bundle::verify(&signed, &[key.verifying_key()]).expect("verifies")
    };
    let live = Live::from_bundle(&with(refiner.clone()), &yunet).expect("live");
    assert_eq!(
        live.pipeline.refiner().map(|r| r.sha256().to_owned()),
        Some(facegate_models::model_files::sha256_hex(&refiner))
    );
    let img = image_io::open(&mfr2("AdrianDunbar", 2)).expect("photo");
    let face = live.pipeline.main_face(&img).expect("run").expect("face");
    assert!(matches!(
        live.gallery.identify(&face.embedding),
        facegate_models::gallery::Decision::Known { person: 0, .. }
    ));
    let broken = Live::from_bundle(&with(b"not a network".to_vec()), &yunet)
        .err()
        .expect("refused");
    assert!(broken.contains("landmark refiner"), "{broken}");
}
