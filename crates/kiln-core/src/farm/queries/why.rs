//! Why a layer's waiting frames wait, in terms a user can act on: the
//! farm-level holds (pauses, a disabled show) first, then what the hosts
//! allow now, then the reason the last scheduling pass gave.
//!
//! A pass runs only while some host has free cores, so its reason can be
//! stale (a limit freed or reached, a cap lifted, every host locked
//! since). Limits, caps and shares are read from the farm as it is now;
//! only what needs the scheduler (a reservation, no fitting host left)
//! comes from the last pass, and only while it still holds.

use super::*;
use crate::sched::Wait;

impl Farm {
    /// The reason for a layer's WAITING frames that are free to run (not
    /// held by a dependency, not winding down).
    pub(super) fn layer_why(&self, le: &LayerEntry) -> Why {
        let entry = &self.jobs[&le.layer.job];
        let job = &entry.job;
        if job.paused {
            return Why::new(WhyKind::JobPaused, None);
        }
        if le.layer.paused {
            return Why::new(WhyKind::LayerPaused, None);
        }
        if self
            .structure
            .shows
            .get(&job.show)
            .is_some_and(|s| !s.enabled)
        {
            return Why::new(WhyKind::ShowDisabled, Some(job.show.clone()));
        }
        let needs = le.needs();
        let hosts = self.hosts_for(le, job);
        if hosts.usable_fit == 0 {
            return if hosts.unavailable_fit > 0 {
                Why::new(WhyKind::HostsUnavailable, None)
            } else if hosts.avoided_fit > 0 {
                Why::new(WhyKind::Avoided, None)
            } else if hosts.usable == 0 {
                Why::new(WhyKind::NoHosts, Some(job.facility.clone()))
            } else {
                Why::new(WhyKind::NoFit, None)
            };
        }
        // Holds that the farm knows now come first, whatever the last pass
        // said: no pass runs while every host is full, so a limit reached
        // or a cap hit since then would otherwise read as "busy".
        if let Some(name) = le.layer.limits.iter().find(|n| self.limit_full(n)) {
            return Why::new(WhyKind::Limit, Some(name.clone()));
        }
        if job.max_cores.is_some_and(|m| entry.used + needs.cores > m) {
            return Why::new(WhyKind::JobCap, None);
        }
        if let Some(alloc) = hosts
            .fit_allocations
            .iter()
            .all(|a| {
                !self
                    .structure
                    .subs
                    .contains_key(&(job.show.clone(), a.clone()))
            })
            .then(|| hosts.fit_allocations.first())
            .flatten()
        {
            return Why::new(
                WhyKind::NotSubscribed,
                Some(format!("{}/{alloc}", job.show)),
            );
        }
        if self.share_full(job, needs.cores) {
            return Why::new(WhyKind::Share, Some(job.show.clone()));
        }
        match &le.why {
            Some(Wait::Reserved(h))
                if self
                    .reservations
                    .iter()
                    .any(|r| r.layer == le.layer.id && r.host == *h) =>
            {
                Why::new(WhyKind::Reserved, Some(self.host_name(*h)))
            }
            // The scheduler may know more about fit than the totals
            // checked here (hosts it keeps for other work).
            Some(Wait::NoFit) => Why::new(WhyKind::NoFit, None),
            // Busy, stale, or no pass has looked at it yet: hosts that
            // could run it exist, so it waits for one to have room.
            _ => Why::new(WhyKind::Busy, None),
        }
    }

    /// A host's name, or its id if it is gone.
    pub(super) fn host_name(&self, id: HostId) -> String {
        self.hosts
            .get(&id)
            .map_or_else(|| id.to_string(), |h| h.host.report.name.clone())
    }

    /// Whether the scheduler may give the host work now.
    pub(super) fn usable(h: &HostEntry) -> bool {
        h.session.is_some()
            && !h.draining
            && h.host.state == HostState::Up
            && h.host.lock == LockState::Open
    }

    fn in_facility(&self, h: &HostEntry, facility: &str) -> bool {
        self.structure
            .allocations
            .get(&h.host.allocation)
            .is_some_and(|a| a.facility == facility)
    }

