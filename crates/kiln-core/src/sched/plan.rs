//! One scheduling pass: reservations first, then frame by frame to the show
//! furthest below its share and, within it, the job furthest below its
//! priority-weighted share, each frame to its best host.

use super::index::Index;
use super::*;
use rustc_hash::FxHashMap as HashMap;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;

/// Fixed-point scale of the share ratios compared in the heaps.
const SCALE: u64 = 1 << 20;

/// Reservations a wide layer holds at once.
const WIDE_RESERVATIONS: usize = 2;

/// Layers that may walk the hosts for new reservations in one pass: the
/// walk is O(hosts), and reservations last from pass to pass.
const MAX_WALKS: usize = 8;

/// Plans one pass over `snap`. Deterministic: every tie is broken by an id
/// or an index of the snapshot.
pub fn plan(snap: &Snapshot) -> Plan {
    let mut p = Pass::new(snap);
    p.keep_reservations();
    for alloc in 0..snap.allocations.len() as u32 {
        p.serve_reserved(alloc);
        p.fill(alloc);
    }
    p.grow_ranges();
    p.reserve();
    p.finish()
}

/// Groups the demands with frames ready by job, in layer order: returns
/// each job's start in the list (and the end), and the list.
fn group_by_job(snap: &Snapshot) -> (Vec<u32>, Vec<u32>) {
    let jobs = snap.jobs.len();
    let mut start = vec![0u32; jobs + 1];
    for d in &snap.demands {
        if d.ready > 0 && (d.job as usize) < jobs {
            start[d.job as usize + 1] += 1;
        }
    }
    for j in 0..jobs {
        start[j + 1] += start[j];
    }
    let mut next = start.clone();
    let mut list = vec![0u32; start[jobs] as usize];
    let mut sorted = true;
    for (i, d) in snap.demands.iter().enumerate() {
        if d.ready > 0 && (d.job as usize) < jobs {
            let at = &mut next[d.job as usize];
            if *at > start[d.job as usize] {
                let prev = &snap.demands[list[*at as usize - 1] as usize];
                sorted &= prev.layer_index <= d.layer_index;
            }
            list[*at as usize] = i as u32;
            *at += 1;
        }
    }
    // Snapshots list a job's layers in order; one built by hand may not.
    if !sorted {
        for j in 0..jobs {
            list[start[j] as usize..start[j + 1] as usize]
                .sort_by_key(|&d| snap.demands[d as usize].layer_index);
        }
    }
    (start, list)
}

/// Per demand, whether it keeps off the hosts it shuns: only while some
/// other host could run its frames at all (busy or not), so a shunned host
/// that is the only one left still gets them. Empty when none shuns any,
/// as nearly always: a job's own failures are rare and soon settled.
fn shunning(snap: &Snapshot, index: &Index) -> Vec<bool> {
    if snap
        .demands
        .iter()
        .all(|d| d.shun.is_empty() || d.ready == 0)
    {
        return Vec::new();
    }
    snap.demands
        .iter()
        .map(|d| {
            if d.shun.is_empty() || d.ready == 0 {
                return false;
            }
            let Some(job) = snap.jobs.get(d.job as usize) else {
                return false;
            };
            let subs = snap
                .shows
                .get(job.show as usize)
                .map_or(&[][..], |s| &s.subs);
            snap.hosts.iter().enumerate().any(|(i, h)| {
                !d.shun.contains(h.id)
                    && !job.avoid.contains(&h.id)
                    && subs.iter().any(|s| s.alloc == h.alloc)
                    && snap
                        .allocations
                        .get(h.alloc as usize)
                        .is_some_and(|a| a.facility == job.facility)
                    && index.class_tags_ok(index.class_of(i as u32), &d.tags)
                    && d.needs.fits_in(&h.total)
            })
        })
        .collect()
}

/// Host classes to try first, then to fall back on (see `Index::classes_for`).
type Classes = Rc<[Vec<u32>; 2]>;

/// Shows of an allocation, furthest below their share first:
/// (show key, subscription index).
type ShowQueue = BinaryHeap<Reverse<((bool, u64, u32), usize)>>;

/// A show's jobs, lowest share first: (job key, job index).
type JobQueue = BinaryHeap<Reverse<((u64, Millis, JobId), u32)>>;

