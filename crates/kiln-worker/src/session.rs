//! The worker's side of the link as a state machine with no IO: what to
//! say when a connection opens, how long to back off, when the lease has
//! run out, which frame ends still await the server's acknowledgement, and
//! how much of each log the server already has.
//!
//! Startup and reconnect are one path: every connection begins with
//! [`Session::register`], listing every attempt the worker still holds.

use kiln_core::link::{FrameEnded, RunningFrame, ServerMsg, WorkerMsg};
use kiln_core::model::{AttemptId, HostReport};
use std::collections::{BTreeMap, VecDeque};

/// Milliseconds on the worker's monotonic clock.
pub type Ms = u64;

const BACKOFF_START_MS: Ms = 100;
const BACKOFF_MAX_MS: Ms = 5_000;
/// A connection registered this long is sound: the next failure starts
/// the backoff over. One that fails sooner (a server that drops every link
/// after registering it) keeps doubling it.
const STABLE_MS: Ms = 10_000;

/// What the IO loop must do after feeding the session an input.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Send(WorkerMsg),
    Launch(kiln_core::link::Launch),
    Kill(AttemptId, String),
    /// The lease ran out: the server has given these frames up.
    KillAll(String),
    /// The connection is silent or dead: drop it and reconnect.
    Reconnect,
    /// The server acknowledged these ends: their local logs can go.
    Forget(Vec<AttemptId>),
}

#[derive(Debug, Default)]
pub struct Session {
    connected: bool,
    registered: bool,
    backoff_ms: Ms,
    registered_at: Ms,
    heartbeat_ms: Ms,
    lease_ms: Ms,
    kill_grace_ms: Ms,
    /// When the lease was last renewed: the send time of the newest
    /// heartbeat the server acknowledged (never later than the server's own
    /// view, so the worker gives frames up before the server does).
    lease_from: Ms,
    /// The latest renewal itself (`lease_from` also moves when the lease
    /// runs out, so as not to kill twice); 0: never leased.
    renewed: Ms,
    /// The lease as the server counts it.
    server_lease_ms: Ms,
    seq: u64,
    sent: VecDeque<(u64, Ms)>,
    last_heartbeat: Ms,
    /// Ends not yet acknowledged, resent on every new connection.
    unacked: BTreeMap<AttemptId, FrameEnded>,
    /// Bytes of each held attempt's log the server has.
    log_sent: BTreeMap<AttemptId, u64>,
}

impl Session {
    /// `kill_grace_ms`: how long a killed frame may take to die (SIGTERM to
    /// SIGKILL), taken off the server's lease.
    pub fn new(kill_grace_ms: Ms) -> Session {
        Session {
            kill_grace_ms,
            backoff_ms: BACKOFF_START_MS,
            heartbeat_ms: 5_000,
            lease_ms: 60_000,
            ..Default::default()
        }
    }

    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// The first message of a connection: every attempt still held, running
    /// or ended but unacknowledged, so the server can reconcile.
    pub fn register(&mut self, host: HostReport, running: Vec<RunningFrame>, now: Ms) -> WorkerMsg {
        self.connected = true;
        self.registered = false;
        self.sent.clear();
        self.sent.push_back((0, now));
        let mut held = running;
        held.extend(self.unacked.values().map(|e| RunningFrame {
            attempt: e.attempt,
            max_rss_kb: e.max_rss_kb,
            cpu_ms: e.cpu_ms,
            ..Default::default()
        }));
        WorkerMsg::Register {
            host,
            running: held,
        }
    }

    /// The registration written by [`Session::register`] left at `now`: the
    /// lease it renews counts from here. Connecting can take long (a server
    /// short of file descriptors accepts late), and counting from before it
    /// would expire the lease at the first tick after `Registered`, killing
    /// the frames launched with it.
    pub fn register_sent(&mut self, now: Ms) {
        if let Some(first) = self.sent.front_mut().filter(|s| s.0 == 0) {
            first.1 = first.1.max(now);
        }
    }

    /// The connection failed or ended; returns how long to wait before the
    /// next try (doubling, capped, reset once a registration has held for
    /// [`STABLE_MS`]).
    pub fn disconnected(&mut self) -> Ms {
        self.connected = false;
        self.registered = false;
        let wait = self.backoff_ms;
        self.backoff_ms = (self.backoff_ms * 2).min(BACKOFF_MAX_MS);
        wait
    }

