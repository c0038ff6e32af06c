//! The frame supervisor (`kiln frame-shim`, hidden): a small process per
//! frame, in its own session, that starts the frame, owns its cgroup and
//! the worker's lease, and reaps it. It does not freeze or die with the
//! worker daemon: when the lease runs out without renewal (the daemon is
//! SIGKILLed, stopped, or cut off from the server) it kills the frame's
//! whole tree before the server may run the frame elsewhere.
//!
//! Talks to the daemon through files and one pipe, no sockets:
//! - fd 3: one line once the frame is spawned, `ok <pid>` or
//!   `err <step> <errno>`, then closed;
//! - the lease file (see [`write_lease`]), read again when the deadline
//!   it last read comes (at least every [`POLL_MAX`]);
//! - `<state>/exit`, written when the frame's tree is empty: wait status,
//!   max RSS, CPU, OOM kills, whether the lease killed it.
//!
//! It also looks up the job's user (see `account`), so that the daemon
//! never loads NSS modules nor waits on a directory service.
//!
//! It is the `kiln` binary, but touches little of it, single-threaded, no
//! runtime; its stdio is /dev/null, the frame's goes straight to its log.

use super::proc::{cpu_ms, cstring, nul_terminated, pidfd_open, wait4};
use super::tree::Tree;
use super::{account, spawn};
use crate::cgroup::FrameCgroup;
use std::ffi::{CString, OsString};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest the lease file goes unread; and the shortest wait, so that
/// a lease written in the past cannot make the supervisor spin.
const POLL_MAX: Duration = Duration::from_secs(1);
const POLL_MIN: Duration = Duration::from_millis(20);

/// The frame's environment in the supervisor's state directory (mode 0600,
/// NUL-separated `KEY=value`); the supervisor's own is a bare `PATH`.
pub(super) const ENV_FILE: &str = "env";

/// What the supervisor is told on its command line.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Args {
    pub state: PathBuf,
    pub lease: Option<PathBuf>,
    pub grace_ms: u64,
    /// `(uid, gid, groups)` to switch to, where the worker knows them.
    pub ids: Option<(u32, u32, Vec<u32>)>,
    /// Else the job's user, looked up here and switched to (see
    /// `account`); `None` for both: run as this process's own user.
    pub user: Option<String>,
    pub allow_root: bool,
    /// `cwd` is the frame's scratch directory, to give to `user`.
    pub scratch: bool,
    pub cwd: PathBuf,
    pub cgroup: Vec<String>,
    /// The resolved program, then argv.
    pub exec: Vec<OsString>,
}

impl Args {
    pub(super) fn to_argv(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec!["frame-shim".into()];
        let kv = |k: &str, val: &[u8]| {
            let mut s = OsString::from(format!("{k}="));
            s.push(std::ffi::OsStr::from_bytes(val));
            s
        };
        v.push(kv("state", self.state.as_os_str().as_bytes()));
        if let Some(l) = &self.lease {
            v.push(kv("lease", l.as_os_str().as_bytes()));
        }
        v.push(format!("grace={}", self.grace_ms).into());
        if let Some((u, g, groups)) = &self.ids {
            let groups: Vec<String> = groups.iter().map(u32::to_string).collect();
            v.push(format!("ids={u}:{g}:{}", groups.join(",")).into());
        }
        if let Some(u) = &self.user {
            v.push(kv("user", u.as_bytes()));
        }
        if self.allow_root {
            v.push("root=1".into());
        }
        if self.scratch {
            v.push("scratch=1".into());
        }
        v.push(kv("cwd", self.cwd.as_os_str().as_bytes()));
        for c in &self.cgroup {
            v.push(kv("cg", c.as_bytes()));
        }
        v.push("--".into());
        v.extend(self.exec.iter().cloned());
        v
    }

