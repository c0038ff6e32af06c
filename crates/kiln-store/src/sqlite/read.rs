//! Reading records back: the start-up image and attempt history, decoded
//! strictly, so a row that no longer fits its record is an error naming the
//! row and column rather than a silently wrong value.

use super::retention::{LIVE_JOBS, OF_LIVE_JOBS};
use super::tables::{Table, ATTEMPTS, FRAMES, HOSTS, JOBS, LAYERS};
use crate::codec::{self, ReportColumns};
use crate::{Error, Image, MaxIds, Result};
use kiln_core::model::{
    Attempt, AttemptId, CoreRequest, Frame, FrameId, Host, HostId, Job, JobId, Layer, LayerId,
    Resources,
};
use kiln_core::output::BadOutputs;
use serde::de::DeserializeOwned;
use sqlx::sqlite::{Sqlite, SqliteConnection, SqliteRow};
use sqlx::{Column, Decode, Row, Type};
use std::fmt::Display;

/// Everything `Store::load` returns, read on `conn`, which the caller keeps
/// inside one transaction so that every table is read from one snapshot.
pub(super) async fn image(conn: &mut SqliteConnection) -> Result<Image> {
    Ok(Image {
        jobs: all(conn, &JOBS, &format!("WHERE {LIVE_JOBS} ORDER BY id"), job).await?,
        layers: all(
            conn,
            &LAYERS,
            &format!("WHERE {OF_LIVE_JOBS} ORDER BY id"),
            layer,
        )
        .await?,
        frames: frames(conn).await?,
        hosts: all(conn, &HOSTS, "ORDER BY id", host).await?,
        // Served by the partial index `attempts_running`.
        running_attempts: all(
            conn,
            &ATTEMPTS,
            "WHERE outcome IS NULL ORDER BY id",
            attempt_row,
        )
        .await?,
        structure: super::structure::load(conn).await?,
        identity: super::identity::load(conn).await?,
        max_ids: max_ids(conn).await?,
    })
}

pub(super) async fn attempts_of(
    conn: &mut SqliteConnection,
    frame: FrameId,
) -> Result<Vec<Attempt>> {
    let sql = format!(
        "{} WHERE frame_id = ? ORDER BY number, id",
        ATTEMPTS.select()
    );
    let rows = sqlx::query(&sql).bind(frame.0).fetch_all(conn).await?;
    rows.iter().map(attempt_row).collect()
}

pub(super) async fn attempt(conn: &mut SqliteConnection, id: AttemptId) -> Result<Option<Attempt>> {
    let sql = format!("{} WHERE id = ?", ATTEMPTS.select());
    let row = sqlx::query(&sql).bind(id.0).fetch_optional(conn).await?;
    row.as_ref().map(attempt_row).transpose()
}

async fn all<T>(
    conn: &mut SqliteConnection,
    table: &Table,
    clauses: &str,
    decode: fn(&SqliteRow) -> Result<T>,
) -> Result<Vec<T>> {
    let sql = format!("{} {clauses}", table.select());
    let rows = sqlx::query(&sql).fetch_all(&mut *conn).await?;
    rows.iter().map(decode).collect()
}

async fn max_ids(conn: &mut SqliteConnection) -> Result<MaxIds> {
    let row = sqlx::query(
        "SELECT MAX((SELECT COALESCE(MAX(id), 0) FROM jobs), \
                    (SELECT COALESCE(MAX(max_id), 0) FROM id_floor WHERE kind = 'job')), \
                MAX((SELECT COALESCE(MAX(id), 0) FROM layers), \
                    (SELECT COALESCE(MAX(max_id), 0) FROM id_floor WHERE kind = 'layer')), \
                MAX((SELECT COALESCE(MAX(id), 0) FROM frames), \
                    (SELECT COALESCE(MAX(max_id), 0) FROM id_floor WHERE kind = 'frame')), \
                MAX((SELECT COALESCE(MAX(id), 0) FROM attempts), \
                    (SELECT COALESCE(MAX(max_id), 0) FROM id_floor WHERE kind = 'attempt')), \
                (SELECT COALESCE(MAX(id), 0) FROM hosts), (SELECT COALESCE(MAX(id), 0) FROM audit), \
                (SELECT COALESCE(MAX(seq), 0) FROM events)",
    )
    .fetch_one(conn)
    .await?;
    Ok(MaxIds {
        job: row.try_get(0)?,
        layer: row.try_get(1)?,
        frame: row.try_get(2)?,
        attempt: row.try_get(3)?,
        host: row.try_get(4)?,
        audit: row.try_get(5)?,
        event: row.try_get::<i64, _>(6)? as u64,
    })
}

