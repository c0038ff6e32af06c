//! The farm's gauges for `GET /metrics` ([`FarmMetrics`]): one walk over
//! the hosts and one over the layers, never one per layer over the hosts,
//! so a scrape of a big farm costs about what `kiln jobs` does. Why frames
//! wait is therefore the cheap part of `layer_why`: the farm's holds as
//! they are now (pauses, a disabled show, no host up in the facility,
//! limits, caps, shares), then the reason the last scheduling pass gave,
//! without the walk over hosts that tells a locked host from a busy one.

use super::*;
use crate::sched::Wait;

impl Farm {
    /// The farm's gauges now. See [`FarmMetrics`] for what each means.
    pub fn metrics(&self) -> FarmMetrics {
        let mut allocs: BTreeMap<String, AllocMetrics> = self
            .structure
            .allocations
            .values()
            .map(|a| {
                let m = AllocMetrics {
                    name: a.name.clone(),
                    facility: a.facility.clone(),
                    ..AllocMetrics::default()
                };
                (a.name.clone(), m)
            })
            .collect();
        // Keyed by the state's rank, to keep the order stable.
        let mut hosts: BTreeMap<(String, u8, bool), u32> = BTreeMap::new();
        // Facilities with a host that can take work.
        let mut open: BTreeSet<String> = BTreeSet::new();
        for h in self.hosts.values() {
            let name = &h.host.allocation;
            let locked = h.host.lock == LockState::Locked;
            *hosts
                .entry((name.clone(), rank(h.host.state), locked))
                .or_default() += 1;
            let a = allocs.entry(name.clone()).or_insert_with(|| AllocMetrics {
                name: name.clone(),
                ..AllocMetrics::default()
            });
            a.cores_busy += h.used.cores;
            if h.host.state == HostState::Up {
                a.cores_total += h.host.report.cores;
            }
            if Self::usable(h) {
                a.cores_idle += h.free().cores;
                open.insert(a.facility.clone());
            }
        }

        let mut waiting: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
        let mut frames = StateCounts::default();
        // The least a frame waiting for a host asks for, resource by resource.
        let mut least: Option<Resources> = None;
        // (show, facility) → cores its frames waiting for a host ask for.
        let mut wanted: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for e in self.jobs.values() {
            let show = &e.job.show;
            for lid in &e.layers {
                let le = &self.layers[lid];
                let mut c = self.layer_counts(le);
                // A killed job's frames that never ran never will.
                if e.job.state == JobState::Killed {
                    (c.waiting, c.depend) = (0, 0);
                }
                frames.waiting += c.waiting;
                frames.depend += c.depend;
                frames.running += c.running;
                frames.succeeded += c.succeeded;
                frames.dead += c.dead;
                frames.eaten += c.eaten;
                if c.depend > 0 {
                    *waiting
                        .entry((show.clone(), WhyKind::Depend.as_str()))
                        .or_default() += c.depend as u64;
                }
                if c.waiting == 0 {
                    continue;
                }
                let why = self.metrics_why(le, e, &open);
                *waiting.entry((show.clone(), why.as_str())).or_default() += c.waiting as u64;
                if wants_a_host(why) {
                    let needs = le.needs();
                    least = Some(least.map_or(needs, |l| smallest(l, needs)));
                    *wanted.entry((show, &e.job.facility)).or_default() +=
                        c.waiting as u64 * needs.cores as u64;
                }
            }
        }

        if let Some(least) = least {
            let other = Resources { cores: 0, ..least };
            for h in self.hosts.values().filter(|h| Self::usable(h)) {
                let free = h.free();
                if free.cores > 0 && !other.fits_in(&free) {
                    if let Some(a) = allocs.get_mut(&h.host.allocation) {
                        a.cores_stranded += free.cores;
                    }
                }
            }
        }

        // Each show's wanted cores go to its subscriptions in the job's
        // facility, the one with most room under its burst first, each up to
        // that room: a host added where the show is at its burst would get
        // none of its frames.
        for ((show, facility), mut cores) in wanted {
            let mut room: Vec<(u64, &str)> = self
                .structure
                .subs
                .values()
                .filter(|s| s.show == show)
                .filter(|s| {
                    allocs
                        .get(&s.allocation)
                        .is_some_and(|a| a.facility == facility)
                })
                .map(|s| {
                    let used = self.usage.sub(show, &s.allocation);
                    (s.burst.saturating_sub(used) as u64, s.allocation.as_str())
                })
                .collect();
            room.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
            for (r, alloc) in room {
                let take = cores.min(r);
                if let Some(a) = allocs.get_mut(alloc) {
                    a.wanted_cores = a
                        .wanted_cores
                        .saturating_add(take.min(u32::MAX as u64) as u32);
                }
                cores -= take;
            }
        }

        FarmMetrics {
            allocations: allocs.into_values().collect(),
            hosts: hosts
                .into_iter()
                .map(|((allocation, state, locked), count)| HostCount {
                    allocation,
                    state: STATES[state as usize],
                    locked,
                    count,
                })
                .collect(),
            waiting: waiting
                .into_iter()
                .map(|((show, reason), frames)| WaitingCount {
                    show,
                    reason: WhyKind::parse(reason).expect("made by as_str"),
                    frames,
                })
                .collect(),
            shares: self
                .structure
                .subs
                .values()
                .map(|s| ShareMetrics {
                    show: s.show.clone(),
                    allocation: s.allocation.clone(),
                    used: self.usage.sub(&s.show, &s.allocation),
                    size: s.size,
                    burst: s.burst,
                })
                .collect(),
            frames,
            jobs: self.jobs.len() as u64,
            // The server adds its webhooks; the farm knows none.
            webhooks: Vec::new(),
        }
    }

