//! `facegate capture`: enrolment photos from a webcam or a recording. Frames go through the
//! same checks as imported photos (see [`crate::faceset::ingest`]), and a frame is kept only
//! when its face differs enough from every frame already kept (embedding cosine below
//! `--max-similarity`), so twenty frames of someone standing still become a handful of
//! genuinely different views instead of twenty copies.
//!
//! The camera is read through the door's own V4L2 code (`facegate-camera`), so enrolment
//! frames are decoded exactly as the door will decode them. A recording is a Motion-JPEG file
//! (`.mjpeg`, or an AVI of MJPEG frames as webcams record) or a folder of frames.

use crate::cmd::opts::DatasetNet;
use crate::cmd::opts::QualityOpts;
use clap::Args;
use std::path::PathBuf;

use std::path::Path;

use anyhow::{Context, Result, bail};
use facegate_camera::files::FileCamera;
use facegate_camera::v4l2::{PixelFormat, V4l2Camera, V4l2Settings};
use facegate_camera::{CameraError, Frame, FrameSource};
use facegate_models::embed::cosine;
use facegate_models::image_io;
use facegate_models::pipeline::Pipeline;

use crate::faceset::ingest::{Source, content_id, ingest, open_with_pipeline};
use crate::faceset::{Dataset, Origin, Skipped};
use crate::progress::bar;

/// JPEG frames found in a Motion-JPEG file (raw stream or AVI), by their start and end markers.
pub struct MjpegFile {
    data: Vec<u8>,
    pos: usize,
    id: u64,
}

impl MjpegFile {
    /// Reads the whole file.
    pub fn open(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        if !data.windows(3).any(|w| w == [0xFF, 0xD8, 0xFF]) {
            bail!(
                "{} holds no JPEG frames: give a Motion-JPEG recording (e.g. `ffmpeg -i in.mp4 -c:v mjpeg -q:v 3 out.avi`) or a folder of frames",
                path.display()
            );
        }
        Ok(Self {
            data,
            pos: 0,
            id: 0,
        })
    }
}

impl FrameSource for MjpegFile {
    fn next_frame(&mut self) -> Result<Option<Frame>, CameraError> {
        let d = &self.data;
        let Some(start) = d[self.pos..]
            .windows(3)
            .position(|w| w == [0xFF, 0xD8, 0xFF])
        else {
            return Ok(None);
        };
        let start = self.pos + start;
        // Entropy-coded data never holds FF D9 (an FF there is followed by 00), so the first
        // end marker after the start closes the frame.
        let end = d[start + 2..]
            .windows(2)
            .position(|w| w == [0xFF, 0xD9])
            .map(|e| start + 2 + e + 2)
            .unwrap_or(d.len());
        self.pos = end;
        self.id += 1;
        let id = self.id;
        match image_io::decode(&d[start..end]) {
            Ok(image) => Ok(Some(Frame { id, image })),
            Err(e) => Err(CameraError::BadFrame {
                id,
                reason: e.to_string(),
            }),
        }
    }
}

/// Runs `facegate capture`.
pub fn run(cmd: CaptureCmd) -> Result<()> {
    let (mut ds, pipeline) = open_with_pipeline(
        &cmd.dataset,
        &cmd.net.models.resolve(),
        cmd.net.embedder.into(),
        !cmd.net.fp32,
    )?;
    let (mut source, what): (Box<dyn FrameSource>, String) = match &cmd.video {
        Some(v) if v.is_dir() => (
            Box::new(
                FileCamera::from_dir(v, 1).with_context(|| format!("reading {}", v.display()))?,
            ),
            v.display().to_string(),
        ),
        Some(v) => (Box::new(MjpegFile::open(v)?), v.display().to_string()),
        None => {
            let settings = V4l2Settings {
                device: cmd.device.clone(),
                format: PixelFormat::Mjpeg,
                width: cmd.width,
                height: cmd.height,
                fps: 30,
            };
            let cam = V4l2Camera::open(&settings).map_err(|e| anyhow::anyhow!("{e}"))?;
            (Box::new(cam), cmd.device.display().to_string())
        }
    };
    let taken = capture(&pipeline, &mut ds, source.as_mut(), &what, &cmd)?;
    println!(
        "kept {taken} of the frames of {what} for {}; {} now holds {} faces",
        cmd.label,
        cmd.dataset.display(),
        ds.manifest.samples.len()
    );
    if taken < cmd.count {
        println!(
            "note: fewer than --count {}: turn the head a little, change the light, or lower --max-similarity",
            cmd.count
        );
    }
    Ok(())
}

