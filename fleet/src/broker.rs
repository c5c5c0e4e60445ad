//! How to reach the broker: `mqtt://host[:port]` (plain, port 1883) or `mqtts://host[:port]`
//! (TLS, port 8883), a user name with the password in a file, the CA that signed the broker's
//! certificate, and optionally a client certificate. Turned into rumqttc's options here, so the
//! door and the laptop connect the same way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, TlsConfiguration, Transport};
use serde::Deserialize;

/// Where system CA certificates are on Debian and Raspberry Pi OS (used for `mqtts://` when no
/// `ca` is given).
pub const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why a broker connection cannot be set up (before any network traffic).
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The URL is not `mqtt://host[:port]` or `mqtts://host[:port]`.
    #[error("broker URL {url:?}: {why} (write mqtt://HOST:1883 or mqtts://HOST:8883)")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// An id that would not be one topic level.
    #[error("{what} {id:?}: use 1 to 64 letters, digits, '-' or '_'")]
    BadId {
        /// Which id.
        what: String,
        /// The id given.
        id: String,
    },
    /// A file the settings name cannot be read.
    #[error("reading {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Settings that do not go together.
    #[error("{0}")]
    Settings(String),
}

/// The broker settings (`[mqtt]` on the door, `--broker` and friends on the laptop).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Broker {
    /// `mqtt://host[:port]` or `mqtts://host[:port]`.
    pub url: String,
    /// User name the broker authenticates (and its ACL names).
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the password (one line), readable by the service only.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PEM file of the CA that signed the broker's certificate (`mqtts://` only; default: the
    /// system's CAs).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// PEM client certificate, for brokers that require one (with `client_key`).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

/// Host, port and whether TLS is used, from a broker URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `mqtts://`.
    pub tls: bool,
}

impl Broker {
    /// The endpoint the URL names.
    pub fn endpoint(&self) -> Result<Endpoint, FleetError> {
        let bad = |why: &str| FleetError::BadUrl {
            url: self.url.clone(),
            why: why.to_owned(),
        };
        let (tls, rest) = if let Some(r) = self.url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = self.url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(bad("the scheme must be mqtt:// or mqtts://"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad("only a host and a port may follow the scheme"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad("the port must be 1 to 65535"))?,
            ),
            _ => (rest, if tls { 8883 } else { 1883 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Endpoint {
            host: host.to_owned(),
            port,
            tls,
        })
    }

    /// Checks everything that can be checked without the network: the URL, and that a
    /// certificate comes with its key.
    pub fn check(&self) -> Result<Endpoint, FleetError> {
        let endpoint = self.endpoint()?;
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(FleetError::Settings(
                "client_cert and client_key go together: give both or neither".into(),
            ));
        }
        if !endpoint.tls && (self.ca.is_some() || self.client_cert.is_some()) {
            return Err(FleetError::Settings(format!(
                "ca and client_cert need TLS: write the broker as mqtts://{}:8883",
                endpoint.host
            )));
        }
        if self.password_file.is_some() && self.username.is_none() {
            return Err(FleetError::Settings(
                "password_file without username: give the user name too".into(),
            ));
        }
        Ok(endpoint)
    }

    /// rumqttc options for a client called `client_id`, with an optional last will. Reads the
    /// password, CA and client-certificate files now, so a missing file is an error at start,
    /// not a silent reconnect loop.
    pub fn options(
        &self,
        client_id: &str,
        will: Option<LastWill>,
        max_incoming: usize,
    ) -> Result<MqttOptions, FleetError> {
        let endpoint = self.check()?;
        let mut o = MqttOptions::new(client_id, endpoint.host.clone(), endpoint.port);
        o.set_keep_alive(Duration::from_secs(15))
            .set_clean_session(true)
            // Outgoing: events and discovery are small; bundles are published by the laptop.
            .set_max_packet_size(max_incoming, max_incoming);
        if let Some(user) = &self.username {
            let password = match &self.password_file {
                Some(p) => read(p).map(|b| {
                    String::from_utf8_lossy(&b)
                        .trim_end_matches(['\r', '\n'])
                        .to_owned()
                })?,
                None => String::new(),
            };
            o.set_credentials(user, password);
        }
        if let Some(will) = will {
            o.set_last_will(will);
        }
        if endpoint.tls {
            install_crypto();
            let ca = match &self.ca {
                Some(p) => read(p)?,
                None => read(Path::new(SYSTEM_CAS))?,
            };
            let client_auth = match (&self.client_cert, &self.client_key) {
                (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
                _ => None,
            };
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
                ca,
                alpn: None,
                client_auth,
            }));
        }
        Ok(o)
    }
}

/// Makes ring rustls's process-wide provider (once; later calls are no-ops).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn read(path: &Path) -> Result<Vec<u8>, FleetError> {
    std::fs::read(path).map_err(|source| FleetError::File {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(u: &str) -> Result<Endpoint, FleetError> {
        Broker {
            url: u.into(),
            ..Broker::default()
        }
        .endpoint()
    }

    #[test]
    fn urls_name_host_port_and_tls() {
        let e = url("mqtt://broker.lan").expect("valid");
        assert_eq!(
            (e.host.as_str(), e.port, e.tls),
            ("broker.lan", 1883, false)
        );
        let e = url("mqtts://10.0.0.2:9883").expect("valid");
        assert_eq!((e.host.as_str(), e.port, e.tls), ("10.0.0.2", 9883, true));
        let e = url("mqtts://[::1]:8883").expect("valid");
        assert_eq!((e.host.as_str(), e.port), ("::1", 8883));
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://h:0",
            "mqtt://h:99999",
            "mqtt://u:p@h",
            "mqtt://h/path",
        ] {
            assert!(url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tls_settings_on_a_plain_url_are_refused() {
        let b = Broker {
            url: "mqtt://h".into(),
            ca: Some("/ca.pem".into()),
            ..Broker::default()
        };
        assert!(
            b.check()
                .expect_err("plain URL")
                .to_string()
                .contains("mqtts://h:8883")
        );
    }

    #[test]
    fn a_missing_password_file_is_an_error_before_connecting() {
        let b = Broker {
            url: "mqtt://h".into(),
            username: Some("door".into()),
            password_file: Some("/nonexistent/pass".into()),
            ..Broker::default()
        };
        let e = b
            .options("x", None, 1024)
            .expect_err("missing file")
            .to_string();
        assert!(e.contains("/nonexistent/pass"), "{e}");
    }
}