struct Pass<'a> {
    snap: &'a Snapshot,
    index: Index,
    /// Host id → index: of hosts with a free core, or of all of them
    /// when there are reservations to keep.
    host_of: HashMap<HostId, u32>,
    job_used: Vec<Centicores>,
    /// Per show, per subscription (same order as the snapshot's).
    sub_used: Vec<Vec<Centicores>>,
    limit_used: Vec<u32>,
    /// Job `j`'s demands with frames ready, in layer order, are
    /// `job_list[job_start[j]..job_start[j + 1]]`.
    job_start: Vec<u32>,
    job_list: Vec<u32>,
    /// Per show, its jobs.
    show_jobs: Vec<Vec<u32>>,
    placed: Vec<u32>,
    wait: Vec<Option<Wait>>,
    /// Per demand: 1 + the allocation it is stuck in this pass, or 0.
    stuck_in: Vec<u32>,
    /// Per demand: stuck everywhere (a limit or the job's cap).
    stopped: Vec<bool>,
    /// Per host: the demand it is reserved for.
    reserved: Vec<Option<u32>>,
    /// Per reserved host: whether frames that end before it frees may use
    /// it meanwhile (wide reservations only).
    backfill: Vec<bool>,
    reservations: Vec<Reservation>,
    out: Vec<Assignment>,
    /// Assignments of core ranges, one frame each, to grow at the end:
    /// (assignment, demand, host index).
    ranged: Vec<(usize, u32, u32)>,
    /// Per demand: the classes it may use in the allocation being filled.
    classes: Vec<Option<(u32, Classes)>>,
    /// The same, shared by demands asking for the same tags and GPU-ness.
    class_sets: HashMap<(u32, bool, &'a [TagReq]), Classes>,
    /// Per demand: whether it keeps off the hosts it shuns this pass
    /// (another host could run it). Empty when no demand shuns any.
    shunning: Vec<bool>,
}

enum Tried {
    Placed,
    Stuck,
}

impl<'a> Pass<'a> {
    fn new(snap: &'a Snapshot) -> Pass<'a> {
        let (job_start, job_list) = group_by_job(snap);
        let mut show_jobs = vec![Vec::new(); snap.shows.len()];
        for (j, job) in snap.jobs.iter().enumerate() {
            if job_start[j] < job_start[j + 1] {
                if let Some(list) = show_jobs.get_mut(job.show as usize) {
                    list.push(j as u32);
                }
            }
        }
        let n = snap.demands.len();
        let index = Index::new(snap);
        // Placement looks hosts up by id only for warm caches, and only a
        // host with a free core can be one; reservations need them all.
        let host_of: HashMap<HostId, u32> = if snap.reservations.is_empty() {
            (0..snap.hosts.len() as u32)
                .filter(|&h| index.free[h as usize].cores > 0)
                .map(|h| (snap.hosts[h as usize].id, h))
                .collect()
        } else {
            snap.hosts
                .iter()
                .enumerate()
                .map(|(i, h)| (h.id, i as u32))
                .collect()
        };
        let shunning = shunning(snap, &index);
        Pass {
            snap,
            index,
            host_of,
            job_used: snap.jobs.iter().map(|j| j.used).collect(),
            sub_used: snap
                .shows
                .iter()
                .map(|s| s.subs.iter().map(|x| x.used).collect())
                .collect(),
            limit_used: snap.limits.iter().map(|l| l.used).collect(),
            job_start,
            job_list,
            show_jobs,
            placed: vec![0; n],
            wait: vec![None; n],
            stuck_in: vec![0; n],
            stopped: vec![false; n],
            reserved: vec![None; snap.hosts.len()],
            backfill: vec![false; snap.hosts.len()],
            reservations: Vec::new(),
            out: Vec::new(),
            ranged: Vec::new(),
            classes: vec![None; n],
            class_sets: HashMap::default(),
            shunning,
        }
    }

    /// Demand `i` of job `j`'s, in layer order, if it has that many.
    fn job_demand(&self, j: u32, i: usize) -> Option<u32> {
        let (start, end) = (self.job_start[j as usize], self.job_start[j as usize + 1]);
        (i < (end - start) as usize).then(|| self.job_list[start as usize + i])
    }

    fn demand(&self, d: u32) -> &'a Demand {
        &self.snap.demands[d as usize]
    }

