//! The farm in memory: every job, layer, frame and host, and the transitions
//! between their states. The server's applier owns one `Farm`, feeds it
//! events with the time, persists what it marks dirty, then sends the
//! messages it returns. No IO happens here.

mod admin;
mod dispatch;
mod events;
mod jobs;
mod mirror;
mod queries;
mod retention;
mod running;
mod tracked;
mod usage;
mod workers;

#[cfg(test)]
mod tests;

pub use admin::Admin;
pub use jobs::Action;
pub use queries::FrameSelect;
pub use workers::WorkerEvent;

use crate::link::ServerMsg;
use crate::model::*;
use crate::structure::{Change, Record};
use std::collections::{BTreeMap, BTreeSet};
// Ids are small integers and the maps are hot: a fast hash, not SipHash.
use crate::event::EventKind;
use events::About;
use rustc_hash::FxHashMap as HashMap;
use tracked::Tracked;

/// Tunables of the farm's state machine.
#[derive(Debug, Clone)]
pub struct FarmConfig {
    /// How often workers heartbeat.
    pub heartbeat_ms: u32,
    /// Silence after which a host is DOWN and its frames requeued.
    pub down_after_ms: i64,
    /// Failures in a row of one job's frames on one host after which the
    /// job avoids that host.
    pub avoid_after: u32,
    /// Jobs avoiding one host after which the host goes to REPAIR.
    pub repair_after_jobs: u32,
    /// How long a wide frame (one needing most of a host) waits before it
    /// gets a host reserved for it.
    pub reserve_after_ms: i64,
}

impl Default for FarmConfig {
    fn default() -> Self {
        FarmConfig {
            heartbeat_ms: 5_000,
            down_after_ms: 60_000,
            avoid_after: 3,
            repair_after_jobs: 3,
            reserve_after_ms: 120_000,
        }
    }
}

/// A message to deliver to a worker once the batch that produced it is durable.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub host: HostId,
    /// The connection the message belongs to; a message for an older
    /// connection is dropped.
    pub session: u64,
    pub msg: ServerMsg,
}

/// Records changed since the last [`Farm::take_dirty`]: what the store must
/// write in the next transaction.
#[derive(Debug, Default, Clone)]
pub struct Dirty {
    pub jobs: Vec<Job>,
    pub layers: Vec<Layer>,
    pub frames: Vec<Frame>,
    pub attempts: Vec<Attempt>,
    pub hosts: Vec<Host>,
    /// Structure changes, in the order they were made.
    pub structure: Vec<Change>,
    /// Jobs archived: gone from memory, kept in the store for history.
    pub archived: Vec<JobId>,
    /// What happened, in order: the outbox, written with the records.
    pub events: Vec<crate::event::Event>,
}

impl Dirty {
    pub fn is_empty(&self) -> bool {
        self.structure.is_empty()
            && self.archived.is_empty()
            && self.events.is_empty()
            && self.jobs.is_empty()
            && self.layers.is_empty()
            && self.frames.is_empty()
            && self.attempts.is_empty()
            && self.hosts.is_empty()
    }
}

#[derive(Debug, Default)]
struct DirtySet {
    jobs: BTreeSet<JobId>,
    layers: BTreeSet<LayerId>,
    frames: BTreeSet<FrameId>,
    attempts: BTreeSet<AttemptId>,
    hosts: BTreeSet<HostId>,
    structure: Vec<Change>,
    archived: Vec<JobId>,
    events: Vec<events::Pending>,
}

/// Everything needed to rebuild a farm after a restart.
#[derive(Debug, Default)]
pub struct Restore {
    pub jobs: Vec<Job>,
    pub layers: Vec<Layer>,
    pub frames: Vec<Frame>,
    pub hosts: Vec<Host>,
    pub running_attempts: Vec<Attempt>,
    pub structure: Vec<Record>,
    /// The highest id in use per kind: job, layer, frame, attempt, host.
    pub max_ids: [i64; 5],
    /// The last event's sequence number.
    pub event_seq: u64,
}

#[derive(Debug)]
struct JobEntry {
    job: Job,
    layers: Vec<LayerId>,
    /// Cores its running attempts hold.
    used: Centicores,
    /// A frame of it has started (`job.started` was said).
    started: bool,
}

