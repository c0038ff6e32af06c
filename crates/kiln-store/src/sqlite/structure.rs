//! The `structure` table: facilities, allocations, shows, subscriptions,
//! limits and services, one JSON body per (kind, key). They are few and
//! change rarely, so each change is its own statement, in the order made,
//! and a load reads them all.

use super::keyed::{self, Table};
use crate::codec::{self, to_json};
use crate::{Error, Result};
use kiln_core::structure::{Change, Record};
use sqlx::sqlite::SqliteConnection;

/// Structure changes, one statement each in the order made: a put then a
/// remove of one key must end removed, and there are only ever a few.
pub(super) async fn apply(conn: &mut SqliteConnection, changes: &[Change]) -> Result<()> {
    for change in changes {
        match change {
            Change::Put(r) => {
                let body = to_json("structure record", r)?;
                keyed::put(conn, Table::Structure, r.kind(), &r.key(), body).await?;
            }
            Change::Remove { kind, key } => {
                keyed::remove(conn, Table::Structure, kind, key).await?;
            }
        }
    }
    Ok(())
}

/// Every structure record, by kind then key. A body that does not read
/// back as a record of its row's kind and key is reported as corrupt.
pub(super) async fn load(conn: &mut SqliteConnection) -> Result<Vec<Record>> {
    let rows = keyed::rows(conn, Table::Structure).await?;
    let mut out = Vec::with_capacity(rows.len());
    for (kind, key, body) in rows {
        let record: Record = codec::from_json(&body).map_err(|detail| Error::CorruptStructure {
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
