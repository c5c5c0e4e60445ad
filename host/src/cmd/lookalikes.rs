//! `facegate lookalikes`: which people of a dataset the embedder confuses most, so that a user
//! can see a sibling problem before the door does (and pick a lookalike pair to test on).
//!
//! For each photo, its nearest other photo (cosine, leave-one-out) is found; a pair's
//! confusion count is how many photos of either person had the other person as nearest
//! neighbour. Ties are broken by the highest cosine between the two people's photos.

use clap::Args;
use std::path::PathBuf;

use anyhow::{Result, bail};
use facegate_models::embed::cosine;

use crate::faceset::Dataset;

/// One pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// The two names, sorted.
    pub people: (String, String),
    /// Photos whose nearest neighbour was the other person.
    pub confused: usize,
    /// Highest cosine between a photo of one and a photo of the other.
    pub closest: f32,
}

/// Pairs, most confused first.
pub fn pairs(ds: &Dataset) -> Vec<Pair> {
    let s = &ds.manifest.samples;
    let mut names: Vec<&str> = s.iter().map(|x| x.person.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let idx = |n: &str| names.binary_search(&n).unwrap_or(0);
    let k = names.len();
    let mut confused = vec![vec![0usize; k]; k];
    let mut closest = vec![vec![f32::NEG_INFINITY; k]; k];
    for (i, a) in s.iter().enumerate() {
        let mut best = (f32::NEG_INFINITY, usize::MAX);
        for (j, b) in s.iter().enumerate() {
            if i == j {
                continue;
            }
            let c = cosine(&a.embedding, &b.embedding);
            if c > best.0 {
                best = (c, j);
            }
            let (pa, pb) = (idx(&a.person), idx(&b.person));
            if pa != pb && c > closest[pa][pb] {
                closest[pa][pb] = c;
                closest[pb][pa] = c;
            }
        }
        if best.1 != usize::MAX {
            let (pa, pb) = (idx(&a.person), idx(&s[best.1].person));
            if pa != pb {
                confused[pa.min(pb)][pa.max(pb)] += 1;
            }
        }
    }
    let mut out = Vec::new();
    for a in 0..k {
        for b in a + 1..k {
            out.push(Pair {
                people: (names[a].to_owned(), names[b].to_owned()),
                confused: confused[a][b],
                closest: closest[a][b],
            });
        }
    }
    out.sort_by(|x, y| {
        y.confused
            .cmp(&x.confused)
            .then(y.closest.total_cmp(&x.closest))
    });
    out
}

/// Runs `facegate lookalikes`.
pub fn run(cmd: LookalikesCmd) -> Result<()> {
    let ds = Dataset::open(&cmd.dataset)?;
    let list = pairs(&ds);
    if list.is_empty() {
        bail!("{} needs at least two people", cmd.dataset.display());
    }
    println!("{:<50} {:>9} {:>8}", "pair", "confused", "closest");
    for p in list.iter().take(cmd.top) {
        println!(
            "{:<50} {:>9} {:>8.3}",
            format!("{} / {}", p.people.0, p.people.1),
            p.confused,
            p.closest
        );
    }
    Ok(())
}

// --- command-line arguments ---

/// `facegate lookalikes DATASET`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate lookalikes facegate-data --top 10")]
pub struct LookalikesCmd {
    /// An imported dataset.
    pub dataset: PathBuf,
    /// Pairs to list.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
}
