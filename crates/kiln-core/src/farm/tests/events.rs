//! Each transition says what happened: the events a batch hands over.

use super::*;
use crate::event::{Event, EventKind as K};

/// The events handed over since the last call.
fn take(farm: &mut Farm) -> Vec<Event> {
    farm.take_dirty().events
}

fn kinds(events: &[Event]) -> Vec<K> {
    events.iter().map(|e| e.kind).collect()
}

const ONE: &str = "name: ev\nshow: s1\nlayers: [{name: a, command: x, frames: 1-2, retries: 1}]";

#[test]
fn a_job_says_submitted_started_and_finished_in_order_with_names() {
    let mut farm = farm_with_host(4);
    assert_eq!(kinds(&take(&mut farm)), [K::HostUp]);
    let job = submit(&mut farm, ONE, 10);
    let ev = take(&mut farm);
    assert_eq!(
        kinds(&ev),
        [K::ShowChanged, K::JobSubmitted],
        "its show is made on first use"
    );
    assert_eq!(ev[0].show.as_deref(), Some("s1"));
    assert_eq!(ev[1].job_id, Some(job.0));
    assert_eq!(ev[1].job.as_deref(), Some("ev"));
    assert_eq!(ev[1].at, 10);

    let launched = schedule(&mut farm, 20);
    let ev = take(&mut farm);
    assert_eq!(
        kinds(&ev),
        [K::JobStarted, K::FrameStarted, K::FrameStarted],
        "only the first frame starts the job"
    );
    let f = &ev[1];
    assert_eq!(
        (f.layer.as_deref(), f.frame.as_deref(), f.host.as_deref()),
        (Some("a"), Some("1"), Some("h1"))
    );
    assert_eq!((f.attempt, f.at), (Some(1), 20));

    end(&mut farm, SESSION, launched[0].0, Exit::Exited(0), 30);
    end(&mut farm, SESSION, launched[1].0, Exit::Exited(0), 31);
    let ev = take(&mut farm);
    assert_eq!(
        kinds(&ev),
        [K::FrameSucceeded, K::FrameSucceeded, K::JobFinished]
    );
    let seqs: Vec<u64> = ev.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [7, 8, 9], "numbered on from the earlier events");
}

#[test]
fn failures_retry_then_die_and_fail_the_job_and_a_retry_says_so() {
    let mut farm = farm_with_host(4);
    submit(&mut farm, ONE, 0);
    farm.act(Action::Eat, "ev", &["a/2".into()], None, "me", 1)
        .unwrap();
    take(&mut farm);
    for t in 1..=2 {
        let launched = schedule(&mut farm, 10 * t);
        end(
            &mut farm,
            SESSION,
            launched[0].0,
            Exit::Exited(3),
            10 * t + 1,
        );
    }
    let ev = take(&mut farm);
    assert_eq!(
        kinds(&ev),
        [
            K::JobStarted,
            K::FrameStarted,
            K::FrameFailed,
            K::FrameStarted,
            K::FrameDead,
            K::JobFailed
        ]
    );
    assert_eq!(ev[2].attempt, Some(1), "the failed attempt");
    assert_eq!(ev[4].attempt, Some(2));

    farm.act(Action::Retry, "ev", &[], None, "me", 50).unwrap();
    let ev = take(&mut farm);
    assert_eq!(kinds(&ev), [K::FrameRetried]);
    assert_eq!(ev[0].detail.as_deref(), Some("by me"));
}

