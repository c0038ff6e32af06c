//! `kiln fleet` end to end: a real server, simulated hosts from the real
//! binary, jobs submitted and watched through the CLI.

mod common;
mod rest_client;

use common::*;
use rest_client::{problem, Rest, Version};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// A job of `frames` one-core frames that each "run" for `runtime`.
fn sim_job(name: &str, frames: u32, runtime: &str) -> String {
    format!(
        "name: {name}\nenv:\n  KILN_SIM_RUNTIME: {runtime}\nlayers:\n  - name: sim\n    command: 'render #FRAME#'\n    frames: 1-{frames}\n    memory: 256M\n"
    )
}

fn summary(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "fleet summary is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn count(frames: &[Value], state: &str) -> usize {
    frames.iter().filter(|f| f["state"] == state).count()
}

/// Most frames any host ran at once, from the frames' hosts and times.
fn peak_per_host(frames: &[Value]) -> usize {
    let mut events: HashMap<&str, Vec<(i64, i32)>> = HashMap::new();
    for f in frames {
        let host = f["host"].as_str().expect("frame ran on a host");
        let e = events.entry(host).or_default();
        e.push((f["started_at"].as_i64().unwrap(), 1));
        e.push((f["ended_at"].as_i64().unwrap(), -1));
    }
    let mut peak = 0;
    for mut e in events.into_values() {
        // An end and a start at the same millisecond: the end came first.
        e.sort();
        let mut now = 0;
        for (_, d) in e {
            now += d;
            peak = peak.max(now as usize);
        }
    }
    peak
}

#[test]
fn a_fleet_runs_every_frame_within_its_hosts_cores() {
    let farm = Farm::start(0, 0);
    let fleet = Fleet::start(&farm, &["--hosts", "20", "--cores", "4", "--json"]);
    farm.wait_hosts(20);
    let hosts = farm.json(&["hosts"]);
    let h = &hosts.as_array().unwrap()[0];
    assert!(h["name"].as_str().unwrap().starts_with("fleet-000"), "{h}");
    assert_eq!(
        (h["cores"].as_u64(), h["os"].as_str()),
        (Some(400), Some("linux"))
    );

    let job = farm.submit("sim", &sim_job("sim", 400, "200ms"));
    farm.wait_status(&job, "FINISHED", Duration::from_secs(60));
    let frames = farm.frames(&job);
    assert_eq!(count(&frames, "SUCCEEDED"), 400);
    let peak = peak_per_host(&frames);
    assert!(
        peak <= 4,
        "a 4-core host ran {peak} one-core frames at once"
    );
    let log = farm.kiln(&["log", &job, "sim/1"]);
    assert!(log.contains("simulated on fleet-"), "{log}");

    let s = summary(&fleet.term(Duration::from_secs(20)));
    assert_eq!(s["frames_started"], 400, "{s}");
    assert_eq!(s["frames_ended"], 400, "{s}");
    assert_eq!(s["overcommits"], 0, "{s}");
    assert_eq!(s["reconnects"], 0, "{s}");
    assert!(s["fill_99_ms"].is_u64(), "400 frames fill 80 cores: {s}");
}

