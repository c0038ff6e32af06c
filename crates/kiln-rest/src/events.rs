//! `GET /api/v1/events`: the farm's events as Server-Sent Events. Each
//! message is `id: <seq>`, `event: <kind>`, `data: <the event as one JSON
//! line>`; a client that reconnects with `Last-Event-ID` (or `after=`)
//! gets every event after that one, none twice. Comments keep an idle
//! stream open through proxies.

use crate::problem::{Error, Problem};
use crate::query::Params;
use crate::routes::Who;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as Message, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures::{Stream, StreamExt};
use kiln_api::FarmApi;
use kiln_core::event::{EventFilter, EventKind, EventQuery};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// How often an idle stream gets a comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The route, merged into the API's router.
pub(crate) fn router<F: FarmApi>() -> Router<Arc<F>> {
    Router::new().route("/api/v1/events", get(events::<F>))
}

fn number(what: &str, v: &str) -> Result<u64, Error> {
    v.trim().parse().map_err(|_| {
        Error::BadRequest(format!(
            "{what}: {v:?} is not an event number (the `id` of an event received)"
        ))
    })
}

/// The farm's events as they happen, of the jobs the caller may read.
///
/// A stream of `text/event-stream` messages: `id` is the event's `seq`,
/// `event` its kind, `data` the event as JSON (the `Event` schema). The
/// first message has an `id` and no data: the number the stream starts
/// after, so that a client cut off before any event came resumes from it
/// (`Last-Event-ID`) and misses nothing. Without
/// `after`, `since` or `Last-Event-ID` only events still to come are sent.
/// If the server cannot go on (it is stopping, or reading fails) a last
/// message of kind `error` says why and the stream ends.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(
        ("job" = Option<String>, Query, description = "Only this job's events (its id or name)"),
        ("show" = Option<String>, Query, description = "Only this show's events"),
        ("kinds" = Option<String>, Query, description = "Only these kinds, comma-separated: job.finished,frame.failed"),
        ("after" = Option<u64>, Query, description = "Start after this event number; the `Last-Event-ID` header overrides it"),
        ("since" = Option<i64>, Query, description = "Without `after`: start with events made at or after this time (milliseconds since the Unix epoch)"),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event number"),
    ), responses(
        (status = 200, description = "Server-Sent Events; each `data` is one Event", body = kiln_core::event::Event, content_type = "text/event-stream"),
        (status = 400, description = "A parameter is wrong; `detail` names it", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token the server accepts", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn events<F: FarmApi>(
    State(f): State<Arc<F>>,
    Who(w): Who,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Message, Infallible>>>, Error> {
    let p = Params::parse(q.as_deref(), &["job", "show", "kinds", "after", "since"])?;
    let resume = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("?").to_string())
        .filter(|v| !v.trim().is_empty());
    let after = match (resume, p.get("after")) {
        (Some(v), _) => Some(number("Last-Event-ID", &v)?),
        (None, Some(v)) => Some(number("after", &v)?),
        (None, None) => None,
    };
    let since = p
        .get("since")
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                Error::BadRequest(format!(
                    "since: {v:?} is not a time in milliseconds since the Unix epoch"
                ))
            })
        })
        .transpose()?;
    let kinds = match p.get("kinds") {
        Some(k) => EventKind::parse_list(&k).map_err(|e| Error::BadRequest(e.to_string()))?,
        None => Vec::new(),
    };
    let q = EventQuery {
        after,
        since,
        filter: EventFilter {
            job: p.get("job"),
            show: p.get("show"),
            kinds,
        },
    };
    let following = f.events(w, q).await?;
    // First, where the stream starts: an `id` with no data, which sets the
    // client's last event id (EventSource keeps it) without an event, so a
    // client cut off before any event came resumes from here.
    let start = futures::stream::iter(
        following
            .from
            .map(|n| Ok(Message::default().id(n.to_string()).comment("following"))),
    );
    let stream = start.chain(following.events.map(|r| {
        Ok(match r {
            Ok(e) => Message::default()
                .id(e.seq.to_string())
                .event(e.kind.as_str())
                .data(serde_json::to_string(&e).unwrap_or_default()),
            Err(e) => Message::default().event("error").data(e.to_string()),
        })
    }));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
