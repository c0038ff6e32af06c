//! A frame's process tree: how it is started (in its own cgroup where the
//! host has them, under a frame supervisor when the runner has one), how it
//! is signalled and killed as a whole, and how its end is collected once
//! its main process has exited: the tree must be empty before the frame
//! counts as over.

use super::adopt::Meta;
use super::exec::Exec;
use super::logfile::now_ms;
use super::prepare::Prepared;
use super::shim::{self, ShimExit};
use super::supervise::reap;
use super::{spawn, Inner, Launch};
use crate::cgroup::FrameCgroup;
use std::ffi::{CString, OsStr, OsString};
use std::io::Read as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

/// Headroom of a frame's kernel memory cap over its reservation: the
/// reservation itself is enforced by sampling (a SIGTERM and a grace), the
/// cap stops a leak too fast for the sampler, and it also counts kernel
/// memory and page cache the sampled RSS does not.
pub(super) fn memory_cap_bytes(reserved_kb: u64) -> u64 {
    let kb = reserved_kb + reserved_kb / 8 + 32 * 1024;
    kb.saturating_mul(1024)
}

/// A started frame.
pub(super) struct Tree {
    /// The process to wait for: the supervisor, or the frame itself.
    pub(super) pid: i32,
    /// The frame's own process group (its main process's pid).
    pub(super) pgid: i32,
    pub(super) cgroup: Option<FrameCgroup>,
    /// The supervisor's state directory.
    pub(super) shim: Option<PathBuf>,
}

pub(super) enum Failed {
    Step(spawn::Step, std::io::Error),
    Other(String),
}

/// How the frame ended, once its tree is empty.
pub(super) struct End {
    pub(super) status: Option<i32>,
    pub(super) max_rss_kb: u64,
    pub(super) cpu_ms: u64,
    pub(super) oom_kills: u64,
    pub(super) lease_expired: bool,
    /// The supervisor died without a word (someone SIGKILLed it).
    pub(super) supervisor_died: bool,
}

pub(super) struct Stdio {
    pub(super) stdin: RawFd,
    pub(super) stdout: RawFd,
}

