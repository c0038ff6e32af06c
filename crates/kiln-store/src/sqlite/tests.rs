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
        max_cores: None,
        avoid_hosts: vec![],
        submitted_at: 0,
        finished_at: None,
        submit_key: None,
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
            gpu_memory_kb: 0,
            scratch_kb: 0,
        },
        cores: CoreRequest::Exact(100),
        tags: vec![],
        limits: vec![],
        service: None,
        env: BTreeMap::new(),
        retries: 0,
        timeout_s: None,
        depends: vec![],
        cwd: None,
        paused: false,
        outputs: vec![],
        bad_outputs: Default::default(),
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

#[tokio::test]
async fn a_database_from_before_the_scheduler_migrates_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiln.db");
    // A database as the first release left it: 0001 only, with rows.
    let first = dir.path().join("first");
    std::fs::create_dir(&first).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/migrations/sqlite/0001_init.sql"
        ),
        first.join("0001_init.sql"),
    )
    .unwrap();
    {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::migrate::Migrator::new(first.as_path())
            .await
            .unwrap()
            .run(&mut conn)
            .await
            .unwrap();
        // One transaction: frames and attempts name each other.
        for sql in [
            "BEGIN",
            "INSERT INTO jobs VALUES (1, 'j', 'local', 's', 'sh', 'u', 100, 'ACTIVE', 0, '{}', '[]', 5, NULL)",
            "INSERT INTO layers VALUES (1, 1, 0, 'a', '\"true\"', '1-3', 1, 150, 1024, 0, '[]', '{}', 3, NULL, '[]', NULL, 0)",
            "INSERT INTO layers VALUES (2, 1, 1, 'b', '\"true\"', '1', 1, 400, 1024, 0, '[]', '{}', 3, NULL, '[]', NULL, 0)",
            "INSERT INTO layers VALUES (3, 1, 2, 'c', '\"true\"', '1', 1, 125, 1024, 0, '[]', '{}', 3, NULL, '[]', NULL, 0)",
            "INSERT INTO hosts VALUES (1, 'r1', 'UP', 'OPEN', 'linux', 800, 1024, 0, 0.5, '[\"linux\"]', '{}', 1, 2)",
            "INSERT INTO frames VALUES (1, 1, 1, 0, 1, '1', 'RUNNING', 1, 0, 1, 1, 150, 3, NULL, NULL, NULL, NULL, 0, 0)",
            "INSERT INTO attempts VALUES (1, 1, 1, 1, 1, 'r1', 150, 3, NULL, NULL, NULL, NULL, 0, 0, NULL)",
            "COMMIT",
        ] {
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
    }
    let store = SqliteStore::open(&path).await.unwrap();
    let image = store.load().await.unwrap();
    let j = &image.jobs[0];
    assert_eq!((j.max_cores, j.avoid_hosts.len()), (None, 0));
    let cores: Vec<CoreRequest> = image.layers.iter().map(|l| l.cores).collect();
    assert_eq!(
        cores,
        [
            CoreRequest::Exact(150),
            CoreRequest::Exact(400),
            CoreRequest::Exact(125)
        ]
    );
    let l = &image.layers[0];
    assert_eq!((l.resources.gpu_memory_kb, l.resources.scratch_kb), (0, 0));
    assert!(l.limits.is_empty() && l.service.is_none());
    let h = &image.hosts[0];
    assert_eq!(h.allocation, kiln_core::structure::DEFAULT_ALLOCATION);
    assert!(h.tags.is_empty());
    assert_eq!(image.running_attempts[0].memory_kb, 0);
    assert!(image.structure.is_empty());
}

#[tokio::test]
async fn unreadable_structure_rows_are_named() {
    let (_dir, store) = store().await;
    exec(
        &store,
        r#"INSERT INTO structure VALUES ('limit', 'lic', '{"Limit": {"name": "lic", "max": -1}}')"#,
    )
    .await;
    match store.load().await {
        Err(Error::CorruptStructure { kind, key, .. }) => {
            assert_eq!((kind.as_str(), key.as_str()), ("limit", "lic"))
        }
        other => panic!("{other:?}"),
    }
    exec(
        &store,
        r#"UPDATE structure SET body = '{"Limit": {"name": "other", "max": 1}}'"#,
    )
    .await;
    match store.load().await {
        Err(Error::CorruptStructure { detail, .. }) => {
            assert!(detail.contains("other"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}
