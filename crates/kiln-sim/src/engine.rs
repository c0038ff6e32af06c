//! The simulation loop: a virtual clock and a queue of events (job
//! arrivals, frame ends, planning passes, samples). Each event reaches the
//! farm as the server would hand it over (`submit`, a worker's `Ended`),
//! and passes run the real `snapshot → sched::plan → apply_plan`, at most
//! one per `batch` while events keep coming and one a second while work
//! waits (the server's tick). Launches become frame ends at a runtime drawn
//! for the frame; the worker's rules (OOM past the reservation) apply.

use crate::error::{Error, Result};
use crate::measure::Stats;
use crate::rng::Key;
use crate::scenario::Scenario;
use crate::setup::{Setup, SimHost};
use crate::track::{FrameRun, JobRun, LayerRun, LimitRun, ShowRun, StreamRun};
use kiln_core::farm::{Farm, WorkerEvent};
use kiln_core::link::{Exit, FrameEnded, Launch, ServerMsg, WorkerMsg};
use kiln_core::model::{AttemptId, FrameId, HostId, JobId, LayerId, Millis, Resources};
use kiln_core::sched;
use kiln_core::spec::NewJob;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

/// The server's tick: a pass at least this often while work waits, so
/// time-driven policy (reservations after `reserve_after`) happens even
/// when no event comes.
const TICK_MS: Millis = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Arrival { stream: u32, n: u32 },
    End(AttemptId),
    Pass,
    Sample,
}

/// An attempt the simulated worker is running, and how it will end.
#[derive(Debug, Clone)]
pub(crate) struct Running {
    pub host: u32,
    pub layer: u32,
    pub grant: Resources,
    pub started: Millis,
    pub exit: Exit,
    pub max_rss_kb: u64,
}

pub(crate) struct Sim<'s> {
    pub s: &'s Scenario,
    pub farm: Farm,
    pub now: Millis,
    pub key: Key,
    queue: BinaryHeap<Reverse<(Millis, u64, Ev)>>,
    seq: u64,
    next_pass: Option<Millis>,
    last_pass: Option<Millis>,
    /// Something changed since the last pass.
    changed: bool,
    templates: Vec<NewJob>,
    pub hosts: Vec<SimHost>,
    pub shows: Vec<ShowRun>,
    pub streams: Vec<StreamRun>,
    pub jobs: Vec<JobRun>,
    pub job_of: HashMap<JobId, u32>,
    pub host_of: HashMap<HostId, u32>,
    pub layers: Vec<LayerRun>,
    pub layer_of: HashMap<LayerId, u32>,
    pub frames: HashMap<FrameId, FrameRun>,
    pub running: HashMap<AttemptId, Running>,
    pub limits: Vec<LimitRun>,
    pub stats: Stats,
    /// The widest host: frames needing more than half of it are wide.
    pub widest: u32,
    /// Cores of all hosts, in centicores.
    pub total_cores: u64,
}

