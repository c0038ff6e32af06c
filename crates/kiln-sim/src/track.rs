//! The simulator's view of the farm: a mirror of each frame's state, read
//! from the records the farm marks dirty (the records the server would
//! persist, so the figures follow the farm's own view), and the cores each
//! host, show, stream, job and limit holds as frames start and end.

use crate::engine::{Running, Sim};
use crate::measure::{outcome_slot, Steady};
use crate::setup::SimShow;
use kiln_core::farm::Dirty;
use kiln_core::link::Exit;
use kiln_core::model::{CoreRequest, FrameId, FrameState, HostState, Millis, Outcome, Resources};
use std::collections::HashSet;

#[derive(Debug)]
pub(crate) struct ShowRun {
    pub show: SimShow,
    /// Centicores its frames hold now, and the most they ever held.
    pub used: u64,
    pub max_used: u64,
    pub steady: Steady,
    pub entitled_sum: f64,
    pub err_sum: f64,
    pub err_n: u32,
}

impl ShowRun {
    pub fn new(show: SimShow) -> ShowRun {
        ShowRun {
            show,
            used: 0,
            max_used: 0,
            steady: Steady::default(),
            entitled_sum: 0.0,
            err_sum: 0.0,
            err_n: 0,
        }
    }
}

#[derive(Debug)]
pub(crate) struct StreamRun {
    pub name: String,
    pub show: u32,
    pub priority: Option<i32>,
    pub jobs: u32,
    pub used: u64,
    pub steady: Steady,
    pub succeeded: u32,
    pub dead: u32,
    pub failed: u32,
    pub oom: u32,
}

impl StreamRun {
    pub fn new(name: &str, show: u32, priority: Option<i32>) -> StreamRun {
        StreamRun {
            name: name.to_owned(),
            show,
            priority,
            jobs: 0,
            used: 0,
            steady: Steady::default(),
            succeeded: 0,
            dead: 0,
            failed: 0,
            oom: 0,
        }
    }
}

#[derive(Debug)]
pub(crate) struct JobRun {
    pub stream: u32,
    pub name: String,
    pub arrived: Millis,
    pub first_start: Option<Millis>,
    /// Its layers' slots, in order.
    pub layers: Vec<u32>,
    /// Hosts it avoids after failures there.
    pub avoids: u32,
    /// Centicores its frames hold now, and the most they may.
    pub used: u64,
    pub max_cores: Option<u32>,
}

#[derive(Debug)]
pub(crate) struct LayerRun {
    pub job: u32,
    /// Its position in the job (and in the stream's `layers`).
    pub index: u32,
    pub name: String,
    /// Frames per state, indexed by [`slot`].
    pub counts: [u32; 5],
    pub total: u32,
    pub deps: Vec<u32>,
    pub dependents: Vec<u32>,
    /// Since when its layer dependencies are met.
    pub runnable_since: Option<Millis>,
    pub wide: bool,
    /// Cores one frame asks for at least.
    pub need: u32,
    pub spec_memory_kb: u64,
    pub limits: Vec<u32>,
    /// Hosts that finished one of its frames.
    pub ran_on: HashSet<u32>,
}

/// The simulator's copy of a frame's state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameRun {
    pub layer: u32,
    pub state: FrameState,
    /// When it last became WAITING.
    pub since: Millis,
}

#[derive(Debug)]
pub(crate) struct LimitRun {
    pub name: String,
    pub max: u32,
    pub used: u32,
    pub peak: u32,
}

impl LimitRun {
    pub fn new(name: &str, max: u32) -> LimitRun {
        LimitRun {
            name: name.to_owned(),
            max,
            used: 0,
            peak: 0,
        }
    }
}

/// Index of a state in [`LayerRun::counts`].
fn slot(s: FrameState) -> usize {
    match s {
        FrameState::Waiting => 0,
        FrameState::Running => 1,
        FrameState::Succeeded => 2,
        FrameState::Dead => 3,
        FrameState::Eaten => 4,
    }
}

