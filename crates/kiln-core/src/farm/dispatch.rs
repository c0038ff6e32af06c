//! From farm to scheduler and back: the snapshot of what can run where, and
//! the application of a plan (attempts created, launches queued).

use super::*;
use crate::sched::{Demand, HostSlot, Plan, Snapshot};
use crate::tokens::{substitute_command, TokenContext};

impl Farm {
    /// What the scheduler needs to see now: connected, open, UP hosts with
    /// room left, and for each runnable layer its ready frames in order.
    pub fn snapshot(&self, now: Millis) -> Snapshot {
        let hosts: Vec<HostSlot> = self
            .hosts
            .values()
            .filter(|h| {
                h.session.is_some()
                    && !h.draining
                    && h.host.state == HostState::Up
                    && h.host.lock == LockState::Open
            })
            .filter_map(|h| {
                let mut free = h.host.offers();
                free.sub(&h.used);
                (free.cores > 0).then(|| HostSlot {
                    id: h.host.id,
                    free,
                    tags: h.host.report.tags.clone(),
                })
            })
            .collect();
        let mut snap = Snapshot {
            now,
            hosts,
            demands: Vec::new(),
        };
        if snap.hosts.is_empty() {
            return snap;
        }
        let free_cores: u64 = snap.hosts.iter().map(|h| h.free.cores as u64).sum();
        for entry in self.jobs.values() {
            if !self.job_runnable(entry) {
                continue;
            }
            for lid in &entry.layers {
                let l = &self.layers[lid];
                if l.waiting.is_empty() || !self.layer_runnable(l) {
                    continue;
                }
                // More frames than could fit on every free core is wasted work.
                let cap = (free_cores / l.layer.resources.cores.max(1) as u64 + 1) as usize;
                let frames: Vec<FrameId> = l
                    .waiting
                    .iter()
                    .map(|&i| l.frames[i as usize])
                    .filter(|f| self.frame_ready(&self.frames[f]))
                    .take(cap)
                    .collect();
                if frames.is_empty() {
                    continue;
                }
                snap.demands.push(Demand {
                    job: entry.job.id,
                    layer: l.layer.id,
                    priority: entry.job.priority,
                    submitted_at: entry.job.submitted_at,
                    layer_index: l.layer.index,
                    needs: l.layer.resources,
                    tags: l.layer.tags.clone(),
                    frames,
                });
            }
        }
        snap
    }

    /// Commits a plan to memory: each assignment becomes a RUNNING frame with
    /// a new attempt, and a launch message for its host. Assignments that no
    /// longer fit (the farm changed since the snapshot) are skipped.
    pub fn apply_plan(&mut self, plan: &Plan, now: Millis) -> usize {
        let mut applied = 0;
        for a in &plan.assignments {
            let Some(f) = self.frames.get(&a.frame) else {
                continue;
            };
            if f.state != FrameState::Waiting
                || f.attempt.is_some_and(|at| self.in_flight.contains_key(&at))
            {
                continue;
            }
            let Some(h) = self.hosts.get(&a.host) else {
                continue;
            };
            let mut free = h.host.offers();
            free.sub(&h.used);
            if !a.grant.fits_in(&free) || h.session.is_none() {
                continue;
            }
            self.start_attempt(a.frame, a.host, a.grant, now);
            applied += 1;
        }
        applied
    }

    fn start_attempt(&mut self, frame: FrameId, host: HostId, grant: Resources, now: Millis) {
        let id = AttemptId(Self::next_id(&mut self.ids.attempt));
        let h = self.hosts.get_mut(&host).expect("checked");
        h.used.add(&grant);
        h.running.insert(id);
        let host_name = h.host.report.name.clone();
        let f = self.frames.get_mut(&frame).expect("checked");
        f.attempts += 1;
        f.attempt = Some(id);
        f.host = Some(host);
        f.cores = grant.cores;
        f.started_at = Some(now);
        f.ended_at = None;
        f.outcome = None;
        f.exit_status = None;
        f.exit_signal = None;
        f.max_rss_kb = 0;
        f.cpu_ms = 0;
        let attempt = Attempt {
            id,
            frame,
            job: f.job,
            number: f.attempts,
            host,
            host_name,
            cores: grant.cores,
            started_at: now,
            ended_at: None,
            outcome: None,
            exit_status: None,
            exit_signal: None,
            max_rss_kb: 0,
            cpu_ms: 0,
            reason: None,
        };
        self.in_flight.insert(
            id,
            InFlight {
                attempt,
                grant,
                rss_kb: 0,
            },
        );
        self.dirty.attempts.insert(id);
        self.set_state(frame, FrameState::Running, now);
        let launch = self.launch_for(frame, id, grant);
        self.send(host, ServerMsg::Launch(launch));
    }