    /// Counts the hosts of the job's facility: usable ones, and those that
    /// could run a frame of the layer (all it asks for fits in what the
    /// host offers and its tags match): usable, unusable, or usable but
    /// avoided by the job.
    fn hosts_for(&self, le: &LayerEntry, job: &Job) -> HostCounts {
        let needs = le.needs();
        let mut c = HostCounts::default();
        for h in self
            .hosts
            .values()
            .filter(|h| self.in_facility(h, &job.facility))
        {
            let usable = Self::usable(h);
            c.usable += usize::from(usable);
            let fits = needs.fits_in(&h.host.offers())
                && le.layer.tags.iter().all(|t| t.satisfied_by(&h.tags));
            if !fits {
                continue;
            }
            match (usable, job.avoid_hosts.contains(&h.host.id)) {
                (true, false) => {
                    c.usable_fit += 1;
                    if !c.fit_allocations.contains(&h.host.allocation) {
                        c.fit_allocations.push(h.host.allocation.clone());
                    }
                }
                (true, true) => c.avoided_fit += 1,
                (false, _) => c.unavailable_fit += 1,
            }
        }
        c
    }

    pub(super) fn limit_full(&self, name: &str) -> bool {
        self.structure
            .limits
            .get(name)
            .is_some_and(|l| self.usage.limit(name) >= l.max)
    }

    /// Whether no subscription of the job's show in its facility has room
    /// for `cores` more under its burst.
    pub(super) fn share_full(&self, job: &Job, cores: Centicores) -> bool {
        !self.structure.subs.values().any(|s| {
            s.show == job.show
                && self
                    .structure
                    .allocations
                    .get(&s.allocation)
                    .is_some_and(|a| a.facility == job.facility)
                && self.usage.sub(&s.show, &s.allocation).saturating_add(cores) <= s.burst
        })
    }
}

#[derive(Default)]
struct HostCounts {
    /// The allocations of the usable hosts that fit, in the order found.
    fit_allocations: Vec<String>,
    usable: usize,
    usable_fit: usize,
    unavailable_fit: usize,
    avoided_fit: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::{Admin, WorkerEvent};
    use crate::link::WorkerMsg;
    use crate::spec::{parse_and_validate, Format, SubmitContext};

    fn host(farm: &mut Farm, session: u64, name: &str, cores: u32) {
        let host = HostReport {
            name: name.into(),
            cores: cores * 100,
            memory_kb: 64 << 20,
            ..Default::default()
        };
        let msg = WorkerMsg::Register {
            host,
            running: vec![],
        };
        farm.worker_event(WorkerEvent::Message { session, msg }, 0);
    }

    fn submit(farm: &mut Farm, layer: &str) -> String {
        let yaml = format!("name: j\nlayers:\n  - {{name: a, command: x, frames: 1-2, {layer}}}\n");
        let job = parse_and_validate(&yaml, Format::Yaml, &SubmitContext::default()).unwrap();
        farm.submit(job, 0).unwrap().0.to_string()
    }

    fn pass(farm: &mut Farm) {
        if let Some(snap) = farm.snapshot(1) {
            let plan = crate::sched::plan(snap);
            farm.apply_plan(&plan, 1);
        }
    }

    /// The reasons of the job's WAITING frames, as kinds and names.
    fn whys(farm: &Farm, job: &str) -> Vec<(WhyKind, Option<String>)> {
        farm.list_frames(job, None, Some(DisplayState::Waiting))
            .unwrap()
            .into_iter()
            .map(|f| {
                let w = f.why.expect("a waiting frame says why");
                (w.kind, w.name)
            })
            .collect()
    }

    fn admin(farm: &mut Farm, cmd: Admin) {
        farm.admin(cmd, 0).unwrap();
    }

    #[test]
    fn a_limit_reached_while_the_farm_is_full_shows_without_a_pass() {
        let mut farm = Farm::new(FarmConfig::default());
        host(&mut farm, 1, "h1", 1);
        admin(
            &mut farm,
            Admin::PutLimit {
                name: "lic".into(),
                max: 5,
            },
        );
        let job = submit(&mut farm, "limits: [lic]");
        pass(&mut farm);
        assert_eq!(whys(&farm, &job), [(WhyKind::Busy, None)]);
        // The farm is full, so no pass runs; the limit is lowered under
        // what runs: the frame now waits for the limit, not for a host.
        assert!(farm.snapshot(2).is_none());
        admin(
            &mut farm,
            Admin::PutLimit {
                name: "lic".into(),
                max: 1,
            },
        );
        assert_eq!(whys(&farm, &job), [(WhyKind::Limit, Some("lic".into()))]);
    }

