//! Identity end to end over TLS with the real binary: sign-in, roles per
//! show, tokens revoked at once, impersonation, hidden secrets, enrolled
//! workers (joins, spent and expired tokens, impostors) and the audit
//! trail that records all of it.

mod common;

use common::{kiln_bin, wait_exit, wait_until, Farm};
use serde_json::Value;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn refused(o: Output) -> String {
    assert!(
        !o.status.success(),
        "should have been refused: {}",
        text(&o)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The audit trail as JSON, newest first.
fn audit(farm: &Farm) -> Vec<Value> {
    farm.json(&["audit", "--limit", "1000"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn audited(farm: &Farm, who: &str, action: &str, outcome: &str) -> bool {
    audit(farm).iter().any(|r| {
        r["who"] == who
            && r["action"] == action
            && r["outcome"]
                .as_str()
                .is_some_and(|o| o.starts_with(outcome))
    })
}

#[test]
fn roles_per_show_decide_who_may_act_and_the_audit_says_so() {
    let farm = Farm::start_tls(1, 2);
    let bob = farm.user("bob", &["artist"]);
    let alice = farm.user("alice", &["artist"]);
    let carol = farm.user("carol", &["wrangler@demo"]);
    let spec = farm.write_spec(
        "bobs",
        "name: bobs\nshow: demo\nenv: {DB_PASSWORD: hunter2}\nlayers:\n  - name: a\n    command: 'echo the log of bob; sleep 30'\n    frames: 1-2\n",
    );
    let out = ok(farm.kiln_as(Some(&bob), &["submit", &spec, "--json"]));
    let job = serde_json::from_str::<Value>(&out).unwrap()["id"].to_string();
    let detail = |token: &str| -> Value {
        serde_json::from_str(&ok(farm.kiln_as(Some(token), &["job", &job, "--json"]))).unwrap()
    };
    assert_eq!(detail(&bob)["job"]["user"], "bob", "runs as its submitter");
    // Another artist sees the job, but not its secrets or its log.
    assert_eq!(detail(&alice)["env"]["DB_PASSWORD"], "<hidden>");
    assert_eq!(detail(&bob)["env"]["DB_PASSWORD"], "hunter2");
    assert_eq!(detail(&carol)["env"]["DB_PASSWORD"], "hunter2");
    wait_until(Duration::from_secs(20), || {
        farm.frames(&job).iter().any(|f| f["state"] == "RUNNING")
    });
    let err = refused(farm.kiln_as(Some(&alice), &["log", &job, "a/1"]));
    assert!(err.contains("alice (artist) may not read"), "{err}");

    let err = refused(farm.kiln_as(Some(&alice), &["kill", &job]));
    assert!(
        err.contains(&format!(
            "alice (artist) may not kill job {job} of bob: ask a wrangler of show demo"
        )),
        "{err}"
    );
    assert!(
        farm.frames(&job).iter().all(|f| f["state"] != "DEAD"),
        "a refused kill killed"
    );
    ok(farm.kiln_as(Some(&carol), &["kill", &job]));
    farm.wait_status(&job, "KILLED", Duration::from_secs(20));

    assert!(audited(
        &farm,
        "alice",
        "kill",
        "denied: alice (artist) may not kill"
    ));
    assert!(audited(&farm, "carol", "kill", "ok"));
    assert!(audited(&farm, "bob", "submit", "ok"));
    // The trail is for admins.
    let err = refused(farm.kiln_as(Some(&carol), &["audit"]));
    assert!(
        err.contains("may not read the audit trail: ask an admin"),
        "{err}"
    );
}

#[test]
fn a_revoked_token_or_a_disabled_user_stops_working_at_once() {
    let farm = Farm::start_tls(0, 1);
    let alice = farm.user("alice", &["viewer"]);
    assert!(ok(farm.kiln_as(Some(&alice), &["whoami"])).contains("alice: viewer"));
    let id = alice.split('_').nth(2).unwrap();
    farm.kiln(&["token", "revoke", id]);
    let err = refused(farm.kiln_as(Some(&alice), &["jobs"]));
    assert!(err.contains("not logged in to https://localhost:"), "{err}");

    let bob = farm.user("bob", &["viewer"]);
    ok(farm.kiln_as(Some(&bob), &["hosts"]));
    farm.kiln(&["user", "disable", "bob"]);
    let err = refused(farm.kiln_as(Some(&bob), &["hosts"]));
    assert!(err.contains("user bob is disabled"), "{err}");
    farm.kiln(&["user", "enable", "bob"]);
    ok(farm.kiln_as(Some(&bob), &["hosts"]));

    // No token at all: what to do.
    let err = refused(farm.kiln_as(None, &["jobs"]));
    let url = farm.url();
    assert!(
        err.contains(&format!("not logged in to {url}: run `kiln login {url}`")),
        "{err}"
    );
    assert!(audited(&farm, "admin", "token revoke", "ok"));
}

#[test]
fn impersonation_needs_the_right_and_root_never_runs() {
    let farm = Farm::start_tls(1, 2);
    let alice = farm.user("alice", &["artist"]);
    let svc = farm.user("svc", &["impersonate@demo"]);
    let as_bob = farm.write_spec(
        "asbob",
        "name: asbob\nshow: demo\nuser: bob\nlayers:\n  - name: a\n    command: 'true'\n    frames: 1\n",
    );
    let err = refused(farm.kiln_as(Some(&alice), &["submit", &as_bob]));
    assert!(
        err.contains("only an account with the impersonate right on show demo"),
        "{err}"
    );
    let err = refused(farm.kiln_as(Some(&alice), &["submit", &as_bob, "--as", "carol"]));
    assert!(err.contains("impersonate"), "{err}");
    assert_eq!(farm.json(&["jobs", "--all"]).as_array().unwrap().len(), 0);

    let out = ok(farm.kiln_as(Some(&svc), &["submit", &as_bob, "--json"]));
    let job = serde_json::from_str::<Value>(&out).unwrap()["id"].to_string();
    let d = farm.json(&["job", &job]);
    assert_eq!(d["job"]["user"], "bob");
    // The service account may not submit into another show.
    let other = farm.write_spec(
        "other",
        "name: other\nshow: other\nuser: bob\nlayers:\n  - name: a\n    command: 'true'\n    frames: 1\n",
    );
    refused(farm.kiln_as(Some(&svc), &["submit", &other]));
    assert!(audited(&farm, "alice", "submit", "denied:"));
    assert!(audited(&farm, "svc", "submit", "ok"));
}

#[test]
fn a_password_sign_in_keeps_a_token_for_the_server() {
    let farm = Farm::start_tls(0, 1);
    let home = farm.path("home-dave");
    let pw = "correct horse battery";
    let mut create = common::cli(&farm.url(), &["user", "create", "dave", "--password-stdin"]);
    create
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut c = create.spawn().unwrap();
    use std::io::Write;
    writeln!(c.stdin.take().unwrap(), "{pw}").unwrap();
    assert!(c.wait_with_output().unwrap().status.success());
    farm.kiln(&["grant", "viewer", "dave"]);

    let login = |password: &str| {
        let mut cmd = common::cli(
            &farm.url(),
            &["login", "--user", "dave", "--password-stdin"],
        );
        cmd.env_remove("KILN_TOKEN")
            .env("HOME", &home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut c = cmd.spawn().unwrap();
        writeln!(c.stdin.take().unwrap(), "{password}").unwrap();
        c.wait_with_output().unwrap()
    };
    let err = refused(login("wrong password"));
    assert!(err.contains("wrong user name or password"), "{err}");
    let out = ok(login(pw));
    assert!(
        out.contains("logged in to https://localhost:") && out.contains("as dave (viewer)"),
        "{out}"
    );
    let kept = std::fs::read_dir(home.join(".config/kiln/tokens"))
        .unwrap()
        .count();
    assert_eq!(kept, 1);
    // The next command, with no KILN_TOKEN, signs in with what was kept.
    let mut who = common::cli(&farm.url(), &["whoami"]);
    who.env_remove("KILN_TOKEN").env("HOME", &home);
    assert!(ok(who.output().unwrap()).contains("dave: viewer"));
    assert!(audited(&farm, "dave", "login", "denied:"));
    assert!(audited(&farm, "dave", "login", "ok"));
}

/// A worker process for `farm` named `name` in a work directory of its own,
/// with `join` as its join token.
fn worker(farm: &Farm, name: &str, work: &str, join: Option<&str>) -> Command {
    let mut cmd = Command::new(kiln_bin());
    cmd.args(["worker", "--server", &farm.url(), "--name", name])
        .args([
            "--allow-root",
            "--run-as-self",
            "--cores",
            "1",
            "--memory",
            "1G",
        ])
        .arg("--work-dir")
        .arg(farm.path(work))
        .env("KILN_CA", farm.path("data/ca.pem"))
        .env("KILN_LOG", "info")
        .stdin(Stdio::null());
    if let Some(j) = join {
        cmd.args(["--join", j]);
    }
    cmd
}

fn join_token(farm: &Farm, extra: &[&str]) -> String {
    let mut args = vec!["token", "create", "--worker", "--name", "t"];
    args.extend_from_slice(extra);
    farm.kiln(&args).trim().to_string()
}

#[test]
fn workers_join_once_and_spent_expired_or_mismatched_tokens_are_refused() {
    let mut farm = Farm::start_tls(0, 1);
    let once = join_token(&farm, &["--uses", "1"]);
    let mut first = worker(&farm, "render01", "work1", Some(&once))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    farm.wait_hosts(1);
    let out = worker(&farm, "render02", "work2", Some(&once))
        .output()
        .unwrap();
    let err = refused(out);
    assert!(err.contains("used up"), "a spent token joined: {err}");

    let short = join_token(&farm, &["--expires", "1s"]);
    std::thread::sleep(Duration::from_millis(1500));
    let err = refused(
        worker(&farm, "render03", "work3", Some(&short))
            .output()
            .unwrap(),
    );
    assert!(err.contains("expired"), "an expired token joined: {err}");

    let renders = join_token(&farm, &["--hosts", "render*", "--cidr", "10.0.0.0/8"]);
    let err = refused(
        worker(&farm, "render04", "work4", Some(&renders))
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("outside the join token's range 10.0.0.0/8"),
        "{err}"
    );
    let local = join_token(&farm, &["--hosts", "render*", "--cidr", "127.0.0.0/8"]);
    let err = refused(
        worker(&farm, "comp01", "work5", Some(&local))
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("does not match the join token's hosts"),
        "{err}"
    );

    // No token, no credential: told how to enroll.
    let err = refused(worker(&farm, "render05", "work6", None).output().unwrap());
    assert!(err.contains("--join TOKEN"), "{err}");

    // A restart needs no token: the credential was kept.
    unsafe { libc::kill(first.id() as i32, libc::SIGKILL) };
    first.wait().unwrap();
    let mut again = worker(&farm, "render01", "work1", None)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let job = farm.submit("one", &common::one_layer("one", "true", "1"));
    farm.wait_status(&job, "FINISHED", Duration::from_secs(30));
    let _ = again.kill();
    let _ = again.wait();
    farm.workers.clear();
    assert!(audited(&farm, "host render02", "join", "denied:"));
    assert!(audited(&farm, "host render01", "join", "ok"));
}

#[test]
fn an_impostor_with_a_real_hosts_name_is_refused_and_the_host_runs_on() {
    let mut farm = Farm::start_tls(0, 1);
    farm.add_worker("render01", 2);
    farm.wait_hosts(1);
    let join = farm.join_token();
    // Another machine claims the name with a join token: already enrolled.
    let err = refused(
        worker(&farm, "render01", "evil", Some(&join))
            .output()
            .unwrap(),
    );
    assert!(err.contains("already enrolled"), "{err}");

    // With a credential of its own (enrolled as `evil`) under the real name.
    let mut evil = worker(&farm, "evil", "evil", Some(&join))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    farm.wait_hosts(2);
    let _ = evil.kill();
    let _ = evil.wait();
    std::fs::copy(
        farm.path("evil/credential-evil"),
        farm.path("evil/credential-render01"),
    )
    .unwrap();
    let log = farm.path("impostor.log");
    let mut impostor = worker(&farm, "render01", "evil", None)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(&log)
            .is_ok_and(|l| l.contains("not the one host \"render01\" was enrolled with"))
    });
    // The real host still runs its frames, each once.
    let marks = farm.path("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let spec = format!(
        "name: marked\nlayers:\n  - name: a\n    command: 'echo ran >> {}/m-$KILN_FRAME'\n    frames: 1-4\n",
        marks.display()
    );
    let job = farm.submit("marked", &spec);
    farm.wait_status(&job, "FINISHED", Duration::from_secs(30));
    for f in 1..=4 {
        let m = std::fs::read_to_string(marks.join(format!("m-{f}"))).unwrap();
        assert_eq!(
            m.lines().count(),
            1,
            "frame {f} ran {} times",
            m.lines().count()
        );
    }
    let hosts = farm.json(&["hosts"]);
    let real = hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "render01")
        .unwrap();
    assert_eq!(real["state"], "UP");
    assert!(audited(&farm, "host render01", "attach", "denied:"));
    let _ = impostor.kill();
    let _ = impostor.wait();

    // Removed: the host's link closes and its reconnects are refused.
    farm.kiln(&["host", "remove", "render01"]);
    wait_until(Duration::from_secs(30), || {
        std::fs::read_dir(farm.path(""))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy() == "worker-render01.log")
            .any(|e| {
                std::fs::read_to_string(e.path())
                    .is_ok_and(|l| l.contains("was removed with `kiln host remove`"))
            })
    });
    let w = &mut farm.workers[0];
    let _ = w.kill();
    assert!(wait_exit(w, Duration::from_secs(5)).is_some());
}