    fn sub_index(&self, show: u32, alloc: u32) -> Option<usize> {
        self.snap.shows[show as usize]
            .subs
            .iter()
            .position(|s| s.alloc == alloc)
    }

    /// The show's place in the queue of `alloc`: below its size first,
    /// then by used/size.
    fn show_key(&self, show: u32, k: usize) -> (bool, u64, u32) {
        let sub = &self.snap.shows[show as usize].subs[k];
        let used = self.sub_used[show as usize][k];
        let ratio = used as u64 * SCALE / sub.size.max(100) as u64;
        (used >= sub.size, ratio, show)
    }

    /// The job's place in its show's queue: cores held per unit of
    /// priority, then first come first served.
    fn job_key(&self, j: u32) -> (u64, Millis, JobId) {
        let job = &self.snap.jobs[j as usize];
        let weight = job.priority.max(1) as u64;
        (
            self.job_used[j as usize] as u64 * SCALE / weight,
            job.submitted_at,
            job.id,
        )
    }

    /// Fills `alloc` frame by frame, always serving the show and job
    /// furthest below their shares.
    fn fill(&mut self, alloc: u32) {
        let facility = &self.snap.allocations[alloc as usize].facility;
        let mut shows = ShowQueue::new();
        let mut queues: Vec<JobQueue> = vec![JobQueue::new(); self.snap.shows.len()];
        for s in 0..self.snap.shows.len() as u32 {
            let Some(k) = self.sub_index(s, alloc) else {
                continue;
            };
            let jobs: BinaryHeap<_> = self.show_jobs[s as usize]
                .iter()
                .filter(|&&j| self.snap.jobs[j as usize].facility == *facility)
                .map(|&j| Reverse((self.job_key(j), j)))
                .collect();
            if !jobs.is_empty() {
                queues[s as usize] = jobs;
                shows.push(Reverse((self.show_key(s, k), k)));
            }
        }
        while let Some(Reverse(((_, _, s), k))) = shows.pop() {
            if !self.index.open(alloc) {
                // Every host is full: what is still queued waits, each
                // for its own reason, without a host search per job.
                shows.push(Reverse((self.show_key(s, k), k)));
                self.give_up(alloc, shows, queues);
                return;
            }
            let burst = self.snap.shows[s as usize].subs[k].burst;
            let queue = &mut queues[s as usize];
            if self.sub_used[s as usize][k] >= burst {
                for Reverse((_, j)) in std::mem::take(queue) {
                    self.mark_job(j, alloc, Wait::Share);
                }
                continue;
            }
            let Some(Reverse((_, j))) = queue.pop() else {
                continue;
            };
            match self.place_for_job(j, alloc, s, k) {
                Tried::Placed => {
                    let key = self.job_key(j);
                    queues[s as usize].push(Reverse((key, j)));
                }
                Tried::Stuck => {}
            }
            if !queues[s as usize].is_empty() {
                shows.push(Reverse((self.show_key(s, k), k)));
            }
        }
    }

    /// Gives every demand still queued for a full allocation its reason:
    /// a limit, cap or share that stops it anyway, else busy.
    fn give_up(&mut self, alloc: u32, shows: ShowQueue, mut queues: Vec<JobQueue>) {
        for Reverse(((_, _, s), k)) in shows {
            for Reverse((_, j)) in std::mem::take(&mut queues[s as usize]) {
                let mut i = 0;
                while let Some(d) = self.job_demand(j, i) {
                    i += 1;
                    let du = d as usize;
                    if self.stopped[du]
                        || self.stuck_in[du] == alloc + 1
                        || self.placed[du] >= self.demand(d).ready
                    {
                        continue;
                    }
                    let why = self
                        .admissible(d, s, k, self.demand(d).needs.cores)
                        .err()
                        .unwrap_or((Wait::Busy, false));
                    self.block(d, alloc, why);
                }
            }
        }
    }

    /// Gives every demand of job `j` not yet stuck in `alloc` a reason.
    fn mark_job(&mut self, j: u32, alloc: u32, why: Wait) {
        let mut i = 0;
        while let Some(d) = self.job_demand(j, i) {
            i += 1;
            let d = d as usize;
            if self.stuck_in[d] != alloc + 1 && !self.stopped[d] {
                self.stuck_in[d] = alloc + 1;
                self.note(d, why.clone());
            }
        }
    }

