//! Presentation-attack detection: is the face in front of the camera a live person, or a
//! photo on paper or a screen?
//!
//! A small CNN looks at the face *with its surroundings*: one or more *views*, squares of a
//! few times the face box ([`VIEWS`]), each shrunk to [`SIDE`]x[`SIDE`] RGB and stacked as
//! channels, so that paper edges, screen borders, moire, glare and the flat lighting of a print
//! are in view. The door's network sees two views, twice and three times the face: the pair
//! measured best by cross-validation on the training people (a close view for a screen's
//! pixel grid did not help, docs/LIVENESS.md), but the views and the levelling ([`Levels`])
//! are the manifest's, so a network trained with others runs unchanged. It answers one logit per frame
//! (above 0: live); the door averages the logits of the frames of one attempt and compares the
//! mean with the threshold calibrated
//! at training ([`Manifest::threshold`]), so one lucky frame cannot open the door. Trained by
//! `facegate models liveness` (candle), exported to ONNX with the same builders as the landmark
//! refiner, run by tract.

use std::path::Path;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::geometry::BBox;
use crate::onnx_build::{MeanOver, SmallCnn};
use crate::small_cnn::{self, Pinned, Runner};
use crate::{Error, Result};

/// The network file.
pub const FILE: &str = "liveness.onnx";
/// Its door form (tract NNEF, [`door_form`]): what the door and `facegate eval --protocol
/// liveness` run, written beside it by `facegate models fetch` and `facegate models liveness`.
pub const DOOR_FILE: &str = "liveness.nnef.tar";
/// What it was trained on, its threshold, and the file's digest.
pub const MANIFEST: &str = "liveness.json";
/// Side of the network's RGB input.
pub const SIDE: u32 = 64;
/// The views a network trained today sees: each covers the face box's larger side times this,
/// centred on the face. A network's manifest records its own ([`Manifest::views`]).
pub const VIEWS: [f32; 2] = [2.0, 3.0];
/// The views of a network whose manifest predates them (one wide view).
pub const LEGACY_VIEWS: [f32; 1] = [2.0];
/// At most this many views (each adds three input channels).
pub const MAX_VIEWS: usize = 3;
/// Channels of the four 3x3 convolutions, each followed by a 2x2 max-pool.
pub const CHANNELS: [usize; 4] = [16, 32, 32, 64];
/// Width of the hidden dense layer.
pub const HIDDEN: usize = 64;

/// Written by `facegate models liveness` beside the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// SHA-256 of [`FILE`].
    pub sha256: String,
    /// Mean frame logit of an attempt at or above which it is live.
    pub threshold: f32,
    /// What it was trained on, and under which terms.
    pub data: String,
    /// The command that made it.
    pub command: String,
    /// Seed of the run.
    pub seed: u64,
    /// Training and calibration attempts (videos).
    pub attempts: [usize; 2],
    /// Calibration figures at the threshold: BPCER, worst APCER.
    pub calibration: [f64; 2],
    /// Mean training loss after each epoch.
    pub loss: Vec<f32>,
    /// The views the network sees, in channel order (absent in manifests written before views
    /// existed: those networks see [`LEGACY_VIEWS`]).
    #[serde(default = "legacy_views")]
    pub views: Vec<f32>,
    /// How the planes are levelled before the network sees them (absent in manifests written
    /// before levelling existed: those networks see the levels as captured).
    #[serde(default)]
    pub levels: Levels,
    /// When the file holds two networks whose lower answer counts ([`lower_of`]): the
    /// second's levelling and calibration (absent: one network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second: Option<SecondOpinion>,
    /// SHA-256 of [`DOOR_FILE`], recorded when it is written ([`install_door_form`]); absent
    /// until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door_sha256: Option<String>,
}

/// The second network of a file made by [`lower_of`]. Informative: the file alone is what
/// runs (its SHA-256 is pinned by [`Manifest::sha256`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecondOpinion {
    /// How the second network's input is levelled (inside the file).
    pub levels: Levels,
    /// Added to its logit: the first network's own threshold less the second's.
    pub offset: f32,
    /// Each network's threshold alone, chosen as [`Manifest::threshold`] is.
    pub thresholds: [f32; 2],
    /// Each network's BPCER and worst APCER alone, at its own threshold.
    pub calibration: [[f64; 2]; 2],
    /// The second's mean training loss after each epoch.
    pub loss: Vec<f32>,
    /// Whether the second was trained on re-exposed frames (another camera's tone curve and
    /// white balance; its levelling takes the exposure out): absent in manifests written
    /// before, which were not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exposure: bool,
}

