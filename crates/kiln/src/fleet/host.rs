//! One simulated render host: the real worker protocol, driven by the
//! worker's own session state machine, over a connection shared with other
//! simulated hosts; its frames "run" by waiting out their simulated runtime.
//!
//! Everything a host does happens in its one task: a few timers (the next
//! frame end, the session tick) and the server's stream, so thousands of
//! hosts cost thousands of small tasks, not threads.

use super::sim;
use super::stats::Stats;
use kiln_core::link::{Exit, FrameEnded, Launch, RunningFrame, ServerMsg, WorkerMsg};
use kiln_core::model::{AttemptId, HostReport};
use kiln_proto::client::{attach_worker, LinkChannel};
use kiln_worker::session::{Action, Ms, Session};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamExt;

/// Settings every simulated host shares.
pub struct Shared {
    pub speed: f64,
    pub seed: u64,
    pub stats: Arc<Stats>,
    pub stop: watch::Receiver<bool>,
}

struct SimFrame {
    started_at: i64,
    launched: Instant,
    ends: Instant,
    exit: Exit,
    max_rss_kb: u64,
    cores: u32,
}

pub struct SimHost {
    report: HostReport,
    session: Session,
    frames: HashMap<AttemptId, SimFrame>,
    /// Frame ends by time; entries of frames already gone are skipped.
    due: BinaryHeap<Reverse<(Instant, AttemptId)>>,
    used_cores: u32,
    shared: Arc<Shared>,
    epoch: Instant,
    /// Spreads the hosts' ticks (and so their heartbeats) over the period.
    phase: Duration,
    tick: Duration,
    stopping: bool,
}

fn wall_ms() -> i64 {
    kiln_server::now_ms()
}

impl SimHost {
    pub fn new(report: HostReport, shared: Arc<Shared>, phase: f64) -> SimHost {
        let tick = Duration::from_millis(250);
        SimHost {
            report,
            // A simulated frame dies the moment it is killed: no grace.
            session: Session::new(0),
            frames: HashMap::new(),
            due: BinaryHeap::new(),
            used_cores: 0,
            shared,
            epoch: Instant::now(),
            phase: tick.mul_f64(phase),
            tick,
            stopping: false,
        }
    }

    fn now(&self) -> Ms {
        // Never 0, as in the real worker: 0 means "no lease yet".
        1_000 + self.epoch.elapsed().as_millis() as Ms
    }

    fn running(&self) -> Vec<RunningFrame> {
        let now = Instant::now();
        self.frames
            .iter()
            .map(|(&attempt, f)| RunningFrame {
                attempt,
                rss_kb: f.max_rss_kb,
                max_rss_kb: f.max_rss_kb,
                cpu_ms: cpu_ms(now - f.launched, f.cores),
                log_size: 0,
            })
            .collect()
    }

