//! The policy, point by point: a farm and its work in, the expected plan
//! out; then the invariants over random farms.

use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

const GB: u64 = 1 << 20;

/// Builds snapshots: one allocation `site.main` unless more are added.
struct Farm {
    snap: Snapshot,
}

fn farm() -> Farm {
    Farm {
        snap: Snapshot {
            now: 1_000_000,
            allocations: vec![AllocSlot {
                name: "site.main".into(),
                facility: "site".into(),
            }],
            ..Default::default()
        },
    }
}

fn res(cores: u32, mem_gb: u64, gpus: u32) -> Resources {
    Resources {
        cores: cores * 100,
        memory_kb: mem_gb * GB,
        gpus,
        gpu_memory_kb: gpus as u64 * 8 * GB,
        scratch_kb: 0,
    }
}

impl Farm {
    fn host(&mut self, id: i64, cores: u32, mem_gb: u64, gpus: u32, tags: &[&str]) -> &mut Self {
        let mut tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        tags.sort();
        self.snap.hosts.push(HostSlot {
            id: HostId(id),
            alloc: 0,
            total: res(cores, mem_gb, gpus),
            free: res(cores, mem_gb, gpus),
            tags: tags.into(),
            busy_until: Some(self.snap.now),
        });
        self
    }

    /// Takes `cores` and `mem_gb` off the last host, as if frames ran there.
    fn busy(&mut self, cores: u32, mem_gb: u64, until: Option<Millis>) -> &mut Self {
        let h = self.snap.hosts.last_mut().unwrap();
        h.free.sub(&res(cores, mem_gb, 0));
        h.busy_until = until;
        self
    }

    fn show(&mut self, name: &str, size: u32, burst: u32, used: u32) -> u32 {
        self.snap.shows.push(ShowSlot {
            name: name.into(),
            subs: vec![SubSlot {
                alloc: 0,
                size: size * 100,
                burst: burst * 100,
                used: used * 100,
            }],
        });
        self.snap.shows.len() as u32 - 1
    }

    fn job(&mut self, id: i64, show: u32, priority: i32) -> u32 {
        self.snap.jobs.push(JobSlot {
            id: JobId(id),
            show,
            facility: "site".into(),
            priority,
            submitted_at: id,
            used: 0,
            max_cores: None,
            avoid: vec![],
        });
        self.snap.jobs.len() as u32 - 1
    }

    fn demand(
        &mut self,
        job: u32,
        layer: i64,
        cores: CoreRequest,
        mem_gb: u64,
        ready: u32,
    ) -> &mut Demand {
        self.snap.demands.push(Demand {
            job,
            layer: LayerId(layer),
            layer_index: layer as u32,
            needs: Resources {
                cores: cores.min(),
                memory_kb: mem_gb * GB,
                ..Default::default()
            },
            cores,
            tags: vec![],
            limits: vec![],
            ready,
            starved_since: None,
            runtime_ms: None,
            recent_hosts: Default::default(),
            shun: Default::default(),
        });
        self.snap.demands.last_mut().unwrap()
    }

    fn plan(&self) -> Outcome {
        let plan = plan(&self.snap);
        check_invariants(&self.snap, &plan);
        Outcome { plan }
    }
}

fn one(c: u32) -> CoreRequest {
    CoreRequest::Exact(c * 100)
}

struct Outcome {
    plan: Plan,
}

impl Outcome {
    fn cores_of_layer(&self, layer: i64) -> u32 {
        self.plan
            .assignments
            .iter()
            .filter(|a| a.layer == LayerId(layer))
            .map(|a| a.grant.cores * a.count)
            .sum::<u32>()
            / 100
    }
    fn hosts_of_layer(&self, layer: i64) -> Vec<i64> {
        let mut h: Vec<i64> = self
            .plan
            .assignments
            .iter()
            .filter(|a| a.layer == LayerId(layer))
            .map(|a| a.host.0)
            .collect();
        h.dedup();
        h
    }
    fn why(&self, layer: i64) -> Option<&Wait> {
        self.plan
            .waits
            .iter()
            .find(|w| w.0 == LayerId(layer))
            .map(|w| &w.1)
    }
}

