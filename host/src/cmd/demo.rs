//! `facegate demo`: the main job on a built-in default, with no camera or board. Enrols people
//! from photos, then recognises a stream of other photos and prints one decision per photo, as
//! the door would log them. By default it enrols MFR2's unmasked photos (from the shared test
//! data) and then shows it their MASKED photos, followed by photos of people it never saw.

use crate::cmd::opts::{NetworkOpts, RouteOpts};
use clap::Args;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use facegate_models::gallery::{Decision, Gallery};
use facegate_models::image_io;

use crate::cmd::eval::load_pipeline;
use crate::eval::protocol;
use crate::faceset::folders::{images_below, people};
use crate::templates::{EnrolSettings, enrol_photo, photo_file_templates};

/// Runs the demo.
pub fn run(cmd: DemoCmd) -> Result<()> {
    let pipeline = load_pipeline(&cmd.net, cmd.route)?;
    let (enrol, probes) = match (&cmd.enrol, &cmd.probe) {
        (Some(e), Some(p)) => (folder_gallery(e)?, images_below(p)?),
        (None, None) => default_data()?,
        _ => bail!("give both --enrol DIR and --probe DIR, or neither for the built-in demo"),
    };
    let kind = pipeline.config().embedder;
    let settings = EnrolSettings::for_pipeline(
        &pipeline,
        cmd.threshold,
        cmd.enrol_masks,
        cmd.route.mirrored(cmd.net.embedder),
    );
    let threshold = settings.threshold;
    let mut gallery = Gallery::new(kind, threshold);
    println!(
        "enrolling {} photos (threshold {threshold:.3}, {}{})",
        enrol.len(),
        kind.as_str(),
        if settings.offset.is_some() {
            ", masked faces to the mask-adapted SFace"
        } else {
            ""
        }
    );
    for (name, path) in &enrol {
        match photo_file_templates(&pipeline, path, settings.enrol_masks, settings.mirror) {
            Ok(Some(t)) => enrol_photo(&mut gallery, name, t, settings.offset)?,
            Ok(None) => println!("  skipped {}: no face found", path.display()),
            Err(e) => println!("  skipped {}: {e:#}", path.display()),
        }
    }
    println!(
        "enrolled {}; recognising {} photos\n",
        facegate_models::gallery::people_count(gallery.people.len()),
        probes.len()
    );
    let (mut known, mut strangers, mut failed) = (0, 0, 0);
    for path in &probes {
        let shown = short(path);
        let faces = match image_io::open(path) {
            Ok(img) => pipeline.main_face(&img),
            Err(e) => Err(e),
        };
        match faces {
            Ok(Some(face)) => match gallery.identify_face(&face.embedding, face.masked) {
                Decision::Known { person, score } => {
                    known += 1;
                    println!(
                        "{shown:<48} UNLOCK   {} ({score:.2})",
                        gallery.people[person].name
                    );
                }
                Decision::Stranger { best } => {
                    strangers += 1;
                    let hint = best
                        .map(|(p, s)| format!(" (closest {} {s:.2})", gallery.people[p].name))
                        .unwrap_or_default();
                    println!("{shown:<48} stranger{hint}");
                }
            },
            Ok(None) => {
                failed += 1;
                println!("{shown:<48} no face");
            }
            Err(e) => {
                failed += 1;
                println!("{shown:<48} error: {e}");
            }
        }
    }
    println!("\n{known} unlocked, {strangers} strangers, {failed} without a usable face");
    Ok(())
}

/// (name, photo) pairs to enrol.
type Enrolment = Vec<(String, PathBuf)>;

/// (name, photo) pairs from a folder-per-person tree.
fn folder_gallery(dir: &Path) -> Result<Enrolment> {
    Ok(people(dir)?
        .into_iter()
        .flat_map(|p| p.images.into_iter().map(move |i| (p.name.clone(), i)))
        .collect())
}

/// The shared data: `$FACEGATE_SHARED`, default `../shared`.
pub fn shared_dir() -> Result<PathBuf> {
    facegate_models::testdata::shared_dir(Path::new("../shared")).map_err(|e| {
        anyhow::anyhow!("the built-in demo reads its photos from the shared data: {e}; or give --enrol DIR --probe DIR")
    })
}

/// Enrol MFR2 unmasked photos; probe with MFR2 masked photos, then deepface photos of people
/// who are not enrolled.
fn default_data() -> Result<(Enrolment, Vec<PathBuf>)> {
    let shared = shared_dir()?;
    let split = protocol::mfr2(&shared.join("faces/mfr2")).context("reading MFR2")?;
    let enrol = split
        .gallery
        .iter()
        .map(|(p, path)| (split.enrolled[*p].clone(), path.clone()))
        .collect();
    let mut probes: Vec<PathBuf> = split.genuine.iter().map(|p| p.path.clone()).collect();
    probes.extend(
        images_below(&shared.join("faces/deepface"))?
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("img"))
            }),
    );
    Ok((enrol, probes))
}

fn short(path: &Path) -> String {
    let parts: Vec<_> = path.components().rev().take(2).collect();
    parts
        .iter()
        .rev()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

// --- command-line arguments ---

/// `facegate demo ...`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate demo
  facegate demo --enrol family/ --probe door-photos/")]
pub struct DemoCmd {
    /// Folder of enrolment photos, one sub-folder per person [default: MFR2 in $FACEGATE_SHARED,
    /// unmasked photos only].
    #[arg(long)]
    pub enrol: Option<PathBuf>,
    /// Photos to recognise (a folder, searched recursively) [default: the masked MFR2 photos
    /// and the deepface strangers].
    #[arg(long)]
    pub probe: Option<PathBuf>,
    /// Acceptance threshold (cosine) [default: the one calibrated for the embedder].
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Masked copies of each enrolment photo added as extra templates (surgical, cloth,
    /// patterned in turn), so the door knows each person behind a mask too [default: as
    /// `enrol`: 3 when faces are routed by mask state, else 0].
    #[arg(long, value_name = "N")]
    pub enrol_masks: Option<usize>,
    /// Networks to run.
    #[command(flatten)]
    pub net: NetworkOpts,
    /// Mask routing (the door's default).
    #[command(flatten)]
    pub route: RouteOpts,
}
