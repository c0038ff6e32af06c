//! The farm as last committed, for the reads that must not wait behind the
//! applier: the job list, a job, the hosts, the structure, the counts and
//! the gauges `/metrics` serves.
//!
//! The applier owns the farm and changes it in steps; a step that starts
//! twenty thousand frames takes a few hundred milliseconds, and a read
//! queued behind it waited that long (`kiln jobs` took 1.2 s at worst while
//! the Maestro farm filled). After each commit, never before, the applier
//! publishes what the step changed into a [`View`], and readers take the
//! view under a lock held only to clone an `Arc`, without asking the
//! applier. The maps share their unchanged parts from one view to the next
//! (`imbl`), so a step that touched three jobs costs three job details,
//! not ten thousand.
//!
//! Two things change without any record of a job changing: the hosts'
//! load and free resources, and so why a job's frames wait. The host list,
//! the structure and the gauges are read again at most every [`REFRESH`] while the
//! applier is busy (at once after a client's change to them, when it goes
//! idle, and on every tick), and the waiting
//! reasons of jobs with waiting frames are refreshed on each tick, oldest
//! first, within [`WHY_BUDGET`].

use kiln_core::auth::{authorize, Action as A, Principal, Target};
use kiln_core::farm::{Dirty, Farm};
use kiln_core::model::JobId;
use kiln_core::view::{
    FarmMetrics, HostInfo, HostQuery, JobDetail, JobQuery, JobSummary, StructureView,
};
use kiln_core::Error as CoreError;
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Longest the host list and structure trail the farm while frames start
/// and end: a read of them costs the applier a pass over every host.
const REFRESH: Duration = Duration::from_millis(100);

/// Longest one tick spends refreshing waiting reasons.
const WHY_BUDGET: Duration = Duration::from_millis(3);

/// What a caller who may not read a job's secrets sees of each value.
const HIDDEN: &str = "<hidden>";

/// One committed state of the farm, as clients read it.
#[derive(Clone, Default)]
pub struct View {
    /// Every job, by id: oldest first.
    jobs: imbl::OrdMap<i64, Arc<JobDetail>>,
    /// The newest job of each name, which a name given for a job means.
    names: imbl::HashMap<String, i64>,
    hosts: Arc<Vec<HostInfo>>,
    structure: Arc<StructureView>,
    /// The gauges `/metrics` serves, read with the hosts.
    metrics: Arc<FarmMetrics>,
}

/// The latest [`View`], shared by the applier (which publishes it) and
/// every wire's API (which reads it).
#[derive(Clone, Default)]
pub struct Committed(Arc<RwLock<Arc<View>>>);

impl Committed {
    fn view(&self) -> Arc<View> {
        self.0.read().expect("committed view lock").clone()
    }

    fn publish(&self, v: View) {
        *self.0.write().expect("committed view lock") = Arc::new(v);
    }

    /// Jobs `who` may read that `q` matches, oldest first, a page at a
    /// time: a page walks the jobs from `q.after` and stops when full, so
    /// the first 100 of 10,000 cost about 100 jobs, not 10,000.
    pub fn list_jobs(&self, who: &Principal, q: &JobQuery) -> Vec<JobSummary> {
        let v = self.view();
        v.jobs
            .range(q.first_id()..)
            .map(|(_, d)| &d.job)
            .filter(|j| q.matches(j))
            .filter(|j| allowed(who, A::Read, j).is_ok())
            .take(q.max())
            .cloned()
            .collect()
    }

    /// The job `key` names (an id, or the newest job of that name), its
    /// environment hidden from callers who may not read its secrets.
    pub fn job(&self, who: &Principal, key: &str) -> Result<JobDetail, CoreError> {
        let v = self.view();
        let key = key.trim();
        let id = key
            .parse::<i64>()
            .ok()
            .filter(|n| v.jobs.contains_key(n))
            .or_else(|| v.names.get(key).copied());
        let Some(d) = id.and_then(|id| v.jobs.get(&id)) else {
            return Err(CoreError::NotFound(format!(
                "no job {key:?}: `kiln jobs --all` lists the jobs this farm knows"
            )));
        };
        allowed(who, A::Read, &d.job)?;
        let mut d = JobDetail::clone(d);
        if allowed(who, A::ReadSecrets, &d.job).is_err() {
            for v in d.env.values_mut() {
                *v = HIDDEN.to_string();
            }
        }
        Ok(d)
    }

    /// A page of the hosts, by id; only the page is copied.
    pub fn hosts(&self, who: &Principal, q: &HostQuery) -> Result<Vec<HostInfo>, CoreError> {
        farm_read(who)?;
        let v = self.view();
        if let Some(name) = &q.name {
            // One host: no copy of the others.
            return Ok(v
                .hosts
                .iter()
                .filter(|h| &h.name == name)
                .cloned()
                .collect());
        }
        let from = q
            .after
            .map_or(0, |a| v.hosts.partition_point(|h| h.id <= a));
        let to = match q.limit {
            0 => v.hosts.len(),
            n => v.hosts.len().min(from.saturating_add(n as usize)),
        };
        Ok(v.hosts[from..to].to_vec())
    }

    pub fn structure(&self, who: &Principal) -> Result<StructureView, CoreError> {
        farm_read(who)?;
        Ok(self.view().structure.as_ref().clone())
    }

    /// The farm's gauges; whoever may read them is the caller's to check.
    pub fn metrics(&self) -> FarmMetrics {
        self.view().metrics.as_ref().clone()
    }

