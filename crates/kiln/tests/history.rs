//! `kiln history`: every ended attempt exported as CSV or JSON lines, paged
//! by the server's cursor, shown only to those who may read the job.

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// CSV rows as maps from the header's names (no field here is quoted).
fn csv(text: &str) -> Vec<HashMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn every_ended_attempt_is_exported_once_in_order_to_those_who_may_read_it() {
    let farm = Farm::start(1, 4);
    let spec = "name: hist\nshow: demo\nlayers:\n  - name: ok\n    command: 'true'\n    frames: 1-3\n  - name: bad\n    command: 'exit 3'\n    frames: 7\n    retries: 1\n";
    let job = farm.submit("hist", spec);
    wait_until(Duration::from_secs(30), || {
        farm.frames(&job)
            .iter()
            .all(|f| f["state"] == "SUCCEEDED" || f["state"] == "DEAD")
    });

    let rows = csv(&farm.kiln(&["history", "--job", "hist", "--format", "csv"]));
    assert_eq!(
        rows.len(),
        5,
        "3 successes and 2 tries of the bad frame: {rows:?}"
    );
    let ok: Vec<_> = rows.iter().filter(|r| r["layer"] == "ok").collect();
    assert_eq!(ok.len(), 3);
    assert!(ok
        .iter()
        .all(|r| r["outcome"] == "SUCCEEDED" && r["exit_status"] == "0"));
    let bad: Vec<_> = rows.iter().filter(|r| r["layer"] == "bad").collect();
    assert_eq!(
        bad.iter()
            .map(|r| r["attempt"].as_str())
            .collect::<Vec<_>>(),
        ["1", "2"]
    );
    assert!(bad
        .iter()
        .all(|r| r["outcome"] == "FAILED" && r["exit_status"] == "3" && r["frame"] == "7"));
    for r in &rows {
        assert_eq!(r["host"], "w0");
        assert_eq!((r["job"].as_str(), r["show"].as_str()), ("hist", "demo"));
        let (start, end): (i64, i64) = (
            r["started_at"].parse().unwrap(),
            r["ended_at"].parse().unwrap(),
        );
        assert_eq!(r["runtime_ms"].parse::<i64>().unwrap(), end - start);
    }
    // In the order they ended.
    let ends: Vec<i64> = rows
        .iter()
        .map(|r| r["ended_at"].parse().unwrap())
        .collect();
    assert!(ends.windows(2).all(|w| w[0] <= w[1]), "{ends:?}");

    // JSON lines, and pages of 2 through the server's cursor: the same
    // attempts, in the same order, none twice.
    let ids = |text: &str| -> Vec<i64> {
        text.lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["attempt_id"]
                    .as_i64()
                    .unwrap()
            })
            .collect()
    };
    let all = ids(&farm.kiln(&["history", "--job", "hist", "--format", "jsonl"]));
    let want: Vec<i64> = rows
        .iter()
        .map(|r| r["attempt_id"].parse().unwrap())
        .collect();
    assert_eq!(all, want);
    let paged = ids(&farm.kiln(&[
        "history",
        "--job",
        &job,
        "--format",
        "jsonl",
        "--page-size",
        "2",
    ]));
    assert_eq!(paged, want);
    assert_eq!(
        ids(&farm.kiln(&["history", "--format", "jsonl", "--limit", "2"])),
        want[..2]
    );
    // Time bounds.
    assert_eq!(
        farm.kiln(&["history", "--since", "2999-01-01", "--format", "jsonl"]),
        ""
    );
    let err = farm.kiln_fails(&["history", "--since", "1h", "--until", "2h"]);
    assert!(err.contains("since"), "{err}");
    let err = farm.kiln_fails(&["history", "--since", "yesterday"]);
    assert!(err.contains("--since \"yesterday\""), "{err}");

    // Someone who may not read the job's show sees none of its attempts;
    // an artist of that show sees them all.
    let carol = farm.user("carol", &["artist@other"]);
    let out = farm.kiln_as(Some(&carol), &["history", "--format", "jsonl"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    let dave = farm.user("dave", &["artist@demo"]);
    let out = farm.kiln_as(Some(&dave), &["history", "--format", "jsonl"]);
    assert_eq!(ids(&String::from_utf8_lossy(&out.stdout)), want);
}
