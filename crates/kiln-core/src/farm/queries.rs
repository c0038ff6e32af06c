//! Read-only views of the farm for clients.

mod listing;
mod metrics;
mod why;

use super::*;
use crate::error::{Error, Result};
use crate::view::*;

/// Which of a job's frames [`Farm::frames_page`] lists: of one layer or
/// all, in one display state or any, that last ran on one host or any;
/// those after the frame id `after`, `skip` more passed over, at most
/// `limit` (0: all).
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameSelect<'a> {
    pub layer: Option<&'a str>,
    pub state: Option<DisplayState>,
    pub host: Option<&'a str>,
    pub after: Option<i64>,
    pub skip: usize,
    pub limit: usize,
}

impl Farm {
    /// A frame's display state: WAITING frames that cannot start because of
    /// a dependency show as DEPEND.
    pub fn display_state(&self, f: &Frame) -> DisplayState {
        match f.state {
            FrameState::Waiting => {
                let l = &self.layers[&f.layer];
                let j = &self.jobs[&f.job];
                let held = !j.job.depends.iter().all(|d| self.job_dependency_met(*d))
                    || !self.layer_deps_met(l)
                    || !self.frame_deps_met(f);
                if held {
                    DisplayState::Depend
                } else {
                    DisplayState::Waiting
                }
            }
            FrameState::Running => DisplayState::Running,
            FrameState::Succeeded => DisplayState::Succeeded,
            FrameState::Dead => DisplayState::Dead,
            FrameState::Eaten => DisplayState::Eaten,
        }
    }

    fn frame_deps_met(&self, f: &Frame) -> bool {
        // frame_ready also waits for a winding-down attempt; that is not a
        // dependency, so check with the attempt cleared.
        if f.attempt.is_some_and(|a| self.in_flight.contains_key(&a)) {
            let mut g = f.clone();
            g.attempt = None;
            return self.frame_ready(&g);
        }
        self.frame_ready(f)
    }

    pub(super) fn layer_counts(&self, l: &LayerEntry) -> StateCounts {
        let c = l.counts;
        let mut out = StateCounts {
            waiting: c.waiting,
            depend: 0,
            running: c.running,
            succeeded: c.succeeded,
            dead: c.dead,
            eaten: c.eaten,
        };
        let job_held = !self.jobs[&l.layer.job]
            .job
            .depends
            .iter()
            .all(|d| self.job_dependency_met(*d));
        if job_held || !self.layer_deps_met(l) {
            out.depend = out.waiting;
            out.waiting = 0;
        } else if l.layer.depends.iter().any(|d| d.per_frame) {
            let held = l
                .waiting
                .iter()
                .filter(|&&i| !self.frame_deps_met(&self.frames[&l.frames[i as usize]]))
                .count() as u32;
            out.depend = held;
            out.waiting -= held;
        }
        out
    }

    fn job_status(&self, e: &JobEntry, counts: &StateCounts) -> JobStatus {
        if e.job.state == JobState::Killed {
            JobStatus::Killed
        } else if counts.done() == counts.total() {
            JobStatus::Finished
        } else if e.job.paused {
            JobStatus::Paused
        } else if counts.running > 0 {
            JobStatus::Running
        } else if counts.dead > 0 && counts.waiting == 0 {
            JobStatus::Failed
        } else {
            JobStatus::Pending
        }
    }

    fn summary(&self, e: &JobEntry) -> JobSummary {
        let mut counts = StateCounts::default();
        for l in &e.layers {
            let c = self.layer_counts(&self.layers[l]);
            counts.waiting += c.waiting;
            counts.depend += c.depend;
            counts.running += c.running;
            counts.succeeded += c.succeeded;
            counts.dead += c.dead;
            counts.eaten += c.eaten;
        }
        let j = &e.job;
        JobSummary {
            id: j.id.0,
            name: j.name.clone(),
            facility: j.facility.clone(),
            show: j.show.clone(),
            shot: j.shot.clone(),
            user: j.user.clone(),
            priority: j.priority,
            status: self.job_status(e, &counts),
            paused: j.paused,
            total: counts.total(),
            counts,
            submitted_at: j.submitted_at,
            finished_at: j.finished_at,
        }
    }

    /// Jobs, oldest first; without `all`, finished and killed jobs are left out.
    pub fn list_jobs(&self, all: bool) -> Vec<JobSummary> {
        self.jobs
            .values()
            .map(|e| self.summary(e))
            .filter(|s| all || !s.status.is_over())
            .collect()
    }

