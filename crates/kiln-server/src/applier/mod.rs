//! The applier: the one task that owns the farm. It takes events in
//! batches, applies them, runs the scheduler, commits everything the batch
//! changed in one store transaction, and only then answers writes and
//! sends launches (group commit: durable before acknowledged, one fsync
//! for many changes). Reads are answered at the start of a step, from
//! state already committed. A step starts at most `MAX_STARTS` frames, so
//! no request waits behind a huge fill; a capped step is followed at once
//! by the next.
//!
//! Every call from a client comes with its [`Caller`]; the applier asks
//! `kiln_core::auth::authorize` about it against the farm's records
//! (`access`), and writes an audit record of each state-changing call,
//! refused or not, into the same transaction as its change. It also owns
//! the identity registry (`identity`): users, grants, tokens, host
//! credentials, published to the edges after each commit ([`Gate`]).

mod access;
mod identity;
mod retention;

pub use identity::{IdentityAsk, JoinAsk, LoginAsk};

use crate::auth::edge::Gate;
use crate::committed::{Committed, Publisher, Touched};
use crate::logs::LogStore;
use crate::{now_ms, Error, Retention};
use futures::FutureExt;
use kiln_api::metrics::Recorder;
use kiln_core::auth::audit::AuditRecord;
use kiln_core::auth::identity::{Change, Identity};
use kiln_core::auth::views::{IdentityDone, LoggedIn};
use kiln_core::auth::{Action as AuthAction, Principal};
use kiln_core::farm::{Action, Admin, Dirty, Farm, FrameSelect, WorkerEvent};
use kiln_core::link::ServerMsg;
use kiln_core::model::{AttemptId, FrameId, FrameState, Outcome};
use kiln_core::sched::{Plan, Reservation};
use kiln_core::spec::NewJob;
use kiln_core::view::*;
use kiln_core::{sched, Error as CoreError};
use kiln_store::{Batch, Store};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

type Reply<T> = oneshot::Sender<Result<T, CoreError>>;

/// Where a frame's log is, as far as the farm knows.
#[derive(Debug, Clone)]
pub struct LogTarget {
    pub frame: FrameId,
    /// The current or last attempt, with its number.
    pub attempt: Option<(AttemptId, u32)>,
    pub running: bool,
    pub state: DisplayState,
    /// The current attempt's memory and CPU over time, while it runs.
    pub live: Option<Vec<kiln_core::series::UsageSample>>,
}

/// Who is calling, as the edge authenticated it, and from where.
#[derive(Debug, Clone)]
pub struct Caller {
    pub who: Principal,
    pub from: String,
}

/// An audit record still to be numbered: what the edge refused before any
/// request reached the applier (a failed sign-in, an impostor worker).
#[derive(Debug, Clone)]
pub struct AuditDraft {
    pub who: String,
    pub from: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
}

pub enum Request {
    Submit(Caller, NewJob, Reply<Submitted>),
    /// A job's frames (the state parsed from the query's).
    Frames(
        Caller,
        FrameQuery,
        Option<DisplayState>,
        Reply<Vec<FrameInfo>>,
    ),
    /// A frame by its id alone.
    Frame(Caller, i64, Reply<FrameDetail>),
    /// The frames running now, on one host or all, quiet for a while or not.
    Running(Caller, RunningQuery, Reply<Vec<RunningFrame>>),
    LogTarget(Caller, String, String, Reply<LogTarget>),
    /// A job's logs to search: (job, layer, frame).
    LogTargets(
        Caller,
        String,
        Option<String>,
        Option<String>,
        Reply<Vec<(String, AttemptId, u32)>>,
    ),
    Act(
        Caller,
        Action,
        String,
        Vec<String>,
        Option<DisplayState>,
        Reply<u32>,
    ),
    Lock(Caller, String, bool, Reply<HostInfo>),
    /// A wrangler's change; the reply is the line saying what changed.
    Admin(Caller, Admin, Reply<String>),
    /// A change to users, grants, tokens or host credentials.
    Identity(Caller, IdentityAsk, Reply<IdentityDone>),
    /// A sign-in the edge verified: issue its session token.
    Login(LoginAsk, Reply<LoggedIn>),
    /// A worker's join token, to exchange for its host credential.
    Join(JoinAsk, Reply<String>),
    /// Something the edge refused, for the audit trail.
    Audit(AuditDraft),
    /// A worker connection for `host` opened; messages for it go to the
    /// sender.
    Attach(u64, String, mpsc::UnboundedSender<ServerMsg>),
    /// The server is stopping: end every worker stream so the transport can
    /// finish. Workers reconnect to the next server.
    CloseSessions,
    Worker(WorkerEvent),
}

