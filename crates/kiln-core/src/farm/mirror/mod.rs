//! The scheduler's snapshot, kept from pass to pass instead of rebuilt.
//!
//! Building a snapshot from scratch reads every host, job and layer entry,
//! scattered over the heap; at 10,000 hosts and 5,000 jobs that was half of
//! a steady pass, nearly all of it cache misses. The mirror keeps the rows:
//! - per-frame changes (cores taken and given back, frames becoming ready,
//!   memory and runtime learned, a layer's wait) write their row in place
//!   as they happen, from entries the farm is touching anyway;
//! - any other change notes the entry's key (`tracked.rs`), and only those
//!   rows are read again at the next pass;
//! - a change of structure (allocations, shows, limits) rebuilds it all.
//!
//! Rows that stop being in play are not removed at once: a demand keeps
//! its row with nothing ready, and rows no layer owns are swept out when
//! they pile up. In debug builds every pass compares the mirror with a
//! snapshot built from scratch.

mod jobs;
#[cfg(test)]
mod tests;

use super::tracked::Touched;
use super::*;
use crate::sched::{
    AllocSlot, Demand, HostSlot, JobSlot, LimitSlot, SchedConfig, ShowSlot, Snapshot, SubSlot,
};

#[derive(Debug, Default)]
pub(super) struct Mirror {
    snap: Snapshot,
    /// False until built and after a change of structure: rebuild all.
    built: bool,
    alloc_index: HashMap<String, u32>,
    show_index: HashMap<String, u32>,
    limit_index: HashMap<String, u32>,
    host_row: HashMap<HostId, u32>,
    job_row: HashMap<JobId, u32>,
    demand_row: HashMap<LayerId, u32>,
    /// Per job row: its demand rows, in layer order.
    job_demands: Vec<Vec<u32>>,
    /// Demand rows no layer owns any more, and job rows with no demand.
    dead: usize,
    /// Free cores over the host rows.
    free_cores: u64,
    /// The most cores any host row offers.
    widest: Centicores,
    /// Jobs whose rows depend on other jobs or on single frames of other
    /// layers: read again every pass, as nothing of theirs changes then.
    volatile: BTreeSet<JobId>,
    /// Jobs whose avoid list carries this pass's suspect hosts.
    overlaid: Vec<JobId>,
    /// Whether the host rows carry `busy_until` estimates.
    busy_until: bool,
    /// Whether some demand has a frame ready (as of the last refresh).
    live: bool,
}

/// What changed since the last pass, by key.
pub(super) struct Changes {
    pub hosts: Touched<HostId>,
    pub jobs: Touched<JobId>,
    pub layers: Touched<LayerId>,
}

impl Mirror {
    /// The snapshot, if anything could start from it: some host has a
    /// core free and some layer a frame ready.
    pub fn view(&self) -> Option<&Snapshot> {
        (self.free_cores > 0 && self.live).then_some(&self.snap)
    }

    /// Everything must be read again (the structure changed).
    pub fn stale(&mut self) {
        self.built = false;
    }

    /// A host's free resources changed.
    pub fn host_free(&mut self, id: HostId, free: Resources) {
        if let Some(&r) = self.host_row.get(&id) {
            let row = &mut self.snap.hosts[r as usize];
            self.free_cores = self.free_cores - row.free.cores as u64 + free.cores as u64;
            row.free = free;
        }
    }

    /// The cores a job holds changed.
    pub fn job_used(&mut self, id: JobId, used: Centicores) {
        if let Some(&r) = self.job_row.get(&id) {
            self.snap.jobs[r as usize].used = used;
        }
    }

    /// A layer's count of waiting frames changed. False when the layer has
    /// no row and now has frames: the caller must have it read again.
    pub fn layer_ready(&mut self, id: LayerId, ready: u32) -> bool {
        match self.demand_row.get(&id) {
            Some(&r) => {
                self.snap.demands[r as usize].ready = ready;
                true
            }
            None => ready == 0,
        }
    }

    pub fn layer_starved(&mut self, id: LayerId, since: Option<Millis>) {
        if let Some(&r) = self.demand_row.get(&id) {
            self.snap.demands[r as usize].starved_since = since;
        }
    }

    /// A layer learned from a finished frame.
    pub fn layer_learned(&mut self, l: &LayerEntry) {
        if let Some(&r) = self.demand_row.get(&l.layer.id) {
            let d = &mut self.snap.demands[r as usize];
            d.needs = l.needs();
            d.runtime_ms = l.runtime.mean();
            d.recent_hosts = l.recent_hosts;
            d.shun = l.shun;
        }
    }

