//! The door's networks loaded both ways, side by side in one run (issue #25, item 3): from
//! the ONNX files as the door reads them today, and from tract's NNEF form of the same typed
//! graphs (`facegate_models::nnef`). Prints, per network, the file sizes and the median time
//! from file bytes to a runnable plan (SHA-256 of the bytes included, as the door checks
//! every file it loads), each way alternated `ROUNDS` times; then the median time of one
//! inference with each plan (alternated, `10 x ROUNDS` runs each) and the largest difference
//! between their outputs (the same graph, so it should be 0).
//!
//! ```sh
//! cargo run --release -p facegate-models --example nnef_both_ways [ROUNDS]   # default 7
//! ```
//! Needs the models folder (`facegate models fetch`, or `FACEGATE_MODELS`).

use std::time::Instant;

use anyhow::{Context, Result};
use facegate_models::embed::EmbedderKind;
use facegate_models::model_files::{EDGEFACE_INT8, SFACE_INT8, YUNET, default_dir, sha256_hex};
use facegate_models::{detect, embed, liveness, maskstate, nnef, ops, refine, small_cnn};
use tract_onnx::prelude::*;

/// A door's load of ONNX bytes to a runnable plan.
type Load = Box<dyn Fn(&[u8]) -> Result<()>>;

/// One network: its name, the ONNX bytes, how the door makes a plan from them, and the
/// typed graph NNEF carries.
struct Net {
    name: &'static str,
    onnx: Vec<u8>,
    /// The door's own load of the ONNX bytes, to a runnable plan.
    load_onnx: Load,
    typed: TypedModel,
    /// YuNet's input size, fixed on the NNEF side as the door would per frame size.
    size: Option<(usize, usize)>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()
        .context("ROUNDS is a number")?
        .unwrap_or(7);
    let dir = default_dir();
    let read = |f: &str| {
        std::fs::read(dir.join(f)).with_context(|| format!("{f}: run `facegate models fetch`"))
    };
    let mut nets = Vec::new();
    for (file, kind, name) in [
        (&EDGEFACE_INT8, EmbedderKind::EdgeFace, "EdgeFace-S int8"),
        (&SFACE_INT8, EmbedderKind::SFace, "SFace int8"),
    ] {
        let onnx = file.read_verified(&dir)?;
        let typed = embed::decluttered(&onnx, "embedder")?;
        nets.push(Net {
            name,
            onnx,
            // What the door did before it read door forms (`Embedder`'s ONNX load).
            load_onnx: Box::new(move |b| {
                ops::optimised_typed(embed::decluttered(b, kind.as_str())?)?.into_runnable()?;
                Ok(())
            }),
            typed,
            size: None,
        });
    }
    let yunet = YUNET.read_verified(&dir)?;
    let typed = detect::decluttered_any_size(&yunet)?;
    nets.push(Net {
        name: "YuNet 320x256",
        onnx: yunet,
        // What `Detector` does for a 320x256 input (its plan builder is private).
        load_onnx: Box::new(|b| {
            let outputs: Vec<String> = [8, 16, 32]
                .iter()
                .flat_map(|s| ["cls", "obj", "bbox", "kps"].map(|k| format!("{k}_{s}")))
                .collect();
            ops::onnx()
                .with_ignore_output_shapes(true)
                .with_ignore_value_info(true)
                .model_for_read(&mut &b[..])?
                .with_outputs_by_name(&outputs)?
                .with_input_fact(0, f32::fact([1, 3, 256, 320]).into())
                .and_then(ops::optimised)?
                .into_runnable()?;
            Ok(())
        }),
        typed,
        size: Some((256, 320)),
    });
    for (file, spec, name) in [
        (liveness::FILE, liveness::NET, "liveness"),
        (maskstate::FILE, maskstate::NET, "mask state"),
        (refine::FILE, refine::NET, "landmark refiner"),
    ] {
        let onnx = read(file)?;
        let typed = small_cnn::Runner::decluttered(spec, name, &onnx)?;
        nets.push(Net {
            name,
            onnx,
            load_onnx: Box::new(move |b| {
                small_cnn::Runner::from_bytes(spec, "net", b)?;
                Ok(())
            }),
            typed,
            size: None,
        });
    }
    println!(
        "| network | ONNX file | NNEF file | ONNX bytes to plan | NNEF bytes to plan | NNEF / ONNX \
         | nodes read, ONNX / NNEF | inference, ONNX plan | inference, NNEF plan | NNEF / ONNX \
         | largest difference |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let (mut total_onnx, mut total_nnef) = (0.0, 0.0);
    for net in &nets {
        let bytes = nnef::to_bytes(&net.typed)?;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let t = Instant::now();
            std::hint::black_box(sha256_hex(&net.onnx));
            (net.load_onnx)(&net.onnx)?;
            a.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            std::hint::black_box(sha256_hex(&bytes));
            let mut model = nnef::from_bytes(&bytes)?;
            if let Some((h, w)) = net.size {
                model = nnef::with_input_size(&model, h, w)?;
            }
            ops::optimised_typed(model)?.into_runnable()?;
            b.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (a, b) = (median(a), median(b));
        total_onnx += a;
        total_nnef += b;
        let (run_a, run_b, diff) = inference(net, &bytes, rounds * 10)?;
        // What each reader hands the optimiser: the ONNX side's decluttered graph, and the
        // graph as NNEF's reader builds it (decluttered again on the door).
        let nodes_nnef = nnef::nnef().model_for_read(&mut &bytes[..])?.nodes().len();
        println!(
            "| {} | {} B | {} B | {a:.1} ms | {b:.1} ms | {:.2} | {} / {nodes_nnef} | {run_a:.2} ms \
             | {run_b:.2} ms | {:.2} | {diff:e} |",
            net.name,
            net.onnx.len(),
            bytes.len(),
            b / a,
            net.typed.nodes().len(),
            run_b / run_a
        );
    }
    println!(
        "| all six | | | {total_onnx:.1} ms | {total_nnef:.1} ms | {:.2} | | | | | |",
        total_nnef / total_onnx
    );
    Ok(())
}

/// Median inference time of the plan from the ONNX side's typed graph and of the plan from
/// its NNEF bytes, alternated, and the largest difference between their outputs on one input.
/// (The ONNX side optimises `net.typed`, the decluttered graph the door's own load makes:
/// decluttering runs to a fixed point, so it is the door's plan.)
fn inference(net: &Net, bytes: &[u8], runs: usize) -> Result<(f64, f64, f32)> {
    let mut fixed = net.typed.clone();
    let mut from_nnef = nnef::from_bytes(bytes)?;
    if let Some((h, w)) = net.size {
        fixed = nnef::with_input_size(&fixed, h, w)?;
        from_nnef = nnef::with_input_size(&from_nnef, h, w)?;
    }
    let shape: Vec<usize> = fixed
        .input_fact(0)?
        .shape
        .as_concrete()
        .context("shape")?
        .to_vec();
    let plans = [fixed, from_nnef].map(|m| ops::optimised_typed(m).and_then(|m| m.into_runnable()));
    let [a, b] = plans;
    let (a, b) = (a?, b?);
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|i| (i * 7919 % 256) as f32 / 255.0).collect();
    let x = Tensor::from_shape(&shape, &values)?;
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    let mut diff = 0f32;
    for round in 0..runs {
        let t = Instant::now();
        let ya = a.run(tvec![x.clone().into()])?;
        ta.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let yb = b.run(tvec![x.clone().into()])?;
        tb.push(t.elapsed().as_secs_f64() * 1e3);
        if round == 0 {
            for (p, q) in ya.iter().zip(yb.iter()) {
                let (p, q) = (p.try_as_plain_ram()?, q.try_as_plain_ram()?);
                for (u, v) in p.as_slice::<f32>()?.iter().zip(q.as_slice::<f32>()?) {
                    diff = diff.max((u - v).abs());
                }
            }
        }
    }
    Ok((median(ta), median(tb), diff))
}