    /// Why a layer's frames free to run wait, as `layer_why` says it but
    /// for the hosts: `open` holds the facilities with a host that can take
    /// work, and the last pass's reason stands for the rest.
    fn metrics_why(&self, le: &LayerEntry, entry: &JobEntry, open: &BTreeSet<String>) -> WhyKind {
        let job = &entry.job;
        let needs = le.needs();
        let shows = &self.structure.shows;
        if job.paused {
            WhyKind::JobPaused
        } else if le.layer.paused {
            WhyKind::LayerPaused
        } else if shows.get(&job.show).is_some_and(|s| !s.enabled) {
            WhyKind::ShowDisabled
        } else if !open.contains(&job.facility) {
            WhyKind::NoHosts
        } else if le.layer.limits.iter().any(|n| self.limit_full(n)) {
            WhyKind::Limit
        } else if job.max_cores.is_some_and(|m| entry.used + needs.cores > m) {
            WhyKind::JobCap
        } else if !self.structure.subs.values().any(|s| {
            s.show == job.show
                && self
                    .structure
                    .allocations
                    .get(&s.allocation)
                    .is_some_and(|a| a.facility == job.facility)
        }) {
            WhyKind::NotSubscribed
        } else if self.share_full(job, needs.cores) {
            WhyKind::Share
        } else {
            match &le.why {
                Some(Wait::Reserved(h))
                    if self
                        .reservations
                        .iter()
                        .any(|r| r.layer == le.layer.id && r.host == *h) =>
                {
                    WhyKind::Reserved
                }
                Some(Wait::NoFit) => WhyKind::NoFit,
                _ => WhyKind::Busy,
            }
        }
    }
}

const STATES: [HostState; 3] = [HostState::Up, HostState::Down, HostState::Repair];

fn rank(s: HostState) -> u8 {
    STATES.iter().position(|&t| t == s).unwrap_or(0) as u8
}

/// Whether frames waiting for this reason would start on another host.
fn wants_a_host(why: WhyKind) -> bool {
    matches!(
        why,
        WhyKind::Busy | WhyKind::NoFit | WhyKind::NoHosts | WhyKind::Reserved
    )
}

