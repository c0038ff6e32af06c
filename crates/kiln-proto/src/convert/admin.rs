//! Conversions of wranglers' commands. They are checked as far as the wire
//! allows (a core request must read as one); the farm checks the rest.

use crate::pb;
use crate::pb::admin_request::Cmd;
use crate::{Error, Result};
use kiln_core::farm::Admin;
use kiln_core::model::{CoreRequest, TagReq};
use kiln_core::structure::{Service, UNLIMITED};

fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn list(v: Option<Vec<String>>) -> Option<pb::StringList> {
    v.map(|items| pb::StringList { items })
}

/// `Some(None)` (clear) and `Some(Some(v))` (set) as a value and a flag.
fn split_clear<T>(v: Option<Option<T>>) -> (Option<T>, bool) {
    match v {
        None => (None, false),
        Some(None) => (None, true),
        Some(Some(v)) => (Some(v), false),
    }
}

fn join_clear<T>(v: Option<T>, clear: bool) -> Option<Option<T>> {
    if clear {
        Some(None)
    } else {
        v.map(Some)
    }
}

impl From<Admin> for pb::AdminRequest {
    fn from(a: Admin) -> Self {
        let named = |name| pb::NamedRef { name };
        let cmd = match a {
            Admin::PutFacility { name } => Cmd::PutFacility(named(name)),
            Admin::RemoveFacility { name } => Cmd::RemoveFacility(named(name)),
            Admin::PutAllocation { name, tags } => {
                Cmd::PutAllocation(pb::PutAllocation { name, tags })
            }
            Admin::RemoveAllocation { name } => Cmd::RemoveAllocation(named(name)),
            Admin::PutShow {
                name,
                enabled,
                default_priority,
                default_max_cores,
            } => {
                let (default_max_cores, clear_default_max_cores) = split_clear(default_max_cores);
                Cmd::PutShow(pb::PutShow {
                    name,
                    enabled,
                    default_priority,
                    default_max_cores,
                    clear_default_max_cores,
                })
            }
            Admin::PutSubscription {
                show,
                allocation,
                size,
                burst,
            } => Cmd::PutSubscription(pb::Subscription {
                show,
                allocation,
                size,
                burst: (burst != UNLIMITED).then_some(burst),
                used: 0,
            }),
            Admin::RemoveSubscription { show, allocation } => {
                Cmd::RemoveSubscription(pb::SubscriptionRef { show, allocation })
            }
            Admin::PutLimit { name, max } => Cmd::PutLimit(pb::PutLimit { name, max }),
            Admin::RemoveLimit { name } => Cmd::RemoveLimit(named(name)),
            Admin::PutService(s) => Cmd::PutService(service_to_pb(s)),
            Admin::RemoveService { name, show } => Cmd::RemoveService(pb::ServiceRef {
                name,
                show: show.unwrap_or_default(),
            }),
            Admin::MoveHost { host, allocation } => {
                Cmd::MoveHost(pb::MoveHost { host, allocation })
            }
            Admin::TagHost { host, add, remove } => Cmd::TagHost(pb::TagHost { host, add, remove }),
            Admin::Repair { host, on } => Cmd::RepairHost(pb::RepairHost { host, repair: on }),
            Admin::SetJob {
                job,
                priority,
                max_cores,
            } => {
                let (max_cores, clear_max_cores) = split_clear(max_cores);
                Cmd::SetJob(pb::SetJob {
                    job,
                    priority,
                    max_cores,
                    clear_max_cores,
                })
            }
            Admin::Unavoid { job, host } => Cmd::Unavoid(pb::Unavoid {
                job,
                host: host.unwrap_or_default(),
            }),
        };
        pb::AdminRequest { cmd: Some(cmd) }
    }
}

pub(crate) fn admin_command(r: pb::AdminRequest) -> Result<Admin> {
    let cmd = r
        .cmd
        .ok_or_else(|| Error::Malformed("an admin request without a command".into()))?;
    Ok(match cmd {
        Cmd::PutFacility(n) => Admin::PutFacility { name: n.name },
        Cmd::RemoveFacility(n) => Admin::RemoveFacility { name: n.name },
        Cmd::PutAllocation(a) => Admin::PutAllocation {
            name: a.name,
            tags: a.tags,
        },
        Cmd::RemoveAllocation(n) => Admin::RemoveAllocation { name: n.name },
        Cmd::PutShow(s) => Admin::PutShow {
            name: s.name,
            enabled: s.enabled,
            default_priority: s.default_priority,
            default_max_cores: join_clear(s.default_max_cores, s.clear_default_max_cores),
        },
        Cmd::PutSubscription(s) => Admin::PutSubscription {
            show: s.show,
            allocation: s.allocation,
            size: s.size,
            burst: s.burst.unwrap_or(UNLIMITED),
        },
        Cmd::RemoveSubscription(s) => Admin::RemoveSubscription {
            show: s.show,
            allocation: s.allocation,
        },
        Cmd::PutLimit(l) => Admin::PutLimit {
            name: l.name,
            max: l.max,
        },
        Cmd::RemoveLimit(n) => Admin::RemoveLimit { name: n.name },
        Cmd::PutService(s) => Admin::PutService(service_from_pb(s)?),
        Cmd::RemoveService(s) => Admin::RemoveService {
            name: s.name,
            show: some(s.show),
        },
        Cmd::MoveHost(m) => Admin::MoveHost {
            host: m.host,
            allocation: m.allocation,
        },
        Cmd::TagHost(t) => Admin::TagHost {
            host: t.host,
            add: t.add,
            remove: t.remove,
        },
        Cmd::RepairHost(r) => Admin::Repair {
            host: r.host,
            on: r.repair,
        },
        Cmd::SetJob(j) => Admin::SetJob {
            job: j.job,
            priority: j.priority,
            max_cores: join_clear(j.max_cores, j.clear_max_cores),
        },
        Cmd::Unavoid(u) => Admin::Unavoid {
            job: u.job,
            host: some(u.host),
        },
    })
}

