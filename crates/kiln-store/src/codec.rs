//! Field encodings every backend shares: enums as their UPPERCASE names,
//! nested fields as JSON text, unsigned counters in signed 64-bit columns,
//! and a host report split between columns and a JSON remainder.

use crate::{Error, Result};
use kiln_core::model::{
    Centicores, CoreRequest, FrameState, HostReport, HostState, JobState, LockState, Outcome,
};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{Map, Value};

/// Defines the text of each variant once, so writing and reading cannot
/// disagree, and a new variant in kiln-core fails to compile here until it
/// is given a name.
macro_rules! enum_text {
    ($ty:ident, $to:ident, $from:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        pub(crate) fn $to(v: $ty) -> &'static str {
            match v { $($ty::$variant => $text),+ }
        }
        pub(crate) fn $from(s: &str) -> Option<$ty> {
            match s { $($text => Some($ty::$variant),)+ _ => None }
        }
    };
}

enum_text!(JobState, job_state, parse_job_state {
    Active = "ACTIVE",
    Killed = "KILLED",
});

enum_text!(FrameState, frame_state, parse_frame_state {
    Waiting = "WAITING",
    Running = "RUNNING",
    Succeeded = "SUCCEEDED",
    Dead = "DEAD",
    Eaten = "EATEN",
});

enum_text!(Outcome, outcome, parse_outcome {
    Succeeded = "SUCCEEDED",
    Failed = "FAILED",
    TimedOut = "TIMEDOUT",
    Killed = "KILLED",
    Lost = "LOST",
    OutOfMemory = "OOM",
});

enum_text!(HostState, host_state, parse_host_state {
    Up = "UP",
    Down = "DOWN",
    Repair = "REPAIR",
});

enum_text!(LockState, lock_state, parse_lock_state {
    Open = "OPEN",
    Locked = "LOCKED",
});

/// A core request as a spec writes it (`4`, `0.5`, `4+`, `2-8`, `all`), so
/// a DBA reads the column as a user wrote it.
pub(crate) fn core_request(c: CoreRequest) -> String {
    c.to_string()
}

/// Reads [`core_request`] back. Unlike a spec, any value the type holds is
/// accepted (0 cores included): the store keeps what it was given.
pub(crate) fn parse_core_request(s: &str) -> Option<CoreRequest> {
    fn cores(t: &str) -> Option<Centicores> {
        let v: f64 = t.parse().ok()?;
        let c = (v * 100.0).round();
        (v.is_finite() && (0.0..=f64::from(Centicores::MAX)).contains(&c))
            .then_some(c as Centicores)
    }
    if s == "all" {
        return Some(CoreRequest::WholeHost);
    }
    if let Some(min) = s.strip_suffix('+') {
        return cores(min).map(CoreRequest::AtLeast);
    }
    if let Some((a, b)) = s.split_once('-') {
        return Some(CoreRequest::Between(cores(a)?, cores(b)?));
    }
    cores(s).map(CoreRequest::Exact)
}

pub(crate) fn to_json<T: Serialize + ?Sized>(what: &'static str, v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|source| Error::Encode { what, source })
}

pub(crate) fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// SQL integers are signed; a counter past 2^63 is refused rather than
/// stored negative.
pub(crate) fn to_i64(what: &'static str, v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::OutOfRange { what, value: v })
}

/// The host report fields (by their serde names) that have columns of their
/// own. The rest of the report goes into one JSON column, so a field added
/// to `HostReport` later is stored without a migration.
pub(crate) const REPORT_COLUMNS: &[&str] =
    &["name", "os", "cores", "memory_kb", "gpus", "load", "tags"];

/// The report minus its [`REPORT_COLUMNS`], as JSON text.
pub(crate) fn report_rest(report: &HostReport) -> Result<String> {
    let mut v = serde_json::to_value(report).map_err(|source| Error::Encode {
        what: "host report",
        source,
    })?;
    if let Value::Object(map) = &mut v {
        for key in REPORT_COLUMNS {
            map.remove(*key);
        }
    }
    Ok(v.to_string())
}

/// The report's columns, as read back.
pub(crate) struct ReportColumns {
    pub name: String,
    pub os: String,
    pub cores: u32,
    pub memory_kb: u64,
    pub gpus: u32,
    pub load: f64,
    pub tags: Vec<String>,
}

