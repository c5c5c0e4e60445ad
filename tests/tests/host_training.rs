//! The laptop workflow end to end through the real binaries, on AT&T faces and LFW strangers:
//! import (incremental, with bad photos skipped for stated reasons), capture from a Motion-JPEG
//! recording, the augmentation preview, train (head + calibrated threshold), eval with charts
//! and a mistakes page, predict with an annotated photo, the door binary running the trained
//! bundle (head included) and logging the right names; then the same for a CNN trained from
//! scratch, also pushed over the network to a running door.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use facegate_tests::{device_bin, facegate_bin, models_dir, shared_dir};

fn run(bin: &Path, dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(bin)
        .current_dir(dir)
        .env("XDG_CONFIG_HOME", facegate_tests::test_config_home())
        .env("FACEGATE_MODELS", models_dir())
        .args(args)
        .output()
        .expect("run binary");
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}\n{}",
        bin.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn fg(dir: &Path, args: &[&str]) -> String {
    String::from_utf8_lossy(&run(&facegate_bin(), dir, args).stdout).into_owned()
}

fn att(person: u32, photo: u32) -> String {
    shared_dir()
        .join(format!("faces/att_faces/s{person}/{photo}.pgm"))
        .display()
        .to_string()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read json")).expect("json")
}

/// LFW people with a single photo, for impostors: sorted, every `step`-th from `from`.
fn lfw_singles(from: usize, step: usize, n: usize) -> Vec<PathBuf> {
    let root = shared_dir().join("faces/lfw/images");
    let mut people: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("lfw")
        .map(|e| e.expect("entry").path())
        .collect();
    people.sort();
    people
        .into_iter()
        .filter(|p| {
            std::fs::read_dir(p)
                .map(|d| d.count() == 1)
                .unwrap_or(false)
        })
        .skip(from)
        .step_by(step)
        .take(n)
        .collect()
}

