//! Watching frames once they run: the per-frame task that enforces the
//! timeout and kills (SIGTERM, then SIGKILL after the grace period), waits
//! for the exit on a pidfd, reaps with `wait4` and reports; and the single
//! task that samples every running frame's memory and CPU from `/proc`,
//! and asks for the kill of a frame past its memory reservation.

use super::guard::{self, Candidate};
use super::logfile::{footer, ms};
use super::proc::wait4;
use super::tree::Tree;
use super::{Exit, Finished, Inner, State, Usage};
use crate::procfs;
use kiln_core::model::AttemptId;
use std::fs::File;
use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::Notify;
use tokio::time::Instant;

const SAMPLE_EVERY: Duration = Duration::from_secs(1);

const LEASE_EXPIRED: &str =
    "the worker's lease ran out (the daemon was stopped, killed or cut off from the server)";

/// A spawned frame, handed to its task.
pub(super) struct Running {
    pub(super) attempt: AttemptId,
    pub(super) tree: Tree,
    pub(super) pidfd: Option<OwnedFd>,
    pub(super) wake: Arc<Notify>,
    pub(super) log: File,
    pub(super) scratch: Option<PathBuf>,
    pub(super) started: SystemTime,
    pub(super) spawned_at: Instant,
    pub(super) timeout: Option<Duration>,
    pub(super) memory_limit_kb: Option<u64>,
    /// Declared outputs: as named, and where they are on this host.
    pub(super) outputs: Vec<(String, PathBuf)>,
    /// Whom the outputs are read as (the frame's user, where the worker
    /// switches to it); `None`: the worker itself, which ran the frame.
    pub(super) reader: Option<super::account::Ids>,
}

/// Frames whose outputs are read at once on a host: decoding is CPU and
/// memory the frames were promised.
static CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
/// The longest a frame's outputs are looked at (a hung network mount must
/// not keep its frame running for ever).
const CHECK_FOR: Duration = Duration::from_secs(120);

/// The outputs as the frame's user would find them, a couple of frames
/// at a time, given up on (as unreadable) past [`CHECK_FOR`].
async fn check_outputs(
    list: Vec<(String, PathBuf)>,
    reader: Option<super::account::Ids>,
) -> Vec<kiln_core::link::FoundOutput> {
    let paths: Vec<String> = list.iter().map(|(p, _)| p.clone()).collect();
    let checked = tokio::time::timeout(CHECK_FOR, async {
        let _turn = CHECKS.acquire().await;
        tokio::task::spawn_blocking(move || kiln_preview::check_all_as(list, reader)).await
    })
    .await;
    let why = format!(
        "not read within {} s (a slow or hung file system?)",
        CHECK_FOR.as_secs()
    );
    match checked {
        Ok(Ok(found)) => found,
        _ => paths
            .iter()
            .map(|p| {
                let check = kiln_core::output::OutputCheck::new(p);
                kiln_core::link::FoundOutput::unreadable(check, why.clone())
            })
            .collect(),
    }
}

enum Phase {
    Running,
    /// SIGTERM sent; SIGKILL at this instant.
    Terminating(Instant),
    Killing,
}

