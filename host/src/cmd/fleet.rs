//! `facegate publish` and `facegate fleet status|retire`: many doors through an MQTT broker.
//!
//! `publish` puts a signed bundle on its group's retained topic; every door of the group takes
//! it as it would a push (the door checks the signature before it parses anything, then the
//! version floor and the self-test) and reports the outcome on its event topic. The laptop
//! checks the same signature and the group first, so a mistake is caught here rather than
//! refused by every door. `fleet status` reads the doors' retained topics; `fleet retire`
//! clears a door's retained topics and removes it from Home Assistant.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use facegate_fleet::topics::{self, Topics};
use facegate_fleet::{Broker, broker};
use rumqttc::{Client, Connection, Event, Outgoing, Packet, QoS, RecvTimeoutError};
use serde_json::{Value, json};

/// How to reach the broker.
#[derive(Debug, Args)]
pub struct BrokerOpts {
    /// mqtt://HOST[:PORT] or mqtts://HOST[:PORT].
    #[arg(long)]
    pub broker: String,
    /// Broker user name.
    #[arg(long)]
    pub username: Option<String>,
    /// File holding the broker password.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// PEM CA of the broker's certificate (mqtts://).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// PEM client certificate (with --client-key).
    #[arg(long)]
    pub client_cert: Option<PathBuf>,
    /// PEM key of --client-cert.
    #[arg(long)]
    pub client_key: Option<PathBuf>,
    /// First topic level(s), as the doors' `[mqtt] prefix`.
    #[arg(long, default_value = topics::DEFAULT_PREFIX)]
    pub prefix: String,
}

impl BrokerOpts {
    fn broker(&self) -> Broker {
        Broker {
            url: self.broker.clone(),
            username: self.username.clone(),
            password_file: self.password_file.clone(),
            ca: self.ca.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        }
    }

    /// A connected session (waits for the broker's answer, at most 10 s).
    fn connect(&self, role: &str) -> Result<(Client, Connection)> {
        let id = format!("facegate-{role}-{}", std::process::id());
        let options =
            self.broker()
                .options(&id, None, facegate_models::bundle::MAX_BUNDLE + 4096)?;
        let (client, mut connection) = Client::new(options, 16);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match next(&mut connection, deadline)? {
                Some(Event::Incoming(Packet::ConnAck(_))) => return Ok((client, connection)),
                Some(_) => {}
                None => bail!("no answer from {} within 10 s", self.broker),
            }
        }
    }
}

/// The next event before `deadline` (`None` at the deadline); a connection error is an error.
fn next(connection: &mut Connection, deadline: Instant) -> Result<Option<Event>> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Ok(None);
    }
    match connection.recv_timeout(left) {
        Ok(Ok(e)) => Ok(Some(e)),
        Ok(Err(e)) => Err(anyhow::Error::new(e).context("MQTT connection")),
        Err(RecvTimeoutError::Timeout) => Ok(None),
        Err(RecvTimeoutError::Disconnected) => bail!("MQTT client closed"),
    }
}

