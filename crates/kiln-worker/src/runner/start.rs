//! Starting one frame, on the spawner thread: open its log, prepare it,
//! spawn it and hand it to its supervising task, or report at once why it
//! could not run. A panic here is caught in `run_job`: the spawner thread
//! must outlive its frames.

use super::account;
use super::exec::{build_exec, spawn_failure};
use super::logfile::{footer, header, ms, now_ms};
use super::prepare::{open_log, prepare, stdio_source};
use super::proc::pidfd_open;
use super::supervise::{remove_scratch, supervise, Running};
use super::{spawn, tree, Exit, Finished, Inner, Job, Launch};
use kiln_core::model::Command;
use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::SystemTime;
use tokio::time::Instant;

pub(super) fn spawner_loop(rx: mpsc::Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        run_job(job);
    }
}

/// Prepares and starts one frame, and hands it to a task on the runtime.
pub(super) fn run_job(job: Job) {
    let attempt = job.launch.attempt;
    let inner = job.inner.clone();
    // A bug here must not take the spawner thread down: frames it started
    // would die with it (parent-death signal).
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| start(job))).is_err() {
        let unstarted = inner
            .lock()
            .frames
            .get(&attempt)
            .is_some_and(|s| s.pgid == 0);
        if unstarted {
            let now = now_ms();
            inner.report(Finished {
                attempt,
                exit: Exit::FailedToStart("internal error in the frame runner".into()),
                started_at: now,
                ended_at: now,
                max_rss_kb: 0,
                cpu_ms: 0,
                outputs: Vec::new(),
                usage: Vec::new(),
            });
        }
    }
}

fn start(job: Job) {
    let Job {
        launch: l,
        rt,
        inner,
    } = job;
    let started = SystemTime::now();
    let mut log = match open_log(&l.log_path) {
        Ok(f) => Some(f),
        Err(e) => {
            let reason = format!("cannot create log {}: {e}", l.log_path.display());
            return end_unstarted(&inner, &l, None, None, Exit::FailedToStart(reason), started);
        }
    };
    let prepared = prepare(&inner, &l);
    if let Some(f) = log.as_mut() {
        let header = header(&inner.cfg, &l, prepared.as_ref().ok(), started);
        if let Err(e) = f.write_all(header.as_bytes()) {
            tracing::warn!(attempt = %l.attempt, "cannot write log header: {e}");
        }
    }
    let p = match prepared {
        Ok(p) => p,
        Err((reason, scratch)) => {
            let exit = if own_fault_before_spawn(&inner, &l) {
                Exit::JobCannotStart(reason)
            } else {
                Exit::FailedToStart(reason)
            };
            return end_unstarted(&inner, &l, log, scratch, exit, started);
        }
    };
    let (stop, wake) = {
        let st = inner.lock();
        match st.frames.get(&l.attempt) {
            Some(s) => (s.stop.clone(), s.wake.clone()),
            None => return,
        }
    };
    if let Some(exit) = stop {
        return end_unstarted(&inner, &l, log, p.scratch, exit, started);
    }
    let log_file = log.expect("log opened above");
    // Errors carry whether they are the job's own (see own_fault_at_spawn).
    let host_fault = |e: String| (e, false);
    // What build_exec refuses is the launch's own content: an empty
    // command, a NUL byte, a program in no directory of PATH.
    let spawned = build_exec(&inner, &l, &p)
        .map_err(|e| (e, true))
        .and_then(|exec| {
            let stdin = inner.dev_null().map_err(host_fault)?;
            let low_copy;
            let stdout = if log_file.as_raw_fd() > 2 {
                log_file.as_raw_fd()
            } else {
                low_copy = stdio_source(&log_file)
                    .map_err(|e| (format!("cannot share the log: {e}"), false))?;
                low_copy.as_raw_fd()
            };
            let io = tree::Stdio { stdin, stdout };
            tree::start(&inner, &l, &p, &exec, io).map_err(|f| match f {
                tree::Failed::Step(step, e) => {
                    let host = &inner.cfg.host_name;
                    if let Some(failed) = account::failure(step, &e, &l.user, host) {
                        return failed;
                    }
                    let own = own_fault_at_spawn(&l.command, step, &e);
                    (spawn_failure(&l.command, &exec, step, e), own)
                }
                tree::Failed::Other(reason) => (reason, false),
            })
        });
    let started = SystemTime::now();
    let tree = match spawned {
        Ok(tree) => tree,
        Err((reason, own)) => {
            let exit = if own {
                Exit::JobCannotStart(reason)
            } else {
                Exit::FailedToStart(reason)
            };
            return end_unstarted(&inner, &l, Some(log_file), p.scratch, exit, started);
        }
    };
    // Whom the frame runs as: its outputs are read as that user.
    let mut reader = p.identity.switch.clone();
    if let (Some(user), Some(state)) = (&p.identity.switch_to, &tree.shim) {
        reader = inner.remember_account(user, state);
    }
    let spawned_at = Instant::now();
    // The child is unreaped, so its pid cannot be reused before the open.
    let pidfd = pidfd_open(tree.pid);
    if let Some(s) = inner.lock().frames.get_mut(&l.attempt) {
        s.pgid = tree.pgid;
        s.members = tree.cgroup.as_ref().map(|c| c.members_file());
    }
    tracing::debug!(attempt = %l.attempt, pid = tree.pgid, "frame started");
    let run = Running {
        attempt: l.attempt,
        tree,
        pidfd,
        wake,
        log: log_file,
        scratch: p.scratch,
        started,
        spawned_at,
        timeout: l.timeout,
        memory_limit_kb: l.memory_limit_kb,
        outputs: l
            .outputs
            .iter()
            .map(|o| (o.clone(), p.cwd.join(o)))
            .collect(),
        reader,
    };
    rt.spawn(supervise(inner, run));
}