#[test]
fn photos_to_a_trained_bundle_that_the_door_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();

    // Import: six photos each of four AT&T people for training, the other four for testing.
    for p in 1..=4 {
        let train: Vec<String> = (1..=6).map(|i| att(p, i)).collect();
        let test: Vec<String> = (7..=10).map(|i| att(p, i)).collect();
        let label = format!("s{p}");
        let mut args = vec!["import", "--label", &label, "-d", "train"];
        args.extend(train.iter().map(String::as_str));
        fg(dir, &args);
        let mut args = vec!["import", "--label", &label, "-d", "test"];
        args.extend(test.iter().map(String::as_str));
        fg(dir, &args);
    }
    // Strangers for the eval: four other AT&T people.
    for p in 5..=8 {
        fg(
            dir,
            &[
                "import",
                &format!(
                    "{}",
                    shared_dir().join(format!("faces/att_faces/s{p}")).display()
                ),
                "--label",
                &format!("s{p}"),
                "-d",
                "strangers",
            ],
        );
    }

    // Re-import is incremental; bad files are skipped with reasons, the same photo under a
    // second name is refused.
    std::fs::write(dir.join("broken.jpg"), b"\xFF\xD8\xFFnot really").expect("write");
    let blank = image::RgbImage::from_pixel(200, 200, image::Rgb([120, 130, 140]));
    blank.save(dir.join("wall.png")).expect("save");
    let photo = image::open(att(1, 1)).expect("att").to_rgb8();
    image::imageops::blur(&photo, 4.0)
        .save(dir.join("blurred.png"))
        .expect("save");
    let out = fg(
        dir,
        &[
            "import",
            "--label",
            "s1",
            "-d",
            "train",
            &att(1, 1),
            &att(1, 2),
            "broken.jpg",
            "wall.png",
            "blurred.png",
        ],
    );
    assert!(out.contains("0 new faces, 2 unchanged, 3 skipped"), "{out}");
    assert!(out.contains("broken.jpg: not a readable image"), "{out}");
    assert!(out.contains("wall.png: no face found"), "{out}");
    assert!(out.contains("blurred.png: face is too blurred"), "{out}");
    let out = fg(dir, &["import", "--label", "s2", "-d", "train", &att(1, 3)]);
    assert!(out.contains("already in the dataset as s1"), "{out}");
    let manifest = json(&dir.join("train/manifest.json"));
    assert_eq!(manifest["samples"].as_array().map(Vec::len), Some(24));
    // A photo skipped under some rules says why again under the same rules, and is judged
    // again when they change (#23: it used to stay "unchanged" for good).
    let rejudge = |extra: &[&str]| {
        let mut args = vec!["import", "--label", "s1", "-d", "rejudge", "blurred.png"];
        args.extend(extra);
        fg(dir, &args)
    };
    assert!(rejudge(&[]).contains("blurred.png: face is too blurred"));
    let out = rejudge(&[]);
    assert!(
        out.contains("face is too blurred") && out.contains("as before, under the same rules"),
        "{out}"
    );
    let out = rejudge(&["--min-sharpness", "0"]);
    assert!(out.contains("1 new faces"), "{out}");

    // Capture from a Motion-JPEG recording: the same frame three times is kept once, a cut
    // frame is reported, a second view of the face is kept.
    let mut mjpeg = Vec::new();
    let frames = [
        shared_dir().join("faces/mfr2/AdrianDunbar/AdrianDunbar_0002.png"),
        shared_dir().join("faces/mfr2/AdrianDunbar/AdrianDunbar_0002.png"),
        shared_dir().join("faces/mfr2/AdrianDunbar/AdrianDunbar_0002.png"),
        shared_dir().join("faces/mfr2/AdrianDunbar/AdrianDunbar_0003.png"),
    ];
    for (i, f) in frames.iter().enumerate() {
        let img = image::open(f).expect("frame").to_rgb8();
        let mut jpg = std::io::Cursor::new(Vec::new());
        img.write_to(&mut jpg, image::ImageFormat::Jpeg)
            .expect("jpeg");
        mjpeg.extend_from_slice(jpg.get_ref());
        if i == 1 {
            mjpeg.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 1, 2, 3, 0xFF, 0xD9]);
        }
    }
    std::fs::write(dir.join("walk.mjpeg"), &mjpeg).expect("write");
    let out = fg(
        dir,
        &[
            "capture",
            "--label",
            "adrian",
            "--video",
            "walk.mjpeg",
            "-d",
            "captured",
            "--count",
            "5",
            "--max-similarity",
            "0.95",
        ],
    );
    assert!(out.contains("kept 2 of the frames"), "{out}");
    assert!(
        out.contains("skipped walk.mjpeg frame 3: damaged JPEG image"),
        "{out}"
    );

    // Impostors for calibration: LFW people with one photo (never the eval strangers).
    let impostors: Vec<PathBuf> = lfw_singles(0, 2, 120);
    std::fs::create_dir_all(dir.join("lfw")).expect("mkdir");
    for p in &impostors {
        std::os::unix::fs::symlink(p, dir.join("lfw").join(p.file_name().expect("name")))
            .expect("link");
    }
    fg(dir, &["import", "lfw", "-d", "impostors"]);

    // Preview.
    let out = fg(
        dir,
        &[
            "augment",
            "train",
            "--preview",
            "sheet.png",
            "--photos",
            "4",
            "--copies",
            "5",
        ],
    );
    assert!(out.contains("4 photos x 5 copies"), "{out}");
    let sheet = image::open(dir.join("sheet.png")).expect("sheet");
    assert_eq!((sheet.width(), sheet.height()), (6 * 116, 4 * 116));

    // Train.
    fg(dir, &["keygen", "--dir", "."]);
    let out = fg(
        dir,
        &[
            "train",
            "train",
            "--impostors",
            "impostors",
            "--far",
            "0.01",
            "--key",
            "facegate.key",
            "--version",
            "3",
            "-o",
            "door.fgb",
            "--report",
            "train.json",
        ],
    );
    assert!(out.contains("trained 4 people on"), "{out}");
    let report = json(&dir.join("train.json"));
    let views = report["impostor_views"].as_u64().expect("views");
    let accepted = report["impostors_accepted"].as_u64().expect("accepted");
    assert_eq!(
        views,
        2 * impostors.len() as u64,
        "each impostor unmasked and masked"
    );
    assert!(
        accepted as f64 <= 0.01 * views as f64,
        "{accepted} of {views}"
    );
    assert!(
        report["val_accuracy"].as_f64().expect("acc") >= 0.9,
        "{report}"
    );

    // Eval on held-out photos and unseen strangers; the training photos are left out.
    let out = fg(
        dir,
        &[
            "eval",
            "test",
            "--bundle",
            "door.fgb",
            "--trust",
            "facegate.pub",
            "--strangers",
            "strangers",
            "--strangers",
            "train",
            "--out",
            "report",
            "--json",
            "eval.json",
        ],
    );
    assert!(out.contains("confusion matrix"), "{out}");
    let eval = json(&dir.join("eval.json"));
    assert_eq!(
        eval["left_out_enrolled"], 24,
        "training photos must not be scored"
    );
    assert_eq!(eval["unmasked"]["genuine"], 16);
    assert_eq!(eval["unmasked"]["strangers"], 40);
    assert!(
        eval["unmasked"]["at_bundle"]["tar"].as_f64().expect("tar") >= 0.9,
        "{eval}"
    );
    assert!(
        eval["unmasked"]["at_bundle"]["far"].as_f64().expect("far") <= 0.05,
        "{eval}"
    );
    let confusion: u64 = eval["confusion"]
        .as_array()
        .expect("rows")
        .iter()
        .flat_map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|c| c.as_u64().expect("count"))
        })
        .sum();
    assert_eq!(confusion, 2 * (16 + 40));
    for f in ["confusion.png", "det.png", "report.html", "report.json"] {
        assert!(dir.join("report").join(f).is_file(), "{f}");
    }
    let html = std::fs::read_to_string(dir.join("report/report.html")).expect("html");
    assert!(html.contains("confusion.png") && html.contains("Strangers closest to getting in"));

    // Predict: an enrolled person's unseen photo and a stranger, with an annotated copy.
    fg(
        dir,
        &[
            "predict",
            &att(2, 9),
            &att(7, 1),
            "--bundle",
            "door.fgb",
            "--trust",
            "facegate.pub",
            "--out",
            "annotated",
            "--json",
            "predict.json",
        ],
    );
    let p = json(&dir.join("predict.json"));
    assert_eq!(p[0]["faces"][0]["name"], "s2", "{p}");
    assert!(p[1]["faces"][0]["name"].is_null(), "{p}");
    assert!(dir.join("annotated/9.png").is_file());

    // The door runs the trained bundle: its log names s3 and never names the stranger.
    let cam = dir.join("camera");
    std::fs::create_dir_all(&cam).expect("mkdir");
    std::fs::copy(att(3, 8), cam.join("a.pgm")).expect("copy");
    std::fs::copy(att(6, 2), cam.join("b.pgm")).expect("copy");
    run(
        &device_bin(),
        dir,
        &[
            "simulate",
            "--store",
            "store",
            "--bundle",
            "door.fgb",
            "--trust",
            "facegate.pub",
            "--camera-dir",
            "camera",
            "--repeat",
            "4",
            "--log",
            "door.log",
            "--text-log",
            "--window",
            "3",
            "--agree",
            "2",
        ],
    );
    let log = std::fs::read_to_string(dir.join("door.log")).expect("log");
    // s3 is let in; the stranger (s6, never enrolled) is a stranger, never a name.
    assert!(log.contains("KNOWN \"s3\""), "{log}");
    assert!(log.contains("UNLOCKED"), "{log}");
    assert!(log.contains("STRANGER"), "{log}");
    for line in log.lines().filter(|l| l.contains("KNOWN")) {
        assert!(line.contains("\"s3\""), "someone else named: {line}");
    }

    // The from-scratch CNN on the same data: trained, exported to ONNX with int8 weights,
    // evaluated through tract, and run by the door from the same kind of bundle.
    let out = fg(
        dir,
        &[
            "train",
            "train",
            "--arch",
            "scratch",
            "--impostors",
            "impostors",
            "--far",
            "0.01",
            "--epochs",
            "12",
            "--augment",
            "3",
            "--key",
            "facegate.key",
            "--version",
            "4",
            "-o",
            "scratch.fgb",
            "--report",
            "scratch.json",
        ],
    );
    assert!(out.contains("trained a CNN from scratch"), "{out}");
    let r = json(&dir.join("scratch.json"));
    assert!(r["export_max_diff"].as_f64().expect("diff") < 0.02, "{r}");
    assert!(
        r["model_bytes_int8"].as_u64().expect("int8") * 3
            < r["model_bytes_fp32"].as_u64().expect("fp32"),
        "{r}"
    );
    assert!(r["threshold"].as_f64().expect("threshold") >= 0.5, "{r}");
    let views = r["calibration_views"].as_u64().expect("views");
    assert!(r["impostors_accepted"].as_u64().expect("accepted") as f64 <= 0.01 * views as f64);
    fg(
        dir,
        &[
            "eval",
            "test",
            "--bundle",
            "scratch.fgb",
            "--trust",
            "facegate.pub",
            "--strangers",
            "strangers",
            "--json",
            "scratch-eval.json",
        ],
    );
    let eval = json(&dir.join("scratch-eval.json"));
    assert_eq!(eval["embedder"], "scratch");
    assert_eq!(eval["unmasked"]["genuine"], 16);
    let inspect = fg(dir, &["inspect", "scratch.fgb", "--trust", "facegate.pub"]);
    assert!(inspect.contains("scratch_cnn.int8.nnef.tar"), "{inspect}");
    run(
        &device_bin(),
        dir,
        &[
            "simulate",
            "--store",
            "store-scratch",
            "--bundle",
            "scratch.fgb",
            "--trust",
            "facegate.pub",
            "--camera-dir",
            "camera",
            "--repeat",
            "4",
            "--log",
            "scratch.log",
            "--text-log",
            "--window",
            "3",
            "--agree",
            "2",
        ],
    );
    let log = std::fs::read_to_string(dir.join("scratch.log")).expect("log");
    assert!(
        log.lines().count() >= 8,
        "one record per frame at least: {log}"
    );
    // The CNN knows s3; how it treats strangers is measured in docs/TRAINING.md, not asserted here
    // (on this tiny training set it names one of them).
    assert!(log.contains("KNOWN \"s3\""), "{log}");

    // And over the network: a door running the transfer bundle (v3) takes the scratch bundle
    // (v4) by `facegate push` and decides with it.
    let (mut door, addr) = start_door(dir);
    // Let the door decide with v3 first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(dir.join("push.log"))
        .unwrap_or_default()
        .contains("model=3 ")
    {
        assert!(std::time::Instant::now() < deadline, "no decision by v3");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The laptop pins the door's channel key on first contact: in this test's own folder.
    let pushed = Command::new(facegate_bin())
        .current_dir(dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .args([
            "push",
            "--device",
            &addr,
            "--key",
            "facegate.key",
            "scratch.fgb",
        ])
        .output()
        .expect("push");
    let status = Command::new(facegate_bin())
        .current_dir(dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .args(["status", "--device", &addr, "--key", "facegate.key"])
        .output()
        .expect("status");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let _ = door.kill();
    let _ = door.wait();
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.contains("model version 4"), "{status}");
    let pinned = std::fs::read_to_string(dir.join("config/facegate/known_doors")).expect("pin");
    assert!(pinned.starts_with(&addr), "{pinned}");
    let log = std::fs::read_to_string(dir.join("push.log")).expect("log");
    assert!(log.contains("model=3 "), "{log}");
    assert!(
        log.contains("model=4 "),
        "decisions by the pushed CNN: {log}"
    );
}

/// The door on the transfer bundle, listening for updates on a free port.
#[allow(clippy::zombie_processes)]
fn start_door(dir: &Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(device_bin())
        .current_dir(dir)
        .env("FACEGATE_MODELS", models_dir())
        .args([
            "simulate",
            "--store",
            "store-push",
            "--bundle",
            "door.fgb",
            "--trust",
            "facegate.pub",
            "--listen",
            "127.0.0.1:0",
            "--camera-dir",
            "camera",
            "--cycle",
            "--fps",
            "10",
            "--log",
            "push.log",
            "--text-log",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the door");
    let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    loop {
        line.clear();
        if err.read_line(&mut line).expect("stderr") == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the door did not start listening");
        }
        if let Some(a) = line.trim().strip_prefix("accepting signed updates on ") {
            let a = a.to_owned();
            std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
            return (child, a);
        }
    }
}