    /// The launch message: tokens substituted, env merged with KILN_* vars.
    fn launch_for(
        &self,
        frame: FrameId,
        attempt: AttemptId,
        grant: Resources,
    ) -> crate::link::Launch {
        let f = &self.frames[&frame];
        let l = &self.layers[&f.layer].layer;
        let j = &self.jobs[&f.job].job;
        let last = chunk_numbers(&f.chunk).last().copied().unwrap_or(f.number);
        let ctx = TokenContext {
            job: &j.name,
            layer: &l.name,
            number: f.number,
            last,
            chunk: &f.chunk,
            chunk_size: l.chunk,
        };
        let mut env = j.env.clone();
        env.extend(l.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let cores = format!("{}", grant.cores as f64 / 100.0);
        let threads = grant.cores.div_ceil(100).max(1).to_string();
        for (k, v) in [
            ("KILN_JOB", j.name.clone()),
            ("KILN_JOB_ID", j.id.to_string()),
            ("KILN_SHOW", j.show.clone()),
            ("KILN_SHOT", j.shot.clone()),
            ("KILN_USER", j.user.clone()),
            ("KILN_LAYER", l.name.clone()),
            ("KILN_FRAME", f.number.to_string()),
            ("KILN_FRAME_ID", f.id.to_string()),
            ("KILN_FRAME_START", f.number.to_string()),
            ("KILN_FRAME_END", last.to_string()),
            ("KILN_FRAMESPEC", f.chunk.clone()),
            ("KILN_ATTEMPT", f.attempts.to_string()),
            ("KILN_ATTEMPT_ID", attempt.to_string()),
            ("KILN_CORES", cores),
            ("KILN_THREADS", threads),
            ("KILN_MEMORY_KB", grant.memory_kb.to_string()),
        ] {
            env.insert(k.to_string(), v);
        }
        crate::link::Launch {
            attempt,
            job: j.name.clone(),
            frame_label: format!("{}/{}", l.name, f.number),
            command: substitute_command(&l.command, &ctx),
            env,
            cwd: l.cwd.clone(),
            user: j.user.clone(),
            timeout_s: l.timeout_s,
            gpus: grant.gpus,
            cores: grant.cores,
        }
    }

    pub(super) fn job_runnable(&self, entry: &JobEntry) -> bool {
        entry.job.state == JobState::Active
            && !entry.job.paused
            && entry
                .job
                .depends
                .iter()
                .all(|d| self.job_dependency_met(*d))
    }

    pub(super) fn job_dependency_met(&self, job: JobId) -> bool {
        match self.jobs.get(&job) {
            // A killed job releases what waits on it, as in OpenCue.
            Some(j) => j.job.state == JobState::Killed || self.job_all_done(job),
            None => true,
        }
    }

    pub(super) fn layer_runnable(&self, l: &LayerEntry) -> bool {
        !l.layer.paused && self.layer_deps_met(l)
    }

    /// Whole-layer dependencies only; per-frame ones are checked per frame.
    pub(super) fn layer_deps_met(&self, l: &LayerEntry) -> bool {
        l.layer.depends.iter().filter(|d| !d.per_frame).all(|d| {
            self.sibling(l, &d.layer)
                .is_none_or(|dep| dep.counts.done() == dep.counts.total())
        })
    }

    /// Whether a WAITING frame's per-frame dependencies are met and it has
    /// no attempt still winding down.
    pub(super) fn frame_ready(&self, f: &Frame) -> bool {
        if f.attempt.is_some_and(|a| self.in_flight.contains_key(&a)) {
            return false;
        }
        let l = &self.layers[&f.layer];
        l.layer.depends.iter().filter(|d| d.per_frame).all(|d| {
            let Some(dep) = self.sibling(l, &d.layer) else {
                return true;
            };
            let numbers = if f.chunk.contains([',', '-', 'x', 'y', ':']) {
                chunk_numbers(&f.chunk)
            } else {
                vec![f.number]
            };
            numbers.iter().all(|n| match dep.by_number.get(n) {
                Some(&i) => self.frames[&dep.frames[i as usize]].state.is_done(),
                None => true,
            })
        })
    }

    fn sibling(&self, l: &LayerEntry, name: &str) -> Option<&LayerEntry> {
        self.jobs[&l.layer.job]
            .layers
            .iter()
            .map(|id| &self.layers[id])
            .find(|s| s.layer.name == name)
    }
}
