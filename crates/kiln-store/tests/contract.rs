//! The store contract, run against SQLite: each check on a fresh database
//! file in its own temporary directory.

#[macro_use]
mod suite;

use kiln_store::SqliteStore;
use std::path::PathBuf;
use tempfile::TempDir;

struct Sqlite {
    _dir: TempDir,
    path: PathBuf,
}

impl Sqlite {
    fn fresh() -> Sqlite {
        let dir = tempfile::tempdir().unwrap();
        // A directory that does not exist yet: `open` must make it.
        let path = dir.path().join("state").join("kiln.db");
        Sqlite { _dir: dir, path }
    }
}

impl suite::Backend for Sqlite {
    type S = SqliteStore;

    async fn open(&self) -> SqliteStore {
        SqliteStore::open(&self.path).await.unwrap()
    }

    async fn close(&self, store: SqliteStore) {
        store.close().await.unwrap();
    }
}

contract_tests!(Sqlite::fresh();
    empty_load,
    round_trip,
    upsert_updates_in_place,
    later_copy_wins,
    batch_is_atomic,
    submit_keys_are_unique,
    structure_changes_apply_in_order,
    identity_changes_apply_in_order,
    audit_goes_with_its_batch,
    reopen_keeps_everything,
    attempt_history,
    history_export,
    archive_and_purge,
    events_outbox,
    webhooks_and_deliveries,
    farm_samples_over_time,
    running_attempts_only,
    max_ids,
    big_batch,
    odd_values,
    concurrent_use,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints timings; run with --release -- --ignored --nocapture"]
async fn timings() {
    suite::timings::timings(&Sqlite::fresh()).await;
}
