//! The farm's state machine, driven with explicit times and no IO.

use super::workers::OWN_FAULT_TRIES;
use super::*;
use crate::link::{Exit, FrameEnded, WorkerMsg};
use crate::sched;
use crate::spec::{parse_and_validate, Format, SubmitContext};
use crate::view::{DisplayState, JobStatus};

mod events;
mod outputs;
mod usage;

const SESSION: u64 = 1;

fn farm_with_host(cores: u32) -> Farm {
    let mut farm = Farm::new(FarmConfig {
        heartbeat_ms: 1_000,
        down_after_ms: 10_000,
        ..FarmConfig::default()
    });
    register(&mut farm, SESSION, "h1", cores, vec![], 0);
    farm
}

pub(super) fn register(
    farm: &mut Farm,
    session: u64,
    name: &str,
    cores: u32,
    running: Vec<AttemptId>,
    now: Millis,
) {
    farm.worker_event(
        WorkerEvent::Message {
            session,
            msg: WorkerMsg::Register {
                host: HostReport {
                    name: name.into(),
                    cores: cores * 100,
                    memory_kb: 64 << 20,
                    ..Default::default()
                },
                running: running
                    .into_iter()
                    .map(|attempt| crate::link::RunningFrame {
                        attempt,
                        ..Default::default()
                    })
                    .collect(),
            },
        },
        now,
    );
}

pub(super) fn submit(farm: &mut Farm, yaml: &str, now: Millis) -> JobId {
    let job =
        parse_and_validate(yaml, Format::Yaml, &SubmitContext::default()).expect("valid spec");
    farm.submit(job, now).expect("submitted").0
}

/// One scheduling pass; returns the launches it produced as (attempt, label).
pub(super) fn schedule(farm: &mut Farm, now: Millis) -> Vec<(AttemptId, String)> {
    launches_whole(farm, now)
        .into_iter()
        .map(|l| (l.attempt, l.frame_label))
        .collect()
}

/// One scheduling pass; the launches it produced, whole.
pub(super) fn launches_whole(farm: &mut Farm, now: Millis) -> Vec<crate::link::Launch> {
    // As the server does: no pass when nothing could start.
    if let Some(snap) = farm.snapshot(now) {
        let plan = sched::plan(snap);
        farm.apply_plan(&plan, now);
    }
    farm.take_outgoing()
        .into_iter()
        .filter_map(|o| match o.msg {
            ServerMsg::Launch(l) => Some(l),
            _ => None,
        })
        .collect()
}

pub(super) fn end(farm: &mut Farm, session: u64, attempt: AttemptId, exit: Exit, now: Millis) {
    farm.worker_event(
        WorkerEvent::Message {
            session,
            msg: WorkerMsg::Ended(FrameEnded {
                attempt,
                exit,
                started_at: now,
                ended_at: now,
                max_rss_kb: 1,
                cpu_ms: 1,
                log_size: 0,
                usage: Vec::new(),
                outputs: Vec::new(),
            }),
        },
        now,
    );
}

fn states(farm: &Farm, job: JobId) -> Vec<(String, DisplayState)> {
    farm.list_frames(&job.to_string(), None, None)
        .unwrap()
        .into_iter()
        .map(|f| (format!("{}/{}", f.layer, f.number), f.state))
        .collect()
}

const TWO_LAYERS: &str = r#"
name: deps
layers:
  - name: render
    command: "true"
    frames: 1-3
  - name: comp
    command: "true"
    frames: 1-3
    depends: [{layer: render, per_frame: true}]
  - name: movie
    command: "true"
    frames: 1
    depends: [comp]
"#;

