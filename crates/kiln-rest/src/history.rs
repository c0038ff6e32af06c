//! `GET /api/v1/history`: every ended attempt the caller may read, as
//! `kiln history` exports it: JSON a page at a time, or CSV and JSON
//! lines, the whole export in one answer (`pandas.read_csv(url)`),
//! streamed page by page from the store.

use crate::problem::{Error, Problem};
use crate::query::{number, Params};
use crate::routes::{Api, Who};
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use kiln_api::FarmApi;
use kiln_core::auth::Credentials;
use kiln_core::view::{HistoryPage, HistoryQuery, HistoryRow};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub(crate) fn routes<F: FarmApi>() -> Router<Arc<F>> {
    Router::new().route("/api/v1/history", get(history::<F>))
}

/// A page of history.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryList {
    /// Ended attempts, in the order they ended.
    pub rows: Vec<HistoryRow>,
    /// Pass as `page_token` for the next page; absent on the last.
    pub next_page_token: Option<String>,
}

/// The cursor of a history page: where the last row ended, and its id.
fn token((at, id): (i64, i64)) -> String {
    format!("h{at:x}.{id:x}")
}

fn after(t: Option<String>) -> Result<Option<(i64, i64)>, Error> {
    let Some(t) = t else { return Ok(None) };
    t.strip_prefix('h')
        .and_then(|r| r.split_once('.'))
        .and_then(|(a, i)| {
            Some((
                i64::from_str_radix(a, 16).ok()?,
                i64::from_str_radix(i, 16).ok()?,
            ))
        })
        .map(Some)
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "page_token: {t:?} is not a token this list issued; pass the \
                 next_page_token of the previous page, or none for the first"
            ))
        })
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Json,
    Csv,
    Jsonl,
}

/// Ended attempts (host, start, end, runtime, max RSS, CPU, exit, why) of
/// the jobs the caller may read, in the order they ended. `format=json`
/// (the default) answers a page; `csv` and `jsonl` answer every row from
/// `page_token` on, as `kiln history --format csv|jsonl` writes them.
#[utoipa::path(get, path = "/api/v1/history", tag = "history", params(
        ("show" = Option<String>, Query, description = "Only this show's jobs"),
        ("user" = Option<String>, Query, description = "Only this user's jobs"),
        ("job" = Option<String>, Query, description = "Only this job (name or id)"),
        ("since" = Option<String>, Query, description = "Attempts that ended at or after this: ms since the Unix epoch, a duration ago (7d) or a UTC date (2026-12-01, 2026-12-01T09:00:00Z)"),
        ("until" = Option<String>, Query, description = "Attempts that ended before this (the same forms as since)"),
        ("format" = Option<String>, Query, description = "json (a page, the default), csv or jsonl (every row)"),
        ("page_token" = Option<String>, Query, description = "The previous page's next_page_token"),
        ("page_size" = Option<u32>, Query, description = "json: at most this many rows (default 5000, at most 10000); csv and jsonl: rows read from the store at a time"),
    ), responses(
        (status = 200, description = "json: a page; csv: a header and a line per attempt; jsonl: an object per line",
            content(
                (HistoryList = "application/json"),
                (String = "text/csv"),
                (String = "application/jsonl"),
            )),
        (status = 400, description = "A parameter or field is wrong; `detail` names it", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token the server accepts", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn history<F: FarmApi>(
    State(f): Api<F>,
    Who(w): Who,
    RawQuery(q): RawQuery,
) -> Result<Response, Error> {
    let p = Params::parse(
        q.as_deref(),
        &[
            "show",
            "user",
            "job",
            "since",
            "until",
            "format",
            "page_token",
            "page_size",
        ],
    )?;
    let format = match p.get("format").as_deref() {
        None | Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some("jsonl") => Format::Jsonl,
        Some(v) => {
            return Err(Error::BadRequest(format!(
                "format: {v:?} is not a format; use json, csv or jsonl"
            )))
        }
    };
    let size: Option<u32> = number(&p, "page_size")?;
    if size == Some(0) {
        return Err(Error::BadRequest(
            "page_size: give a whole number from 1 to 10000".into(),
        ));
    }
    let query = HistoryQuery {
        show: p.get("show"),
        user: p.get("user"),
        job: p.get("job"),
        since: crate::query::time_ms(&p, "since")?,
        until: crate::query::time_ms(&p, "until")?,
        after: after(p.get("page_token"))?,
        limit: size.unwrap_or(0),
    };
    // The first page is read before answering, so a refusal or a bad
    // query is a problem document, not a broken stream.
    let first = f.history(w.clone(), query.clone()).await?;
    if format == Format::Json {
        return Ok(Json(HistoryList {
            rows: first.rows,
            next_page_token: first.next.map(token),
        })
        .into_response());
    }
    let (content_type, head) = match format {
        Format::Csv => (
            "text/csv; charset=utf-8",
            format!("{}\n", HistoryRow::CSV_COLUMNS.join(",")),
        ),
        _ => ("application/jsonl", String::new()),
    };
    let body = Body::from_stream(rest(f, w, query, first, format, head));
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// The export as text chunks, a page each, reading the next page only
/// when the client has taken the last.
fn rest<F: FarmApi>(
    f: Arc<F>,
    w: Credentials,
    q: HistoryQuery,
    first: HistoryPage,
    format: Format,
    head: String,
) -> impl futures::Stream<Item = Result<String, kiln_api::Error>> {
    let text = move |page: &HistoryPage| {
        let mut s = String::new();
        for r in &page.rows {
            match format {
                Format::Csv => s.push_str(&r.csv_line()),
                _ => s.push_str(&serde_json::to_string(r).unwrap_or_default()),
            }
            s.push('\n');
        }
        s
    };
    let start = format!("{head}{}", text(&first));
    let state = Some((q, first.next));
    futures::stream::once(async move { Ok(start) }).chain(futures::stream::try_unfold(
        state,
        move |state| {
            let (f, w) = (f.clone(), w.clone());
            async move {
                let Some((mut q, Some(next))) = state else {
                    return Ok(None);
                };
                q.after = Some(next);
                let page = f.history(w, q.clone()).await?;
                let chunk = text(&page);
                Ok(Some((chunk, Some((q, page.next)))))
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_token_names_where_the_page_ended_and_no_other_is_taken() {
        let t = token((1_796_000_000_000, 42));
        assert_eq!(after(Some(t)).unwrap(), Some((1_796_000_000_000, 42)));
        for bad in ["j12", "h12", "hzz.1", "h1.zz"] {
            let e = after(Some(bad.into())).unwrap_err().to_string();
            assert!(e.starts_with("page_token: "), "{bad}: {e}");
        }
    }
}
