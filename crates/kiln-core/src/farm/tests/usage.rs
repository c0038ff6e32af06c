//! A running frame's memory and CPU over time, from its host's heartbeats.

use super::*;
use crate::link::RunningFrame;

fn heartbeat(farm: &mut Farm, attempt: AttemptId, rss_kb: u64, cpu_ms: u64, now: Millis) {
    farm.worker_event(
        WorkerEvent::Message {
            session: SESSION,
            msg: WorkerMsg::Heartbeat {
                load: 0.0,
                free_memory_kb: 0,
                running: vec![RunningFrame {
                    attempt,
                    rss_kb,
                    max_rss_kb: rss_kb,
                    cpu_ms,
                    log_size: 0,
                }],
                seq: 1,
            },
        },
        now,
    );
}

#[test]
fn heartbeats_make_a_running_frames_series_thinned_and_gone_when_it_ends() {
    let mut farm = farm_with_host(4);
    submit(
        &mut farm,
        "name: j\nlayers:\n  - {name: r, command: x, frames: 1}\n",
        0,
    );
    let (attempt, _) = schedule(&mut farm, 1).remove(0);
    // Not sampled yet: nothing to show.
    heartbeat(&mut farm, attempt, 0, 0, 2);
    assert_eq!(farm.live_usage(attempt), Some(vec![]));
    for i in 1..=1000 {
        heartbeat(&mut farm, attempt, 1000 + i as u64, i as u64 * 10, i * 1000);
    }
    let s = farm.live_usage(attempt).unwrap();
    assert!(s.len() <= 25, "{} points", s.len());
    assert_eq!((s[0].t, s[0].rss_kb), (1000, 1001), "from the first sample");
    assert_eq!(
        (s.last().unwrap().t, s.last().unwrap().cpu_ms),
        (1_000_000, 10_000)
    );
    end(&mut farm, SESSION, attempt, Exit::Exited(0), 1_000_001);
    assert_eq!(farm.live_usage(attempt), None, "it went with the attempt");
}
