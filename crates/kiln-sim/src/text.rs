//! The report for people: a few lines of headline figures, then aligned
//! tables per show, stream, limit and host class, sections that have
//! nothing to say left out.

use crate::report::Report;
use crate::units::format_ms;
use std::fmt::Write;

/// Columns of the utilisation sparkline at most.
const SPARK: usize = 60;

impl Report {
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let w = &mut o;
        let _ = writeln!(
            w,
            "Scenario {}: {} hosts, {} cores, {} virtual (steady state after {}), seed {}",
            self.scenario,
            self.hosts,
            num(self.cores),
            format_ms(self.duration_ms),
            format_ms(self.warmup_ms),
            self.seed
        );
        if let Some(d) = &self.description {
            for line in d.trim().lines() {
                let _ = writeln!(w, "  {}", line.trim());
            }
        }
        let _ = writeln!(w);
        self.utilisation_text(w);
        let f = &self.frames;
        let _ = writeln!(
            w,
            "Frames: {} started, {} succeeded, {} failed, {} OOM ({} of those frames later \
             succeeded), {} lost, {} dead; at the end {} running, {} waiting",
            f.started,
            f.succeeded,
            f.failed,
            f.oom,
            f.oom_recovered,
            f.lost,
            f.dead,
            f.running_at_end,
            f.waiting_at_end
        );
        let p = &self.planning;
        let _ = writeln!(
            w,
            "Planning (real time of snapshot + plan per pass): {} passes (+{} with nothing to \
             plan), p50 {}, p90 {}, p99 {}, max {}",
            p.passes,
            p.idle_passes,
            us(p.plan_us.p50),
            us(p.plan_us.p90),
            us(p.plan_us.p99),
            us(p.plan_us.max)
        );
        let _ = writeln!(
            w,
            "  apply p50 {}, max {}; frames started per pass: mean {}, max {}",
            us(p.apply_us.p50),
            us(p.apply_us.max),
            p.started_per_pass_mean,
            p.started_per_pass_max,
        );
        let _ = writeln!(
            w,
            "  first pass: snapshot + plan {}, apply {} ({} frames started); whole run {}",
            us(p.first_plan_us),
            us(p.first_apply_us),
            p.first_started,
            us(p.wall_ms * 1000.0)
        );
        let _ = writeln!(w);
        let rows = self
            .shows
            .iter()
            .filter(|s| s.max_cores > 0.0 || s.entitled_cores > 0.0)
            .map(|s| {
                vec![
                    s.name.clone(),
                    num(s.size_cores),
                    s.burst_cores.map_or("-".into(), num),
                    num(s.mean_cores),
                    format!("{}%", s.mean_pct),
                    format!("{}%", s.entitled_pct),
                    s.error_pct.map_or("-".into(), |e| format!("{e}%")),
                    num(s.max_cores),
                ]
            })
            .collect::<Vec<_>>();
        section(
            w,
            "Shows, steady state (error: mean |used / entitled - 1|)",
            &[
                "show",
                "size",
                "burst",
                "cores",
                "share",
                "entitled",
                "error",
                "max cores",
            ],
            rows,
        );
        let rows = self
            .streams
            .iter()
            .map(|s| {
                let ff = s.first_frame_ms.unwrap_or_default();
                let t = |v: f64| {
                    if s.first_frame_ms.is_some() {
                        format_ms(v as i64)
                    } else {
                        "-".into()
                    }
                };
                vec![
                    s.name.clone(),
                    s.show.clone(),
                    s.priority.map_or("-".into(), |p| p.to_string()),
                    s.jobs.to_string(),
                    num(s.mean_cores),
                    t(ff.p50),
                    t(ff.p90),
                    t(ff.max),
                    s.succeeded.to_string(),
                    s.failed.to_string(),
                    s.oom.to_string(),
                    s.dead.to_string(),
                ]
            })
            .collect();
        section(
            w,
            "Job streams (cores: steady-state mean; first frame: arrival to first start)",
            &[
                "stream",
                "show",
                "priority",
                "jobs",
                "cores",
                "first p50",
                "p90",
                "max",
                "done",
                "failed",
                "OOM",
                "dead",
            ],
            rows,
        );
        if self.wide.started > 0 || self.wide.waiting_at_end > 0 {
            let wt = self.wide.wait_ms.unwrap_or_default();
            let _ = writeln!(
                w,
                "Wide frames: {} started, wait from ready to start p50 {}, p90 {}, max {}; \
                 {} still waiting at the end",
                self.wide.started,
                format_ms(wt.p50 as i64),
                format_ms(wt.p90 as i64),
                format_ms(wt.max as i64),
                self.wide.waiting_at_end
            );
            let _ = writeln!(w);
        }
        let rows = self
            .limits
            .iter()
            .map(|l| vec![l.name.clone(), l.max.to_string(), l.peak.to_string()])
            .collect();
        section(w, "Limits", &["limit", "max", "peak running"], rows);
        let rows = self
            .host_classes
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.hosts.to_string(),
                    num(c.cores),
                    c.gpus.to_string(),
                    c.fail_rate.to_string(),
                    c.started.to_string(),
                    c.failed.to_string(),
                    c.in_repair.to_string(),
                    c.last_repair_ms.map_or("-".into(), format_ms),
                ]
            })
            .collect();
        section(
            w,
            "Host classes",
            &[
                "class",
                "hosts",
                "cores",
                "gpus",
                "fail rate",
                "started",
                "failed",
                "in repair",
                "last repair",
            ],
            rows,
        );
        let pl = &self.placement;
        if let Some(warm) = pl.warm_pct {
            let chance = pl.warm_by_chance_pct.unwrap_or(0.0);
            let _ = writeln!(
                w,
                "Locality: {warm}% of {} starts went to a host that had finished a frame of the \
                 same layer ({chance}% by chance)",
                pl.warm_eligible
            );
        }
        if pl.cpu_on_gpu > 0 || self.host_classes.iter().any(|c| c.gpus > 0) {
            let _ = writeln!(
                w,
                "CPU frames on GPU hosts: {} ({} while a CPU host had room)",
                pl.cpu_on_gpu, pl.cpu_on_gpu_with_room
            );
        }
        if pl.avoided > 0 || pl.starts_on_repaired > 0 {
            let _ = writeln!(
                w,
                "Bad hosts: {} job-host pairs avoided; {} starts on hosts in REPAIR",
                pl.avoided, pl.starts_on_repaired
            );
        }
        o
    }

    fn utilisation_text(&self, w: &mut String) {
        let u = &self.utilisation;
        let fill = match self.fill_ms {
            Some(t) => format!(
                "idle to 99% busy in {} virtual ({} passes taking {} real)",
                format_ms(t),
                self.fill_passes,
                us(self.fill_real_ms * 1000.0)
            ),
            None => "never 99% busy from idle".into(),
        };
        let _ = writeln!(
            w,
            "Utilisation: steady-state mean {}% of cores busy; {fill}",
            u.steady_mean_pct
        );
        if u.samples.is_empty() {
            return;
        }
        let per = u.samples.len().div_ceil(SPARK);
        const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
        let line: String = u
            .samples
            .chunks(per)
            .map(|c| {
                let mean = c.iter().map(|s| s.1).sum::<f64>() / c.len() as f64;
                BARS[((mean / 100.0 * 8.0) as usize).min(7)]
            })
            .collect();
        let step = u.samples.get(1).map_or(0, |s| s.0 - u.samples[0].0) * per as i64;
        let _ = writeln!(
            w,
            "  {line}  (0 to {}, one mark per {})",
            format_ms(self.duration_ms),
            format_ms(step)
        );
        // A few samples as numbers, for reading exact values.
        let every = u.samples.len().div_ceil(8);
        let row: Vec<String> = u
            .samples
            .iter()
            .step_by(every)
            .map(|&(t, p)| format!("{} {p}%", format_ms(t)))
            .collect();
        let _ = writeln!(w, "  {}", row.join(" | "));
        let _ = writeln!(w);
    }
}

/// A heading and an aligned table; nothing when there are no rows.
fn section(w: &mut String, title: &str, head: &[&str], rows: Vec<Vec<String>>) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(w, "{title}");
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| match i {
                // Names to the left, figures to the right.
                0 => format!("{c:<w$}", w = width[i]),
                _ => format!("{c:>w$}", w = width[i]),
            })
            .collect();
        format!("  {}", parts.join("  ").trim_end())
    };
    let _ = writeln!(w, "{}", line(head.to_vec()));
    for r in &rows {
        let _ = writeln!(w, "{}", line(r.iter().map(String::as_str).collect()));
    }
    let _ = writeln!(w);
}

/// A count of cores: no decimals when whole.
fn num(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Microseconds for people.
fn us(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.2}s", v / 1e6),
        v if v >= 1e3 => format!("{:.2}ms", v / 1e3),
        v => format!("{v:.0}µs"),
    }
}
