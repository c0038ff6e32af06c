//! Hosts and their workers: registration and reconciliation, heartbeats,
//! frame ends, lost connections and hosts declared DOWN.

use super::*;
use crate::link::{Exit, FrameEnded, RunningFrame, WorkerMsg};

/// Something a worker connection did, tagged with its session.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerEvent {
    Message { session: u64, msg: WorkerMsg },
    Disconnected { session: u64 },
}

/// Tries of a frame that fails by its job's own doing: one more after the
/// first, in case the first host was the odd one out (a working directory
/// not mounted there), then it is DEAD with the reason, rather than going
/// round the farm for all its retries.
pub const OWN_FAULT_TRIES: u32 = 2;

/// Whose a failed attempt most likely is, for what it counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blame {
    /// Possibly the host's: it counts towards the host's failure streak.
    Host,
    /// The job's own, the same on any host: tried at most
    /// [`OWN_FAULT_TRIES`] times.
    Job,
    /// A bad output (a black or missing image): retried with the layer's
    /// retries, elsewhere if it can, but never held against the host, where
    /// a mistyped path or an unlit scene would send every host to repair.
    Output,
}

impl Farm {
    /// Handles one worker event. `Register` binds `session` to a host;
    /// other messages from a session that is no longer its host's current
    /// one are ignored, so a stale connection can never overwrite state.
    pub fn worker_event(&mut self, ev: WorkerEvent, now: Millis) {
        self.clock = now;
        match ev {
            WorkerEvent::Message {
                session,
                msg: WorkerMsg::Register { host, running },
            } => self.register(session, host, running, now),
            WorkerEvent::Message { session, msg } => {
                let Some(host) = self.host_of_session(session) else {
                    return;
                };
                self.touch(host, now);
                match msg {
                    WorkerMsg::Register { .. } => unreachable!("handled above"),
                    WorkerMsg::Heartbeat {
                        load,
                        free_memory_kb: _,
                        running,
                        seq,
                    } => {
                        // Not something the scheduler reads.
                        if let Some(h) = self.hosts.quiet_mut(&host) {
                            h.host.report.load = load;
                        }
                        self.update_usage(&running, now);
                        self.send(host, ServerMsg::HeartbeatAck { seq });
                    }
                    WorkerMsg::Log { .. } => {}
                    WorkerMsg::Goodbye => {
                        if let Some(h) = self.hosts.get_mut(&host) {
                            h.draining = true;
                        }
                    }
                    WorkerMsg::Ended(ended) => {
                        let id = ended.attempt;
                        self.frame_ended(host, ended, now);
                        self.send(host, ServerMsg::Acked(vec![id]));
                    }
                }
            }
            WorkerEvent::Disconnected { session } => {
                if let Some(host) = self.sessions.remove(&session) {
                    let h = self.hosts.get_mut(&host).expect("found");
                    h.session = None;
                    // After a goodbye the host is gone on purpose. Otherwise
                    // it stays UP: its frames may still be running and the
                    // worker reconnects; silence past the deadline is what
                    // declares it DOWN.
                    if h.draining {
                        self.host_down(host, "its worker shut down before reporting it", now);
                    }
                }
            }
        }
    }

    /// The host a live session belongs to.
    pub fn host_of_session(&self, session: u64) -> Option<HostId> {
        self.sessions.get(&session).copied()
    }

    fn touch(&mut self, host: HostId, now: Millis) {
        // Not something the scheduler reads.
        if let Some(h) = self.hosts.quiet_mut(&host) {
            h.host.last_seen = now;
        }
    }