impl<'s> Sim<'s> {
    pub fn new(s: &'s Scenario) -> Result<Sim<'s>> {
        let Setup {
            farm,
            hosts,
            host_of,
            shows,
            templates,
        } = Setup::new(s)?;
        let streams = s
            .jobs
            .iter()
            .zip(&templates)
            .map(|(j, t)| {
                StreamRun::new(
                    &j.name,
                    shows.iter().position(|x| x.name == j.show).unwrap_or(0) as u32,
                    t.priority,
                )
            })
            .collect();
        let mut sim = Sim {
            s,
            farm,
            now: 0,
            key: Key::new(s.seed),
            queue: BinaryHeap::new(),
            seq: 0,
            next_pass: None,
            last_pass: None,
            changed: false,
            templates,
            widest: hosts.iter().map(|h| h.total.cores).max().unwrap_or(0),
            total_cores: hosts.iter().map(|h| h.total.cores as u64).sum(),
            hosts,
            shows: shows.into_iter().map(ShowRun::new).collect(),
            streams,
            jobs: Vec::new(),
            job_of: HashMap::new(),
            host_of,
            layers: Vec::new(),
            layer_of: HashMap::new(),
            frames: HashMap::new(),
            running: HashMap::new(),
            limits: s
                .limits
                .iter()
                .map(|l| LimitRun::new(&l.name, l.max))
                .collect(),
            stats: Stats::default(),
        };
        sim.stats.track_fill = s.jobs.iter().any(|j| j.at.0 == 0);
        sim.stats.class_started = vec![0; s.hosts.len()];
        sim.stats.class_failed = vec![0; s.hosts.len()];
        for (i, j) in s.jobs.iter().enumerate() {
            for n in 0..j.count {
                let at = j.at.0.saturating_add(j.every.0.saturating_mul(n as i64));
                if at <= s.duration.0 {
                    sim.push(
                        at,
                        Ev::Arrival {
                            stream: i as u32,
                            n: n + 1,
                        },
                    );
                }
            }
        }
        sim.push(0, Ev::Sample);
        Ok(sim)
    }

    fn push(&mut self, at: Millis, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    /// Runs to the end of the scenario.
    pub fn run(&mut self) -> Result<()> {
        while let Some(&Reverse((t, _, _))) = self.queue.peek() {
            if t > self.s.duration.0 {
                break;
            }
            self.now = t;
            let (mut pass, mut sample, mut events) = (false, false, false);
            while let Some(&Reverse((at, _, ev))) = self.queue.peek() {
                if at != t {
                    break;
                }
                self.queue.pop();
                match ev {
                    Ev::Arrival { stream, n } => {
                        self.arrive(stream, n)?;
                        events = true;
                    }
                    Ev::End(a) => {
                        self.end(a);
                        events = true;
                    }
                    // A pass superseded by an earlier one is dropped.
                    Ev::Pass => pass |= self.next_pass == Some(t),
                    Ev::Sample => sample = true,
                }
            }
            if events {
                self.changed = true;
                let dirty = self.farm.take_dirty();
                self.absorb(dirty);
                // Acknowledgements: the simulated worker needs none.
                self.farm.take_outgoing();
            }
            if pass {
                self.next_pass = None;
                self.pass();
            }
            if self.changed {
                let at = self.last_pass.map_or(t, |p| (p + self.s.batch.0).max(t));
                self.want_pass(at);
            }
            if sample {
                if self.next_pass == Some(t) {
                    // Sample what the pass due now leaves, not what it finds.
                    self.push(t, Ev::Sample);
                } else {
                    self.sample();
                    self.push(t + self.s.sample_every.0, Ev::Sample);
                }
            }
        }
        self.now = self.s.duration.0;
        Ok(())
    }

    fn want_pass(&mut self, at: Millis) {
        if self.next_pass.is_none_or(|p| p > at) {
            self.next_pass = Some(at);
            self.push(at, Ev::Pass);
        }
    }

    fn arrive(&mut self, stream: u32, n: u32) -> Result<()> {
        // Fill time measures the work there at 0 filling the idle farm;
        // once more arrives, whatever fills the farm is not that.
        if self.now > 0 {
            self.stats.track_fill = false;
        }
        let mut job = self.templates[stream as usize].clone();
        let max_cores = job.max_cores;
        job.name = format!("{}-{n}", self.s.jobs[stream as usize].name);
        let name = job.name.clone();
        let (id, _) = self.farm.submit(job, self.now).map_err(|e| Error::Farm {
            what: format!("job {name} (jobs[{stream}])"),
            message: e.to_string(),
        })?;
        self.job_of.insert(id, self.jobs.len() as u32);
        self.jobs.push(JobRun {
            stream,
            name,
            arrived: self.now,
            first_start: None,
            layers: Vec::new(),
            avoids: 0,
            used: 0,
            max_cores,
        });
        self.streams[stream as usize].jobs += 1;
        Ok(())
    }

    /// One planning pass, timed as the applier would see it.
    fn pass(&mut self) {
        self.changed = false;
        self.last_pass = Some(self.now);
        let t = Instant::now();
        let Some(snap) = self.farm.snapshot(self.now) else {
            // Nothing could start: the server skips planning then; so does
            // the simulator.
            self.stats.idle_passes += 1;
            return;
        };
        let plan = sched::plan(snap);
        let planned = t.elapsed();
        let t = Instant::now();
        let started = self.farm.apply_plan(&plan, self.now);
        self.stats.record_pass(planned, t.elapsed(), started);
        if self.stats.fill_at.is_none() {
            self.stats.fill_passes += 1;
            self.stats.fill_real += planned + t.elapsed();
        }
        let dirty = self.farm.take_dirty();
        self.absorb(dirty);
        let mut spilled = Vec::new();
        for o in self.farm.take_outgoing() {
            if let ServerMsg::Launch(l) = o.msg {
                if let Some(s) = self.launch(o.session, &l) {
                    spilled.push(s);
                }
            }
        }
        self.check_spills(&spilled);
        self.after_pass();
        if !plan.waits.is_empty() {
            self.want_pass(self.now + TICK_MS);
        }
    }

    /// The simulated worker starts a frame: its end is drawn now, keyed by
    /// the frame (runtime, memory) and the attempt (failures). Returns the
    /// grant when CPU work landed on a GPU host.
    fn launch(&mut self, session: u64, l: &Launch) -> Option<Resources> {
        let host = (session - 1) as u32;
        let f = self.frames.get(&l.frame)?;
        let li = f.layer;
        let since = f.since;
        let layer = &self.layers[li as usize];
        let job = &self.jobs[layer.job as usize];
        let spec = &self.s.jobs[job.stream as usize].layers[layer.index as usize];
        let fkey = self
            .key
            .with_str(&job.name)
            .with_str(&spec.name)
            .with(l.number as u64);
        let draw = |lo: i64, hi: i64, what: u64| lo + ((hi - lo) as f64 * fkey.unit(what)) as i64;
        let runtime = draw(spec.runtime.lo.0, spec.runtime.hi.0, 1).max(1);
        let rss = match spec.rss {
            Some(r) => draw(r.lo.0 as i64, r.hi.0 as i64, 2) as u64,
            // Unset: it uses what the spec reserved, never the learned
            // figure (that would feed on itself).
            None => layer.spec_memory_kb,
        };
        let akey = fkey.with(l.attempt_number as u64).with(host as u64);
        let h = &self.hosts[host as usize];
        let (exit, after) = if l.memory_kb > 0 && rss > l.memory_kb {
            // The worker kills it when it passes its reservation; frames
            // grow as they go, so halfway through.
            (Exit::OutOfMemory { rss_kb: rss }, runtime / 2)
        } else if akey.unit(3) < h.fail_rate {
            // A broken host fails frames early (a missing mount, a bad driver).
            (Exit::Exited(1), runtime / 10)
        } else if akey.unit(4) < spec.fail_rate {
            (Exit::Exited(1), runtime)
        } else {
            (Exit::Exited(0), runtime)
        };
        let grant = Resources {
            cores: l.cores,
            memory_kb: l.memory_kb,
            gpus: l.gpus,
            ..Resources::default()
        };
        let wide = layer.wide;
        let spill = (l.gpus == 0 && h.gpu).then_some(grant);
        self.started(li, host, grant);
        if wide {
            let ready = since.max(self.layers[li as usize].runnable_since.unwrap_or(since));
            self.stats.wide_waits.push(self.now - ready);
        }
        self.running.insert(
            l.attempt,
            Running {
                host,
                layer: li,
                grant,
                started: self.now,
                exit,
                max_rss_kb: rss,
            },
        );
        self.push(self.now + after.max(1), Ev::End(l.attempt));
        spill
    }

    /// The simulated worker reports a frame's end.
    fn end(&mut self, attempt: AttemptId) {
        let Some(r) = self.running.remove(&attempt) else {
            return;
        };
        let threads = r.grant.cores.div_ceil(100).max(1) as u64;
        let ended = FrameEnded {
            attempt,
            exit: r.exit.clone(),
            started_at: r.started,
            ended_at: self.now,
            max_rss_kb: r.max_rss_kb,
            cpu_ms: (self.now - r.started) as u64 * threads,
            log_size: 0,
            usage: Vec::new(),
            outputs: Vec::new(),
        };
        self.farm.worker_event(
            WorkerEvent::Message {
                session: r.host as u64 + 1,
                msg: WorkerMsg::Ended(ended),
            },
            self.now,
        );
        self.ended(&r);
    }

    /// CPU frames started on GPU hosts while a CPU host had room for them
    /// (cores and memory; tags are not considered).
    fn check_spills(&mut self, spilled: &[Resources]) {
        if spilled.is_empty() {
            return;
        }
        let room: Vec<Resources> = self
            .hosts
            .iter()
            .filter(|h| !h.gpu && h.repair_at.is_none())
            .map(|h| {
                let mut f = h.total;
                f.sub(&h.used);
                f
            })
            .collect();
        for g in spilled {
            self.stats.cpu_on_gpu += 1;
            let need = Resources { gpus: 0, ..*g };
            if room.iter().any(|f| need.fits_in(f)) {
                self.stats.cpu_on_gpu_with_room += 1;
            }
        }
    }
}
