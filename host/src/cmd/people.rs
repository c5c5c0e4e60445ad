//! `facegate people list|rename|remove`: a household's people change (a typo in a folder
//! name, someone moves out) and neither the dataset nor the door's bundle should need a
//! re-import or a re-enrolment for that.
//!
//! In a dataset the manifest and the crop folders change (a rename onto an existing name
//! merges the two). In a bundle the gallery changes, a trained head loses the removed person's
//! row, the self-test is moved to someone who stays, and the result is signed again as a new
//! version (the next one for the key, as `enrol` and `train` choose), ready for `push`.

use clap::{Args, Subcommand};

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use facegate_models::bundle::{Bundle, SelfTest};
use facegate_models::gallery::{Decision, check_name, people_count};

use crate::cmd::keys::{open_bundle, read_secret};
use crate::faceset::{Dataset, safe_name};
use crate::files::{now_ms, write_atomically};

/// Runs `facegate people ...`.
pub fn run(cmd: PeopleCmd) -> Result<()> {
    match cmd.action {
        PeopleAction::List { target, trust } => {
            if target.is_dir() {
                let ds = Dataset::open(&target)?;
                let people = ds.by_person();
                println!("{}: {}", target.display(), people_count(people.len()));
                for (name, samples) in people {
                    println!("  {name}: {} faces", samples.len());
                }
            } else {
                let bundle = open_bundle(&target, &crate::home::trusted_paths(&trust)?)?;
                println!(
                    "{} (version {}): {}",
                    target.display(),
                    bundle.header.model_version,
                    people_count(bundle.payload.people.len())
                );
                for p in &bundle.payload.people {
                    println!("  {}: {} templates", p.name, p.templates.len());
                }
            }
            Ok(())
        }
        PeopleAction::Rename { edit, old, new } => {
            check_name(&new)?;
            edit_target(&edit, &Change::Rename { old, new })
        }
        PeopleAction::Remove { edit, name } => edit_target(&edit, &Change::Remove { name }),
    }
}

/// One change to the people.
pub enum Change {
    /// OLD becomes NEW.
    Rename {
        /// The name now.
        old: String,
        /// The name wanted.
        new: String,
    },
    /// NAME goes.
    Remove {
        /// Who.
        name: String,
    },
}

fn edit_target(edit: &PeopleEdit, change: &Change) -> Result<()> {
    if edit.target.is_dir() {
        let mut ds = Dataset::open(&edit.target)?;
        let (said, leftovers) = edit_dataset(&mut ds, change)?;
        // The new manifest first, then the old files go: a crash in between leaves unused
        // files, never a manifest that names files that are gone.
        ds.save()?;
        for path in leftovers {
            let _ = std::fs::remove_file(&path);
            if let Some(folder) = path.parent() {
                let _ = std::fs::remove_dir(folder); // only when it is empty
            }
        }
        println!("{said} in {}", edit.target.display());
        Ok(())
    } else {
        edit_bundle(edit, change)
    }
}