pub struct Applier<S: Store> {
    farm: Farm,
    store: Arc<S>,
    logs: Arc<LogStore>,
    rx: mpsc::UnboundedReceiver<Request>,
    /// Each worker connection's sender, and the host it is for.
    sessions: HashMap<u64, (String, mpsc::UnboundedSender<ServerMsg>)>,
    max_starts: u64,
    tick: Duration,
    identity: Identity,
    gate: Gate,
    /// This step's identity changes and audit records, committed with it.
    changes: Vec<Change>,
    audit: Vec<AuditRecord>,
    next_audit: i64,
    /// The farm as last committed, for reads that do not wait for a step.
    publisher: Publisher,
    retention: retention::Keeper,
    /// Where committed events go live.
    hub: Arc<crate::events::Hub>,
    /// How long events are kept, and when they were last pruned.
    retention_ms: i64,
    pruned_at: i64,
    /// Where passes, commits, pickups and ended attempts are recorded.
    recorder: Arc<Recorder>,
}

/// Most events taken into one transaction.
const MAX_BATCH: usize = 8192;

/// Most frames one step starts or writes. A start costs the applier 1.5-5
/// µs in memory and the commit about 6 µs more (measured on a 2-core box),
/// so a cold pass over a big farm (hundreds of thousands of frames) would
/// hold every write for seconds; capped, a step takes 100-300 ms and the
/// fill goes on over several steps, requests served in between.
const MAX_STARTS: u64 = 20_000;

impl Request {
    /// Whether the request only reads the farm.
    fn is_read(&self) -> bool {
        match self {
            Request::Frames(..)
            | Request::Frame(..)
            | Request::Running(..)
            | Request::LogTarget(..)
            | Request::LogTargets(..) => true,
            Request::Submit(..)
            | Request::Act(..)
            | Request::Lock(..)
            | Request::Admin(..)
            | Request::Identity(..)
            | Request::Login(..)
            | Request::Join(..)
            | Request::Audit(..)
            | Request::Attach(..)
            | Request::CloseSessions
            | Request::Worker(..) => false,
        }
    }
}

impl<S: Store> Applier<S> {
    /// `gate` holds `identity` as committed; `next_audit` follows the
    /// store's last audit record.
    pub fn new(
        farm: Farm,
        store: Arc<S>,
        logs: Arc<LogStore>,
        rx: mpsc::UnboundedReceiver<Request>,
        gate: Gate,
        next_audit: i64,
    ) -> Self {
        let publisher = Publisher::new(&farm, Committed::default());
        Applier {
            publisher,
            retention: retention::Keeper::new(Retention::default()),
            farm,
            store,
            logs,
            rx,
            sessions: HashMap::new(),
            max_starts: MAX_STARTS,
            tick: Duration::from_millis(1000),
            identity: (*gate.identity()).clone(),
            gate,
            changes: Vec::new(),
            audit: Vec::new(),
            next_audit,
            hub: Arc::new(crate::events::Hub::new(0, Default::default())),
            recorder: Arc::default(),
            retention_ms: 7 * 86_400_000,
            pruned_at: 0,
        }
    }

    /// Keeps finished jobs, history and logs as `r` says.
    pub fn with_retention(mut self, r: Retention) -> Self {
        self.retention = retention::Keeper::new(r);
        self
    }

    /// The farm as last committed, which this applier publishes after
    /// each commit.
    pub fn committed(&self) -> Committed {
        self.publisher.committed()
    }

    /// Publishes committed events to `hub`, and keeps them `retention`.
    pub fn events(mut self, hub: Arc<crate::events::Hub>, retention: Duration) -> Self {
        self.hub = hub;
        self.retention_ms = retention.as_millis().min(i64::MAX as u128) as i64;
        self
    }

    /// Records into `recorder` (the one the API serves) instead of a
    /// recorder of its own.
    pub fn with_recorder(mut self, recorder: Arc<Recorder>) -> Self {
        self.recorder = recorder;
        self
    }

