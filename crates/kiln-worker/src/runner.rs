//! Runs frames as real processes on this host: one process group per frame,
//! output straight into a local log file, the job's user when the worker is
//! root, timeouts and kills that take the whole group down, and the frame's
//! memory and CPU sampled from `/proc` while it runs.
//!
//! Threads and tasks, kept few because the daemon must stay small:
//! - one long-lived spawner thread prepares and starts every frame (see
//!   `spawn` below for why not `std::process`). Linux's parent-death signal,
//!   which kills frames when the worker is SIGKILLed, fires when the
//!   *thread* that created them exits, so starting frames from tokio's
//!   blocking pool, whose threads retire when idle, would kill healthy
//!   frames. The thread lives as long as the runner or any of its frames.
//!   Only a frame's main process gets that signal: its own children are
//!   orphaned if the worker dies without [`Runner::kill_all`].
//! - one async task per running frame waits on a pidfd (no thread), handles
//!   the timeout and kills, reaps with `wait4` and reports.
//! - one async task samples `/proc` once a second while any frame runs.

use crate::procfs;
use crate::users;
use kiln_core::model::{AttemptId, Command};
use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::runtime::Handle;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a frame gets between SIGTERM and SIGKILL, unless configured.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);

const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// How long a resolved account is trusted; unknown users are not cached, so
/// a user added to the host works at once.
const USER_CACHE_TTL: Duration = Duration::from_secs(60);

const ROOT_REFUSAL: &str =
    "refusing to run as root (uid 0): start the worker with --allow-root to allow it";

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
    /// The local log file to create.
    pub log_path: PathBuf,
}

/// How a frame ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Exited(i32),
    Signaled(i32),
    TimedOut,
    Killed(String),
    FailedToStart(String),
}