    /// How many jobs and hosts the farm knows.
    pub fn counts(&self) -> (usize, usize) {
        let v = self.view();
        (v.jobs.len(), v.hosts.len())
    }
}

fn allowed(who: &Principal, action: A, j: &JobSummary) -> Result<(), CoreError> {
    let target = Target::Job {
        id: j.id,
        owner: &j.user,
        show: &j.show,
    };
    authorize(who, action, target)
        .into_result()
        .map_err(CoreError::Forbidden)
}

fn farm_read(who: &Principal) -> Result<(), CoreError> {
    authorize(who, A::Read, Target::Farm)
        .into_result()
        .map_err(CoreError::Forbidden)
}

/// What a step changed that the view shows, read from its dirty records
/// before they go to the store.
#[derive(Debug, Default)]
pub(crate) struct Touched {
    jobs: BTreeSet<JobId>,
    hosts: bool,
    structure: bool,
}

impl Touched {
    pub(crate) fn of(d: &Dirty) -> Touched {
        let mut jobs: BTreeSet<JobId> = d.jobs.iter().map(|j| j.id).collect();
        jobs.extend(d.layers.iter().map(|l| l.job));
        jobs.extend(d.frames.iter().map(|f| f.job));
        jobs.extend(d.attempts.iter().map(|a| a.job));
        jobs.extend(d.archived.iter().copied());
        Touched {
            // Frames starting and ending change the hosts' free cores.
            hosts: !d.hosts.is_empty() || !d.attempts.is_empty(),
            structure: !d.structure.is_empty(),
            jobs,
        }
    }
}

/// The applier's side: keeps the working copy and publishes it.
pub(crate) struct Publisher {
    view: View,
    out: Committed,
    /// When the hosts and structure were last read, and whether they have
    /// changed since.
    refreshed: Instant,
    stale: bool,
    /// The job the next tick's refresh of waiting reasons starts after.
    why_after: i64,
}

impl Publisher {
    /// Publishes all of `farm` at once: at start-up, before any request.
    pub(crate) fn new(farm: &Farm, out: Committed) -> Publisher {
        let mut p = Publisher {
            view: View::default(),
            out,
            refreshed: Instant::now(),
            stale: false,
            why_after: 0,
        };
        let all: Vec<JobId> = farm.list_jobs(true).iter().map(|j| JobId(j.id)).collect();
        for id in all {
            p.put_job(farm, id);
        }
        p.refresh(farm);
        p.out.publish(p.view.clone());
        p
    }

    pub(crate) fn committed(&self) -> Committed {
        self.out.clone()
    }

    /// After a commit: reads again what `t` says changed. `urgent`: the
    /// host list and structure must show this step (a client changed them
    /// and reads its change next, or the applier is going idle and nothing
    /// would refresh them until the tick); `ticked`: the step ran the
    /// farm's tick.
    pub(crate) fn publish(&mut self, farm: &Farm, t: Touched, urgent: bool, ticked: bool) {
        let mut changed = !t.jobs.is_empty();
        for id in t.jobs {
            self.put_job(farm, id);
        }
        // The structure counts each show's jobs and cores in use.
        self.stale |= t.hosts || t.structure || changed;
        if ticked || ((urgent || t.structure) && self.stale) || self.stale_for(REFRESH) {
            self.refresh(farm);
            changed = true;
        }
        if ticked {
            changed |= self.refresh_whys(farm);
        }
        if changed {
            self.out.publish(self.view.clone());
        }
    }

    fn stale_for(&self, d: Duration) -> bool {
        self.stale && self.refreshed.elapsed() >= d
    }

    fn put_job(&mut self, farm: &Farm, id: JobId) {
        let Some(d) = farm.detail(id) else {
            // Gone from the farm: forget it, and what its name meant.
            if let Some(old) = self.view.jobs.remove(&id.0) {
                if self.view.names.get(&old.job.name) == Some(&id.0) {
                    self.view.names.remove(&old.job.name);
                    let newest = self
                        .view
                        .jobs
                        .values()
                        .rev()
                        .find(|j| j.job.name == old.job.name);
                    if let Some(n) = newest {
                        self.view.names.insert(n.job.name.clone(), n.job.id);
                    }
                }
            }
            return;
        };
        let newest = self.view.names.get(&d.job.name).is_none_or(|&n| n <= id.0);
        if newest {
            self.view.names.insert(d.job.name.clone(), id.0);
        }
        self.view.jobs.insert(id.0, Arc::new(d));
    }

    fn refresh(&mut self, farm: &Farm) {
        self.view.hosts = Arc::new(farm.hosts());
        self.view.structure = Arc::new(farm.structure());
        self.view.metrics = Arc::new(farm.metrics());
        self.refreshed = Instant::now();
        self.stale = false;
    }

    /// Reads again the jobs whose frames wait, from where the last tick
    /// stopped, for at most [`WHY_BUDGET`]. Returns whether any was read.
    fn refresh_whys(&mut self, farm: &Farm) -> bool {
        let t0 = Instant::now();
        let waiting: Vec<i64> = self
            .view
            .jobs
            .range(self.why_after + 1..)
            .chain(self.view.jobs.range(..=self.why_after))
            .filter(|(_, d)| d.layers.iter().any(|l| l.why.is_some()))
            .map(|(&id, _)| id)
            .collect();
        let mut any = false;
        for id in waiting {
            if t0.elapsed() >= WHY_BUDGET {
                break;
            }
            self.put_job(farm, JobId(id));
            self.why_after = id;
            any = true;
        }
        any
    }
}
