//! The outbox: events are durable with their batch and only with it, read
//! back in order from a number with filters, pruned by age keeping the
//! newest, and numbered on after a reopen.

use super::fixtures::*;
use super::Backend;
use kiln_core::event::{Event, EventFilter, EventKind};
use kiln_store::{Batch, Store};

fn event(seq: u64, at: i64, kind: EventKind, job: Option<(i64, &str)>, show: &str) -> Event {
    Event {
        seq,
        at,
        kind,
        job_id: job.map(|j| j.0),
        job: job.map(|j| j.1.to_string()),
        show: Some(show.to_string()),
        user: Some("ann".into()),
        layer: None,
        frame: None,
        frame_id: None,
        attempt: None,
        host: None,
        detail: Some("why".into()),
    }
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

pub async fn events_outbox(b: &impl Backend) {
    use EventKind::*;
    let store = b.open().await;
    let all = EventFilter::default();
    let mut farm = farm();
    farm.events = vec![
        event(1, 100, JobSubmitted, Some((1, "one")), "film"),
        event(2, 200, FrameStarted, Some((1, "one")), "film"),
        event(3, 300, JobSubmitted, Some((2, "two")), "ad"),
    ];
    store.commit(&farm).await.unwrap();
    let read = store.events_after(0, None, 100, &all).await.unwrap();
    assert_eq!(read, farm.events, "read back whole and in order");

    // A batch that fails takes its events with it, and a clashing event
    // number fails its batch's records.
    let bad = Batch {
        hosts: vec![host(10, "twin"), host(11, "twin")],
        events: vec![event(4, 400, HostUp, None, "film")],
        ..Batch::default()
    };
    store.commit(&bad).await.expect_err("two hosts named twin");
    let clash = Batch {
        jobs: vec![job(10, "ten")],
        events: vec![event(3, 400, JobSubmitted, Some((10, "ten")), "ad")],
        ..Batch::default()
    };
    store.commit(&clash).await.expect_err("event 3 exists");
    assert_eq!(
        seqs(&store.events_after(0, None, 100, &all).await.unwrap()),
        [1, 2, 3]
    );
    assert!(store
        .load()
        .await
        .unwrap()
        .jobs
        .iter()
        .all(|j| j.id.0 != 10));

    let more = Batch {
        events: (4..=9)
            .map(|s| event(s, s as i64 * 100, JobFinished, Some((2, "two")), "ad"))
            .collect(),
        ..Batch::default()
    };
    store.commit(&more).await.unwrap();
    let page = store.events_after(2, None, 3, &all).await.unwrap();
    assert_eq!(seqs(&page), [3, 4, 5], "after a number, a page at a time");
    let f = |job: Option<&str>, show: Option<&str>, kinds: Vec<EventKind>| EventFilter {
        job: job.map(Into::into),
        show: show.map(Into::into),
        kinds,
    };
    let q = |after, filter| {
        let store = &store;
        async move { seqs(&store.events_after(after, None, 100, &filter).await.unwrap()) }
    };
    assert_eq!(q(0, f(None, Some("film"), vec![])).await, [1, 2]);
    assert_eq!(q(0, f(Some("1"), None, vec![])).await, [1, 2], "by job id");
    assert_eq!(
        q(0, f(Some("two"), None, vec![])).await,
        [3, 4, 5, 6, 7, 8, 9]
    );
    assert_eq!(
        q(1, f(None, None, vec![JobSubmitted, FrameStarted])).await,
        [2, 3]
    );
    let since = store.events_after(0, Some(800), 100, &all).await.unwrap();
    assert_eq!(seqs(&since), [8, 9], "made at or after a time");

    // Pruning keeps the newest even when it is old: numbering goes on.
    assert_eq!(store.prune_events(450).await.unwrap(), 4);
    assert_eq!(
        seqs(&store.events_after(0, None, 100, &all).await.unwrap()),
        [5, 6, 7, 8, 9]
    );
    assert_eq!(store.prune_events(10_000).await.unwrap(), 4);
    assert_eq!(
        seqs(&store.events_after(0, None, 100, &all).await.unwrap()),
        [9]
    );
    b.close(store).await;
    let store = b.open().await;
    assert_eq!(store.load().await.unwrap().max_ids.event, 9);
    b.close(store).await;
}