impl Exit {
    pub fn succeeded(&self) -> bool {
        *self == Exit::Exited(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub attempt: AttemptId,
    pub exit: Exit,
    /// Milliseconds since the Unix epoch.
    pub started_at: i64,
    pub ended_at: i64,
    pub max_rss_kb: u64,
    pub cpu_ms: u64,
}

/// What a running frame's process group uses, as last sampled.
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
    /// Accounts resolved lately, by name: a lookup reads /etc/passwd and
    /// /etc/group (or asks LDAP), which is slow next to a frame start.
    users: HashMap<String, (std::time::Instant, Identity)>,
}

/// A frame from `launch` until its `Finished` is sent.
struct Slot {
    log_path: PathBuf,
    /// The frame's process group (its main process's pid); 0 until spawned.
    pgid: i32,
    usage: Usage,
    /// Set once the runner decided to end the frame; it then ends this way
    /// whatever its exit status.
    stop: Option<Exit>,
    /// The exit is decided; kills no longer apply.
    finishing: bool,
    wake: Arc<Notify>,
    gpus: Vec<u32>,
}

struct Job {
    launch: Launch,
    rt: Handle,
    inner: Arc<Inner>,
}

impl Runner {
    /// `gpus_total`: GPUs of this host; frames get indices in `0..gpus_total`.
    /// `done` receives one [`Finished`] per launched frame.
    pub fn new(cfg: RunnerConfig, gpus_total: u32, done: UnboundedSender<Finished>) -> Runner {
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
        Runner {
            inner: Arc::new(Inner {
                cfg,
                done,
                state: Mutex::new(State {
                    frames: HashMap::new(),
                    gpu_busy: vec![false; gpus_total as usize],
                    sampling: false,
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
                    usage: Usage::default(),
                    stop: None,
                    finishing: false,
                    wake: Arc::new(Notify::new()),
                    gpus: Vec::new(),
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

    fn identity(&self, user: &str) -> Result<Identity, String> {
        let host = &self.cfg.host_name;
        if self.cfg.switch_user {
            let now = std::time::Instant::now();
            if let Some((at, id)) = self.lock().users.get(user) {
                if now.duration_since(*at) < USER_CACHE_TTL {
                    return Ok(id.clone());
                }
            }
            let u = match users::lookup(user) {
                Ok(Some(u)) => u,
                Ok(None) => return Err(format!("user {user:?} does not exist on host {host}")),
                Err(e) => return Err(format!("{e} (on host {host})")),
            };
            if u.uid == 0 && !self.cfg.allow_root {
                return Err(ROOT_REFUSAL.to_owned());
            }
            let groups = users::groups(&u).map_err(|e| e.to_string())?;
            let id = Identity {
                switch: Some((u.uid, u.gid, groups)),
                uid: u.uid,
                name: u.name,
                home: Some(u.home.into_os_string()),
                shell: Some(u.shell.into_os_string()),
            };
            let mut st = self.lock();
            st.users
                .retain(|_, (at, _)| now.duration_since(*at) < USER_CACHE_TTL);
            st.users.insert(user.to_owned(), (now, id.clone()));
            Ok(id)
        } else {
            let euid = unsafe { libc::geteuid() };
            if euid == 0 && !self.cfg.allow_root {
                return Err(ROOT_REFUSAL.to_owned());
            }
            let own = self
                .own_user
                .get_or_init(|| users::lookup_uid(euid).ok().flatten());
            Ok(match own {
                Some(u) => Identity {
                    switch: None,
                    uid: euid,
                    name: u.name.clone(),
                    home: Some(u.home.clone().into_os_string()),
                    shell: Some(u.shell.clone().into_os_string()),
                },
                // Containers often run under a uid with no passwd entry.
                None => Identity {
                    switch: None,
                    uid: euid,
                    name: std::env::var("USER").unwrap_or_else(|_| euid.to_string()),
                    home: std::env::var_os("HOME"),
                    shell: None,
                },
            })
        }
    }

    /// `/dev/null`, opened once, for frames' stdin.
    fn dev_null(&self) -> Result<RawFd, String> {
        let fd = self.dev_null.get_or_init(|| {
            let f = File::open("/dev/null").ok()?;
            stdio_source(&f).ok()
        });
        fd.as_ref()
            .map(|f| f.as_raw_fd())
            .ok_or_else(|| "cannot open /dev/null".to_owned())
    }

    fn take_gpus(&self, attempt: AttemptId, n: u32) -> Result<Vec<u32>, String> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut st = self.lock();
        let free: Vec<u32> = (0..st.gpu_busy.len() as u32)
            .filter(|&i| !st.gpu_busy[i as usize])
            .take(n as usize)
            .collect();
        if free.len() < n as usize {
            return Err(format!(
                "{n} GPUs granted but only {} of {} are free on host {}",
                free.len(),
                st.gpu_busy.len(),
                self.cfg.host_name
            ));
        }
        for &g in &free {
            st.gpu_busy[g as usize] = true;
        }
        if let Some(slot) = st.frames.get_mut(&attempt) {
            slot.gpus = free.clone();
        }
        Ok(free)
    }
}

/// Who a frame runs as.
#[derive(Clone)]
struct Identity {
    /// `(uid, gid, groups)` the child switches to; `None`: the worker's own.
    switch: Option<(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
    uid: u32,
    name: String,
    home: Option<OsString>,
    shell: Option<OsString>,
}

fn spawner_loop(rx: mpsc::Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        run_job(job);
    }
}

/// Prepares and starts one frame, and hands it to a task on the runtime.
fn run_job(job: Job) {
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
            });
        }
    }
}

/// What is known of a frame being started, for its log and its cleanup.
struct Prepared {
    identity: Identity,
    cwd: PathBuf,
    /// The scratch directory to remove afterwards.
    scratch: Option<PathBuf>,
    gpus: Vec<u32>,
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
            return end_unstarted(
                &inner,
                &l,
                log,
                scratch,
                Exit::FailedToStart(reason),
                started,
            )
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
    let spawned = build_exec(&inner, &l, &p).and_then(|exec| {
        let stdin = inner.dev_null()?;
        let low_copy;
        let stdout = if log_file.as_raw_fd() > 2 {
            log_file.as_raw_fd()
        } else {
            low_copy = stdio_source(&log_file).map_err(|e| format!("cannot share the log: {e}"))?;
            low_copy.as_raw_fd()
        };
        spawn::spawn(&spawn::Child {
            path: &exec.path,
            argv: &exec.argv_ptrs,
            envp: &exec.envp_ptrs,
            cwd: &exec.cwd,
            stdin,
            stdout,
            ids: p
                .identity
                .switch
                .as_ref()
                .map(|(u, g, groups)| (*u, *g, groups.as_slice())),
        })
        .map_err(|(step, e)| spawn_failure(&l.command, &exec, step, e))
    });
    let started = SystemTime::now();
    let pid = match spawned {
        Ok(pid) => pid,
        Err(reason) => {
            return end_unstarted(
                &inner,
                &l,
                Some(log_file),
                p.scratch,
                Exit::FailedToStart(reason),
                started,
            )
        }
    };
    let spawned_at = Instant::now();
    // The child is unreaped, so its pid cannot be reused before the open.
    let pidfd = pidfd_open(pid);
    if let Some(s) = inner.lock().frames.get_mut(&l.attempt) {
        s.pgid = pid;
    }
    tracing::debug!(attempt = %l.attempt, pid, "frame started");
    let run = Running {
        attempt: l.attempt,
        pid,
        pidfd,
        wake,
        log: log_file,
        scratch: p.scratch,
        started,
        spawned_at,
        timeout: l.timeout,
    };
    rt.spawn(supervise(inner, run));
}

/// Resolves the user, the working directory and the GPUs. On failure, the
/// reason and any scratch directory already made.
fn prepare(inner: &Inner, l: &Launch) -> Result<Prepared, (String, Option<PathBuf>)> {
    let identity = inner.identity(&l.user).map_err(|r| (r, None))?;
    let (cwd, scratch) = match &l.cwd {
        Some(dir) => {
            if !dir.is_dir() {
                return Err((
                    format!(
                        "working directory {} does not exist on host {}",
                        dir.display(),
                        inner.cfg.host_name
                    ),
                    None,
                ));
            }
            (dir.clone(), None)
        }
        None => {
            let dir = make_scratch(&inner.cfg.work_dir, l.attempt, identity.switch.as_ref())
                .map_err(|e| (e, None))?;
            (dir.clone(), Some(dir))
        }
    };
    let gpus = match inner.take_gpus(l.attempt, l.gpus) {
        Ok(g) => g,
        Err(e) => return Err((e, scratch)),
    };
    Ok(Prepared {
        identity,
        cwd,
        scratch,
        gpus,
    })
}

fn make_scratch(
    work_dir: &Path,
    attempt: AttemptId,
    switch: Option<&(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
) -> Result<PathBuf, String> {
    let frames = work_dir.join("frames");
    let dir = frames.join(attempt.to_string());
    // frames/ must be searchable by every job's user.
    let made = std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&dir)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
                .mode(0o755)
                .recursive(true)
                .create(&dir),
            // Left by a worker that died mid-frame; reuse it.
            std::io::ErrorKind::AlreadyExists if dir.is_dir() => Ok(()),
            _ => Err(e),
        });
    if let Err(e) = made {
        return Err(format!(
            "cannot make scratch directory {}: {e}",
            dir.display()
        ));
    }
    if let Some((uid, gid, _)) = switch {
        std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid)).map_err(|e| {
            format!(
                "cannot give scratch directory {} to uid {uid}: {e}",
                dir.display()
            )
        })?;
    }
    Ok(dir)
}