#[derive(Debug)]
struct LayerEntry {
    layer: Layer,
    frames: Vec<FrameId>,
    /// Indices of WAITING frames, in dispatch order.
    waiting: BTreeSet<u32>,
    counts: Counts,
    /// Frame number → task index, for per-frame dependencies on this layer.
    by_number: HashMap<i64, u32>,
    /// Peak memory of recent successful frames (and of frames killed for
    /// memory), newest last: what the layer learns its reservation from.
    peaks: std::collections::VecDeque<u64>,
    runtime: usage::Runtime,
    /// Memory learned from `peaks` (their largest plus a fifth), once
    /// there are enough of them: what `needs` reserves.
    learned_kb: Option<u64>,
    /// Hosts that last ran its frames, most recent first.
    recent_hosts: crate::sched::RecentHosts,
    /// Hosts where its frames last failed on the job's own account, most
    /// recent first: its retries go elsewhere while they can.
    shun: crate::sched::RecentHosts,
    /// Since when it has had ready frames and got none started.
    starved_since: Option<Millis>,
    /// Why its ready frames wait, as of the last scheduling pass.
    why: Option<crate::sched::Wait>,
    /// The environment its launches share, built on first launch.
    base_env: Option<std::sync::Arc<BTreeMap<String, String>>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    waiting: u32,
    running: u32,
    succeeded: u32,
    dead: u32,
    eaten: u32,
}

impl Counts {
    fn slot(&mut self, s: FrameState) -> &mut u32 {
        match s {
            FrameState::Waiting => &mut self.waiting,
            FrameState::Running => &mut self.running,
            FrameState::Succeeded => &mut self.succeeded,
            FrameState::Dead => &mut self.dead,
            FrameState::Eaten => &mut self.eaten,
        }
    }
    fn total(&self) -> u32 {
        self.waiting + self.running + self.succeeded + self.dead + self.eaten
    }
    fn done(&self) -> u32 {
        self.succeeded + self.eaten
    }
}

/// A run in progress on a host; holds the host's resources until it ends.
#[derive(Debug, Clone)]
struct InFlight {
    attempt: Attempt,
    grant: Resources,
    rss_kb: u64,
    /// The allocation its cores are counted in (the host's when it started).
    alloc: String,
    /// Memory and CPU over time, from the heartbeats, for a frame's page
    /// while it runs (the worker sends its own, finer, when it ends).
    series: crate::series::Series,
}

/// Points kept of a running attempt's heartbeats: a few hundred bytes
/// each, on farms that run tens of thousands at once.
const LIVE_POINTS: usize = 24;

#[derive(Debug)]
struct HostEntry {
    host: Host,
    used: Resources,
    running: BTreeSet<AttemptId>,
    /// The live connection, if any.
    session: Option<u64>,
    /// The worker said it is shutting down: nothing new goes to it.
    draining: bool,
    /// Jobs that stopped using this host after repeated failures; enough of
    /// them put the host in REPAIR.
    failed_jobs: BTreeSet<JobId>,
    /// Detected and manual tags, sorted, shared with every snapshot.
    tags: std::sync::Arc<[String]>,
}

#[derive(Debug, Default)]
struct Ids {
    job: i64,
    layer: i64,
    frame: i64,
    attempt: i64,
    host: i64,
}

pub struct Farm {
    config: FarmConfig,
    jobs: Tracked<BTreeMap<JobId, JobEntry>, JobId>,
    layers: Tracked<HashMap<LayerId, LayerEntry>, LayerId>,
    frames: HashMap<FrameId, Frame>,
    hosts: Tracked<BTreeMap<HostId, HostEntry>, HostId>,
    host_by_name: HashMap<String, HostId>,
    /// Idempotency key → the job its first submit created.
    submit_keys: HashMap<String, JobId>,
    /// Live connection → its host.
    sessions: HashMap<u64, HostId>,
    in_flight: HashMap<AttemptId, InFlight>,
    /// Attempts that ended since the last take_dirty; persisted then dropped.
    ended: Vec<Attempt>,
    ids: Ids,
    dirty: DirtySet,
    outgoing: Vec<Outgoing>,
    structure: admin::Structure,
    /// Failures in a row of a job's frames on a host; reset by a success.
    fail_streaks: HashMap<(JobId, HostId), u32>,
    usage: usage::Usage,
    reservations: Vec<crate::sched::Reservation>,
    /// The scheduler's snapshot, kept from pass to pass.
    mirror: mirror::Mirror,
    /// The time of the transition in progress, for its events.
    clock: Millis,
    /// The last event number handed out.
    event_seq: u64,
    /// How long each frame started since the last [`Farm::take_pickups`]
    /// waited, for the server's pickup latency histogram.
    pickups: Vec<Millis>,
}