    fn register(
        &mut self,
        session: u64,
        report: HostReport,
        running: Vec<RunningFrame>,
        now: Millis,
    ) {
        let mut fresh = false;
        let id = match self.host_by_name.get(&report.name) {
            Some(&id) => id,
            None => {
                fresh = true;
                let id = HostId(Self::next_id(&mut self.ids.host));
                self.host_by_name.insert(report.name.clone(), id);
                let allocation = self.allocation_for(&report.tags);
                self.hosts.insert(
                    id,
                    HostEntry {
                        host: Host {
                            id,
                            report: report.clone(),
                            allocation,
                            tags: Vec::new(),
                            state: HostState::Up,
                            lock: LockState::Open,
                            registered_at: now,
                            last_seen: now,
                        },
                        used: Resources::default(),
                        running: BTreeSet::new(),
                        session: None,
                        draining: false,
                        failed_jobs: BTreeSet::new(),
                        tags: Default::default(),
                    },
                );
                id
            }
        };
        let h = self.hosts.get_mut(&id).expect("present");
        h.host.report = report;
        // A new host is UP from its first record; it still says so.
        let up = h.host.state != HostState::Up || fresh;
        if h.host.state != HostState::Repair {
            h.host.state = HostState::Up;
        }
        h.host.last_seen = now;
        h.host.registered_at = now;
        h.draining = false;
        if let Some(old) = h.session.replace(session) {
            self.sessions.remove(&old);
        }
        self.sessions.insert(session, id);
        self.dirty.hosts.insert(id);
        if up && self.hosts[&id].host.state == HostState::Up {
            self.emit(EventKind::HostUp, About::host(id));
        }
        self.refresh_tags(id);

        // `running` lists every attempt the worker holds, including ones
        // that ended while the server was away: their logs and ends follow
        // on this connection, so they stay in flight until then.
        let reported: BTreeSet<AttemptId> = running.iter().map(|r| r.attempt).collect();
        let known: Vec<AttemptId> = self.hosts[&id].running.iter().copied().collect();
        for attempt in known {
            if !reported.contains(&attempt) {
                self.lose_attempt(attempt, "the worker restarted without it", now);
            }
        }
        let mut log_sizes = BTreeMap::new();
        for r in &running {
            // Still wanted only if it is the frame's live attempt on this host;
            // a kill sent while the worker was away may never have arrived.
            let current = self.in_flight.get(&r.attempt).is_some_and(|f| {
                f.attempt.host == id
                    && self.frames.get(&f.attempt.frame).is_some_and(|fr| {
                        fr.attempt == Some(r.attempt)
                            && fr.state == FrameState::Running
                            && self
                                .jobs
                                .get(&fr.job)
                                .is_some_and(|j| j.job.state == JobState::Active)
                    })
            });
            if current {
                log_sizes.insert(r.attempt, 0);
            } else {
                self.send(
                    id,
                    ServerMsg::Kill {
                        attempt: r.attempt,
                        reason: "this attempt was given up while the host was away".into(),
                    },
                );
            }
        }
        self.update_usage(&running, now);
        // Registered must be the first message on the connection.
        let registered = Outgoing {
            host: id,
            session,
            msg: ServerMsg::Registered {
                host: id,
                heartbeat_ms: self.config.heartbeat_ms,
                lease_ms: self.config.down_after_ms.clamp(0, u32::MAX as i64) as u32,
                log_sizes,
            },
        };
        let pos = self
            .outgoing
            .iter()
            .position(|o| o.session == session)
            .unwrap_or(self.outgoing.len());
        self.outgoing.insert(pos, registered);
    }

    fn update_usage(&mut self, running: &[RunningFrame], now: Millis) {
        for r in running {
            if let Some(f) = self.in_flight.get_mut(&r.attempt) {
                f.rss_kb = r.rss_kb;
                f.attempt.max_rss_kb = f.attempt.max_rss_kb.max(r.max_rss_kb);
                f.attempt.cpu_ms = f.attempt.cpu_ms.max(r.cpu_ms);
                // A frame not sampled yet (just started) reports nothing.
                if r.rss_kb > 0 || r.cpu_ms > 0 {
                    f.series.push(crate::series::UsageSample {
                        t: now,
                        rss_kb: r.rss_kb,
                        cpu_ms: r.cpu_ms,
                    });
                }
            }
        }
    }

