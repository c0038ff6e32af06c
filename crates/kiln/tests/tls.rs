//! TLS end to end with the real binary: a server with a CA of its own, or
//! the administrator's certificate; clients and workers that trust it, and
//! those that do not; plaintext only on loopback.

mod common;

use common::{free_port, kiln_bin, one_layer, wait_exit, wait_until};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A TLS server (and its workers) in a temporary directory.
struct TlsFarm {
    dir: tempfile::TempDir,
    port: u16,
    children: Vec<Child>,
}

impl Drop for TlsFarm {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl TlsFarm {
    fn new() -> TlsFarm {
        TlsFarm {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            children: vec![],
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.port)
    }

    /// Starts the server with `extra` flags; returns the name of its log.
    fn server(&mut self, extra: &[&str]) -> PathBuf {
        let log = self.path(&format!("server-{}.log", self.children.len()));
        let child = Command::new(kiln_bin())
            .args(["server", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data")
            .arg(self.path("data"))
            .args(extra)
            .env("KILN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        self.children.push(child);
        wait_until(Duration::from_secs(20), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("kiln server ready"))
        });
        log
    }

    fn stop_server(&mut self) {
        let mut c = self.children.remove(0);
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        assert!(wait_exit(&mut c, Duration::from_secs(15)).is_some());
    }

    /// The CLI against `url`, trusting `ca` if given, with a home of its
    /// own (no CA stored by `kiln login`).
    fn cli(&self, url: &str, ca: Option<&Path>, args: &[&str]) -> Output {
        let mut cmd = Command::new(kiln_bin());
        cmd.args(args)
            .env("KILN_SERVER", url)
            .env_remove("KILN_CA")
            .env_remove("XDG_CONFIG_HOME")
            .env("HOME", self.path("home"))
            .env_remove("KILN_TOKEN")
            .stdin(Stdio::null());
        // As the server's first admin, once it has one.
        if let Ok(t) = std::fs::read_to_string(self.path("data/admin.token")) {
            cmd.env("KILN_TOKEN", t.trim());
        }
        if let Some(ca) = ca {
            cmd.env("KILN_CA", ca);
        }
        cmd.output().unwrap()
    }

    fn ok(&self, url: &str, ca: &Path, args: &[&str]) -> String {
        let out = self.cli(url, Some(ca), args);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "kiln {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    fn jobs(&self, url: &str, ca: &Path) -> Vec<Value> {
        let out = self.ok(url, ca, &["jobs", "--all", "--json"]);
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// The fingerprint the server logged for its CA.
fn fingerprint(log: &Path) -> String {
    let log = std::fs::read_to_string(log).unwrap();
    let at = log
        .find("fingerprint SHA256:")
        .expect("the server logs its CA");
    log[at + 12..].split(')').next().unwrap().to_string()
}

#[test]
fn a_server_with_its_own_ca_serves_clients_and_workers_that_trust_it_only() {
    let mut farm = TlsFarm::new();
    let log = farm.server(&[]);
    let data = farm.path("data");
    let ca = data.join("ca.pem");
    for (f, mode) in [("ca.key", 0o600), ("server.key", 0o600), ("ca.pem", 0o644)] {
        let m = std::fs::metadata(data.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o777, mode, "{f}");
    }
    let fp = fingerprint(&log);
    assert!(
        fp.starts_with("SHA256:") && fp.len() == 7 + 32 * 3 - 1,
        "{fp}"
    );
    let url = farm.url("127.0.0.1");

    // Without the CA: refused, saying what to do, and nothing submitted.
    let spec = farm.path("job.yaml");
    let marks = farm.path("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let cmd = format!("set -C; echo x > {}/$KILN_FRAME", marks.display());
    std::fs::write(&spec, one_layer("tls", &cmd, "1-4")).unwrap();
    let spec = spec.to_str().unwrap();
    let out = farm.cli(&url, None, &["submit", spec]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("the server's certificate is not trusted: pass --ca FILE")
            && err.contains(&format!("kiln login {url}")),
        "{err}"
    );
    assert!(farm.jobs(&url, &ca).is_empty(), "nothing was submitted");

    // With it: a worker runs the job's frames, each once.
    let out = farm.ok(&url, &ca, &["submit", spec, "--json"]);
    let job: Value = serde_json::from_str(&out).unwrap();
    let join = farm.ok(&url, &ca, &["token", "create", "--worker"]);
    let w = Command::new(kiln_bin())
        .args(["worker", "--server", &url, "--name", "w0", "--ca"])
        .arg(&ca)
        .args(["--join", join.trim()])
        .args([
            "--allow-root",
            "--run-as-self",
            "--cores",
            "2",
            "--memory",
            "8G",
            "--work-dir",
        ])
        .arg(farm.path("work"))
        .env("KILN_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(farm.path("worker.log")).unwrap())
        .spawn()
        .unwrap();
    farm.children.push(w);
    let done = || {
        farm.jobs(&url, &ca)
            .iter()
            .any(|j| j["id"] == job["id"] && j["status"] == "FINISHED")
    };
    wait_until(Duration::from_secs(30), done);
    for n in 1..=4 {
        assert!(marks.join(n.to_string()).exists(), "frame {n} ran");
    }
    assert_eq!(std::fs::read_dir(&marks).unwrap().count(), 4);

    // A restarted server keeps its CA: the client goes on trusting it.
    farm.stop_server();
    let log = farm.server(&[]);
    assert_eq!(fingerprint(&log), fp, "the CA survives a restart");
    assert_eq!(farm.jobs(&url, &ca).len(), 1);
    // localhost is one of the certificate's names too.
    assert_eq!(farm.jobs(&farm.url("localhost"), &ca).len(), 1);
}

#[test]
fn plaintext_is_for_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    for (args, what) in [
        (["server", "--plaintext"].as_slice(), "--plaintext"),
        (["up"].as_slice(), "kiln up"),
    ] {
        let out = Command::new(kiln_bin())
            .args(args)
            .arg("--listen")
            .arg(format!("0.0.0.0:{}", free_port()))
            .arg("--data")
            .arg(dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{what}: the server listens on 0.0.0.0"))
                && err.contains("plaintext is only for loopback"),
            "{err}"
        );
        assert!(!dir.path().join("kiln.db").exists(), "it did not start");
    }

    // The client refuses http:// to another machine before connecting.
    let fix = "plaintext is only for loopback; use https://10.255.255.1:7676";
    let out = Command::new(kiln_bin())
        .args(["--server", "http://10.255.255.1:7676", "jobs"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains(fix), "{}", stderr(&out));
    let mut worker = Command::new(kiln_bin())
        .args([
            "worker",
            "--server",
            "http://10.255.255.1:7676",
            "--work-dir",
        ])
        .arg(dir.path().join("work"))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut worker, Duration::from_secs(10));
    if status.is_none() {
        let _ = worker.kill();
    }
    let out = worker.wait_with_output().unwrap();
    assert!(status.is_some_and(|s| !s.success()), "the worker exits");
    assert!(stderr(&out).contains(fix), "{}", stderr(&out));
}

#[test]
fn the_administrators_certificate_is_used_and_names_are_checked() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut farm = TlsFarm::new();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let (ca, crt, k) = (
        farm.path("studio-ca.pem"),
        farm.path("farm.pem"),
        farm.path("farm.key"),
    );
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    std::fs::write(&crt, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    farm.server(&[
        "--tls-cert",
        crt.to_str().unwrap(),
        "--tls-key",
        k.to_str().unwrap(),
    ]);
    assert!(
        !farm.path("data/ca.pem").exists(),
        "no CA of its own is made"
    );
    assert!(farm.jobs(&farm.url("localhost"), &ca).is_empty());

    // 127.0.0.1 is not among the certificate's names.
    let out = farm.cli(&farm.url("127.0.0.1"), Some(&ca), &["jobs"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the server's certificate is not valid for the name"),
        "{}",
        stderr(&out)
    );
    // Its own CA is not the one this server's certificate comes from.
    let out = farm.cli(&farm.url("localhost"), None, &["jobs"]);
    assert!(stderr(&out).contains("is not trusted"), "{}", stderr(&out));
}
