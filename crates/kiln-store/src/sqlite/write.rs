//! Writing a batch as multi-row upserts: a batch of 100,000 frames becomes a
//! few hundred statements instead of 100,000 round trips to the connection's
//! worker thread, which is what keeps a big commit well under a second.

use super::tables::{Table, ATTEMPTS, FRAMES, HOSTS, JOBS, LAYERS};
use crate::codec::{self, to_i64, to_json};
use crate::{Batch, Result};
use kiln_core::model::{Attempt, Frame, Host, Job, Layer};
use kiln_core::output::OutputCheck;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnection};

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;
type Bind<T> = for<'q> fn(Query<'q>, &'q T) -> Result<Query<'q>>;

/// Rows per statement, at most. Far below SQLite's 32,766 bound values:
/// past a few hundred rows, bigger statements only cost more to prepare and
/// to hold in the statement cache.
const MAX_ROWS: usize = 256;

/// Writes every record of the batch on `conn`, which must be inside the
/// caller's transaction.
///
/// The foreign keys are only checked at commit, so any order is correct,
/// but not every order is fast: while a written row points at one not yet
/// written, SQLite looks for waiting children on every later parent insert.
/// Attempts go before frames because that lookup is indexed
/// (`attempts_frame`) while frames' pointer to their attempt is not; written
/// the other way, a dispatch wave scans every frame once per new attempt.
pub(super) async fn batch(conn: &mut SqliteConnection, batch: &Batch) -> Result<()> {
    upsert(conn, &HOSTS, &batch.hosts, bind_host).await?;
    upsert(conn, &JOBS, &batch.jobs, bind_job).await?;
    upsert(conn, &LAYERS, &batch.layers, bind_layer).await?;
    upsert(conn, &ATTEMPTS, &batch.attempts, bind_attempt).await?;
    upsert(conn, &FRAMES, &batch.frames, bind_frame).await?;
    super::structure::apply(conn, &batch.structure).await?;
    super::identity::apply(conn, &batch.identity).await?;
    super::identity::append(conn, &batch.audit).await?;
    super::retention::mark(conn, &batch.archived).await?;
    super::events::append(conn, &batch.events).await?;
    Ok(())
}

async fn upsert<T>(
    conn: &mut SqliteConnection,
    table: &Table,
    rows: &[T],
    bind: Bind<T>,
) -> Result<()> {
    let mut rest = rows;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(statement_rows(rest.len()));
        let sql = upsert_sql(table, now.len());
        let mut query = sqlx::query(&sql);
        for row in now {
            query = bind(query, row)?;
        }
        query.execute(&mut *conn).await?;
        rest = later;
    }
    Ok(())
}

/// How many of `left` rows the next statement takes: [`MAX_ROWS`] while
/// there are that many, then descending powers of two. Every statement then
/// has one of a handful of shapes, so the cached prepared statements get
/// reused instead of evicting each other.
fn statement_rows(left: usize) -> usize {
    if left >= MAX_ROWS {
        MAX_ROWS
    } else {
        1 << left.ilog2()
    }
}

/// `INSERT ... VALUES (...), ... ON CONFLICT (id) DO UPDATE` for `rows` rows.
/// Within one statement SQLite applies the rows in order, so a record given
/// twice ends as its later copy.
fn upsert_sql(table: &Table, rows: usize) -> String {
    let one = format!("({})", vec!["?"; table.cols.len()].join(", "));
    let set: Vec<String> = table.cols[1..]
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO {} ({}) VALUES {} ON CONFLICT (id) DO UPDATE SET {}",
        table.name,
        table.cols.join(", "),
        vec![one.as_str(); rows].join(", "),
        set.join(", "),
    )
}

// The binders below follow the column order in `tables.rs`. Strings are
// borrowed from the batch rather than copied.

fn bind_job<'q>(q: Query<'q>, j: &'q Job) -> Result<Query<'q>> {
    Ok(q.bind(j.id.0)
        .bind(j.name.as_str())
        .bind(j.facility.as_str())
        .bind(j.show.as_str())
        .bind(j.shot.as_str())
        .bind(j.user.as_str())
        .bind(j.priority)
        .bind(codec::job_state(j.state))
        .bind(j.paused)
        .bind(to_json("job env", &j.env)?)
        .bind(to_json("job depends", &j.depends)?)
        .bind(j.submitted_at)
        .bind(j.finished_at)
        .bind(j.max_cores.map(i64::from))
        .bind(to_json("job avoid_hosts", &j.avoid_hosts)?)
        .bind(j.submit_key.as_deref()))
}

