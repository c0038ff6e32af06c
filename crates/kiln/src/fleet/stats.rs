//! The fleet's shared counters, the progress line they feed each second,
//! and the summary printed at exit.
//!
//! Hosts update the counters with relaxed atomics on every launch and end;
//! the moment a fill threshold is crossed is stamped by the launch that
//! crosses it, so fill times do not depend on the progress tick.

use kiln_core::link::Exit;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

pub struct Stats {
    start: Instant,
    /// `start` on the wall clock, to line fleet events up with others.
    start_unix_ms: i64,
    /// Centicores offered by the whole fleet.
    pub total_cores: u64,
    /// Busy centicores at which --until-busy (else 99 %) is reached.
    until_busy: u64,
    full: u64,
    pub connected: AtomicU64,
    pub busy: AtomicU64,
    pub started: AtomicU64,
    pub ended: AtomicU64,
    pub reconnects: AtomicU64,
    /// Launches that did not fit in what their host had left.
    pub overcommits: AtomicU64,
    /// Frames killed for passing their memory reservation.
    pub oom_kills: AtomicU64,
    peak_busy: AtomicU64,
    // Milliseconds since `start`, plus one so that 0 means "not yet".
    first_launch: AtomicU64,
    full_at: AtomicU64,
    until_busy_at: AtomicU64,
    /// Signalled once, when --until-busy is reached.
    pub reached: Notify,
}

/// What `kiln fleet` reports at exit (`--json`: this object on stdout).
#[derive(Debug, Serialize)]
pub struct Summary {
    pub hosts: u64,
    pub total_cores: f64,
    pub connected_hosts: u64,
    /// Milliseconds from the fleet's start to the first launch.
    pub first_launch_ms: Option<u64>,
    /// The first launch in milliseconds since the Unix epoch, to compare
    /// with when a job was submitted.
    pub first_launch_unix_ms: Option<i64>,
    /// From the first launch until 99 % of the cores were busy.
    pub fill_99_ms: Option<u64>,
    pub until_busy_pct: Option<f64>,
    /// From the first launch until --until-busy was reached.
    pub fill_until_busy_ms: Option<u64>,
    pub peak_busy_pct: f64,
    pub peak_launches_per_s: f64,
    pub frames_started: u64,
    pub frames_ended: u64,
    pub reconnects: u64,
    pub overcommits: u64,
    /// Frames killed for using more memory than they reserved (counted in
    /// `frames_ended`); the server retries them with more.
    pub oom_kills: u64,
    pub elapsed_ms: u64,
}

fn threshold(total: u64, pct: f64) -> u64 {
    ((total as f64 * pct / 100.0) - 1e-6).ceil().max(1.0) as u64
}

impl Stats {
    pub fn new(total_cores: u64, until_busy_pct: Option<f64>) -> Stats {
        Stats {
            start: Instant::now(),
            start_unix_ms: kiln_server::now_ms(),
            total_cores,
            until_busy: until_busy_pct.map_or(u64::MAX, |p| threshold(total_cores, p)),
            full: threshold(total_cores, 99.0),
            connected: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            started: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            overcommits: AtomicU64::new(0),
            oom_kills: AtomicU64::new(0),
            peak_busy: AtomicU64::new(0),
            first_launch: AtomicU64::new(0),
            full_at: AtomicU64::new(0),
            until_busy_at: AtomicU64::new(0),
            reached: Notify::new(),
        }
    }

    fn stamp(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }

    pub fn launched(&self, cores: u32) {
        self.started.fetch_add(1, Relaxed);
        let busy = self.busy.fetch_add(cores as u64, Relaxed) + cores as u64;
        self.peak_busy.fetch_max(busy, Relaxed);
        if self.first_launch.load(Relaxed) == 0 {
            let _ = self
                .first_launch
                .compare_exchange(0, self.stamp(), Relaxed, Relaxed);
        }
        if busy >= self.full && self.full_at.load(Relaxed) == 0 {
            let _ = self
                .full_at
                .compare_exchange(0, self.stamp(), Relaxed, Relaxed);
        }
        if busy >= self.until_busy
            && self
                .until_busy_at
                .compare_exchange(0, self.stamp(), Relaxed, Relaxed)
                .is_ok()
        {
            // notify_one keeps the permit if nobody is waiting yet.
            self.reached.notify_one();
        }
    }