#[test]
fn shows_get_their_sizes_under_contention() {
    let mut f = farm();
    for h in 0..10 {
        f.host(h, 10, 64, 0, &[]);
    }
    let a = f.show("a", 60, 100, 0);
    let b = f.show("b", 40, 100, 0);
    let ja = f.job(1, a, 100);
    let jb = f.job(2, b, 100);
    f.demand(ja, 1, one(1), 1, 1000);
    f.demand(jb, 2, one(1), 1, 1000);
    let out = f.plan();
    assert_eq!((out.cores_of_layer(1), out.cores_of_layer(2)), (60, 40));
}

#[test]
fn shows_below_their_size_come_first() {
    let mut f = farm();
    f.host(1, 10, 64, 0, &[]);
    let a = f.show("a", 50, 100, 50);
    let b = f.show("b", 50, 100, 0);
    let ja = f.job(1, a, 100);
    let jb = f.job(2, b, 1000);
    f.demand(ja, 1, one(1), 1, 100);
    f.demand(jb, 2, one(1), 1, 100);
    let out = f.plan();
    assert_eq!((out.cores_of_layer(1), out.cores_of_layer(2)), (0, 10));
}

#[test]
fn burst_is_a_hard_cap_and_idle_capacity_goes_to_who_has_work() {
    let mut f = farm();
    for h in 0..10 {
        f.host(h, 10, 64, 0, &[]);
    }
    let capped = f.show("capped", 10, 30, 0);
    let idle = f.show("idle", 80, 100, 0);
    let open = f.show("open", 10, 100, 0);
    let _ = idle; // subscribed, no work: its size is not kept empty
    let j1 = f.job(1, capped, 100);
    let j2 = f.job(2, open, 100);
    f.demand(j1, 1, one(1), 1, 1000);
    f.demand(j2, 2, one(1), 1, 1000);
    let out = f.plan();
    assert_eq!(out.cores_of_layer(1), 30, "capped at its burst");
    assert_eq!(out.cores_of_layer(2), 70, "the rest, nothing left idle");
    assert_eq!(out.why(1), Some(&Wait::Share));
}

#[test]
fn priority_is_a_weight_and_nobody_starves() {
    let mut f = farm();
    for h in 0..3 {
        f.host(h, 10, 64, 0, &[]);
    }
    let s = f.show("s", 30, 30, 0);
    let hi = f.job(1, s, 200);
    let lo = f.job(2, s, 100);
    f.demand(hi, 1, one(1), 1, 100);
    f.demand(lo, 2, one(1), 1, 100);
    let out = f.plan();
    assert_eq!((out.cores_of_layer(1), out.cores_of_layer(2)), (20, 10));

    let mut f = farm();
    for h in 0..101 {
        f.host(h, 1, 8, 0, &[]);
    }
    let s = f.show("s", 101, 101, 0);
    let hi = f.job(1, s, 1000);
    let lo = f.job(2, s, 1);
    f.demand(hi, 1, one(1), 1, 1000);
    f.demand(lo, 2, one(1), 1, 1000);
    let out = f.plan();
    assert!(
        out.cores_of_layer(2) >= 1,
        "a priority-1 job still gets cores"
    );
}

#[test]
fn equal_priority_is_first_come_first_served() {
    let mut f = farm();
    f.host(1, 1, 8, 0, &[]);
    let s = f.show("s", 1, 10, 0);
    let late = f.job(9, s, 100);
    let early = f.job(3, s, 100);
    f.demand(late, 1, one(1), 1, 5);
    f.demand(early, 2, one(1), 1, 5);
    let out = f.plan();
    assert_eq!(out.cores_of_layer(2), 1);
    assert_eq!(out.why(1), Some(&Wait::Busy));
}

#[test]
fn job_caps_and_limits_hold() {
    let mut f = farm();
    f.host(1, 32, 64, 0, &[]);
    let s = f.show("s", 32, 32, 0);
    let capped = f.job(1, s, 100);
    f.snap.jobs[capped as usize].max_cores = Some(500);
    let licensed = f.job(2, s, 100);
    f.snap.limits.push(LimitSlot {
        name: "nuke".into(),
        max: 3,
        used: 1,
    });
    f.demand(capped, 1, one(1), 1, 100);
    f.demand(licensed, 2, one(1), 1, 100).limits = vec![0];
    let out = f.plan();
    assert_eq!(out.cores_of_layer(1), 5);
    assert_eq!(out.why(1), Some(&Wait::JobCap));
    assert_eq!(out.cores_of_layer(2), 2, "3 licenses, one in use");
    assert_eq!(out.why(2), Some(&Wait::Limit("nuke".into())));
}