// The decoders read columns in the order of `tables.rs`, and Rust evaluates
// struct fields in the order written, so each decoder lists its fields in
// column order.

fn job(row: &SqliteRow) -> Result<Job> {
    let mut c = Cols::new(row, JOBS.name);
    let mut job = Job {
        id: JobId(c.get()?),
        name: c.get()?,
        facility: c.get()?,
        show: c.get()?,
        shot: c.get()?,
        user: c.get()?,
        priority: c.int()?,
        state: c.parse(codec::parse_job_state)?,
        paused: c.get()?,
        env: c.json()?,
        depends: c.json()?,
        max_cores: None,
        avoid_hosts: Vec::new(),
        submitted_at: c.get()?,
        finished_at: c.get()?,
        submit_key: None,
    };
    // Columns added by 0002 and 0003 come last.
    job.max_cores = c.opt_int()?;
    job.avoid_hosts = c.json()?;
    job.submit_key = c.get()?;
    Ok(job)
}

fn layer(row: &SqliteRow) -> Result<Layer> {
    let mut c = Cols::new(row, LAYERS.name);
    let mut layer = Layer {
        id: LayerId(c.get()?),
        job: JobId(c.get()?),
        index: c.int()?,
        name: c.get()?,
        command: c.json()?,
        frames: c.get()?,
        chunk: c.int()?,
        resources: Resources {
            cores: c.int()?,
            memory_kb: c.int()?,
            gpus: c.int()?,
            gpu_memory_kb: 0,
            scratch_kb: 0,
        },
        cores: CoreRequest::Exact(0),
        tags: c.json()?,
        limits: Vec::new(),
        service: None,
        env: c.json()?,
        retries: c.int()?,
        timeout_s: c.opt_int()?,
        depends: c.json()?,
        cwd: c.get()?,
        paused: c.get()?,
        outputs: Vec::new(),
        bad_outputs: BadOutputs::Flag,
    };
    // Columns added by 0002 come last. An empty request is a row the
    // migration could not convert; it asked for exactly its cores.
    let request: &str = c.get()?;
    layer.cores = if request.is_empty() {
        CoreRequest::Exact(layer.resources.cores)
    } else {
        codec::parse_core_request(request)
            .ok_or_else(|| c.corrupt(format_args!("{request:?} is not a core request")))?
    };
    layer.resources.gpu_memory_kb = c.int()?;
    layer.resources.scratch_kb = c.int()?;
    layer.limits = c.json()?;
    layer.service = c.get()?;
    // Added by 0010.
    layer.outputs = c.json()?;
    layer.bad_outputs = c.parse(BadOutputs::parse)?;
    Ok(layer)
}

/// Frames per round trip when loading. Each chunk is built as one JSON text
/// of about 100 bytes a frame, so this bounds that buffer to a few MB.
const FRAME_CHUNK: i64 = 20_000;