impl Farm {
    pub fn new(config: FarmConfig) -> Farm {
        Farm::restore(config, Restore::default(), 0)
    }

    /// Rebuilds the farm from the store. Hosts that were UP get a fresh
    /// grace period from `now`, so a restarted server gives every worker
    /// time to reconnect before declaring it DOWN.
    pub fn restore(config: FarmConfig, image: Restore, now: Millis) -> Farm {
        let [job, layer, frame, attempt, host] = image.max_ids;
        let mut farm = Farm {
            config,
            jobs: Tracked::default(),
            layers: Tracked::default(),
            frames: HashMap::with_capacity_and_hasher(image.frames.len(), Default::default()),
            hosts: Tracked::default(),
            host_by_name: HashMap::default(),
            submit_keys: HashMap::default(),
            sessions: HashMap::default(),
            in_flight: HashMap::default(),
            ended: Vec::new(),
            ids: Ids {
                job,
                layer,
                frame,
                attempt,
                host,
            },
            dirty: DirtySet::default(),
            outgoing: Vec::new(),
            structure: admin::Structure::default(),
            fail_streaks: HashMap::default(),
            usage: usage::Usage::default(),
            reservations: Vec::new(),
            mirror: mirror::Mirror::default(),
            clock: now,
            event_seq: image.event_seq,
            pickups: Vec::new(),
        };
        for r in image.structure {
            farm.structure.put(r);
        }
        farm.ensure_defaults();
        for job in image.jobs {
            if let Some(k) = &job.submit_key {
                farm.submit_keys.insert(k.clone(), job.id);
            }
            farm.jobs.insert(
                job.id,
                JobEntry {
                    job,
                    layers: Vec::new(),
                    used: 0,
                    started: false,
                },
            );
        }
        let mut layers = image.layers;
        layers.sort_by_key(|l| (l.job, l.index));
        for layer in layers {
            if let Some(j) = farm.jobs.get_mut(&layer.job) {
                j.layers.push(layer.id);
            }
            farm.layers.insert(layer.id, LayerEntry::new(layer));
        }
        let mut frames = image.frames;
        frames.sort_by_key(|f| (f.layer, f.index));
        for f in frames {
            farm.index_frame(&f);
            if f.attempts > 0 {
                if let Some(j) = farm.jobs.quiet_mut(&f.job) {
                    j.started = true;
                }
            }
            if f.state == FrameState::Succeeded {
                if let Some(l) = farm.layers.get_mut(&f.layer) {
                    l.learn_peak(f.max_rss_kb);
                    if let (Some(s), Some(e)) = (f.started_at, f.ended_at) {
                        l.runtime.add(e - s);
                    }
                }
            }
            farm.frames.insert(f.id, f);
        }
        for mut host in image.hosts {
            let id = host.id;
            if host.state == HostState::Up {
                host.last_seen = now;
            }
            farm.host_by_name.insert(host.report.name.clone(), host.id);
            farm.hosts.insert(
                host.id,
                HostEntry {
                    host,
                    used: Resources::default(),
                    running: BTreeSet::new(),
                    session: None,
                    draining: false,
                    failed_jobs: BTreeSet::new(),
                    tags: Default::default(),
                },
            );
            farm.refresh_tags(id);
        }
        for attempt in image.running_attempts {
            let grant = farm
                .frames
                .get(&attempt.frame)
                .and_then(|f| farm.layers.get(&f.layer))
                .map(|l| Resources {
                    cores: attempt.cores,
                    memory_kb: attempt.memory_kb,
                    ..l.layer.resources
                })
                .unwrap_or_default();
            if let Some(h) = farm.hosts.get_mut(&attempt.host) {
                h.used.add(&grant);
                h.running.insert(attempt.id);
            }
            let alloc = farm
                .hosts
                .get(&attempt.host)
                .map(|h| h.host.allocation.clone())
                .unwrap_or_default();
            let (id, job, frame) = (attempt.id, attempt.job, attempt.frame);
            farm.in_flight.insert(
                id,
                InFlight {
                    attempt,
                    grant,
                    rss_kb: 0,
                    alloc,
                    series: crate::series::Series::new(LIVE_POINTS),
                },
            );
            if let Some(layer) = farm.frames.get(&frame).map(|f| f.layer) {
                farm.charge(id, job, layer, true);
            }
        }
        farm
    }