    /// The reverse of `to_argv`, after `frame-shim`.
    pub(super) fn parse(args: impl IntoIterator<Item = OsString>) -> Option<Args> {
        let mut a = Args::default();
        let mut it = args.into_iter();
        for arg in it.by_ref() {
            let bytes = arg.into_vec();
            if bytes == b"--" {
                break;
            }
            let eq = bytes.iter().position(|&b| b == b'=')?;
            let (k, v) = (&bytes[..eq], bytes[eq + 1..].to_vec());
            let path = || PathBuf::from(OsString::from_vec(v.clone()));
            match k {
                b"state" => a.state = path(),
                b"lease" => a.lease = Some(path()),
                b"grace" => a.grace_ms = String::from_utf8(v).ok()?.parse().ok()?,
                b"cwd" => a.cwd = path(),
                b"cg" => a.cgroup.push(String::from_utf8(v).ok()?),
                b"ids" => a.ids = Some(account::parse_ids(std::str::from_utf8(&v).ok()?)?),
                b"user" => a.user = Some(String::from_utf8(v).ok()?),
                b"root" => a.allow_root = v == b"1",
                b"scratch" => a.scratch = v == b"1",
                _ => return None,
            }
        }
        a.exec = it.collect();
        (a.exec.len() >= 2 && !a.state.as_os_str().is_empty()).then_some(a)
    }
}

/// How a supervised frame ended, as written to `<state>/exit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct ShimExit {
    pub status: i32,
    pub max_rss_kb: u64,
    pub cpu_ms: u64,
    pub oom_kills: u64,
    pub lease_expired: bool,
}

impl ShimExit {
    fn to_line(self) -> String {
        format!(
            "{} {} {} {} {}\n",
            self.status, self.max_rss_kb, self.cpu_ms, self.oom_kills, self.lease_expired as u8
        )
    }

    pub(super) fn read(state: &Path) -> Option<ShimExit> {
        let s = std::fs::read_to_string(state.join("exit")).ok()?;
        let mut f = s.split_whitespace().map(|w| w.parse::<i64>().ok());
        Some(ShimExit {
            status: f.next()?? as i32,
            max_rss_kb: f.next()?? as u64,
            cpu_ms: f.next()?? as u64,
            oom_kills: f.next()?? as u64,
            lease_expired: f.next()?? != 0,
        })
    }
}

/// Milliseconds on CLOCK_BOOTTIME, which both the daemon and its
/// supervisors read, and which keeps counting while the host sleeps.
pub fn boot_ms() -> u64 {
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Publishes the lease to every supervisor: frames get SIGTERM at
/// `term_at` and SIGKILL at `kill_at` (CLOCK_BOOTTIME ms) unless renewed.
/// Written whole and renamed into place, so a reader never sees half.
pub fn write_lease(path: &Path, term_at: u64, kill_at: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{term_at} {kill_at}\n"))?;
    std::fs::rename(&tmp, path)
}

fn read_lease(path: &Path) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(path).ok()?;
    let mut it = s.split_whitespace().map(|w| w.parse().ok());
    Some((it.next()??, it.next()??))
}

