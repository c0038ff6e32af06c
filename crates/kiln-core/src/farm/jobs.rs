//! Submitting jobs and acting on them: kill, pause, resume, retry, eat.

use super::*;
use crate::error::{Error, Result};
use crate::frameset::FrameSet;
use crate::spec::NewJob;
use crate::view::DisplayState;

/// What a user asks of a job, some of its layers or some of its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Kill,
    Pause,
    Resume,
    Retry,
    Eat,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "kill" => Action::Kill,
            "pause" => Action::Pause,
            "resume" => Action::Resume,
            "retry" => Action::Retry,
            "eat" => Action::Eat,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Kill => "kill",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Retry => "retry",
            Action::Eat => "eat",
        }
    }
}

/// A resolved target of an action.
enum Target {
    Layer(LayerId),
    Frames(Vec<FrameId>),
}

impl Farm {
    /// Creates a validated job whole. Job dependencies name a job by id or
    /// name (the most recent job of that name). A job whose submit key
    /// already made a job is that job: the caller gets it back, unchanged,
    /// whatever has happened to it since.
    pub fn submit(&mut self, new: NewJob, now: Millis) -> Result<(JobId, u32)> {
        if let Some(&id) = new
            .submit_key
            .as_ref()
            .and_then(|k| self.submit_keys.get(k))
        {
            return self.resubmitted(id, &new);
        }
        // Everything that can refuse the job is checked before anything
        // changes, so a refused job leaves no trace.
        if !self.structure.facilities.contains_key(&new.facility) {
            let known: Vec<&str> = self
                .structure
                .facilities
                .keys()
                .map(String::as_str)
                .collect();
            return Err(Error::spec(
                "facility",
                format!(
                    "no facility {:?}; this farm has: {}",
                    new.facility,
                    known.join(", ")
                ),
            ));
        }
        if let Some(s) = self.structure.shows.get(&new.show) {
            if !s.enabled {
                return Err(Error::spec(
                    "show",
                    format!("show {} is disabled; a wrangler can enable it with `kiln show set {} --enable`", s.name, s.name),
                ));
            }
        }
        let mut resolved = Vec::with_capacity(new.layers.len());
        for (i, nl) in new.layers.iter().enumerate() {
            let services = match &nl.asked.service {
                Some(name) => {
                    let found = self.structure.services_for(name, &new.show);
                    if found.is_empty() {
                        return Err(Error::spec(
                            format!("layers[{i}].service"),
                            format!("no service {name:?}; `kiln services` lists them, or leave service out"),
                        ));
                    }
                    found
                }
                None => Vec::new(),
            };
            let r = nl.asked.resolve(&services);
            for (j, l) in r.limits.iter().enumerate() {
                if !self.structure.limits.contains_key(l) {
                    return Err(Error::spec(
                        format!("layers[{i}].limits[{j}]"),
                        format!("no limit {l:?}; a wrangler creates it with `kiln limit set {l} --max N`"),
                    ));
                }
            }
            resolved.push(r);
        }
        // The frame sets as ranges; their frames are made one at a time
        // below, straight into their records.
        let mut sets = Vec::with_capacity(new.layers.len());
        for (i, nl) in new.layers.iter().enumerate() {
            sets.push(
                nl.frame_set()
                    .map_err(|m| Error::spec(format!("layers[{i}].frames"), m))?,
            );
        }
        let mut depends = Vec::new();
        for (i, d) in new.depends.iter().enumerate() {
            let id = self.resolve_job(d).map_err(|_| {
                Error::spec(
                    format!("depends[{i}]"),
                    format!(
                        "no job named or numbered {d:?}: submit that job first or fix the name"
                    ),
                )
            })?;
            depends.push(id);
        }
        let show = self.show_for_submit(&new.show, &new.facility)?;
        let job_id = JobId(Self::next_id(&mut self.ids.job));
        let job = Job {
            id: job_id,
            name: new.name,
            facility: new.facility,
            show: new.show,
            shot: new.shot,
            user: new.user,
            priority: new.priority.unwrap_or(show.default_priority),
            env: new.env,
            paused: new.paused,
            state: JobState::Active,
            depends,
            max_cores: new.max_cores.or(show.default_max_cores),
            avoid_hosts: Vec::new(),
            submitted_at: now,
            finished_at: None,
            submit_key: new.submit_key,
        };
        if let Some(k) = &job.submit_key {
            self.submit_keys.insert(k.clone(), job_id);
        }
        self.jobs.insert(
            job_id,
            JobEntry {
                job,
                layers: Vec::new(),
                used: 0,
                started: false,
            },
        );
        self.dirty.jobs.insert(job_id);
        let mut total = 0u32;
        // Grown once, not doubled (and its records moved) many times over.
        self.frames
            .reserve(new.layers.iter().map(|l| l.tasks as usize).sum());
        let layers = new.layers.into_iter().zip(resolved).zip(&sets);
        for (index, ((nl, r), set)) in layers.enumerate() {
            let layer_id = LayerId(Self::next_id(&mut self.ids.layer));
            let layer = Layer {
                id: layer_id,
                job: job_id,
                index: index as u32,
                name: nl.name,
                command: nl.command,
                frames: nl.frames,
                chunk: nl.chunk,
                resources: r.resources,
                cores: r.cores,
                tags: r.tags,
                limits: r.limits,
                service: nl.asked.service,
                env: nl.env,
                retries: nl.retries,
                timeout_s: r.timeout_s,
                depends: nl.depends,
                cwd: nl.cwd,
                paused: false,
                outputs: nl.outputs,
                bad_outputs: nl.bad_outputs,
            };
            self.layers.insert(layer_id, LayerEntry::new(layer));
            self.jobs
                .get_mut(&job_id)
                .expect("just inserted")
                .layers
                .push(layer_id);
            self.dirty.layers.insert(layer_id);
            for (i, task) in set.tasks(nl.chunk).enumerate() {
                let id = FrameId(Self::next_id(&mut self.ids.frame));
                let frame = Frame::new(id, job_id, layer_id, i as u32, task.number, task.chunk);
                self.dirty.frames.insert(frame.id);
                self.index_frame(&frame);
                self.frames.insert(frame.id, frame);
                total += 1;
            }
        }
        self.clock = now;
        self.emit(EventKind::JobSubmitted, About::job(job_id));
        Ok((job_id, total))
    }

