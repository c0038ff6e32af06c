//! The history export: ended attempts with their job, layer and frame, in
//! the order they ended, from a cursor, filtered by show, user, job, time.

use super::fixtures::*;
use super::Backend;
use kiln_core::model::*;
use kiln_core::view::HistoryQuery;
use kiln_store::{Batch, Store};

pub async fn history_export(b: &impl Backend) {
    let store = b.open().await;
    let farm = farm();
    store.commit(&farm).await.unwrap();
    let (r1, f) = (&farm.hosts[0], &farm.frames[7]);
    // Ended at 5000, 5000 and 3000 (ties broken by id), and one running.
    let mut ended = Vec::new();
    for (id, number, end) in [(30, 1, 5_000), (20, 2, 5_000), (40, 3, 3_000)] {
        let mut a = attempt(id, f, number, r1);
        let mut frame = f.clone();
        finish(&mut frame, &mut a, Outcome::Failed, FrameState::Waiting);
        a.started_at = end - 1_000;
        a.ended_at = Some(end);
        ended.push(a);
    }
    let running = attempt(50, f, 4, r1);
    let mut attempts = ended.clone();
    attempts.push(running);
    store
        .commit(&Batch {
            attempts,
            ..Batch::default()
        })
        .await
        .unwrap();
    let job = &farm.jobs.iter().find(|j| j.id == f.job).unwrap();
    let layer = &farm.layers.iter().find(|l| l.id == f.layer).unwrap();
    let q = HistoryQuery {
        job: Some(job.name.clone()),
        limit: 100,
        ..HistoryQuery::default()
    };
    let ids = |rows: &[kiln_core::view::HistoryRow]| -> Vec<i64> {
        rows.iter()
            .map(|r| r.attempt_id)
            .filter(|id| [20, 30, 40, 50].contains(id))
            .collect()
    };
    let all = store.history(&q).await.unwrap();
    assert_eq!(
        ids(&all),
        [40, 20, 30],
        "in the order they ended; never the running one"
    );
    let r = all.iter().find(|r| r.attempt_id == 20).unwrap();
    assert_eq!(
        (
            r.job.as_str(),
            r.show.as_str(),
            r.user.as_str(),
            r.layer.as_str()
        ),
        (
            job.name.as_str(),
            job.show.as_str(),
            job.user.as_str(),
            layer.name.as_str()
        )
    );
    assert_eq!((r.frame, r.attempt, r.host.as_str()), (f.number, 2, "r1"));
    assert_eq!(
        (r.started_at, r.ended_at, r.runtime_ms),
        (4_000, 5_000, 1_000)
    );
    assert_eq!(
        (r.outcome.as_str(), r.exit_status, r.cores),
        ("FAILED", Some(2), 1.5)
    );

    // A page of 2, then the rest from the last row's (ended_at, id).
    let page = store
        .history(&HistoryQuery {
            limit: 2,
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(ids(&page), [40, 20]);
    let rest = store
        .history(&HistoryQuery {
            after: Some((5_000, 20)),
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(ids(&rest), [30]);
    // Time bounds: since is inclusive, until is not.
    let since = HistoryQuery {
        since: Some(5_000),
        ..q.clone()
    };
    assert_eq!(ids(&store.history(&since).await.unwrap()), [20, 30]);
    let until = HistoryQuery {
        until: Some(5_000),
        ..q.clone()
    };
    assert_eq!(ids(&store.history(&until).await.unwrap()), [40]);
    // Another show, user or job: none of them.
    for q in [
        HistoryQuery {
            show: Some("nope".into()),
            ..q.clone()
        },
        HistoryQuery {
            user: Some("nope".into()),
            ..q.clone()
        },
        HistoryQuery {
            job: Some("nope".into()),
            ..q.clone()
        },
    ] {
        assert_eq!(ids(&store.history(&q).await.unwrap()), Vec::<i64>::new());
    }
    // The job by id too.
    let by_id = HistoryQuery {
        job: Some(job.id.0.to_string()),
        ..q.clone()
    };
    assert_eq!(ids(&store.history(&by_id).await.unwrap()), [40, 20, 30]);
}
