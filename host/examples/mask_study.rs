//! Research tool: dumps embeddings of an open-set split under several variants (JSON lines) so
//! that scoring strategies for masked faces can be compared offline.
//! `cargo run --release -p facegate --example mask_study -- DATASET OUT.jsonl`

use std::io::Write;
use std::path::PathBuf;

use facegate::eval::protocol;
use facegate_models::align::{self, TEMPLATE};
use facegate_models::embed::{Embedder, EmbedderKind};
use facegate_models::image_io;
use facegate_models::mask::file_seed;
use facegate_models::mask::{self, MaskKind, MaskStyle, Pattern};
use facegate_models::model_files::default_dir;
use facegate_models::pipeline::{Pipeline, PipelineConfig, subject};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let split = if args.get(3).map(String::as_str) == Some("mfr2") {
        protocol::mfr2(&PathBuf::from(&args[1]))?
    } else {
        protocol::open_set(&PathBuf::from(&args[1]))?
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(&args[2])?);
    let p = Pipeline::load(&default_dir(), PipelineConfig::default())?;
    let sface = Embedder::load(&default_dir(), EmbedderKind::SFace, false)?;
    let canon = MaskStyle {
        kind: MaskKind::Cloth,
        colour: [128, 128, 128],
        accent: [128, 128, 128],
        pattern: Pattern::Stripes,
        top: 60.0,
        drop: 3.0,
        width: 1.05,
    };
    let tl = TEMPLATE.map(|[x, y]| [x as f32, y as f32]);
    let mut items: Vec<(String, i64, PathBuf)> = Vec::new();
    for (pi, path) in &split.gallery {
        items.push(("gallery".into(), *pi as i64, path.clone()));
    }
    for pr in &split.genuine {
        items.push((
            "genuine".into(),
            pr.person.map(|x| x as i64).unwrap_or(-1),
            pr.path.clone(),
        ));
    }
    for pr in &split.impostor {
        items.push((
            "impostor".into(),
            pr.exclude.map(|x| x as i64).unwrap_or(-1),
            pr.path.clone(),
        ));
    }
    let n = items.len();
    for (k, (role, person, path)) in items.into_iter().enumerate() {
        if k % 200 == 0 {
            eprintln!("{k}/{n}");
        }
        let Ok(img) = image_io::open(&path) else {
            continue;
        };
        for masked in [false, true] {
            let mut img = img.clone();
            if masked {
                let dets = p.detector().detect(&img)?;
                let Some(d) = subject(&dets, img.width(), img.height()) else {
                    continue;
                };
                let lm = d.landmarks;
                mask::paint(&mut img, &lm, &MaskStyle::from_seed(file_seed(&path)));
            }
            let dets = p.detector().detect(&img)?;
            let Some(d) = subject(&dets, img.width(), img.height()) else {
                continue;
            };
            let Some((_, crop)) = align::align(&img, d) else {
                continue;
            };
            let plain = p.embedder().embed(&crop)?;
            let flip = p
                .embedder()
                .embed(&image::imageops::flip_horizontal(&crop))?;
            let mut c = crop.clone();
            mask::paint(&mut c, &tl, &canon);
            let canon_e = p.embedder().embed(&c)?;
            let sf = sface.embed(&crop)?;
            let rec = serde_json::json!({"role": role, "person": person, "file": path.display().to_string(),
                "masked": masked, "plain": plain, "flip": flip, "canon": canon_e, "sface": sf, "score": d.score});
            writeln!(out, "{rec}")?;
        }
    }
    Ok(())
}
