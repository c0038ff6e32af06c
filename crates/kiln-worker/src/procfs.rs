//! Reads Linux's `/proc`: what the processes of running frames use, and the
//! host's memory and load for registration and heartbeats.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::OnceLock;

/// The fields of `/proc/<pid>/stat` the worker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    pub pid: i32,
    pub state: u8,
    pub ppid: i32,
    pub pgrp: i32,
    /// Clock ticks, see [`clock_ticks`].
    pub utime: u64,
    pub stime: u64,
    /// Ticks of children this process has waited for.
    pub cutime: u64,
    pub cstime: u64,
    /// Resident pages; the same figure as `statm`'s `resident`.
    pub rss_pages: u64,
}

/// Parses one `/proc/<pid>/stat` line. The command name sits in parentheses
/// and may itself hold spaces and parentheses, so fields are counted from
/// the last `)`.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let pid = line[..open].trim().parse().ok()?;
    // After the name: state(3) ppid(4) pgrp(5) session(6) tty_nr(7) tpgid(8)
    // flags(9) minflt(10) cminflt(11) majflt(12) cmajflt(13) utime(14)
    // stime(15) cutime(16) cstime(17) priority(18) nice(19) num_threads(20)
    // itrealvalue(21) starttime(22) vsize(23) rss(24).
    let mut f = line.get(close + 1..)?.split_ascii_whitespace();
    let state = *f.next()?.as_bytes().first()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    let mut f = f.skip(8);
    let utime = f.next()?.parse().ok()?;
    let stime = f.next()?.parse().ok()?;
    // cutime and cstime are signed in the kernel's format.
    let cutime = f.next()?.parse::<i64>().ok()?.max(0) as u64;
    let cstime = f.next()?.parse::<i64>().ok()?.max(0) as u64;
    let mut f = f.skip(6);
    let rss_pages = f.next()?.parse::<i64>().ok()?.max(0) as u64;
    Some(Stat {
        pid,
        state,
        ppid,
        pgrp,
        utime,
        stime,
        cutime,
        cstime,
        rss_pages,
    })
}

/// What the live processes of one process group use right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupUsage {
    pub rss_kb: u64,
    /// CPU of the group's processes, plus that of the children they have
    /// reaped; children reaped by a process outside the group are not seen.
    pub cpu_ms: u64,
    pub procs: u32,
}

/// Reads `/proc/<pid>/stat` of every process once and sums, per process
/// group in `pgids`, the processes whose group it is. Groups with no process
/// are absent from the result.
pub fn scan_groups(pgids: &[i32]) -> HashMap<i32, GroupUsage> {
    scan(pgids, &HashMap::new())
}

/// One pass over `/proc`: a process counts for the frame `members` maps
/// its pid to, else for its group if that is in `pgids`.
fn scan(pgids: &[i32], members: &HashMap<i32, i32>) -> HashMap<i32, GroupUsage> {
    let mut out: HashMap<i32, GroupUsage> = HashMap::with_capacity(pgids.len() + members.len());
    if pgids.is_empty() && members.is_empty() {
        return out;
    }
    let mut wanted = pgids.to_vec();
    wanted.sort_unstable();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    let page_kb = page_size_kb();
    let ticks = clock_ticks();
    let mut path = String::with_capacity(32);
    let mut buf = String::with_capacity(512);
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        path.clear();
        use std::fmt::Write;
        let _ = write!(path, "/proc/{pid}/stat");
        buf.clear();
        // The process may exit between readdir and open: skip it quietly.
        if std::fs::File::open(&path)
            .and_then(|mut f| f.read_to_string(&mut buf))
            .is_err()
        {
            continue;
        }
        let Some(st) = parse_stat(&buf) else { continue };
        let key = match members.get(&(pid as i32)) {
            Some(&frame) => frame,
            None if wanted.binary_search(&st.pgrp).is_ok() => st.pgrp,
            None => continue,
        };
        let g = out.entry(key).or_default();
        g.rss_kb += st.rss_pages * page_kb;
        g.cpu_ms += ticks_to_ms(st.utime + st.stime + st.cutime + st.cstime, ticks);
        g.procs += 1;
    }
    out
}