#[test]
fn tags_are_required_and_no_fit_is_told_apart_from_busy() {
    let mut f = farm();
    f.host(1, 8, 64, 0, &["linux"]);
    f.host(2, 8, 64, 0, &["linux", "maya"]);
    let s = f.show("s", 16, 16, 0);
    let j = f.job(1, s, 100);
    f.demand(j, 1, one(1), 1, 100).tags = vec![TagReq {
        any_of: vec!["maya".into(), "houdini".into()],
    }];
    f.demand(j, 2, one(1), 1, 100).tags = vec![TagReq {
        any_of: vec!["nuke".into()],
    }];
    let out = f.plan();
    assert_eq!(out.hosts_of_layer(1), vec![2]);
    assert_eq!(out.why(1), Some(&Wait::Busy));
    assert_eq!(out.why(2), Some(&Wait::NoFit));
}

#[test]
fn packing_keeps_cores_and_memory_in_balance() {
    let mut f = farm();
    f.host(1, 8, 8, 0, &[]);
    f.host(2, 8, 64, 0, &[]);
    let s = f.show("s", 16, 16, 0);
    let j = f.job(1, s, 100);
    // 1 core and 8G: on host 1 it would strand 7 cores with no memory.
    f.demand(j, 1, one(1), 8, 1);
    let out = f.plan();
    assert_eq!(out.hosts_of_layer(1), vec![2]);
}

#[test]
fn gpu_hosts_are_kept_for_gpu_work() {
    let mut f = farm();
    f.host(1, 16, 64, 2, &[]);
    f.host(2, 4, 64, 0, &[]);
    let s = f.show("s", 20, 20, 0);
    let j = f.job(1, s, 100);
    f.demand(j, 1, one(1), 1, 6);
    let out = f.plan();
    // The CPU host fills first; only the overflow goes to the GPU host.
    let on_cpu: u32 = out
        .plan
        .assignments
        .iter()
        .filter(|a| a.host == HostId(2))
        .map(|a| a.count)
        .sum();
    assert_eq!(on_cpu, 4);
    assert_eq!(out.cores_of_layer(1), 6);
}

#[test]
fn a_host_that_just_ran_the_layer_is_preferred() {
    let mut f = farm();
    for h in 1..=4 {
        f.host(h, 8, 64, 0, &[]);
    }
    let s = f.show("s", 32, 32, 0);
    let j = f.job(1, s, 100);
    f.demand(j, 1, one(1), 1, 1).recent_hosts = [HostId(3)].into_iter().collect();
    assert_eq!(f.plan().hosts_of_layer(1), vec![3]);
}

/// Host 1 fits a 2-core frame tightest, so best fit picks it; the layer's
/// frames failed there on the job's own account.
fn shunning_farm() -> Farm {
    let mut f = farm();
    f.host(1, 2, 8, 0, &[]);
    f.host(2, 8, 32, 0, &[]);
    f
}

#[test]
fn a_host_where_the_layer_failed_on_its_own_account_is_shunned_while_another_could_run_it() {
    let mut f = shunning_farm();
    let s = f.show("s", 32, 32, 0);
    let j = f.job(1, s, 100);
    f.demand(j, 1, one(2), 8, 1);
    assert_eq!(f.plan().hosts_of_layer(1), vec![1], "best fit, unshunned");
    f.snap.demands[0].shun = [HostId(1)].into_iter().collect();
    assert_eq!(f.plan().hosts_of_layer(1), vec![2]);

    // The other host is busy: the frame waits for it rather than go back
    // to fail where it failed.
    let mut f = shunning_farm();
    f.busy(8, 0, None);
    let s = f.show("s", 32, 32, 0);
    let j = f.job(1, s, 100);
    f.demand(j, 1, one(2), 8, 1).shun = [HostId(1)].into_iter().collect();
    let out = f.plan();
    assert_eq!(out.plan.frames(), 0);
    assert_eq!(out.plan.waits, vec![(LayerId(1), Wait::Busy)]);
}

