//! A frame's processes live and die with its attempt: end to end, with the
//! real `kiln` binary, frames whose work runs in a child of a wrapper
//! script (as studios launch renderers), and workers that are killed,
//! frozen and restarted. Each run of a frame appends timestamps to its own
//! file every 0.2 s; the files tell whether two runs ever overlapped and
//! how many ran to the end.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

/// A wrapper that starts the "renderer" as its child (no exec), which
/// ticks 30 times 0.2 s apart into `<marks>/ticks.<attempt id>` (and
/// `tick N` into its log) and then appends the attempt id to `<marks>/done`.
fn wrapper(farm: &Farm) -> String {
    let marks = farm.path("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let script = farm.path("render.sh");
    std::fs::write(
        &script,
        r#"sh -c 'i=0; while [ $i -lt 30 ]; do echo tick $i; date +%s%N >> "$0/ticks.$KILN_ATTEMPT_ID"; sleep 0.2; i=$((i+1)); done; echo $KILN_ATTEMPT_ID >> "$0/done"' "$1"
echo "renderer exited: $?"
"#,
    )
    .unwrap();
    format!(
        "name: wrapped\nlayers:\n  - name: a\n    command: 'sh {} {}'\n    frames: 1\n",
        script.display(),
        marks.display()
    )
}

/// Each run's first and last tick (ns).
fn runs(marks: &Path) -> Vec<(String, u128, u128)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(marks).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(attempt) = name.strip_prefix("ticks.") else {
            continue;
        };
        let ticks: Vec<u128> = read(&e.path())
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if let (Some(a), Some(b)) = (ticks.iter().min(), ticks.iter().max()) {
            out.push((attempt.to_owned(), *a, *b));
        }
    }
    out
}

/// Milliseconds during which two runs of the frame ran at once.
fn overlap_ms(marks: &Path) -> u128 {
    let r = runs(marks);
    let mut total = 0;
    for (i, a) in r.iter().enumerate() {
        for b in &r[i + 1..] {
            let (from, to) = (a.1.max(b.1), a.2.min(b.2));
            total += to.saturating_sub(from) / 1_000_000;
        }
    }
    total
}

fn wait_ticks(farm: &Farm, n: usize) {
    wait_until(Duration::from_secs(20), || {
        runs(&farm.path("marks")).iter().any(|r| {
            let ticks = read(&farm.path(&format!("marks/ticks.{}", r.0)));
            ticks.lines().count() >= n
        })
    });
}

/// The worker the frame runs on (`w<i>`), by index.
fn frame_worker(farm: &Farm, job: &str) -> usize {
    let f = &farm.frames(job)[0];
    let host = f["host"].as_str().unwrap_or_default();
    host.trim_start_matches('w').parse().unwrap()
}

/// SIGKILLs the worker the job's first frame runs on.
fn sigkill_frames_worker(farm: &mut Farm, job: &str) {
    let w = frame_worker(farm, job);
    farm.workers[w].kill().unwrap();
    farm.workers[w].wait().unwrap();
}

/// Overlap must be nil, and exactly one run must have finished.
fn ran_once(farm: &Farm, job: &str, case: &str) {
    farm.wait_status(job, "FINISHED", Duration::from_secs(40));
    // A run that survived would still be ticking: give it the time to show.
    std::thread::sleep(Duration::from_millis(1500));
    let marks = farm.path("marks");
    let overlap = overlap_ms(&marks);
    let done = read(&marks.join("done"));
    let mut r = runs(&marks);
    r.sort_by_key(|r| r.1);
    let gaps: Vec<String> = r
        .windows(2)
        .map(|w| format!("{} ms", (w[1].1 as i128 - w[0].2 as i128) / 1_000_000))
        .collect();
    eprintln!(
        "{case}: {} run(s), overlap {overlap} ms, gap between runs {gaps:?}, finished {} time(s)",
        r.len(),
        done.lines().count()
    );
    assert_eq!(overlap, 0, "{case}: two runs of the frame overlapped");
    assert_eq!(done.lines().count(), 1, "{case}: finished runs: {done}");
    assert_eq!(farm.frames(job)[0]["state"], "SUCCEEDED");
}

