//! Runs frames as real processes on this host: one cgroup per frame where
//! the host allows it (else one process group), output straight into a
//! local log file, the job's user when the worker is root, timeouts and
//! kills that take the whole tree down, a kernel memory cap a little above
//! the reservation, and the frame's memory and CPU sampled from `/proc`
//! while it runs, summed over its cgroup (else its group); a frame past its
//! memory reservation is killed like a timed-out one. With a supervisor (`RunnerConfig::shim`)
//! each frame runs under its own small process that outlives the worker
//! and enforces the lease (see `shim`).
//!
//! Threads and tasks, kept few because the daemon must stay small:
//! - one long-lived spawner thread prepares and starts every frame (see
//!   the `spawn` module for why not `std::process`). Linux's parent-death
//!   signal, which kills frames when the worker is SIGKILLed, fires when the
//!   *thread* that created them exits, so starting frames from tokio's
//!   blocking pool, whose threads retire when idle, would kill healthy
//!   frames. The thread lives as long as the runner or any of its frames.
//!   Only a frame's main process gets that signal: its own children are
//!   orphaned if the worker dies without [`Runner::kill_all`]. Hence the
//!   supervisors (`RunnerConfig::shim`): they have no parent-death signal,
//!   are the frames' parents, and kill a frame's whole tree when the
//!   worker's lease runs out; the worker's death costs them nothing.
//! - one async task per running frame waits on a pidfd (no thread), handles
//!   the timeout and kills, reaps with `wait4` and reports. What may block
//!   there (a cgroup's kill, which on the v1 freezer waits for the freeze;
//!   emptying and removing it, retried while busy) goes to tokio's blocking
//!   pool: the worker's runtime is one thread, which also heartbeats.
//! - one async task samples `/proc` once a second while any frame runs.

mod account;
mod adopt;
mod exec;
pub mod guard;
mod logfile;
mod prepare;
mod proc;
mod shim;
mod spawn;
mod start;
mod supervise;
#[cfg(test)]
mod tests;
mod tree;

pub use shim::{boot_ms, main as shim_main, write_lease};

use crate::cgroup::Cgroups;
use crate::users;
use kiln_core::model::{AttemptId, Command};
use prepare::Identity;
use start::{run_job, spawner_loop};
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use supervise::sample_loop;
use tokio::runtime::Handle;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Notify;

/// How long a frame gets between SIGTERM and SIGKILL, unless configured.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Scratch root; per-frame scratch directories go under `frames/` in it.
    pub work_dir: PathBuf,
    /// Run frames as their job's user (the worker must be root).
    pub switch_user: bool,
    /// Whether a frame may run as uid 0.
    pub allow_root: bool,
    /// This host's name, for logs and messages.
    pub host_name: String,
    /// SIGTERM → SIGKILL delay when a frame times out or is killed.
    pub kill_grace: Duration,
    /// Run each frame in its own cgroup where the host allows it.
    pub cgroups: bool,
    /// The `kiln` binary, to run each frame under a supervisor process
    /// (`kiln frame-shim`) that outlives the worker; `None`: frames are the
    /// worker's own children and die with it.
    pub shim: Option<PathBuf>,
    /// The lease the supervisors enforce (see [`write_lease`]).
    pub lease_file: Option<PathBuf>,
    /// Below this much available memory on the host, the frame furthest
    /// over its reservation is killed (see [`guard`]); 0: never.
    pub min_available_kb: u64,
}

impl RunnerConfig {
    /// Switches users exactly when the worker runs as root; never allows
    /// frames to run as root.
    pub fn new(work_dir: impl Into<PathBuf>, host_name: impl Into<String>) -> Self {
        RunnerConfig {
            work_dir: work_dir.into(),
            switch_user: unsafe { libc::geteuid() } == 0,
            allow_root: false,
            host_name: host_name.into(),
            kill_grace: DEFAULT_KILL_GRACE,
            cgroups: true,
            shim: None,
            lease_file: None,
            min_available_kb: 0,
        }
    }
}

/// One frame to run.
#[derive(Debug, Clone)]
pub struct Launch {
    pub attempt: AttemptId,
    pub job_name: String,
    /// E.g. `render/12`.
    pub frame_label: String,
    pub command: Command,
    /// The frame's complete environment from the server (job and layer env
    /// plus the `KILN_*` variables); applied over a minimal base.
    pub env: Vec<(String, String)>,
    /// `None`: run in `<work_dir>/frames/<attempt>`, made for the frame and
    /// removed after it.
    pub cwd: Option<PathBuf>,
    /// The job's user.
    pub user: String,
    pub timeout: Option<Duration>,
    /// GPUs granted; the runner picks which.
    pub gpus: u32,
    /// The frame's memory reservation: when its process group's resident
    /// memory, sampled once a second, goes past it, the frame is killed and
    /// ends as [`Exit::OutOfMemory`]. `None`: no limit.
    pub memory_limit_kb: Option<u64>,
    /// The local log file to create.
    pub log_path: PathBuf,
    /// Outputs to check after a clean exit (see `kiln_preview`);
    /// relative paths are in the frame's directory.
    pub outputs: Vec<String>,
}

