//! `facegate push` and `facegate status`: talk to a door's update server (see
//! `facegate_models::wire`). The door answers one line; anything but `ok` is a failure.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, bail};
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

/// Sends a bundle; returns the door's answer.
pub fn push_bytes(device: &str, bundle: &[u8], timeout: Duration) -> Result<String> {
    let mut conn = connect(device, timeout)?;
    // The door may answer early (busy, too large) and stop reading: its answer still counts.
    let sent = wire::write_push(&mut conn, bundle);
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
    let reply = push_bytes(&cmd.device, &bytes, Duration::from_secs(cmd.timeout_s))?;
    println!("{reply}");
    if !reply.starts_with("ok") {
        bail!("the door refused the update");
    }
    Ok(())
}

/// Runs `facegate status`.
pub fn status(cmd: StatusCmd) -> Result<()> {
    let mut conn = connect(&cmd.device, Duration::from_secs(10))?;
    wire::write_status(&mut conn)?;
    let reply = wire::read_reply(&mut conn)?;
    let v: serde_json::Value =
        serde_json::from_str(&reply).with_context(|| format!("unexpected answer: {reply}"))?;
    println!("model version {}", v["model_version"]);
    println!(
        "people: {}",
        v["people"]
            .as_array()
            .map(|a| a
                .iter()
                .filter_map(|x| x.as_str())
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
        println!("  {line}");
    }
    Ok(())
}
