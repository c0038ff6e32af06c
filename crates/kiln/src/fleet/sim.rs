//! What a simulated frame does, read from its launch: how long it "runs",
//! how it ends and how much memory it claims to use, and so whether the
//! worker's memory rule kills it. Every random draw is keyed by the seed and
//! the attempt (the frame, for memory), so a scenario plays out the same way
//! twice.

use kiln_core::link::{Exit, Launch};
use kiln_core::model::{AttemptId, Command, FrameId};
use kiln_core::size::{parse_duration_s, parse_memory_kb};
use std::time::Duration;

pub const RUNTIME_VAR: &str = "KILN_SIM_RUNTIME";
pub const EXIT_VAR: &str = "KILN_SIM_EXIT";
pub const FAIL_RATE_VAR: &str = "KILN_SIM_FAIL_RATE";
pub const RSS_VAR: &str = "KILN_SIM_RSS";

/// How one attempt will go.
#[derive(Debug, Clone, PartialEq)]
pub struct FramePlan {
    /// Wall time to wait: the virtual runtime divided by the speed.
    pub wait: Duration,
    /// The runtime the frame stands for, before the speed-up.
    pub virtual_ms: u64,
    pub exit: Exit,
    pub max_rss_kb: u64,
}

/// Reads the launch's `KILN_SIM_*` variables (or a `sleep N` command). A
/// variable that does not parse fails the frame at once, saying why, as a
/// real worker fails a command it cannot start.
///
/// A frame whose memory passes its reservation (`memory_kb`, when set) is
/// killed as the worker kills it: it ends `OutOfMemory` halfway through its
/// runtime, reporting its peak. A simulated frame's memory is one figure,
/// taken to be reached by mid-run; kiln-sim kills at the same point, so the
/// two simulators agree, and the server, raising the reservation past the
/// reported peak, gets the retry through.
pub fn plan(l: &Launch, speed: f64, seed: u64) -> FramePlan {
    match try_plan(l, seed) {
        Ok((virtual_ms, exit, max_rss_kb)) => FramePlan {
            wait: Duration::from_secs_f64(virtual_ms as f64 / 1000.0 / speed),
            virtual_ms,
            exit,
            max_rss_kb,
        },
        Err(why) => FramePlan {
            wait: Duration::ZERO,
            virtual_ms: 0,
            exit: Exit::FailedToStart(format!("kiln fleet: {why}")),
            max_rss_kb: 0,
        },
    }
}

fn try_plan(l: &Launch, seed: u64) -> Result<(u64, Exit, u64), String> {
    let var = |k: &str| {
        l.base_env
            .get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let mut runtime_ms = match var(RUNTIME_VAR) {
        Some(v) => runtime_ms(v, seed, l.attempt).map_err(|e| format!("{RUNTIME_VAR}: {e}"))?,
        None => sleep_ms(&l.command).unwrap_or(0),
    };
    let code: i32 = match var(EXIT_VAR) {
        Some(v) => v.parse().map_err(|_| {
            format!("{EXIT_VAR}: {v:?} is not an exit code (write an integer such as 0 or 3)")
        })?,
        None => 0,
    };
    let fail_rate: f64 = match var(FAIL_RATE_VAR) {
        Some(v) => v
            .parse()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| {
                format!(
                    "{FAIL_RATE_VAR}: {v:?} is not a rate (write a number from 0 to 1, like 0.05)"
                )
            })?,
        None => 0.0,
    };
    let max_rss_kb = match var(RSS_VAR) {
        Some(v) => rss_kb(v, seed, l.frame).map_err(|e| format!("{RSS_VAR}: {e}"))?,
        None => 0,
    };
    let mut exit = if code == 0 && fail_rate > 0.0 && draw(seed, l.attempt.0 as u64, 2) < fail_rate
    {
        Exit::Exited(1)
    } else {
        Exit::Exited(code)
    };
    // Before the timeout: a frame killed for memory halfway may never reach it.
    if l.memory_kb > 0 && max_rss_kb > l.memory_kb {
        runtime_ms /= 2;
        exit = Exit::OutOfMemory { rss_kb: max_rss_kb };
    }
    if let Some(limit) = l.timeout_s.map(|s| s.saturating_mul(1000)) {
        if runtime_ms > limit {
            runtime_ms = limit;
            exit = Exit::TimedOut;
        }
    }
    Ok((runtime_ms, exit, max_rss_kb))
}

/// A duration (`30s`, `1500ms`, `2m`, `1h30m`, `0.5s`) or a range
/// `LO..HI` drawn uniformly, to the millisecond.
pub fn runtime_ms(text: &str, seed: u64, attempt: AttemptId) -> Result<u64, String> {
    one_or_range(
        text,
        draw(seed, attempt.0 as u64, 1),
        parse_ms,
        "write the shorter duration first, like 10s..60s",
    )
}

