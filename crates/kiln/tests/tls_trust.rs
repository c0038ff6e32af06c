//! Trust on first use and certificate lifetimes, with the real binary:
//! what `kiln_proto::tls::fetch_ca` gets from a `kiln server` (its CA, or
//! the administrator's certificate), a CA stored where the CLI looks, a
//! server certificate about to run out made again from the same CA, and
//! certificates that have run out or are about to.

mod common;

use common::{free_port, kiln_bin, wait_exit, wait_until};
use kiln_proto::tls::{
    cert_info, fetch_ca, pem_certificates, pinned_ca_path, same_fingerprint, save_trusted_ca,
    FetchedCa,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY: i64 = 86_400;

/// The config home (`XDG_CONFIG_HOME`) of this test process, where
/// `save_trusted_ca` writes. Set once, before any test starts a process:
/// every test calls this first.
fn config_home() -> &'static Path {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    HOME.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("XDG_CONFIG_HOME", dir.path());
        std::env::remove_var("KILN_CA");
        dir
    })
    .path()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Makes `p` valid from `from` to `to` (Unix seconds).
fn valid(p: &mut CertificateParams, from: i64, to: i64) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    p.not_before = epoch + Duration::from_secs(from as u64);
    p.not_after = epoch + Duration::from_secs(to as u64);
}

fn fetch(url: &str) -> kiln_proto::Result<FetchedCa> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(fetch_ca(url))
}

/// A `kiln server` in a temporary directory.
struct Server {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    starts: usize,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Server {
    fn new() -> Server {
        config_home();
        Server {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            child: None,
            starts: 0,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.port)
    }

