//! End-to-end: the real `kiln` binary as a server and two workers, driven
//! through the CLI, with frames that are real processes.

mod common;

use common::*;
use std::collections::HashMap;
use std::time::Duration;

/// Each frame appends "layer frame start end" (ns) to `trace`.
fn traced(cmd: &str, trace: &std::path::Path) -> String {
    format!(
        "s=$(date +%s%N); {cmd}; echo \"$KILN_LAYER $KILN_FRAME $s $(date +%s%N)\" >> {}",
        trace.display()
    )
}

#[test]
fn dependencies_run_in_a_valid_order_across_two_workers() {
    let farm = Farm::start(2, 2);
    let trace = farm.path("trace");
    let spec = format!(
        r#"
name: deps
layers:
  - name: render
    command: '{r}'
    frames: 1-6
  - name: comp
    command: '{c}'
    frames: 1-6
    depends: [{{layer: render, per_frame: true}}]
  - name: movie
    command: '{m}'
    frames: 1
    depends: [comp]
"#,
        r = traced("sleep 0.$((RANDOM % 4))", &trace),
        c = traced("true", &trace),
        m = traced("true", &trace),
    );
    let job = farm.submit("deps", &spec);
    farm.wait_status(&job, "FINISHED", Duration::from_secs(60));

    let mut spans: HashMap<(String, String), (u128, u128)> = HashMap::new();
    for line in read(&trace).lines() {
        let p: Vec<&str> = line.split_whitespace().collect();
        let prev = spans.insert(
            (p[0].into(), p[1].into()),
            (p[2].parse().unwrap(), p[3].parse().unwrap()),
        );
        assert!(prev.is_none(), "{line}: ran twice");
    }
    assert_eq!(spans.len(), 13);
    for n in 1..=6 {
        let r = spans[&("render".into(), n.to_string())];
        let c = spans[&("comp".into(), n.to_string())];
        assert!(c.0 >= r.1, "comp/{n} started before render/{n} ended");
    }
    let last_comp = (1..=6)
        .map(|n| spans[&("comp".into(), n.to_string())].1)
        .max()
        .unwrap();
    assert!(spans[&("movie".into(), "1".into())].0 >= last_comp);

    let hosts: Vec<String> = farm
        .frames(&job)
        .iter()
        .map(|f| f["host"].as_str().unwrap().to_string())
        .collect();
    assert!(
        hosts.contains(&"w0".into()) && hosts.contains(&"w1".into()),
        "both workers ran frames: {hosts:?}"
    );

    // The human views work too.
    let text = farm.kiln(&["job", "deps"]);
    assert!(text.contains("FINISHED") && text.contains("comp"), "{text}");
    let text = farm.kiln(&["jobs", "--all"]);
    assert!(text.contains("deps") && text.contains("13/13"), "{text}");
}

#[test]
fn a_failing_frame_is_retried_then_dead_and_its_log_says_why() {
    let farm = Farm::start(1, 2);
    let spec = farm.write_spec(
        "fail",
        one_layer("fail", "echo trying; exit 3", "1") + "    retries: 2\n",
    );
    // --wait exits non-zero when a frame died.
    farm.kiln_fails(&["submit", &spec, "--wait"]);
    let f = &farm.frames("fail")[0];
    assert_eq!(f["state"], "DEAD");
    assert_eq!(f["attempts"], 3);
    assert_eq!(f["exit_status"], 3);
    assert_eq!(farm.job_status("fail"), "FAILED");

    let log = farm.kiln(&["log", "fail", "a/1"]);
    assert!(log.contains("trying"), "{log}");
    assert!(log.contains("exit"), "footer with the exit status: {log}");
    let first = farm.kiln(&["log", "fail", "a/1", "--attempt", "1"]);
    assert!(first.contains("trying"));

    // Retry brings it back; it fails again the same way.
    farm.kiln(&["retry", "fail"]);
    wait_until(Duration::from_secs(30), || {
        farm.frames("fail")[0]["attempts"] == 6
    });
}

