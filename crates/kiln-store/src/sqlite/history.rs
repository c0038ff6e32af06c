//! The per-attempt history of the farm, for export (`kiln history`): ended
//! attempts with their job, layer and frame, in the order they ended.

use super::read::attempt_row;
use super::tables::ATTEMPTS;
use crate::Result;
use kiln_core::view::{HistoryQuery, HistoryRow};
use sqlx::{Row, SqliteConnection};

pub(super) async fn query(
    conn: &mut SqliteConnection,
    q: &HistoryQuery,
) -> Result<Vec<HistoryRow>> {
    let cols: Vec<String> = ATTEMPTS.cols.iter().map(|c| format!("a.{c}")).collect();
    let (after_at, after_id) = q.after.unwrap_or((i64::MIN, i64::MIN));
    let sql = format!(
        "SELECT {}, j.name, j.show, j.\"user\", l.name, f.number, f.chunk \
         FROM attempts a \
         JOIN frames f ON f.id = a.frame_id \
         JOIN layers l ON l.id = f.layer_id \
         JOIN jobs j ON j.id = a.job_id \
         WHERE a.outcome IS NOT NULL \
         AND (a.ended_at, a.id) > (?1, ?2) \
         AND (?3 IS NULL OR a.ended_at >= ?3) AND (?4 IS NULL OR a.ended_at < ?4) \
         AND (?5 IS NULL OR j.show = ?5) AND (?6 IS NULL OR j.\"user\" = ?6) \
         AND (?7 IS NULL OR j.name = ?7 OR CAST(j.id AS TEXT) = ?7) \
         ORDER BY a.ended_at, a.id LIMIT ?8",
        cols.join(", ")
    );
    let rows = sqlx::query(&sql)
        .bind(after_at)
        .bind(after_id)
        .bind(q.since)
        .bind(q.until)
        .bind(q.show.as_deref())
        .bind(q.user.as_deref())
        .bind(q.job.as_deref())
        .bind(i64::from(q.limit.max(1)))
        .fetch_all(&mut *conn)
        .await?;
    let n = ATTEMPTS.cols.len();
    rows.iter()
        .map(|row| {
            let a = attempt_row(row)?;
            let ended_at = a.ended_at.unwrap_or(a.started_at);
            Ok(HistoryRow {
                attempt_id: a.id.0,
                job_id: a.job.0,
                job: row.try_get(n)?,
                show: row.try_get(n + 1)?,
                user: row.try_get(n + 2)?,
                layer: row.try_get(n + 3)?,
                frame: row.try_get(n + 4)?,
                chunk: row.try_get(n + 5)?,
                attempt: a.number,
                host: a.host_name,
                cores: f64::from(a.cores) / 100.0,
                memory_kb: a.memory_kb,
                started_at: a.started_at,
                ended_at,
                runtime_ms: ended_at - a.started_at,
                max_rss_kb: a.max_rss_kb,
                cpu_ms: a.cpu_ms,
                outcome: a
                    .outcome
                    .map(|o| o.as_str().to_string())
                    .unwrap_or_default(),
                exit_status: a.exit_status,
                exit_signal: a.exit_signal,
                reason: a.reason,
            })
        })
        .collect()
}