fn open_log(path: &Path) -> std::io::Result<File> {
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            // Appends land at the end even if a stray process still writes.
            .custom_flags(libc::O_APPEND)
            .mode(0o644)
            .open(path)
    };
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            open()
        }
        r => r,
    }
}

/// What the child is given: everything allocated before the clone, because
/// the child may not allocate.
struct Exec {
    path: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
    cwd: CString,
}

fn build_exec(inner: &Inner, l: &Launch, p: &Prepared) -> Result<Exec, String> {
    let args: Vec<&OsStr> = match &l.command {
        Command::Shell(s) => vec![OsStr::new("/bin/sh"), OsStr::new("-c"), OsStr::new(s)],
        Command::Argv(v) if v.is_empty() => return Err("empty command".into()),
        Command::Argv(v) => v.iter().map(OsStr::new).collect(),
    };
    let mut env = Env::default();
    env.set(b"PATH", inner.base_path.as_bytes())?;
    if let Some(home) = &p.identity.home {
        env.set(b"HOME", home.as_bytes())?;
    }
    env.set(b"USER", p.identity.name.as_bytes())?;
    env.set(b"LOGNAME", p.identity.name.as_bytes())?;
    if let Some(shell) = &p.identity.shell {
        env.set(b"SHELL", shell.as_bytes())?;
    }
    if let Some(lang) = &inner.lang {
        env.set(b"LANG", lang.as_bytes())?;
    }
    for (k, v) in &l.env {
        env.set(k.as_bytes(), v.as_bytes())?;
    }
    if !p.gpus.is_empty() {
        let list: Vec<String> = p.gpus.iter().map(u32::to_string).collect();
        let list = list.join(",");
        env.set(b"KILN_GPUS", list.as_bytes())?;
        env.set(b"CUDA_VISIBLE_DEVICES", list.as_bytes())?;
    }
    let path = resolve_program(args[0], env.get(b"PATH"), &p.cwd)?;
    let argv: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| "the command contains a NUL byte".to_owned())?;
    let cwd = CString::new(p.cwd.as_os_str().as_bytes())
        .map_err(|_| format!("bad working directory {}", p.cwd.display()))?;
    let nul_terminated = |v: &[CString]| {
        v.iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect::<Vec<_>>()
    };
    let envp: Vec<CString> = env.0.into_iter().map(|(_, kv)| kv).collect();
    Ok(Exec {
        path,
        argv_ptrs: nul_terminated(&argv),
        _argv: argv,
        envp_ptrs: nul_terminated(&envp),
        _envp: envp,
        cwd,
    })
}

