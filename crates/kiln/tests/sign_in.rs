//! Signing in as a person does, with the real binary over TLS: trusting a
//! server's CA on first use (`kiln login`, `kiln worker --fingerprint`),
//! and a password checked by a real LDAP directory.

mod common;

use common::slapd::Slapd;
use common::{kiln_bin, wait_until, Farm};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The CLI for `farm` as someone with a fresh home: no stored token, no
/// stored CA, no `KILN_CA`.
fn fresh(farm: &Farm, home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(kiln_bin());
    cmd.args(args)
        .env("KILN_SERVER", farm.url())
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("KILN_TOKEN")
        .env_remove("KILN_CA")
        .stdin(Stdio::null());
    cmd
}

fn with_stdin(mut cmd: Command, input: &str) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut c = cmd.spawn().unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    c.wait_with_output().unwrap()
}

/// The CA fingerprint `kiln server` printed at start.
fn printed_fingerprint(farm: &Farm) -> String {
    let log = farm.server_log();
    let at = log.find("(fingerprint ").expect("the server prints it");
    log[at + 13..].split(')').next().unwrap().to_string()
}

#[test]
fn login_trusts_the_ca_on_first_use_and_a_worker_pins_it_at_join() {
    let mut farm = Farm::start_tls(0, 1);
    let fp = printed_fingerprint(&farm);
    assert!(fp.starts_with("SHA256:"), "{fp}");
    let home = farm.path("home-erin");
    let token = farm.user("erin", &["admin"]);
    let pinned = home.join(format!(".config/kiln/ca/localhost_{}.pem", farm.port));

    // Not a terminal and no fingerprint given: it shows the fingerprint,
    // trusts nothing and sends no token.
    let out = fresh(&farm, &home, &["login", "--with-token", &token])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains(&fp) && t.contains("--fingerprint"), "{t}");
    assert!(!pinned.exists() && !home.join(".config/kiln/tokens").exists());

    // The wrong fingerprint: refused, nothing stored.
    let wrong = format!("SHA256:{}", "00:".repeat(31) + "00");
    let out = fresh(
        &farm,
        &home,
        &["login", "--with-token", &token, "--fingerprint", &wrong],
    )
    .output()
    .unwrap();
    assert!(!out.status.success() && text(&out).contains("not the server's"));
    assert!(!pinned.exists());

    // At a terminal (`script` gives it one), answering no: nothing stored
    // either.
    let at_tty = |answer: &str| {
        let line = format!("{} login --with-token {token}", kiln_bin());
        let mut cmd = fresh(&farm, &home, &[]);
        let mut c = Command::new("script");
        c.args(["-qec", &line, "/dev/null"]);
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        cmd = c;
        with_stdin(cmd, &format!("{answer}\n"))
    };
    let out = at_tty("n");
    let t = text(&out);
    assert!(
        t.contains(&fp) && t.contains("Trust it from now on?"),
        "{t}"
    );
    assert!(t.contains("not trusted"), "{t}");
    assert!(!pinned.exists());
    // Answering yes: the CA and the token are kept, and later commands
    // need neither --ca nor --token.
    let t = text(&at_tty("y"));
    assert!(t.contains("logged in to") && t.contains("as erin"), "{t}");
    assert_eq!(
        std::fs::read(&pinned).unwrap(),
        std::fs::read(farm.path("data/ca.pem")).unwrap()
    );
    let out = fresh(&farm, &home, &["whoami"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("erin: admin"));

    // A join token's instructions carry the fingerprint; a worker given it
    // (and no CA file) trusts the server, keeps the CA, and comes back
    // after a restart with neither.
    let out = fresh(
        &farm,
        &home,
        &["token", "create", "--worker", "--name", "rack"],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    let join = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        t.contains(&format!("--join {join} --fingerprint {fp}")),
        "{t}"
    );

    let worker = |extra: &[&str]| {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(farm.path("worker-pinned.log"))
            .unwrap();
        let mut cmd = fresh(&farm, &home, &[]);
        cmd.args(["worker", "--server", &farm.url(), "--name", "pinned"])
            .args(["--allow-root", "--run-as-self", "--cores", "1"])
            .args(["--memory", "1G", "--work-dir"])
            .arg(farm.path("work-pinned"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log);
        cmd
    };
    let out = worker(&["--join", &join, "--fingerprint", &wrong])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("nothing was trusted"), "{}", text(&out));

    let mut w = worker(&["--join", &join, "--fingerprint", &fp])
        .spawn()
        .unwrap();
    farm.wait_hosts(1);
    w.kill().unwrap();
    w.wait().unwrap();
    let log = farm.path("worker-pinned.log");
    let connected = || common::read(&log).matches(" connected").count();
    assert_eq!(connected(), 1, "{}", common::read(&log));
    farm.workers.push(worker(&[]).spawn().unwrap());
    wait_until(Duration::from_secs(20), || connected() == 2);
    farm.wait_hosts(1);
}

#[test]
fn an_ldap_user_signs_in_with_the_directorys_password_and_gets_its_groups_roles() {
    let users = [("alice", "alice-secret"), ("carol", "carol-secret")];
    let groups: [(&str, &[&str]); 2] = [("artists", &["alice"]), ("lighting", &["carol"])];
    let Some(dir) = Slapd::start(&users, &groups) else {
        common::skip("/usr/sbin/slapd is not installed (Debian package slapd)");
        return;
    };
    let (url, user_dn, base) = (dir.url(), dir.user_dn_template(), dir.group_base());
    let farm = Farm::start_tls_with(
        1,
        1,
        &[
            "--ldap-url",
            &url,
            "--ldap-user-dn",
            &user_dn,
            "--ldap-group-base",
            &base,
            "--ldap-role",
            "artist:demo=artists",
        ],
    );
    let home = farm.path("home-alice");
    let login = |user: &str, pw: &str| {
        let mut cmd = fresh(&farm, &home, &["login", "--user", user, "--password-stdin"]);
        cmd.env("KILN_CA", farm.path("data/ca.pem"));
        with_stdin(cmd, &format!("{pw}\n"))
    };

    let out = login("alice", "not her password");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("wrong user name or password"),
        "{}",
        text(&out)
    );
    let out = login("alice", "alice-secret");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("as alice (artist of demo)"),
        "{}",
        text(&out)
    );

    // The kept token works for what an artist of demo may do, and only that.
    let me = fresh(&farm, &home, &["whoami", "--json"])
        .env("KILN_CA", farm.path("data/ca.pem"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&me.stdout).unwrap();
    assert_eq!(v["user"], "alice");
    assert_eq!(v["source"], "ldap", "{v}");
    let spec = farm.write_spec(
        "lit",
        "name: lit\nshow: demo\nlayers:\n  - name: a\n    command: 'true'\n    frames: 1-2\n",
    );
    let mut submit = fresh(&farm, &home, &["submit", &spec]);
    submit.env("KILN_CA", farm.path("data/ca.pem"));
    let out = submit.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // carol is in no mapped group: she signs in, with no role at all.
    let out = login("carol", "carol-secret");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("as carol (no role)"), "{}", text(&out));

    let audit = farm.json(&["audit", "--user", "alice"]);
    let outcomes: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "login")
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"ok"), "{audit}");
    assert!(outcomes.iter().any(|o| o.starts_with("denied:")), "{audit}");

    // The directory gone: a clear error, not "wrong password".
    drop(dir);
    let out = login("alice", "alice-secret");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("cannot check the password with the directory"),
        "{}",
        text(&out)
    );
}
