//! The quantities a scenario is written in: virtual durations (`90s`,
//! `10m`, `1h30m`, `100ms`), memory sizes (`2G`), shares of an allocation
//! (`40` cores or `25%`) and uniform ranges of either (`5m..15m`). Each
//! reads from a string or a number, so YAML's `cores: 4` and `cores: "4"`
//! mean the same, and each error says what to write instead.

use kiln_core::model::Millis;
use kiln_core::size::{format_kb, parse_memory_kb};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Reads a scalar (string, integer, float or bool) as text, so that
/// numbers and strings are interchangeable in a scenario.
pub(crate) fn loose<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number or a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(V)
}

/// `Option` of [`loose`], for `#[serde(default, deserialize_with)]`.
pub(crate) fn opt_loose<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    loose(d).map(Some)
}

/// Implements `Deserialize` through `FromStr` and `Serialize` through
/// `Display`, so each unit is written in a scenario as it is printed.
macro_rules! text_serde {
    ($t:ty) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                loose(d)?.parse().map_err(de::Error::custom)
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

/// A span of virtual time, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Millis);

impl FromStr for Dur {
    type Err = String;
    /// `100ms`, `90s`, `10m`, `2h`, `1d`, combinations largest unit first
    /// (`1h30m`), fractions (`1.5h`), or a bare number of seconds.
    fn from_str(s: &str) -> Result<Dur, String> {
        let text = s.trim();
        let bad =
            || format!("{text:?} is not a duration; write it like 100ms, 90s, 10m, 2h or 1h30m");
        if text.is_empty() {
            return Err(bad());
        }
        if let Ok(secs) = text.parse::<f64>() {
            return ms_of(secs * 1000.0).ok_or_else(bad);
        }
        let mut rest = text;
        let mut total = 0.0;
        // Units in the order they may appear; each at most once.
        let units = [
            ("d", 86_400_000.0),
            ("h", 3_600_000.0),
            ("m", 60_000.0),
            ("s", 1000.0),
            ("ms", 1.0),
        ];
        let mut next_unit = 0;
        while !rest.is_empty() {
            let len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let n: f64 = rest[..len].parse().map_err(|_| bad())?;
            rest = &rest[len..];
            let ulen = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit = rest[..ulen].trim();
            rest = &rest[ulen..];
            let k = units[next_unit..]
                .iter()
                .position(|(u, _)| *u == unit)
                .ok_or_else(bad)?;
            total += n * units[next_unit + k].1;
            next_unit += k + 1;
        }
        ms_of(total).ok_or_else(bad)
    }
}

fn ms_of(ms: f64) -> Option<Dur> {
    (0.0..1e15).contains(&ms).then(|| Dur(ms.round() as Millis))
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_ms(self.0))
    }
}

/// Writes milliseconds for people: `0s`, `250ms`, `42s`, `12m30s`, `2h5m`.
pub fn format_ms(ms: Millis) -> String {
    if ms < 1000 && ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    let ms = ms % 1000;
    let mut out = String::new();
    if h > 0 {
        out += &format!("{h}h");
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    if sec > 0 || ms > 0 || out.is_empty() {
        match ms {
            0 => out += &format!("{sec}s"),
            _ => out += &format!("{sec}.{:03}s", ms),
        }
    }
    out
}

text_serde!(Dur);

/// A memory size in KiB, written `512M`, `2G`, `1.5T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Mem(pub u64);

impl FromStr for Mem {
    type Err = String;
    fn from_str(s: &str) -> Result<Mem, String> {
        parse_memory_kb(s).map(Mem)
    }
}

impl fmt::Display for Mem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_kb(self.0))
    }
}

text_serde!(Mem);

/// A fixed value or a uniform range `lo..hi` to draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread<T> {
    pub lo: T,
    pub hi: T,
}

impl<T: FromStr<Err = String> + PartialOrd + Copy> FromStr for Spread<T> {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once("..") {
            None => {
                let v = s.parse()?;
                Ok(Spread { lo: v, hi: v })
            }
            Some((a, b)) => {
                let (lo, hi) = (a.parse()?, b.parse()?);
                if lo > hi {
                    return Err(format!(
                        "{s:?} has its larger end first; write the range low..high"
                    ));
                }
                Ok(Spread { lo, hi })
            }
        }
    }
}

impl<T: fmt::Display + PartialEq> fmt::Display for Spread<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.lo == self.hi {
            true => write!(f, "{}", self.lo),
            false => write!(f, "{}..{}", self.lo, self.hi),
        }
    }
}

impl<'de, T: FromStr<Err = String> + PartialOrd + Copy> Deserialize<'de> for Spread<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        loose(d)?.parse().map_err(de::Error::custom)
    }
}

impl<T: fmt::Display + PartialEq> Serialize for Spread<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A subscription size or burst: cores, or a percentage of the cores of
/// the allocation it is for (so a scenario keeps its shape when scaled).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Share {
    Cores(f64),
    Percent(f64),
}

impl Share {
    /// In cores, given the allocation's cores.
    pub fn cores(self, alloc_cores: f64) -> f64 {
        match self {
            Share::Cores(c) => c,
            Share::Percent(p) => alloc_cores * p / 100.0,
        }
    }
}

impl FromStr for Share {
    type Err = String;
    fn from_str(s: &str) -> Result<Share, String> {
        let t = s.trim();
        let bad = || {
            let how = "give cores (like 40) or a percentage of the allocation (like 25%)";
            format!("{t:?} is not a share; {how}")
        };
        let (num, pct) = match t.strip_suffix('%') {
            Some(n) => (n.trim(), true),
            None => (t, false),
        };
        let v: f64 = num.parse().map_err(|_| bad())?;
        if !v.is_finite() || v < 0.0 {
            return Err(bad());
        }
        Ok(if pct {
            Share::Percent(v)
        } else {
            Share::Cores(v)
        })
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Share::Cores(c) => write!(f, "{c}"),
            Share::Percent(p) => write!(f, "{p}%"),
        }
    }
}

text_serde!(Share);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_print() {
        for (text, ms) in [
            ("100ms", 100),
            ("90s", 90_000),
            ("10m", 600_000),
            ("1h30m", 5_400_000),
            ("1.5h", 5_400_000),
            ("2", 2000),
            ("1m30s500ms", 90_500),
            ("0", 0),
        ] {
            assert_eq!(text.parse::<Dur>(), Ok(Dur(ms)), "{text}");
        }
        for bad in ["", "x", "10q", "30m1h", "-5s", "5m5m", "h"] {
            assert!(bad.parse::<Dur>().is_err(), "{bad}");
        }
        assert_eq!(format_ms(5_400_000), "1h30m");
        assert_eq!(format_ms(250), "250ms");
        assert_eq!(format_ms(0), "0s");
        assert_eq!(format_ms(1500), "1.500s");
    }

    #[test]
    fn spreads_and_shares_read() {
        let s: Spread<Dur> = "5m..15m".parse().unwrap();
        assert_eq!((s.lo, s.hi), (Dur(300_000), Dur(900_000)));
        assert!("15m..5m".parse::<Spread<Dur>>().is_err());
        let m: Spread<Mem> = "2G".parse().unwrap();
        assert_eq!(m.lo, Mem(2 << 20));
        assert_eq!("25%".parse::<Share>(), Ok(Share::Percent(25.0)));
        assert_eq!("40".parse::<Share>(), Ok(Share::Cores(40.0)));
        assert!("-1".parse::<Share>().is_err());
    }
}