/// A memory size (`4G`) or a range `LO..HI` drawn uniformly, to the KiB.
/// Drawn per frame, not per attempt: a frame needs the same memory each
/// time it runs, so a retry with a larger reservation gets through.
pub fn rss_kb(text: &str, seed: u64, frame: FrameId) -> Result<u64, String> {
    one_or_range(
        text,
        draw(seed, frame.0 as u64, 3),
        parse_memory_kb,
        "write the smaller size first, like 1G..3G",
    )
}

/// `parse(text)`, or for `LO..HI` the point `u` (in [0, 1)) of the way
/// from LO to HI, both included.
fn one_or_range(
    text: &str,
    u: f64,
    parse: impl Fn(&str) -> Result<u64, String>,
    hint: &str,
) -> Result<u64, String> {
    let Some((lo, hi)) = text.split_once("..") else {
        return parse(text);
    };
    let (lo, hi) = (parse(lo)?, parse(hi)?);
    if lo > hi {
        return Err(format!("{text:?} is an empty range ({hint})"));
    }
    let span = (hi - lo) as f64 + 1.0;
    Ok(lo + ((u * span) as u64).min(hi - lo))
}

/// Milliseconds in a duration: what `parse_duration_s` reads, plus `ms`
/// and fractions (`1.5s`), which simulated runtimes need.
pub fn parse_ms(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let bad = || format!("{t:?} is not a duration (write it like 30s, 1500ms, 2m or 10s..60s)");
    let (number, per_ms) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1e3)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60e3)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3_600e3)
    } else {
        (t, 1e3)
    };
    let simple = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if simple {
        let n: f64 = number.parse().map_err(|_| bad())?;
        let ms = n * per_ms;
        return if ms < 1e15 {
            Ok(ms.round() as u64)
        } else {
            Err(bad())
        };
    }
    // Compound forms such as 1h30m, as the rest of Kiln writes them.
    parse_duration_s(t)
        .ok()
        .and_then(|s| s.checked_mul(1000))
        .ok_or_else(bad)
}

/// The seconds of a `sleep N` command, as a string or an argument list.
fn sleep_ms(c: &Command) -> Option<u64> {
    let words: Vec<&str> = match c {
        Command::Shell(s) => s.split_whitespace().collect(),
        Command::Argv(v) => v.iter().map(String::as_str).collect(),
    };
    match words[..] {
        [prog, n] if prog.rsplit('/').next() == Some("sleep") => parse_ms(n).ok(),
        _ => None,
    }
}