/// Rebuilds a report from its columns and JSON remainder. A field missing
/// from the remainder (a row written before the field existed) takes its
/// default value.
pub(crate) fn join_report(cols: ReportColumns, rest: &str) -> Result<HostReport, String> {
    let mut map = match serde_json::to_value(HostReport::default()) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let rest: Map<String, Value> = from_json(rest)?;
    map.extend(rest);
    let mut report: HostReport =
        serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())?;
    report.name = cols.name;
    report.os = cols.os;
    report.cores = cols.cores;
    report.memory_kb = cols.memory_kb;
    report.gpus = cols.gpus;
    report.load = cols.load;
    report.tags = cols.tags;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_name<T: Serialize>(v: T) -> String {
        serde_json::to_value(v)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn enum_names_match_the_serde_names() {
        use FrameState as F;
        for v in [JobState::Active, JobState::Killed] {
            assert_eq!(job_state(v), serde_name(v));
            assert_eq!(parse_job_state(job_state(v)), Some(v));
        }
        for v in [F::Waiting, F::Running, F::Succeeded, F::Dead, F::Eaten] {
            assert_eq!(frame_state(v), serde_name(v));
            assert_eq!(parse_frame_state(frame_state(v)), Some(v));
        }
        for v in [
            Outcome::Succeeded,
            Outcome::Failed,
            Outcome::TimedOut,
            Outcome::Killed,
            Outcome::Lost,
        ] {
            assert_eq!(outcome(v), serde_name(v));
            assert_eq!(parse_outcome(outcome(v)), Some(v));
        }
        // Stored as the short name users see (`Outcome::as_str`).
        assert_eq!(outcome(Outcome::OutOfMemory), Outcome::OutOfMemory.as_str());
        assert_eq!(parse_outcome("OOM"), Some(Outcome::OutOfMemory));
        for v in [HostState::Up, HostState::Down, HostState::Repair] {
            assert_eq!(host_state(v), serde_name(v));
            assert_eq!(parse_host_state(host_state(v)), Some(v));
        }
        for v in [LockState::Open, LockState::Locked] {
            assert_eq!(lock_state(v), serde_name(v));
            assert_eq!(parse_lock_state(lock_state(v)), Some(v));
        }
        assert_eq!(parse_outcome("succeeded"), None);
    }

    #[test]
    fn core_requests_round_trip_whatever_their_value() {
        for c in [
            CoreRequest::Exact(400),
            CoreRequest::Exact(0),
            CoreRequest::Exact(1),
            CoreRequest::Exact(125),
            CoreRequest::Exact(Centicores::MAX),
            CoreRequest::AtLeast(50),
            CoreRequest::Between(200, 800),
            CoreRequest::Between(0, Centicores::MAX),
            CoreRequest::WholeHost,
        ] {
            assert_eq!(parse_core_request(&core_request(c)), Some(c), "{c}");
        }
        for bad in ["", "x", "4++", "-1", "1-", "nan", "inf"] {
            assert_eq!(parse_core_request(bad), None, "{bad}");
        }
    }

    #[test]
    fn report_survives_the_split() {
        let report = HostReport {
            name: "r1".into(),
            os: "linux".into(),
            cores: 1600,
            memory_kb: 64 << 20,
            total_memory_kb: 65 << 20,
            swap_kb: 3,
            gpus: 2,
            gpu_memory_kb: 24 << 20,
            scratch_free_kb: 5,
            load: 1.25,
            tags: vec!["a".into()],
            version: "0.1.0".into(),
        };
        let rest = report_rest(&report).unwrap();
        for key in REPORT_COLUMNS {
            assert!(
                !rest.contains(&format!("\"{key}\"")),
                "{key} left in {rest}"
            );
        }
        let cols = ReportColumns {
            name: report.name.clone(),
            os: report.os.clone(),
            cores: report.cores,
            memory_kb: report.memory_kb,
            gpus: report.gpus,
            load: report.load,
            tags: report.tags.clone(),
        };
        assert_eq!(join_report(cols, &rest).unwrap(), report);
    }

    #[test]
    fn out_of_range_is_refused() {
        assert_eq!(to_i64("x", i64::MAX as u64).unwrap(), i64::MAX);
        assert!(matches!(
            to_i64("x", u64::MAX),
            Err(Error::OutOfRange { .. })
        ));
    }
}
