//! What each show holds in each allocation, each job in all, and each limit:
//! kept up to date as attempts start and end, so a scheduling pass reads
//! them instead of summing the running frames.

use super::*;

#[derive(Debug, Default)]
pub(super) struct Usage {
    /// show → allocation → cores.
    subs: HashMap<String, HashMap<String, Centicores>>,
    limits: HashMap<String, u32>,
}

impl Usage {
    pub fn sub(&self, show: &str, alloc: &str) -> Centicores {
        self.subs
            .get(show)
            .and_then(|m| m.get(alloc))
            .copied()
            .unwrap_or(0)
    }

    pub fn limit(&self, name: &str) -> u32 {
        self.limits.get(name).copied().unwrap_or(0)
    }

    fn add_sub(&mut self, show: &str, alloc: &str, cores: Centicores, add: bool) {
        let by_alloc = match self.subs.get_mut(show) {
            Some(m) => m,
            None => self.subs.entry(show.to_owned()).or_default(),
        };
        let v = match by_alloc.get_mut(alloc) {
            Some(v) => v,
            None => by_alloc.entry(alloc.to_owned()).or_default(),
        };
        *v = if add {
            *v + cores
        } else {
            v.saturating_sub(cores)
        };
    }

    fn add_limit(&mut self, name: &str, add: bool) {
        let v = match self.limits.get_mut(name) {
            Some(v) => v,
            None => self.limits.entry(name.to_owned()).or_default(),
        };
        *v = if add { *v + 1 } else { v.saturating_sub(1) };
    }
}

impl Farm {
    /// Counts an attempt's grant against its job, its show's subscription
    /// in the host's allocation and its layer's limits (`add`), or gives
    /// it back.
    pub(super) fn charge(&mut self, attempt: AttemptId, job: JobId, layer: LayerId, add: bool) {
        let Some(inf) = self.in_flight.get(&attempt) else {
            return;
        };
        let cores = inf.grant.cores;
        if let Some(j) = self.jobs.quiet_mut(&job) {
            j.used = if add {
                j.used + cores
            } else {
                j.used.saturating_sub(cores)
            };
            self.mirror.job_used(job, j.used);
            self.usage.add_sub(&j.job.show, &inf.alloc, cores, add);
        }
        if let Some(l) = self.layers.get(&layer) {
            for name in &l.layer.limits {
                self.usage.add_limit(name, add);
            }
        }
    }
}

/// Typical runtime of a layer's frames: the mean of those that succeeded.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Runtime {
    total_ms: i64,
    count: i64,
}

impl Runtime {
    pub fn add(&mut self, ms: i64) {
        self.total_ms += ms.max(0);
        self.count += 1;
    }

    pub fn mean(&self) -> Option<i64> {
        (self.count > 0).then(|| self.total_ms / self.count)
    }
}