/// Publishes retained QoS 1 messages and waits until the broker acknowledged each.
fn publish_retained(
    client: &Client,
    connection: &mut Connection,
    messages: Vec<(String, Vec<u8>)>,
) -> Result<()> {
    let mut waiting = 0usize;
    for (topic, payload) in messages {
        client.publish(topic, QoS::AtLeastOnce, true, payload)?;
        waiting += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while waiting > 0 {
        match next(connection, deadline)? {
            Some(Event::Incoming(Packet::PubAck(_))) => waiting -= 1,
            Some(_) => {}
            None => bail!("the broker did not acknowledge within 60 s"),
        }
    }
    let _ = client.disconnect();
    let end = Instant::now() + Duration::from_millis(300);
    while let Ok(Some(e)) = next(connection, end) {
        if matches!(e, Event::Outgoing(Outgoing::Disconnect)) {
            break;
        }
    }
    Ok(())
}

/// `facegate publish --broker URL --group G BUNDLE`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  facegate publish --broker mqtt://broker.lan --group home home.fgb
  facegate publish --broker mqtts://broker.lan:8883 --ca ca.pem --username laptop \\
      --password-file ~/.config/facegate/mqtt.pass --group office office.fgb")]
pub struct PublishCmd {
    /// The broker.
    #[command(flatten)]
    pub broker: BrokerOpts,
    /// The group of doors (`[model] groups` on each); the bundle must be made for it
    /// (`enrol --door G`).
    #[arg(long)]
    pub group: String,
    /// Public key the bundle must verify with [default: ~/.config/facegate/facegate.pub].
    #[arg(long)]
    pub trust: Vec<PathBuf>,
    /// The signed bundle.
    pub bundle: PathBuf,
}

/// Runs `facegate publish`.
pub fn publish(cmd: PublishCmd) -> Result<()> {
    let topic = topics::group_bundle(&cmd.broker.prefix, &cmd.group)?;
    let bytes =
        std::fs::read(&cmd.bundle).with_context(|| format!("reading {}", cmd.bundle.display()))?;
    let trusted = crate::home::trusted_paths(&cmd.trust)?
        .iter()
        .map(|p| crate::cmd::keys::read_public(p))
        .collect::<Result<Vec<_>>>()?;
    let bundle = facegate_models::bundle::verify(&bytes, &trusted).with_context(|| {
        format!(
            "{} does not verify with the trusted key",
            cmd.bundle.display()
        )
    })?;
    if bundle.header.door.as_deref() != Some(cmd.group.as_str()) {
        bail!(
            "{} is made for {}, not group {:?}: every door of the group would refuse it; make it \
             with `facegate enrol ... --door {}`",
            cmd.bundle.display(),
            bundle
                .header
                .door
                .as_deref()
                .map_or("any door without an id".to_owned(), |d| format!("{d:?}")),
            cmd.group,
            cmd.group
        );
    }
    let (client, mut connection) = cmd.broker.connect("publish")?;
    publish_retained(
        &client,
        &mut connection,
        vec![(topic.clone(), bytes.clone())],
    )?;
    println!(
        "published version {} ({}, {} bytes) on {topic} (retained): each door of group {:?} \
         installs it and reports on {}/<door>/event",
        bundle.header.model_version,
        facegate_models::gallery::people_count(bundle.header.labels.len()),
        bytes.len(),
        cmd.group,
        cmd.broker.prefix
    );
    Ok(())
}

/// `facegate fleet ...`
#[derive(Debug, Subcommand)]
pub enum FleetCmd {
    /// List the doors on the broker: availability, model version, last decision.
    #[command(after_help = "Examples:
  facegate fleet status --broker mqtt://broker.lan
  facegate fleet status --broker mqtt://broker.lan --json")]
    Status(FleetStatusCmd),
    /// Retire a door: clear its retained topics and remove it from Home Assistant (stop the
    /// door first, or it announces itself again).
    #[command(after_help = "Examples:
  facegate fleet retire --broker mqtt://broker.lan garage")]
    Retire(FleetRetireCmd),
}

/// `facegate fleet status`
#[derive(Debug, Args)]
pub struct FleetStatusCmd {
    /// The broker.
    #[command(flatten)]
    pub broker: BrokerOpts,
    /// One JSON object per door.
    #[arg(long)]
    pub json: bool,
    /// How long to collect the retained topics after subscribing, in ms.
    #[arg(long, default_value_t = 1500)]
    pub wait_ms: u64,
}

/// `facegate fleet retire DOOR`
#[derive(Debug, Args)]
pub struct FleetRetireCmd {
    /// The broker.
    #[command(flatten)]
    pub broker: BrokerOpts,
    /// Home Assistant's discovery prefix.
    #[arg(long, default_value = topics::DEFAULT_DISCOVERY_PREFIX)]
    pub discovery_prefix: String,
    /// The door's id.
    pub door: String,
}

/// Runs `facegate fleet`.
pub fn run(cmd: FleetCmd) -> Result<()> {
    match cmd {
        FleetCmd::Status(c) => status(c),
        FleetCmd::Retire(c) => retire(c),
    }
}

/// What the retained topics say of every door, by door id.
pub fn collect(opts: &BrokerOpts, wait: Duration) -> Result<BTreeMap<String, Value>> {
    topics::check_prefix(&opts.prefix)?;
    let (client, mut connection) = opts.connect("status")?;
    for leaf in ["availability", "model", "last"] {
        client.subscribe(topics::every_door(&opts.prefix, leaf), QoS::AtLeastOnce)?;
    }
    let mut doors: BTreeMap<String, Value> = BTreeMap::new();
    let deadline = Instant::now() + wait;
    while let Some(e) = next(&mut connection, deadline)? {
        let Event::Incoming(Packet::Publish(p)) = e else {
            continue;
        };
        let Some((door, leaf)) = topics::split_door_topic(&opts.prefix, &p.topic) else {
            continue;
        };
        let text = String::from_utf8_lossy(&p.payload).into_owned();
        let entry = doors
            .entry(door.to_owned())
            .or_insert_with(|| json!({"door": door}));
        entry[leaf] = match leaf {
            "model" => text
                .parse::<u64>()
                .map(Value::from)
                .unwrap_or(Value::from(text)),
            "last" => serde_json::from_str(&text).unwrap_or(Value::Null),
            _ => Value::from(text),
        };
    }
    let _ = client.disconnect();
    // A retired door leaves empty retained payloads behind only until they are cleared.
    doors.retain(|_, v| v["availability"].as_str().is_some_and(|a| !a.is_empty()));
    Ok(doors)
}

fn status(cmd: FleetStatusCmd) -> Result<()> {
    let doors = collect(&cmd.broker, Duration::from_millis(cmd.wait_ms))?;
    if cmd.json {
        for d in doors.values() {
            println!("{d}");
        }
        return Ok(());
    }
    if doors.is_empty() {
        println!(
            "no doors on {} under {}/",
            cmd.broker.broker, cmd.broker.prefix
        );
        return Ok(());
    }
    println!(
        "{:<16} {:<8} {:>6}  last decision",
        "door", "state", "model"
    );
    for (door, d) in &doors {
        let last = &d["last"];
        let decision = if last.is_null() {
            "-".to_owned()
        } else {
            format!(
                "{} {} {}",
                last["time"].as_str().unwrap_or(""),
                last["event_type"].as_str().unwrap_or(""),
                last["person"]
                    .as_str()
                    .or(last["by"].as_str())
                    .unwrap_or("")
            )
        };
        println!(
            "{door:<16} {:<8} {:>6}  {decision}",
            d["availability"].as_str().unwrap_or("?"),
            d["model"]
                .as_u64()
                .map_or("?".to_owned(), |v| v.to_string()),
        );
    }
    Ok(())
}

fn retire(cmd: FleetRetireCmd) -> Result<()> {
    let t = Topics::new(&cmd.broker.prefix, &cmd.door)?;
    topics::check_prefix(&cmd.discovery_prefix)?;
    let mut messages: Vec<(String, Vec<u8>)> = t
        .retained()
        .into_iter()
        .map(|topic| (topic, Vec::new()))
        .collect();
    messages.push((t.discovery(&cmd.discovery_prefix), Vec::new()));
    let (client, mut connection) = cmd.broker.connect("retire")?;
    publish_retained(&client, &mut connection, messages)?;
    println!(
        "retired door {:?}: its retained topics are cleared and Home Assistant removes the device",
        cmd.door
    );
    Ok(())
}

/// Where system CA certificates are read from when `--ca` is not given.
pub const SYSTEM_CAS: &str = broker::SYSTEM_CAS;