    pub fn on_server(&mut self, msg: ServerMsg, now: Ms) -> Vec<Action> {
        match msg {
            ServerMsg::Registered {
                heartbeat_ms,
                lease_ms,
                log_sizes,
                ..
            } => {
                self.registered = true;
                self.registered_at = now;
                self.heartbeat_ms = (heartbeat_ms as Ms).max(50);
                // Frames must be gone, not just signalled, before the server
                // can requeue them: leave room for the SIGTERM grace and a
                // heartbeat's worth of checking.
                let lease_ms = lease_ms as Ms;
                self.lease_ms = lease_ms
                    .saturating_sub(self.kill_grace_ms + self.heartbeat_ms)
                    .max(lease_ms / 2);
                self.lease_from = self.sent.front().map_or(now, |s| s.1);
                self.renewed = self.lease_from;
                self.server_lease_ms = lease_ms;
                self.last_heartbeat = now;
                for (a, size) in self.log_sent.iter_mut() {
                    *size = log_sizes.get(a).copied().unwrap_or(0);
                }
                Vec::new()
            }
            ServerMsg::Launch(l) => {
                self.log_sent.insert(l.attempt, 0);
                vec![Action::Launch(l)]
            }
            ServerMsg::Kill { attempt, reason } => vec![Action::Kill(attempt, reason)],
            ServerMsg::Acked(ids) => {
                for a in &ids {
                    self.unacked.remove(a);
                    self.log_sent.remove(a);
                }
                vec![Action::Forget(ids)]
            }
            ServerMsg::HeartbeatAck { seq } => {
                while let Some(&(s, t)) = self.sent.front() {
                    if s > seq {
                        break;
                    }
                    self.sent.pop_front();
                    if s == seq {
                        self.lease_from = self.lease_from.max(t);
                        self.renewed = self.renewed.max(t);
                    }
                }
                Vec::new()
            }
        }
    }

    /// Called often; heartbeats when due, and notices a dead connection or
    /// an expired lease. `running` is whether any frame runs now.
    pub fn tick(
        &mut self,
        now: Ms,
        running: bool,
        hb: impl FnOnce() -> (f64, u64, Vec<RunningFrame>),
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if running && self.lease_from > 0 && now.saturating_sub(self.lease_from) > self.lease_ms {
            out.push(Action::KillAll(format!(
                "lost contact with the server for over {} s: it has given these frames up",
                self.lease_ms / 1000
            )));
            self.lease_from = now;
        }
        if !self.registered {
            return out;
        }
        if now.saturating_sub(self.registered_at) >= STABLE_MS {
            self.backoff_ms = BACKOFF_START_MS;
        }
        if now.saturating_sub(self.lease_from) > 3 * self.heartbeat_ms + 1_000 {
            out.push(Action::Reconnect);
            return out;
        }
        if now.saturating_sub(self.last_heartbeat) >= self.heartbeat_ms {
            self.last_heartbeat = now;
            self.seq += 1;
            self.sent.push_back((self.seq, now));
            let (load, free_memory_kb, running) = hb();
            out.push(Action::Send(WorkerMsg::Heartbeat {
                load,
                free_memory_kb,
                running,
                seq: self.seq,
            }));
        }
        out
    }

    /// When frames must get SIGTERM and, at the latest, SIGKILL unless the
    /// lease is renewed: what the frames' supervisors enforce if this
    /// daemon cannot (it is killed or frozen). SIGTERM when this session
    /// would kill them; SIGKILL half a heartbeat before the server may
    /// requeue them, whatever the kill grace. `None` before any lease.
    pub fn lease_ends(&self) -> Option<(Ms, Ms)> {
        if self.renewed == 0 {
            return None;
        }
        let term_at = self.renewed + self.lease_ms;
        let kill_at = (self.renewed + self.server_lease_ms)
            .saturating_sub(self.heartbeat_ms / 2)
            .max(term_at);
        Some((term_at, kill_at))
    }

    /// A frame ended: keep its end until acknowledged. Sending it is the
    /// caller's, and only once the server has every byte of its log
    /// (`unacked` lists it for that); so nothing here offers to send it.
    pub fn frame_ended(&mut self, ended: FrameEnded) {
        self.unacked.insert(ended.attempt, ended);
    }

    /// The size of an unacknowledged end's log, learnt after it ended.
    pub fn set_log_size(&mut self, attempt: AttemptId, size: u64) {
        if let Some(e) = self.unacked.get_mut(&attempt) {
            e.log_size = size;
        }
    }

    /// Ends to resend after a registration, once their logs are sent.
    pub fn unacked(&self) -> Vec<FrameEnded> {
        self.unacked.values().cloned().collect()
    }

    pub fn log_sent(&self, attempt: AttemptId) -> u64 {
        self.log_sent.get(&attempt).copied().unwrap_or(0)
    }

    pub fn set_log_sent(&mut self, attempt: AttemptId, size: u64) {
        self.log_sent.insert(attempt, size);
    }