/// A job whose only open frames wait on a dead one is as failed as its
/// status says: job.failed comes when the last runnable frame closes,
/// whether the dead frame closes last or a frame after it does.
#[test]
fn a_job_left_with_frames_held_by_dead_ones_says_failed() {
    for per_frame in [false, true] {
        let spec = format!(
            "name: held\nshow: s1\nlayers:\n  - {{name: r, command: x, frames: 1-2, retries: 0}}\n  \
             - {{name: c, command: y, frames: 1-2, depends: [{{layer: r, per_frame: {per_frame}}}]}}\n"
        );
        let mut farm = farm_with_host(4);
        submit(&mut farm, &spec, 0);
        take(&mut farm);
        let launched = schedule(&mut farm, 10);
        assert_eq!(launched.len(), 2, "the render frames");
        end(&mut farm, SESSION, launched[0].0, Exit::Exited(0), 11);
        if per_frame {
            // c/1 may run now (its render frame succeeded) and succeeds.
            let c1 = schedule(&mut farm, 12);
            assert_eq!(c1.len(), 1);
            end(&mut farm, SESSION, launched[1].0, Exit::Exited(3), 13);
            assert!(
                !kinds(&take(&mut farm)).contains(&K::JobFailed),
                "c/1 still runs"
            );
            end(&mut farm, SESSION, c1[0].0, Exit::Exited(0), 14);
        } else {
            end(&mut farm, SESSION, launched[1].0, Exit::Exited(3), 13);
        }
        let ev = kinds(&take(&mut farm));
        assert_eq!(
            ev.last(),
            Some(&K::JobFailed),
            "per_frame {per_frame}: {ev:?}"
        );
        assert_eq!(farm.list_jobs(true)[0].status, JobStatus::Failed);
    }
}

#[test]
fn eat_pause_resume_and_kill_say_so_once() {
    let mut farm = farm_with_host(1);
    submit(&mut farm, ONE, 0);
    take(&mut farm);
    farm.act(Action::Pause, "ev", &[], None, "me", 1).unwrap();
    farm.act(Action::Pause, "ev", &[], None, "me", 2).unwrap();
    farm.act(Action::Resume, "ev", &[], None, "me", 3).unwrap();
    farm.act(Action::Eat, "ev", &["a/2".into()], None, "me", 4)
        .unwrap();
    farm.act(Action::Kill, "ev", &[], None, "me", 5).unwrap();
    farm.act(Action::Kill, "ev", &[], None, "me", 6).unwrap();
    let ev = take(&mut farm);
    assert_eq!(
        kinds(&ev),
        [K::JobPaused, K::JobResumed, K::FrameEaten, K::JobKilled]
    );
    assert_eq!(ev[3].detail.as_deref(), Some("by me"));
}

#[test]
fn hosts_say_up_locked_unlocked_down_and_up_again() {
    let mut farm = farm_with_host(1);
    farm.set_lock("h1", true, 1).unwrap();
    farm.set_lock("h1", true, 2).unwrap();
    farm.set_lock("h1", false, 3).unwrap();
    // Silence past the deadline (10 s here), then the worker comes back.
    farm.tick(20_000);
    register(&mut farm, 2, "h1", 1, vec![], 21_000);
    let ev = take(&mut farm);
    assert_eq!(
        kinds(&ev),
        [
            K::HostUp,
            K::HostLocked,
            K::HostUnlocked,
            K::HostDown,
            K::HostUp
        ]
    );
    assert!(ev.iter().all(|e| e.host.as_deref() == Some("h1")));
    // A reconnect while UP says nothing.
    register(&mut farm, 3, "h1", 1, vec![], 22_000);
    assert!(take(&mut farm).is_empty());
}

#[test]
fn a_frame_lost_with_its_host_is_requeued() {
    let mut farm = farm_with_host(1);
    submit(&mut farm, ONE, 0);
    schedule(&mut farm, 1);
    take(&mut farm);
    farm.tick(20_000);
    assert_eq!(
        kinds(&take(&mut farm)),
        [K::HostDown, K::FrameRequeued],
        "a lost attempt is no failure"
    );
}

#[test]
fn numbers_go_on_after_a_restart() {
    let image = Restore {
        event_seq: 41,
        ..Restore::default()
    };
    let mut farm = Farm::restore(FarmConfig::default(), image, 0);
    submit(&mut farm, ONE, 0);
    assert_eq!(take(&mut farm)[0].seq, 42);
}