    /// Runs [`Applier::run`] on a thread of its own, under a runtime of its
    /// own. Its work is CPU work: a submit makes every frame record of the
    /// job (a million, for the biggest a spec may ask), a scheduling pass
    /// over a big farm takes its milliseconds. On one of the server's
    /// runtime threads that would hold every connection, worker log and
    /// timer waiting behind it; here only requests to the farm wait, which
    /// would wait anyway. The receiver gets what `run` returned, or is
    /// closed if the thread died.
    pub fn spawn_thread(self) -> std::io::Result<oneshot::Receiver<Result<(), Error>>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tx, rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("kiln-applier".into())
            .spawn(move || {
                let _ = tx.send(rt.block_on(self.run()));
            })?;
        Ok(rx)
    }

    /// Runs until every request sender is gone. A failed commit stops the
    /// applier (and the server): memory may then hold changes the store
    /// does not, and the only safe state is the store's, read at restart.
    pub async fn run(mut self) -> Result<(), Error> {
        let mut tick = tokio::time::interval(self.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pending: Vec<Request> = Vec::new();
        let mut more = false;
        loop {
            let mut ticked = false;
            if more {
                // The last step left frames to start (its pass was capped,
                // or skipped behind a big write): go on now with whatever
                // requests came meanwhile, without waiting for the tick or
                // a request. Ticks still run.
                ticked = tick.tick().now_or_never().is_some();
                tokio::task::yield_now().await;
            } else {
                tokio::select! {
                    r = self.rx.recv() => match r {
                        Some(r) => pending.push(r),
                        None => return Ok(()),
                    },
                    _ = tick.tick() => ticked = true,
                }
            }
            while pending.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(r) => pending.push(r),
                    Err(_) => break,
                }
            }
            more = self.step(std::mem::take(&mut pending), ticked).await?;
        }
    }

    /// One batch: reads, the tick if due, writes, a scheduling pass, the
    /// commit, then replies and messages. Returns whether the pass was cut
    /// short having started frames, so another step should follow at once.
    /// (A capped pass that started nothing, say because its frames are
    /// still winding down from a kill, waits for the next event instead of
    /// spinning.)
    async fn step(&mut self, requests: Vec<Request>, ticked: bool) -> Result<bool, Error> {
        let now = now_ms();
        let (reads, writes): (Vec<_>, Vec<_>) = requests.into_iter().partition(Request::is_read);
        // Between steps the farm holds nothing uncommitted, so a read
        // answered before this step changes anything shows durable state
        // only, and need not wait for this step's commit. Requests in one
        // batch were in flight together, so none was owed an order.
        let mut replies: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
        for r in reads {
            self.handle(r, now, &mut replies);
        }
        for r in replies.drain(..) {
            r();
        }
        if ticked {
            self.farm.tick(now);
            self.retention.archive(&mut self.farm, now);
            self.prune_events(now).await;
        }
        let mut written = 0;
        // A client's change to hosts or the structure must show in its
        // next read at once.
        let urgent = writes
            .iter()
            .any(|r| matches!(r, Request::Lock(..) | Request::Admin(..)));
        for r in writes {
            written += self.handle(r, now, &mut replies);
        }
        // A big submit or retry already makes this commit long: it leaves
        // the frames it would start to the next step.
        let budget = self.max_starts.saturating_sub(written);
        if budget == 0 {
            return self.finish(replies, urgent, ticked).await.map(|()| true);
        }
        let t0 = std::time::Instant::now();
        let mut more = false;
        if let Some(snapshot) = self.farm.snapshot(now) {
            let mut plan = sched::plan(snapshot);
            let planned = plan.frames();
            let capped = cap(&mut plan, budget, &snapshot.reservations);
            let (demands, hosts) = (snapshot.demands.len(), snapshot.hosts.len());
            let t1 = std::time::Instant::now();
            let started = self.farm.apply_plan(&plan, now);
            more = capped && started > 0;
            self.recorder.pass.observe(t0.elapsed());
            let pickups = self.farm.take_pickups();
            if !pickups.is_empty() {
                let mut local = self.recorder.pickup.local();
                for ms in pickups {
                    local.observe_ms(ms);
                }
                self.recorder.pickup.add(&local);
            }
            tracing::debug!(
                demands,
                hosts,
                assignments = plan.assignments.len(),
                planned,
                frames = plan.frames(),
                started,
                capped,
                waiting_layers = plan.waits.len(),
                reservations = plan.reservations.len(),
                plan_ms = (t1 - t0).as_secs_f64() * 1e3,
                apply_ms = t1.elapsed().as_secs_f64() * 1e3,
                "scheduling pass"
            );
        }
        // Nothing left to do: the committed view need not trail the farm.
        let settled = !more && self.rx.is_empty();
        self.finish(replies, urgent || settled, ticked).await?;
        Ok(more)
    }

    /// Commits what the step changed, then answers and sends.
    async fn finish(
        &mut self,
        replies: Vec<Box<dyn FnOnce() + Send>>,
        urgent: bool,
        ticked: bool,
    ) -> Result<(), Error> {
        let dirty = self.farm.take_dirty();
        let outgoing = self.farm.take_outgoing();
        let touched = Touched::of(&dirty);
        let identity_changed = !self.changes.is_empty();
        if !dirty.is_empty() || identity_changed || !self.audit.is_empty() {
            let now = now_ms();
            let mut batch = to_batch(dirty, now);
            batch.identity = std::mem::take(&mut self.changes);
            batch.audit = std::mem::take(&mut self.audit);
            for a in batch.attempts.iter().filter(|a| a.outcome.is_some()) {
                self.logs.forget(a.id);
            }
            let t = std::time::Instant::now();
            self.store.commit(&batch).await.map_err(Error::Store)?;
            self.recorder.commit.observe(t.elapsed());
            self.record_ended(&batch);
            tracing::debug!(
                attempts = batch.attempts.len(),
                frames = batch.frames.len(),
                commit_ms = t.elapsed().as_secs_f64() * 1e3,
                "commit"
            );
            // Durable now, and never before: followers may see them.
            self.hub.publish(batch.events);
        }
        // Before any answer: a caller must find what it was told is done
        // in its next read, and a token it was told is revoked refused.
        self.publisher.publish(&self.farm, touched, urgent, ticked);
        if ticked {
            self.retention.clean(&self.store, &self.logs);
        }
        if identity_changed {
            self.gate.publish(self.identity.clone());
        }
        for r in replies {
            r();
        }
        for o in outgoing {
            let msg = match o.msg {
                ServerMsg::Registered {
                    host,
                    heartbeat_ms,
                    lease_ms,
                    log_sizes,
                } => ServerMsg::Registered {
                    host,
                    heartbeat_ms,
                    lease_ms,
                    log_sizes: log_sizes
                        .into_keys()
                        .map(|a| (a, self.logs.size(a)))
                        .collect(),
                },
                m => m,
            };
            if let Some((_, tx)) = self.sessions.get(&o.session) {
                let _ = tx.send(msg);
            }
        }
        Ok(())
    }

    /// Counts the attempts a committed batch ended, and how long each ran.
    fn record_ended(&self, batch: &Batch) {
        let mut runtime = self.recorder.runtime.local();
        let mut ended: Vec<(&'static str, u64)> = Vec::new();
        for a in &batch.attempts {
            let Some(o) = a.outcome else { continue };
            if let Some(end) = a.ended_at {
                runtime.observe_ms(end - a.started_at);
            }
            let name = outcome_label(o);
            match ended.iter_mut().find(|(n, _)| *n == name) {
                Some((_, c)) => *c += 1,
                None => ended.push((name, 1)),
            }
        }
        if !runtime.is_empty() {
            self.recorder.runtime.add(&runtime);
        }
        for (name, n) in ended {
            self.recorder.ended(name, n);
        }
    }

    /// Handles one request; returns the frames it wrote (a submit's or an
    /// action's), which count against the step's budget.
    fn handle(&mut self, r: Request, now: i64, replies: &mut Vec<Box<dyn FnOnce() + Send>>) -> u64 {
        fn later<T: Send + 'static>(
            replies: &mut Vec<Box<dyn FnOnce() + Send>>,
            tx: Reply<T>,
            v: Result<T, CoreError>,
        ) {
            replies.push(Box::new(move || {
                let _ = tx.send(v);
            }));
        }
        match r {
            Request::Submit(caller, job, tx) => {
                let v = self.submit(&caller, job, now);
                let written = v.as_ref().map_or(0, |s| s.frames as u64);
                later(replies, tx, v);
                return written;
            }
            Request::Frames(caller, q, state, tx) => {
                let v =
                    access::job(&self.farm, &caller.who, AuthAction::Read, &q.job).and_then(|()| {
                        self.farm.frames_page(
                            &q.job,
                            &FrameSelect {
                                layer: q.layer.as_deref(),
                                state,
                                host: q.host.as_deref(),
                                after: q.after,
                                skip: usize::try_from(q.offset).unwrap_or(usize::MAX),
                                limit: q.limit as usize,
                            },
                        )
                    });
                later(replies, tx, v)
            }
            Request::Frame(caller, id, tx) => {
                let farm = &self.farm;
                let v = farm.frame_detail(id).and_then(|d| {
                    access::job(farm, &caller.who, AuthAction::Read, &d.job_id.to_string())
                        .map(|()| d)
                });
                later(replies, tx, v)
            }
            Request::Running(caller, q, tx) => {
                let who = &caller.who;
                // Quiet: no output since `before` (by the log store's
                // memory; none recorded counts as none since the start, and
                // the API asks the disk about those).
                let before = q
                    .quiet_ms
                    .map(|ms| now.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX)));
                let v = self.logs.with_writes(|written| {
                    let mut v = self
                        .farm
                        .running_frames(q.host.as_deref(), |a, owner, show| {
                            let last = written.get(&a.id).copied().unwrap_or(a.started_at);
                            before.is_none_or(|b| last < b)
                                && kiln_core::auth::authorize(
                                    who,
                                    kiln_core::auth::Action::Read,
                                    kiln_core::auth::Target::Job {
                                        id: a.job.0,
                                        owner,
                                        show,
                                    },
                                )
                                .is_allowed()
                        });
                    if let Ok(v) = &mut v {
                        for r in v.iter_mut() {
                            r.last_output_at = written.get(&AttemptId(r.attempt_id)).copied();
                        }
                    }
                    v
                });
                later(replies, tx, v)
            }
            Request::LogTarget(caller, job, frame, tx) => {
                let farm = &self.farm;
                let v = access::job(farm, &caller.who, AuthAction::ReadSecrets, &job)
                    .and_then(|()| farm.resolve_frame(&job, &frame))
                    .map(|f| LogTarget {
                        frame: f.id,
                        attempt: f.attempt.map(|a| (a, f.attempts)),
                        running: f.state == FrameState::Running
                            || f.attempt.is_some_and(|a| farm.live_attempt(a).is_some()),
                        state: farm.display_state(f),
                        live: f.attempt.and_then(|a| farm.live_usage(a)),
                    });
                later(replies, tx, v)
            }
            Request::LogTargets(caller, job, layer, frame, tx) => {
                let farm = &self.farm;
                let v = access::job(farm, &caller.who, AuthAction::ReadSecrets, &job)
                    .and_then(|()| farm.log_targets(&job, layer.as_deref(), frame.as_deref()));
                later(replies, tx, v)
            }
            Request::Act(caller, action, job, targets, state, tx) => {
                let v = self.act(&caller, action, &job, &targets, state, now);
                let written = v.as_ref().map_or(0, |&n| n as u64);
                later(replies, tx, v);
                return written;
            }
            Request::Lock(caller, host, locked, tx) => {
                let v = self.lock(&caller, &host, locked, now);
                later(replies, tx, v)
            }
            // Like every write, the reply waits for the commit of the batch
            // holding the change (see `step`).
            Request::Admin(caller, cmd, tx) => {
                let v = self.admin(&caller, cmd, now);
                later(replies, tx, v)
            }
            Request::Identity(caller, ask, tx) => {
                let v = self.identity_cmd(&caller, ask, now);
                later(replies, tx, v)
            }
            Request::Login(ask, tx) => {
                let v = self.login(ask, now);
                later(replies, tx, v)
            }
            Request::Join(ask, tx) => {
                let v = self.join(ask, now);
                later(replies, tx, v)
            }
            Request::Audit(draft) => self.record(draft, now),
            Request::Attach(session, host, tx) => {
                self.sessions.insert(session, (host, tx));
            }
            Request::CloseSessions => {
                self.sessions.clear();
                self.hub.close();
            }
            Request::Worker(ev) => {
                if let WorkerEvent::Disconnected { session } = ev {
                    self.sessions.remove(&session);
                }
                self.farm.worker_event(ev, now);
            }
        }
        0
    }
}

