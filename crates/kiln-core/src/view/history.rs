//! The farm over time, for a wrangler's charts: a sample of the gauges
//! (`FarmMetrics`) every so often, reduced to what the charts draw: cores
//! busy by show against each show's entitlement, frames waiting by reason,
//! hosts by state.

use super::metrics::FarmMetrics;
use super::WhyKind;
use crate::model::{Centicores, HostState, Millis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The farm at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FarmSample {
    /// When (ms since the Unix epoch).
    pub at: Millis,
    /// Cores of UP hosts, and those running frames (centicores).
    pub cores_total: Centicores,
    pub cores_busy: Centicores,
    /// Each show with cores in use or a subscription, by name.
    pub shows: Vec<ShowSample>,
    /// Frames waiting, by why (only non-zero).
    pub waiting: Vec<ReasonSample>,
    /// Hosts by state (locked ones counted in their state too).
    pub hosts: Vec<HostSample>,
}

/// A show's cores in use and its entitlement, summed over allocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShowSample {
    pub show: String,
    pub busy: Centicores,
    /// The sum of its subscriptions' sizes.
    pub entitlement: Centicores,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReasonSample {
    pub reason: WhyKind,
    pub frames: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostSample {
    pub state: HostState,
    pub count: u32,
}

impl FarmSample {
    /// The sample of `m`, taken at `at`.
    pub fn of(at: Millis, m: &FarmMetrics) -> FarmSample {
        let mut shows: BTreeMap<&str, (Centicores, Centicores)> = BTreeMap::new();
        for s in &m.shares {
            let e = shows.entry(&s.show).or_default();
            e.0 += s.used;
            e.1 += s.size;
        }
        // A handful of reasons and states: a list serves.
        let mut waiting: Vec<ReasonSample> = Vec::new();
        for w in m.waiting.iter().filter(|w| w.frames > 0) {
            match waiting.iter_mut().find(|r| r.reason == w.reason) {
                Some(r) => r.frames += w.frames,
                None => waiting.push(ReasonSample {
                    reason: w.reason,
                    frames: w.frames,
                }),
            }
        }
        let mut hosts: Vec<HostSample> = Vec::new();
        for h in &m.hosts {
            match hosts.iter_mut().find(|s| s.state == h.state) {
                Some(s) => s.count += h.count,
                None => hosts.push(HostSample {
                    state: h.state,
                    count: h.count,
                }),
            }
        }
        FarmSample {
            at,
            cores_total: m.allocations.iter().map(|a| a.cores_total).sum(),
            cores_busy: m.allocations.iter().map(|a| a.cores_busy).sum(),
            shows: shows
                .into_iter()
                .map(|(show, (busy, entitlement))| ShowSample {
                    show: show.to_string(),
                    busy,
                    entitlement,
                })
                .collect(),
            waiting,
            hosts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::metrics::{AllocMetrics, HostCount, ShareMetrics, WaitingCount};

    #[test]
    fn a_sample_sums_allocations_and_counts_by_show_reason_and_state() {
        let share = |show: &str, alloc: &str, used, size| ShareMetrics {
            show: show.into(),
            allocation: alloc.into(),
            used,
            size,
            burst: size * 2,
        };
        let m = FarmMetrics {
            allocations: vec![
                AllocMetrics {
                    name: "a".into(),
                    cores_total: 800,
                    cores_busy: 300,
                    ..Default::default()
                },
                AllocMetrics {
                    name: "b".into(),
                    cores_total: 200,
                    cores_busy: 200,
                    ..Default::default()
                },
            ],
            shares: vec![
                share("film", "a", 300, 400),
                share("film", "b", 200, 100),
                share("tv", "a", 0, 200),
            ],
            waiting: vec![
                WaitingCount {
                    show: "film".into(),
                    reason: WhyKind::NoHosts,
                    frames: 5,
                },
                WaitingCount {
                    show: "tv".into(),
                    reason: WhyKind::NoHosts,
                    frames: 2,
                },
                WaitingCount {
                    show: "tv".into(),
                    reason: WhyKind::Depend,
                    frames: 0,
                },
            ],
            hosts: vec![
                HostCount {
                    allocation: "a".into(),
                    state: HostState::Up,
                    locked: false,
                    count: 3,
                },
                HostCount {
                    allocation: "a".into(),
                    state: HostState::Up,
                    locked: true,
                    count: 1,
                },
                HostCount {
                    allocation: "b".into(),
                    state: HostState::Down,
                    locked: false,
                    count: 2,
                },
            ],
            ..Default::default()
        };
        let s = FarmSample::of(42, &m);
        assert_eq!((s.at, s.cores_total, s.cores_busy), (42, 1000, 500));
        assert_eq!(
            s.shows,
            [
                ShowSample {
                    show: "film".into(),
                    busy: 500,
                    entitlement: 500
                },
                ShowSample {
                    show: "tv".into(),
                    busy: 0,
                    entitlement: 200
                },
            ]
        );
        assert_eq!(
            s.waiting,
            [ReasonSample {
                reason: WhyKind::NoHosts,
                frames: 7
            }]
        );
        assert_eq!(
            s.hosts,
            [
                HostSample {
                    state: HostState::Up,
                    count: 4
                },
                HostSample {
                    state: HostState::Down,
                    count: 2
                },
            ]
        );
    }
}
