//! The applier: the one task that owns the farm. It takes events in
//! batches, applies them, runs the scheduler, commits everything the batch
//! changed in one store transaction, and only then answers requests and
//! sends launches (group commit: durable before acknowledged, one fsync
//! for many changes).

use crate::logs::LogStore;
use crate::{now_ms, Error};
use kiln_core::farm::{Action, Admin, Dirty, Farm, WorkerEvent};
use kiln_core::link::ServerMsg;
use kiln_core::model::{AttemptId, FrameId, FrameState};
use kiln_core::spec::NewJob;
use kiln_core::view::*;
use kiln_core::{sched, Error as CoreError};
use kiln_store::{Batch, Store};
use std::collections::HashMap;
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
}

pub enum Request {
    Submit(NewJob, Reply<Submitted>),
    ListJobs(bool, Reply<Vec<JobSummary>>),
    Job(String, Reply<JobDetail>),
    Frames(
        String,
        Option<String>,
        Option<DisplayState>,
        Reply<Vec<FrameInfo>>,
    ),
    LogTarget(String, String, Reply<LogTarget>),
    Act(
        Action,
        String,
        Vec<String>,
        Option<DisplayState>,
        String,
        Reply<u32>,
    ),
    Hosts(Reply<Vec<HostInfo>>),
    Lock(String, bool, Reply<HostInfo>),
    Counts(oneshot::Sender<(usize, usize)>),
    /// A wrangler's change; the reply is the line saying what changed.
    Admin(Admin, Reply<String>),
    Structure(Reply<StructureView>),
    /// A worker connection opened; messages for it go to the sender.
    Attach(u64, mpsc::UnboundedSender<ServerMsg>),
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
    sessions: HashMap<u64, mpsc::UnboundedSender<ServerMsg>>,
}

/// Most events taken into one transaction.
const MAX_BATCH: usize = 8192;

impl<S: Store> Applier<S> {
    pub fn new(
        farm: Farm,
        store: Arc<S>,
        logs: Arc<LogStore>,
        rx: mpsc::UnboundedReceiver<Request>,
    ) -> Self {
        Applier {
            farm,
            store,
            logs,
            rx,
            sessions: HashMap::new(),
        }
    }

    /// Runs until every request sender is gone. A failed commit stops the
    /// applier (and the server): memory may then hold changes the store
    /// does not, and the only safe state is the store's, read at restart.
    pub async fn run(mut self) -> Result<(), Error> {
        let mut tick = tokio::time::interval(Duration::from_millis(1000));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pending: Vec<Request> = Vec::new();
        loop {
            tokio::select! {
                r = self.rx.recv() => match r {
                    Some(r) => pending.push(r),
                    None => return Ok(()),
                },
                _ = tick.tick() => self.farm.tick(now_ms()),
            }
            while pending.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(r) => pending.push(r),
                    Err(_) => break,
                }
            }
            self.step(std::mem::take(&mut pending)).await?;
        }
    }

    async fn step(&mut self, requests: Vec<Request>) -> Result<(), Error> {
        let now = now_ms();
        let mut replies: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
        for r in requests {
            self.handle(r, now, &mut replies);
        }
        let snapshot = self.farm.snapshot(now);
        if !snapshot.demands.is_empty() {
            let plan = sched::plan(&snapshot);
            let started = self.farm.apply_plan(&plan, now);
            tracing::debug!(
                demands = snapshot.demands.len(),
                hosts = snapshot.hosts.len(),
                assignments = plan.assignments.len(),
                frames = plan.frames(),
                started,
                waiting_layers = plan.waits.len(),
                reservations = plan.reservations.len(),
                "scheduling pass"
            );
        }
        let dirty = self.farm.take_dirty();
        let outgoing = self.farm.take_outgoing();
        if !dirty.is_empty() {
            let batch = to_batch(dirty);
            for a in batch.attempts.iter().filter(|a| a.outcome.is_some()) {
                self.logs.forget(a.id);
            }
            self.store.commit(&batch).await.map_err(Error::Store)?;
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
            if let Some(tx) = self.sessions.get(&o.session) {
                let _ = tx.send(msg);
            }
        }
        Ok(())
    }

    fn handle(&mut self, r: Request, now: i64, replies: &mut Vec<Box<dyn FnOnce() + Send>>) {
        fn later<T: Send + 'static>(
            replies: &mut Vec<Box<dyn FnOnce() + Send>>,
            tx: Reply<T>,
            v: Result<T, CoreError>,
        ) {
            replies.push(Box::new(move || {
                let _ = tx.send(v);
            }));
        }
        let farm = &mut self.farm;
        match r {
            Request::Submit(job, tx) => {
                let name = job.name.clone();
                let v = farm.submit(job, now).map(|(id, frames)| Submitted {
                    id: id.0,
                    name,
                    frames,
                });
                later(replies, tx, v)
            }
            Request::ListJobs(all, tx) => later(replies, tx, Ok(farm.list_jobs(all))),
            Request::Job(key, tx) => later(replies, tx, farm.job_detail(&key)),
            Request::Frames(job, layer, state, tx) => {
                later(replies, tx, farm.list_frames(&job, layer.as_deref(), state))
            }
            Request::LogTarget(job, frame, tx) => {
                let v = farm.resolve_frame(&job, &frame).map(|f| LogTarget {
                    frame: f.id,
                    attempt: f.attempt.map(|a| (a, f.attempts)),
                    running: f.state == FrameState::Running
                        || f.attempt.is_some_and(|a| farm.live_attempt(a).is_some()),
                    state: farm.display_state(f),
                });
                later(replies, tx, v)
            }
            Request::Act(action, job, targets, state, user, tx) => later(
                replies,
                tx,
                farm.act(action, &job, &targets, state, &user, now),
            ),
            Request::Hosts(tx) => later(replies, tx, Ok(farm.hosts())),
            Request::Lock(host, locked, tx) => {
                let v = farm.set_lock(&host, locked).map(|id| {
                    farm.hosts()
                        .into_iter()
                        .find(|h| h.id == id.0)
                        .expect("just locked")
                });
                later(replies, tx, v)
            }
            Request::Counts(tx) => {
                let counts = (farm.job_count(), farm.host_count());
                replies.push(Box::new(move || {
                    let _ = tx.send(counts);
                }));
            }
            // Like every write, the reply waits for the commit of the batch
            // holding the change (see `step`).
            Request::Admin(cmd, tx) => later(replies, tx, farm.admin(cmd, now)),
            Request::Structure(tx) => later(replies, tx, Ok(farm.structure())),
            Request::Attach(session, tx) => {
                self.sessions.insert(session, tx);
            }
            Request::CloseSessions => self.sessions.clear(),
            Request::Worker(ev) => {
                if let WorkerEvent::Disconnected { session } = ev {
                    self.sessions.remove(&session);
                }
                farm.worker_event(ev, now);
            }
        }
    }
}

fn to_batch(d: Dirty) -> Batch {
    Batch {
        jobs: d.jobs,
        layers: d.layers,
        frames: d.frames,
        attempts: d.attempts,
        hosts: d.hosts,
        structure: d.structure,
    }
}
