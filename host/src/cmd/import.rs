//! `facegate import`: photos -> detected, checked, aligned and embedded faces in a dataset
//! folder (see [`crate::faceset`]). Incremental by file hash: a photo already imported is not
//! looked at again, the same photo under a second label is refused, and every photo that is not
//! taken is listed with its reason at the end.

use crate::cmd::opts::DatasetNet;
use crate::cmd::opts::QualityOpts;
use clap::Args;

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use facegate_models::image_io;
use facegate_models::pipeline::Pipeline;

use crate::faceset::folders::{images_below, is_image, people};
use crate::faceset::ingest::{Rules, Source, content_id, ingest, open_with_pipeline};
use crate::faceset::{Dataset, Origin, Skipped};
use crate::progress::bar;

/// What happened to the photos of one run.
#[derive(Debug, Default)]
pub struct Summary {
    /// New samples.
    pub added: usize,
    /// Already in the dataset and left as they were.
    pub unchanged: usize,
    /// Skipped this run: (file, reason).
    pub skipped: Vec<(String, String)>,
}

/// Runs `facegate import`.
pub fn run(cmd: ImportCmd) -> Result<()> {
    let jobs = jobs(&cmd)?;
    let (mut ds, pipeline) = open_with_pipeline(
        &cmd.dataset,
        &cmd.net.models.resolve(),
        cmd.net.embedder.into(),
        !cmd.net.fp32,
    )?;
    let rules = cmd.rules();
    let summary = import(&pipeline, &mut ds, &jobs, rules)?;
    for (file, reason) in &summary.skipped {
        println!("skipped {file}: {reason}");
    }
    let people = ds.by_person();
    println!(
        "{} new faces, {} unchanged, {} skipped; {} now holds {} faces of {}",
        summary.added,
        summary.unchanged,
        summary.skipped.len(),
        cmd.dataset.display(),
        ds.manifest.samples.len(),
        facegate_models::gallery::people_count(people.len())
    );
    Ok(())
}

/// (label, photo) pairs from the command line.
fn jobs(cmd: &ImportCmd) -> Result<Vec<(String, PathBuf)>> {
    let mut jobs = Vec::new();
    match &cmd.label {
        Some(label) => {
            if label.trim().is_empty() {
                bail!("--label is empty: give the person's name");
            }
            for p in &cmd.paths {
                if p.is_dir() {
                    jobs.extend(images_below(p)?.into_iter().map(|f| (label.clone(), f)));
                } else if p.is_file() && is_image(p) {
                    jobs.push((label.clone(), p.clone()));
                } else {
                    bail!(
                        "{} is not a photo (jpg, png, webp, pgm, ppm) or a folder of photos",
                        p.display()
                    );
                }
            }
        }
        None => {
            for p in &cmd.paths {
                if !p.is_dir() {
                    bail!(
                        "{} is not a folder: without --label, give folders with one sub-folder of photos per person",
                        p.display()
                    );
                }
                for person in people(p)? {
                    jobs.extend(person.images.into_iter().map(|f| (person.name.clone(), f)));
                }
            }
        }
    }
    if jobs.is_empty() {
        bail!("no photos found in the paths given");
    }
    Ok(jobs)
}

/// Imports `jobs` into `ds`, saving the manifest every 25 new entries and at the end.
pub fn import(
    pipeline: &Pipeline,
    ds: &mut Dataset,
    jobs: &[(String, PathBuf)],
    rules: Rules,
) -> Result<Summary> {
    let mut judged = Judged::of(ds, &rules);
    let mut summary = Summary::default();
    let pb = bar(jobs.len() as u64, "importing", "photos");
    let mut dirty = 0;
    for (person, path) in jobs {
        pb.inc(1);
        let source = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                summary.skipped.push((source, format!("cannot read: {e}")));
                continue;
            }
        };
        let id = content_id(&bytes);
        match judged.earlier(&id, person) {
            Some(Ok(())) => summary.unchanged += 1,
            Some(Err(reason)) => summary.skipped.push((source, reason)),
            None => {
                let outcome = match image_io::decode_file(&bytes) {
                    Ok(img) => {
                        let src = Source {
                            id: &id,
                            person,
                            name: &source,
                            origin: Origin::Photo,
                        };
                        ingest(pipeline, ds, &img, src, rules)?
                    }
                    Err(e) => Err(format!(
                        "not a readable image: {}",
                        facegate_models::error::full(&e)
                    )),
                };
                judged.record(ds, id, person, source, outcome, &mut summary);
                dirty += 1;
                if dirty >= 25 {
                    ds.save()?;
                    dirty = 0;
                }
            }
        }
    }
    pb.finish_and_clear();
    ds.save()?;
    Ok(summary)
}

