//! The worker's IO loop: connects out to the server, drives the session
//! state machine, runs frames with the runner and ships their logs.

use crate::logship::{self, Shipper};
use crate::runner::{self, Finished, Launch, Runner, RunnerConfig};
use crate::session::{Action, Ms, Session};
use crate::{host, Error};
use futures::StreamExt;
use kiln_core::link::{Exit, FrameEnded, RunningFrame, WorkerMsg};
use kiln_core::model::{AttemptId, HostReport};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often running frames' logs are shipped (and more often while the
/// transport takes chunks as fast as they come).
const LOG_SHIP_MS: u64 = 250;
/// SIGTERM to SIGKILL for frames the worker kills.
const KILL_GRACE: Duration = runner::DEFAULT_KILL_GRACE;
/// How long the worker must be idle (no frame running, none started or
/// ended) before it drops its code pages (see `trim`).
const TRIM_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub server: String,
    pub name: Option<String>,
    pub tags: Vec<String>,
    /// Cores to offer, in centicores; `None`: all of them.
    pub cores: Option<u32>,
    pub memory_kb: Option<u64>,
    pub work_dir: PathBuf,
    /// Run frames as their job's user (the worker must be root).
    pub switch_user: bool,
    pub allow_root: bool,
    /// The most bytes of a frame's log kept; the rest is dropped.
    pub log_cap: u64,
    /// The `kiln` binary, to run every frame under a supervisor process
    /// that outlives this daemon and enforces its lease; `None`: frames are
    /// this process's children (for tests and embedders).
    pub shim: Option<PathBuf>,
    /// Below this much available memory on the host, the frame furthest
    /// over its reservation is killed; `None`: 5 % of the host's memory
    /// (128 MiB to 1 GiB), `Some(0)`: never.
    pub min_available_kb: Option<u64>,
    /// Run each frame in its own cgroup where the host allows it (else, or
    /// if false, in its own process group).
    pub cgroups: bool,
    /// The host's own credential (`kiln_host_…`), from its join; its
    /// links present it with the host's name, to which it is bound.
    pub credential: String,
}

struct Daemon {
    cfg: WorkerConfig,
    runner: Runner,
    session: Session,
    ship: Shipper,
    start: Instant,
    report: HostReport,
    /// Shutting down: frames are being killed, nothing new starts.
    stopping: bool,
    stop_deadline: Option<Instant>,
    /// The lease the frames' supervisors enforce, as last written.
    lease_written: Option<(Ms, Ms)>,
    /// When a frame last started or ended (or the worker started).
    last_activity: Instant,
    /// Code pages were dropped since then (once per idle period).
    trimmed: bool,
    /// The mappings the trim cut into pieces, rejoined when work comes.
    cut: Vec<(usize, usize)>,
}

impl Daemon {
    fn now(&self) -> Ms {
        // Never 0, so "no lease yet" and "lease from the start" differ.
        1_000 + self.start.elapsed().as_millis() as Ms
    }

    fn running(&self) -> Vec<RunningFrame> {
        self.runner
            .running()
            .into_iter()
            .map(|(attempt, u)| RunningFrame {
                attempt,
                rss_kb: u.rss_kb,
                max_rss_kb: u.max_rss_kb,
                cpu_ms: u.cpu_ms,
                log_size: 0,
            })
            .collect()
    }

    fn lease_file(&self) -> PathBuf {
        self.cfg.work_dir.join("lease")
    }

    /// Hands a renewed lease on to the frames' supervisors.
    fn publish_lease(&mut self) {
        let Some(ends) = self.session.lease_ends() else {
            return;
        };
        if self.cfg.shim.is_none() || self.lease_written == Some(ends) {
            return;
        }
        let (now, boot) = (self.now(), runner::boot_ms());
        let at = |t: Ms| (boot + t).saturating_sub(now);
        match runner::write_lease(&self.lease_file(), at(ends.0), at(ends.1)) {
            Ok(()) => self.lease_written = Some(ends),
            Err(e) => tracing::warn!("cannot write the lease file: {e}"),
        }
    }

    fn local_log(&self, attempt: AttemptId) -> PathBuf {
        self.ship.local_log(attempt)
    }

