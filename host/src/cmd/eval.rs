//! `facegate eval DATASET --protocol open-set|mfr2 [--masks none|synthetic] ... --json R.json`

use crate::cmd::opts::{NetworkOpts, RouteOpts};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

use anyhow::{Context, Result};
use facegate_models::pipeline::{Pipeline, PipelineConfig};

use crate::eval::protocol;
use crate::eval::run::{Labels, Report, evaluate};
use crate::templates::EnrolSettings;

/// Runs `facegate eval`.
pub fn run(cmd: EvalCmd) -> Result<()> {
    if cmd.bundle.is_some() {
        return crate::cmd::evalbundle::run(cmd);
    }
    let split = match cmd.protocol {
        Protocol::OpenSet => protocol::open_set(&cmd.dataset)?,
        Protocol::Mfr2 => protocol::mfr2(&cmd.dataset)?,
        Protocol::Liveness => return crate::cmd::evalliveness::run(&cmd),
        Protocol::MaskState => return crate::cmd::evalmaskstate::run(&cmd),
    };
    let pipeline = load_pipeline(&cmd.net, cmd.route)?;
    let settings = EnrolSettings::for_pipeline(
        &pipeline,
        None,
        cmd.enrol_masks,
        cmd.route.mirrored(cmd.net.embedder),
    );
    let report = evaluate(
        &pipeline,
        &split,
        cmd.masks == Masks::Synthetic,
        &settings,
        threads(&cmd.net),
        Labels {
            dataset: &cmd.dataset,
            protocol: match cmd.protocol {
                Protocol::OpenSet => "open-set",
                Protocol::Mfr2 => "mfr2",
                Protocol::Liveness => "liveness",
                Protocol::MaskState => "mask-state",
            },
            masks: match cmd.masks {
                Masks::None => "none",
                Masks::Synthetic => "synthetic",
            },
        },
        cmd.as_frames,
    );
    print_summary(&report);
    if let Some(path) = &cmd.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Loads the pipeline the options name, routing faces by mask state unless told not to.
pub fn load_pipeline(net: &NetworkOpts, route: RouteOpts) -> Result<Pipeline> {
    let pipeline = load_main(net)?;
    if !route.routed(net.embedder) {
        return Ok(pipeline);
    }
    let dir = net.models.resolve();
    let masked =
        facegate_models::maskroute::MaskRoute::load(&dir, !net.fp32).with_context(|| {
            format!(
                "loading the masked path from {} (or give --no-mask-route)",
                dir.display()
            )
        })?;
    Ok(pipeline.with_mask_route(masked))
}

/// The main path: detector, embedder and, when asked, the landmark refiner.
fn load_main(net: &NetworkOpts) -> Result<Pipeline> {
    let dir = net.models.resolve();
    let mut config = PipelineConfig {
        embedder: net.embedder.into(),
        quantised: !net.fp32,
        ..Default::default()
    };
    if let Some(side) = net.detect_side {
        config.detector.max_side = side;
    }
    let pipeline = Pipeline::load(&dir, config)
        .with_context(|| format!("loading the networks from {}", dir.display()))?;
    if net.refine_landmarks {
        let refiner = facegate_models::refine::Refiner::load(&dir)?;
        return Ok(pipeline.with_refiner(refiner));
    }
    Ok(pipeline)
}

/// `WIDTHxHEIGHT`.
fn parse_size(text: &str) -> std::result::Result<[u32; 2], String> {
    let bad = || format!("{text:?}: give WIDTHxHEIGHT, e.g. 640x480");
    let (w, h) = text.split_once('x').ok_or_else(bad)?;
    let n = |v: &str| v.parse::<u32>().ok().filter(|v| (16..=8192).contains(v));
    Ok([n(w).ok_or_else(bad)?, n(h).ok_or_else(bad)?])
}

/// Worker threads: the option, else every core.
pub fn threads(net: &NetworkOpts) -> usize {
    net.threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1)
}