    /// Brings the rows up to date with `farm` at `now`.
    pub fn refresh(&mut self, farm: &Farm, changes: Changes, now: Millis) {
        if !self.built {
            self.build_structure(farm);
        }
        let all_hosts = !self.built || matches!(changes.hosts, Touched::All);
        let all_jobs = !self.built
            || matches!(changes.jobs, Touched::All)
            || matches!(changes.layers, Touched::All);
        self.built = true;
        let mut rebuild_hosts = all_hosts;
        if let Touched::Some(mut ids) = changes.hosts {
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                rebuild_hosts |= !self.host_changed(farm, id);
                if rebuild_hosts {
                    break;
                }
            }
        }
        if rebuild_hosts {
            self.build_hosts(farm);
        }
        if all_jobs {
            self.build_jobs(farm);
        } else {
            let mut ids: Vec<JobId> = match changes.jobs {
                Touched::Some(ids) => ids,
                Touched::All => unreachable!("handled above"),
            };
            if let Touched::Some(layers) = changes.layers {
                ids.extend(
                    layers
                        .iter()
                        .filter_map(|l| Some(farm.layers.get(l)?.layer.job)),
                );
            }
            ids.extend(self.volatile.iter().copied());
            ids.append(&mut self.overlaid);
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                self.job_changed(farm, id);
            }
            // Sweep dead rows once they are a fair share of the rows.
            if self.dead > 256 + (self.snap.demands.len() + self.snap.jobs.len()) / 4 {
                self.build_jobs(farm);
            }
        }
        self.per_pass(farm, now);
    }

    /// What changes every pass: the time, what shows and limits hold, the
    /// reservations, suspect hosts, and when hosts free if that matters.
    fn per_pass(&mut self, farm: &Farm, now: Millis) {
        let s = &farm.structure;
        let snap = &mut self.snap;
        snap.now = now;
        snap.config.reserve_after_ms = farm.config.reserve_after_ms;
        snap.reservations.clone_from(&farm.reservations);
        for (row, show) in snap.shows.iter_mut().zip(s.shows.values()) {
            for sub in &mut row.subs {
                let alloc = &snap.allocations[sub.alloc as usize].name;
                sub.used = farm.usage.sub(&show.name, alloc);
            }
        }
        for row in &mut snap.limits {
            row.used = farm.usage.limit(&row.name);
        }
        for (job, hosts) in farm.suspect_hosts() {
            if let Some(&r) = self.job_row.get(&job) {
                let avoid = &mut snap.jobs[r as usize].avoid;
                avoid.extend(hosts);
                avoid.sort();
                avoid.dedup();
                self.overlaid.push(job);
            }
        }
        // Reservations need to know when hosts free; that costs a walk of
        // the running frames, so only when a wide frame has waited long
        // enough to get one.
        let mut wide_waiting = false;
        self.live = false;
        for d in &snap.demands {
            if d.ready == 0 {
                continue;
            }
            self.live = true;
            wide_waiting |= d
                .starved_since
                .is_some_and(|t| now - t >= farm.config.reserve_after_ms)
                && (d.cores == CoreRequest::WholeHost || d.needs.cores * 2 > self.widest);
        }
        if wide_waiting || !snap.reservations.is_empty() {
            farm.estimate_busy_until(snap);
            self.busy_until = true;
        } else if std::mem::take(&mut self.busy_until) {
            for h in &mut snap.hosts {
                h.busy_until = None;
            }
        }
    }

    /// Indices of allocations, shows and limits, and their rows.
    fn build_structure(&mut self, farm: &Farm) {
        let s = &farm.structure;
        let snap = &mut self.snap;
        self.alloc_index = s
            .allocations
            .keys()
            .enumerate()
            .map(|(i, a)| (a.clone(), i as u32))
            .collect();
        snap.allocations = s
            .allocations
            .values()
            .map(|a| AllocSlot {
                name: a.name.clone(),
                facility: a.facility.clone(),
            })
            .collect();
        self.show_index.clear();
        snap.shows.clear();
        for (i, show) in s.shows.values().enumerate() {
            self.show_index.insert(show.name.clone(), i as u32);
            let subs = s
                .subs
                .range((show.name.clone(), String::new())..)
                .take_while(|((sh, _), _)| *sh == show.name)
                .filter_map(|((_, al), sub)| {
                    Some(SubSlot {
                        alloc: *self.alloc_index.get(al.as_str())?,
                        size: sub.size,
                        burst: sub.burst,
                        used: 0,
                    })
                })
                .collect();
            snap.shows.push(ShowSlot {
                name: show.name.clone(),
                subs: if show.enabled { subs } else { Vec::new() },
            });
        }
        self.limit_index.clear();
        snap.limits.clear();
        for (i, l) in s.limits.values().enumerate() {
            self.limit_index.insert(l.name.clone(), i as u32);
            snap.limits.push(LimitSlot {
                name: l.name.clone(),
                max: l.max,
                used: 0,
            });
        }
        snap.config = SchedConfig::default();
    }

    /// Every connected, open, UP host, with what it has left.
    fn build_hosts(&mut self, farm: &Farm) {
        self.snap.hosts.clear();
        self.host_row.clear();
        self.free_cores = 0;
        self.widest = 0;
        self.busy_until = false;
        for h in farm.hosts.values() {
            if let Some(slot) = self.host_slot(h) {
                self.free_cores += slot.free.cores as u64;
                self.widest = self.widest.max(slot.total.cores);
                self.host_row.insert(slot.id, self.snap.hosts.len() as u32);
                self.snap.hosts.push(slot);
            }
        }
    }

    fn host_slot(&self, h: &HostEntry) -> Option<HostSlot> {
        if h.session.is_none()
            || h.draining
            || h.host.state != HostState::Up
            || h.host.lock != LockState::Open
        {
            return None;
        }
        let alloc = *self.alloc_index.get(h.host.allocation.as_str())?;
        let total = h.host.offers();
        let mut free = total;
        free.sub(&h.used);
        Some(HostSlot {
            id: h.host.id,
            alloc,
            total,
            free,
            tags: h.tags.clone(),
            busy_until: None,
        })
    }

    /// Reads one host again. False when it joined or left the rows, or its
    /// size changed: then the host rows are rebuilt.
    fn host_changed(&mut self, farm: &Farm, id: HostId) -> bool {
        let slot = farm.hosts.get(&id).and_then(|h| self.host_slot(h));
        match (self.host_row.get(&id), slot) {
            (None, None) => true,
            (Some(&r), Some(mut slot)) => {
                let row = &mut self.snap.hosts[r as usize];
                if row.total != slot.total {
                    return false;
                }
                self.free_cores = self.free_cores - row.free.cores as u64 + slot.free.cores as u64;
                slot.busy_until = row.busy_until;
                *row = slot;
                true
            }
            _ => false,
        }
    }

    /// Panics unless the rows say what a snapshot built from scratch says.
    #[cfg(any(test, debug_assertions))]
    pub fn check(&self, farm: &Farm, now: Millis) {
        let mut fresh = Mirror::default();
        fresh.refresh(
            farm,
            Changes {
                hosts: Touched::All,
                jobs: Touched::All,
                layers: Touched::All,
            },
            now,
        );
        let (a, b) = (canonical(&self.snap), canonical(&fresh.snap));
        assert!(
            a == b,
            "the scheduler's mirror drifted from the farm:\nmirror: {a:#?}\nfresh: {b:#?}"
        );
        assert_eq!(self.view().is_some(), fresh.view().is_some());
    }
}

/// A snapshot in an order that does not depend on its history: hosts by
/// id, each job with its live demands; rows with nothing ready dropped.
#[cfg(any(test, debug_assertions))]
fn canonical(s: &Snapshot) -> impl PartialEq + std::fmt::Debug {
    let mut hosts = s.hosts.clone();
    hosts.sort_by_key(|h| h.id);
    let mut jobs: Vec<(JobSlot, Vec<Demand>)> = s
        .jobs
        .iter()
        .enumerate()
        .map(|(j, slot)| {
            let mut ds: Vec<Demand> = s
                .demands
                .iter()
                .filter(|d| d.job == j as u32 && d.ready > 0)
                .map(|d| Demand {
                    job: 0,
                    ..d.clone()
                })
                .collect();
            ds.sort_by_key(|d| d.layer_index);
            (slot.clone(), ds)
        })
        .filter(|(_, ds)| !ds.is_empty())
        .collect();
    jobs.sort_by_key(|(j, _)| j.id);
    (
        (
            s.now,
            s.config.clone(),
            s.allocations.clone(),
            s.shows.clone(),
        ),
        (s.limits.clone(), s.reservations.clone(), hosts, jobs),
    )
}
