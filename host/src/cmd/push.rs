//! `facegate push` and `facegate status`: talk to a door's update server.
//!
//! The door speaks first: `FGN1` opens the encrypted channel (`facegate_models::channel`); the
//! laptop checks the door's key against its pin (`--door-key`, else the `known_doors` file: the
//! first contact with an address records its key, as SSH does, and a changed key is refused).
//! Inside, every request is signed with the laptop's secret key over the channel's handshake
//! hash (`facegate_models::wire`). A door that offers plain TCP is refused unless
//! `--insecure-plaintext` says otherwise. The door answers one line; anything but `ok` is a
//! failure.

use clap::Args;

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ed25519_dalek::SigningKey;
use facegate_models::channel::{NOISE_HELLO, NoiseStream};
use facegate_models::wire;

/// How the laptop decides that it talks to the right door.
#[derive(Clone, Debug, Default)]
pub struct DoorTrust {
    /// The door's channel key, given by hand (wins over `known`).
    pub key: Option<[u8; 32]>,
    /// The pin file: `HOST:PORT HEXKEY` lines; a new address is added on first contact.
    pub known: Option<PathBuf>,
    /// Talk to a door that offers no encryption.
    pub allow_plaintext: bool,
}

impl DoorTrust {
    /// Trust exactly this key.
    pub fn pinned(key: [u8; 32]) -> Self {
        Self {
            key: Some(key),
            ..Self::default()
        }
    }

    /// From the command line: `--door-key`, else the default pin file.
    fn from_flags(door: &DoorOpts) -> Result<Self> {
        let key = door
            .door_key
            .as_deref()
            .map(|k| {
                hex::decode(k.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .context("--door-key is 64 hex digits, as the door prints at start")
            })
            .transpose()?;
        Ok(Self {
            key,
            known: Some(known_doors_path()),
            allow_plaintext: door.insecure_plaintext,
        })
    }

    /// Checks (or, on first contact, records) the door's key.
    fn check(&self, device: &str, got: [u8; 32]) -> Result<()> {
        let shown = hex::encode(got);
        if let Some(want) = self.key {
            if want != got {
                bail!(
                    "{device} presented channel key {shown}, not the --door-key given: refusing \
                     (another machine may be answering for the door)"
                );
            }
            return Ok(());
        }
        let Some(path) = &self.known else {
            bail!("no door key to check {device}'s key {shown} against: give --door-key");
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines() {
            if let Some((addr, key)) = line.split_once(' ')
                && addr == device
            {
                if key.trim() == shown {
                    return Ok(());
                }
                bail!(
                    "{device} presented channel key {shown}, but {} pins {}: refusing. If the \
                     door was reinstalled, remove that line; otherwise another machine may be \
                     answering for the door",
                    path.display(),
                    key.trim()
                );
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(f, "{device} {shown}").with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "first contact with {device}: pinned its channel key {shown} in {} (check it \
             against the key the door printed at start)",
            path.display()
        );
        Ok(())
    }
}

/// `$XDG_CONFIG_HOME/facegate/known_doors`, else `~/.config/facegate/known_doors`.
pub fn known_doors_path() -> PathBuf {
    crate::home::config_dir().join("known_doors")
}

fn connect(device: &str, timeout: Duration) -> Result<TcpStream> {
    let addr = device
        .to_socket_addrs()
        .with_context(|| format!("{device} is not HOST:PORT"))?
        .next()
        .with_context(|| format!("{device} resolves to no address"))?;
    let conn = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .with_context(|| format!("connecting to {device}: is the door running with --listen?"))?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    conn.set_nodelay(true)?;
    Ok(conn)
}

/// A connection to a door: encrypted, or plain where allowed.
pub enum DoorConn {
    /// The Noise channel.
    Noise(Box<NoiseStream<TcpStream>>),
    /// Plain TCP (`--insecure-plaintext`).
    Plain(TcpStream),
}

impl DoorConn {
    /// Closes the sending half (the door then knows the request is complete).
    pub fn finish_writing(&mut self) {
        let tcp = match self {
            DoorConn::Noise(s) => s.get_mut(),
            DoorConn::Plain(s) => s,
        };
        let _ = tcp.shutdown(std::net::Shutdown::Write);
    }
}

impl Read for DoorConn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            DoorConn::Noise(s) => s.read(buf),
            DoorConn::Plain(s) => s.read(buf),
        }
    }
}

impl Write for DoorConn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            DoorConn::Noise(s) => s.write(buf),
            DoorConn::Plain(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            DoorConn::Noise(s) => s.flush(),
            DoorConn::Plain(s) => s.flush(),
        }
    }
}