    /// Records how an attempt ended. Only the frame's current attempt on the
    /// host it was given to may change the frame; anything else is a late
    /// report of an attempt already given up, and only frees its resources.
    fn frame_ended(&mut self, host: HostId, ended: FrameEnded, now: Millis) {
        let Some(inf) = self.in_flight.get(&ended.attempt) else {
            return;
        };
        if inf.attempt.host != host {
            return;
        }
        let (outcome, status, signal, reason) = match &ended.exit {
            Exit::Exited(0) => (Outcome::Succeeded, Some(0), None, None),
            Exit::Exited(c) => (Outcome::Failed, Some(*c), None, None),
            Exit::Signaled(s) => (Outcome::Failed, None, Some(*s), None),
            Exit::TimedOut => (
                Outcome::TimedOut,
                None,
                None,
                Some("ran past its timeout".to_string()),
            ),
            Exit::Killed(r) => (Outcome::Killed, None, None, Some(r.clone())),
            Exit::FailedToStart(r) | Exit::JobCannotStart(r) => {
                (Outcome::Failed, None, None, Some(r.clone()))
            }
            Exit::OutOfMemory { rss_kb } => (
                Outcome::OutOfMemory,
                None,
                None,
                Some(format!(
                    "used {} of memory, more than the {} it reserved; retried with more",
                    crate::size::format_kb(*rss_kb),
                    crate::size::format_kb(inf.attempt.memory_kb)
                )),
            ),
        };
        let (reason, own) = match self.own_fault(inf.attempt.frame, &ended.exit) {
            Some(why) => (Some(why), true),
            None => (reason, false),
        };
        let checks: Vec<_> = ended.outputs.into_iter().map(|o| o.check).collect();
        // A clean exit that left a bad output fails, where its layer asks
        // for that: the frame is retried (elsewhere, as for any failure).
        let (outcome, reason, blame) = match (outcome, crate::output::problem(&checks)) {
            (Outcome::Succeeded, Some(p)) if self.fails_bad_outputs(inf.attempt.frame) => (
                Outcome::Failed,
                Some(format!("bad output: {p}")),
                Blame::Output,
            ),
            (o, _) if own => (o, reason, Blame::Job),
            (o, _) => (o, reason, Blame::Host),
        };
        if let Exit::OutOfMemory { rss_kb } = ended.exit {
            let frame = inf.attempt.frame;
            self.learn_out_of_memory(frame, rss_kb);
        }
        let mut attempt = self.finish_attempt(ended.attempt, outcome, now);
        attempt.started_at = ended.started_at.min(attempt.started_at);
        attempt.ended_at = Some(ended.ended_at.max(attempt.started_at));
        attempt.exit_status = status;
        attempt.exit_signal = signal;
        attempt.max_rss_kb = attempt.max_rss_kb.max(ended.max_rss_kb);
        attempt.cpu_ms = attempt.cpu_ms.max(ended.cpu_ms);
        attempt.reason = reason;
        attempt.outputs = checks;
        self.settle_frame(&attempt, blame, now);
        self.ended.push(attempt);
    }

    /// Whether the frame's layer fails a frame whose outputs look bad.
    fn fails_bad_outputs(&self, frame: FrameId) -> bool {
        self.frames
            .get(&frame)
            .and_then(|f| self.layers.get(&f.layer))
            .is_some_and(|l| l.layer.bad_outputs == crate::output::BadOutputs::Fail)
    }

    /// Why an attempt failed by the job's own doing, the same on any host,
    /// or `None` if it may be the host's: a start the worker found
    /// impossible for the job's reasons, or a shell that could not find
    /// (127) or execute (126) the command, by the shell's convention.
    fn own_fault(&self, frame: FrameId, exit: &Exit) -> Option<String> {
        let shell = || {
            self.frames
                .get(&frame)
                .and_then(|f| self.layers.get(&f.layer))
                .is_some_and(|l| matches!(l.layer.command, Command::Shell(_)))
        };
        match exit {
            Exit::JobCannotStart(r) => Some(r.clone()),
            Exit::Exited(127) if shell() => {
                Some("command not found (the shell exited 127; its log says which)".into())
            }
            Exit::Exited(126) if shell() => {
                Some("command not executable (the shell exited 126; its log says which)".into())
            }
            _ => None,
        }
    }

    /// Gives up an attempt whose host no longer has it; the frame is
    /// requeued without counting a failure.
    pub(super) fn lose_attempt(&mut self, attempt: AttemptId, why: &str, now: Millis) {
        if !self.in_flight.contains_key(&attempt) {
            return;
        }
        let mut a = self.finish_attempt(attempt, Outcome::Lost, now);
        a.reason = Some(why.to_string());
        self.settle_frame(&a, Blame::Host, now);
        self.ended.push(a);
    }