#[test]
fn a_shunned_host_still_runs_the_frame_when_no_other_could() {
    // The other host is too small for it, however idle.
    let mut f = shunning_farm();
    let s = f.show("s", 32, 32, 0);
    let j = f.job(1, s, 100);
    f.demand(j, 1, one(2), 8, 1);
    f.snap.hosts[1].total.cores = 100;
    f.snap.hosts[1].free.cores = 100;
    f.snap.demands[0].shun = [HostId(1)].into_iter().collect();
    assert_eq!(f.plan().hosts_of_layer(1), vec![1]);

    // The job avoids the other host.
    let mut f = shunning_farm();
    let s = f.show("s", 32, 32, 0);
    let j = f.job(1, s, 100);
    f.snap.jobs[0].avoid = vec![HostId(2)];
    f.demand(j, 1, one(2), 8, 1).shun = [HostId(1)].into_iter().collect();
    assert_eq!(f.plan().hosts_of_layer(1), vec![1]);

    // It shuns both.
    let mut f = shunning_farm();
    let s = f.show("s", 32, 32, 0);
    let j = f.job(1, s, 100);
    f.demand(j, 1, one(2), 8, 1).shun = [HostId(2), HostId(1)].into_iter().collect();
    assert_eq!(f.plan().hosts_of_layer(1), vec![1]);
}

#[test]
fn recent_hosts_forget_a_removed_host_and_keep_the_order() {
    let mut r: RecentHosts = [HostId(1), HostId(2), HostId(3)].into_iter().collect();
    r.remove(HostId(2));
    assert_eq!(r.iter().collect::<Vec<_>>(), vec![HostId(1), HostId(3)]);
    assert!(!r.contains(HostId(2)) && r.contains(HostId(3)));
    r.remove(HostId(9));
    r.push(HostId(4));
    assert_eq!(
        r.iter().collect::<Vec<_>>(),
        vec![HostId(4), HostId(1), HostId(3)]
    );
    r.remove(HostId(4));
    r.remove(HostId(1));
    r.remove(HostId(3));
    assert!(r.is_empty());
    assert_eq!(r, RecentHosts::default(), "equal to a fresh one");
}

#[test]
fn core_ranges_grow_into_idle_cores() {
    let mut f = farm();
    f.host(1, 16, 64, 0, &[]);
    f.host(2, 12, 64, 0, &[]);
    f.host(3, 8, 64, 0, &[]);
    let s = f.show("s", 36, 36, 0);
    let j = f.job(1, s, 100);
    f.demand(j, 1, CoreRequest::AtLeast(400), 1, 1);
    f.demand(j, 2, CoreRequest::Between(200, 600), 1, 1);
    f.demand(j, 3, CoreRequest::WholeHost, 1, 1);
    let out = f.plan();
    let grant = |l: i64| {
        let a: Vec<_> = out
            .plan
            .assignments
            .iter()
            .filter(|a| a.layer == LayerId(l))
            .collect();
        assert_eq!(a.len(), 1, "layer {l}");
        (a[0].host.0, a[0].grant.cores / 100)
    };
    let (h1, c1) = grant(1);
    let (h2, c2) = grant(2);
    let (h3, c3) = grant(3);
    let total = |h: i64| {
        f.snap
            .hosts
            .iter()
            .find(|x| x.id.0 == h)
            .unwrap()
            .total
            .cores
            / 100
    };
    assert!(c1 >= 4, "4+ gets at least 4");
    assert!((2..=6).contains(&c2), "2-8 stays in range");
    assert_eq!(c3, total(h3), "all: the whole host");
    assert!(h3 != h1 && h3 != h2, "a whole host is not shared");
    if h1 != h2 {
        assert_eq!(c1, total(h1), "4+ alone on its host takes it all");
    }
}

#[test]
fn whole_host_needs_an_idle_host() {
    let mut f = farm();
    f.host(1, 16, 64, 0, &[]).busy(1, 1, None);
    let s = f.show("s", 16, 16, 0);
    let j = f.job(1, s, 100);
    f.demand(j, 1, CoreRequest::WholeHost, 1, 1);
    let out = f.plan();
    assert!(out.plan.assignments.is_empty());
    assert_eq!(out.why(1), Some(&Wait::Busy));
}

