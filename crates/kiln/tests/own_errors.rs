//! A job's own errors are not the host's: frames that cannot start for the
//! job's reasons die quickly with the cause named, and no host is blamed.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn jobs_that_cannot_start_die_fast_with_the_cause_and_no_host_goes_to_repair() {
    // Workers that switch to each job's user, as root workers do; jobs
    // other than the unknown user's run as nobody. Without root the worker
    // runs frames as itself and never looks the user up, so an unknown
    // user is no error there.
    let mut farm = Farm::start(0, 2);
    for w in ["w0", "w1", "w2"] {
        farm.add_worker_with(w, 2, &["--allow-root"]);
    }
    farm.wait_hosts(3);
    let kinds: &[(&str, &str, &str)] = &[
        (
            "user",
            "user: kiln-no-such-user\n",
            "does not exist on host",
        ),
        (
            "cwd",
            "user: nobody\ncwd: /kiln-no-such-dir/shot\n",
            "working directory /kiln-no-such-dir/shot does not exist",
        ),
        ("sh", "user: nobody\n", "command not found"),
        ("argv", "user: nobody\n", "command not found in PATH"),
    ];
    if !is_root() {
        skip("an unknown user is only an error where the worker switches users (root)");
    }
    let mut jobs = Vec::new();
    for i in 0..30 {
        let (kind, extra, cause) = kinds[i % kinds.len()];
        if kind == "user" && !is_root() {
            continue;
        }
        let command = match kind {
            "sh" => "\"kiln-no-such-command --frame #FRAME#\"",
            "argv" => "[kiln-no-such-program, \"#FRAME#\"]",
            _ => "\"true\"",
        };
        let id = farm.submit(
            &format!("{kind}{i}"),
            &format!(
                "name: {kind}{i}\n{extra}layers:\n  - {{name: a, command: {command}, frames: 1-4, retries: 3}}\n"
            ),
        );
        jobs.push((id, cause));
    }
    let start = Instant::now();
    for (id, _) in &jobs {
        farm.wait_status(id, "FAILED", Duration::from_secs(60));
    }
    let took = start.elapsed();
    eprintln!("{} jobs failed within {took:?}", jobs.len());

    let hosts = farm.json(&["hosts"]);
    for h in hosts.as_array().unwrap() {
        assert_eq!(h["state"], "UP", "no host is blamed: {h}");
    }
    for (id, cause) in &jobs {
        let frames = farm.frames(id);
        assert_eq!(frames.len(), 4);
        for f in &frames {
            assert_eq!(f["state"], "DEAD", "{f}");
            // Tried at most twice, not for all four of the layer's tries.
            assert!(f["attempts"].as_u64().unwrap() <= 2, "{f}");
            let reason = f["reason"].as_str().unwrap_or_default();
            assert!(
                reason.contains(cause),
                "job {id}: {reason:?} names no {cause:?}"
            );
        }
        let table = farm.kiln(&["frames", id]);
        assert!(
            table.contains(cause),
            "`kiln frames {id}` names the cause: {table}"
        );
        let log = farm.kiln(&["log", id, "a/1"]);
        let in_log = match *cause {
            // The shell says which command it could not find.
            "command not found" => "kiln-no-such-command",
            c => c,
        };
        assert!(log.contains(in_log), "the log names the cause: {log}");
    }
}

/// A program that only one host has (on its PATH): frames that fail on
/// the other host for it are retried where it is, not sent back to fail
/// again, so the job finishes.
#[test]
fn a_frame_that_cannot_start_on_one_host_is_retried_on_another() {
    let mut farm = Farm::start(0, 1);
    let bin = farm.path("only-on-w1");
    std::fs::create_dir_all(&bin).unwrap();
    let prog = bin.join("kiln-only-on-w1");
    std::fs::write(&prog, "#!/bin/sh\nsleep 0.5\n").unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    farm.add_worker_env(
        "w0",
        1,
        &["--allow-root", "--run-as-self"],
        &[("PATH", &path)],
    );
    let with_bin = format!("{}:{path}", bin.display());
    farm.add_worker_env(
        "w1",
        1,
        &["--allow-root", "--run-as-self"],
        &[("PATH", &with_bin)],
    );
    farm.wait_hosts(2);
    let job = farm.submit(
        "only",
        "name: only\nlayers:\n  - {name: a, command: [kiln-only-on-w1], frames: 1-4, retries: 3}\n",
    );
    wait_until(Duration::from_secs(60), || {
        matches!(farm.job_status(&job).as_str(), "FINISHED" | "FAILED")
    });
    let frames = farm.frames(&job);
    assert_eq!(farm.job_status(&job), "FINISHED", "{frames:?}");
    for f in &frames {
        assert_eq!(f["state"], "SUCCEEDED", "{f}");
        assert_eq!(f["host"], "w1", "{f}");
        assert!(f["attempts"].as_u64().unwrap() <= 2, "{f}");
    }
    let failed = frames.iter().filter(|f| f["attempts"] == 2).count();
    eprintln!("{failed} of 4 frames failed once on w0, then ran on w1");
    assert!(failed >= 1, "w0 took a frame first");
    let hosts = farm.json(&["hosts"]);
    for h in hosts.as_array().unwrap() {
        assert_eq!(h["state"], "UP", "no host is blamed: {h}");
    }
}