fn print_summary(r: &Report) {
    println!(
        "{} | protocol {} | masks {} | {}{}{}",
        r.dataset,
        r.protocol,
        r.masks,
        r.embedder,
        if r.quantised { " int8" } else { "" },
        if r.refiner_sha256.is_some() {
            " | refined landmarks"
        } else {
            ""
        }
    );
    if let Some(m) = &r.mask_route {
        println!(
            "masked faces routed to {} (offset {:+.4}): {} genuine, {} impostor probes",
            m.embedder, m.offset, m.genuine_masked, m.impostor_masked
        );
    }
    println!(
        "enrolled {} | gallery images {} | genuine {} | impostor {} ({} with a face)",
        r.counts.enrolled,
        r.counts.gallery_images,
        r.counts.genuine,
        r.counts.impostor,
        r.counts.impostor_scored
    );
    println!(
        "no face: gallery {} genuine {} impostor {} | unreadable files {}",
        r.detection_failures.gallery,
        r.detection_failures.genuine,
        r.detection_failures.impostor,
        r.errors.len()
    );
    println!("rank-1 {:.2}%", r.rank1 * 100.0);
    for (k, tar) in &r.tar_at_far {
        println!(
            "FAR {k:>5}: TAR {:6.2}%  threshold {:.4}  (FAR reached {:.5}, misidentified {})",
            tar * 100.0,
            r.threshold_at_far[k],
            r.far_achieved[k],
            r.misidentified_at_far[k]
        );
    }
    for (k, p) in &r.at_threshold {
        let t = if p.threshold.is_finite() {
            format!("{:.4}", p.threshold)
        } else {
            "none".to_owned()
        };
        println!(
            "{k:>13} (threshold {t}): FAR {:.5} ({} impostors let in), TAR {:6.2}%, misidentified {}",
            p.far,
            p.accepted_impostors,
            p.tar * 100.0,
            p.misidentified
        );
    }
    println!("{:.1} s", r.seconds);
}

// --- command-line arguments ---

/// Evaluation protocol.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Protocol {
    /// Enrol up to 50 people (>= 6 images, first 3 as gallery), probe with the rest and with
    /// up to 1000 non-enrolled people.
    OpenSet,
    /// MFR2: enrol unmasked images, probe with masked ones.
    Mfr2,
    /// Presentation attacks: `<species>/<attempt>/<frames>` (`real` = live people), scored per
    /// attempt by the liveness network at its shipped threshold (BPCER, APCER per species).
    Liveness,
    /// The mask-state classifier on MFR2 (real masks, MFR2's own labels): accuracy, bare and
    /// masked.
    MaskState,
}

/// Masks painted on probes.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Masks {
    /// Probes as they are.
    None,
    /// A synthetic mask, drawn from the landmarks, on every probe.
    Synthetic,
}

/// `facegate eval FOLDER ...`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate eval lfw/ --protocol open-set --masks synthetic --json r.json
  facegate eval test-data --bundle door.fgb --strangers strangers-data --out-dir report/")]
pub struct EvalCmd {
    /// Without --bundle: a photo folder, one sub-folder of photos per person. With --bundle: a
    /// dataset made by `facegate import`.
    #[arg(value_name = "FOLDER")]
    pub dataset: PathBuf,
    /// Which protocol.
    #[arg(long, value_enum, default_value_t = Protocol::OpenSet)]
    pub protocol: Protocol,
    /// Paint masks on probes.
    #[arg(long, value_enum, default_value_t = Masks::None)]
    pub masks: Masks,
    /// Masked copies of each gallery photo added as extra templates at enrolment (routed: to
    /// the masked path's templates only) [default: as `enrol`: 3 routed, else 0].
    #[arg(long, value_name = "N")]
    pub enrol_masks: Option<usize>,
    /// Mask routing (the door's default).
    #[command(flatten)]
    pub route: RouteOpts,
    /// Networks to run.
    #[command(flatten)]
    pub net: NetworkOpts,
    /// Write the report as JSON here.
    #[arg(long, value_name = "REPORT.json")]
    pub json: Option<PathBuf>,
    /// Show each probe photo as a camera frame of this size (letterboxed, as the simulated
    /// door does), e.g. 640x480 with `--detect-side 320`: the door's own path.
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    pub as_frames: Option<[u32; 2]>,
    /// Evaluate this signed bundle on DATASET, an imported dataset folder (`facegate import`),
    /// instead of running a protocol on a photo folder.
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Trusted public key(s) for --bundle [default: ~/.config/facegate/facegate.pub].
    #[arg(long)]
    pub trust: Vec<PathBuf>,
    /// With --bundle: more imported datasets whose people are not enrolled (strangers).
    #[arg(long)]
    pub strangers: Vec<PathBuf>,
    /// With --bundle: a folder for the charts (PNG), the HTML page of mistakes and report.json.
    #[arg(long, alias = "out", value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// With --protocol liveness: as a door with `[liveness] mode = "strict"`, the network and
    /// the motion cue (a face whose surroundings move with it is refused) [default: passive,
    /// the network alone, as the door ships].
    #[arg(long)]
    pub strict: bool,
    /// With --protocol liveness: seconds between an attempt's frames (the motion cue pairs
    /// frames 0.4 s or more apart).
    #[arg(long, value_name = "SECONDS", default_value_t = crate::eval::liveness::FRAME_INTERVAL)]
    pub frame_interval: f32,
}
