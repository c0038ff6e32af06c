//! The `structure` table: facilities, allocations, shows, subscriptions,
//! limits and services, one JSON body per (kind, key). They are few and
//! change rarely, so each change is its own statement, in the order made,
//! and a load reads them all.

use crate::codec::{self, to_json};
use crate::{Error, Result};
use kiln_core::structure::{Change, Record};
use sqlx::sqlite::SqliteConnection;
use sqlx::Row;

/// Structure changes, one statement each in the order made: a put then a
/// remove of one key must end removed, and there are only ever a few.
pub(super) async fn apply(conn: &mut SqliteConnection, changes: &[Change]) -> Result<()> {
    for change in changes {
        match change {
            Change::Put(r) => {
                sqlx::query(
                    "INSERT INTO structure (kind, key, body) VALUES (?, ?, ?) \
                     ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body",
                )
                .bind(r.kind())
                .bind(r.key())
                .bind(to_json("structure record", r)?)
                .execute(&mut *conn)
                .await?;
            }
            Change::Remove { kind, key } => {
                sqlx::query("DELETE FROM structure WHERE kind = ? AND key = ?")
                    .bind(*kind)
                    .bind(key.as_str())
                    .execute(&mut *conn)
                    .await?;
            }
        }
    }
    Ok(())
}

/// Every structure record, by kind then key. A body that does not read
/// back as a record of its row's kind and key is reported as corrupt.
pub(super) async fn load(conn: &mut SqliteConnection) -> Result<Vec<Record>> {
    let rows = sqlx::query("SELECT kind, key, body FROM structure ORDER BY kind, key")
        .fetch_all(&mut *conn)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let (kind, key, body): (String, String, &str) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let record: Record = codec::from_json(body).map_err(|detail| Error::CorruptStructure {
            kind: kind.clone(),
            key: key.clone(),
            detail,
        })?;
        if record.kind() != kind || record.key() != key {
            return Err(Error::CorruptStructure {
                detail: format!(
                    "the body is the {} {:?}, not what its row names",
                    record.kind(),
                    record.key()
                ),
                kind,
                key,
            });
        }
        out.push(record);
    }
    Ok(out)
}