    /// Sends what the server lacks of the logs, as far as the budget
    /// allows, and the ends whose logs are complete.
    fn ship_logs(&mut self, out: &mpsc::UnboundedSender<WorkerMsg>) {
        self.ship.pump(&mut self.session, out);
    }

    /// A frame started or ended: the idle period, if any, is over.
    fn active(&mut self) {
        self.last_activity = Instant::now();
        self.trimmed = false;
        crate::trim::rejoin(&std::mem::take(&mut self.cut));
    }

    /// Once per idle period: drop the code pages the work mapped.
    fn trim_if_idle(&mut self, running: bool) {
        if running || self.trimmed || self.last_activity.elapsed() < TRIM_AFTER {
            return;
        }
        self.trimmed = true;
        match crate::trim::code_pages() {
            Ok(t) => {
                tracing::debug!(
                    mappings = t.mappings,
                    kb = t.kb,
                    "idle: dropped the binary's mapped pages"
                );
                self.cut = t.cut;
            }
            Err(e) => tracing::debug!("idle: cannot trim code pages: {e}"),
        }
    }

    fn ended(&mut self, f: Finished, out: Option<&mpsc::UnboundedSender<WorkerMsg>>) {
        self.active();
        let log_size = self
            .ship
            .finish(f.attempt, self.session.log_sent(f.attempt));
        let exit = match f.exit {
            runner::Exit::Exited(c) => Exit::Exited(c),
            runner::Exit::Signaled(s) => Exit::Signaled(s),
            runner::Exit::TimedOut => Exit::TimedOut,
            runner::Exit::Killed(r) => Exit::Killed(r),
            runner::Exit::FailedToStart(r) => Exit::FailedToStart(r),
            runner::Exit::JobCannotStart(r) => Exit::JobCannotStart(r),
            runner::Exit::OutOfMemory { rss_kb } => Exit::OutOfMemory { rss_kb },
        };
        let ended = FrameEnded {
            attempt: f.attempt,
            exit,
            started_at: f.started_at,
            ended_at: f.ended_at,
            max_rss_kb: f.max_rss_kb,
            cpu_ms: f.cpu_ms,
            log_size,
            usage: f.usage,
            outputs: f.outputs,
        };
        // Sent by the shipper once the log is: "every byte was sent before
        // this report".
        self.session.frame_ended(ended);
        if let Some(out) = out {
            self.ship_logs(out);
        }
    }

    /// Begins a shutdown: kill every frame, tell the server to send no more.
    fn stop(&mut self, out: Option<&mpsc::UnboundedSender<WorkerMsg>>) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.stop_deadline = Some(Instant::now() + Duration::from_secs(10));
        self.runner.kill_all("the worker is shutting down");
        if let Some(out) = out.filter(|_| self.session.is_registered()) {
            let _ = out.send(WorkerMsg::Goodbye);
        }
    }

    fn done_stopping(&self) -> bool {
        self.stopping && self.runner.running().is_empty() && self.session.unacked().is_empty()
    }

    fn launch(&mut self, l: kiln_core::link::Launch, out: &mpsc::UnboundedSender<WorkerMsg>) {
        self.active();
        if self.stopping {
            // A launch that crossed our goodbye: refuse it, as killed.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let f = Finished {
                attempt: l.attempt,
                exit: runner::Exit::Killed("the worker is shutting down".into()),
                started_at: now,
                ended_at: now,
                max_rss_kb: 0,
                cpu_ms: 0,
                outputs: Vec::new(),
                usage: Vec::new(),
            };
            self.ended(f, Some(out));
            return;
        }
        let log_path = self.local_log(l.attempt);
        let env = l.env().into_iter().collect();
        self.runner.launch(Launch {
            attempt: l.attempt,
            job_name: l.job,
            frame_label: l.frame_label,
            command: l.command,
            env,
            cwd: l.cwd.map(PathBuf::from),
            user: l.user,
            timeout: l.timeout_s.map(Duration::from_secs),
            gpus: l.gpus,
            memory_limit_kb: (l.memory_kb > 0).then_some(l.memory_kb),
            log_path,
            outputs: l.outputs,
        });
    }
}

