//! Events on the wire: the request naming where to resume and what to
//! follow, and each event, field for field.

use crate::pb;
use crate::{Error, Result};
use kiln_core::event::{Event, EventFilter, EventKind, EventQuery};

fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

pub(crate) fn event_query(r: pb::EventsRequest) -> Result<EventQuery> {
    let kinds = r
        .kinds
        .iter()
        .map(|k| {
            EventKind::parse(k).ok_or_else(|| {
                Error::Invalid(EventKind::parse_list(k).err().map_or_else(
                    || format!("kinds: {k:?} is not an event kind"),
                    |e| e.to_string(),
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(EventQuery {
        after: r.after,
        since: r.since,
        filter: EventFilter {
            job: some(r.job),
            show: some(r.show),
            kinds,
        },
    })
}

pub(crate) fn events_request(q: &EventQuery) -> pb::EventsRequest {
    pb::EventsRequest {
        after: q.after,
        since: q.since,
        job: q.filter.job.clone().unwrap_or_default(),
        show: q.filter.show.clone().unwrap_or_default(),
        kinds: q
            .filter
            .kinds
            .iter()
            .map(|k| k.as_str().to_string())
            .collect(),
    }
}

impl From<Event> for pb::Event {
    fn from(e: Event) -> Self {
        pb::Event {
            seq: e.seq,
            at: e.at,
            kind: e.kind.as_str().to_string(),
            job_id: e.job_id,
            job: e.job,
            show: e.show,
            user: e.user,
            layer: e.layer,
            frame: e.frame,
            frame_id: e.frame_id,
            attempt: e.attempt,
            host: e.host,
            detail: e.detail,
        }
    }
}

pub(crate) fn event(e: pb::Event) -> Result<Event> {
    let kind = EventKind::parse(&e.kind)
        .ok_or_else(|| Error::Malformed(format!("unknown event kind {:?}", e.kind)))?;
    Ok(Event {
        seq: e.seq,
        at: e.at,
        kind,
        job_id: e.job_id,
        job: e.job,
        show: e.show,
        user: e.user,
        layer: e.layer,
        frame: e.frame,
        frame_id: e.frame_id,
        attempt: e.attempt,
        host: e.host,
        detail: e.detail,
    })
}