#[test]
fn dependencies_release_frames_in_order() {
    let mut farm = farm_with_host(1);
    let job = submit(&mut farm, TWO_LAYERS, 10);
    assert_eq!(
        farm.list_frames("deps", Some("comp"), Some(DisplayState::Depend))
            .unwrap()
            .len(),
        3
    );
    let mut order = Vec::new();
    for t in 0..20 {
        let launched = schedule(&mut farm, t);
        for (a, label) in launched {
            order.push(label);
            end(&mut farm, SESSION, a, Exit::Exited(0), t);
        }
    }
    assert_eq!(
        order,
        vec!["render/1", "render/2", "render/3", "comp/1", "comp/2", "comp/3", "movie/1"],
        "one core: earlier layers first; comp/N only after render/N; movie after all of comp"
    );
    let summary = &farm.list_jobs(true)[0];
    assert_eq!(summary.status, JobStatus::Finished);
    assert!(
        farm.list_jobs(false).is_empty(),
        "finished jobs leave the default listing"
    );
    assert!(states(&farm, job)
        .iter()
        .all(|(_, s)| *s == DisplayState::Succeeded));
}

#[test]
fn failures_are_retried_then_dead_and_retry_requeues() {
    let mut farm = farm_with_host(4);
    let job = submit(
        &mut farm,
        "name: f\nlayers: [{name: a, command: 'false', frames: '1', retries: 2}]",
        0,
    );
    for t in 1..=3 {
        let launched = schedule(&mut farm, t);
        assert_eq!(launched.len(), 1, "attempt {t} dispatched");
        end(&mut farm, SESSION, launched[0].0, Exit::Exited(1), t);
    }
    assert_eq!(
        states(&farm, job),
        vec![("a/1".to_string(), DisplayState::Dead)]
    );
    assert!(schedule(&mut farm, 5).is_empty());
    assert_eq!(farm.list_jobs(false)[0].status, JobStatus::Failed);

    let n = farm.act(Action::Retry, "f", &[], None, "me", 6).unwrap();
    assert_eq!(n, 1);
    let launched = schedule(&mut farm, 7);
    assert_eq!(launched.len(), 1);
    end(&mut farm, SESSION, launched[0].0, Exit::Exited(0), 8);
    assert_eq!(farm.list_jobs(true)[0].status, JobStatus::Finished);
}

#[test]
fn silent_host_goes_down_and_its_frames_requeue_without_counting_a_failure() {
    let mut farm = farm_with_host(2);
    let job = submit(
        &mut farm,
        "name: j\nlayers: [{name: a, command: x, frames: 1-2, retries: 0}]",
        0,
    );
    let launched = schedule(&mut farm, 1);
    assert_eq!(launched.len(), 2);
    farm.tick(5_000);
    assert!(farm.hosts()[0].state == HostState::Up);
    farm.tick(10_002);
    assert!(farm.hosts()[0].state == HostState::Down);
    let frames = farm.list_frames("j", None, None).unwrap();
    assert!(frames
        .iter()
        .all(|f| f.state == DisplayState::Waiting && f.failures == 0));

    // The worker comes back holding its old attempts: the server kills them
    // and ignores their late reports.
    register(
        &mut farm,
        2,
        "h1",
        2,
        launched.iter().map(|l| l.0).collect(),
        10_100,
    );
    let kills: Vec<AttemptId> = farm
        .take_outgoing()
        .into_iter()
        .filter_map(|o| match o.msg {
            ServerMsg::Kill { attempt, .. } => Some(attempt),
            _ => None,
        })
        .collect();
    assert_eq!(kills, launched.iter().map(|l| l.0).collect::<Vec<_>>());
    let relaunched = schedule(&mut farm, 10_200);
    assert_eq!(relaunched.len(), 2);
    end(&mut farm, 2, launched[0].0, Exit::Exited(1), 10_300);
    let f = &farm.list_frames("j", None, None).unwrap()[0];
    assert_eq!(
        f.state,
        DisplayState::Running,
        "an outdated attempt never overwrites the current one"
    );
    assert_eq!(f.attempt_id, Some(relaunched[0].0 .0));
    let _ = job;
}

