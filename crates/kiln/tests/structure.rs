//! End-to-end: the farm's structure driven through the CLI. Shows,
//! subscriptions and limits shape what runs; a host in repair gets nothing
//! new; bad changes are refused whole with the fix named; and waiting
//! frames say why they wait.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

fn by_state<'a>(frames: &'a [Value], state: &str) -> Vec<&'a Value> {
    frames.iter().filter(|f| f["state"] == state).collect()
}

#[test]
fn limits_shows_and_repair_shape_what_runs() {
    let mut farm = Farm::start(2, 4);
    farm.kiln(&["show", "create", "film", "--priority", "50"]);
    farm.kiln(&[
        "sub",
        "set",
        "film",
        "local.general",
        "--size",
        "4",
        "--burst",
        "8",
    ]);
    farm.kiln(&["limit", "set", "lic", "--max", "1"]);

    // Bad input: refused, with the fix named, and nothing changed.
    let subs_before = farm.json(&["subs"]);
    let hosts_before = farm.json(&["hosts"]);
    let err = farm.kiln_fails(&[
        "sub",
        "set",
        "film",
        "paris.gpu",
        "--size",
        "1",
        "--burst",
        "2",
    ]);
    assert!(
        err.contains("paris.gpu") && err.contains("kiln alloc create"),
        "{err}"
    );
    let err = farm.kiln_fails(&["host", "move", "w0", "paris.gpu"]);
    assert!(
        err.contains("no allocation") && err.contains("kiln allocs"),
        "{err}"
    );
    let err = farm.kiln_fails(&[
        "sub",
        "set",
        "film",
        "local.general",
        "--size",
        "10",
        "--burst",
        "5",
    ]);
    assert!(err.contains("--burst 5 is less than --size 10"), "{err}");
    assert!(err.contains("at least 10"), "{err}");
    let err = farm.kiln_fails(&["limit", "set", "lic", "--max", "-1"]);
    assert!(err.contains("--max"), "{err}");
    let err = farm.kiln_fails(&["show", "set", "nope", "--disable"]);
    assert!(err.contains("kiln show create nope"), "{err}");
    assert_eq!(farm.json(&["subs"]), subs_before);
    let hosts_after = farm.json(&["hosts"]);
    for (a, b) in hosts_before
        .as_array()
        .unwrap()
        .iter()
        .zip(hosts_after.as_array().unwrap())
    {
        assert_eq!(a["allocation"], b["allocation"]);
    }

    // The listings show what was made.
    let shows = farm.json(&["shows"]);
    let film = shows
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "film")
        .unwrap();
    assert_eq!(film["default_priority"], 50);
    assert_eq!(film["enabled"], true);
    let subs = farm.json(&["subs", "--show", "film"]);
    assert_eq!(subs[0]["size"], 400, "{subs}");
    assert_eq!(subs[0]["burst"], 800, "{subs}");
    let text = farm.kiln(&["allocs"]);
    assert!(
        text.contains("local.general") && text.contains("2/2"),
        "{text}"
    );

    // w1 goes to REPAIR: nothing new starts there.
    farm.kiln(&["host", "repair", "w1"]);
    let hosts = farm.json(&["hosts"]);
    let w1 = hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "w1")
        .unwrap();
    assert_eq!(w1["state"], "REPAIR", "{hosts}");

    // Two frames naming a limit of 1: one runs, the other says why it waits.
    let job = farm.submit(
        "lic",
        "name: lic\nshow: film\nlayers:\n  - name: a\n    command: 'sleep 30'\n    frames: 1-2\n    limits: [lic]\n",
    );
    wait_until(Duration::from_secs(10), || {
        let f = farm.frames(&job);
        by_state(&f, "RUNNING").len() == 1 && by_state(&f, "WAITING")[0]["why"]["kind"] == "limit"
    });
    let frames = farm.frames(&job);
    let running = by_state(&frames, "RUNNING");
    assert_eq!(running[0]["host"], "w0", "not on the host in repair");
    let waiting = by_state(&frames, "WAITING");
    let why = &waiting[0]["why"];
    assert_eq!(why["name"], "lic", "{why}");
    assert!(
        why["text"]
            .as_str()
            .unwrap()
            .contains("limit lic at its maximum"),
        "{why}"
    );
    assert_eq!(farm.json(&["job", &job])["job"]["priority"], 50);
    let text = farm.kiln(&["job", &job]);
    assert!(
        text.contains("limit lic at its maximum") && text.contains("LIMITS"),
        "{text}"
    );
    let text = farm.kiln(&["frames", &job]);
    assert!(text.contains("WHY") && text.contains("limit lic"), "{text}");
    let limits = farm.json(&["limits"]);
    assert_eq!(
        (limits[0]["used"].clone(), limits[0]["max"].clone()),
        (1.into(), 1.into())
    );

    // Four one-core frames: w0 has three cores left and w1 is in repair.
    let more = farm.submit(
        "more",
        "name: more\nshow: film\nlayers:\n  - name: b\n    command: 'sleep 30'\n    frames: 1-4\n",
    );
    wait_until(Duration::from_secs(10), || {
        by_state(&farm.frames(&more), "RUNNING").len() == 3
    });
    std::thread::sleep(Duration::from_millis(700));
    let frames = farm.frames(&more);
    assert_eq!(by_state(&frames, "RUNNING").len(), 3);
    assert!(frames.iter().all(|f| f["host"] != "w1"), "{frames:?}");
    assert!(by_state(&frames, "WAITING")[0]["why"].is_object());

    // Out of repair, it takes the frame that waited.
    farm.kiln(&["host", "fixed", "w1"]);
    wait_until(Duration::from_secs(10), || {
        farm.frames(&more).iter().any(|f| f["host"] == "w1")
    });

    // The structure survives a restart.
    farm.kill_server();
    farm.start_server();
    let limits = farm.json(&["limits"]);
    assert_eq!(limits[0]["name"], "lic", "{limits}");
    assert_eq!(farm.json(&["subs", "--show", "film"])[0]["burst"], 800);

    farm.kiln(&["kill", &job]);
    farm.kiln(&["kill", &more]);
}

