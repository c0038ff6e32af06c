//! The SQLite backend: one database file in WAL mode, one writer connection
//! for commits and a small pool of read-only connections for everything else.

mod events;
mod history;
mod identity;
mod keyed;
mod read;
mod retention;
mod samples;
mod structure;
mod tables;
#[cfg(test)]
mod tests;
mod webhooks;
mod write;

use crate::{Batch, Error, Image, Result, Store};
use kiln_core::auth::audit::{AuditQuery, AuditRecord};
use kiln_core::event::{Event, EventFilter};
use kiln_core::model::{Attempt, AttemptId, FrameId, Millis};
use kiln_core::view::{FarmSample, HistoryQuery, HistoryRow};
use kiln_core::webhook::{Delivery, DeliveryQuery, Webhook};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};
use std::path::Path;
use std::time::Duration;
use tokio::sync::Mutex;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits on another connection's lock before failing.
/// Only a checkpoint or a foreign process should ever hold one that long.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Readers serve `load` and attempt history; a few let history reads
/// proceed while a slow `load` runs, without competing for the 2 cores
/// Kiln targets.
const READERS: u32 = 4;

/// A [`Store`] in one SQLite file.
pub struct SqliteStore {
    /// The only connection that writes. SQLite allows one writer at a time;
    /// holding the writer behind our own lock makes commits queue here
    /// instead of spinning on `SQLITE_BUSY`.
    writer: Mutex<SqliteConnection>,
    readers: SqlitePool,
}

impl SqliteStore {
    /// Opens the database at `path`, creating it (and its directory) if
    /// missing, and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|source| Error::CreateDir {
                    path: dir.to_owned(),
                    source,
                })?;
        }
        let base = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let mut writer = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL syncs the WAL on every commit: a commit that returned
            // survives power loss, which is what the server acknowledges.
            .synchronous(SqliteSynchronous::Full)
            // Room for a large batch's pages without spilling mid-commit.
            .pragma("cache_size", "-65536")
            .connect()
            .await?;
        MIGRATOR.run(&mut writer).await?;
        // Readers are opened after the migration so they never see an old
        // schema, and read-only so a bug cannot write past the writer lock.
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .min_connections(0)
            .connect_with(base.read_only(true))
            .await?;
        tracing::debug!(path = %path.display(), "sqlite store open");
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            readers,
        })
    }

    /// Closes every connection, waiting for work in progress. The last one
    /// to close checkpoints the WAL into the main file. Dropping the store
    /// instead is safe (every commit is already durable) but leaves the WAL
    /// to be replayed by the next open.
    pub async fn close(self) -> Result<()> {
        self.readers.close().await;
        self.writer.into_inner().close().await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn load(&self) -> Result<Image> {
        // One read transaction: WAL gives it a snapshot, so the image is
        // consistent even while commits continue.
        let mut tx = self.readers.begin().await?;
        let image = read::image(&mut tx).await?;
        tx.commit().await?;
        Ok(image)
    }

    async fn commit(&self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut writer = self.writer.lock().await;
        // Dropping the transaction on an error (or a cancelled future) rolls
        // it back, which is what makes the batch all or nothing.
        let mut tx = writer.begin().await?;
        write::batch(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn attempts(&self, frame: FrameId) -> Result<Vec<Attempt>> {
        let mut conn = self.readers.acquire().await?;
        read::attempts_of(&mut conn, frame).await
    }

    async fn attempt(&self, id: AttemptId) -> Result<Option<Attempt>> {
        let mut conn = self.readers.acquire().await?;
        read::attempt(&mut conn, id).await
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let mut conn = self.readers.acquire().await?;
        identity::query(&mut conn, query).await
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryRow>> {
        let mut conn = self.readers.acquire().await?;
        history::query(&mut conn, query).await
    }

    async fn purge(&self, before: i64, max_jobs: u32) -> Result<u32> {
        // Each transaction takes the writer lock on its own, so commits
        // interleave with a long purge instead of waiting for all of it.
        retention::purge(&self.writer, before, max_jobs).await
    }

    async fn events_after(
        &self,
        after: u64,
        since: Option<Millis>,
        limit: u32,
        filter: &EventFilter,
    ) -> Result<Vec<Event>> {
        let mut conn = self.readers.acquire().await?;
        events::after(&mut conn, after, since, limit, filter).await
    }

    async fn prune_events(&self, before: Millis) -> Result<u64> {
        let mut writer = self.writer.lock().await;
        events::prune(&mut writer, before).await
    }

    async fn create_webhook(&self, webhook: &Webhook) -> Result<i64> {
        let mut writer = self.writer.lock().await;
        webhooks::create(&mut writer, webhook).await
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>> {
        let mut conn = self.readers.acquire().await?;
        webhooks::all(&mut conn).await
    }

    async fn delete_webhook(&self, id: i64) -> Result<bool> {
        let mut writer = self.writer.lock().await;
        webhooks::delete(&mut writer, id).await
    }

    async fn record_deliveries(&self, tries: &[Delivery], cursors: &[(i64, u64)]) -> Result<()> {
        if tries.is_empty() && cursors.is_empty() {
            return Ok(());
        }
        let mut writer = self.writer.lock().await;
        webhooks::record(&mut writer, tries, cursors).await
    }

    async fn deliveries(&self, query: &DeliveryQuery, visible: &[i64]) -> Result<Vec<Delivery>> {
        let mut conn = self.readers.acquire().await?;
        webhooks::deliveries(&mut conn, query, visible).await
    }

    async fn prune_deliveries(&self, before: Millis) -> Result<u64> {
        let mut writer = self.writer.lock().await;
        webhooks::prune(&mut writer, before).await
    }

    async fn save_farm_sample(&self, sample: &FarmSample) -> Result<()> {
        let mut writer = self.writer.lock().await;
        samples::save(&mut writer, sample).await
    }

    async fn farm_samples(&self, since: Millis) -> Result<Vec<FarmSample>> {
        let mut conn = self.readers.acquire().await?;
        samples::since(&mut conn, since).await
    }

    async fn prune_farm_samples(&self, before: Millis) -> Result<u64> {
        let mut writer = self.writer.lock().await;
        samples::prune(&mut writer, before).await
    }
}
