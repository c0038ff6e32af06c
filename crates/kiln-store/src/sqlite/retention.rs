//! Archived jobs: marked in the batch that archives them, left out of the
//! start-up image, deleted for good once history no longer keeps them.

use crate::Result;
use kiln_core::model::JobId;
use sqlx::sqlite::SqliteConnection;
use sqlx::Connection;
use tokio::sync::Mutex;

/// Frames (with their attempts) one purge transaction deletes at most, so
/// the writer is never held for long: the applier's commits queue behind it.
const PURGE_ROWS: i64 = 20_000;

/// Left out of the start-up image: jobs archived, and what they hold.
pub(super) const LIVE_JOBS: &str = "archived_at IS NULL";
pub(super) const OF_LIVE_JOBS: &str =
    "job_id NOT IN (SELECT id FROM jobs WHERE archived_at IS NOT NULL)";

/// Marks jobs archived, inside the batch's transaction.
pub(super) async fn mark(conn: &mut SqliteConnection, jobs: &[(JobId, i64)]) -> Result<()> {
    for (id, at) in jobs {
        sqlx::query("UPDATE jobs SET archived_at = ? WHERE id = ?")
            .bind(at)
            .bind(id.0)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Deletes at most `max_jobs` jobs archived before `before`, with their
/// layers, frames and attempts, in transactions of at most
/// [`PURGE_ROWS`] frames, each under the writer lock on its own. Returns
/// the jobs deleted.
pub(super) async fn purge(
    writer: &Mutex<SqliteConnection>,
    before: i64,
    max_jobs: u32,
) -> Result<u32> {
    let ids: Vec<i64> = {
        let mut conn = writer.lock().await;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE archived_at IS NOT NULL AND archived_at < ? \
             ORDER BY archived_at, id LIMIT ?",
        )
        .bind(before)
        .bind(max_jobs as i64)
        .fetch_all(&mut *conn)
        .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        // Before any row goes: the highest ids so far stay the floor.
        let mut tx = conn.begin().await?;
        for (kind, table) in [
            ("job", "jobs"),
            ("layer", "layers"),
            ("frame", "frames"),
            ("attempt", "attempts"),
        ] {
            sqlx::query(&format!(
                "INSERT INTO id_floor (kind, max_id) \
                 SELECT ?, COALESCE(MAX(id), 0) FROM {table} WHERE true \
                 ON CONFLICT (kind) DO UPDATE SET max_id = MAX(max_id, excluded.max_id)"
            ))
            .bind(kind)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        ids
    };
    for &id in &ids {
        loop {
            let mut conn = writer.lock().await;
            let mut tx = conn.begin().await?;
            let frames: Vec<i64> =
                sqlx::query_scalar("SELECT id FROM frames WHERE job_id = ? ORDER BY id LIMIT ?")
                    .bind(id)
                    .bind(PURGE_ROWS)
                    .fetch_all(&mut *tx)
                    .await?;
            let (Some(&lo), Some(&hi)) = (frames.first(), frames.last()) else {
                break;
            };
            // Every attempt belongs to a frame of its job, so deleting the
            // frames' attempts first leaves no attempt of the job behind.
            sqlx::query(
                "DELETE FROM attempts WHERE frame_id IN \
                 (SELECT id FROM frames WHERE job_id = ? AND id BETWEEN ? AND ?)",
            )
            .bind(id)
            .bind(lo)
            .bind(hi)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM frames WHERE job_id = ? AND id BETWEEN ? AND ?")
                .bind(id)
                .bind(lo)
                .bind(hi)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        let mut conn = writer.lock().await;
        let mut tx = conn.begin().await?;
        sqlx::query("DELETE FROM layers WHERE job_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM jobs WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(ids.len() as u32)
}