#[test]
fn a_wide_frame_gets_a_reservation_and_small_frames_backfill_only_if_they_end_first() {
    let now = 1_000_000;
    let mut f = farm();
    f.snap.config.reserve_after_ms = 60_000;
    // Host 1 frees in 10 minutes; host 2 is too small for the wide frame.
    f.host(1, 32, 128, 0, &[]).busy(24, 24, Some(now + 600_000));
    f.host(2, 8, 32, 0, &[]);
    let s = f.show("s", 40, 40, 0);
    let wide = f.job(1, s, 100);
    let short = f.job(2, s, 100);
    let long = f.job(3, s, 100);
    let d = f.demand(wide, 1, one(32), 8, 1);
    d.starved_since = Some(now - 120_000);
    f.demand(short, 2, one(1), 1, 100).runtime_ms = Some(60_000);
    f.demand(long, 3, one(1), 1, 100).runtime_ms = Some(3_600_000);
    let first = f.plan();
    assert_eq!(first.plan.reservations.len(), 1);
    assert_eq!(first.plan.reservations[0].host, HostId(1));
    assert_eq!(first.why(1), Some(&Wait::Reserved(HostId(1))));

    // Next pass: the reservation holds; short frames may backfill host 1,
    // long ones may not.
    f.snap.reservations = first.plan.reservations.clone();
    let next = f.plan();
    assert!(
        next.hosts_of_layer(3).iter().all(|&h| h != 1),
        "long frames would delay it"
    );
    assert!(next.hosts_of_layer(2).contains(&1), "short frames backfill");

    // Once host 1 is idle the wide frame starts there.
    let mut f2 = farm();
    f2.host(1, 32, 128, 0, &[]);
    let s = f2.show("s", 40, 40, 0);
    let wide = f2.job(1, s, 100);
    let other = f2.job(0, s, 1000);
    f2.demand(wide, 1, one(32), 8, 1);
    f2.demand(other, 2, one(1), 1, 100);
    f2.snap.reservations = first.plan.reservations.clone();
    let out = f2.plan();
    assert_eq!(out.cores_of_layer(1), 32, "the reservation is served first");
}

#[test]
fn a_show_below_its_size_reserves_hosts_narrow_frames_would_refill() {
    let now = 1_000_000;
    let mut f = farm();
    f.snap.config.reserve_after_ms = 60_000;
    // Four full hosts of one-core frames from a show far above its size;
    // one core free on two of them.
    for h in 1..=4 {
        f.host(h, 16, 64, 0, &[]).busy(16, 16, Some(now + 600_000));
    }
    f.snap.hosts[1].free.cores = 100;
    f.snap.hosts[2].free.cores = 200;
    let small = f.show("small", 32, 64, 62);
    let large = f.show("large", 32, 64, 0);
    let comp = f.job(1, small, 100);
    let sim = f.job(2, large, 100);
    f.demand(comp, 1, one(1), 1, 1000).runtime_ms = Some(60_000);
    f.demand(sim, 2, one(4), 4, 100).starved_since = Some(now - 120_000);
    let first = f.plan();
    // The one-core show takes the free cores (the 4-core frame fits
    // nowhere); then the large show, eight 4-core frames short of its
    // size, reserves half of the four hosts, those missing the fewest
    // cores first.
    assert_eq!(first.cores_of_layer(1), 2);
    let held: Vec<HostId> = first.plan.reservations.iter().map(|r| r.host).collect();
    assert_eq!(held.len(), 2);
    assert!(matches!(first.why(2), Some(Wait::Reserved(_))));

    // Next pass: cores free on every host. The one-core show may not
    // backfill the reserved ones, though its frames would end long before
    // those hosts empty: they would take exactly the cores freed there.
    f.snap.reservations = first.plan.reservations.clone();
    for h in &mut f.snap.hosts {
        h.free.cores = 200;
    }
    f.snap.shows[0].subs[0].used = 6000;
    let next = f.plan();
    let used: Vec<i64> = next.hosts_of_layer(1);
    assert!(!used.is_empty());
    assert!(
        used.iter().all(|&h| !held.contains(&HostId(h))),
        "{used:?} {held:?}"
    );

    // Once a reserved host has four cores free the frame starts there, and
    // the other reservation stays.
    let i = f.snap.hosts.iter().position(|h| h.id == held[0]).unwrap();
    f.snap.hosts[i].free.cores = 400;
    let third = f.plan();
    assert_eq!(third.hosts_of_layer(2), vec![held[0].0]);
    let kept: Vec<HostId> = third.plan.reservations.iter().map(|r| r.host).collect();
    assert!(kept.contains(&held[1]), "{kept:?}");

    // At its size, the show holds no more reservations.
    f.snap.shows[1].subs[0].used = 3200;
    let done = f.plan();
    assert!(done.plan.reservations.is_empty());
}