/// What the dataset already says about photos, so that a re-run does not judge them again:
/// whose each photo (by content ID) is, and which were skipped under the rules in force (a
/// photo skipped under other rules is judged again).
struct Judged {
    owner: HashMap<String, String>,
    skipped: HashMap<(String, String), String>,
    rules: String,
}

impl Judged {
    fn of(ds: &Dataset, rules: &Rules) -> Self {
        let rules = rules.fingerprint();
        Self {
            owner: ds
                .manifest
                .samples
                .iter()
                .map(|s| (s.id.clone(), s.person.clone()))
                .collect(),
            skipped: ds
                .manifest
                .skipped
                .iter()
                .filter(|s| s.rules == rules)
                .map(|s| ((s.id.clone(), s.person.clone()), s.reason.clone()))
                .collect(),
            rules,
        }
    }

    /// `None` when photo `id` of `person` is to be judged now; otherwise `Ok` when it is
    /// already in the dataset as theirs, or the reason to skip it.
    fn earlier(&self, id: &str, person: &str) -> Option<Result<(), String>> {
        if let Some(owner) = self.owner.get(id) {
            return Some(if owner == person {
                Ok(())
            } else {
                Err(format!(
                    "the same photo is already in the dataset as {owner}"
                ))
            });
        }
        let reason = self.skipped.get(&(id.to_owned(), person.to_owned()))?;
        Some(Err(format!("{reason} (as before, under the same rules)")))
    }

    /// Records the judgement of photo `id` of `person` (from file `source`) in the dataset and
    /// the summary; whatever an earlier run under other rules said of it is replaced.
    fn record(
        &mut self,
        ds: &mut Dataset,
        id: String,
        person: &str,
        source: String,
        outcome: std::result::Result<crate::faceset::Sample, String>,
        summary: &mut Summary,
    ) {
        ds.manifest
            .skipped
            .retain(|s| !(s.id == id && s.person == person));
        match outcome {
            Ok(sample) => {
                self.owner.insert(id, person.to_owned());
                ds.manifest.samples.push(sample);
                summary.added += 1;
            }
            Err(reason) => {
                self.skipped
                    .insert((id.clone(), person.to_owned()), reason.clone());
                ds.manifest.skipped.push(Skipped {
                    id,
                    person: person.to_owned(),
                    source: source.clone(),
                    reason: reason.clone(),
                    rules: self.rules.clone(),
                });
                summary.skipped.push((source, reason));
            }
        }
    }
}

// --- command-line arguments ---

/// `facegate import PATH... [--label NAME] --dataset DIR`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate import family/                      # family/ann/*.jpg, family/bob/*.jpg ...
  facegate import ~/Pictures/ann*.jpg --label ann")]
pub struct ImportCmd {
    /// With --label: photos (or folders of photos) of that person. Without: folders holding one
    /// sub-folder of photos per person.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Whose photos these are.
    #[arg(long)]
    pub label: Option<String>,
    /// The dataset folder (created if missing).
    #[arg(long, short, default_value = "facegate-data")]
    pub dataset: PathBuf,
    /// A photo with several faces: take the largest, or skip the photo.
    #[arg(long, value_enum, default_value_t = crate::faceset::ingest::Multi::Largest)]
    pub multi: crate::faceset::ingest::Multi,
    /// Photo quality rules.
    #[command(flatten)]
    pub quality: QualityOpts,
    /// Networks.
    #[command(flatten)]
    pub net: DatasetNet,
}

impl ImportCmd {
    /// The quality rules from the flags.
    pub fn rules(&self) -> crate::faceset::ingest::Rules {
        crate::faceset::ingest::Rules {
            multi: self.multi,
            min_face: self.quality.min_face,
            min_sharpness: self.quality.min_sharpness,
        }
    }
}
