//! The farm's gauges for monitoring, computed from the farm at scrape time
//! (`Farm::metrics`): cores per allocation, frames waiting and why, shows'
//! shares against their subscriptions, hosts by state, and the autoscaling
//! signal. Cores are in centicores, as everywhere in the domain; the
//! Prometheus rendering turns them into cores.

use super::WhyKind;
use crate::model::{Centicores, HostState};
use serde::{Deserialize, Serialize};

/// Everything `GET /metrics` reports that the farm knows.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FarmMetrics {
    /// Every allocation, by name.
    pub allocations: Vec<AllocMetrics>,
    /// Hosts counted by allocation, state and lock; only non-zero counts.
    pub hosts: Vec<HostCount>,
    /// WAITING frames (DEPEND included) by show and reason; only non-zero.
    pub waiting: Vec<WaitingCount>,
    /// Every subscription with what its show holds in its allocation.
    pub shares: Vec<ShareMetrics>,
    /// Frames of every job in the farm by display state.
    pub frames: super::StateCounts,
    /// Jobs in the farm, finished ones included.
    pub jobs: u64,
    /// Every webhook's progress (filled in by the server, not the farm).
    #[serde(default)]
    pub webhooks: Vec<WebhookGauge>,
}

/// How far one webhook is behind, and whether its receiver is failing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WebhookGauge {
    pub id: i64,
    /// Empty for a farm-wide webhook.
    pub show: String,
    /// Events after the last one it handled, matching or not.
    pub behind: u64,
    pub failing: bool,
}

/// One allocation's cores.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AllocMetrics {
    pub name: String,
    pub facility: String,
    /// Cores offered by its UP hosts (locked ones included).
    pub cores_total: Centicores,
    /// Cores held by running frames.
    pub cores_busy: Centicores,
    /// Free cores on hosts that can take work now (UP, open, connected,
    /// not shutting down).
    pub cores_idle: Centicores,
    /// Idle cores on hosts where the smallest frame free to start (in the
    /// farm, whatever its facility) would not fit for want of memory, GPUs
    /// or scratch: cores nobody can use until something else frees. Zero
    /// when no frame is free to start.
    pub cores_stranded: Centicores,
    /// The autoscaling signal: cores that frames waiting for a host (no
    /// host can take them now) could use here, within their shows' burst.
    pub wanted_cores: Centicores,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCount {
    pub allocation: String,
    pub state: HostState,
    pub locked: bool,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingCount {
    pub show: String,
    pub reason: WhyKind,
    pub frames: u64,
}

/// A show's cores in one allocation against its subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareMetrics {
    pub show: String,
    pub allocation: String,
    pub used: Centicores,
    /// Guaranteed when it has work.
    pub size: Centicores,
    /// At most this much.
    pub burst: Centicores,
}

/// `GET /api/v1/autoscale`: per allocation, the cores waiting work could
/// use now, for a cloud autoscaler to add (or, when zero with idle cores,
/// remove) hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Autoscale {
    pub allocations: Vec<AutoscaleAlloc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AutoscaleAlloc {
    /// `facility.pool`.
    pub allocation: String,
    pub facility: String,
    /// Cores that frames no current host can take could use in this
    /// allocation now, within their shows' burst: what to add.
    pub wanted_cores: f64,
    /// Free cores on hosts that can take work: what could go.
    pub idle_cores: f64,
    /// Cores offered by its UP hosts.
    pub total_cores: f64,
}

impl From<&FarmMetrics> for Autoscale {
    fn from(m: &FarmMetrics) -> Autoscale {
        let cores = |c: Centicores| c as f64 / 100.0;
        Autoscale {
            allocations: m
                .allocations
                .iter()
                .map(|a| AutoscaleAlloc {
                    allocation: a.name.clone(),
                    facility: a.facility.clone(),
                    wanted_cores: cores(a.wanted_cores),
                    idle_cores: cores(a.cores_idle),
                    total_cores: cores(a.cores_total),
                })
                .collect(),
        }
    }
}