/// How each input plane (one colour channel of one view) is levelled before the network sees
/// it. Why: a network fed the levels as captured learnt the recordings' brightness and colour
/// as cues, and let 93% of the development prints in when the frames were darkened to 60% of
/// the light (docs/LIVENESS.md). Levelling takes a camera's gains out of what the network can
/// see, exactly, where training to ignore them only approximates it. Measured by
/// cross-validation on the training people, each levelling separated live people from attacks
/// worse than the levels as captured, so the shipped network sees those; the others stay for
/// retraining on a door's own recordings (`facegate models liveness --levels`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Levels {
    /// `p / 128 - 1` of each level `p`, as the camera gave it.
    #[default]
    AsCaptured,
    /// Each plane to zero mean and unit standard deviation: each colour's gain and offset are
    /// gone, and its contrast. A flat plane's spread counts as two grey levels, so noise on a
    /// blank wall is not blown up to full contrast.
    PerPlane,
    /// Each plane's levels divided by their mean (then 1 taken off): each colour's gain
    /// (exposure, white balance) is gone, its contrast relative to its mean stays (a print's
    /// flat range is such a cue). A mean under two grey levels counts as two.
    Gain,
    /// Every plane's levels divided by the mean level of the whole input: one gain for all
    /// views and colours, the camera's exposure, is gone; colour balance and the brightness
    /// of the face against its surroundings stay.
    Brightness,
}

impl Levels {
    /// Every levelling, in the order `--levels` lists them.
    pub const ALL: [Levels; 4] = [
        Levels::AsCaptured,
        Levels::PerPlane,
        Levels::Gain,
        Levels::Brightness,
    ];

    /// Its name in a manifest and on the command line (`facegate models liveness --levels`).
    pub fn name(self) -> &'static str {
        match self {
            Levels::AsCaptured => "as-captured",
            Levels::PerPlane => "per-plane",
            Levels::Gain => "gain",
            Levels::Brightness => "brightness",
        }
    }

    /// Levels `planes` (whole [`SIDE`]x[`SIDE`] planes, as [`input`] makes them) in place.
    pub fn apply(self, planes: &mut [f32]) {
        let plane = (SIDE * SIDE) as usize;
        match self {
            Levels::AsCaptured => {}
            Levels::PerPlane => planes.chunks_mut(plane).for_each(standardise),
            Levels::Gain => planes.chunks_mut(plane).for_each(divide_by_mean),
            Levels::Brightness => divide_by_mean(planes),
        }
    }
}

impl Levels {
    /// The levelling as the graph of [`lower_of`] does it (`None`: the input as captured); an
    /// error for a levelling that has no such form (per-plane standardising). The graph's
    /// levelling is a second form of [`Levels::apply`]'s, kept so that the file runs alone; a
    /// test holds the two equal.
    pub fn in_graph(self) -> std::result::Result<Option<MeanOver>, String> {
        match self {
            Levels::AsCaptured => Ok(None),
            Levels::Brightness => Ok(Some(MeanOver::Whole)),
            Levels::Gain => Ok(Some(MeanOver::Plane)),
            Levels::PerPlane => Err(format!(
                "a second network levelled {} cannot be built into the same file",
                self.name()
            )),
        }
    }
}

/// One file holding two trainings of [`net`] for `views`, whose per-frame logit is the lower
/// of the first's (reading the input as captured, [`Levels::AsCaptured`]) and the second's
/// (reading it levelled by `second_levels`, inside the graph) plus `offset`. Why: a network
/// fed the levels as captured separates the recordings best, one fed levelled inputs cannot be
/// fooled by the camera's exposure; a door that needs both to say live keeps the first's
/// refusals and adds the second's (docs/LIVENESS.md). The door runs it as one network.
pub fn lower_of(
    views: usize,
    first: &[Vec<f32>],
    second: &[Vec<f32>],
    second_levels: Levels,
    offset: f32,
) -> Result<Vec<u8>> {
    let mean_over = second_levels
        .in_graph()
        .map_err(|reason| Error::OnnxRewrite { reason })?;
    net(views).lower_of(first, second, mean_over, offset)
}

impl std::str::FromStr for Levels {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Levels::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Levels::ALL.iter().map(|l| l.name()).collect();
                format!("{s:?}: one of {}", names.join(", "))
            })
    }
}

/// `values` to zero mean and unit standard deviation (at most 64x: a spread of two grey levels).
fn standardise(values: &mut [f32]) {
    let n = values.len().max(1) as f32;
    let mean = values.iter().sum::<f32>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let scale = 1.0 / var.sqrt().max(2.0 / 128.0);
    for v in values.iter_mut() {
        *v = (*v - mean) * scale;
    }
}

