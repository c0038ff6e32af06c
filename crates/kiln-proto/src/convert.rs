//! Conversions between protobuf messages and domain types. Zero stands for
//! "none" on the wire where proto3 has no optional scalar.

mod admin;
mod events;
mod history;
mod identity;
mod link;
mod structure;
mod webhooks;

pub(crate) use admin::admin_command;
pub(crate) use events::{event, event_query, events_request};
pub(crate) use history::{history_page, history_query, history_request, page_token};
pub(crate) use identity::*;
pub(crate) use link::{server_msg, worker_msg};
pub(crate) use structure::structure_view;
pub(crate) use webhooks::{create_webhook_request, delivery, new_webhook, webhook_info};

use crate::pb;
use crate::{Error, Result};
use kiln_core::model::Outcome;
use kiln_core::view::*;

pub(crate) fn job_query(r: pb::ListJobsRequest) -> Result<JobQuery> {
    let text = |s: String| (!s.is_empty()).then_some(s);
    let state = match text(r.state) {
        None => None,
        Some(s) => Some(JobStatus::parse(&s).ok_or_else(|| {
            Error::Invalid(format!(
                "state: {s:?} is not a job state; use PENDING, RUNNING, PAUSED, FAILED, \
                 FINISHED or KILLED"
            ))
        })?),
    };
    Ok(JobQuery {
        all: r.all,
        show: text(r.show),
        user: text(r.user),
        state,
        name: text(r.name),
        since: opt(r.since),
        after: opt(r.after),
        limit: r.limit,
    })
}

pub(crate) fn job_query_request(q: &JobQuery) -> pb::ListJobsRequest {
    pb::ListJobsRequest {
        all: q.all,
        show: q.show.clone().unwrap_or_default(),
        user: q.user.clone().unwrap_or_default(),
        state: q.state.map(|s| s.to_string()).unwrap_or_default(),
        name: q.name.clone().unwrap_or_default(),
        since: q.since.unwrap_or(0),
        after: q.after.unwrap_or(0),
        limit: q.limit,
    }
}

fn opt(v: i64) -> Option<i64> {
    (v != 0).then_some(v)
}

fn enum_str<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn parse_enum<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| Error::Malformed(format!("unknown {what} {s:?}")))
}

impl From<StateCounts> for pb::StateCounts {
    fn from(c: StateCounts) -> Self {
        pb::StateCounts {
            waiting: c.waiting,
            depend: c.depend,
            running: c.running,
            succeeded: c.succeeded,
            dead: c.dead,
            eaten: c.eaten,
        }
    }
}

impl From<pb::StateCounts> for StateCounts {
    fn from(c: pb::StateCounts) -> Self {
        StateCounts {
            waiting: c.waiting,
            depend: c.depend,
            running: c.running,
            succeeded: c.succeeded,
            dead: c.dead,
            eaten: c.eaten,
        }
    }
}

impl From<JobSummary> for pb::JobSummary {
    fn from(j: JobSummary) -> Self {
        pb::JobSummary {
            id: j.id,
            name: j.name,
            show: j.show,
            shot: j.shot,
            user: j.user,
            priority: j.priority,
            status: j.status.to_string(),
            paused: j.paused,
            counts: Some(j.counts.into()),
            submitted_at: j.submitted_at,
            finished_at: j.finished_at.unwrap_or(0),
            facility: j.facility,
            total: j.total,
        }
    }
}

pub(crate) fn job_summary(j: pb::JobSummary) -> Result<JobSummary> {
    Ok(JobSummary {
        id: j.id,
        name: j.name,
        facility: j.facility,
        show: j.show,
        shot: j.shot,
        user: j.user,
        priority: j.priority,
        status: JobStatus::parse(&j.status)
            .ok_or_else(|| Error::Malformed(format!("unknown job status {:?}", j.status)))?,
        paused: j.paused,
        counts: j.counts.unwrap_or_default().into(),
        total: j.total,
        submitted_at: j.submitted_at,
        finished_at: opt(j.finished_at),
    })
}