/// Points kept of a frame's memory and CPU over time (sampled once a
/// second, thinned as it runs on): a few KB per running frame.
pub(super) const USAGE_POINTS: usize = 120;

/// How a frame ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Exited(i32),
    Signaled(i32),
    TimedOut,
    Killed(String),
    FailedToStart(String),
    /// Could not start for a reason of the job's own, the same on any host
    /// (its user unknown, its working directory missing, its program not
    /// found or not executable): the frame's failure, not the host's.
    JobCannotStart(String),
    /// Killed for using more memory than it reserved: `rss_kb` is the
    /// sample that went past the limit.
    OutOfMemory {
        rss_kb: u64,
    },
}

impl Exit {
    pub fn succeeded(&self) -> bool {
        *self == Exit::Exited(0)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub attempt: AttemptId,
    pub exit: Exit,
    /// Milliseconds since the Unix epoch.
    pub started_at: i64,
    pub ended_at: i64,
    pub max_rss_kb: u64,
    pub cpu_ms: u64,
    /// The declared outputs as found, after a clean exit.
    pub outputs: Vec<kiln_core::link::FoundOutput>,
    /// Memory and CPU over time, sampled once a second and thinned.
    pub usage: Vec<kiln_core::series::UsageSample>,
}

/// What a running frame's tree (its cgroup, else its process group) uses,
/// as last sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub rss_kb: u64,
    pub max_rss_kb: u64,
    pub cpu_ms: u64,
}

/// Runs frames; cheap to clone, every clone drives the same frames.
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: RunnerConfig,
    /// The memory guard's threshold (KiB; 0: off), from the config and
    /// changeable while frames run.
    min_available_kb: AtomicU64,
    /// Where frames' cgroups are made; `None`: process groups only.
    cgroups: Option<Cgroups>,
    done: UnboundedSender<Finished>,
    state: Mutex<State>,
    /// `None` if the spawner thread could not be started; frames are then
    /// started from the caller's thread (see the module doc for the risk).
    spawner: Option<mpsc::Sender<Job>>,
    /// The worker's own account, for the environment of frames run without
    /// switching users.
    own_user: OnceLock<Option<users::User>>,
    dev_null: OnceLock<Option<OwnedFd>>,
    base_path: OsString,
    lang: Option<OsString>,
}

struct State {
    frames: HashMap<AttemptId, Slot>,
    gpu_busy: Vec<bool>,
    sampling: bool,
    /// The frame the memory guard is killing; no other until it is gone.
    guard_kill: Option<AttemptId>,
    /// Accounts resolved lately, by name (by a frame's supervisor, where
    /// frames have one): a lookup reads /etc/passwd and /etc/group (or asks
    /// LDAP), which is slow next to a frame start.
    users: HashMap<String, (std::time::Instant, Identity)>,
}

/// A frame from `launch` until its `Finished` is sent.
struct Slot {
    log_path: PathBuf,
    /// The frame's process group (its main process's pid); 0 until spawned.
    pgid: i32,
    /// Its cgroup's member list, where it has one: what it uses is summed
    /// over the whole tree, processes that left its group included.
    members: Option<PathBuf>,
    usage: Usage,
    /// `usage` over time.
    series: kiln_core::series::Series,
    /// Set once the runner decided to end the frame; it then ends this way
    /// whatever its exit status.
    stop: Option<Exit>,
    /// The exit is decided; kills no longer apply.
    finishing: bool,
    /// Stop with SIGKILL at once, no grace (the host is short of memory).
    kill_now: bool,
    wake: Arc<Notify>,
    gpus: Vec<u32>,
    memory_limit_kb: Option<u64>,
}

struct Job {
    launch: Launch,
    rt: Handle,
    inner: Arc<Inner>,
}

impl Runner {
    /// `gpus_total`: GPUs of this host; frames get indices in `0..gpus_total`.
    /// `done` receives one [`Finished`] per launched frame.
    pub fn new(mut cfg: RunnerConfig, gpus_total: u32, done: UnboundedSender<Finished>) -> Runner {
        // Frame supervisors start in `/`: they are told absolute paths.
        if let Ok(p) = std::path::absolute(&cfg.work_dir) {
            cfg.work_dir = p;
        }
        cfg.lease_file = cfg.lease_file.and_then(|p| std::path::absolute(p).ok());
        let (tx, rx) = mpsc::channel::<Job>();
        let spawner = std::thread::Builder::new()
            .name("kiln-spawner".into())
            .stack_size(256 * 1024)
            .spawn(move || spawner_loop(rx))
            .map_err(|e| {
                tracing::warn!("cannot start the spawner thread, starting frames inline: {e}")
            })
            .ok()
            .map(|_| tx);
        let base_path =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        // The work dir first: the cgroups are named after its real path.
        let _ = std::fs::create_dir_all(&cfg.work_dir);
        let cgroups = cfg
            .cgroups
            .then(|| Cgroups::detect(&cfg.host_name, &cfg.work_dir));
        let cgroups = match cgroups {
            Some(Ok(c)) => {
                tracing::info!("{}", c.describe());
                Some(c)
            }
            Some(Err(why)) => {
                tracing::warn!(
                    "no cgroups for frames ({why}): frames run in process groups only, and a \
                     process that leaves its frame's group survives the frame's kill"
                );
                None
            }
            None => {
                tracing::info!(
                    "frames run in process groups only (cgroups turned off): a process \
                     that leaves its frame's group survives the frame's kill"
                );
                None
            }
        };
        Runner {
            inner: Arc::new(Inner {
                min_available_kb: AtomicU64::new(cfg.min_available_kb),
                cfg,
                cgroups,
                done,
                state: Mutex::new(State {
                    frames: HashMap::new(),
                    gpu_busy: vec![false; gpus_total as usize],
                    sampling: false,
                    guard_kill: None,
                    users: HashMap::new(),
                }),
                spawner,
                own_user: OnceLock::new(),
                dev_null: OnceLock::new(),
                base_path,
                lang: std::env::var_os("LANG"),
            }),
        }
    }