    /// Removes an attempt from its host and returns it closed.
    fn finish_attempt(&mut self, attempt: AttemptId, outcome: Outcome, now: Millis) -> Attempt {
        let (job, frame) = {
            let a = &self.in_flight[&attempt].attempt;
            (a.job, a.frame)
        };
        if let Some(layer) = self.frames.get(&frame).map(|f| f.layer) {
            self.charge(attempt, job, layer, false);
        }
        let inf = self.in_flight.remove(&attempt).expect("caller checked");
        if let Some(h) = self.hosts.quiet_mut(&inf.attempt.host) {
            h.used.sub(&inf.grant);
            h.running.remove(&attempt);
            self.mirror.host_free(h.host.id, h.free());
        }
        self.dirty.attempts.remove(&attempt);
        let mut a = inf.attempt;
        a.outcome = Some(outcome);
        a.ended_at = Some(now);
        a
    }

    /// Moves the attempt's frame on, if the attempt is still its current
    /// one. `own`: it failed by the job's own doing (see [`Farm::own_fault`]):
    /// a failure of the frame that says nothing of the host, so it never
    /// counts toward the host's verdict; and as it would fail the same
    /// anywhere, the frame is tried at most [`OWN_FAULT_TRIES`] times
    /// however many retries its layer allows.
    fn settle_frame(&mut self, a: &Attempt, blame: Blame, now: Millis) {
        let own = blame == Blame::Job;
        let Some(f) = self.frames.get_mut(&a.frame) else {
            return;
        };
        if f.attempt != Some(a.id) {
            return;
        }
        f.ended_at = a.ended_at;
        f.outcome = a.outcome;
        f.exit_status = a.exit_status;
        f.exit_signal = a.exit_signal;
        f.max_rss_kb = a.max_rss_kb;
        f.cpu_ms = a.cpu_ms;
        f.reason = a.reason.clone();
        f.outputs = a.outputs.clone();
        self.dirty.frames.insert(a.frame);
        if f.state != FrameState::Running {
            // A user already moved it on (kill, retry, eat).
            return;
        }
        let outcome = a.outcome.expect("closed attempt");
        let (job, layer, rss) = (f.job, f.layer, a.max_rss_kb);
        match outcome {
            Outcome::Succeeded => {
                self.fail_streaks.remove(&(job, a.host));
                if let Some(l) = self.layers.quiet_mut(&layer) {
                    l.learn_peak(rss);
                    l.ran_on(a.host);
                    if let Some(end) = a.ended_at {
                        l.runtime.add(end - a.started_at);
                    }
                    self.mirror.layer_learned(l);
                }
            }
            o if o.counts_as_failure() && blame == Blame::Host => {
                self.count_host_failure(job, a.host)
            }
            o if o.counts_as_failure() => {
                // Not the host's fault, but the same host would most likely
                // fail it again (a user or a mount missing there): the
                // retry goes elsewhere if it can.
                if let Some(l) = self.layers.quiet_mut(&layer) {
                    l.failed_own_on(a.host);
                    self.mirror.layer_learned(l);
                }
            }
            _ => {}
        }
        let f = self.frames.get_mut(&a.frame).expect("checked above");
        let to = match outcome {
            Outcome::Succeeded => FrameState::Succeeded,
            o if o.counts_as_failure() => {
                f.failures += 1;
                let mut retries = self.layers.get(&f.layer).map_or(0, |l| l.layer.retries);
                if own {
                    retries = retries.min(OWN_FAULT_TRIES - 1);
                }
                if f.failures > retries {
                    FrameState::Dead
                } else {
                    FrameState::Waiting
                }
            }
            _ => FrameState::Waiting,
        };
        self.set_state(a.frame, to, now);
        if to == FrameState::Waiting {
            let kind = if outcome.counts_as_failure() {
                EventKind::FrameFailed
            } else {
                EventKind::FrameRequeued
            };
            let about = About {
                host: Some(a.host),
                attempt: a.number,
                detail: a.reason.clone(),
                ..self.about_frame(a.frame, false)
            };
            self.emit(kind, about);
        }
    }