    /// Starts one frame of the job's first layer that can start one.
    fn place_for_job(&mut self, j: u32, alloc: u32, s: u32, k: usize) -> Tried {
        let mut i = 0;
        while let Some(d) = self.job_demand(j, i) {
            i += 1;
            if self.stopped[d as usize]
                || self.stuck_in[d as usize] == alloc + 1
                || self.placed[d as usize] >= self.demand(d).ready
            {
                continue;
            }
            if let Err(why) = self.admissible(d, s, k, self.demand(d).needs.cores) {
                self.block(d, alloc, why);
                continue;
            }
            let classes = self.classes(d, alloc);
            let demand = self.demand(d);
            let whole = demand.cores == CoreRequest::WholeHost;
            let [first, then] = &*classes;
            let found = [first.as_slice(), then.as_slice()]
                .into_iter()
                .find_map(|classes| {
                    let ok = |h: u32| self.host_ok(d, h);
                    if whole {
                        self.index.whole(classes, &demand.needs, ok)
                    } else {
                        self.local_host(d, classes)
                            .or_else(|| self.index.best(classes, &demand.needs, ok))
                    }
                });
            match found {
                Some(h) => {
                    // A whole host is granted whole: check its real size.
                    if whole {
                        let cores = self.index.total[h as usize].cores;
                        if let Err(why) = self.admissible(d, s, k, cores) {
                            self.block(d, alloc, why);
                            continue;
                        }
                    }
                    self.start(d, h, s, k);
                    return Tried::Placed;
                }
                None => self.block(d, alloc, (Wait::Busy, false)),
            }
        }
        Tried::Stuck
    }

    /// The host classes of `alloc` demand `d` may use, worked out once per
    /// demand and allocation rather than once per frame placed.
    fn classes(&mut self, d: u32, alloc: u32) -> Classes {
        if let Some((a, c)) = &self.classes[d as usize] {
            if *a == alloc {
                return c.clone();
            }
        }
        let demand = self.demand(d);
        let key = (alloc, demand.needs.gpus > 0, &demand.tags[..]);
        let c = match self.class_sets.get(&key) {
            Some(c) => c.clone(),
            None => {
                let c = Rc::new(self.index.classes_for(alloc, key.2, key.1));
                self.class_sets.insert(key, c.clone());
                c
            }
        };
        self.classes[d as usize] = Some((alloc, c.clone()));
        c
    }

    /// Share, limit and cap checks for one more frame of `d`.
    fn admissible(&self, d: u32, s: u32, k: usize, cores: Centicores) -> Result<(), (Wait, bool)> {
        let demand = self.demand(d);
        let job = &self.snap.jobs[demand.job as usize];
        for &l in &demand.limits {
            let limit = &self.snap.limits[l as usize];
            if self.limit_used[l as usize] >= limit.max {
                return Err((Wait::Limit(limit.name.clone()), true));
            }
        }
        if job
            .max_cores
            .is_some_and(|m| self.job_used[demand.job as usize] + cores > m)
        {
            return Err((Wait::JobCap, true));
        }
        let sub = &self.snap.shows[s as usize].subs[k];
        if self.sub_used[s as usize][k].saturating_add(cores) > sub.burst {
            return Err((Wait::Share, false));
        }
        Ok(())
    }

    fn block(&mut self, d: u32, alloc: u32, (why, everywhere): (Wait, bool)) {
        let d = d as usize;
        self.stuck_in[d] = alloc + 1;
        self.stopped[d] |= everywhere;
        self.note(d, why);
    }

    /// Keeps the reason that says most about a demand stuck in several
    /// allocations: a cap that held it back where hosts had room tells the
    /// user more than "busy" elsewhere. NoFit is derived from Busy at the
    /// end: it says no such host exists.
    fn note(&mut self, d: usize, why: Wait) {
        let rank = |w: &Wait| match w {
            Wait::Busy | Wait::NoFit | Wait::Reserved(_) => 0,
            Wait::Share => 1,
            Wait::JobCap | Wait::Limit(_) => 2,
        };
        if self.wait[d]
            .as_ref()
            .is_none_or(|old| rank(&why) >= rank(old))
        {
            self.wait[d] = Some(why);
        }
    }

