//! The farm's structure, which wranglers manage and the scheduler obeys:
//! allocations (pools of hosts in a facility), shows and their
//! subscriptions to allocations, limits (license counters) and services
//! (named layer defaults).
//!
//! These records are keyed by name, as in OpenCue, because people type
//! them: `kiln sub set film.lighting local.general --size 1000`.

use crate::model::{Centicores, TagReq};
use serde::{Deserialize, Serialize};

/// The allocation a host joins when no allocation's tag rule matches it,
/// created on first start.
pub const DEFAULT_ALLOCATION: &str = "local.general";

/// A named pool of hosts in a facility. Its name is `facility.pool`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub name: String,
    pub facility: String,
    /// A new host carrying any of these tags joins this allocation (the
    /// first allocation by name whose rule matches); empty: no rule.
    pub tags: Vec<String>,
}

impl Allocation {
    /// Splits `facility.pool`; both parts must be non-empty.
    pub fn split_name(name: &str) -> Option<(&str, &str)> {
        let (f, p) = name.split_once('.')?;
        (!f.is_empty() && !p.is_empty()).then_some((f, p))
    }
}

/// A production: the unit of fair share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Show {
    pub name: String,
    /// A disabled show keeps its running frames but starts nothing new, and
    /// refuses new jobs.
    pub enabled: bool,
    /// The priority a job gets when its spec does not set one.
    pub default_priority: i32,
    /// The cap a job gets when its spec does not set `max_cores`.
    pub default_max_cores: Option<Centicores>,
}

impl Show {
    pub fn new(name: &str) -> Show {
        Show {
            name: name.to_owned(),
            enabled: true,
            default_priority: 100,
            default_max_cores: None,
        }
    }
}

/// A show's claim on an allocation: `size` cores guaranteed when it has
/// work, up to `burst` cores when others leave capacity idle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub show: String,
    pub allocation: String,
    pub size: Centicores,
    pub burst: Centicores,
}

/// A counter of running frames, typically a software license: at most
/// `max` frames of layers naming it run at once, farm-wide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    pub name: String,
    pub max: u32,
}

/// What a layer asks for in cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoreRequest {
    /// Exactly this many (`4`, `0.5`).
    Exact(Centicores),
    /// At least this many, growing into cores left idle (`4+`).
    AtLeast(Centicores),
    /// Between the two, as many as are idle (`2-8`).
    Between(Centicores, Centicores),
    /// A whole idle host (`all`).
    WholeHost,
}

impl CoreRequest {
    /// The least it can start with.
    pub fn min(self) -> Centicores {
        match self {
            CoreRequest::Exact(c) | CoreRequest::AtLeast(c) | CoreRequest::Between(c, _) => c,
            CoreRequest::WholeHost => 100,
        }
    }

    /// The most it takes; `Centicores::MAX` when unbounded.
    pub fn max(self) -> Centicores {
        match self {
            CoreRequest::Exact(c) => c,
            CoreRequest::Between(_, c) => c,
            CoreRequest::AtLeast(_) | CoreRequest::WholeHost => Centicores::MAX,
        }
    }

    /// Reads `4`, `0.5`, `4+`, `2-8` or `all`.
    pub fn parse(s: &str) -> Result<CoreRequest, String> {
        let s = s.trim();
        let hint = "give cores like 4, 0.5, 4+ (at least 4), 2-8 (between 2 and 8) or all (a whole idle host)";
        let one = |t: &str| -> Result<Centicores, String> {
            let v: f64 = t
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a core count; {hint}"))?;
            if !(v.is_finite() && v > 0.0 && v <= 1024.0) {
                return Err(format!(
                    "{s:?} is out of range; give more than 0 and at most 1024 cores"
                ));
            }
            let c = (v * 100.0).round() as Centicores;
            if c == 0 {
                return Err(format!(
                    "{s:?} is less than 0.01 cores; ask for at least 0.01"
                ));
            }
            Ok(c)
        };
        if s.eq_ignore_ascii_case("all") {
            return Ok(CoreRequest::WholeHost);
        }
        if let Some(min) = s.strip_suffix('+') {
            return Ok(CoreRequest::AtLeast(one(min)?));
        }
        if let Some((a, b)) = s.split_once('-') {
            let (a, b) = (one(a)?, one(b)?);
            if a > b {
                return Err(format!(
                    "{s:?} has its larger number first; write the range low-high, like 2-8"
                ));
            }
            return Ok(if a == b {
                CoreRequest::Exact(a)
            } else {
                CoreRequest::Between(a, b)
            });
        }
        Ok(CoreRequest::Exact(one(s)?))
    }
}

