//! The figures accumulated as a run goes: utilisation and share samples
//! (each show against its entitlement), peaks checked after each pass,
//! planning times, outcomes, and the placement counters.

use crate::engine::Sim;
use crate::fairshare::{entitlements, Claim};
use kiln_core::model::{FrameId, Millis, Outcome};
use std::collections::HashSet;
use std::time::Duration;

/// A sum over the steady-state samples.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Steady {
    pub sum: f64,
    pub n: u32,
}

impl Steady {
    pub fn add(&mut self, v: f64) {
        self.sum += v;
        self.n += 1;
    }
    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub track_fill: bool,
    pub fill_at: Option<Millis>,
    /// Passes until the farm filled, and their real time.
    pub fill_passes: u64,
    pub fill_real: Duration,
    /// Centicores running now.
    pub busy: u64,
    pub util: Vec<(Millis, f64)>,
    pub util_steady: Steady,
    pub plan_ns: Vec<u64>,
    pub apply_ns: Vec<u64>,
    pub started_per_pass: Vec<u32>,
    pub idle_passes: u64,
    pub outcomes: [u64; 6],
    pub started: u64,
    pub oom_frames: HashSet<FrameId>,
    pub oom_recovered: u64,
    pub wide_waits: Vec<Millis>,
    pub warm_eligible: u64,
    pub warm: u64,
    /// Warm starts expected if hosts were picked at random.
    pub warm_chance: f64,
    pub cpu_on_gpu: u64,
    pub cpu_on_gpu_with_room: u64,
    pub starts_on_repaired: u64,
    /// Per host class: attempts started, and failed (exit not 0).
    pub class_started: Vec<u64>,
    pub class_failed: Vec<u64>,
}

impl Stats {
    pub fn record_pass(&mut self, plan: Duration, apply: Duration, started: usize) {
        self.plan_ns.push(plan.as_nanos() as u64);
        self.apply_ns.push(apply.as_nanos() as u64);
        self.started_per_pass.push(started as u32);
    }
}

/// Index of an outcome in [`Stats::outcomes`].
pub(crate) fn outcome_slot(o: Outcome) -> usize {
    match o {
        Outcome::Succeeded => 0,
        Outcome::Failed => 1,
        Outcome::OutOfMemory => 2,
        Outcome::TimedOut => 3,
        Outcome::Killed => 4,
        Outcome::Lost => 5,
    }
}

impl Sim<'_> {
    /// Peaks and the fill time, checked after each pass (the only time
    /// usage grows).
    pub(crate) fn after_pass(&mut self) {
        for s in &mut self.shows {
            s.max_used = s.max_used.max(s.used);
        }
        for l in &mut self.limits {
            l.peak = l.peak.max(l.used);
        }
        if self.stats.track_fill
            && self.stats.fill_at.is_none()
            && self.stats.busy * 100 >= self.total_cores * 99
        {
            self.stats.fill_at = Some(self.now);
        }
    }

    /// One sample: utilisation, and each show's cores against what it is
    /// entitled to now.
    pub(crate) fn sample(&mut self) {
        let pct = 100.0 * self.stats.busy as f64 / self.total_cores.max(1) as f64;
        self.stats.util.push((self.now, pct));
        if self.now < self.s.warmup_ms() {
            return;
        }
        self.stats.util_steady.add(pct);
        // Demand: cores running plus cores asked by ready frames, per job
        // no more than its max_cores.
        let mut waiting = vec![0u64; self.jobs.len()];
        for l in &self.layers {
            if l.counts[0] > 0 && l.runnable_since.is_some() {
                waiting[l.job as usize] += l.counts[0] as u64 * l.need as u64;
            }
        }
        let mut demand = vec![0.0; self.shows.len()];
        for (j, w) in self.jobs.iter().zip(waiting) {
            let d = (j.used + w)
                .min(j.max_cores.map_or(u64::MAX, u64::from))
                .max(j.used);
            demand[self.streams[j.stream as usize].show as usize] += d as f64;
        }
        let capacity: u64 = self
            .hosts
            .iter()
            .filter(|h| h.repair_at.is_none())
            .map(|h| h.total.cores as u64)
            .sum();
        let claims: Vec<Claim> = self
            .shows
            .iter()
            .zip(&demand)
            .map(|(s, &d)| Claim {
                weight: s.show.size,
                cap: s.show.burst.map_or(d, |b| d.min(b * 100.0)),
            })
            .collect();
        let entitled = entitlements(capacity as f64, &claims);
        for (s, e) in self.shows.iter_mut().zip(entitled) {
            s.steady.add(s.used as f64);
            s.entitled_sum += e;
            if e > 0.0 {
                s.err_sum += (s.used as f64 / e - 1.0).abs();
                s.err_n += 1;
            }
        }
        for s in &mut self.streams {
            s.steady.add(s.used as f64);
        }
    }
}
