//! The `identity` and `audit` tables: users, grants, tokens and host
//! credentials as one JSON body per (kind, key), read whole at start-up;
//! and the append-only audit trail, read on demand, newest first.

use super::keyed::{self, Table};
use crate::codec::{self, to_json};
use crate::{Error, Result};
use kiln_core::auth::audit::{AuditQuery, AuditRecord};
use kiln_core::auth::identity::Change;
use sqlx::sqlite::SqliteConnection;
use sqlx::Row;

/// Identity changes, one statement each in the order made (a token put
/// then removed in one batch must end removed); there are only ever a few.
pub(super) async fn apply(conn: &mut SqliteConnection, changes: &[Change]) -> Result<()> {
    for change in changes {
        let (kind, key) = change.kind_key();
        if change.is_removal() {
            keyed::remove(conn, Table::Identity, kind, key).await?;
        } else {
            let body = to_json("identity record", change)?;
            keyed::put(conn, Table::Identity, kind, key, body).await?;
        }
    }
    Ok(())
}

/// Every identity record as the change that puts it, by kind then key. A
/// body that does not read back as a put of its row's kind and key is
/// reported as corrupt.
pub(super) async fn load(conn: &mut SqliteConnection) -> Result<Vec<Change>> {
    let rows = keyed::rows(conn, Table::Identity).await?;
    let mut out = Vec::with_capacity(rows.len());
    for (kind, key, body) in rows {
        let corrupt = |detail: String| Error::CorruptIdentity {
            kind: kind.clone(),
            key: key.clone(),
            detail,
        };
        let change: Change = codec::from_json(&body).map_err(corrupt)?;
        if change.is_removal() || change.kind_key() != (kind.as_str(), key.as_str()) {
            return Err(corrupt(format!(
                "the body is {:?}, not a record of what its row names",
                change.kind_key()
            )));
        }
        out.push(change);
    }
    Ok(out)
}

pub(super) async fn append(conn: &mut SqliteConnection, records: &[AuditRecord]) -> Result<()> {
    for r in records {
        sqlx::query(
            "INSERT INTO audit (id, at, who, address, action, target, outcome) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.id)
        .bind(r.at)
        .bind(r.who.as_str())
        .bind(r.from.as_str())
        .bind(r.action.as_str())
        .bind(r.target.as_str())
        .bind(r.outcome.as_str())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub(super) async fn query(conn: &mut SqliteConnection, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
    let rows = sqlx::query(
        "SELECT id, at, who, address, action, target, outcome FROM audit \
         WHERE (?1 IS NULL OR who = ?1) AND (?2 IS NULL OR at >= ?2) \
         ORDER BY id DESC LIMIT ?3",
    )
    .bind(q.who.as_deref())
    .bind(q.since)
    .bind(i64::from(q.limit()))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(AuditRecord {
                id: row.try_get(0)?,
                at: row.try_get(1)?,
                who: row.try_get(2)?,
                from: row.try_get(3)?,
                action: row.try_get(4)?,
                target: row.try_get(5)?,
                outcome: row.try_get(6)?,
            })
        })
        .collect()
}