impl std::fmt::Display for CoreRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = |v: Centicores| {
            if v.is_multiple_of(100) {
                (v / 100).to_string()
            } else {
                format!("{}", v as f64 / 100.0)
            }
        };
        match *self {
            CoreRequest::Exact(v) => f.write_str(&c(v)),
            CoreRequest::AtLeast(v) => write!(f, "{}+", c(v)),
            CoreRequest::Between(a, b) => write!(f, "{}-{}", c(a), c(b)),
            CoreRequest::WholeHost => f.write_str("all"),
        }
    }
}

/// Named defaults for layers, so a spec can say `service: arnold`. A
/// service with a `show` overrides the farm-wide one of the same name for
/// that show's jobs; unset fields fall through to it, then to Kiln's
/// defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub show: Option<String>,
    pub cores: Option<CoreRequest>,
    pub memory_kb: Option<u64>,
    pub gpus: Option<u32>,
    pub gpu_memory_kb: Option<u64>,
    pub tags: Option<Vec<TagReq>>,
    pub timeout_s: Option<u64>,
    pub limits: Option<Vec<String>>,
}

/// A site: allocations belong to one, and a job runs only on hosts of its
/// facility's allocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facility {
    pub name: String,
}

/// `burst` of a subscription with no cap.
pub const UNLIMITED: Centicores = Centicores::MAX;

/// One structure record, as the store keeps it: a kind, a key and a body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    Facility(Facility),
    Allocation(Allocation),
    Show(Show),
    Subscription(Subscription),
    Limit(Limit),
    Service(Service),
}

impl Record {
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Facility(_) => "facility",
            Record::Allocation(_) => "allocation",
            Record::Show(_) => "show",
            Record::Subscription(_) => "subscription",
            Record::Limit(_) => "limit",
            Record::Service(_) => "service",
        }
    }

    /// Unique within its kind.
    pub fn key(&self) -> String {
        match self {
            Record::Facility(f) => f.name.clone(),
            Record::Allocation(a) => a.name.clone(),
            Record::Show(s) => s.name.clone(),
            Record::Subscription(s) => format!("{}@{}", s.show, s.allocation),
            Record::Limit(l) => l.name.clone(),
            Record::Service(s) => match &s.show {
                Some(show) => format!("{}@{}", s.name, show),
                None => s.name.clone(),
            },
        }
    }
}

/// A change to the structure, in the order it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put(Record),
    Remove { kind: &'static str, key: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_requests_read_and_print_back() {
        for (text, want) in [
            ("4", CoreRequest::Exact(400)),
            ("0.5", CoreRequest::Exact(50)),
            ("4+", CoreRequest::AtLeast(400)),
            ("2-8", CoreRequest::Between(200, 800)),
            ("3-3", CoreRequest::Exact(300)),
            ("all", CoreRequest::WholeHost),
            (" ALL ", CoreRequest::WholeHost),
        ] {
            assert_eq!(CoreRequest::parse(text), Ok(want), "{text}");
            let back = want.to_string();
            assert_eq!(CoreRequest::parse(&back), Ok(want), "{back}");
        }
        for bad in ["", "x", "-1", "8-2", "0", "0.001", "4++", "2000", "nan"] {
            let e = CoreRequest::parse(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        assert!(CoreRequest::parse("8-2").unwrap_err().contains("low-high"));
    }
}