#[test]
fn wranglers_tune_shows_services_hosts_and_jobs() {
    let farm = Farm::start(1, 2);
    farm.kiln(&["facility", "create", "paris"]);
    farm.kiln(&["alloc", "create", "paris.gpu", "--tags", "gpu"]);
    let allocs = farm.json(&["allocs"]);
    assert!(
        allocs
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "paris.gpu" && a["tags"][0] == "gpu"),
        "{allocs}"
    );
    farm.kiln(&["host", "move", "w0", "paris.gpu"]);
    farm.kiln(&["host", "tag", "w0", "fast", "nuke"]);
    farm.kiln(&["host", "untag", "w0", "nuke"]);
    let h = &farm.json(&["hosts"])[0];
    assert_eq!(h["allocation"], "paris.gpu");
    assert_eq!(h["manual_tags"], serde_json::json!(["fast"]));
    let err = farm.kiln_fails(&["alloc", "rm", "paris.gpu"]);
    assert!(err.contains("kiln host move"), "{err}");
    farm.kiln(&["host", "move", "w0", "local.general"]);
    farm.kiln(&["alloc", "rm", "paris.gpu"]);
    farm.kiln(&["facility", "rm", "paris"]);

    farm.kiln(&["limit", "set", "arnold", "--max", "4"]);
    farm.kiln(&[
        "service", "set", "render", "--cores", "2+", "--memory", "1G", "--limits", "arnold",
    ]);
    // `set` changes only what it is given.
    farm.kiln(&["service", "set", "render", "--timeout", "2h"]);
    let svc = &farm.json(&["services"])[0];
    assert_eq!(svc["cores"], "2+", "{svc}");
    assert_eq!(svc["timeout_s"], 7200, "{svc}");
    let err = farm.kiln_fails(&["service", "set", "render", "--limits", "nolic"]);
    assert!(err.contains("kiln limit set nolic"), "{err}");

    // A layer naming the service takes its defaults.
    let job = farm.submit(
        "svc",
        "name: svc\nshow: tv\nlayers:\n  - name: a\n    command: 'sleep 30'\n    frames: 1\n    service: render\n",
    );
    let d = farm.json(&["job", &job]);
    let l = &d["layers"][0];
    assert_eq!(l["cores_request"], "2+", "{l}");
    assert_eq!(l["limits"], serde_json::json!(["arnold"]), "{l}");
    assert_eq!(l["service"], "render", "{l}");

    farm.kiln(&["job", "set", &job, "--priority", "7", "--max-cores", "1.5"]);
    let d = farm.json(&["job", &job]);
    assert_eq!(d["job"]["priority"], 7);
    assert_eq!(d["max_cores"], 150);
    farm.kiln(&["job", "set", &job, "--max-cores", "none"]);
    assert!(farm.json(&["job", &job])["max_cores"].is_null());
    farm.kiln(&["job", "unavoid", &job]);

    // A disabled show refuses new jobs, and says how to enable it.
    farm.kiln(&["show", "set", "tv", "--disable"]);
    let path = farm.write_spec(
        "tv2",
        "name: tv2\nshow: tv\nlayers:\n  - name: a\n    command: 'true'\n    frames: 1\n",
    );
    let err = farm.kiln_fails(&["submit", &path]);
    assert!(err.contains("kiln show set tv --enable"), "{err}");
    farm.kiln(&["show", "set", "tv", "--enable"]);
    farm.kiln(&["kill", &job]);
}