#[test]
fn server_restart_keeps_running_frames_running() {
    let mut farm = farm_with_host(2);
    submit(
        &mut farm,
        "name: j\nlayers: [{name: a, command: x, frames: 1-2}]",
        0,
    );
    let launched = schedule(&mut farm, 1);
    let dirty = farm.take_dirty();
    let hosts = farm.hosts();
    // What the store would hand back after a crash.
    let image = Restore {
        jobs: dirty.jobs,
        layers: dirty.layers,
        frames: dirty.frames,
        hosts: dirty.hosts,
        running_attempts: dirty.attempts,
        structure: dirty
            .structure
            .into_iter()
            .filter_map(|c| match c {
                crate::structure::Change::Put(r) => Some(r),
                _ => None,
            })
            .collect(),
        max_ids: [1, 1, 2, 2, 1],
        event_seq: 0,
    };
    let mut farm = Farm::restore(farm.config().clone(), image, 50_000);
    assert_eq!(
        farm.hosts()[0].cores_used,
        200,
        "in-flight attempts hold their cores"
    );
    farm.tick(55_000);
    assert_eq!(
        farm.hosts()[0].state,
        HostState::Up,
        "a grace period from the restart"
    );
    register(
        &mut farm,
        9,
        "h1",
        2,
        launched.iter().map(|l| l.0).collect(),
        55_100,
    );
    for (a, _) in &launched {
        end(&mut farm, 9, *a, Exit::Exited(0), 56_000);
    }
    assert_eq!(farm.list_jobs(true)[0].status, JobStatus::Finished);
    let _ = hosts;
}

#[test]
fn kill_pause_resume_eat() {
    let mut farm = farm_with_host(1);
    submit(
        &mut farm,
        "name: k\nlayers: [{name: a, command: x, frames: 1-4}]",
        0,
    );
    farm.act(Action::Pause, "k", &[], None, "me", 1).unwrap();
    assert!(
        schedule(&mut farm, 2).is_empty(),
        "paused jobs start nothing"
    );
    farm.act(Action::Resume, "k", &[], None, "me", 3).unwrap();
    let launched = schedule(&mut farm, 4);
    assert_eq!(launched.len(), 1);

    // Killing a running frame asks the worker to stop it and marks it DEAD;
    // its core stays busy until the worker reports the end.
    farm.act(Action::Kill, "k", &["a/1".into()], None, "me", 5)
        .unwrap();
    let out = farm.take_outgoing();
    assert!(matches!(out[0].msg, ServerMsg::Kill { .. }));
    assert!(schedule(&mut farm, 6).is_empty());
    end(
        &mut farm,
        SESSION,
        launched[0].0,
        Exit::Killed("killed by me".into()),
        7,
    );
    let f = &farm.list_frames("k", None, None).unwrap()[0];
    assert_eq!(f.state, DisplayState::Dead);
    assert_eq!(f.failures, 0);

    farm.act(Action::Eat, "k", &["a/2-4".into()], None, "me", 8)
        .unwrap();
    assert!(schedule(&mut farm, 9).is_empty());
    assert_eq!(farm.list_jobs(false)[0].status, JobStatus::Failed);
    let err = farm
        .act(Action::Pause, "k", &["a/1".into()], None, "me", 10)
        .unwrap_err();
    assert!(err.to_string().contains("whole layers"), "{err}");
    let err = farm
        .act(Action::Kill, "k", &["nope".into()], None, "me", 10)
        .unwrap_err();
    assert!(err.to_string().contains("its layers are a"), "{err}");

    farm.act(Action::Kill, "k", &[], None, "me", 11).unwrap();
    assert_eq!(farm.list_jobs(true)[0].status, JobStatus::Killed);
}

#[test]
fn timeouts_count_as_failures() {
    let mut farm = farm_with_host(1);
    submit(
        &mut farm,
        "name: t\nlayers: [{name: a, command: x, frames: 1, retries: 0}]",
        0,
    );
    let launched = schedule(&mut farm, 1);
    end(&mut farm, SESSION, launched[0].0, Exit::TimedOut, 2);
    let f = &farm.list_frames("t", None, None).unwrap()[0];
    assert_eq!(f.state, DisplayState::Dead);
    assert_eq!(f.outcome, Some(Outcome::TimedOut));
}

