//! `facegate enrol`: photos of each person -> templates -> a signed bundle the door can load;
//! `facegate inspect`: verify a bundle and show its header.

use crate::cmd::opts::{NetworkOpts, RouteOpts};
use clap::Args;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use facegate_models::bundle::{Bundle, SelfTest};
use facegate_models::gallery::{Enrolment, Gallery, default_threshold};
use facegate_models::maskroute::MaskRoute;
use facegate_models::pipeline::{Pipeline, PipelineConfig};

use crate::cmd::keys::{open_bundle, read_secret};
use crate::faceset::folders::{PersonImages, people};
use crate::files::{now_ms, write_atomically};
use crate::progress::bar;
use crate::templates::{EnrolSettings, enrol_photo, photo_file_templates};

/// Runs `facegate enrol`.
pub fn run(cmd: EnrolCmd) -> Result<()> {
    let key = read_secret(&crate::home::secret_key_path(cmd.key.as_deref())?)?;
    let version = crate::home::next_version(cmd.version, &key)?;
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
    let routed = cmd.route.routed(cmd.net.embedder);
    if routed {
        let route = MaskRoute::load(&dir, true).with_context(|| {
            format!(
                "loading the masked path from {} (`facegate models fetch`, or give \
                 --no-mask-route)",
                dir.display()
            )
        })?;
        pipeline = pipeline.with_mask_route(route);
    }
    let settings = EnrolSettings::for_pipeline(
        &pipeline,
        cmd.threshold,
        cmd.enrol_masks,
        cmd.route.mirrored(cmd.net.embedder),
    );
    let mut gallery = Gallery::new(kind, settings.threshold);
    let (skipped, self_test) = enrol_folders(&pipeline, &folders, settings, &mut gallery)?;
    if gallery.people.is_empty() {
        bail!(
            "no face found in any photo under {}: nothing to enrol",
            cmd.people.display()
        );
    }
    let mut models = kind.read_files(&dir, true)?;
    if let Some(bytes) = refiner {
        models.push((
            facegate_models::nnef::door_name(facegate_models::refine::FILE),
            facegate_models::refine::door_form(&bytes)?,
        ));
    }
    if routed {
        models.extend(MaskRoute::read_files(&dir, true)?);
    }
    let created_ms = now_ms();
    let masked_self_test = match (
        pipeline.mask_route(),
        self_test.as_ref().map(SelfTest::seed),
    ) {
        (Some(route), Some(seed)) => Some(route.self_test(seed)?),
        _ => None,
    };
    let mut bundle = Bundle::new(
        &gallery,
        true,
        version,
        created_ms,
        pipeline.config().detector,
        models,
        self_test,
    )
    .for_door(cmd.door.clone());
    bundle.payload.masked_self_test = masked_self_test;
    let bytes = bundle.sign(&key);
    write_atomically(&cmd.out, &bytes)?;
    crate::home::record_version(&key, version)?;
    for s in &skipped {
        println!("skipped {s}");
    }
    println!(
        "enrolled {} ({} templates) into {} ({} bytes, version {}, threshold {:.4})",
        facegate_models::gallery::people_count(gallery.people.len()),
        gallery
            .people
            .iter()
            .map(|p| p.templates.len())
            .sum::<usize>(),
        cmd.out.display(),
        bytes.len(),
        version,
        gallery.threshold
    );
    if let Some(m) = &gallery.masked {
        println!(
            "masked faces: {} templates on the mask-adapted path (scores shifted by {:+.4})",
            m.templates.iter().map(Vec::len).sum::<usize>(),
            m.offset
        );
    }
    if settings.enrol_masks > 0 && !routed && pipeline.refiner().is_none() {
        // Measured (docs/MASKS.md): on the detector's landmarks masked copies draw masked
        // strangers so close that the threshold that keeps them out lets few masked faces in.
        println!(
            "note: masked copies on the detector's landmarks need a strict threshold ({:.4}) \
             and seldom recognise a masked face; leave mask routing on (the default) or add \
             --refine-landmarks",
            gallery.threshold
        );
    }
    Ok(())
}

