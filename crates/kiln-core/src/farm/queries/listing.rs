//! The structure as clients list it: each facility, allocation, show,
//! subscription, limit and service with what it holds now.

use super::*;
use crate::structure::UNLIMITED;

impl Farm {
    pub fn structure(&self) -> StructureView {
        let s = &self.structure;
        let facility_of = |alloc: &str| s.allocations.get(alloc).map(|a| a.facility.as_str());
        let facilities = s
            .facilities
            .values()
            .map(|f| FacilityInfo {
                name: f.name.clone(),
                allocations: s
                    .allocations
                    .values()
                    .filter(|a| a.facility == f.name)
                    .count() as u32,
                hosts: self
                    .hosts
                    .values()
                    .filter(|h| facility_of(&h.host.allocation) == Some(f.name.as_str()))
                    .count() as u32,
            })
            .collect();
        let allocations = s
            .allocations
            .values()
            .map(|a| {
                let mut info = AllocationInfo {
                    name: a.name.clone(),
                    facility: a.facility.clone(),
                    tags: a.tags.clone(),
                    hosts: 0,
                    hosts_up: 0,
                    cores: 0,
                    cores_used: 0,
                };
                for h in self.hosts.values().filter(|h| h.host.allocation == a.name) {
                    info.hosts += 1;
                    info.cores_used += h.used.cores;
                    if Self::usable(h) {
                        info.hosts_up += 1;
                        info.cores += h.host.report.cores;
                    }
                }
                info
            })
            .collect();
        let shows = s
            .shows
            .values()
            .map(|show| {
                let mut info = ShowInfo {
                    name: show.name.clone(),
                    enabled: show.enabled,
                    default_priority: show.default_priority,
                    default_max_cores: show.default_max_cores,
                    jobs: 0,
                    cores_used: 0,
                };
                for j in self.jobs.values().filter(|j| j.job.show == show.name) {
                    info.cores_used += j.used;
                    if j.job.state == JobState::Active && j.job.finished_at.is_none() {
                        info.jobs += 1;
                    }
                }
                info
            })
            .collect();
        let subscriptions = s
            .subs
            .values()
            .map(|sub| SubscriptionInfo {
                show: sub.show.clone(),
                allocation: sub.allocation.clone(),
                size: sub.size,
                burst: (sub.burst != UNLIMITED).then_some(sub.burst),
                used: self.usage.sub(&sub.show, &sub.allocation),
            })
            .collect();
        let limits = s
            .limits
            .values()
            .map(|l| LimitInfo {
                name: l.name.clone(),
                max: l.max,
                used: self.usage.limit(&l.name),
            })
            .collect();
        let services = s
            .services
            .values()
            .map(|v| ServiceInfo {
                name: v.name.clone(),
                show: v.show.clone(),
                cores: v.cores.map(|c| c.to_string()),
                memory_kb: v.memory_kb,
                gpus: v.gpus,
                gpu_memory_kb: v.gpu_memory_kb,
                tags: v
                    .tags
                    .as_ref()
                    .map(|t| t.iter().map(|t| t.to_string()).collect()),
                timeout_s: v.timeout_s,
                limits: v.limits.clone(),
            })
            .collect();
        StructureView {
            facilities,
            allocations,
            shows,
            subscriptions,
            limits,
            services,
        }
    }
}
