//! Labelled photo folders: one sub-folder per person, images inside. Ordering is byte-wise by
//! name everywhere so that a protocol picks the same people and images on every machine.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// One person's images, sorted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonImages {
    /// Folder name.
    pub name: String,
    /// Image files, sorted by file name.
    pub images: Vec<PathBuf>,
}

/// True for the file types the pipeline decodes.
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| {
            matches!(
                e.to_ascii_lowercase().as_str(),
                "jpg" | "jpeg" | "png" | "webp" | "pgm" | "ppm" | "pnm"
            )
        })
        .unwrap_or(false)
}

/// Image files directly inside `dir`, sorted.
pub fn images_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    out.sort();
    Ok(out)
}

/// Image files below `dir`, recursively, sorted.
pub fn images_below(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if is_image(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Every sub-folder of `dir` that holds at least one image, sorted by name.
pub fn people(dir: &Path) -> Result<Vec<PersonImages>> {
    if !dir.is_dir() {
        bail!(
            "{} is not a folder: give a folder with one sub-folder of photos per person",
            dir.display()
        );
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if !p.is_dir() {
            continue;
        }
        let images = images_in(&p)?;
        if images.is_empty() {
            continue;
        }
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(PersonImages { name, images });
    }
    out.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    if out.is_empty() {
        bail!(
            "{} has no sub-folders with images: expected DIR/PERSON/photo.jpg",
            dir.display()
        );
    }
    Ok(out)
}

/// One line of MFR2's `mfr2_labels.txt`: `name, index, mask type`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mfr2Label {
    /// Person (folder) name.
    pub name: String,
    /// Image number.
    pub index: u32,
    /// `None` for `no-mask`, else the mask kind.
    pub mask: Option<String>,
}

impl Mfr2Label {
    /// The image path inside an MFR2 folder.
    pub fn path(&self, root: &Path) -> PathBuf {
        root.join(&self.name)
            .join(format!("{}_{:04}.png", self.name, self.index))
    }
}

/// MFR2's label file: which photo wears which mask.
pub const MFR2_LABELS: &str = "mfr2_labels.txt";

/// Reads `mfr2_labels.txt` from an MFR2-style folder.
pub fn mfr2_labels(root: &Path) -> Result<Vec<Mfr2Label>> {
    let file = root.join(MFR2_LABELS);
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "reading {}: the mfr2 protocol needs MFR2's label file",
            file.display()
        )
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split(',').map(str::trim).collect();
        let [name, index, mask] = parts[..] else {
            bail!(
                "{}:{}: expected `name, index, mask type`",
                file.display(),
                n + 1
            );
        };
        let index = index
            .parse()
            .with_context(|| format!("{}:{}: bad index", file.display(), n + 1))?;
        let mask = (mask != "no-mask").then(|| mask.to_owned());
        out.push(Mfr2Label {
            name: name.to_owned(),
            index,
            mask,
        });
    }
    Ok(out)
}
