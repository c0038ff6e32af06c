//! Conversions of the structure listing: facilities, allocations, shows,
//! subscriptions, limits and services with what each holds.

use crate::pb;
use kiln_core::view::*;

fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn list(v: Option<Vec<String>>) -> Option<pb::StringList> {
    v.map(|items| pb::StringList { items })
}

impl From<StructureView> for pb::Structure {
    fn from(v: StructureView) -> Self {
        pb::Structure {
            facilities: v
                .facilities
                .into_iter()
                .map(|f| pb::FacilityInfo {
                    name: f.name,
                    allocations: f.allocations,
                    hosts: f.hosts,
                })
                .collect(),
            allocations: v
                .allocations
                .into_iter()
                .map(|a| pb::AllocationInfo {
                    name: a.name,
                    facility: a.facility,
                    tags: a.tags,
                    hosts: a.hosts,
                    hosts_up: a.hosts_up,
                    cores: a.cores,
                    cores_used: a.cores_used,
                })
                .collect(),
            shows: v
                .shows
                .into_iter()
                .map(|s| pb::ShowInfo {
                    name: s.name,
                    enabled: s.enabled,
                    default_priority: s.default_priority,
                    default_max_cores: s.default_max_cores,
                    jobs: s.jobs,
                    cores_used: s.cores_used,
                })
                .collect(),
            subscriptions: v
                .subscriptions
                .into_iter()
                .map(|s| pb::Subscription {
                    show: s.show,
                    allocation: s.allocation,
                    size: s.size,
                    burst: s.burst,
                    used: s.used,
                })
                .collect(),
            limits: v
                .limits
                .into_iter()
                .map(|l| pb::LimitInfo {
                    name: l.name,
                    max: l.max,
                    used: l.used,
                })
                .collect(),
            services: v
                .services
                .into_iter()
                .map(|s| pb::Service {
                    name: s.name,
                    show: s.show.unwrap_or_default(),
                    cores: s.cores.unwrap_or_default(),
                    memory_kb: s.memory_kb,
                    gpus: s.gpus,
                    gpu_memory_kb: s.gpu_memory_kb,
                    tags: list(s.tags),
                    timeout_s: s.timeout_s,
                    limits: list(s.limits),
                })
                .collect(),
        }
    }
}

pub(crate) fn structure_view(s: pb::Structure) -> StructureView {
    StructureView {
        facilities: s
            .facilities
            .into_iter()
            .map(|f| FacilityInfo {
                name: f.name,
                allocations: f.allocations,
                hosts: f.hosts,
            })
            .collect(),
        allocations: s
            .allocations
            .into_iter()
            .map(|a| AllocationInfo {
                name: a.name,
                facility: a.facility,
                tags: a.tags,
                hosts: a.hosts,
                hosts_up: a.hosts_up,
                cores: a.cores,
                cores_used: a.cores_used,
            })
            .collect(),
        shows: s
            .shows
            .into_iter()
            .map(|s| ShowInfo {
                name: s.name,
                enabled: s.enabled,
                default_priority: s.default_priority,
                default_max_cores: s.default_max_cores,
                jobs: s.jobs,
                cores_used: s.cores_used,
            })
            .collect(),
        subscriptions: s
            .subscriptions
            .into_iter()
            .map(|s| SubscriptionInfo {
                show: s.show,
                allocation: s.allocation,
                size: s.size,
                burst: s.burst,
                used: s.used,
            })
            .collect(),
        limits: s
            .limits
            .into_iter()
            .map(|l| LimitInfo {
                name: l.name,
                max: l.max,
                used: l.used,
            })
            .collect(),
        services: s
            .services
            .into_iter()
            .map(|s| ServiceInfo {
                name: s.name,
                show: some(s.show),
                cores: some(s.cores),
                memory_kb: s.memory_kb,
                gpus: s.gpus,
                gpu_memory_kb: s.gpu_memory_kb,
                tags: s.tags.map(|l| l.items),
                timeout_s: s.timeout_s,
                limits: s.limits.map(|l| l.items),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structure_round_trips() {
        let v = StructureView {
            facilities: vec![FacilityInfo {
                name: "local".into(),
                allocations: 1,
                hosts: 2,
            }],
            allocations: vec![AllocationInfo {
                name: "local.general".into(),
                facility: "local".into(),
                tags: vec!["linux".into()],
                hosts: 2,
                hosts_up: 1,
                cores: 800,
                cores_used: 150,
            }],
            shows: vec![ShowInfo {
                name: "film".into(),
                enabled: false,
                default_priority: 100,
                default_max_cores: Some(5000),
                jobs: 3,
                cores_used: 150,
            }],
            subscriptions: vec![
                SubscriptionInfo {
                    show: "film".into(),
                    allocation: "local.general".into(),
                    size: 0,
                    burst: None,
                    used: 150,
                },
                SubscriptionInfo {
                    show: "tv".into(),
                    allocation: "local.general".into(),
                    size: 100,
                    burst: Some(0),
                    used: 0,
                },
            ],
            limits: vec![LimitInfo {
                name: "nuke".into(),
                max: 1,
                used: 1,
            }],
            services: vec![
                ServiceInfo {
                    name: "arnold".into(),
                    ..ServiceInfo::default()
                },
                ServiceInfo {
                    name: "arnold".into(),
                    show: Some("film".into()),
                    cores: Some("2-8".into()),
                    memory_kb: Some(1),
                    gpus: Some(1),
                    gpu_memory_kb: Some(0),
                    tags: Some(vec!["gpu|cuda".into()]),
                    timeout_s: Some(60),
                    limits: Some(vec![]),
                },
            ],
        };
        assert_eq!(structure_view(v.clone().into()), v);
    }
}