    pub fn job_detail(&self, key: &str) -> Result<JobDetail> {
        let id = self.resolve_job(key)?;
        Ok(self.detail(id).expect("a resolved job exists"))
    }

    /// The job with id `id` as clients see it; `None` if there is none.
    pub fn detail(&self, id: JobId) -> Option<JobDetail> {
        let e = self.jobs.get(&id)?;
        let layers = e
            .layers
            .iter()
            .map(|lid| {
                let le = &self.layers[lid];
                let l = &le.layer;
                let counts = self.layer_counts(le);
                LayerSummary {
                    id: l.id.0,
                    name: l.name.clone(),
                    command: l.command.to_string(),
                    frames: l.frames.clone(),
                    chunk: l.chunk,
                    cores: l.resources.cores,
                    cores_request: l.cores.to_string(),
                    memory_kb: l.resources.memory_kb,
                    gpus: l.resources.gpus,
                    gpu_memory_kb: l.resources.gpu_memory_kb,
                    scratch_kb: l.resources.scratch_kb,
                    tags: l.tags.iter().map(|t| t.to_string()).collect(),
                    limits: l.limits.clone(),
                    service: l.service.clone(),
                    why: if counts.waiting > 0 {
                        Some(self.layer_why(le))
                    } else if counts.depend > 0 {
                        Some(Why::new(WhyKind::Depend, None))
                    } else {
                        None
                    },
                    retries: l.retries,
                    timeout_s: l.timeout_s,
                    depends: l
                        .depends
                        .iter()
                        .map(|d| {
                            if d.per_frame {
                                format!("{} (per frame)", d.layer)
                            } else {
                                d.layer.clone()
                            }
                        })
                        .collect(),
                    paused: l.paused,
                    outputs: l.outputs.clone(),
                    bad_outputs: l.bad_outputs,
                    total: counts.total(),
                    counts,
                }
            })
            .collect();
        Some(JobDetail {
            job: self.summary(e),
            layers,
            depends_on_jobs: e.job.depends.iter().map(|d| d.0).collect(),
            env: e.job.env.clone(),
            max_cores: e.job.max_cores,
            cores_used: e.used,
            avoid_hosts: e
                .job
                .avoid_hosts
                .iter()
                .map(|h| self.host_name(*h))
                .collect(),
        })
    }

    pub fn list_frames(
        &self,
        key: &str,
        layer: Option<&str>,
        state: Option<DisplayState>,
    ) -> Result<Vec<FrameInfo>> {
        let sel = FrameSelect {
            layer,
            state,
            ..FrameSelect::default()
        };
        self.frames_page(key, &sel)
    }

    /// [`Farm::list_frames`] a page at a time: those after the frame id
    /// `after`, at most `limit` (0: all). Frames are listed by layer and
    /// number, which is the order of their ids (a submit numbers them so),
    /// so a page costs its own frames, not the job's: a client scrolling a
    /// job of a million frames holds the applier no longer than one of a
    /// hundred. `skip` passes over that many more first (a client jumping
    /// to a row far down the list): counted, not built.
    pub fn frames_page(&self, key: &str, sel: &FrameSelect) -> Result<Vec<FrameInfo>> {
        let FrameSelect {
            layer,
            state,
            host,
            after,
            mut skip,
            limit,
        } = *sel;
        // A frame's host is the one it last ran on (or runs on).
        let host = match host {
            Some(h) => Some(self.resolve_host(h)?),
            None => None,
        };
        let mut out = Vec::new();
        let full = |out: &Vec<FrameInfo>| limit > 0 && out.len() >= limit;
        for le in self.job_layers(key, layer)? {
            if full(&out) {
                break;
            }
            // One reason serves every waiting frame of the layer; worked
            // out only if one is listed.
            let mut layer_why: Option<Why> = None;
            // Ids ascend within a layer: the page starts past `after`.
            let mut from = after.map_or(0, |a| le.frames.partition_point(|f| f.0 <= a));
            if state.is_none() && host.is_none() {
                // Every frame counts: a whole layer is skipped at once.
                let n = (le.frames.len() - from).min(skip);
                from += n;
                skip -= n;
            }
            for fid in &le.frames[from..] {
                if full(&out) {
                    break;
                }
                let f = &self.frames[fid];
                let ds = self.display_state(f);
                if state.is_some_and(|s| s != ds) || host.is_some_and(|h| f.host != Some(h)) {
                    continue;
                }
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                let why = match ds {
                    DisplayState::Depend => Some(Why::new(WhyKind::Depend, None)),
                    DisplayState::Waiting
                        if f.attempt.is_some_and(|a| self.in_flight.contains_key(&a)) =>
                    {
                        Some(Why::new(WhyKind::Stopping, None))
                    }
                    DisplayState::Waiting => {
                        Some(layer_why.get_or_insert_with(|| self.layer_why(le)).clone())
                    }
                    _ => None,
                };
                out.push(self.frame_info(f, &le.layer.name, ds, why));
            }
        }
        Ok(out)
    }