/// Every frame, by id. Frames are the one table whose rows number in the
/// hundreds of thousands, and sqlx hands rows over one value at a time:
/// each value a separate allocation, freed on another thread, costing more
/// than a second per 100,000 frames. Instead SQLite packs each chunk of rows
/// into a single JSON array of arrays, parsed here in one pass.
async fn frames(conn: &mut SqliteConnection) -> Result<Vec<Frame>> {
    let sql = format!(
        "SELECT json_group_array(json_array({})), count(*), max(id) \
         FROM (SELECT * FROM frames WHERE id > ? AND {OF_LIVE_JOBS} ORDER BY id LIMIT ?)",
        FRAMES.cols.join(", ")
    );
    let mut frames = Vec::new();
    let mut after = i64::MIN;
    loop {
        let row = sqlx::query(&sql)
            .bind(after)
            .bind(FRAME_CHUNK)
            .fetch_one(&mut *conn)
            .await?;
        let (json, count): (&str, i64) = (row.try_get(0)?, row.try_get(1)?);
        let rows: Vec<FrameRow> = codec::from_json(json).map_err(|detail| Error::Corrupt {
            table: FRAMES.name,
            id: after.max(0),
            column: "*".into(),
            detail: format!("a frame after this id: {detail}"),
        })?;
        frames.reserve(rows.len());
        for r in rows {
            frames.push(r.into_frame()?);
        }
        if count < FRAME_CHUNK {
            break;
        }
        after = row.try_get(2)?;
    }
    // SQLite aggregates in the subquery's order in practice, but does not
    // promise to; sorting already sorted ids is one linear pass.
    frames.sort_by_key(|f| f.id);
    Ok(frames)
}

/// A `frames` row as the JSON array built in [`frames`], fields in the
/// column order of `tables.rs`. Integers are read at full width and
/// narrowed in [`FrameRow::into_frame`], where a bad value can be reported
/// with its row and column.
#[derive(serde::Deserialize)]
struct FrameRow(
    i64,
    i64,
    i64,
    i64,
    i64,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
    Option<String>,
    Option<String>,
);

impl FrameRow {
    fn into_frame(self) -> Result<Frame> {
        let id = self.0;
        let count = |column, v| -> Result<u32> { narrow(FRAMES.name, id, column, v) };
        let outcome = match self.14 {
            None => None,
            Some(text) => Some(parse(
                FRAMES.name,
                id,
                "outcome",
                &text,
                codec::parse_outcome,
            )?),
        };
        Ok(Frame {
            id: FrameId(id),
            job: JobId(self.1),
            layer: LayerId(self.2),
            index: count("idx", self.3)?,
            number: self.4,
            chunk: self.5,
            state: parse(FRAMES.name, id, "state", &self.6, codec::parse_frame_state)?,
            attempts: count("attempts", self.7)?,
            failures: count("failures", self.8)?,
            attempt: self.9.map(AttemptId),
            host: self.10.map(HostId),
            cores: count("cores", self.11)?,
            started_at: self.12,
            ended_at: self.13,
            outcome,
            exit_status: self
                .15
                .map(|v| narrow(FRAMES.name, id, "exit_status", v))
                .transpose()?,
            exit_signal: self
                .16
                .map(|v| narrow(FRAMES.name, id, "exit_signal", v))
                .transpose()?,
            max_rss_kb: narrow(FRAMES.name, id, "max_rss_kb", self.17)?,
            cpu_ms: narrow(FRAMES.name, id, "cpu_ms", self.18)?,
            reason: self.19,
            outputs: match self.20 {
                None => Vec::new(),
                Some(text) => codec::from_json(&text).map_err(|detail| Error::Corrupt {
                    table: FRAMES.name,
                    id,
                    column: "outputs".into(),
                    detail,
                })?,
            },
        })
    }
}

fn narrow<T: TryFrom<i64>>(table: &'static str, id: i64, column: &str, v: i64) -> Result<T> {
    T::try_from(v).map_err(|_| Error::Corrupt {
        table,
        id,
        column: column.into(),
        detail: format!("{v} is out of range"),
    })
}