#[test]
fn job_on_job_dependency() {
    let mut farm = farm_with_host(4);
    submit(
        &mut farm,
        "name: first\nlayers: [{name: a, command: x, frames: 1}]",
        0,
    );
    submit(
        &mut farm,
        "name: second\ndepends: [first]\nlayers: [{name: a, command: x, frames: 1}]",
        1,
    );
    let launched = schedule(&mut farm, 2);
    assert_eq!(launched.len(), 1, "second waits for first");
    assert_eq!(
        farm.list_frames("second", None, None).unwrap()[0].state,
        DisplayState::Depend
    );
    end(&mut farm, SESSION, launched[0].0, Exit::Exited(0), 3);
    assert_eq!(schedule(&mut farm, 4).len(), 1);

    let job = parse_and_validate(
        "name: third\ndepends: [nosuch]\nlayers: [{name: a, command: x, frames: 1}]",
        Format::Yaml,
        &SubmitContext::default(),
    )
    .unwrap();
    let err = farm.submit(job, 5).unwrap_err();
    assert!(err.to_string().starts_with("depends[0]: no job"), "{err}");
}

#[test]
fn dirty_records_cover_every_change() {
    let mut farm = farm_with_host(1);
    submit(
        &mut farm,
        "name: d\nlayers: [{name: a, command: x, frames: 1-5}]",
        0,
    );
    let d = farm.take_dirty();
    assert_eq!(
        (d.jobs.len(), d.layers.len(), d.frames.len(), d.hosts.len()),
        (1, 1, 5, 1)
    );
    let launched = schedule(&mut farm, 1);
    let d = farm.take_dirty();
    assert_eq!(d.frames.len(), 1);
    assert_eq!(d.attempts.len(), 1);
    assert!(d.attempts[0].outcome.is_none());
    end(&mut farm, SESSION, launched[0].0, Exit::Exited(0), 2);
    let d = farm.take_dirty();
    assert_eq!(d.attempts[0].outcome, Some(Outcome::Succeeded));
    assert!(farm.take_dirty().is_empty());
}

#[test]
fn a_worker_saying_goodbye_gets_nothing_new_and_is_down_once_gone() {
    let mut farm = farm_with_host(2);
    submit(
        &mut farm,
        "name: g\nlayers: [{name: a, command: x, frames: 1-3}]",
        0,
    );
    let launched = schedule(&mut farm, 1);
    assert_eq!(launched.len(), 2);
    let bye = WorkerEvent::Message {
        session: SESSION,
        msg: WorkerMsg::Goodbye,
    };
    farm.worker_event(bye, 2);
    end(
        &mut farm,
        SESSION,
        launched[0].0,
        Exit::Killed("the worker is shutting down".into()),
        3,
    );
    assert!(
        schedule(&mut farm, 4).is_empty(),
        "a draining host takes no new frame"
    );
    farm.worker_event(WorkerEvent::Disconnected { session: SESSION }, 5);
    let h = &farm.hosts()[0];
    assert_eq!((h.state, h.running), (HostState::Down, 0));
    let frames = farm.list_frames("g", None, None).unwrap();
    assert!(frames
        .iter()
        .all(|f| f.state == DisplayState::Waiting && f.failures == 0));
    assert_eq!(frames[0].outcome, Some(Outcome::Killed));
    assert_eq!(frames[1].outcome, Some(Outcome::Lost));
}

