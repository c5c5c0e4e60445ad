//! `facegate push` and `facegate status`: talk to a door's update server (see
//! `facegate_models::wire`). Every request is signed with the laptop's secret key over the
//! door's challenge. The door answers one line; anything but `ok` is a failure.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ed25519_dalek::SigningKey;
use facegate_models::wire;

use crate::cli::{PushCmd, StatusCmd};

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
    Ok(conn)
}

/// Connects and reads the door's challenge (or its early `busy` line).
fn open(device: &str, timeout: Duration) -> Result<(TcpStream, [u8; wire::CHALLENGE_LEN])> {
    let mut conn = connect(device, timeout)?;
    let mut first = [0u8; wire::HELLO_LEN];
    let mut got = 0;
    while got < first.len() {
        use std::io::Read;
        match conn.read(&mut first[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(e).context("reading the door's greeting"),
        }
    }
    if got < first.len() || first[..4] != wire::HELLO {
        let said = String::from_utf8_lossy(&first[..got]).trim_end().to_owned();
        if said.starts_with("busy") {
            bail!("the door is {said}");
        }
        bail!("{device} did not greet as a facegate door (answered {said:?})");
    }
    wire::read_hello(&mut &first[..])
        .map(|c| (conn, c))
        .context("reading the door's greeting")
}

/// Sends a bundle; returns the door's answer.
pub fn push_bytes(
    device: &str,
    bundle: &[u8],
    key: &SigningKey,
    timeout: Duration,
) -> Result<String> {
    let (mut conn, challenge) = open(device, timeout)?;
    // The door may answer early (busy, too large) and stop reading: its answer still counts.
    let sent = wire::write_push(&mut conn, key, &challenge, bundle);
    let _ = conn.shutdown(std::net::Shutdown::Write);
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
    let key = super::keys::read_secret(&cmd.key)?;
    let reply = push_bytes(
        &cmd.device,
        &bytes,
        &key,
        Duration::from_secs(cmd.timeout_s),
    )?;
    println!("{}", printable(&reply));
    if !reply.starts_with("ok") {
        bail!("the door refused the update");
    }
    Ok(())
}

/// Asks for the door's status; returns its raw answer.
pub fn status_reply(device: &str, key: &SigningKey) -> Result<String> {
    let (mut conn, challenge) = open(device, Duration::from_secs(10))?;
    wire::write_status(&mut conn, key, &challenge)?;
    Ok(wire::read_reply(&mut conn)?)
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
    let key = super::keys::read_secret(&cmd.key)?;
    let reply = status_reply(&cmd.device, &key)?;
    let v: serde_json::Value = serde_json::from_str(&reply)
        .with_context(|| format!("unexpected answer: {}", printable(&reply)))?;
    println!("model version {}", v["model_version"]);
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