    /// Starts a frame; returns at once. Must be called inside a tokio runtime,
    /// which then runs the frame's supervision. Every outcome, failure to
    /// start included, arrives as a [`Finished`].
    pub fn launch(&self, l: Launch) {
        let rt = Handle::current();
        {
            let mut st = self.inner.lock();
            if st.frames.contains_key(&l.attempt) {
                tracing::warn!(attempt = %l.attempt, "attempt is already running; launch ignored");
                return;
            }
            st.frames.insert(
                l.attempt,
                Slot {
                    log_path: l.log_path.clone(),
                    pgid: 0,
                    members: None,
                    usage: Usage::default(),
                    series: kiln_core::series::Series::new(USAGE_POINTS),
                    stop: None,
                    finishing: false,
                    kill_now: false,
                    wake: Arc::new(Notify::new()),
                    gpus: Vec::new(),
                    memory_limit_kb: l.memory_limit_kb,
                },
            );
            if !st.sampling {
                st.sampling = true;
                rt.spawn(sample_loop(self.inner.clone()));
            }
        }
        let job = Job {
            launch: l,
            rt,
            inner: self.inner.clone(),
        };
        let job = match &self.inner.spawner {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        run_job(job);
    }

    /// Ends a frame: SIGTERM to its group, SIGKILL after the grace period.
    /// It is reported as [`Exit::Killed`] with `reason`. False if the frame
    /// is not running (or has already ended and is being reported).
    pub fn kill(&self, attempt: AttemptId, reason: &str) -> bool {
        let mut st = self.inner.lock();
        match st.frames.get_mut(&attempt) {
            Some(slot) if !slot.finishing => {
                slot.request_stop(Exit::Killed(reason.to_owned()));
                true
            }
            _ => false,
        }
    }

    pub fn kill_all(&self, reason: &str) {
        let mut st = self.inner.lock();
        for slot in st.frames.values_mut().filter(|s| !s.finishing) {
            slot.request_stop(Exit::Killed(reason.to_owned()));
        }
    }

    /// Changes the memory guard's threshold (KiB of available memory; 0:
    /// off) for the samples to come.
    pub fn set_min_available_kb(&self, kb: u64) {
        self.inner.min_available_kb.store(kb, Ordering::Relaxed);
    }

    /// Running frames and their latest sampled usage.
    pub fn running(&self) -> Vec<(AttemptId, Usage)> {
        let st = self.inner.lock();
        st.frames.iter().map(|(a, s)| (*a, s.usage)).collect()
    }

    pub fn log_path(&self, attempt: AttemptId) -> Option<PathBuf> {
        self.inner
            .lock()
            .frames
            .get(&attempt)
            .map(|s| s.log_path.clone())
    }

    /// True from `launch` until the frame's [`Finished`] is sent.
    pub fn is_running(&self, attempt: AttemptId) -> bool {
        self.inner.lock().frames.contains_key(&attempt)
    }
}

impl Slot {
    fn request_stop(&mut self, exit: Exit) {
        if self.stop.is_none() {
            self.stop = Some(exit);
        }
        // A permit is kept if the frame's task is not waiting yet (or the
        // frame is still being spawned), so the request is never lost.
        self.wake.notify_one();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not stop frames from being reported.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes the frame, frees its GPUs and reports it.
    fn report(&self, f: Finished) {
        {
            let mut st = self.lock();
            if st.guard_kill == Some(f.attempt) {
                st.guard_kill = None;
            }
            if let Some(slot) = st.frames.remove(&f.attempt) {
                for g in slot.gpus {
                    if let Some(b) = st.gpu_busy.get_mut(g as usize) {
                        *b = false;
                    }
                }
            }
        }
        tracing::debug!(attempt = %f.attempt, exit = ?f.exit, "frame finished");
        // The receiver is gone only when the worker is shutting down.
        let _ = self.done.send(f);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(c) = &self.cgroups {
            c.remove_empty();
        }
    }
}

// The worker shares one runner between its tasks.
const _: () = {
    fn is<T: Send + Sync>() {}
    #[allow(dead_code)]
    fn check() {
        is::<Runner>();
    }
};
