//! A real mosquitto for the end-to-end tests: started on free loopback ports with its own
//! config in a temporary folder (a plain listener; optionally a TLS listener with a CA made
//! now by openssl, a password file and an ACL), stopped on drop. `scripts/install-deps`
//! installs mosquitto and openssl; a missing binary fails the test with that hint.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The users of the secure listener and their passwords.
pub const USERS: [(&str, &str); 4] = [
    ("front", "front-pass"),
    ("side", "side-pass"),
    ("homeassistant", "ha-pass"),
    ("intruder", "intruder-pass"),
];

/// The ACL of the secure listener: each door owns its topics and reads group bundles;
/// Home Assistant and others read; anyone may write an unlock command only under their own
/// user name (`%u`), which is what lets a door trust the name.
pub const ACL: &str = "\
user front
topic readwrite facegate/front/#
topic read facegate/group/#
topic readwrite homeassistant/#

user side
topic readwrite facegate/side/#
topic read facegate/group/#
topic readwrite homeassistant/#

user homeassistant
topic read facegate/#
topic readwrite homeassistant/#

user intruder
topic read facegate/#

pattern write facegate/+/unlock/%u
";

/// A running broker.
pub struct Mosquitto {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Plain listener port (anonymous allowed).
    pub port: u16,
    /// TLS listener port (passwords and ACL), when started secure.
    pub tls_port: Option<u16>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (run scripts/install-deps)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn user_name() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Mosquitto {
    /// A broker with a plain anonymous listener only.
    pub fn plain() -> Self {
        Self::start(false)
    }

    /// A broker with the plain listener and a TLS listener (test CA, [`USERS`], [`ACL`]).
    pub fn secure() -> Self {
        Self::start(true)
    }

    fn start(secure: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut conf = format!(
            "per_listener_settings true\n\
             user {}\n\
             persistence true\n\
             persistence_location {}/\n\
             log_dest file {}\n\
             log_type error\nlog_type warning\nlog_type notice\n\
             listener {port} 127.0.0.1\n\
             allow_anonymous true\n",
            user_name(),
            dir.path().display(),
            dir.path().join("mosquitto.log").display(),
        );
        let mut tls_port = None;
        if secure {
            let p = free_port();
            tls_port = Some(p);
            make_certs(dir.path());
            let pw = dir.path().join("passwords");
            for (i, (user, pass)) in USERS.iter().enumerate() {
                let mut c = Command::new("mosquitto_passwd");
                if i == 0 {
                    c.arg("-c");
                }
                run(c.arg("-b").arg(&pw).arg(user).arg(pass));
            }
            std::fs::write(dir.path().join("acl"), ACL).expect("acl");
            for (user, pass) in USERS {
                std::fs::write(dir.path().join(format!("{user}.pass")), pass).expect("pass");
            }
            let d = dir.path().display();
            conf.push_str(&format!(
                "listener {p} 127.0.0.1\n\
                 cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n\
                 allow_anonymous false\n\
                 password_file {d}/passwords\n\
                 acl_file {d}/acl\n"
            ));
        }
        std::fs::write(dir.path().join("mosquitto.conf"), conf).expect("conf");
        let mut m = Self {
            child: None,
            dir,
            port,
            tls_port,
        };
        m.restart();
        m
    }

    /// Starts (again) on the same ports with the same config and stored sessions.
    pub fn restart(&mut self) {
        // Debian installs it in /usr/sbin, which a non-root PATH may lack.
        let bin = if Path::new("/usr/sbin/mosquitto").exists() {
            "/usr/sbin/mosquitto"
        } else {
            "mosquitto"
        };
        let child = Command::new(bin)
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting mosquitto: {e} (scripts/install-deps installs it)")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {}: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it with SIGTERM (it saves its sessions, as a service stop would).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// `mqtts://127.0.0.1:PORT`.
    pub fn tls_url(&self) -> String {
        format!(
            "mqtts://127.0.0.1:{}",
            self.tls_port.expect("a secure broker")
        )
    }

    /// The test CA.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The password file of `user`.
    pub fn password_file(&self, user: &str) -> PathBuf {
        self.dir.path().join(format!("{user}.pass"))
    }

    /// The broker's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A CA and a server certificate for 127.0.0.1, made with openssl now (EC P-256, two days).
fn make_certs(dir: &Path) {
    let ossl = |args: &[&str]| run(Command::new("openssl").current_dir(dir).args(args));
    ossl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=facegate-test-ca",
    ]);
    ossl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    ossl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}
