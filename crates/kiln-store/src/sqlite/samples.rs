//! The farm's gauges over time (`farm_samples`): one JSON row per sample,
//! keyed by its time, read from a time on and pruned by age.

use crate::codec::{from_json, to_json};
use crate::{Error, Result};
use kiln_core::model::Millis;
use kiln_core::view::FarmSample;
use sqlx::sqlite::SqliteConnection;
use sqlx::Row;

pub(super) async fn save(conn: &mut SqliteConnection, s: &FarmSample) -> Result<()> {
    // Two samples in one millisecond (a restart's first and a test's): the
    // later stands.
    sqlx::query("INSERT OR REPLACE INTO farm_samples (at, sample) VALUES (?, ?)")
        .bind(s.at)
        .bind(to_json("farm sample", s)?)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn since(conn: &mut SqliteConnection, since: Millis) -> Result<Vec<FarmSample>> {
    let rows = sqlx::query("SELECT at, sample FROM farm_samples WHERE at >= ? ORDER BY at")
        .bind(since)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            let at: i64 = r.try_get(0)?;
            let text: &str = r.try_get(1)?;
            from_json(text).map_err(|detail| Error::Corrupt {
                table: "farm_samples",
                id: at,
                column: "sample".into(),
                detail,
            })
        })
        .collect()
}

pub(super) async fn prune(conn: &mut SqliteConnection, before: Millis) -> Result<u64> {
    let r = sqlx::query("DELETE FROM farm_samples WHERE at < ?")
        .bind(before)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected())
}
