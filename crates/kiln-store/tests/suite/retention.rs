//! Archived jobs: left out of the start-up image but still in history, then
//! purged with everything they hold, never to have their ids given again.

use super::fixtures::*;
use super::Backend;
use kiln_core::model::*;
use kiln_core::view::HistoryQuery;
use kiln_store::{Batch, Store};

pub async fn archive_and_purge(b: &impl Backend) {
    let store = b.open().await;
    let farm = farm();
    store.commit(&farm).await.unwrap();
    let f = farm.frames[0].clone();
    let job = farm.jobs.iter().find(|j| j.id == f.job).unwrap().clone();
    let mut a = attempt(900, &f, 1, &farm.hosts[0]);
    let mut frame = f.clone();
    finish(
        &mut frame,
        &mut a,
        Outcome::Succeeded,
        FrameState::Succeeded,
    );
    store
        .commit(&Batch {
            attempts: vec![a],
            frames: vec![frame],
            ..Batch::default()
        })
        .await
        .unwrap();
    let before = store.load().await.unwrap();
    let ours = |img: &kiln_store::Image| {
        (
            img.jobs.iter().filter(|j| j.id == job.id).count(),
            img.layers.iter().filter(|l| l.job == job.id).count(),
            img.frames.iter().filter(|f| f.job == job.id).count(),
        )
    };
    let (_, layers, frames) = ours(&before);
    assert!(layers > 0 && frames > 0);

    store
        .commit(&Batch {
            archived: vec![(job.id, 10_000)],
            ..Batch::default()
        })
        .await
        .unwrap();
    let after = store.load().await.unwrap();
    assert_eq!(ours(&after), (0, 0, 0), "archived: not loaded");
    assert_eq!(after.jobs.len(), before.jobs.len() - 1, "the others stay");
    assert_eq!(after.frames.len(), before.frames.len() - frames);
    assert_eq!(after.max_ids, before.max_ids);
    let q = HistoryQuery {
        job: Some(job.name.clone()),
        limit: 100,
        ..HistoryQuery::default()
    };
    let rows = store.history(&q).await.unwrap();
    assert!(
        rows.iter().any(|r| r.attempt_id == 900),
        "history still reads an archived job: {rows:?}"
    );

    assert_eq!(
        store.purge(10_000, 100).await.unwrap(),
        0,
        "not yet old enough"
    );
    assert_eq!(store.purge(10_001, 100).await.unwrap(), 1);
    assert!(store.history(&q).await.unwrap().is_empty(), "purged");
    assert!(store.attempt(AttemptId(900)).await.unwrap().is_none());
    let purged = store.load().await.unwrap();
    assert_eq!(purged.jobs.len(), after.jobs.len());
    assert_eq!(purged.frames.len(), after.frames.len());
    // Ids go on above everything ever stored, the purged ones included.
    assert_eq!(purged.max_ids, before.max_ids);
    // Every job archived and purged: the newest ids go too, and still
    // none is given again, after a restart as well.
    let rest: Vec<(JobId, i64)> = purged.jobs.iter().map(|j| (j.id, 20_000)).collect();
    store
        .commit(&Batch {
            archived: rest.clone(),
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(store.purge(30_000, 100).await.unwrap(), rest.len() as u32);
    let empty = store.load().await.unwrap();
    assert!(empty.jobs.is_empty() && empty.layers.is_empty() && empty.frames.is_empty());
    b.close(store).await;
    let store = b.open().await;
    assert_eq!(store.load().await.unwrap().max_ids, before.max_ids);
    assert_eq!(store.purge(i64::MAX, 100).await.unwrap(), 0);
    b.close(store).await;
}