/// Starts the frame `exec` describes; returns once it has exec'd.
pub(super) fn start(
    inner: &Inner,
    l: &Launch,
    p: &Prepared,
    exec: &Exec,
    io: Stdio,
) -> Result<Tree, Failed> {
    let ids = p
        .identity
        .switch
        .as_ref()
        .map(|(u, g, gs)| (*u, *g, gs.as_slice()));
    let name = l.attempt.to_string();
    let cgroup = inner.cgroups.as_ref().and_then(|c| {
        let cap = l.memory_limit_kb.map(memory_cap_bytes);
        c.create(&name, cap)
            .map_err(|e| {
                tracing::warn!(attempt = %l.attempt, "cannot make the frame's cgroup, running it in a process group only: {e}")
            })
            .ok()
    });
    let Some(shim_exe) = &inner.cfg.shim else {
        let procs: Vec<std::fs::File> = cgroup
            .iter()
            .flat_map(|c| c.procs_files())
            .map(|p| std::fs::OpenOptions::new().write(true).open(p))
            .collect::<Result<_, _>>()
            .map_err(|e| Failed::Step(spawn::Step::Cgroup, e))?;
        let fds: Vec<RawFd> = procs.iter().map(|f| f.as_raw_fd()).collect();
        let pid = spawn::spawn(&spawn::Child {
            path: &exec.path,
            argv: &exec.argv_ptrs,
            envp: &exec.envp_ptrs,
            cwd: &exec.cwd,
            stdin: io.stdin,
            stdout: io.stdout,
            ids,
            cgroups: &fds,
            fd3: None,
            detach: false,
        })
        .map_err(|(step, e)| {
            if let Some(c) = &cgroup {
                c.remove();
            }
            Failed::Step(step, e)
        })?;
        return Ok(Tree {
            pid,
            pgid: pid,
            cgroup,
            shim: None,
        });
    };
    let state = inner.cfg.work_dir.join("shims").join(&name);
    let _ = std::fs::remove_dir_all(&state);
    let meta = Meta {
        log: std::path::absolute(&l.log_path).unwrap_or_else(|_| l.log_path.clone()),
        started_ms: now_ms().max(0) as u64,
        timeout_ms: l.timeout.map(|t| t.as_millis() as u64),
        memory_limit_kb: l.memory_limit_kb,
        scratch: p.scratch.clone(),
        gpus: p.gpus.clone(),
    };
    // The job's environment goes to the supervisor in a file only the
    // worker's user reads, never in the supervisor's own environment: it runs
    // as the worker (root, when frames switch user), and a job's
    // LD_PRELOAD must not load into it.
    std::fs::create_dir_all(&state)
        .and_then(|()| meta.write(&state))
        .and_then(|()| {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(state.join(shim::ENV_FILE))?
                .write_all(&exec.env_file())
        })
        .map_err(|e| {
            Failed::Other(format!(
                "cannot record the frame in {}: {e}",
                state.display()
            ))
        })?;
    let args = shim::Args {
        state: state.clone(),
        lease: inner.cfg.lease_file.clone(),
        grace_ms: inner.cfg.kill_grace.as_millis() as u64,
        ids: ids.map(|(u, g, gs)| (u, g, gs.to_vec())),
        user: p.identity.switch_to.clone(),
        allow_root: inner.cfg.allow_root,
        scratch: p.scratch.is_some(),
        cwd: std::path::absolute(OsStr::from_bytes(exec.cwd.as_bytes()))
            .map_err(|e| Failed::Other(format!("bad working directory: {e}")))?,
        cgroup: cgroup
            .as_ref()
            .map(FrameCgroup::to_args)
            .unwrap_or_default(),
        exec: std::iter::once(OsStr::from_bytes(exec.path.as_bytes()).to_owned())
            .chain(exec.argv().map(|a| OsStr::from_bytes(a).to_owned()))
            .collect(),
    };
    let failed = |reason: String| {
        if let Some(c) = &cgroup {
            c.remove();
        }
        let _ = std::fs::remove_dir_all(&state);
        Failed::Other(reason)
    };
    let cstr = |s: &OsStr| CString::new(s.as_bytes()).unwrap_or_default();
    let argv: Vec<CString> = std::iter::once(OsString::from("kiln"))
        .chain(args.to_argv())
        .map(|a| cstr(&a))
        .collect();
    let argv_ptrs: Vec<*const libc::c_char> = argv
        .iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let path = cstr(shim_exe.as_os_str());
    // The worker's USER and HOME, for a supervisor whose account (the
    // worker's) has no passwd entry: what the worker would have given.
    let shim_env: Vec<CString> = std::iter::once(c"PATH=/usr/sbin:/usr/bin:/sbin:/bin".to_owned())
        .chain(["USER", "HOME"].into_iter().filter_map(|k| {
            let v = std::env::var_os(k)?;
            CString::new([k.as_bytes(), b"=", v.as_bytes()].concat()).ok()
        }))
        .collect();
    let shim_env: Vec<*const libc::c_char> = shim_env
        .iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let (rd, wr) = pipe().map_err(|e| failed(format!("cannot make a pipe: {e}")))?;
    let shim_pid = spawn::spawn(&spawn::Child {
        path: &path,
        argv: &argv_ptrs,
        envp: &shim_env,
        cwd: c"/",
        stdin: io.stdin,
        stdout: io.stdout,
        ids: None,
        cgroups: &[],
        fd3: Some(wr.as_raw_fd()),
        detach: true,
    })
    .map_err(|(step, e)| {
        failed(format!(
            "cannot start the frame supervisor {}: {}: {e}",
            shim_exe.display(),
            step.name()
        ))
    })?;
    drop(wr);
    // One line; EOF without one: the supervisor died.
    let mut line = Vec::new();
    let mut pipe = std::fs::File::from(rd);
    let mut byte = [0u8];
    while !line.ends_with(b"\n") && matches!(pipe.read(&mut byte), Ok(1)) {
        line.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&line);
    let mut words = line.split_whitespace();
    let ok = match (words.next(), words.next(), words.next()) {
        (Some("ok"), Some(pid), None) => pid.parse::<i32>().ok().map(Ok),
        (Some("err"), Some(step), Some(errno)) => match (step.parse(), errno.parse()) {
            (Ok(step), Ok(errno)) => Some(Err(Failed::Step(
                spawn::Step::from_i32(step),
                std::io::Error::from_raw_os_error(errno),
            ))),
            _ => None,
        },
        _ => None,
    };
    let pgid = match ok {
        Some(Ok(pid)) => pid,
        other => {
            // The supervisor exits on its own once it has said why (or died).
            let mut status = 0;
            unsafe { libc::waitpid(shim_pid, &mut status, 0) };
            return Err(match other {
                Some(Err(f)) => {
                    if let Some(c) = &cgroup {
                        c.remove();
                    }
                    let _ = std::fs::remove_dir_all(&state);
                    f
                }
                _ => failed(format!(
                    "the frame supervisor {} failed before starting the frame (wait status {status})",
                    shim_exe.display()
                )),
            });
        }
    };
    Ok(Tree {
        pid: shim_pid,
        pgid,
        cgroup,
        shim: Some(state),
    })
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Tree {
    /// SIGTERM to every process of the frame.
    pub(super) fn term(&self) {
        match &self.cgroup {
            Some(cg) => cg.signal(libc::SIGTERM),
            None => unsafe {
                libc::killpg(self.pgid, libc::SIGTERM);
            },
        }
    }

    /// SIGKILL to the whole tree.
    pub(super) fn kill(&self) {
        match &self.cgroup {
            Some(cg) => cg.kill(),
            None => unsafe {
                libc::killpg(self.pgid, libc::SIGKILL);
            },
        }
    }

    /// Once `pid` has exited (and is not reaped yet): reaps it, makes sure
    /// nothing of the frame is left running and says how it ended.
    pub(super) async fn finish(&self) -> End {
        if let Some(state) = &self.shim {
            let _ = reap(self.pid).await;
            let exit = ShimExit::read(state);
            if exit.is_none() {
                tracing::warn!(
                    pid = self.pid,
                    "a frame supervisor died without reporting; killing what is left of its frame"
                );
                self.empty().await;
            }
            if let Some(cg) = &self.cgroup {
                cg.remove();
            }
            let _ = std::fs::remove_dir_all(state);
            let e = exit.unwrap_or_default();
            return End {
                status: exit.map(|e| e.status),
                max_rss_kb: e.max_rss_kb,
                cpu_ms: e.cpu_ms,
                oom_kills: e.oom_kills,
                lease_expired: e.lease_expired,
                supervisor_died: exit.is_none(),
            };
        }
        if self.cgroup.is_none() {
            // The main process is a zombie, so the group id is still ours:
            // no other group can have it yet. Take its children down with it.
            self.kill();
        }
        let (status, ru) = reap(self.pid).await;
        let mut oom_kills = 0;
        if let Some(cg) = &self.cgroup {
            self.empty().await;
            oom_kills = cg.oom_kills();
            cg.remove();
        }
        let tv = |t: libc::timeval| t.tv_sec.max(0) as u64 * 1000 + t.tv_usec.max(0) as u64 / 1000;
        End {
            status,
            max_rss_kb: ru.map_or(0, |r| r.ru_maxrss.max(0) as u64),
            cpu_ms: ru.map_or(0, |r| tv(r.ru_utime) + tv(r.ru_stime)),
            oom_kills,
            lease_expired: false,
            supervisor_died: false,
        }
    }

    /// Kills the tree until it is empty.
    async fn empty(&self) {
        match &self.cgroup {
            Some(cg) if !cg.is_empty() => {
                let cg = cg.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    cg.kill_until_empty(Duration::from_secs(30))
                })
                .await;
            }
            Some(_) => {}
            None => self.kill(),
        }
    }
}