    /// A job's frame failed on a host. After `avoid_after` failures in a
    /// row the job stops using the host; a host several jobs stopped using
    /// goes to REPAIR. Both show in the CLI and can be undone there.
    fn count_host_failure(&mut self, job: JobId, host: HostId) {
        let streak = self.fail_streaks.entry((job, host)).or_insert(0);
        *streak += 1;
        if *streak < self.config.avoid_after {
            return;
        }
        self.fail_streaks.remove(&(job, host));
        // Avoiding the last host a job could use would stall it for good;
        // then the failures are the job's own and its retries deal with them.
        if !self.has_other_host(job, host) {
            return;
        }
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        if !j.job.avoid_hosts.contains(&host) {
            j.job.avoid_hosts.push(host);
            self.dirty.jobs.insert(job);
        }
        let Some(h) = self.hosts.get_mut(&host) else {
            return;
        };
        h.failed_jobs.insert(job);
        if h.failed_jobs.len() as u32 >= self.config.repair_after_jobs
            && h.host.state != HostState::Repair
        {
            h.host.state = HostState::Repair;
            self.dirty.hosts.insert(host);
            self.emit(EventKind::HostRepair, About::host(host));
        }
    }

    /// Whether the job has a host besides `host` that it could still use:
    /// in its facility, not avoided, not down or in repair.
    fn has_other_host(&self, job: JobId, host: HostId) -> bool {
        let Some(j) = self.jobs.get(&job) else {
            return false;
        };
        self.hosts.values().any(|h| {
            h.host.id != host
                && h.host.state == HostState::Up
                && !j.job.avoid_hosts.contains(&h.host.id)
                && self
                    .structure
                    .allocations
                    .get(&h.host.allocation)
                    .is_some_and(|a| a.facility == j.job.facility)
        })
    }

    /// A frame was killed for its memory: the layer reserves more from now
    /// on, and the peak counts as a sample so learning does not undo it.
    fn learn_out_of_memory(&mut self, frame: FrameId, rss_kb: u64) {
        let Some(layer) = self.frames.get(&frame).map(|f| f.layer) else {
            return;
        };
        let Some(l) = self.layers.get_mut(&layer) else {
            return;
        };
        let bumped = round_up_mb(rss_kb + rss_kb / 2);
        if bumped > l.layer.resources.memory_kb {
            l.layer.resources.memory_kb = bumped;
            self.dirty.layers.insert(layer);
        }
        l.learn_peak(rss_kb + rss_kb / 4);
    }

    /// Declares silent hosts DOWN and requeues their frames.
    pub fn tick(&mut self, now: Millis) {
        self.clock = now;
        let deadline = now - self.config.down_after_ms;
        let silent: Vec<HostId> = self
            .hosts
            .values()
            .filter(|h| {
                (h.host.state == HostState::Up || h.session.is_some() || !h.running.is_empty())
                    && h.host.state != HostState::Down
                    && h.host.last_seen < deadline
            })
            .map(|h| h.host.id)
            .collect();
        for id in silent {
            self.host_down(id, "its host stopped answering and was marked DOWN", now);
        }
    }

    fn host_down(&mut self, id: HostId, why: &str, now: Millis) {
        let h = self.hosts.get_mut(&id).expect("known host");
        let down = h.host.state == HostState::Up;
        if h.host.state != HostState::Repair {
            h.host.state = HostState::Down;
        }
        h.draining = false;
        if let Some(old) = h.session.take() {
            self.sessions.remove(&old);
        }
        self.dirty.hosts.insert(id);
        let attempts: Vec<AttemptId> = h.running.iter().copied().collect();
        if down {
            self.emit(EventKind::HostDown, About::host(id).detail(why));
        }
        for a in attempts {
            self.lose_attempt(a, why, now);
        }
    }

    /// Locks or unlocks a host by name or id. A locked host runs what it has
    /// but gets nothing new.
    pub fn set_lock(&mut self, key: &str, locked: bool, now: Millis) -> crate::Result<HostId> {
        self.clock = now;
        let id = self.resolve_host(key)?;
        let h = self.hosts.get_mut(&id).expect("resolved");
        let lock = if locked {
            LockState::Locked
        } else {
            LockState::Open
        };
        let changed = h.host.lock != lock;
        h.host.lock = lock;
        self.dirty.hosts.insert(id);
        if changed {
            let kind = if locked {
                EventKind::HostLocked
            } else {
                EventKind::HostUnlocked
            };
            self.emit(kind, About::host(id));
        }
        Ok(id)
    }
}

/// Memory reservations are kept in whole MiB.
pub(super) fn round_up_mb(kb: u64) -> u64 {
    kb.div_ceil(1024) * 1024
}