/// `kiln frame-shim ...`: runs one frame to its end; the exit code is for
/// people (the daemon reads fd 3 and `<state>/exit`).
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let Some(a) = Args::parse(args) else {
        let _ = report(b"err 0 22\n");
        return 2;
    };
    unsafe {
        // The report pipe is for this process only: the frame must not
        // hold it open.
        libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC);
        // Not a terminal's or the worker's business: stay until the frame ends.
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    // The frame's stdio, out of the way of fd 3; the shim's own is /dev/null.
    let stdin = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 4) };
    let stdout = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 4) };
    let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
    if null >= 0 {
        for fd in 0..3 {
            unsafe { libc::dup2(null, fd) };
        }
    }
    let cgroup = FrameCgroup::from_args(&a.cgroup);
    // A cgroup that cannot be joined is the host's failure, said as such:
    // the frame never runs unconfined where a cgroup was meant for it.
    let procs = match cgroup
        .as_ref()
        .map_or(Ok(Vec::new()), FrameCgroup::open_procs)
    {
        Ok(p) => p,
        Err(e) => {
            let step = spawn::Step::Cgroup as i32;
            let _ = report(format!("err {step} {}\n", e.raw_os_error().unwrap_or(0)).as_bytes());
            return 1;
        }
    };
    let procs_fds: Vec<i32> = procs.iter().map(|f| f.as_raw_fd()).collect();
    let path = cstring(&a.exec[0]);
    let argv: Vec<CString> = a.exec[1..].iter().map(|s| cstring(s)).collect();
    let account = match account::settle(a.ids.as_ref(), a.user.as_deref(), a.allow_root) {
        Ok(acc) => acc,
        Err((step, errno)) => {
            let _ = report(format!("err {} {errno}\n", step as i32).as_bytes());
            return 1;
        }
    };
    if a.user.is_some() {
        account.record(&a.state);
    }
    if a.scratch {
        if let Err(errno) = account.give(&a.cwd) {
            let _ = report(format!("err {} {errno}\n", spawn::Step::Chown as i32).as_bytes());
            return 1;
        }
    }
    let envp: Vec<CString> = match std::fs::read(a.state.join(ENV_FILE)) {
        Ok(env) => account.environment(&env),
        Err(e) => {
            let step = spawn::Step::Env as i32;
            let _ = report(format!("err {step} {}\n", e.raw_os_error().unwrap_or(0)).as_bytes());
            return 1;
        }
    };
    let (argv_ptrs, envp_ptrs) = (nul_terminated(&argv), nul_terminated(&envp));
    let cwd = cstring(a.cwd.as_os_str());
    let spawned = spawn::spawn(&spawn::Child {
        path: &path,
        argv: &argv_ptrs,
        envp: &envp_ptrs,
        cwd: &cwd,
        stdin,
        stdout,
        ids: account
            .ids
            .as_ref()
            .map(|(u, g, gs)| (*u, *g, gs.as_slice())),
        cgroups: &procs_fds,
        fd3: None,
        detach: false,
    });
    drop(procs);
    unsafe {
        libc::close(stdin);
        libc::close(stdout);
    }
    let pid = match spawned {
        Ok(pid) => pid,
        Err((step, e)) => {
            let line = format!("err {} {}\n", step as i32, e.raw_os_error().unwrap_or(0));
            let _ = report(line.as_bytes());
            if let Some(cg) = &cgroup {
                cg.remove();
            }
            return 1;
        }
    };
    // For a later run of the worker, should this one die: who to kill.
    let mut pids = format!("{} {pid}\n", std::process::id());
    for c in &a.cgroup {
        pids.push_str(c);
        pids.push('\n');
    }
    let _ = std::fs::write(a.state.join("pids"), pids);
    let _ = report(format!("ok {pid}\n").as_bytes());
    unsafe { libc::close(3) };
    let tree = Tree::direct(pid, cgroup);
    let exit = supervise(&a, &tree, pid);
    let tmp = a.state.join("exit.tmp");
    // Not synced: it must outlive the daemon, not the host, whose crash
    // ends the frame anyway.
    let written = std::fs::write(&tmp, exit.to_line())
        .and_then(|()| std::fs::rename(&tmp, a.state.join("exit")));
    i32::from(written.is_err())
}

