//! A frame as a resource of its own, by the id `kiln frames` lists: the
//! frame with its job, its attempts (host, times, memory, CPU, exit, why),
//! its log read a slice at a time (a client tails it by passing back
//! `next_offset`) or searched, and the actions on one frame.

use crate::problem::{Error, Problem, Refusals};
use crate::query::{number, Params};
use crate::routes::{Acted, Answer, Api, Who};
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use kiln_api::FarmApi;
use kiln_core::view::{
    ActQuery, AttemptInfo, FrameDetail, FrameUsage, GrepQuery, GrepResult, LogQuery, RunningFrame,
    RunningQuery, ThumbnailQuery, UsageQuery,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub(crate) fn routes<F: FarmApi>() -> Router<Arc<F>> {
    Router::new()
        .route("/api/v1/frames/{id}", get(frame::<F>))
        .route("/api/v1/frames/{id}/attempts", get(attempts::<F>))
        .route("/api/v1/frames/{id}/log", get(log::<F>))
        .route(
            "/api/v1/frames/{id}/outputs/{n}/thumbnail",
            get(thumbnail::<F>),
        )
        .route("/api/v1/frames/{id}/usage", get(usage::<F>))
        .route("/api/v1/frames/{id}/{action}", post(act::<F>))
        .route("/api/v1/running", get(running::<F>))
}

/// Frames running now.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunningList {
    pub frames: Vec<RunningFrame>,
}

/// The frames running now, longest-running first, of the jobs the caller
/// may read: all, on one host, or only those whose log has been quiet for
/// `quiet_s` seconds (likely stuck: a render waiting on a licence or a
/// network mount writes nothing).
#[utoipa::path(get, path = "/api/v1/running", tag = "frames", params(
        ("host" = Option<String>, Query, description = "Only those on this host (name or id)"),
        ("quiet_s" = Option<u64>, Query, description = "Only those whose log has not grown for this many seconds"),
    ), responses(
        (status = 200, body = RunningList),
        Refusals,
        (status = 404, description = "No such host", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn running<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    RawQuery(q): RawQuery,
) -> Answer<RunningList> {
    let p = Params::parse(q.as_deref(), &["host", "quiet_s"])?;
    let quiet_s: Option<u64> = number(&p, "quiet_s")?;
    let q = RunningQuery {
        host: p.get("host"),
        quiet_ms: quiet_s.map(|s| s.saturating_mul(1000)),
    };
    Ok(Json(RunningList {
        frames: f.running(w, q).await?,
    }))
}

/// A frame id from the path, refused naming the parameter.
pub(crate) fn frame_id(id: &str) -> Result<i64, Error> {
    id.parse().map_err(|_| {
        Error::BadRequest(format!(
            "id: {id:?} is not a frame id; give the id `kiln frames` lists (FrameInfo.id)"
        ))
    })
}

/// A frame and its job.
#[utoipa::path(get, path = "/api/v1/frames/{id}", tag = "frames", params(
        ("id" = i64, Path, description = "The frame's id, as `kiln frames` and FrameInfo.id give it"),
    ), responses(
        (status = 200, body = FrameDetail),
        Refusals,
        (status = 404, description = "No such frame", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn frame<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer<FrameDetail> {
    Params::parse(q.as_deref(), &[])?;
    Ok(Json(f.frame(w, frame_id(&id)?).await?))
}

/// A frame's attempts.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptList {
    /// First to last; the running one, if any, has no `outcome`.
    pub attempts: Vec<AttemptInfo>,
}

/// Every attempt of a frame: where and when it ran, what it used, how it ended.
#[utoipa::path(get, path = "/api/v1/frames/{id}/attempts", tag = "frames", params(
        ("id" = i64, Path, description = "The frame's id"),
    ), responses(
        (status = 200, body = AttemptList),
        Refusals,
        (status = 404, description = "No such frame", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn attempts<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer<AttemptList> {
    Params::parse(q.as_deref(), &[])?;
    Ok(Json(AttemptList {
        attempts: f.attempts(w, frame_id(&id)?).await?,
    }))
}

/// A slice of a frame's log.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogPage {
    /// The log's text from `offset` (bytes not UTF-8 shown as U+FFFD).
    pub data: String,
    /// Pass as `offset` to read on.
    pub next_offset: u64,
    /// The attempt has ended and every byte of its log has been read.
    pub complete: bool,
    /// 0 when the frame has not run yet (it has no log).
    pub attempt: u32,
    pub attempt_id: i64,
    pub frame_state: String,
}

/// The log slice, or with `grep` the matching lines.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum LogAnswer {
    Log(LogPage),
    Grep(GrepResult),
}