    /// The layers of the job `key` names, in order: all, or the one named
    /// `layer` (an error naming the job's layers if there is none).
    fn job_layers(&self, key: &str, layer: Option<&str>) -> Result<Vec<&LayerEntry>> {
        let id = self.resolve_job(key)?;
        let all = self.jobs[&id].layers.iter().map(|l| &self.layers[l]);
        let Some(name) = layer else {
            return Ok(all.collect());
        };
        let found: Vec<&LayerEntry> = all.filter(|le| le.layer.name == name).collect();
        if found.is_empty() {
            return Err(self.no_layer_error(id, name));
        }
        Ok(found)
    }

    fn no_layer_error(&self, job: JobId, name: &str) -> Error {
        let names: Vec<&str> = self.jobs[&job]
            .layers
            .iter()
            .map(|l| self.layers[l].layer.name.as_str())
            .collect();
        Error::NotFound(format!(
            "job {} has no layer {name:?}: its layers are {}",
            self.jobs[&job].job.name,
            names.join(", ")
        ))
    }

    pub(super) fn frame_info(
        &self,
        f: &Frame,
        layer: &str,
        state: DisplayState,
        why: Option<Why>,
    ) -> FrameInfo {
        let live = f.attempt.and_then(|a| self.in_flight.get(&a));
        FrameInfo {
            id: f.id.0,
            layer: layer.to_string(),
            number: f.number,
            chunk: f.chunk.clone(),
            state,
            attempts: f.attempts,
            failures: f.failures,
            host: f
                .host
                .and_then(|h| self.hosts.get(&h))
                .map(|h| h.host.report.name.clone()),
            cores: f.cores,
            memory_kb: live.map_or(0, |l| l.attempt.memory_kb),
            started_at: f.started_at,
            ended_at: f.ended_at,
            max_rss_kb: live.map_or(f.max_rss_kb, |l| l.attempt.max_rss_kb),
            cpu_ms: live.map_or(f.cpu_ms, |l| l.attempt.cpu_ms),
            outcome: f.outcome,
            exit_status: f.exit_status,
            exit_signal: f.exit_signal,
            attempt_id: f.attempt.map(|a| a.0),
            why,
            reason: f.reason.clone(),
            outputs: f.outputs.clone(),
            flag: self.output_flag(f),
        }
    }

    /// A frame's bad-output flag, judged against the frames beside it in
    /// its layer (a flicker is a frame unlike both its neighbours).
    fn output_flag(&self, f: &Frame) -> Option<String> {
        if f.outputs.is_empty() {
            return None;
        }
        let le = self.layers.get(&f.layer)?;
        // The frames before and after it in the sequence: dispatch order
        // is number order but for interleaved or listed frame sets, where
        // a frame beside it in dispatch is not beside it in the shot and
        // is not compared.
        let beside = |i: Option<usize>, before: bool| {
            i.and_then(|i| le.frames.get(i))
                .and_then(|id| self.frames.get(id))
                .filter(|n| (n.number < f.number) == before && n.number != f.number)
                .filter(|n| n.state == crate::model::FrameState::Succeeded)
                .and_then(|n| crate::output::brightness(&n.outputs))
        };
        let i = f.index as usize;
        crate::output::flag(
            &f.outputs,
            beside(i.checked_sub(1), true),
            beside(Some(i + 1), false),
        )
    }

    /// Finds a frame of a job by `layer/number` or by frame id.
    /// The logs to search for `kiln grep`: each frame of the job (of `layer`
    /// only, or only `frame`) that has run, as `layer/number` with its
    /// current or last attempt and that attempt's number.
    pub fn log_targets(
        &self,
        key: &str,
        layer: Option<&str>,
        frame: Option<&str>,
    ) -> Result<Vec<(String, AttemptId, u32)>> {
        let name = |f: &Frame| format!("{}/{}", self.layers[&f.layer].layer.name, f.number);
        if let Some(frame) = frame {
            let f = self.resolve_frame(key, frame)?;
            return Ok(f
                .attempt
                .map(|a| (name(f), a, f.attempts))
                .into_iter()
                .collect());
        }
        let mut out = Vec::new();
        for le in self.job_layers(key, layer)? {
            for f in le.frames.iter().map(|fid| &self.frames[fid]) {
                if let Some(a) = f.attempt {
                    out.push((name(f), a, f.attempts));
                }
            }
        }
        Ok(out)
    }

