//! kill -9 of the door at varied moments during 50 pushes never leaves it unable to start with
//! a valid model, and never rolls it back behind a version it confirmed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use facegate_models::bundle::{Bundle, SelfTest};
use facegate_models::channel::{DoorKeys, NOISE_HELLO, NoiseStream};
use facegate_models::embed::EmbedderKind;
use facegate_models::gallery::{Enrolment, Gallery, default_threshold};
use facegate_models::image_io;
use facegate_models::model_files::default_dir;
use facegate_models::pipeline::{Pipeline, PipelineConfig};
use facegate_models::wire;

fn shared() -> PathBuf {
    facegate_models::testdata::for_crate(env!("CARGO_MANIFEST_DIR"))
}

/// Starts the door; returns it and its update address once it listens. The caller kills and
/// waits for it.
#[allow(clippy::zombie_processes)]
fn start(dir: &Path, bundle: Option<&Path>) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_facegate-device"));
    cmd.arg("simulate")
        .arg("--store")
        .arg(dir.join("store"))
        .arg("--trust")
        .arg(dir.join("k.pub"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--camera-dir")
        .arg(dir.join("frames"))
        .arg("--cycle")
        .arg("--fps")
        .arg("10")
        .arg("--log")
        .arg(dir.join("door.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(b) = bundle {
        cmd.arg("--bundle").arg(b);
    }
    let mut child = cmd.spawn().expect("start the door");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        line.clear();
        if err.read_line(&mut line).expect("stderr") == 0 || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the door did not start listening; last line: {line}");
        }
        if let Some(addr) = line.trim().strip_prefix("accepting signed updates on ") {
            let addr = addr.to_owned();
            // Keep draining stderr so the door never blocks on a full pipe.
            std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
            return (child, addr);
        }
    }
}

/// Opens the door's encrypted channel, checking the door's key against the one in its store,
/// and reads its challenge.
fn channel(
    addr: &str,
    store: &Path,
) -> Option<(NoiseStream<TcpStream>, [u8; wire::CHALLENGE_LEN])> {
    let pinned = DoorKeys::from_text(&std::fs::read_to_string(store.join("channel.key")).ok()?)?;
    let mut c = TcpStream::connect(addr).ok()?;
    let mut hello = [0u8; 4];
    c.read_exact(&mut hello).ok()?;
    assert_eq!(hello, NOISE_HELLO);
    let mut s = NoiseStream::connect(c).ok()?;
    assert_eq!(s.remote_key(), Some(pinned.public));
    let challenge = wire::read_hello(&mut s).ok()?;
    Some((s, challenge))
}

fn status_version(addr: &str, store: &Path, key: &SigningKey) -> u64 {
    let (mut c, challenge) = channel(addr, store).expect("channel");
    wire::write_status(&mut c, key, &challenge).expect("status");
    let v: serde_json::Value =
        serde_json::from_str(&wire::read_reply(&mut c).expect("reply")).expect("json");
    v["model_version"].as_u64().expect("version")
}

#[test]
fn kill_9_during_pushes_never_leaves_the_door_without_a_valid_model() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let key = SigningKey::from_bytes(&[3; 32]);
    std::fs::write(
        dir.join("k.pub"),
        hex::encode(key.verifying_key().to_bytes()),
    )
    .expect("key");
    std::fs::create_dir(dir.join("frames")).expect("frames");
    let photo = shared().join("faces/mfr2/BenAffleck/BenAffleck_0003.png");
    std::fs::copy(&photo, dir.join("frames/1.png")).expect("frame");

    // One gallery, signed as 51 versions.
    let pipeline = Pipeline::load(
        &default_dir(),
        PipelineConfig {
            quantised: true,
            ..Default::default()
        },
    )
    .expect("pipeline");
    let img = image_io::open(&photo).expect("photo");
    let face = pipeline.main_face(&img).expect("pipeline").expect("face");
    let mut gallery = Gallery::new(
        pipeline.config().embedder,
        default_threshold(pipeline.config().embedder, true, false, Enrolment::PHOTOS),
    );
    gallery
        .enrol("BenAffleck", face.embedding.clone())
        .expect("enrol");
    let models = EmbedderKind::EdgeFace
        .read_files(&default_dir(), true)
        .expect("door form");
    let self_test =
        SelfTest::pattern("BenAffleck", face.embedding.clone(), pipeline.embedder()).expect("test");
    let mut bundle = Bundle::new(
        &gallery,
        true,
        1,
        0,
        pipeline.config().detector,
        models,
        Some(self_test),
    );
    let signed = |v: u32, b: &mut Bundle| {
        b.header.model_version = v;
        b.sign(&key)
    };
    std::fs::write(dir.join("v1.fgb"), signed(1, &mut bundle)).expect("v1");

    let (mut door, mut addr) = start(dir, Some(&dir.join("v1.fgb")));
    let mut confirmed = 1u64;
    for i in 0..50u32 {
        let version = i + 2;
        let bytes = signed(version, &mut bundle);
        let pusher = {
            let addr = addr.clone();
            let key = key.clone();
            let store = dir.join("store");
            std::thread::spawn(move || {
                let (mut c, challenge) = channel(&addr, &store)?;
                wire::write_push(&mut c, &key, &challenge, &bytes).ok()?;
                let _ = c.get_mut().shutdown(std::net::Shutdown::Write);
                let mut s = String::new();
                c.read_to_string(&mut s).ok()?;
                Some(s)
            })
        };
        // Kill at a different moment each time: mid-upload, mid-self-test, mid-store, after.
        std::thread::sleep(Duration::from_millis(((i as u64) * 37) % 450));
        door.kill().expect("kill -9");
        let _ = door.wait();
        if let Ok(Some(reply)) = pusher.join()
            && reply.starts_with("ok")
        {
            confirmed = version as u64;
        }
        let (d, a) = start(dir, None);
        door = d;
        addr = a;
        let now = status_version(&addr, &dir.join("store"), &key);
        assert!(
            now >= confirmed,
            "push {i}: restarted on version {now}, but {confirmed} was confirmed"
        );
        assert!(now <= version as u64);
    }
    let _ = door.kill();
    let _ = door.wait();
    // The store holds no leftovers that a later start would trip over.
    let names: Vec<String> = std::fs::read_dir(dir.join("store"))
        .expect("store")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"active.fgb".to_owned()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with(".staging")),
        "leftovers after restart: {names:?}"
    );
    let _ = std::io::stderr()
        .write_all(format!("final store: {names:?}, confirmed up to {confirmed}\n").as_bytes());
}
