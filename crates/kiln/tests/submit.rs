//! A submit happens exactly once, whatever happens to the server during it:
//! the real `kiln submit` against a real server that is SIGKILLed mid-call.

mod common;

use common::*;
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};

const FRAMES: u32 = 50_000;

fn big_spec(farm: &Farm, name: &str) -> String {
    farm.write_spec(name, one_layer(name, "true", &format!("1-{FRAMES}")))
}

/// Every job on the farm: (name, id, frames).
fn jobs(farm: &Farm) -> Vec<(String, i64, u64)> {
    let v = farm.json(&["jobs", "--all"]);
    v.as_array()
        .expect("the job list")
        .iter()
        .map(|j| {
            (
                j["name"].as_str().unwrap().to_string(),
                j["id"].as_i64().unwrap(),
                j["total"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_submit_cut_off_by_a_server_sigkill_is_retried_and_made_once() {
    let mut farm = Farm::start(0, 1);
    // How long a whole submit takes here (well under a second in a debug
    // build), so the kills land at different moments of one: before it is
    // read, while it is parsed, applied and committed, around the reply.
    let t = Instant::now();
    farm.kiln(&["submit", &big_spec(&farm, "whole"), "--json"]);
    let whole = t.elapsed().as_millis() as u64;
    let kill_after_ms: Vec<u64> = [5, 25, 45, 60, 70, 80]
        .iter()
        .map(|pc| whole * pc / 100)
        .collect();
    eprintln!("a whole submit takes {whole} ms; kills after {kill_after_ms:?} ms");
    let mut outputs = Vec::new();
    let mut retries = 0;
    for (i, after) in kill_after_ms.iter().enumerate() {
        let name = format!("big{i}");
        let spec = big_spec(&farm, &name);
        let cli = cli(
            &farm.url(),
            &["submit", &spec, "--json", "--retry-for", "60"],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(*after));
        farm.kill_server();
        std::thread::sleep(Duration::from_millis(300));
        farm.start_server();
        let start = Instant::now();
        let out = cli.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            out.status.success(),
            "submit {name} (server killed after {after} ms) failed: {stderr}"
        );
        let s: Value = serde_json::from_slice(&out.stdout).unwrap();
        let retried = stderr.contains("retrying with the same key");
        retries += usize::from(retried);
        eprintln!(
            "{name}: killed after {after} ms; the CLI finished {} ms after the restart, \
             retried: {retried}",
            start.elapsed().as_millis(),
        );
        outputs.push((name, s));
    }
    // Exactly one job per invocation, and it is the one the CLI printed.
    let all = jobs(&farm);
    assert_eq!(all.len(), kill_after_ms.len() + 1, "jobs: {all:?}");
    for (name, s) in &outputs {
        let mine: Vec<_> = all.iter().filter(|j| &j.0 == name).collect();
        assert_eq!(mine.len(), 1, "{name}: {all:?}");
        assert_eq!(s["id"].as_i64(), Some(mine[0].1), "{name}: {s}");
        assert_eq!(s["frames"].as_u64(), Some(u64::from(FRAMES)));
        assert_eq!(mine[0].2, u64::from(FRAMES));
    }
    // Kills cut submits off and the CLI retried them (how many depends on
    // the machine's speed from one submit to the next; at least one).
    assert!(retries >= 1, "{retries} retried");
}

#[test]
fn a_key_makes_one_job_and_nothing_submitted_is_said_only_when_certain() {
    let farm = Farm::start(0, 1);
    let spec = &farm.write_spec("small", one_layer("small", "true", "1-3"));
    let first: Value =
        serde_json::from_str(&farm.kiln(&["submit", spec, "--json", "--key", "k-1"])).unwrap();
    let again: Value =
        serde_json::from_str(&farm.kiln(&["submit", spec, "--json", "--key", "k-1"])).unwrap();
    assert_eq!(first, again, "the same key, the same job");
    let other: Value = serde_json::from_str(&farm.kiln(&["submit", spec, "--json"])).unwrap();
    assert_ne!(first["id"], other["id"], "no key given: a fresh one");
    assert_eq!(jobs(&farm).len(), 2);

    // A spec the server refuses: certain.
    let bad = farm.write_spec("bad", "name: bad\nlayers: []\n");
    assert!(farm
        .kiln_fails(&["submit", &bad])
        .contains("nothing was submitted"));

    // No server at all: refused before anything was sent, also certain,
    // after retrying for the time asked.
    let url = format!("http://127.0.0.1:{}", free_port());
    let t = Instant::now();
    let out = cli(&url, &["submit", spec, "--retry-for", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("retrying with the same key"), "{stderr}");
    assert!(stderr.contains("nothing was submitted"), "{stderr}");
    assert!(t.elapsed() >= Duration::from_millis(1500), "it retried");
    assert_eq!(jobs(&farm).len(), 2);
}

#[test]
fn a_frozen_server_does_not_hold_a_submit_forever_and_the_key_finds_the_job_later() {
    let farm = Farm::start(0, 1);
    let spec = &farm.write_spec("frozen", one_layer("frozen", "true", "1-3"));
    let pid = farm.server.as_ref().expect("server running").id() as i32;
    // The kernel still accepts connections for a stopped server, so the
    // client connects, sends, and hears nothing back.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let t = Instant::now();
    let out = cli(
        &farm.url(),
        &[
            "submit",
            spec,
            "--json",
            "--key",
            "frozen-1",
            "--retry-for",
            "2",
        ],
    )
    .output()
    .unwrap();
    let waited = t.elapsed();
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("the CLI gave up after {waited:?}: {stderr}");
    assert!(!out.status.success());
    assert!(waited < Duration::from_secs(30), "it gave up in time");
    assert!(
        stderr.contains("may or may not have been submitted") && stderr.contains("--key frozen-1"),
        "the outcome is unknown, and the CLI says how to find it out: {stderr}"
    );
    // Thawed, the server may or may not have made the job from what it
    // read; the same key tells, and never makes a second one.
    let again: Value =
        serde_json::from_str(&farm.kiln(&["submit", spec, "--json", "--key", "frozen-1"])).unwrap();
    assert_eq!(again["name"], "frozen");
    assert_eq!(jobs(&farm).len(), 1, "one job for one key");
}
