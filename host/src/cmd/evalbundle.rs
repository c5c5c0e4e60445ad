//! `facegate eval --bundle`: measure a signed bundle exactly as the door will run it (its own
//! embedder file, gallery, head and threshold, through the shared library's `identify`) on
//! imported test datasets, unmasked and with a synthetic mask on every probe.
//!
//! Probes whose person is in the bundle are genuine; everyone else is a stranger. A test
//! photo that the bundle was trained on (its embedding is one of the templates) would flatter
//! the numbers, so it is left out and counted.

use std::path::Path;

use anyhow::{Context, Result, bail};
use facegate_models::embed::{Embedder, cosine};
use facegate_models::gallery::{Decision, Gallery};
use facegate_models::maskroute::MaskRoute;
use serde::Serialize;

use crate::cmd::eval::EvalCmd;
use crate::cmd::keys::open_bundle;
use crate::eval::metrics::{self, BestMatch, FixedPoint, OperatingPoint};
use crate::faceset::Dataset;
use crate::files::{write_atomically, write_png};
use crate::progress::bar;
use crate::report::html::{self, Mistake};
use crate::report::plots;
use crate::train::augment::{self, Params};
use crate::train::masked_crop;

/// FAR targets in the table.
pub const FAR_TARGETS: [f64; 4] = [1e-1, 1e-2, 1e-3, 1e-4];

/// The FAR a door's default threshold is calibrated for, drawn on the DET chart.
const TARGET_FAR: f64 = 1e-3;

/// One probe view, scored.
struct Scored {
    ds: usize,
    sample: usize,
    masked: bool,
    truth: Option<usize>,
    decision: Decision,
    candidate: BestMatch,
    /// The candidate of the same gallery without its head (nearest template).
    plain: BestMatch,
}

/// Metrics of one condition (all, unmasked, masked).
#[derive(Debug, Serialize)]
pub struct Condition {
    /// Genuine probe views.
    pub genuine: usize,
    /// Stranger probe views.
    pub strangers: usize,
    /// Genuine views whose candidate is the right person (no threshold).
    pub rank1: f64,
    /// At the bundle's threshold.
    pub at_bundle: FixedPoint,
    /// At thresholds chosen on this data for each FAR target.
    pub operating: Vec<OperatingPoint>,
}

/// One person's precision and recall at the bundle's threshold.
#[derive(Debug, Serialize)]
pub struct PersonStats {
    /// Name ("stranger" for the stranger row).
    pub name: String,
    /// Probe views of this person.
    pub support: usize,
    /// Right / all decisions naming this person.
    pub precision: f64,
    /// Right decisions / this person's views.
    pub recall: f64,
}

/// The JSON report.
#[derive(Debug, Serialize)]
pub struct BundleReport {
    /// Bundle version.
    pub model_version: u32,
    /// Embedder.
    pub embedder: String,
    /// Threshold.
    pub threshold: f32,
    /// Whether a trained head decides who.
    pub head: bool,
    /// Enrolled names.
    pub labels: Vec<String>,
    /// Test photos left out because the bundle was trained on them.
    pub left_out_enrolled: usize,
    /// Unmasked + masked / unmasked only / masked only.
    pub all: Condition,
    /// Unmasked probes.
    pub unmasked: Condition,
    /// Probes with a synthetic mask.
    pub masked: Condition,
    /// The same probes decided by the nearest template alone (the head removed), unmasked
    /// then masked: what the head adds. `None` for a bundle without a head.
    pub without_head: Option<[Condition; 2]>,
    /// Precision and recall per person and for strangers (all probes).
    pub per_person: Vec<PersonStats>,
    /// Rows: truth, columns: decision; labels then "stranger" (all probes).
    pub confusion: Vec<Vec<usize>>,
}