/// Enrols every photo of every person into `gallery` (with `settings.enrol_masks` masked
/// copies each). Returns what was skipped and why, and the self-test made from the first face
/// enrolled.
fn enrol_folders(
    pipeline: &Pipeline,
    folders: &[PersonImages],
    settings: EnrolSettings,
    gallery: &mut Gallery,
) -> Result<(Vec<String>, Option<SelfTest>)> {
    let total = folders.iter().map(|p| p.images.len()).sum::<usize>();
    let pb = bar(total as u64, "enrolling", "photos");
    let mut skipped = Vec::new();
    let mut self_test = None;
    for person in folders {
        for path in &person.images {
            pb.inc(1);
            match photo_file_templates(pipeline, path, settings.enrol_masks, settings.mirror) {
                Ok(Some(t)) => {
                    if self_test.is_none() {
                        let known = t.bare.clone();
                        self_test =
                            Some(SelfTest::pattern(&person.name, known, pipeline.embedder())?);
                    }
                    enrol_photo(gallery, &person.name, t, settings.offset)?;
                }
                Ok(None) => skipped.push(format!("{}: no face found", path.display())),
                Err(e) => skipped.push(format!("{}: {e:#}", path.display())),
            }
        }
    }
    pb.finish_and_clear();
    Ok((skipped, self_test))
}

