//! The mirror's job and demand rows: built, read again one job at a time,
//! and left in place with nothing ready when a job or layer drops out.

use super::*;
use crate::sched::{Demand, JobSlot};

impl Mirror {
    /// Every runnable job with its layers that have frames ready.
    pub(super) fn build_jobs(&mut self, farm: &Farm) {
        self.snap.jobs.clear();
        self.snap.demands.clear();
        self.job_row.clear();
        self.demand_row.clear();
        self.job_demands.clear();
        self.volatile.clear();
        self.overlaid.clear();
        self.dead = 0;
        for entry in farm.jobs.values() {
            if volatile(farm, entry) {
                self.volatile.insert(entry.job.id);
            }
            if let Some((slot, demands)) = self.job_rows(farm, entry) {
                self.push_job(slot, demands);
            }
        }
    }

    fn push_job(&mut self, slot: JobSlot, demands: Vec<Demand>) {
        let j = self.snap.jobs.len() as u32;
        self.job_row.insert(slot.id, j);
        self.snap.jobs.push(slot);
        let rows = demands
            .into_iter()
            .map(|d| self.push_demand(j, d))
            .collect();
        self.job_demands.push(rows);
    }

    fn push_demand(&mut self, job: u32, mut d: Demand) -> u32 {
        let r = self.snap.demands.len() as u32;
        d.job = job;
        self.demand_row.insert(d.layer, r);
        self.snap.demands.push(d);
        r
    }

    /// Reads one job and its layers again.
    pub(super) fn job_changed(&mut self, farm: &Farm, id: JobId) {
        let rows = match farm.jobs.get(&id) {
            Some(entry) => {
                if volatile(farm, entry) {
                    self.volatile.insert(id);
                } else {
                    self.volatile.remove(&id);
                }
                self.job_rows(farm, entry)
            }
            None => {
                self.volatile.remove(&id);
                None
            }
        };
        let Some(&j) = self.job_row.get(&id) else {
            if let Some((slot, demands)) = rows {
                self.push_job(slot, demands);
            }
            return;
        };
        let old = std::mem::take(&mut self.job_demands[j as usize]);
        let Some((slot, demands)) = rows else {
            // Counted once, when it loses its demands: a job read again
            // every pass (volatile) must not count again each time.
            if !old.is_empty() {
                self.orphan(&old);
                self.dead += 1;
            }
            return;
        };
        self.snap.jobs[j as usize] = slot;
        let same = old.len() == demands.len()
            && old
                .iter()
                .zip(&demands)
                .all(|(&r, d)| self.snap.demands[r as usize].layer == d.layer);
        if same {
            for (&r, mut d) in old.iter().zip(demands) {
                d.job = j;
                self.snap.demands[r as usize] = d;
            }
            self.job_demands[j as usize] = old;
        } else {
            self.orphan(&old);
            let rows = demands
                .into_iter()
                .map(|d| self.push_demand(j, d))
                .collect();
            self.job_demands[j as usize] = rows;
        }
    }

    /// Leaves demand rows in place with nothing ready, owned by no layer.
    fn orphan(&mut self, rows: &[u32]) {
        for &r in rows {
            let d = &mut self.snap.demands[r as usize];
            d.ready = 0;
            if self.demand_row.get(&d.layer) == Some(&r) {
                self.demand_row.remove(&d.layer);
            }
            self.dead += 1;
        }
    }

    /// A job's row and its demands (`job` left 0), if it is runnable and
    /// some layer of it has a frame ready.
    fn job_rows(&self, farm: &Farm, entry: &JobEntry) -> Option<(JobSlot, Vec<Demand>)> {
        if !farm.job_runnable(entry) {
            return None;
        }
        let show = *self.show_index.get(entry.job.show.as_str())?;
        let mut demands = Vec::new();
        for lid in &entry.layers {
            let l = &farm.layers[lid];
            if l.waiting.is_empty() || !farm.layer_runnable(l) {
                continue;
            }
            let needs = l.needs();
            let cap = self.free_cores / needs.cores.max(1) as u64 + 1;
            let ready = farm.ready_count(l, cap);
            if ready == 0 {
                continue;
            }
            let Some(limits) = l
                .layer
                .limits
                .iter()
                .map(|n| self.limit_index.get(n.as_str()).copied())
                .collect::<Option<Vec<u32>>>()
            else {
                continue;
            };
            demands.push(Demand {
                job: 0,
                layer: l.layer.id,
                layer_index: l.layer.index,
                needs,
                cores: l.layer.cores,
                tags: l.layer.tags.clone(),
                limits,
                ready,
                starved_since: l.starved_since,
                runtime_ms: l.runtime.mean(),
                recent_hosts: l.recent_hosts,
                shun: l.shun,
            });
        }
        if demands.is_empty() {
            return None;
        }
        let slot = JobSlot {
            id: entry.job.id,
            show,
            facility: entry.job.facility.clone(),
            priority: entry.job.priority,
            submitted_at: entry.job.submitted_at,
            used: entry.used,
            max_cores: entry.job.max_cores,
            avoid: entry.job.avoid_hosts.clone(),
        };
        Some((slot, demands))
    }
}

/// Whether a job's rows hang on more than its own entries: a dependency on
/// another job, or a layer waiting on single frames of another layer.
fn volatile(farm: &Farm, entry: &JobEntry) -> bool {
    entry.job.state == JobState::Active
        && (!entry.job.depends.is_empty()
            || entry
                .layers
                .iter()
                .any(|l| farm.layers[l].layer.depends.iter().any(|d| d.per_frame)))
}
