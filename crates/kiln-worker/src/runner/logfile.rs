//! The header and footer the runner writes around a frame's own output in
//! its log, so that a log read on its own says what ran, where, as whom and
//! how it ended; and the time and size formatting they share.

use super::prepare::Prepared;
use super::{Exit, Finished, Launch, RunnerConfig};
use kiln_core::model::Command;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(super) fn header(
    cfg: &RunnerConfig,
    l: &Launch,
    p: Option<&Prepared>,
    started: SystemTime,
) -> String {
    let mut h = String::with_capacity(256);
    let _ = writeln!(
        h,
        "=== kiln frame {} of job {}, attempt id {}",
        l.frame_label, l.job_name, l.attempt
    );
    let _ = writeln!(h, "host: {}", cfg.host_name);
    let identity = p.map(|p| &p.identity);
    match identity.and_then(|i| i.known.as_ref()) {
        Some(k) if k.name != l.user => {
            let _ = writeln!(h, "user: {} (uid {}; job user {})", k.name, k.uid, l.user);
        }
        // A supervisor that does not switch users runs the frame as the
        // worker, and looks its account up itself.
        None if identity.is_some_and(|i| i.switch_to.is_none())
            && std::env::var_os("USER").is_none_or(|u| u != l.user.as_str()) =>
        {
            let uid = unsafe { libc::geteuid() };
            let _ = writeln!(h, "user: the worker's, uid {uid} (job user {})", l.user);
        }
        _ => {
            let _ = writeln!(h, "user: {}", l.user);
        }
    }
    let _ = writeln!(h, "command: {}", display_command(&l.command));
    match (p, &l.cwd) {
        (Some(p), _) => {
            let _ = writeln!(h, "cwd: {}", p.cwd.display());
        }
        (None, Some(c)) => {
            let _ = writeln!(h, "cwd: {}", c.display());
        }
        (None, None) => {}
    }
    if let Some(p) = p.filter(|p| !p.gpus.is_empty()) {
        let list: Vec<String> = p.gpus.iter().map(u32::to_string).collect();
        let _ = writeln!(h, "gpus: {}", list.join(","));
    }
    if let Some(t) = l.timeout {
        let _ = writeln!(h, "timeout: {}", secs(t));
    }
    if let Some(m) = l.memory_limit_kb {
        let _ = writeln!(h, "memory limit: {}", human_kb(m));
    }
    let _ = writeln!(h, "started: {}", rfc3339(started));
    h.push_str("===\n");
    h
}

pub(super) fn footer(
    f: &Finished,
    timeout: Option<Duration>,
    memory_limit_kb: Option<u64>,
) -> String {
    let mut s = String::with_capacity(160);
    s.push_str("=== kiln frame ended\n");
    let _ = match &f.exit {
        Exit::Exited(code) => writeln!(s, "exit status: {code}"),
        Exit::Signaled(sig) => writeln!(s, "killed by signal {sig}{}", signal_name(*sig)),
        Exit::TimedOut => match timeout {
            Some(t) => writeln!(s, "timed out after {}", secs(t)),
            None => writeln!(s, "timed out"),
        },
        Exit::Killed(reason) => writeln!(s, "killed: {reason}"),
        Exit::FailedToStart(reason) => writeln!(s, "failed to start: {reason}"),
        Exit::JobCannotStart(reason) => {
            writeln!(
                s,
                "failed to start: {reason} (an error of the job's, not the host's)"
            )
        }
        Exit::OutOfMemory { rss_kb } => writeln!(
            s,
            "killed: out of memory: used {}, more than the {} the frame reserved",
            human_kb(*rss_kb),
            memory_limit_kb.map_or_else(|| "memory".to_owned(), human_kb)
        ),
    };
    let runtime = Duration::from_millis((f.ended_at - f.started_at).max(0) as u64);
    let _ = writeln!(
        s,
        "ended: {}",
        rfc3339(UNIX_EPOCH + Duration::from_millis(f.ended_at.max(0) as u64))
    );
    let _ = writeln!(s, "runtime: {:.1}s", runtime.as_secs_f64());
    let _ = writeln!(s, "max rss: {}", human_kb(f.max_rss_kb));
    let _ = writeln!(s, "cpu time: {:.1}s", f.cpu_ms as f64 / 1000.0);
    s.push_str("===\n");
    s
}

/// Argv shown so that it could be pasted into a shell.
pub(super) fn display_command(c: &Command) -> String {
    match c {
        Command::Shell(s) => s.clone(),
        Command::Argv(v) => {
            let mut out = String::new();
            for (i, a) in v.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                let plain = !a.is_empty()
                    && a.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
                if plain {
                    out.push_str(a);
                } else {
                    out.push('\'');
                    out.push_str(&a.replace('\'', r"'\''"));
                    out.push('\'');
                }
            }
            out
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => " (SIGHUP)",
        libc::SIGINT => " (SIGINT)",
        libc::SIGQUIT => " (SIGQUIT)",
        libc::SIGILL => " (SIGILL)",
        libc::SIGTRAP => " (SIGTRAP)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGBUS => " (SIGBUS)",
        libc::SIGFPE => " (SIGFPE)",
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGUSR1 => " (SIGUSR1)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGUSR2 => " (SIGUSR2)",
        libc::SIGPIPE => " (SIGPIPE)",
        libc::SIGALRM => " (SIGALRM)",
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGXCPU => " (SIGXCPU)",
        libc::SIGXFSZ => " (SIGXFSZ)",
        _ => "",
    }
}

/// `512K`, `512M`, `1.5G`.
pub(super) fn human_kb(kb: u64) -> String {
    if kb < 1024 {
        format!("{kb}K")
    } else if kb < 1024 * 1024 {
        format!("{}M", (kb + 512) / 1024)
    } else {
        format!("{:.1}G", kb as f64 / (1024.0 * 1024.0))
    }
}

/// `10s`, `1.5s`.
pub(super) fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

pub(super) fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(super) fn now_ms() -> i64 {
    ms(SystemTime::now())
}

/// UTC, to the second: `2026-11-23T10:00:00Z`.
pub(super) fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