/// Runs `facegate inspect`: everything a household checks before putting a bundle on the
/// door, including which key signed it and where its threshold came from.
pub fn inspect(cmd: InspectCmd) -> Result<()> {
    let trust = crate::home::trusted_paths(&cmd.trust)?;
    let bundle = open_bundle(&cmd.bundle, &trust)?;
    let bytes = std::fs::read(&cmd.bundle)?; // read again only for the signer's key id
    let signer = bytes.get(8..16).map(hex::encode).unwrap_or_default();
    let signer_file = trust
        .iter()
        .find(|p| {
            crate::cmd::keys::read_public(p)
                .is_ok_and(|k| hex::encode(facegate_models::bundle::key_id(&k)) == signer)
        })
        .map(|p| format!(" ({})", p.display()))
        .unwrap_or_default();
    let h = &bundle.header;
    println!("signature ok: signed by key {signer}{signer_file}");
    let made = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(h.created_ms),
    );
    println!("model version {}, made {made}", h.model_version);
    let refined =
        bundle.payload.models.iter().any(|(name, _)| {
            *name == facegate_models::nnef::door_name(facegate_models::refine::FILE)
        });
    println!(
        "embedder {}{}, landmarks {}",
        h.embedder.as_str(),
        if h.quantised { " int8" } else { " fp32" },
        if refined {
            "re-placed by the refiner it carries"
        } else {
            "as the detector gives them"
        }
    );
    println!(
        "threshold {:.4}: {}",
        h.threshold,
        threshold_provenance(h, refined, bundle.payload.head.as_ref())
    );
    let people = &bundle.payload.people;
    println!(
        "{}: {}",
        facegate_models::gallery::people_count(people.len()),
        people
            .iter()
            .map(|p| format!(
                "{} ({} template{})",
                p.name,
                p.templates.len(),
                if p.templates.len() == 1 { "" } else { "s" }
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    match &bundle.payload.masked {
        Some(m) => println!(
            "masked faces: routed by the mask-state classifier to {} on refined landmarks, {} \
             templates, each person scored by {}, scores shifted by {:+.4} (its own \
             calibration)",
            m.embedder.as_str(),
            m.templates.iter().map(Vec::len).sum::<usize>(),
            m.scoring.describe(),
            m.offset
        ),
        None => println!("masked faces: on the main embedder like bare ones (no masked path)"),
    }
    match &bundle.payload.self_test {
        Some(SelfTest::Pattern { label, .. }) => {
            println!("self-test: a face-free pattern, and {label}'s template")
        }
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

/// Where a bundle's threshold came from, as far as the bundle tells: one of the embedder's
/// calibrated defaults, or not (given by hand, or calibrated by `train --impostors`); and a
/// trained head's probability floor.
fn threshold_provenance(
    h: &facegate_models::bundle::Header,
    refined: bool,
    head: Option<&facegate_models::head::Head>,
) -> String {
    let near = |t: f32| (t - h.threshold).abs() < 5e-5;
    let base = default_threshold(h.embedder, h.quantised, refined, Enrolment::PHOTOS);
    let mut text = if near(base) {
        "the embedder's calibrated default (FAR 1e-3 among strangers)".to_owned()
    } else if near(default_threshold(
        h.embedder,
        h.quantised,
        refined,
        Enrolment::MASKED_COPIES,
    )) {
        "the embedder's calibrated default for masked templates (FAR 1e-3 among masked \
         strangers)"
            .to_owned()
    } else if !refined
        && near(default_threshold(
            h.embedder,
            h.quantised,
            true,
            Enrolment::MASKED_COPIES,
        ))
    {
        // Bundles made before 2026-12-07 with masked copies on the detector's landmarks got
        // the refined landmarks' threshold, measured since to let masked strangers in.
        format!(
            "the default for masked templates on refined landmarks, but this bundle's come \
             from the detector's, where it lets masked strangers in (12 of 1,414 with EdgeFace, \
             docs/MASKS.md): enrol again (default {:.4}), or with mask routing (the default)",
            default_threshold(h.embedder, h.quantised, false, Enrolment::MASKED_COPIES)
        )
    } else {
        format!(
            "not the calibrated default ({base:.4}): set with --threshold or calibrated by \
             `facegate train --impostors` (higher lets fewer strangers in)"
        )
    };
    if let Some(head) = head {
        text.push_str(&format!(
            "; a trained head picks the person, with probability >= {:.2}",
            head.min_prob
        ));
    }
    text
}

// --- command-line arguments ---

/// `facegate enrol PEOPLE --key K.key --version N --out door.fgb`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate enrol family/ -o door.fgb            # family/ann/*.jpg, family/bob/*.jpg ...
  facegate enrol family/ --enrol-masks 3 --door front -o front.fgb")]
pub struct EnrolCmd {
    /// Folder with one sub-folder of photos per person.
    pub people: PathBuf,
    /// Secret key from `facegate keygen` [default: ~/.config/facegate/facegate.key].
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Model version; the door only accepts versions newer than the one it runs [default: one
    /// past the last bundle signed with the key].
    #[arg(long)]
    pub version: Option<u32>,
    /// The bundle file to write.
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
    /// Acceptance threshold [default: calibrated for the embedder at FAR 1e-3].
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Masked copies of each enrolment photo added as extra templates (surgical, cloth,
    /// patterned in turn), so the door knows each person behind a mask too [default: 3 for the
    /// masked path when faces are routed by mask state, else 0].
    #[arg(long, value_name = "N")]
    pub enrol_masks: Option<usize>,
    /// The door (or group of doors) this bundle is for, as set in the door's `model.door` or
    /// `model.groups`; a door refuses bundles made for another.
    #[arg(long)]
    pub door: Option<String>,
    /// Networks (the bundle always carries the int8-weight embedder).
    #[command(flatten)]
    pub net: NetworkOpts,
    /// Mask routing (the door's default).
    #[command(flatten)]
    pub route: RouteOpts,
}

/// `facegate inspect BUNDLE --trust K.pub`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate inspect door.fgb
  facegate inspect door.fgb --trust office.pub")]
pub struct InspectCmd {
    /// The bundle file.
    pub bundle: PathBuf,
    /// Trusted public key(s) [default: ~/.config/facegate/facegate.pub].
    #[arg(long)]
    pub trust: Vec<PathBuf>,
}