/// The child's environment; a later `set` of a name replaces the earlier.
#[derive(Default)]
struct Env(Vec<(Vec<u8>, CString)>);

impl Env {
    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        if key.is_empty() || key.contains(&b'=') || key.contains(&0) || value.contains(&0) {
            return Err(format!(
                "bad environment variable {:?}",
                String::from_utf8_lossy(key)
            ));
        }
        let mut kv = Vec::with_capacity(key.len() + value.len() + 1);
        kv.extend_from_slice(key);
        kv.push(b'=');
        kv.extend_from_slice(value);
        let kv = CString::new(kv).expect("NUL bytes rejected above");
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = kv,
            None => self.0.push((key.to_vec(), kv)),
        }
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(k, kv)| &kv.as_bytes()[k.len() + 1..])
    }
}

/// Finds a bare program name in the frame's PATH, as `execvp` would; done
/// here because the child may not allocate. A name with a slash is used as
/// given (relative names then start from the frame's cwd).
fn resolve_program(program: &OsStr, path: Option<&[u8]>, cwd: &Path) -> Result<CString, String> {
    use std::os::unix::fs::PermissionsExt;
    let bytes = program.as_bytes();
    if bytes.is_empty() {
        return Err("empty command".into());
    }
    if bytes.contains(&b'/') {
        return CString::new(bytes).map_err(|_| "the command contains a NUL byte".into());
    }
    for dir in path
        .unwrap_or(b"/usr/local/bin:/usr/bin:/bin")
        .split(|&b| b == b':')
    {
        let dir = Path::new(OsStr::from_bytes(if dir.is_empty() { b"." } else { dir }));
        let candidate = cwd.join(dir).join(program);
        let executable = std::fs::metadata(&candidate)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        if executable {
            return CString::new(candidate.into_os_string().into_vec())
                .map_err(|_| "the command contains a NUL byte".into());
        }
    }
    Err(format!(
        "cannot run {:?}: command not found in PATH",
        program.to_string_lossy()
    ))
}

fn spawn_failure(command: &Command, exec: &Exec, step: spawn::Step, e: std::io::Error) -> String {
    let program = match command {
        Command::Shell(_) => "/bin/sh".to_owned(),
        Command::Argv(v) => v[0].clone(),
    };
    match step {
        spawn::Step::Exec => format!(
            "cannot run {program:?} ({}): {e}",
            exec.path.to_string_lossy()
        ),
        spawn::Step::Chdir => format!(
            "cannot enter working directory {}: {e}",
            exec.cwd.to_string_lossy()
        ),
        step => format!("cannot run {program:?}: {}: {e}", step.name()),
    }
}

