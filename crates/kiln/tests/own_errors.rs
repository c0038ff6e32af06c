//! A job's own errors are not the host's: frames that cannot start for the
//! job's reasons die quickly with the cause named, and no host is blamed.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn jobs_that_cannot_start_die_fast_with_the_cause_and_no_host_goes_to_repair() {
    let farm = Farm::start(3, 2);
    // Without root the worker runs frames as itself and never looks the
    // user up, so an unknown user is no error there.
    let kinds: &[(&str, &str, &str)] = &[
        (
            "user",
            "user: kiln-no-such-user\n",
            "does not exist on host",
        ),
        (
            "cwd",
            "cwd: /kiln-no-such-dir/shot\n",
            "working directory /kiln-no-such-dir/shot does not exist",
        ),
        ("sh", "", "command not found"),
        ("argv", "", "command not found in PATH"),
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
