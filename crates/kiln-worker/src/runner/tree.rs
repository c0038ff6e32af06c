//! A frame's process tree: how it is started (in its own cgroup where the
//! host has them, under a frame supervisor when the runner has one), how it
//! is signalled and killed as a whole, and how its end is collected once
//! its main process has exited: the tree must be empty before the frame
//! counts as over.

use super::adopt::Meta;
use super::exec::Exec;
use super::logfile::now_ms;
use super::prepare::Prepared;
use super::proc::{cpu_ms, cstring, nul_terminated, wait4};
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
#[derive(Clone)]
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

/// What [`start`] made for a frame, undone on every way out but success:
/// a frame that did not start leaves no cgroup and no supervisor state.
struct Made {
    cgroup: Option<FrameCgroup>,
    state: Option<PathBuf>,
}

impl Made {
    fn keep(mut self) -> (Option<FrameCgroup>, Option<PathBuf>) {
        (self.cgroup.take(), self.state.take())
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        if let Some(cg) = &self.cgroup {
            // A supervisor that died between starting the frame and saying
            // so leaves the frame in it: the frame is reported as never
            // started, so it must not run on.
            cg.kill_until_empty(Duration::from_secs(5));
            cg.remove();
        }
        if let Some(state) = &self.state {
            let _ = std::fs::remove_dir_all(state);
        }
    }
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
    let mut made = Made {
        cgroup,
        state: None,
    };
    let Some(shim_exe) = &inner.cfg.shim else {
        let procs = made
            .cgroup
            .as_ref()
            .map_or(Ok(Vec::new()), FrameCgroup::open_procs)
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
        .map_err(|(step, e)| Failed::Step(step, e))?;
        return Ok(Tree::direct(pid, made.keep().0));
    };
    let state = inner.cfg.work_dir.join("shims").join(&name);
    let _ = std::fs::remove_dir_all(&state);
    made.state = Some(state.clone());
    let meta = Meta {
        log: std::path::absolute(&l.log_path).unwrap_or_else(|_| l.log_path.clone()),
        started_ms: now_ms().max(0) as u64,
        timeout_ms: l.timeout.map(|t| t.as_millis() as u64),
        memory_limit_kb: l.memory_limit_kb,
        scratch: p.scratch.clone(),
        gpus: p.gpus.clone(),
        outputs: l
            .outputs
            .iter()
            .map(|o| (o.clone(), p.cwd.join(o)))
            .collect(),
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
        cgroup: made
            .cgroup
            .as_ref()
            .map(FrameCgroup::to_args)
            .unwrap_or_default(),
        exec: std::iter::once(OsStr::from_bytes(exec.path.as_bytes()).to_owned())
            .chain(exec.argv().map(|a| OsStr::from_bytes(a).to_owned()))
            .collect(),
    };
    let argv: Vec<CString> = std::iter::once(OsString::from("kiln"))
        .chain(args.to_argv())
        .map(|a| cstring(&a))
        .collect();
    let argv_ptrs = nul_terminated(&argv);
    let path = cstring(shim_exe.as_os_str());
    // The worker's USER and HOME, for a supervisor whose account (the
    // worker's) has no passwd entry: what the worker would have given.
    let shim_vars: Vec<CString> = std::iter::once(c"PATH=/usr/sbin:/usr/bin:/sbin:/bin".to_owned())
        .chain(["USER", "HOME"].into_iter().filter_map(|k| {
            let v = std::env::var_os(k)?;
            CString::new([k.as_bytes(), b"=", v.as_bytes()].concat()).ok()
        }))
        .collect();
    let shim_env = nul_terminated(&shim_vars);
    let (rd, wr) = pipe().map_err(|e| Failed::Other(format!("cannot make a pipe: {e}")))?;
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
        Failed::Other(format!(
            "cannot start the frame supervisor {}: {}: {e}",
            shim_exe.display(),
            step.name()
        ))
    })?;
    drop(wr);
    // One line; EOF without one: the supervisor died. A signal caught on
    // this thread (EINTR) is no end: the frame may be running.
    let mut line = Vec::new();
    let mut pipe = std::fs::File::from(rd);
    let mut byte = [0u8];
    while !line.ends_with(b"\n") {
        match pipe.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            _ => break,
        }
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
            let status = wait4(shim_pid, 0).ok().flatten().map_or(0, |(s, _)| s);
            return Err(match other {
                Some(Err(f)) => f,
                _ => Failed::Other(format!(
                    "the frame supervisor {} failed before starting the frame (wait status {status})",
                    shim_exe.display()
                )),
            });
        }
    };
    let (cgroup, shim) = made.keep();
    Ok(Tree {
        pid: shim_pid,
        pgid,
        cgroup,
        shim,
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
    /// The frame whose main process is `pid`, waited for directly (by the
    /// runner without supervisors, or by the supervisor itself).
    pub(super) fn direct(pid: i32, cgroup: Option<FrameCgroup>) -> Tree {
        Tree {
            pid,
            pgid: pid,
            cgroup,
            shim: None,
        }
    }

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

    /// [`Tree::kill`] (else [`Tree::term`]) from the runtime. A cgroup's
    /// are file IO and, with the v1 freezer, a wait of up to 500 ms for
    /// the freeze: they run on a pool thread, since the worker's runtime is
    /// one thread that must keep heartbeating and serving other frames.
    pub(super) async fn signal(&self, kill: bool) {
        let send = move |t: &Tree| if kill { t.kill() } else { t.term() };
        if self.cgroup.is_none() {
            return send(self);
        }
        let tree = self.clone();
        let _ = tokio::task::spawn_blocking(move || send(&tree)).await;
    }

    /// Once `pid` has exited (and is not reaped yet): reaps it, makes sure
    /// nothing of the frame is left running and says how it ended.
    pub(super) async fn finish(&self) -> End {
        if self.shim.is_none() && self.cgroup.is_none() {
            // The main process is a zombie, so the group id is still ours:
            // no other group can have it yet. Take its children down with it.
            self.kill();
        }
        let (status, ru) = reap(self.pid).await;
        let tree = self.clone();
        let (exit, oom_kills) = tokio::task::spawn_blocking(move || tree.clean_up())
            .await
            .unwrap_or((None, 0));
        if self.shim.is_some() {
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
        End {
            status,
            max_rss_kb: ru.map_or(0, |r| r.ru_maxrss.max(0) as u64),
            cpu_ms: ru.as_ref().map_or(0, cpu_ms),
            oom_kills,
            lease_expired: false,
            supervisor_died: false,
        }
    }

    /// After the waited-for process is reaped: the supervisor's report, if
    /// it had one; what is left of the frame killed; its cgroup (OOM kills
    /// counted first) and the supervisor's state removed. Blocking: a kill
    /// until empty, a busy cgroup's removal retried.
    fn clean_up(&self) -> (Option<ShimExit>, u64) {
        let exit = self.shim.as_deref().and_then(ShimExit::read);
        let supervisor_died = self.shim.is_some() && exit.is_none();
        if supervisor_died {
            tracing::warn!(
                pid = self.pid,
                "a frame supervisor died without reporting; killing what is left of its frame"
            );
        }
        if supervisor_died || (self.shim.is_none() && self.cgroup.is_some()) {
            self.empty();
        }
        let oom_kills = match (&self.shim, &self.cgroup) {
            (None, Some(cg)) => cg.oom_kills(),
            _ => 0,
        };
        if let Some(cg) = &self.cgroup {
            cg.remove();
        }
        if let Some(state) = &self.shim {
            let _ = std::fs::remove_dir_all(state);
        }
        (exit, oom_kills)
    }

    /// Kills the tree until it is empty.
    fn empty(&self) {
        match &self.cgroup {
            Some(cg) => {
                cg.kill_until_empty(Duration::from_secs(30));
            }
            None => self.kill(),
        }
    }
}