impl<S: Store> Applier<S> {
    /// Once a minute, drops the events older than the retention. A minute's
    /// worth at a time keeps each delete short.
    async fn prune_events(&mut self, now: i64) {
        const EVERY_MS: i64 = 60_000;
        if now - self.pruned_at < EVERY_MS {
            return;
        }
        self.pruned_at = now;
        let t = std::time::Instant::now();
        // Nothing acknowledged hangs on it: a failure waits for the next.
        match self
            .store
            .prune_events(now.saturating_sub(self.retention_ms))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(
                pruned = n,
                ms = t.elapsed().as_secs_f64() * 1e3,
                "events pruned"
            ),
            Err(e) => tracing::warn!("pruning old events failed: {e}"),
        }
        // Webhooks' delivery logs are kept as long as the events.
        let before = now.saturating_sub(self.retention_ms);
        if let Err(e) = self.store.prune_deliveries(before).await {
            tracing::warn!("pruning old webhook deliveries failed: {e}");
        }
    }
}

/// Cuts `plan` to its first `max` frames; returns whether it cut any. The
/// plan lists frames in the order the policy hands them out (reserved
/// hosts, then the show and job furthest below their shares first), so the
/// kept part is what a smaller farm would have started, and the next pass,
/// seeing those frames running, picks up where this one stopped.
///
/// A layer that lost frames to the cut is not waiting for any of the
/// plan's reasons, so its wait is dropped: it would otherwise count as
/// starved (the clock for reserving hosts for wide frames). A reservation
/// (from `held`, the pass's input) that the plan served by a frame now cut
/// is put back, so its host stays held for that frame.
fn cap(plan: &mut Plan, max: u64, held: &[Reservation]) -> bool {
    let mut total = 0u64;
    let Some(at) = plan.assignments.iter().position(|a| {
        total += a.count as u64;
        total > max
    }) else {
        return false;
    };
    // Frames of assignment `at` beyond the cap.
    let over = (total - max) as u32;
    let mut cut = plan.assignments.split_off(at);
    if cut[0].count > over {
        let mut kept = cut[0];
        kept.count -= over;
        cut[0].count = over;
        plan.assignments.push(kept);
    }
    let cut_layers: HashSet<_> = cut.iter().map(|a| a.layer).collect();
    plan.waits.retain(|(layer, _)| !cut_layers.contains(layer));
    let on = |list: &[sched::Assignment], r: &Reservation| {
        list.iter().any(|a| a.layer == r.layer && a.host == r.host)
    };
    for r in held {
        let served_by_cut = on(&cut, r) && !on(&plan.assignments, r);
        if served_by_cut && !plan.reservations.iter().any(|k| k.layer == r.layer) {
            plan.reservations.push(*r);
        }
    }
    true
}