/// The levels behind `values` (`p / 128 - 1`) divided by their mean level (at least two grey
/// levels), as values again: a mean level becomes 0.
fn divide_by_mean(values: &mut [f32]) {
    let n = values.len().max(1) as f32;
    let mean = values.iter().map(|v| (v + 1.0) * 128.0).sum::<f32>() / n;
    let scale = 128.0 / mean.max(2.0);
    for v in values.iter_mut() {
        *v = (*v + 1.0) * scale - 1.0;
    }
}

fn legacy_views() -> Vec<f32> {
    LEGACY_VIEWS.to_vec()
}

/// Whether `views` can be a network's views: 1 to [`MAX_VIEWS`], each a finite factor in
/// 0.5..=4 (a view much smaller than the face sees no face; much larger, no detail).
pub fn check_views(views: &[f32]) -> std::result::Result<(), String> {
    if views.is_empty() || views.len() > MAX_VIEWS {
        return Err(format!(
            "{} views; 1 to {MAX_VIEWS} are possible",
            views.len()
        ));
    }
    match views.iter().find(|v| !(0.5..=4.0).contains(*v)) {
        Some(v) => Err(format!("view {v} is outside 0.5..=4 times the face")),
        None => Ok(()),
    }
}

/// The square region of one view around `face`: `context` times its larger side, centred on
/// it, moved inside the frame where it would stick out (and shrunk to the frame when larger).
/// `(x, y, side)` in whole pixels.
pub fn region(face: &BBox, width: u32, height: u32, context: f32) -> (u32, u32, u32) {
    // Never larger than the frame, never 0 (and no clamp whose bounds could cross on a frame
    // smaller than 8 pixels, or on a NaN box or context).
    let side = (face.w.max(face.h) * context)
        .round()
        .max(8.0)
        .min(width.min(height) as f32)
        .max(1.0) as u32;
    let cx = face.x + face.w / 2.0;
    let cy = face.y + face.h / 2.0;
    let x = (cx - side as f32 / 2.0)
        .round()
        .clamp(0.0, (width - side) as f32) as u32;
    let y = (cy - side as f32 / 2.0)
        .round()
        .clamp(0.0, (height - side) as f32) as u32;
    (x, y, side)
}

/// The network input for `face` in `frame`: each view's [`region`] shrunk to [`SIDE`] with a
/// triangle filter, channels first (three per view, in `views` order), values about -1..1.
/// Training, evaluation and the door call this.
pub fn input(frame: &RgbImage, face: &BBox, views: &[f32]) -> Vec<f32> {
    let n = (SIDE * SIDE) as usize;
    let mut out = vec![0.0; 3 * n * views.len()];
    for (v, &context) in views.iter().enumerate() {
        let (x, y, side) = region(face, frame.width(), frame.height(), context);
        // Shrunk straight from the frame (no copy of the region), bit for bit as the image
        // crate's triangle filter shrinks it, which the networks were trained on.
        let small = crate::shrink::shrink(frame, x, y, side, SIDE);
        let planes = &mut out[3 * n * v..3 * n * (v + 1)];
        for (i, p) in small.chunks_exact(3).enumerate() {
            for c in 0..3 {
                planes[c * n + i] = p[c] as f32 / 128.0 - 1.0;
            }
        }
    }
    out
}

/// The network for `views` views: `3 x views` channels of 64x64 in, four pooled convolutions,
/// one logit out.
pub const fn net(views: usize) -> SmallCnn {
    SmallCnn {
        name: "facegate_liveness",
        input: [3 * views, SIDE as usize, SIDE as usize],
        channels: &CHANNELS,
        pools: 4,
        hidden: HIDDEN,
        outputs: 1,
        output_name: "logit",
    }
}

/// The network a training today makes ([`VIEWS`]).
pub const NET: SmallCnn = net(VIEWS.len());

/// Where the network is read from.
pub const FILES: small_cnn::Files = small_cnn::Files {
    what: "liveness",
    file: FILE,
    manifest: MANIFEST,
    fix: "run `facegate models fetch` (or `facegate models liveness` to train it again)",
};

