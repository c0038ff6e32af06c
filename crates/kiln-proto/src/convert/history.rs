//! History export on the wire: rows, and the page cursor as an opaque
//! token (`<ended_at>.<attempt id>`) that only this server's replies make.

use crate::pb;
use crate::{Error, Result};
use kiln_core::view::{HistoryPage, HistoryQuery, HistoryRow};

pub(crate) fn page_token(after: Option<(i64, i64)>) -> String {
    after.map_or(String::new(), |(at, id)| format!("{at}.{id}"))
}

pub(crate) fn parse_page_token(t: &str) -> Result<Option<(i64, i64)>> {
    if t.is_empty() {
        return Ok(None);
    }
    let bad = || {
        Error::Invalid(format!(
            "page_token {t:?} is not one this server issued: ask again without it for the first page"
        ))
    };
    let (at, id) = t.split_once('.').ok_or_else(bad)?;
    Ok(Some((
        at.parse().map_err(|_| bad())?,
        id.parse().map_err(|_| bad())?,
    )))
}

fn bound(ms: i64) -> Option<i64> {
    (ms != 0).then_some(ms)
}

fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

pub(crate) fn history_query(r: pb::HistoryRequest) -> Result<HistoryQuery> {
    Ok(HistoryQuery {
        show: some(r.show),
        user: some(r.user),
        job: some(r.job),
        since: bound(r.since),
        until: bound(r.until),
        after: parse_page_token(&r.page_token)?,
        limit: r.page_size,
    })
}

pub(crate) fn history_request(q: &HistoryQuery) -> pb::HistoryRequest {
    pb::HistoryRequest {
        show: q.show.clone().unwrap_or_default(),
        user: q.user.clone().unwrap_or_default(),
        job: q.job.clone().unwrap_or_default(),
        since: q.since.unwrap_or(0),
        until: q.until.unwrap_or(0),
        page_token: page_token(q.after),
        page_size: q.limit,
    }
}

impl From<HistoryRow> for pb::HistoryRow {
    fn from(r: HistoryRow) -> Self {
        pb::HistoryRow {
            attempt_id: r.attempt_id,
            job_id: r.job_id,
            job: r.job,
            show: r.show,
            user: r.user,
            layer: r.layer,
            frame: r.frame,
            chunk: r.chunk,
            attempt: r.attempt,
            host: r.host,
            cores: r.cores,
            memory_kb: r.memory_kb,
            started_at: r.started_at,
            ended_at: r.ended_at,
            runtime_ms: r.runtime_ms,
            max_rss_kb: r.max_rss_kb,
            cpu_ms: r.cpu_ms,
            outcome: r.outcome,
            exit_status: r.exit_status,
            exit_signal: r.exit_signal,
            reason: r.reason.unwrap_or_default(),
        }
    }
}

pub(crate) fn history_page(r: pb::HistoryReply) -> Result<HistoryPage> {
    Ok(HistoryPage {
        rows: r
            .rows
            .into_iter()
            .map(|r| HistoryRow {
                attempt_id: r.attempt_id,
                job_id: r.job_id,
                job: r.job,
                show: r.show,
                user: r.user,
                layer: r.layer,
                frame: r.frame,
                chunk: r.chunk,
                attempt: r.attempt,
                host: r.host,
                cores: r.cores,
                memory_kb: r.memory_kb,
                started_at: r.started_at,
                ended_at: r.ended_at,
                runtime_ms: r.runtime_ms,
                max_rss_kb: r.max_rss_kb,
                cpu_ms: r.cpu_ms,
                outcome: r.outcome,
                exit_status: r.exit_status,
                exit_signal: r.exit_signal,
                reason: some(r.reason),
            })
            .collect(),
        next: parse_page_token(&r.next_page_token)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_token_goes_round_and_a_forged_one_is_refused() {
        for after in [None, Some((1_733_000_000_000, 42)), Some((-5, 0))] {
            assert_eq!(parse_page_token(&page_token(after)).unwrap(), after);
        }
        for t in ["x", "1.", ".2", "1.2.3", "a.b"] {
            assert!(
                matches!(parse_page_token(t), Err(Error::Invalid(m)) if m.contains("page_token")),
                "{t}"
            );
        }
    }
}