#[test]
fn actions_validate_before_changing_and_killed_jobs_can_be_retried() {
    let mut farm = farm_with_host(1);
    submit(
        &mut farm,
        "name: v\nlayers: [{name: a, command: x, frames: 1-2}, {name: b, command: x, frames: 1-2}]",
        0,
    );
    farm.take_dirty();
    let err = farm.act(
        Action::Pause,
        "v",
        &["a".into(), "b/1".into()],
        None,
        "me",
        1,
    );
    assert!(err.is_err());
    assert!(
        farm.take_dirty().is_empty(),
        "a rejected pause changes nothing"
    );
    assert!(farm
        .act(
            Action::Pause,
            "v",
            &[],
            Some(DisplayState::Waiting),
            "me",
            1
        )
        .is_err());

    // kill with a state filter kills those frames, not the job.
    let launched = schedule(&mut farm, 2);
    farm.act(Action::Kill, "v", &[], Some(DisplayState::Waiting), "me", 3)
        .unwrap();
    assert_eq!(farm.list_jobs(true)[0].status, JobStatus::Running);
    end(&mut farm, SESSION, launched[0].0, Exit::Exited(0), 4);

    farm.act(Action::Kill, "v", &[], None, "me", 5).unwrap();
    assert_eq!(farm.list_jobs(true)[0].status, JobStatus::Killed);
    let n = farm.act(Action::Retry, "v", &[], None, "me", 6).unwrap();
    assert_eq!(n, 3, "the three frames killed as WAITING were DEAD");
    assert_ne!(farm.list_jobs(true)[0].status, JobStatus::Killed);
    assert_eq!(schedule(&mut farm, 7).len(), 1);
}

#[test]
fn a_failed_frame_does_not_go_back_to_its_host_while_the_verdict_is_open() {
    let mut farm = farm_with_host(2);
    register(&mut farm, 2, "h2", 1, vec![], 0);
    submit(
        &mut farm,
        "name: flaky\nlayers: [{name: a, command: x, frames: 1-4, retries: 5}]",
        0,
    );
    // Two frames on h1, one on h2.
    let first = schedule(&mut farm, 1);
    assert_eq!(first.len(), 3);
    let on = |farm: &Farm, a: AttemptId| farm.live_attempt(a).unwrap().host_name.clone();
    let h1: Vec<AttemptId> = first
        .iter()
        .map(|x| x.0)
        .filter(|&a| on(&farm, a) == "h1")
        .collect();
    let h2: Vec<AttemptId> = first
        .iter()
        .map(|x| x.0)
        .filter(|&a| on(&farm, a) == "h2")
        .collect();
    assert_eq!((h1.len(), h2.len()), (2, 1));
    // One fails on h1 while its sibling still runs there: h1 is suspect
    // for the job, so the requeued frames wait for h2 rather than return.
    end(&mut farm, SESSION, h1[0], Exit::Exited(1), 2);
    assert!(schedule(&mut farm, 3).is_empty(), "h1 is suspect");
    end(&mut farm, 2, h2[0], Exit::Exited(0), 4);
    let next = schedule(&mut farm, 5);
    assert_eq!(next.len(), 1);
    assert_eq!(on(&farm, next[0].0), "h2");
    // The sibling succeeds on h1: the streak is cleared and h1 is used again.
    end(&mut farm, SESSION, h1[1], Exit::Exited(0), 6);
    let again = schedule(&mut farm, 7);
    assert_eq!(again.len(), 1);
    assert_eq!(on(&farm, again[0].0), "h1");
}

#[test]
fn a_repeated_submit_key_returns_the_first_job_also_after_a_restart() {
    let mut farm = farm_with_host(2);
    let keyed = |name: &str, key: &str| {
        let mut job = parse_and_validate(
            &format!("name: {name}\nlayers: [{{name: a, command: x, frames: 1-5}}]"),
            Format::Yaml,
            &SubmitContext::default(),
        )
        .unwrap();
        job.submit_key = Some(key.into());
        job
    };
    let (first, frames) = farm.submit(keyed("j", "k1"), 0).unwrap();
    assert_eq!(frames, 5);
    // Twice in one batch (nothing committed in between), then later.
    assert_eq!(farm.submit(keyed("j", "k1"), 1).unwrap(), (first, 5));
    let dirty = farm.take_dirty();
    assert_eq!(dirty.jobs.len(), 1, "one job written");
    assert_eq!(dirty.frames.len(), 5, "its frames once");
    // The job's later life changes nothing: a kill, then the repeat.
    farm.act(Action::Kill, "j", &[], None, "u", 2).unwrap();
    assert_eq!(farm.submit(keyed("j", "k1"), 3).unwrap(), (first, 5));
    // A key reused for another job is refused, not answered with this one.
    assert!(matches!(
        farm.submit(keyed("other", "k1"), 4),
        Err(crate::Error::Invalid(_))
    ));
    let (second, _) = farm.submit(keyed("j", "k2"), 5).unwrap();
    assert_ne!(second, first);

    // After a restart the keys come back with the jobs.
    let mut jobs = dirty.jobs;
    jobs.extend(farm.take_dirty().jobs);
    let image = Restore {
        jobs,
        max_ids: [2, 0, 0, 0, 0],
        event_seq: 0,
        ..Restore::default()
    };
    let mut farm = Farm::restore(farm.config().clone(), image, 10);
    assert_eq!(farm.submit(keyed("j", "k2"), 11).unwrap().0, second);
    assert_eq!(farm.submit(keyed("j", "k1"), 11).unwrap().0, first);
    assert!(farm.take_dirty().jobs.is_empty(), "nothing new");
}