#[test]
fn a_sigkilled_worker_leaves_no_frame_running_when_it_is_requeued() {
    let mut farm = Farm::start_with(2, 1, "3s");
    let job = farm.submit("wrapped", &wrapper(&farm));
    wait_ticks(&farm, 3);
    sigkill_frames_worker(&mut farm, &job);
    ran_once(&farm, &job, "worker SIGKILLed");
}

/// The same where no cgroup is used: the frame's process group is killed.
#[test]
fn without_cgroups_a_sigkilled_worker_leaves_no_frame_running() {
    let mut farm = Farm::start_with(0, 1, "3s");
    for w in ["w0", "w1"] {
        farm.add_worker_with(w, 1, &["--allow-root", "--run-as-self", "--no-cgroups"]);
    }
    farm.wait_hosts(2);
    let job = farm.submit("wrapped", &wrapper(&farm));
    wait_ticks(&farm, 3);
    sigkill_frames_worker(&mut farm, &job);
    ran_once(&farm, &job, "worker SIGKILLed, no cgroups");
    let log = read(&farm.path("worker-w0.log"));
    assert!(log.contains("frames run in process groups only"), "{log}");
}

#[test]
fn a_frozen_worker_leaves_no_frame_running_when_it_is_requeued() {
    let farm = Farm::start_with(2, 1, "3s");
    let job = farm.submit("wrapped", &wrapper(&farm));
    wait_ticks(&farm, 3);
    let w = frame_worker(&farm, &job);
    let pid = farm.workers[w].id() as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    farm.wait_status(&job, "FINISHED", Duration::from_secs(40));
    let other = farm.frames(&job)[0]["host"].as_str().unwrap().to_owned();
    assert_ne!(other, format!("w{w}"), "the frame ran again elsewhere");
    ran_once(&farm, &job, "worker SIGSTOPped");
    unsafe { libc::kill(pid, libc::SIGCONT) };
}

#[test]
fn a_worker_restarted_at_once_adopts_its_running_frame() {
    let mut farm = Farm::start_with(1, 1, "6s");
    // It declares an output it never writes: the worker that adopted it
    // still looks, from what the first worker recorded of its launch.
    let spec = wrapper(&farm) + "    outputs: [never-written.exr]\n";
    let job = farm.submit("wrapped", &spec);
    wait_ticks(&farm, 3);
    farm.workers[0].kill().unwrap();
    farm.workers[0].wait().unwrap();
    farm.add_worker("w0", 1);
    ran_once(&farm, &job, "worker SIGKILLed and restarted");
    let f = &farm.frames(&job)[0];
    assert_eq!(f["attempts"], 1, "the frame ran on, once: {f}");
    assert_eq!(f["outputs"][0]["state"], "missing", "{f}");
    assert_eq!(f["flag"], "never-written.exr is missing", "{f}");
    assert_eq!(runs(&farm.path("marks")).len(), 1);
    // Its log is whole: every line once, then the footer.
    let log = farm.kiln(&["log", &job, "a/1"]);
    for i in 0..30 {
        let line = format!("tick {i}");
        assert_eq!(
            log.lines().filter(|l| *l == line).count(),
            1,
            "{line}: {log}"
        );
    }
    assert!(log.contains("exit status: 0"), "{log}");
}

/// A worker stopped with SIGTERM still announces it and kills its frames,
/// whole, before it exits: their supervisors do not keep them running.
#[test]
fn a_worker_stopped_with_sigterm_kills_its_frames_whole() {
    let mut farm = Farm::start(1, 1);
    let job = farm.submit("wrapped", &wrapper(&farm));
    wait_ticks(&farm, 3);
    let mut w = farm.workers.remove(0);
    unsafe { libc::kill(w.id() as i32, libc::SIGTERM) };
    assert!(
        wait_exit(&mut w, Duration::from_secs(15)).is_some(),
        "the worker ignored SIGTERM"
    );
    let marks = farm.path("marks");
    let ticks = |m: &Path| runs(m).iter().map(|r| r.2).max().unwrap_or(0);
    let last = ticks(&marks);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        ticks(&marks),
        last,
        "the frame ticks on after its worker stopped"
    );
    assert!(read(&marks.join("done")).is_empty());
    assert!(farm.supervisors().is_empty(), "a frame supervisor is left");
    wait_until(Duration::from_secs(10), || {
        farm.frames(&job)[0]["state"] == "WAITING"
    });
}