pub(super) async fn supervise(inner: Arc<Inner>, r: Running) {
    let pid = r.tree.pid;
    let deadline = r.timeout.map(|t| r.spawned_at + t);
    let exited = wait_exited(pid, r.pidfd);
    tokio::pin!(exited);
    let mut phase = Phase::Running;
    loop {
        let running = matches!(phase, Phase::Running);
        let timeout_at = if running { deadline } else { None };
        let kill_at = match phase {
            Phase::Terminating(at) => Some(at),
            _ => None,
        };
        tokio::select! {
            biased;
            _ = &mut exited => break,
            _ = r.wake.notified(), if running => {
                let now = inner.lock().frames.get(&r.attempt).is_some_and(|s| s.kill_now);
                r.tree.signal(now).await;
                phase = if now {
                    Phase::Killing
                } else {
                    Phase::Terminating(Instant::now() + inner.cfg.kill_grace)
                };
            }
            _ = sleep_opt(timeout_at) => {
                if let Some(s) = inner.lock().frames.get_mut(&r.attempt) {
                    s.stop.get_or_insert(Exit::TimedOut);
                }
                r.tree.signal(false).await;
                phase = Phase::Terminating(Instant::now() + inner.cfg.kill_grace);
            }
            _ = sleep_opt(kill_at) => {
                r.tree.signal(true).await;
                phase = Phase::Killing;
            }
        }
    }
    // Nothing of the frame runs on once its main process is gone.
    let end = r.tree.finish().await;
    let ended = SystemTime::now();
    let (stop, sampled, series) = {
        let mut st = inner.lock();
        match st.frames.get_mut(&r.attempt) {
            Some(s) => {
                s.finishing = true;
                (s.stop.clone(), s.usage, s.series.points())
            }
            None => (None, Usage::default(), Vec::new()),
        }
    };
    let exit = stop.unwrap_or_else(|| match end.status {
        // The kernel killed a process of the frame at its memory cap.
        _ if end.oom_kills > 0 => Exit::OutOfMemory {
            rss_kb: end.max_rss_kb.max(sampled.max_rss_kb),
        },
        _ if end.lease_expired => Exit::Killed(LEASE_EXPIRED.into()),
        _ if end.supervisor_died => Exit::Killed("its supervisor process was killed".into()),
        Some(st) if libc::WIFEXITED(st) => Exit::Exited(libc::WEXITSTATUS(st)),
        Some(st) if libc::WIFSIGNALED(st) => Exit::Signaled(libc::WTERMSIG(st)),
        _ => {
            tracing::error!(attempt = %r.attempt, pid, "frame's exit status was lost (reaped elsewhere?)");
            Exit::Exited(-1)
        }
    });
    // Looked at before its scratch directory goes, and only after a clean
    // exit: a frame that failed is retried whatever it left.
    let outputs = if exit == Exit::Exited(0) && !r.outputs.is_empty() {
        check_outputs(r.outputs, r.reader).await
    } else {
        Vec::new()
    };
    let finished = Finished {
        attempt: r.attempt,
        exit,
        started_at: ms(r.started),
        ended_at: ms(ended),
        max_rss_kb: end.max_rss_kb.max(sampled.max_rss_kb),
        cpu_ms: end.cpu_ms.max(sampled.cpu_ms),
        outputs,
        usage: series,
    };
    let mut log = r.log;
    if let Err(e) = log.write_all(footer(&finished, r.timeout, r.memory_limit_kb).as_bytes()) {
        tracing::warn!(attempt = %r.attempt, "cannot write log footer: {e}");
    }
    drop(log);
    if let Some(dir) = r.scratch {
        // Most frames leave their scratch dir empty or nearly so; only a
        // full tree is worth a trip to the blocking pool.
        match std::fs::remove_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => {
                let _ = tokio::task::spawn_blocking(move || remove_scratch(&dir)).await;
            }
        }
    }
    inner.report(finished);
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves once process `pid` has exited, without reaping it.
async fn wait_exited(pid: i32, pidfd: Option<OwnedFd>) {
    if let Some(fd) = pidfd {
        // SAFETY: the AsyncFd owns the pidfd and closes it on drop.
        match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
            Ok(afd) => match afd.readable().await {
                Ok(_) => return,
                Err(e) => tracing::debug!(pid, "pidfd wait failed, waiting on a thread: {e}"),
            },
            Err(e) => tracing::debug!(pid, "cannot poll a pidfd, waiting on a thread: {e}"),
        }
    }
    let _ = tokio::task::spawn_blocking(move || loop {
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    })
    .await;
}

