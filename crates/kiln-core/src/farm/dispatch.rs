//! From farm to scheduler and back: the snapshot of what can run where, and
//! the application of a plan (attempts created, launches queued).

use super::mirror;
use super::*;
use crate::sched::{Plan, Snapshot, Wait};
use crate::tokens::{substitute_command, TokenContext};

impl Farm {
    /// What the scheduler needs to see now: every connected, open, UP host
    /// with what it has left, the structure with what each show and limit
    /// holds, and each runnable layer with how many frames could start.
    /// `None` when nothing could start (no free core, or no frame ready).
    /// Costs O(what changed since the last call); see `mirror.rs`.
    pub fn snapshot(&mut self, now: Millis) -> Option<&Snapshot> {
        let changes = mirror::Changes {
            hosts: self.hosts.take_touched(),
            jobs: self.jobs.take_touched(),
            layers: self.layers.take_touched(),
        };
        let mut m = std::mem::take(&mut self.mirror);
        m.refresh(self, changes, now);
        #[cfg(debug_assertions)]
        m.check(self, now);
        self.mirror = m;
        self.mirror.view()
    }

    /// Hosts each job keeps off for now: where one of its frames just
    /// failed (a streak not yet long enough to avoid the host) while other
    /// frames of it still run there. Their outcome settles it: a success
    /// clears the streak, more failures make the job avoid the host. Until
    /// then a requeued frame would only go back to fail there again.
    pub(super) fn suspect_hosts(&self) -> HashMap<JobId, Vec<HostId>> {
        let mut out: HashMap<JobId, Vec<HostId>> = HashMap::default();
        for &(job, host) in self.fail_streaks.keys() {
            let still_running = self.hosts.get(&host).is_some_and(|h| {
                h.running
                    .iter()
                    .any(|a| self.in_flight.get(a).is_some_and(|f| f.attempt.job == job))
            });
            if still_running {
                out.entry(job).or_default().push(host);
            }
        }
        out
    }

    /// How many of a layer's waiting frames could start now, counting no
    /// further than `cap`. Without per-frame dependencies that is all of
    /// them; the applier skips any still winding down from a kill.
    pub(super) fn ready_count(&self, l: &LayerEntry, cap: u64) -> u32 {
        if !l.layer.depends.iter().any(|d| d.per_frame) {
            return l.waiting.len() as u32;
        }
        let cap = cap.min(l.waiting.len() as u64) as usize;
        l.waiting
            .iter()
            .filter(|&&i| self.frame_ready(&self.frames[&l.frames[i as usize]]))
            .take(cap)
            .count() as u32
    }

    /// When each host's running frames should be done, from their layers'
    /// typical runtimes; unknown if any of them has none yet.
    pub(super) fn estimate_busy_until(&self, snap: &mut Snapshot) {
        for slot in &mut snap.hosts {
            let h = &self.hosts[&slot.id];
            let mut until = Some(snap.now);
            for a in &h.running {
                let inf = &self.in_flight[a];
                let end = self
                    .frames
                    .get(&inf.attempt.frame)
                    .and_then(|f| self.layers.get(&f.layer))
                    .and_then(|l| l.runtime.mean())
                    .map(|rt| (inf.attempt.started_at + rt).max(snap.now));
                until = match (until, end) {
                    (Some(u), Some(e)) => Some(u.max(e)),
                    _ => None,
                };
            }
            slot.busy_until = until;
        }
    }

    /// Commits a plan to memory: each assignment's frames become RUNNING
    /// with new attempts and launch messages for their host; reservations
    /// and reasons for waiting are kept for the next pass and for users.
    /// Returns the frames started.
    pub fn apply_plan(&mut self, plan: &Plan, now: Millis) -> usize {
        let mut applied = 0;
        let mut started_layers: Vec<LayerId> = Vec::new();
        let frames = plan.frames() as usize;
        self.in_flight.reserve(frames);
        self.outgoing.reserve(frames);
        for a in &plan.assignments {
            let Some(h) = self.hosts.get(&a.host) else {
                continue;
            };
            if h.session.is_none() {
                continue;
            }
            let Some(l) = self.layers.get(&a.layer) else {
                continue;
            };
            // Pickup latency counts from the later of the submit and the
            // frame's last attempt's end; frames held by a dependency are
            // left out, as the farm does not note when it was met.
            let submitted = (l.layer.depends.is_empty())
                .then(|| self.jobs.get(&l.layer.job))
                .flatten()
                .filter(|j| j.job.depends.is_empty())
                .map(|j| j.job.submitted_at);
            let mut picked = Vec::with_capacity(a.count as usize);
            for &i in &l.waiting {
                if picked.len() == a.count as usize {
                    break;
                }
                let id = l.frames[i as usize];
                let f = &self.frames[&id];
                if f.attempt.is_some_and(|at| self.in_flight.contains_key(&at))
                    || !self.frame_ready(f)
                {
                    continue;
                }
                picked.push(id);
            }
            for frame in picked {
                if !a.grant.fits_in(&self.hosts[&a.host].free()) {
                    break;
                }
                // Bounded for callers that never take them (the simulator).
                if let Some(t) = submitted.filter(|_| self.pickups.len() < 1 << 20) {
                    let ended = self.frames[&frame].ended_at.unwrap_or(t);
                    self.pickups.push(now - t.max(ended));
                }
                self.start_attempt(frame, a.host, a.grant, now);
                applied += 1;
            }
            if started_layers.last() != Some(&a.layer) {
                started_layers.push(a.layer);
            }
        }
        // A layer stays starved while any of its frames still finds no
        // host, even if others started (on a reserved host, say): its
        // next frame then needs no fresh wait before it may reserve.
        let hungry = |w: &Wait| matches!(w, Wait::Busy | Wait::Reserved(_) | Wait::NoFit);
        // The reason is not something the scheduler reads; the wait is,
        // and its row follows in place.
        for id in &started_layers {
            if let Some(l) = self.layers.quiet_mut(id) {
                l.why = None;
            }
        }
        for (id, why) in &plan.waits {
            if let Some(l) = self.layers.quiet_mut(id) {
                l.why = Some(why.clone());
                if hungry(why) && l.starved_since.is_none() {
                    l.starved_since = Some(now);
                    self.mirror.layer_starved(*id, l.starved_since);
                }
            }
        }
        for id in started_layers {
            if let Some(l) = self.layers.quiet_mut(&id) {
                if !l.why.as_ref().is_some_and(hungry) && l.starved_since.is_some() {
                    l.starved_since = None;
                    self.mirror.layer_starved(id, None);
                }
            }
        }
        self.reservations = plan.reservations.clone();
        applied
    }

