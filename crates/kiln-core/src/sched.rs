//! The scheduler: a pure function from a snapshot of the farm to a plan.
//!
//! It reads nothing but its input and does no IO, so the same snapshot always
//! gives the same plan. This is a first fit by priority; the fair,
//! resource-packing scheduler replaces the body of [`plan`], not its shape.

use crate::model::{FrameId, HostId, JobId, LayerId, Millis, Resources, TagReq};

/// A host that can take work now, with what it has left.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSlot {
    pub id: HostId,
    pub free: Resources,
    pub tags: Vec<String>,
}

/// A layer with frames ready to run, in the order they should start.
#[derive(Debug, Clone, PartialEq)]
pub struct Demand {
    pub job: JobId,
    pub layer: LayerId,
    pub priority: i32,
    pub submitted_at: Millis,
    pub layer_index: u32,
    pub needs: Resources,
    pub tags: Vec<TagReq>,
    pub frames: Vec<FrameId>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    pub now: Millis,
    pub hosts: Vec<HostSlot>,
    pub demands: Vec<Demand>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    pub frame: FrameId,
    pub host: HostId,
    pub grant: Resources,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub assignments: Vec<Assignment>,
}

/// Places ready frames on hosts: higher priority first, then older jobs,
/// then layers in spec order; each frame on the first host it fits.
pub fn plan(snapshot: &Snapshot) -> Plan {
    let mut free: Vec<Resources> = snapshot.hosts.iter().map(|h| h.free).collect();
    let mut order: Vec<&Demand> = snapshot.demands.iter().collect();
    order.sort_by_key(|d| (-(d.priority as i64), d.submitted_at, d.job, d.layer_index));

    let mut assignments = Vec::new();
    for demand in order {
        let eligible: Vec<usize> = snapshot
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| demand.tags.iter().all(|t| t.satisfied_by(&h.tags)))
            .map(|(i, _)| i)
            .collect();
        // Hosts are tried in order and a host that is full for this demand
        // stays full, so one cursor per demand keeps the pass linear.
        let mut cursor = 0;
        'frames: for &frame in &demand.frames {
            while cursor < eligible.len() {
                let h = eligible[cursor];
                if demand.needs.fits_in(&free[h]) {
                    free[h].sub(&demand.needs);
                    assignments.push(Assignment {
                        frame,
                        host: snapshot.hosts[h].id,
                        grant: demand.needs,
                    });
                    continue 'frames;
                }
                cursor += 1;
            }
            break;
        }
    }
    Plan { assignments }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: i64, cores: u32, mem_gb: u64, tags: &[&str]) -> HostSlot {
        HostSlot {
            id: HostId(id),
            free: Resources {
                cores: cores * 100,
                memory_kb: mem_gb << 20,
                gpus: 0,
            },
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn demand(job: i64, prio: i32, cores: u32, frames: std::ops::Range<i64>) -> Demand {
        Demand {
            job: JobId(job),
            layer: LayerId(job),
            priority: prio,
            submitted_at: job,
            layer_index: 0,
            needs: Resources {
                cores: cores * 100,
                memory_kb: 1 << 20,
                gpus: 0,
            },
            tags: vec![],
            frames: frames.map(FrameId).collect(),
        }
    }

    #[test]
    fn fills_hosts_up_to_their_cores() {
        let snap = Snapshot {
            now: 0,
            hosts: vec![host(1, 4, 64, &[]), host(2, 2, 64, &[])],
            demands: vec![demand(1, 100, 1, 0..10)],
        };
        let plan = plan(&snap);
        assert_eq!(plan.assignments.len(), 6);
        let on1 = plan
            .assignments
            .iter()
            .filter(|a| a.host == HostId(1))
            .count();
        assert_eq!(on1, 4);
    }

    #[test]
    fn higher_priority_goes_first() {
        let snap = Snapshot {
            now: 0,
            hosts: vec![host(1, 2, 64, &[])],
            demands: vec![demand(1, 100, 1, 0..5), demand(2, 200, 1, 10..15)],
        };
        let plan = plan(&snap);
        let frames: Vec<i64> = plan.assignments.iter().map(|a| a.frame.0).collect();
        assert_eq!(frames, vec![10, 11]);
    }

    #[test]
    fn memory_and_tags_are_respected() {
        let mut d = demand(1, 100, 1, 0..4);
        d.needs.memory_kb = 3 << 20;
        d.tags = vec![TagReq {
            any_of: vec!["gpu".into(), "cuda".into()],
        }];
        let snap = Snapshot {
            now: 0,
            hosts: vec![host(1, 16, 64, &["linux"]), host(2, 16, 7, &["cuda"])],
            demands: vec![d],
        };
        let plan = plan(&snap);
        assert_eq!(plan.assignments.len(), 2, "7G fits two 3G frames");
        assert!(plan.assignments.iter().all(|a| a.host == HostId(2)));
    }

    #[test]
    fn deterministic() {
        let snap = Snapshot {
            now: 0,
            hosts: vec![host(1, 3, 64, &[]), host(2, 5, 64, &[])],
            demands: vec![demand(1, 100, 2, 0..5), demand(2, 100, 1, 10..15)],
        };
        assert_eq!(plan(&snap), plan(&snap));
    }
}
