//! Noting domain events as the transitions happen, and naming them when the
//! batch is handed over. A transition pushes a few ids (no allocation: a
//! fill starts tens of thousands of frames a second); names are looked up
//! once, in [`Farm::take_dirty`], from the records as they are then.

use super::Farm;
use crate::event::{Event, EventKind};
use crate::model::*;

/// An event as a transition notes it: what and to which records.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    seq: u64,
    at: Millis,
    kind: EventKind,
    job: Option<JobId>,
    layer: Option<LayerId>,
    frame: Option<FrameId>,
    host: Option<HostId>,
    /// A frame's attempt number then; 0 for none.
    attempt: u32,
    show: Option<String>,
    detail: Option<String>,
}

/// What an event is about; the rest is looked up.
#[derive(Debug, Default)]
pub(super) struct About {
    pub job: Option<JobId>,
    pub layer: Option<LayerId>,
    pub frame: Option<FrameId>,
    pub host: Option<HostId>,
    pub attempt: u32,
    pub show: Option<String>,
    pub detail: Option<String>,
}

impl About {
    pub fn job(id: JobId) -> About {
        About {
            job: Some(id),
            ..About::default()
        }
    }
    pub fn host(id: HostId) -> About {
        About {
            host: Some(id),
            ..About::default()
        }
    }
    pub fn detail(mut self, d: impl Into<String>) -> About {
        self.detail = Some(d.into());
        self
    }
}

impl Farm {
    /// Notes an event, numbered next, at the time of the current transition.
    pub(super) fn emit(&mut self, kind: EventKind, about: About) {
        self.event_seq += 1;
        self.dirty.events.push(Pending {
            seq: self.event_seq,
            at: self.clock,
            kind,
            job: about.job,
            layer: about.layer,
            frame: about.frame,
            host: about.host,
            attempt: about.attempt,
            show: about.show,
            detail: about.detail,
        });
    }

    /// The last event number handed out.
    pub fn event_seq(&self) -> u64 {
        self.event_seq
    }

    /// Names the noted events from the records as they are now.
    pub(super) fn name_events(&self, pending: Vec<Pending>) -> Vec<Event> {
        pending.into_iter().map(|p| self.name_event(p)).collect()
    }

    fn name_event(&self, p: Pending) -> Event {
        let frame = p.frame.and_then(|id| self.frames.get(&id));
        let job_id = p.job.or(frame.map(|f| f.job));
        let job = job_id.and_then(|id| self.jobs.get(&id)).map(|j| &j.job);
        let layer = p
            .layer
            .or(frame.map(|f| f.layer))
            .and_then(|id| self.layers.get(&id));
        let host = p
            .host
            .or(frame.and_then(|f| f.host))
            .and_then(|id| self.hosts.get(&id));
        Event {
            seq: p.seq,
            at: p.at,
            kind: p.kind,
            job_id: job_id.map(|j| j.0),
            job: job.map(|j| j.name.clone()),
            show: p.show.or(job.map(|j| j.show.clone())),
            user: job.map(|j| j.user.clone()),
            layer: layer.map(|l| l.layer.name.clone()),
            frame: frame.map(|f| f.chunk.clone()),
            frame_id: frame.map(|f| f.id.0),
            attempt: Some(p.attempt).filter(|&n| n > 0),
            host: host.map(|h| h.host.report.name.clone()),
            detail: p.detail,
        }
    }

    /// A frame moved from `from` to `to` (see `set_state`): the events
    /// every such move means, whoever caused it. Moves back to WAITING
    /// mean different things (a retry, a failure, a lost host) and are
    /// noted by their callers.
    pub(super) fn frame_moved(
        &mut self,
        id: FrameId,
        job: JobId,
        from: FrameState,
        to: FrameState,
    ) {
        let kind = match to {
            FrameState::Running => {
                if let Some(j) = self.jobs.quiet_mut(&job) {
                    if !j.started {
                        j.started = true;
                        self.emit(EventKind::JobStarted, About::job(job));
                    }
                }
                EventKind::FrameStarted
            }
            FrameState::Succeeded => EventKind::FrameSucceeded,
            FrameState::Eaten => EventKind::FrameEaten,
            FrameState::Dead => EventKind::FrameDead,
            FrameState::Waiting => return,
        };
        let about = self.about_frame(id, to == FrameState::Dead);
        self.emit(kind, about);
        // The job failed when its last open frame closed with dead ones
        // left (not when a dead frame is eaten: it had failed already).
        let closed = matches!(from, FrameState::Waiting | FrameState::Running);
        if closed && to != FrameState::Running && self.job_stuck(job, id) {
            self.emit(EventKind::JobFailed, About::job(job));
        }
    }

    /// A frame as it is now: its host and attempt, and if `why`, the
    /// reason its last attempt ended.
    pub(super) fn about_frame(&self, id: FrameId, why: bool) -> About {
        let f = self.frames.get(&id);
        About {
            frame: Some(id),
            host: f.and_then(|f| f.host),
            attempt: f.map_or(0, |f| f.attempts),
            detail: f.filter(|_| why).and_then(|f| f.reason.clone()),
            ..About::default()
        }
    }

    /// Whether a job has nothing left to run and dead frames: it failed.
    fn job_stuck(&self, job: JobId, frame: FrameId) -> bool {
        // Most frame ends leave their own layer with frames running, or
        // waiting with nothing to wait on: no walk of the job.
        let layer = self
            .frames
            .get(&frame)
            .and_then(|f| self.layers.get(&f.layer));
        if layer.is_some_and(|l| {
            l.counts.running > 0 || (l.counts.waiting > 0 && l.layer.depends.is_empty())
        }) {
            return false;
        }
        let Some(j) = self.jobs.get(&job) else {
            return false;
        };
        if j.job.state == JobState::Killed {
            return false;
        }
        // Frames held by dependencies count as closed, as the job's status
        // counts them: a frame that waits on a dead one may never run.
        let (mut open, mut dead) = (0, 0);
        for l in j.layers.iter().filter_map(|l| self.layers.get(l)) {
            let c = self.layer_counts(l);
            open += c.waiting + c.running;
            dead += c.dead;
        }
        open == 0 && dead > 0
    }
}