/// One scheduling pass; returns its launches as (session, attempt, job).
fn launches(farm: &mut Farm, now: Millis) -> Vec<(u64, AttemptId, String)> {
    if let Some(snap) = farm.snapshot(now) {
        let plan = sched::plan(snap);
        farm.apply_plan(&plan, now);
    }
    farm.take_outgoing()
        .into_iter()
        .filter_map(|o| match o.msg {
            ServerMsg::Launch(l) => Some((o.session, l.attempt, l.job)),
            _ => None,
        })
        .collect()
}

/// Runs every launch to its end with `exit` until nothing more starts;
/// returns the number of attempts.
fn fail_all(farm: &mut Farm, exit: impl Fn(&str) -> Exit, mut now: Millis) -> u32 {
    let mut n = 0;
    loop {
        let launches = launches(farm, now);
        if launches.is_empty() {
            return n;
        }
        for (session, attempt, job) in launches {
            now += 1;
            end(farm, session, attempt, exit(&job), now);
            n += 1;
        }
        assert!(n < 10_000, "frames never stop trying");
    }
}

/// The one launch a pass makes: (session, attempt).
fn one_launch(farm: &mut Farm, now: Millis) -> (u64, AttemptId) {
    let launches = launches(farm, now);
    assert_eq!(launches.len(), 1, "{launches:?}");
    (launches[0].0, launches[0].1)
}

#[test]
fn a_frame_that_failed_on_its_own_account_is_retried_on_another_host() {
    // Twin hosts: the frame goes to h1 first; the job's user exists on
    // h2 only.
    let mut farm = farm_with_host(4);
    register(&mut farm, 2, "h2", 4, vec![], 0);
    submit(
        &mut farm,
        "name: j\nlayers: [{name: a, command: x, frames: 1, retries: 3}]",
        0,
    );
    let (session, attempt) = one_launch(&mut farm, 1);
    assert_eq!(session, SESSION, "best fit first");
    let no_user = || Exit::JobCannotStart("user \"ann\" does not exist on host h1".into());
    end(&mut farm, session, attempt, no_user(), 2);
    let (session, attempt) = one_launch(&mut farm, 3);
    assert_eq!(session, 2, "the retry goes to the other host");
    end(&mut farm, session, attempt, Exit::Exited(0), 4);
    let f = &farm.list_frames("j", None, None).unwrap()[0];
    assert_eq!((f.state, f.attempts), (DisplayState::Succeeded, 2));

    // Where it is the only host, the retry goes back to it (and the
    // frame dies after its two tries, with the cause).
    let mut farm = farm_with_host(1);
    submit(
        &mut farm,
        "name: k\nlayers: [{name: a, command: x, frames: 1, retries: 3}]",
        0,
    );
    let (session, attempt) = one_launch(&mut farm, 1);
    end(&mut farm, session, attempt, no_user(), 2);
    let (session, attempt) = one_launch(&mut farm, 3);
    assert_eq!(session, SESSION);
    end(&mut farm, session, attempt, no_user(), 4);
    let f = &farm.list_frames("k", None, None).unwrap()[0];
    assert_eq!((f.state, f.attempts), (DisplayState::Dead, OWN_FAULT_TRIES));
}