impl Sim<'_> {
    /// Takes in what the farm changed: new layers and frames, frames that
    /// moved on, hosts sent to REPAIR, jobs avoiding hosts, attempts ended.
    pub(crate) fn absorb(&mut self, d: Dirty) {
        let mut new: Vec<(u32, Vec<String>)> = Vec::new();
        for l in &d.layers {
            if self.layer_of.contains_key(&l.id) {
                continue;
            }
            let Some(&job) = self.job_of.get(&l.job) else {
                continue;
            };
            let me = self.layers.len() as u32;
            self.layer_of.insert(l.id, me);
            self.jobs[job as usize].layers.push(me);
            let wide = l.cores == CoreRequest::WholeHost || l.resources.cores * 2 > self.widest;
            let need = if l.cores == CoreRequest::WholeHost {
                self.widest
            } else {
                l.resources.cores
            };
            let limits = l
                .limits
                .iter()
                .filter_map(|n| self.limits.iter().position(|x| x.name == *n))
                .map(|i| i as u32)
                .collect();
            self.layers.push(LayerRun {
                job,
                index: l.index,
                name: l.name.clone(),
                counts: [0; 5],
                total: 0,
                deps: Vec::new(),
                dependents: Vec::new(),
                runnable_since: l.depends.is_empty().then_some(self.now),
                wide,
                need,
                spec_memory_kb: l.resources.memory_kb,
                limits,
                ran_on: HashSet::new(),
            });
            new.push((me, l.depends.iter().map(|d| d.layer.clone()).collect()));
        }
        // A job's layers arrive together; link them once all are in.
        for (me, names) in new {
            let job = self.layers[me as usize].job as usize;
            for name in names {
                let dep = self.jobs[job]
                    .layers
                    .iter()
                    .copied()
                    .find(|&x| self.layers[x as usize].name == name);
                if let Some(dep) = dep {
                    self.layers[me as usize].deps.push(dep);
                    self.layers[dep as usize].dependents.push(me);
                }
            }
        }
        for f in &d.frames {
            self.frame_moved(f.id, f.layer, f.state);
        }
        for h in &d.hosts {
            if let Some(host) = self
                .host_of
                .get(&h.id)
                .and_then(|&i| self.hosts.get_mut(i as usize))
            {
                if h.state == HostState::Repair && host.repair_at.is_none() {
                    host.repair_at = Some(self.now);
                }
            }
        }
        for j in &d.jobs {
            if let Some(&i) = self.job_of.get(&j.id) {
                self.jobs[i as usize].avoids = j.avoid_hosts.len() as u32;
            }
        }
        for a in &d.attempts {
            if let Some(o) = a.outcome {
                self.stats.outcomes[outcome_slot(o)] += 1;
                let stream = self
                    .job_of
                    .get(&a.job)
                    .map(|&j| self.jobs[j as usize].stream);
                if let Some(s) = stream.map(|s| &mut self.streams[s as usize]) {
                    match o {
                        Outcome::Failed | Outcome::TimedOut => s.failed += 1,
                        Outcome::OutOfMemory => s.oom += 1,
                        _ => {}
                    }
                }
                if o == Outcome::OutOfMemory {
                    self.stats.oom_frames.insert(a.frame);
                }
            }
        }
    }

    fn frame_moved(&mut self, id: FrameId, layer: kiln_core::model::LayerId, to: FrameState) {
        let now = self.now;
        let from = match self.frames.get_mut(&id) {
            Some(f) => std::mem::replace(&mut f.state, to),
            None => {
                let Some(&l) = self.layer_of.get(&layer) else {
                    return;
                };
                self.frames.insert(
                    id,
                    FrameRun {
                        layer: l,
                        state: to,
                        since: now,
                    },
                );
                self.layers[l as usize].total += 1;
                self.layers[l as usize].counts[slot(to)] += 1;
                return;
            }
        };
        if from == to {
            return;
        }
        let f = self.frames.get_mut(&id).expect("present");
        if to == FrameState::Waiting {
            f.since = now;
        }
        let li = f.layer as usize;
        let l = &mut self.layers[li];
        l.counts[slot(from)] -= 1;
        l.counts[slot(to)] += 1;
        let stream = self.jobs[l.job as usize].stream as usize;
        match to {
            FrameState::Succeeded => {
                self.streams[stream].succeeded += 1;
                if self.stats.oom_frames.remove(&id) {
                    self.stats.oom_recovered += 1;
                }
                if l.counts[2] == l.total {
                    self.layer_done(li);
                }
            }
            FrameState::Dead => self.streams[stream].dead += 1,
            _ => {}
        }
    }

    /// A layer finished: layers waiting on it may now run.
    fn layer_done(&mut self, li: usize) {
        for d in self.layers[li].dependents.clone() {
            let ready = self.layers[d as usize].deps.iter().all(|&x| {
                let l = &self.layers[x as usize];
                l.counts[2] == l.total
            });
            if ready && self.layers[d as usize].runnable_since.is_none() {
                self.layers[d as usize].runnable_since = Some(self.now);
            }
        }
    }

    /// A frame of layer `li` started on `host` with `grant`.
    pub(crate) fn started(&mut self, li: u32, host: u32, grant: Resources) {
        let l = &self.layers[li as usize];
        let job = &mut self.jobs[l.job as usize];
        job.first_start.get_or_insert(self.now);
        job.used += grant.cores as u64;
        let stream = &mut self.streams[job.stream as usize];
        stream.used += grant.cores as u64;
        self.shows[stream.show as usize].used += grant.cores as u64;
        for &k in &l.limits {
            self.limits[k as usize].used += 1;
        }
        if !l.ran_on.is_empty() {
            self.stats.warm_eligible += 1;
            self.stats.warm += l.ran_on.contains(&host) as u64;
            self.stats.warm_chance += l.ran_on.len() as f64 / self.hosts.len() as f64;
        }
        let h = &mut self.hosts[host as usize];
        h.used.add(&grant);
        self.stats.class_started[h.class as usize] += 1;
        if h.repair_at.is_some() {
            self.stats.starts_on_repaired += 1;
        }
        self.stats.busy += grant.cores as u64;
        self.stats.started += 1;
    }

    /// A frame's attempt ended and gave its resources back.
    pub(crate) fn ended(&mut self, r: &Running) {
        let l = &mut self.layers[r.layer as usize];
        let class = self.hosts[r.host as usize].class as usize;
        match r.exit {
            Exit::Exited(0) => drop(l.ran_on.insert(r.host)),
            Exit::Exited(_) => self.stats.class_failed[class] += 1,
            _ => {}
        }
        let job = &mut self.jobs[l.job as usize];
        job.used -= r.grant.cores as u64;
        let stream = &mut self.streams[job.stream as usize];
        stream.used -= r.grant.cores as u64;
        self.shows[stream.show as usize].used -= r.grant.cores as u64;
        for &k in &l.limits {
            self.limits[k as usize].used -= 1;
        }
        self.hosts[r.host as usize].used.sub(&r.grant);
        self.stats.busy -= r.grant.cores as u64;
    }
}
