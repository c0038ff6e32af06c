//! Runs real frames through the runner: exits, logs, environment, timeouts,
//! kills, memory, and user switching (the last only when the tests run as
//! root).

use kiln_core::model::{AttemptId, Command};
use kiln_worker::procfs;
use kiln_worker::runner::{Exit, Finished, Launch, Runner, RunnerConfig};
use kiln_worker::users;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const REFUSAL: &str =
    "refusing to run as root (uid 0): start the worker with --allow-root to allow it";

struct Rig {
    dir: tempfile::TempDir,
    runner: Runner,
    rx: mpsc::UnboundedReceiver<Finished>,
}

fn rig(tune: impl FnOnce(&mut RunnerConfig)) -> Rig {
    rig_gpus(0, tune)
}

fn rig_gpus(gpus: u32, tune: impl FnOnce(&mut RunnerConfig)) -> Rig {
    rig_in(&std::env::temp_dir(), gpus, tune)
}

fn rig_in(base: &Path, gpus: u32, tune: impl FnOnce(&mut RunnerConfig)) -> Rig {
    let dir = tempfile::tempdir_in(base).unwrap();
    // Frames run as `nobody` must reach their scratch dir under it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cfg = RunnerConfig {
        work_dir: dir.path().join("work"),
        switch_user: false,
        allow_root: true,
        host_name: "h1".into(),
        kill_grace: Duration::from_millis(200),
        cgroups: true,
        shim: None,
        lease_file: None,
        min_available_kb: 0,
    };
    tune(&mut cfg);
    let (tx, rx) = mpsc::unbounded_channel();
    Rig {
        runner: Runner::new(cfg, gpus, tx),
        dir,
        rx,
    }
}

/// Skips a test this machine cannot run (no root, no cgroups, no tmpfs)
/// with a line saying why; under CI (`CI` set), where every test must run
/// for real, fails instead.
fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run this test for real, but {why}"
    );
    eprintln!("skipped: {why}");
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

impl Rig {
    fn frame(&self, attempt: i64, command: Command) -> Launch {
        Launch {
            attempt: AttemptId(attempt),
            job_name: "fractal".into(),
            frame_label: format!("render/{attempt}"),
            command,
            env: Vec::new(),
            cwd: None,
            user: "alice".into(),
            timeout: None,
            gpus: 0,
            memory_limit_kb: None,
            log_path: self.dir.path().join("logs").join(format!("{attempt}.log")),
            outputs: Vec::new(),
        }
    }

    async fn next(&mut self) -> Finished {
        tokio::time::timeout(Duration::from_secs(30), self.rx.recv())
            .await
            .expect("frame did not finish in 30s")
            .expect("runner dropped its sender")
    }

    /// Runs one frame to its end; returns how it ended and its log.
    async fn run(&mut self, l: Launch) -> (Finished, String) {
        let attempt = l.attempt;
        let log = l.log_path.clone();
        self.runner.launch(l);
        let f = self.next().await;
        assert_eq!(f.attempt, attempt);
        assert!(!self.runner.is_running(attempt));
        (f, std::fs::read_to_string(log).unwrap_or_default())
    }
}

fn sh(s: &str) -> Command {
    Command::Shell(s.into())
}

fn argv(v: &[&str]) -> Command {
    Command::Argv(v.iter().map(|s| s.to_string()).collect())
}

/// The frame's process group, which the frame printed as `pgid=N`.
fn pgid_in(log: &str) -> i32 {
    log.lines()
        .find_map(|l| l.strip_prefix("pgid="))
        .expect("frame printed its pgid")
        .trim()
        .parse()
        .unwrap()
}