    /// The answer to a repeated submit: the job the key made first. A key
    /// reused for a different job (another name or user) is refused rather
    /// than answered with a job the caller did not send.
    fn resubmitted(&self, id: JobId, new: &NewJob) -> Result<(JobId, u32)> {
        let entry = &self.jobs[&id];
        if entry.job.name != new.name || entry.job.user != new.user {
            return Err(Error::Invalid(format!(
                "submit key {:?} already made job {} ({}) for {}: each submit needs its own key",
                new.submit_key.as_deref().unwrap_or_default(),
                entry.job.name,
                id,
                entry.job.user
            )));
        }
        let frames = entry
            .layers
            .iter()
            .filter_map(|l| self.layers.get(l))
            .map(|l| l.counts.total())
            .sum();
        Ok((id, frames))
    }

    /// Finds a job by id or, failing that, the most recent job of that name.
    pub fn resolve_job(&self, key: &str) -> Result<JobId> {
        let key = key.trim();
        if let Ok(n) = key.parse::<i64>() {
            if self.jobs.contains_key(&JobId(n)) {
                return Ok(JobId(n));
            }
        }
        self.jobs
            .values()
            .rev()
            .find(|j| j.job.name == key)
            .map(|j| j.job.id)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no job {key:?}: `kiln jobs --all` lists the jobs this farm knows"
                ))
            })
    }

    /// The job `key` names, with its owner and show: what authorization
    /// asks about a job.
    pub fn job_access(&self, key: &str) -> Result<(i64, &str, &str)> {
        let id = self.resolve_job(key)?;
        let j = &self.jobs[&id].job;
        Ok((id.0, &j.user, &j.show))
    }

    /// Applies a user action; returns how many frames it touched.
    pub fn act(
        &mut self,
        action: Action,
        job_key: &str,
        targets: &[String],
        state: Option<DisplayState>,
        user: &str,
        now: Millis,
    ) -> Result<u32> {
        self.clock = now;
        let job = self.resolve_job(job_key)?;
        let resolved = targets
            .iter()
            .map(|t| self.resolve_target(job, t))
            .collect::<Result<Vec<_>>>()?;

        if matches!(action, Action::Pause | Action::Resume) {
            let paused = action == Action::Pause;
            // Check everything before changing anything: an error leaves
            // the farm as it was.
            if state.is_some() || resolved.iter().any(|t| matches!(t, Target::Frames(_))) {
                return Err(Error::Invalid(format!(
                    "{} applies to a job or whole layers, not to frames or states: \
                     name the layer, or use `kiln kill` to stop frames",
                    action.as_str()
                )));
            }
            let kind = if paused {
                EventKind::JobPaused
            } else {
                EventKind::JobResumed
            };
            let by = format!("by {user}");
            if resolved.is_empty() {
                let j = self.jobs.get_mut(&job).expect("resolved");
                let changed = j.job.paused != paused;
                j.job.paused = paused;
                self.dirty.jobs.insert(job);
                if changed {
                    self.emit(kind, About::job(job).detail(by));
                }
                return Ok(0);
            }
            for t in &resolved {
                if let Target::Layer(l) = t {
                    let entry = self.layers.get_mut(l).expect("resolved");
                    let changed = entry.layer.paused != paused;
                    entry.layer.paused = paused;
                    self.dirty.layers.insert(*l);
                    if changed {
                        let about = About {
                            layer: Some(*l),
                            ..About::job(job)
                        };
                        self.emit(kind, about.detail(by.clone()));
                    }
                }
            }
            return Ok(0);
        }

        if action == Action::Kill && resolved.is_empty() && state.is_none() {
            let j = self.jobs.get_mut(&job).expect("resolved");
            let killed = j.job.state == JobState::Killed;
            j.job.state = JobState::Killed;
            self.dirty.jobs.insert(job);
            if !killed {
                self.emit(
                    EventKind::JobKilled,
                    About::job(job).detail(format!("by {user}")),
                );
            }
            let running = self.job_frames(job, &[], Some(DisplayState::Running));
            let reason = format!("job killed by {user}");
            for f in &running {
                self.kill_attempt_of(*f, &reason);
            }
            self.update_finished(job, now);
            return Ok(running.len() as u32);
        }

        // A retry is a fresh start for the job on every host: the failures
        // that made it avoid hosts were most likely its own, now fixed.
        if action == Action::Retry {
            let j = self.jobs.get_mut(&job).expect("resolved");
            if !j.job.avoid_hosts.is_empty() {
                j.job.avoid_hosts.clear();
                self.dirty.jobs.insert(job);
            }
            self.fail_streaks.retain(|(jj, _), _| *jj != job);
        }
        // A retry of a killed job brings the job back, whatever it requeues.
        if action == Action::Retry && resolved.is_empty() {
            let j = self.jobs.get_mut(&job).expect("resolved");
            if j.job.state == JobState::Killed {
                j.job.state = JobState::Active;
                self.dirty.jobs.insert(job);
                self.update_finished(job, now);
            }
        }
        // Retry without named frames means "retry the dead ones".
        let explicit = resolved.iter().any(|t| matches!(t, Target::Frames(_)));
        let filter = state.or(if action == Action::Retry && !explicit {
            Some(DisplayState::Dead)
        } else {
            None
        });
        let frames = self.job_frames(job, &resolved, filter);
        let reason = format!(
            "{} by {user}",
            if action == Action::Kill {
                "killed"
            } else {
                action.as_str()
            }
        );
        let mut touched = 0;
        for f in frames {
            let state = self.frames[&f].state;
            let to = match action {
                Action::Kill if !state.is_done() && state != FrameState::Dead => FrameState::Dead,
                Action::Eat if state != FrameState::Eaten && state != FrameState::Succeeded => {
                    FrameState::Eaten
                }
                Action::Retry if state != FrameState::Waiting => FrameState::Waiting,
                _ => continue,
            };
            if state == FrameState::Running {
                self.kill_attempt_of(f, &reason);
            }
            if action == Action::Retry {
                let fr = self.frames.get_mut(&f).expect("listed");
                fr.failures = 0;
            }
            self.set_state(f, to, now);
            if to == FrameState::Waiting {
                let about = self.about_frame(f, false);
                self.emit(EventKind::FrameRetried, about.detail(format!("by {user}")));
            }
            touched += 1;
        }
        if action == Action::Retry && touched > 0 {
            let j = self.jobs.get_mut(&job).expect("resolved");
            if j.job.state == JobState::Killed {
                j.job.state = JobState::Active;
                self.dirty.jobs.insert(job);
            }
            self.update_finished(job, now);
        }
        Ok(touched)
    }

    /// Asks the worker to kill a frame's running attempt. The frame's own
    /// state is the caller's to set; the attempt ends when the worker says so.
    pub(super) fn kill_attempt_of(&mut self, frame: FrameId, reason: &str) {
        let Some(attempt) = self.frames.get(&frame).and_then(|f| f.attempt) else {
            return;
        };
        if let Some(inf) = self.in_flight.get(&attempt) {
            let host = inf.attempt.host;
            self.send(
                host,
                ServerMsg::Kill {
                    attempt,
                    reason: reason.to_string(),
                },
            );
        }
    }

    fn resolve_target(&self, job: JobId, t: &str) -> Result<Target> {
        let entry = &self.jobs[&job];
        let find_layer = |name: &str| {
            entry
                .layers
                .iter()
                .copied()
                .find(|l| self.layers[l].layer.name == name)
        };
        if let Some((layer, set)) = t.split_once('/') {
            let l = find_layer(layer).ok_or_else(|| self.no_layer(job, layer))?;
            let set = FrameSet::parse(set, 10_000_000)
                .map_err(|e| Error::Invalid(format!("{t}: {e}")))?;
            let le = &self.layers[&l];
            let mut ids: Vec<FrameId> = set
                .frames()
                .iter()
                .filter_map(|n| le.by_number.get(n).map(|&i| le.frames[i as usize]))
                .collect();
            ids.dedup();
            if ids.is_empty() {
                return Err(Error::NotFound(format!(
                    "layer {layer} has no frame in {set:?}: its frames are {}",
                    le.layer.frames,
                    set = set.frames().len()
                )));
            }
            return Ok(Target::Frames(ids));
        }
        if let Some(l) = find_layer(t) {
            return Ok(Target::Layer(l));
        }
        if let Ok(id) = t.parse::<i64>() {
            if self.frames.get(&FrameId(id)).is_some_and(|f| f.job == job) {
                return Ok(Target::Frames(vec![FrameId(id)]));
            }
        }
        Err(self.no_layer(job, t))
    }

    fn no_layer(&self, job: JobId, name: &str) -> Error {
        let names: Vec<&str> = self.jobs[&job]
            .layers
            .iter()
            .map(|l| self.layers[l].layer.name.as_str())
            .collect();
        Error::NotFound(format!(
            "job {} has no layer or frame {name:?}: its layers are {}; \
             address frames as LAYER/FRAMES (e.g. render/1-10) or by frame id",
            self.jobs[&job].job.name,
            names.join(", ")
        ))
    }

    /// Frames of a job, limited to targets (none: all) and a display state.
    fn job_frames(
        &self,
        job: JobId,
        targets: &[Target],
        state: Option<DisplayState>,
    ) -> Vec<FrameId> {
        let mut out: Vec<FrameId> = Vec::new();
        let push_layer = |l: &LayerId, out: &mut Vec<FrameId>| out.extend(&self.layers[l].frames);
        if targets.is_empty() {
            for l in &self.jobs[&job].layers {
                push_layer(l, &mut out);
            }
        }
        for t in targets {
            match t {
                Target::Layer(l) => push_layer(l, &mut out),
                Target::Frames(ids) => out.extend(ids),
            }
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|f| seen.insert(*f));
        if let Some(s) = state {
            out.retain(|f| self.display_state(&self.frames[f]) == s);
        }
        out
    }
}