    /// A host that just ran this layer, if it has room: warm caches.
    fn local_host(&self, d: u32, classes: &[u32]) -> Option<u32> {
        let demand = self.demand(d);
        demand.recent_hosts.iter().find_map(|id| {
            let h = *self.host_of.get(&id)?;
            (classes.contains(&self.index.class_of(h))
                && self.index.fits(h, &demand.needs)
                && self.host_ok(d, h))
            .then_some(h)
        })
    }

    /// Whether demand `d` may use host `h`: not avoided by its job, and
    /// not reserved for another frame, unless it backfills: expected to
    /// end before the reserved host frees.
    fn host_ok(&self, d: u32, h: u32) -> bool {
        // The host's row is read only when needed: this runs for every
        // candidate host, and the rows are mostly out of cache.
        let demand = self.demand(d);
        let avoid = &self.snap.jobs[demand.job as usize].avoid;
        if !avoid.is_empty() && avoid.contains(&self.snap.hosts[h as usize].id) {
            return false;
        }
        if self.shunning.get(d as usize) == Some(&true)
            && demand.shun.contains(self.snap.hosts[h as usize].id)
        {
            return false;
        }
        match self.reserved[h as usize] {
            None => true,
            Some(r) if r == d => true,
            // A narrow frame's host frees a few cores at a time; any
            // backfill would take exactly those cores.
            Some(_) if !self.backfill[h as usize] => false,
            Some(_) => match (demand.runtime_ms, self.snap.hosts[h as usize].busy_until) {
                (Some(rt), Some(until)) => self.snap.now + rt <= until,
                _ => false,
            },
        }
    }

    fn start(&mut self, d: u32, h: u32, s: u32, k: usize) {
        let demand = self.demand(d);
        let grant = match demand.cores {
            CoreRequest::WholeHost => self.index.total[h as usize],
            _ => demand.needs,
        };
        self.index.take(h, &grant);
        self.job_used[demand.job as usize] += grant.cores;
        self.sub_used[s as usize][k] += grant.cores;
        for &l in &demand.limits {
            self.limit_used[l as usize] += 1;
        }
        self.placed[d as usize] += 1;
        if self.reserved[h as usize] == Some(d) {
            self.reserved[h as usize] = None;
        }
        let host = self.snap.hosts[h as usize].id;
        let ranged = matches!(
            demand.cores,
            CoreRequest::AtLeast(_) | CoreRequest::Between(..)
        );
        if !ranged {
            if let Some(last) = self.out.last_mut() {
                if last.layer == demand.layer && last.host == host && last.grant == grant {
                    last.count += 1;
                    return;
                }
            }
        }
        self.out.push(Assignment {
            layer: demand.layer,
            host,
            grant,
            count: 1,
        });
        if ranged {
            self.ranged.push((self.out.len() - 1, d, h));
        }
    }

    /// Keeps last pass's reservations whose frame still waits and whose
    /// host is still here.
    fn keep_reservations(&mut self) {
        let by_layer: HashMap<LayerId, u32> = self
            .snap
            .demands
            .iter()
            .enumerate()
            .map(|(d, x)| (x.layer, d as u32))
            .collect();
        for r in &self.snap.reservations {
            let (Some(&d), Some(&h)) = (by_layer.get(&r.layer), self.host_of.get(&r.host)) else {
                continue;
            };
            // A narrow frame's reservations last while its show is below
            // its size; a wide frame's while it waits.
            let wide = self.is_wide(d);
            let held = self
                .reservations
                .iter()
                .filter(|x| x.layer == r.layer)
                .count();
            if self.reserved[h as usize].is_none()
                && self.reservations.len() < self.snap.config.max_reservations
                && held < self.wanted(d, wide)
            {
                self.reserved[h as usize] = Some(d);
                self.backfill[h as usize] = wide;
                self.reservations.push(*r);
            }
        }
    }