/// Takes up to `cmd.count` diverse frames of `cmd.label` from `source` into `ds`.
pub fn capture(
    pipeline: &Pipeline,
    ds: &mut Dataset,
    source: &mut dyn FrameSource,
    what: &str,
    cmd: &CaptureCmd,
) -> Result<usize> {
    let mut kept: Vec<Vec<f32>> = ds
        .manifest
        .samples
        .iter()
        .filter(|s| s.person == cmd.label)
        .map(|s| s.embedding.clone())
        .collect();
    let before = kept.len();
    let pb = bar(cmd.count as u64, "capturing", "frames");
    let mut seen = 0usize;
    let mut reasons: Vec<String> = Vec::new();
    while kept.len() - before < cmd.count && seen < cmd.max_frames {
        let frame = match source.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(CameraError::BadFrame { id, reason }) => {
                reasons.push(format!("{what} frame {id}: {reason}"));
                seen += 1;
                continue;
            }
            Err(CameraError::Waiting) => continue,
            Err(e) => bail!("{what}: {e}"),
        };
        seen += 1;
        let id = content_id(frame.image.as_raw());
        let source_name = format!("{what} frame {}", frame.id);
        let src = Source {
            id: &id,
            person: &cmd.label,
            name: &source_name,
            origin: Origin::Frame,
        };
        match ingest(pipeline, ds, &frame.image, src, cmd.rules())? {
            Ok(sample) => {
                let similar = kept
                    .iter()
                    .any(|k| cosine(k, &sample.embedding) >= cmd.max_similarity);
                if similar || ds.manifest.samples.iter().any(|s| s.id == sample.id) {
                    let _ = std::fs::remove_file(ds.dir.join(&sample.crop));
                    continue;
                }
                kept.push(sample.embedding.clone());
                ds.manifest.samples.push(sample);
                pb.inc(1);
                ds.save()?;
            }
            Err(reason) => {
                ds.manifest.skipped.push(Skipped {
                    id,
                    person: cmd.label.clone(),
                    source: source_name.clone(),
                    reason: reason.clone(),
                    rules: cmd.rules().fingerprint(),
                });
                reasons.push(format!("{source_name}: {reason}"));
            }
        }
    }
    pb.finish_and_clear();
    ds.save()?;
    let n = reasons.len();
    for r in reasons.iter().take(10) {
        println!("skipped {r}");
    }
    if n > 10 {
        println!("... and {} more skipped frames", n - 10);
    }
    Ok(kept.len() - before)
}

// --- command-line arguments ---

/// `facegate capture --label NAME [--device /dev/video0 | --video FILE]`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate capture --label ann                 # webcam /dev/video0
  facegate capture --label ann --video ann.mjpeg")]
pub struct CaptureCmd {
    /// Whose face this is.
    #[arg(long)]
    pub label: String,
    /// The dataset folder (created if missing).
    #[arg(long, short, default_value = "facegate-data")]
    pub dataset: PathBuf,
    /// Webcam (V4L2, MJPEG).
    #[arg(long, default_value = "/dev/video0")]
    pub device: PathBuf,
    /// Frame width asked of the webcam.
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    /// Frame height asked of the webcam.
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    /// Read a Motion-JPEG recording (.mjpeg, MJPEG .avi) or a folder of frames instead.
    #[arg(long)]
    pub video: Option<PathBuf>,
    /// Frames to keep.
    #[arg(long, default_value_t = 20)]
    pub count: usize,
    /// A frame whose face is at least this similar (cosine) to one already kept is dropped.
    #[arg(long, default_value_t = 0.9)]
    pub max_similarity: f32,
    /// Give up after this many frames.
    #[arg(long, default_value_t = 3000)]
    pub max_frames: usize,
    /// Photo quality rules.
    #[command(flatten)]
    pub quality: QualityOpts,
    /// Networks.
    #[command(flatten)]
    pub net: DatasetNet,
}

impl CaptureCmd {
    /// The quality rules from the flags (several faces: the largest, as at the door).
    pub fn rules(&self) -> crate::faceset::ingest::Rules {
        crate::faceset::ingest::Rules {
            multi: crate::faceset::ingest::Multi::Largest,
            min_face: self.quality.min_face,
            min_sharpness: self.quality.min_sharpness,
        }
    }
}
