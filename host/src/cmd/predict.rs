//! `facegate predict`: every face in some photos through a signed bundle, as the door would
//! decide: box, name or stranger, and each enrolled person's confidence; plus a copy of each
//! photo with the boxes and names drawn on it.

use crate::cmd::opts::ModelsDir;
use clap::Args;
use std::path::PathBuf;

use std::path::Path;

use anyhow::{Context, Result};
use facegate_models::detect::Detector;
use facegate_models::gallery::{Decision, Gallery};
use facegate_models::image_io;
use facegate_models::model_files::YUNET_DOOR;
use facegate_models::pipeline::Pipeline;
use plotters::prelude::*;
use serde::Serialize;

use crate::cmd::keys::open_bundle;
use crate::files::{write_atomically, write_png};

/// One face's answer.
#[derive(Debug, Serialize)]
pub struct FaceAnswer {
    /// x, y, width, height in photo pixels.
    pub bbox: [f32; 4],
    /// The enrolled name, or `None` for a stranger.
    pub name: Option<String>,
    /// The cosine score of the person named (or of the closest person for a stranger).
    pub score: f32,
    /// Per enrolled person: the head's probability (or the cosine score without a head).
    pub confidence: Vec<(String, f32)>,
}

/// One photo's answer.
#[derive(Debug, Serialize)]
pub struct PhotoAnswer {
    /// The photo.
    pub photo: String,
    /// Faces, largest first.
    pub faces: Vec<FaceAnswer>,
}

/// Runs `facegate predict`.
pub fn run(cmd: PredictCmd) -> Result<()> {
    let bundle = open_bundle(&cmd.bundle, &crate::home::trusted_paths(&cmd.trust)?)?;
    let h = &bundle.header;
    let dir = cmd.models.resolve();
    let detector = Detector::from_bytes(&YUNET_DOOR.read_verified(&dir)?, h.detector)?;
    let pipeline = Pipeline::from_bundle(detector, &bundle)?;
    let gallery = bundle.gallery();
    if let Some(out) = &cmd.out_dir {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    }
    let mut answers = Vec::new();
    for photo in &cmd.photos {
        let img = match image_io::open(photo) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("{}: {}", photo.display(), facegate_models::error::full(&e));
                continue;
            }
        };
        let mut faces = pipeline.faces(&img)?;
        faces.sort_by(|a, b| b.detection.bbox.area().total_cmp(&a.detection.bbox.area()));
        let answer = PhotoAnswer {
            photo: photo.display().to_string(),
            faces: faces
                .iter()
                .map(|f| answer(&gallery, &f.detection.bbox, (&f.embedding, f.masked)))
                .collect(),
        };
        print_answer(&answer, gallery.threshold, gallery.head.is_some());
        if let Some(out) = &cmd.out_dir {
            annotate(img, &answer, out, photo)?;
        }
        answers.push(answer);
    }
    if let Some(path) = &cmd.json {
        write_atomically(path, &serde_json::to_vec_pretty(&answers)?)?;
    }
    Ok(())
}

/// `e`: the face's embedding, and whether it came from the masked path.
fn answer(
    gallery: &Gallery,
    b: &facegate_models::geometry::BBox,
    (e, masked): (&[f32], bool),
) -> FaceAnswer {
    let decision = gallery.identify_face(e, masked);
    let conf = match &gallery.head {
        Some(head) if !masked || gallery.masked.is_none() => head.probabilities(e),
        _ => gallery.scores_for(e, masked),
    };
    let mut confidence: Vec<(String, f32)> = gallery
        .people
        .iter()
        .zip(conf)
        .map(|(p, c)| (p.name.clone(), c))
        .collect();
    confidence.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (name, score) = match decision {
        Decision::Known { person, score } => (Some(gallery.people[person].name.clone()), score),
        Decision::Stranger { best } => (None, best.map_or(f32::NAN, |b| b.1)),
    };
    FaceAnswer {
        bbox: [b.x, b.y, b.w, b.h],
        name,
        score,
        confidence,
    }
}