    fn next_due(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((t, _))| *t)
    }

    fn ticker(&self) -> tokio::time::Interval {
        let mut t = tokio::time::interval_at(Instant::now() + self.phase, self.tick);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    }

    fn launch(&mut self, l: Launch, out: &mpsc::UnboundedSender<WorkerMsg>) {
        if self.frames.contains_key(&l.attempt) {
            return;
        }
        let stats = &self.shared.stats;
        if self.used_cores + l.cores > self.report.cores {
            stats.overcommits.fetch_add(1, Relaxed);
        }
        self.used_cores += l.cores;
        stats.launched(l.cores);
        let plan = sim::plan(&l, self.shared.speed, self.shared.seed);
        let now = Instant::now();
        let frame = SimFrame {
            started_at: wall_ms(),
            launched: now,
            ends: now + plan.wait,
            exit: plan.exit,
            max_rss_kb: plan.max_rss_kb,
            cores: l.cores,
        };
        self.due.push(Reverse((frame.ends, l.attempt)));
        self.frames.insert(l.attempt, frame);
        if self.stopping {
            // A launch that crossed our goodbye: refuse it, as the worker does.
            self.end(
                l.attempt,
                Some(Exit::Killed("the fleet is shutting down".into())),
                Some(out),
            );
        }
    }

    /// Ends a frame, with its planned exit unless `exit` overrides it.
    fn end(
        &mut self,
        attempt: AttemptId,
        exit: Option<Exit>,
        out: Option<&mpsc::UnboundedSender<WorkerMsg>>,
    ) {
        let Some(f) = self.frames.remove(&attempt) else {
            return;
        };
        self.used_cores -= f.cores;
        let exit = exit.unwrap_or(f.exit);
        self.shared.stats.ended(f.cores, &exit);
        let mut ended = FrameEnded {
            attempt,
            exit,
            started_at: f.started_at,
            ended_at: wall_ms(),
            max_rss_kb: f.max_rss_kb,
            cpu_ms: cpu_ms(f.launched.elapsed(), f.cores),
            log_size: 0,
            usage: Vec::new(),
            outputs: Vec::new(),
        };
        ended.log_size = log_text(&self.report.name, &ended).len() as u64;
        // A simulated log is sent whole with its end; an end made while
        // disconnected goes with the next registration's resends.
        let send = self.session.is_registered().then(|| ended.clone());
        self.session.frame_ended(ended);
        if let (Some(ended), Some(out)) = (send, out) {
            send_end(&self.report.name, ended, out);
        }
    }

    /// Ends the frames whose time has come.
    fn end_due(&mut self, out: Option<&mpsc::UnboundedSender<WorkerMsg>>) {
        let now = Instant::now();
        while let Some(&Reverse((t, attempt))) = self.due.peek() {
            if t > now {
                break;
            }
            self.due.pop();
            if self.frames.get(&attempt).is_some_and(|f| f.ends == t) {
                self.end(attempt, None, out);
            }
        }
    }

    fn kill_all(&mut self, reason: &str, out: Option<&mpsc::UnboundedSender<WorkerMsg>>) {
        let all: Vec<AttemptId> = self.frames.keys().copied().collect();
        for a in all {
            self.end(a, Some(Exit::Killed(reason.to_string())), out);
        }
    }

    /// Carries out the session's actions; true when the connection must drop.
    fn apply(&mut self, actions: Vec<Action>, out: &mpsc::UnboundedSender<WorkerMsg>) -> bool {
        let mut reconnect = false;
        for a in actions {
            match a {
                Action::Send(m) => {
                    let _ = out.send(m);
                }
                Action::Launch(l) => self.launch(l, out),
                Action::Kill(attempt, reason) => {
                    self.end(attempt, Some(Exit::Killed(reason)), Some(out))
                }
                Action::KillAll(reason) => self.kill_all(&reason, Some(out)),
                Action::Reconnect => reconnect = true,
                // No local logs to delete: the session already dropped the ends.
                Action::Forget(_) => {}
            }
        }
        reconnect
    }

    fn session_tick(&mut self, out: &mpsc::UnboundedSender<WorkerMsg>) -> bool {
        let now = self.now();
        let load = self.used_cores as f64 / 100.0;
        let rss: u64 = self.frames.values().map(|f| f.max_rss_kb).sum();
        let free = self.report.memory_kb.saturating_sub(rss);
        let frames = if self.session.is_registered() {
            self.running()
        } else {
            Vec::new()
        };
        let actions = self
            .session
            .tick(now, !self.frames.is_empty(), || (load, free, frames));
        self.apply(actions, out)
    }

    /// Shutting down: kill every frame, tell the server to send no more.
    fn stop(&mut self, out: &mpsc::UnboundedSender<WorkerMsg>) {
        self.stopping = true;
        if self.session.is_registered() {
            let _ = out.send(WorkerMsg::Goodbye);
        }
        self.kill_all("the fleet is shutting down", Some(out));
    }

    fn done(&self) -> bool {
        self.stopping && self.frames.is_empty() && self.session.unacked().is_empty()
    }
}

/// Simulated frames burn their cores flat out.
fn cpu_ms(wall: Duration, centicores: u32) -> u64 {
    wall.as_millis() as u64 * centicores as u64 / 100
}