fn service_to_pb(s: Service) -> pb::Service {
    pb::Service {
        name: s.name,
        show: s.show.unwrap_or_default(),
        cores: s.cores.map(|c| c.to_string()).unwrap_or_default(),
        memory_kb: s.memory_kb,
        gpus: s.gpus,
        gpu_memory_kb: s.gpu_memory_kb,
        tags: list(s.tags.map(|t| t.iter().map(ToString::to_string).collect())),
        timeout_s: s.timeout_s,
        limits: list(s.limits),
    }
}

/// `gpu|cuda` → one requirement met by either tag.
fn tag_req(text: &str) -> Result<TagReq> {
    let any_of: Vec<String> = text
        .split('|')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if any_of.is_empty() {
        return Err(Error::Invalid(format!(
            "service tags: {text:?} names no tag; give tags like linux or gpu|cuda (either)"
        )));
    }
    Ok(TagReq { any_of })
}

fn service_from_pb(s: pb::Service) -> Result<Service> {
    let cores = match some(s.cores) {
        None => None,
        Some(t) => Some(
            CoreRequest::parse(&t).map_err(|m| Error::Invalid(format!("service cores: {m}")))?,
        ),
    };
    let tags = match s.tags {
        None => None,
        Some(l) => Some(l.items.iter().map(|t| tag_req(t)).collect::<Result<_>>()?),
    };
    Ok(Service {
        name: s.name,
        show: some(s.show),
        cores,
        memory_kb: s.memory_kb,
        gpus: s.gpus,
        gpu_memory_kb: s.gpu_memory_kb,
        tags,
        timeout_s: s.timeout_s,
        limits: s.limits.map(|l| l.items),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_admin_command_round_trips() {
        let cmds = vec![
            Admin::PutFacility {
                name: "paris".into(),
            },
            Admin::RemoveFacility {
                name: "paris".into(),
            },
            Admin::PutAllocation {
                name: "paris.gpu".into(),
                tags: vec!["gpu".into()],
            },
            Admin::RemoveAllocation {
                name: "paris.gpu".into(),
            },
            Admin::PutShow {
                name: "film".into(),
                enabled: Some(false),
                default_priority: Some(50),
                default_max_cores: Some(Some(1000)),
            },
            Admin::PutShow {
                name: "film".into(),
                enabled: None,
                default_priority: None,
                default_max_cores: Some(None),
            },
            Admin::PutShow {
                name: "film".into(),
                enabled: Some(true),
                default_priority: None,
                default_max_cores: None,
            },
            Admin::PutSubscription {
                show: "film".into(),
                allocation: "local.general".into(),
                size: 150,
                burst: UNLIMITED,
            },
            Admin::PutSubscription {
                show: "film".into(),
                allocation: "local.general".into(),
                size: 0,
                burst: 0,
            },
            Admin::RemoveSubscription {
                show: "film".into(),
                allocation: "local.general".into(),
            },
            Admin::PutLimit {
                name: "nuke".into(),
                max: 0,
            },
            Admin::RemoveLimit {
                name: "nuke".into(),
            },
            Admin::PutService(Service {
                name: "arnold".into(),
                ..Service::default()
            }),
            Admin::PutService(Service {
                name: "arnold".into(),
                show: Some("film".into()),
                cores: Some(CoreRequest::AtLeast(400)),
                memory_kb: Some(8 << 20),
                gpus: Some(0),
                gpu_memory_kb: Some(1),
                tags: Some(vec![TagReq {
                    any_of: vec!["gpu".into(), "cuda".into()],
                }]),
                timeout_s: Some(7200),
                limits: Some(vec![]),
            }),
            Admin::RemoveService {
                name: "arnold".into(),
                show: None,
            },
            Admin::RemoveService {
                name: "arnold".into(),
                show: Some("film".into()),
            },
            Admin::MoveHost {
                host: "r1".into(),
                allocation: "paris.gpu".into(),
            },
            Admin::TagHost {
                host: "r1".into(),
                add: vec!["a".into()],
                remove: vec!["b".into()],
            },
            Admin::Repair {
                host: "r1".into(),
                on: true,
            },
            Admin::Repair {
                host: "r1".into(),
                on: false,
            },
            Admin::SetJob {
                job: "12".into(),
                priority: Some(0),
                max_cores: Some(None),
            },
            Admin::SetJob {
                job: "12".into(),
                priority: None,
                max_cores: Some(Some(50)),
            },
            Admin::Unavoid {
                job: "12".into(),
                host: None,
            },
            Admin::Unavoid {
                job: "12".into(),
                host: Some("r1".into()),
            },
        ];
        for c in cmds {
            assert_eq!(admin_command(c.clone().into()).unwrap(), c);
        }
    }

    #[test]
    fn bad_wire_values_name_the_field() {
        let mut s = service_to_pb(Service {
            name: "x".into(),
            ..Service::default()
        });
        s.cores = "8-2".into();
        let e = admin_command(pb::AdminRequest {
            cmd: Some(Cmd::PutService(s.clone())),
        })
        .unwrap_err();
        assert!(e.to_string().contains("service cores"), "{e}");
        s.cores.clear();
        s.tags = list(Some(vec!["|".into()]));
        let e = admin_command(pb::AdminRequest {
            cmd: Some(Cmd::PutService(s)),
        })
        .unwrap_err();
        assert!(e.to_string().contains("service tags"), "{e}");
        assert!(admin_command(pb::AdminRequest { cmd: None }).is_err());
    }
}
