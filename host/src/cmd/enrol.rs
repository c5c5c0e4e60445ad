//! `facegate enrol`: photos of each person -> templates -> a signed bundle the door can load;
//! `facegate inspect`: verify a bundle and show its header.

use anyhow::{Context, Result, bail};
use facegate_models::bundle::{Bundle, SelfTest};
use facegate_models::gallery::{Gallery, default_threshold};
use facegate_models::image_io;
use facegate_models::pipeline::{Pipeline, PipelineConfig};

use crate::cli::{EnrolCmd, InspectCmd};
use crate::cmd::keys::{open_bundle, read_secret};
use crate::cmd::models::{now_ms, write_atomically};
use crate::dataset::people;
use crate::progress::bar;
use crate::templates::photo_templates;

/// Runs `facegate enrol`.
pub fn run(cmd: EnrolCmd) -> Result<()> {
    let key = read_secret(&cmd.key)?;
    let folders = people(&cmd.people)?;
    let dir = cmd.net.models.resolve();
    let kind = cmd.net.embedder.into();
    // The door runs int8 weights, so its templates must come from the same files.
    let config = PipelineConfig {
        embedder: kind,
        quantised: true,
        ..Default::default()
    };
    let mut pipeline = Pipeline::load(&dir, config)
        .with_context(|| format!("loading models from {}", dir.display()))?;
    let refiner = if cmd.net.refine_landmarks {
        let bytes = facegate_models::refine::read_verified(&dir)?;
        pipeline = pipeline.with_refiner(facegate_models::refine::Refiner::from_bytes(&bytes)?);
        Some(bytes)
    } else {
        None
    };
    let mut gallery = Gallery::new(
        kind,
        cmd.threshold.unwrap_or_else(|| {
            default_threshold(kind, true, cmd.net.refine_landmarks, cmd.enrol_masks > 0)
        }),
    );
    let total = folders.iter().map(|p| p.images.len()).sum::<usize>();
    let pb = bar(total as u64, "enrolling");
    let mut skipped = Vec::new();
    let mut self_test = None;
    for person in &folders {
        for path in &person.images {
            pb.inc(1);
            let outcome = image_io::open(path)
                .map_err(anyhow::Error::from)
                .and_then(|img| photo_templates(&pipeline, &img, path, cmd.enrol_masks));
            match outcome {
                Ok(Some(t)) => {
                    if self_test.is_none() {
                        let known = t.face.embedding.clone();
                        self_test =
                            Some(SelfTest::pattern(&person.name, known, pipeline.embedder())?);
                    }
                    for e in t.embeddings() {
                        gallery.enrol(&person.name, e)?;
                    }
                }
                Ok(None) => skipped.push(format!("{}: no face found", path.display())),
                Err(e) => skipped.push(format!("{}: {e}", path.display())),
            }
        }
    }
    pb.finish_and_clear();
    if gallery.people.is_empty() {
        bail!(
            "no face found in any photo under {}: nothing to enrol",
            cmd.people.display()
        );
    }
    let mut models = kind.read_files(&dir, true)?;
    if let Some(bytes) = refiner {
        models.push((facegate_models::refine::FILE.to_owned(), bytes));
    }
    let created_ms = now_ms();
    let bundle = Bundle::new(
        &gallery,
        true,
        cmd.version,
        created_ms,
        pipeline.config().detector,
        models,
        self_test,
    )
    .for_door(cmd.door.clone());
    let bytes = bundle.sign(&key);
    write_atomically(&cmd.out, &bytes)?;
    for s in &skipped {
        println!("skipped {s}");
    }
    println!(
        "enrolled {} people ({} templates) into {} ({} bytes, version {}, threshold {:.4})",
        gallery.people.len(),
        gallery
            .people
            .iter()
            .map(|p| p.templates.len())
            .sum::<usize>(),
        cmd.out.display(),
        bytes.len(),
        cmd.version,
        gallery.threshold
    );
    Ok(())
}

/// Runs `facegate inspect`.
pub fn inspect(cmd: InspectCmd) -> Result<()> {
    let bundle = open_bundle(&cmd.bundle, &cmd.trust)?;
    let h = &bundle.header;
    println!("signature ok");
    println!(
        "model version {} | embedder {}{} | threshold {:.4}",
        h.model_version,
        h.embedder.as_str(),
        if h.quantised { " int8" } else { "" },
        h.threshold
    );
    println!("{} people: {}", h.labels.len(), h.labels.join(", "));
    match &bundle.payload.self_test {
        Some(SelfTest::Pattern { label, .. }) => {
            println!("self-test: a face-free pattern, and {label}'s template")
        }
        Some(SelfTest::Crop { label, crop_png }) => println!(
            "self-test: a face crop of {label} ({} bytes; format 2, made by an older facegate)",
            crop_png.len()
        ),
        None => println!("self-test: none (the door will refuse this bundle)"),
    }
    println!(
        "for door: {}",
        h.door.as_deref().unwrap_or("any door without an id")
    );
    for (name, data) in &bundle.payload.models {
        println!("model file {name} ({} bytes)", data.len());
    }
    Ok(())
}
