//! The figures of a run, as `kiln simulate --json` prints them; the text
//! form is in `text.rs`. Cores are in cores, times of the virtual clock in
//! milliseconds (`_ms`), real planning times in microseconds (`_us`).

use crate::engine::Sim;
use crate::measure::{outcome_slot, Steady};
use kiln_core::model::{FrameState, Millis, Outcome};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub scenario: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub seed: u64,
    pub duration_ms: Millis,
    /// Figures marked steady leave out the time before this.
    pub warmup_ms: Millis,
    pub hosts: u32,
    pub cores: f64,
    pub utilisation: Utilisation,
    /// Virtual time from idle to 99 % of the cores busy; `None` when no
    /// work arrives at 0 or the farm never gets that busy.
    pub fill_ms: Option<Millis>,
    /// Planning passes it took to fill, and their real time (snapshot,
    /// plan and apply), which the virtual clock does not count.
    pub fill_passes: u64,
    pub fill_real_ms: f64,
    pub frames: Frames,
    pub planning: Planning,
    pub shows: Vec<ShowFigures>,
    pub streams: Vec<StreamFigures>,
    pub jobs: Vec<JobFigures>,
    pub wide: WideFigures,
    pub limits: Vec<LimitFigures>,
    pub host_classes: Vec<ClassFigures>,
    pub placement: Placement,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Utilisation {
    pub steady_mean_pct: f64,
    /// `(t_ms, busy %)` every `sample_every`.
    pub samples: Vec<(Millis, f64)>,
}