#[test]
fn a_jobs_own_errors_fail_its_frames_fast_and_never_the_hosts() {
    let mut farm = farm_with_host(4);
    register(&mut farm, 2, "h2", 4, vec![], 0);
    register(&mut farm, 3, "h3", 4, vec![], 0);
    let mut jobs = Vec::new();
    for i in 0..6 {
        let cmd = if i < 3 { "x" } else { "[render, x]" };
        jobs.push(submit(
            &mut farm,
            &format!("name: j{i}\nlayers: [{{name: a, command: {cmd}, frames: 1-3, retries: 3}}]"),
            0,
        ));
    }
    // Half never start (say, an unknown user); the shell commands of the
    // other half are not found (exit 127).
    let attempts = fail_all(
        &mut farm,
        |job| match job {
            "j0" | "j1" | "j2" => Exit::Exited(127),
            _ => Exit::JobCannotStart("user \"nobody-here\" does not exist on host h".into()),
        },
        1,
    );
    assert!(farm.hosts().iter().all(|h| h.state == HostState::Up));
    for &job in &jobs {
        let d = farm.job_detail(&job.to_string()).unwrap();
        assert_eq!(d.job.status, JobStatus::Failed);
        assert!(d.avoid_hosts.is_empty(), "{:?}", d.avoid_hosts);
        let frames = farm.list_frames(&job.to_string(), None, None).unwrap();
        for f in frames {
            assert_eq!(f.state, DisplayState::Dead);
            assert_eq!(f.attempts, OWN_FAULT_TRIES, "not the layer's 4 tries");
            let reason = f.reason.unwrap();
            assert!(
                reason.contains("does not exist") || reason.contains("command not found"),
                "{reason}"
            );
        }
    }
    assert_eq!(attempts, 6 * 3 * OWN_FAULT_TRIES);
    // Retried, running again: the last attempt's cause is no longer shown.
    farm.act(Action::Retry, "j0", &[], None, "me", 1_000_000)
        .unwrap();
    assert!(!schedule(&mut farm, 1_000_001).is_empty());
    for f in farm.list_frames("j0", None, None).unwrap() {
        assert_eq!(f.state, DisplayState::Running);
        assert_eq!(f.reason, None, "a running frame shows no old cause");
    }

    // The same failures as the host's (a plain failure to start) still
    // lead to avoiding the host and to REPAIR: nothing else changed.
    let mut farm = farm_with_host(4);
    register(&mut farm, 2, "h2", 4, vec![], 0);
    register(&mut farm, 3, "h3", 4, vec![], 0);
    for i in 0..6 {
        submit(
            &mut farm,
            &format!("name: k{i}\nlayers: [{{name: a, command: x, frames: 1-3, retries: 3}}]"),
            0,
        );
    }
    fail_all(&mut farm, |_| Exit::FailedToStart("no /dev/null".into()), 1);
    assert!(farm.hosts().iter().any(|h| h.state == HostState::Repair));
}

