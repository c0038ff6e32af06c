//! Human-readable memory sizes (`4G`, `512M`) and durations (`1h30m`), read
//! from specs and written for people.

/// Binary units, in KiB: Kiln counts memory in KiB as OpenCue does.
const UNITS: [(&str, u64); 5] = [
    ("K", 1),
    ("M", 1 << 10),
    ("G", 1 << 20),
    ("T", 1 << 30),
    ("P", 1 << 40),
];

/// Parses a memory size such as `512M`, `4G`, `4GiB` or `1.5G` into KiB.
/// Units are binary and case-insensitive. A bare number is refused because
/// it is ambiguous (bytes? KiB? MiB?), except `0`.
pub fn parse_memory_kb(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let bad = || format!("{text:?} is not a memory size (write it like 512M, 4G or 1.5G)");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(bad());
    }
    let unit = unit.trim().to_ascii_uppercase();
    if unit.is_empty() {
        if number.bytes().all(|b| b == b'0' || b == b'.') {
            return Ok(0);
        }
        return Err(format!(
            "{text:?} has no unit; give a unit like \"4G\" or \"512M\""
        ));
    }
    let letter = unit
        .strip_suffix("IB")
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(&unit);
    let Some(&(_, per)) = UNITS.iter().find(|(u, _)| *u == letter) else {
        return Err(format!(
            "{text:?} has an unknown unit; use K, M, G or T (binary: 1G = 1024M), like 4G"
        ));
    };
    // Decimal arithmetic on integers keeps `1.1T` exact where f64 would not;
    // digits past the 18th cannot change a KiB count of this size.
    let fraction = &fraction[..fraction.len().min(18)];
    let scale = 10u128.pow(fraction.len() as u32);
    let too_large = || format!("{text:?} is too large");
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let frac: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| bad())?
    };
    let kb = whole
        .checked_mul(u128::from(per))
        .and_then(|w| w.checked_add((frac * u128::from(per) + scale / 2) / scale))
        .ok_or_else(too_large)?;
    u64::try_from(kb).map_err(|_| too_large())
}

/// Writes KiB with the largest unit that keeps the number at least 1, to one
/// decimal: `1.5G`, `512M`, `0`. Lossy; for display.
pub fn format_kb(kb: u64) -> String {
    if kb == 0 {
        return "0".into();
    }
    let mut idx = UNITS.iter().rposition(|&(_, per)| kb >= per).unwrap_or(0);
    let tenths = |idx: usize| {
        let per = u128::from(UNITS[idx].1);
        (u128::from(kb) * 10 + per / 2) / per
    };
    let mut t = tenths(idx);
    // Rounding 1023.96M up gives 1024.0M; say 1G instead.
    if t >= 10240 && idx + 1 < UNITS.len() {
        idx += 1;
        t = tenths(idx);
    }
    let unit = UNITS[idx].0;
    if t % 10 == 0 {
        format!("{}{unit}", t / 10)
    } else {
        format!("{}.{}{unit}", t / 10, t % 10)
    }
}

/// Parses a duration into seconds: `90` (seconds), `90s`, `30m`, `2h`, `1d`,
/// or a combination from largest unit to smallest such as `1h30m`.
pub fn parse_duration_s(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let bad = || format!("{text:?} is not a duration (write it like 90s, 30m, 2h or 1h30m)");
    let too_large = || format!("{text:?} is too long a duration");
    if text.is_empty() {
        return Err(bad());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| too_large());
    }
    let compact: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let mut rest = compact.as_str();
    let mut total: u64 = 0;
    // Units must come largest first, each at most once.
    let mut allowed = "dhms";
    while !rest.is_empty() {
        let len = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if len == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..len].parse().map_err(|_| too_large())?;
        let unit = rest[len..].chars().next().ok_or_else(bad)?;
        let at = allowed.find(unit).ok_or_else(bad)?;
        allowed = &allowed[at + 1..];
        let per = match unit {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            _ => 1,
        };
        total = n
            .checked_mul(per)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(too_large)?;
        rest = &rest[len + 1..];
    }
    Ok(total)
}