#[test]
fn kill_pause_resume_and_timeouts() {
    let farm = Farm::start(1, 4);
    let job = farm.submit(
        "slow",
        &format!(
            "paused: true\n{}",
            one_layer("slow", "sleep 29.7531", "1-4")
        ),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(farm.job_status(&job), "PAUSED");
    assert!(farm.frames(&job).iter().all(|f| f["state"] == "WAITING"));
    farm.kiln(&["resume", &job]);
    wait_until(Duration::from_secs(10), || {
        farm.frames(&job).iter().all(|f| f["state"] == "RUNNING")
    });
    // Kill two frames: they become DEAD, the others keep running.
    farm.kiln(&["kill", &job, "a/1-2"]);
    wait_until(Duration::from_secs(15), || {
        let f = farm.frames(&job);
        f[0]["state"] == "DEAD" && f[1]["state"] == "DEAD" && f[0]["outcome"] == "KILLED"
    });
    assert_eq!(farm.frames(&job)[2]["state"], "RUNNING");
    // Kill the job: everything stops.
    farm.kiln(&["kill", &job]);
    farm.wait_status(&job, "KILLED", Duration::from_secs(5));
    wait_until(Duration::from_secs(15), || {
        farm.json(&["hosts"])[0]["running"] == 0
    });
    let procs = std::process::Command::new("pgrep")
        // A number no other test sleeps for: tests run in parallel.
        .args(["-f", "sleep 29[.]7531"])
        .output()
        .unwrap();
    assert!(
        procs.stdout.is_empty(),
        "killed frames leave no process behind"
    );

    let t = farm.submit(
        "timeout",
        &(one_layer("timeout", "sleep 60", "1") + "    timeout: 1s\n    retries: 0\n"),
    );
    farm.wait_status(&t, "FAILED", Duration::from_secs(20));
    assert_eq!(farm.frames(&t)[0]["outcome"], "TIMEDOUT");
    let log = farm.kiln(&["log", &t, "a/1"]);
    assert!(log.to_lowercase().contains("timed out"), "{log}");
}

#[test]
fn server_sigkill_mid_job_loses_nothing_and_runs_nothing_twice() {
    let mut farm = Farm::start(2, 3);
    let marks = farm.path("marks");
    std::fs::create_dir_all(&marks).unwrap();
    // O_EXCL markers (set -C): a second run of any frame fails loudly.
    let spec = format!(
        "name: crash\nlayers:\n  - name: a\n    command: 'set -C; echo $$ > {m}/#FRAME#.start; sleep 1.5; echo done > {m}/#FRAME#.end'\n    frames: 1-12\n    retries: 0\n",
        m = marks.display()
    );
    let job = farm.submit("crash", &spec);
    wait_until(Duration::from_secs(10), || {
        farm.frames(&job)
            .iter()
            .filter(|f| f["state"] == "RUNNING")
            .count()
            == 6
    });
    // Kill it mid-run, then again around the first wave's ends and the
    // second wave's dispatch.
    for pause in [700, 300] {
        farm.kill_server();
        std::thread::sleep(Duration::from_millis(pause));
        farm.start_server();
        std::thread::sleep(Duration::from_millis(900));
    }
    farm.wait_status(&job, "FINISHED", Duration::from_secs(60));
    let frames = farm.frames(&job);
    assert_eq!(frames.len(), 12);
    for f in &frames {
        assert_eq!(f["state"], "SUCCEEDED", "{f}");
        assert_eq!(f["attempts"], 1, "no frame ran twice: {f}");
    }
    for n in 1..=12 {
        assert!(
            marks.join(format!("{n}.end")).exists(),
            "frame {n} finished"
        );
    }
    // Logs of frames that ran across the crash are complete.
    let log = farm.kiln(&["log", &job, "a/1"]);
    assert!(log.contains("runtime"), "footer present: {log}");
}

#[test]
fn a_lost_worker_is_marked_down_and_its_frames_run_elsewhere() {
    let mut farm = Farm::start_with(1, 1, "2s");
    let job = farm.submit("lost", &one_layer("lost", "sleep 2", "1"));
    wait_until(Duration::from_secs(10), || {
        farm.frames(&job)[0]["state"] == "RUNNING"
    });
    let mut w = farm.workers.remove(0);
    w.kill().unwrap();
    w.wait().unwrap();
    wait_until(Duration::from_secs(10), || {
        farm.json(&["hosts"])[0]["state"] == "DOWN"
    });
    farm.add_worker("w9", 1);
    farm.wait_status(&job, "FINISHED", Duration::from_secs(30));
    let f = &farm.frames(&job)[0];
    assert_eq!(f["host"], "w9");
    assert_eq!(f["attempts"], 2);
}

#[test]
fn bad_specs_are_rejected_whole_with_the_field_named() {
    let farm = Farm::start(0, 1);
    for (spec, field) in [
        ("name: x\nlayers: [{name: a, command: c, frames: '1-x'}]", "layers[0].frames"),
        ("name: x\nlayers: [{name: a, command: c, frames: '1-1000000000'}]", "layers[0].frames"),
        (
            "name: x\nlayers: [{name: a, command: c, frames: 1, depends: [b]}, {name: b, command: c, frames: 1, depends: [a]}]",
            "cycle",
        ),
        ("name: x\nlayers: [{name: a, command: c, frames: 1, depends: [zz]}]", "layers[0].depends[0]"),
    ] {
        let err = farm.kiln_fails(&["submit", &farm.write_spec("bad", spec)]);
        assert!(err.contains(field), "error names {field}: {err}");
    }
    assert_eq!(
        farm.json(&["jobs", "--all"]),
        serde_json::json!([]),
        "nothing half-created"
    );
}

#[test]
fn hosts_can_be_locked_and_logs_followed() {
    let farm = Farm::start(1, 2);
    farm.kiln(&["host", "lock", "w0"]);
    let job = farm.submit(
        "live",
        &one_layer(
            "live",
            "for i in 1 2 3; do echo line $i; sleep 0.4; done",
            "1",
        ),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        farm.frames(&job)[0]["state"],
        "WAITING",
        "a locked host takes nothing"
    );
    assert_eq!(farm.json(&["hosts"])[0]["lock"], "LOCKED");
    let early = farm.try_kiln(&["log", &job, "a/1"]);
    let early = String::from_utf8_lossy(&early.stderr);
    assert!(early.contains("has not run yet (WAITING)"), "{early}");
    // --follow waits for the frame to start, then reads through to its end.
    let unlock = std::thread::spawn({
        let url = farm.url();
        move || {
            std::thread::sleep(Duration::from_millis(700));
            cli(&url, &["host", "unlock", "w0"]).status().unwrap()
        }
    });
    let log = farm.kiln(&["log", &job, "a/1", "--follow"]);
    assert!(unlock.join().unwrap().success());
    for i in 1..=3 {
        assert!(log.contains(&format!("line {i}")), "{log}");
    }
    assert!(
        log.contains("runtime"),
        "follow reads through to the footer: {log}"
    );

    let err = farm.try_kiln(&["--server", "http://127.0.0.1:1", "jobs"]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("is `kiln server`"));
}

#[test]
fn a_root_worker_runs_frames_as_their_user_and_never_as_root() {
    if unsafe { libc::geteuid() } != 0 {
        skip("user switching needs the worker to run as root");
        return;
    }
    let mut farm = Farm::start(0, 1);
    farm.add_worker_with("safe", 2, &[]);
    farm.wait_hosts(1);
    let nobody = farm.submit(
        "nobody",
        "name: nobody\nuser: nobody\nlayers:\n  - name: a\n    command: 'id -u; echo HOME=$HOME'\n    frames: 1\n",
    );
    farm.wait_status(&nobody, "FINISHED", Duration::from_secs(20));
    let log = farm.kiln(&["log", &nobody, "a/1"]);
    assert!(log.contains("65534"), "ran as nobody: {log}");

    // Its outputs are read as it: what it wrote for itself alone (0600) is
    // previewed; a root-only image it names is not, though the worker
    // reading them runs as root.
    use std::os::unix::fs::PermissionsExt;
    let pics = farm.path("pics");
    std::fs::create_dir_all(&pics).unwrap();
    std::fs::set_permissions(farm.path(""), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&pics, std::fs::Permissions::from_mode(0o755)).unwrap();
    let grey = image::RgbImage::from_pixel(16, 16, image::Rgb([90, 90, 90]));
    for (name, mode) in [("src.png", 0o644), ("secret.png", 0o600)] {
        grey.save(pics.join(name)).unwrap();
        std::fs::set_permissions(pics.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let spec = format!(
        "name: seen\nuser: nobody\nlayers:\n  - name: a\n    command: 'umask 077; cp {src} mine.png'\n    frames: 1\n    outputs: [mine.png, {secret}]\n",
        src = pics.join("src.png").display(),
        secret = pics.join("secret.png").display()
    );
    let seen = farm.submit("seen", &spec);
    farm.wait_status(&seen, "FINISHED", Duration::from_secs(20));
    let f = &farm.frames(&seen)[0];
    assert_eq!(f["outputs"][0]["state"], "ok", "{f}");
    assert_eq!(f["outputs"][1]["state"], "unreadable", "{f}");
    assert!(
        f["outputs"][1]["detail"]
            .as_str()
            .unwrap()
            .contains("ermission denied"),
        "{f}"
    );

    // Root is refused at submit, before any worker sees it (the worker
    // refuses it too without --allow-root: runner tests).
    let spec = farm.write_spec(
        "root",
        "name: root\nuser: root\nlayers:\n  - name: a\n    command: 'id -u'\n    frames: 1\n    retries: 0\n",
    );
    let err = farm.kiln_fails(&["submit", &spec]);
    assert!(
        err.contains("no job may run as \"root\"") && err.contains("nothing was submitted"),
        "refused with the fix named: {err}"
    );
    assert!(!farm.kiln(&["jobs", "--all"]).contains("root"));

    let ghost = farm.submit(
        "ghost",
        "name: ghost\nuser: nosuchuser\nlayers:\n  - name: a\n    command: 'true'\n    frames: 1\n    retries: 0\n",
    );
    farm.wait_status(&ghost, "FAILED", Duration::from_secs(20));
    let log = farm.kiln(&["log", &ghost, "a/1"]);
    assert!(
        log.contains("nosuchuser") && log.contains("does not exist"),
        "{log}"
    );
}

#[test]
fn sigterm_stops_the_server_promptly_and_running_frames_survive_it() {
    let mut farm = Farm::start(1, 2);
    let job = farm.submit("term", &one_layer("term", "sleep 2", "1-2"));
    wait_until(Duration::from_secs(10), || {
        farm.frames(&job).iter().all(|f| f["state"] == "RUNNING")
    });
    let took = farm.term_server();
    assert!(
        took < Duration::from_secs(3),
        "stopped in {took:?} with a worker attached"
    );
    farm.start_server();
    farm.wait_status(&job, "FINISHED", Duration::from_secs(30));
    assert!(farm.frames(&job).iter().all(|f| f["attempts"] == 1));
}

#[test]
fn the_runnable_examples_run_to_completion() {
    let farm = Farm::start(1, 4);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    // resources.yaml needs GPUs and tags; retries-timeout.yaml fails on purpose.
    for (spec, name) in [
        ("chunks.yaml", "chunks"),
        ("frame-sets.yaml", "frame-sets"),
        ("dependencies.yaml", "dependencies"),
        ("env-and-argv.yaml", "env-and-argv"),
    ] {
        let out = farm.try_kiln(&["submit", root.join(spec).to_str().unwrap(), "--wait"]);
        assert!(
            out.status.success(),
            "{spec}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(farm.job_status(name), "FINISHED");
    }
    let log = farm.kiln(&["log", "chunks", "sim/11"]);
    assert!(log.contains("simulating 11-20: frames 11 to 20"), "{log}");
    let log = farm.kiln(&["log", "env-and-argv", "argv/2"]);
    assert!(log.contains("argv 2"), "{log}");
    let log = farm.kiln(&["log", "env-and-argv", "shell/1"]);
    assert!(log.contains("/shows/demo frame 1 of env-and-argv"), "{log}");

    // retries-timeout ends FAILED: frame 3 dead after 3 attempts, frame 4
    // timed out. Its failures are its own: with one host, avoiding it would
    // stall the job, so the job keeps using it.
    let out = farm.kiln(&[
        "submit",
        root.join("retries-timeout.yaml").to_str().unwrap(),
        "--json",
    ]);
    let job = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"].to_string();
    wait_until(Duration::from_secs(60), || {
        farm.job_status(&job) == "FAILED"
    });
    let detail = farm.json(&["job", &job]);
    assert_eq!(detail["avoid_hosts"], serde_json::json!([]), "{detail}");
    let frames = farm.frames(&job);
    assert_eq!(frames[2]["attempts"], 3);
    assert_eq!(frames[3]["outcome"], "TIMEDOUT");
}

#[test]
fn a_jobs_logs_are_searched_with_frame_names_by_those_who_may_read_them() {
    let farm = Farm::start(1, 4);
    let spec = "name: grepped\nlayers:\n  - name: render\n    command: 'echo start; if [ $KILN_FRAME = 2 ]; then echo \"ERROR: NaN in frame $KILN_FRAME\"; fi; echo done'\n    frames: 1-3\n  - name: comp\n    command: 'echo error in comp'\n    frames: 1\n";
    let job = farm.submit("grepped", spec);
    wait_until(Duration::from_secs(30), || {
        farm.job_status(&job) == "FINISHED"
    });

    // The whole job: each line with its frame and its line number in that
    // frame's log (`kiln log` shows the same line there); -i.
    let out = farm.kiln(&["grep", &job, "^error", "-i"]);
    let mut frames = Vec::new();
    for line in out.lines() {
        let (frame, rest) = line.split_once(':').unwrap();
        let (n, text) = rest.split_once(": ").unwrap();
        let log = farm.kiln(&["log", &job, frame]);
        let n: usize = n.parse().unwrap();
        assert_eq!(log.lines().nth(n - 1), Some(text), "{line} in\n{log}");
        frames.push(frame.to_string());
    }
    assert_eq!(frames, ["render/2", "comp/1"], "{out}");
    assert!(out.contains("ERROR: NaN in frame 2") && out.contains("error in comp"));
    // One layer, case kept; one frame's log through `kiln log --grep`.
    assert_eq!(
        farm.kiln(&["grep", &job, "^ERROR", "--layer", "comp"])
            .trim(),
        ""
    );
    let one = farm.kiln(&["log", &job, "render/2", "--grep", "^(ERROR|done)"]);
    let texts: Vec<&str> = one.lines().map(|l| l.split_once(": ").unwrap().1).collect();
    assert_eq!(texts, ["ERROR: NaN in frame 2", "done"], "{one}");
    let v = farm.json(&["grep", &job, "^done$"]);
    assert_eq!(v["logs"], 4, "{v}");
    assert_eq!(v["lines"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["truncated"], false);
    let v = farm.json(&["grep", &job, "^done$", "--max", "2"]);
    assert_eq!(v["lines"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["truncated"], true);

    // A pattern that is not one, a layer that does not exist: said, with
    // the field.
    let err = farm.kiln_fails(&["grep", &job, "(unclosed"]);
    assert!(err.contains("is not a regular expression"), "{err}");
    let err = farm.kiln_fails(&["grep", &job, "x", "--layer", "nope"]);
    assert!(err.contains("nope"), "{err}");
    // Whoever may not read the job's logs may not search them either.
    let carol = farm.user("carol", &["artist"]);
    let out = farm.kiln_as(Some(&carol), &["grep", &job, "error"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("carol (artist) may not read"), "{err}");
}