    /// Reservations demand `d` may hold at once: a wide layer a couple, so
    /// the next frame's host is already draining while one starts; a layer
    /// of a show below its size as many frames as fill the gap.
    fn wanted(&self, d: u32, wide: bool) -> usize {
        let demand = self.demand(d);
        let left = demand.ready.saturating_sub(self.placed[d as usize]) as usize;
        let want = if wide {
            WIDE_RESERVATIONS
        } else {
            let job = &self.snap.jobs[demand.job as usize];
            let gap: u64 = self.snap.shows[job.show as usize]
                .subs
                .iter()
                .enumerate()
                .filter(|(_, sub)| {
                    self.snap.allocations[sub.alloc as usize].facility == job.facility
                })
                .map(|(k, sub)| sub.size.saturating_sub(self.sub_used[job.show as usize][k]) as u64)
                .sum();
            gap.div_ceil(demand.needs.cores.max(1) as u64) as usize
        };
        want.min(left)
    }

    /// A frame that needs most of the largest host it may use, or a whole
    /// host: narrow frames leaving and arriving would never let it in.
    fn is_wide(&self, d: u32) -> bool {
        let demand = self.demand(d);
        demand.cores == CoreRequest::WholeHost || demand.needs.cores * 2 > self.widest_for(d)
    }

    /// Starts reserved frames on their hosts once the hosts have room.
    fn serve_reserved(&mut self, alloc: u32) {
        for h in 0..self.reserved.len() as u32 {
            let Some(d) = self.reserved[h as usize] else {
                continue;
            };
            if self.snap.hosts[h as usize].alloc != alloc {
                continue;
            }
            let demand = self.demand(d);
            let job = &self.snap.jobs[demand.job as usize];
            let Some(k) = self.sub_index(job.show, alloc) else {
                continue;
            };
            let room = match demand.cores {
                CoreRequest::WholeHost => self.index.idle(h),
                _ => self.index.fits(h, &demand.needs),
            };
            let cores = match demand.cores {
                CoreRequest::WholeHost => self.index.total[h as usize].cores,
                _ => demand.needs.cores,
            };
            if room
                && self.placed[d as usize] < demand.ready
                && self.admissible(d, job.show, k, cores).is_ok()
            {
                self.start(d, h, job.show, k);
                let (layer, host) = (demand.layer, self.snap.hosts[h as usize].id);
                self.reservations
                    .retain(|r| !(r.layer == layer && r.host == host));
            }
        }
    }

    /// Gives cores left idle on a host to the ranged frames placed there.
    fn grow_ranges(&mut self) {
        for i in 0..self.ranged.len() {
            let (a, d, h) = self.ranged[i];
            let demand = self.demand(d);
            let job = &self.snap.jobs[demand.job as usize];
            let Some(k) = self.sub_index(job.show, self.snap.hosts[h as usize].alloc) else {
                continue;
            };
            let s = job.show as usize;
            let mut extra = self.index.free[h as usize]
                .cores
                .min(demand.cores.max() - self.out[a].grant.cores);
            extra = extra.min(
                self.snap.shows[s].subs[k]
                    .burst
                    .saturating_sub(self.sub_used[s][k]),
            );
            if let Some(m) = job.max_cores {
                extra = extra.min(m.saturating_sub(self.job_used[demand.job as usize]));
            }
            if extra == 0 {
                continue;
            }
            let more = Resources {
                cores: extra,
                ..Default::default()
            };
            self.index.take(h, &more);
            self.out[a].grant.cores += extra;
            self.sub_used[s][k] += extra;
            self.job_used[demand.job as usize] += extra;
        }
    }

