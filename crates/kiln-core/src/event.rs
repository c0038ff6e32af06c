//! Domain events: what happened to jobs, frames, hosts and the farm's
//! structure, numbered in the order the farm made the changes. The farm's
//! transitions note them beside the records they change (`farm::Dirty`),
//! so the store writes each event in the same transaction as its change
//! (an outbox), and clients follow them by sequence number, resuming where
//! they left off.

use crate::auth::Target;
use crate::model::Millis;
use serde::{Deserialize, Serialize};

/// What happened. Written as `job.submitted`, `frame.failed`, ...
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum EventKind {
    #[serde(rename = "job.submitted")]
    JobSubmitted,
    /// The job's first frame started.
    #[serde(rename = "job.started")]
    JobStarted,
    /// Every frame succeeded or was eaten.
    #[serde(rename = "job.finished")]
    JobFinished,
    /// Nothing is left to run and some frames are dead.
    #[serde(rename = "job.failed")]
    JobFailed,
    #[serde(rename = "job.killed")]
    JobKilled,
    #[serde(rename = "job.paused")]
    JobPaused,
    #[serde(rename = "job.resumed")]
    JobResumed,
    #[serde(rename = "frame.started")]
    FrameStarted,
    #[serde(rename = "frame.succeeded")]
    FrameSucceeded,
    /// An attempt failed and the frame will be tried again.
    #[serde(rename = "frame.failed")]
    FrameFailed,
    /// The frame failed for good (out of retries) or was killed.
    #[serde(rename = "frame.dead")]
    FrameDead,
    /// Someone asked for the frame to run again.
    #[serde(rename = "frame.retried")]
    FrameRetried,
    #[serde(rename = "frame.eaten")]
    FrameEaten,
    /// Its attempt was lost with its host; the frame waits to run again.
    #[serde(rename = "frame.requeued")]
    FrameRequeued,
    #[serde(rename = "host.up")]
    HostUp,
    #[serde(rename = "host.down")]
    HostDown,
    #[serde(rename = "host.locked")]
    HostLocked,
    #[serde(rename = "host.unlocked")]
    HostUnlocked,
    #[serde(rename = "host.repair")]
    HostRepair,
    #[serde(rename = "limit.changed")]
    LimitChanged,
    #[serde(rename = "show.changed")]
    ShowChanged,
}

impl EventKind {
    pub const ALL: [EventKind; 21] = [
        EventKind::JobSubmitted,
        EventKind::JobStarted,
        EventKind::JobFinished,
        EventKind::JobFailed,
        EventKind::JobKilled,
        EventKind::JobPaused,
        EventKind::JobResumed,
        EventKind::FrameStarted,
        EventKind::FrameSucceeded,
        EventKind::FrameFailed,
        EventKind::FrameDead,
        EventKind::FrameRetried,
        EventKind::FrameEaten,
        EventKind::FrameRequeued,
        EventKind::HostUp,
        EventKind::HostDown,
        EventKind::HostLocked,
        EventKind::HostUnlocked,
        EventKind::HostRepair,
        EventKind::LimitChanged,
        EventKind::ShowChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::JobSubmitted => "job.submitted",
            EventKind::JobStarted => "job.started",
            EventKind::JobFinished => "job.finished",
            EventKind::JobFailed => "job.failed",
            EventKind::JobKilled => "job.killed",
            EventKind::JobPaused => "job.paused",
            EventKind::JobResumed => "job.resumed",
            EventKind::FrameStarted => "frame.started",
            EventKind::FrameSucceeded => "frame.succeeded",
            EventKind::FrameFailed => "frame.failed",
            EventKind::FrameDead => "frame.dead",
            EventKind::FrameRetried => "frame.retried",
            EventKind::FrameEaten => "frame.eaten",
            EventKind::FrameRequeued => "frame.requeued",
            EventKind::HostUp => "host.up",
            EventKind::HostDown => "host.down",
            EventKind::HostLocked => "host.locked",
            EventKind::HostUnlocked => "host.unlocked",
            EventKind::HostRepair => "host.repair",
            EventKind::LimitChanged => "limit.changed",
            EventKind::ShowChanged => "show.changed",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A bit of its own, so a set of kinds is one `u32`.
    pub fn bit(self) -> u32 {
        1 << (self as u32)
    }

    /// The set of `kinds`; every kind when empty (as a filter means it).
    pub fn mask(kinds: &[EventKind]) -> u32 {
        if kinds.is_empty() {
            u32::MAX
        } else {
            kinds.iter().fold(0, |m, k| m | k.bit())
        }
    }

    /// Parses a comma-separated list such as `job.finished,frame.failed`;
    /// the error names the first unknown kind and lists the known ones.
    pub fn parse_list(s: &str) -> crate::Result<Vec<EventKind>> {
        s.split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| {
                EventKind::parse(k).ok_or_else(|| {
                    let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                    crate::Error::Invalid(format!(
                        "kinds: {k:?} is not an event kind: use {}",
                        known.join(", ")
                    ))
                })
            })
            .collect()
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event as clients see it: what happened, when, and to what, with
/// names so a script needs no second call to make sense of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// Increases by one per event, farm-wide: resume after the last seen.
    pub seq: u64,
    /// Milliseconds since the Unix epoch, when the farm made the change.
    pub at: Millis,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<i64>,
    /// The job's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show: Option<String>,
    /// Who the job runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// The frame's numbers (its chunk), such as `12` or `1-5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_id: Option<i64>,
    /// The attempt's number, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// More about it: a failure's cause, a limit's name, who acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Event {
    /// What a caller must be allowed to read to see this event.
    pub fn target(&self) -> Target<'_> {
        match (self.job_id, &self.host, &self.show) {
            (Some(id), _, _) => Target::Job {
                id,
                owner: self.user.as_deref().unwrap_or(""),
                show: self.show.as_deref().unwrap_or(""),
            },
            (None, Some(h), _) => Target::Host(h),
            (None, None, Some(s)) => Target::Show(s),
            (None, None, None) => Target::Farm,
        }
    }
}