/// Applies `change` to a dataset's manifest, putting renamed people's crops in place under
/// their new name (links, or copies); says what it did and returns the files that are no
/// longer used, to delete once the manifest is saved.
pub fn edit_dataset(ds: &mut Dataset, change: &Change) -> Result<(String, Vec<PathBuf>)> {
    let mut leftovers = Vec::new();
    match change {
        Change::Rename { old, new } => {
            let exists = ds.manifest.samples.iter().any(|s| s.person == *new);
            let mut moved = 0usize;
            let folder = Path::new("crops").join(safe_name(new));
            std::fs::create_dir_all(ds.dir.join(&folder))
                .with_context(|| format!("creating {}", folder.display()))?;
            for s in ds.manifest.samples.iter_mut().filter(|s| s.person == *old) {
                let file = Path::new(&s.crop)
                    .file_name()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(format!("{}.png", s.id)));
                let to = folder.join(file);
                if to != Path::new(&s.crop) {
                    let (from, dest) = (ds.dir.join(&s.crop), ds.dir.join(&to));
                    std::fs::hard_link(&from, &dest)
                        .or_else(|_| std::fs::copy(&from, &dest).map(|_| ()))
                        .with_context(|| format!("copying {} to {}", s.crop, to.display()))?;
                    leftovers.push(from);
                }
                s.crop = to.to_string_lossy().into_owned();
                s.person.clone_from(new);
                moved += 1;
            }
            if moved == 0 {
                bail!("nobody is called {old:?} in {}", ds.dir.display());
            }
            for s in ds.manifest.skipped.iter_mut().filter(|s| s.person == *old) {
                s.person.clone_from(new);
            }
            let said = format!(
                "renamed {old} to {new} ({moved} faces{})",
                if exists {
                    ", merged with the faces already under that name"
                } else {
                    ""
                }
            );
            Ok((said, leftovers))
        }
        Change::Remove { name } => {
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut ds.manifest.samples)
                .into_iter()
                .partition(|s| s.person == *name);
            ds.manifest.samples = kept;
            if gone.is_empty() {
                bail!("nobody is called {name:?} in {}", ds.dir.display());
            }
            leftovers.extend(gone.iter().map(|s| ds.dir.join(&s.crop)));
            ds.manifest.skipped.retain(|s| s.person != *name);
            Ok((format!("removed {name} ({} faces)", gone.len()), leftovers))
        }
    }
}

/// Applies `change` to a bundle: verify, edit, re-sign as the next version.
fn edit_bundle(edit: &PeopleEdit, change: &Change) -> Result<()> {
    let mut bundle = open_bundle(&edit.target, &crate::home::trusted_paths(&edit.trust)?)?;
    let said = edit_gallery(&mut bundle, change)?;
    let key = read_secret(&crate::home::secret_key_path(edit.key.as_deref())?)?;
    let mut version = crate::home::next_version(edit.version, &key)?;
    if edit.version.is_none() && version <= bundle.header.model_version {
        version = bundle
            .header
            .model_version
            .checked_add(1)
            .context("the bundle's version is u32::MAX; pass --version")?;
        eprintln!("version {version} instead (one past the bundle's own)");
    }
    if version <= bundle.header.model_version {
        bail!(
            "version {version} is not above the bundle's {}: the door would refuse it; pass \
             --version {}",
            bundle.header.model_version,
            bundle.header.model_version + 1
        );
    }
    bundle.header.model_version = version;
    bundle.header.created_ms = now_ms();
    let out = edit.out.as_deref().unwrap_or(&edit.target);
    let bytes = bundle.sign(&key);
    write_atomically(out, &bytes)?;
    crate::home::record_version(&key, version)?;
    println!(
        "{said}: wrote {} (version {version}, {}); put it on the door with `facegate push`",
        out.display(),
        people_count(bundle.payload.people.len())
    );
    Ok(())
}

