//! How long the operations the server waits on take, printed rather than
//! asserted: machines differ too much for a threshold that means anything.
//! Run with `cargo test -p kiln-store --release -- --ignored --nocapture`.

use super::fixtures::*;
use super::Backend;
use kiln_core::model::*;
use kiln_store::{Batch, Store};
use std::time::{Duration, Instant};

const FRAMES: i64 = 100_000;

fn report(what: &str, took: Duration) {
    println!("{what:<58} {:>9.1} ms", took.as_secs_f64() * 1e3);
}

async fn timed<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    let start = Instant::now();
    let out = f.await;
    report(what, start.elapsed());
    out
}

pub async fn timings(b: &impl Backend) {
    let store = b.open().await;
    let r1 = host(1, "r1");
    let frames: Vec<Frame> = (0..FRAMES).map(|i| frame(i + 1, 1, 1, i as u32)).collect();
    let submit = Batch {
        jobs: vec![job(1, "big")],
        layers: vec![layer(1, 1, "render")],
        frames,
        hosts: vec![r1.clone()],
        ..Batch::default()
    };
    timed(
        "commit: 1 job + 1 layer + 100,000 new frames",
        store.commit(&submit),
    )
    .await
    .unwrap();

    // A dispatch wave: frames start, each with a new attempt.
    let mut wave = Batch::default();
    for f in &submit.frames[..1000] {
        let a = attempt(f.id.0, f, 1, &r1);
        let mut f = f.clone();
        f.state = FrameState::Running;
        f.attempt = Some(a.id);
        f.host = Some(r1.id);
        f.attempts = 1;
        wave.frames.push(f);
        wave.attempts.push(a);
    }
    timed(
        "commit: 1,000 frames updated + 1,000 new attempts",
        store.commit(&wave),
    )
    .await
    .unwrap();

    // The same wave of the next 1,000 frames, with the frame.started event
    // each start writes to the outbox: what the events cost a fill.
    let mut evented = Batch::default();
    for (n, f) in submit.frames[1000..2000].iter().enumerate() {
        let a = attempt(f.id.0, f, 1, &r1);
        let mut f = f.clone();
        f.state = FrameState::Running;
        f.attempt = Some(a.id);
        f.host = Some(r1.id);
        f.attempts = 1;
        evented.events.push(kiln_core::event::Event {
            seq: n as u64 + 1,
            at: 1_765_000_000_000,
            kind: kiln_core::event::EventKind::FrameStarted,
            job_id: Some(1),
            job: Some("big".into()),
            show: Some("demo".into()),
            user: Some("ann".into()),
            layer: Some("render".into()),
            frame: Some(f.number.to_string()),
            frame_id: Some(f.id.0),
            attempt: Some(1),
            host: Some("r1".into()),
            detail: None,
        });
        evented.frames.push(f);
        evented.attempts.push(a);
    }
    timed(
        "commit: the same, + 1,000 frame.started events",
        store.commit(&evented),
    )
    .await
    .unwrap();

    let mut all = submit.frames.clone();
    for f in &mut all {
        f.cores = 100;
    }
    let update = Batch {
        frames: all,
        ..Batch::default()
    };
    timed("commit: 100,000 frames updated", store.commit(&update))
        .await
        .unwrap();

    let start = Instant::now();
    let n = 100;
    for i in 0..n {
        let mut f = wave.frames[i].clone();
        f.cpu_ms = 1;
        store
            .commit(&Batch {
                frames: vec![f],
                ..Batch::default()
            })
            .await
            .unwrap();
    }
    report(
        "commit: 1 frame (mean of 100; the sync's floor)",
        start.elapsed() / n as u32,
    );

    let image = timed("load: 100,000 frames, 2,000 running attempts", store.load())
        .await
        .unwrap();
    assert_eq!(image.frames.len(), FRAMES as usize);
    assert_eq!(image.running_attempts.len(), 2000);

    let start = Instant::now();
    for i in 1..=1000 {
        store.attempts(FrameId(i)).await.unwrap();
    }
    report("attempts(frame) (mean of 1,000)", start.elapsed() / 1000);

    b.close(store).await;
    let store = timed("reopen", b.open()).await;
    timed("load after reopen", store.load()).await.unwrap();
}