fn smallest(a: Resources, b: Resources) -> Resources {
    Resources {
        cores: a.cores.min(b.cores),
        memory_kb: a.memory_kb.min(b.memory_kb),
        gpus: a.gpus.min(b.gpus),
        gpu_memory_kb: a.gpu_memory_kb.min(b.gpu_memory_kb),
        scratch_kb: a.scratch_kb.min(b.scratch_kb),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::{Action, Admin, WorkerEvent};
    use crate::link::WorkerMsg;
    use crate::spec::{parse_and_validate, Format, SubmitContext};
    use crate::structure::DEFAULT_ALLOCATION;

    fn host(farm: &mut Farm, session: u64, name: &str, cores: u32, memory_gb: u64) {
        let host = HostReport {
            name: name.into(),
            cores: cores * 100,
            memory_kb: memory_gb << 20,
            ..Default::default()
        };
        let msg = WorkerMsg::Register {
            host,
            running: vec![],
        };
        farm.worker_event(WorkerEvent::Message { session, msg }, 0);
    }

    fn submit(farm: &mut Farm, yaml: &str) -> String {
        let job = parse_and_validate(yaml, Format::Yaml, &SubmitContext::default()).unwrap();
        farm.submit(job, 0).unwrap().0.to_string()
    }

    fn pass(farm: &mut Farm) {
        if let Some(snap) = farm.snapshot(1) {
            let plan = crate::sched::plan(snap);
            farm.apply_plan(&plan, 1);
        }
    }

    fn waiting(m: &FarmMetrics) -> Vec<(&str, &str, u64)> {
        m.waiting
            .iter()
            .map(|w| (w.show.as_str(), w.reason.as_str(), w.frames))
            .collect()
    }

    /// A big host and a small one short of memory; a job of 2 GiB frames
    /// fills the big one, and only it.
    fn farm() -> Farm {
        let mut farm = Farm::new(FarmConfig::default());
        host(&mut farm, 1, "big", 4, 64);
        host(&mut farm, 2, "small", 2, 1);
        submit(
            &mut farm,
            "name: a\nlayers: [{name: r, command: x, frames: 1-10, cores: 1, memory: 2G}]\n",
        );
        farm
    }

    #[test]
    fn cores_waiting_frames_and_stranded_cores_per_allocation() {
        let mut farm = farm();
        let paused = submit(
            &mut farm,
            "name: b\nlayers: [{name: r, command: x, frames: 1-3, memory: 2G}]\n",
        );
        farm.act(Action::Pause, &paused, &[], None, "u", 0).unwrap();
        submit(
            &mut farm,
            "name: c\nlayers:\n  - {name: first, command: x, frames: 1-2, memory: 2G}\n  - {name: then, command: x, frames: 1-5, depends: [first]}\n",
        );
        pass(&mut farm);
        let m = farm.metrics();
        let a = &m.allocations[0];
        assert_eq!(a.name, DEFAULT_ALLOCATION);
        assert_eq!((a.cores_total, a.cores_busy, a.cores_idle), (600, 400, 200));
        // The small host's two cores are free, but no waiting frame fits
        // in its 1 GiB.
        assert_eq!(a.cores_stranded, 200);
        assert_eq!(m.frames.running, 4);
        assert_eq!(m.frames.depend, 5);
        assert_eq!(m.frames.total(), 20);
        assert_eq!(
            waiting(&m),
            [
                ("default", "busy", 8),
                ("default", "depend", 5),
                ("default", "job_paused", 3)
            ]
        );
        // The busy frames want a core each; paused and held ones want none.
        assert_eq!(a.wanted_cores, 800);
        assert_eq!(
            m.hosts,
            [HostCount {
                allocation: DEFAULT_ALLOCATION.into(),
                state: HostState::Up,
                locked: false,
                count: 2,
            }]
        );
        assert_eq!(m.jobs, 3);
        assert_eq!(m.shares.len(), 1);
        assert_eq!(
            (m.shares[0].show.as_str(), m.shares[0].used),
            ("default", 400)
        );
    }

    #[test]
    fn a_frame_that_fits_the_small_host_strands_nothing() {
        let mut farm = farm();
        submit(
            &mut farm,
            "name: d\nlayers: [{name: r, command: x, frames: 1-10, cores: 1, memory: 512M}]\n",
        );
        // Before any pass: nothing starts, but the small frames fit.
        let m = farm.metrics();
        assert_eq!(m.allocations[0].cores_stranded, 0);
        assert_eq!(m.allocations[0].cores_idle, 600);
    }

    #[test]
    fn the_autoscaling_signal_stops_at_the_shows_burst() {
        let mut farm = farm();
        pass(&mut farm);
        assert_eq!(farm.metrics().allocations[0].wanted_cores, 600);
        farm.admin(
            Admin::PutSubscription {
                show: "default".into(),
                allocation: DEFAULT_ALLOCATION.into(),
                size: 0,
                burst: 500,
            },
            0,
        )
        .unwrap();
        // It holds 4 cores; one more is all its burst allows.
        assert_eq!(farm.metrics().allocations[0].wanted_cores, 100);
        farm.admin(
            Admin::PutSubscription {
                show: "default".into(),
                allocation: DEFAULT_ALLOCATION.into(),
                size: 0,
                burst: 400,
            },
            0,
        )
        .unwrap();
        let m = farm.metrics();
        assert_eq!(m.allocations[0].wanted_cores, 0);
        assert_eq!(waiting(&m), [("default", "share", 6)]);
    }

    #[test]
    fn pickups_count_from_the_submit_or_the_last_attempts_end() {
        let mut farm = farm();
        submit(
            &mut farm,
            "name: c\nlayers:\n  - {name: first, command: x, frames: 1, memory: 2G}\n  - {name: then, command: x, frames: 1, depends: [first]}\n",
        );
        if let Some(snap) = farm.snapshot(250) {
            let plan = crate::sched::plan(snap);
            farm.apply_plan(&plan, 250);
        }
        // Submitted at 0, started at 250; nothing held by a dependency ran.
        assert_eq!(farm.take_pickups(), [250; 4]);
        assert!(farm.take_pickups().is_empty());
    }

    #[test]
    fn no_host_up_is_its_own_reason() {
        let mut farm = Farm::new(FarmConfig::default());
        let job = submit(
            &mut farm,
            "name: a\nlayers: [{name: r, command: x, frames: 1-3, cores: 2}]\n",
        );
        let m = farm.metrics();
        assert_eq!(waiting(&m), [("default", "no_hosts", 3)]);
        assert_eq!(m.allocations[0].wanted_cores, 600);
        assert_eq!(m.allocations[0].cores_total, 0);
        // Killed, its frames wait for nothing and want nothing.
        farm.act(Action::Kill, &job, &[], None, "u", 0).unwrap();
        let m = farm.metrics();
        assert_eq!(waiting(&m), []);
        assert_eq!(m.frames.waiting, 0);
        assert_eq!(m.allocations[0].wanted_cores, 0);
    }
}