/// The one line a simulated frame logs; the end's `log_size` is its length.
/// Made from the end alone, so that an end resent after a reconnect comes
/// with the same bytes.
fn log_text(host: &str, e: &FrameEnded) -> Vec<u8> {
    let how = match &e.exit {
        // In the worker's words, for whoever reads why the frame was retried.
        Exit::OutOfMemory { rss_kb } => format!(
            "killed: out of memory: used {}, more than the frame reserved",
            kiln_core::size::format_kb(*rss_kb)
        ),
        exit => format!("{exit:?}"),
    };
    format!(
        "kiln fleet: simulated on {host}, ran {} ms, {how}\n",
        e.ended_at - e.started_at
    )
    .into_bytes()
}

/// An end goes after its log bytes: the server trims the log to the size
/// the end gives and syncs it before recording the end.
fn send_end(host: &str, e: FrameEnded, out: &mpsc::UnboundedSender<WorkerMsg>) {
    let _ = out.send(WorkerMsg::Log {
        attempt: e.attempt,
        offset: 0,
        data: log_text(host, &e),
    });
    let _ = out.send(WorkerMsg::Ended(e));
}

/// Runs one host until the fleet stops: connect, register, serve the
/// stream; on a drop, back off and do it again, as `kiln worker` does.
pub async fn run(mut h: SimHost, link: LinkChannel, auth: kiln_proto::client::HostAuth) {
    let mut stop = h.shared.stop.clone();
    loop {
        let (tx, rx) = mpsc::unbounded_channel();
        let now = h.now();
        let reg = h.session.register(h.report.clone(), h.running(), now);
        let _ = tx.send(reg);
        if let Ok(stream) = attach_worker(&link, &auth, UnboundedReceiverStream::new(rx)).await {
            if connected(&mut h, stream, &tx, &mut stop).await {
                return;
            }
        }
        if h.stopping || *stop.borrow() {
            // Frames still held are left to the server's --down-after.
            return;
        }
        let wait = Duration::from_millis(h.session.disconnected());
        h.shared.stats.reconnects.fetch_add(1, Relaxed);
        // Frames keep ending while away; their ends wait for the next link.
        let until = Instant::now() + wait;
        let mut tick = h.ticker();
        loop {
            let due = h.next_due().unwrap_or(until).min(until);
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {
                    h.end_due(None);
                    if Instant::now() >= until { break; }
                }
                _ = tick.tick() => {
                    // Only the lease can fire while away; nothing is sent.
                    let (tx, _rx) = mpsc::unbounded_channel();
                    h.session_tick(&tx);
                }
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// Serves one connection; true once the host has said goodbye and the
/// server has acknowledged all its ends.
async fn connected(
    h: &mut SimHost,
    stream: impl tokio_stream::Stream<Item = kiln_proto::Result<ServerMsg>>,
    out: &mpsc::UnboundedSender<WorkerMsg>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    tokio::pin!(stream);
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    let wake = tokio::time::sleep_until(h.next_due().unwrap_or(far));
    tokio::pin!(wake);
    let mut armed = h.next_due();
    let mut tick = h.ticker();
    let mut was_registered = false;
    let stats = h.shared.stats.clone();
    let result = loop {
        tokio::select! {
            m = stream.next() => match m {
                Some(Ok(msg)) => {
                    let registering = !h.session.is_registered();
                    let now = h.now();
                    let actions = h.session.on_server(msg, now);
                    if registering && h.session.is_registered() {
                        was_registered = true;
                        stats.connected.fetch_add(1, Relaxed);
                        // What the server is missing: ends (after their logs).
                        for e in h.session.unacked() {
                            send_end(&h.report.name, e, out);
                        }
                        if h.stopping || *h.shared.stop.borrow() {
                            h.stop(out);
                        }
                    }
                    if h.apply(actions, out) {
                        break false;
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(host = %h.report.name, "connection lost: {e}");
                    break false;
                }
                None => break false,
            },
            _ = &mut wake, if armed.is_some() => h.end_due(Some(out)),
            _ = tick.tick() => {
                if h.session_tick(out) {
                    break false;
                }
            }
            _ = stop.wait_for(|s| *s), if !h.stopping => {
                if !h.session.is_registered() {
                    break false;
                }
                h.stop(out);
            }
        }
        if h.done() {
            break true;
        }
        let next = h.next_due();
        if next != armed {
            wake.as_mut().reset(next.unwrap_or(far));
            armed = next;
        }
    };
    if was_registered {
        stats.connected.fetch_sub(1, Relaxed);
    }
    result
}
