//! A scenario: the farm (hosts, allocations, shows, limits), the work that
//! arrives on it (streams of jobs) and how long to run, read from YAML or
//! JSON. Unknown fields are refused and every error names its field, so a
//! typo in a policy experiment is caught before it silently means nothing.
//! docs/simulate.md describes every field.

use crate::error::{Error, Result};
use crate::units::{loose, opt_loose, Dur, Mem, Share, Spread};
use serde::{Deserialize, Serialize};

/// A described farm and its work, run by [`crate::run`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// What the scenario shows; printed with the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Virtual time to run for.
    pub duration: Dur,
    /// Seeds every runtime, memory and failure draw.
    #[serde(default)]
    pub seed: u64,
    /// Virtual time between planning passes while events keep coming, as
    /// the server batches events between commits.
    #[serde(default = "default_batch")]
    pub batch: Dur,
    #[serde(default = "default_sample")]
    pub sample_every: Dur,
    /// Time left out of steady-state figures; 10 % of `duration` if unset.
    #[serde(default)]
    pub warmup: Option<Dur>,
    #[serde(default)]
    pub farm: FarmSettings,
    /// Facilities beyond `local`; those named by allocations are created
    /// anyway.
    #[serde(default)]
    pub facilities: Vec<String>,
    /// Allocations beyond `local.general`.
    #[serde(default)]
    pub allocations: Vec<AllocationSpec>,
    pub hosts: Vec<HostClass>,
    #[serde(default)]
    pub shows: Vec<ShowSpec>,
    #[serde(default)]
    pub limits: Vec<LimitSpec>,
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    #[serde(default)]
    pub jobs: Vec<JobStream>,
}

fn default_batch() -> Dur {
    Dur(100)
}
fn default_sample() -> Dur {
    Dur(10_000)
}

/// Tunables of the farm's state machine (`kiln server` flags).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FarmSettings {
    /// How long a wide frame waits before a host is reserved for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_after: Option<Dur>,
    /// Failures in a row of one job on one host before the job avoids it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avoid_after: Option<u32>,
    /// Jobs avoiding a host before it goes to REPAIR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair_after: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AllocationSpec {
    /// `facility.pool`.
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `count` identical hosts, named `name-1`, `name-2`, ...
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostClass {
    pub name: String,
    pub count: u32,
    pub cores: f64,
    pub memory: Mem,
    #[serde(default)]
    pub gpus: u32,
    #[serde(default)]
    pub gpu_memory: Mem,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The allocation the hosts are moved to once registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation: Option<String>,
    /// Chance that a frame fails on these hosts whatever it is: a broken
    /// host, for the bad-host policy to find.
    #[serde(default)]
    pub fail_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShowSpec {
    pub name: String,
    /// The priority of its jobs that set none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionSpec>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSpec {
    pub allocation: String,
    /// Cores, or a percentage of the allocation (`25%`).
    pub size: Share,
    /// The cap; unlimited if left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<Share>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    pub name: String,
    pub max: u32,
}

/// Named layer defaults, farm-wide or for one show.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show: Option<String>,
    #[serde(
        default,
        deserialize_with = "opt_loose",
        skip_serializing_if = "Option::is_none"
    )]
    pub cores: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Mem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory: Option<Mem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Vec<String>>,
}

/// `count` jobs alike, the first at `at`, then one every `every`, named
/// `name-1`, `name-2`, ...
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobStream {
    pub name: String,
    #[serde(default = "default_show")]
    pub show: String,
    #[serde(default = "default_facility")]
    pub facility: String,
    #[serde(default)]
    pub at: Dur,
    #[serde(default = "one")]
    pub count: u32,
    /// Time between arrivals; all at once if left out.
    #[serde(default)]
    pub every: Dur,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(
        default,
        deserialize_with = "opt_loose",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_cores: Option<String>,
    pub layers: Vec<LayerSpec>,
}

fn default_show() -> String {
    "default".into()
}
fn default_facility() -> String {
    "local".into()
}
fn one() -> u32 {
    1
}

/// A layer: what it asks for, as in a job spec, and how its frames behave.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LayerSpec {
    pub name: String,
    /// A count (`100` is frames 1-100) or a frame set (`1-100x2`).
    #[serde(deserialize_with = "loose")]
    pub frames: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `1`, `4+`, `2-8` or `all`.
    #[serde(
        default,
        deserialize_with = "opt_loose",
        skip_serializing_if = "Option::is_none"
    )]
    pub cores: Option<String>,
    /// What a frame reserves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Mem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory: Option<Mem>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<String>,
    /// Layers of the same job that must finish first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// How long a frame runs: `10m`, or uniform over `5m..15m`.
    pub runtime: Spread<Dur>,
    /// Peak memory a frame really uses; past its reservation the worker
    /// kills it halfway through (OOM). Unset: what it reserves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss: Option<Spread<Mem>>,
    /// Chance that a frame fails (exit 1) at the end of its runtime.
    #[serde(default)]
    pub fail_rate: f64,
}

