//! What the contract suite cannot see from outside the SQLite backend: the
//! settings it runs under, the query plans that keep it fast, and how it
//! reports rows it cannot read back.

use super::SqliteStore;
use crate::{Batch, Error, Store};
use kiln_core::model::*;
use sqlx::Row;
use std::collections::BTreeMap;

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("kiln.db"))
        .await
        .unwrap();
    (dir, store)
}

/// Runs `sql` on the writer connection, as a hand edit of the file would.
async fn exec(store: &SqliteStore, sql: &str) {
    let mut writer = store.writer.lock().await;
    sqlx::query(sql).execute(&mut *writer).await.unwrap();
}

async fn pragma(store: &SqliteStore, name: &str) -> String {
    let mut writer = store.writer.lock().await;
    let row = sqlx::query(&format!("PRAGMA {name}"))
        .fetch_one(&mut *writer)
        .await
        .unwrap();
    row.try_get::<i64, _>(0)
        .map(|v| v.to_string())
        .or_else(|_| row.try_get::<String, _>(0))
        .unwrap()
}

async fn plan(store: &SqliteStore, sql: &str) -> String {
    let mut writer = store.writer.lock().await;
    let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
        .fetch_all(&mut *writer)
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.get::<String, _>(3))
        .collect::<Vec<_>>()
        .join("; ")
}

fn tiny_farm() -> Batch {
    let job = Job {
        id: JobId(1),
        name: "j".into(),
        facility: "f".into(),
        show: "s".into(),
        shot: "sh".into(),
        user: "u".into(),
        priority: 0,
        env: BTreeMap::new(),
        paused: false,
        state: JobState::Active,
        depends: vec![],
        submitted_at: 0,
        finished_at: None,
    };
    let layer = Layer {
        id: LayerId(1),
        job: JobId(1),
        index: 0,
        name: "l".into(),
        command: Command::Shell("true".into()),
        frames: "1".into(),
        chunk: 1,
        resources: Resources {
            cores: 100,
            memory_kb: 1 << 20,
            gpus: 0,
        },
        tags: vec![],
        env: BTreeMap::new(),
        retries: 0,
        timeout_s: None,
        depends: vec![],
        cwd: None,
        paused: false,
    };
    let frame = Frame::new(FrameId(1), JobId(1), LayerId(1), 0, 1, "1".into());
    Batch {
        jobs: vec![job],
        layers: vec![layer],
        frames: vec![frame],
        ..Batch::default()
    }
}

#[tokio::test]
async fn durable_settings() {
    let (_dir, store) = store().await;
    assert_eq!(pragma(&store, "journal_mode").await, "wal");
    assert_eq!(pragma(&store, "synchronous").await, "2", "FULL");
    assert_eq!(pragma(&store, "foreign_keys").await, "1");
}

#[tokio::test]
async fn reads_use_the_indexes() {
    let (_dir, store) = store().await;
    let running = plan(
        &store,
        "SELECT id FROM attempts WHERE outcome IS NULL ORDER BY id",
    )
    .await;
    assert!(running.contains("attempts_running"), "{running}");
    let history = plan(
        &store,
        "SELECT id FROM attempts WHERE frame_id = 1 ORDER BY number, id",
    )
    .await;
    assert!(history.contains("attempts_frame"), "{history}");
    let by_job = plan(&store, "SELECT id FROM frames WHERE job_id = 1").await;
    assert!(by_job.contains("frames_job"), "{by_job}");
}

#[tokio::test]
async fn unreadable_rows_are_named() {
    let (_dir, store) = store().await;
    store.commit(&tiny_farm()).await.unwrap();

    exec(&store, "UPDATE jobs SET state = 'SLEEPING'").await;
    match store.load().await {
        Err(Error::Corrupt {
            table: "jobs",
            id: 1,
            column,
            detail,
        }) => {
            assert_eq!(column, "state");
            assert!(detail.contains("SLEEPING"), "{detail}");
        }
        other => panic!("{other:?}"),
    }

    exec(
        &store,
        "UPDATE jobs SET state = 'ACTIVE', env = '{not json'",
    )
    .await;
    assert!(matches!(store.load().await, Err(Error::Corrupt { column, .. }) if column == "env"));

    exec(&store, "UPDATE jobs SET env = '{}', priority = 1 << 40").await;
    assert!(
        matches!(store.load().await, Err(Error::Corrupt { column, .. }) if column == "priority")
    );

    exec(&store, "UPDATE jobs SET priority = 0").await;
    store.load().await.unwrap();

    // Frames are read by another path (see `read::frames`); same reporting.
    exec(&store, "UPDATE frames SET outcome = 'VANISHED'").await;
    match store.load().await {
        Err(Error::Corrupt {
            table: "frames",
            id: 1,
            column,
            ..
        }) => assert_eq!(column, "outcome"),
        other => panic!("{other:?}"),
    }
    exec(&store, "UPDATE frames SET outcome = NULL, cores = -1").await;
    assert!(matches!(store.load().await, Err(Error::Corrupt { column, .. }) if column == "cores"));
}

#[tokio::test]
async fn values_beyond_i64_are_refused() {
    let (_dir, store) = store().await;
    let mut batch = tiny_farm();
    batch.layers[0].resources.memory_kb = u64::MAX;
    let err = store.commit(&batch).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfRange {
                what: "layer memory_kb",
                ..
            }
        ),
        "{err}"
    );
    assert!(store.load().await.unwrap().jobs.is_empty());
}