/// Connects, sets up the channel the door offers (checking its key), and reads the door's
/// challenge; a door that is busy says so instead.
pub fn open(
    device: &str,
    timeout: Duration,
    trust: &DoorTrust,
) -> Result<(DoorConn, [u8; wire::CHALLENGE_LEN])> {
    let mut tcp = connect(device, timeout)?;
    let mut first = [0u8; 4];
    let mut got = 0;
    while got < first.len() {
        match tcp.read(&mut first[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(e).context("reading the door's greeting"),
        }
    }
    let mut conn = if got == 4 && first == NOISE_HELLO {
        let channel = NoiseStream::connect(tcp).context("setting up the encrypted channel")?;
        let key = channel
            .remote_key()
            .context("the door presented no channel key")?;
        trust.check(device, key)?;
        DoorConn::Noise(Box::new(channel))
    } else if got == 4 && first == wire::HELLO {
        if !trust.allow_plaintext {
            bail!(
                "{device} offers only plain TCP (update.plaintext = true in its config): \
                 bundles would cross the network unencrypted. Turn that off on the door, or \
                 pass --insecure-plaintext"
            );
        }
        return wire::read_hello(&mut (&first[..]).chain(&mut tcp))
            .map(|c| (DoorConn::Plain(tcp), c))
            .context("reading the door's greeting");
    } else {
        let mut rest = Vec::new();
        let _ = (&mut tcp).take(200).read_to_end(&mut rest);
        let said = String::from_utf8_lossy(&[&first[..got], &rest[..]].concat())
            .trim_end()
            .to_owned();
        if said.starts_with("busy") {
            bail!("the door is {}", printable(&said));
        }
        bail!(
            "{device} did not greet as a facegate door (answered {:?})",
            printable(&said)
        );
    };
    let challenge = wire::read_hello(&mut conn).context("reading the door's greeting")?;
    if let DoorConn::Noise(channel) = &conn
        && challenge != channel.binding()
    {
        bail!("the door's challenge is not this channel's: refusing (a relay in the middle?)");
    }
    Ok((conn, challenge))
}

/// Sends a bundle; returns the door's answer.
pub fn push_bytes(
    device: &str,
    bundle: &[u8],
    key: &SigningKey,
    trust: &DoorTrust,
    timeout: Duration,
) -> Result<String> {
    let (mut conn, challenge) = open(device, timeout, trust)?;
    // The door may answer early (busy, too large) and stop reading: its answer still counts.
    let sent = wire::write_push(&mut conn, key, &challenge, bundle);
    conn.finish_writing();
    match (wire::read_reply(&mut conn), sent) {
        (Ok(reply), _) if !reply.is_empty() => Ok(reply),
        (_, Err(e)) => Err(e).context("sending the bundle"),
        (Ok(_), Ok(())) => bail!("the door closed the connection without an answer"),
        (Err(e), Ok(())) => Err(e).context("reading the door's answer"),
    }
}

/// Runs `facegate push`.
pub fn push(cmd: PushCmd) -> Result<()> {
    let bytes =
        std::fs::read(&cmd.bundle).with_context(|| format!("reading {}", cmd.bundle.display()))?;
    let key = super::keys::read_secret(&crate::home::secret_key_path(cmd.door.key.as_deref())?)?;
    let trust = DoorTrust::from_flags(&cmd.door)?;
    let reply = push_bytes(
        &cmd.door.device,
        &bytes,
        &key,
        &trust,
        Duration::from_secs(cmd.timeout_s),
    )?;
    println!("{}", printable(&reply));
    if !reply.starts_with("ok") {
        bail!("the door refused the update");
    }
    Ok(())
}

/// Asks for the door's status; returns its raw answer.
pub fn status_reply(device: &str, key: &SigningKey, trust: &DoorTrust) -> Result<String> {
    let (mut conn, challenge) = open(device, Duration::from_secs(10), trust)?;
    wire::write_status(&mut conn, key, &challenge)?;
    Ok(wire::read_reply(&mut conn)?)
}

/// Asks the door to set its version floor; returns its answer.
pub fn recover_reply(
    device: &str,
    key: &SigningKey,
    trust: &DoorTrust,
    floor: u32,
) -> Result<String> {
    let (mut conn, challenge) = open(device, Duration::from_secs(10), trust)?;
    wire::write_recover(&mut conn, key, &challenge, floor)?;
    Ok(wire::read_reply(&mut conn)?)
}

/// Runs `facegate recover`.
pub fn recover(cmd: RecoverCmd) -> Result<()> {
    let key = super::keys::read_secret(&crate::home::secret_key_path(cmd.door.key.as_deref())?)?;
    let trust = DoorTrust::from_flags(&cmd.door)?;
    let reply = recover_reply(&cmd.door.device, &key, &trust, cmd.floor)?;
    println!("{}", printable(&reply));
    if !reply.starts_with("ok") {
        bail!("the door refused the recovery");
    }
    Ok(())
}

/// Text from the network, safe for a terminal: control characters (newlines, escape
/// sequences that retitle a terminal or forge a line) are shown escaped.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Runs `facegate status`.
pub fn status(cmd: StatusCmd) -> Result<()> {
    let key = super::keys::read_secret(&crate::home::secret_key_path(cmd.door.key.as_deref())?)?;
    let trust = DoorTrust::from_flags(&cmd.door)?;
    let reply = status_reply(&cmd.door.device, &key, &trust)?;
    let v: serde_json::Value = serde_json::from_str(&reply)
        .with_context(|| format!("unexpected answer: {}", printable(&reply)))?;
    if cmd.json {
        // Re-serialised: whatever the door sent, control characters come out escaped.
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    if v["model_version"].as_u64() == Some(0) {
        println!("model version: none (the door stays shut until a bundle is pushed)");
    } else {
        println!("model version {}", v["model_version"]);
    }
    println!(
        "people: {}",
        v["people"]
            .as_array()
            .map(|a| a
                .iter()
                .filter_map(|x| x.as_str())
                .map(printable)
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default()
    );
    for line in v["recent"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str())
    {
        println!("  {}", printable(line));
    }
    Ok(())
}

// --- command-line arguments ---

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