/// Applies `change` to a bundle's people, head and self-test; says what it did.
pub fn edit_gallery(bundle: &mut Bundle, change: &Change) -> Result<String> {
    let index = |name: &str| {
        bundle
            .payload
            .people
            .iter()
            .position(|p| p.name == name)
            .with_context(|| format!("nobody is called {name:?} in the bundle"))
    };
    match change {
        Change::Rename { old, new } => {
            let i = index(old)?;
            if bundle.payload.people.iter().any(|p| p.name == *new) {
                bail!(
                    "{new:?} is already in the bundle; remove one of the two, or enrol them \
                     together"
                );
            }
            bundle.payload.people[i].name.clone_from(new);
            bundle.header.labels[i].clone_from(new);
            match &mut bundle.payload.self_test {
                Some(SelfTest::Pattern { label, .. }) if label == old => {
                    label.clone_from(new);
                }
                _ => {}
            }
            Ok(format!("renamed {old} to {new}"))
        }
        Change::Remove { name } => {
            let i = index(name)?;
            if bundle.payload.people.len() == 1 {
                bail!("{name} is the only person in the bundle: a door with nobody never opens");
            }
            bundle.payload.people.remove(i);
            bundle.header.labels.remove(i);
            // Their masked face goes with them: the masked templates are in people order.
            if let Some(m) = &mut bundle.payload.masked
                && i < m.templates.len()
            {
                m.templates.remove(i);
            }
            if let Some(head) = &mut bundle.payload.head {
                let dim = head.dim;
                head.weights.drain(i * dim..(i + 1) * dim);
                head.bias.remove(i);
            }
            if bundle.payload.people.len() == 1 {
                // A softmax over one class always says 1: the cosine threshold alone decides.
                bundle.payload.head = None;
            }
            let moves = match &bundle.payload.self_test {
                Some(SelfTest::Pattern { label, .. }) => label == name,
                _ => false,
            };
            if moves {
                // Someone who stays, by one of their own templates that the edited gallery
                // names as them (as the door's self-test will check).
                let gallery = bundle.gallery();
                let stand_in = gallery.people.iter().enumerate().find_map(|(k, p)| {
                    p.templates.iter().find(|t| {
                        matches!(gallery.identify(t), Decision::Known { person, .. } if person == k)
                    })
                    .map(|t| (p.name.clone(), t.clone()))
                });
                let Some((who, template)) = stand_in else {
                    bail!(
                        "no one left in the bundle is recognised by their own template: make a \
                         new bundle with `facegate enrol` or `facegate train`"
                    );
                };
                if let Some(SelfTest::Pattern { label, known, .. }) = &mut bundle.payload.self_test
                {
                    *label = who;
                    *known = template;
                }
            }
            Ok(format!("removed {name}"))
        }
    }
}

// --- command-line arguments ---

/// `facegate people list|rename|remove`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate people list facegate-data
  facegate people rename facegate-data bob Robert
  facegate people remove door.fgb Robert        # signs the next version; then `facegate push`")]
pub struct PeopleCmd {
    /// What to do.
    #[command(subcommand)]
    pub action: PeopleAction,
}

/// `facegate people ...`
#[derive(Debug, Subcommand)]
pub enum PeopleAction {
    /// Who is in a dataset (faces each) or a bundle (templates each).
    List {
        /// A dataset folder (`facegate import`) or a bundle file.
        target: PathBuf,
        /// Trusted public key(s), for a bundle [default: ~/.config/facegate/facegate.pub].
        #[arg(long)]
        trust: Vec<PathBuf>,
    },
    /// Give someone another name (in a dataset, onto an existing name merges the two).
    Rename {
        /// Where.
        #[command(flatten)]
        edit: PeopleEdit,
        /// The name now.
        old: String,
        /// The new name.
        new: String,
    },
    /// Take someone out (their faces, or their templates and head row).
    Remove {
        /// Where.
        #[command(flatten)]
        edit: PeopleEdit,
        /// Who.
        name: String,
    },
}

/// The dataset or bundle a `people` change applies to, and for a bundle how it is re-signed.
#[derive(Debug, Args)]
pub struct PeopleEdit {
    /// A dataset folder (`facegate import`) or a bundle file.
    pub target: PathBuf,
    /// Bundle: trusted public key(s) [default: ~/.config/facegate/facegate.pub].
    #[arg(long)]
    pub trust: Vec<PathBuf>,
    /// Bundle: secret key that signs the changed bundle [default:
    /// ~/.config/facegate/facegate.key].
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Bundle: version of the changed bundle [default: one past the last bundle signed with the
    /// key; it must be above the bundle's own].
    #[arg(long)]
    pub version: Option<u32>,
    /// Bundle: write the changed bundle here [default: replace the file].
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
}