impl From<LayerSummary> for pb::LayerSummary {
    fn from(l: LayerSummary) -> Self {
        pb::LayerSummary {
            id: l.id,
            name: l.name,
            command: l.command,
            frames: l.frames,
            chunk: l.chunk,
            cores: l.cores,
            memory_kb: l.memory_kb,
            gpus: l.gpus,
            tags: l.tags,
            retries: l.retries,
            timeout_s: l.timeout_s.unwrap_or(0),
            depends: l.depends,
            paused: l.paused,
            counts: Some(l.counts.into()),
            total: l.total,
            cores_request: l.cores_request,
            gpu_memory_kb: l.gpu_memory_kb,
            scratch_kb: l.scratch_kb,
            limits: l.limits,
            service: l.service.unwrap_or_default(),
            why: l.why.map(Into::into),
            outputs: l.outputs,
            bad_outputs: l.bad_outputs.as_str().into(),
        }
    }
}

fn layer_summary(l: pb::LayerSummary) -> Result<LayerSummary> {
    Ok(LayerSummary {
        id: l.id,
        name: l.name,
        command: l.command,
        frames: l.frames,
        chunk: l.chunk,
        cores: l.cores,
        cores_request: l.cores_request,
        memory_kb: l.memory_kb,
        gpus: l.gpus,
        gpu_memory_kb: l.gpu_memory_kb,
        scratch_kb: l.scratch_kb,
        tags: l.tags,
        limits: l.limits,
        service: some(l.service),
        why: l.why.map(why).transpose()?,
        retries: l.retries,
        timeout_s: (l.timeout_s != 0).then_some(l.timeout_s),
        depends: l.depends,
        paused: l.paused,
        counts: l.counts.unwrap_or_default().into(),
        total: l.total,
        outputs: l.outputs,
        bad_outputs: kiln_core::output::BadOutputs::parse(&l.bad_outputs).unwrap_or_default(),
    })
}

fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl From<Why> for pb::Why {
    fn from(w: Why) -> Self {
        pb::Why {
            kind: w.kind.as_str().to_owned(),
            name: w.name.unwrap_or_default(),
        }
    }
}

/// The reason's words are made again here, so every client prints the
/// same text for the same reason.
fn why(w: pb::Why) -> Result<Why> {
    let kind = WhyKind::parse(&w.kind)
        .ok_or_else(|| Error::Malformed(format!("unknown waiting reason {:?}", w.kind)))?;
    Ok(Why::new(kind, some(w.name)))
}

impl From<JobDetail> for pb::JobDetail {
    fn from(d: JobDetail) -> Self {
        pb::JobDetail {
            job: Some(d.job.into()),
            layers: d.layers.into_iter().map(Into::into).collect(),
            depends_on_jobs: d.depends_on_jobs,
            env: d.env.into_iter().collect(),
            max_cores: d.max_cores,
            cores_used: d.cores_used,
            avoid_hosts: d.avoid_hosts,
        }
    }
}

pub(crate) fn job_detail(d: pb::JobDetail) -> Result<JobDetail> {
    Ok(JobDetail {
        job: job_summary(
            d.job
                .ok_or_else(|| Error::Malformed("job detail without a job".into()))?,
        )?,
        layers: d
            .layers
            .into_iter()
            .map(layer_summary)
            .collect::<Result<_>>()?,
        depends_on_jobs: d.depends_on_jobs,
        env: d.env.into_iter().collect(),
        max_cores: d.max_cores,
        cores_used: d.cores_used,
        avoid_hosts: d.avoid_hosts,
    })
}

impl From<FrameInfo> for pb::FrameInfo {
    fn from(f: FrameInfo) -> Self {
        pb::FrameInfo {
            id: f.id,
            layer: f.layer,
            number: f.number,
            chunk: f.chunk,
            state: f.state.to_string(),
            attempts: f.attempts,
            failures: f.failures,
            host: f.host.unwrap_or_default(),
            started_at: f.started_at.unwrap_or(0),
            ended_at: f.ended_at.unwrap_or(0),
            max_rss_kb: f.max_rss_kb,
            cpu_ms: f.cpu_ms,
            outcome: f
                .outcome
                .map(|o| o.as_str().to_string())
                .unwrap_or_default(),
            has_exit_status: f.exit_status.is_some(),
            exit_status: f.exit_status.unwrap_or(0),
            exit_signal: f.exit_signal.unwrap_or(0),
            attempt_id: f.attempt_id.unwrap_or(0),
            cores: f.cores,
            memory_kb: f.memory_kb,
            why: f.why.map(Into::into),
            reason: f.reason.unwrap_or_default(),
            outputs: f.outputs.into_iter().map(link::output_to_wire).collect(),
            flag: f.flag.unwrap_or_default(),
        }
    }
}