/// Whether the farm's first worker found cgroups (`memory`: with a memory
/// controller); tests that need them are skipped where it did not (not root).
fn worker_has_cgroups(farm: &Farm, memory: bool) -> bool {
    let log = read(&farm.path("worker-w0.log"));
    let found =
        log.contains("frames run in cgroup") && (!memory || log.contains("memory capped by"));
    if !found {
        skip("the worker found no cgroups to use here");
    }
    found
}

#[test]
fn killing_a_frame_kills_processes_that_left_its_group() {
    let farm = Farm::start(1, 1);
    if !worker_has_cgroups(&farm, false) {
        return;
    }
    let marks = farm.path("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let script = farm.path("escape.sh");
    // A daemonising child: its own session, so not in the frame's group.
    std::fs::write(
        &script,
        "setsid sh -c 'sleep 1000 & echo $! > \"$0/escaped.tmp\"; mv \"$0/escaped.tmp\" \"$0/escaped\"' \"$1\"\nsleep 1000\n",
    )
    .unwrap();
    let job = farm.submit(
        "escape",
        &format!(
            "name: escape\nlayers:\n  - name: a\n    command: 'sh {} {}'\n    frames: 1\n",
            script.display(),
            marks.display()
        ),
    );
    wait_until(Duration::from_secs(20), || marks.join("escaped").exists());
    let pid: i32 = read(&marks.join("escaped")).trim().parse().unwrap();
    assert!(alive(pid));
    farm.kiln(&["kill", &job]);
    farm.wait_status(&job, "KILLED", Duration::from_secs(10));
    wait_until(Duration::from_secs(10), || {
        farm.json(&["hosts"])[0]["running"] == 0
    });
    let gone = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        !alive(pid)
    });
    if !gone {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert!(
        gone,
        "a process the frame started in its own session survived the frame's kill"
    );
}

/// A leak faster than the worker's sampling is stopped by the kernel at the
/// frame's cgroup cap, in the frame's supervisor, and reported as OOM: the
/// server then retries the frame with more memory.
#[test]
fn a_fast_leak_is_stopped_by_the_kernel_and_reported_oom() {
    let farm = Farm::start(1, 1);
    if !worker_has_cgroups(&farm, true) {
        return;
    }
    let job = farm.submit(
        "leak",
        &(one_layer("leak", "head -c 400M /dev/zero | tail", "1")
            + "    memory: 64M\n    retries: 0\n"),
    );
    // The first attempt is OOM, and the server retries with more memory.
    wait_until(Duration::from_secs(20), || {
        farm.frames(&job)[0]["attempts"].as_u64() >= Some(2)
    });
    let log = farm.kiln(&["log", &job, "a/1", "--attempt", "1"]);
    assert!(log.contains("killed: out of memory"), "{log}");
    let rss: u64 = log
        .lines()
        .find_map(|l| l.strip_prefix("max rss: "))
        .and_then(|v| v.strip_suffix('M'))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(f64::MAX) as u64;
    assert!(rss < 128, "capped near its reservation: {log}");
    let f = &farm.frames(&job)[0];
    assert!(f["memory_kb"].as_u64().unwrap() > 64 << 10, "{f}");
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_owned()))
        .is_some_and(|st| !st.starts_with('Z') && !st.starts_with('X'))
}

/// The job's environment reaches the frame but not its supervisor, which
/// runs as the worker's user (root, when frames switch user): a job's
/// LD_PRELOAD must not load code into it.
#[test]
fn the_jobs_environment_reaches_the_frame_not_its_supervisor() {
    let farm = Farm::start(1, 1);
    let out = farm.path("seen");
    let job = farm.submit(
        "env",
        &format!(
            "name: env\nenv: {{KILN_TEST_SECRET: s3cret, LD_PRELOAD: /nonexistent/kiln-test.so}}\n\
             layers:\n  - name: a\n    command: 'echo \"$KILN_TEST_SECRET\" > {}; sleep 30'\n    frames: 1\n",
            out.display()
        ),
    );
    wait_until(Duration::from_secs(20), || read(&out).trim() == "s3cret");
    let pids = farm.supervisors();
    assert_eq!(pids.len(), 1, "one frame, one supervisor");
    let environ = std::fs::read(format!("/proc/{}/environ", pids[0])).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        !environ.contains("KILN_TEST_SECRET") && !environ.contains("LD_PRELOAD"),
        "the supervisor holds the job's environment: {environ}"
    );
    farm.kiln(&["kill", &job]);
}
