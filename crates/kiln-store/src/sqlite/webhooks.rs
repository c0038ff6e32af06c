//! Webhooks and their delivery log: rows made and deleted by callers, a
//! cursor into the events outbox advanced with the tries that moved it, so
//! a restart resumes delivery after the last event a receiver took.

use crate::codec::{from_json, to_i64, to_json};
use crate::{Error, Result};
use kiln_core::event::EventKind;
use kiln_core::model::Millis;
use kiln_core::webhook::{Delivery, DeliveryOutcome, DeliveryQuery, Webhook};
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Connection, Row};

/// Rows per insert statement: ten values each, far below SQLite's bound.
const ROWS: usize = 256;

pub(super) async fn create(conn: &mut SqliteConnection, w: &Webhook) -> Result<i64> {
    let kinds: Vec<&str> = w.kinds.iter().map(|k| k.as_str()).collect();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO webhooks (url, secret, kinds, show, owner, created_at, delivered_seq) \
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&w.url)
    .bind(&w.secret)
    .bind(to_json("webhook kinds", &kinds)?)
    .bind(w.show.as_deref())
    .bind(&w.owner)
    .bind(w.created_at)
    .bind(to_i64("webhook delivered_seq", w.delivered_seq)?)
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

fn webhook(row: &SqliteRow) -> Result<Webhook> {
    let id: i64 = row.try_get("id")?;
    let corrupt = |column: &str, detail: String| Error::Corrupt {
        table: "webhooks",
        id,
        column: column.into(),
        detail,
    };
    let kinds: String = row.try_get("kinds")?;
    let kinds: Vec<String> = from_json(&kinds).map_err(|d| corrupt("kinds", d))?;
    let kinds = kinds
        .iter()
        .map(|k| EventKind::parse(k).ok_or_else(|| corrupt("kinds", format!("unknown kind {k:?}"))))
        .collect::<Result<Vec<_>>>()?;
    let seq: i64 = row.try_get("delivered_seq")?;
    Ok(Webhook {
        id,
        url: row.try_get("url")?,
        secret: row.try_get("secret")?,
        kinds,
        show: row.try_get("show")?,
        owner: row.try_get("owner")?,
        created_at: row.try_get("created_at")?,
        delivered_seq: u64::try_from(seq).map_err(|_| corrupt("delivered_seq", seq.to_string()))?,
    })
}

pub(super) async fn all(conn: &mut SqliteConnection) -> Result<Vec<Webhook>> {
    let rows = sqlx::query("SELECT * FROM webhooks ORDER BY id")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(webhook).collect()
}

pub(super) async fn delete(conn: &mut SqliteConnection, id: i64) -> Result<bool> {
    let mut tx = conn.begin().await?;
    sqlx::query("DELETE FROM webhook_deliveries WHERE webhook = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let gone = sqlx::query("DELETE FROM webhooks WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(gone > 0)
}

/// Appends the tries and moves the cursors in one transaction. Rows of a
/// webhook deleted meanwhile are dropped, not an error: its deliverer may
/// finish a try after the delete.
pub(super) async fn record(
    conn: &mut SqliteConnection,
    tries: &[Delivery],
    cursors: &[(i64, u64)],
) -> Result<()> {
    let mut tx = conn.begin().await?;
    for chunk in tries.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO webhook_deliveries \
             (webhook, seq, kind, at, attempt, outcome, status, error, millis) \
             SELECT * FROM (VALUES {}) AS t WHERE t.column1 IN (SELECT id FROM webhooks)",
            vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(&sql);
        for d in chunk {
            q = q
                .bind(d.webhook)
                .bind(to_i64("delivery seq", d.seq)?)
                .bind(&d.kind)
                .bind(d.at)
                .bind(d.attempt)
                .bind(d.outcome.as_str())
                .bind(d.status)
                .bind(&d.error)
                .bind(d.millis);
        }
        q.execute(&mut *tx).await?;
    }
    for (id, seq) in cursors {
        // Never backwards: a late write of an older cursor loses.
        sqlx::query("UPDATE webhooks SET delivered_seq = MAX(delivered_seq, ?) WHERE id = ?")
            .bind(to_i64("webhook delivered_seq", *seq)?)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn deliveries(
    conn: &mut SqliteConnection,
    q: &DeliveryQuery,
    visible: &[i64],
) -> Result<Vec<Delivery>> {
    let ids = serde_json::to_string(visible).expect("numbers encode");
    let rows = sqlx::query(
        "SELECT * FROM webhook_deliveries \
         WHERE webhook IN (SELECT value FROM json_each(?1)) \
         AND (?2 IS NULL OR webhook = ?2) AND (?3 = 0 OR outcome <> 'delivered') \
         ORDER BY id DESC LIMIT ?4",
    )
    .bind(ids)
    .bind(q.webhook)
    .bind(q.failed)
    .bind(i64::from(q.limit()))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let id: i64 = row.try_get("id")?;
            let corrupt = |column: &str, detail: String| Error::Corrupt {
                table: "webhook_deliveries",
                id,
                column: column.into(),
                detail,
            };
            let outcome: String = row.try_get("outcome")?;
            let seq: i64 = row.try_get("seq")?;
            Ok(Delivery {
                id,
                webhook: row.try_get("webhook")?,
                seq: u64::try_from(seq).map_err(|_| corrupt("seq", seq.to_string()))?,
                kind: row.try_get("kind")?,
                at: row.try_get("at")?,
                attempt: row.try_get("attempt")?,
                outcome: DeliveryOutcome::parse(&outcome)
                    .ok_or_else(|| corrupt("outcome", outcome))?,
                status: row.try_get("status")?,
                error: row.try_get("error")?,
                millis: row.try_get("millis")?,
            })
        })
        .collect()
}

/// Deletes tries recorded before `before`; returns how many went.
pub(super) async fn prune(conn: &mut SqliteConnection, before: Millis) -> Result<u64> {
    let done = sqlx::query("DELETE FROM webhook_deliveries WHERE at < ?")
        .bind(before)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}