    pub fn ended(&self, cores: u32, exit: &Exit) {
        self.ended.fetch_add(1, Relaxed);
        if matches!(exit, Exit::OutOfMemory { .. }) {
            self.oom_kills.fetch_add(1, Relaxed);
        }
        self.busy.fetch_sub(cores as u64, Relaxed);
    }

    fn since_first(&self, at: &AtomicU64) -> Option<u64> {
        let (first, at) = (self.first_launch.load(Relaxed), at.load(Relaxed));
        (first > 0 && at > 0).then(|| at - first)
    }

    pub fn summary(&self, hosts: u64, until_busy_pct: Option<f64>, peak_rate: f64) -> Summary {
        let first = self.first_launch.load(Relaxed);
        Summary {
            hosts,
            total_cores: self.total_cores as f64 / 100.0,
            connected_hosts: self.connected.load(Relaxed),
            first_launch_ms: (first > 0).then(|| first - 1),
            first_launch_unix_ms: (first > 0).then(|| self.start_unix_ms + first as i64 - 1),
            fill_99_ms: self.since_first(&self.full_at),
            until_busy_pct,
            fill_until_busy_ms: until_busy_pct.and(self.since_first(&self.until_busy_at)),
            peak_busy_pct: pct(self.peak_busy.load(Relaxed), self.total_cores),
            peak_launches_per_s: (peak_rate * 10.0).round() / 10.0,
            frames_started: self.started.load(Relaxed),
            frames_ended: self.ended.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            overcommits: self.overcommits.load(Relaxed),
            oom_kills: self.oom_kills.load(Relaxed),
            elapsed_ms: self.start.elapsed().as_millis() as u64,
        }
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 * 1000.0 / whole as f64).round() / 10.0
}

fn cores(centi: u64) -> String {
    if centi.is_multiple_of(100) {
        (centi / 100).to_string()
    } else {
        format!("{:.2}", centi as f64 / 100.0)
    }
}

/// Samples the counters once a second; remembers the peak launch rate.
pub struct Progress {
    last: (Instant, u64),
    pub peak_rate: f64,
}

impl Progress {
    pub fn new(stats: &Stats) -> Progress {
        Progress {
            last: (Instant::now(), stats.started.load(Relaxed)),
            peak_rate: 0.0,
        }
    }

    /// The progress line for the time since the previous call.
    pub fn line(&mut self, stats: &Stats, hosts: u64) -> String {
        let now = Instant::now();
        let started = stats.started.load(Relaxed);
        let secs = now.duration_since(self.last.0).as_secs_f64();
        let rate = if secs > 0.0 {
            (started - self.last.1) as f64 / secs
        } else {
            0.0
        };
        self.peak_rate = self.peak_rate.max(rate);
        self.last = (now, started);
        let busy = stats.busy.load(Relaxed);
        format!(
            "fleet: {}/{hosts} hosts up | busy {}/{} cores ({:.1}%) | started {started} | ended {} | {rate:.0} launches/s",
            stats.connected.load(Relaxed),
            cores(busy),
            cores(stats.total_cores),
            pct(busy, stats.total_cores),
            stats.ended.load(Relaxed),
        )
    }
}

fn ms(v: Option<u64>) -> String {
    v.map_or("never".into(), kiln_core::size::format_duration_ms)
}

impl Summary {
    pub fn text(&self) -> String {
        let mut s = format!(
            "kiln fleet: {} hosts, {} cores; {} connected at exit after {}\n",
            self.hosts,
            self.total_cores,
            self.connected_hosts,
            ms(Some(self.elapsed_ms)),
        );
        s += &format!(
            "  first launch:        {} after start\n",
            ms(self.first_launch_ms)
        );
        s += &format!("  fill to 99% busy:    {}\n", ms(self.fill_99_ms));
        if let Some(p) = self.until_busy_pct {
            s += &format!("  fill to {p}% busy:  {}\n", ms(self.fill_until_busy_ms));
        }
        s += &format!(
            "  peak:                {:.1}% busy, {:.0} launches/s\n",
            self.peak_busy_pct, self.peak_launches_per_s
        );
        s += &format!(
            "  frames:              {} started, {} ended ({} killed out of memory)\n  reconnects:          {}\n",
            self.frames_started, self.frames_ended, self.oom_kills, self.reconnects
        );
        if self.overcommits > 0 {
            s += &format!(
                "  OVERCOMMITS:         {} launches did not fit in their host's free cores\n",
                self.overcommits
            );
        }
        s
    }
}

/// How long to wait before the next progress line.
pub const TICK: Duration = Duration::from_secs(1);