fn report(line: &[u8]) -> std::io::Result<()> {
    let n = unsafe { libc::write(3, line.as_ptr().cast(), line.len()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

enum Phase {
    Running,
    /// SIGTERM sent on the lease's account; SIGKILL at this boot time.
    Terminating(u64),
    Killed,
}

/// Waits for the frame, enforcing the lease; then empties its tree.
fn supervise(a: &Args, tree: &Tree, pid: i32) -> ShimExit {
    let pidfd = pidfd_open(pid);
    let mut phase = Phase::Running;
    let mut lease = a.lease.as_deref().and_then(read_lease);
    let mut lease_expired = false;
    loop {
        // Sleep until the next deadline this supervisor knows of; a
        // renewal is read then, before anything is killed.
        let next = match (&phase, lease) {
            (Phase::Running, Some((term_at, _))) => Some(term_at),
            (Phase::Terminating(at), Some((_, kill_at))) => Some((*at).min(kill_at)),
            (Phase::Killed, _) => Some(0),
            _ => None,
        };
        let wait = next.map_or(POLL_MAX, |t| {
            Duration::from_millis(t.saturating_sub(boot_ms())).clamp(POLL_MIN, POLL_MAX)
        });
        if let Some(pidfd) = &pidfd {
            let mut pfd = libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            if unsafe { libc::poll(&mut pfd, 1, wait.as_millis() as i32) } > 0 {
                break;
            }
        } else {
            std::thread::sleep(wait.min(POLL_MIN * 5));
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let flags = libc::WEXITED | libc::WNOWAIT | libc::WNOHANG;
            let rc = unsafe { libc::waitid(libc::P_PID, pid as u32, &mut info, flags) };
            if rc == 0 && unsafe { info.si_pid() } == pid {
                break;
            }
        }
        let Some(path) = &a.lease else { continue };
        // A lease file being replaced keeps the last deadline read.
        if let Some(l) = read_lease(path) {
            lease = Some(l);
        }
        let Some((term_at, kill_at)) = lease else {
            continue;
        };
        let now = boot_ms();
        match phase {
            Phase::Running if now >= term_at => {
                lease_expired = true;
                tree.term();
                phase = Phase::Terminating((now + a.grace_ms).min(kill_at.max(now)));
            }
            Phase::Terminating(at) if now >= at.min(kill_at) => {
                tree.kill();
                phase = Phase::Killed;
            }
            Phase::Killed => tree.kill(),
            _ => {}
        }
    }
    // A zombie still holds its process group id: take the group's
    // stragglers down before it can be reused.
    if tree.cgroup.is_none() {
        unsafe { libc::killpg(pid, libc::SIGKILL) };
    }
    let (status, ru) = wait4(pid, 0)
        .ok()
        .flatten()
        .unwrap_or((0, unsafe { std::mem::zeroed() }));
    let mut oom_kills = 0;
    if let Some(cg) = &tree.cgroup {
        cg.kill_until_empty(Duration::from_secs(30));
        oom_kills = cg.oom_kills();
        cg.remove();
    }
    ShimExit {
        status,
        max_rss_kb: ru.ru_maxrss.max(0) as u64,
        cpu_ms: cpu_ms(&ru),
        oom_kills,
        lease_expired,
    }
}

/// Whether `pid` is the supervisor of the frame in `state` (and not a
/// process that got its pid since).
pub(super) fn is_shim_of(pid: i32, state: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut want = b"state=".to_vec();
    want.extend_from_slice(state.as_os_str().as_bytes());
    let mut args = cmdline.split(|&b| b == 0);
    args.nth(1) == Some(b"frame-shim".as_slice()) && args.any(|a| a == want.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let a = Args {
            state: "/w/shims/7".into(),
            lease: Some("/w/lease".into()),
            grace_ms: 5000,
            ids: Some((1000, 1000, vec![1000, 27])),
            user: Some("alice".into()),
            allow_root: true,
            scratch: true,
            cwd: "/w/frames/7".into(),
            cgroup: vec!["kill2".into(), "/sys/fs/cgroup/kiln/w/7".into()],
            exec: vec![
                "/bin/sh".into(),
                "sh".into(),
                "-c".into(),
                "a=b -- x".into(),
            ],
        };
        let argv = a.to_argv();
        assert_eq!(argv[0], "frame-shim");
        assert_eq!(Args::parse(argv.into_iter().skip(1)), Some(a));
        let e = ShimExit {
            status: 256,
            max_rss_kb: 12,
            cpu_ms: 3,
            oom_kills: 1,
            lease_expired: true,
        };
        let dir = std::env::temp_dir().join(format!("kiln-shim-exit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("exit"), e.to_line()).unwrap();
        assert_eq!(ShimExit::read(&dir), Some(e));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