    fn command(&mut self, extra: &[&str]) -> (Command, PathBuf) {
        let log = self.path(&format!("server-{}.log", self.starts));
        self.starts += 1;
        let mut cmd = Command::new(kiln_bin());
        cmd.args(["server", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data")
            .arg(self.path("data"))
            .args(extra)
            .env("KILN_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        (cmd, log)
    }

    /// Starts it; returns its log once it is ready.
    fn start(&mut self, extra: &[&str]) -> String {
        let (mut cmd, log) = self.command(extra);
        self.child = Some(cmd.spawn().unwrap());
        wait_until(Duration::from_secs(20), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("kiln server ready"))
        });
        std::fs::read_to_string(&log).unwrap()
    }

    /// Starts it expecting it to refuse; returns what it said.
    fn refused(&mut self, extra: &[&str]) -> String {
        let (mut cmd, log) = self.command(extra);
        let mut child = cmd.spawn().unwrap();
        let status = wait_exit(&mut child, Duration::from_secs(20));
        if status.is_none() {
            let _ = child.kill();
        }
        assert!(status.is_some_and(|s| !s.success()), "it refuses to start");
        std::fs::read_to_string(&log).unwrap()
    }

    fn stop(&mut self) {
        let mut c = self.child.take().unwrap();
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        assert!(wait_exit(&mut c, Duration::from_secs(15)).is_some());
    }

    /// `kiln jobs` against `url`, trusting `ca` if given, else only what
    /// is stored under this process's config home.
    fn jobs(&self, url: &str, ca: Option<&Path>) -> Output {
        let mut cmd = Command::new(kiln_bin());
        cmd.args(["jobs", "--all"])
            .env("KILN_SERVER", url)
            .env("XDG_CONFIG_HOME", config_home())
            .env("KILN_TOKEN", common::admin_token(&self.path("data")))
            .env_remove("KILN_CA")
            .stdin(Stdio::null());
        if let Some(ca) = ca {
            cmd.env("KILN_CA", ca);
        }
        cmd.output().unwrap()
    }

    fn jobs_ok(&self, url: &str, ca: Option<&Path>) {
        let out = self.jobs(url, ca);
        assert!(
            out.status.success(),
            "kiln jobs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The fingerprint the server logged for what clients trust.
fn logged_fingerprint(log: &str) -> String {
    let at = log.find("(fingerprint ").expect("the server logs it");
    log[at + 13..].split(')').next().unwrap().to_string()
}

#[test]
fn a_client_fetches_the_servers_ca_and_trusts_it_from_then_on() {
    let mut server = Server::new();
    let log = server.start(&[]);
    let url = server.url("127.0.0.1");
    let ca = std::fs::read(server.path("data/ca.pem")).unwrap();

    let got = fetch(&url).unwrap();
    assert_eq!(
        String::from_utf8(got.pem.clone()).unwrap(),
        String::from_utf8(ca.clone()).unwrap(),
        "the CA, not the server's own certificate"
    );
    assert_eq!(got.fingerprint, logged_fingerprint(&log));
    assert!(same_fingerprint(
        &got.fingerprint[7..].to_lowercase().replace(':', ""),
        &logged_fingerprint(&log)
    ));
    assert_eq!(got.subject, "CN=Kiln server CA");

    // Not trusted until stored; then trusted, without --ca.
    let out = server.jobs(&url, None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not trusted"), "{err}");
    let file = save_trusted_ca(&url, &got.pem).unwrap();
    assert_eq!(Some(file.clone()), pinned_ca_path(&url));
    assert_eq!(
        file,
        config_home().join(format!("kiln/ca/127.0.0.1_{}.pem", server.port))
    );
    assert_eq!(std::fs::read(&file).unwrap(), ca);
    server.jobs_ok(&url, None);

    // Nothing listens there: never reached.
    match fetch(&format!("https://127.0.0.1:{}", free_port())) {
        Err(kiln_proto::Error::Unreached(m)) => {
            assert!(m.contains("cannot reach the server"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_server_certificate_about_to_run_out_is_made_again_from_the_same_ca() {
    let mut server = Server::new();
    let log = server.start(&[]);
    let fp = logged_fingerprint(&log);
    server.stop();

    // Its certificate has ten days left.
    let data = server.path("data");
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(data.join("ca.key")).unwrap()).unwrap();
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "Kiln server CA");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    valid(&mut p, now() - 387 * DAY, now() + 10 * DAY);
    let old = p.signed_by(&key, &issuer).unwrap().pem();
    std::fs::write(data.join("server.pem"), &old).unwrap();
    std::fs::write(data.join("server.key"), key.serialize_pem()).unwrap();
    let url = server.url("127.0.0.1");
    let ca = data.join("ca.pem");

    let log = server.start(&[]);
    assert!(
        log.contains("made a server certificate from the CA, valid until")
            && log.contains("the old one expires on"),
        "{log}"
    );
    let new = std::fs::read_to_string(data.join("server.pem")).unwrap();
    assert_ne!(new, old);
    let der = &pem_certificates(new.as_bytes(), "server.pem").unwrap()[0];
    let left = cert_info(der).unwrap().not_after - now();
    assert!((396 * DAY..=397 * DAY).contains(&left), "{left}");
    assert_eq!(logged_fingerprint(&log), fp, "the same CA");
    server.jobs_ok(&url, Some(&ca));
    server.jobs_ok(&server.url("localhost"), Some(&ca));
    assert_eq!(fetch(&url).unwrap().fingerprint, fp);
}

#[test]
fn a_ca_about_to_run_out_is_warned_about() {
    let mut server = Server::new();
    // A CA of the server's own, but with sixty days left.
    let data = server.path("data");
    std::fs::create_dir_all(&data).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "Kiln server CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    valid(&mut p, now() - 3000 * DAY, now() + 60 * DAY);
    std::fs::write(data.join("ca.pem"), p.self_signed(&key).unwrap().pem()).unwrap();
    std::fs::write(data.join("ca.key"), key.serialize_pem()).unwrap();

    let log = server.start(&[]);
    assert!(
        log.contains("WARN")
            && log.contains(&format!(
                "the server's CA {}",
                data.join("ca.pem").display()
            ))
            && log.contains("expires on")
            && log.contains("move ca.pem and ca.key aside"),
        "{log}"
    );
    server.jobs_ok(&server.url("127.0.0.1"), Some(&data.join("ca.pem")));
}

#[test]
fn an_administrators_certificate_is_fetched_and_refused_once_it_has_run_out() {
    let mut server = Server::new();
    let cert_for = |from: i64, to: i64| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        valid(&mut p, from, to);
        (p.self_signed(&key).unwrap().pem(), key.serialize_pem())
    };
    let dir = server.dir.path().to_path_buf();
    let files = |name: &str, (cert, key): (String, String)| {
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c.display().to_string(), k.display().to_string())
    };

    // Twenty days left: it serves, and warns.
    let (crt, key) = files("soon", cert_for(now() - DAY, now() + 20 * DAY));
    let log = server.start(&["--tls-cert", &crt, "--tls-key", &key]);
    assert!(
        log.contains(&format!("the TLS certificate {crt} expires on"))
            && log.contains(" days: renew it"),
        "{log}"
    );
    let got = fetch(&server.url("localhost")).unwrap();
    assert_eq!(
        got.pem,
        std::fs::read(&crt).unwrap(),
        "a self-signed one: itself"
    );
    assert_eq!(got.fingerprint, logged_fingerprint(&log));
    server.stop();

    // Run out yesterday: refused, saying so.
    let (crt, key) = files("old", cert_for(now() - 30 * DAY, now() - DAY));
    let err = server.refused(&["--tls-cert", &crt, "--tls-key", &key]);
    assert!(
        err.contains(&format!("{crt}: the certificate expired on")) && err.contains("renew it"),
        "{err}"
    );
}

#[test]
fn a_plaintext_server_has_no_certificate_to_fetch() {
    let mut server = Server::new();
    server.start(&["--plaintext"]);
    match fetch(&server.url("127.0.0.1")) {
        Err(kiln_proto::Error::Unavailable(m)) => assert!(m.contains("plaintext"), "{m}"),
        other => panic!("{other:?}"),
    }
}