/// Whether a frame that could not be prepared failed for its job's own
/// reason, the same on any host: a user no host knows, or a working
/// directory that does not exist. Checked again here, as facts, rather
/// than read from the message; a lookup that failed (NSS down) or a
/// scratch directory that could not be made is the host's. (A supervised
/// frame's user is looked up by its supervisor, see `account`; here only a
/// name no account can have.)
fn own_fault_before_spawn(inner: &Inner, l: &Launch) -> bool {
    let unknown_user = inner.cfg.switch_user
        && if inner.cfg.shim.is_some() {
            l.user.contains('\0')
        } else {
            matches!(crate::users::lookup(&l.user), Ok(None))
        };
    let missing_cwd = l.cwd.as_ref().is_some_and(|d| !d.is_dir());
    unknown_user || missing_cwd
}

/// Whether a failed spawn is the job's doing: its program not found or not
/// executable (an argv command; `/bin/sh` missing is the host's), or its
/// working directory missing or closed to its user.
fn own_fault_at_spawn(command: &Command, step: spawn::Step, e: &std::io::Error) -> bool {
    let errno = e.raw_os_error().unwrap_or(0);
    match step {
        spawn::Step::Exec => {
            matches!(command, Command::Argv(_))
                && matches!(
                    errno,
                    libc::ENOENT | libc::EACCES | libc::ENOEXEC | libc::ENOTDIR | libc::ELOOP
                )
        }
        spawn::Step::Chdir => matches!(errno, libc::ENOENT | libc::ENOTDIR | libc::EACCES),
        _ => false,
    }
}

/// Reports a frame that never ran (or was killed before it could).
fn end_unstarted(
    inner: &Inner,
    l: &Launch,
    log: Option<File>,
    scratch: Option<PathBuf>,
    exit: Exit,
    started: SystemTime,
) {
    if let Some(s) = inner.lock().frames.get_mut(&l.attempt) {
        s.finishing = true;
    }
    let now = ms(SystemTime::now());
    let f = Finished {
        attempt: l.attempt,
        exit,
        started_at: ms(started).min(now),
        ended_at: now,
        max_rss_kb: 0,
        cpu_ms: 0,
        outputs: Vec::new(),
        usage: Vec::new(),
    };
    if let Some(mut log) = log {
        let _ = log.write_all(footer(&f, l.timeout, l.memory_limit_kb).as_bytes());
    }
    if let Some(dir) = scratch {
        remove_scratch(&dir);
    }
    inner.report(f);
}
