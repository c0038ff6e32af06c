//! A real farm for end-to-end tests: the `kiln` binary as server and
//! workers on 127.0.0.1, random ports, temporary data directories.

#![allow(dead_code)]

pub mod slapd;

use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Skips a test this machine cannot run (no root, no cgroups, no tmpfs)
/// with a line saying why; under CI (`CI` set), where every test must run
/// for real, fails instead.
pub fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run this test for real, but {why}"
    );
    eprintln!("skipped: {why}");
}

pub fn kiln_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kiln")
}

/// A port no one listens on now, from the OS.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The admin token (and, over TLS, the CA file) of each server these tests
/// started, by URL.
static TOKENS: std::sync::Mutex<Vec<(String, String, Option<PathBuf>)>> =
    std::sync::Mutex::new(Vec::new());

/// Makes [`cli`] present `token` to the server at `url`, trusting `ca`.
pub fn register_server(url: &str, token: &str, ca: Option<PathBuf>) {
    let mut t = TOKENS.lock().unwrap();
    t.retain(|(u, ..)| u != url);
    t.push((url.to_string(), token.trim().to_string(), ca));
}

pub fn token_for(url: &str) -> Option<String> {
    let t = TOKENS.lock().unwrap();
    t.iter().find(|(u, ..)| u == url).map(|(_, t, _)| t.clone())
}

fn ca_for(url: &str) -> Option<PathBuf> {
    let t = TOKENS.lock().unwrap();
    t.iter()
        .find(|(u, ..)| u == url)
        .and_then(|(.., c)| c.clone())
}

/// The first admin's token, if the server has written it.
fn read_token(data: &Path) -> Option<String> {
    let t = std::fs::read_to_string(data.join("admin.token")).ok()?;
    Some(t.trim().to_string()).filter(|t| !t.is_empty())
}

