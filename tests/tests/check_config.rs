//! `facegate-device run --check-config` reads what the config names, not only its syntax: a
//! trusted key that is missing or is a secret key, a bundle the keys do not verify, and a
//! liveness check whose network is not in the models folder all fail there, with the fix,
//! rather than at the first update or the first face.

use std::path::Path;
use std::process::Command;

use facegate_tests::{device_bin, facegate_bin, models_dir, run_ok, shared_dir};

fn config(dir: &Path, trust: &str, models: &Path, liveness: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[model]
store = "store"
models_dir = "{models}"
trust = ["{trust}"]
bundle = "door.fgb"

[camera]
source = "images"
dir = "frames"

[relay]
kind = "simulated"
record = "relay.txt"

[log]
port = "door.log"

[liveness]
mode = "{liveness}"
"#,
        models = models.display()
    );
    let path = dir.join("door.toml");
    std::fs::write(&path, text).expect("config");
    path
}

fn check(config: &Path) -> (bool, String) {
    let out = Command::new(device_bin())
        .args(["run", "--config"])
        .arg(config)
        .arg("--check-config")
        .output()
        .expect("run");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn check_config_reads_the_keys_the_bundle_and_the_liveness_network() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let person = dir.join("people/AdrianDunbar");
    std::fs::create_dir_all(&person).expect("mkdir");
    std::fs::copy(
        shared_dir().join("faces/mfr2/AdrianDunbar/AdrianDunbar_0002.png"),
        person.join("a.png"),
    )
    .expect("copy");
    std::fs::create_dir_all(dir.join("frames")).expect("mkdir");
    let fg = |args: &[&str]| {
        run_ok(&facegate_bin(), dir, args);
    };
    fg(&["keygen", "--dir", "."]);
    fg(&["keygen", "--dir", ".", "--name", "other"]);
    fg(&[
        "enrol",
        "people",
        "--key",
        "facegate.key",
        "--version",
        "1",
        "-o",
        "door.fgb",
    ]);
    let models = models_dir();

    let (ok, text) = check(&config(dir, "facegate.pub", &models, "passive"));
    assert!(ok && text.contains("config ok"), "{text}");
    assert!(text.contains("liveness: passive"), "{text}");

    let (ok, text) = check(&config(dir, "missing.pub", &models, "off"));
    assert!(!ok && text.contains("missing.pub"), "{text}");
    let (ok, text) = check(&config(dir, "facegate.key", &models, "off"));
    assert!(!ok && text.contains("secret key"), "{text}");
    let (ok, text) = check(&config(dir, "other.pub", &models, "off"));
    assert!(!ok && text.contains("refused"), "{text}");
    // A door that can be sent a bundle starts (shut, or on its stored model) whatever its first
    // bundle is: systemd's check before each start must let it, or an upgrade that refuses
    // the old first bundle would need a shell on the Pi.
    let listening = config(dir, "other.pub", &models, "off");
    let text = std::fs::read_to_string(&listening).expect("config")
        + "\n[update]\nlisten = \"127.0.0.1:0\"\n";
    std::fs::write(&listening, text).expect("config");
    let (ok, text) = check(&listening);
    assert!(
        ok && text.contains("refused") && text.contains("waits"),
        "{text}"
    );

    // A models folder without the liveness network: refused with the fix, unless the check
    // is off.
    let bare = dir.join("bare-models");
    std::fs::create_dir_all(&bare).expect("mkdir");
    for f in facegate_models::model_files::ALL {
        std::os::unix::fs::symlink(f.path_in(&models), f.path_in(&bare)).expect("link");
    }
    let (ok, text) = check(&config(dir, "facegate.pub", &bare, "passive"));
    assert!(!ok && text.contains("facegate models fetch"), "{text}");
    let (ok, text) = check(&config(dir, "facegate.pub", &bare, "off"));
    assert!(ok, "{text}");
}
