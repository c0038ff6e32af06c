//! The outbox: events written with their batch, read back in order from a
//! sequence number for clients catching up, pruned by age. Each row keeps
//! the event whole as JSON, with the columns filters and pruning use.

use crate::codec::{from_json, to_i64, to_json};
use crate::{Error, Result};
use kiln_core::event::{Event, EventFilter};
use kiln_core::model::Millis;
use sqlx::sqlite::SqliteConnection;
use sqlx::Row;

/// Rows per insert statement: six values each, far below SQLite's bound.
const ROWS: usize = 256;

/// Appends `events` on `conn`, inside the caller's transaction.
pub(super) async fn append(conn: &mut SqliteConnection, events: &[Event]) -> Result<()> {
    for chunk in events.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO events (seq, at, kind, job, show, body) VALUES {}",
            vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(to_i64("event seq", e.seq)?)
                .bind(e.at)
                .bind(e.kind.as_str())
                .bind(e.job_id)
                .bind(e.show.as_deref())
                .bind(to_json("event", e)?);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Up to `limit` events after `after` matching `filter`, oldest first.
pub(super) async fn after(
    conn: &mut SqliteConnection,
    after: u64,
    since: Option<Millis>,
    limit: u32,
    filter: &EventFilter,
) -> Result<Vec<Event>> {
    let kinds: Option<String> = (!filter.kinds.is_empty()).then(|| {
        let names: Vec<&str> = filter.kinds.iter().map(|k| k.as_str()).collect();
        serde_json::to_string(&names).expect("strings encode")
    });
    let rows = sqlx::query(
        "SELECT seq, body FROM events WHERE seq > ?1 \
         AND (?2 IS NULL OR at >= ?2) \
         AND (?3 IS NULL OR kind IN (SELECT value FROM json_each(?3))) \
         AND (?4 IS NULL OR show = ?4) \
         AND (?5 IS NULL OR CAST(job AS TEXT) = ?5 OR json_extract(body, '$.job') = ?5) \
         ORDER BY seq LIMIT ?6",
    )
    .bind(to_i64("event seq", after)?)
    .bind(since)
    .bind(kinds)
    .bind(filter.show.as_deref())
    .bind(filter.job.as_deref())
    .bind(i64::from(limit.max(1)))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let seq: i64 = row.try_get(0)?;
            let body: String = row.try_get(1)?;
            from_json(&body).map_err(|detail| Error::Corrupt {
                table: "events",
                id: seq,
                column: "body".into(),
                detail,
            })
        })
        .collect()
}

/// Deletes events older than `before`, except the newest, whose number the
/// next server continues from. Returns how many went.
pub(super) async fn prune(conn: &mut SqliteConnection, before: Millis) -> Result<u64> {
    let done =
        sqlx::query("DELETE FROM events WHERE at < ?1 AND seq < (SELECT MAX(seq) FROM events)")
            .bind(before)
            .execute(&mut *conn)
            .await?;
    Ok(done.rows_affected())
}