    /// Holds hosts for frames that have waited `reserve_after` and still
    /// find every host busy: wide frames, which narrow frames coming and
    /// going would never let in, and frames of a show below its size,
    /// whose cores the narrow frames of shows above theirs would take as
    /// fast as they free. Each gets the hosts closest to fitting it.
    fn reserve(&mut self) {
        let snap = self.snap;
        let mut walks = 0;
        for d in 0..snap.demands.len() as u32 {
            if self.reservations.len() >= snap.config.max_reservations || walks == MAX_WALKS {
                break;
            }
            let demand = self.demand(d);
            let waited = demand
                .starved_since
                .is_some_and(|t| snap.now - t >= snap.config.reserve_after_ms);
            if !waited || self.stopped[d as usize] || self.wait[d as usize] != Some(Wait::Busy) {
                continue;
            }
            let held = self
                .reservations
                .iter()
                .filter(|r| r.layer == demand.layer)
                .count();
            // Wideness and the share gap come from the host classes and
            // the shows, so the walk over every host below is paid only by
            // frames that will reserve.
            let wide = self.is_wide(d);
            let want = self.wanted(d, wide);
            if held >= want {
                continue;
            }
            walks += 1;
            let job = &snap.jobs[demand.job as usize];
            // A share's reservations go only where the show is below its
            // size: the gap they are sized by is counted there.
            let fitting: Vec<u32> = (0..snap.hosts.len() as u32)
                .filter(|&h| {
                    let host = &snap.hosts[h as usize];
                    snap.allocations[host.alloc as usize].facility == job.facility
                        && self.sub_index(job.show, host.alloc).is_some_and(|k| {
                            wide || {
                                let sub = &snap.shows[job.show as usize].subs[k];
                                self.sub_used[job.show as usize][k] < sub.size
                            }
                        })
                        && demand.tags.iter().all(|t| t.satisfied_by(&host.tags))
                        && demand.needs.fits_in(&host.total)
                        && !job.avoid.contains(&host.id)
                })
                .collect();
            // Never more than half the hosts it could use.
            let taken = fitting
                .iter()
                .filter(|&&h| self.reserved[h as usize].is_some())
                .count();
            let room = (fitting.len().max(2) / 2).saturating_sub(taken);
            let mut open: Vec<u32> = fitting
                .into_iter()
                .filter(|&h| self.reserved[h as usize].is_none())
                .collect();
            // Wide: the host expected to empty first. Narrow: the host
            // missing the fewest cores, then the one expected to free first.
            open.sort_by_key(|&h| {
                let until = snap.hosts[h as usize].busy_until.unwrap_or(Millis::MAX);
                let free = self.index.free[h as usize].cores as i64;
                if wide {
                    (until, -free, h)
                } else {
                    (demand.needs.cores as i64 - free, until, h)
                }
            });
            let n = (want - held)
                .min(room)
                .min(snap.config.max_reservations - self.reservations.len());
            for h in open.into_iter().take(n) {
                self.reserved[h as usize] = Some(d);
                self.backfill[h as usize] = wide;
                self.reservations.push(Reservation {
                    layer: demand.layer,
                    host: snap.hosts[h as usize].id,
                    since: snap.now,
                });
            }
        }
    }

    fn finish(mut self) -> Plan {
        let reserved_for: HashMap<LayerId, HostId> = self
            .reservations
            .iter()
            .map(|r| (r.layer, r.host))
            .collect();
        let mut waits = Vec::new();
        for (d, demand) in self.snap.demands.iter().enumerate() {
            if self.placed[d] >= demand.ready {
                continue;
            }
            let why = match reserved_for.get(&demand.layer) {
                Some(&h) => Wait::Reserved(h),
                None => match self.wait[d].take() {
                    Some(Wait::Busy) | None if !self.could_ever_fit(d as u32) => Wait::NoFit,
                    Some(w) => w,
                    None => Wait::Share,
                },
            };
            waits.push((demand.layer, why));
        }
        Plan {
            assignments: self.out,
            reservations: self.reservations,
            waits,
        }
    }

    /// The classes of hosts, over every allocation the demand may use,
    /// that could run it once idle.
    fn usable_classes(&self, d: u32) -> impl Iterator<Item = u32> + '_ {
        let demand = self.demand(d);
        let job = &self.snap.jobs[demand.job as usize];
        self.snap.shows[job.show as usize]
            .subs
            .iter()
            .filter(move |sub| self.snap.allocations[sub.alloc as usize].facility == job.facility)
            .flat_map(move |sub| self.index.alloc_classes(sub.alloc).iter().copied())
            .filter(move |&c| {
                self.index.class_tags_ok(c, &demand.tags)
                    && self.index.class_could_fit(c, &demand.needs)
            })
    }

    /// Whether any host in the snapshot the demand may use could run it
    /// once idle: tells "busy" from "no such host".
    fn could_ever_fit(&self, d: u32) -> bool {
        self.usable_classes(d).next().is_some()
    }

    /// The most cores any host the demand may use offers.
    fn widest_for(&self, d: u32) -> Centicores {
        self.usable_classes(d)
            .map(|c| self.index.class_max(c).cores)
            .max()
            .unwrap_or(0)
    }
}
