//! Retention: a finished job leaves the farm after `--archive-after` but
//! stays in history, its log goes after `--log-retention`, its history
//! after `--history-retention`, and no id is ever given twice, across a
//! SIGKILLed server.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

fn history(farm: &Farm, job: &str) -> Vec<Value> {
    farm.kiln(&["history", "--job", job, "--format", "jsonl"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn listed(farm: &Farm, job: &str) -> bool {
    farm.json(&["jobs", "--all"])
        .as_array()
        .unwrap()
        .iter()
        .any(|j| j["name"] == job)
}

#[test]
fn finished_jobs_are_archived_then_purged_and_their_logs_pruned() {
    let flags = [
        "--archive-after",
        "2s",
        "--log-retention",
        "3s",
        "--history-retention",
        "4s",
        "--retention-every",
        "1s",
    ];
    let mut farm = Farm::start_tls_with(1, 2, &flags);
    let old = farm.submit("old", &one_layer("old", "echo retained-line", "1-2"));
    farm.wait_status(&old, "FINISHED", Duration::from_secs(30));
    let rows = history(&farm, "old");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let attempt = rows[0]["attempt_id"].as_i64().unwrap();
    let log = farm.path(&format!("data/logs/{:06}/{attempt}.log", attempt / 10_000));
    assert!(log.exists(), "{log:?}");
    assert!(farm.kiln(&["log", "old", "a/1"]).contains("retained-line"));

    // A job still waiting is never archived, however old.
    let waiting = farm.submit(
        "waiting",
        "name: waiting\nlayers: [{name: r, command: 'true', frames: 1, tags: [nowhere]}]\n",
    );

    wait_until(Duration::from_secs(20), || !listed(&farm, "old"));
    // Archived: gone from the farm, not from history.
    let e = farm.kiln_fails(&["job", "old"]);
    assert!(e.contains("no job \"old\""), "{e}");
    assert_eq!(
        history(&farm, "old").len(),
        2,
        "history keeps an archived job"
    );
    assert!(listed(&farm, "waiting"));

    wait_until(Duration::from_secs(20), || !log.exists());
    wait_until(Duration::from_secs(20), || history(&farm, "old").is_empty());

    // Restarted after a SIGKILL: nothing archived comes back, and new ids
    // go on above the purged ones.
    farm.kill_server();
    farm.start_server_with(&flags, None);
    assert!(!listed(&farm, "old"));
    assert!(listed(&farm, "waiting"), "{waiting}");
    let new = farm.submit("new", &one_layer("new", "true", "1"));
    let id = |j: &str| j.parse::<i64>().unwrap();
    assert!(id(&new) > id(&waiting), "an id was given again");
    farm.wait_status(&new, "FINISHED", Duration::from_secs(30));
    let rows = history(&farm, "new");
    assert!(rows[0]["attempt_id"].as_i64().unwrap() > attempt);
}