    /// Attempts whose logs may still need shipping.
    pub fn held(&self) -> Vec<AttemptId> {
        self.log_sent.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_core::link::Exit;
    use kiln_core::model::HostId;

    fn registered(s: &mut Session, now: Ms) {
        s.register(HostReport::default(), vec![], now);
        s.on_server(
            ServerMsg::Registered {
                host: HostId(1),
                heartbeat_ms: 1_000,
                lease_ms: 10_000,
                log_sizes: Default::default(),
            },
            now,
        );
    }

    fn ended(a: i64) -> FrameEnded {
        FrameEnded {
            attempt: AttemptId(a),
            exit: Exit::Exited(0),
            started_at: 0,
            ended_at: 1,
            max_rss_kb: 0,
            cpu_ms: 0,
            log_size: 10,
            usage: Vec::new(),
            outputs: Vec::new(),
        }
    }

    #[test]
    fn backoff_doubles_and_resets_once_a_registration_holds() {
        let mut s = Session::new(0);
        assert_eq!(s.disconnected(), 100);
        assert_eq!(s.disconnected(), 200);
        for _ in 0..10 {
            s.disconnected();
        }
        assert_eq!(s.disconnected(), BACKOFF_MAX_MS);
        // A link dropped right after its registration does not reset it...
        registered(&mut s, 0);
        s.tick(1_000, false, || (0.0, 0, vec![]));
        assert_eq!(s.disconnected(), BACKOFF_MAX_MS);
        // ...one that held does.
        registered(&mut s, 20_000);
        s.tick(20_000 + STABLE_MS, false, || (0.0, 0, vec![]));
        assert_eq!(s.disconnected(), 100);
    }

    #[test]
    fn ends_are_kept_until_acked_and_listed_on_reconnect() {
        let mut s = Session::new(0);
        registered(&mut s, 0);
        s.frame_ended(ended(7));
        s.disconnected();
        s.frame_ended(ended(8));
        let WorkerMsg::Register { running, .. } = s.register(HostReport::default(), vec![], 10)
        else {
            panic!()
        };
        let held: Vec<i64> = running.iter().map(|r| r.attempt.0).collect();
        assert_eq!(held, vec![7, 8]);
        s.on_server(ServerMsg::Acked(vec![AttemptId(7)]), 20);
        assert_eq!(s.unacked().len(), 1);
    }

    #[test]
    fn a_slow_connect_does_not_expire_the_lease_of_frames_launched_after_it() {
        let mut s = Session::new(0);
        registered(&mut s, 1_000);
        s.disconnected();
        // The next connection takes 20 s to open, longer than the lease.
        s.register(HostReport::default(), vec![], 2_000);
        s.register_sent(22_000);
        s.on_server(
            ServerMsg::Registered {
                host: HostId(1),
                heartbeat_ms: 1_000,
                lease_ms: 10_000,
                log_sizes: Default::default(),
            },
            22_050,
        );
        // A frame launched with the registration runs: nothing is killed.
        let out = s.tick(22_300, true, || (0.0, 0, vec![]));
        assert!(
            !out.iter()
                .any(|a| matches!(a, Action::KillAll(_) | Action::Reconnect)),
            "{out:?}"
        );
    }

    #[test]
    fn heartbeats_when_due_and_lease_expires_without_acks() {
        let mut s = Session::new(0);
        registered(&mut s, 1_000);
        let hb = || (0.0, 0, vec![]);
        assert!(s.tick(1_500, true, hb).is_empty());
        let out = s.tick(2_000, true, hb);
        assert!(matches!(
            out[0],
            Action::Send(WorkerMsg::Heartbeat { seq: 1, .. })
        ));
        s.on_server(ServerMsg::HeartbeatAck { seq: 1 }, 2_010);
        // Silence: the connection is declared dead after 3 heartbeats...
        let out = s.tick(6_100, true, hb);
        assert_eq!(out, vec![Action::Reconnect]);
        s.disconnected();
        // ...and the lease, counted from the acked heartbeat's send time,
        // runs out 10 s less a heartbeat (the margin to check and kill in)
        // after it, even while disconnected.
        assert!(s.tick(10_900, true, hb).is_empty());
        let out = s.tick(11_100, true, hb);
        assert!(matches!(out[0], Action::KillAll(_)));
    }

    #[test]
    fn supervisors_get_the_lease_as_last_renewed() {
        let mut s = Session::new(5_000);
        assert_eq!(s.lease_ends(), None);
        registered(&mut s, 1_000);
        // Lease 10 s, heartbeat 1 s, grace 5 s: SIGTERM when the session
        // gives up (10 - 5 - 1 = 4 s, but at least half the lease), SIGKILL
        // half a heartbeat before the server's 10 s.
        assert_eq!(s.lease_ends(), Some((6_000, 10_500)));
        s.tick(2_000, true, || (0.0, 0, vec![]));
        s.on_server(ServerMsg::HeartbeatAck { seq: 1 }, 2_100);
        assert_eq!(s.lease_ends(), Some((7_000, 11_500)));
        // Running out moves nothing: only a renewal does.
        s.disconnected();
        let out = s.tick(7_100, true, || (0.0, 0, vec![]));
        assert!(matches!(out[0], Action::KillAll(_)));
        assert_eq!(s.lease_ends(), Some((7_000, 11_500)));
    }
}
