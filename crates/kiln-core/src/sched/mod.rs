//! The scheduler: a pure function from a snapshot of the farm and the time
//! to a plan. It reads nothing but its input, does no IO and uses no
//! randomness, so the same snapshot always gives the same plan; the
//! server's applier commits plans, and the simulator runs the same code in
//! virtual time.
//!
//! Policy, in the order it applies (see `docs/scheduling.md`):
//! 1. Shares: per allocation, shows below their subscription `size` come
//!    first, lowest used/size first; above it they may burst to `burst`.
//! 2. Within a show, jobs take cores in proportion to their priority
//!    (lowest used/priority first), ties first-come first-served; a job's
//!    `max_cores` caps it. Limits cap layers farm-wide.
//! 3. Placement is multi-resource best fit, CPU work kept off GPU hosts
//!    where it has somewhere else to go, a host that just ran the layer
//!    preferred, a host where the layer's frames failed on the job's own
//!    account shunned while another could run them.
//! 4. Wide frames that have waited get a host reserved; smaller frames
//!    backfill it only if they are expected to end before it frees.

mod index;
mod plan;
#[cfg(test)]
mod tests;

pub use plan::plan;

use crate::model::{Centicores, CoreRequest, HostId, JobId, LayerId, Millis, Resources, TagReq};
use serde::{Deserialize, Serialize};

/// Tunables of the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedConfig {
    /// A wide frame waiting this long gets a host reserved for it.
    pub reserve_after_ms: i64,
    /// At most this many reservations at once, farm-wide (and never more
    /// than half the hosts a frame could use).
    pub max_reservations: usize,
}

impl Default for SchedConfig {
    fn default() -> Self {
        SchedConfig {
            reserve_after_ms: 120_000,
            max_reservations: 64,
        }
    }
}

/// A host that can take work now.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSlot {
    pub id: HostId,
    /// Index into [`Snapshot::allocations`].
    pub alloc: u32,
    /// What the host offers in all.
    pub total: Resources,
    /// What is left of it.
    pub free: Resources,
    /// Detected and manual tags, sorted, each once; shared, not copied,
    /// from pass to pass.
    pub tags: std::sync::Arc<[String]>,
    /// When its running frames are expected to have ended; `None`: unknown.
    /// Only needed when reservations are in play.
    pub busy_until: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AllocSlot {
    pub name: String,
    pub facility: String,
}

/// A show's subscription to one allocation, with the cores it holds there.
#[derive(Debug, Clone, PartialEq)]
pub struct SubSlot {
    pub alloc: u32,
    pub size: Centicores,
    pub burst: Centicores,
    pub used: Centicores,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShowSlot {
    pub name: String,
    pub subs: Vec<SubSlot>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LimitSlot {
    pub name: String,
    pub max: u32,
    pub used: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobSlot {
    pub id: JobId,
    /// Index into [`Snapshot::shows`].
    pub show: u32,
    pub facility: String,
    pub priority: i32,
    pub submitted_at: Millis,
    /// Cores the job holds now, over all allocations.
    pub used: Centicores,
    pub max_cores: Option<Centicores>,
    /// Hosts the job avoids after failures there.
    pub avoid: Vec<HostId>,
}

/// A layer with frames ready to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Demand {
    /// Index into [`Snapshot::jobs`].
    pub job: u32,
    pub layer: LayerId,
    /// Position in the job; earlier layers go first.
    pub layer_index: u32,
    /// What one frame reserves at least (`cores` is the request's least).
    pub needs: Resources,
    pub cores: CoreRequest,
    pub tags: Vec<TagReq>,
    /// Indices into [`Snapshot::limits`].
    pub limits: Vec<u32>,
    /// Frames that could start now; the applier takes them in order. A
    /// demand with none is ignored (a kept snapshot leaves such rows).
    pub ready: u32,
    /// Since when the layer has had ready frames and got none started.
    pub starved_since: Option<Millis>,
    /// Typical runtime of its frames, once some have finished.
    pub runtime_ms: Option<i64>,
    /// Hosts that recently ran this layer (warm caches), most recent first.
    pub recent_hosts: RecentHosts,
    /// Hosts where its frames recently failed on the job's own account
    /// (its user, working directory or command missing there), most
    /// recent first. Its frames go elsewhere while some other host could
    /// run them at all, even if that means waiting for one.
    pub shun: RecentHosts,
}

/// The few hosts that last ran a layer, most recent first. Kept inline so
/// a snapshot copies them without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecentHosts {
    hosts: [HostId; RecentHosts::MAX],
    len: u8,
}

impl RecentHosts {
    pub const MAX: usize = 4;

    /// Puts `host` first, dropping it from further back and the oldest
    /// beyond [`RecentHosts::MAX`].
    pub fn push(&mut self, host: HostId) {
        let len = self.len as usize;
        let at = self.hosts[..len]
            .iter()
            .position(|&h| h == host)
            .unwrap_or(len.min(Self::MAX - 1));
        self.hosts.copy_within(0..at, 1);
        self.hosts[0] = host;
        self.len = self.len.max(at as u8 + 1);
    }

    /// Drops `host`, if it is there.
    pub fn remove(&mut self, host: HostId) {
        let len = self.len as usize;
        if let Some(at) = self.hosts[..len].iter().position(|&h| h == host) {
            self.hosts.copy_within(at + 1..len, at);
            self.hosts[len - 1] = HostId::default();
            self.len -= 1;
        }
    }

    pub fn contains(&self, host: HostId) -> bool {
        self.hosts[..self.len as usize].contains(&host)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = HostId> + '_ {
        self.hosts[..self.len as usize].iter().copied()
    }
}

impl FromIterator<HostId> for RecentHosts {
    /// Most recent first, as [`RecentHosts::iter`] gives them back.
    fn from_iter<I: IntoIterator<Item = HostId>>(iter: I) -> Self {
        let all: Vec<HostId> = iter.into_iter().collect();
        let mut r = RecentHosts::default();
        for h in all.into_iter().take(Self::MAX).rev() {
            r.push(h);
        }
        r
    }
}

/// A host held for a wide frame until enough of it frees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub layer: LayerId,
    pub host: HostId,
    pub since: Millis,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    pub now: Millis,
    pub config: SchedConfig,
    pub hosts: Vec<HostSlot>,
    pub allocations: Vec<AllocSlot>,
    pub shows: Vec<ShowSlot>,
    pub limits: Vec<LimitSlot>,
    pub jobs: Vec<JobSlot>,
    pub demands: Vec<Demand>,
    /// The reservations of the previous plan, kept while still wanted.
    pub reservations: Vec<Reservation>,
}

/// Start `count` frames of `layer` on `host`, each with `grant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    pub layer: LayerId,
    pub host: HostId,
    pub grant: Resources,
    pub count: u32,
}

/// Why a layer's ready frames did not all start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Wait {
    /// Every host that could run it is busy.
    Busy,
    /// No host it may use has the resources (or tags) it asks for now.
    NoFit,
    /// Its show is at its burst in every allocation it could use.
    Share,
    /// A limit is at its maximum.
    Limit(String),
    /// The job holds its `max_cores`.
    JobCap,
    /// Waiting for a host reserved for it to free.
    Reserved(HostId),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub assignments: Vec<Assignment>,
    pub reservations: Vec<Reservation>,
    /// Layers with ready frames left over, and why.
    pub waits: Vec<(LayerId, Wait)>,
}

impl Plan {
    /// Frames the plan starts.
    pub fn frames(&self) -> u64 {
        self.assignments.iter().map(|a| a.count as u64).sum()
    }
}