/// Nearest-rank percentiles.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(values: &[f64]) -> Option<Percentiles> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Percentiles {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: at(1.0),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Frames {
    pub started: u64,
    pub succeeded: u64,
    /// Attempts that failed (exit not 0), counted against retries.
    pub failed: u64,
    /// Attempts killed for passing their memory reservation.
    pub oom: u64,
    /// Frames killed for memory that later succeeded.
    pub oom_recovered: u64,
    pub lost: u64,
    /// Frames that ran out of retries.
    pub dead: u64,
    pub waiting_at_end: u64,
    pub running_at_end: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Planning {
    /// Passes that planned (the farm had free cores and ready frames).
    pub passes: u64,
    /// Passes whose snapshot had nothing to plan.
    pub idle_passes: u64,
    /// Snapshot + plan, real time.
    pub plan_us: Percentiles,
    pub apply_us: Percentiles,
    pub started_per_pass_mean: f64,
    pub started_per_pass_max: u64,
    /// The first pass that planned (on a fresh farm, the cold fill).
    pub first_plan_us: f64,
    pub first_apply_us: f64,
    pub first_started: u64,
    /// Real time the whole run took.
    pub wall_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShowFigures {
    pub name: String,
    /// Subscription size and burst, summed over its allocations.
    pub size_cores: f64,
    pub burst_cores: Option<f64>,
    /// Steady-state means.
    pub mean_cores: f64,
    pub mean_pct: f64,
    pub entitled_cores: f64,
    pub entitled_pct: f64,
    /// Mean of |used / entitled - 1| over steady samples where entitled > 0.
    pub error_pct: Option<f64>,
    pub max_cores: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamFigures {
    pub name: String,
    pub show: String,
    pub priority: Option<i32>,
    pub jobs: u32,
    pub mean_cores: f64,
    /// Arrival to first frame started, over its jobs that started one.
    pub first_frame_ms: Option<Percentiles>,
    pub succeeded: u32,
    pub dead: u32,
    pub failed: u32,
    pub oom: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobFigures {
    pub name: String,
    pub stream: String,
    pub arrived_ms: Millis,
    pub first_frame_ms: Option<Millis>,
    /// Hosts it avoids after failures there.
    pub avoids: u32,
}

/// Frames needing a whole host or more than half the widest one: time
/// from ready (submitted or requeued, dependencies met) to start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WideFigures {
    pub started: u64,
    pub wait_ms: Option<Percentiles>,
    pub waiting_at_end: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitFigures {
    pub name: String,
    pub max: u32,
    pub peak: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassFigures {
    pub name: String,
    pub hosts: u32,
    pub cores: f64,
    pub gpus: u32,
    pub fail_rate: f64,
    pub started: u64,
    pub failed: u64,
    pub in_repair: u32,
    /// When the last of its hosts went to REPAIR.
    pub last_repair_ms: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    /// Starts of layers that had finished a frame somewhere...
    pub warm_eligible: u64,
    /// ...that went to a host that had finished one of them.
    pub warm: u64,
    pub warm_pct: Option<f64>,
    /// The same share if hosts were picked at random among all.
    pub warm_by_chance_pct: Option<f64>,
    pub cpu_on_gpu: u64,
    /// Of those, while some CPU host had the cores and memory for it.
    pub cpu_on_gpu_with_room: u64,
    /// Job-host pairs where the job avoids the host after failures.
    pub avoided: u64,
    /// Starts on a host already in REPAIR (the farm should allow none).
    pub starts_on_repaired: u64,
}

impl Report {
    /// The report without its real-time figures: two runs of a scenario
    /// with the same seed give equal reports once these are dropped.
    pub fn without_timings(&self) -> Report {
        let mut r = self.clone();
        r.planning.plan_us = Percentiles::default();
        r.planning.apply_us = Percentiles::default();
        r.planning.wall_ms = 0.0;
        r.planning.first_plan_us = 0.0;
        r.planning.first_apply_us = 0.0;
        r.fill_real_ms = 0.0;
        r
    }
}

fn cores(centi: f64) -> f64 {
    centi.round() / 100.0
}

fn pct(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        (part / whole * 1e4).round() / 100.0
    } else {
        0.0
    }
}

impl Sim<'_> {
    pub(crate) fn report(&self, wall_ms: f64) -> Report {
        let st = &self.stats;
        let total = self.total_cores as f64;
        let us = |ns: &[u64]| {
            Percentiles::of(
                &ns.iter()
                    .map(|&n| (n as f64 / 1e3 * 10.0).round() / 10.0)
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_default()
        };
        let passes = st.started_per_pass.len() as u64;
        let started_sum: u64 = st.started_per_pass.iter().map(|&n| n as u64).sum();
        let shows = self
            .shows
            .iter()
            .map(|s| {
                let entitled = Steady {
                    sum: s.entitled_sum,
                    n: s.steady.n,
                }
                .mean();
                ShowFigures {
                    name: s.show.name.clone(),
                    size_cores: s.show.size,
                    burst_cores: s.show.burst,
                    mean_cores: cores(s.steady.mean()),
                    mean_pct: pct(s.steady.mean(), total),
                    entitled_cores: cores(entitled),
                    entitled_pct: pct(entitled, total),
                    error_pct: (s.err_n > 0)
                        .then(|| (s.err_sum / s.err_n as f64 * 1e4).round() / 100.0),
                    max_cores: cores(s.max_used as f64),
                }
            })
            .collect();
        let streams = self
            .streams
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let waits: Vec<f64> = self
                    .jobs
                    .iter()
                    .filter(|j| j.stream == i as u32)
                    .filter_map(|j| j.first_start.map(|t| (t - j.arrived) as f64))
                    .collect();
                StreamFigures {
                    name: s.name.clone(),
                    show: self.shows[s.show as usize].show.name.clone(),
                    priority: s.priority,
                    jobs: s.jobs,
                    mean_cores: cores(s.steady.mean()),
                    first_frame_ms: Percentiles::of(&waits),
                    succeeded: s.succeeded,
                    dead: s.dead,
                    failed: s.failed,
                    oom: s.oom,
                }
            })
            .collect();
        let jobs = self
            .jobs
            .iter()
            .map(|j| JobFigures {
                name: j.name.clone(),
                stream: self.streams[j.stream as usize].name.clone(),
                arrived_ms: j.arrived,
                first_frame_ms: j.first_start.map(|t| t - j.arrived),
                avoids: j.avoids,
            })
            .collect();
        let count =
            |state: FrameState| self.frames.values().filter(|f| f.state == state).count() as u64;
        let outcome = |o: Outcome| st.outcomes[outcome_slot(o)];
        let wide_waiting = self
            .layers
            .iter()
            .filter(|l| l.wide && l.runnable_since.is_some())
            .map(|l| l.counts[0] as u64)
            .sum();
        let host_classes = self
            .s
            .hosts
            .iter()
            .enumerate()
            .map(|(c, class)| {
                let hosts = self.hosts.iter().filter(|h| h.class == c as u32);
                ClassFigures {
                    name: class.name.clone(),
                    hosts: class.count,
                    cores: class.cores,
                    gpus: class.gpus,
                    fail_rate: class.fail_rate,
                    started: st.class_started.get(c).copied().unwrap_or(0),
                    failed: st.class_failed.get(c).copied().unwrap_or(0),
                    in_repair: hosts.clone().filter(|h| h.repair_at.is_some()).count() as u32,
                    last_repair_ms: hosts.filter_map(|h| h.repair_at).max(),
                }
            })
            .collect();
        Report {
            scenario: self.s.name.clone(),
            description: self.s.description.clone(),
            seed: self.s.seed,
            duration_ms: self.s.duration.0,
            warmup_ms: self.s.warmup_ms(),
            hosts: self.hosts.len() as u32,
            cores: cores(total),
            utilisation: Utilisation {
                steady_mean_pct: (st.util_steady.mean() * 100.0).round() / 100.0,
                samples: st
                    .util
                    .iter()
                    .map(|&(t, p)| (t, (p * 100.0).round() / 100.0))
                    .collect(),
            },
            fill_ms: st.fill_at,
            fill_passes: st.fill_passes,
            fill_real_ms: (st.fill_real.as_secs_f64() * 1e4).round() / 10.0,
            frames: Frames {
                started: st.started,
                succeeded: outcome(Outcome::Succeeded),
                failed: outcome(Outcome::Failed) + outcome(Outcome::TimedOut),
                oom: outcome(Outcome::OutOfMemory),
                oom_recovered: st.oom_recovered,
                lost: outcome(Outcome::Lost) + outcome(Outcome::Killed),
                dead: count(FrameState::Dead),
                waiting_at_end: count(FrameState::Waiting),
                running_at_end: count(FrameState::Running),
            },
            planning: Planning {
                passes,
                idle_passes: st.idle_passes,
                plan_us: us(&st.plan_ns),
                apply_us: us(&st.apply_ns),
                started_per_pass_mean: if passes > 0 {
                    (started_sum as f64 / passes as f64 * 10.0).round() / 10.0
                } else {
                    0.0
                },
                started_per_pass_max: st.started_per_pass.iter().copied().max().unwrap_or(0) as u64,
                first_plan_us: st
                    .plan_ns
                    .first()
                    .map_or(0.0, |&n| (n as f64 / 100.0).round() / 10.0),
                first_apply_us: st
                    .apply_ns
                    .first()
                    .map_or(0.0, |&n| (n as f64 / 100.0).round() / 10.0),
                first_started: st.started_per_pass.first().map_or(0, |&n| n as u64),
                wall_ms: (wall_ms * 10.0).round() / 10.0,
            },
            shows,
            streams,
            jobs,
            wide: WideFigures {
                started: st.wide_waits.len() as u64,
                wait_ms: Percentiles::of(
                    &st.wide_waits.iter().map(|&w| w as f64).collect::<Vec<_>>(),
                ),
                waiting_at_end: wide_waiting,
            },
            limits: self
                .limits
                .iter()
                .map(|l| LimitFigures {
                    name: l.name.clone(),
                    max: l.max,
                    peak: l.peak,
                })
                .collect(),
            host_classes,
            placement: Placement {
                warm_eligible: st.warm_eligible,
                warm: st.warm,
                warm_pct: (st.warm_eligible > 0)
                    .then(|| pct(st.warm as f64, st.warm_eligible as f64)),
                warm_by_chance_pct: (st.warm_eligible > 0)
                    .then(|| pct(st.warm_chance, st.warm_eligible as f64)),
                cpu_on_gpu: st.cpu_on_gpu,
                cpu_on_gpu_with_room: st.cpu_on_gpu_with_room,
                avoided: self.jobs.iter().map(|j| j.avoids as u64).sum(),
                starts_on_repaired: st.starts_on_repaired,
            },
        }
    }
}