/// Largest slice a read returns unless `max_bytes` asks for less.
const LOG_SLICE: u32 = 1 << 20;

/// The bytes of a slice that make whole UTF-8 characters: a character
/// the slice cut in two is left for the next read.
fn whole_chars(data: &[u8], at_end: bool) -> usize {
    match std::str::from_utf8(data) {
        Ok(_) => data.len(),
        Err(e) if e.error_len().is_none() && !at_end => e.valid_up_to(),
        Err(_) => data.len(),
    }
}

/// A frame's log, a slice at a time: read on from `next_offset` until
/// `complete`. With `grep`, the lines of its latest attempt's log that
/// match, as `kiln log JOB FRAME --grep`.
#[utoipa::path(get, path = "/api/v1/frames/{id}/log", tag = "frames", params(
        ("id" = i64, Path, description = "The frame's id"),
        ("offset" = Option<u64>, Query, description = "The byte to start at (the previous slice's next_offset)"),
        ("attempt" = Option<u32>, Query, description = "Which attempt (1 = the first); default the latest"),
        ("max_bytes" = Option<u32>, Query, description = "At most this many bytes (default and at most 1 MiB)"),
        ("grep" = Option<String>, Query, description = "A regular expression: answer the matching lines of the latest attempt's log instead"),
        ("i" = Option<bool>, Query, description = "With grep: ignore case"),
    ), responses(
        (status = 200, body = LogAnswer),
        Refusals,
        (status = 404, description = "No such frame or attempt", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn log<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer<LogAnswer> {
    let p = Params::parse(
        q.as_deref(),
        &["offset", "attempt", "max_bytes", "grep", "i"],
    )?;
    let id = frame_id(&id)?;
    let offset: u64 = number(&p, "offset")?.unwrap_or(0);
    let attempt: Option<u32> = number(&p, "attempt")?;
    let max_bytes: u32 = number(&p, "max_bytes")?.unwrap_or(LOG_SLICE).min(LOG_SLICE);
    let ignore_case = p.flag("i")?;
    let d = f.frame(w.clone(), id).await?;
    if let Some(pattern) = p.get("grep") {
        if p.get("offset").is_some() || attempt.is_some() {
            return Err(Error::BadRequest(
                "grep: it searches the latest attempt's whole log; give no offset or attempt \
                 with it"
                    .into(),
            ));
        }
        let found = f
            .grep(
                w,
                GrepQuery {
                    job: d.job_id.to_string(),
                    pattern,
                    layer: None,
                    frame: Some(id.to_string()),
                    ignore_case,
                    max_lines: 0,
                },
            )
            .await?;
        return Ok(Json(LogAnswer::Grep(found)));
    }
    if ignore_case {
        return Err(Error::BadRequest("i: it applies to grep only".into()));
    }
    let s = f
        .read_log(
            w,
            LogQuery {
                job: d.job_id.to_string(),
                frame: id.to_string(),
                attempt,
                offset,
                max_bytes,
            },
        )
        .await?;
    let keep = whole_chars(&s.data, s.complete);
    Ok(Json(LogAnswer::Log(LogPage {
        data: String::from_utf8_lossy(&s.data[..keep]).into_owned(),
        next_offset: offset + keep as u64,
        complete: s.complete && keep == s.data.len(),
        attempt: s.attempt_number,
        attempt_id: s.attempt_id,
        frame_state: s.frame_state,
    })))
}

/// A frame's memory and CPU over time: of the latest attempt, or of
/// `attempt`. While it runs, from its host's heartbeats; once ended, as
/// its worker sampled it each second (thinned to about 120 points).
#[utoipa::path(get, path = "/api/v1/frames/{id}/usage", tag = "frames", params(
        ("id" = i64, Path, description = "The frame's id"),
        ("attempt" = Option<u32>, Query, description = "Which attempt (1 = the first); default the latest"),
    ), responses(
        (status = 200, body = FrameUsage),
        Refusals,
        (status = 404, description = "No such frame or attempt", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn usage<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer<FrameUsage> {
    let p = Params::parse(q.as_deref(), &["attempt"])?;
    let id = frame_id(&id)?;
    let attempt: Option<u32> = number(&p, "attempt")?;
    let d = f.frame(w.clone(), id).await?;
    Ok(Json(
        f.usage(
            w,
            UsageQuery {
                job: d.job_id.to_string(),
                frame: id.to_string(),
                attempt,
            },
        )
        .await?,
    ))
}

/// The preview of one of a frame's outputs: a JPEG at most 256 pixels a
/// side, made by the worker after the frame (from PNG, JPEG, TIFF or
/// OpenEXR). With `attempt`, an attempt's own preview never changes, and is
/// cached as such.
#[utoipa::path(get, path = "/api/v1/frames/{id}/outputs/{n}/thumbnail", tag = "frames", params(
        ("id" = i64, Path, description = "The frame's id"),
        ("n" = u32, Path, description = "Which output, from 0, in the order FrameInfo.outputs lists them"),
        ("attempt" = Option<u32>, Query, description = "Which attempt (1 = the first); default the latest"),
    ), responses(
        (status = 200, description = "The preview", content_type = "image/jpeg"),
        Refusals,
        (status = 404, description = "No such frame, attempt or preview", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn thumbnail<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path((id, n)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<axum::response::Response, Error> {
    use axum::http::header;
    use axum::response::IntoResponse;
    let p = Params::parse(q.as_deref(), &["attempt"])?;
    let id = frame_id(&id)?;
    let output: u32 = n.parse().map_err(|_| {
        Error::BadRequest(format!(
            "n: {n:?} is not an output number; give 0 for the first of FrameInfo.outputs"
        ))
    })?;
    let attempt: Option<u32> = number(&p, "attempt")?;
    let d = f.frame(w.clone(), id).await?;
    let jpeg = f
        .thumbnail(
            w,
            ThumbnailQuery {
                job: d.job_id.to_string(),
                frame: id.to_string(),
                attempt,
                output,
            },
        )
        .await?;
    let cache = if attempt.is_some() {
        "private, max-age=604800, immutable"
    } else {
        "private, no-cache"
    };
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, cache),
        ],
        jpeg,
    )
        .into_response())
}

const FRAME_ACTIONS: &[&str] = &["retry", "kill", "eat"];

/// Retries, kills or eats one frame, as `kiln retry|kill|eat JOB ID`.
#[utoipa::path(post, path = "/api/v1/frames/{id}/{action}", tag = "frames", params(
        ("id" = i64, Path, description = "The frame's id"),
        ("action" = String, Path, description = "retry, kill or eat"),
    ), responses(
        (status = 200, body = Acted),
        Refusals,
        (status = 404, description = "No such frame or action", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn act<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    Path((id, action)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Answer<Acted> {
    if !FRAME_ACTIONS.contains(&action.as_str()) {
        return Err(Error::NoRoute(format!(
            "/api/v1/frames/{id}/{action} (a frame's actions: {})",
            FRAME_ACTIONS.join(", ")
        )));
    }
    Params::parse(q.as_deref(), &[])?;
    let id = frame_id(&id)?;
    let d = f.frame(w.clone(), id).await?;
    let (frames, message) = f
        .act(
            w,
            ActQuery {
                action,
                job: d.job_id.to_string(),
                targets: vec![id.to_string()],
                state: None,
                user: String::new(),
            },
        )
        .await?;
    Ok(Json(Acted { frames, message }))
}

#[cfg(test)]
mod tests {
    use super::whole_chars;

    #[test]
    fn a_character_cut_by_the_slice_waits_for_the_next_read() {
        let s = "né".as_bytes();
        assert_eq!(whole_chars(&s[..2], false), 1);
        assert_eq!(whole_chars(s, false), 3);
        // Once the attempt is over and its log read, a lone byte is shown.
        assert_eq!(whole_chars(&s[..2], true), 2);
    }
}
