//! Tables of one JSON body per (kind, key): the structure and the identity
//! records. They are few and change rarely, so each change is its own
//! statement, and a load reads them all.

use crate::Result;
use sqlx::sqlite::SqliteConnection;
use sqlx::Row;

/// A keyed table's name; only these two exist, so the name is never input.
#[derive(Clone, Copy)]
pub(super) enum Table {
    Structure,
    Identity,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Structure => "structure",
            Table::Identity => "identity",
        }
    }
}

pub(super) async fn put(
    conn: &mut SqliteConnection,
    table: Table,
    kind: &str,
    key: &str,
    body: String,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO {} (kind, key, body) VALUES (?, ?, ?) \
         ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body",
        table.name()
    );
    sqlx::query(&sql)
        .bind(kind)
        .bind(key)
        .bind(body)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn remove(
    conn: &mut SqliteConnection,
    table: Table,
    kind: &str,
    key: &str,
) -> Result<()> {
    let sql = format!("DELETE FROM {} WHERE kind = ? AND key = ?", table.name());
    sqlx::query(&sql)
        .bind(kind)
        .bind(key)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Every row as `(kind, key, body)`, by kind then key.
pub(super) async fn rows(
    conn: &mut SqliteConnection,
    table: Table,
) -> Result<Vec<(String, String, String)>> {
    let sql = format!(
        "SELECT kind, key, body FROM {} ORDER BY kind, key",
        table.name()
    );
    let rows = sqlx::query(&sql).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect()
}