#[test]
fn a_show_reserves_only_where_it_is_below_its_size() {
    let now = 1_000_000;
    let mut f = farm();
    f.snap.config.reserve_after_ms = 60_000;
    f.snap.allocations.push(AllocSlot {
        name: "site.other".into(),
        facility: "site".into(),
    });
    // Two busy hosts in each allocation, those of the second closer to
    // fitting the frame; the show is at its size in the second allocation
    // and short of it in the first.
    for h in 1..=4 {
        f.host(h, 16, 64, 0, &[]).busy(16, 16, Some(now + 600_000));
    }
    for h in 2..4 {
        f.snap.hosts[h].alloc = 1;
        f.snap.hosts[h].free.cores = 300;
    }
    let s = f.show("s", 32, 64, 0);
    f.snap.shows[s as usize].subs.push(SubSlot {
        alloc: 1,
        size: 3200,
        burst: 6400,
        used: 3200,
    });
    let j = f.job(1, s, 100);
    f.demand(j, 1, one(4), 4, 100).starved_since = Some(now - 120_000);
    let out = f.plan();
    let held: Vec<i64> = out.plan.reservations.iter().map(|r| r.host.0).collect();
    assert!(!held.is_empty());
    assert!(held.iter().all(|&h| h <= 2), "{held:?}");
}

#[test]
fn avoided_hosts_are_not_used() {
    let mut f = farm();
    f.host(1, 8, 64, 0, &[]);
    f.host(2, 8, 64, 0, &[]);
    let s = f.show("s", 16, 16, 0);
    let j = f.job(1, s, 100);
    f.snap.jobs[j as usize].avoid = vec![HostId(2)];
    f.demand(j, 1, one(1), 1, 100);
    let out = f.plan();
    assert_eq!(out.hosts_of_layer(1), vec![1]);
}

#[test]
fn jobs_run_only_in_their_facility() {
    let mut f = farm();
    f.snap.allocations.push(AllocSlot {
        name: "other.main".into(),
        facility: "other".into(),
    });
    f.host(1, 8, 64, 0, &[]);
    f.host(2, 8, 64, 0, &[]);
    f.snap.hosts[1].alloc = 1;
    let s = f.show("s", 8, 16, 0);
    f.snap.shows[s as usize].subs.push(SubSlot {
        alloc: 1,
        size: 800,
        burst: 1600,
        used: 0,
    });
    let j = f.job(1, s, 100);
    f.demand(j, 1, one(1), 1, 100);
    assert_eq!(f.plan().hosts_of_layer(1), vec![1]);
}