/// Runs `facegate eval --bundle B DATASET [--strangers D]...`.
pub fn run(cmd: EvalCmd) -> Result<()> {
    let Some(bundle_path) = &cmd.bundle else {
        bail!("internal: --bundle missing");
    };
    // Verified as the door would, with --trust or the default key.
    let bundle = open_bundle(bundle_path, &crate::home::trusted_paths(&cmd.trust)?)?;
    let h = &bundle.header;
    let embedder = Embedder::from_files(h.embedder, h.quantised, &bundle.payload.models)?;
    let gallery = bundle.gallery();
    // A bundle with masked templates routes each face by its mask state, as the door does.
    let route = match &gallery.masked {
        Some(_) => Some(MaskRoute::from_files(&bundle.payload.models, h.quantised)?),
        None => None,
    };
    let mut sets = vec![Dataset::open(&cmd.dataset)?];
    for s in &cmd.strangers {
        sets.push(Dataset::open(s)?);
    }
    let (scored, left_out) = score((&embedder, route.as_ref()), &gallery, &sets)?;
    if scored.is_empty() {
        bail!("no test photos left to score");
    }
    let labels: Vec<String> = gallery.people.iter().map(|p| p.name.clone()).collect();
    let k = labels.len();
    let cond = |f: &dyn Fn(&Scored) -> bool| {
        condition(scored.iter().filter(|s| f(s)), gallery.threshold, |s| {
            s.candidate
        })
    };
    let plain = |masked: bool| {
        condition(
            scored.iter().filter(|s| s.masked == masked),
            gallery.threshold,
            |s| s.plain,
        )
    };
    let mut confusion = vec![vec![0usize; k + 1]; k + 1];
    for s in &scored {
        confusion[s.truth.unwrap_or(k)][s.decision.person().unwrap_or(k)] += 1;
    }
    let mut names = labels.clone();
    names.push("stranger".into());
    let per_person = (0..=k)
        .map(|i| {
            let support: usize = confusion[i].iter().sum();
            let named: usize = confusion.iter().map(|r| r[i]).sum();
            PersonStats {
                name: names[i].clone(),
                support,
                precision: ratio(confusion[i][i], named),
                recall: ratio(confusion[i][i], support),
            }
        })
        .collect();
    let report = BundleReport {
        model_version: h.model_version,
        embedder: h.embedder.as_str().to_owned(),
        threshold: gallery.threshold,
        head: gallery.head.is_some(),
        labels: labels.clone(),
        left_out_enrolled: left_out,
        all: cond(&|_| true),
        unmasked: cond(&|s| !s.masked),
        masked: cond(&|s| s.masked),
        without_head: gallery.head.as_ref().map(|_| [plain(false), plain(true)]),
        per_person,
        confusion: confusion.clone(),
    };
    print_text(&report, &names);
    if let Some(out) = &cmd.out_dir {
        write_folder(out, &report, &names, &scored, &sets, &gallery)?;
        println!("report: {}", out.join("report.html").display());
    }
    if let Some(path) = &cmd.json {
        write_atomically(path, &serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

/// Every sample of every set, unmasked and masked, through the bundle's embedder (and masked
/// path, when it routes) and gallery.
fn score(
    (embedder, route): (&Embedder, Option<&MaskRoute>),
    gallery: &Gallery,
    sets: &[Dataset],
) -> Result<(Vec<Scored>, usize)> {
    let total: usize = sets.iter().map(|d| d.manifest.samples.len()).sum();
    let pb = bar(total as u64, "scoring", "photos");
    let mut out = Vec::with_capacity(total * 2);
    let mut left_out = 0;
    let headless = Gallery {
        head: None,
        ..gallery.clone()
    };
    for (d, ds) in sets.iter().enumerate() {
        for (i, s) in ds.manifest.samples.iter().enumerate() {
            pb.inc(1);
            let truth = gallery.people.iter().position(|p| p.name == s.person);
            let ctx = ds.crop(s)?;
            let plain = embedder.embed(&augment::apply(&ctx, &s.landmarks, &Params::identity()))?;
            let enrolled = gallery
                .people
                .iter()
                .flat_map(|p| &p.templates)
                .any(|t| cosine(t, &plain) > 0.9999);
            if enrolled {
                left_out += 1;
                continue;
            }
            let masked_view = masked_crop(ds, s)?;
            let views = match route {
                None => [(plain, false), (embedder.embed(&masked_view)?, false)],
                Some(r) => [
                    r.embed_aligned(
                        &augment::apply(&ctx, &s.landmarks, &Params::identity()),
                        embedder,
                    )?,
                    r.embed_aligned(&masked_view, embedder)?,
                ],
            };
            for ((e, routed_masked), is_masked) in views.into_iter().zip([false, true]) {
                let decision = gallery.identify_face(&e, routed_masked);
                let best = |g: &Gallery| {
                    g.scores_for(&e, routed_masked)
                        .into_iter()
                        .enumerate()
                        .filter(|(_, s)| s.is_finite())
                        .max_by(|a, b| a.1.total_cmp(&b.1))
                };
                out.push(Scored {
                    ds: d,
                    sample: i,
                    masked: is_masked,
                    truth,
                    candidate: if routed_masked {
                        best(gallery)
                    } else {
                        gallery.candidate(&e)
                    },
                    decision,
                    plain: best(&headless),
                });
            }
        }
    }
    pb.finish_and_clear();
    Ok((out, left_out))
}

fn condition<'a>(
    views: impl Iterator<Item = &'a Scored>,
    threshold: f32,
    pick: impl Fn(&Scored) -> BestMatch,
) -> Condition {
    let mut genuine: Vec<(usize, BestMatch)> = Vec::new();
    let mut impostor: Vec<f32> = Vec::new();
    for s in views {
        match s.truth {
            Some(t) => genuine.push((t, pick(s))),
            None => impostor.push(pick(s).map_or(-1.0, |c| c.1)),
        }
    }
    Condition {
        genuine: genuine.len(),
        strangers: impostor.len(),
        rank1: metrics::rank1(&genuine),
        at_bundle: metrics::at_threshold(&genuine, &impostor, threshold),
        operating: FAR_TARGETS
            .iter()
            .map(|&f| metrics::operating_point(&genuine, &impostor, f))
            .collect(),
    }
}

/// The report as text on stdout: what `facegate eval --bundle` prints.
fn print_text(r: &BundleReport, names: &[String]) {
    println!(
        "bundle v{} ({}{}, threshold {:.4}), {}; {} test photos left out (trained on)",
        r.model_version,
        r.embedder,
        if r.head { " + head" } else { "" },
        r.threshold,
        facegate_models::gallery::people_count(r.labels.len()),
        r.left_out_enrolled
    );
    print_confusion(r, names);
    print_per_person(r);
    print_conditions(r);
}

/// The confusion matrix, rows the truth and columns the door's decision.
fn print_confusion(r: &BundleReport, names: &[String]) {
    println!("\nconfusion matrix (rows: truth, columns: door's decision; unmasked + masked):");
    let width = names.iter().map(|n| n.len()).max().unwrap_or(8).min(22);
    print!("{:>width$} ", "");
    for j in 0..names.len() {
        print!("{:>5}", j);
    }
    println!();
    for (i, row) in r.confusion.iter().enumerate() {
        let n: String = names[i].chars().take(width).collect();
        print!("{n:>width$} ");
        for c in row {
            print!("{c:>5}");
        }
        println!("   ({i})");
    }
}

/// Support, precision and recall of each person.
fn print_per_person(r: &BundleReport) {
    println!(
        "\n{:<24} {:>8} {:>10} {:>8}",
        "person", "support", "precision", "recall"
    );
    for p in &r.per_person {
        let pct = |v: f64| {
            if v.is_nan() {
                "-".to_owned()
            } else {
                format!("{:.1}%", 100.0 * v)
            }
        };
        println!(
            "{:<24} {:>8} {:>10} {:>8}",
            p.name.chars().take(24).collect::<String>(),
            p.support,
            pct(p.precision),
            pct(p.recall)
        );
    }
}

/// Rank-1, the bundle's operating point and TAR at each FAR target, for all, unmasked and
/// masked probes (and without the head, when it has one).
fn print_conditions(r: &BundleReport) {
    println!(
        "\n{:<18} {:>8} {:>9} {:>8} {:>22} {:>12} {:>12} {:>12}",
        "probes",
        "genuine",
        "strangers",
        "rank-1",
        "at bundle: TAR / FAR",
        "TAR@1e-2",
        "TAR@1e-3",
        "TAR@1e-4"
    );
    let mut rows = vec![
        ("all", &r.all),
        ("unmasked", &r.unmasked),
        ("masked", &r.masked),
    ];
    if let Some([u, m]) = &r.without_head {
        rows.push(("no head, unmasked", u));
        rows.push(("no head, masked", m));
    }
    for (name, c) in rows {
        let at = |f: f64| {
            c.operating
                .iter()
                .find(|o| o.far_target == f)
                .map_or("-".to_owned(), |o| format!("{:.2}%", 100.0 * o.tar))
        };
        println!(
            "{:<18} {:>8} {:>9} {:>7.2}% {:>12.2}% / {:>5.2}% {:>12} {:>12} {:>12}",
            name,
            c.genuine,
            c.strangers,
            100.0 * c.rank1,
            100.0 * c.at_bundle.tar,
            100.0 * c.at_bundle.far,
            at(1e-2),
            at(1e-3),
            at(1e-4)
        );
    }
}

fn write_folder(
    out: &Path,
    r: &BundleReport,
    names: &[String],
    scored: &[Scored],
    sets: &[Dataset],
    gallery: &Gallery,
) -> Result<()> {
    std::fs::create_dir_all(out.join("thumbs"))
        .with_context(|| format!("creating {}", out.display()))?;
    let png = |img: &image::RgbImage, name: &str| write_png(&out.join(name), img);
    png(
        &plots::confusion(
            names,
            &r.confusion,
            "confusion matrix, unmasked + masked probes",
        )?,
        "confusion.png",
    )?;
    png(&det_chart(r, scored)?, "det.png")?;

    let groups = mistakes(out, scored, sets, gallery)?;
    let summary = summary_rows(r);
    let page = html::page(
        "facegate evaluation",
        &summary,
        &["confusion.png", "det.png"],
        &groups,
    );
    write_atomically(&out.join("report.html"), page.as_bytes())?;
    write_atomically(&out.join("report.json"), &serde_json::to_vec_pretty(r)?)?;
    Ok(())
}

/// The DET chart: unmasked and masked curves, the door's operating points, the FAR target.
fn det_chart(r: &BundleReport, scored: &[Scored]) -> Result<image::RgbImage> {
    let mut curves = Vec::new();
    let mut marks = Vec::new();
    for (name, masked) in [("unmasked", false), ("synthetic mask", true)] {
        let views: Vec<&Scored> = scored.iter().filter(|s| s.masked == masked).collect();
        let genuine: Vec<Option<f32>> = views
            .iter()
            .filter_map(|s| {
                s.truth
                    .map(|t| s.candidate.filter(|c| c.0 == t).map(|c| c.1))
            })
            .collect();
        let impostor: Vec<f32> = views
            .iter()
            .filter(|s| s.truth.is_none())
            .map(|s| s.candidate.map_or(-1.0, |c| c.1))
            .collect();
        let c = if masked { &r.masked } else { &r.unmasked };
        marks.push((
            format!("door ({name})"),
            c.at_bundle.far,
            1.0 - c.at_bundle.tar,
        ));
        curves.push(plots::Curve {
            name: name.into(),
            points: plots::det_points(&genuine, &impostor),
        });
    }
    plots::det(
        &curves,
        &marks,
        TARGET_FAR,
        "DET: strangers let in vs enrolled refused",
    )
}

/// The worst mistakes per kind (at most 16 each), each with a thumbnail of the face the door
/// saw written into `out/thumbs/`.
#[allow(clippy::type_complexity)]
fn mistakes(
    out: &Path,
    scored: &[Scored],
    sets: &[Dataset],
    gallery: &Gallery,
) -> Result<Vec<(&'static str, Vec<Mistake>)>> {
    let png = |img: &image::RgbImage, name: &str| write_png(&out.join(name), img);
    let mut thumbs = 0usize;
    let mut mistake = |s: &Scored, score: f32| -> Result<Mistake> {
        let ds = &sets[s.ds];
        let sample = &ds.manifest.samples[s.sample];
        let img = if s.masked {
            masked_crop(ds, sample)?
        } else {
            augment::apply(&ds.crop(sample)?, &sample.landmarks, &Params::identity())
        };
        thumbs += 1;
        let thumb = format!("thumbs/{thumbs:04}.png");
        png(&img, &thumb)?;
        Ok(Mistake {
            thumb,
            source: sample.source.clone(),
            truth: sample.person.clone(),
            decision: match s.decision.person() {
                Some(p) => gallery.people[p].name.clone(),
                None => "stranger".into(),
            },
            score,
            masked: s.masked,
        })
    };
    let score_of = |s: &Scored| s.candidate.map_or(-1.0, |c| c.1);
    let mut fa: Vec<&Scored> = scored
        .iter()
        .filter(|s| s.truth.is_none() && s.decision.person().is_some())
        .collect();
    fa.sort_by(|a, b| score_of(b).total_cmp(&score_of(a)));
    let mut near: Vec<&Scored> = scored
        .iter()
        .filter(|s| s.truth.is_none() && s.decision.person().is_none())
        .collect();
    near.sort_by(|a, b| score_of(b).total_cmp(&score_of(a)));
    let wrong: Vec<&Scored> = scored
        .iter()
        .filter(|s| {
            s.truth.is_some() && s.decision.person().is_some() && s.decision.person() != s.truth
        })
        .collect();
    let mut fr: Vec<&Scored> = scored
        .iter()
        .filter(|s| s.truth.is_some() && s.decision.person().is_none())
        .collect();
    fr.sort_by(|a, b| score_of(a).total_cmp(&score_of(b)));
    let mut groups = Vec::new();
    for (title, list) in [
        ("Strangers let in", fa),
        ("Enrolled people taken for someone else", wrong),
        ("Enrolled people refused (lowest scores)", fr),
        ("Strangers closest to getting in", near),
    ] {
        let mut items = Vec::new();
        for s in list.into_iter().take(16) {
            items.push(mistake(s, score_of(s))?);
        }
        groups.push((title, items));
    }
    Ok(groups)
}

/// The summary table atop `report.html`.
fn summary_rows(r: &BundleReport) -> Vec<(String, String)> {
    let pct = |v: f64| format!("{:.2}%", 100.0 * v);
    vec![
        (
            "bundle".to_owned(),
            format!(
                "v{} {}{}, threshold {:.4}",
                r.model_version,
                r.embedder,
                if r.head { " + head" } else { "" },
                r.threshold
            ),
        ),
        ("people".into(), r.labels.join(", ")),
        (
            "left out (trained on)".into(),
            r.left_out_enrolled.to_string(),
        ),
        (
            "unmasked: TAR / FAR at the bundle's threshold".into(),
            format!(
                "{} / {} ({} genuine, {} strangers)",
                pct(r.unmasked.at_bundle.tar),
                pct(r.unmasked.at_bundle.far),
                r.unmasked.genuine,
                r.unmasked.strangers
            ),
        ),
        (
            "masked: TAR / FAR at the bundle's threshold".into(),
            format!(
                "{} / {} ({} genuine, {} strangers)",
                pct(r.masked.at_bundle.tar),
                pct(r.masked.at_bundle.far),
                r.masked.genuine,
                r.masked.strangers
            ),
        ),
    ]
}
