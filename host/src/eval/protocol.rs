//! The evaluation protocols, exactly as the project's contract states them.
//!
//! * open-set: enrolled = people with >= 6 images, sorted by name, at most 50; gallery = each
//!   one's first 3 images (sorted); genuine probes = their other images; impostor probes = all
//!   images of up to 1000 other people (sorted by name).
//! * mfr2: gallery = up to 2 no-mask images per person; genuine = masked images; impostors =
//!   each person's masked images scored against the others only.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::faceset::folders::{mfr2_labels, people};

/// Minimum images for a person to be enrolled (open-set).
pub const MIN_IMAGES: usize = 6;
/// Most people enrolled (open-set).
pub const MAX_ENROLLED: usize = 50;
/// Gallery images per enrolled person (open-set).
pub const GALLERY_PER_PERSON: usize = 3;
/// Most impostor identities (open-set).
pub const MAX_IMPOSTOR_PEOPLE: usize = 1000;
/// Gallery images per person (mfr2).
pub const MFR2_GALLERY: usize = 2;

/// A probe image and who it really is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The image.
    pub path: PathBuf,
    /// Index of the enrolled person it shows, for genuine probes.
    pub person: Option<usize>,
    /// An enrolled person to leave out when scoring (mfr2 impostors: their own identity).
    pub exclude: Option<usize>,
}

/// A split of a dataset into gallery and probes.
#[derive(Clone, Debug, Default)]
pub struct Split {
    /// Enrolled names, in order.
    pub enrolled: Vec<String>,
    /// Gallery images: (person index, path).
    pub gallery: Vec<(usize, PathBuf)>,
    /// Probes of enrolled people.
    pub genuine: Vec<Probe>,
    /// Probes that must be rejected.
    pub impostor: Vec<Probe>,
}

/// The open-set split of a folder-per-person dataset.
pub fn open_set(root: &Path) -> Result<Split> {
    let all = people(root)?;
    let mut split = Split::default();
    let (mut enrolled, mut others) = (Vec::new(), Vec::new());
    for p in all {
        if p.images.len() >= MIN_IMAGES && enrolled.len() < MAX_ENROLLED {
            enrolled.push(p);
        } else {
            others.push(p);
        }
    }
    for (i, p) in enrolled.into_iter().enumerate() {
        split.enrolled.push(p.name);
        for (k, path) in p.images.into_iter().enumerate() {
            if k < GALLERY_PER_PERSON {
                split.gallery.push((i, path));
            } else {
                split.genuine.push(Probe {
                    path,
                    person: Some(i),
                    exclude: None,
                });
            }
        }
    }
    for p in others.into_iter().take(MAX_IMPOSTOR_PEOPLE) {
        for path in p.images {
            split.impostor.push(Probe {
                path,
                person: None,
                exclude: None,
            });
        }
    }
    Ok(split)
}

/// The MFR2 split (real masks).
pub fn mfr2(root: &Path) -> Result<Split> {
    let mut labels = mfr2_labels(root)?;
    labels.sort_by(|a, b| {
        a.name
            .as_bytes()
            .cmp(b.name.as_bytes())
            .then(a.index.cmp(&b.index))
    });
    let mut split = Split::default();
    for l in &labels {
        if split.enrolled.last() != Some(&l.name) {
            split.enrolled.push(l.name.clone());
        }
        let person = split.enrolled.len() - 1;
        let path = l.path(root);
        if !path.is_file() {
            continue; // the held-back half of MFR2 lists images that are not here
        }
        match &l.mask {
            None => {
                if split.gallery.iter().filter(|(p, _)| *p == person).count() < MFR2_GALLERY {
                    split.gallery.push((person, path));
                }
            }
            Some(_) => {
                split.genuine.push(Probe {
                    path: path.clone(),
                    person: Some(person),
                    exclude: None,
                });
                split.impostor.push(Probe {
                    path,
                    person: None,
                    exclude: Some(person),
                });
            }
        }
    }
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder tree of empty "photos": the split only looks at names.
    fn tree(people: &[(&str, usize)], ext: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, n) in people {
            std::fs::create_dir(dir.path().join(name)).expect("mkdir");
            for i in 1..=*n {
                std::fs::write(
                    dir.path().join(name).join(format!("{name}_{i:04}.{ext}")),
                    b"",
                )
                .expect("write");
            }
        }
        dir
    }

    #[test]
    fn open_set_follows_the_contract() {
        let mut spec: Vec<(String, usize)> =
            (0..60).map(|i| (format!("p{i:02}"), 6 + i % 3)).collect();
        spec.extend((0..1100).map(|i| (format!("q{i:04}"), 1 + i % 2)));
        spec.push(("a_few".into(), 5));
        let refs: Vec<(&str, usize)> = spec.iter().map(|(n, k)| (n.as_str(), *k)).collect();
        let dir = tree(&refs, "jpg");
        let s = open_set(dir.path()).expect("split");
        assert_eq!(s.enrolled.len(), MAX_ENROLLED);
        assert_eq!(s.enrolled[0], "p00");
        assert_eq!(s.gallery.len(), 3 * MAX_ENROLLED);
        // Gallery = the first three sorted images.
        assert!(
            s.gallery[0].1.ends_with("p00/p00_0001.jpg")
                && s.gallery[2].1.ends_with("p00/p00_0003.jpg")
        );
        let expected_genuine: usize = (0..50).map(|i| 3 + i % 3).sum();
        assert_eq!(s.genuine.len(), expected_genuine);
        // Impostors: 'a_few' first (sorted), then p50..p59, then q0000.. up to 1000 people.
        let impostor_people: std::collections::BTreeSet<_> = s
            .impostor
            .iter()
            .map(|p| p.path.parent().expect("dir").to_owned())
            .collect();
        assert_eq!(impostor_people.len(), MAX_IMPOSTOR_PEOPLE);
        assert!(s.impostor[0].path.to_string_lossy().contains("a_few"));
        assert!(
            s.impostor
                .iter()
                .all(|p| p.person.is_none() && p.exclude.is_none())
        );
    }

    #[test]
    fn mfr2_enrols_unmasked_and_probes_masked() {
        let dir = tree(&[("Ann", 4), ("Bob", 3)], "png");
        std::fs::write(
            dir.path().join("mfr2_labels.txt"),
            "Ann, 1, no-mask\nAnn, 2, surgical_blue\nAnn, 3, no-mask\nAnn, 4, no-mask\nBob, 1, cloth\nBob, 2, no-mask\nBob, 3, no-mask\nBob, 9, cloth\n",
        )
        .expect("labels");
        let s = mfr2(dir.path()).expect("split");
        assert_eq!(s.enrolled, vec!["Ann", "Bob"]);
        assert_eq!(s.gallery.len(), 4, "two no-mask images each");
        assert_eq!(s.genuine.len(), 2, "Bob 9 is listed but absent");
        assert_eq!(
            s.impostor.iter().map(|p| p.exclude).collect::<Vec<_>>(),
            vec![Some(0), Some(1)]
        );
    }
}