impl Scenario {
    /// Reads YAML, or JSON when the text starts with `{`, and checks it.
    pub fn parse(text: &str) -> Result<Scenario> {
        match text.trim_start().starts_with('{') {
            true => Scenario::from_json(text),
            false => Scenario::from_yaml(text),
        }
    }

    pub fn from_yaml(text: &str) -> Result<Scenario> {
        if text.trim().is_empty() {
            return Err(Error::Syntax(
                "the scenario is empty; it needs at least name, duration and hosts".into(),
            ));
        }
        // Reading untyped first tells a broken document from a wrong field.
        serde_norway::from_str::<serde_norway::Value>(text)
            .map_err(|e| Error::Syntax(e.to_string()))?;
        Scenario::read(serde_norway::Deserializer::from_str(text))
    }

    pub fn from_json(text: &str) -> Result<Scenario> {
        serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| Error::Syntax(e.to_string()))?;
        Scenario::read(&mut serde_json::Deserializer::from_str(text))
    }

    /// The typed read both formats share, once the text is known to be a
    /// well-formed document: an error names its field, then the scenario is
    /// checked whole.
    fn read<'de>(de: impl serde::Deserializer<'de>) -> Result<Scenario> {
        let s: Scenario = serde_path_to_error::deserialize(de)
            .map_err(|e| read_error(e.path(), e.inner().to_string()))?;
        s.check()?;
        Ok(s)
    }

    /// The same scenario at `f` times the size: host counts, frame counts
    /// given as numbers, limits and subscriptions given in cores are
    /// scaled (each at least 1); times, job counts and percentages stay.
    /// Tests use it to run a large scenario quickly with the same shape.
    pub fn scaled(&self, f: f64) -> Scenario {
        let f = if f.is_finite() && f > 0.0 { f } else { 1.0 };
        let n = |v: u32| ((v as f64 * f).round() as u32).max(1);
        let share = |s: Share| match s {
            Share::Cores(c) => Share::Cores((c * f).max(1.0).round()),
            p => p,
        };
        let mut s = self.clone();
        for h in &mut s.hosts {
            h.count = n(h.count);
        }
        for sub in s.shows.iter_mut().flat_map(|s| &mut s.subscriptions) {
            sub.size = share(sub.size);
            sub.burst = sub.burst.map(share);
        }
        for l in &mut s.limits {
            l.max = n(l.max);
        }
        for j in &mut s.jobs {
            if let Some(m) = j
                .max_cores
                .as_ref()
                .and_then(|m| m.trim().parse::<f64>().ok())
            {
                j.max_cores = Some(((m * f).round().max(1.0)).to_string());
            }
            for l in &mut j.layers {
                if let Ok(c) = l.frames.trim().parse::<u32>() {
                    l.frames = n(c).to_string();
                }
            }
        }
        s
    }

    /// When steady-state figures start.
    pub fn warmup_ms(&self) -> i64 {
        self.warmup.map_or(self.duration.0 / 10, |w| w.0)
    }
}

/// Turns a reader's error into one naming the field.
fn read_error(path: &serde_path_to_error::Path, message: String) -> Error {
    let path = path.to_string();
    // The YAML reader puts its own path (sometimes the parent's) in front.
    let message = match message.split_once(": ") {
        Some((head, rest)) if head != "." && path.starts_with(head) => rest.to_owned(),
        _ => message,
    };
    // Serde reports a missing field on the map that lacks it: name the field.
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    {
        let field = match path.as_str() {
            "." => name.to_owned(),
            _ => format!("{path}.{name}"),
        };
        return Error::field(field, message);
    }
    match path.as_str() {
        "." => Error::field("scenario", message),
        _ => Error::field(path, message),
    }
}