    #[test]
    fn a_full_limit_holds_frames_until_it_frees() {
        let mut farm = Farm::new(FarmConfig::default());
        host(&mut farm, 1, "h1", 4);
        let max = |max| Admin::PutLimit {
            name: "lic".into(),
            max,
        };
        admin(&mut farm, max(1));
        let job = submit(&mut farm, "limits: [lic]");
        pass(&mut farm);
        assert_eq!(whys(&farm, &job), [(WhyKind::Limit, Some("lic".into()))]);
        let d = farm.job_detail(&job).unwrap();
        assert_eq!(d.layers[0].why.as_ref().unwrap().kind, WhyKind::Limit);
        let s = farm.structure();
        assert_eq!((s.limits[0].used, s.limits[0].max), (1, 1));
        assert_eq!(s.subscriptions[0].used, 100);
        assert_eq!(
            (s.allocations[0].hosts_up, s.allocations[0].cores_used),
            (1, 100)
        );
        // Raised, the limit no longer holds it, before any pass says so.
        admin(&mut farm, max(2));
        assert_eq!(whys(&farm, &job), [(WhyKind::Busy, None)]);
        pass(&mut farm);
        assert!(whys(&farm, &job).is_empty());
    }

    #[test]
    fn hosts_that_cannot_take_work_are_named() {
        let mut farm = Farm::new(FarmConfig::default());
        let job = submit(&mut farm, "cores: 2");
        assert_eq!(
            whys(&farm, &job)[0],
            (WhyKind::NoHosts, Some("local".into()))
        );
        host(&mut farm, 1, "h1", 4);
        farm.set_lock("h1", true, 0).unwrap();
        pass(&mut farm);
        assert_eq!(whys(&farm, &job)[0].0, WhyKind::HostsUnavailable);
        farm.set_lock("h1", false, 0).unwrap();
        admin(
            &mut farm,
            Admin::Repair {
                host: "h1".into(),
                on: true,
            },
        );
        assert_eq!(whys(&farm, &job)[0].0, WhyKind::HostsUnavailable);
        admin(
            &mut farm,
            Admin::Repair {
                host: "h1".into(),
                on: false,
            },
        );
        let wide = submit(&mut farm, "cores: 64");
        pass(&mut farm);
        assert!(whys(&farm, &job).is_empty());
        assert_eq!(whys(&farm, &wide), vec![(WhyKind::NoFit, None); 2]);
    }

    #[test]
    fn a_show_without_a_subscription_says_so_and_how_to_subscribe() {
        let mut farm = Farm::new(FarmConfig::default());
        host(&mut farm, 1, "h1", 4);
        let alloc = crate::structure::DEFAULT_ALLOCATION;
        // The show's first job subscribes it everywhere; a wrangler undoes it.
        let job = submit(&mut farm, "cores: 1");
        admin(
            &mut farm,
            Admin::RemoveSubscription {
                show: "default".into(),
                allocation: alloc.into(),
            },
        );
        pass(&mut farm);
        let name = format!("default/{alloc}");
        assert_eq!(
            whys(&farm, &job)[0],
            (WhyKind::NotSubscribed, Some(name.clone()))
        );
        let text = Why::new(WhyKind::NotSubscribed, Some(name)).text;
        assert!(
            text.contains(&format!("not subscribed to allocation {alloc}"))
                && text.contains(&format!("kiln sub set default {alloc} --size")),
            "{text}"
        );
    }

    #[test]
    fn pauses_and_disabled_shows_come_first() {
        let mut farm = Farm::new(FarmConfig::default());
        host(&mut farm, 1, "h1", 1);
        let job = submit(&mut farm, "cores: 1");
        pass(&mut farm);
        assert_eq!(whys(&farm, &job), [(WhyKind::Busy, None)]);
        admin(
            &mut farm,
            Admin::PutShow {
                name: "default".into(),
                enabled: Some(false),
                default_priority: None,
                default_max_cores: None,
            },
        );
        assert_eq!(
            whys(&farm, &job),
            [(WhyKind::ShowDisabled, Some("default".into()))]
        );
        farm.act(crate::farm::Action::Pause, &job, &[], None, "u", 2)
            .unwrap();
        assert_eq!(whys(&farm, &job), [(WhyKind::JobPaused, None)]);
    }
}
