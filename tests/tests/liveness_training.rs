//! `facegate models liveness` end to end on a small slice of the shared train split: both ways
//! of choosing the threshold (a held-out third of the people, cross-validation over folds of
//! people) train, an ensemble of two trainings too, write a network whose manifest says which
//! views it sees, how its input is levelled and the command that made it, and `facegate eval --protocol liveness` then runs
//! that network with those views. One epoch on a few attempts: this checks the plumbing, not
//! the figures (docs/LIVENESS.md has those).

use std::path::Path;
use std::process::Command;

use facegate_tests::{facegate_bin, models_dir, shared_dir};

/// Live and printed attempts of four clients, linked into `dir/<species>/<attempt>`.
fn slice(dir: &Path) {
    let train = shared_dir().join("liveness/replay_attack/train");
    for species in ["real", "print"] {
        std::fs::create_dir_all(dir.join(species)).expect("mkdir");
        let mut names: Vec<String> = std::fs::read_dir(train.join(species))
            .expect("the shared liveness train split")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for client in ["client001", "client002", "client004", "client006"] {
            let name = names
                .iter()
                .find(|n| n.contains(client))
                .expect("an attempt of the client");
            std::os::unix::fs::symlink(
                train.join(species).join(name),
                dir.join(species).join(name),
            )
            .expect("link");
        }
    }
}

fn facegate(models: &Path, args: &[&str]) -> String {
    let out = Command::new(facegate_bin())
        .args(args)
        .arg("--models-dir")
        .arg(models)
        .output()
        .expect("run facegate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{args:?}: {text}");
    text
}

#[test]
fn liveness_trains_with_views_and_folds_and_eval_runs_what_it_wrote() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    slice(&data);
    let models = tmp.path().join("models");
    std::fs::create_dir_all(&models).expect("mkdir");
    // The detector as every command reads it: its door form.
    let yunet = facegate_models::model_files::YUNET_DOOR.file_name;
    std::fs::copy(models_dir().join(yunet), models.join(yunet)).expect("YuNet");
    let data = data.to_str().expect("utf-8");
    // The second run also re-exposes its training frames (`--exposure`) and levels the
    // network's input (`--levels brightness`), which the manifest records for the door; the
    // third adds a brightness-levelled second opinion in the same file (`--second`), trained on
    // re-exposed frames (`--second-exposure`), and writes every attempt's fold score
    // (`--scores`).
    let scores = tmp.path().join("scores.json");
    for (views, folds, channels, members, exposure, second) in [
        ("2", "0", 1, "1", false, false),
        ("2,1", "2", 2, "2", true, false),
        ("2,3", "2", 2, "1", false, true),
    ] {
        let mut args = vec![
            "models",
            "liveness",
            "--data",
            data,
            "--epochs",
            "1",
            "--views",
            views,
            "--folds",
            folds,
            "--ensemble",
            members,
        ];
        if exposure {
            args.extend(["--exposure", "--levels", "brightness"]);
        }
        if second {
            args.extend(["--second", "brightness", "--second-exposure", "--scores"]);
            args.push(scores.to_str().expect("utf-8"));
        }
        let text = facegate(&models, &args);
        assert!(text.contains("APCER per species there: print"), "{text}");
        // Cross-validation also scores the held-out folds as another camera would see them.
        assert_eq!(
            text.contains("there, captured darker (60% light): BPCER"),
            folds != "0",
            "{text}"
        );
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(models.join("liveness.json")).expect("manifest"))
                .expect("json");
        assert_eq!(
            manifest["views"].as_array().expect("views").len(),
            channels,
            "{manifest}"
        );
        // The door form the door and eval run is written and recorded with it.
        let door = std::fs::read(models.join("liveness.nnef.tar")).expect("door form");
        assert_eq!(
            manifest["door_sha256"].as_str(),
            Some(facegate_models::model_files::sha256_hex(&door).as_str()),
            "{manifest}"
        );
        // Cross-validation scores every attempt; the hold-out one person in three.
        let calibrated = manifest["attempts"][1].as_u64().expect("attempts");
        assert_eq!(calibrated, if folds == "0" { 2 } else { 8 }, "{manifest}");
        let command = manifest["command"].as_str().expect("command");
        let tail = match (exposure, second) {
            (true, _) => " --exposure --levels brightness",
            (_, true) => " --second brightness --second-exposure",
            _ => "",
        };
        let levels = if exposure {
            "brightness"
        } else {
            "as-captured"
        };
        assert_eq!(manifest["levels"], levels, "{manifest}");
        // A pair records the second network's levels and calibration; its threshold is the
        // first network's own, and the fold scores are written attempt by attempt.
        let pair = &manifest["second"];
        assert_eq!(pair.is_null(), !second, "{manifest}");
        if second {
            assert_eq!(pair["levels"], "brightness", "{manifest}");
            assert_eq!(pair["exposure"], true, "{manifest}");
            assert_eq!(manifest["threshold"], pair["thresholds"][0], "{manifest}");
            let t = |i: usize| pair["thresholds"][i].as_f64().expect("threshold");
            let offset = pair["offset"].as_f64().expect("offset");
            assert!((offset - (t(0) - t(1))).abs() < 1e-5, "{manifest}");
            assert!(
                text.contains("each alone there: as captured threshold"),
                "{text}"
            );
            let s: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&scores).expect("scores")).expect("json");
            for capture in ["as recorded", "darker (60% light)"] {
                let list = s["captures"][capture].as_array().expect("scores");
                assert_eq!(list.len(), 8, "{s}");
                assert!(list.iter().all(|a| a["frames"].as_array().is_some()), "{s}");
            }
        }
        assert!(
            command.ends_with(&format!("--ensemble {members}{tail}")),
            "{command}"
        );
        let json = tmp.path().join(format!("r{channels}.json"));
        facegate(
            &models,
            &[
                "eval",
                data,
                "--protocol",
                "liveness",
                "--json",
                json.to_str().expect("utf-8"),
            ],
        );
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).expect("report")).expect("json");
        assert_eq!(r["attempts"]["print"], 4, "{r}");
        assert_eq!(r["model_sha256"], manifest["sha256"], "{r}");
    }
    // Views the network cannot have, and ensembles too large for the door, are refused before
    // any work.
    let err = refused(&models, &["--data", data, "--views", "2,1,3,4"]);
    assert!(err.contains("--views") && err.contains("1 to 3"), "{err}");
    let err = refused(&models, &["--data", data, "--ensemble", "5"]);
    assert!(err.contains("--ensemble 5"), "{err}");
    // A second opinion must be one network levelled inside the graph; scores need folds.
    let err = refused(&models, &["--data", data, "--second", "per-plane"]);
    assert!(err.contains("--second per-plane"), "{err}");
    let err = refused(
        &models,
        &["--data", data, "--second", "brightness", "--ensemble", "2"],
    );
    assert!(err.contains("--ensemble 1"), "{err}");
    let err = refused(&models, &["--data", data, "--second-exposure"]);
    assert!(err.contains("--second"), "{err}");
    let err = refused(&models, &["--data", data, "--scores", "x.json"]);
    assert!(err.contains("--scores needs --folds"), "{err}");
}

/// `facegate models liveness ARGS`, which must fail: its error output.
fn refused(models: &Path, args: &[&str]) -> String {
    let out = Command::new(facegate_bin())
        .args(["models", "liveness"])
        .args(args)
        .arg("--models-dir")
        .arg(models)
        .output()
        .expect("run facegate");
    assert!(!out.status.success(), "{args:?} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