/// A number in [0, 1) fixed by the seed, a key (the attempt or the frame)
/// and what it is for.
fn draw(seed: u64, key: u64, purpose: u64) -> f64 {
    let x = mix(mix(seed ^ mix(key)) ^ purpose);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// SplitMix64's finaliser: a bijection that scatters nearby inputs.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(attempt: i64, command: &str, env: &[(&str, &str)]) -> Launch {
        Launch {
            attempt: AttemptId(attempt),
            job: "j".into(),
            frame_label: "a/1".into(),
            command: Command::Shell(command.into()),
            base_env: std::sync::Arc::new(
                env.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            cwd: None,
            user: "u".into(),
            timeout_s: None,
            gpus: 0,
            cores: 100,
            memory_kb: 0,
            frame: FrameId(1),
            number: 1,
            last: 1,
            chunk: "1".into(),
            attempt_number: 1,
            outputs: Vec::new(),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_ms("1500ms"), Ok(1500));
        assert_eq!(parse_ms("30s"), Ok(30_000));
        assert_eq!(parse_ms("0.5s"), Ok(500));
        assert_eq!(parse_ms("2m"), Ok(120_000));
        assert_eq!(parse_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_ms("7"), Ok(7_000));
        for bad in ["", "s", "-1s", "1x", "1.2.3s", "1e30s"] {
            assert!(parse_ms(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ranges_are_uniform_reproducible_and_bounded() {
        let draws: Vec<u64> = (0..2000)
            .map(|a| runtime_ms("10s..20s", 7, AttemptId(a)).unwrap())
            .collect();
        assert!(draws.iter().all(|&d| (10_000..=20_000).contains(&d)));
        let mean = draws.iter().sum::<u64>() as f64 / draws.len() as f64;
        assert!((mean - 15_000.0).abs() < 300.0, "{mean}");
        assert_eq!(runtime_ms("10s..20s", 7, AttemptId(3)), Ok(draws[3]));
        assert_ne!(runtime_ms("10s..20s", 8, AttemptId(3)), Ok(draws[3]));
        assert_eq!(runtime_ms("5s..5s", 0, AttemptId(1)), Ok(5_000));
        assert!(runtime_ms("20s..10s", 0, AttemptId(1)).is_err());
    }

    #[test]
    fn runtime_from_env_then_sleep_then_zero() {
        let p = plan(&launch(1, "render", &[(RUNTIME_VAR, "2s")]), 4.0, 0);
        assert_eq!((p.wait, p.virtual_ms), (Duration::from_millis(500), 2_000));
        assert_eq!(plan(&launch(1, "sleep 3", &[]), 1.0, 0).virtual_ms, 3_000);
        let mut argv = launch(1, "", &[]);
        argv.command = Command::Argv(vec!["/bin/sleep".into(), "0.25".into()]);
        assert_eq!(plan(&argv, 1.0, 0).virtual_ms, 250);
        assert_eq!(plan(&launch(1, "sleep 3; true", &[]), 1.0, 0).virtual_ms, 0);
    }

    #[test]
    fn exits_failures_rss_and_timeouts() {
        let p = plan(&launch(1, "x", &[(EXIT_VAR, "3"), (RSS_VAR, "2G")]), 1.0, 0);
        assert_eq!((p.exit, p.max_rss_kb), (Exit::Exited(3), 2 << 20));
        let failed = (0..1000)
            .filter(|&a| {
                let l = launch(a, "x", &[(FAIL_RATE_VAR, "0.25")]);
                plan(&l, 1.0, 0).exit == Exit::Exited(1)
            })
            .count();
        assert!((200..300).contains(&failed), "{failed}");
        let mut l = launch(1, "x", &[(RUNTIME_VAR, "10m")]);
        l.timeout_s = Some(60);
        let p = plan(&l, 1.0, 0);
        assert_eq!((p.exit, p.virtual_ms), (Exit::TimedOut, 60_000));
    }

    #[test]
    fn memory_past_the_reservation_is_killed_halfway_reporting_the_peak() {
        let mut l = launch(1, "x", &[(RUNTIME_VAR, "10s"), (RSS_VAR, "3G")]);
        l.memory_kb = 1 << 20;
        let p = plan(&l, 2.0, 0);
        assert_eq!(p.exit, Exit::OutOfMemory { rss_kb: 3 << 20 });
        assert_eq!(
            (p.virtual_ms, p.wait),
            (5_000, Duration::from_millis(2_500))
        );
        assert_eq!(p.max_rss_kb, 3 << 20);
        // Up to the reservation is allowed; 0 reserves nothing and limits nothing.
        l.memory_kb = 3 << 20;
        assert_eq!(plan(&l, 1.0, 0).exit, Exit::Exited(0));
        l.memory_kb = 0;
        assert_eq!(plan(&l, 1.0, 0).exit, Exit::Exited(0));
        // Killed for memory before it could exit badly or time out...
        let mut l = launch(
            1,
            "x",
            &[(RUNTIME_VAR, "10m"), (RSS_VAR, "2G"), (EXIT_VAR, "3")],
        );
        l.memory_kb = 1 << 20;
        l.timeout_s = Some(400);
        assert_eq!(plan(&l, 1.0, 0).exit, Exit::OutOfMemory { rss_kb: 2 << 20 });
        // ...unless the timeout comes first.
        l.timeout_s = Some(200);
        let p = plan(&l, 1.0, 0);
        assert_eq!((p.exit, p.virtual_ms), (Exit::TimedOut, 200_000));
    }

    #[test]
    fn memory_ranges_are_drawn_per_frame_not_per_attempt() {
        let rss = |attempt: i64, frame: i64| {
            let mut l = launch(attempt, "x", &[(RSS_VAR, "1G..3G")]);
            l.frame = FrameId(frame);
            plan(&l, 1.0, 0).max_rss_kb
        };
        let frames: Vec<u64> = (0..500).map(|f| rss(1, f)).collect();
        assert!(frames.iter().all(|&k| (1 << 20..=3 << 20).contains(&k)));
        let mean = frames.iter().sum::<u64>() as f64 / frames.len() as f64;
        assert!(
            (mean - (2 << 20) as f64).abs() < (1 << 20) as f64 * 0.1,
            "{mean}"
        );
        assert_eq!(
            rss(2, 7),
            frames[7],
            "a retry needs what the first attempt needed"
        );
        assert_eq!(rss_kb("2G..2G", 0, FrameId(1)), Ok(2 << 20));
        assert!(rss_kb("3G..1G", 0, FrameId(1)).is_err());
    }

    #[test]
    fn bad_variables_fail_the_frame_naming_the_variable() {
        for (k, v) in [
            (RUNTIME_VAR, "soon"),
            (EXIT_VAR, "ok"),
            (FAIL_RATE_VAR, "2"),
            (RSS_VAR, "12"),
            (RSS_VAR, "1G..x"),
        ] {
            let p = plan(&launch(1, "x", &[(k, v)]), 1.0, 0);
            let Exit::FailedToStart(why) = p.exit else {
                panic!("{k}={v} accepted")
            };
            assert!(why.contains(k), "{why}");
        }
    }
}