#[test]
fn the_hosts_list_comes_in_pages_over_rest_and_grpc() {
    let farm = Farm::start_tls(0, 0);
    let fleet = Fleet::start(&farm, &["--hosts", "20", "--cores", "4"]);
    farm.wait_hosts(20);
    // REST, seven at a time: every host once, by id, the last page short.
    let admin = token_for(&farm.url()).unwrap();
    let mut c = Rest::connect(&farm, Version::H1, Some(&admin));
    let (mut ids, mut sizes, mut token) = (Vec::new(), Vec::new(), String::new());
    loop {
        let a = c.get(&format!("/api/v1/hosts?page_size=7&page_token={token}"));
        assert_eq!(a.status, 200, "{a:?}");
        let page = a.body["hosts"].as_array().unwrap();
        sizes.push(page.len());
        ids.extend(page.iter().map(|h| h["id"].as_i64().unwrap()));
        match a.body["next_page_token"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    assert_eq!(sizes, [7, 7, 6]);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let d = problem(&c.get("/api/v1/hosts?page_token=j1"), 400);
    assert!(d.starts_with("page_token: "), "{d}");
    // The CLI walks gRPC pages; it sees the same hosts.
    let cli: Vec<i64> = farm
        .json(&["hosts"])
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_i64().unwrap())
        .collect();
    assert_eq!(cli, ids);
    fleet.kill();
}

#[test]
fn until_busy_stops_the_fleet_once_full_and_reports_the_fill_time() {
    let farm = Farm::start(0, 0);
    let fleet = Fleet::start(
        &farm,
        &[
            "--hosts",
            "20",
            "--cores",
            "4",
            "--until-busy",
            "99",
            "--json",
        ],
    );
    farm.wait_hosts(20);
    let job = farm.submit("long", &sim_job("long", 400, "10m"));
    let out = fleet.wait(Duration::from_secs(30));
    assert!(out.status.success(), "{out:?}");
    let s = summary(&out);
    assert!(s["fill_until_busy_ms"].is_u64(), "{s}");
    assert!(s["fill_99_ms"].is_u64(), "{s}");
    assert_eq!(s["until_busy_pct"], 99.0);
    assert!(s["frames_started"].as_u64().unwrap() >= 80, "{s}");
    assert_eq!(s["overcommits"], 0, "{s}");

    // It left as workers leave: its hosts are DOWN at once, its frames
    // requeued without waiting for --down-after (60s here).
    wait_until(Duration::from_secs(10), || {
        let hosts = farm.json(&["hosts"]);
        let hosts = hosts.as_array().cloned().unwrap_or_default();
        hosts.len() == 20 && hosts.iter().all(|h| h["state"] == "DOWN")
    });
    let frames = farm.frames(&job);
    assert_eq!(count(&frames, "RUNNING"), 0);
    assert_eq!(count(&frames, "WAITING"), 400);
}

#[test]
fn a_killed_fleet_goes_down_and_a_restarted_one_finishes_the_job() {
    let farm = Farm::start_with(0, 0, "2s");
    let fleet = Fleet::start(&farm, &["--hosts", "10", "--cores", "4"]);
    farm.wait_hosts(10);
    let job = farm.submit("crash", &sim_job("crash", 120, "1s"));
    wait_until(Duration::from_secs(20), || {
        let f = farm.frames(&job);
        count(&f, "SUCCEEDED") > 0 && count(&f, "RUNNING") > 0
    });
    fleet.kill();

    wait_until(Duration::from_secs(10), || {
        let hosts = farm.json(&["hosts"]);
        hosts
            .as_array()
            .is_some_and(|h| h.iter().all(|h| h["state"] == "DOWN"))
    });
    let frames = farm.frames(&job);
    assert_eq!(count(&frames, "RUNNING"), 0);
    let requeued = frames
        .iter()
        .filter(|f| f["state"] == "WAITING" && f["attempts"] == 1)
        .count();
    assert!(requeued > 0, "frames of the dead hosts are requeued");

    let fleet = Fleet::start(&farm, &["--hosts", "10", "--cores", "4", "--json"]);
    farm.wait_status(&job, "FINISHED", Duration::from_secs(30));
    assert_eq!(count(&farm.frames(&job), "SUCCEEDED"), 120);
    assert_eq!(
        summary(&fleet.term(Duration::from_secs(20)))["overcommits"],
        0
    );
}

#[test]
fn the_fleet_reconnects_to_a_restarted_server_and_keeps_its_frames() {
    let mut farm = Farm::start(0, 0);
    let fleet = Fleet::start(&farm, &["--hosts", "5", "--cores", "4", "--json"]);
    farm.wait_hosts(5);
    let job = farm.submit("restart", &sim_job("restart", 60, "1s"));
    wait_until(Duration::from_secs(20), || {
        let f = farm.frames(&job);
        count(&f, "SUCCEEDED") > 0 && count(&f, "RUNNING") > 0
    });
    farm.kill_server();
    // Frames end while the server is away; their ends wait for it.
    std::thread::sleep(Duration::from_millis(1200));
    farm.start_server();
    farm.wait_status(&job, "FINISHED", Duration::from_secs(30));
    let frames = farm.frames(&job);
    assert_eq!(count(&frames, "SUCCEEDED"), 60);
    let s = summary(&fleet.term(Duration::from_secs(20)));
    assert!(s["reconnects"].as_u64().unwrap() >= 5, "{s}");
    // Running frames were kept and held ends delivered: every frame started
    // once on the fleet. (A frame may still have a second attempt: a launch
    // the server committed but the killed connection never carried is
    // requeued as LOST, having never run; on a loaded machine that happens.)
    assert_eq!(s["frames_started"], 60, "{s}");
    assert!(frames.iter().all(|f| f["attempts"].as_u64() <= Some(2)));
}

#[test]
fn scenario_variables_make_frames_fail_and_time_out() {
    let farm = Farm::start(0, 0);
    let _fleet = Fleet::start(&farm, &["--hosts", "2", "--cores", "4", "--speed", "100"]);
    farm.wait_hosts(2);
    let spec = "name: scen\nlayers:\n  - name: exit\n    command: 'true'\n    frames: 1-2\n    retries: 0\n    env: {KILN_SIM_EXIT: 3}\n  - name: slow\n    command: sleep 600\n    frames: 1\n    retries: 0\n    timeout: 60\n  - name: bad\n    command: 'true'\n    frames: 1\n    retries: 0\n    env: {KILN_SIM_RUNTIME: soon}\n  - name: rss\n    command: 'true'\n    frames: 1\n    memory: 4G\n    env: {KILN_SIM_RSS: 3G}\n";
    let job = farm.submit("scen", spec);
    farm.wait_status(&job, "FAILED", Duration::from_secs(30));
    let frames = farm.frames(&job);
    let by =
        |layer: &str| -> Vec<&Value> { frames.iter().filter(|f| f["layer"] == layer).collect() };
    assert!(by("exit")
        .iter()
        .all(|f| f["state"] == "DEAD" && f["exit_status"] == 3));
    assert_eq!(by("slow")[0]["outcome"], "TIMEDOUT");
    assert_eq!(by("bad")[0]["state"], "DEAD");
    let log = farm.kiln(&["log", &job, "bad/1"]);
    assert!(
        log.contains("KILN_SIM_RUNTIME"),
        "the failure says why: {log}"
    );
    assert_eq!(by("rss")[0]["state"], "SUCCEEDED");
    assert_eq!(by("rss")[0]["attempts"], 1, "3G fits in the 4G it reserved");
    assert_eq!(by("rss")[0]["max_rss_kb"], 3 << 20);
}

#[test]
fn frames_past_their_memory_are_killed_and_retried_with_more() {
    let farm = Farm::start(0, 0);
    let fleet = Fleet::start(&farm, &["--hosts", "4", "--cores", "8", "--json"]);
    farm.wait_hosts(4);
    // 3G used against 1G reserved; every frame fits at once (4 x 8 cores,
    // 256G each), so all first attempts run with 1G, before the server
    // learns. `retries: 0`: an OOM must not use up a retry.
    let spec = "name: oom\nlayers:\n  - name: big\n    command: render\n    frames: 1-20\n    memory: 1G\n    retries: 0\n    env: {KILN_SIM_RUNTIME: 2s, KILN_SIM_RSS: 3G}\n";
    let job = farm.submit("oom", spec);
    farm.wait_status(&job, "FINISHED", Duration::from_secs(60));

    let frames = farm.frames(&job);
    assert_eq!(count(&frames, "SUCCEEDED"), 20);
    for f in &frames {
        assert_eq!(
            (f["attempts"].as_u64(), f["failures"].as_u64()),
            (Some(2), Some(0)),
            "one OOM, then a success, no failure counted: {f}"
        );
        assert_eq!(f["max_rss_kb"], 3 << 20, "{f}");
    }
    let log = farm.kiln(&["log", &job, "big/1", "--attempt", "1"]);
    assert!(log.contains("out of memory: used 3G"), "{log}");
    // Killed halfway through the 2s it would run.
    let ran: u64 = log
        .split("ran ")
        .nth(1)
        .and_then(|r| r.split(" ms").next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no runtime in {log:?}"));
    assert!((900..1900).contains(&ran), "{log}");
    // The server raised the reservation past what the frames used.
    let layer = &farm.json(&["job", &job])["layers"][0];
    assert!(
        layer["memory_kb"].as_u64().unwrap() > 3 << 20,
        "reservation not raised: {layer}"
    );

    let s = summary(&fleet.term(Duration::from_secs(20)));
    assert_eq!(s["oom_kills"], 20, "{s}");
    assert_eq!(s["frames_started"], 40, "{s}");
    assert_eq!(s["frames_ended"], 40, "{s}");
    assert_eq!(s["overcommits"], 0, "{s}");
}

#[test]
fn bad_flags_are_refused_naming_the_flag() {
    for (args, flag) in [
        (&["--hosts", "0"][..], "--hosts"),
        (&["--hosts", "2", "--memory", "12"], "--memory"),
        (&["--hosts", "2", "--cores", "0"], "--cores"),
        (&["--hosts", "2", "--speed", "0"], "--speed"),
        (&["--hosts", "2", "--until-busy", "150"], "--until-busy"),
        (&["--hosts", "2", "--duration", "soon"], "--duration"),
        (
            &["--hosts", "2", "--server", "http://127.0.0.1:1"],
            "cannot reach the server",
        ),
    ] {
        let out = std::process::Command::new(kiln_bin())
            .arg("fleet")
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(err.contains(flag), "{args:?}: {err}");
    }
}