    pub fn config(&self) -> &FarmConfig {
        &self.config
    }

    /// Hands over every record changed since the last call.
    pub fn take_dirty(&mut self) -> Dirty {
        let set = std::mem::take(&mut self.dirty);
        let mut attempts: Vec<Attempt> = std::mem::take(&mut self.ended);
        attempts.extend(
            set.attempts
                .iter()
                .filter_map(|id| self.in_flight.get(id).map(|f| f.attempt.clone())),
        );
        Dirty {
            jobs: set
                .jobs
                .iter()
                .filter_map(|id| self.jobs.get(id).map(|j| j.job.clone()))
                .collect(),
            layers: set
                .layers
                .iter()
                .filter_map(|id| self.layers.get(id).map(|l| l.layer.clone()))
                .collect(),
            frames: set
                .frames
                .iter()
                .filter_map(|id| self.frames.get(id).cloned())
                .collect(),
            attempts,
            hosts: set
                .hosts
                .iter()
                .filter_map(|id| self.hosts.get(id).map(|h| h.host.clone()))
                .collect(),
            structure: set.structure,
            archived: set.archived,
            events: self.name_events(set.events),
        }
    }

    /// Messages for workers produced since the last call, to send once the
    /// matching [`Dirty`] is durable.
    pub fn take_outgoing(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.outgoing)
    }

    /// How long each frame started since the last call had been ready
    /// (from its job's submit or its last attempt's end), in ms; frames
    /// held by a dependency are not counted.
    pub fn take_pickups(&mut self) -> Vec<Millis> {
        std::mem::take(&mut self.pickups)
    }

    fn send(&mut self, host: HostId, msg: ServerMsg) {
        if let Some(session) = self.hosts.get(&host).and_then(|h| h.session) {
            self.outgoing.push(Outgoing { host, session, msg });
        }
    }

    fn index_frame(&mut self, f: &Frame) {
        if let Some(l) = self.layers.get_mut(&f.layer) {
            debug_assert_eq!(l.frames.len() as u32, f.index);
            l.frames.push(f.id);
            *l.counts.slot(f.state) += 1;
            if f.state == FrameState::Waiting {
                l.waiting.insert(f.index);
            }
            // A chunk of one frame is its number: no set to read.
            match f.chunk.parse::<i64>() {
                Ok(n) => {
                    l.by_number.insert(n, f.index);
                }
                Err(_) => {
                    for n in chunk_numbers(&f.chunk) {
                        l.by_number.insert(n, f.index);
                    }
                }
            }
        }
    }

    /// Moves a frame to a new state, keeping the layer's indices true.
    fn set_state(&mut self, id: FrameId, to: FrameState, now: Millis) {
        let Some(f) = self.frames.get_mut(&id) else {
            return;
        };
        let from = f.state;
        if from == to {
            return;
        }
        f.state = to;
        let (layer, index, job) = (f.layer, f.index, f.job);
        self.clock = now;
        self.dirty.frames.insert(id);
        if let Some(l) = self.layers.quiet_mut(&layer) {
            let complete = l.counts.done() == l.counts.total();
            *l.counts.slot(from) -= 1;
            *l.counts.slot(to) += 1;
            if to == FrameState::Waiting {
                l.waiting.insert(index);
            } else if from == FrameState::Waiting {
                l.waiting.remove(&index);
            }
            // The scheduler's row follows in place, unless the layer has
            // none yet or just completed or reopened: layers waiting on
            // it may start or stop, so its job is read again.
            let flipped = complete != (l.counts.done() == l.counts.total());
            if !self.mirror.layer_ready(layer, l.waiting.len() as u32) || flipped {
                self.layers.touch(layer);
            }
        }
        // A start neither finishes a job nor reopens one (it had a
        // waiting frame); the check walks the job's layers, so skip it.
        // Its own event first: the job's (finished) follows the frame's.
        self.frame_moved(id, job, from, to);
        if !(from == FrameState::Waiting && to == FrameState::Running) {
            self.update_finished(job, now);
        }
    }

    /// Keeps `finished_at` true: set when a job's last frame is done.
    fn update_finished(&mut self, job: JobId, now: Millis) {
        let done = self.job_all_done(job);
        let Some(j) = self.jobs.get(&job) else {
            return;
        };
        let finished_at = if done || j.job.state == JobState::Killed {
            j.job.finished_at.or(Some(now))
        } else {
            None
        };
        if finished_at != j.job.finished_at {
            let killed = j.job.state == JobState::Killed;
            self.jobs.get_mut(&job).expect("checked").job.finished_at = finished_at;
            self.dirty.jobs.insert(job);
            // A kill says `job.killed` where it happens.
            if done && finished_at.is_some() && !killed {
                self.clock = now;
                self.emit(
                    crate::event::EventKind::JobFinished,
                    events::About::job(job),
                );
            }
        }
    }

    fn job_all_done(&self, job: JobId) -> bool {
        self.jobs.get(&job).is_some_and(|j| {
            j.layers.iter().all(|l| {
                self.layers
                    .get(l)
                    .is_some_and(|l| l.counts.done() == l.counts.total())
            })
        })
    }

    /// Recomputes the tag set a host shows the scheduler.
    fn refresh_tags(&mut self, id: HostId) {
        if let Some(h) = self.hosts.get_mut(&id) {
            let mut tags = h.host.all_tags();
            tags.sort();
            tags.dedup();
            h.tags = tags.into();
        }
    }

    fn next_id(counter: &mut i64) -> i64 {
        *counter += 1;
        *counter
    }
}

