//! What clients see of the farm's structure: facilities, allocations, shows,
//! subscriptions, limits and services, each with what it holds now.

use crate::model::Centicores;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FacilityInfo {
    pub name: String,
    pub allocations: u32,
    pub hosts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AllocationInfo {
    /// `facility.pool`.
    pub name: String,
    pub facility: String,
    /// New hosts carrying any of these tags join it.
    pub tags: Vec<String>,
    pub hosts: u32,
    /// Hosts up and open, that can take work.
    pub hosts_up: u32,
    /// Cores of its hosts that are up and open.
    pub cores: Centicores,
    /// Cores its running frames hold.
    pub cores_used: Centicores,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShowInfo {
    pub name: String,
    /// A disabled show starts nothing new and takes no new jobs.
    pub enabled: bool,
    /// The priority of a job whose spec sets none.
    pub default_priority: i32,
    /// The cap of a job whose spec sets no `max_cores`; `None`: no cap.
    pub default_max_cores: Option<Centicores>,
    /// Its unfinished jobs.
    pub jobs: u32,
    /// Cores its running frames hold, in all allocations.
    pub cores_used: Centicores,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubscriptionInfo {
    pub show: String,
    pub allocation: String,
    /// Cores guaranteed to the show in the allocation when it has work.
    pub size: Centicores,
    /// The most cores it may hold there; `None`: no cap.
    pub burst: Option<Centicores>,
    /// Cores it holds there now.
    pub used: Centicores,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LimitInfo {
    pub name: String,
    /// Frames naming it that may run at once, farm-wide.
    pub max: u32,
    /// Frames naming it running now.
    pub used: u32,
}

/// A service's defaults; `None` fields fall through to the farm-wide
/// service of the same name, then to Kiln's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceInfo {
    pub name: String,
    /// The show it applies to; `None`: every show.
    pub show: Option<String>,
    /// As a spec writes it: `4`, `4+`, `2-8`, `all`.
    pub cores: Option<String>,
    pub memory_kb: Option<u64>,
    pub gpus: Option<u32>,
    pub gpu_memory_kb: Option<u64>,
    /// Each an alternative list, as a spec writes it: `gpu|cuda`.
    pub tags: Option<Vec<String>>,
    pub timeout_s: Option<u64>,
    pub limits: Option<Vec<String>>,
}

/// The whole structure, each kind sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StructureView {
    pub facilities: Vec<FacilityInfo>,
    pub allocations: Vec<AllocationInfo>,
    pub shows: Vec<ShowInfo>,
    pub subscriptions: Vec<SubscriptionInfo>,
    pub limits: Vec<LimitInfo>,
    pub services: Vec<ServiceInfo>,
}