/// One line per face. Every number says what it is: the cosine that decided (with the
/// threshold it had to clear), then per person either the head's probability or the cosine.
fn print_answer(a: &PhotoAnswer, threshold: f32, head: bool) {
    if a.faces.is_empty() {
        println!("{}: no face found", a.photo);
    }
    for (i, f) in a.faces.iter().enumerate() {
        let top: Vec<String> = f
            .confidence
            .iter()
            .take(3)
            .map(|(n, c)| format!("{n} {c:.3}"))
            .collect();
        println!(
            "{} face {} at ({:.0},{:.0} {:.0}x{:.0}): {} (cosine {:.3}, threshold {threshold:.3}) | {}: {}",
            a.photo,
            i + 1,
            f.bbox[0],
            f.bbox[1],
            f.bbox[2],
            f.bbox[3],
            f.name.as_deref().unwrap_or("stranger"),
            f.score,
            if head {
                "probability by the trained head"
            } else {
                "cosine per person"
            },
            top.join(", ")
        );
    }
}

/// Draws boxes (green: enrolled, red: stranger) and names onto the photo, saved as PNG.
fn annotate(mut img: image::RgbImage, a: &PhotoAnswer, out: &Path, photo: &Path) -> Result<()> {
    crate::report::plots::register_font();
    let (w, h) = img.dimensions();
    {
        let root = BitMapBackend::with_buffer(img.as_mut(), (w, h)).into_drawing_area();
        let size = (h as f64 / 28.0).clamp(12.0, 40.0);
        for f in &a.faces {
            let [x, y, bw, bh] = f.bbox.map(|v| v.round() as i32);
            let colour = if f.name.is_some() {
                RGBColor(40, 200, 60)
            } else {
                RGBColor(230, 40, 40)
            };
            let stroke = (w.max(h) / 300).max(2);
            root.draw(&Rectangle::new(
                [(x, y), (x + bw, y + bh)],
                colour.stroke_width(stroke),
            ))
            .map_err(|e| anyhow::anyhow!("drawing: {e:?}"))?;
            let label = format!("{} {:.2}", f.name.as_deref().unwrap_or("stranger"), f.score);
            let font = ("sans-serif", size).into_font().color(&WHITE);
            // The label's real width (not a guess from its length), moved left when the face
            // is near the right edge so that no name is cut off.
            let (tw, th) = root
                .estimate_text_size(&label, &font)
                .map_err(|e| anyhow::anyhow!("drawing: {e:?}"))?;
            let (tw, th) = (tw as i32 + 4, th as i32 + 4);
            let lx = x.min(w as i32 - tw).max(0);
            let ty = (y - th).max(0);
            root.draw(&Rectangle::new(
                [(lx, ty), (lx + tw, ty + th)],
                colour.filled(),
            ))
            .map_err(|e| anyhow::anyhow!("drawing: {e:?}"))?;
            root.draw(&Text::new(label, (lx + 2, ty + 2), font))
                .map_err(|e| anyhow::anyhow!("drawing: {e:?}"))?;
        }
        root.present()
            .map_err(|e| anyhow::anyhow!("drawing: {e:?}"))?;
    }
    let stem = photo
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = out.join(format!("{stem}.png"));
    write_png(&path, &img)
}

// --- command-line arguments ---

/// `facegate predict --bundle B --trust K.pub PHOTO...`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate predict group.jpg --bundle door.fgb
  facegate predict photos/*.jpg --bundle door.fgb --out-dir annotated/ --json answers.json")]
pub struct PredictCmd {
    /// Photos.
    #[arg(required = true)]
    pub photos: Vec<PathBuf>,
    /// The signed bundle.
    #[arg(long)]
    pub bundle: PathBuf,
    /// Trusted public key(s) [default: ~/.config/facegate/facegate.pub].
    #[arg(long)]
    pub trust: Vec<PathBuf>,
    /// Write each photo with boxes and names into this folder (PNG).
    #[arg(long, alias = "out", value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Write the answers as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Models folder (for the detector).
    #[command(flatten)]
    pub models: ModelsDir,
}