fn parse<T>(
    table: &'static str,
    id: i64,
    column: &str,
    text: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T> {
    parse(text).ok_or_else(|| Error::Corrupt {
        table,
        id,
        column: column.into(),
        detail: format!("unknown value {text:?}"),
    })
}

pub(super) fn attempt_row(row: &SqliteRow) -> Result<Attempt> {
    let mut c = Cols::new(row, ATTEMPTS.name);
    Ok(Attempt {
        id: AttemptId(c.get()?),
        frame: FrameId(c.get()?),
        job: JobId(c.get()?),
        number: c.int()?,
        host: HostId(c.get()?),
        host_name: c.get()?,
        cores: c.int()?,
        started_at: c.get()?,
        ended_at: c.get()?,
        outcome: c.opt_parse(codec::parse_outcome)?,
        exit_status: c.opt_int()?,
        exit_signal: c.opt_int()?,
        max_rss_kb: c.int()?,
        cpu_ms: c.int()?,
        reason: c.get()?,
        memory_kb: c.int()?,
        outputs: c.opt_json()?.unwrap_or_default(),
    })
}

fn host(row: &SqliteRow) -> Result<Host> {
    let mut c = Cols::new(row, HOSTS.name);
    let id = HostId(c.get()?);
    let name = c.get()?;
    let state = c.parse(codec::parse_host_state)?;
    let lock = c.parse(codec::parse_lock_state)?;
    let cols = ReportColumns {
        name,
        os: c.get()?,
        cores: c.int()?,
        memory_kb: c.int()?,
        gpus: c.int()?,
        load: c.get::<Option<f64>>()?.unwrap_or(f64::NAN),
        tags: c.json()?,
    };
    let rest: &str = c.get()?;
    let report = codec::join_report(cols, rest).map_err(|e| c.corrupt(e))?;
    Ok(Host {
        id,
        report,
        state,
        lock,
        registered_at: c.get()?,
        last_seen: c.get()?,
        allocation: c.get()?,
        tags: c.json()?,
    })
}

/// Reads a row's columns left to right, converting each to its field's type
/// and naming the row and column when one does not fit.
struct Cols<'r> {
    row: &'r SqliteRow,
    table: &'static str,
    next: usize,
}

impl<'r> Cols<'r> {
    fn new(row: &'r SqliteRow, table: &'static str) -> Self {
        Cols {
            row,
            table,
            next: 0,
        }
    }

    fn get<T: Decode<'r, Sqlite> + Type<Sqlite>>(&mut self) -> Result<T> {
        let v = self.row.try_get(self.next)?;
        self.next += 1;
        Ok(v)
    }

    /// An integer field of any width; SQLite's are all 64-bit, and sqlx
    /// would truncate silently when asked for a narrower type.
    fn int<T: TryFrom<i64>>(&mut self) -> Result<T> {
        let v: i64 = self.get()?;
        T::try_from(v).map_err(|_| self.corrupt(format_args!("{v} is out of range")))
    }

    fn opt_int<T: TryFrom<i64>>(&mut self) -> Result<Option<T>> {
        match self.get::<Option<i64>>()? {
            None => Ok(None),
            Some(v) => T::try_from(v)
                .map(Some)
                .map_err(|_| self.corrupt(format_args!("{v} is out of range"))),
        }
    }

    fn opt_json<T: DeserializeOwned>(&mut self) -> Result<Option<T>> {
        match self.get::<Option<&str>>()? {
            None => Ok(None),
            Some(text) => codec::from_json(text)
                .map(Some)
                .map_err(|e| self.corrupt(e)),
        }
    }

    fn json<T: DeserializeOwned>(&mut self) -> Result<T> {
        let text: &str = self.get()?;
        codec::from_json(text).map_err(|e| self.corrupt(e))
    }

    fn parse<T>(&mut self, parse: fn(&str) -> Option<T>) -> Result<T> {
        let text: &str = self.get()?;
        parse(text).ok_or_else(|| self.corrupt(format_args!("unknown value {text:?}")))
    }

    fn opt_parse<T>(&mut self, parse: fn(&str) -> Option<T>) -> Result<Option<T>> {
        match self.get::<Option<&str>>()? {
            None => Ok(None),
            Some(text) => parse(text)
                .map(Some)
                .ok_or_else(|| self.corrupt(format_args!("unknown value {text:?}"))),
        }
    }

    /// An error about the column just read.
    fn corrupt(&self, detail: impl Display) -> Error {
        Error::Corrupt {
            table: self.table,
            id: self.row.try_get(0).unwrap_or_default(),
            column: self
                .row
                .columns()
                .get(self.next - 1)
                .map(|c| c.name().to_owned())
                .unwrap_or_default(),
            detail: detail.to_string(),
        }
    }
}