/// [`scan_groups`] for frames, each a process group and, where it has one,
/// the cgroup whose member list (`cgroup.procs`) is given: a frame's usage
/// is then that of every process in its cgroup, wherever its group, so a
/// child that left with `setsid` still counts. Keyed by group.
pub fn scan_frames(frames: &[(i32, Option<std::path::PathBuf>)]) -> HashMap<i32, GroupUsage> {
    let mut members: HashMap<i32, i32> = HashMap::new();
    let mut by_group = Vec::new();
    for (pgid, list) in frames {
        let pids = list.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
        match pids {
            Some(pids) => members.extend(
                pids.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .map(|pid| (pid, *pgid)),
            ),
            None => by_group.push(*pgid),
        }
    }
    scan(&by_group, &members)
}

/// Whether any process of group `pgid` is alive (zombies do not count).
pub fn group_alive(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            return false;
        };
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
            .is_some_and(|st| st.pgrp == pgid && st.state != b'Z' && st.state != b'X')
    })
}

fn ticks_to_ms(t: u64, per_s: u64) -> u64 {
    t.saturating_mul(1000) / per_s.max(1)
}

/// The page size in KiB.
pub fn page_size_kb() -> u64 {
    static V: OnceLock<u64> = OnceLock::new();
    *V.get_or_init(|| {
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if p > 0 {
            p as u64 / 1024
        } else {
            4
        }
    })
}

/// Clock ticks per second, the unit of `/proc`'s CPU times.
pub fn clock_ticks() -> u64 {
    static V: OnceLock<u64> = OnceLock::new();
    *V.get_or_init(|| {
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 {
            t as u64
        } else {
            100
        }
    })
}

/// The figures of `/proc/meminfo` the worker reports, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemInfo {
    pub total_kb: u64,
    /// What can be given to new work without swapping (`MemAvailable`).
    pub available_kb: u64,
    pub swap_total_kb: u64,
}

pub fn meminfo() -> io::Result<MemInfo> {
    Ok(parse_meminfo(&std::fs::read_to_string("/proc/meminfo")?))
}

pub fn parse_meminfo(text: &str) -> MemInfo {
    let (mut total, mut avail, mut free, mut buffers, mut cached, mut swap) = (0, None, 0, 0, 0, 0);
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let v: u64 = rest
            .split_ascii_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        match key {
            "MemTotal" => total = v,
            "MemAvailable" => avail = Some(v),
            "MemFree" => free = v,
            "Buffers" => buffers = v,
            "Cached" => cached = v,
            "SwapTotal" => swap = v,
            _ => {}
        }
    }
    MemInfo {
        total_kb: total,
        // Kernels before 3.14 lack MemAvailable; this is its old estimate.
        available_kb: avail.unwrap_or(free + buffers + cached),
        swap_total_kb: swap,
    }
}

/// The one-minute load average.
pub fn loadavg() -> io::Result<f64> {
    let s = std::fs::read_to_string("/proc/loadavg")?;
    s.split_ascii_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad /proc/loadavg"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_name() {
        let line = "1234 (we ird) (x) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
                    250 50 7 3 20 0 1 0 12345 10000000 2048 18446744073709551615 \
                    1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let st = parse_stat(line).unwrap();
        assert_eq!(st.pid, 1234);
        assert_eq!(st.state, b'S');
        assert_eq!(st.ppid, 1);
        assert_eq!(st.pgrp, 1234);
        assert_eq!((st.utime, st.stime, st.cutime, st.cstime), (250, 50, 7, 3));
        assert_eq!(st.rss_pages, 2048);
    }

    #[test]
    fn own_process_is_seen() {
        let me = std::fs::read_to_string("/proc/self/stat").unwrap();
        let st = parse_stat(&me).unwrap();
        assert_eq!(st.pid as u32, std::process::id());
        assert!(st.rss_pages > 0);
        let groups = scan_groups(&[st.pgrp]);
        let g = groups[&st.pgrp];
        assert!(g.procs >= 1 && g.rss_kb > 0);
        assert!(group_alive(st.pgrp));
    }

    #[test]
    fn meminfo_fallback() {
        let m = parse_meminfo("MemTotal: 100 kB\nMemFree: 10 kB\nBuffers: 5 kB\nCached: 20 kB\n");
        assert_eq!(m.total_kb, 100);
        assert_eq!(m.available_kb, 35);
        assert!(meminfo().unwrap().total_kb > 0);
        assert!(loadavg().unwrap() >= 0.0);
    }
}