/// Writes a duration for people: `850ms`, `12.3s`, `4m05s`, `2h03m`.
/// Truncates, so a value never reads as longer than it was.
pub fn format_duration_ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{}.{}s", ms / 1_000, ms % 1_000 / 100),
        60_000..=3_599_999 => format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1_000),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 20;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory_kb("512M"), Ok(512 * 1024));
        assert_eq!(parse_memory_kb("4G"), Ok(4 * G));
        assert_eq!(parse_memory_kb("4GB"), Ok(4 * G));
        assert_eq!(parse_memory_kb("4GiB"), Ok(4 * G));
        assert_eq!(parse_memory_kb("4gib"), Ok(4 * G));
        assert_eq!(parse_memory_kb("4g"), Ok(4 * G));
        assert_eq!(parse_memory_kb(" 4 G "), Ok(4 * G));
        assert_eq!(parse_memory_kb("1.5G"), Ok(3 * G / 2));
        assert_eq!(parse_memory_kb(".5G"), Ok(G / 2));
        assert_eq!(parse_memory_kb("2.G"), Ok(2 * G));
        assert_eq!(parse_memory_kb("100K"), Ok(100));
        assert_eq!(parse_memory_kb("100kb"), Ok(100));
        assert_eq!(parse_memory_kb("2T"), Ok(2 * 1024 * G));
        assert_eq!(parse_memory_kb("1P"), Ok(1 << 40));
        assert_eq!(parse_memory_kb("1.1T"), Ok(1_181_116_006));
    }

    #[test]
    fn memory_zero() {
        assert_eq!(parse_memory_kb("0"), Ok(0));
        assert_eq!(parse_memory_kb("0G"), Ok(0));
        assert_eq!(parse_memory_kb("0.0M"), Ok(0));
    }

    #[test]
    fn memory_rejections() {
        assert_eq!(
            parse_memory_kb("4096"),
            Err("\"4096\" has no unit; give a unit like \"4G\" or \"512M\"".into())
        );
        for bad in ["", "G", "abc", "-1G", "1..5G", ".G", "1e3M"] {
            assert!(parse_memory_kb(bad).is_err(), "{bad}");
        }
        assert!(parse_memory_kb("4X").unwrap_err().contains("unknown unit"));
        assert!(parse_memory_kb("4GBB")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_memory_kb("99999999999999999999T")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_memory_kb("20000000P")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn memory_formatting() {
        assert_eq!(format_kb(0), "0");
        assert_eq!(format_kb(100), "100K");
        assert_eq!(format_kb(512 * 1024), "512M");
        assert_eq!(format_kb(3 * G / 2), "1.5G");
        assert_eq!(format_kb(4 * G), "4G");
        assert_eq!(format_kb(1024 * G), "1T");
        assert_eq!(format_kb(G - 1), "1G");
        assert_eq!(format_kb(u64::MAX), "16777216P");
        for kb in [1, 100, 1024, 1536, 4 * G, 1024 * G] {
            assert_eq!(parse_memory_kb(&format_kb(kb)), Ok(kb));
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_s("90"), Ok(90));
        assert_eq!(parse_duration_s("90s"), Ok(90));
        assert_eq!(parse_duration_s("30m"), Ok(1800));
        assert_eq!(parse_duration_s("2h"), Ok(7200));
        assert_eq!(parse_duration_s("1h30m"), Ok(5400));
        assert_eq!(parse_duration_s("1h 30m 5s"), Ok(5405));
        assert_eq!(parse_duration_s("1d"), Ok(86_400));
        assert_eq!(parse_duration_s("1D2H"), Ok(93_600));
        assert_eq!(parse_duration_s("0"), Ok(0));
    }

    #[test]
    fn duration_rejections() {
        assert_eq!(
            parse_duration_s("soon"),
            Err("\"soon\" is not a duration (write it like 90s, 30m, 2h or 1h30m)".into())
        );
        for bad in ["", "h", "1x", "1h1h", "30m1h", "1.5h", "-5s", "1h30", "m30"] {
            assert!(parse_duration_s(bad).is_err(), "{bad}");
        }
        assert!(parse_duration_s("99999999999999999999")
            .unwrap_err()
            .contains("too long"));
        assert!(parse_duration_s("999999999999999999d")
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn duration_formatting() {
        assert_eq!(format_duration_ms(0), "0ms");
        assert_eq!(format_duration_ms(850), "850ms");
        assert_eq!(format_duration_ms(12_345), "12.3s");
        assert_eq!(format_duration_ms(59_999), "59.9s");
        assert_eq!(format_duration_ms(245_000), "4m05s");
        assert_eq!(format_duration_ms(3_599_999), "59m59s");
        assert_eq!(format_duration_ms(7_380_000), "2h03m");
        assert_eq!(format_duration_ms(180_000_000), "50h00m");
    }
}