/// Reads the first admin's token from a server's data directory, waiting
/// for the server to write it.
pub fn admin_token(data: &Path) -> String {
    let file = data.join("admin.token");
    let start = Instant::now();
    loop {
        if let Some(t) = read_token(data) {
            return t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no {} after 20 s",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `kiln` CLI with `args`, talking to the server at `url` as its admin
/// (when the server is one these tests started), reading nothing.
pub fn cli(url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(kiln_bin());
    cmd.args(args).env("KILN_SERVER", url).stdin(Stdio::null());
    match token_for(url) {
        Some(t) => cmd.env("KILN_TOKEN", t),
        None => cmd.env_remove("KILN_TOKEN"),
    };
    match ca_for(url) {
        Some(ca) => cmd.env("KILN_CA", ca),
        None => cmd.env_remove("KILN_CA"),
    };
    cmd
}

/// Waits for `child` to exit, at most `timeout`; `None` if it still runs
/// (it is left running: the caller decides what that means).
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A spec of one layer `a`: `command` (single-quoted YAML) on `frames`.
pub fn one_layer(name: &str, command: &str, frames: &str) -> String {
    format!("name: {name}\nlayers:\n  - name: a\n    command: '{command}'\n    frames: {frames}\n")
}

pub struct Farm {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub server: Option<Child>,
    pub workers: Vec<Child>,
    down_after: String,
    /// A join token for this farm's workers, made on first need.
    join: Option<String>,
    /// The server speaks TLS with its own CA (clients trust data/ca.pem).
    pub tls: bool,
}

impl Farm {
    /// A server and `workers` workers of `cores` cores each.
    pub fn start(workers: usize, cores: u32) -> Farm {
        Farm::start_with(workers, cores, "60s")
    }

    pub fn start_with(workers: usize, cores: u32, down_after: &str) -> Farm {
        Farm::start_on(free_port(), workers, cores, down_after)
    }

    /// [`Farm::start_with`] on `port`, if it is free when the server binds.
    pub fn start_on(port: u16, workers: usize, cores: u32, down_after: &str) -> Farm {
        let mut farm = Farm {
            dir: tempfile::tempdir().unwrap(),
            port,
            server: None,
            workers: Vec::new(),
            down_after: down_after.to_string(),
            join: None,
            tls: false,
        };
        farm.start_server();
        for i in 0..workers {
            farm.add_worker(&format!("w{i}"), cores);
        }
        farm.wait_hosts(workers);
        farm
    }

    /// A server over TLS with a CA of its own, and `workers` workers.
    pub fn start_tls(workers: usize, cores: u32) -> Farm {
        Farm::start_tls_with(workers, cores, &[])
    }

    /// [`Farm::start_tls`] with `extra` arguments to `kiln server`.
    pub fn start_tls_with(workers: usize, cores: u32, extra: &[&str]) -> Farm {
        Farm::start_tls_down(workers, cores, "60s", extra)
    }

    /// [`Farm::start_tls_with`], hosts down after `down_after` of silence
    /// (and heartbeats a sixth of that apart).
    pub fn start_tls_down(workers: usize, cores: u32, down_after: &str, extra: &[&str]) -> Farm {
        let mut farm = Farm {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            server: None,
            workers: Vec::new(),
            down_after: down_after.into(),
            join: None,
            tls: true,
        };
        farm.start_server_with(extra, None);
        for i in 0..workers {
            farm.add_worker(&format!("w{i}"), cores);
        }
        farm.wait_hosts(workers);
        farm
    }

    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.port)
        } else {
            format!("http://127.0.0.1:{}", self.port)
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn start_server(&mut self) {
        self.start_server_with(&[], None);
    }

    /// The server with `extra` arguments and, if given, a hard and soft
    /// limit on its open files.
    pub fn start_server_with(&mut self, extra: &[&str], nofile: Option<u64>) {
        // A first start's port was free when picked, but a test running
        // beside this one (a directory server, another farm) may take it
        // before the server binds: then pick another. A restart keeps its
        // port: workers and pinned CAs know it.
        let first = !self.path("data").exists();
        for _ in 0..5 {
            let log = self.path(&format!("server-{}.log", now_ms()));
            self.spawn_server(extra, nofile, &log);
            let child = self.server.as_mut().unwrap();
            let start = Instant::now();
            let token = loop {
                if let Some(t) = read_token(&self.dir.path().join("data")) {
                    break Some(t);
                }
                if let Some(status) = child.try_wait().unwrap() {
                    let text = read(&log);
                    assert!(
                        first && text.contains("cannot listen on"),
                        "the server exited ({status}) before it was ready:\n{text}"
                    );
                    break None;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "no admin.token after 20 s:\n{}",
                    read(&log)
                );
                std::thread::sleep(Duration::from_millis(20));
            };
            match token {
                Some(t) => {
                    let ca = self.tls.then(|| self.path("data/ca.pem"));
                    register_server(&self.url(), &t, ca);
                    wait_until(Duration::from_secs(20), || {
                        self.try_kiln(&["hosts", "--json"]).status.success()
                    });
                    return;
                }
                None => self.port = free_port(),
            }
        }
        panic!("no free port the server could listen on after 5 tries");
    }

    fn spawn_server(&mut self, extra: &[&str], nofile: Option<u64>, log: &Path) {
        let log = std::fs::File::create(log).unwrap();
        let mut cmd = Command::new(kiln_bin());
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let r = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd
            .args([
                "server",
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--down-after",
            ])
            .arg(&self.down_after)
            .args((!self.tls).then_some("--plaintext"))
            .arg("--data")
            .arg(self.path("data"))
            .args(extra)
            .env("KILN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn kiln server");
        self.server = Some(child);
    }

    /// SIGKILLs the server: no chance to flush or say goodbye.
    pub fn kill_server(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.kill().unwrap();
            s.wait().unwrap();
        }
    }

    /// SIGTERMs the server and returns how long it took to exit.
    pub fn term_server(&mut self) -> Duration {
        let mut s = self.server.take().expect("server running");
        let start = Instant::now();
        unsafe { libc::kill(s.id() as i32, libc::SIGTERM) };
        assert!(
            wait_exit(&mut s, Duration::from_secs(20)).is_some(),
            "server ignored SIGTERM"
        );
        start.elapsed()
    }

    /// Everything the farm's servers have logged, in the order they started.
    pub fn server_log(&self) -> String {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("server-"))
            })
            .collect();
        logs.sort();
        logs.iter().map(|p| read(p)).collect()
    }

    /// A worker that runs frames as its own account (root, in these tests)
    /// whoever submitted them: the harness submits as the first admin,
    /// who has no account on this machine.
    pub fn add_worker(&mut self, name: &str, cores: u32) {
        self.add_worker_with(name, cores, &["--allow-root", "--run-as-self"]);
    }

    /// A join token for this farm's workers (many uses, a week).
    pub fn join_token(&mut self) -> String {
        if let Some(t) = &self.join {
            return t.clone();
        }
        let out = self.kiln(&[
            "token",
            "create",
            "--worker",
            "--name",
            "harness",
            "--expires",
            "7d",
        ]);
        let token = out.trim().to_string();
        assert!(token.starts_with("kiln_join_"), "no join token: {out}");
        self.join = Some(token.clone());
        token
    }

    pub fn add_worker_with(&mut self, name: &str, cores: u32, extra: &[&str]) {
        self.add_worker_env(name, cores, extra, &[]);
    }

    /// A worker with `extra` arguments and `env` set in its environment.
    pub fn add_worker_env(&mut self, name: &str, cores: u32, extra: &[&str], env: &[(&str, &str)]) {
        let join = self.join_token();
        let log = std::fs::File::create(self.path(&format!("worker-{name}.log"))).unwrap();
        let mut cmd = Command::new(kiln_bin());
        cmd.env_remove("KILN_CA");
        if self.tls {
            cmd.env("KILN_CA", self.path("data/ca.pem"));
        }
        let child = cmd
            .args(["worker", "--server", &self.url(), "--name", name])
            .args(["--join", &join])
            .envs(env.iter().copied())
            .args(extra)
            .args([
                "--cores",
                &cores.to_string(),
                "--memory",
                "8G",
                "--work-dir",
            ])
            .arg(self.path(&format!("work-{name}")))
            .env("KILN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn kiln worker");
        self.workers.push(child);
    }

    pub fn wait_hosts(&self, n: usize) {
        wait_until(Duration::from_secs(20), || {
            self.json(&["hosts"])
                .as_array()
                .is_some_and(|h| h.iter().filter(|h| h["state"] == "UP").count() >= n)
        });
    }

    pub fn try_kiln(&self, args: &[&str]) -> Output {
        cli(&self.url(), args).output().expect("run kiln")
    }

    /// The CLI as whoever holds `token` (`None`: no token at all, and no
    /// home with a stored one).
    pub fn kiln_as(&self, token: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = cli(&self.url(), args);
        cmd.env("HOME", self.path("nohome"))
            .env_remove("XDG_CONFIG_HOME");
        match token {
            Some(t) => cmd.env("KILN_TOKEN", t),
            None => cmd.env_remove("KILN_TOKEN"),
        };
        cmd.output().expect("run kiln")
    }

    /// A user with `grants` (`role` or `role@show`) and an API token; returns
    /// the token.
    pub fn user(&self, name: &str, grants: &[&str]) -> String {
        self.kiln(&["user", "create", name]);
        for g in grants {
            match g.split_once('@') {
                Some((role, show)) => self.kiln(&["grant", role, name, "--show", show]),
                None => self.kiln(&["grant", g, name]),
            };
        }
        let out = self.kiln(&["token", "create", "--user", name, "--name", "test"]);
        let token = out.trim().to_string();
        assert!(token.starts_with("kiln_api_"), "{out}");
        token
    }

    /// Runs a CLI command that must fail; returns its stderr.
    pub fn kiln_fails(&self, args: &[&str]) -> String {
        let out = self.try_kiln(args);
        assert!(!out.status.success(), "kiln {args:?} should have failed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub fn kiln(&self, args: &[&str]) -> String {
        let out = self.try_kiln(args);
        assert!(
            out.status.success(),
            "kiln {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.try_kiln(&a);
        if !out.status.success() {
            return Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Writes a spec into `<name>.yaml` in the farm's directory; returns its path.
    pub fn write_spec(&self, name: &str, spec: impl AsRef<[u8]>) -> String {
        let path = self.path(&format!("{name}.yaml"));
        std::fs::write(&path, spec).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// Writes a spec into the farm's directory and submits it; returns the job id.
    pub fn submit(&self, name: &str, yaml: &str) -> String {
        let path = self.write_spec(name, yaml);
        let v: Value = serde_json::from_str(&self.kiln(&["submit", &path, "--json"])).unwrap();
        v["id"].to_string()
    }

    /// The pids of the farm's frame supervisors (`kiln frame-shim`) alive now.
    pub fn supervisors(&self) -> Vec<i32> {
        let out = Command::new("pgrep")
            .args([
                "-f",
                &format!("frame-shim state={}", self.path("").display()),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    pub fn job_status(&self, job: &str) -> String {
        self.json(&["job", job])["job"]["status"]
            .as_str()
            .unwrap_or("?")
            .to_string()
    }

    pub fn wait_status(&self, job: &str, status: &str, timeout: Duration) {
        wait_until(timeout, || self.job_status(job) == status);
    }

    pub fn frames(&self, job: &str) -> Vec<Value> {
        self.json(&["frames", job])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        // SIGTERM first: a SIGKILLed worker's frames would run on under
        // their supervisors until its lease ran out, past this test.
        for w in &mut self.workers {
            // Only a child not reaped yet: a reaped one's pid may be reused.
            if matches!(w.try_wait(), Ok(None)) {
                unsafe { libc::kill(w.id() as i32, libc::SIGTERM) };
            }
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5)
            && self
                .workers
                .iter_mut()
                .any(|w| w.try_wait().ok().flatten().is_none())
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        for w in &mut self.workers {
            let _ = w.kill();
            let _ = w.wait();
        }
        self.kill_server();
        if std::thread::panicking() {
            // Keep the evidence: print the daemons' logs.
            for entry in std::fs::read_dir(self.dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let p = entry.path();
                if p.extension().is_some_and(|e| e == "log") {
                    eprintln!(
                        "==== {}\n{}",
                        p.display(),
                        std::fs::read_to_string(&p).unwrap_or_default()
                    );
                }
            }
        }
    }
}

pub fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < timeout,
            "condition not met within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// A `kiln fleet` process: simulated hosts of the farm. Its stdout (the
/// summary) is captured; its stderr goes to `fleet-<prefix>.log`.
pub struct Fleet {
    child: Option<Child>,
}

impl Fleet {
    pub fn start(farm: &Farm, args: &[&str]) -> Fleet {
        let log = std::fs::File::create(farm.path(&format!("fleet-{}.log", now_ms()))).unwrap();
        let child = cli(&farm.url(), &[&["fleet"], args].concat())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn kiln fleet");
        Fleet { child: Some(child) }
    }

    /// Waits for the fleet to exit on its own.
    pub fn wait(mut self, timeout: Duration) -> Output {
        let mut child = self.child.take().unwrap();
        if wait_exit(&mut child, timeout).is_none() {
            let _ = child.kill();
            panic!("kiln fleet still running after {timeout:?}");
        }
        child.wait_with_output().unwrap()
    }

    /// SIGTERM: the fleet says goodbye, prints its summary and exits.
    pub fn term(self, timeout: Duration) -> Output {
        let id = self.child.as_ref().unwrap().id();
        unsafe { libc::kill(id as i32, libc::SIGTERM) };
        self.wait(timeout)
    }

    /// SIGKILL: the hosts vanish without a word.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