#[test]
fn frames_come_in_pages_by_id_across_layers_with_none_twice() {
    let mut farm = farm_with_host(1);
    submit(&mut farm, TWO_LAYERS, 10);
    let all = farm.list_frames("deps", None, None).unwrap();
    assert_eq!(all.len(), 7);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "listed by id");
    for size in [1, 2, 3, 7, 50] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = farm
                .frames_page(
                    "deps",
                    &FrameSelect {
                        layer: None,
                        state: None,
                        host: None,
                        after,
                        skip: 0,
                        limit: size,
                    },
                )
                .unwrap();
            assert!(page.len() <= size);
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            seen.extend(page.iter().map(|f| f.id));
        }
        assert_eq!(
            seen,
            all.iter().map(|f| f.id).collect::<Vec<_>>(),
            "pages of {size}"
        );
    }
    // A state and a layer narrow the pages as they narrow the list.
    let waiting = farm
        .frames_page(
            "deps",
            &FrameSelect {
                layer: None,
                state: Some(DisplayState::Depend),
                host: None,
                after: None,
                skip: 0,
                limit: 2,
            },
        )
        .unwrap();
    assert_eq!(waiting.len(), 2);
    assert!(waiting.iter().all(|f| f.layer == "comp"));
    let rest = farm
        .frames_page(
            "deps",
            &FrameSelect {
                layer: None,
                state: Some(DisplayState::Depend),
                host: None,
                after: Some(waiting[1].id),
                skip: 0,
                limit: 0,
            },
        )
        .unwrap();
    assert_eq!(rest.len(), 2, "comp's third frame and movie's");
    let one = farm
        .frames_page(
            "deps",
            &FrameSelect {
                layer: Some("movie"),
                state: None,
                host: None,
                after: None,
                skip: 0,
                limit: 0,
            },
        )
        .unwrap();
    assert_eq!(one.len(), 1);
    // Straight to a row: skipping is the same as walking there.
    for skip in 0..=7 {
        for size in [1, 3] {
            let page = farm
                .frames_page(
                    "deps",
                    &FrameSelect {
                        layer: None,
                        state: None,
                        host: None,
                        after: None,
                        skip,
                        limit: size,
                    },
                )
                .unwrap();
            let want: Vec<i64> = all.iter().skip(skip).take(size).map(|f| f.id).collect();
            assert_eq!(
                page.iter().map(|f| f.id).collect::<Vec<_>>(),
                want,
                "skip {skip}"
            );
        }
    }
    let skipped = farm
        .frames_page(
            "deps",
            &FrameSelect {
                layer: None,
                state: Some(DisplayState::Depend),
                host: None,
                after: None,
                skip: 3,
                limit: 0,
            },
        )
        .unwrap();
    assert_eq!(skipped.len(), 1, "the fourth frame in DEPEND is movie's");
    assert_eq!(skipped[0].layer, "movie");
    // By host: those that ran there.
    let ran = schedule(&mut farm, 20);
    assert!(!ran.is_empty());
    let on_h1 = farm
        .frames_page(
            "deps",
            &FrameSelect {
                layer: None,
                state: None,
                host: Some("h1"),
                after: None,
                skip: 0,
                limit: 0,
            },
        )
        .unwrap();
    assert_eq!(on_h1.len(), ran.len());
    assert!(farm
        .frames_page(
            "deps",
            &FrameSelect {
                layer: None,
                state: None,
                host: Some("nope"),
                after: None,
                skip: 0,
                limit: 0
            }
        )
        .is_err());
}

#[test]
fn running_frames_list_what_each_host_runs_to_those_who_may_read_it() {
    let mut farm = farm_with_host(2);
    register(&mut farm, 2, "h2", 1, vec![], 0);
    let job = submit(
        &mut farm,
        "name: r\nlayers:\n  - {name: a, command: x, frames: 1-5}\n",
        10,
    );
    let started = schedule(&mut farm, 20);
    assert_eq!(started.len(), 3, "two on h1, one on h2");
    let all = farm.running_frames(None, |_, _, _| true).unwrap();
    assert_eq!(all.len(), 3);
    assert!(all
        .iter()
        .all(|r| r.job == "r" && r.frame.state == DisplayState::Running));
    let on_h2 = farm.running_frames(Some("h2"), |_, _, _| true).unwrap();
    assert_eq!(on_h2.len(), 1);
    assert_eq!(on_h2[0].frame.host.as_deref(), Some("h2"));
    let e = farm
        .running_frames(Some("nope"), |_, _, _| true)
        .unwrap_err();
    assert!(e.to_string().contains("no host \"nope\""), "{e}");
    // Only the jobs the caller may read.
    let none = farm.running_frames(None, |a, _, _| a.job != job).unwrap();
    assert!(none.is_empty());
    // An ended attempt leaves the list.
    end(&mut farm, SESSION, started[0].0, Exit::Exited(0), 30);
    assert_eq!(farm.running_frames(None, |_, _, _| true).unwrap().len(), 2);
}