/// Reaps an exited `pid`: its wait status and resource usage (children it
/// reaped included).
pub(super) async fn reap(pid: i32) -> (Option<libc::c_int>, Option<libc::rusage>) {
    let got = match wait4(pid, libc::WNOHANG) {
        // Not a zombie yet after all: wait for it on a pool thread.
        Ok(None) => tokio::task::spawn_blocking(move || wait4(pid, 0))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e))),
        got => got,
    };
    match got {
        Ok(Some((status, ru))) => (Some(status), Some(ru)),
        _ => (None, None),
    }
}

pub(super) fn remove_scratch(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("cannot remove scratch directory {}: {e}", dir.display());
        }
    }
}

/// Feeds the sampled usage of every running frame, once a second, from a
/// single `/proc` scan; ends when no frame runs.
pub(super) async fn sample_loop(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let pgids: Vec<(i32, Option<PathBuf>)> = {
            let mut st = inner.lock();
            if st.frames.is_empty() {
                st.sampling = false;
                return;
            }
            st.frames
                .values()
                .filter(|s| s.pgid > 0 && !s.finishing)
                .map(|s| (s.pgid, s.members.clone()))
                .collect()
        };
        if pgids.is_empty() {
            continue;
        }
        let guarded = inner.min_available_kb.load(Ordering::Relaxed) > 0;
        let Ok((groups, mem)) = tokio::task::spawn_blocking(move || {
            let mem = guarded.then(procfs::meminfo).and_then(Result::ok);
            (procfs::scan_frames(&pgids), mem)
        })
        .await
        else {
            continue;
        };
        let now = super::logfile::now_ms();
        let mut st = inner.lock();
        for s in st.frames.values_mut().filter(|s| !s.finishing) {
            if let Some(g) = groups.get(&s.pgid) {
                s.usage.rss_kb = g.rss_kb;
                s.usage.max_rss_kb = s.usage.max_rss_kb.max(g.rss_kb);
                // Reaped children leave the sum; never report CPU going back.
                s.usage.cpu_ms = s.usage.cpu_ms.max(g.cpu_ms);
                s.series.push(kiln_core::series::UsageSample {
                    t: now,
                    rss_kb: g.rss_kb,
                    cpu_ms: s.usage.cpu_ms,
                });
                // The server reserved this much for it on this host; more
                // would take memory other frames were promised. The same
                // path as a kill: SIGTERM, then SIGKILL after the grace.
                if s.memory_limit_kb.is_some_and(|m| g.rss_kb > m) {
                    s.request_stop(Exit::OutOfMemory { rss_kb: g.rss_kb });
                }
            }
        }
        if let Some(mem) = mem.filter(|_| st.guard_kill.is_none()) {
            guard_host(&inner, &mut st, mem.available_kb);
        }
    }
}

/// The host is short of memory: kill the frame furthest over its
/// reservation, at once (no grace), and no other until it is gone.
fn guard_host(inner: &Inner, st: &mut State, available_kb: u64) {
    let frames: Vec<Candidate> = st
        .frames
        .iter()
        .filter(|(_, s)| !s.finishing && s.stop.is_none() && s.pgid > 0)
        .map(|(a, s)| Candidate {
            attempt: *a,
            rss_kb: s.usage.rss_kb,
            reserved_kb: s.memory_limit_kb,
        })
        .collect();
    let min = inner.min_available_kb.load(Ordering::Relaxed);
    let Some(attempt) = guard::victim(available_kb, min, &frames) else {
        return;
    };
    let Some(s) = st.frames.get_mut(&attempt) else {
        return;
    };
    tracing::warn!(
        %attempt,
        "the host has {} MiB of memory available, under {} MiB: killing the frame \
         furthest over its reservation ({} MiB used, {} MiB reserved)",
        available_kb >> 10,
        min >> 10,
        s.usage.rss_kb >> 10,
        s.memory_limit_kb.unwrap_or(0) >> 10
    );
    s.kill_now = true;
    s.request_stop(Exit::OutOfMemory {
        rss_kb: s.usage.rss_kb,
    });
    st.guard_kill = Some(attempt);
}