/// The log as a descriptor above 0-2, so that setting up the child's
/// stdin, stdout and stderr cannot overwrite it (a daemon may have closed
/// its own stdio, and then opens files at 0-2).
fn stdio_source(log: &File) -> std::io::Result<OwnedFd> {
    let fd = unsafe { libc::fcntl(log.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // Kernels before 5.3 (ENOSYS) fall back to a blocking wait.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A spawned frame, handed to its task.
struct Running {
    attempt: AttemptId,
    pid: i32,
    pidfd: Option<OwnedFd>,
    wake: Arc<Notify>,
    log: File,
    scratch: Option<PathBuf>,
    started: SystemTime,
    spawned_at: Instant,
    timeout: Option<Duration>,
}

enum Phase {
    Running,
    /// SIGTERM sent; SIGKILL at this instant.
    Terminating(Instant),
    Killing,
}

async fn supervise(inner: Arc<Inner>, r: Running) {
    let pid = r.pid;
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
                signal_group(pid, libc::SIGTERM);
                phase = Phase::Terminating(Instant::now() + inner.cfg.kill_grace);
            }
            _ = sleep_opt(timeout_at) => {
                if let Some(s) = inner.lock().frames.get_mut(&r.attempt) {
                    s.stop.get_or_insert(Exit::TimedOut);
                }
                signal_group(pid, libc::SIGTERM);
                phase = Phase::Terminating(Instant::now() + inner.cfg.kill_grace);
            }
            _ = sleep_opt(kill_at) => {
                signal_group(pid, libc::SIGKILL);
                phase = Phase::Killing;
            }
        }
    }
    // The main process is a zombie, so the group id is still ours: no other
    // group can have it yet. Take its background children down with it.
    signal_group(pid, libc::SIGKILL);
    let (status, rusage) = reap(pid).await;
    let ended = SystemTime::now();
    let (stop, sampled) = {
        let mut st = inner.lock();
        match st.frames.get_mut(&r.attempt) {
            Some(s) => {
                s.finishing = true;
                (s.stop.clone(), s.usage)
            }
            None => (None, Usage::default()),
        }
    };
    let exit = stop.unwrap_or_else(|| match status {
        Some(st) if libc::WIFEXITED(st) => Exit::Exited(libc::WEXITSTATUS(st)),
        Some(st) if libc::WIFSIGNALED(st) => Exit::Signaled(libc::WTERMSIG(st)),
        _ => {
            tracing::error!(attempt = %r.attempt, pid, "frame's exit status was lost (reaped elsewhere?)");
            Exit::Exited(-1)
        }
    });
    let (ru_rss, ru_cpu) = rusage.map_or((0, 0), |ru| {
        (
            ru.ru_maxrss.max(0) as u64,
            tv_ms(ru.ru_utime) + tv_ms(ru.ru_stime),
        )
    });
    let finished = Finished {
        attempt: r.attempt,
        exit,
        started_at: ms(r.started),
        ended_at: ms(ended),
        max_rss_kb: ru_rss.max(sampled.max_rss_kb),
        cpu_ms: ru_cpu.max(sampled.cpu_ms),
    };
    let mut log = r.log;
    if let Err(e) = log.write_all(footer(&finished, r.timeout).as_bytes()) {
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
async fn reap(pid: i32) -> (Option<libc::c_int>, Option<libc::rusage>) {
    fn wait4(pid: i32, flags: libc::c_int) -> Option<(libc::c_int, libc::rusage)> {
        loop {
            let mut status = 0;
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            let rc = unsafe { libc::wait4(pid, &mut status, flags, &mut ru) };
            if rc == pid {
                return Some((status, ru));
            }
            if rc == 0 {
                return None;
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return Some((-1, ru));
            }
        }
    }
    let got = match wait4(pid, libc::WNOHANG) {
        Some(r) => Some(r),
        // Not a zombie yet after all: wait for it on a pool thread.
        None => tokio::task::spawn_blocking(move || wait4(pid, 0))
            .await
            .ok()
            .flatten(),
    };
    match got {
        Some((-1, _)) | None => (None, None),
        Some((status, ru)) => (Some(status), Some(ru)),
    }
}

fn signal_group(pgid: i32, sig: libc::c_int) {
    if pgid > 0 {
        unsafe { libc::killpg(pgid, sig) };
    }
}

fn remove_scratch(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("cannot remove scratch directory {}: {e}", dir.display());
        }
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
    };
    if let Some(mut log) = log {
        let _ = log.write_all(footer(&f, l.timeout).as_bytes());
    }
    if let Some(dir) = scratch {
        remove_scratch(&dir);
    }
    inner.report(f);
}

