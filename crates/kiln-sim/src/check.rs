//! Checks a scenario whole before anything runs, each problem reported
//! against its field.

use crate::error::{Error, Result};
use crate::jobspec::{job_spec, MAX_FRAMES};
use crate::scenario::{JobStream, Scenario};
use kiln_core::structure::{Allocation, DEFAULT_ALLOCATION};
use std::collections::{BTreeMap, BTreeSet};

/// The most hosts a scenario may describe: enough for any studio's farm.
const MAX_HOSTS: u64 = 200_000;
const MAX_HOST_CORES: f64 = 10_000.0;
const MAX_DURATION_MS: i64 = 366 * 86_400_000;
/// Samples kept in the report at most.
const MAX_SAMPLES: i64 = 100_000;
/// The largest memory figure a frame may use (1P, in KiB).
const MAX_RSS_KB: u64 = 1 << 40;

impl Scenario {
    /// Checks every field; the first problem found is returned.
    pub fn check(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::field("name", "is empty; name the scenario"));
        }
        positive("duration", self.duration.0)?;
        positive("batch", self.batch.0)?;
        positive("sample_every", self.sample_every.0)?;
        if self.duration.0 > MAX_DURATION_MS {
            return Err(Error::field(
                "duration",
                format!(
                    "{} is longer than a simulator run may be (1 year)",
                    self.duration
                ),
            ));
        }
        let samples = self.duration.0 / self.sample_every.0;
        if samples > MAX_SAMPLES {
            return Err(Error::field(
                "sample_every",
                format!(
                    "{} would take {samples} samples over {}; give at least {}",
                    self.sample_every,
                    self.duration,
                    crate::units::Dur(self.duration.0 / MAX_SAMPLES + 1)
                ),
            ));
        }
        if let Some(w) = self.warmup {
            if w.0 >= self.duration.0 {
                return Err(Error::field(
                    "warmup",
                    format!(
                        "{w} is not shorter than the duration ({}); steady state would be empty",
                        self.duration
                    ),
                ));
            }
        }
        for (name, v) in [
            ("farm.avoid_after", self.farm.avoid_after),
            ("farm.repair_after", self.farm.repair_after),
        ] {
            if v == Some(0) {
                return Err(Error::field(name, "must be at least 1"));
            }
        }
        for (i, f) in self.facilities.iter().enumerate() {
            name_ok(&format!("facilities[{i}]"), f)?;
            if f.contains('.') {
                let msg = "contains '.'; allocations are named facility.pool, so facilities cannot";
                return Err(Error::field(
                    format!("facilities[{i}]"),
                    format!("{f:?} {msg}"),
                ));
            }
        }
        let allocs = self.allocation_names()?;
        let alloc_cores = self.check_hosts(&allocs)?;
        self.check_shows(&alloc_cores)?;
        let mut limits = BTreeSet::new();
        for (i, l) in self.limits.iter().enumerate() {
            name_ok(&format!("limits[{i}].name"), &l.name)?;
            if !limits.insert(l.name.as_str()) {
                return Err(Error::field(
                    format!("limits[{i}].name"),
                    format!("{:?} is listed twice", l.name),
                ));
            }
        }
        let shows: BTreeSet<&str> = self.shows.iter().map(|s| s.name.as_str()).collect();
        for (i, s) in self.services.iter().enumerate() {
            let f = |n: &str| format!("services[{i}].{n}");
            name_ok(&f("name"), &s.name)?;
            if let Some(show) = s.show.as_deref().filter(|s| !shows.contains(s)) {
                return Err(Error::field(
                    f("show"),
                    format!("no show {show:?} in `shows`"),
                ));
            }
            if let Some(c) = &s.cores {
                kiln_core::model::CoreRequest::parse(c).map_err(|m| Error::field(f("cores"), m))?;
            }
            for (j, l) in s.limits.iter().flatten().enumerate() {
                if !limits.contains(l.as_str()) {
                    return Err(Error::field(
                        format!("services[{i}].limits[{j}]"),
                        format!("no limit {l:?} in `limits`"),
                    ));
                }
            }
        }
        let services: BTreeSet<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
        let facilities = self.facility_names();
        let mut frames = 0u64;
        let mut streams = BTreeSet::new();
        for (i, stream) in self.jobs.iter().enumerate() {
            // Job names are made from the stream's; two alike would mix.
            if !streams.insert(stream.name.as_str()) {
                return Err(Error::field(
                    format!("jobs[{i}].name"),
                    format!(
                        "{:?} names another stream too; stream names must be unique",
                        stream.name
                    ),
                ));
            }
            frames += stream.count as u64
                * self.check_stream(i, stream, &limits, &services, &facilities)? as u64;
            if frames > MAX_FRAMES {
                let msg = format!(
                    "brings the scenario to more than {MAX_FRAMES} frames; use fewer or larger ones"
                );
                return Err(Error::field(format!("jobs[{i}].count"), msg));
            }
        }
        Ok(())
    }

    /// Every allocation, the default included, checked.
    fn allocation_names(&self) -> Result<BTreeSet<String>> {
        let mut names = BTreeSet::from([DEFAULT_ALLOCATION.to_owned()]);
        for (i, a) in self.allocations.iter().enumerate() {
            let field = format!("allocations[{i}].name");
            name_ok(&field, &a.name)?;
            if Allocation::split_name(&a.name).is_none() {
                return Err(Error::field(
                    field,
                    format!("{:?} is not facility.pool (like local.gpu)", a.name),
                ));
            }
            if !names.insert(a.name.clone()) && a.name != DEFAULT_ALLOCATION {
                return Err(Error::field(field, format!("{:?} is listed twice", a.name)));
            }
        }
        Ok(names)
    }

    /// Facilities that exist once the scenario is set up.
    pub(crate) fn facility_names(&self) -> BTreeSet<String> {
        let mut f: BTreeSet<String> = self.facilities.iter().cloned().collect();
        f.insert("local".into());
        f.extend(
            self.allocations
                .iter()
                .filter_map(|a| Allocation::split_name(&a.name))
                .map(|(f, _)| f.to_owned()),
        );
        f
    }

    /// Checks the host classes; returns the cores of each allocation.
    fn check_hosts(&self, allocs: &BTreeSet<String>) -> Result<BTreeMap<String, f64>> {
        if self.hosts.is_empty() {
            return Err(Error::field(
                "hosts",
                "is empty; describe at least one class of hosts",
            ));
        }
        let mut cores: BTreeMap<String, f64> = allocs.iter().map(|a| (a.clone(), 0.0)).collect();
        let mut names = BTreeSet::new();
        let mut total = 0u64;
        for (i, h) in self.hosts.iter().enumerate() {
            let f = |n: &str| format!("hosts[{i}].{n}");
            name_ok(&f("name"), &h.name)?;
            if !names.insert(h.name.as_str()) {
                return Err(Error::field(
                    f("name"),
                    format!(
                        "{:?} names another class too; host names must be unique",
                        h.name
                    ),
                ));
            }
            if !(h.cores > 0.0 && h.cores <= MAX_HOST_CORES) || (h.cores * 100.0).fract() != 0.0 {
                let msg =
                    format!("give more than 0 and at most {MAX_HOST_CORES}, in hundredths at most");
                return Err(Error::field(
                    f("cores"),
                    format!("{} is not a core count; {msg}", h.cores),
                ));
            }
            if h.memory.0 == 0 {
                return Err(Error::field(
                    f("memory"),
                    "is 0; give the memory a host offers, like 64G",
                ));
            }
            if h.gpus > 0 && h.gpu_memory.0 == 0 {
                return Err(Error::field(
                    f("gpu_memory"),
                    "is 0 while gpus is not; give the GPU memory, summed over the GPUs, like 48G",
                ));
            }
            rate(&f("fail_rate"), h.fail_rate)?;
            for (j, t) in h.tags.iter().enumerate() {
                name_ok(&format!("hosts[{i}].tags[{j}]"), t)?;
            }
            let alloc = h.allocation.as_deref().unwrap_or(DEFAULT_ALLOCATION);
            let Some(c) = cores.get_mut(alloc) else {
                return Err(Error::field(
                    f("allocation"),
                    format!("no allocation {alloc:?}; add it to `allocations`"),
                ));
            };
            *c += h.cores * h.count as f64;
            total += h.count as u64;
        }
        if total == 0 || total > MAX_HOSTS {
            return Err(Error::field(
                "hosts",
                format!("describe 1 to {MAX_HOSTS} hosts in all, not {total}"),
            ));
        }
        Ok(cores)
    }

    fn check_shows(&self, alloc_cores: &BTreeMap<String, f64>) -> Result<()> {
        let mut names = BTreeSet::new();
        for (i, s) in self.shows.iter().enumerate() {
            name_ok(&format!("shows[{i}].name"), &s.name)?;
            if !names.insert(s.name.as_str()) {
                return Err(Error::field(
                    format!("shows[{i}].name"),
                    format!("{:?} is listed twice", s.name),
                ));
            }
            if let Some(p) = s.priority.filter(|p| !(0..=1_000_000).contains(p)) {
                return Err(Error::field(
                    format!("shows[{i}].priority"),
                    format!("{p} is out of range; give 0 to 1000000"),
                ));
            }
            let mut subs = BTreeSet::new();
            for (j, sub) in s.subscriptions.iter().enumerate() {
                let f = |n: &str| format!("shows[{i}].subscriptions[{j}].{n}");
                let Some(&cores) = alloc_cores.get(&sub.allocation) else {
                    return Err(Error::field(
                        f("allocation"),
                        format!(
                            "no allocation {:?}; add it to `allocations`",
                            sub.allocation
                        ),
                    ));
                };
                if !subs.insert(sub.allocation.as_str()) {
                    return Err(Error::field(
                        f("allocation"),
                        format!("{:?} is subscribed twice", sub.allocation),
                    ));
                }
                let size = sub.size.cores(cores);
                if let Some(burst) = sub.burst {
                    if burst.cores(cores) < size {
                        let msg = "the burst caps the show and must be at least its size";
                        let msg = format!("{burst} is less than the size ({}); {msg}", sub.size);
                        return Err(Error::field(f("burst"), msg));
                    }
                }
                if size * 100.0 > u32::MAX as f64 / 2.0 {
                    return Err(Error::field(f("size"), "is too large"));
                }
            }
        }
        Ok(())
    }

    /// Checks a stream; returns the frames of one of its jobs.
    fn check_stream(
        &self,
        i: usize,
        s: &JobStream,
        limits: &BTreeSet<&str>,
        services: &BTreeSet<&str>,
        facilities: &BTreeSet<String>,
    ) -> Result<usize> {
        let f = |n: &str| format!("jobs[{i}].{n}");
        if s.count == 0 {
            return Err(Error::field(
                f("count"),
                "is 0; give how many jobs arrive (1 or more)",
            ));
        }
        if !facilities.contains(&s.facility) {
            return Err(Error::field(
                f("facility"),
                format!("no facility {:?}; add it to `facilities`", s.facility),
            ));
        }
        for (j, l) in s.layers.iter().enumerate() {
            let f = |n: &str| format!("jobs[{i}].layers[{j}].{n}");
            if l.runtime.lo.0 <= 0 {
                return Err(Error::field(
                    f("runtime"),
                    "must be more than 0, like 10m or 5m..15m",
                ));
            }
            if l.rss.is_some_and(|r| r.lo.0 == 0 || r.hi.0 > MAX_RSS_KB) {
                let msg = "must be more than 0 and at most 1P, like 2G or 1G..3G; \
                           leave it out to use what the frame reserves";
                return Err(Error::field(f("rss"), msg));
            }
            rate(&f("fail_rate"), l.fail_rate)?;
            for (k, name) in l.limits.iter().enumerate() {
                if !limits.contains(name.as_str()) {
                    return Err(Error::field(
                        format!("jobs[{i}].layers[{j}].limits[{k}]"),
                        format!("no limit {name:?} in `limits`"),
                    ));
                }
            }
            if let Some(svc) = l.service.as_deref().filter(|s| !services.contains(s)) {
                return Err(Error::field(
                    f("service"),
                    format!("no service {svc:?} in `services`"),
                ));
            }
        }
        let job = job_spec(i, s, 1)?;
        Ok(job.layers.iter().map(|l| l.tasks as usize).sum())
    }
}

fn positive(field: &str, ms: i64) -> Result<()> {
    match ms > 0 {
        true => Ok(()),
        false => Err(Error::field(field, "must be more than 0")),
    }
}

fn rate(field: &str, r: f64) -> Result<()> {
    match (0.0..=1.0).contains(&r) {
        true => Ok(()),
        false => Err(Error::field(
            field,
            format!("{r} is not a chance; give 0 to 1 (0.05 is one frame in twenty)"),
        )),
    }
}

/// The farm's rule for names of structure records.
fn name_ok(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
    match ok {
        true => Ok(()),
        false => Err(Error::field(
            field,
            format!(
                "{name:?} is not a valid name; use 1-100 letters, digits, '.', '_', ':' or '-'"
            ),
        )),
    }
}