pub(crate) fn frame_info(f: pb::FrameInfo) -> Result<FrameInfo> {
    Ok(FrameInfo {
        id: f.id,
        layer: f.layer,
        number: f.number,
        chunk: f.chunk,
        state: DisplayState::parse(&f.state)
            .ok_or_else(|| Error::Malformed(format!("unknown frame state {:?}", f.state)))?,
        attempts: f.attempts,
        failures: f.failures,
        host: (!f.host.is_empty()).then_some(f.host),
        cores: f.cores,
        memory_kb: f.memory_kb,
        started_at: opt(f.started_at),
        ended_at: opt(f.ended_at),
        max_rss_kb: f.max_rss_kb,
        cpu_ms: f.cpu_ms,
        outcome: Outcome::parse(&f.outcome),
        exit_status: f.has_exit_status.then_some(f.exit_status),
        exit_signal: (f.exit_signal != 0).then_some(f.exit_signal),
        attempt_id: opt(f.attempt_id),
        why: f.why.map(why).transpose()?,
        reason: (!f.reason.is_empty()).then_some(f.reason),
        outputs: f
            .outputs
            .into_iter()
            .map(|o| link::output_from_wire(o).map(|o| o.check))
            .collect::<Result<_>>()?,
        flag: (!f.flag.is_empty()).then_some(f.flag),
    })
}

impl From<HostInfo> for pb::HostInfo {
    fn from(h: HostInfo) -> Self {
        pb::HostInfo {
            id: h.id,
            name: h.name,
            state: enum_str(&h.state),
            lock: enum_str(&h.lock),
            os: h.os,
            cores: h.cores,
            cores_used: h.cores_used,
            memory_kb: h.memory_kb,
            memory_used_kb: h.memory_used_kb,
            gpus: h.gpus,
            gpus_used: h.gpus_used,
            gpu_memory_kb: h.gpu_memory_kb,
            swap_kb: h.swap_kb,
            scratch_free_kb: h.scratch_free_kb,
            load: h.load,
            tags: h.tags,
            version: h.version,
            running: h.running,
            last_seen: h.last_seen,
            total_memory_kb: h.total_memory_kb,
            allocation: h.allocation,
            manual_tags: h.manual_tags,
        }
    }
}

pub(crate) fn host_info(h: pb::HostInfo) -> Result<HostInfo> {
    Ok(HostInfo {
        id: h.id,
        name: h.name,
        allocation: h.allocation,
        state: parse_enum("host state", &h.state)?,
        lock: parse_enum("lock state", &h.lock)?,
        os: h.os,
        cores: h.cores,
        cores_used: h.cores_used,
        memory_kb: h.memory_kb,
        memory_used_kb: h.memory_used_kb,
        total_memory_kb: h.total_memory_kb,
        gpus: h.gpus,
        gpus_used: h.gpus_used,
        gpu_memory_kb: h.gpu_memory_kb,
        swap_kb: h.swap_kb,
        scratch_free_kb: h.scratch_free_kb,
        load: h.load,
        tags: h.tags,
        manual_tags: h.manual_tags,
        version: h.version,
        running: h.running,
        last_seen: h.last_seen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_query_crosses_the_wire_whole_and_a_bad_state_is_named() {
        let q = JobQuery {
            all: false,
            show: Some("demo".into()),
            user: Some("ann".into()),
            state: Some(JobStatus::Failed),
            name: Some("sh010".into()),
            since: Some(1_700_000_000_000),
            after: Some(41),
            limit: 100,
        };
        assert_eq!(job_query(job_query_request(&q)).unwrap(), q);
        let every = JobQuery::every(true);
        assert_eq!(job_query(job_query_request(&every)).unwrap(), every);
        let bad = pb::ListJobsRequest {
            state: "DONE".into(),
            ..Default::default()
        };
        let e = job_query(bad).unwrap_err().to_string();
        assert!(e.contains("state: \"DONE\""), "{e}");
    }
}