/// Feeds the sampled usage of every running frame, once a second, from a
/// single `/proc` scan; ends when no frame runs.
async fn sample_loop(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let pgids: Vec<i32> = {
            let mut st = inner.lock();
            if st.frames.is_empty() {
                st.sampling = false;
                return;
            }
            st.frames
                .values()
                .filter(|s| s.pgid > 0 && !s.finishing)
                .map(|s| s.pgid)
                .collect()
        };
        if pgids.is_empty() {
            continue;
        }
        let Ok(groups) = tokio::task::spawn_blocking(move || procfs::scan_groups(&pgids)).await
        else {
            continue;
        };
        let mut st = inner.lock();
        for s in st.frames.values_mut().filter(|s| !s.finishing) {
            if let Some(g) = groups.get(&s.pgid) {
                s.usage.rss_kb = g.rss_kb;
                s.usage.max_rss_kb = s.usage.max_rss_kb.max(g.rss_kb);
                // Reaped children leave the sum; never report CPU going back.
                s.usage.cpu_ms = s.usage.cpu_ms.max(g.cpu_ms);
            }
        }
    }
}

fn header(cfg: &RunnerConfig, l: &Launch, p: Option<&Prepared>, started: SystemTime) -> String {
    let mut h = String::with_capacity(256);
    let _ = writeln!(
        h,
        "=== kiln frame {} of job {}, attempt {}",
        l.frame_label, l.job_name, l.attempt
    );
    let _ = writeln!(h, "host: {}", cfg.host_name);
    match p {
        Some(p) if p.identity.name != l.user => {
            let _ = writeln!(
                h,
                "user: {} (uid {}; job user {})",
                p.identity.name, p.identity.uid, l.user
            );
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
    let _ = writeln!(h, "started: {}", rfc3339(started));
    h.push_str("===\n");
    h
}

fn footer(f: &Finished, timeout: Option<Duration>) -> String {
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
fn display_command(c: &Command) -> String {
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
fn human_kb(kb: u64) -> String {
    if kb < 1024 {
        format!("{kb}K")
    } else if kb < 1024 * 1024 {
        format!("{}M", (kb + 512) / 1024)
    } else {
        format!("{:.1}G", kb as f64 / (1024.0 * 1024.0))
    }
}

/// `10s`, `1.5s`.
fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn now_ms() -> i64 {
    ms(SystemTime::now())
}

fn tv_ms(tv: libc::timeval) -> u64 {
    (tv.tv_sec.max(0) as u64) * 1000 + (tv.tv_usec.max(0) as u64) / 1000
}

/// UTC, to the second: `2026-11-23T10:00:00Z`.
fn rfc3339(t: SystemTime) -> String {
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

// The worker shares one runner between its tasks.
const _: () = {
    fn is<T: Send + Sync>() {}
    #[allow(dead_code)]
    fn check() {
        is::<Runner>();
    }
};

/// Process creation with `clone(CLONE_VM | CLONE_VFORK)`, the way glibc's
/// `posix_spawn` does it, plus the two steps `posix_spawn` cannot do: the
/// user switch and the parent-death signal. Both otherwise need std's
/// `pre_exec`, which forks; a fork copies the worker's page tables and then
/// makes each page it writes fault and flush the TLB of every CPU running a
/// worker thread. Measured with 1,000 `true` frames on a 2-CPU VM, a fork
/// took ~180 µs of the spawner's CPU per frame (~370 µs for the whole runner
/// against ~130 µs here) and the run took ~40% longer; this clone takes
/// ~30 µs.
///
/// The child runs in the worker's memory, on its own small stack, until it
/// execs. So it calls only plain system calls: no allocation, no locks, and
/// none of glibc's `setuid`-family wrappers, which in a threaded process
/// signal every thread to change ids too: here those threads are the
/// worker's.
mod spawn {
    use std::cell::RefCell;
    use std::ffi::CStr;
    use std::io;
    use std::os::fd::RawFd;
    use std::sync::atomic::{AtomicI32, Ordering};

    pub(super) struct Child<'a> {
        pub path: &'a CStr,
        /// NULL-terminated.
        pub argv: &'a [*const libc::c_char],
        /// NULL-terminated.
        pub envp: &'a [*const libc::c_char],
        pub cwd: &'a CStr,
        /// Descriptors above 2; the log serves as stdout and stderr.
        pub stdin: RawFd,
        pub stdout: RawFd,
        /// `(uid, gid, groups)` to switch to.
        pub ids: Option<(libc::uid_t, libc::gid_t, &'a [libc::gid_t])>,
    }

    /// The step of the child's setup that failed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Step {
        Clone = 1,
        Stdio,
        Setpgid,
        Setgroups,
        Setgid,
        Setuid,
        Chdir,
        Pdeathsig,
        Exec,
    }

    impl Step {
        pub(super) fn name(self) -> &'static str {
            match self {
                Step::Clone => "clone",
                Step::Stdio => "setting up stdio",
                Step::Setpgid => "setpgid",
                Step::Setgroups => "setgroups",
                Step::Setgid => "setgid",
                Step::Setuid => "setuid",
                Step::Chdir => "chdir",
                Step::Pdeathsig => "prctl(PR_SET_PDEATHSIG)",
                Step::Exec => "exec",
            }
        }

        fn from_i32(v: i32) -> Step {
            [
                Step::Stdio,
                Step::Setpgid,
                Step::Setgroups,
                Step::Setgid,
                Step::Setuid,
                Step::Chdir,
                Step::Pdeathsig,
                Step::Exec,
            ]
            .into_iter()
            .find(|s| *s as i32 == v)
            .unwrap_or(Step::Exec)
        }
    }

    /// Shared with the child, which writes `step` and `errno` if it fails.
    struct Shared<'a> {
        child: &'a Child<'a>,
        parent: libc::pid_t,
        step: AtomicI32,
        errno: AtomicI32,
    }

    const STACK_SIZE: usize = 64 * 1024;

    /// The child's stack, one per spawning thread, reused: mapping one per
    /// spawn would flush TLBs on unmap.
    struct Stack {
        base: *mut libc::c_void,
    }

    impl Stack {
        fn new() -> io::Result<Stack> {
            let base = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    STACK_SIZE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if base == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            // A guard page: an overflow faults instead of corrupting memory.
            unsafe { libc::mprotect(base, 4096, libc::PROT_NONE) };
            Ok(Stack { base })
        }

        fn top(&self) -> *mut libc::c_void {
            // 16-byte aligned, as the ABI wants.
            unsafe { self.base.cast::<u8>().add(STACK_SIZE).cast() }
        }
    }

    impl Drop for Stack {
        fn drop(&mut self) {
            unsafe { libc::munmap(self.base, STACK_SIZE) };
        }
    }

    thread_local! {
        static STACK: RefCell<Option<Stack>> = const { RefCell::new(None) };
    }

    /// Starts `c` in a new process group of its own; returns its pid once it
    /// has exec'd. The caller reaps it.
    pub(super) fn spawn(c: &Child<'_>) -> Result<libc::pid_t, (Step, io::Error)> {
        STACK.with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.is_none() {
                *cell = Some(Stack::new().map_err(|e| (Step::Clone, e))?);
            }
            let stack = cell.as_ref().expect("made above");
            let shared = Shared {
                child: c,
                parent: unsafe { libc::getpid() },
                step: AtomicI32::new(0),
                errno: AtomicI32::new(0),
            };
            unsafe {
                // No signal handler may run in the child: it would run the
                // worker's code on the child's stack, in the worker's memory.
                let mut all: libc::sigset_t = std::mem::zeroed();
                let mut old: libc::sigset_t = std::mem::zeroed();
                libc::sigfillset(&mut all);
                libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
                // Returns once the child has exec'd or exited.
                let pid = libc::clone(
                    child_main,
                    stack.top(),
                    libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                    (&shared as *const Shared<'_>).cast_mut().cast(),
                );
                let clone_error = io::Error::last_os_error();
                libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
                if pid < 0 {
                    return Err((Step::Clone, clone_error));
                }
                let step = shared.step.load(Ordering::SeqCst);
                if step != 0 {
                    let mut status = 0;
                    while libc::waitpid(pid, &mut status, 0) < 0
                        && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
                    {
                    }
                    let errno = shared.errno.load(Ordering::SeqCst);
                    return Err((Step::from_i32(step), io::Error::from_raw_os_error(errno)));
                }
                Ok(pid)
            }
        })
    }

    extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the parent's `Shared`; the parent is suspended
        // (CLONE_VFORK) until this process execs or exits, so it outlives
        // every use here.
        let sh = unsafe { &*(arg as *const Shared<'_>) };
        let c = sh.child;
        unsafe {
            // The worker's handlers (and the SIGPIPE it ignores) are no
            // business of a frame: every signal starts at its default. The
            // handler table is the child's own copy (no CLONE_SIGHAND).
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            for sig in 1..65 {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::sigaction(sig, &dfl, std::ptr::null_mut());
                }
            }
            if libc::setpgid(0, 0) != 0 {
                fail(sh, Step::Setpgid);
            }
            if libc::dup2(c.stdin, 0) < 0
                || libc::dup2(c.stdout, 1) < 0
                || libc::dup2(c.stdout, 2) < 0
            {
                fail(sh, Step::Stdio);
            }
            if let Some((uid, gid, groups)) = c.ids {
                // Raw system calls: they change this process only.
                if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0 {
                    fail(sh, Step::Setgroups);
                }
                if libc::syscall(libc::SYS_setgid, gid) != 0 {
                    fail(sh, Step::Setgid);
                }
                if libc::syscall(libc::SYS_setuid, uid) != 0 {
                    fail(sh, Step::Setuid);
                }
            }
            // As the user, so that its permissions apply.
            if libc::chdir(c.cwd.as_ptr()) != 0 {
                fail(sh, Step::Chdir);
            }
            // After the id change, which would clear it.
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                fail(sh, Step::Pdeathsig);
            }
            if libc::getppid() != sh.parent {
                // The worker died before the signal was armed.
                *libc::__errno_location() = libc::ESRCH;
                fail(sh, Step::Pdeathsig);
            }
            let empty: libc::sigset_t = {
                let mut s = std::mem::zeroed();
                libc::sigemptyset(&mut s);
                s
            };
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            libc::execve(c.path.as_ptr(), c.argv.as_ptr(), c.envp.as_ptr());
            fail(sh, Step::Exec)
        }
    }

    fn fail(sh: &Shared<'_>, step: Step) -> ! {
        unsafe {
            sh.errno.store(*libc::__errno_location(), Ordering::SeqCst);
            sh.step.store(step as i32, Ordering::SeqCst);
            libc::_exit(127)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        let at = |s: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(1_795_428_000), "2026-11-23T10:00:00Z");
        assert_eq!(at(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(secs(Duration::from_secs(10)), "10s");
        assert_eq!(secs(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn formats_sizes_and_commands() {
        assert_eq!(human_kb(512), "512K");
        assert_eq!(human_kb(512 * 1024), "512M");
        assert_eq!(human_kb(1536 * 1024), "1.5G");
        let argv = Command::Argv(vec![
            "render".into(),
            "-f".into(),
            "a b".into(),
            "it's".into(),
        ]);
        assert_eq!(display_command(&argv), r"render -f 'a b' 'it'\''s'");
    }
}