    fn start_attempt(&mut self, frame: FrameId, host: HostId, grant: Resources, now: Millis) {
        let id = AttemptId(Self::next_id(&mut self.ids.attempt));
        let h = self.hosts.quiet_mut(&host).expect("checked");
        h.used.add(&grant);
        h.running.insert(id);
        self.mirror.host_free(host, h.free());
        let host_name = h.host.report.name.clone();
        let alloc = h.host.allocation.clone();
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
        f.reason = None;
        f.outputs.clear();
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
            memory_kb: grant.memory_kb,
            started_at: now,
            ended_at: None,
            outcome: None,
            exit_status: None,
            exit_signal: None,
            max_rss_kb: 0,
            cpu_ms: 0,
            reason: None,
            outputs: Vec::new(),
        };
        let (job, layer) = (attempt.job, f.layer);
        self.in_flight.insert(
            id,
            InFlight {
                attempt,
                grant,
                rss_kb: 0,
                alloc,
                series: crate::series::Series::new(super::LIVE_POINTS),
            },
        );
        self.charge(id, job, layer, true);
        self.dirty.attempts.insert(id);
        self.set_state(frame, FrameState::Running, now);
        let launch = self.launch_for(frame, id, grant);
        self.send(host, ServerMsg::Launch(launch));
    }

    /// The launch message: tokens substituted, the layer's shared env.
    fn launch_for(
        &mut self,
        frame: FrameId,
        attempt: AttemptId,
        grant: Resources,
    ) -> crate::link::Launch {
        let f = &self.frames[&frame];
        let layer = f.layer;
        let base_env = self.base_env(layer);
        let f = &self.frames[&frame];
        let l = &self.layers[&layer].layer;
        let j = &self.jobs[&f.job].job;
        // Most chunks are one frame; parse a frame set only when not.
        let last = if f.chunk.parse::<i64>().is_ok() {
            f.number
        } else {
            chunk_numbers(&f.chunk).last().copied().unwrap_or(f.number)
        };
        let ctx = TokenContext {
            job: &j.name,
            layer: &l.name,
            number: f.number,
            last,
            chunk: &f.chunk,
            chunk_size: l.chunk,
        };
        crate::link::Launch {
            attempt,
            job: j.name.clone(),
            frame_label: format!("{}/{}", l.name, f.number),
            command: substitute_command(&l.command, &ctx),
            base_env,
            cwd: l.cwd.clone(),
            user: j.user.clone(),
            timeout_s: l.timeout_s,
            gpus: grant.gpus,
            cores: grant.cores,
            memory_kb: grant.memory_kb,
            frame,
            number: f.number,
            last,
            chunk: f.chunk.clone(),
            attempt_number: f.attempts,
            outputs: outputs_for(l, &ctx),
        }
    }

    /// The environment every frame of a layer shares, built on first use.
    fn base_env(&mut self, layer: LayerId) -> std::sync::Arc<BTreeMap<String, String>> {
        let l = &self.layers[&layer];
        if let Some(env) = &l.base_env {
            return env.clone();
        }
        let j = &self.jobs[&l.layer.job].job;
        let mut env = j.env.clone();
        env.extend(l.layer.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (k, v) in [
            ("KILN_JOB", j.name.clone()),
            ("KILN_JOB_ID", j.id.to_string()),
            ("KILN_SHOW", j.show.clone()),
            ("KILN_SHOT", j.shot.clone()),
            ("KILN_USER", j.user.clone()),
            ("KILN_LAYER", l.layer.name.clone()),
        ] {
            env.insert(k.to_string(), v);
        }
        let env = std::sync::Arc::new(env);
        // Not something the scheduler reads.
        self.layers.quiet_mut(&layer).expect("present").base_env = Some(env.clone());
        env
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

/// The layer's outputs for one task: each path for each frame of its
/// chunk, tokens substituted, at most [`crate::output::MAX_CHECKED`].
fn outputs_for(l: &crate::model::Layer, ctx: &TokenContext) -> Vec<String> {
    if l.outputs.is_empty() {
        return Vec::new();
    }
    let numbers = if ctx.number == ctx.last {
        vec![ctx.number]
    } else {
        super::chunk_numbers(ctx.chunk)
    };
    let mut out = Vec::new();
    for n in numbers {
        let one = TokenContext {
            number: n,
            last: n,
            ..*ctx
        };
        for p in &l.outputs {
            if out.len() == crate::output::MAX_CHECKED {
                return out;
            }
            out.push(crate::tokens::substitute(p, &one));
        }
    }
    out
}
