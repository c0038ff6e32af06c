//! OpenJD job templates on a real farm: `kiln submit TEMPLATE -p ...`,
//! run by real workers, each task leaving marker lines; and the same
//! templates through the reference runner (`openjd run`, PyPI openjd-cli),
//! whose task outputs must be the same.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn template(name: &str) -> String {
    format!("{}/tests/openjd/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A fresh output directory for marker files, with its `traces/`.
fn out_dir(farm: &Farm, name: &str) -> String {
    let d = farm.path(name);
    std::fs::create_dir_all(d.join("traces")).unwrap();
    d.to_str().unwrap().to_owned()
}

/// Submits a template with `args`, returns the job id.
fn submit(farm: &Farm, file: &str, args: &[&str]) -> String {
    let path = template(file);
    let mut a = vec!["submit", path.as_str(), "--json"];
    a.extend_from_slice(args);
    let v: serde_json::Value = serde_json::from_str(&farm.kiln(&a)).unwrap();
    v["id"].to_string()
}

fn lines(p: &Path) -> Vec<String> {
    read(p).lines().map(str::to_owned).collect()
}

/// The render lines the features template's tasks must write, one each.
fn expected_renders(shot: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for frame in [1, 3, 5] {
        for (cam, lens) in [("left", "1.5"), ("right", "2.5")] {
            for pass in ["beauty", "fx 'dir'"] {
                out.insert(format!(
                    "render frame={frame} cam={cam} lens={lens} pass={pass} shot={shot} \
                     scale=0.5 env=job-{shot}/step/hello there"
                ));
            }
        }
    }
    out
}

/// Checks the features template's markers in `out`: every render task
/// once, with its values; both encode tasks after every render.
fn check_features(out: &Path, shot: &str) -> Vec<String> {
    let all = lines(&out.join("tasks.log"));
    let renders: Vec<String> = all
        .iter()
        .filter(|l| l.starts_with("render"))
        .cloned()
        .collect();
    let set: BTreeSet<String> = renders.iter().cloned().collect();
    assert_eq!(set.len(), renders.len(), "a task ran twice: {all:#?}");
    assert_eq!(set, expected_renders(shot), "{all:#?}");
    let encodes: BTreeSet<&str> = all
        .iter()
        .filter(|l| l.starts_with("encode"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        encodes,
        BTreeSet::from(["encode n=1 saw=12", "encode n=2 saw=12"]),
        "the encode step must run once per task, after every render: {all:#?}"
    );
    all
}

#[test]
fn a_template_runs_every_task_once_in_its_sessions_and_step_order() {
    // Slots for every task at once: only the step dependency holds the
    // encode tasks back until every render task is done.
    let farm = Farm::start(2, 8);
    let out = out_dir(&farm, "features");
    let job = submit(
        &farm,
        "features.yaml",
        &[
            "-p",
            &format!("Out={out}"),
            "-p",
            "Shot=sh020",
            "--priority",
            "70",
        ],
    );
    farm.wait_status(&job, "FINISHED", Duration::from_secs(60));
    assert_eq!(
        farm.job_status(&job),
        "FINISHED",
        "{:#?}",
        farm.frames(&job)
    );
    check_features(Path::new(&out), "sh020");
    let detail = farm.json(&["job", &job]);
    assert_eq!(detail["job"]["name"], "Features_sh020", "{detail}");
    assert_eq!(detail["job"]["priority"], 70, "{detail}");
    // Each task is its own session: the job's environment, then the
    // step's, the task, then their exits in reverse order.
    let mut traces: Vec<Vec<String>> = std::fs::read_dir(Path::new(&out).join("traces"))
        .unwrap()
        .map(|e| lines(&e.unwrap().path()))
        .collect();
    traces.sort();
    assert_eq!(traces.len(), 14, "one session per task: {traces:#?}");
    let encode = vec!["enter-job".to_string(), "exit-job".into()];
    assert_eq!(
        traces.iter().filter(|t| **t == encode).count(),
        2,
        "{traces:#?}"
    );
    for f in [1, 3, 5] {
        let render: Vec<String> = [
            "enter-job",
            "enter-step",
            &format!("task {f}"),
            "exit-step",
            "exit-job",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            traces.iter().filter(|t| **t == render).count(),
            4,
            "frame {f}: {traces:#?}"
        );
    }
}

#[test]
fn a_failing_task_fails_its_frame_and_its_exit_action_still_runs() {
    let farm = Farm::start(1, 3);
    let out = out_dir(&farm, "failing");
    let job = submit(
        &farm,
        "failing.yaml",
        &["-p", &format!("Out={out}"), "--retries", "0"],
    );
    farm.wait_status(&job, "FAILED", Duration::from_secs(60));
    let mut ran = lines(&Path::new(&out).join("ran.log"));
    ran.sort();
    assert_eq!(ran, ["ran 1", "ran 2", "ran 3"], "each task once");
    let mut exits = lines(&Path::new(&out).join("exits.log"));
    exits.sort();
    assert_eq!(
        exits,
        ["exit 1", "exit 2", "exit 3"],
        "every session exits its environment"
    );
    let frames = farm.frames(&job);
    let states: Vec<String> = frames
        .iter()
        .map(|f| {
            format!(
                "{}/{} {}",
                f["layer"].as_str().unwrap_or("?"),
                f["number"],
                f["state"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert_eq!(
        states,
        ["Work/1 SUCCEEDED", "Work/2 DEAD", "Work/3 SUCCEEDED"],
        "{frames:#?}"
    );
    assert_eq!(
        frames[1]["exit_status"], 1,
        "the task's status is the frame's"
    );
}

#[test]
fn a_bad_parameter_is_refused_naming_it_and_nothing_is_submitted() {
    let farm = Farm::start(0, 1);
    let path = template("features.yaml");
    let err = farm.kiln_fails(&["submit", &path, "-p", "Out=/tmp", "-p", "Shot=sh999"]);
    assert!(
        err.contains("parameter Shot") && err.contains("allowedValues"),
        "{err}"
    );
    assert!(err.contains("nothing was submitted"), "{err}");
    let err = farm.kiln_fails(&["submit", &path, "-p", "Shot=sh010"]);
    assert!(
        err.contains("parameter Out") && err.contains("-p Out=VALUE"),
        "{err}"
    );
    let spec = farm.write_spec("plain", one_layer("plain", "true", "1"));
    let err = farm.kiln_fails(&["submit", &spec, "-p", "X=1"]);
    assert!(err.contains("apply only to OpenJD job templates"), "{err}");
    assert_eq!(farm.json(&["jobs", "--all"]), serde_json::json!([]));
    let help = farm.kiln(&["submit", "--help"]);
    assert!(
        help.contains("--param <NAME=VALUE>") && help.contains("OpenJD"),
        "{help}"
    );
}

/// The parameter file and Kiln's own settings through `--param-file`,
/// `--show`: values from the file, `-p` winning over it.
#[test]
fn a_param_file_gives_values_and_p_wins() {
    let farm = Farm::start(1, 4);
    let out = out_dir(&farm, "pf");
    let file = farm.write_spec(
        "params",
        format!("Out: {out}\nShot: sh010\nFrames: '1-5:2'\n"),
    );
    let job = submit(
        &farm,
        "features.yaml",
        &["--param-file", &file, "-p", "Shot=sh020"],
    );
    farm.wait_status(&job, "FINISHED", Duration::from_secs(60));
    check_features(Path::new(&out), "sh020");
}

/// The reference runner and Kiln make the same task outputs from the same
/// template and parameters.
#[test]
fn kiln_and_the_reference_runner_make_the_same_task_outputs() {
    let reference = Command::new("openjd").arg("--help").output();
    if !reference.is_ok_and(|o| o.status.success()) {
        skip("the reference runner `openjd` (pip install openjd-cli) is not installed");
        return;
    }
    let farm = Farm::start(2, 2);
    let ours = out_dir(&farm, "kiln");
    let theirs = out_dir(&farm, "openjd");
    let job = submit(
        &farm,
        "features.yaml",
        &["-p", &format!("Out={ours}"), "-p", "Shot=sh020"],
    );
    let run = Command::new("openjd")
        .args([
            "run",
            &template("features.yaml"),
            "-p",
            &format!("Out={theirs}"),
            "-p",
            "Shot=sh020",
        ])
        .current_dir(farm.path(""))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "openjd run: {}",
        String::from_utf8_lossy(&run.stdout)
    );
    farm.wait_status(&job, "FINISHED", Duration::from_secs(60));
    let mut a = check_features(Path::new(&ours), "sh020");
    let mut b = check_features(Path::new(&theirs), "sh020");
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

/// A step of 60,000 tasks: the frame's command holds each parameter's
/// values once, not every task's, so it stays far below the kernel's
/// 128 KiB cap on one argument, and the first frames run with their values.
#[test]
fn a_step_of_many_tasks_runs_its_frames() {
    let farm = Farm::start(1, 2);
    let out = out_dir(&farm, "many");
    let job = submit(
        &farm,
        "many.yaml",
        &["-p", &format!("Out={out}"), "--retries", "0"],
    );
    let log = Path::new(&out).join("ran.log");
    wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 4)
    });
    farm.kiln(&["kill", &job]);
    let ran: BTreeSet<String> = lines(&log).into_iter().collect();
    for f in 1..=4 {
        assert!(
            ran.contains(&format!("{f} beauty_with_a_long_name")),
            "{ran:?}"
        );
    }
    let frames = farm.frames(&job);
    assert_eq!(frames.len(), 60_000);
    assert!(
        frames.iter().all(|f| f["state"] != "DEAD"),
        "no frame failed"
    );
}

/// Killing a running frame still exits its session's environments.
#[test]
fn a_killed_task_still_exits_its_environments() {
    let farm = Farm::start(1, 1);
    let out = out_dir(&farm, "killed");
    let job = submit(&farm, "killed.yaml", &["-p", &format!("Out={out}")]);
    let log = Path::new(&out).join("exits.log");
    wait_until(Duration::from_secs(30), || {
        read_opt(&log).contains("started")
    });
    farm.kiln(&["kill", &job]);
    wait_until(Duration::from_secs(10), || {
        read_opt(&log).contains("exited")
    });
    assert_eq!(lines(&log), ["started", "exited"]);
}

fn read_opt(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// An action's `timeout` ends it the way its `cancelation` says: SIGTERM
/// first for NOTIFY_THEN_TERMINATE, and the task fails.
#[test]
fn an_action_past_its_timeout_is_notified_then_fails() {
    let farm = Farm::start(1, 1);
    let out = out_dir(&farm, "timeout");
    let job = submit(
        &farm,
        "timeout.yaml",
        &["-p", &format!("Out={out}"), "--retries", "0"],
    );
    let t = std::time::Instant::now();
    farm.wait_status(&job, "FAILED", Duration::from_secs(20));
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "ended by its timeout, not the sleep"
    );
    assert_eq!(lines(&Path::new(&out).join("log")), ["notified"]);
}