/// Runs the worker until `shutdown` resolves; then kills its frames,
/// reports them, and returns.
pub async fn run(cfg: WorkerConfig, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    std::fs::create_dir_all(cfg.work_dir.join("logs"))?;
    // Blocking (nvidia-smi is given up to 10 s): off the runtime's thread.
    let dir = cfg.work_dir.clone();
    let mut report = tokio::task::spawn_blocking(move || host::detect(&dir))
        .await
        .map_err(std::io::Error::other)?;
    if let Some(name) = &cfg.name {
        report.name = name.clone();
    }
    if let Some(c) = cfg.cores {
        report.cores = c;
    }
    if let Some(m) = cfg.memory_kb {
        report.memory_kb = m;
    }
    report.tags = cfg.tags.clone();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let runner = Runner::new(
        RunnerConfig {
            work_dir: cfg.work_dir.clone(),
            switch_user: cfg.switch_user,
            allow_root: cfg.allow_root,
            host_name: report.name.clone(),
            kill_grace: KILL_GRACE,
            cgroups: cfg.cgroups,
            shim: cfg.shim.clone(),
            lease_file: cfg.shim.as_ref().map(|_| cfg.work_dir.join("lease")),
            min_available_kb: cfg.min_available_kb.unwrap_or_else(|| {
                let total = crate::procfs::meminfo().map_or(0, |m| m.total_kb);
                runner::guard::default_min_available_kb(total)
            }),
        },
        report.gpus,
        done_tx,
    );
    let ship = Shipper::new(cfg.work_dir.join("logs"), cfg.log_cap);
    let mut d = Daemon {
        cfg,
        runner,
        session: Session::new(KILL_GRACE.as_millis() as Ms),
        ship,
        start: Instant::now(),
        report,
        stopping: false,
        stop_deadline: None,
        lease_written: None,
        last_activity: Instant::now(),
        trimmed: false,
        cut: Vec::new(),
    };
    // Frames an earlier run left run on under this one (or are killed if
    // they cannot be taken over); Register lists them, and the server says
    // which continue. Their supervisors keep the lease the earlier run
    // wrote until this run renews it.
    // Blocking (what cannot be adopted is killed until its cgroup is
    // empty): off the runtime's thread, where adopted frames already run.
    let runner = d.runner.clone();
    let adopted = tokio::task::spawn_blocking(move || runner.adopt())
        .await
        .map_err(std::io::Error::other)?;
    for a in adopted {
        d.session.set_log_sent(a, 0);
    }
    tokio::pin!(shutdown);
    loop {
        if d.done_stopping() {
            return Ok(());
        }
        if d.stop_deadline.is_some_and(|t| Instant::now() > t) {
            tracing::warn!("stopping without the server's acknowledgement of every frame end");
            return Ok(());
        }
        // Ends already reported by the runner must be in the registration.
        while let Ok(f) = done_rx.try_recv() {
            d.ended(f, None);
        }
        // Connect, feeding the server from a queue: unbounded, but the
        // shipper puts at most its budget of log bytes in it.
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let budget = d.ship.connect();
        let mut report = d.report.clone();
        report.load = host::load_average();
        let now = d.now();
        let reg = d.session.register(report, d.running(), now);
        // The registration is stamped when the transport first asks for it:
        // that is when it leaves, however long connecting took.
        let sent_at = Arc::new(AtomicU64::new(0));
        let (mark, start) = (sent_at.clone(), d.start);
        let first = futures::stream::once(async move {
            mark.store(1_000 + start.elapsed().as_millis() as Ms, Ordering::Relaxed);
            reg
        });
        let server = d.cfg.server.clone();
        let auth = kiln_proto::client::HostAuth {
            host: d.report.name.clone(),
            credential: d.cfg.credential.clone(),
        };
        let connect = kiln_proto::client::connect_worker(
            &server,
            &auth,
            first.chain(logship::outgoing(out_rx, budget.clone())),
        );
        tokio::pin!(connect);
        let mut lease = tokio::time::interval(Duration::from_millis(LOG_SHIP_MS));
        let mut incoming = loop {
            tokio::select! {
                r = &mut connect => break match r {
                    Ok(s) => Some(Box::pin(s)),
                    // Not a passing condition: the admin must act.
                    Err(
                        e @ (kiln_proto::Error::Untrusted(_)
                        | kiln_proto::Error::Unauthenticated(_)
                        | kiln_proto::Error::Forbidden(_)),
                    ) => {
                        tracing::warn!("{e}");
                        None
                    }
                    Err(e) => {
                        tracing::debug!("connect failed: {e}");
                        None
                    }
                },
                _ = &mut shutdown, if !d.stopping => {
                    d.stop(None);
                    break None;
                }
                _ = lease.tick() => check_lease(&mut d),
            }
        };
        if let Some(stream) = incoming.as_mut() {
            tracing::info!(server = %d.cfg.server, "connected");
            let mut tick = tokio::time::interval(Duration::from_millis(LOG_SHIP_MS));
            loop {
                tokio::select! {
                    m = stream.next() => match m {
                        Some(Ok(msg)) => {
                            let registering = !d.session.is_registered();
                            if registering {
                                d.session.register_sent(sent_at.load(Ordering::Relaxed));
                            }
                            let now = d.now();
                            let actions = d.session.on_server(msg, now);
                            d.publish_lease();
                            if registering && d.session.is_registered() {
                                // Resend what the server is missing: logs, then ends.
                                d.ship_logs(&out_tx);
                                if d.stopping {
                                    let _ = out_tx.send(WorkerMsg::Goodbye);
                                }
                            }
                            if apply(&mut d, actions, &out_tx) { break; }
                        }
                        Some(Err(e)) => { tracing::warn!("connection lost: {e}"); break; }
                        None => { tracing::warn!("the server closed the connection"); break; }
                    },
                    Some(f) = done_rx.recv() => d.ended(f, Some(&out_tx)),
                    _ = budget.drained() => d.ship_logs(&out_tx),
                    _ = tick.tick() => {
                        let now = d.now();
                        let running = !d.runner.running().is_empty();
                        let frames = d.running();
                        let hb = move || (host::load_average(), host::free_memory_kb(), frames);
                        let actions = d.session.tick(now, running, hb);
                        d.ship_logs(&out_tx);
                        if apply(&mut d, actions, &out_tx) { break; }
                        d.trim_if_idle(running);
                        if d.done_stopping() {
                            return Ok(());
                        }
                        if d.stop_deadline.is_some_and(|t| Instant::now() > t) {
                            break;
                        }
                    }
                    _ = &mut shutdown, if !d.stopping => d.stop(Some(&out_tx)),
                }
            }
        }
        // Disconnected: wait out the backoff, still reaping frames and
        // watching the lease.
        let wait = d.session.disconnected();
        if wait >= 1_000 {
            tracing::info!("server unreachable; next try in {} s", wait / 1_000);
        }
        let until = tokio::time::Instant::now() + Duration::from_millis(wait);
        let mut lease = tokio::time::interval(Duration::from_millis(LOG_SHIP_MS));
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                Some(f) = done_rx.recv() => d.ended(f, None),
                _ = &mut shutdown, if !d.stopping => d.stop(None),
                _ = lease.tick() => check_lease(&mut d),
            }
        }
    }
}

/// While disconnected the lease still runs out: frames must stop before
/// the server gives them to another host.
fn check_lease(d: &mut Daemon) {
    let now = d.now();
    let running = !d.runner.running().is_empty();
    let actions = d.session.tick(now, running, || (0.0, 0, Vec::new()));
    let (tx, _rx) = mpsc::unbounded_channel();
    apply(d, actions, &tx);
}

/// Carries out the session's actions; true when the connection must drop.
fn apply(d: &mut Daemon, actions: Vec<Action>, out: &mpsc::UnboundedSender<WorkerMsg>) -> bool {
    let mut reconnect = false;
    for a in actions {
        match a {
            Action::Send(m) => {
                let _ = out.send(m);
            }
            Action::Launch(l) => d.launch(l, out),
            Action::Kill(attempt, reason) => {
                d.runner.kill(attempt, &reason);
            }
            Action::KillAll(reason) => {
                tracing::warn!("{reason}");
                d.runner.kill_all(&reason);
            }
            Action::Reconnect => reconnect = true,
            Action::Forget(ids) => {
                for a in ids {
                    d.ship.forget(a);
                }
            }
        }
    }
    reconnect
}