/// What no plan may ever do, whatever the farm.
fn check_invariants(snap: &Snapshot, plan: &Plan) {
    let host_of: HashMap<HostId, usize> = snap
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.id, i))
        .collect();
    let demand_of: HashMap<LayerId, usize> = snap
        .demands
        .iter()
        .enumerate()
        .map(|(i, d)| (d.layer, i))
        .collect();
    let mut free: Vec<Resources> = snap.hosts.iter().map(|h| h.free).collect();
    let mut sub_used: Vec<Vec<Centicores>> = snap
        .shows
        .iter()
        .map(|s| s.subs.iter().map(|x| x.used).collect())
        .collect();
    let mut limit_used: Vec<u32> = snap.limits.iter().map(|l| l.used).collect();
    let mut job_used: Vec<Centicores> = snap.jobs.iter().map(|j| j.used).collect();
    let mut started = vec![0u32; snap.demands.len()];
    for a in &plan.assignments {
        let h = host_of[&a.host];
        let host = &snap.hosts[h];
        let d = demand_of[&a.layer];
        let demand = &snap.demands[d];
        let job = &snap.jobs[demand.job as usize];
        assert!(a.count > 0);
        for _ in 0..a.count {
            assert!(
                a.grant.fits_in(&free[h]),
                "host {} over-committed: {:?} into {:?}",
                host.id,
                a.grant,
                free[h]
            );
            free[h].sub(&a.grant);
        }
        assert!(demand.needs.fits_in(&a.grant), "grant below the request");
        assert!(
            a.grant.cores <= demand.cores.max().max(demand.needs.cores)
                || demand.cores == CoreRequest::WholeHost
        );
        assert!(
            demand.tags.iter().all(|t| t.satisfied_by(&host.tags)),
            "tag ignored"
        );
        assert!(!job.avoid.contains(&host.id), "avoided host used");
        assert_eq!(
            snap.allocations[host.alloc as usize].facility, job.facility,
            "facility"
        );
        let k = snap.shows[job.show as usize]
            .subs
            .iter()
            .position(|s| s.alloc == host.alloc)
            .expect("placed only where the show subscribes");
        let cores = a.grant.cores * a.count;
        sub_used[job.show as usize][k] += cores;
        assert!(
            sub_used[job.show as usize][k]
                <= snap.shows[job.show as usize].subs[k]
                    .burst
                    .max(snap.shows[job.show as usize].subs[k].used),
            "burst exceeded"
        );
        job_used[demand.job as usize] += cores;
        if let Some(m) = job.max_cores {
            assert!(
                job_used[demand.job as usize] <= m.max(job.used),
                "job cap exceeded"
            );
        }
        for &l in &demand.limits {
            limit_used[l as usize] += a.count;
            assert!(
                limit_used[l as usize]
                    <= snap.limits[l as usize]
                        .max
                        .max(snap.limits[l as usize].used),
                "limit exceeded"
            );
        }
        started[d] += a.count;
        assert!(started[d] <= demand.ready, "more frames than ready");
    }
    // Nothing left idle that a waiting frame could use.
    let reserved: Vec<HostId> = plan.reservations.iter().map(|r| r.host).collect();
    for (layer, why) in &plan.waits {
        let demand = &snap.demands[demand_of[layer]];
        if *why != Wait::Busy || demand.cores == CoreRequest::WholeHost {
            continue;
        }
        let job = &snap.jobs[demand.job as usize];
        let may_use = |host: &HostSlot| {
            !job.avoid.contains(&host.id)
                && snap.allocations[host.alloc as usize].facility == job.facility
                && snap.shows[job.show as usize]
                    .subs
                    .iter()
                    .any(|s| s.alloc == host.alloc)
                && demand.tags.iter().all(|t| t.satisfied_by(&host.tags))
        };
        // A host the layer shuns may stay idle while another could run it.
        let elsewhere = snap
            .hosts
            .iter()
            .any(|o| !demand.shun.contains(o.id) && may_use(o) && demand.needs.fits_in(&o.total));
        for (h, host) in snap.hosts.iter().enumerate() {
            let usable = !reserved.contains(&host.id)
                && may_use(host)
                && !(elsewhere && demand.shun.contains(host.id));
            assert!(
                !(usable && demand.needs.fits_in(&free[h])),
                "layer {layer} waits as busy but fits on host {}",
                host.id
            );
        }
    }
}