/// An outcome as the `outcome` label of `kiln_frames_ended_total`.
fn outcome_label(o: Outcome) -> &'static str {
    match o {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed => "failed",
        Outcome::TimedOut => "timed_out",
        Outcome::Killed => "killed",
        Outcome::Lost => "lost",
        Outcome::OutOfMemory => "oom",
    }
}

fn to_batch(d: Dirty, now: i64) -> Batch {
    Batch {
        archived: d.archived.into_iter().map(|j| (j, now)).collect(),
        jobs: d.jobs,
        layers: d.layers,
        frames: d.frames,
        attempts: d.attempts,
        hosts: d.hosts,
        structure: d.structure,
        events: d.events,
        ..Batch::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_core::farm::FarmConfig;
    use kiln_core::link::WorkerMsg;
    use kiln_core::model::{HostId, HostReport, LayerId, Resources};
    use kiln_core::sched::{Assignment, Wait};
    use kiln_core::spec::{parse_and_validate, Format, SubmitContext};
    use kiln_store::SqliteStore;

    /// A farm-wide admin: these tests are about batching, not rights.
    fn admin() -> Caller {
        Caller {
            who: Principal::user(
                "admin",
                vec![kiln_core::auth::Grant::farm(kiln_core::auth::Right::Admin)],
            ),
            from: String::new(),
        }
    }

    fn a(layer: i64, host: i64, count: u32) -> Assignment {
        Assignment {
            layer: LayerId(layer),
            host: HostId(host),
            grant: Resources::default(),
            count,
        }
    }

    fn counts(plan: &Plan) -> Vec<(i64, i64, u32)> {
        plan.assignments
            .iter()
            .map(|a| (a.layer.0, a.host.0, a.count))
            .collect()
    }

    #[test]
    fn a_plan_within_the_cap_is_left_alone() {
        let mut plan = Plan {
            assignments: vec![a(1, 1, 5), a(2, 1, 5)],
            waits: vec![(LayerId(2), Wait::Busy)],
            ..Plan::default()
        };
        let before = plan.clone();
        assert!(!cap(&mut plan, 10, &[]));
        assert_eq!(plan, before);
    }

    #[test]
    fn a_capped_plan_keeps_its_first_frames_and_drops_waits_of_cut_layers() {
        let mut plan = Plan {
            assignments: vec![a(1, 1, 5), a(2, 1, 5), a(1, 2, 5)],
            waits: vec![(LayerId(3), Wait::Busy), (LayerId(2), Wait::Busy)],
            ..Plan::default()
        };
        assert!(cap(&mut plan, 7, &[]));
        assert_eq!(counts(&plan), [(1, 1, 5), (2, 1, 2)]);
        // Layer 2 still has frames to start, but not for want of a host.
        assert_eq!(plan.waits, [(LayerId(3), Wait::Busy)]);

        let mut plan = Plan {
            assignments: vec![a(1, 1, 5), a(2, 1, 5)],
            ..Plan::default()
        };
        assert!(cap(&mut plan, 5, &[]));
        assert_eq!(counts(&plan), [(1, 1, 5)], "no empty assignment");
    }

    #[test]
    fn a_reservation_served_by_a_cut_frame_is_kept() {
        let held = [
            Reservation {
                layer: LayerId(9),
                host: HostId(9),
                since: 1,
            },
            Reservation {
                layer: LayerId(8),
                host: HostId(8),
                since: 1,
            },
        ];
        let mut plan = Plan {
            assignments: vec![a(8, 8, 1), a(1, 1, 5), a(9, 9, 1)],
            ..Plan::default()
        };
        assert!(cap(&mut plan, 6, &held));
        // Layer 8's frame started on its host; layer 9's was cut, so its
        // host stays held for it rather than going to smaller frames.
        assert_eq!(plan.reservations, [held[0]]);
    }

    /// An applier on a fresh store with `hosts` hosts of `cores` cores,
    /// every message to them on one channel.
    struct Rig {
        tx: mpsc::UnboundedSender<Request>,
        out: mpsc::UnboundedReceiver<ServerMsg>,
        committed: Committed,
        _dir: tempfile::TempDir,
    }

    async fn rig(hosts: u64, cores: u32, max_starts: u64, tick: Duration) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("kiln.db"))
            .await
            .unwrap();
        let logs = LogStore::new(dir.path().join("logs")).unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let farm = Farm::new(FarmConfig::default());
        let mut applier = Applier::new(
            farm,
            Arc::new(store),
            Arc::new(logs),
            rx,
            Gate::default(),
            0,
        );
        applier.max_starts = max_starts;
        applier.tick = tick;
        let (out_tx, out) = mpsc::unbounded_channel();
        for session in 1..=hosts {
            tx.send(Request::Attach(
                session,
                format!("h{session}"),
                out_tx.clone(),
            ))
            .unwrap();
            let msg = WorkerMsg::Register {
                host: HostReport {
                    name: format!("h{session}"),
                    cores: cores * 100,
                    memory_kb: 1 << 30,
                    ..Default::default()
                },
                running: vec![],
            };
            tx.send(Request::Worker(WorkerEvent::Message { session, msg }))
                .unwrap();
        }
        let committed = applier.committed();
        tokio::spawn(applier.run());
        Rig {
            tx,
            out,
            committed,
            _dir: dir,
        }
    }

    impl Rig {
        async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> T {
            let (tx, rx) = oneshot::channel();
            self.tx.send(make(tx)).unwrap();
            rx.await.unwrap().unwrap()
        }

        async fn submit(&self, frames: u32) -> Submitted {
            let yaml = format!(
                "name: fill\nlayers:\n  - {{name: r, command: r, frames: 1-{frames}, memory: 1M}}\n"
            );
            let ctx = SubmitContext::default();
            let job = parse_and_validate(&yaml, Format::Yaml, &ctx).unwrap();
            self.ask(|tx| Request::Submit(admin(), job, tx)).await
        }

        /// Launches received until `n` have come, or none for `quiet`.
        async fn launches(&mut self, n: usize, quiet: Duration) -> usize {
            let mut seen = 0;
            while seen < n {
                match tokio::time::timeout(quiet, self.out.recv()).await {
                    Ok(Some(ServerMsg::Launch(_))) => seen += 1,
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            seen
        }
    }

    #[tokio::test]
    async fn a_read_during_a_big_fill_shows_the_last_commit() {
        let mut rig = rig(10, 100, 10, Duration::from_millis(1000)).await;
        let job = rig.submit(1000).await;
        assert_eq!(job.frames, 1000);
        // The submit's step wrote 1000 frames, over its budget of 10, so
        // it started none; its commit is what a read sees now.
        let jobs = rig
            .committed
            .list_jobs(&admin().who, &JobQuery::every(true));
        assert_eq!(jobs[0].counts.running, 0, "{jobs:?}");
        assert_eq!(jobs[0].counts.waiting, 1000, "{jobs:?}");
        assert_eq!(rig.launches(1000, Duration::from_secs(30)).await, 1000);
        let jobs = rig
            .committed
            .list_jobs(&admin().who, &JobQuery::every(true));
        assert_eq!(jobs[0].counts.running, 1000, "{jobs:?}");
        let d = rig.committed.job(&admin().who, "fill").unwrap();
        assert_eq!(d.cores_used, 100_000, "{d:?}");
    }

    use kiln_core::webhook::{Delivery, DeliveryQuery, Webhook};

    /// A store whose commits wait until the test lets them go.
    struct Held {
        inner: SqliteStore,
        go: tokio::sync::Semaphore,
    }

    #[kiln_api::async_trait]
    impl Store for Held {
        async fn load(&self) -> kiln_store::Result<kiln_store::Image> {
            self.inner.load().await
        }
        async fn commit(&self, batch: &Batch) -> kiln_store::Result<()> {
            self.go.acquire().await.unwrap().forget();
            self.inner.commit(batch).await
        }
        async fn attempts(&self, f: FrameId) -> kiln_store::Result<Vec<kiln_core::model::Attempt>> {
            self.inner.attempts(f).await
        }
        async fn attempt(
            &self,
            id: AttemptId,
        ) -> kiln_store::Result<Option<kiln_core::model::Attempt>> {
            self.inner.attempt(id).await
        }
        async fn audit(
            &self,
            q: &kiln_core::auth::audit::AuditQuery,
        ) -> kiln_store::Result<Vec<AuditRecord>> {
            self.inner.audit(q).await
        }
        async fn history(&self, q: &HistoryQuery) -> kiln_store::Result<Vec<HistoryRow>> {
            self.inner.history(q).await
        }
        async fn purge(&self, before: i64, max_jobs: u32) -> kiln_store::Result<u32> {
            self.inner.purge(before, max_jobs).await
        }
        async fn events_after(
            &self,
            after: u64,
            since: Option<i64>,
            limit: u32,
            filter: &kiln_core::event::EventFilter,
        ) -> kiln_store::Result<Vec<kiln_core::event::Event>> {
            self.inner.events_after(after, since, limit, filter).await
        }
        async fn prune_events(&self, before: i64) -> kiln_store::Result<u64> {
            self.inner.prune_events(before).await
        }
        async fn create_webhook(&self, w: &Webhook) -> kiln_store::Result<i64> {
            self.inner.create_webhook(w).await
        }
        async fn webhooks(&self) -> kiln_store::Result<Vec<Webhook>> {
            self.inner.webhooks().await
        }
        async fn delete_webhook(&self, id: i64) -> kiln_store::Result<bool> {
            self.inner.delete_webhook(id).await
        }
        async fn record_deliveries(
            &self,
            tries: &[Delivery],
            cursors: &[(i64, u64)],
        ) -> kiln_store::Result<()> {
            self.inner.record_deliveries(tries, cursors).await
        }
        async fn deliveries(
            &self,
            q: &DeliveryQuery,
            visible: &[i64],
        ) -> kiln_store::Result<Vec<Delivery>> {
            self.inner.deliveries(q, visible).await
        }
        async fn prune_deliveries(&self, before: i64) -> kiln_store::Result<u64> {
            self.inner.prune_deliveries(before).await
        }
        async fn save_farm_sample(
            &self,
            s: &kiln_core::view::FarmSample,
        ) -> kiln_store::Result<()> {
            self.inner.save_farm_sample(s).await
        }
        async fn farm_samples(
            &self,
            since: i64,
        ) -> kiln_store::Result<Vec<kiln_core::view::FarmSample>> {
            self.inner.farm_samples(since).await
        }
        async fn prune_farm_samples(&self, before: i64) -> kiln_store::Result<u64> {
            self.inner.prune_farm_samples(before).await
        }
    }

    #[tokio::test]
    async fn a_write_shows_in_reads_once_committed_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let inner = SqliteStore::open(&dir.path().join("kiln.db"))
            .await
            .unwrap();
        let store = Arc::new(Held {
            inner,
            go: tokio::sync::Semaphore::new(0),
        });
        let logs = LogStore::new(dir.path().join("logs")).unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let applier = Applier::new(
            Farm::new(FarmConfig::default()),
            store.clone(),
            Arc::new(logs),
            rx,
            Gate::default(),
            0,
        );
        let committed = applier.committed();
        tokio::spawn(applier.run());
        let (submit_tx, mut submit) = oneshot::channel();
        let yaml = "name: one\nlayers: [{name: r, command: r, frames: 1}]\n";
        let job = parse_and_validate(yaml, Format::Yaml, &SubmitContext::default()).unwrap();
        tx.send(Request::Submit(admin(), job, submit_tx)).unwrap();
        // The applier has made the job in memory and waits on its commit.
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert!(submit.try_recv().is_err(), "acknowledged before its commit");
            let jobs = committed.list_jobs(&admin().who, &JobQuery::every(true));
            assert!(jobs.is_empty(), "a read saw an uncommitted job: {jobs:?}");
            assert!(committed.job(&admin().who, "one").is_err());
        }
        store.go.add_permits(1000);
        assert_eq!(submit.await.unwrap().unwrap().frames, 1);
        // Acknowledged: the caller's next read shows it.
        assert_eq!(
            committed
                .list_jobs(&admin().who, &JobQuery::every(true))
                .len(),
            1
        );
        assert_eq!(committed.job(&admin().who, "one").unwrap().job.total, 1);
    }

    #[tokio::test]
    async fn job_pages_walk_the_committed_jobs_by_id_with_filters_and_rights() {
        let rig = rig(0, 1, 100, Duration::from_secs(3600)).await;
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(rig.submit(1).await.id);
        }
        let page = |after: Option<i64>, limit: u32| JobQuery {
            after,
            limit,
            ..JobQuery::every(true)
        };
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let p = rig.committed.list_jobs(&admin().who, &page(after, 2));
            assert!(p.len() <= 2);
            seen.extend(p.iter().map(|j| j.id));
            if p.len() < 2 {
                break;
            }
            after = p.last().map(|j| j.id);
        }
        assert_eq!(seen, ids, "every job once, in order");
        let none = JobQuery {
            name: Some("nope".into()),
            ..JobQuery::every(true)
        };
        assert!(rig.committed.list_jobs(&admin().who, &none).is_empty());
        // A page holds only jobs the reader may read: a viewer of another
        // show walks an empty list.
        let stranger = Principal::user(
            "sam",
            vec![kiln_core::auth::Grant::show(
                kiln_core::auth::Right::Viewer,
                "elsewhere",
            )],
        );
        assert!(rig
            .committed
            .list_jobs(&stranger, &page(None, 2))
            .is_empty());
    }

    #[tokio::test]
    async fn a_capped_fill_goes_on_without_ticks_or_requests() {
        // No tick for an hour: only the applier itself can go on filling.
        let mut rig = rig(10, 100, 10, Duration::from_secs(3600)).await;
        rig.submit(1000).await;
        let launched = rig.launches(1000, Duration::from_secs(30)).await;
        assert_eq!(launched, 1000, "the fill stopped after a capped step");
        let jobs = rig
            .committed
            .list_jobs(&admin().who, &JobQuery::every(true));
        assert_eq!(jobs[0].counts.running, 1000);
    }
}