    pub fn resolve_frame(&self, job_key: &str, frame: &str) -> Result<&Frame> {
        let job = self.resolve_job(job_key)?;
        if let Some((layer, num)) = frame.split_once('/') {
            let lid = self.jobs[&job]
                .layers
                .iter()
                .find(|l| self.layers[l].layer.name == layer)
                .ok_or_else(|| self.no_layer_error(job, layer))?;
            let le = &self.layers[lid];
            let n: i64 = num.trim().parse().map_err(|_| {
                Error::Invalid(format!(
                    "{frame:?}: after the layer name give a frame number, e.g. {layer}/12"
                ))
            })?;
            let idx = le.by_number.get(&n).ok_or_else(|| {
                Error::NotFound(format!(
                    "layer {layer} has no frame {n}: its frames are {}",
                    le.layer.frames
                ))
            })?;
            return Ok(&self.frames[&le.frames[*idx as usize]]);
        }
        let id: i64 = frame.trim().parse().map_err(|_| {
            Error::Invalid(format!(
                "{frame:?} is not a frame: write LAYER/FRAME (e.g. render/12) or a frame id"
            ))
        })?;
        self.frames
            .get(&FrameId(id))
            .filter(|f| f.job == job)
            .ok_or_else(|| Error::NotFound(format!("job {job_key} has no frame with id {id}")))
    }

    /// A frame by its id alone, with its job's id and name.
    pub fn frame_detail(&self, id: i64) -> Result<FrameDetail> {
        let f = self
            .frames
            .get(&FrameId(id))
            .ok_or_else(|| Error::NotFound(format!("no frame with id {id}")))?;
        let le = &self.layers[&f.layer];
        let ds = self.display_state(f);
        let why = match ds {
            DisplayState::Depend => Some(Why::new(WhyKind::Depend, None)),
            DisplayState::Waiting if f.attempt.is_some_and(|a| self.in_flight.contains_key(&a)) => {
                Some(Why::new(WhyKind::Stopping, None))
            }
            DisplayState::Waiting => Some(self.layer_why(le)),
            _ => None,
        };
        Ok(FrameDetail {
            job_id: f.job.0,
            job: self.jobs[&f.job].job.name.clone(),
            frame: self.frame_info(f, &le.layer.name, ds, why),
        })
    }

    /// The in-flight attempt of a frame, if it is running now.
    pub fn live_attempt(&self, id: AttemptId) -> Option<&Attempt> {
        self.in_flight.get(&id).map(|f| &f.attempt)
    }

    /// A running attempt's memory and CPU over time, from its heartbeats.
    pub fn live_usage(&self, id: AttemptId) -> Option<Vec<crate::series::UsageSample>> {
        self.in_flight.get(&id).map(|f| f.series.points())
    }

    pub fn hosts(&self) -> Vec<HostInfo> {
        self.hosts
            .values()
            .map(|h| {
                let r = &h.host.report;
                HostInfo {
                    id: h.host.id.0,
                    name: r.name.clone(),
                    allocation: h.host.allocation.clone(),
                    state: h.host.state,
                    lock: h.host.lock,
                    os: r.os.clone(),
                    cores: r.cores,
                    cores_used: h.used.cores,
                    memory_kb: r.memory_kb,
                    memory_used_kb: h.used.memory_kb,
                    total_memory_kb: r.total_memory_kb,
                    gpus: r.gpus,
                    gpus_used: h.used.gpus,
                    gpu_memory_kb: r.gpu_memory_kb,
                    swap_kb: r.swap_kb,
                    scratch_free_kb: r.scratch_free_kb,
                    load: r.load,
                    tags: h.tags.to_vec(),
                    manual_tags: h.host.tags.clone(),
                    version: r.version.clone(),
                    running: h.running.len() as u32,
                    last_seen: h.host.last_seen,
                }
            })
            .collect()
    }

    pub fn job_count(&self) -> usize {
        self.jobs.len()
    }

    pub fn host_count(&self) -> usize {
        self.hosts.len()
    }
}