fn arb_snapshot() -> impl Strategy<Value = Snapshot> {
    let hosts = prop::collection::vec(
        (1u32..65, 1u64..257, 0u32..3, 0usize..4, 0u32..2, 0u32..101),
        1..40,
    );
    let shows = prop::collection::vec((0u32..200, 0u32..300, 0u32..2), 1..5);
    let jobs = prop::collection::vec(
        (0u32..5, 0i32..500, prop::option::of(1u32..100), 0usize..3),
        1..20,
    );
    let demands = prop::collection::vec(
        (
            0u32..20,
            0u32..5,
            1u64..65,
            0u32..2,
            0usize..4,
            1u32..50,
            prop::option::of(0u32..3),
            0u32..4,
        ),
        1..30,
    );
    let limits = prop::collection::vec(0u32..10, 0..3);
    (hosts, shows, jobs, demands, limits).prop_map(|(hosts, shows, jobs, demands, limits)| {
        let tags = ["linux", "maya", "nuke", "big"];
        let mut snap = Snapshot {
            now: 10_000_000,
            allocations: vec![
                AllocSlot {
                    name: "a.one".into(),
                    facility: "a".into(),
                },
                AllocSlot {
                    name: "a.two".into(),
                    facility: "a".into(),
                },
            ],
            ..Default::default()
        };
        for (i, (cores, mem, gpus, tag, alloc, busy_pct)) in hosts.into_iter().enumerate() {
            let total = res(cores, mem, gpus);
            let mut free = total;
            free.sub(&Resources {
                cores: total.cores * busy_pct / 100,
                memory_kb: total.memory_kb * busy_pct as u64 / 100,
                ..Default::default()
            });
            let mut t: Vec<String> = tags[..tag].iter().map(|s| s.to_string()).collect();
            t.sort();
            snap.hosts.push(HostSlot {
                id: HostId(i as i64 + 1),
                alloc,
                total,
                free,
                tags: t.into(),
                busy_until: Some(snap.now + (i as i64 % 3) * 100_000),
            });
        }
        for (i, (size, extra, allocs)) in shows.iter().enumerate() {
            let subs = (0..=*allocs)
                .map(|a| SubSlot {
                    alloc: a,
                    size: size * 100,
                    burst: (size + extra) * 100,
                    used: 0,
                })
                .collect();
            snap.shows.push(ShowSlot {
                name: format!("s{i}"),
                subs,
            });
        }
        let nshows = snap.shows.len() as u32;
        for (i, (show, prio, cap, avoid)) in jobs.into_iter().enumerate() {
            snap.jobs.push(JobSlot {
                id: JobId(i as i64 + 1),
                show: show % nshows,
                facility: "a".into(),
                priority: prio,
                submitted_at: i as i64,
                used: 0,
                max_cores: cap.map(|c| c * 100),
                avoid: (0..avoid as i64).map(|h| HostId(h * 3 + 1)).collect(),
            });
        }
        for (i, l) in limits.iter().enumerate() {
            snap.limits.push(LimitSlot {
                name: format!("l{i}"),
                max: *l,
                used: 0,
            });
        }
        let njobs = snap.jobs.len() as u32;
        for (i, (job, kind, mem, gpus, tag, ready, limit, starved)) in
            demands.into_iter().enumerate()
        {
            let cores = match kind {
                0 => CoreRequest::Exact(100),
                1 => CoreRequest::Exact(50 + (mem as u32 % 8) * 100),
                2 => CoreRequest::AtLeast(200),
                3 => CoreRequest::Between(100, 400),
                _ => CoreRequest::WholeHost,
            };
            snap.demands.push(Demand {
                job: job % njobs,
                layer: LayerId(i as i64 + 1),
                layer_index: i as u32,
                needs: Resources {
                    cores: cores.min(),
                    memory_kb: mem * GB / 4,
                    gpus,
                    gpu_memory_kb: gpus as u64 * GB,
                    scratch_kb: 0,
                },
                cores,
                tags: tags[..tag.min(2)]
                    .iter()
                    .map(|t| TagReq {
                        any_of: vec![t.to_string()],
                    })
                    .collect(),
                limits: limit
                    .filter(|&l| (l as usize) < snap.limits.len())
                    .into_iter()
                    .collect(),
                ready,
                starved_since: (starved > 1).then_some(snap.now - 1_000_000),
                runtime_ms: (starved > 0).then_some(60_000 * starved as i64),
                recent_hosts: [HostId(starved as i64 + 1)].into_iter().collect(),
                shun: [HostId(starved as i64 + 2)].into_iter().collect(),
            });
        }
        snap
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn plans_never_break_the_invariants(snap in arb_snapshot()) {
        let first = plan(&snap);
        check_invariants(&snap, &first);
        prop_assert_eq!(&first, &plan(&snap), "deterministic");
        // Reservations carried into the next pass keep the invariants.
        let mut next = snap.clone();
        next.reservations = first.reservations.clone();
        check_invariants(&next, &plan(&next));
    }
}

#[test]
fn recent_hosts_keep_the_latest_first_once_each() {
    let mut r = RecentHosts::default();
    for h in [1, 2, 3, 2, 4, 5, 6] {
        r.push(HostId(h));
    }
    assert_eq!(
        r.iter().collect::<Vec<_>>(),
        [6, 5, 4, 2].map(HostId).to_vec()
    );
    let back: RecentHosts = r.iter().collect();
    assert_eq!(back, r);
}