impl Pinned for Manifest {
    fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// The door form of a checked network ([`read_verified`]): the model tract makes of the ONNX
/// file, typed and decluttered, as deterministic NNEF bytes ([`crate::nnef`]).
pub fn door_form(manifest: &Manifest, onnx: &[u8]) -> Result<Vec<u8>> {
    check_views(&manifest.views).map_err(|e| Error::load("liveness", e))?;
    Runner::door_form(net(manifest.views.len()), "liveness", onnx)
}

/// Writes [`DOOR_FILE`] from the checked network in `models_dir` and records its SHA-256 in
/// the manifest, unless both are already there and agree. Returns the door form's length
/// when it was (re)written.
pub fn install_door_form(models_dir: &Path) -> Result<Option<usize>> {
    let (mut manifest, onnx) = read_verified(models_dir)?;
    if read_door_form(models_dir).is_ok() {
        return Ok(None);
    }
    let bytes = door_form(&manifest, &onnx)?;
    manifest.door_sha256 = Some(crate::model_files::sha256_hex(&bytes));
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::load("liveness", e))?;
    // The door form first, then the manifest that names it: a crash between the two leaves
    // a manifest that does not match, which the door refuses and the next run repairs. Each
    // file is synced before its rename, so neither is ever half there.
    for (name, data) in [(DOOR_FILE, &bytes[..]), (MANIFEST, &json[..])] {
        crate::model_files::write_synced(models_dir, name, data)?;
    }
    Ok(Some(bytes.len()))
}

/// The manifest and the door form ([`DOOR_FILE`]) in the models folder, checked against each
/// other: what the door loads (it needs no ONNX file).
pub fn read_door_form(models_dir: &Path) -> Result<(Manifest, Vec<u8>)> {
    let manifest: Manifest = small_cnn::read_manifest(models_dir, FILES)?;
    let manifest_path = || models_dir.join(MANIFEST);
    check_manifest(&manifest).map_err(|reason| FILES.refused(manifest_path(), reason))?;
    let Some(pinned) = &manifest.door_sha256 else {
        return Err(FILES.refused(
            manifest_path(),
            format!("it records no door form ({DOOR_FILE})"),
        ));
    };
    let bytes = small_cnn::read_pinned(models_dir, FILES, DOOR_FILE, pinned)?;
    Ok((manifest, bytes))
}

/// The manifest and the bytes of [`FILE`] in the models folder, checked against each other.
pub fn read_verified(models_dir: &Path) -> Result<(Manifest, Vec<u8>)> {
    let (manifest, bytes) = small_cnn::read_verified::<Manifest>(models_dir, FILES)?;
    check_manifest(&manifest).map_err(|reason| Error::TrainedNet {
        what: FILES.what,
        path: models_dir.join(MANIFEST),
        reason,
        fix: FILES.fix,
    })?;
    Ok((manifest, bytes))
}

/// What a manifest must say for the door to run its file as it was calibrated: views it can
/// cut, a threshold that is a number, and, for a file with a second opinion, the input as
/// captured (the file levels the second network's input itself; levelling it before would
/// level the first network's too, which it never saw in training, and the calibrated
/// threshold would no longer mean what it says).
fn check_manifest(manifest: &Manifest) -> std::result::Result<(), String> {
    check_views(&manifest.views)?;
    if !manifest.threshold.is_finite() {
        return Err("the threshold is not a number".into());
    }
    if manifest.second.is_some() && manifest.levels != Levels::AsCaptured {
        return Err(format!(
            "it records a second opinion (which levels its own input inside the file) and \
             levels {} before the file: the first network would read an input it was not \
             trained on",
            manifest.levels.name()
        ));
    }
    Ok(())
}

/// The loaded network, with the views and levels it was trained on.
#[derive(Clone, Debug)]
pub struct Liveness {
    net: Runner,
    views: Vec<f32>,
    levels: Levels,
}

impl Liveness {
    /// Loads the network from ONNX bytes (vouched for by the caller: a manifest or a bundle
    /// signature) that sees `views` ([`Manifest::views`]) levelled by `levels`
    /// ([`Manifest::levels`]). A file whose input does not match the views is refused here, not
    /// at the first face.
    pub fn from_bytes(bytes: &[u8], views: &[f32], levels: Levels) -> Result<Self> {
        check_views(views).map_err(|e| Error::load("liveness", e))?;
        Ok(Self {
            net: Runner::from_bytes(net(views.len()), "liveness", bytes)?,
            views: views.to_vec(),
            levels,
        })
    }

    /// The network a manifest describes, from its checked bytes ([`read_verified`]).
    pub fn from_manifest(manifest: &Manifest, bytes: &[u8]) -> Result<Self> {
        Self::from_bytes(bytes, &manifest.views, manifest.levels)
    }

    /// The network a manifest describes, from its checked door form ([`read_door_form`]):
    /// how the door and `facegate eval --protocol liveness` load it.
    pub fn from_door_form(manifest: &Manifest, bytes: &[u8]) -> Result<Self> {
        check_views(&manifest.views).map_err(|e| Error::load("liveness", e))?;
        Ok(Self {
            net: Runner::from_door_form(net(manifest.views.len()), "liveness", bytes)?,
            views: manifest.views.clone(),
            levels: manifest.levels,
        })
    }

    /// The views this network sees.
    pub fn views(&self) -> &[f32] {
        &self.views
    }