impl HostEntry {
    /// What the host has left.
    fn free(&self) -> Resources {
        let mut free = self.host.offers();
        free.sub(&self.used);
        free
    }
}

impl LayerEntry {
    fn new(layer: Layer) -> LayerEntry {
        LayerEntry {
            layer,
            frames: Vec::new(),
            waiting: BTreeSet::new(),
            counts: Counts::default(),
            by_number: HashMap::default(),
            peaks: Default::default(),
            runtime: Default::default(),
            learned_kb: None,
            recent_hosts: Default::default(),
            shun: Default::default(),
            starved_since: None,
            why: None,
            base_env: None,
        }
    }

    /// Remembers that `host` just ran one of the layer's frames.
    fn ran_on(&mut self, host: HostId) {
        self.recent_hosts.push(host);
        self.shun.remove(host);
    }

    /// Remembers that one of its frames could not run on `host` for the
    /// job's own reasons (its user, directory or command missing there).
    fn failed_own_on(&mut self, host: HostId) {
        self.shun.push(host);
    }

    const PEAKS: usize = 16;
    /// Samples needed before the learned figure replaces the spec's.
    const LEARN_AFTER: usize = 3;

    fn learn_peak(&mut self, rss_kb: u64) {
        if rss_kb == 0 {
            return;
        }
        if self.peaks.len() == Self::PEAKS {
            self.peaks.pop_front();
        }
        self.peaks.push_back(rss_kb);
        if self.peaks.len() >= Self::LEARN_AFTER {
            let peak = self.peaks.iter().copied().max().unwrap_or(0);
            self.learned_kb = Some(workers::round_up_mb(peak + peak / 5).max(64 << 10));
        }
    }

    /// What one frame reserves: the spec's figure until a few frames have
    /// finished, then the largest recent peak plus a fifth, in whole MiB.
    /// Frames that use less than they ask for then pack tighter; frames
    /// that need more stop being killed for it.
    fn needs(&self) -> Resources {
        let mut r = self.layer.resources;
        if let Some(kb) = self.learned_kb {
            r.memory_kb = kb;
        }
        r
    }
}

/// The frame numbers of a chunk string such as `1-5` or `3,7`.
fn chunk_numbers(chunk: &str) -> Vec<i64> {
    crate::frameset::FrameSet::parse(chunk, usize::MAX)
        .map(|s| s.frames().to_vec())
        .unwrap_or_default()
}
