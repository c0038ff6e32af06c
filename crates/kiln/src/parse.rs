//! Readers for flag values (core counts, sizes, durations), used as clap
//! value parsers so that a bad value is reported against its flag, with
//! an example of a good one, before anything is sent.

use kiln_core::model::{CoreRequest, TagReq};
use kiln_core::size::{parse_duration_s, parse_memory_kb};

/// A number of cores, possibly fractional (`8`, `0.5`, `12.25`), in
/// centicores.
pub fn cores(s: &str) -> Result<u32, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of cores; give one like 8 or 0.5"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!(
            "{s:?} is not a number of cores; give 0 or more, like 8 or 0.5"
        ));
    }
    let c = (v * 100.0).round();
    if c >= f64::from(u32::MAX) {
        return Err(format!(
            "{s:?} is more cores than Kiln can count; give at most 40000000"
        ));
    }
    Ok(c as u32)
}

/// A core cap that may be lifted: a number of cores, or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Cores(u32),
    None,
}

impl Cap {
    pub fn centicores(self) -> Option<u32> {
        match self {
            Cap::Cores(c) => Some(c),
            Cap::None => None,
        }
    }
}

fn cap(s: &str, none: &str) -> Result<Cap, String> {
    if s.trim().eq_ignore_ascii_case(none) {
        return Ok(Cap::None);
    }
    cores(s)
        .map(Cap::Cores)
        .map_err(|e| format!("{e}, or {none}"))
}

/// `--max-cores`: cores, or `none` for no cap.
pub fn max_cores(s: &str) -> Result<Cap, String> {
    cap(s, "none")
}

/// `--burst`: cores, or `unlimited`.
pub fn burst(s: &str) -> Result<Cap, String> {
    cap(s, "unlimited")
}

/// `4`, `0.5`, `4+`, `2-8` or `all`.
pub fn core_request(s: &str) -> Result<CoreRequest, String> {
    CoreRequest::parse(s)
}

/// A memory size such as `8G` or `512M`, in KiB.
pub fn memory(s: &str) -> Result<u64, String> {
    parse_memory_kb(s)
}

/// A duration such as `90s`, `30m` or `2h`, in seconds.
pub fn duration(s: &str) -> Result<u64, String> {
    match parse_duration_s(s)? {
        0 => Err(format!(
            "{s:?} is no time at all; give one like 90s, 30m or 2h"
        )),
        n => Ok(n),
    }
}

/// A tag requirement: `linux`, or `gpu|cuda` for either.
pub fn tag_req(s: &str) -> Result<TagReq, String> {
    let any_of: Vec<String> = s
        .split('|')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if any_of.is_empty() {
        return Err(format!(
            "{s:?} names no tag; give tags like linux or gpu|cuda (either)"
        ));
    }
    Ok(TagReq { any_of })
}

/// The text of a count of centicores as a user would type it.
pub fn cores_text(c: u32) -> String {
    if c.is_multiple_of(100) {
        (c / 100).to_string()
    } else {
        format!("{}", f64::from(c) / 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_core_counts_and_caps() {
        assert_eq!(cores("8"), Ok(800));
        assert_eq!(cores("0.5"), Ok(50));
        assert_eq!(cores("0"), Ok(0));
        assert!(cores("-1").is_err() && cores("x").is_err() && cores("nan").is_err());
        assert!(cores("1e12").unwrap_err().contains("at most"));
        assert_eq!(max_cores("none"), Ok(Cap::None));
        assert_eq!(max_cores("12.5"), Ok(Cap::Cores(1250)));
        assert_eq!(burst("UNLIMITED"), Ok(Cap::None));
        assert!(burst("lots").unwrap_err().contains("unlimited"));
        assert_eq!(cores_text(1250), "12.5");
        assert_eq!(cores_text(800), "8");
    }

    #[test]
    fn reads_tags_and_durations() {
        assert_eq!(
            tag_req("gpu|cuda"),
            Ok(TagReq {
                any_of: vec!["gpu".into(), "cuda".into()]
            })
        );
        assert!(tag_req("|").is_err());
        assert_eq!(duration("2h"), Ok(7200));
        assert!(duration("0s").is_err());
    }
}