/// Which events a caller asks for. `job` matches a job's id or name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub job: Option<String>,
    pub show: Option<String>,
    /// Empty: every kind.
    pub kinds: Vec<EventKind>,
}

impl EventFilter {
    pub fn matches(&self, e: &Event) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&e.kind))
            && self
                .show
                .as_ref()
                .is_none_or(|s| e.show.as_deref() == Some(s))
            && self.job.as_ref().is_none_or(|j| {
                e.job.as_deref() == Some(j) || e.job_id.is_some_and(|id| id.to_string() == *j)
            })
    }
}

/// A client's request for events: those after `after` (a sequence number
/// it saw last), or if none, those at or after `since`, or if neither,
/// only those still to come.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    pub after: Option<u64>,
    pub since: Option<Millis>,
    pub filter: EventFilter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_as_text_and_json() {
        let all = EventKind::ALL.iter().fold(0u32, |m, k| {
            assert_eq!(m & k.bit(), 0, "{k} shares a bit");
            m | k.bit()
        });
        assert_eq!(all.count_ones() as usize, EventKind::ALL.len());
        assert_eq!(EventKind::mask(&[]), u32::MAX);
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert_eq!(
            EventKind::parse_list("job.finished, frame.failed").unwrap(),
            [EventKind::JobFinished, EventKind::FrameFailed]
        );
        let e = EventKind::parse_list("job.done").unwrap_err().to_string();
        assert!(
            e.contains("\"job.done\"") && e.contains("job.finished"),
            "{e}"
        );
    }

    #[test]
    fn a_filter_matches_by_job_id_or_name_show_and_kind() {
        let e = Event {
            seq: 1,
            at: 0,
            kind: EventKind::JobSubmitted,
            job_id: Some(7),
            job: Some("shot".into()),
            show: Some("s1".into()),
            user: None,
            layer: None,
            frame: None,
            frame_id: None,
            attempt: None,
            host: None,
            detail: None,
        };
        let f = |job: Option<&str>, show: Option<&str>, kinds: Vec<EventKind>| EventFilter {
            job: job.map(Into::into),
            show: show.map(Into::into),
            kinds,
        };
        assert!(f(None, None, vec![]).matches(&e));
        assert!(f(Some("7"), Some("s1"), vec![EventKind::JobSubmitted]).matches(&e));
        assert!(f(Some("shot"), None, vec![]).matches(&e));
        assert!(!f(Some("8"), None, vec![]).matches(&e));
        assert!(!f(None, Some("s2"), vec![]).matches(&e));
        assert!(!f(None, None, vec![EventKind::JobFinished]).matches(&e));
    }
}