fn bind_layer<'q>(q: Query<'q>, l: &'q Layer) -> Result<Query<'q>> {
    let timeout_s = l
        .timeout_s
        .map(|t| to_i64("layer timeout_s", t))
        .transpose()?;
    Ok(q.bind(l.id.0)
        .bind(l.job.0)
        .bind(i64::from(l.index))
        .bind(l.name.as_str())
        .bind(to_json("layer command", &l.command)?)
        .bind(l.frames.as_str())
        .bind(i64::from(l.chunk))
        .bind(i64::from(l.resources.cores))
        .bind(to_i64("layer memory_kb", l.resources.memory_kb)?)
        .bind(i64::from(l.resources.gpus))
        .bind(to_json("layer tags", &l.tags)?)
        .bind(to_json("layer env", &l.env)?)
        .bind(i64::from(l.retries))
        .bind(timeout_s)
        .bind(to_json("layer depends", &l.depends)?)
        .bind(l.cwd.as_deref())
        .bind(l.paused)
        .bind(codec::core_request(l.cores))
        .bind(to_i64("layer gpu_memory_kb", l.resources.gpu_memory_kb)?)
        .bind(to_i64("layer scratch_kb", l.resources.scratch_kb)?)
        .bind(to_json("layer limits", &l.limits)?)
        .bind(l.service.as_deref())
        .bind(to_json("layer outputs", &l.outputs)?)
        .bind(l.bad_outputs.as_str()))
}

fn bind_frame<'q>(q: Query<'q>, f: &'q Frame) -> Result<Query<'q>> {
    Ok(q.bind(f.id.0)
        .bind(f.job.0)
        .bind(f.layer.0)
        .bind(i64::from(f.index))
        .bind(f.number)
        .bind(f.chunk.as_str())
        .bind(codec::frame_state(f.state))
        .bind(i64::from(f.attempts))
        .bind(i64::from(f.failures))
        .bind(f.attempt.map(|a| a.0))
        .bind(f.host.map(|h| h.0))
        .bind(i64::from(f.cores))
        .bind(f.started_at)
        .bind(f.ended_at)
        .bind(f.outcome.map(codec::outcome))
        .bind(f.exit_status)
        .bind(f.exit_signal)
        .bind(to_i64("frame max_rss_kb", f.max_rss_kb)?)
        .bind(to_i64("frame cpu_ms", f.cpu_ms)?)
        .bind(f.reason.as_deref())
        .bind(checks_json("frame outputs", &f.outputs)?))
}

fn bind_attempt<'q>(q: Query<'q>, a: &'q Attempt) -> Result<Query<'q>> {
    Ok(q.bind(a.id.0)
        .bind(a.frame.0)
        .bind(a.job.0)
        .bind(i64::from(a.number))
        .bind(a.host.0)
        .bind(a.host_name.as_str())
        .bind(i64::from(a.cores))
        .bind(a.started_at)
        .bind(a.ended_at)
        .bind(a.outcome.map(codec::outcome))
        .bind(a.exit_status)
        .bind(a.exit_signal)
        .bind(to_i64("attempt max_rss_kb", a.max_rss_kb)?)
        .bind(to_i64("attempt cpu_ms", a.cpu_ms)?)
        .bind(a.reason.as_deref())
        .bind(to_i64("attempt memory_kb", a.memory_kb)?)
        .bind(checks_json("attempt outputs", &a.outputs)?))
}

/// Output checks as JSON, or NULL for none (most frames declare none).
fn checks_json(what: &'static str, checks: &[OutputCheck]) -> Result<Option<String>> {
    if checks.is_empty() {
        return Ok(None);
    }
    to_json(what, &checks).map(Some)
}

fn bind_host<'q>(q: Query<'q>, h: &'q Host) -> Result<Query<'q>> {
    let r = &h.report;
    Ok(q.bind(h.id.0)
        .bind(r.name.as_str())
        .bind(codec::host_state(h.state))
        .bind(codec::lock_state(h.lock))
        .bind(r.os.as_str())
        .bind(i64::from(r.cores))
        .bind(to_i64("host memory_kb", r.memory_kb)?)
        .bind(i64::from(r.gpus))
        // NaN becomes NULL: SQLite would do that silently, so do it here
        // where it can be read, and read it back as NaN.
        .bind(Some(r.load).filter(|l| !l.is_nan()))
        .bind(to_json("host tags", &r.tags)?)
        .bind(codec::report_rest(r)?)
        .bind(h.registered_at)
        .bind(h.last_seen)
        .bind(h.allocation.as_str())
        .bind(to_json("host manual tags", &h.tags)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_take_full_chunks_then_powers_of_two() {
        let mut left = 2 * MAX_ROWS + 77;
        let mut sizes = vec![];
        while left > 0 {
            let n = statement_rows(left);
            sizes.push(n);
            left -= n;
        }
        assert_eq!(sizes, [MAX_ROWS, MAX_ROWS, 64, 8, 4, 1]);
    }

    #[test]
    fn upsert_sql_has_one_placeholder_per_value() {
        let sql = upsert_sql(&JOBS, 3);
        assert_eq!(sql.matches('?').count(), 3 * JOBS.cols.len());
        assert!(sql.contains("\"user\" = excluded.\"user\""));
        assert!(!sql.contains("id = excluded.id,"));
    }
}