/// SIGKILLed processes take a moment to be gone.
async fn group_gone(pgid: i32) -> bool {
    for _ in 0..100 {
        if !procfs::group_alive(pgid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn exit_codes_and_signals() {
    let mut r = rig(|_| {});
    let (f, _) = r.run(r.frame(1, sh("exit 0"))).await;
    assert_eq!(f.exit, Exit::Exited(0));
    assert!(f.exit.succeeded());
    assert!(f.started_at > 0 && f.ended_at >= f.started_at);
    let (f, log) = r.run(r.frame(2, sh("exit 3"))).await;
    assert_eq!(f.exit, Exit::Exited(3));
    assert!(log.contains("exit status: 3"), "{log}");
    let (f, log) = r.run(r.frame(3, sh("kill -SEGV $$"))).await;
    assert_eq!(f.exit, Exit::Signaled(libc::SIGSEGV));
    assert!(log.contains("killed by signal 11 (SIGSEGV)"), "{log}");
    let (f, log) = r.run(r.frame(4, argv(&["kiln-no-such-program"]))).await;
    match f.exit {
        // The job's own error, not the host's.
        Exit::JobCannotStart(m) => assert!(m.contains("kiln-no-such-program"), "{m}"),
        e => panic!("{e:?}"),
    }
    assert!(log.contains("failed to start: cannot run"), "{log}");
}

#[tokio::test]
async fn argv_runs_without_a_shell() {
    let mut r = rig(|_| {});
    let (f, log) = r
        .run(r.frame(1, argv(&["echo", "a  b", "$HOME", "*"])))
        .await;
    assert_eq!(f.exit, Exit::Exited(0));
    assert!(log.contains("\na  b $HOME *\n"), "{log}");
    assert!(log.contains("command: echo 'a  b' '$HOME' '*'\n"), "{log}");
    let (_, log) = r.run(r.frame(2, sh("echo $((1+2))"))).await;
    assert!(log.contains("\n3\n"), "{log}");

    // A bare program name is looked up in the frame's PATH, not the worker's.
    let bin = r.dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(bin.join("kiln-hello"), "#!/bin/sh\necho hello from $0\n").unwrap();
    std::fs::set_permissions(
        bin.join("kiln-hello"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let mut l = r.frame(3, argv(&["kiln-hello"]));
    l.env = vec![(
        "PATH".into(),
        format!("/nowhere:{}:/usr/bin:/bin", bin.display()),
    )];
    let (f, log) = r.run(l).await;
    assert_eq!(f.exit, Exit::Exited(0), "{log}");
    assert!(
        log.contains(&format!("\nhello from {}/kiln-hello\n", bin.display())),
        "{log}"
    );
}

#[tokio::test]
async fn env_cwd_and_scratch() {
    let mut r = rig_gpus(4, |_| {});
    let cwd = r.dir.path().join("shot");
    std::fs::create_dir(&cwd).unwrap();
    let mut l = r.frame(
        1,
        sh("echo foo=$FOO; echo pwd=$(pwd); echo user=$USER; echo gpus=$KILN_GPUS/$CUDA_VISIBLE_DEVICES; env"),
    );
    l.env = vec![
        ("FOO".into(), "bar baz".into()),
        ("KILN_FRAME".into(), "12".into()),
    ];
    l.cwd = Some(cwd.clone());
    l.gpus = 2;
    let (f, log) = r.run(l).await;
    assert_eq!(f.exit, Exit::Exited(0), "{log}");
    assert!(log.contains("\nfoo=bar baz\n"), "{log}");
    assert!(log.contains(&format!("\npwd={}\n", cwd.display())), "{log}");
    assert!(log.contains("\ngpus=0,1/0,1\n"), "{log}");
    assert!(log.contains("\nKILN_FRAME=12\n"), "{log}");
    assert!(log.contains("\nPATH="), "{log}");
    // The worker's own environment does not leak into frames.
    assert!(!log.contains("CARGO_"), "{log}");

    // No cwd: a scratch dir made for the frame and removed after it.
    let (f, log) = r.run(r.frame(2, sh("echo pwd=$(pwd); touch junk"))).await;
    assert_eq!(f.exit, Exit::Exited(0), "{log}");
    let scratch = r.dir.path().join("work/frames/2");
    assert!(
        log.contains(&format!("\npwd={}\n", scratch.display())),
        "{log}"
    );
    assert!(!scratch.exists());
    // GPUs were given back: two frames of 2 on a 4-GPU host both get 0,1.
    let mut l = r.frame(3, sh("echo gpus=$KILN_GPUS"));
    l.gpus = 2;
    let (_, log) = r.run(l).await;
    assert!(log.contains("\ngpus=0,1\n"), "{log}");
    let mut l = r.frame(4, sh("true"));
    l.gpus = 5;
    let (f, _) = r.run(l).await;
    assert!(
        matches!(f.exit, Exit::FailedToStart(ref m) if m.contains("GPUs")),
        "{f:?}"
    );
}

#[tokio::test]
async fn outputs_are_checked_after_a_clean_exit_before_the_scratch_dir_goes() {
    use kiln_core::output::OutputState;
    let mut r = rig(|_| {});
    let black = r.dir.path().join("black.png");
    image::RgbImage::new(16, 9).save(&black).unwrap();
    // Written in its scratch directory (relative paths are the frame's),
    // which is removed once the frame is over: checked before that.
    let mut l = r.frame(
        1,
        sh(&format!(
            "mkdir out && cp {} out/b.0001.png",
            black.display()
        )),
    );
    l.outputs = vec!["out/b.0001.png".into(), "out/none.png".into()];
    let (f, log) = r.run(l).await;
    assert_eq!(f.exit, Exit::Exited(0), "{log}");
    let states: Vec<_> = f.outputs.iter().map(|o| o.check.state).collect();
    assert_eq!(states, [OutputState::Black, OutputState::Missing]);
    assert_eq!(f.outputs[0].check.path, "out/b.0001.png");
    assert_eq!(
        (f.outputs[0].check.width, f.outputs[0].check.height),
        (16, 9)
    );
    let thumb = f.outputs[0].thumbnail.as_ref().expect("a thumbnail");
    assert_eq!(image::load_from_memory(thumb).unwrap().width(), 16);
    assert!(!r.dir.path().join("work/frames/1").exists());
    // A frame that failed is not looked at: it is retried whatever it left.
    let mut l = r.frame(2, sh(&format!("cp {} b.png; exit 3", black.display())));
    l.outputs = vec!["b.png".into()];
    let (f, _) = r.run(l).await;
    assert_eq!(f.exit, Exit::Exited(3));
    assert!(f.outputs.is_empty());
}

#[tokio::test]
async fn log_has_header_output_and_footer() {
    let mut r = rig(|_| {});
    let mut l = r.frame(42, sh("echo out; echo err >&2"));
    l.frame_label = "render/12".into();
    l.log_path = r.dir.path().join("deep/er/logs/42.log");
    let (f, log) = r.run(l).await;
    assert_eq!(f.exit, Exit::Exited(0));
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines[0],
        "=== kiln frame render/12 of job fractal, attempt id 42"
    );
    assert_eq!(lines[1], "host: h1");
    assert!(lines[2].starts_with("user: "), "{log}");
    assert_eq!(lines[3], "command: echo out; echo err >&2");
    assert!(lines[4].starts_with("cwd: /"), "{log}");
    let started = lines[5].strip_prefix("started: ").expect("started line");
    assert!(
        started.len() == 20 && started.ends_with('Z') && &started[10..11] == "T",
        "{started}"
    );
    assert_eq!(lines[6], "===");
    assert!(lines.contains(&"out") && lines.contains(&"err"), "{log}");
    let end = lines
        .iter()
        .position(|l| *l == "=== kiln frame ended")
        .unwrap();
    assert!(end > 6);
    assert_eq!(lines[end + 1], "exit status: 0");
    assert!(lines[end + 2].starts_with("ended: "));
    assert!(lines[end + 3].starts_with("runtime: ") && lines[end + 3].ends_with('s'));
    assert!(lines[end + 4].starts_with("max rss: "));
    assert!(lines[end + 5].starts_with("cpu time: "));
    assert_eq!(lines.last(), Some(&"==="));
}

#[tokio::test]
async fn log_is_readable_while_the_frame_runs() {
    let mut r = rig(|_| {});
    let l = r.frame(1, sh("echo early; sleep 0.5; echo late"));
    let path = l.log_path.clone();
    r.runner.launch(l);
    assert_eq!(r.runner.log_path(AttemptId(1)), Some(path.clone()));
    let t = Instant::now();
    loop {
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        if log.lines().any(|l| l == "early") {
            assert!(!log.lines().any(|l| l == "late"), "{log}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "no output yet: {log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(r.runner.is_running(AttemptId(1)));
    assert_eq!(r.next().await.exit, Exit::Exited(0));
    assert_eq!(r.runner.log_path(AttemptId(1)), None);
}

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let mut r = rig(|_| {});
    let mut l = r.frame(1, sh("echo pgid=$$; sleep 100 & sleep 100"));
    l.timeout = Some(Duration::from_millis(500));
    let t = Instant::now();
    let (f, log) = r.run(l).await;
    assert_eq!(f.exit, Exit::TimedOut);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(log.contains("\ntimed out after 0.5s\n"), "{log}");
    assert!(
        group_gone(pgid_in(&log)).await,
        "a sleep of the frame survived"
    );
}

#[tokio::test]
async fn timeout_escalates_to_sigkill() {
    let mut r = rig(|_| {});
    let mut l = r.frame(1, sh("trap '' TERM; echo pgid=$$; sleep 100 & sleep 100"));
    l.timeout = Some(Duration::from_millis(300));
    let t = Instant::now();
    let (f, log) = r.run(l).await;
    assert_eq!(f.exit, Exit::TimedOut);
    // 300 ms timeout, 200 ms grace.
    assert!(
        t.elapsed() >= Duration::from_millis(450),
        "{:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(group_gone(pgid_in(&log)).await);
}

#[tokio::test]
async fn background_children_do_not_outlive_their_frame() {
    let mut r = rig(|_| {});
    let (f, log) = r.run(r.frame(1, sh("echo pgid=$$; sleep 100 &"))).await;
    assert_eq!(f.exit, Exit::Exited(0));
    assert!(group_gone(pgid_in(&log)).await);
}

#[tokio::test]
async fn kill_ends_a_frame() {
    let mut r = rig(|_| {});
    assert!(!r.runner.kill(AttemptId(1), "nothing there"));
    let l = r.frame(1, sh("echo pgid=$$; sleep 100 & sleep 100"));
    let log_path = l.log_path.clone();
    r.runner.launch(l);
    // Wait until it is really running, so the kill hits a process (the
    // header's command line says `pgid=` too, before anything ran).
    let t = Instant::now();
    while !std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .contains("\npgid=")
    {
        assert!(t.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(r.runner.kill(AttemptId(1), "killed by alice"));
    let f = r.next().await;
    assert_eq!(f.exit, Exit::Killed("killed by alice".into()));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("\nkilled: killed by alice\n"), "{log}");
    assert!(group_gone(pgid_in(&log)).await);
    assert!(!r.runner.kill(AttemptId(1), "again"));

    // kill_all, and a kill that lands before the frame has even started.
    r.runner.launch(r.frame(2, sh("sleep 100")));
    r.runner.launch(r.frame(3, sh("sleep 100")));
    r.runner.kill_all("worker shutting down");
    let mut ended = vec![r.next().await, r.next().await];
    ended.sort_by_key(|f| f.attempt);
    for f in ended {
        assert_eq!(f.exit, Exit::Killed("worker shutting down".into()));
    }
    assert!(r.runner.running().is_empty());
}

#[tokio::test]
async fn reports_memory_and_cpu() {
    let mut r = rig(|_| {});
    let mut l = r.frame(
        1,
        sh(
            "python3 -c \"b=bytearray(50*1024*1024); import time; time.sleep(3)\"; \
            i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done",
        ),
    );
    // A limit it stays under changes nothing.
    l.memory_limit_kb = Some(1 << 20);
    r.runner.launch(l);
    // The sampler runs once a second; a loaded host may start python late.
    let t = Instant::now();
    while r
        .runner
        .running()
        .first()
        .is_none_or(|(_, u)| u.rss_kb < 50 * 1024)
        && t.elapsed() < Duration::from_millis(2800)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let running = r.runner.running();
    assert_eq!(running.len(), 1);
    let (attempt, usage) = running[0];
    assert_eq!(attempt, AttemptId(1));
    assert!(usage.rss_kb >= 50 * 1024, "{usage:?}");
    assert!(usage.max_rss_kb >= usage.rss_kb);
    let f = r.next().await;
    assert_eq!(f.exit, Exit::Exited(0));
    assert!(f.max_rss_kb >= 50 * 1024, "{f:?}");
    assert!(f.cpu_ms > 0, "{f:?}");
}

/// A leak faster than the once-a-second sampling: the kernel caps the
/// frame's cgroup a little above its reservation, and the OOM kill there
/// is reported as out of memory. Needs cgroups (root).
#[tokio::test]
async fn a_fast_leak_is_capped_by_the_kernel_and_reported_out_of_memory() {
    if !is_root() {
        skip("cgroups need root");
        return;
    }
    let mut r = rig(|_| {});
    // `tail` keeps the one endless line in memory: 600 MB in well under
    // a second.
    let mut l = r.frame(1, sh("head -c 600M /dev/zero | tail; echo survived $?"));
    l.memory_limit_kb = Some(64 << 10);
    let start = Instant::now();
    r.runner.launch(l);
    let f = r.next().await;
    assert!(matches!(f.exit, Exit::OutOfMemory { .. }), "{:?}", f.exit);
    // The cap: 64M + 1/8 + 32M = 104M, whatever the sampler saw.
    assert!(f.max_rss_kb < 128 << 10, "{f:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// When the host is short of memory (here: always, the threshold is
/// huge), frames are killed one at a time, the one furthest over its
/// reservation first, and a frame within its reservation is left alone.
#[tokio::test]
async fn the_memory_guard_kills_the_frame_furthest_over_its_reservation_first() {
    let mut r = rig(|_| {});
    let hold = |mb: u32, secs: u32| {
        sh(&format!(
            "python3 -c \"b=bytearray({mb}*1024*1024); import time; time.sleep({secs})\""
        ))
    };
    let mut within = r.frame(1, hold(60, 8));
    within.memory_limit_kb = Some(200 << 10);
    r.runner.launch(within);
    r.runner.launch(r.frame(2, hold(20, 30)));
    r.runner.launch(r.frame(3, hold(50, 30)));
    // Once every frame holds its memory, the host runs short.
    let t = Instant::now();
    let holding = |running: Vec<(AttemptId, kiln_worker::runner::Usage)>| {
        let mb = |a: i64| {
            running
                .iter()
                .find(|(x, _)| x.0 == a)
                .map_or(0, |(_, u)| u.rss_kb >> 10)
        };
        mb(1) >= 60 && mb(2) >= 20 && mb(3) >= 50
    };
    while !holding(r.runner.running()) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{:?}",
            r.runner.running()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    r.runner.set_min_available_kb(u64::MAX / 4);
    let order: Vec<(i64, Exit)> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            let f = r.next().await;
            v.push((f.attempt.0, f.exit));
        }
        v
    };
    assert!(
        matches!(order[0], (3, Exit::OutOfMemory { rss_kb }) if rss_kb >= 50 << 10),
        "{order:?}"
    );
    assert!(
        matches!(order[1], (2, Exit::OutOfMemory { .. })),
        "{order:?}"
    );
    assert_eq!(order[2], (1, Exit::Exited(0)), "{order:?}");
}

/// Memory held by a process that left the frame's group (`setsid`) is
/// the frame's all the same: it is in the frame's cgroup, and the sampler
/// sums the cgroup. Here it stays under the kernel's cap (reservation
/// + 1/8 + 32M), so only the sampler can catch it. Needs cgroups (root).
#[tokio::test]
async fn memory_of_a_child_that_left_the_frames_group_counts() {
    if !is_root() {
        skip("cgroups need root");
        return;
    }
    let mut r = rig(|_| {});
    let mut l = r.frame(
        1,
        sh("setsid python3 -c \"b=bytearray(125*1024*1024); import time; time.sleep(30)\" & sleep 20"),
    );
    l.memory_limit_kb = Some(100 << 10);
    let start = Instant::now();
    r.runner.launch(l);
    let f = r.next().await;
    match f.exit {
        Exit::OutOfMemory { rss_kb } => assert!(rss_kb > 100 << 10, "{rss_kb}"),
        ref other => panic!("{other:?} after {:?}", start.elapsed()),
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_frame_past_its_memory_reservation_is_killed_as_out_of_memory() {
    let mut r = rig(|_| {});
    // The memory is in a child of the frame's shell, so the limit holds for
    // the whole group, not just the main process.
    let mut l = r.frame(
        1,
        sh("echo pgid=$$; python3 -c \"b=bytearray(120*1024*1024); import time; time.sleep(30)\"; echo survived"),
    );
    l.memory_limit_kb = Some(40 << 10);
    let log_path = l.log_path.clone();
    let start = Instant::now();
    r.runner.launch(l);
    let f = r.next().await;
    match f.exit {
        Exit::OutOfMemory { rss_kb } => assert!(rss_kb > 40 << 10, "{rss_kb}"),
        ref other => panic!("{other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    // Sampled, or capped by the kernel a little above the reservation
    // (where the host has cgroups), which then kills the allocating process.
    assert!(f.max_rss_kb > 40 << 10, "{f:?}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("memory limit: 40M"), "{log}");
    assert!(
        log.contains("killed: out of memory: used ") && log.contains("more than the 40M"),
        "{log}"
    );
    assert!(group_gone(pgid_in(&log)).await);
}

#[tokio::test]
async fn unknown_user_fails_to_start() {
    if !is_root() {
        skip("needs root");
        return;
    }
    let mut r = rig(|c| c.switch_user = true);
    let mut l = r.frame(1, sh("true"));
    l.user = "kiln-no-such-user".into();
    let (f, log) = r.run(l).await;
    let want = "user \"kiln-no-such-user\" does not exist on host h1";
    assert_eq!(f.exit, Exit::JobCannotStart(want.into()));
    assert!(
        log.contains(&format!(
            "\nfailed to start: {want} (an error of the job's, not the host's)\n"
        )),
        "{log}"
    );
}

#[tokio::test]
async fn runs_as_the_jobs_user() {
    if !is_root() {
        skip("needs root");
        return;
    }
    let nobody = users::lookup("nobody").unwrap().expect("host has nobody");
    let mut r = rig(|c| {
        c.switch_user = true;
        c.allow_root = false;
    });
    let mut l = r.frame(
        1,
        sh("echo uid=$(id -u) gid=$(id -g) user=$USER; touch here && echo wrote"),
    );
    l.user = "nobody".into();
    let (f, log) = r.run(l).await;
    assert_eq!(f.exit, Exit::Exited(0), "{log}");
    assert!(
        log.contains(&format!(
            "\nuid={} gid={} user=nobody\n",
            nobody.uid, nobody.gid
        )),
        "{log}"
    );
    assert!(
        log.contains("\nwrote\n"),
        "scratch dir is the user's: {log}"
    );
    assert!(log.contains("\nuser: nobody\n"), "{log}");
}

#[tokio::test]
async fn refuses_root_without_allow_root() {
    if !is_root() {
        skip("needs root");
        return;
    }
    let mut r = rig(|c| c.allow_root = false);
    let (f, log) = r.run(r.frame(1, sh("echo ran"))).await;
    assert_eq!(f.exit, Exit::FailedToStart(REFUSAL.into()));
    assert!(!log.contains("\nran\n"));
    assert!(
        log.contains(&format!("failed to start: {REFUSAL}")),
        "{log}"
    );

    let mut r = rig(|c| {
        c.allow_root = false;
        c.switch_user = true;
    });
    let mut l = r.frame(1, sh("echo ran"));
    l.user = "root".into();
    let (f, _) = r.run(l).await;
    assert_eq!(f.exit, Exit::FailedToStart(REFUSAL.into()));

    // Allowed: runs as root.
    let mut r = rig(|c| c.switch_user = true);
    let mut l = r.frame(1, sh("echo uid=$(id -u)"));
    l.user = "root".into();
    let (f, log) = r.run(l).await;
    assert_eq!(f.exit, Exit::Exited(0));
    assert!(log.contains("\nuid=0\n"), "{log}");
}

/// Frames must not outlive a worker that is SIGKILLed: not their main
/// process, nor a child of it (a wrapper script's renderer). The worker here
/// is this test binary, run again as `worker_to_be_killed`; its frames run
/// under supervisors (this binary again, as `shim_entry`) that kill them
/// once the worker stops renewing its lease.
#[tokio::test]
async fn frames_die_with_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let mut worker = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "worker_to_be_killed", "--ignored", "--nocapture"])
        .env("KILN_TEST_WORKER_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let read_pid = |name: &str| {
        let t = Instant::now();
        loop {
            if let Ok(s) = std::fs::read_to_string(dir.path().join(name)) {
                break s.trim().parse::<i32>().unwrap();
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the frame never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let (pid, child) = (read_pid("pid"), read_pid("child"));
    assert!(alive(pid) && alive(child));
    worker.kill().unwrap();
    worker.wait().unwrap();
    let t = Instant::now();
    while alive(pid) || alive(child) {
        if t.elapsed() > Duration::from_secs(5) {
            unsafe { libc::kill(child, libc::SIGKILL) };
            panic!(
                "the frame outlived its worker (main alive: {}, child alive: {})",
                alive(pid),
                alive(child)
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Not a test: the worker of `frames_die_with_the_worker`. It renews a
/// one-second lease every 100 ms until it is killed.
#[test]
#[ignore]
fn worker_to_be_killed() {
    let Some(dir) = std::env::var_os("KILN_TEST_WORKER_DIR").map(PathBuf::from) else {
        return;
    };
    let lease = dir.join("lease");
    let renew = || {
        let now = kiln_worker::runner::boot_ms();
        kiln_worker::runner::write_lease(&lease, now + 1000, now + 1500).unwrap();
    };
    renew();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (tx, _rx) = mpsc::unbounded_channel();
        let runner = supervised_runner(&dir, "", Some(lease.clone()), tx);
        // The renderer is a child of the frame's shell, not exec'd.
        runner.launch(frame_in(
            &dir,
            sh("sleep 100 & echo $! > child.tmp && mv child.tmp child; \
                echo $$ > pid.tmp && mv pid.tmp pid; wait; true"),
        ));
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            renew();
        }
    });
}

/// Frame 1, run in `dir`, its log there.
fn frame_in(dir: &Path, command: Command) -> Launch {
    Launch {
        attempt: AttemptId(1),
        job_name: "j".into(),
        frame_label: "f/1".into(),
        command,
        env: Vec::new(),
        cwd: Some(dir.to_path_buf()),
        user: "alice".into(),
        timeout: None,
        gpus: 0,
        memory_limit_kb: None,
        log_path: dir.join("1.log"),
        outputs: Vec::new(),
    }
}

/// A runner in `dir` whose frames run under supervisors: this binary again,
/// as `shim_entry`, after the shell commands `before`.
fn supervised_runner(
    dir: &Path,
    before: &str,
    lease_file: Option<PathBuf>,
    tx: mpsc::UnboundedSender<Finished>,
) -> Runner {
    let shim = dir.join("shim.sh");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\n{before}\nexec '{}' --exact shim_entry --ignored --quiet --test-threads=1 \"$@\"\n",
            std::env::current_exe().unwrap().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = RunnerConfig {
        work_dir: dir.join("work"),
        switch_user: false,
        allow_root: true,
        host_name: "h1".into(),
        kill_grace: Duration::from_millis(200),
        cgroups: true,
        shim: Some(shim),
        lease_file,
        min_available_kb: 0,
    };
    Runner::new(cfg, 0, tx)
}

/// Not a test: the frame supervisor of `worker_to_be_killed` (what
/// `kiln frame-shim` is in the real binary).
#[test]
#[ignore]
fn shim_entry() {
    let mut args = std::env::args_os().skip_while(|a| a != "frame-shim");
    if args.next().is_some() {
        std::process::exit(kiln_worker::runner::shim_main(args));
    }
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| procfs::parse_stat(&s))
        .is_some_and(|st| st.state != b'Z' && st.state != b'X')
}

/// 1,000 frames of `true`, 16 at a time, as the worker would run them.
/// `cargo test -p kiln-worker --release -- --ignored --nocapture`
/// Logs and scratch dirs go under `$KILN_BENCH_DIR` (default: the temp dir);
/// every frame creates a log file and makes and removes a directory, so a
/// slow file system shows here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn thousand_true_frames() {
    let base = std::env::var_os("KILN_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    println!("logs and scratch under {}", base.display());
    let mut variants = vec![("argv", false, false), ("shell", true, false)];
    if is_root() {
        variants.push(("argv as nobody", false, true));
    }
    for (label, shell, as_nobody) in variants {
        let mut r = rig_in(&base, 0, |c| {
            c.switch_user = as_nobody;
            c.allow_root = !as_nobody;
        });
        let frames = 1000;
        let slots = 16;
        let frame = |r: &Rig, i: i64| {
            let mut l = r.frame(i, if shell { sh("true") } else { argv(&["true"]) });
            l.user = "nobody".into();
            l
        };
        let cpu0 = self_cpu();
        let t = Instant::now();
        let mut launched = 0;
        while launched < slots {
            launched += 1;
            r.runner.launch(frame(&r, launched));
        }
        for _ in 0..frames {
            let f = r.next().await;
            assert_eq!(f.exit, Exit::Exited(0));
            if launched < frames {
                launched += 1;
                r.runner.launch(frame(&r, launched));
            }
        }
        let wall = t.elapsed();
        let cpu = self_cpu() - cpu0;
        println!(
            "{label}: {frames} frames of `true`, {slots} at a time: {:.0} ms wall, \
             runner CPU {:.0} µs/frame ({} CPUs)",
            wall.as_secs_f64() * 1000.0,
            cpu.as_secs_f64() * 1e6 / frames as f64,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        );
    }
}

/// CPU used by this process itself (frames not included).
fn self_cpu() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The frame cgroups under this process's `kiln/<worker>-*` directories of
/// every hierarchy, for the worker named `host` (a name no other test uses).
fn frame_cgroups(host: &str) -> (usize, Vec<PathBuf>) {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut tops = vec![
        PathBuf::from("/sys/fs/cgroup/kiln"),
        PathBuf::from("/sys/fs/cgroup/unified/kiln"),
    ];
    for l in own.lines() {
        let mut p = l.splitn(3, ':').skip(1);
        let (Some(ctrls), Some(path)) = (p.next(), p.next()) else {
            continue;
        };
        for c in ctrls.split(',').filter(|c| !c.is_empty()) {
            let c = c.trim_start_matches("name=");
            tops.push(
                Path::new("/sys/fs/cgroup")
                    .join(c)
                    .join(path.trim_start_matches('/'))
                    .join("kiln"),
            );
        }
    }
    let (mut workers, mut frames) = (0, Vec::new());
    for top in tops {
        for w in std::fs::read_dir(&top).into_iter().flatten().flatten() {
            if !w
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("{host}-"))
            {
                continue;
            }
            workers += 1;
            for f in std::fs::read_dir(w.path()).into_iter().flatten().flatten() {
                if f.file_type().is_ok_and(|t| t.is_dir()) {
                    frames.push(f.path());
                }
            }
        }
    }
    (workers, frames)
}

/// A frame that cannot be set up after its cgroup was made (here: its
/// supervisor's state cannot be written) leaves no cgroup behind.
#[tokio::test]
async fn a_frame_that_fails_to_start_leaves_no_cgroup() {
    if !is_root() {
        skip("cgroups need root");
        return;
    }
    let host = format!("cg-leak-{}", std::process::id());
    let mut r = rig(|c| {
        c.host_name = host.clone();
        // Never run: the frame fails before its supervisor starts.
        c.shim = Some("/nonexistent/kiln".into());
    });
    if frame_cgroups(&host).0 == 0 {
        skip("this host gives frames no cgroup");
        return;
    }
    std::fs::write(r.dir.path().join("work/shims"), "not a directory").unwrap();
    let (f, _) = r.run(r.frame(1, sh("true"))).await;
    assert!(matches!(f.exit, Exit::FailedToStart(_)), "{:?}", f.exit);
    let (_, left) = frame_cgroups(&host);
    drop(r);
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}

/// A signal caught by the thread that starts frames (EINTR on its read of
/// the supervisor's report) neither fails nor loses the frame.
#[test]
fn a_signal_while_starting_a_frame_under_a_supervisor_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "signalled_spawner", "--ignored", "--nocapture"])
        .env("KILN_TEST_SIGNAL_DIR", dir.path())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("frame exited 0"), "{text}");
}

/// Not a test: the worker of `a_signal_while_starting_a_frame_...`. Its
/// supervisor takes a second to report; meanwhile the spawner thread gets
/// SIGUSR1, caught without SA_RESTART, every 50 ms.
#[test]
#[ignore]
fn signalled_spawner() {
    let Some(dir) = std::env::var_os("KILN_TEST_SIGNAL_DIR").map(PathBuf::from) else {
        return;
    };
    extern "C" fn caught(_: libc::c_int) {}
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = caught as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = 0;
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let runner = supervised_runner(&dir, "sleep 1", None, tx);
        // The thread names itself once it runs.
        let find = || {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .flatten()
                .find(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim() == "kiln-spawner")
                })
                .and_then(|t| t.file_name().to_str()?.parse::<i32>().ok())
        };
        let t = Instant::now();
        let spawner = loop {
            if let Some(tid) = find() {
                break tid;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "no spawner thread");
            std::thread::sleep(Duration::from_millis(5));
        };
        runner.launch(frame_in(&dir, sh("exit 0")));
        let f = loop {
            tokio::select! {
                f = rx.recv() => break f.expect("a report"),
                _ = tokio::time::sleep(Duration::from_millis(50)) => unsafe {
                    libc::syscall(libc::SYS_tgkill, libc::getpid(), spawner, libc::SIGUSR1);
                },
            }
        };
        assert_eq!(f.exit, Exit::Exited(0));
        println!("frame exited 0");
    });
}

/// Ending frames never stall the runtime, which in the worker is one
/// thread that also heartbeats and serves every other frame: here each
/// frame makes a child cgroup of its own, so its cgroup's removal is
/// retried (with sleeps) and then given up, a slow cleanup.
#[tokio::test]
async fn ending_frames_do_not_stall_the_runtime() {
    if !is_root() {
        skip("cgroups need root");
        return;
    }
    let mut r = rig(|_| {});
    let subs = r.dir.path().join("subs");
    let frames = 6;
    for i in 1..=frames {
        let cmd = format!(
            "m=/sys/fs/cgroup; [ -e $m/cgroup.controllers ] || m=$m/unified; \
             d=$m$(sed -n 's/^0:://p' /proc/self/cgroup); \
             case $d in */kiln/*) mkdir $d/sub && echo $d >> {};; esac; sleep 0.5",
            subs.display()
        );
        r.runner.launch(r.frame(i, sh(&cmd)));
    }
    let mut worst = Duration::ZERO;
    let mut ended = 0;
    while ended < frames {
        let t = Instant::now();
        tokio::select! {
            f = r.rx.recv() => {
                assert_eq!(f.unwrap().exit, Exit::Exited(0));
                ended += 1;
            }
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
        worst = worst.max(t.elapsed());
    }
    let made: Vec<String> = std::fs::read_to_string(&subs)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    for d in &made {
        let _ = std::fs::remove_dir(format!("{d}/sub"));
        let _ = std::fs::remove_dir(d);
    }
    if made.len() < frames as usize {
        skip("frames get no cgroup v2 of their own here");
        return;
    }
    eprintln!("longest stall of the runtime while {frames} frames ended: {worst:?}");
    assert!(
        worst < Duration::from_millis(150),
        "the runtime stalled for {worst:?}"
    );
}