    /// The logit for one input made by [`input`] with [`Self::views`] (above 0: live),
    /// levelled here as the network was trained.
    pub fn run(&self, mut input: Vec<f32>) -> Result<f32> {
        self.levels.apply(&mut input);
        Ok(self.net.run(input)?[0])
    }

    /// The logit of `face` in `frame`.
    pub fn score(&self, frame: &RgbImage, face: &BBox) -> Result<f32> {
        self.run(input(frame, face, &self.views))
    }
}

/// An attempt's score: the mean of its frames' logits (`None` without any frame).
pub fn attempt_score(logits: &[f32]) -> Option<f32> {
    (!logits.is_empty()).then(|| logits.iter().sum::<f32>() / logits.len() as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_stays_inside_the_frame() {
        let face = BBox {
            x: 250.0,
            y: 150.0,
            w: 60.0,
            h: 80.0,
        };
        let (x, y, side) = region(&face, 320, 240, 2.0);
        assert_eq!(side, 160);
        assert!(x + side <= 320 && y + side <= 240);
        let huge = BBox {
            x: 0.0,
            y: 0.0,
            w: 300.0,
            h: 240.0,
        };
        assert_eq!(region(&huge, 320, 240, 2.0).2, 240);
        assert_eq!(region(&face, 320, 240, 1.0).2, 80);
        // Degenerate boxes and frames give a region inside the frame, never a panic.
        let nan = BBox {
            x: f32::NAN,
            y: f32::NAN,
            w: f32::NAN,
            h: f32::NAN,
        };
        for (w, h) in [(4, 3), (1, 1), (320, 240)] {
            for context in [2.0, 1.0, f32::NAN] {
                let (x, y, side) = region(&nan, w, h, context);
                assert!(side >= 1 && x + side <= w && y + side <= h, "{w}x{h}");
                let (x, y, side) = region(&face, w, h, context);
                assert!(side >= 1 && x + side <= w && y + side <= h, "{w}x{h}");
            }
        }
        let frame = RgbImage::new(320, 240);
        assert_eq!(input(&frame, &face, &LEGACY_VIEWS).len(), 3 * 64 * 64);
        assert_eq!(
            input(&frame, &face, &VIEWS).len(),
            3 * 64 * 64 * VIEWS.len()
        );
    }

    #[test]
    fn each_view_fills_its_own_three_channels() {
        // Left half dark, right half bright: the close view (centred on a face at the border)
        // is half and half, the wide one sees more of both sides; each view's planes are its
        // own, in order.
        let frame = RgbImage::from_fn(320, 240, |x, _| {
            image::Rgb([if x < 160 { 0 } else { 255 }; 3])
        });
        let face = BBox {
            x: 130.0,
            y: 90.0,
            w: 60.0,
            h: 60.0,
        };
        let n = 64 * 64;
        let both = input(&frame, &face, &[2.0, 1.0]);
        assert_eq!(&both[..3 * n], &input(&frame, &face, &[2.0])[..]);
        assert_eq!(&both[3 * n..], &input(&frame, &face, &[1.0])[..]);
        assert_ne!(&both[..3 * n], &both[3 * n..]);
    }

    #[test]
    fn views_are_checked_and_old_manifests_mean_one_wide_view() {
        assert!(check_views(&VIEWS).is_ok());
        assert!(check_views(&[]).is_err());
        assert!(check_views(&[1.0; MAX_VIEWS + 1]).is_err());
        assert!(check_views(&[f32::NAN]).is_err());
        assert!(check_views(&[9.0]).is_err());
        let old = r#"{"sha256":"00","threshold":0.5,"data":"d","command":"c","seed":1,
            "attempts":[1,1],"calibration":[0.0,0.0],"loss":[]}"#;
        let m: Manifest = serde_json::from_str(old).expect("old manifest");
        assert_eq!(m.views, LEGACY_VIEWS);
    }

    #[test]
    fn an_attempt_is_the_mean_of_its_frames() {
        assert_eq!(attempt_score(&[]), None);
        assert_eq!(attempt_score(&[1.0, -3.0]), Some(-1.0));
    }

    /// A 320x240 gradient frame and a face box well inside it.
    fn frame_and_face(blue: u8) -> (RgbImage, BBox) {
        let frame = RgbImage::from_fn(320, 240, |x, y| image::Rgb([x as u8, y as u8, blue]));
        let face = BBox {
            x: 100.0,
            y: 60.0,
            w: 90.0,
            h: 110.0,
        };
        (frame, face)
    }

    #[test]
    fn the_graph_loads_in_tract_and_answers_one_value() {
        let (frame, face) = frame_and_face(7);
        for (views, other) in [(&[2.0][..], &[2.0, 1.0][..]), (&[2.0, 1.0], &[2.0])] {
            let spec = net(views.len());
            let weights: Vec<Vec<f32>> = spec
                .weight_shapes()
                .into_iter()
                .map(|(_, d)| {
                    let n: usize = d.iter().product();
                    (0..n).map(|i| ((i % 5) as f32 - 2.0) * 0.01).collect()
                })
                .collect();
            let bytes = spec.graph(&weights).expect("graph");
            let net = Liveness::from_bytes(&bytes, views, Levels::AsCaptured).expect("load");
            assert!(net.score(&frame, &face).expect("score").is_finite());
            // The file's input must match the views it is said to see: refused at load.
            assert!(
                Liveness::from_bytes(&bytes, other, Levels::AsCaptured).is_err(),
                "{views:?}"
            );
        }
    }

    /// A textured frame and the same scene under another exposure and white balance: each
    /// channel's levels times `gain[c]` plus `lift[c]`, rounded to whole grey levels.
    fn another_camera(gain: [f32; 3], lift: [f32; 3]) -> (Vec<f32>, Vec<f32>) {
        let frame = RgbImage::from_fn(320, 240, |x, y| {
            image::Rgb([
                (x % 200 + 30) as u8,
                (y + 10) as u8,
                ((x * 7 + y * 13) % 220 + 20) as u8,
            ])
        });
        let mut other = frame.clone();
        for p in other.pixels_mut() {
            for c in 0..3 {
                p[c] = (p[c] as f32 * gain[c] + lift[c]).round() as u8;
            }
        }
        let face = BBox {
            x: 100.0,
            y: 60.0,
            w: 90.0,
            h: 110.0,
        };
        (input(&frame, &face, &VIEWS), input(&other, &face, &VIEWS))
    }

    fn mean_difference(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
    }

    /// [`another_camera`]'s two inputs, each levelled by `levels`: the first, and their mean
    /// difference after (the change must be visible before).
    fn levelled(levels: Levels, gain: [f32; 3], lift: [f32; 3]) -> (Vec<f32>, f32) {
        let (mut a, mut b) = another_camera(gain, lift);
        let before = mean_difference(&a, &b);
        assert!(
            before > 0.3,
            "the change must be visible as captured: {before}"
        );
        levels.apply(&mut a);
        levels.apply(&mut b);
        let after = mean_difference(&a, &b);
        (a, after)
    }

    #[test]
    fn levelling_per_plane_takes_out_each_channels_gain_and_offset() {
        let (a, after) = levelled(Levels::PerPlane, [0.6, 0.5, 0.7], [3.0, 10.0, 0.0]);
        // Up to the rounding of the changed levels to whole grey levels.
        assert!(after < 0.02, "mean difference after levelling {after}");
        for plane in a.chunks((SIDE * SIDE) as usize) {
            let n = plane.len() as f32;
            let mean = plane.iter().sum::<f32>() / n;
            let var = plane.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n;
            assert!(
                mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3,
                "{mean} {var}"
            );
        }
        // A flat plane stays flat, not amplified noise.
        let mut flat = vec![0.25; (SIDE * SIDE) as usize];
        flat[7] = 0.25 + 1.0 / 128.0;
        Levels::PerPlane.apply(&mut flat);
        assert!(flat.iter().all(|v| v.abs() <= 0.5), "{:?}", &flat[..8]);
    }

    #[test]
    fn levelling_by_gain_takes_out_each_channels_gain_and_keeps_contrast() {
        let (a, after) = levelled(Levels::Gain, [0.6, 0.5, 0.7], [0.0; 3]);
        assert!(after < 0.02, "mean difference after levelling {after}");
        // Each plane's mean level is now 128 (0 as an input value); its spread is not touched.
        for plane in a.chunks((SIDE * SIDE) as usize) {
            let mean = plane.iter().sum::<f32>() / plane.len() as f32;
            assert!(mean.abs() < 1e-4, "{mean}");
        }
        let (mut low, _) = another_camera([1.0; 3], [0.0; 3]);
        let contrast = |v: &[f32]| v.iter().map(|x| x.abs()).sum::<f32>();
        let mut flatter: Vec<f32> = low.iter().map(|v| v * 0.5).collect();
        Levels::Gain.apply(&mut low);
        Levels::Gain.apply(&mut flatter);
        assert!(
            contrast(&flatter) < 0.8 * contrast(&low),
            "a flatter range stays flatter"
        );
        // As captured leaves the input alone; a black plane is not divided by zero.
        let (same, _) = another_camera([1.0; 3], [0.0; 3]);
        let mut kept = same.clone();
        Levels::AsCaptured.apply(&mut kept);
        assert_eq!(kept, same);
        let mut black = vec![-1.0; (SIDE * SIDE) as usize];
        Levels::Gain.apply(&mut black);
        assert!(black.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn levelling_by_brightness_takes_out_one_gain_and_keeps_colour() {
        let (_, after) = levelled(Levels::Brightness, [0.6; 3], [0.0; 3]);
        assert!(after < 0.02, "mean difference after levelling {after}");
        // Another colour balance is not levelled away.
        let (_, after) = levelled(Levels::Brightness, [0.6, 0.5, 0.7], [0.0; 3]);
        assert!(after > 0.05, "{after}");
    }

    #[test]
    fn manifests_without_levels_mean_levels_as_captured() {
        let json = r#"{"sha256":"00","threshold":0.5,"data":"d","command":"c","seed":1,
            "attempts":[1,1],"calibration":[0.0,0.0],"loss":[],"views":[2.0,3.0]}"#;
        let m: Manifest = serde_json::from_str(json).expect("parse");
        assert_eq!(m.levels, Levels::AsCaptured);
        // One name per levelling, the same in a manifest and on the command line.
        for l in Levels::ALL {
            assert_eq!(
                serde_json::to_string(&l).expect("json"),
                format!("\"{}\"", l.name())
            );
            assert_eq!(l.name().parse::<Levels>(), Ok(l));
        }
        let err = "bright".parse::<Levels>().expect_err("no such levelling");
        assert!(err.contains("brightness"), "{err}");
        let written = serde_json::to_string(&Manifest {
            levels: Levels::PerPlane,
            ..m
        })
        .expect("json");
        assert!(written.contains(r#""levels":"per-plane""#), "{written}");
    }

    #[test]
    fn a_manifest_with_a_second_opinion_must_read_the_input_as_captured() {
        let json = r#"{"sha256":"00","threshold":0.5,"data":"d","command":"c","seed":1,
            "attempts":[1,1],"calibration":[0.0,0.0],"loss":[],"views":[2.0,3.0],
            "second":{"levels":"brightness","offset":3.0,"thresholds":[-0.9,-4.2],
            "calibration":[[0.0,0.0],[0.0,0.0]],"loss":[]}}"#;
        let m: Manifest = serde_json::from_str(json).expect("parse");
        assert_eq!(check_manifest(&m), Ok(()));
        let twice = Manifest {
            levels: Levels::Brightness,
            ..m.clone()
        };
        let err = check_manifest(&twice).expect_err("levelled twice");
        assert!(
            err.contains("second opinion") && err.contains("brightness"),
            "{err}"
        );
        // Without a second opinion any levelling is the network's own.
        let alone = Manifest {
            second: None,
            ..twice
        };
        assert_eq!(check_manifest(&alone), Ok(()));
        let nan = Manifest {
            threshold: f32::NAN,
            ..m
        };
        assert!(check_manifest(&nan).is_err());
    }

    /// Weights of `spec` in a fixed pattern, a different one for each `k`.
    fn pattern_weights(spec: &SmallCnn, k: usize) -> Vec<Vec<f32>> {
        spec.weight_shapes()
            .into_iter()
            .map(|(_, d)| {
                let n: usize = d.iter().product();
                (0..n)
                    .map(|i| (((i * (k + 3)) % 7) as f32 - 3.0) * 0.01)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn an_ensemble_answers_the_mean_of_its_members() {
        let spec = net(VIEWS.len());
        let member = |k: usize| pattern_weights(&spec, k);
        let (a, b, c) = (member(0), member(1), member(2));
        let one = |w: &Vec<Vec<f32>>| {
            Liveness::from_bytes(&spec.graph(w).expect("graph"), &VIEWS, Levels::AsCaptured)
                .expect("load")
        };
        let (frame, face) = frame_and_face(90);
        let x = input(&frame, &face, &VIEWS);
        let singles: Vec<f32> = [&a, &b, &c]
            .iter()
            .map(|w| one(w).run(x.clone()).expect("run"))
            .collect();
        assert!(
            singles[0] != singles[1],
            "members must differ for the test to mean anything"
        );
        let both = spec.ensemble(&[a.clone(), b.clone(), c]).expect("ensemble");
        let got = Liveness::from_bytes(&both, &VIEWS, Levels::AsCaptured)
            .expect("load")
            .run(x)
            .expect("run");
        let mean = singles.iter().sum::<f32>() / 3.0;
        assert!(
            (got - mean).abs() < 1e-5 * mean.abs().max(1.0),
            "{got} vs {mean}"
        );
        // One member is the plain network, byte for byte; none is refused.
        assert_eq!(
            spec.ensemble(std::slice::from_ref(&a)).expect("one"),
            spec.graph(&a).expect("graph")
        );
        assert!(spec.ensemble(&[]).is_err());
        assert!(spec.ensemble(&[a, vec![vec![0.0]]]).is_err());
    }

    #[test]
    fn a_second_opinion_answers_the_lower_of_the_two_networks() {
        let spec = net(VIEWS.len());
        let member = |k: usize| pattern_weights(&spec, k);
        let (a, b) = (member(0), member(1));
        let alone = |w: &Vec<Vec<f32>>, levels| {
            Liveness::from_bytes(&spec.graph(w).expect("graph"), &VIEWS, levels).expect("load")
        };
        // A bright face and a dark one: the levelling must matter for the test to mean anything.
        for level in [200, 40] {
            let (frame, face) = frame_and_face(level);
            let x = input(&frame, &face, &VIEWS);
            let first = alone(&a, Levels::AsCaptured).run(x.clone()).expect("run");
            for levels in [Levels::AsCaptured, Levels::Brightness, Levels::Gain] {
                let second = alone(&b, levels).run(x.clone()).expect("run");
                for offset in [-50.0, 0.0, 50.0] {
                    let bytes = lower_of(VIEWS.len(), &a, &b, levels, offset).expect("pair");
                    let got = Liveness::from_bytes(&bytes, &VIEWS, Levels::AsCaptured)
                        .expect("load")
                        .run(x.clone())
                        .expect("run");
                    let want = first.min(second + offset);
                    assert!(
                        (got - want).abs() < 1e-4 * want.abs().max(1.0),
                        "{levels:?} {offset} at {level}: {got} vs {want} ({first}, {second})"
                    );
                }
            }
        }
        assert!(lower_of(VIEWS.len(), &a, &b, Levels::PerPlane, 0.0).is_err());
        assert!(lower_of(VIEWS.len(), &a, &b, Levels::Brightness, f32::NAN).is_err());
        assert!(lower_of(VIEWS.len(), &a, &[vec![0.0]], Levels::Brightness, 0.0).is_err());
    }

    #[test]
    fn the_door_form_answers_as_the_onnx_file_and_is_checked_against_the_manifest() {
        let spec = net(VIEWS.len());
        let bytes = lower_of(
            VIEWS.len(),
            &pattern_weights(&spec, 0),
            &pattern_weights(&spec, 1),
            Levels::Brightness,
            0.5,
        )
        .expect("pair");
        let dir = tempfile::tempdir().expect("dir");
        let manifest = Manifest {
            sha256: crate::model_files::sha256_hex(&bytes),
            threshold: 0.25,
            data: "patterns".into(),
            command: "test".into(),
            seed: 0,
            attempts: [0, 0],
            calibration: [0.0, 0.0],
            loss: vec![],
            views: VIEWS.to_vec(),
            levels: Levels::AsCaptured,
            second: None,
            door_sha256: None,
        };
        std::fs::write(dir.path().join(FILE), &bytes).expect("write");
        std::fs::write(
            dir.path().join(MANIFEST),
            serde_json::to_vec(&manifest).expect("json"),
        )
        .expect("write");
        // No door form yet: the door says so and how to make it.
        let err = read_door_form(dir.path())
            .expect_err("none yet")
            .to_string();
        assert!(err.contains("models fetch"), "{err}");
        assert!(install_door_form(dir.path()).expect("install").is_some());
        assert_eq!(install_door_form(dir.path()).expect("again"), None);
        let (read, door) = read_door_form(dir.path()).expect("door form");
        assert_eq!(read.threshold, manifest.threshold);
        let onnx = Liveness::from_manifest(&manifest, &bytes).expect("onnx");
        let nnef = Liveness::from_door_form(&read, &door).expect("nnef");
        for level in [200, 40] {
            let (frame, face) = frame_and_face(level);
            let (a, b) = (onnx.score(&frame, &face), nnef.score(&frame, &face));
            assert_eq!(a.expect("onnx").to_bits(), b.expect("nnef").to_bits());
        }
        // A door form for other views, or changed bytes, is refused.
        let one_view = Manifest {
            views: LEGACY_VIEWS.to_vec(),
            ..read.clone()
        };
        assert!(Liveness::from_door_form(&one_view, &door).is_err());
        let mut changed = door.clone();
        let last = changed.len() - 600;
        changed[last] ^= 1;
        std::fs::write(dir.path().join(DOOR_FILE), &changed).expect("write");
        let err = read_door_form(dir.path())
            .expect_err("tampered")
            .to_string();
        assert!(err.contains("SHA-256"), "{err}");
        // `install_door_form` repairs it.
        assert!(install_door_form(dir.path()).expect("repair").is_some());
        assert_eq!(read_door_form(dir.path()).expect("repaired").1, door);
    }
}
